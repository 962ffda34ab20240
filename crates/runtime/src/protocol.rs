//! The command/query protocol between the reducer and everything that talks to it: the
//! [`ReducerInput`] enum the reducer thread receives, the commands, queries and their replies,
//! the error type every caller sees, the reply documents, and the Core calls the reducer hands
//! to the applier after a commit. The reducer, the [`crate::Handle`], the applier, the pollers
//! and the webhook workers all import this module; it imports none of them.

use crate::core::{CoreError, SubmitOutcome, TaskReport, TaskRequest};
use crate::store::{OutboxRow, WebhookStats};
use serde::{Deserialize, Serialize};
use steward_proto::{
    ComponentId, ComponentKind, ComponentView, CreateRunRequest, EventRecord, HistoryEntry,
    IdempotencyKey, InventoryUpsert, Observation, Phase, Rack, RackId, Run, RunId, ServiceState,
    Target, TargetId, TaskId, Timestamp, ValidationErrors,
};
use steward_state_machine::HookCall;
use tokio::sync::oneshot;

/// Why the reducer refused a command or query.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CommandError {
    /// The named thing does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// What kind of thing.
        what: String,
        /// Its id.
        id: String,
    },
    /// The transition is not allowed from the current state.
    #[error("{message}")]
    IllegalTransition {
        /// Human message naming from, to/event and what is allowed.
        message: String,
        /// Allowed targets (service states) or events (runs).
        allowed: Vec<String>,
    },
    /// The request is invalid; every problem names its field.
    #[error("invalid request: {0}")]
    Invalid(ValidationErrors),
    /// The store failed; nothing was changed.
    #[error("store error: {0}")]
    Store(String),
    /// The runtime is shutting down.
    #[error("steward is shutting down")]
    ShuttingDown,
}

/// Counts of an inventory upsert.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventorySummary {
    /// Racks in the document.
    pub racks: usize,
    /// Components in the document.
    pub components: usize,
}

/// A rack with its components (for `GET /v1/racks/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RackDetail {
    /// The rack.
    #[serde(flatten)]
    pub rack: Rack,
    /// Its components with status and service state.
    pub components: Vec<ComponentView>,
}

/// Filter for component listings; every field optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentFilter {
    /// Only this rack.
    pub rack: Option<RackId>,
    /// Only this kind.
    pub kind: Option<ComponentKind>,
    /// Only this (effective) phase.
    pub phase: Option<Phase>,
    /// Only this service state.
    pub service_state: Option<ServiceState>,
}

/// What `create_run` produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CreateRunOutcome {
    /// The run was created (and started).
    Created(Box<Run>),
    /// Dry run: what the run would look like; nothing was created.
    DryRun(Box<DryRun>),
}

/// A dry run's plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DryRun {
    /// Always true.
    pub dry_run: bool,
    /// The run as it would be created.
    pub run: Run,
    /// Its targets in dispatch order, each with the hold it would have now.
    pub targets: Vec<Target>,
}

/// A page of the event log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventsPage {
    /// Events after the requested seq, oldest first.
    pub events: Vec<EventRecord>,
    /// The seq to ask after next time.
    pub next: u64,
}

/// A reply channel for a command.
pub type CommandReplySender = oneshot::Sender<Result<Reply, CommandError>>;

/// Everything the reducer accepts.
#[derive(Debug)]
pub enum ReducerInput {
    /// A command with a reply channel; the reply comes once the batch is durable.
    Command {
        /// What to do.
        command: Command,
        /// Where the answer goes.
        reply: CommandReplySender,
    },
    /// A read with a reply channel; answered after the batch it arrived in has committed.
    Query {
        /// What to read.
        query: Query,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<QueryReply, CommandError>>,
    },
    /// One full inventory sync from Core.
    CoreObservations(Vec<Observation>),
    /// Task statuses polled from Core, each with the target it serves.
    TaskReports(Vec<(TargetId, TaskReport)>),
    /// What Core said to a submission.
    SubmitResult {
        /// The target the submission serves.
        target_id: TargetId,
        /// The submission's idempotency key.
        key: IdempotencyKey,
        /// Core's answer.
        result: Result<SubmitOutcome, CoreError>,
    },
    /// A webhook delivery was acknowledged.
    OutboxDelivered {
        /// The outbox row.
        id: i64,
    },
    /// A webhook delivery failed for the last allowed time: park it (dead letter).
    OutboxParked {
        /// The outbox row.
        id: i64,
        /// Its webhook.
        webhook: String,
        /// Why it failed.
        error: String,
    },
    /// A webhook delivery failed; try again at `next_attempt_at`.
    OutboxFailed {
        /// The outbox row.
        id: i64,
        /// Earliest next attempt.
        next_attempt_at: Timestamp,
        /// Why it failed.
        error: String,
    },
    /// The hook runner started a target's hook (logged as `hook_started`).
    HookStarted {
        /// The target.
        target_id: TargetId,
        /// The hook invocation.
        invocation_id: String,
    },
    /// A target's hook reported (logged as `hook_finished`).
    HookFinished {
        /// The target.
        target_id: TargetId,
        /// The hook invocation.
        invocation_id: String,
        /// Exit 0 / 2xx.
        ok: bool,
        /// The hook's last line of output, or why it failed.
        message: String,
    },
    /// Time passed: plan.
    Tick,
    /// Commit what is pending and stop.
    Shutdown,
}

/// Commands that change state; every one names its initiator for the audit trail.
#[derive(Debug)]
pub enum Command {
    /// Upsert racks and their components.
    UpsertInventory {
        /// The document.
        inventory: InventoryUpsert,
        /// Who asked.
        initiator: String,
    },
    /// Core's inventory, imported at start: adds what is new and updates Core-owned fields
    /// only, never operator-owned ones (names, labels, locations).
    ImportCoreInventory {
        /// Core's fleet.
        inventory: InventoryUpsert,
    },
    /// Push raw Core states.
    Observe {
        /// The observations.
        observations: Vec<Observation>,
        /// Who pushed them.
        initiator: String,
    },
    /// Move a component to another service state.
    SetServiceState {
        /// The component.
        component: ComponentId,
        /// The new state.
        to: ServiceState,
        /// The operator's note.
        note: Option<String>,
        /// Who asked.
        initiator: String,
    },
    /// Move a component to any state of the service table, bypassing the transitions (admin;
    /// audited with a required note).
    ForceServiceState {
        /// The component.
        component: ComponentId,
        /// The new state.
        to: ServiceState,
        /// Why (required).
        note: String,
        /// Who asked.
        initiator: String,
    },
    /// Create (and start) a run, or plan one with `dry_run`.
    CreateRun {
        /// The request.
        request: Box<CreateRunRequest>,
        /// Who asked.
        initiator: String,
    },
    /// Create (and start) a new run over a finished run's failed (and, unless `failed_only`,
    /// skipped) targets, with the same operation and policy, linked to the first.
    RerunRun {
        /// The finished run.
        run: RunId,
        /// Only failed and terminated targets.
        failed_only: bool,
        /// Who asked.
        initiator: String,
    },
    /// Pause a running run.
    PauseRun {
        /// The run.
        run: RunId,
        /// Why.
        reason: Option<String>,
        /// Who asked.
        initiator: String,
    },
    /// Resume a paused run.
    ResumeRun {
        /// The run.
        run: RunId,
        /// Who asked.
        initiator: String,
    },
    /// Cancel a run that has not finished.
    CancelRun {
        /// The run.
        run: RunId,
        /// Why.
        reason: Option<String>,
        /// Who asked.
        initiator: String,
    },
    /// Requeue every parked delivery of a webhook (admin).
    RedeliverWebhook {
        /// The webhook's name.
        webhook: String,
        /// Who asked.
        initiator: String,
    },
    /// Open the next wave of a run paused at a wave gate.
    AdvanceRun {
        /// The run.
        run: RunId,
        /// Refuse unless this is the wave that would open.
        expected_wave: Option<u32>,
        /// Who asked.
        initiator: String,
    },
}

/// Replies to commands.
#[derive(Debug)]
pub enum Reply {
    /// Counts of an inventory upsert.
    Inventory(InventorySummary),
    /// How many observations changed something.
    Changed(usize),
    /// A component after the command.
    Component(Box<ComponentView>),
    /// A created run or a dry run's plan.
    Created(CreateRunOutcome),
    /// A run after the command.
    Run(Box<Run>),
    /// How many parked deliveries were requeued.
    Requeued(u64),
}

impl Reply {
    /// The reply's name, for "unexpected reply" errors.
    pub fn name(&self) -> &'static str {
        match self {
            Reply::Inventory(_) => "inventory",
            Reply::Changed(_) => "changed",
            Reply::Component(_) => "component",
            Reply::Created(_) => "created",
            Reply::Run(_) => "run",
            Reply::Requeued(_) => "requeued",
        }
    }
}

/// Reads.
#[derive(Debug)]
pub enum Query {
    /// Every rack.
    Racks,
    /// One rack with its components.
    Rack(RackId),
    /// Components matching a filter.
    Components(ComponentFilter),
    /// One component.
    Component(ComponentId),
    /// A component's service-state history.
    History(ComponentId),
    /// Every run, newest first.
    Runs,
    /// One run.
    Run(RunId),
    /// A run's targets with their holds.
    Targets(RunId),
    /// A page of the event log.
    Events {
        /// Events after this seq.
        after: u64,
        /// At most this many.
        limit: u32,
    },
    /// Task ids of submitted targets, for the task-status poller.
    SubmittedTasks,
    /// Every configured webhook with its delivery state.
    Webhooks,
    /// Undelivered outbox rows of one webhook that are due.
    OutboxDue {
        /// The webhook's name.
        webhook: String,
        /// At most this many.
        limit: u32,
    },
}

/// Answers to reads, one per [`Query`] variant.
#[derive(Debug)]
pub enum QueryReply {
    /// Every rack.
    Racks(Vec<Rack>),
    /// One rack.
    Rack(Box<RackDetail>),
    /// Components.
    Components(Vec<ComponentView>),
    /// One component.
    Component(Box<ComponentView>),
    /// History, oldest first.
    History(Vec<HistoryEntry>),
    /// Runs.
    Runs(Vec<Run>),
    /// One run.
    Run(Box<Run>),
    /// Targets.
    Targets(Vec<Target>),
    /// A page of events.
    Events(EventsPage),
    /// (task, target) of every submitted target.
    SubmittedTasks(Vec<(TaskId, TargetId)>),
    /// Due outbox rows.
    Outbox(Vec<OutboxRow>),
    /// Every configured webhook with its delivery state.
    Webhooks(Vec<WebhookView>),
}

impl QueryReply {
    /// The reply's name, for "unexpected reply" errors.
    pub fn name(&self) -> &'static str {
        match self {
            QueryReply::Racks(_) => "racks",
            QueryReply::Rack(_) => "rack",
            QueryReply::Components(_) => "components",
            QueryReply::Component(_) => "component",
            QueryReply::History(_) => "history",
            QueryReply::Runs(_) => "runs",
            QueryReply::Run(_) => "run",
            QueryReply::Targets(_) => "targets",
            QueryReply::Events(_) => "events",
            QueryReply::SubmittedTasks(_) => "submitted_tasks",
            QueryReply::Outbox(_) => "outbox",
            QueryReply::Webhooks(_) => "webhooks",
        }
    }
}

/// One webhook as `GET /v1/webhooks` shows it: its name and events (never its URL or secret)
/// and its delivery state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebhookView {
    /// The webhook's name.
    pub name: String,
    /// Notification kinds it receives (empty: all).
    pub events: Vec<String>,
    /// Backlog, parked count, last success and last failure.
    #[serde(flatten)]
    pub stats: WebhookStats,
}

/// Work that may only start after the batch recording its intent has committed: the Core calls
/// the reducer hands to the applier.
#[derive(Clone, Debug, PartialEq)]
pub enum CoreCall {
    /// Submit a task if Core has none under its key (adopt it otherwise).
    Submit {
        /// The full request, as the pure core emitted it.
        request: TaskRequest,
    },
    /// Cancel a task, best effort.
    Cancel {
        /// Core's task id.
        task_id: TaskId,
    },
    /// Run a site hook (not a Core call, but the same after-commit discipline).
    RunHook(HookCall),
}
