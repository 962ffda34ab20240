//! The target machine: one rack within one run, from `pending` through claim, submission and
//! the task's outcome, with leases, conflict backoff, retries, skip and cancel.
//!
//! Decisions recorded here (DESIGN §3.5 leaves them open):
//! - `failed` is terminal and absorbing. A failure with attempts left never enters `failed`: the
//!   target goes straight back to `pending` with the next attempt and `retry_after = now +
//!   retry_backoff_seconds`. That is how DESIGN's "failed -> pending when attempt < max_attempts"
//!   is realised, and why `submitted --task_finished--> pending` and
//!   `claimed --submit_rejected--> pending` are rows of the table.
//! - The conflict backoff (`conflict_delay_seconds`) starts at `initial_delay_seconds`, doubles on
//!   every further conflict up to `max_delay_seconds`, never shrinks and is never reset (not by a
//!   claim, not by a submission), so a rack that keeps conflicting keeps its long delay.
//!   `blocked_since` is the first conflict of the current streak; it is cleared on submission.
//! - `set_hold` is not a status change: it only replaces `hold` (and `updated_at`); the target's
//!   `message` keeps explaining the last status change. An identical hold is a no-op.
//! - Cancelling a submitted target keeps it `submitted` and asks Core to cancel the task; the
//!   target ends when the task reports `terminated` (or whatever it finished with).
//! - Hooks (issue 12): a claim with pre hooks enters `pre_hooks` instead of `claimed` (no lease:
//!   a hook may run for minutes); when the last pre hook succeeds the target becomes `claimed`
//!   with a fresh lease and the submission. A completed task with post hooks enters
//!   `post_hooks`; the last success completes the target. A failing hook fails the attempt like
//!   a failed task (retried per `max_attempts`). The target keeps its current hook with a stable
//!   invocation id (idempotency key + phase + position), so recovery re-runs a hook in flight
//!   and a report for any other invocation is refused. Cancel: `pre_hooks -> skipped`,
//!   `post_hooks -> terminated` (the task ran but its validation was cut short).

use crate::effect::{Effect, HookCall, SubmitTask};
use crate::error::Rejected;
use crate::machine::{Machine, Row, guard, require_pair, require_row, row};
use std::fmt;
use steward_proto::{
    Hold, HookPhase, HookRun, IdempotencyKey, Operation, Target, TargetStatus, TaskId, TaskStatus,
    Timestamp,
};

/// The submission of a claimed target: the run's operation over the target's components, under
/// the key of its current attempt. Claiming emits it; recovery re-issues it.
pub fn submission(target: &Target, operation: &Operation) -> SubmitTask {
    SubmitTask {
        run_id: target.run_id.clone(),
        operation: operation.clone(),
        target_id: target.id.clone(),
        rack_id: target.rack_id.clone(),
        components: target.components.clone(),
        idempotency_key: idempotency_key(target),
    }
}

/// An event the target machine accepts.
#[derive(Clone, Debug, PartialEq)]
pub enum TargetEvent {
    /// pending/blocked -> claimed under a lease until `lease_until`; emits the task submission.
    Claim {
        /// End of the claim lease.
        lease_until: Timestamp,
        /// The run's operation, carried into the submission.
        operation: Operation,
        /// The run's first pre hook: when set, the target enters `pre_hooks` and the
        /// submission waits until every pre hook has succeeded.
        pre_hook: Option<String>,
    },
    /// claimed -> submitted: Core accepted the task.
    Submitted {
        /// Core's task id.
        task_id: TaskId,
    },
    /// claimed -> blocked: Core reported a rack conflict.
    Conflict {
        /// Core's message.
        message: String,
        /// First backoff (policy `conflict_retry.initial_delay_seconds`).
        initial_delay_seconds: u64,
        /// Backoff cap (policy `conflict_retry.max_delay_seconds`).
        max_delay_seconds: u64,
    },
    /// claimed -> pending: the lease ran out with nothing submitted.
    LeaseExpired,
    /// claimed -> failed, or pending with the next attempt: Core refused the request.
    SubmitRejected {
        /// Core's message.
        message: String,
        /// Policy `max_attempts`.
        max_attempts: u32,
        /// Policy `retry_backoff_seconds`.
        retry_backoff_seconds: u64,
    },
    /// submitted -> completed | terminated | failed, or pending with the next attempt.
    TaskFinished {
        /// The task's terminal status.
        status: TaskStatus,
        /// Core's message.
        message: String,
        /// Policy `max_attempts`.
        max_attempts: u32,
        /// Policy `retry_backoff_seconds`.
        retry_backoff_seconds: u64,
        /// The run's first post hook: a completed task then enters `post_hooks`.
        post_hook: Option<String>,
    },
    /// pre_hooks/post_hooks self-loop: the runner started the current hook (again, after a
    /// crash).
    HookStarted {
        /// Must be the current hook's invocation id.
        invocation_id: String,
    },
    /// The current hook reported. Success moves to the next hook of the phase, or out of it
    /// (pre: claimed with the submission; post: completed); failure fails the attempt.
    HookFinished {
        /// Must be the current hook's invocation id.
        invocation_id: String,
        /// Exit 0 / 2xx.
        ok: bool,
        /// The hook's last line of output, or why it failed.
        message: String,
        /// The next hook of the same phase, if any.
        next_hook: Option<String>,
        /// End of the claim lease once the pre hooks are done.
        lease_until: Timestamp,
        /// The run's operation, for the submission after the pre hooks.
        operation: Operation,
        /// Policy `max_attempts`.
        max_attempts: u32,
        /// Policy `retry_backoff_seconds`.
        retry_backoff_seconds: u64,
    },
    /// pending -> skipped by policy.
    Skip {
        /// Why (names the gate and the component).
        reason: String,
    },
    /// The run was cancelled: pending/claimed/blocked -> skipped; submitted stays submitted and
    /// its task gets a cancel request.
    Cancel {
        /// Why.
        reason: String,
    },
    /// The planner's hold changed (self-loop on pending and blocked).
    SetHold {
        /// The new hold (`None` clears it).
        hold: Option<Hold>,
    },
}

/// Target event kinds, without data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetEventKind {
    /// [`TargetEvent::Claim`].
    Claim,
    /// [`TargetEvent::Submitted`].
    Submitted,
    /// [`TargetEvent::Conflict`].
    Conflict,
    /// [`TargetEvent::LeaseExpired`].
    LeaseExpired,
    /// [`TargetEvent::SubmitRejected`].
    SubmitRejected,
    /// [`TargetEvent::TaskFinished`].
    TaskFinished,
    /// [`TargetEvent::Skip`].
    Skip,
    /// [`TargetEvent::Cancel`].
    Cancel,
    /// [`TargetEvent::SetHold`].
    SetHold,
    /// [`TargetEvent::HookStarted`].
    HookStarted,
    /// [`TargetEvent::HookFinished`].
    HookFinished,
}

impl TargetEventKind {
    /// Every kind, in declaration order.
    pub const ALL: &'static [TargetEventKind] = &[
        TargetEventKind::Claim,
        TargetEventKind::Submitted,
        TargetEventKind::Conflict,
        TargetEventKind::LeaseExpired,
        TargetEventKind::SubmitRejected,
        TargetEventKind::TaskFinished,
        TargetEventKind::Skip,
        TargetEventKind::Cancel,
        TargetEventKind::SetHold,
        TargetEventKind::HookStarted,
        TargetEventKind::HookFinished,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetEventKind::Claim => "claim",
            TargetEventKind::Submitted => "submitted",
            TargetEventKind::Conflict => "conflict",
            TargetEventKind::LeaseExpired => "lease_expired",
            TargetEventKind::SubmitRejected => "submit_rejected",
            TargetEventKind::TaskFinished => "task_finished",
            TargetEventKind::Skip => "skip",
            TargetEventKind::Cancel => "cancel",
            TargetEventKind::SetHold => "set_hold",
            TargetEventKind::HookStarted => "hook_started",
            TargetEventKind::HookFinished => "hook_finished",
        }
    }
}

impl fmt::Display for TargetEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TargetEvent {
    /// The event's kind.
    pub fn kind(&self) -> TargetEventKind {
        match self {
            TargetEvent::Claim { .. } => TargetEventKind::Claim,
            TargetEvent::Submitted { .. } => TargetEventKind::Submitted,
            TargetEvent::Conflict { .. } => TargetEventKind::Conflict,
            TargetEvent::LeaseExpired => TargetEventKind::LeaseExpired,
            TargetEvent::SubmitRejected { .. } => TargetEventKind::SubmitRejected,
            TargetEvent::TaskFinished { .. } => TargetEventKind::TaskFinished,
            TargetEvent::Skip { .. } => TargetEventKind::Skip,
            TargetEvent::Cancel { .. } => TargetEventKind::Cancel,
            TargetEvent::SetHold { .. } => TargetEventKind::SetHold,
            TargetEvent::HookStarted { .. } => TargetEventKind::HookStarted,
            TargetEvent::HookFinished { .. } => TargetEventKind::HookFinished,
        }
    }
}

use TargetEventKind as K;
use TargetStatus as S;

/// The target machine's transition table. Several rows with the same (from, event) mean the
/// event's data decides the outcome (e.g. `task_finished`).
pub const TARGET_ROWS: &[Row<TargetStatus, TargetEventKind>] = &[
    row(S::Pending, K::Claim, S::Claimed),
    row(S::Blocked, K::Claim, S::Claimed),
    row(S::Claimed, K::Submitted, S::Submitted),
    row(S::Claimed, K::Conflict, S::Blocked),
    row(S::Claimed, K::LeaseExpired, S::Pending),
    row(S::Claimed, K::SubmitRejected, S::Failed),
    row(S::Claimed, K::SubmitRejected, S::Pending),
    row(S::Submitted, K::TaskFinished, S::Completed),
    row(S::Submitted, K::TaskFinished, S::Terminated),
    row(S::Submitted, K::TaskFinished, S::Failed),
    row(S::Submitted, K::TaskFinished, S::Pending),
    row(S::Pending, K::Skip, S::Skipped),
    row(S::Pending, K::Cancel, S::Skipped),
    row(S::Claimed, K::Cancel, S::Skipped),
    row(S::Blocked, K::Cancel, S::Skipped),
    row(S::Submitted, K::Cancel, S::Submitted),
    row(S::Pending, K::SetHold, S::Pending),
    row(S::Blocked, K::SetHold, S::Blocked),
    // Hooks: claim -> pre hooks -> claimed (submitting); task completed -> post hooks.
    row(S::Pending, K::Claim, S::PreHooks),
    row(S::Blocked, K::Claim, S::PreHooks),
    row(S::PreHooks, K::HookStarted, S::PreHooks),
    row(S::PreHooks, K::HookFinished, S::PreHooks),
    row(S::PreHooks, K::HookFinished, S::Claimed),
    row(S::PreHooks, K::HookFinished, S::Failed),
    row(S::PreHooks, K::HookFinished, S::Pending),
    row(S::PreHooks, K::Cancel, S::Skipped),
    row(S::Submitted, K::TaskFinished, S::PostHooks),
    row(S::PostHooks, K::HookStarted, S::PostHooks),
    row(S::PostHooks, K::HookFinished, S::PostHooks),
    row(S::PostHooks, K::HookFinished, S::Completed),
    row(S::PostHooks, K::HookFinished, S::Failed),
    row(S::PostHooks, K::HookFinished, S::Pending),
    row(S::PostHooks, K::Cancel, S::Terminated),
];

/// The target machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct TargetMachine;

/// `now + seconds`, saturating instead of panicking on absurd policy values.
pub(crate) fn add_seconds(now: Timestamp, seconds: u64) -> Timestamp {
    let delta = i64::try_from(seconds)
        .ok()
        .and_then(chrono::TimeDelta::try_seconds)
        .unwrap_or(chrono::TimeDelta::MAX);
    now.checked_add_signed(delta).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// A copy of `state` in `status` with `message`, stamped `now` (the old message is not cloned).
/// Inlined so the new target is built in place rather than copied through return slots.
#[inline(always)]
fn changed(state: &Target, status: TargetStatus, message: String, now: Timestamp) -> Target {
    Target {
        id: state.id.clone(),
        run_id: state.run_id.clone(),
        rack_id: state.rack_id.clone(),
        wave: state.wave,
        components: state.components.clone(),
        status,
        attempt: state.attempt,
        task_id: state.task_id.clone(),
        message,
        retry_after: state.retry_after,
        lease_until: state.lease_until,
        conflict_delay_seconds: state.conflict_delay_seconds,
        blocked_since: state.blocked_since,
        hold: state.hold.clone(),
        hook: state.hook.clone(),
        hooks_reported: state.hooks_reported.clone(),
        updated_at: now,
    }
}

/// `IdempotencyKey::for_attempt(run, target, attempt)` without the formatting machinery: the
/// key is built in a stack buffer (one allocation, for the key itself) because a claim is the
/// hottest step. Long ids fall back to the proto function; a test checks both agree.
pub fn idempotency_key(target: &Target) -> IdempotencyKey {
    const CAP: usize = 192;
    let run = target.run_id.as_str().as_bytes();
    let id = target.id.as_str().as_bytes();
    let mut digits = [0u8; 10];
    let mut n = target.attempt;
    let mut d = digits.len();
    loop {
        d -= 1;
        digits[d] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let attempt = &digits[d..];
    let len = run.len() + id.len() + attempt.len() + 2;
    if len > CAP {
        return IdempotencyKey::for_attempt(&target.run_id, &target.id, target.attempt);
    }
    let mut buf = [0u8; CAP];
    let mut at = 0;
    for part in [run, b"/", id, b"/", attempt] {
        buf[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    match std::str::from_utf8(&buf[..at]) {
        Ok(text) => IdempotencyKey::new(text),
        Err(_) => IdempotencyKey::for_attempt(&target.run_id, &target.id, target.attempt),
    }
}

/// The next conflict backoff: `initial` first, then doubling up to `max`; never below `current`
/// (so it never shrinks, even if a cap were lowered) and never below `initial` (within the cap).
pub fn next_conflict_delay(current: u64, initial: u64, max: u64) -> u64 {
    current.saturating_mul(2).max(initial).min(max).max(current)
}

impl Machine for TargetMachine {
    const NAME: &'static str = "target";
    type State = Target;
    type Event = TargetEvent;
    type Status = TargetStatus;
    type EventKind = TargetEventKind;

    fn initial() -> TargetStatus {
        TargetStatus::Pending
    }

    fn statuses() -> &'static [TargetStatus] {
        TargetStatus::ALL
    }

    fn event_kinds() -> &'static [TargetEventKind] {
        TargetEventKind::ALL
    }

    fn rows() -> &'static [Row<TargetStatus, TargetEventKind>] {
        TARGET_ROWS
    }

    fn status_name(status: TargetStatus) -> &'static str {
        status.as_str()
    }

    fn event_name(kind: TargetEventKind) -> &'static str {
        kind.as_str()
    }

    fn is_terminal(status: TargetStatus) -> bool {
        status.is_terminal()
    }

    fn status(state: &Target) -> TargetStatus {
        state.status
    }

    fn kind(event: &TargetEvent) -> TargetEventKind {
        event.kind()
    }

    fn step(
        state: &Target,
        event: &TargetEvent,
        now: Timestamp,
    ) -> Result<(Target, Vec<Effect>), Rejected> {
        let from = state.status;
        let kind = event.kind();
        require_pair::<Self>(from, kind)?;
        let refuse = |why: String| Err(guard::<Self>(from, kind, why));
        // Every arm ends in `accept!`, which checks the outcome row and returns straight into
        // the result (no intermediate tuple: a target is large, and moves are memcpys).
        macro_rules! accept {
            ($next:expr, $effects:expr) => {{
                let next: Target = $next;
                require_row::<Self>(from, kind, next.status)?;
                return Ok((next, $effects));
            }};
        }
        match event {
            TargetEvent::Claim { lease_until, operation, pre_hook } => {
                if let Some(retry_after) = state.retry_after
                    && now < retry_after
                {
                    return refuse(format!(
                        "retry_after {retry_after} has not passed yet (now {now})"
                    ));
                }
                if *lease_until <= now {
                    return refuse(format!(
                        "lease_until {lease_until} must be later than now ({now})"
                    ));
                }
                if let Some(name) = pre_hook {
                    let mut next =
                        changed(state, S::PreHooks, hook_message(HookPhase::Pre, name), now);
                    next.retry_after = None;
                    next.hold = None;
                    let call = enter_hook(&mut next, HookPhase::Pre, 0, name, now);
                    accept!(next, vec![Effect::PersistTarget(state.id.clone()), call])
                }
                let mut next =
                    changed(state, S::Claimed, String::from("claimed; submitting the task"), now);
                next.lease_until = Some(*lease_until);
                next.retry_after = None;
                next.hold = None;
                let submit = submission(state, operation);
                let effects =
                    vec![Effect::PersistTarget(state.id.clone()), Effect::SubmitTask(submit)];
                accept!(next, effects)
            }
            TargetEvent::Submitted { task_id } => {
                let mut next = changed(state, S::Submitted, String::from("task submitted"), now);
                next.task_id = Some(task_id.clone());
                next.lease_until = None;
                next.blocked_since = None;
                accept!(next, vec![Effect::PersistTarget(state.id.clone())])
            }
            TargetEvent::Conflict { message, initial_delay_seconds, max_delay_seconds } => {
                let delay = next_conflict_delay(
                    state.conflict_delay_seconds,
                    *initial_delay_seconds,
                    *max_delay_seconds,
                );
                let text = format!("blocked by a rack conflict: {message}; retry in {delay}s");
                let mut next = changed(state, S::Blocked, text, now);
                next.conflict_delay_seconds = delay;
                next.retry_after = Some(add_seconds(now, delay));
                next.blocked_since = Some(state.blocked_since.unwrap_or(now));
                next.lease_until = None;
                accept!(next, vec![Effect::PersistTarget(state.id.clone())])
            }
            TargetEvent::LeaseExpired => {
                if let Some(lease_until) = state.lease_until
                    && now < lease_until
                {
                    return refuse(format!("lease runs until {lease_until} (now {now})"));
                }
                let text = String::from("claim lease expired before the task was submitted");
                let mut next = changed(state, S::Pending, text, now);
                next.lease_until = None;
                accept!(next, vec![Effect::PersistTarget(state.id.clone())])
            }
            TargetEvent::SubmitRejected { message, max_attempts, retry_backoff_seconds } => {
                let what = format!("Core rejected the task: {message}");
                let next = retry_or_fail(
                    state,
                    what,
                    *max_attempts,
                    *retry_backoff_seconds,
                    TargetStatus::Failed,
                    now,
                );
                accept!(next, vec![Effect::PersistTarget(state.id.clone())])
            }
            TargetEvent::TaskFinished {
                status,
                message,
                max_attempts,
                retry_backoff_seconds,
                post_hook,
            } => {
                let next = match (status, post_hook) {
                    (TaskStatus::Completed, Some(name)) => {
                        let text = format!(
                            "{}; {}",
                            task_message("task completed", message),
                            hook_message(HookPhase::Post, name)
                        );
                        let mut next = changed(state, S::PostHooks, text, now);
                        let call = enter_hook(&mut next, HookPhase::Post, 0, name, now);
                        accept!(next, vec![Effect::PersistTarget(state.id.clone()), call])
                    }
                    (TaskStatus::Completed, None) => {
                        changed(state, S::Completed, task_message("task completed", message), now)
                    }
                    (TaskStatus::Terminated, _) => {
                        changed(state, S::Terminated, task_message("task terminated", message), now)
                    }
                    (TaskStatus::Failed, _) => retry_or_fail(
                        state,
                        task_message("task failed", message),
                        *max_attempts,
                        *retry_backoff_seconds,
                        TargetStatus::Failed,
                        now,
                    ),
                    (other, _) => {
                        return refuse(format!(
                            "task status {other} is not terminal; only completed, failed or \
                             terminated finish a target"
                        ));
                    }
                };
                accept!(next, vec![Effect::PersistTarget(state.id.clone())])
            }
            TargetEvent::Skip { reason } => {
                let mut next = changed(state, S::Skipped, reason.clone(), now);
                next.hold = None;
                accept!(next, vec![Effect::PersistTarget(state.id.clone())])
            }
            TargetEvent::Cancel { reason } => {
                if from == S::PostHooks {
                    let text = format!("run cancelled during the post hooks: {reason}");
                    let mut next = changed(state, S::Terminated, text, now);
                    next.hook = None;
                    accept!(next, vec![Effect::PersistTarget(state.id.clone())])
                }
                if from == S::Submitted {
                    let text = format!("run cancelled: {reason}; cancelling the task");
                    let next = changed(state, S::Submitted, text, now);
                    let mut effects = vec![Effect::PersistTarget(state.id.clone())];
                    if let Some(task_id) = &state.task_id {
                        effects.push(Effect::CancelTask {
                            task_id: task_id.clone(),
                            target_id: state.id.clone(),
                        });
                    }
                    accept!(next, effects)
                } else {
                    let mut next =
                        changed(state, S::Skipped, format!("run cancelled: {reason}"), now);
                    next.hold = None;
                    next.lease_until = None;
                    next.hook = None;
                    accept!(next, vec![Effect::PersistTarget(state.id.clone())])
                }
            }
            TargetEvent::HookStarted { invocation_id } => {
                let Some(hook) = current_hook(state, invocation_id) else {
                    return refuse(stale_hook(state, invocation_id));
                };
                let mut next = state.clone();
                next.hook = Some(HookRun { starts: hook.starts.saturating_add(1), ..hook.clone() });
                next.updated_at = now;
                accept!(next, vec![Effect::PersistTarget(state.id.clone())])
            }
            TargetEvent::HookFinished {
                invocation_id,
                ok,
                message,
                next_hook,
                lease_until,
                operation,
                max_attempts,
                retry_backoff_seconds,
            } => {
                let Some(hook) = current_hook(state, invocation_id) else {
                    return refuse(stale_hook(state, invocation_id));
                };
                let said = task_message("", message);
                let done = format!("{} hook {} succeeded{said}", hook.phase, hook.name);
                if !*ok {
                    let what = format!("{} hook {} failed{said}", hook.phase, hook.name);
                    let mut next = retry_or_fail(
                        state,
                        what,
                        *max_attempts,
                        *retry_backoff_seconds,
                        TargetStatus::Failed,
                        now,
                    );
                    next.hook = None;
                    if next.attempt == state.attempt {
                        record_hook(&mut next, hook, false);
                    }
                    accept!(next, vec![Effect::PersistTarget(state.id.clone())])
                }
                if let Some(name) = next_hook {
                    let text = format!("{done}; {}", hook_message(hook.phase, name));
                    let mut next = changed(state, from, text, now);
                    record_hook(&mut next, hook, true);
                    let index = hook.index.saturating_add(1);
                    let call = enter_hook(&mut next, hook.phase, index, name, now);
                    accept!(next, vec![Effect::PersistTarget(state.id.clone()), call])
                }
                if hook.phase == HookPhase::Post {
                    let mut next = changed(state, S::Completed, done, now);
                    next.hook = None;
                    record_hook(&mut next, hook, true);
                    accept!(next, vec![Effect::PersistTarget(state.id.clone())])
                }
                let text = format!("{done}; submitting the task");
                let mut next = changed(state, S::Claimed, text, now);
                next.hook = None;
                record_hook(&mut next, hook, true);
                next.lease_until = Some(*lease_until);
                let submit = submission(state, operation);
                let effects =
                    vec![Effect::PersistTarget(state.id.clone()), Effect::SubmitTask(submit)];
                accept!(next, effects)
            }
            TargetEvent::SetHold { hold } => {
                if state.hold == *hold {
                    return Ok((state.clone(), Vec::new()));
                }
                let mut next = state.clone();
                next.hold = hold.clone();
                next.updated_at = now;
                accept!(next, vec![Effect::PersistTarget(state.id.clone())])
            }
        };
    }
}

fn task_message(what: &'static str, core_message: &str) -> String {
    if core_message.is_empty() { String::from(what) } else { format!("{what}: {core_message}") }
}

fn hook_message(phase: HookPhase, name: &str) -> String {
    format!("running {phase} hook {name}")
}

/// The target's hook if `invocation_id` names it (a late report of an earlier hook does not).
fn current_hook<'a>(state: &'a Target, invocation_id: &str) -> Option<&'a HookRun> {
    state.hook.as_ref().filter(|hook| hook.invocation_id == invocation_id)
}

fn stale_hook(state: &Target, invocation_id: &str) -> String {
    match &state.hook {
        Some(hook) => format!(
            "hook invocation {invocation_id} is not the current one ({})",
            hook.invocation_id
        ),
        None => format!("hook invocation {invocation_id} reported but no hook runs"),
    }
}

/// Puts `next` on hook `index` of `phase` and returns the effect that runs it.
fn enter_hook(
    next: &mut Target,
    phase: HookPhase,
    index: u32,
    name: &str,
    now: Timestamp,
) -> Effect {
    let key = idempotency_key(next);
    let hook = HookRun {
        phase,
        index,
        name: name.to_string(),
        invocation_id: steward_proto::hooks::invocation_id(key.as_str(), phase, index),
        since: now,
        starts: 0,
    };
    next.hook = Some(hook);
    Effect::RunHook(hook_call(next))
}

/// The call that runs `target`'s current hook (`None` when it runs none): emitted on entering
/// the hook, and re-issued by recovery for a hook in flight at a crash.
pub fn hook_call(target: &Target) -> HookCall {
    let (invocation_id, hook, phase) = match &target.hook {
        Some(h) => (h.invocation_id.clone(), h.name.clone(), h.phase),
        None => (String::new(), String::new(), HookPhase::Pre),
    };
    HookCall {
        invocation_id,
        hook,
        phase,
        attempt: target.attempt,
        target: Box::new(target.clone()),
    }
}

/// A failed attempt: `failed` when no attempt is left, otherwise back to `pending` with the next
/// attempt after the retry backoff (the task id is forgotten; the next attempt gets a new key).
fn retry_or_fail(
    state: &Target,
    what: String,
    max_attempts: u32,
    retry_backoff_seconds: u64,
    failed: TargetStatus,
    now: Timestamp,
) -> Target {
    if state.attempt >= max_attempts {
        let text = format!("{what} (attempt {} of {max_attempts}; no attempt left)", state.attempt);
        let mut next = changed(state, failed, text, now);
        next.lease_until = None;
        next.hook = None;
        next
    } else {
        let attempt = state.attempt.saturating_add(1);
        let text = format!(
            "{what} (attempt {} of {max_attempts}); attempt {attempt} after {retry_backoff_seconds}s",
            state.attempt
        );
        let mut next = changed(state, S::Pending, text, now);
        next.attempt = attempt;
        next.task_id = None;
        next.lease_until = None;
        next.hook = None;
        next.hooks_reported.clear();
        next.retry_after = Some(add_seconds(now, retry_backoff_seconds));
        next
    }
}

/// Records that `hook` reported for the target's current attempt.
fn record_hook(next: &mut Target, hook: &HookRun, ok: bool) {
    next.hooks_reported.push(steward_proto::HookReport {
        phase: hook.phase,
        name: hook.name.clone(),
        ok,
    });
}
