//! `Handle`: the only way into the reducer. Cloneable; every call sends a `ReducerInput` and
//! awaits the reducer's reply on a oneshot channel. Commands are answered only after their event
//! is durable.

use crate::protocol::{
    Command, CommandError, ComponentFilter, CreateRunOutcome, EventsPage, InventorySummary, Query,
    QueryReply, RackDetail, ReducerInput, Reply,
};
use std::time::Duration;
use steward_proto::{
    ComponentId, ComponentView, CreateRunRequest, EventRecord, HistoryEntry, Hold, InventoryUpsert,
    Observation, Rack, RackId, Run, RunId, ServiceState, Target,
};
use tokio::sync::{broadcast, mpsc, oneshot};

/// A cloneable handle on a running reducer: the one way in for the HTTP API, the CLI's server
/// and embedding daemons. Commands are answered after their event is durable; queries read the
/// reducer's in-memory state (see [`crate::Runtime`] for a full example).
///
/// ```
/// # async fn example(handle: steward_runtime::Handle) -> Result<(), steward_runtime::CommandError> {
/// use steward_proto::{ComponentId, ServiceState};
/// let component = ComponentId::new("rack-001-compute-01");
/// let view = handle
///     .set_service_state(component.clone(), ServiceState::new("maintenance"), Some("swap PSU".into()), "alice")
///     .await?;
/// assert_eq!(view.service_state.as_str(), "maintenance");
/// let history = handle.history(component).await?;
/// assert_eq!(history.last().map(|h| h.initiator.as_str()), Some("alice"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Handle {
    pub(crate) inputs: mpsc::Sender<ReducerInput>,
    pub(crate) events: broadcast::Sender<EventRecord>,
}

impl Handle {
    async fn command(&self, command: Command) -> Result<Reply, CommandError> {
        let (reply, answer) = oneshot::channel();
        self.inputs
            .send(ReducerInput::Command { command, reply })
            .await
            .map_err(|_| CommandError::ShuttingDown)?;
        answer.await.map_err(|_| CommandError::ShuttingDown)?
    }

    async fn query(&self, query: Query) -> Result<QueryReply, CommandError> {
        let (reply, answer) = oneshot::channel();
        self.inputs
            .send(ReducerInput::Query { query, reply })
            .await
            .map_err(|_| CommandError::ShuttingDown)?;
        answer.await.map_err(|_| CommandError::ShuttingDown)?
    }

    /// Imports Core's inventory: new racks and components are added; existing ones get
    /// Core-owned fields only (kind, serial, model, position, firmware, power), never the
    /// operator's names, labels or locations.
    pub async fn import_core_inventory(
        &self,
        inventory: InventoryUpsert,
    ) -> Result<InventorySummary, CommandError> {
        match self.command(Command::ImportCoreInventory { inventory }).await? {
            Reply::Inventory(summary) => Ok(summary),
            other => Err(unexpected(other)),
        }
    }

    /// Upserts racks with their components (the operator's inventory: every field is set).
    pub async fn upsert_inventory(
        &self,
        inventory: InventoryUpsert,
        initiator: &str,
    ) -> Result<InventorySummary, CommandError> {
        match self
            .command(Command::UpsertInventory { inventory, initiator: initiator.into() })
            .await?
        {
            Reply::Inventory(summary) => Ok(summary),
            other => Err(unexpected(other)),
        }
    }

    /// Pushes raw Core observations on behalf of `initiator`; returns how many changed a status.
    pub async fn observe(
        &self,
        observations: Vec<Observation>,
        initiator: &str,
    ) -> Result<usize, CommandError> {
        match self.command(Command::Observe { observations, initiator: initiator.into() }).await? {
            Reply::Changed(changed) => Ok(changed),
            other => Err(unexpected(other)),
        }
    }

    /// Moves a component to another service state.
    pub async fn set_service_state(
        &self,
        component: ComponentId,
        to: ServiceState,
        note: Option<String>,
        initiator: &str,
    ) -> Result<ComponentView, CommandError> {
        let command = Command::SetServiceState { component, to, note, initiator: initiator.into() };
        match self.command(command).await? {
            Reply::Component(view) => Ok(*view),
            other => Err(unexpected(other)),
        }
    }

    /// Moves a component to any state of the service table regardless of the transitions (an
    /// administrative correction, e.g. before a start whose new table drops the component's
    /// state). The note is required and recorded in the history as `forced: NOTE`.
    pub async fn force_service_state(
        &self,
        component: ComponentId,
        to: ServiceState,
        note: String,
        initiator: &str,
    ) -> Result<ComponentView, CommandError> {
        let command =
            Command::ForceServiceState { component, to, note, initiator: initiator.into() };
        match self.command(command).await? {
            Reply::Component(view) => Ok(*view),
            other => Err(unexpected(other)),
        }
    }

    /// Creates (and starts) a run, or plans it without creating it when `dry_run` is set.
    pub async fn create_run(
        &self,
        request: CreateRunRequest,
        initiator: &str,
    ) -> Result<CreateRunOutcome, CommandError> {
        match self
            .command(Command::CreateRun { request: Box::new(request), initiator: initiator.into() })
            .await?
        {
            Reply::Created(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    /// Creates a new run over a finished run's failed (and, unless `failed_only`, skipped)
    /// targets with the same operation and policy, linked to the first both ways.
    pub async fn rerun_run(
        &self,
        run: RunId,
        failed_only: bool,
        initiator: &str,
    ) -> Result<Run, CommandError> {
        let command = Command::RerunRun { run, failed_only, initiator: initiator.into() };
        match self.command(command).await? {
            Reply::Created(CreateRunOutcome::Created(run)) => Ok(*run),
            other => Err(unexpected(other)),
        }
    }

    /// Pauses a running run.
    pub async fn pause_run(
        &self,
        run: RunId,
        reason: Option<String>,
        initiator: &str,
    ) -> Result<Run, CommandError> {
        self.run_command(Command::PauseRun { run, reason, initiator: initiator.into() }).await
    }

    /// Resumes a paused run (acknowledging the failures that tripped a safety gate).
    pub async fn resume_run(&self, run: RunId, initiator: &str) -> Result<Run, CommandError> {
        self.run_command(Command::ResumeRun { run, initiator: initiator.into() }).await
    }

    /// Cancels a run; submitted tasks get a best-effort cancel.
    pub async fn cancel_run(
        &self,
        run: RunId,
        reason: Option<String>,
        initiator: &str,
    ) -> Result<Run, CommandError> {
        self.run_command(Command::CancelRun { run, reason, initiator: initiator.into() }).await
    }

    /// Opens the next wave of a run paused at a wave gate.
    pub async fn advance_run(
        &self,
        run: RunId,
        expected_wave: Option<u32>,
        initiator: &str,
    ) -> Result<Run, CommandError> {
        self.run_command(Command::AdvanceRun { run, expected_wave, initiator: initiator.into() })
            .await
    }

    async fn run_command(&self, command: Command) -> Result<Run, CommandError> {
        match self.command(command).await? {
            Reply::Run(run) => Ok(*run),
            other => Err(unexpected(other)),
        }
    }

    /// Every rack.
    pub async fn racks(&self) -> Result<Vec<Rack>, CommandError> {
        match self.query(Query::Racks).await? {
            QueryReply::Racks(racks) => Ok(racks),
            other => Err(unexpected_query(other)),
        }
    }

    /// One rack with its components.
    pub async fn rack(&self, id: RackId) -> Result<RackDetail, CommandError> {
        match self.query(Query::Rack(id)).await? {
            QueryReply::Rack(rack) => Ok(*rack),
            other => Err(unexpected_query(other)),
        }
    }

    /// Components matching `filter`, in id order.
    pub async fn components(
        &self,
        filter: ComponentFilter,
    ) -> Result<Vec<ComponentView>, CommandError> {
        match self.query(Query::Components(filter)).await? {
            QueryReply::Components(components) => Ok(components),
            other => Err(unexpected_query(other)),
        }
    }

    /// One component.
    pub async fn component(&self, id: ComponentId) -> Result<ComponentView, CommandError> {
        match self.query(Query::Component(id)).await? {
            QueryReply::Component(view) => Ok(*view),
            other => Err(unexpected_query(other)),
        }
    }

    /// A component's service-state history, oldest first.
    pub async fn history(&self, id: ComponentId) -> Result<Vec<HistoryEntry>, CommandError> {
        match self.query(Query::History(id)).await? {
            QueryReply::History(history) => Ok(history),
            other => Err(unexpected_query(other)),
        }
    }

    /// Every run, newest first.
    pub async fn runs(&self) -> Result<Vec<Run>, CommandError> {
        match self.query(Query::Runs).await? {
            QueryReply::Runs(runs) => Ok(runs),
            other => Err(unexpected_query(other)),
        }
    }

    /// One run.
    pub async fn run(&self, id: RunId) -> Result<Run, CommandError> {
        match self.query(Query::Run(id)).await? {
            QueryReply::Run(run) => Ok(*run),
            other => Err(unexpected_query(other)),
        }
    }

    /// A run's targets in dispatch order, each with its current hold (individual or run-wide).
    pub async fn targets(&self, id: RunId) -> Result<Vec<Target>, CommandError> {
        match self.query(Query::Targets(id)).await? {
            QueryReply::Targets(targets) => Ok(targets),
            other => Err(unexpected_query(other)),
        }
    }

    /// The event log after `after`, at most `limit` events; waits up to `wait` for the first one.
    pub async fn events(
        &self,
        after: u64,
        limit: u32,
        wait: Duration,
    ) -> Result<EventsPage, CommandError> {
        let mut subscription = self.events.subscribe();
        let page = self.events_page(after, limit).await?;
        if !page.events.is_empty() || wait.is_zero() {
            return Ok(page);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, subscription.recv()).await {
                // Timed out or the reducer is gone: the (empty) page stands.
                Err(_) | Ok(Err(broadcast::error::RecvError::Closed)) => return Ok(page),
                Ok(Ok(record)) if record.seq <= after => continue,
                // A new event, or so many that the subscription lagged: read the log.
                Ok(_) => return self.events_page(after, limit).await,
            }
        }
    }

    async fn events_page(&self, after: u64, limit: u32) -> Result<EventsPage, CommandError> {
        match self.query(Query::Events { after, limit }).await? {
            QueryReply::Events(page) => Ok(page),
            other => Err(unexpected_query(other)),
        }
    }

    /// Every configured webhook with its backlog, parked count and last success and failure.
    pub async fn webhooks(&self) -> Result<Vec<crate::protocol::WebhookView>, CommandError> {
        match self.query(Query::Webhooks).await? {
            QueryReply::Webhooks(views) => Ok(views),
            other => Err(unexpected_query(other)),
        }
    }

    /// Requeues every parked delivery of webhook `name`; answers how many (404 when no webhook
    /// has that name).
    pub async fn redeliver_webhook(
        &self,
        name: &str,
        initiator: &str,
    ) -> Result<u64, CommandError> {
        let command =
            Command::RedeliverWebhook { webhook: name.to_string(), initiator: initiator.into() };
        match self.command(command).await? {
            Reply::Requeued(count) => Ok(count),
            other => Err(unexpected(other)),
        }
    }

    /// Every event as it becomes durable.
    pub fn subscribe(&self) -> broadcast::Receiver<EventRecord> {
        self.events.subscribe()
    }

    /// The current hold of each waiting target of a run (individual holds and run-wide holds).
    pub async fn holds(
        &self,
        id: RunId,
    ) -> Result<Vec<(steward_proto::TargetId, Hold)>, CommandError> {
        let targets = self.targets(id).await?;
        Ok(targets.into_iter().filter_map(|t| t.hold.map(|hold| (t.id, hold))).collect())
    }
}

fn unexpected(reply: Reply) -> CommandError {
    CommandError::Store(format!("internal: unexpected reply {}", reply.name()))
}

fn unexpected_query(reply: QueryReply) -> CommandError {
    CommandError::Store(format!("internal: unexpected reply {}", reply.name()))
}
