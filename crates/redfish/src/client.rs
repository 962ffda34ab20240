//! A minimal Redfish client over reqwest: typed serde structs of the few resources the adapter
//! reads, basic auth, one semaphore bounding requests over every endpoint, and errors classified
//! the way the adapter acts on them.
//!
//! GETs are never retried here (the next poll is the retry); POSTs are never retried at all:
//! after an ambiguous failure the caller reads state instead (see `ops`).

use crate::config::{Secret, Settings};
use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// A `{"@odata.id": ...}` link.
#[derive(Clone, Debug, Deserialize)]
pub struct Link {
    /// The resource path.
    #[serde(rename = "@odata.id")]
    pub odata_id: String,
}

/// The service root (only the links the adapter follows).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceRoot {
    /// The systems collection.
    pub systems: Option<Link>,
    /// The update service.
    pub update_service: Option<Link>,
}

/// A resource collection.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Collection {
    /// Members.
    #[serde(default)]
    pub members: Vec<Link>,
}

/// `Status` of a resource.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Status {
    /// State.
    pub state: Option<String>,
    /// Health.
    pub health: Option<String>,
}

/// `#ComputerSystem.Reset`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ResetAction {
    /// Where to POST.
    pub target: Option<String>,
    /// Inline allowed values.
    #[serde(rename = "ResetType@Redfish.AllowableValues", default)]
    pub allowed: Vec<String>,
    /// The ActionInfo resource, when the BMC lists allowed values there.
    #[serde(rename = "@Redfish.ActionInfo")]
    pub action_info: Option<String>,
}

/// A system's actions.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SystemActions {
    /// Reset.
    #[serde(rename = "#ComputerSystem.Reset")]
    pub reset: Option<ResetAction>,
}

/// A `ComputerSystem`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComputerSystem {
    /// Id.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Serial.
    pub serial_number: Option<String>,
    /// PowerState.
    pub power_state: Option<String>,
    /// Status.
    #[serde(default)]
    pub status: Status,
    /// BIOS version (the version firmware updates are verified against).
    pub bios_version: Option<String>,
    /// Actions.
    #[serde(default)]
    pub actions: SystemActions,
}

/// An ActionInfo resource.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ActionInfo {
    /// Parameters.
    #[serde(default)]
    pub parameters: Vec<ActionParameter>,
}

/// One ActionInfo parameter.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ActionParameter {
    /// Name.
    pub name: String,
    /// Allowed values.
    #[serde(default)]
    pub allowable_values: Vec<String>,
}

/// A Task (as a task monitor or a task resource returns it).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Task {
    /// TaskState.
    pub task_state: Option<String>,
    /// TaskStatus.
    pub task_status: Option<String>,
    /// Messages.
    #[serde(default)]
    pub messages: Vec<TaskMessage>,
}

/// One task message.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskMessage {
    /// Text.
    pub message: Option<String>,
}

/// What went wrong talking to a BMC. Messages never carry credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BmcError {
    /// 401/403.
    #[error("authentication failed (HTTP {0})")]
    Auth(u16),
    /// 404/410.
    #[error("not found: {0}")]
    NotFound(String),
    /// 501 or 405.
    #[error("not supported by the BMC: {0}")]
    Unsupported(String),
    /// No answer within the timeout (a POST may or may not have arrived).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The connection failed (refused, reset, DNS).
    #[error("connection failed: {0}")]
    Connect(String),
    /// The TLS handshake failed (certificate not trusted, wrong host name, not TLS at all).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// Any other HTTP error, with the BMC's message.
    #[error("HTTP {status}: {message}")]
    Http {
        /// Status code.
        status: u16,
        /// The BMC's message.
        message: String,
    },
    /// A body Steward cannot read.
    #[error("unreadable answer: {0}")]
    Protocol(String),
}

impl BmcError {
    /// Whether the endpoint should back off (no answer at all).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, BmcError::Timeout(_) | BmcError::Connect(_) | BmcError::Tls(_))
    }
}

/// What a POST answered.
#[derive(Clone, Debug)]
pub struct PostReply {
    /// Status code.
    pub status: u16,
    /// `Location` (a task monitor), if any.
    pub location: Option<String>,
}

/// What a task monitor answered: 202 while the task runs; once it ends, the operation's own
/// answer (any other 2xx) or, on BMCs whose monitor is the Task resource, the Task itself.
#[derive(Clone, Debug)]
pub struct MonitorReply {
    /// Status code.
    pub status: u16,
    /// The Task, when the body is one (it has a `TaskState`).
    pub task: Option<Task>,
}

/// One endpoint's client.
#[derive(Clone, Debug)]
pub struct Bmc {
    http: reqwest::Client,
    base: String,
    username: String,
    password: Secret,
    permits: Arc<Semaphore>,
}

/// Builds the shared HTTP client: timeouts, pool, and TLS from `settings` (the `ca_file`
/// certificates instead of the built-in roots, or no verification when `insecure_skip_verify`).
pub fn http_client(settings: &Settings) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.connect_timeout)
        .pool_max_idle_per_host(settings.max_in_flight);
    if !settings.ca_certs.is_empty() {
        builder = builder.tls_built_in_root_certs(false);
        for cert in &settings.ca_certs {
            builder = builder.add_root_certificate(cert.clone());
        }
    }
    if settings.insecure_skip_verify {
        tracing::warn!(
            "core.redfish.insecure_skip_verify = true: BMC TLS certificates are not verified"
        );
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| error_chain(&e))
}

impl Bmc {
    /// A client of the BMC at `base` (no trailing slash).
    pub fn new(
        http: reqwest::Client,
        base: &str,
        username: &str,
        password: Secret,
        permits: Arc<Semaphore>,
    ) -> Bmc {
        Bmc { http, base: base.to_string(), username: username.to_string(), password, permits }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    /// GETs `path` and decodes it.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, BmcError> {
        let _permit = self.permits.acquire().await.map_err(|e| BmcError::Connect(e.to_string()))?;
        let request = self.http.get(self.url(path)).header("OData-Version", "4.0");
        let response = self.send(request, path).await?;
        let response = check(response, path).await?;
        let bytes = response.bytes().await.map_err(|e| transport(&e, path))?;
        serde_json::from_slice(&bytes).map_err(|e| BmcError::Protocol(format!("{path}: {e}")))
    }

    /// GETs a task monitor (or a Task resource): its status code and the Task it returned, if
    /// the body is one.
    pub async fn get_task(&self, path: &str) -> Result<MonitorReply, BmcError> {
        let _permit = self.permits.acquire().await.map_err(|e| BmcError::Connect(e.to_string()))?;
        let request = self.http.get(self.url(path)).header("OData-Version", "4.0");
        let response = check(self.send(request, path).await?, path).await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| transport(&e, path))?;
        let task = serde_json::from_slice::<Task>(&bytes).ok().filter(|t| t.task_state.is_some());
        Ok(MonitorReply { status, task })
    }

    /// POSTs `body` once. Never retried.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Result<PostReply, BmcError> {
        let _permit = self.permits.acquire().await.map_err(|e| BmcError::Connect(e.to_string()))?;
        let request = self.http.post(self.url(path)).header("OData-Version", "4.0").json(body);
        let response = check(self.send(request, path).await?, path).await?;
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(PostReply { status: response.status().as_u16(), location })
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<reqwest::Response, BmcError> {
        request
            .basic_auth(&self.username, Some(self.password.expose()))
            .send()
            .await
            .map_err(|e| transport(&e, path))
    }
}

fn transport(error: &reqwest::Error, path: &str) -> BmcError {
    // reqwest's messages name the URL, never the Authorization header.
    let chain = error_chain(error);
    let text = format!("{path}: {chain}");
    if error.is_timeout() {
        BmcError::Timeout(text)
    } else if error.is_connect() && is_tls(&chain) {
        // Short (component reasons are cut at 200 bytes): rustls's own words, then what to check.
        BmcError::Tls(format!("{}; check core.redfish.ca_file", innermost(error)))
    } else {
        BmcError::Connect(text)
    }
}

/// Whether a connect error's text is rustls refusing the handshake (its messages are stable:
/// "invalid peer certificate: ...", "received fatal alert: ...", "received corrupt message ...").
fn is_tls(chain: &str) -> bool {
    ["certificate", "fatal alert", "corrupt message", "HandshakeFailure", "InvalidContentType"]
        .iter()
        .any(|needle| chain.contains(needle))
}

/// The last error of the source chain (rustls's message for a refused handshake).
fn innermost(error: &dyn std::error::Error) -> String {
    let mut last = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        last = inner.to_string();
        source = inner.source();
    }
    last
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

async fn check(response: reqwest::Response, path: &str) -> Result<reqwest::Response, BmcError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let message = redfish_message(&body).unwrap_or_else(|| format!("{path}: {status}"));
    Err(match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => BmcError::Auth(status.as_u16()),
        StatusCode::NOT_FOUND | StatusCode::GONE => BmcError::NotFound(path.to_string()),
        StatusCode::NOT_IMPLEMENTED | StatusCode::METHOD_NOT_ALLOWED => {
            BmcError::Unsupported(message)
        }
        _ => BmcError::Http { status: status.as_u16(), message },
    })
}

/// The message of a Redfish error body (`error.message` or the first extended info).
fn redfish_message(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let error = value.get("error")?;
    let extended = error
        .get("@Message.ExtendedInfo")
        .and_then(|info| info.get(0))
        .and_then(|first| first.get("Message"))
        .and_then(|m| m.as_str());
    let message = extended.or_else(|| error.get("message").and_then(|m| m.as_str()))?;
    Some(message.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_yield_the_bmc_message() {
        let body = r#"{"error":{"code":"Base.1.0.GeneralError","message":"Nope",
            "@Message.ExtendedInfo":[{"Message":"Reset type PowerCycle not supported"}]}}"#;
        assert_eq!(redfish_message(body).as_deref(), Some("Reset type PowerCycle not supported"));
        assert_eq!(redfish_message("not json"), None);
    }

    #[test]
    fn a_sushy_system_decodes() {
        let body = r##"{"Id":"abc","Name":"n","PowerState":"On",
            "Status":{"State":"Enabled","Health":"OK"},"BiosVersion":"1.0.0",
            "Actions":{"#ComputerSystem.Reset":{"target":"/redfish/v1/Systems/abc/Actions/ComputerSystem.Reset",
            "ResetType@Redfish.AllowableValues":["On","ForceOff"]}}}"##;
        let system: ComputerSystem = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(system.power_state.as_deref(), Some("On"));
        assert_eq!(system.actions.reset.map(|r| r.allowed.len()), Some(2));
    }
}
