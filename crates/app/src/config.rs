//! The `steward serve` configuration file (TOML): its shape, defaults and validation.
//!
//! Every table rejects unknown keys, and every error names the key it is about: parse errors
//! carry `toml`'s span (line, column and the offending key), semantic errors carry a dotted key
//! path such as `tokens[1].sha256` or `default_policy.waves.percentage`.
//!
//! ```toml
//! listen = "127.0.0.1:7070"
//! db = "./steward.db"
//! synchronous = "full"          # off | normal | full
//! plan_interval_ms = 500
//! status_max_age_seconds = 600  # 0 disables staleness
//!
//! [core]
//! adapter = "sim"
//! [core.sim]
//! racks = 8
//!
//! [[tokens]]
//! name = "ci"
//! role = "operator"             # viewer | operator | admin
//! sha256 = "<hex of sha256(token)>"
//!
//! webhook_max_attempts = 20      # failed attempts before a delivery is parked
//!
//! [[webhooks]]
//! url = "http://127.0.0.1:9000/hook"
//! secret = "s3cret"
//! events = ["run_status_changed"]
//!
//! [planner]
//! global_max_parallel_racks = 8  # shared fairly by the running runs
//!
//! [[planner.conflict_rules]]     # replaces the built-in rules; first match wins
//! name = "firmware_disjoint"
//! a = { operations = ["firmware_update"] }
//! b = { operations = ["firmware_update", "power_cycle"] }
//! components = "disjoint"        # any | overlapping | disjoint
//! verdict = "compatible"         # conflict | compatible
//! ```

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use steward_proto::{PhaseMappingOverride, RunPolicy, ServiceTableDoc};
use steward_state_machine::{ServiceTable, StatusMapper};

/// Notification kinds a webhook can subscribe to.
pub const NOTIFICATION_KINDS: [&str; 3] =
    ["service_state_changed", "run_status_changed", "component_phase_changed"];

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
/// Default SQLite file.
pub const DEFAULT_DB: &str = "./steward.db";

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// The TOML does not parse or does not fit the schema (the message shows the key).
    #[error("config: {0}")]
    Parse(String),
    /// A value is out of range or inconsistent.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// Dotted key path.
        key: String,
        /// What is wrong and what would be right.
        message: String,
    },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.into(), message: message.into() }
    }

    /// The key the error is about, when it names one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// GET only.
    Viewer,
    /// Viewer plus runs, service states and observations.
    Operator,
    /// Operator plus inventory.
    Admin,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// One API token: its name (the initiator recorded in the event log), role and hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Name recorded as the initiator of every request made with the token.
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// Lowercase hex SHA-256 of the token (`steward token hash TOKEN` prints it).
    pub sha256: String,
}

/// The hex SHA-256 of a bearer token, as stored in config.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// One webhook as written in config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEntry {
    /// Name (defaults to the URL); deliveries are ordered per name.
    #[serde(default)]
    pub name: Option<String>,
    /// Where to POST (http only).
    pub url: String,
    /// HMAC-SHA256 secret.
    pub secret: String,
    /// Notification kinds to deliver (empty or missing: all).
    #[serde(default)]
    pub events: Vec<String>,
}

impl WebhookEntry {
    /// The effective name.
    pub fn effective_name(&self) -> String {
        match &self.name {
            Some(name) if !name.is_empty() => name.clone(),
            _ => self.url.clone(),
        }
    }
}

/// Core adapters Steward can drive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Adapter {
    /// The in-process simulated Core.
    #[default]
    Sim,
    /// Real BMCs over DMTF Redfish (`[core.redfish]`, crate `steward-redfish`).
    Redfish,
    /// The site's own commands (`[core.exec]`, crate `steward-exec`).
    Exec,
}

/// The `[core]` table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoreSection {
    /// Which adapter.
    pub adapter: Adapter,
    /// Settings of the sim adapter (`SimConfig` fields; missing ones keep their defaults).
    pub sim: toml::Table,
    /// Settings of the redfish adapter (`steward_redfish::RedfishConfig`), checked at start.
    pub redfish: toml::Table,
    /// Settings of the exec adapter (`steward_exec::ExecConfig`), checked at start.
    pub exec: toml::Table,
}

/// The `[planner]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlannerSection {
    /// Racks in flight at once over all runs (`None`: no global limit). Free slots are shared
    /// fairly between running runs (the planner's fair share).
    pub global_max_parallel_racks: Option<u32>,
    /// `[[planner.conflict_rules]]`: the rack conflict rules, first match wins, replacing the
    /// built-in list as a whole (`None`: the built-in rules, DESIGN §3.6). Recorded in the event
    /// log with the site tables.
    pub conflict_rules: Option<Vec<steward_proto::ConflictRule>>,
}

/// The synchronous setting as written in config.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SynchronousSetting {
    /// No fsync.
    Off,
    /// fsync at checkpoints.
    Normal,
    /// fsync every commit (default).
    #[default]
    Full,
}

/// The whole configuration file. Every key is optional.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listen address.
    pub listen: String,
    /// SQLite file.
    pub db: PathBuf,
    /// SQLite durability.
    pub synchronous: SynchronousSetting,
    /// Planner tick in milliseconds.
    pub plan_interval_ms: u64,
    /// Inventory sync interval in milliseconds.
    pub sync_interval_ms: u64,
    /// Task status poll interval in milliseconds.
    pub task_poll_interval_ms: u64,
    /// A status older than this reads as unknown; 0 disables.
    pub status_max_age_seconds: u64,
    /// Import the Core's inventory (the sim fleet) at start.
    pub import_core_inventory: bool,
    /// How long a commit blocked by another connection's lock is retried (callers waiting)
    /// before its batch fails with 503.
    pub commit_retry_deadline_ms: u64,
    /// Core adapter.
    pub core: CoreSection,
    /// Planner settings.
    pub planner: PlannerSection,
    /// API tokens; none means loopback only, everyone admin.
    pub tokens: Vec<TokenConfig>,
    /// Webhooks.
    pub webhooks: Vec<WebhookEntry>,
    /// Site hooks runs may reference by name (see `hooks_config`).
    pub hooks: Vec<crate::hooks_config::HookEntry>,
    /// Failed attempts after which a webhook delivery is parked until an admin requeues it.
    pub webhook_max_attempts: u32,
    /// Overrides of the status tables.
    pub phase_mapping: PhaseMappingOverride,
    /// The site's service-state table (missing: the default table).
    pub service_states: Option<ServiceTableDoc>,
    /// Defaults for every field a run request's policy leaves out.
    pub default_policy: Option<RunPolicy>,
    /// `[store]`: SQLite `path` or PostgreSQL `url` (HA), and leadership timings.
    pub store: crate::store_config::StoreSection,
    /// This instance's API URL as others reach it; a standby names the leader's in its 503s.
    pub advertise_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_string(),
            db: PathBuf::from(DEFAULT_DB),
            synchronous: SynchronousSetting::Full,
            plan_interval_ms: 500,
            sync_interval_ms: 5000,
            task_poll_interval_ms: 1000,
            status_max_age_seconds: 600,
            import_core_inventory: true,
            commit_retry_deadline_ms: 30_000,
            core: CoreSection::default(),
            planner: PlannerSection::default(),
            tokens: Vec::new(),
            webhooks: Vec::new(),
            hooks: Vec::new(),
            webhook_max_attempts: steward_runtime::webhooks::DEFAULT_MAX_ATTEMPTS,
            phase_mapping: PhaseMappingOverride::default(),
            service_states: None,
            default_policy: None,
            store: crate::store_config::StoreSection::default(),
            advertise_url: None,
        }
    }
}

impl Config {
    /// Parses a TOML document (schema only; call [`Config::validate`] after overrides).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string().trim_end().to_string()))
    }

    /// Reads and parses a file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_toml_str(&text)
    }

    /// The listen address, parsed (`IP:PORT`, or `HOST:PORT` resolved once, e.g. `localhost:7070`).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        if let Ok(addr) = self.listen.parse() {
            return Ok(addr);
        }
        let resolved = std::net::ToSocketAddrs::to_socket_addrs(self.listen.as_str())
            .ok()
            .and_then(|mut addrs| addrs.next());
        resolved.ok_or_else(|| {
            ConfigError::invalid(
                "listen",
                format!("{:?} is not an address like 127.0.0.1:7070", self.listen),
            )
        })
    }

    /// Checks every value; the first problem is returned, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let addr = self.listen_addr()?;
        if self.tokens.is_empty() && !addr.ip().is_loopback() {
            return Err(ConfigError::invalid(
                "listen",
                format!(
                    "{addr} is not a loopback address and no [[tokens]] are configured; \
                     without tokens steward only listens on loopback (e.g. 127.0.0.1:7070)"
                ),
            ));
        }
        self.store.validate().map_err(|(key, message)| ConfigError::invalid(key, message))?;
        if self.db.as_os_str().is_empty() {
            return Err(ConfigError::invalid("db", "must be a file path"));
        }
        for (key, value) in [
            ("plan_interval_ms", self.plan_interval_ms),
            ("sync_interval_ms", self.sync_interval_ms),
            ("task_poll_interval_ms", self.task_poll_interval_ms),
            ("commit_retry_deadline_ms", self.commit_retry_deadline_ms),
            ("webhook_max_attempts", u64::from(self.webhook_max_attempts)),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        self.validate_tokens()?;
        self.validate_webhooks()?;
        crate::hooks_config::validate(&self.hooks)
            .map_err(|(key, message)| ConfigError::invalid(key, message))?;
        if self.planner.global_max_parallel_racks == Some(0) {
            return Err(ConfigError::invalid(
                "planner.global_max_parallel_racks",
                "must be at least 1 (omit it for no global limit)",
            ));
        }
        if let Some(rules) = &self.planner.conflict_rules
            && let Err(errors) =
                steward_planner::conflict::validate_rules(rules, "planner.conflict_rules")
        {
            let key = errors.first_field().unwrap_or("planner.conflict_rules").to_string();
            return Err(ConfigError::invalid(key, errors.to_string()));
        }
        match self.core.adapter {
            Adapter::Redfish => {
                self.redfish_settings()?;
            }
            Adapter::Exec => {
                let exec = self.exec_settings()?;
                if self.store.url.is_some() && exec.work_dir.is_none() {
                    // HA: the default `{db}.exec` names no place a new leader would look.
                    return Err(ConfigError::invalid(
                        "core.exec.work_dir",
                        "must be set with [store] url (PostgreSQL HA): the directory of the exec \
                         tasks' request and output files, on storage every instance mounts so a \
                         new leader can judge a command the old one started",
                    ));
                }
            }
            Adapter::Sim => {}
        }
        StatusMapper::with_override(&self.phase_mapping)
            .map_err(|e| ConfigError::invalid("phase_mapping", e.to_string()))?;
        if let Some(doc) = &self.service_states {
            ServiceTable::from_doc(doc)
                .map_err(|e| ConfigError::invalid("service_states", e.to_string()))?;
        }
        if let Some(Err(errors)) =
            self.default_policy.as_ref().map(|p| p.validate("default_policy"))
        {
            let key = errors.first_field().unwrap_or("default_policy").to_string();
            return Err(ConfigError::invalid(key, errors.to_string()));
        }
        Ok(())
    }

    /// The validated `[core.redfish]` settings (loads the password; errors name the key).
    pub fn redfish_settings(&self) -> Result<steward_redfish::Settings, ConfigError> {
        let to_config = |e: steward_runtime::core::CoreError| match e {
            steward_runtime::core::CoreError::InvalidConfig { field, message } => {
                ConfigError::invalid(field, message)
            }
            other => ConfigError::invalid("core.redfish", other.to_string()),
        };
        steward_redfish::RedfishConfig::from_table(self.core.redfish.clone())
            .and_then(|c| c.validate())
            .map_err(to_config)
    }

    /// The validated `[core.exec]` settings (every command checked; errors name the key, e.g.
    /// `core.exec.power_on`).
    pub fn exec_settings(&self) -> Result<steward_exec::Settings, ConfigError> {
        steward_exec::ExecConfig::from_table(self.core.exec.clone())
            .and_then(|c| c.validate())
            .map_err(|e| match e {
                steward_runtime::core::CoreError::InvalidConfig { field, message } => {
                    ConfigError::invalid(field, message)
                }
                other => ConfigError::invalid("core.exec", other.to_string()),
            })
    }

    fn validate_tokens(&self) -> Result<(), ConfigError> {
        let mut names = BTreeSet::new();
        let mut hashes = BTreeSet::new();
        for (index, token) in self.tokens.iter().enumerate() {
            let key = |field: &str| format!("tokens[{index}].{field}");
            if token.name.trim().is_empty() {
                return Err(ConfigError::invalid(key("name"), "must not be empty"));
            }
            if !names.insert(token.name.as_str()) {
                return Err(ConfigError::invalid(
                    key("name"),
                    format!("{:?} is used by an earlier token", token.name),
                ));
            }
            let hash = &token.sha256;
            if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(ConfigError::invalid(
                    key("sha256"),
                    "must be 64 hex digits: the SHA-256 of the token (`steward token hash TOKEN`)",
                ));
            }
            if !hashes.insert(hash.to_ascii_lowercase()) {
                return Err(ConfigError::invalid(
                    key("sha256"),
                    "the same token hash is configured twice",
                ));
            }
        }
        Ok(())
    }

    fn validate_webhooks(&self) -> Result<(), ConfigError> {
        let mut names = BTreeSet::new();
        for (index, webhook) in self.webhooks.iter().enumerate() {
            let key = |field: &str| format!("webhooks[{index}].{field}");
            if !webhook.url.starts_with("http://") && !webhook.url.starts_with("https://") {
                return Err(ConfigError::invalid(
                    key("url"),
                    format!("{:?} must start with http:// or https://", webhook.url),
                ));
            }
            if webhook.secret.is_empty() {
                return Err(ConfigError::invalid(key("secret"), "must not be empty"));
            }
            if !names.insert(webhook.effective_name()) {
                return Err(ConfigError::invalid(
                    key("name"),
                    format!("{:?} is used by an earlier webhook", webhook.effective_name()),
                ));
            }
            for (event_index, event) in webhook.events.iter().enumerate() {
                if !NOTIFICATION_KINDS.contains(&event.as_str()) {
                    return Err(ConfigError::invalid(
                        format!("webhooks[{index}].events[{event_index}]"),
                        format!("{event:?} is not one of {}", NOTIFICATION_KINDS.join(", ")),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The token whose hash matches `presented`, if any (constant-time per comparison).
    pub fn find_token(&self, presented: &str) -> Option<&TokenConfig> {
        find_token(&self.tokens, presented)
    }
}

/// The token among `tokens` whose hash matches `presented` (constant-time per comparison).
pub fn find_token<'a>(tokens: &'a [TokenConfig], presented: &str) -> Option<&'a TokenConfig> {
    let hash = hash_token(presented);
    tokens
        .iter()
        .find(|t| constant_time_eq(t.sha256.to_ascii_lowercase().as_bytes(), hash.as_bytes()))
}

/// Compares two byte strings without stopping at the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn invalid_key(text: &str) -> String {
        let config = Config::from_toml_str(text).unwrap();
        match config.validate() {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    #[test]
    fn exec_adapter_errors_name_the_key() {
        let exec = "[core]\nadapter = \"exec\"\n[core.exec]\nobserve = [\"/bin/sh\"]\n";
        assert_eq!(invalid_key(exec), "core.exec.power_on");
        let relative = format!("{exec}firmware_update = [\"flash.sh\"]\n");
        assert_eq!(invalid_key(&relative), "core.exec.firmware_update");
        let valid = format!("{exec}power_cycle = [\"/bin/sh\", \"-c\", \"exit 1\"]\n");
        Config::from_toml_str(&valid).unwrap().validate().unwrap();
        // HA mode: the exec adapter journals in PostgreSQL but needs an explicit work_dir.
        let ha = format!("[store]\nurl = \"postgres://steward@127.0.0.1/steward\"\n{valid}");
        assert_eq!(invalid_key(&ha), "core.exec.work_dir");
        let ha = format!("{ha}work_dir = \"/srv/steward/exec\"\n");
        Config::from_toml_str(&ha).unwrap().validate().unwrap();
    }

    #[test]
    fn redfish_runs_in_ha_mode() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let text = format!(
            "[store]\nurl = \"postgres://steward@127.0.0.1/steward\"\n[core]\nadapter = \"redfish\"\n\
             [core.redfish]\nusername = \"admin\"\npassword_file = {:?}\n\
             [[core.redfish.endpoints]]\nurl = \"http://127.0.0.1:1\"\nrack = \"r1\"\n",
            pw.display().to_string()
        );
        let config = Config::from_toml_str(&text).unwrap();
        config.validate().unwrap();
        assert_eq!(config.core.adapter, Adapter::Redfish);
    }

    #[test]
    fn empty_file_gives_defaults() {
        let config = Config::from_toml_str("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listen, "127.0.0.1:7070");
        assert_eq!(config.db, PathBuf::from("./steward.db"));
        config.validate().unwrap();
    }

    #[test]
    fn conflict_rules_replace_the_built_in_list_and_errors_name_the_rule() {
        let text = r#"
            [[planner.conflict_rules]]
            name = "firmware_next_to_power"
            a = { operations = ["firmware_update"] }
            b = { operations = ["power_cycle"], component_kinds = ["power_shelf"] }
            components = "disjoint"
            verdict = "compatible"
            [[planner.conflict_rules]]
            name = "everything_else"
            verdict = "conflict"
        "#;
        let config = Config::from_toml_str(text).unwrap();
        config.validate().unwrap();
        let rules = config.planner.conflict_rules.clone().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].components, steward_proto::ComponentOverlap::Disjoint);
        assert_eq!(rules[1].a, steward_proto::TaskMatcher::default(), "a side may be left out");

        let typo = text.replace("\"power_cycle\"", "\"power_cylce\"");
        assert_eq!(invalid_key(&typo), "planner.conflict_rules[0].b.operations[0]");
        let twice = text.replace("everything_else", "firmware_next_to_power");
        assert_eq!(invalid_key(&twice), "planner.conflict_rules[1].name");
        let unnamed = text.replace("\"everything_else\"", "\" \"");
        assert_eq!(invalid_key(&unnamed), "planner.conflict_rules[1].name");
        let unknown_key = text.replace("verdict = \"conflict\"", "verdict = \"conflict\"\nop = 1");
        let error = Config::from_toml_str(&unknown_key).unwrap_err().to_string();
        assert!(error.contains("op"), "{error}");
        let bad_verdict = text.replace("\"compatible\"", "\"fine\"");
        assert!(Config::from_toml_str(&bad_verdict).is_err());
    }

    #[test]
    fn full_file_parses() {
        let text = r#"
            listen = "127.0.0.1:0"
            db = "/tmp/x.db"
            synchronous = "normal"
            plan_interval_ms = 50
            status_max_age_seconds = 0
            [core]
            adapter = "sim"
            [core.sim]
            racks = 3
            [planner]
            global_max_parallel_racks = 8
            [[tokens]]
            name = "ops"
            role = "operator"
            sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
            [[webhooks]]
            url = "http://127.0.0.1:9/hook"
            secret = "s"
            events = ["run_status_changed"]
            [phase_mapping.words.compute]
            Frobnicating = "in_use"
            [phase_mapping.blocked]
            in_use = ["power_control"]
            [service_states]
            initial = "up"
            states = ["up", "down"]
            [service_states.transitions]
            up = ["down"]
            down = ["up"]
            [default_policy]
            max_parallel_racks = 4
            waves = { percentage = [10, 90] }
        "#;
        let config = Config::from_toml_str(text).unwrap();
        config.validate().unwrap();
        assert_eq!(config.synchronous, SynchronousSetting::Normal);
        assert_eq!(config.tokens[0].role, Role::Operator);
        assert_eq!(config.core.sim.get("racks").and_then(|v| v.as_integer()), Some(3));
        assert_eq!(config.default_policy.unwrap().max_parallel_racks, 4);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml_str("listne = \"x\"").unwrap_err().to_string();
        assert!(err.contains("listne"), "{err}");
        let err = Config::from_toml_str("[[tokens]]\nname=\"a\"\nrole=\"root\"\nsha256=\"\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("root") && err.contains("role"), "{err}");
        let err = Config::from_toml_str("[default_policy]\nmax_paralel_racks = 2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_paralel_racks"), "{err}");
    }

    #[test]
    fn semantic_errors_name_the_key() {
        assert_eq!(invalid_key("listen = \"nope\""), "listen");
        let local = Config { listen: "localhost:7070".into(), ..Config::default() };
        assert!(local.listen_addr().unwrap().ip().is_loopback());
        assert_eq!(invalid_key("listen = \"0.0.0.0:7070\""), "listen");
        assert_eq!(invalid_key("plan_interval_ms = 0"), "plan_interval_ms");
        assert_eq!(invalid_key("webhook_max_attempts = 0"), "webhook_max_attempts");
        assert_eq!(
            invalid_key("[[tokens]]\nname = \"a\"\nrole = \"admin\"\nsha256 = \"abc\""),
            "tokens[0].sha256"
        );
        assert_eq!(
            invalid_key("[[webhooks]]\nurl = \"ftp://x\"\nsecret = \"s\""),
            "webhooks[0].url"
        );
        assert_eq!(
            invalid_key(
                "[[webhooks]]\nurl = \"http://x\"\nsecret = \"s\"\nevents = [\"run_status_changed\", \"x\"]"
            ),
            "webhooks[0].events[1]"
        );
        assert_eq!(
            invalid_key("[default_policy]\nwaves = { percentage = [10, 20] }"),
            "default_policy.waves.percentage"
        );
        assert_eq!(
            invalid_key("[service_states]\ninitial = \"x\"\nstates = [\"y\"]\ntransitions = {}"),
            "service_states"
        );
        assert_eq!(
            invalid_key("[planner]\nglobal_max_parallel_racks = 0"),
            "planner.global_max_parallel_racks"
        );
    }

    #[test]
    fn non_loopback_is_fine_with_tokens() {
        let text = format!(
            "listen = \"0.0.0.0:7070\"\n[[tokens]]\nname = \"a\"\nrole = \"viewer\"\nsha256 = \"{}\"",
            hash_token("secret")
        );
        let config = Config::from_toml_str(&text).unwrap();
        config.validate().unwrap();
        assert_eq!(config.find_token("secret").map(|t| t.name.as_str()), Some("a"));
        assert!(config.find_token("other").is_none());
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }
}
