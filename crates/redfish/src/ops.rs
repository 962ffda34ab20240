//! One step: an operation on one system, journaled before every request and verified on the BMC.
//!
//! Before a Reset or SimpleUpdate leaves, its name is appended to the step's `sent` list and the
//! step is committed to the journal. A step that finds an action already in `sent` (a crash or
//! an ambiguous failure after that commit) never sends it again: it reads `PowerState` or the
//! version and decides from what the BMC shows.
//!
//! Cancel is checked before a step's first request: a step that has sent nothing when its task is
//! cancelled ends `Cancelled` without sending anything; a step that already sent a request is in
//! flight and finishes (a `power_cycle` done as ForceOff then On still sends its On, so a cancel
//! never leaves a machine off half-way through a cycle).

use crate::client::{ActionInfo, Bmc, BmcError, ComputerSystem, MonitorReply};
use crate::fleet::{EndpointState, SystemRef};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use steward_proto::Operation;

/// First delay between power-state polls; doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(250);
/// Longest delay between polls.
const MAX_POLL: Duration = Duration::from_secs(2);
/// How long a cycle whose `PowerState` never leaves On is watched before it counts.
const CYCLE_UNSEEN_GRACE: Duration = Duration::from_secs(15);

/// The journaled part of a step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepData {
    /// Actions that were committed as about to leave (they may have reached the BMC).
    #[serde(default)]
    pub sent: Vec<String>,
    /// The last message (result or failure).
    #[serde(default)]
    pub message: String,
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The BMC shows the result.
    Done(String),
    /// It does not; the BMC's message.
    Failed(String),
    /// The task was cancelled before the step sent anything; nothing was sent.
    Cancelled(String),
}

/// Why a step stopped early.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stop {
    /// It failed, with the BMC's message.
    Failed(String),
    /// The task was cancelled before its first request left.
    Cancelled(String),
}

impl From<String> for Stop {
    fn from(message: String) -> Self {
        Stop::Failed(message)
    }
}

impl From<&str> for Stop {
    fn from(message: &str) -> Self {
        Stop::Failed(message.to_string())
    }
}

/// What a step needs: the system, its endpoint, limits and a way to journal.
pub struct StepContext<'a> {
    /// The system.
    pub system: &'a SystemRef,
    /// Its endpoint.
    pub endpoint: &'a EndpointState,
    /// Power settle limit.
    pub power_settle: Duration,
    /// Firmware limit.
    pub firmware_timeout: Duration,
    /// Image URI template.
    pub image_uri: Option<&'a str>,
    /// Journals `data` (committed when it returns `Ok`).
    pub journal: &'a (dyn Fn(&StepData) -> Result<(), String> + Send + Sync),
    /// Whether the task has been cancelled (checked before the step's first request).
    pub cancelled: &'a (dyn Fn() -> bool + Send + Sync),
}

impl StepContext<'_> {
    fn bmc(&self) -> &Bmc {
        &self.endpoint.bmc
    }

    async fn read(&self) -> Result<ComputerSystem, BmcError> {
        self.bmc().get(&self.system.path).await
    }

    /// Records `action` as sent, then sends it (once). Errors after the journal write are
    /// returned for the caller to verify, never to retry. The step's first request is not sent
    /// when the task has been cancelled.
    async fn send_once(
        &self,
        data: &mut StepData,
        action: &str,
        path: &str,
        body: serde_json::Value,
    ) -> Result<Result<crate::client::PostReply, BmcError>, Stop> {
        if data.sent.is_empty() && (self.cancelled)() {
            return Err(Stop::Cancelled(format!("cancelled before {action} was sent")));
        }
        data.sent.push(action.to_string());
        (self.journal)(data)?;
        Ok(self.bmc().post(path, &body).await)
    }
}

/// Runs `operation` on one system, resuming from `data`.
pub async fn run_step(
    ctx: &StepContext<'_>,
    operation: &Operation,
    data: &mut StepData,
) -> Outcome {
    let result = match operation {
        Operation::PowerOn => power_to(ctx, data, "On", &["On", "ForceOn"]).await,
        Operation::PowerOff => power_to(ctx, data, "Off", &["ForceOff", "GracefulShutdown"]).await,
        Operation::PowerCycle => power_cycle(ctx, data).await,
        Operation::FirmwareUpdate { version, .. } => firmware(ctx, data, version).await,
    };
    match result {
        Ok(message) => Outcome::Done(message),
        Err(Stop::Failed(message)) => Outcome::Failed(message),
        Err(Stop::Cancelled(message)) => Outcome::Cancelled(message),
    }
}

/// The reset types the system offers: the inline list and its ActionInfo, united.
async fn allowed_resets(ctx: &StepContext<'_>, system: &ComputerSystem) -> (String, Vec<String>) {
    let reset = system.actions.reset.clone().unwrap_or_default();
    let target = reset
        .target
        .clone()
        .unwrap_or_else(|| format!("{}/Actions/ComputerSystem.Reset", ctx.system.path));
    let mut allowed = reset.allowed.clone();
    if let Some(info) = &reset.action_info
        && let Ok(info) = ctx.bmc().get::<ActionInfo>(info).await
    {
        for parameter in info.parameters.into_iter().filter(|p| p.name == "ResetType") {
            allowed.extend(parameter.allowable_values);
        }
    }
    allowed.sort();
    allowed.dedup();
    (target, allowed)
}

fn choose<'a>(candidates: &[&'a str], allowed: &[String]) -> Option<&'a str> {
    // sushy's rule: an absent list allows everything; otherwise the first offered candidate.
    if allowed.is_empty() {
        return candidates.first().copied();
    }
    candidates.iter().copied().find(|c| allowed.iter().any(|a| a == c))
}

fn no_reset(wanted: &[&str], allowed: &[String]) -> String {
    format!(
        "the BMC offers none of the reset types [{}]; it allows [{}]",
        wanted.join(", "),
        allowed.join(", ")
    )
}

async fn power_to(
    ctx: &StepContext<'_>,
    data: &mut StepData,
    target: &str,
    candidates: &[&str],
) -> Result<String, Stop> {
    let system = ctx.read().await.map_err(|e| e.to_string())?;
    if data.sent.iter().any(|a| candidates.contains(&a.as_str())) {
        return wait_power(ctx, target, "verified after an earlier attempt (not re-sent)").await;
    }
    if system.power_state.as_deref() == Some(target) {
        return Ok(format!("PowerState already {target}"));
    }
    let (path, allowed) = allowed_resets(ctx, &system).await;
    let action = choose(candidates, &allowed).ok_or_else(|| no_reset(candidates, &allowed))?;
    reset(ctx, data, &path, action).await?;
    wait_power(ctx, target, &format!("{action} sent")).await
}

/// Sends one Reset; a definite refusal fails the step, an ambiguous failure is left to the
/// verification that follows.
async fn reset(
    ctx: &StepContext<'_>,
    data: &mut StepData,
    path: &str,
    action: &str,
) -> Result<(), Stop> {
    let body = serde_json::json!({ "ResetType": action });
    match ctx.send_once(data, action, path, body).await? {
        Ok(_) => Ok(()),
        Err(error) if error.is_unreachable() => {
            tracing::warn!(system = %ctx.system.spec.id, %error, action,
                "reset outcome unknown; verifying, not re-sending");
            Ok(())
        }
        Err(BmcError::Unsupported(message)) => {
            Err(format!("{action} not supported: {message}").into())
        }
        Err(error) => Err(format!("{action} refused: {error}").into()),
    }
}

async fn power_cycle(ctx: &StepContext<'_>, data: &mut StepData) -> Result<String, Stop> {
    let single = ["PowerCycle", "ForceRestart"];
    if data.sent.iter().any(|a| single.contains(&a.as_str())) {
        return wait_power(ctx, "On", "verified after an earlier attempt (not re-sent)").await;
    }
    let system = ctx.read().await.map_err(|e| e.to_string())?;
    let (path, allowed) = allowed_resets(ctx, &system).await;
    let off_sent = data.sent.iter().any(|a| a == "ForceOff");
    if !off_sent && let Some(action) = choose(&single, &allowed).filter(|_| !allowed.is_empty()) {
        let started = Instant::now();
        reset(ctx, data, &path, action).await?;
        return wait_cycle(ctx, action, started).await;
    }
    // No single cycle offered: ForceOff, wait for Off, then On.
    for needed in ["ForceOff", "On"] {
        if !allowed.is_empty() && !allowed.iter().any(|a| a == needed) {
            return Err(no_reset(&["PowerCycle", "ForceRestart", "ForceOff+On"], &allowed).into());
        }
    }
    if !off_sent && system.power_state.as_deref() != Some("Off") {
        reset(ctx, data, &path, "ForceOff").await?;
    }
    wait_power(ctx, "Off", "ForceOff").await?;
    if !data.sent.iter().any(|a| a == "On") {
        reset(ctx, data, &path, "On").await?;
    }
    wait_power(ctx, "On", "ForceOff, then On sent").await
}

/// Done when the system reads On after having read something else, or reads On throughout
/// for [`CYCLE_UNSEEN_GRACE`] (BMCs whose PowerState never visibly leaves On).
async fn wait_cycle(ctx: &StepContext<'_>, action: &str, started: Instant) -> Result<String, Stop> {
    let mut left_on = false;
    let mut delay = FIRST_POLL;
    loop {
        let power = ctx.read().await.ok().and_then(|s| s.power_state);
        match power.as_deref() {
            Some("On") if left_on => {
                return Ok(format!("{action} sent; PowerState went Off, then On"));
            }
            Some("On") if started.elapsed() >= CYCLE_UNSEEN_GRACE => {
                return Ok(format!("{action} sent; PowerState On (never seen leaving On)"));
            }
            Some("On") | None => {}
            Some(_) => left_on = true,
        }
        if started.elapsed() >= ctx.power_settle {
            return Err(format!(
                "{action} sent; PowerState is {} after {} s, not On",
                power.unwrap_or_else(|| "unreadable".into()),
                ctx.power_settle.as_secs()
            )
            .into());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_POLL);
    }
}

async fn wait_power(ctx: &StepContext<'_>, target: &str, what: &str) -> Result<String, Stop> {
    let started = Instant::now();
    let mut delay = FIRST_POLL;
    loop {
        let read = ctx.read().await;
        let power = match &read {
            Ok(system) => system.power_state.clone(),
            Err(BmcError::NotFound(_)) => return Err("system vanished (404)".into()),
            Err(_) => None,
        };
        if power.as_deref() == Some(target) {
            return Ok(format!("{what}; PowerState {target}"));
        }
        if started.elapsed() >= ctx.power_settle {
            let shown = match (power, read) {
                (Some(power), _) => power,
                (None, Err(error)) => format!("unreadable ({error})"),
                (None, Ok(_)) => "absent".into(),
            };
            return Err(format!(
                "{what}; PowerState is {shown} after {} s, not {target}",
                ctx.power_settle.as_secs()
            )
            .into());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_POLL);
    }
}

async fn firmware(
    ctx: &StepContext<'_>,
    data: &mut StepData,
    version: &str,
) -> Result<String, Stop> {
    let system = ctx.read().await.map_err(|e| e.to_string())?;
    if data.sent.iter().any(|a| a == "SimpleUpdate") {
        return wait_version(ctx, version, "verified after an earlier attempt (not re-sent)").await;
    }
    if system.bios_version.as_deref() == Some(version) {
        return Ok(format!("version already {version}"));
    }
    let template = ctx.image_uri.ok_or("core.redfish.firmware_image_uri is not configured")?;
    let image = template.replace("{kind}", ctx.system.kind.as_str()).replace("{version}", version);
    let service = ctx.endpoint.update_service().await.map_err(|e| e.to_string())?;
    let path = format!("{service}/Actions/UpdateService.SimpleUpdate");
    let body = serde_json::json!({ "ImageURI": image, "Targets": [ctx.system.path] });
    match ctx.send_once(data, "SimpleUpdate", &path, body).await? {
        Ok(reply) => {
            if let Some(monitor) = reply.location {
                follow_monitor(ctx, &monitor).await?;
            }
        }
        Err(error) if error.is_unreachable() => {
            tracing::warn!(system = %ctx.system.spec.id, %error,
                "SimpleUpdate outcome unknown; verifying, not re-sending");
        }
        Err(error) => return Err(format!("SimpleUpdate refused: {error}").into()),
    }
    wait_version(ctx, version, "SimpleUpdate sent").await
}

/// Follows a task monitor until the task ends. A Task body decides by its `TaskState`
/// (Completed without a Critical status is success; Exception, Killed, Cancelled or Interrupted
/// fail the step with the task's messages); without one, 202 means still running and any other
/// 2xx means the operation ended. A vanished monitor, or one that outlives the firmware limit,
/// leaves the decision to the version read back.
async fn follow_monitor(ctx: &StepContext<'_>, monitor: &str) -> Result<(), String> {
    let started = Instant::now();
    let mut delay = FIRST_POLL;
    while started.elapsed() < ctx.firmware_timeout {
        match ctx.bmc().get_task(monitor).await {
            Err(BmcError::NotFound(_)) => return Ok(()),
            Err(error) if error.is_unreachable() => {}
            Err(error) => return Err(format!("task monitor {monitor}: {error}")),
            Ok(MonitorReply { task: Some(task), .. }) => match task.task_state.as_deref() {
                Some("Completed") if task.task_status.as_deref() != Some("Critical") => {
                    return Ok(());
                }
                Some("Completed" | "Exception" | "Killed" | "Cancelled" | "Interrupted") => {
                    let messages: Vec<_> =
                        task.messages.iter().filter_map(|m| m.message.clone()).collect();
                    return Err(format!(
                        "firmware task ended {} ({}): {}",
                        task.task_state.unwrap_or_default(),
                        task.task_status.unwrap_or_default(),
                        messages.join("; ")
                    ));
                }
                _ => {}
            },
            Ok(MonitorReply { status: 202, task: None }) => {}
            Ok(MonitorReply { task: None, .. }) => return Ok(()),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_POLL);
    }
    Ok(())
}

async fn wait_version(ctx: &StepContext<'_>, version: &str, what: &str) -> Result<String, Stop> {
    let started = Instant::now();
    let mut delay = FIRST_POLL;
    loop {
        let current = ctx.read().await.ok().and_then(|s| s.bios_version);
        if current.as_deref() == Some(version) {
            return Ok(format!("{what}; version {version} read back"));
        }
        if started.elapsed() >= ctx.firmware_timeout {
            return Err(format!(
                "{what}; the BMC reports version {}, not {version}",
                current.unwrap_or_else(|| "none".into())
            )
            .into());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_choice_follows_the_allowed_list() {
        let allowed: Vec<String> = ["On", "ForceOff", "ForceRestart"].map(String::from).to_vec();
        assert_eq!(choose(&["PowerCycle", "ForceRestart"], &allowed), Some("ForceRestart"));
        assert_eq!(choose(&["GracefulShutdown"], &allowed), None);
        assert_eq!(choose(&["On"], &[]), Some("On"));
        assert!(no_reset(&["PowerCycle"], &allowed).contains("ForceRestart"));
    }
}
