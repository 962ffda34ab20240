//! Effects: what a transition asks the runtime to do, as plain values.
//!
//! Ordering rule (enforced by the runtime): persist/history effects are written first, in the
//! same transaction as the event; `SubmitTask`, `CancelTask`, `RunHook` and `Notify` run only
//! after that transaction has committed.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use steward_proto::{
    ComponentId, HistoryEntry, HookPhase, IdempotencyKey, Operation, Phase, RackId, RunId,
    RunStatus, RunStatusReason, Target, TargetId, TaskId,
};

/// One thing a transition asks the shell to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Write the run's row.
    PersistRun(RunId),
    /// Write the target's row.
    PersistTarget(TargetId),
    /// Write the task's row.
    PersistTask(TaskId),
    /// Write the rack's inventory row (created or changed by an inventory upsert).
    PersistRack(RackId),
    /// Write the component's inventory facts (created or changed by an inventory upsert, or a
    /// new power state / firmware version from an observation). A new component's row also
    /// carries its initial service state.
    PersistComponent(ComponentId),
    /// Write the component's derived status.
    PersistComponentStatus(ComponentId),
    /// Write the component's service state.
    PersistServiceState(ComponentId),
    /// Append a service-state history entry.
    AppendHistory(HistoryEntry),
    /// Submit a task to Core (after commit).
    SubmitTask(SubmitTask),
    /// Ask Core to cancel a task (after commit, best effort).
    CancelTask {
        /// Core's task id.
        task_id: TaskId,
        /// The target it serves.
        target_id: TargetId,
    },
    /// Emit a notification (webhooks, event subscribers) after commit.
    Notify(Notification),
    /// Run a site hook for a target (after commit).
    RunHook(HookCall),
}

/// A hook to run for a target: the shell's hook runner executes it and reports its start and
/// end back as events. The invocation id is stable for (attempt, phase, index), so a re-run
/// after a crash carries the same id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookCall {
    /// Stable id of this invocation.
    pub invocation_id: String,
    /// The hook's name (defined in the server's config).
    pub hook: String,
    /// Before or after the task.
    pub phase: HookPhase,
    /// The target's attempt.
    pub attempt: u32,
    /// The target as it stands when the hook is entered (the hook reads it as JSON).
    pub target: Box<Target>,
}

/// A task submission request: everything Core needs, so the runtime sends what it was given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitTask {
    /// The run.
    pub run_id: RunId,
    /// The operation (the run's), with its version and component kinds.
    pub operation: Operation,
    /// The target.
    pub target_id: TargetId,
    /// The rack.
    pub rack_id: RackId,
    /// The selected components.
    pub components: Arc<[ComponentId]>,
    /// Derived from (run, target, attempt): the same key is never submitted twice.
    pub idempotency_key: IdempotencyKey,
}

/// Something subscribers and webhooks hear about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notification {
    /// An operator service state changed.
    ServiceStateChanged(HistoryEntry),
    /// A run changed status.
    RunStatusChanged {
        /// The run.
        run_id: RunId,
        /// Before.
        from: RunStatus,
        /// After.
        to: RunStatus,
        /// Why.
        reason: RunStatusReason,
        /// Human message.
        message: String,
    },
    /// A component's derived phase changed.
    ComponentPhaseChanged {
        /// The component.
        component_id: ComponentId,
        /// Before (`unknown` if never observed).
        from: Phase,
        /// After.
        to: Phase,
    },
}

impl Notification {
    /// The notification's kind, as webhooks subscribe to it.
    pub fn kind(&self) -> &'static str {
        match self {
            Notification::ServiceStateChanged(_) => "service_state_changed",
            Notification::RunStatusChanged { .. } => "run_status_changed",
            Notification::ComponentPhaseChanged { .. } => "component_phase_changed",
        }
    }
}

/// Every effect kind by name, so tests can check that none is dead.
pub const EFFECT_KINDS: [&str; 12] = [
    "persist_run",
    "persist_target",
    "persist_task",
    "persist_rack",
    "persist_component",
    "persist_component_status",
    "persist_service_state",
    "append_history",
    "submit_task",
    "cancel_task",
    "notify",
    "run_hook",
];

impl Effect {
    /// The effect's kind name (one of [`EFFECT_KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Effect::PersistRun(_) => "persist_run",
            Effect::PersistTarget(_) => "persist_target",
            Effect::PersistTask(_) => "persist_task",
            Effect::PersistRack(_) => "persist_rack",
            Effect::PersistComponent(_) => "persist_component",
            Effect::PersistComponentStatus(_) => "persist_component_status",
            Effect::PersistServiceState(_) => "persist_service_state",
            Effect::AppendHistory(_) => "append_history",
            Effect::SubmitTask(_) => "submit_task",
            Effect::CancelTask { .. } => "cancel_task",
            Effect::Notify(_) => "notify",
            Effect::RunHook(_) => "run_hook",
        }
    }

    /// Whether the effect may only run after the batch recording it has committed.
    pub fn after_commit(&self) -> bool {
        matches!(
            self,
            Effect::SubmitTask(_)
                | Effect::CancelTask { .. }
                | Effect::Notify(_)
                | Effect::RunHook(_)
        )
    }
}

/// A row an accepted event asks to write in the same transaction as the event itself.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// The run's row.
    Run(RunId),
    /// The target's row.
    Target(TargetId),
    /// The task's row.
    Task(TaskId),
    /// The rack's inventory row.
    Rack(RackId),
    /// The component's row (inventory facts, raw state, status or service state changed).
    Component(ComponentId),
    /// A service-state history entry to append.
    History(HistoryEntry),
}

/// Work an accepted event asks for that may start only once the transaction recording the
/// event has committed.
#[derive(Clone, Debug, PartialEq)]
pub enum AfterCommit {
    /// Submit a task to Core.
    SubmitTask(SubmitTask),
    /// Ask Core to cancel a task, best effort.
    CancelTask {
        /// Core's task id.
        task_id: TaskId,
        /// The target it serves.
        target_id: TargetId,
    },
    /// Tell subscribers and webhooks.
    Notify(Notification),
    /// Run a site hook.
    RunHook(HookCall),
}

/// What [`crate::Fleet::apply`] returns for an accepted event: rows to write now, apart from work
/// after the commit, so a shell cannot run a Core call or a notification before its intent is
/// durable by mistake.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effects {
    /// Rows for the event's own transaction, in the order the machines named them.
    pub writes: Vec<Write>,
    /// Work for after the commit, in order.
    pub after_commit: Vec<AfterCommit>,
}

impl Effects {
    /// Whether the event changed nothing (an event that changes nothing is not logged).
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.after_commit.is_empty()
    }

    /// Sorts the machines' effects by durability, keeping their order within each side.
    pub fn split(effects: Vec<Effect>) -> Self {
        let mut split = Effects::default();
        for effect in effects {
            match effect {
                Effect::PersistRun(id) => split.writes.push(Write::Run(id)),
                Effect::PersistTarget(id) => split.writes.push(Write::Target(id)),
                Effect::PersistTask(id) => split.writes.push(Write::Task(id)),
                Effect::PersistRack(id) => split.writes.push(Write::Rack(id)),
                Effect::PersistComponent(id)
                | Effect::PersistComponentStatus(id)
                | Effect::PersistServiceState(id) => split.writes.push(Write::Component(id)),
                Effect::AppendHistory(entry) => split.writes.push(Write::History(entry)),
                Effect::SubmitTask(submit) => {
                    split.after_commit.push(AfterCommit::SubmitTask(submit))
                }
                Effect::CancelTask { task_id, target_id } => {
                    split.after_commit.push(AfterCommit::CancelTask { task_id, target_id })
                }
                Effect::Notify(notification) => {
                    split.after_commit.push(AfterCommit::Notify(notification))
                }
                Effect::RunHook(call) => split.after_commit.push(AfterCommit::RunHook(call)),
            }
        }
        split
    }
}
