//! Site hooks: definitions from the server's config (never from a request), the check that a
//! run names only defined hooks, and the runner that executes a [`HookCall`] after the commit
//! that recorded it and reports its start and end back to the reducer.
//!
//! Crash safety comes from the pure core: a target running a hook keeps the hook (with its
//! stable invocation id) in its row, so recovery runs it again; a hook that reported moved its
//! target on and is never run again for that attempt. Hooks must therefore be idempotent.

mod exec;
#[cfg(feature = "webhooks")]
mod http;
pub mod process;

use crate::protocol::{CommandError, ReducerInput};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use steward_proto::{FieldError, HookRefs, ValidationErrors};
use steward_state_machine::HookCall;
use tokio::sync::mpsc;

/// One `[[hooks]]` entry of the server's config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookConfig {
    /// The name runs reference.
    pub name: String,
    /// What it runs.
    pub kind: HookKind,
    /// Longest run; an exec hook's process group is killed after it.
    pub timeout: Duration,
}

/// What a hook runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HookKind {
    /// A process, no shell: argv with `{rack}`, `{run}`, `{target}`, `{attempt}` replaced.
    Exec {
        /// Program and arguments.
        argv: Vec<String>,
    },
    /// An HTTP call with the target JSON as body, signed like webhooks when `secret` is set.
    Http {
        /// The URL (plain http).
        url: String,
        /// The method (default POST).
        method: String,
        /// HMAC secret for `X-Steward-Signature` (never logged).
        secret: Option<String>,
    },
}

/// What a hook said: success and the message the target shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HookOutcome {
    pub ok: bool,
    pub message: String,
}

/// The names runs may reference.
pub(crate) fn names(hooks: &[HookConfig]) -> BTreeSet<String> {
    hooks.iter().map(|hook| hook.name.clone()).collect()
}

/// Every hook a run's policy names must be defined in the server's config: a 400 naming the
/// field (e.g. `policy.hooks.pre[0]`) otherwise.
pub(crate) fn validate_names(
    refs: &HookRefs,
    known: &BTreeSet<String>,
) -> Result<(), CommandError> {
    let errors: Vec<FieldError> = refs
        .named("policy.hooks")
        .into_iter()
        .filter(|(_, name)| !known.contains(*name))
        .map(|(field, name)| {
            FieldError::new(
                field,
                format!("unknown hook {name:?}: hooks are defined in the server's config"),
            )
        })
        .collect();
    ValidationErrors::from_vec(errors).map_err(CommandError::Invalid)
}

/// Runs hook calls by name.
#[derive(Clone, Debug, Default)]
pub(crate) struct HookRunner {
    hooks: Arc<BTreeMap<String, HookConfig>>,
}

impl HookRunner {
    /// A runner over the config's hooks.
    pub(crate) fn new(hooks: &[HookConfig]) -> Self {
        let map = hooks.iter().map(|hook| (hook.name.clone(), hook.clone())).collect();
        Self { hooks: Arc::new(map) }
    }

    /// Reports the start, runs the hook, reports the end. A hook missing from the config (a
    /// run created under an older config) fails its target with a message saying so.
    pub(crate) async fn run(&self, call: HookCall, reducer: mpsc::Sender<ReducerInput>) {
        let target_id = call.target.id.clone();
        let invocation_id = call.invocation_id.clone();
        let started = ReducerInput::HookStarted {
            target_id: target_id.clone(),
            invocation_id: invocation_id.clone(),
        };
        if reducer.send(started).await.is_err() {
            return;
        }
        let outcome = match self.hooks.get(&call.hook) {
            Some(hook) => run_one(hook, &call).await,
            None => HookOutcome {
                ok: false,
                message: format!("hook {:?} is not defined in the server's config", call.hook),
            },
        };
        tracing::info!(hook = %call.hook, target = %target_id, invocation = %invocation_id, ok = outcome.ok, "hook finished");
        let finished = ReducerInput::HookFinished {
            target_id,
            invocation_id,
            ok: outcome.ok,
            message: outcome.message,
        };
        let _ = reducer.send(finished).await;
    }
}

async fn run_one(hook: &HookConfig, call: &HookCall) -> HookOutcome {
    let input = hook_input(call);
    match &hook.kind {
        HookKind::Exec { argv } => exec::run(argv, call, &input, hook.timeout).await,
        #[cfg(feature = "webhooks")]
        HookKind::Http { url, method, secret } => {
            http::run(url, method, secret.as_deref(), &input, hook.timeout).await
        }
        #[cfg(not(feature = "webhooks"))]
        HookKind::Http { .. } => HookOutcome {
            ok: false,
            message: "http hooks need the webhooks feature of steward-runtime".into(),
        },
    }
}

/// The JSON a hook reads (stdin or request body): the target plus the invocation's facts.
fn hook_input(call: &HookCall) -> String {
    let document = serde_json::json!({
        "hook": call.hook,
        "phase": call.phase,
        "invocation_id": call.invocation_id,
        "attempt": call.attempt,
        "target": call.target,
    });
    document.to_string()
}

/// The last non-empty line of `text`, trimmed and capped, for the target's message.
pub(crate) fn last_line(text: &str) -> String {
    const CAP: usize = 512;
    let line = text.lines().rev().map(str::trim).find(|line| !line.is_empty()).unwrap_or("");
    match line.char_indices().nth(CAP) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}
