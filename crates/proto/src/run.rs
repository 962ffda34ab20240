//! Operation runs, their targets and tasks, selectors, holds and counts.

use crate::component::ComponentKind;
use crate::hooks::{HookPhase, HookRun};
use crate::ids::{ComponentId, IdempotencyKey, RackId, RunId, TargetId, TaskId};
use crate::operation::Operation;
use crate::policy::RunPolicy;
use crate::status::{Gate, RunStatus, RunStatusReason, TargetStatus, TaskStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which racks a run covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Explicit rack ids, in the order given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub racks: Option<Vec<RackId>>,
    /// Explicit component ids; their racks become targets, narrowed to these components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<ComponentId>>,
    /// Label selector: racks whose labels contain every pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Every rack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
    /// Narrow each rack to these component kinds (absent: every kind; an empty list is refused,
    /// because "no kind" reading as "every kind" would widen the run).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "non_empty")]
    pub kinds: Vec<ComponentKind>,
    /// Leave out racks covered by these earlier runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_runs: Vec<RunId>,
}

/// Deserializes a list that, when given, must not be empty.
fn non_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let items = Vec::<T>::deserialize(deserializer)?;
    if items.is_empty() {
        return Err(serde::de::Error::invalid_length(
            0,
            &"at least one item (omit the field for every item)",
        ));
    }
    Ok(items)
}

/// Number of targets in each status; maintained incrementally, never by scanning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StatusCounts {
    /// pending.
    pub pending: u32,
    /// claimed.
    pub claimed: u32,
    /// blocked.
    pub blocked: u32,
    /// submitted.
    pub submitted: u32,
    /// completed.
    pub completed: u32,
    /// failed.
    pub failed: u32,
    /// terminated.
    pub terminated: u32,
    /// skipped.
    pub skipped: u32,
    /// pre_hooks (absent from runs stored before hooks existed).
    #[serde(default)]
    pub pre_hooks: u32,
    /// post_hooks.
    #[serde(default)]
    pub post_hooks: u32,
}

impl StatusCounts {
    /// The count for `status`.
    pub fn get(&self, status: TargetStatus) -> u32 {
        match status {
            TargetStatus::Pending => self.pending,
            TargetStatus::Claimed => self.claimed,
            TargetStatus::Blocked => self.blocked,
            TargetStatus::Submitted => self.submitted,
            TargetStatus::Completed => self.completed,
            TargetStatus::Failed => self.failed,
            TargetStatus::Terminated => self.terminated,
            TargetStatus::Skipped => self.skipped,
            TargetStatus::PreHooks => self.pre_hooks,
            TargetStatus::PostHooks => self.post_hooks,
        }
    }

    fn slot(&mut self, status: TargetStatus) -> &mut u32 {
        match status {
            TargetStatus::Pending => &mut self.pending,
            TargetStatus::Claimed => &mut self.claimed,
            TargetStatus::Blocked => &mut self.blocked,
            TargetStatus::Submitted => &mut self.submitted,
            TargetStatus::Completed => &mut self.completed,
            TargetStatus::Failed => &mut self.failed,
            TargetStatus::Terminated => &mut self.terminated,
            TargetStatus::Skipped => &mut self.skipped,
            TargetStatus::PreHooks => &mut self.pre_hooks,
            TargetStatus::PostHooks => &mut self.post_hooks,
        }
    }

    /// Adds one target in `status`.
    pub fn add(&mut self, status: TargetStatus) {
        *self.slot(status) += 1;
    }

    /// Moves one target from `from` to `to` (saturating, so a bad count never panics).
    pub fn shift(&mut self, from: TargetStatus, to: TargetStatus) {
        let slot = self.slot(from);
        *slot = slot.saturating_sub(1);
        *self.slot(to) += 1;
    }

    /// All targets.
    pub fn total(&self) -> u32 {
        TargetStatus::ALL.iter().map(|s| self.get(*s)).sum()
    }

    /// Targets in a terminal status.
    pub fn terminal(&self) -> u32 {
        self.completed + self.failed + self.terminated + self.skipped
    }

    /// Targets occupying a rack (claimed, blocked, submitted, running hooks).
    pub fn active(&self) -> u32 {
        self.claimed + self.blocked + self.submitted + self.pre_hooks + self.post_hooks
    }

    /// Failed plus terminated: what safety gates count.
    pub fn failures(&self) -> u32 {
        self.failed + self.terminated
    }

    /// Whether every target is terminal.
    pub fn all_terminal(&self) -> bool {
        self.terminal() == self.total()
    }
}

/// One wave of a run: planned at creation and frozen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Wave {
    /// Wave number, from 1.
    pub number: u32,
    /// Targets in the wave.
    pub size: u32,
    /// Counts by target status within the wave.
    pub counts: StatusCounts,
    /// Failures acknowledged by resumes (they no longer count for safety gates).
    #[serde(default)]
    pub acknowledged_failures: u32,
    /// When the wave was opened for dispatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<DateTime<Utc>>,
    /// When the last target of the wave became terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// An operation run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// Run id.
    pub id: RunId,
    /// Human name.
    #[serde(default)]
    pub name: String,
    /// What the run does.
    pub operation: Operation,
    /// What it selected (kept for audit).
    pub selector: Selector,
    /// The policy it runs under.
    pub policy: RunPolicy,
    /// Status.
    pub status: RunStatus,
    /// Why it has that status.
    pub status_reason: RunStatusReason,
    /// Human explanation naming the gate and its numbers.
    #[serde(default)]
    pub status_message: String,
    /// The wave open for dispatch, from 1.
    pub current_wave: u32,
    /// Every wave with its counts.
    pub waves: Vec<Wave>,
    /// Counts by target status over the whole run.
    pub counts: StatusCounts,
    /// Who created it.
    #[serde(default)]
    pub initiator: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// First start (set once).
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// Reached a terminal status.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The run this one re-runs (`POST /v1/runs/{id}/rerun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<RunId>,
    /// Runs created as reruns of this one, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reruns: Vec<RunId>,
}

/// Why a waiting target waits: the first gate that holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Hold {
    /// The gate.
    pub gate: Gate,
    /// What blocks and what would unblock it.
    pub message: String,
    /// Since when this gate (with this message) holds the target.
    pub since: DateTime<Utc>,
    /// The component that holds the target, when one does (a readiness hold names the first
    /// blocking component): the planner re-checks it from this field, never from `message`.
    /// Absent from the JSON when `None`, so holds written before it existed read back unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentId>,
}

/// One rack within one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Target id.
    pub id: TargetId,
    /// Its run.
    pub run_id: RunId,
    /// Its rack.
    pub rack_id: RackId,
    /// Its wave, from 1.
    pub wave: u32,
    /// The selected components on the rack.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<ComponentId>))]
    pub components: Arc<[ComponentId]>,
    /// Status.
    pub status: TargetStatus,
    /// Attempt number, from 1; part of the idempotency key.
    pub attempt: u32,
    /// Core's task id once submitted.
    #[serde(default)]
    pub task_id: Option<TaskId>,
    /// Last change explained.
    #[serde(default)]
    pub message: String,
    /// Earliest time a blocked or failed target may be tried again.
    #[serde(default)]
    pub retry_after: Option<DateTime<Utc>>,
    /// End of the claim lease.
    #[serde(default)]
    pub lease_until: Option<DateTime<Utc>>,
    /// Current conflict backoff in seconds (doubles up to the cap; kept across re-claims).
    #[serde(default)]
    pub conflict_delay_seconds: u64,
    /// When the target was first blocked by a conflict (for the conflict retry timeout).
    #[serde(default)]
    pub blocked_since: Option<DateTime<Utc>>,
    /// The current hold, if the target waits.
    #[serde(default)]
    pub hold: Option<Hold>,
    /// The hook it runs while `pre_hooks` or `post_hooks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<HookRun>,
    /// The hooks of the current attempt that reported, in order (cleared by a new attempt), so
    /// a finished target still shows its drain and its validation. Absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks_reported: Vec<HookReport>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A hook that reported for a target's current attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HookReport {
    /// Before (`pre`) or after (`post`) the task.
    pub phase: HookPhase,
    /// The hook's name in the server's config.
    pub name: String,
    /// Whether it succeeded.
    pub ok: bool,
}

impl Target {
    /// A new pending target covering `rack_id` in `run_id` (first attempt, no hold, no message).
    pub fn pending(
        run_id: &RunId,
        rack_id: RackId,
        wave: u32,
        components: Arc<[ComponentId]>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: TargetId::for_rack(run_id, &rack_id),
            run_id: run_id.clone(),
            rack_id,
            wave,
            components,
            status: TargetStatus::Pending,
            attempt: 1,
            task_id: None,
            message: String::new(),
            retry_after: None,
            lease_until: None,
            conflict_delay_seconds: 0,
            blocked_since: None,
            hold: None,
            hook: None,
            hooks_reported: Vec::new(),
            updated_at: now,
        }
    }

    /// The idempotency key of the current attempt.
    pub fn idempotency_key(&self) -> IdempotencyKey {
        IdempotencyKey::for_attempt(&self.run_id, &self.id, self.attempt)
    }
}

/// A task in Core, as Steward last saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Core's task id.
    pub id: TaskId,
    /// The target it serves.
    pub target_id: TargetId,
    /// The run.
    pub run_id: RunId,
    /// The rack.
    pub rack_id: RackId,
    /// The submission key.
    pub idempotency_key: IdempotencyKey,
    /// Status.
    pub status: TaskStatus,
    /// Per-component results, when Core reports them.
    #[serde(default)]
    pub component_results: BTreeMap<ComponentId, TaskStatus>,
    /// Core's message.
    #[serde(default)]
    pub message: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// `POST /v1/runs` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRunRequest {
    /// Human name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The operation.
    pub operation: Operation,
    /// The selection.
    pub selector: Selector,
    /// The policy (defaults for every missing field).
    #[serde(default)]
    pub policy: RunPolicy,
    /// Plan only: return waves, targets and holds, create nothing.
    #[serde(default)]
    pub dry_run: bool,
}
