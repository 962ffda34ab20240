//! The fleet aggregate: every machine's state plus the indexes the planner reads, and
//! `FleetEvent`, the one event type the reducer logs and replays.
//!
//! `Fleet::apply` routes an event to the pure machine `step` functions, swaps in the new
//! machine state only when the step accepted it, and keeps the indexes in line. Replaying the
//! event log through `apply` from `Fleet::new(config)` rebuilds the persisted state.
//!
//! Rules kept here:
//! - `apply` computes everything first and commits only when the whole event was accepted, so
//!   a rejected event leaves the fleet unchanged.
//! - Counts (`run.counts`, `run.waves[w].counts`) and every index shift on each target status
//!   change (never by scanning), also after the run is terminal: they are bookkeeping, not run
//!   events. A status change also persists the run (its counts changed).
//! - `last_observed_at` is memory only: `ComponentObserved` always refreshes it, even when the
//!   observation is identical (which yields no effects and need not be logged). It holds Core's
//!   `observed_at`, never an older one than before (see `freshness.rs`).
//! - A fleet built from stored rows instead of by replay must call [`Fleet::rebuild_indexes`].

use crate::effect::{Effect, Effects, SubmitTask};
use crate::error::Rejected;
use crate::machine::Machine;
use crate::run::{RunEvent, RunMachine};
use crate::service::ServiceTable;
use crate::status::{self, StatusMapper};
use crate::target::{TargetEvent, TargetMachine};
use crate::task::{TaskEvent, TaskMachine};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use steward_proto::{
    Component, ComponentId, ComponentStatus, Hold, Rack, RackId, RackSpec, Run, RunId, RunStatus,
    RunStatusReason, ServiceState, StatusCounts, Target, TargetId, TargetStatus, Task, TaskId,
    TaskStatus, Timestamp,
};

/// Configuration the fleet's machines read (not state: never logged).
#[derive(Clone, Debug, Default)]
pub struct FleetConfig {
    /// Raw controller state -> status tables.
    pub mapper: StatusMapper,
    /// The site service-state table.
    pub service_table: ServiceTable,
    /// A status older than this reads as unknown (`None`: never stale).
    pub status_max_age: Option<chrono::Duration>,
}

/// One component with its derived status and service state.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentEntry {
    /// Inventory facts.
    pub component: Component,
    /// Core's last raw controller state, if ever observed.
    pub raw_state: Option<String>,
    /// Status derived from `raw_state` (None: never observed).
    pub status: Option<ComponentStatus>,
    /// Operator service state.
    pub service_state: ServiceState,
    /// Last time Core reported it (memory only: not persisted, not replayed; `None` after a
    /// restart until the first sync, so nothing dispatches on pre-restart data).
    pub last_observed_at: Option<Timestamp>,
}

/// Everything the reducer owns, with incremental indexes.
#[derive(Clone, Debug, Default)]
pub struct Fleet {
    /// Machine configuration.
    pub config: FleetConfig,
    /// Racks by id.
    pub racks: BTreeMap<RackId, Rack>,
    /// Components by id.
    pub components: BTreeMap<ComponentId, ComponentEntry>,
    /// Index: rack -> its components (inventory order); every rack has an entry, maybe empty.
    pub rack_components: BTreeMap<RackId, Vec<ComponentId>>,
    /// Runs by id.
    pub runs: BTreeMap<RunId, Run>,
    /// Index: run -> its targets in dispatch order (wave by wave, then ordering).
    pub run_targets: BTreeMap<RunId, Vec<TargetId>>,
    /// Index: target -> its position in its run's `run_targets` list.
    pub target_positions: BTreeMap<TargetId, u32>,
    /// Targets by id.
    pub targets: BTreeMap<TargetId, Target>,
    /// Tasks by id.
    pub tasks: BTreeMap<TaskId, Task>,
    /// Index: run -> positions (in `run_targets`) of its pending targets, keyed by (wave, position).
    /// Runs without pending targets have no entry.
    pub run_pending: BTreeMap<RunId, BTreeSet<(u32, u32)>>,
    /// Index: run -> its active targets (claimed, blocked, submitted). No empty entries.
    pub run_active: BTreeMap<RunId, BTreeSet<TargetId>>,
    /// Index: rack -> active targets of any run on it. No empty entries.
    pub rack_active: BTreeMap<RackId, BTreeSet<TargetId>>,
    /// Active targets over all runs (for the global concurrency limit).
    pub active_total: u32,
    /// Memory only: no observed component can be stale before this time (`None`: none can).
    /// A lower bound kept by observations and refreshed by [`Fleet::stale_events`], so the
    /// reducer's per-batch staleness check scans the components only when one may have aged.
    pub(crate) stale_check_at: Option<Timestamp>,
}

/// Every event the reducer accepts and logs. Replaying these through [`Fleet::apply`] in `seq`
/// order, each with its logged `at`, rebuilds the state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FleetEvent {
    /// Racks and components created or updated.
    InventoryUpserted {
        /// Who asked (token name); empty in events logged before this field existed.
        #[serde(default)]
        initiator: String,
        /// The racks, each with its components.
        racks: Vec<RackSpec>,
    },
    /// A raw controller state that differs from the last one (identical ones are never logged).
    ComponentObserved {
        /// Who pushed it (token name); empty for Core's own inventory sync.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        initiator: String,
        /// The component.
        component_id: ComponentId,
        /// Raw controller state.
        controller_state: String,
        /// Power state, if reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        power_state: Option<String>,
        /// Firmware version, if reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        firmware_version: Option<String>,
        /// When Core observed it (absent: when the event was logged). The reducer clamps it to
        /// its `now` and never logs an observation older than the component's current one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        observed_at: Option<Timestamp>,
    },
    /// An operator moved a component to another service state.
    ServiceStateChanged {
        /// The component.
        component_id: ComponentId,
        /// The requested state.
        to: ServiceState,
        /// Who asked.
        initiator: String,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// An administrator moved a component to a state of the table regardless of the
    /// transitions (audited: the note is required and lands in the history).
    ServiceStateForced {
        /// The component.
        component_id: ComponentId,
        /// The state (any state of the table).
        to: ServiceState,
        /// Who asked.
        initiator: String,
        /// Why (required).
        note: String,
    },
    /// The site tables that decide later events took effect (first start with them, or a start
    /// that changed them); replay switches tables here, so it needs no config.
    SiteTablesApplied {
        /// The tables (`None` fields: built-in defaults); boxed, as they are large and rare.
        tables: Box<steward_proto::SiteTables>,
    },
    /// A run and its targets were created (planned by the planner; frozen from here on).
    RunCreated {
        /// The run, status `pending`.
        run: Box<Run>,
        /// Its targets in dispatch order, status `pending`.
        targets: Vec<Target>,
    },
    /// pending -> running.
    RunStarted {
        /// The run.
        run_id: RunId,
    },
    /// running -> paused.
    RunPaused {
        /// The run.
        run_id: RunId,
        /// Why.
        reason: RunStatusReason,
        /// Message naming the gate and its numbers, or the operator's reason.
        message: String,
        /// Who (token name or `planner`).
        initiator: String,
    },
    /// paused -> running; acknowledges the failures that tripped a safety gate.
    RunResumed {
        /// The run.
        run_id: RunId,
        /// Who.
        initiator: String,
    },
    /// Opens the next wave (operator at a wave gate, or auto-advance after the soak).
    RunAdvanced {
        /// The run.
        run_id: RunId,
        /// The wave the caller expects to open; refused if it is not the next one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_wave: Option<u32>,
        /// Who.
        initiator: String,
    },
    /// running -> completed / completed_with_failures / failed (all targets terminal).
    RunFinished {
        /// The run.
        run_id: RunId,
    },
    /// any non-terminal -> cancelled; submitted tasks get a best-effort cancel.
    RunCancelled {
        /// The run.
        run_id: RunId,
        /// Who.
        initiator: String,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// pending/blocked -> claimed under a lease; emits the task submission.
    TargetClaimed {
        /// The target.
        target_id: TargetId,
        /// Lease end.
        lease_until: Timestamp,
    },
    /// claimed -> submitted: Core accepted the task (or recovery adopted it by key).
    TargetSubmitted {
        /// The target.
        target_id: TargetId,
        /// Core's task id.
        task_id: TaskId,
    },
    /// claimed -> blocked: Core reported a rack conflict.
    TargetConflict {
        /// The target.
        target_id: TargetId,
        /// Core's message.
        message: String,
    },
    /// claimed -> pending: the lease ran out with nothing submitted.
    TargetLeaseExpired {
        /// The target.
        target_id: TargetId,
    },
    /// claimed -> failed (or pending with the next attempt): Core refused the request.
    TargetSubmitRejected {
        /// The target.
        target_id: TargetId,
        /// Core's message.
        message: String,
    },
    /// pending -> skipped by policy.
    TargetSkipped {
        /// The target.
        target_id: TargetId,
        /// Why (names the gate and the component).
        reason: String,
    },
    /// The planner's hold on a waiting target changed (or cleared).
    TargetHeld {
        /// The target.
        target_id: TargetId,
        /// The new hold.
        hold: Option<Hold>,
    },
    /// Core reported a task status that differs from the last one.
    TaskObserved {
        /// The task.
        task_id: TaskId,
        /// The target it serves.
        target_id: TargetId,
        /// Status.
        status: TaskStatus,
        /// Core's message.
        #[serde(default)]
        message: String,
        /// Per-component results.
        #[serde(default)]
        component_results: BTreeMap<ComponentId, TaskStatus>,
    },
    /// Core's inventory imported at start: adds new racks and components and updates
    /// Core-owned fields of existing ones; operator-owned ones (names, labels, rack locations)
    /// are never overwritten.
    CoreInventoryImported {
        /// Core's racks, each with its components.
        racks: Vec<RackSpec>,
    },
    /// A component's last observation crossed `status_max_age`: its status becomes `unknown`
    /// (stale) until Core reports it again. Emitted by the reducer's tick from `now`.
    ComponentStale {
        /// The component.
        component_id: ComponentId,
        /// When it was last observed.
        last_observed_at: Timestamp,
    },
    /// The hook runner started a target's current hook (again, after a crash).
    HookStarted {
        /// The target.
        target_id: TargetId,
        /// The hook invocation (stable per attempt, phase and position).
        invocation_id: String,
    },
    /// A target's current hook reported: success moves on, failure fails the attempt.
    HookFinished {
        /// The target.
        target_id: TargetId,
        /// The hook invocation.
        invocation_id: String,
        /// Exit 0 / 2xx.
        ok: bool,
        /// The hook's last line of output, or why it failed.
        #[serde(default)]
        message: String,
    },
}

/// The persisted part of a [`Fleet`] (everything but the config and `last_observed_at`), for
/// comparing a replayed fleet with a live one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FleetSnapshot {
    /// Racks.
    pub racks: BTreeMap<RackId, Rack>,
    /// Components: inventory, raw state, derived status, service state.
    pub components: BTreeMap<ComponentId, PersistedComponent>,
    /// Runs.
    pub runs: BTreeMap<RunId, Run>,
    /// Targets.
    pub targets: BTreeMap<TargetId, Target>,
    /// Tasks.
    pub tasks: BTreeMap<TaskId, Task>,
    /// Index: rack -> components.
    pub rack_components: BTreeMap<RackId, Vec<ComponentId>>,
    /// Index: run -> targets in dispatch order.
    pub run_targets: BTreeMap<RunId, Vec<TargetId>>,
    /// Index: run -> pending (wave, position).
    pub run_pending: BTreeMap<RunId, BTreeSet<(u32, u32)>>,
    /// Index: run -> active targets.
    pub run_active: BTreeMap<RunId, BTreeSet<TargetId>>,
    /// Index: rack -> active targets.
    pub rack_active: BTreeMap<RackId, BTreeSet<TargetId>>,
    /// Active targets over all runs.
    pub active_total: u32,
}

/// A component as persisted (no `last_observed_at`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PersistedComponent {
    /// Inventory facts.
    pub component: Component,
    /// Core's last raw controller state.
    pub raw_state: Option<String>,
    /// Derived status.
    pub status: Option<ComponentStatus>,
    /// Operator service state.
    pub service_state: ServiceState,
}

/// The target indexes recomputed from scratch (used by `rebuild_indexes` and `check_invariants`).
#[derive(Debug, Default, PartialEq)]
struct TargetIndexes {
    target_positions: BTreeMap<TargetId, u32>,
    run_pending: BTreeMap<RunId, BTreeSet<(u32, u32)>>,
    run_active: BTreeMap<RunId, BTreeSet<TargetId>>,
    rack_active: BTreeMap<RackId, BTreeSet<TargetId>>,
    active_total: u32,
}

fn not_found(what: &'static str, id: &impl std::fmt::Display) -> Rejected {
    Rejected::NotFound { what, id: id.to_string() }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Rejected {
    Rejected::Invalid { field: field.into(), message: message.into() }
}

fn position_u32(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

impl Fleet {
    /// An empty fleet with `config`.
    pub fn new(config: FleetConfig) -> Self {
        Self { config, ..Self::default() }
    }

    /// Applies one event at `now`: the rows to write with it, apart from the work that must
    /// wait for their commit. On `Err`, nothing changed.
    pub fn apply(&mut self, event: &FleetEvent, now: Timestamp) -> Result<Effects, Rejected> {
        self.apply_effects(event, now).map(Effects::split)
    }

    /// [`Fleet::apply`] with the machines' own effect vocabulary, unsplit (for tests that check
    /// which effects each event produces).
    pub fn apply_effects(
        &mut self,
        event: &FleetEvent,
        now: Timestamp,
    ) -> Result<Vec<Effect>, Rejected> {
        match event {
            FleetEvent::InventoryUpserted { racks, .. } => self.upsert_inventory(racks),
            FleetEvent::CoreInventoryImported { racks } => {
                let owned = self.keep_operator_fields(racks);
                self.upsert_inventory(&owned)
            }
            FleetEvent::ComponentObserved {
                component_id,
                controller_state,
                power_state,
                firmware_version,
                observed_at,
                ..
            } => self.observe_component(
                component_id,
                controller_state,
                power_state.as_deref(),
                firmware_version.as_deref(),
                observed_at.map_or(now, |at| at.min(now)),
                now,
            ),
            FleetEvent::ComponentStale { component_id, last_observed_at } => {
                self.mark_stale(component_id, *last_observed_at)
            }
            FleetEvent::ServiceStateChanged { component_id, to, initiator, note } => {
                let entry = self
                    .components
                    .get_mut(component_id)
                    .ok_or_else(|| not_found("component", component_id))?;
                let (state, effects) = self.config.service_table.step(
                    component_id,
                    &entry.service_state,
                    to,
                    initiator,
                    note.as_deref(),
                    now,
                )?;
                entry.service_state = state;
                Ok(effects)
            }
            FleetEvent::ServiceStateForced { component_id, to, initiator, note } => {
                self.force_service_state(component_id, to, initiator, note, now)
            }
            FleetEvent::SiteTablesApplied { tables } => self.apply_site_tables(tables),
            FleetEvent::RunCreated { run, targets } => self.create_run(run, targets),
            FleetEvent::RunStarted { run_id } => self.run_event(run_id, &RunEvent::Start, now),
            FleetEvent::RunPaused { run_id, reason, message, initiator: _ } => self.run_event(
                run_id,
                &RunEvent::Pause { reason: *reason, message: message.clone() },
                now,
            ),
            FleetEvent::RunResumed { run_id, initiator } => {
                self.run_event(run_id, &RunEvent::Resume { initiator: initiator.clone() }, now)
            }
            FleetEvent::RunAdvanced { run_id, expected_wave, initiator } => self.run_event(
                run_id,
                &RunEvent::Advance { expected_wave: *expected_wave, initiator: initiator.clone() },
                now,
            ),
            FleetEvent::RunFinished { run_id } => self.run_event(run_id, &RunEvent::Finish, now),
            FleetEvent::RunCancelled { run_id, initiator, reason } => {
                self.cancel_run(run_id, initiator, reason.as_deref(), now)
            }
            FleetEvent::TargetClaimed { target_id, lease_until } => {
                let target = self.target(target_id)?;
                let run = self.run_of(target)?;
                if run.status != RunStatus::Running {
                    return Err(Rejected::Guard {
                        machine: TargetMachine::NAME,
                        from: target.status.as_str(),
                        event: "claim",
                        why: format!("run {} is {}, not running", run.id, run.status),
                    });
                }
                let claim = TargetEvent::Claim {
                    lease_until: *lease_until,
                    operation: run.operation.clone(),
                    pre_hook: run.policy.hooks.pre.first().cloned(),
                };
                self.target_event(target_id, &claim, now)
            }
            FleetEvent::TargetSubmitted { target_id, task_id } => self.target_event(
                target_id,
                &TargetEvent::Submitted { task_id: task_id.clone() },
                now,
            ),
            FleetEvent::TargetConflict { target_id, message } => {
                let retry = self.run_of(self.target(target_id)?)?.policy.conflict_retry;
                let event = TargetEvent::Conflict {
                    message: message.clone(),
                    initial_delay_seconds: retry.initial_delay_seconds,
                    max_delay_seconds: retry.max_delay_seconds,
                };
                self.target_event(target_id, &event, now)
            }
            FleetEvent::TargetLeaseExpired { target_id } => {
                self.target_event(target_id, &TargetEvent::LeaseExpired, now)
            }
            FleetEvent::TargetSubmitRejected { target_id, message } => {
                let target = self.target(target_id)?;
                let run = self.run_of(target)?;
                let policy = &run.policy;
                let event = TargetEvent::SubmitRejected {
                    message: message.clone(),
                    max_attempts: attempts_allowed(run, target),
                    retry_backoff_seconds: policy.retry_backoff_seconds,
                };
                self.target_event(target_id, &event, now)
            }
            FleetEvent::TargetSkipped { target_id, reason } => {
                self.target_event(target_id, &TargetEvent::Skip { reason: reason.clone() }, now)
            }
            FleetEvent::TargetHeld { target_id, hold } => {
                self.target_event(target_id, &TargetEvent::SetHold { hold: hold.clone() }, now)
            }
            FleetEvent::TaskObserved { task_id, target_id, status, message, component_results } => {
                self.observe_task(task_id, target_id, *status, message, component_results, now)
            }
            FleetEvent::HookStarted { target_id, invocation_id } => {
                let event = TargetEvent::HookStarted { invocation_id: invocation_id.clone() };
                self.target_event(target_id, &event, now)
            }
            FleetEvent::HookFinished { target_id, invocation_id, ok, message } => {
                let event = self.hook_finished(target_id, invocation_id, *ok, message, now)?;
                self.target_event(target_id, &event, now)
            }
        }
    }

    /// The target event for a hook's report, with what the run's policy says comes next.
    fn hook_finished(
        &self,
        target_id: &TargetId,
        invocation_id: &str,
        ok: bool,
        message: &str,
        now: Timestamp,
    ) -> Result<TargetEvent, Rejected> {
        let target = self.target(target_id)?;
        let run = self.run_of(target)?;
        let next_hook = target.hook.as_ref().and_then(|hook| {
            let names = run.policy.hooks.of(hook.phase);
            names.get(hook.index as usize + 1).cloned()
        });
        Ok(TargetEvent::HookFinished {
            invocation_id: invocation_id.to_string(),
            ok,
            message: message.to_string(),
            next_hook,
            lease_until: crate::target::add_seconds(now, run.policy.claim_lease_seconds.max(1)),
            operation: run.operation.clone(),
            max_attempts: attempts_allowed(run, target),
            retry_backoff_seconds: run.policy.retry_backoff_seconds,
        })
    }

    /// The hook of every target running hooks (in target id order): after a restart or a
    /// reload each may have been in flight, so the shell runs it again (hooks are idempotent;
    /// the invocation id is the same). A hook that reported has moved its target on, so it is
    /// never among these.
    pub fn hooks_in_flight(&self) -> Vec<crate::effect::HookCall> {
        self.run_active
            .values()
            .flatten()
            .filter_map(|id| self.targets.get(id))
            .filter(|t| matches!(t.status, TargetStatus::PreHooks | TargetStatus::PostHooks))
            .filter(|t| t.hook.is_some())
            .map(crate::target::hook_call)
            .collect()
    }

    /// The submissions of every claimed target (in target id order): after a restart or a
    /// reload each may or may not have reached Core, so the shell re-issues them as
    /// submit-if-absent.
    pub fn claimed_submissions(&self) -> Vec<SubmitTask> {
        self.run_active
            .values()
            .flatten()
            .filter_map(|id| self.targets.get(id))
            .filter(|target| target.status == TargetStatus::Claimed)
            .filter_map(|target| {
                let run = self.runs.get(&target.run_id)?;
                Some(crate::target::submission(target, &run.operation))
            })
            .collect()
    }

    /// The Core tasks of a cancelled run that are still running (submitted targets, in target
    /// id order within each run): the cancel was an after-commit call that a crash may have
    /// lost, and an adapter may keep a cancel flag only in memory, so the shell re-sends these
    /// after a restart or a reload (cancelling is idempotent).
    pub fn cancels_in_flight(&self) -> Vec<(TaskId, TargetId)> {
        self.runs
            .values()
            .filter(|run| run.status == RunStatus::Cancelled)
            .filter_map(|run| self.run_active.get(&run.id))
            .flatten()
            .filter_map(|id| self.targets.get(id))
            .filter(|target| target.status == TargetStatus::Submitted)
            .filter_map(|target| Some((target.task_id.clone()?, target.id.clone())))
            .collect()
    }

    /// The status the planner must use for `component` at `now`: unknown when never observed,
    /// not observed since start, or older than `status_max_age`.
    pub fn effective_status(&self, component: &ComponentId, now: Timestamp) -> ComponentStatus {
        match self.components.get(component) {
            None => {
                ComponentStatus::unknown(format!("component {component} is not in the inventory"))
            }
            Some(entry) => status::effective_status(
                entry.status.as_ref(),
                entry.last_observed_at,
                now,
                self.config.status_max_age,
            ),
        }
    }

    /// Forgets every `last_observed_at` (after a restart or a replay), so every status reads as
    /// unknown until Core reports it again.
    pub fn forget_observation_times(&mut self) {
        for entry in self.components.values_mut() {
            entry.last_observed_at = None;
        }
        self.stale_check_at = None;
    }

    /// The persisted part of the fleet (no config, no `last_observed_at`).
    pub fn snapshot(&self) -> FleetSnapshot {
        FleetSnapshot {
            racks: self.racks.clone(),
            components: self
                .components
                .iter()
                .map(|(id, e)| {
                    let persisted = PersistedComponent {
                        component: e.component.clone(),
                        raw_state: e.raw_state.clone(),
                        status: e.status.clone(),
                        service_state: e.service_state.clone(),
                    };
                    (id.clone(), persisted)
                })
                .collect(),
            runs: self.runs.clone(),
            targets: self.targets.clone(),
            tasks: self.tasks.clone(),
            rack_components: self.rack_components.clone(),
            run_targets: self.run_targets.clone(),
            run_pending: self.run_pending.clone(),
            run_active: self.run_active.clone(),
            rack_active: self.rack_active.clone(),
            active_total: self.active_total,
        }
    }

    /// Whether `self` and `other` hold the same persisted state (ignores config and
    /// `last_observed_at`).
    pub fn persisted_eq(&self, other: &Fleet) -> bool {
        self.snapshot() == other.snapshot()
    }

    /// Recomputes `target_positions`, `run_pending`, `run_active`, `rack_active` and
    /// `active_total` from `targets` and `run_targets` (for a fleet loaded from stored rows),
    /// and gives every rack a `rack_components` entry.
    pub fn rebuild_indexes(&mut self) {
        let indexes = self.recompute_target_indexes();
        self.target_positions = indexes.target_positions;
        self.run_pending = indexes.run_pending;
        self.run_active = indexes.run_active;
        self.rack_active = indexes.rack_active;
        self.active_total = indexes.active_total;
        for rack in self.racks.keys() {
            self.rack_components.entry(rack.clone()).or_default();
        }
    }

    /// Checks that every index and count equals a from-scratch recomputation, and that ids
    /// refer to existing records. The message names the first inconsistency.
    pub fn check_invariants(&self) -> Result<(), String> {
        // Inventory.
        let mut expected_rc: BTreeMap<RackId, Vec<ComponentId>> =
            self.racks.keys().map(|r| (r.clone(), Vec::new())).collect();
        for (rack, list) in &self.rack_components {
            if !self.racks.contains_key(rack) {
                return Err(format!("rack_components names unknown rack {rack}"));
            }
            for id in list {
                let Some(entry) = self.components.get(id) else {
                    return Err(format!("rack_components[{rack}] names unknown component {id}"));
                };
                if entry.component.rack_id != *rack {
                    return Err(format!(
                        "component {id} is listed under rack {rack} but sits in {}",
                        entry.component.rack_id
                    ));
                }
            }
            expected_rc.insert(rack.clone(), list.clone());
        }
        if expected_rc != self.rack_components {
            return Err("rack_components lacks an entry for some rack".into());
        }
        let listed: usize = self.rack_components.values().map(Vec::len).sum();
        let unique: BTreeSet<&ComponentId> = self.rack_components.values().flatten().collect();
        if listed != self.components.len() || unique.len() != listed {
            return Err(format!(
                "rack_components lists {listed} entries ({} unique) for {} components",
                unique.len(),
                self.components.len()
            ));
        }
        // Runs and targets.
        if self.run_targets.keys().ne(self.runs.keys()) {
            return Err("run_targets and runs have different keys".into());
        }
        let mut seen = 0usize;
        for (run_id, list) in &self.run_targets {
            let run = &self.runs[run_id];
            let mut counts = StatusCounts::default();
            let mut wave_counts = vec![StatusCounts::default(); run.waves.len()];
            for id in list {
                let Some(target) = self.targets.get(id) else {
                    return Err(format!("run_targets[{run_id}] names unknown target {id}"));
                };
                if target.run_id != *run_id {
                    return Err(format!("target {id} is listed under run {run_id}"));
                }
                counts.add(target.status);
                match wave_counts.get_mut((target.wave as usize).wrapping_sub(1)) {
                    Some(c) => c.add(target.status),
                    None => return Err(format!("target {id} is in missing wave {}", target.wave)),
                }
                seen += 1;
            }
            if counts != run.counts {
                return Err(format!(
                    "run {run_id} counts {:?} differ from its targets {counts:?}",
                    run.counts
                ));
            }
            for (wave, expected) in run.waves.iter().zip(&wave_counts) {
                if wave.counts != *expected {
                    return Err(format!(
                        "run {run_id} wave {} counts {:?} differ from its targets {expected:?}",
                        wave.number, wave.counts
                    ));
                }
                if wave.size != expected.total() {
                    return Err(format!(
                        "run {run_id} wave {} size {} but {} targets",
                        wave.number,
                        wave.size,
                        expected.total()
                    ));
                }
            }
        }
        if seen != self.targets.len() {
            return Err(format!(
                "run_targets lists {seen} targets, the fleet has {}",
                self.targets.len()
            ));
        }
        let indexes = self.recompute_target_indexes();
        if indexes.target_positions != self.target_positions {
            return Err("target_positions differ from run_targets".into());
        }
        if indexes.run_pending != self.run_pending {
            return Err(format!(
                "run_pending {:?} differs from recomputation {:?}",
                self.run_pending, indexes.run_pending
            ));
        }
        if indexes.run_active != self.run_active {
            return Err(format!(
                "run_active {:?} differs from recomputation {:?}",
                self.run_active, indexes.run_active
            ));
        }
        if indexes.rack_active != self.rack_active {
            return Err(format!(
                "rack_active {:?} differs from recomputation {:?}",
                self.rack_active, indexes.rack_active
            ));
        }
        if indexes.active_total != self.active_total {
            return Err(format!(
                "active_total {} but {} active targets",
                self.active_total, indexes.active_total
            ));
        }
        for (id, task) in &self.tasks {
            if !self.targets.contains_key(&task.target_id) {
                return Err(format!("task {id} serves unknown target {}", task.target_id));
            }
        }
        Ok(())
    }

    fn recompute_target_indexes(&self) -> TargetIndexes {
        let mut out = TargetIndexes::default();
        for (run_id, list) in &self.run_targets {
            for (index, id) in list.iter().enumerate() {
                let position = position_u32(index);
                out.target_positions.insert(id.clone(), position);
                let Some(target) = self.targets.get(id) else { continue };
                if target.status == TargetStatus::Pending {
                    out.run_pending
                        .entry(run_id.clone())
                        .or_default()
                        .insert((target.wave, position));
                }
                if target.status.is_active() {
                    out.run_active.entry(run_id.clone()).or_default().insert(id.clone());
                    out.rack_active.entry(target.rack_id.clone()).or_default().insert(id.clone());
                    out.active_total += 1;
                }
            }
        }
        out
    }

    // ------------------------------------------------------------------ lookups

    fn target(&self, id: &TargetId) -> Result<&Target, Rejected> {
        self.targets.get(id).ok_or_else(|| not_found("target", id))
    }

    fn run_of(&self, target: &Target) -> Result<&Run, Rejected> {
        self.runs.get(&target.run_id).ok_or_else(|| not_found("run", &target.run_id))
    }

    // ------------------------------------------------------------------ inventory

    fn upsert_inventory(&mut self, racks: &[RackSpec]) -> Result<Vec<Effect>, Rejected> {
        let mut rack_ids = BTreeSet::new();
        let mut component_ids = BTreeSet::new();
        for (r, spec) in racks.iter().enumerate() {
            if !rack_ids.insert(&spec.id) {
                return Err(invalid(
                    format!("racks[{r}].id"),
                    format!("rack {} is listed twice", spec.id),
                ));
            }
            for (c, component) in spec.components.iter().enumerate() {
                if !component_ids.insert(&component.id) {
                    return Err(invalid(
                        format!("racks[{r}].components[{c}].id"),
                        format!("component {} is listed twice", component.id),
                    ));
                }
            }
        }
        // Validated: from here on nothing can fail.
        let mut rack_effects = Vec::new();
        let mut component_effects = Vec::new();
        for spec in racks {
            let rack = spec.rack();
            if self.racks.get(&rack.id) != Some(&rack) {
                rack_effects.push(Effect::PersistRack(rack.id.clone()));
                self.racks.insert(rack.id.clone(), rack);
            }
            self.rack_components.entry(spec.id.clone()).or_default();
            for component_spec in &spec.components {
                let mut component = component_spec.component(&spec.id);
                match self.components.get_mut(&component.id) {
                    None => {
                        self.rack_components
                            .entry(spec.id.clone())
                            .or_default()
                            .push(component.id.clone());
                        component_effects.push(Effect::PersistComponent(component.id.clone()));
                        let entry = ComponentEntry {
                            component,
                            raw_state: None,
                            status: None,
                            service_state: self.config.service_table.initial().clone(),
                            last_observed_at: None,
                        };
                        self.components.insert(entry.component.id.clone(), entry);
                    }
                    Some(entry) => {
                        // Observed facts survive an upsert that does not state them.
                        if component.power_state.is_none() {
                            component.power_state.clone_from(&entry.component.power_state);
                        }
                        if component.firmware_version.is_none() {
                            component
                                .firmware_version
                                .clone_from(&entry.component.firmware_version);
                        }
                        if entry.component == component {
                            continue;
                        }
                        let old_rack = entry.component.rack_id.clone();
                        entry.component = component;
                        component_effects.push(Effect::PersistComponent(component_spec.id.clone()));
                        if old_rack != spec.id {
                            if let Some(list) = self.rack_components.get_mut(&old_rack) {
                                list.retain(|id| *id != component_spec.id);
                            }
                            self.rack_components
                                .entry(spec.id.clone())
                                .or_default()
                                .push(component_spec.id.clone());
                        }
                    }
                }
            }
        }
        rack_effects.extend(component_effects);
        Ok(rack_effects)
    }

    /// Applies an observation made at `at` (Core's time, at most `now`). One older than the
    /// component's current observation changes nothing; one already older than
    /// `status_max_age` records its facts but leaves the status unknown (stale).
    fn observe_component(
        &mut self,
        id: &ComponentId,
        raw: &str,
        power_state: Option<&str>,
        firmware_version: Option<&str>,
        at: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<Effect>, Rejected> {
        let max_age = self.config.status_max_age;
        let entry = self.components.get_mut(id).ok_or_else(|| not_found("component", id))?;
        if entry.last_observed_at.is_some_and(|last| at < last) {
            return Ok(Vec::new());
        }
        let mut effects = Vec::new();
        if status::is_stale(Some(at), now, max_age) {
            effects = status::make_stale(id, &mut entry.raw_state, &mut entry.status, at);
        } else if let Some((status, status_effects)) = self.config.mapper.observe(
            id,
            entry.component.kind,
            entry.raw_state.as_deref(),
            entry.status.as_ref(),
            raw,
        ) {
            entry.raw_state = Some(raw.to_string());
            entry.status = Some(status);
            effects = status_effects;
        }
        let mut facts_changed = false;
        if let Some(power) = power_state
            && entry.component.power_state.as_deref() != Some(power)
        {
            entry.component.power_state = Some(power.to_string());
            facts_changed = true;
        }
        if let Some(firmware) = firmware_version
            && entry.component.firmware_version.as_deref() != Some(firmware)
        {
            entry.component.firmware_version = Some(firmware.to_string());
            facts_changed = true;
        }
        if facts_changed {
            effects.push(Effect::PersistComponent(id.clone()));
        }
        entry.last_observed_at = Some(at);
        if entry.raw_state.is_some()
            && let Some(max_age) = max_age
        {
            let ages_at = at + max_age;
            self.stale_check_at = Some(self.stale_check_at.map_or(ages_at, |t| t.min(ages_at)));
        }
        Ok(effects)
    }

    // ------------------------------------------------------------------ runs

    fn create_run(&mut self, run: &Run, targets: &[Target]) -> Result<Vec<Effect>, Rejected> {
        if self.runs.contains_key(&run.id) {
            return Err(invalid("run.id", format!("run {} already exists", run.id)));
        }
        if run.status != RunStatus::Pending {
            return Err(invalid("run.status", format!("a new run is pending, not {}", run.status)));
        }
        if let Err(errors) = run.policy.validate("run.policy") {
            return Err(invalid(
                errors.first_field().unwrap_or("run.policy").to_string(),
                errors.to_string(),
            ));
        }
        if targets.is_empty() {
            return Err(invalid("targets", format!("run {} has no targets", run.id)));
        }
        if run.waves.is_empty() {
            return Err(invalid("run.waves", format!("run {} has no waves", run.id)));
        }
        let mut counts = StatusCounts::default();
        let mut wave_counts = vec![StatusCounts::default(); run.waves.len()];
        let mut ids = BTreeSet::new();
        for (i, target) in targets.iter().enumerate() {
            let field = |name: &str| format!("targets[{i}].{name}");
            if target.run_id != run.id {
                return Err(invalid(
                    field("run_id"),
                    format!("target {} names run {}, not {}", target.id, target.run_id, run.id),
                ));
            }
            if self.targets.contains_key(&target.id) || !ids.insert(&target.id) {
                return Err(invalid(field("id"), format!("target {} already exists", target.id)));
            }
            if !self.racks.contains_key(&target.rack_id) {
                return Err(invalid(
                    field("rack_id"),
                    format!("rack {} does not exist", target.rack_id),
                ));
            }
            if target.status != TargetStatus::Pending {
                return Err(invalid(
                    field("status"),
                    format!("a new target is pending, not {}", target.status),
                ));
            }
            let Some(wave) = wave_counts.get_mut((target.wave as usize).wrapping_sub(1)) else {
                return Err(invalid(
                    field("wave"),
                    format!(
                        "wave {} is not one of the run's {} waves",
                        target.wave,
                        run.waves.len()
                    ),
                ));
            };
            wave.add(target.status);
            counts.add(target.status);
        }
        for (i, (wave, expected)) in run.waves.iter().zip(&wave_counts).enumerate() {
            if wave.number as usize != i + 1 {
                return Err(invalid(
                    format!("run.waves[{i}].number"),
                    format!(
                        "wave {} is at position {}; waves are numbered from 1",
                        wave.number,
                        i + 1
                    ),
                ));
            }
            if wave.size != expected.total() {
                return Err(invalid(
                    format!("run.waves[{i}].size"),
                    format!(
                        "wave {} has size {} but {} targets",
                        wave.number,
                        wave.size,
                        expected.total()
                    ),
                ));
            }
        }
        if let Some(original) = &run.rerun_of
            && !self.runs.contains_key(original)
        {
            return Err(invalid("run.rerun_of", format!("run {original} does not exist")));
        }
        // Validated: commit.
        let mut run = run.clone();
        run.counts = counts;
        for (wave, counts) in run.waves.iter_mut().zip(wave_counts) {
            wave.counts = counts;
        }
        let mut effects = Vec::with_capacity(targets.len() + 1);
        effects.push(Effect::PersistRun(run.id.clone()));
        let mut pending = BTreeSet::new();
        let mut list = Vec::with_capacity(targets.len());
        for (index, target) in targets.iter().enumerate() {
            let position = position_u32(index);
            pending.insert((target.wave, position));
            list.push(target.id.clone());
            self.target_positions.insert(target.id.clone(), position);
            self.targets.insert(target.id.clone(), target.clone());
            effects.push(Effect::PersistTarget(target.id.clone()));
        }
        self.run_pending.insert(run.id.clone(), pending);
        self.run_targets.insert(run.id.clone(), list);
        if let Some(original) = run.rerun_of.as_ref().and_then(|id| self.runs.get_mut(id)) {
            original.reruns.push(run.id.clone());
            effects.push(Effect::PersistRun(original.id.clone()));
        }
        self.runs.insert(run.id.clone(), run);
        Ok(effects)
    }

    fn run_event(
        &mut self,
        run_id: &RunId,
        event: &RunEvent,
        now: Timestamp,
    ) -> Result<Vec<Effect>, Rejected> {
        let run = self.runs.get_mut(run_id).ok_or_else(|| not_found("run", run_id))?;
        let (next, effects) = RunMachine::step(run, event, now)?;
        *run = next;
        Ok(effects)
    }

    fn cancel_run(
        &mut self,
        run_id: &RunId,
        initiator: &str,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<Effect>, Rejected> {
        let run = self.runs.get(run_id).ok_or_else(|| not_found("run", run_id))?;
        let event = RunEvent::Cancel {
            initiator: initiator.to_string(),
            reason: reason.map(str::to_string),
        };
        let (next_run, mut effects) = RunMachine::step(run, &event, now)?;
        let target_reason = match reason {
            Some(reason) if !reason.is_empty() => format!("cancelled by {initiator}: {reason}"),
            _ => format!("cancelled by {initiator}"),
        };
        let cancel = TargetEvent::Cancel { reason: target_reason };
        let mut changed = Vec::new();
        for id in self.run_targets.get(run_id).into_iter().flatten() {
            let target = self.target(id)?;
            if target.status.is_terminal() {
                continue;
            }
            let (next, target_effects) = TargetMachine::step(target, &cancel, now)?;
            effects.extend(target_effects);
            changed.push(next);
        }
        self.runs.insert(run_id.clone(), next_run);
        for next in changed {
            self.commit_target(next, now);
        }
        Ok(effects)
    }

    // ------------------------------------------------------------------ targets and tasks

    fn target_event(
        &mut self,
        target_id: &TargetId,
        event: &TargetEvent,
        now: Timestamp,
    ) -> Result<Vec<Effect>, Rejected> {
        let target = self.target(target_id)?;
        let (next, mut effects) = TargetMachine::step(target, event, now)?;
        if next.status != target.status {
            effects.push(Effect::PersistRun(next.run_id.clone()));
        }
        self.commit_target(next, now);
        Ok(effects)
    }

    fn observe_task(
        &mut self,
        task_id: &TaskId,
        target_id: &TargetId,
        status: TaskStatus,
        message: &str,
        component_results: &BTreeMap<ComponentId, TaskStatus>,
        now: Timestamp,
    ) -> Result<Vec<Effect>, Rejected> {
        let target = self.target(target_id)?;
        let existing = self.tasks.get(task_id);
        if let Some(task) = existing
            && task.target_id != *target_id
        {
            return Err(invalid(
                "target_id",
                format!("task {task_id} serves target {}, not {target_id}", task.target_id),
            ));
        }
        // A repeated or late terminal report of a finished task changes nothing in the task.
        let duplicate_terminal =
            existing.is_some_and(|task| task.status.is_terminal() && task.status == status);
        let mut effects = Vec::new();
        let mut next_task = None;
        if !duplicate_terminal {
            let base = match existing {
                Some(task) => task.clone(),
                None => Task {
                    id: task_id.clone(),
                    target_id: target_id.clone(),
                    run_id: target.run_id.clone(),
                    rack_id: target.rack_id.clone(),
                    idempotency_key: target.idempotency_key(),
                    status: TaskStatus::Pending,
                    component_results: BTreeMap::new(),
                    message: String::new(),
                    updated_at: now,
                },
            };
            let event = TaskEvent::Observe {
                status,
                message: message.to_string(),
                component_results: component_results.clone(),
            };
            let (task, task_effects) = TaskMachine::step(&base, &event, now)?;
            effects = task_effects;
            if existing.is_none() && effects.is_empty() {
                effects.push(Effect::PersistTask(task_id.clone()));
            }
            next_task = Some(task);
        }
        let mut next_target = None;
        if status.is_terminal()
            && target.status == TargetStatus::Submitted
            && target.task_id.as_ref() == Some(task_id)
        {
            let run = self.run_of(target)?;
            let policy = &run.policy;
            // A cancelled run runs no post hooks: its completed task completes the target.
            let post_hook = match run.status {
                RunStatus::Cancelled => None,
                _ => policy.hooks.post.first().cloned(),
            };
            let event = TargetEvent::TaskFinished {
                status,
                message: message.to_string(),
                max_attempts: attempts_allowed(run, target),
                retry_backoff_seconds: policy.retry_backoff_seconds,
                post_hook,
            };
            let (next, target_effects) = TargetMachine::step(target, &event, now)?;
            effects.extend(target_effects);
            effects.push(Effect::PersistRun(next.run_id.clone()));
            next_target = Some(next);
        }
        if let Some(task) = next_task {
            self.tasks.insert(task_id.clone(), task);
        }
        if let Some(next) = next_target {
            self.commit_target(next, now);
        }
        Ok(effects)
    }

    /// Stores `next` and, when its status changed, shifts counts and indexes.
    fn commit_target(&mut self, next: Target, now: Timestamp) {
        let Some(slot) = self.targets.get_mut(&next.id) else { return };
        let from = slot.status;
        let to = next.status;
        *slot = next;
        if from == to {
            return;
        }
        let target = &*slot;
        let (id, run_id, rack_id, wave) =
            (target.id.clone(), target.run_id.clone(), target.rack_id.clone(), target.wave);
        if let Some(run) = self.runs.get_mut(&run_id) {
            run.counts.shift(from, to);
            if let Some(w) = run.waves.get_mut((wave as usize).wrapping_sub(1)) {
                w.counts.shift(from, to);
                if to.is_terminal() && w.finished_at.is_none() && w.counts.all_terminal() {
                    w.finished_at = Some(now);
                }
            }
        }
        if from == TargetStatus::Pending || to == TargetStatus::Pending {
            let position = match self.target_positions.get(&id) {
                Some(position) => Some(*position),
                None => self
                    .run_targets
                    .get(&run_id)
                    .and_then(|list| list.iter().position(|t| *t == id))
                    .map(position_u32),
            };
            if let Some(position) = position {
                if from == TargetStatus::Pending
                    && let Some(set) = self.run_pending.get_mut(&run_id)
                {
                    set.remove(&(wave, position));
                    if set.is_empty() {
                        self.run_pending.remove(&run_id);
                    }
                }
                if to == TargetStatus::Pending {
                    self.run_pending.entry(run_id.clone()).or_default().insert((wave, position));
                }
            }
        }
        match (from.is_active(), to.is_active()) {
            (false, true) => {
                self.run_active.entry(run_id).or_default().insert(id.clone());
                self.rack_active.entry(rack_id).or_default().insert(id);
                self.active_total += 1;
            }
            (true, false) => {
                if let Some(set) = self.run_active.get_mut(&run_id) {
                    set.remove(&id);
                    if set.is_empty() {
                        self.run_active.remove(&run_id);
                    }
                }
                if let Some(set) = self.rack_active.get_mut(&rack_id) {
                    set.remove(&id);
                    if set.is_empty() {
                        self.rack_active.remove(&rack_id);
                    }
                }
                self.active_total = self.active_total.saturating_sub(1);
            }
            _ => {}
        }
    }
}

/// How many attempts a target of `run` may use: the policy's, except that a cancelled run
/// starts no new attempt (a failure then ends the target instead of sending it back to
/// `pending` in a run that will never dispatch again).
fn attempts_allowed(run: &Run, target: &Target) -> u32 {
    if run.status == RunStatus::Cancelled {
        target.attempt.min(run.policy.max_attempts)
    } else {
        run.policy.max_attempts
    }
}
