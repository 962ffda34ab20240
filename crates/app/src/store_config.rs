//! The `[store]` section of the config: where state lives (an SQLite file by default, or a
//! PostgreSQL database shared by a leader and its standbys) and the leadership timings.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Default interval at which a standby tries for leadership and a leader pings its lock.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 1000;
/// Default server-side idle timeout of the lock session: how long a paused leader keeps it.
pub const DEFAULT_LOCK_SESSION_TIMEOUT_MS: u64 = 5000;

/// `[store]`: `path` (SQLite, the same as the top-level `db`) or `url` (PostgreSQL).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// SQLite file (overrides the top-level `db`).
    pub path: Option<PathBuf>,
    /// PostgreSQL URL, e.g. `postgres://steward@127.0.0.1:5432/steward`: several instances may
    /// share it; one leads, the others stand by.
    pub url: Option<String>,
    /// How often a standby tries for leadership and the leader checks it still leads.
    pub poll_interval_ms: u64,
    /// The lock session's server-side idle timeout (must exceed `poll_interval_ms`).
    pub lock_session_timeout_ms: u64,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            path: None,
            url: None,
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
            lock_session_timeout_ms: DEFAULT_LOCK_SESSION_TIMEOUT_MS,
        }
    }
}

impl StoreSection {
    /// Checks the timings and that at most one of `path` and `url` is set; errors name the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.path.is_some() && self.url.is_some() {
            return Err((
                "store.url".into(),
                "set either store.path or store.url, not both".into(),
            ));
        }
        if let Some(url) = &self.url
            && !url.starts_with("postgres://")
            && !url.starts_with("postgresql://")
        {
            return Err((
                "store.url".into(),
                "must start with postgres:// or postgresql://".into(),
            ));
        }
        if self.poll_interval_ms == 0 {
            return Err(("store.poll_interval_ms".into(), "must be at least 1".into()));
        }
        if self.lock_session_timeout_ms <= self.poll_interval_ms {
            return Err((
                "store.lock_session_timeout_ms".into(),
                format!("must exceed store.poll_interval_ms ({})", self.poll_interval_ms),
            ));
        }
        Ok(())
    }
}
