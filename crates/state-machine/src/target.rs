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

use crate::effect::{Effect, SubmitTask};
use crate::error::Rejected;
use crate::machine::{Machine, Row, guard, require_pair, require_row, row};
use std::fmt;
use steward_proto::{
    Hold, IdempotencyKey, Operation, Target, TargetStatus, TaskId, TaskStatus, Timestamp,
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
            TargetEvent::Claim { lease_until, operation } => {
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
            TargetEvent::TaskFinished { status, message, max_attempts, retry_backoff_seconds } => {
                let next = match status {
                    TaskStatus::Completed => {
                        changed(state, S::Completed, task_message("task completed", message), now)
                    }
                    TaskStatus::Terminated => {
                        changed(state, S::Terminated, task_message("task terminated", message), now)
                    }
                    TaskStatus::Failed => retry_or_fail(
                        state,
                        task_message("task failed", message),
                        *max_attempts,
                        *retry_backoff_seconds,
                        TargetStatus::Failed,
                        now,
                    ),
                    other => {
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
                    accept!(next, vec![Effect::PersistTarget(state.id.clone())])
                }
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
        next.retry_after = Some(add_seconds(now, retry_backoff_seconds));
        next
    }
}
