//! The `[core.redfish]` configuration: its TOML shape, defaults and validation.
//!
//! Validation happens once, at start, and every error names its key (`core.redfish.endpoints[1].url`).
//! Passwords come from a file or an environment variable, never inline; the loaded password lives
//! in a [`Secret`] whose `Debug` prints nothing, so no log or error can carry it.
//!
//! TLS: `https://` endpoints are verified against `ca_file` when it is set (its certificates
//! replace the built-in web roots), otherwise against the built-in web roots (webpki-roots, for
//! BMCs with publicly signed certificates). `insecure_skip_verify = true` turns verification off
//! and is honoured only when written explicitly; it contradicts `ca_file`.

use crate::mapping::StateRule;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use steward_proto::{ComponentKind, RackId};
use steward_runtime::core::CoreError;

/// Where every key of this table lives in the config file.
pub const PREFIX: &str = "core.redfish";

/// `[core.redfish]` as written in the file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedfishConfig {
    /// BMC user name (the same on every endpoint).
    #[serde(default)]
    pub username: String,
    /// File holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// Refused: passwords are never written inline. Present only to name the key in the error.
    pub password: Option<toml_free::Ignored>,
    /// PEM file of the BMCs' CA (https endpoints); replaces the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification; only when set explicitly.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Per-request timeout in milliseconds (connect timeout: the smaller of this and 3 s).
    pub timeout_ms: Option<u64>,
    /// Requests in flight over all endpoints.
    pub max_in_flight: Option<usize>,
    /// How long a power change may take to show in `PowerState`.
    pub power_settle_seconds: Option<u64>,
    /// How long a firmware update may take until the new version reads back.
    pub firmware_timeout_seconds: Option<u64>,
    /// Image URI template: `{kind}` and `{version}` are replaced.
    pub firmware_image_uri: Option<String>,
    /// Rules checked before the default state table (first match wins).
    #[serde(default)]
    pub state_table: Vec<StateRule>,
    /// The BMCs (or aggregators).
    #[serde(default)]
    pub endpoints: Vec<EndpointConfig>,
}

/// Serde helper: accepts any value so `password = "..."` parses and is then refused by name.
pub mod toml_free {
    use serde::Deserialize;

    /// Any value, discarded.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct Ignored;

    impl<'de> Deserialize<'de> for Ignored {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            serde::de::IgnoredAny::deserialize(d).map(|_| Ignored)
        }
    }
}

/// One `[[core.redfish.endpoints]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Base URL of the BMC, e.g. `http://10.0.0.10`.
    pub url: String,
    /// The rack every system behind this endpoint belongs to.
    pub rack: String,
    /// The kind of every system behind it (default compute).
    #[serde(default = "default_kind")]
    pub kind: ComponentKind,
}

fn default_kind() -> ComponentKind {
    ComponentKind::Compute
}

/// A password: never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the Authorization header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The validated settings the adapter runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// User name.
    pub username: String,
    /// Password.
    pub password: Secret,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Requests in flight over all endpoints.
    pub max_in_flight: usize,
    /// The certificates of `ca_file` (empty: the built-in web roots).
    pub ca_certs: Vec<reqwest::Certificate>,
    /// Accept any certificate (`insecure_skip_verify = true`, set explicitly).
    pub insecure_skip_verify: bool,
    /// Power settle limit.
    pub power_settle: Duration,
    /// Firmware limit.
    pub firmware_timeout: Duration,
    /// Image URI template.
    pub firmware_image_uri: Option<String>,
    /// Config rules before the defaults.
    pub state_table: Vec<StateRule>,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// One validated endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Base URL without a trailing slash.
    pub url: String,
    /// Rack.
    pub rack: RackId,
    /// Kind.
    pub kind: ComponentKind,
}

fn invalid(field: &str, message: impl Into<String>) -> CoreError {
    CoreError::InvalidConfig { field: format!("{PREFIX}.{field}"), message: message.into() }
}

impl RedfishConfig {
    /// Parses the `[core.redfish]` table.
    pub fn from_table(table: toml::Table) -> Result<RedfishConfig, CoreError> {
        RedfishConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| CoreError::InvalidConfig { field: PREFIX.into(), message: e.to_string() })
    }

    /// Checks every value and loads the password; the first problem names its key.
    pub fn validate(&self) -> Result<Settings, CoreError> {
        if self.password.is_some() {
            return Err(invalid(
                "password",
                "passwords are never written inline; use password_file or password_env",
            ));
        }
        if self.username.trim().is_empty() {
            return Err(invalid("username", "must not be empty"));
        }
        let password = self.load_password()?;
        let ca_certs = self.validate_tls()?;
        let timeout_ms = self.timeout_ms.unwrap_or(10_000);
        if !(100..=600_000).contains(&timeout_ms) {
            return Err(invalid("timeout_ms", "must be between 100 and 600000"));
        }
        let max_in_flight = self.max_in_flight.unwrap_or(32);
        if !(1..=4096).contains(&max_in_flight) {
            return Err(invalid("max_in_flight", "must be between 1 and 4096"));
        }
        let settle = self.power_settle_seconds.unwrap_or(120);
        if !(1..=3600).contains(&settle) {
            return Err(invalid("power_settle_seconds", "must be between 1 and 3600"));
        }
        let firmware = self.firmware_timeout_seconds.unwrap_or(1800);
        if !(1..=86_400).contains(&firmware) {
            return Err(invalid("firmware_timeout_seconds", "must be between 1 and 86400"));
        }
        if let Some(template) = &self.firmware_image_uri
            && !template.contains("{version}")
        {
            return Err(invalid("firmware_image_uri", "must contain {version}"));
        }
        for (index, rule) in self.state_table.iter().enumerate() {
            rule.validate().map_err(|m| invalid(&format!("state_table[{index}]"), m))?;
        }
        let timeout = Duration::from_millis(timeout_ms);
        Ok(Settings {
            username: self.username.clone(),
            password,
            timeout,
            connect_timeout: timeout.min(Duration::from_secs(3)),
            max_in_flight,
            ca_certs,
            insecure_skip_verify: self.insecure_skip_verify,
            power_settle: Duration::from_secs(settle),
            firmware_timeout: Duration::from_secs(firmware),
            firmware_image_uri: self.firmware_image_uri.clone(),
            state_table: self.state_table.clone(),
            endpoints: self.validate_endpoints()?,
        })
    }

    fn load_password(&self) -> Result<Secret, CoreError> {
        match (&self.password_file, &self.password_env) {
            (Some(_), Some(_)) => {
                Err(invalid("password_env", "set either password_file or password_env, not both"))
            }
            (None, None) => Err(invalid("password_file", "required (or password_env)")),
            (Some(path), None) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    invalid("password_file", format!("cannot read {}: {e}", path.display()))
                })?;
                let value = text.trim_end_matches(['\n', '\r']);
                if value.is_empty() {
                    return Err(invalid("password_file", format!("{} is empty", path.display())));
                }
                Ok(Secret::new(value))
            }
            (None, Some(name)) => match std::env::var(name) {
                Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
                _ => Err(invalid(
                    "password_env",
                    format!("environment variable {name} is not set or empty"),
                )),
            },
        }
    }

    /// Loads `ca_file` (every certificate in it, checked by building a client with them).
    fn validate_tls(&self) -> Result<Vec<reqwest::Certificate>, CoreError> {
        if self.insecure_skip_verify && self.ca_file.is_some() {
            return Err(invalid("insecure_skip_verify", "contradicts ca_file; set one of them"));
        }
        let Some(path) = &self.ca_file else { return Ok(Vec::new()) };
        let pem = std::fs::read(path)
            .map_err(|e| invalid("ca_file", format!("cannot read {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| invalid("ca_file", format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(invalid("ca_file", format!("{} holds no PEM certificate", path.display())));
        }
        let mut probe = reqwest::Client::builder().tls_built_in_root_certs(false);
        for cert in &certs {
            probe = probe.add_root_certificate(cert.clone());
        }
        probe.build().map_err(|e| {
            invalid("ca_file", format!("{}: unusable certificate: {e}", path.display()))
        })?;
        Ok(certs)
    }

    fn validate_endpoints(&self) -> Result<Vec<Endpoint>, CoreError> {
        if self.endpoints.is_empty() {
            return Err(invalid("endpoints", "at least one [[core.redfish.endpoints]] is needed"));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut endpoints = Vec::with_capacity(self.endpoints.len());
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            let key = |field: &str| format!("endpoints[{index}].{field}");
            let url = endpoint.url.trim_end_matches('/');
            let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
            let rest = rest.unwrap_or("");
            if rest.is_empty() || rest.contains(char::is_whitespace) || rest.contains('@') {
                return Err(invalid(
                    &key("url"),
                    format!("{:?} must be http(s)://HOST[:PORT] without credentials", endpoint.url),
                ));
            }
            if !seen.insert(url.to_string()) {
                return Err(invalid(&key("url"), format!("{url} is listed twice")));
            }
            if !valid_id(&endpoint.rack) {
                return Err(invalid(
                    &key("rack"),
                    format!("{:?} must be letters, digits, '-', '_' or '.'", endpoint.rack),
                ));
            }
            endpoints.push(Endpoint {
                url: url.to_string(),
                rack: RackId::new(&endpoint.rack),
                kind: endpoint.kind,
            });
        }
        Ok(endpoints)
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> Result<Settings, CoreError> {
        let value: toml::Table = toml::from_str(text).unwrap();
        RedfishConfig::from_table(value)?.validate()
    }

    fn field(result: Result<Settings, CoreError>) -> String {
        match result {
            Err(CoreError::InvalidConfig { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    const ENDPOINT: &str = "[[endpoints]]\nurl = \"http://127.0.0.1:1\"\nrack = \"r1\"\n";

    #[test]
    fn errors_name_the_key_and_never_the_password() {
        let err = parse(&format!("username = \"a\"\npassword = \"hunter2\"\n{ENDPOINT}"));
        let text = format!("{err:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(field(err), "core.redfish.password");
        assert_eq!(field(parse(ENDPOINT)), "core.redfish.username");
        assert_eq!(field(parse("username = \"a\"")), "core.redfish.password_file");
        let env = "username = \"a\"\npassword_env = \"STEWARD_TEST_SURELY_UNSET_VAR\"\n";
        assert_eq!(field(parse(&format!("{env}{ENDPOINT}"))), "core.redfish.password_env");
    }

    #[test]
    fn a_valid_file_loads_the_password_and_checks_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let head =
            format!("username = \"admin\"\npassword_file = {:?}\n", pw.display().to_string());
        let settings = parse(&format!("{head}{ENDPOINT}")).unwrap();
        assert_eq!(settings.password.expose(), "s3cret");
        assert!(!format!("{settings:?}").contains("s3cret"));
        assert_eq!(settings.endpoints[0].kind, ComponentKind::Compute);
        assert_eq!(field(parse(&head)), "core.redfish.endpoints");
        let https = "[[endpoints]]\nurl = \"https://10.0.0.1\"\nrack = \"r1\"\n";
        assert!(parse(&format!("{head}{https}")).is_ok(), "https endpoints are accepted");
        let ftp = "[[endpoints]]\nurl = \"ftp://10.0.0.1\"\nrack = \"r1\"\n";
        assert_eq!(field(parse(&format!("{head}{ftp}"))), "core.redfish.endpoints[0].url");
        let bad_rack = "[[endpoints]]\nurl = \"http://10.0.0.1\"\nrack = \"a b\"\n";
        assert_eq!(field(parse(&format!("{head}{bad_rack}"))), "core.redfish.endpoints[0].rack");
        let ca = format!("{head}ca_file = \"/nonexistent/ca.pem\"\n{ENDPOINT}");
        assert_eq!(field(parse(&ca)), "core.redfish.ca_file");
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello\n").unwrap();
        let ca = format!("{head}ca_file = {:?}\n{ENDPOINT}", not_pem.display().to_string());
        assert_eq!(field(parse(&ca)), "core.redfish.ca_file");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .unwrap();
        let ca = format!("{head}ca_file = {:?}\n{ENDPOINT}", garbage.display().to_string());
        assert_eq!(field(parse(&ca)), "core.redfish.ca_file");
        let both = format!(
            "{head}ca_file = {:?}\ninsecure_skip_verify = true\n{ENDPOINT}",
            garbage.display().to_string()
        );
        assert_eq!(field(parse(&both)), "core.redfish.insecure_skip_verify");
        let insecure = format!("{head}insecure_skip_verify = true\n{ENDPOINT}");
        assert!(parse(&insecure).unwrap().insecure_skip_verify);
        assert!(!settings.insecure_skip_verify, "off unless written");
        let timeout = format!("{head}timeout_ms = 0\n{ENDPOINT}");
        assert_eq!(field(parse(&timeout)), "core.redfish.timeout_ms");
    }
}
