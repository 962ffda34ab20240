//! The reducer: the single mutator. One thread owns the `Fleet` and the `Store`; it drains its
//! input queue, applies every input through the pure machines and the planner, commits the
//! resulting event-log rows and state rows in one transaction (group commit), and only then
//! replies, publishes events and hands Core calls to the applier.

use crate::applier::AfterCommit;
use crate::clock::SharedClock;
use crate::core::{CoreError, SubmitOutcome, TaskReport};
use crate::handle::{
    CommandError, ComponentFilter, CreateRunOutcome, DryRun, EventsPage, InventorySummary,
    RackDetail,
};
use crate::metrics::Metrics;
use crate::store::{ComponentRow, OutboxRow, Store, WriteBatch};
use crate::webhooks::WebhookConfig;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use steward_planner::{PendingKey, PlannerConfig};
use steward_proto::{
    ComponentId, ComponentView, CreateRunRequest, EventRecord, FieldError, HistoryEntry, Hold,
    IdempotencyKey, InventoryUpsert, Observation, Rack, RackId, Run, RunId, ServiceState, Target,
    TargetId, TargetStatus, TaskId, Timestamp, ValidationErrors,
};
use steward_state_machine::{Effect, Fleet, FleetEvent, Notification, Rejected};
use tokio::sync::{broadcast, mpsc, oneshot};

/// The initiator recorded for what the planner and the Core pollers do.
pub const SYSTEM_INITIATOR: &str = "steward";

/// Everything the reducer accepts.
#[derive(Debug)]
pub(crate) enum ReducerInput {
    /// A command with a reply channel.
    Command { command: Command, reply: oneshot::Sender<Result<Reply, CommandError>> },
    /// A read with a reply channel.
    Query { query: Query, reply: oneshot::Sender<Result<QueryReply, CommandError>> },
    /// One full inventory sync from Core.
    CoreObservations(Vec<Observation>),
    /// Task statuses polled from Core.
    /// Task statuses polled from Core, each with the target it serves.
    TaskReports(Vec<(TargetId, TaskReport)>),
    /// What Core said to a submission.
    SubmitResult {
        target_id: TargetId,
        key: IdempotencyKey,
        result: Result<SubmitOutcome, CoreError>,
    },
    /// A webhook delivery was acknowledged.
    OutboxDelivered { id: i64 },
    /// A webhook delivery failed; try again at `next_attempt_at`.
    OutboxFailed { id: i64, next_attempt_at: Timestamp, error: String },
    /// Time passed: plan.
    Tick,
    /// Commit what is pending and stop.
    Shutdown,
}

/// Commands that change state.
#[derive(Debug)]
pub(crate) enum Command {
    UpsertInventory {
        inventory: InventoryUpsert,
        initiator: String,
    },
    Observe {
        observations: Vec<Observation>,
        initiator: String,
    },
    SetServiceState {
        component: ComponentId,
        to: ServiceState,
        note: Option<String>,
        initiator: String,
    },
    CreateRun {
        request: Box<CreateRunRequest>,
        initiator: String,
    },
    PauseRun {
        run: RunId,
        reason: Option<String>,
        initiator: String,
    },
    ResumeRun {
        run: RunId,
        initiator: String,
    },
    CancelRun {
        run: RunId,
        reason: Option<String>,
        initiator: String,
    },
    AdvanceRun {
        run: RunId,
        expected_wave: Option<u32>,
        initiator: String,
    },
}

/// Replies to commands.
#[derive(Debug)]
pub(crate) enum Reply {
    Inventory(InventorySummary),
    Changed(usize),
    Component(Box<ComponentView>),
    Created(CreateRunOutcome),
    Run(Box<Run>),
}

impl Reply {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Reply::Inventory(_) => "inventory",
            Reply::Changed(_) => "changed",
            Reply::Component(_) => "component",
            Reply::Created(_) => "created",
            Reply::Run(_) => "run",
        }
    }
}

/// Reads.
#[derive(Debug)]
pub(crate) enum Query {
    Racks,
    Rack(RackId),
    Components(ComponentFilter),
    Component(ComponentId),
    History(ComponentId),
    Runs,
    Run(RunId),
    Targets(RunId),
    Events {
        after: u64,
        limit: u32,
    },
    /// Task ids of submitted targets, for the task-status poller.
    SubmittedTasks,
    /// Undelivered outbox rows of one webhook that are due.
    OutboxDue {
        webhook: String,
        limit: u32,
    },
}

/// Answers to reads.
#[derive(Debug)]
pub(crate) enum QueryReply {
    Racks(Vec<Rack>),
    Rack(Box<RackDetail>),
    Components(Vec<ComponentView>),
    Component(Box<ComponentView>),
    History(Vec<HistoryEntry>),
    Runs(Vec<Run>),
    Run(Box<Run>),
    Targets(Vec<Target>),
    Events(EventsPage),
    SubmittedTasks(Vec<(TaskId, TargetId)>),
    Outbox(Vec<OutboxRow>),
}

impl QueryReply {
    pub(crate) fn name(&self) -> &'static str {
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
        }
    }
}

type CommandReply = (oneshot::Sender<Result<Reply, CommandError>>, Result<Reply, CommandError>);

/// What one batch accumulates before its commit.
#[derive(Default)]
struct Batch {
    records: Vec<EventRecord>,
    racks: BTreeSet<RackId>,
    /// Components to write, in the order their effects came (the store numbers new components
    /// in write order to keep each rack's inventory order).
    components: Vec<ComponentId>,
    components_seen: HashSet<ComponentId>,
    runs: BTreeSet<RunId>,
    targets: BTreeSet<TargetId>,
    tasks: BTreeSet<TaskId>,
    history: Vec<HistoryEntry>,
    outbox: Vec<OutboxRow>,
    outbox_delivered: Vec<i64>,
    outbox_failed: Vec<(i64, Timestamp, String)>,
    after_commit: Vec<AfterCommit>,
    replies: Vec<CommandReply>,
    changed: bool,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.replies.is_empty()
            && self.outbox_delivered.is_empty()
            && self.outbox_failed.is_empty()
    }
}

/// Settings the reducer runs with.
pub(crate) struct ReducerSettings {
    pub planner: PlannerConfig,
    pub webhooks: Vec<WebhookConfig>,
    pub max_batch: usize,
}

/// The reducer's state: the fleet, the store and the bookkeeping around them.
pub(crate) struct Reducer {
    fleet: Fleet,
    store: Store,
    clock: SharedClock,
    settings: ReducerSettings,
    next_seq: u64,
    next_run_number: u64,
    /// Run-wide holds of the last plan: each covers the run's pending targets from its key on.
    run_holds: BTreeMap<RunId, Vec<(PendingKey, Hold)>>,
    events: broadcast::Sender<EventRecord>,
    applier: mpsc::UnboundedSender<AfterCommit>,
    metrics: Arc<Metrics>,
    /// Whether batches were committed since the last WAL checkpoint.
    uncheckpointed: bool,
}

impl Reducer {
    /// Builds the reducer around a loaded fleet.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        fleet: Fleet,
        store: Store,
        last_seq: u64,
        clock: SharedClock,
        settings: ReducerSettings,
        events: broadcast::Sender<EventRecord>,
        applier: mpsc::UnboundedSender<AfterCommit>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let next_run_number = fleet
            .runs
            .keys()
            .filter_map(|id| id.as_str().strip_prefix("run-").and_then(|n| n.parse::<u64>().ok()))
            .max()
            .unwrap_or(0)
            + 1;
        Self {
            fleet,
            store,
            clock,
            settings,
            next_seq: last_seq + 1,
            next_run_number,
            run_holds: BTreeMap::new(),
            events,
            applier,
            metrics,
            uncheckpointed: false,
        }
    }

    /// Recovery work after a restart: every claimed target may or may not have reached Core;
    /// re-issue its submission as submit-if-absent (the applier asks Core by key first).
    pub(crate) fn recover(&mut self) {
        let claimed: Vec<Target> = self
            .fleet
            .targets
            .values()
            .filter(|t| t.status == TargetStatus::Claimed)
            .cloned()
            .collect();
        for target in claimed {
            if let Some(after) = self.submission_for(&target) {
                let _ = self.applier.send(after);
            }
        }
    }

    fn submission_for(&self, target: &Target) -> Option<AfterCommit> {
        let run = self.fleet.runs.get(&target.run_id)?;
        Some(AfterCommit::Submit {
            request: crate::core::TaskRequest {
                idempotency_key: target.idempotency_key(),
                run_id: target.run_id.clone(),
                target_id: target.id.clone(),
                rack_id: target.rack_id.clone(),
                operation: run.operation.clone(),
                components: target.components.to_vec(),
            },
        })
    }

    /// The loop: block for the first input, drain up to `max_batch` more, process, commit.
    pub(crate) fn run(mut self, mut inputs: mpsc::Receiver<ReducerInput>) {
        let mut buffer = Vec::with_capacity(self.settings.max_batch);
        loop {
            let Some(first) = inputs.blocking_recv() else { break };
            buffer.push(first);
            while buffer.len() < self.settings.max_batch {
                match inputs.try_recv() {
                    Ok(input) => buffer.push(input),
                    Err(_) => break,
                }
            }
            match self.process(buffer.drain(..)) {
                Ok(false) => {}
                Ok(true) => break,
                Err(error) => {
                    tracing::error!(%error, "commit failed; the reducer stops so state is reloaded from the store");
                    break;
                }
            }
        }
        if let Err(error) = self.store.optimize() {
            tracing::warn!(%error, "PRAGMA optimize failed");
        }
        tracing::info!("reducer stopped");
    }

    /// Processes one batch of inputs and commits it. Returns whether a shutdown was requested.
    pub(crate) fn process(
        &mut self,
        inputs: impl IntoIterator<Item = ReducerInput>,
    ) -> Result<bool, CommandError> {
        let mut batch = Batch::default();
        let mut shutdown = false;
        let mut tick = false;
        for input in inputs {
            match input {
                ReducerInput::Shutdown => shutdown = true,
                ReducerInput::Tick => tick = true,
                other => self.handle_input(other, &mut batch),
            }
        }
        if tick || batch.changed {
            self.plan(&mut batch);
        }
        let wrote = !batch.records.is_empty();
        self.commit(batch)?;
        self.uncheckpointed |= wrote;
        if tick && !wrote && self.uncheckpointed {
            // A quiet tick: move the WAL into the database file now, so no later commit (and
            // the reply waiting on it) pays for a checkpoint.
            if let Err(error) = self.store.checkpoint() {
                tracing::warn!(%error, "WAL checkpoint failed");
            }
            self.uncheckpointed = false;
        }
        Ok(shutdown)
    }

    /// The fleet (read-only), for simulations and invariant checks.
    pub(crate) fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn handle_input(&mut self, input: ReducerInput, batch: &mut Batch) {
        match input {
            ReducerInput::Command { command, reply } => {
                let result = self.command(command, batch);
                batch.replies.push((reply, result));
            }
            ReducerInput::Query { query, reply } => {
                let _ = reply.send(self.query(query));
            }
            ReducerInput::CoreObservations(observations) => {
                for observation in observations {
                    // Core may report components Steward has not imported yet; they are ignored.
                    if self.fleet.components.contains_key(&observation.component_id) {
                        let _ = self.apply(observed_event(observation, ""), batch);
                    }
                }
            }
            ReducerInput::TaskReports(reports) => {
                for (target_id, report) in reports {
                    self.task_report(target_id, report, batch);
                }
            }
            ReducerInput::SubmitResult { target_id, key, result } => {
                self.submit_result(target_id, key, result, batch);
            }
            ReducerInput::OutboxDelivered { id } => batch.outbox_delivered.push(id),
            ReducerInput::OutboxFailed { id, next_attempt_at, error } => {
                batch.outbox_failed.push((id, next_attempt_at, error));
            }
            ReducerInput::Tick | ReducerInput::Shutdown => {}
        }
    }

    /// Applies one event; logs it and collects its effects when it changed anything.
    fn apply(&mut self, event: FleetEvent, batch: &mut Batch) -> Result<(), Rejected> {
        let now = self.now();
        let effects = self.fleet.apply(&event, now)?;
        if effects.is_empty() {
            return Ok(());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let data = serde_json::to_value(&event).unwrap_or(serde_json::Value::Null);
        let kind = data.get("kind").and_then(|k| k.as_str()).unwrap_or("unknown").to_string();
        batch.records.push(EventRecord { seq, at: now, kind, data });
        batch.changed = true;
        for effect in effects {
            self.collect(effect, seq, now, batch);
        }
        Ok(())
    }

    fn collect(&mut self, effect: Effect, seq: u64, now: Timestamp, batch: &mut Batch) {
        match effect {
            Effect::PersistRun(id) => {
                batch.runs.insert(id);
            }
            Effect::PersistTarget(id) => {
                batch.targets.insert(id);
            }
            Effect::PersistTask(id) => {
                batch.tasks.insert(id);
            }
            Effect::PersistComponent(id)
            | Effect::PersistComponentStatus(id)
            | Effect::PersistServiceState(id) => {
                if batch.components_seen.insert(id.clone()) {
                    batch.components.push(id);
                }
            }
            Effect::PersistRack(id) => {
                batch.racks.insert(id);
            }
            Effect::AppendHistory(entry) => batch.history.push(entry),
            Effect::SubmitTask(submit) => {
                if let Some(target) = self.fleet.targets.get(&submit.target_id)
                    && let Some(after) = self.submission_for(target)
                {
                    batch.after_commit.push(after);
                }
            }
            Effect::CancelTask { task_id, .. } => {
                batch.after_commit.push(AfterCommit::Cancel { task_id });
            }
            Effect::Notify(notification) => self.notify(notification, seq, now, batch),
        }
    }

    fn notify(&mut self, notification: Notification, seq: u64, now: Timestamp, batch: &mut Batch) {
        let kind = notification.kind();
        let data = serde_json::to_value(&notification).unwrap_or(serde_json::Value::Null);
        for webhook in &self.settings.webhooks {
            if !webhook.wants(kind) {
                continue;
            }
            let body = serde_json::json!({
                "id": format!("{seq}-{}", webhook.name),
                "seq": seq,
                "kind": kind,
                "at": now,
                "data": data,
            });
            batch.outbox.push(OutboxRow {
                id: 0,
                webhook: webhook.name.clone(),
                seq,
                kind: kind.to_string(),
                body: body.to_string(),
                attempts: 0,
                next_attempt_at: now,
                delivered_at: None,
                last_error: None,
            });
        }
        if let Notification::RunStatusChanged { to, .. } = &notification {
            self.metrics.run_status_changed(*to);
        }
    }

    fn command(&mut self, command: Command, batch: &mut Batch) -> Result<Reply, CommandError> {
        match command {
            Command::UpsertInventory { inventory, initiator } => {
                validate_inventory(&inventory, &self.fleet)?;
                let summary = InventorySummary {
                    racks: inventory.racks.len(),
                    components: inventory.racks.iter().map(|r| r.components.len()).sum(),
                };
                self.apply(
                    FleetEvent::InventoryUpserted { initiator, racks: inventory.racks },
                    batch,
                )
                .map_err(rejected)?;
                Ok(Reply::Inventory(summary))
            }
            Command::Observe { observations, initiator } => {
                let unknown: Vec<FieldError> = observations
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| !self.fleet.components.contains_key(&o.component_id))
                    .map(|(i, o)| {
                        FieldError::new(
                            format!("[{i}].component_id"),
                            format!("unknown component {}", o.component_id),
                        )
                    })
                    .collect();
                ValidationErrors::from_vec(unknown).map_err(CommandError::Invalid)?;
                let before = batch.records.len();
                for observation in observations {
                    self.apply(observed_event(observation, &initiator), batch).map_err(rejected)?;
                }
                Ok(Reply::Changed(batch.records.len() - before))
            }
            Command::SetServiceState { component, to, note, initiator } => {
                let event = FleetEvent::ServiceStateChanged {
                    component_id: component.clone(),
                    to,
                    initiator,
                    note,
                };
                self.apply(event, batch).map_err(rejected)?;
                let view = self.component_view(&component)?;
                Ok(Reply::Component(Box::new(view)))
            }
            Command::CreateRun { request, initiator } => {
                self.create_run(*request, &initiator, batch)
            }
            Command::PauseRun { run, reason, initiator } => {
                let message = reason.unwrap_or_else(|| format!("paused by {initiator}"));
                let event = FleetEvent::RunPaused {
                    run_id: run.clone(),
                    reason: steward_proto::RunStatusReason::OperatorPaused,
                    message,
                    initiator,
                };
                self.run_event(run, event, batch)
            }
            Command::ResumeRun { run, initiator } => self.run_event(
                run.clone(),
                FleetEvent::RunResumed { run_id: run, initiator },
                batch,
            ),
            Command::CancelRun { run, reason, initiator } => {
                let event = FleetEvent::RunCancelled { run_id: run.clone(), initiator, reason };
                self.run_event(run, event, batch)
            }
            Command::AdvanceRun { run, expected_wave, initiator } => {
                let event =
                    FleetEvent::RunAdvanced { run_id: run.clone(), expected_wave, initiator };
                self.run_event(run, event, batch)
            }
        }
    }

    fn run_event(
        &mut self,
        run: RunId,
        event: FleetEvent,
        batch: &mut Batch,
    ) -> Result<Reply, CommandError> {
        if !self.fleet.runs.contains_key(&run) {
            return Err(CommandError::NotFound { what: "run".into(), id: run.to_string() });
        }
        self.apply(event, batch).map_err(rejected)?;
        self.run_view(&run).map(|r| Reply::Run(Box::new(r)))
    }

    fn create_run(
        &mut self,
        request: CreateRunRequest,
        initiator: &str,
        batch: &mut Batch,
    ) -> Result<Reply, CommandError> {
        let now = self.now();
        let run_id = RunId::new(format!("run-{}", self.next_run_number));
        let dry_run = request.dry_run;
        let new_run =
            steward_planner::plan_run(&self.fleet, &request, run_id.clone(), initiator, now)
                .map_err(create_error)?;
        if dry_run {
            let holds: BTreeMap<TargetId, Hold> =
                steward_planner::dry_run_holds(&self.fleet, &new_run, &self.settings.planner, now)
                    .into_iter()
                    .collect();
            let mut targets = new_run.targets.clone();
            for target in &mut targets {
                target.hold = holds.get(&target.id).cloned();
            }
            let outcome = DryRun { dry_run: true, run: new_run.run, targets };
            return Ok(Reply::Created(CreateRunOutcome::DryRun(Box::new(outcome))));
        }
        self.next_run_number += 1;
        let event = FleetEvent::RunCreated { run: Box::new(new_run.run), targets: new_run.targets };
        self.apply(event, batch).map_err(rejected)?;
        self.apply(FleetEvent::RunStarted { run_id: run_id.clone() }, batch).map_err(rejected)?;
        let run = self.run_view(&run_id)?;
        Ok(Reply::Created(CreateRunOutcome::Created(Box::new(run))))
    }

    fn task_report(&mut self, target_id: TargetId, report: TaskReport, batch: &mut Batch) {
        let event = FleetEvent::TaskObserved {
            task_id: report.task_id,
            target_id,
            status: report.status,
            message: report.message,
            component_results: report.component_results,
        };
        if let Err(error) = self.apply(event, batch) {
            tracing::debug!(%error, "task report not applied");
        }
    }

    fn submit_result(
        &mut self,
        target_id: TargetId,
        key: IdempotencyKey,
        result: Result<SubmitOutcome, CoreError>,
        batch: &mut Batch,
    ) {
        let current = self.fleet.targets.get(&target_id);
        let still_claimed = current
            .is_some_and(|t| t.status == TargetStatus::Claimed && t.idempotency_key() == key);
        match result {
            Ok(SubmitOutcome::Accepted { task_id }) if still_claimed => {
                let event = FleetEvent::TargetSubmitted { target_id, task_id };
                if let Err(error) = self.apply(event, batch) {
                    tracing::warn!(%error, "submitted task could not be recorded");
                }
            }
            Ok(SubmitOutcome::Accepted { task_id }) => {
                // The target moved on (cancelled, lease expired and re-claimed under another key):
                // the task Core accepted serves nobody, so it is cancelled.
                let adopted = current.is_some_and(|t| t.task_id.as_ref() == Some(&task_id));
                if !adopted {
                    batch.after_commit.push(AfterCommit::Cancel { task_id });
                }
            }
            Ok(SubmitOutcome::Conflict { message }) if still_claimed => {
                let _ = self.apply(FleetEvent::TargetConflict { target_id, message }, batch);
            }
            Ok(SubmitOutcome::Rejected { message }) if still_claimed => {
                let _ = self.apply(FleetEvent::TargetSubmitRejected { target_id, message }, batch);
            }
            Ok(_) => {}
            Err(error) => {
                // A Core outage leaves the target claimed; the lease expires and it is re-claimed.
                tracing::warn!(%error, %target_id, "submission failed; the claim lease will expire and retry");
            }
        }
    }

    fn plan(&mut self, batch: &mut Batch) {
        let now = self.now();
        let started = std::time::Instant::now();
        let plan = steward_planner::plan(&self.fleet, &self.settings.planner, now);
        self.metrics.plan_duration(started.elapsed());
        for action in plan.actions {
            let description = format!("{action:?}");
            let event = action.into_event();
            if let Err(error) = self.apply(event, batch) {
                tracing::debug!(%error, action = %description, "planner action refused");
            }
        }
        let mut holds: BTreeMap<RunId, Vec<(PendingKey, Hold)>> = BTreeMap::new();
        for hold in plan.run_holds {
            // A hold keeps its `since` while the same gate holds with the same message.
            let since = self
                .run_holds
                .get(&hold.run_id)
                .and_then(|previous| {
                    previous.iter().find(|(_, p)| p.gate == hold.gate && p.message == hold.message)
                })
                .map_or(now, |(_, previous)| previous.since);
            let entry = Hold { gate: hold.gate, message: hold.message, since, component: None };
            holds.entry(hold.run_id).or_default().push((hold.from, entry));
        }
        self.run_holds = holds;
    }

    fn commit(&mut self, batch: Batch) -> Result<(), CommandError> {
        if batch.is_empty() {
            return Ok(());
        }
        let write = self.write_batch(&batch);
        let applied = batch.records.len();
        let result = self.store.commit(&write);
        for (id, next, error) in &batch.outbox_failed {
            let _ = self.store.outbox_record_attempt(*id, *next, error);
        }
        for id in &batch.outbox_delivered {
            let _ = self.store.outbox_mark_delivered(*id, self.now());
        }
        if let Err(error) = result {
            let message = error.to_string();
            for (reply, _) in batch.replies {
                let _ = reply.send(Err(CommandError::Store(message.clone())));
            }
            return Err(CommandError::Store(message));
        }
        self.metrics.events_applied(applied as u64);
        for (reply, result) in batch.replies {
            let _ = reply.send(result);
        }
        for record in write.events {
            let _ = self.events.send(record);
        }
        for after in batch.after_commit {
            let _ = self.applier.send(after);
        }
        if applied > 0 {
            self.metrics.observe_fleet(&self.fleet);
        }
        Ok(())
    }

    fn write_batch(&self, batch: &Batch) -> WriteBatch {
        let now = self.now();
        WriteBatch {
            events: batch.records.clone(),
            racks: batch.racks.iter().filter_map(|id| self.fleet.racks.get(id).cloned()).collect(),
            components: batch
                .components
                .iter()
                .filter_map(|id| self.fleet.components.get(id))
                .map(|entry| ComponentRow {
                    component: entry.component.clone(),
                    raw_state: entry.raw_state.clone(),
                    status: entry.status.clone(),
                    service_state: entry.service_state.clone(),
                    updated_at: now,
                })
                .collect(),
            runs: batch.runs.iter().filter_map(|id| self.fleet.runs.get(id).cloned()).collect(),
            targets: batch
                .targets
                .iter()
                .filter_map(|id| {
                    let target = self.fleet.targets.get(id)?;
                    let position = self.fleet.target_positions.get(id).copied().unwrap_or(0);
                    Some((target.clone(), position))
                })
                .collect(),
            tasks: batch.tasks.iter().filter_map(|id| self.fleet.tasks.get(id).cloned()).collect(),
            history: batch.history.clone(),
            outbox: batch.outbox.clone(),
        }
    }

    fn query(&mut self, query: Query) -> Result<QueryReply, CommandError> {
        match query {
            Query::Racks => Ok(QueryReply::Racks(self.fleet.racks.values().cloned().collect())),
            Query::Rack(id) => {
                let rack =
                    self.fleet.racks.get(&id).cloned().ok_or_else(|| not_found("rack", &id))?;
                let ids = self.fleet.rack_components.get(&id).cloned().unwrap_or_default();
                let components = ids.iter().filter_map(|c| self.component_view(c).ok()).collect();
                Ok(QueryReply::Rack(Box::new(RackDetail { rack, components })))
            }
            Query::Components(filter) => Ok(QueryReply::Components(self.components(&filter))),
            Query::Component(id) => {
                self.component_view(&id).map(|v| QueryReply::Component(Box::new(v)))
            }
            Query::History(id) => {
                if !self.fleet.components.contains_key(&id) {
                    return Err(not_found("component", &id));
                }
                self.store
                    .history(&id)
                    .map(QueryReply::History)
                    .map_err(|e| CommandError::Store(e.to_string()))
            }
            Query::Runs => {
                let mut runs: Vec<Run> = self.fleet.runs.values().cloned().collect();
                runs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
                Ok(QueryReply::Runs(runs))
            }
            Query::Run(id) => self.run_view(&id).map(|r| QueryReply::Run(Box::new(r))),
            Query::Targets(id) => self.targets_view(&id).map(QueryReply::Targets),
            Query::Events { after, limit } => {
                let events = self
                    .store
                    .events_after(after, limit)
                    .map_err(|e| CommandError::Store(e.to_string()))?;
                let next = events.last().map(|e| e.seq).unwrap_or(after);
                Ok(QueryReply::Events(EventsPage { events, next }))
            }
            Query::SubmittedTasks => Ok(QueryReply::SubmittedTasks(
                self.fleet
                    .run_active
                    .values()
                    .flatten()
                    .filter_map(|id| self.fleet.targets.get(id))
                    .filter(|t| t.status == TargetStatus::Submitted)
                    .filter_map(|t| Some((t.task_id.clone()?, t.id.clone())))
                    .collect(),
            )),
            Query::OutboxDue { webhook, limit } => self
                .store
                .outbox_pending(&webhook, limit)
                .map(QueryReply::Outbox)
                .map_err(|e| CommandError::Store(e.to_string())),
        }
    }

    fn component_view(&self, id: &ComponentId) -> Result<ComponentView, CommandError> {
        let entry = self.fleet.components.get(id).ok_or_else(|| not_found("component", id))?;
        Ok(ComponentView {
            component: entry.component.clone(),
            status: self.fleet.effective_status(id, self.now()),
            service_state: entry.service_state.clone(),
        })
    }

    fn components(&self, filter: &ComponentFilter) -> Vec<ComponentView> {
        let ids: Vec<&ComponentId> = match &filter.rack {
            Some(rack) => {
                self.fleet.rack_components.get(rack).map(|c| c.iter().collect()).unwrap_or_default()
            }
            None => self.fleet.components.keys().collect(),
        };
        ids.into_iter()
            .filter_map(|id| self.component_view(id).ok())
            .filter(|view| filter.kind.is_none_or(|k| view.component.kind == k))
            .filter(|view| filter.phase.is_none_or(|p| view.status.phase == p))
            .filter(|view| filter.service_state.as_ref().is_none_or(|s| &view.service_state == s))
            .collect()
    }

    fn run_view(&self, id: &RunId) -> Result<Run, CommandError> {
        self.fleet.runs.get(id).cloned().ok_or_else(|| not_found("run", id))
    }

    fn targets_view(&self, id: &RunId) -> Result<Vec<Target>, CommandError> {
        let ids = self.fleet.run_targets.get(id).ok_or_else(|| not_found("run", id))?;
        let run_holds = self.run_holds.get(id).map(Vec::as_slice).unwrap_or_default();
        Ok(ids
            .iter()
            .filter_map(|t| self.fleet.targets.get(t))
            .map(|target| {
                let mut target = target.clone();
                if target.status == TargetStatus::Pending {
                    let key = (
                        target.wave,
                        self.fleet.target_positions.get(&target.id).copied().unwrap_or(0),
                    );
                    let covering = run_holds
                        .iter()
                        .filter(|(from, _)| *from <= key)
                        .max_by_key(|(from, _)| *from);
                    if let Some((_, hold)) = covering {
                        target.hold = Some(hold.clone());
                    }
                } else if !matches!(target.status, TargetStatus::Blocked) {
                    target.hold = None;
                }
                target
            })
            .collect())
    }
}

/// The event for one observation; `initiator` is empty for Core's own sync.
fn observed_event(observation: Observation, initiator: &str) -> FleetEvent {
    FleetEvent::ComponentObserved {
        initiator: initiator.to_string(),
        component_id: observation.component_id,
        controller_state: observation.controller_state,
        power_state: observation.power_state,
        firmware_version: observation.firmware_version,
    }
}

fn not_found(what: &str, id: &impl std::fmt::Display) -> CommandError {
    CommandError::NotFound { what: what.into(), id: id.to_string() }
}

/// Maps a machine's refusal to the command error the API reports.
pub(crate) fn rejected(error: Rejected) -> CommandError {
    match &error {
        Rejected::NotFound { what, id } => {
            CommandError::NotFound { what: (*what).into(), id: id.clone() }
        }
        Rejected::IllegalServiceTransition { allowed, .. } => CommandError::IllegalTransition {
            message: error.to_string(),
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
        },
        Rejected::IllegalTransition { allowed, .. } => CommandError::IllegalTransition {
            message: error.to_string(),
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
        },
        Rejected::Guard { .. } => {
            CommandError::IllegalTransition { message: error.to_string(), allowed: Vec::new() }
        }
        Rejected::Invalid { field, message } => {
            CommandError::Invalid(ValidationErrors(vec![FieldError::new(
                field.clone(),
                message.clone(),
            )]))
        }
    }
}

fn create_error(error: steward_planner::CreateError) -> CommandError {
    match error {
        steward_planner::CreateError::Invalid(errors) => CommandError::Invalid(errors),
        other => {
            let field = other.field().unwrap_or("selector").to_string();
            CommandError::Invalid(ValidationErrors(vec![FieldError::new(field, other.to_string())]))
        }
    }
}

/// Checks an inventory document before anything is applied: duplicate ids, components that
/// would move between racks.
fn validate_inventory(inventory: &InventoryUpsert, fleet: &Fleet) -> Result<(), CommandError> {
    let mut errors = Vec::new();
    let mut racks = BTreeSet::new();
    let mut components = BTreeSet::new();
    for (r, rack) in inventory.racks.iter().enumerate() {
        if rack.id.as_str().is_empty() {
            errors.push(FieldError::new(format!("racks[{r}].id"), "must not be empty"));
        }
        if !racks.insert(rack.id.clone()) {
            errors.push(FieldError::new(
                format!("racks[{r}].id"),
                format!("rack {} appears twice", rack.id),
            ));
        }
        for (c, component) in rack.components.iter().enumerate() {
            let field = format!("racks[{r}].components[{c}].id");
            if component.id.as_str().is_empty() {
                errors.push(FieldError::new(field.clone(), "must not be empty"));
            }
            if !components.insert(component.id.clone()) {
                errors.push(FieldError::new(
                    field.clone(),
                    format!("component {} appears twice", component.id),
                ));
            }
            if let Some(existing) = fleet.components.get(&component.id)
                && existing.component.rack_id != rack.id
            {
                errors.push(FieldError::new(
                    field,
                    format!(
                        "component {} belongs to rack {}; moving components is not supported",
                        component.id, existing.component.rack_id
                    ),
                ));
            }
        }
    }
    ValidationErrors::from_vec(errors).map_err(CommandError::Invalid)
}
