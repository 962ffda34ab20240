//! The task machine: Steward's copy of a Core task's status, moved only forward by observations.
//!
//! Core is the authority on a task; Steward records what it reports. The table allows every
//! forward move (pending -> waiting -> running -> a terminal status, skipping steps allowed) and
//! self-loops (a changed message or per-component results). A backward report (running ->
//! pending) is refused as a guard, and terminal statuses absorb everything. An observation
//! identical to the stored one (status, message and results) is accepted with no effects.

use crate::effect::Effect;
use crate::error::Rejected;
use crate::machine::{Machine, Row, require_pair, require_row, row};
use std::collections::BTreeMap;
use std::fmt;
use steward_proto::{ComponentId, Task, TaskStatus, Timestamp};

/// An event the task machine accepts.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskEvent {
    /// Core reported the task.
    Observe {
        /// Its status.
        status: TaskStatus,
        /// Core's message.
        message: String,
        /// Per-component results.
        component_results: BTreeMap<ComponentId, TaskStatus>,
    },
}

/// Task event kinds, without data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskEventKind {
    /// [`TaskEvent::Observe`].
    Observe,
}

impl TaskEventKind {
    /// Every kind.
    pub const ALL: &'static [TaskEventKind] = &[TaskEventKind::Observe];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskEventKind::Observe => "observe",
        }
    }
}

impl fmt::Display for TaskEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TaskEvent {
    /// The event's kind.
    pub fn kind(&self) -> TaskEventKind {
        match self {
            TaskEvent::Observe { .. } => TaskEventKind::Observe,
        }
    }
}

use TaskEventKind as K;
use TaskStatus as S;

/// The task machine's transition table: forward moves and self-loops only.
pub const TASK_ROWS: &[Row<TaskStatus, TaskEventKind>] = &[
    row(S::Pending, K::Observe, S::Pending),
    row(S::Pending, K::Observe, S::Waiting),
    row(S::Pending, K::Observe, S::Running),
    row(S::Pending, K::Observe, S::Completed),
    row(S::Pending, K::Observe, S::Failed),
    row(S::Pending, K::Observe, S::Terminated),
    row(S::Waiting, K::Observe, S::Waiting),
    row(S::Waiting, K::Observe, S::Running),
    row(S::Waiting, K::Observe, S::Completed),
    row(S::Waiting, K::Observe, S::Failed),
    row(S::Waiting, K::Observe, S::Terminated),
    row(S::Running, K::Observe, S::Running),
    row(S::Running, K::Observe, S::Completed),
    row(S::Running, K::Observe, S::Failed),
    row(S::Running, K::Observe, S::Terminated),
];

/// The task machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskMachine;

impl Machine for TaskMachine {
    const NAME: &'static str = "task";
    type State = Task;
    type Event = TaskEvent;
    type Status = TaskStatus;
    type EventKind = TaskEventKind;

    fn initial() -> TaskStatus {
        TaskStatus::Pending
    }

    fn statuses() -> &'static [TaskStatus] {
        TaskStatus::ALL
    }

    fn event_kinds() -> &'static [TaskEventKind] {
        TaskEventKind::ALL
    }

    fn rows() -> &'static [Row<TaskStatus, TaskEventKind>] {
        TASK_ROWS
    }

    fn status_name(status: TaskStatus) -> &'static str {
        status.as_str()
    }

    fn event_name(kind: TaskEventKind) -> &'static str {
        kind.as_str()
    }

    fn is_terminal(status: TaskStatus) -> bool {
        status.is_terminal()
    }

    fn status(state: &Task) -> TaskStatus {
        state.status
    }

    fn kind(event: &TaskEvent) -> TaskEventKind {
        event.kind()
    }

    fn step(
        state: &Task,
        event: &TaskEvent,
        now: Timestamp,
    ) -> Result<(Task, Vec<Effect>), Rejected> {
        let from = state.status;
        let kind = event.kind();
        require_pair::<Self>(from, kind)?;
        let TaskEvent::Observe { status, message, component_results } = event;
        require_row::<Self>(from, kind, *status)?;
        if *status == state.status
            && *message == state.message
            && *component_results == state.component_results
        {
            return Ok((state.clone(), Vec::new()));
        }
        let mut next = state.clone();
        next.status = *status;
        next.message.clone_from(message);
        next.component_results.clone_from(component_results);
        next.updated_at = now;
        Ok((next, vec![Effect::PersistTask(state.id.clone())]))
    }
}
