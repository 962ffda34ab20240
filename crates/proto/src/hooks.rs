//! Hooks as runs see them: the names a run policy references (`"hooks": {"pre": [...],
//! "post": [...]}`) and the hook a target is running. Hook definitions (what a name runs) live
//! in the server's config only; a request body can never define a command.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The hooks a run names, in the order they run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct HookRefs {
    /// Run before each rack's Core task (e.g. drain); a failure fails the target with no Core
    /// call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre: Vec<String>,
    /// Run after each rack's Core task completed (e.g. validate); a failure fails the target.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post: Vec<String>,
}

impl HookRefs {
    /// Whether no hook is named.
    pub fn is_empty(&self) -> bool {
        self.pre.is_empty() && self.post.is_empty()
    }

    /// The names of `phase`.
    pub fn of(&self, phase: HookPhase) -> &[String] {
        match phase {
            HookPhase::Pre => &self.pre,
            HookPhase::Post => &self.post,
        }
    }

    /// Every named hook with its field path under `prefix` (e.g. `policy.hooks.pre[0]`).
    pub fn named(&self, prefix: &str) -> Vec<(String, &str)> {
        let pre = self.pre.iter().enumerate().map(|(i, n)| (format!("{prefix}.pre[{i}]"), n));
        let post = self.post.iter().enumerate().map(|(i, n)| (format!("{prefix}.post[{i}]"), n));
        pre.chain(post).map(|(field, name)| (field, name.as_str())).collect()
    }
}

/// Before or after the Core task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HookPhase {
    /// Before the task (the target is `pre_hooks`).
    Pre,
    /// After the task completed (the target is `post_hooks`).
    Post,
}

impl HookPhase {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            HookPhase::Pre => "pre",
            HookPhase::Post => "post",
        }
    }
}

impl fmt::Display for HookPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hook a target is running (or about to run): visible on the target while it is
/// `pre_hooks` or `post_hooks`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HookRun {
    /// Before or after the task.
    pub phase: HookPhase,
    /// Position in the policy's list of that phase, from 0.
    pub index: u32,
    /// The hook's name (from the server's config).
    pub name: String,
    /// Stable id of this invocation: the same for every execution of this hook for this
    /// attempt (a re-run after a crash keeps it), so a site script can tell.
    pub invocation_id: String,
    /// Since when the target waits on this hook.
    pub since: DateTime<Utc>,
    /// How many times the runner started it (more than 1 after a crash re-ran it).
    #[serde(default)]
    pub starts: u32,
}

/// The stable invocation id of hook `index` of `phase` for the attempt whose idempotency key is
/// `key`.
pub fn invocation_id(key: &str, phase: HookPhase, index: u32) -> String {
    format!("{key}/{phase}/{index}")
}
