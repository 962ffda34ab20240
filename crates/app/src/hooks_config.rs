//! The `[[hooks]]` entries of the config file: named site hooks runs may reference. A hook is
//! either a process (`exec`, argv without a shell) or an HTTP call (`http`, signed like
//! webhooks when it has a secret). Requests only ever name these; they never define one.
//!
//! ```toml
//! [[hooks]]
//! name = "drain"
//! exec = ["/opt/site/drain", "--rack", "{rack}"]
//! timeout_seconds = 900
//! [[hooks]]
//! name = "validate"
//! http = { url = "http://127.0.0.1:9100/validate", secret = "s3cret" }
//! timeout_seconds = 300
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;
use steward_runtime::hooks::{HookConfig, HookKind};

/// Default `timeout_seconds`.
pub const DEFAULT_HOOK_TIMEOUT_SECONDS: u64 = 600;

/// One `[[hooks]]` entry as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookEntry {
    /// The name runs reference (`"hooks": {"pre": [name]}`).
    pub name: String,
    /// A process: program and arguments (`{rack}`, `{run}`, `{target}`, `{attempt}` replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// An HTTP call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpHookEntry>,
    /// Longest run in seconds (default 600).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

/// The `http` table of a hook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHookEntry {
    /// Where to call (plain http).
    pub url: String,
    /// Method (default POST).
    #[serde(default = "default_method")]
    pub method: String,
    /// HMAC-SHA256 secret for `X-Steward-Signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn default_timeout() -> u64 {
    DEFAULT_HOOK_TIMEOUT_SECONDS
}

fn default_method() -> String {
    "POST".into()
}

/// A problem with a hook entry: the key (`hooks[1].exec`) and what is wrong. The config module
/// turns it into its own error (this module does not depend on it).
pub type HookConfigError = (String, String);

fn invalid(key: impl Into<String>, message: impl Into<String>) -> HookConfigError {
    (key.into(), message.into())
}

/// Checks every entry; the first problem names its key (`hooks[1].exec`).
pub fn validate(hooks: &[HookEntry]) -> Result<(), HookConfigError> {
    let mut names = BTreeSet::new();
    for (index, hook) in hooks.iter().enumerate() {
        let key = |field: &str| format!("hooks[{index}].{field}");
        if hook.name.is_empty() || hook.name.len() > 128 || hook.name.chars().any(char::is_control)
        {
            return Err(invalid(key("name"), "must be 1 to 128 printable characters"));
        }
        if !names.insert(hook.name.as_str()) {
            return Err(invalid(key("name"), format!("duplicate hook {}", hook.name)));
        }
        if hook.timeout_seconds == 0 {
            return Err(invalid(key("timeout_seconds"), "must be at least 1"));
        }
        match (&hook.exec, &hook.http) {
            (Some(argv), None) if argv.first().is_some_and(|p| !p.is_empty()) => {}
            (Some(_), None) => {
                return Err(invalid(key("exec"), "must name a program"));
            }
            (None, Some(http)) => validate_http(http, &key("http"))?,
            _ => {
                return Err(invalid(
                    key("exec"),
                    "a hook has exactly one of exec = [...] or http = {...}",
                ));
            }
        }
    }
    Ok(())
}

fn validate_http(http: &HttpHookEntry, key: &str) -> Result<(), HookConfigError> {
    if !http.url.starts_with("http://") {
        return Err(invalid(format!("{key}.url"), "must be an http:// URL"));
    }
    if axum::http::Method::from_bytes(http.method.as_bytes()).is_err() {
        return Err(invalid(format!("{key}.method"), "is not an HTTP method"));
    }
    Ok(())
}

/// The runtime's hook definitions.
pub fn runtime_hooks(hooks: &[HookEntry]) -> Vec<HookConfig> {
    hooks
        .iter()
        .map(|hook| HookConfig {
            name: hook.name.clone(),
            kind: match (&hook.exec, &hook.http) {
                (Some(argv), _) => HookKind::Exec { argv: argv.clone() },
                (None, Some(http)) => HookKind::Http {
                    url: http.url.clone(),
                    method: http.method.to_ascii_uppercase(),
                    secret: http.secret.clone(),
                },
                (None, None) => HookKind::Exec { argv: Vec::new() },
            },
            timeout: Duration::from_secs(hook.timeout_seconds),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        hooks: Vec<HookEntry>,
    }

    fn parse(text: &str) -> Vec<HookEntry> {
        toml::from_str::<File>(text).expect("parses").hooks
    }

    fn key_of(text: &str) -> String {
        validate(&parse(text)).expect_err("invalid").0
    }

    #[test]
    fn hooks_parse_and_map_to_the_runtime() {
        let hooks = parse(
            "[[hooks]]\nname = \"drain\"\nexec = [\"/bin/true\", \"{rack}\"]\ntimeout_seconds = 9\n\
             [[hooks]]\nname = \"validate\"\nhttp = { url = \"http://127.0.0.1:1/v\", secret = \"s\" }\n",
        );
        validate(&hooks).expect("valid");
        let hooks = runtime_hooks(&hooks);
        assert_eq!(
            hooks[0].kind,
            HookKind::Exec { argv: vec!["/bin/true".into(), "{rack}".into()] }
        );
        assert_eq!(hooks[0].timeout, Duration::from_secs(9));
        assert!(matches!(&hooks[1].kind, HookKind::Http { method, .. } if method == "POST"));
    }

    #[test]
    fn bad_hooks_name_the_key() {
        assert_eq!(key_of("[[hooks]]\nname = \"x\"\n"), "hooks[0].exec");
        assert_eq!(key_of("[[hooks]]\nname = \"x\"\nexec = []\n"), "hooks[0].exec");
        assert_eq!(
            key_of(
                "[[hooks]]\nname = \"x\"\nexec = [\"a\"]\n[[hooks]]\nname = \"x\"\nexec = [\"b\"]\n"
            ),
            "hooks[1].name"
        );
        assert_eq!(
            key_of("[[hooks]]\nname = \"x\"\nhttp = { url = \"ftp://x\" }\n"),
            "hooks[0].http.url"
        );
        assert_eq!(
            key_of("[[hooks]]\nname = \"x\"\nexec = [\"a\"]\ntimeout_seconds = 0\n"),
            "hooks[0].timeout_seconds"
        );
    }
}
