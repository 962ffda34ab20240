//! The `Core` trait (the system that owns the hardware), its request/report shapes and its error
//! type. Adapters implement the trait elsewhere (the simulated Core in `steward-sim`) or in the
//! embedding daemon.
//!
//! Steward never drives hardware itself: it observes Core's raw controller states and asks Core
//! to run one task per rack. Every submission carries an idempotency key, so a process that dies
//! between submitting and recording can ask [`Core::find_task`] instead of submitting twice.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use steward_proto::{
    ComponentId, IdempotencyKey, Observation, Operation, RackId, RunId, TargetId, TaskId,
    TaskStatus,
};
use steward_state_machine::SubmitTask;

/// The lower layer that owns the hardware, as Steward's runtime sees it.
///
/// Implementations must be idempotent on [`TaskRequest::idempotency_key`]: a second `submit`
/// with a key Core already has returns [`SubmitOutcome::Accepted`] with the existing task.
#[async_trait::async_trait]
pub trait Core: Send + Sync + 'static {
    /// One full sync: every component's raw controller state.
    async fn observe(&self) -> Result<Vec<Observation>, CoreError>;

    /// Submits one task (one rack, one operation, the selected components).
    async fn submit(&self, request: &TaskRequest) -> Result<SubmitOutcome, CoreError>;

    /// The current status of a task.
    async fn task_status(&self, task: &TaskId) -> Result<TaskReport, CoreError>;

    /// The task submitted with `key`, if Core has one.
    async fn find_task(&self, key: &IdempotencyKey) -> Result<Option<TaskReport>, CoreError>;

    /// Cancels a task; cancelling a finished task changes nothing and succeeds.
    async fn cancel(&self, task: &TaskId) -> Result<(), CoreError>;
}

/// One task submission: an operation over some components of one rack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    /// Submission key, derived from (run, target, attempt).
    pub idempotency_key: IdempotencyKey,
    /// The run the task serves.
    pub run_id: RunId,
    /// The target the task serves.
    pub target_id: TargetId,
    /// The rack.
    pub rack_id: RackId,
    /// What to do.
    pub operation: Operation,
    /// The components on the rack to do it to.
    pub components: Vec<ComponentId>,
}

impl From<SubmitTask> for TaskRequest {
    /// The request is exactly what the pure core emitted; the runtime adds nothing.
    fn from(submit: SubmitTask) -> Self {
        TaskRequest {
            idempotency_key: submit.idempotency_key,
            run_id: submit.run_id,
            target_id: submit.target_id,
            rack_id: submit.rack_id,
            operation: submit.operation,
            components: submit.components.to_vec(),
        }
    }
}

/// Core's answer to a submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SubmitOutcome {
    /// The task exists (new, or the existing one for the same key).
    Accepted {
        /// Core's task id.
        task_id: TaskId,
    },
    /// Another task holds the rack; retry later with the same key.
    Conflict {
        /// What conflicts.
        message: String,
    },
    /// Core refuses the request as such (unknown components, empty selection, ...).
    Rejected {
        /// Why.
        message: String,
    },
}

/// A task as Core reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskReport {
    /// Core's task id.
    pub task_id: TaskId,
    /// The key it was submitted with.
    pub idempotency_key: IdempotencyKey,
    /// Task status.
    pub status: TaskStatus,
    /// Core's human message.
    pub message: String,
    /// Status per component of the request.
    pub component_results: BTreeMap<ComponentId, TaskStatus>,
}

/// Errors talking to Core.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// Core cannot be reached or cannot answer now.
    #[error("core unavailable: {0}")]
    Unavailable(String),
    /// No task with this id.
    #[error("core has no task {task}")]
    NotFound {
        /// The task asked for.
        task: TaskId,
    },
    /// No component with this id.
    #[error("core has no component {component}")]
    UnknownComponent {
        /// The component asked for.
        component: ComponentId,
    },
    /// Core answered something Steward cannot understand.
    #[error("core protocol error: {0}")]
    Protocol(String),
    /// The adapter's configuration is invalid.
    #[error("invalid core config at {field}: {message}")]
    InvalidConfig {
        /// Field path, e.g. `core.sim.latency.min_ms`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The adapter's own durable journal could not be read or written.
    #[error("core journal {path}: {message}")]
    Journal {
        /// The journal file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl CoreError {
    /// Whether the same call may succeed later (transient unavailability, a failed journal
    /// write); not-found, protocol and config errors are permanent.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CoreError::Unavailable(_) | CoreError::Journal { .. })
    }
}
