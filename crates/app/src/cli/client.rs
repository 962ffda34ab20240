//! The HTTP client the CLI commands use: JSON requests against a steward server, with the
//! server's problem+json errors turned into one-line reasons.

use super::{EXIT_REFUSED, EXIT_USAGE};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;

/// Why a CLI command failed, and its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The server refused the request (exit 1).
    #[error("{0}")]
    Refused(String),
    /// The server could not be reached or answered nonsense (exit 1).
    #[error("{0}")]
    Unreachable(String),
    /// A local file or store could not be used (exit 1).
    #[error("{0}")]
    Local(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            _ => EXIT_REFUSED,
        }
    }
}

/// A steward API client.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:7070`).
    pub fn new(base: &str, token: Option<String>) -> Result<Self, CliError> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(CliError::Usage(format!(
                "--server {base:?} must be a URL like http://127.0.0.1:7070"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| CliError::Local(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self { base, token, http })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value, CliError> {
        let retry = request.try_clone();
        let request = request
            .build()
            .map_err(|e| CliError::Local(format!("{what}: cannot build the request: {e}")))?;
        let (status, bytes) = self.exchange(request, what).await?;
        // A standby answers 503 naming the leader: retry once there.
        if status == StatusCode::SERVICE_UNAVAILABLE
            && let Some(leader) = standby_leader(&bytes).filter(|l| *l != self.base)
            && let Some(retry) = retry.and_then(|r| r.build().ok())
            && let Some(request) = redirect(retry, &self.base, &leader)
        {
            let (status, bytes) = self.exchange(request, what).await?;
            return answer(status, &bytes, what);
        }
        answer(status, &bytes, what)
    }

    async fn exchange(
        &self,
        request: reqwest::Request,
        what: &str,
    ) -> Result<(StatusCode, Vec<u8>), CliError> {
        let host = request.url().origin().ascii_serialization();
        let response = self.http.execute(request).await.map_err(|e| {
            CliError::Unreachable(format!("cannot reach steward at {host}: {}", root(&e)))
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            CliError::Unreachable(format!("{what}: reading the answer failed: {e}"))
        })?;
        Ok((status, bytes.to_vec()))
    }

    /// GET a JSON document.
    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.request(reqwest::Method::GET, path), &format!("GET {path}")).await
    }

    /// GET a JSON document into `T`.
    pub async fn get_as<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let value = self.get(path).await?;
        serde_json::from_value(value).map_err(|e| {
            CliError::Unreachable(format!("GET {path}: unexpected answer from the server: {e}"))
        })
    }

    /// POST a JSON document.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        let request = self.request(reqwest::Method::POST, path).json(body);
        self.send(request, &format!("POST {path}")).await
    }

    /// POST raw JSON bytes (a file's contents, sent as they are).
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> Result<Value, CliError> {
        let request = self
            .request(reqwest::Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(request, &format!("POST {path}")).await
    }
}

/// A successful answer's JSON, or the refusal.
fn answer(status: StatusCode, bytes: &[u8], what: &str) -> Result<Value, CliError> {
    if status.is_success() {
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(bytes).map_err(|e| {
            CliError::Unreachable(format!("{what}: the server answered invalid JSON: {e}"))
        });
    }
    Err(CliError::Refused(refusal(status, bytes)))
}

/// The `leader` URL of a standby's 503 problem, if it names one.
fn standby_leader(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let leader = value.get("leader")?.as_str()?.trim_end_matches('/');
    (leader.starts_with("http://") || leader.starts_with("https://")).then(|| leader.to_string())
}

/// `request` sent to `leader` instead of `base` (same path, query, headers and body).
fn redirect(mut request: reqwest::Request, base: &str, leader: &str) -> Option<reqwest::Request> {
    let rest = request.url().as_str().strip_prefix(base)?.to_string();
    *request.url_mut() = reqwest::Url::parse(&format!("{leader}{rest}")).ok()?;
    Some(request)
}

/// The innermost cause of a reqwest error (the useful part, e.g. "Connection refused").
fn root(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

/// One line from an error answer: the problem's detail, field and allowed values.
fn refusal(status: StatusCode, body: &[u8]) -> String {
    let Ok(problem) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body);
        return format!("HTTP {}: {}", status.as_u16(), text.trim());
    };
    let detail = problem
        .get("detail")
        .and_then(Value::as_str)
        .or_else(|| problem.get("title").and_then(Value::as_str))
        .unwrap_or("request refused");
    let mut line = format!("HTTP {}: {}", status.as_u16(), detail.replace('\n', " "));
    if let Some(field) = problem.get("field").and_then(Value::as_str) {
        line.push_str(&format!(" (field: {field})"));
    }
    if let Some(allowed) = problem.get("allowed").and_then(Value::as_array) {
        let allowed: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        if allowed.is_empty() {
            line.push_str(" (nothing is allowed from here)");
        } else if !detail.contains("allowed") {
            line.push_str(&format!(" (allowed: {})", allowed.join(", ")));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_line_names_field_and_allowed() {
        let body = br#"{"type":"x","title":"t","status":409,"detail":"no","allowed":["a","b"]}"#;
        assert_eq!(refusal(StatusCode::CONFLICT, body), "HTTP 409: no (allowed: a, b)");
        let body = br#"{"detail":"no; allowed: a","allowed":["a"]}"#;
        assert_eq!(refusal(StatusCode::CONFLICT, body), "HTTP 409: no; allowed: a");
        let body = br#"{"detail":"bad","field":"policy.waves"}"#;
        assert_eq!(refusal(StatusCode::BAD_REQUEST, body), "HTTP 400: bad (field: policy.waves)");
        assert_eq!(refusal(StatusCode::BAD_GATEWAY, b"oops"), "HTTP 502: oops");
    }

    #[test]
    fn server_must_be_a_url() {
        assert!(matches!(Client::new("localhost:7070", None), Err(CliError::Usage(_))));
        assert!(Client::new("http://127.0.0.1:7070/", None).is_ok());
    }
}
