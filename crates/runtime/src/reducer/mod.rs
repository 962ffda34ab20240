//! The reducer: the single mutator. One thread owns the `Fleet` and the `Store`; it drains its
//! input queue, applies every input through the pure machines and the planner at one `now` read
//! once per batch, builds the batch's rows through the store's one write path
//! ([`BatchBuilder`]), commits them in one transaction (group commit), and only then replies,
//! answers the batch's queries, publishes events and hands Core calls to the applier. A batch
//! whose commit fails leaves nothing behind: its callers get the error and the in-memory state
//! is reloaded from the store, the last committed truth. Transient store failures are retried
//! first (`durable.rs`); the reducer's [`Health`] tells readiness which state it is in.

mod commands;
mod durable;
mod followups;
mod site;
mod views;
mod webhooks;

use crate::clock::SharedClock;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::protocol::{
    CommandError, CommandReplySender, CoreCall, Query, QueryReply, ReducerInput, Reply,
};
use crate::store::{Backend, BatchBuilder, OutboxAck, OutboxRow, StoreError};
use crate::webhooks::WebhookConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use steward_planner::{PendingKey, PlannerConfig};
use steward_proto::{EventRecord, Hold, RunId, Timestamp};
use steward_state_machine::{AfterCommit, Fleet, FleetEvent, Notification, Rejected};
use tokio::sync::{broadcast, mpsc, oneshot};

/// The initiator recorded for what the planner and the Core pollers do.
pub const SYSTEM_INITIATOR: &str = "steward";

type QueryReplySender = oneshot::Sender<Result<QueryReply, CommandError>>;

/// What one batch accumulates before its commit. Everything in it is released only after the
/// commit succeeded.
struct Batch {
    /// The batch's one `now`: every event, plan, row and reply of the batch uses it.
    now: Timestamp,
    /// Event-log rows, state rows, outbox rows and acknowledgements: the one write path.
    rows: BatchBuilder,
    /// Events logged in this batch (their rows are in `rows`; subscribers hear them after the
    /// commit).
    logged: usize,
    /// Core calls for the applier after the commit.
    core_calls: Vec<CoreCall>,
    /// Command replies, sent after the commit.
    replies: Vec<(CommandReplySender, Result<Reply, CommandError>)>,
    /// Queries, answered after the commit from the committed state.
    queries: Vec<(Query, QueryReplySender)>,
    /// Run status changes, counted after the commit.
    run_transitions: Vec<steward_proto::RunStatus>,
    /// The first event that could not be encoded: it fails the whole batch.
    failure: Option<StoreError>,
}

impl Batch {
    fn new(now: Timestamp) -> Self {
        Self {
            now,
            rows: BatchBuilder::new(),
            logged: 0,
            core_calls: Vec::new(),
            replies: Vec::new(),
            queries: Vec::new(),
            run_transitions: Vec::new(),
            failure: None,
        }
    }

    fn changed(&self) -> bool {
        self.logged > 0
    }
}

/// Settings the reducer runs with.
pub(crate) struct ReducerSettings {
    pub planner: PlannerConfig,
    pub webhooks: Vec<WebhookConfig>,
    pub max_batch: usize,
    /// How long a commit that fails transiently is retried before its batch fails.
    pub commit_deadline: std::time::Duration,
    /// Where the reducer reports readiness.
    pub health: Health,
    /// Hook names defined in the server's config (runs may reference only these).
    pub hook_names: BTreeSet<String>,
}

/// The reducer's state: the fleet, the store and the bookkeeping around them.
pub(crate) struct Reducer {
    fleet: Fleet,
    store: Box<dyn Backend>,
    clock: SharedClock,
    settings: ReducerSettings,
    next_seq: u64,
    next_run_number: u64,
    /// Run-wide holds of the last plan: each covers the run's pending targets from its key on.
    run_holds: BTreeMap<RunId, Vec<(PendingKey, Hold)>>,
    /// When the components-by-phase gauge was last refreshed (it scans every component, so it
    /// is refreshed at most once per [`COMPONENT_GAUGE_PERIOD_SECONDS`] of batch time).
    components_gauge_at: Option<Timestamp>,
    events: broadcast::Sender<EventRecord>,
    applier: mpsc::UnboundedSender<CoreCall>,
    metrics: Arc<Metrics>,
    /// Whether batches were committed since the last WAL checkpoint.
    uncheckpointed: bool,
    /// Readiness, shared with the shell (a clone of `settings.health`).
    health: Health,
}

/// Why the reducer cannot go on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReducerError {
    /// A commit failed and the state could not be reloaded from the store either.
    #[error("commit failed ({commit}) and reloading from the store failed too: {reload}")]
    ReloadFailed {
        /// Why the commit failed.
        commit: String,
        /// Why the reload failed.
        reload: StoreError,
    },
    /// The reducer thread panicked.
    #[error("the reducer panicked: {0}")]
    Panicked(String),
    /// Another instance took leadership: the batch was refused and this reducer must stop.
    #[error("fenced, stepping down: {0}")]
    Fenced(StoreError),
}

impl Reducer {
    /// Builds the reducer around a loaded fleet.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        fleet: Fleet,
        store: Box<dyn Backend>,
        last_seq: u64,
        clock: SharedClock,
        settings: ReducerSettings,
        events: broadcast::Sender<EventRecord>,
        applier: mpsc::UnboundedSender<CoreCall>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let next_run_number = next_run_number(&fleet);
        let health = settings.health.clone();
        Self {
            health,
            fleet,
            store,
            clock,
            settings,
            next_seq: last_seq + 1,
            next_run_number,
            run_holds: BTreeMap::new(),
            components_gauge_at: None,
            events,
            applier,
            metrics,
            uncheckpointed: false,
        }
    }

    /// Recovery work after a restart (or a reload): every claimed target may or may not have
    /// reached Core; its submission, as the pure core states it, is re-issued as
    /// submit-if-absent (the applier asks Core by key first). Hooks in flight run again, and a
    /// cancelled run's running tasks are asked to cancel again.
    pub(crate) fn recover(&mut self) {
        for submit in self.fleet.claimed_submissions() {
            let _ = self.applier.send(CoreCall::Submit { request: submit.into() });
        }
        // A hook in flight at the crash runs again (same invocation id); one that reported
        // has moved its target on and is not among these.
        for call in self.fleet.hooks_in_flight() {
            let _ = self.applier.send(CoreCall::RunHook(call));
        }
        // A cancelled run's tasks still running: their cancel may have been lost with the crash.
        for (task_id, _) in self.fleet.cancels_in_flight() {
            let _ = self.applier.send(CoreCall::Cancel { task_id });
        }
    }

    /// The loop: block for the first input, drain up to `max_batch` more, process, commit.
    pub(crate) fn run(
        mut self,
        mut inputs: mpsc::Receiver<ReducerInput>,
    ) -> Result<(), ReducerError> {
        let mut buffer = Vec::with_capacity(self.settings.max_batch);
        let mut outcome = Ok(());
        loop {
            let Some(first) = inputs.blocking_recv() else { break };
            buffer.push(first);
            while buffer.len() < self.settings.max_batch {
                match inputs.try_recv() {
                    Ok(input) => buffer.push(input),
                    Err(_) => break,
                }
            }
            self.metrics.queue_depth(inputs.len());
            match self.process(buffer.drain(..)) {
                Ok(false) => {}
                Ok(true) => break,
                Err(error) => {
                    tracing::error!(%error, "the reducer stops");
                    outcome = Err(error);
                    break;
                }
            }
        }
        if let Err(error) = self.store.optimize() {
            tracing::warn!(%error, "PRAGMA optimize failed");
        }
        tracing::info!("reducer stopped");
        outcome
    }

    /// Processes one batch of inputs and commits it. Returns whether a shutdown was requested.
    /// A failed commit is answered to the batch's callers and the state is reloaded from the
    /// store; only a failed reload is an error.
    pub(crate) fn process(
        &mut self,
        inputs: impl IntoIterator<Item = ReducerInput>,
    ) -> Result<bool, ReducerError> {
        let mut batch = Batch::new(self.clock.now());
        let mut shutdown = false;
        let mut tick = false;
        for input in inputs {
            match input {
                ReducerInput::Shutdown => shutdown = true,
                ReducerInput::Tick => tick = true,
                other => self.handle_input(other, &mut batch),
            }
        }
        if tick || batch.changed() {
            self.plan(&mut batch);
        }
        let wrote = batch.changed();
        self.commit(batch)?;
        self.uncheckpointed |= wrote;
        if tick && !wrote {
            self.probe_store();
        }
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

    fn handle_input(&mut self, input: ReducerInput, batch: &mut Batch) {
        match input {
            ReducerInput::Command { command, reply } => {
                let result = self.command(command, batch);
                batch.replies.push((reply, result));
            }
            ReducerInput::Query { query, reply } => batch.queries.push((query, reply)),
            ReducerInput::CoreObservations(observations) => {
                for observation in observations {
                    // Core may report components Steward has not imported yet; they are ignored.
                    if self.fleet.components.contains_key(&observation.component_id)
                        && !self.out_of_order(&observation, batch.now)
                    {
                        let _ = self.apply(commands::observed_event(observation, ""), batch);
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
            ReducerInput::OutboxDelivered { id } => {
                batch.rows.outbox_ack(OutboxAck::Delivered { id, at: batch.now });
            }
            ReducerInput::OutboxFailed { id, next_attempt_at, error } => {
                let at = batch.now;
                batch.rows.outbox_ack(OutboxAck::Failed { id, at, next_attempt_at, error });
            }
            ReducerInput::OutboxParked { id, webhook, error } => {
                self.park(id, webhook, error, batch);
            }
            ReducerInput::HookStarted { target_id, invocation_id } => {
                self.hook_report(FleetEvent::HookStarted { target_id, invocation_id }, batch);
            }
            ReducerInput::HookFinished { target_id, invocation_id, ok, message } => {
                let event = FleetEvent::HookFinished { target_id, invocation_id, ok, message };
                self.hook_report(event, batch);
            }
            ReducerInput::Tick | ReducerInput::Shutdown => {}
        }
    }

    /// Applies one event at the batch's `now`; logs it and collects its effects when it changed
    /// anything. Rows go into the batch; Core calls and notifications wait for the commit.
    fn apply(&mut self, event: FleetEvent, batch: &mut Batch) -> Result<(), Rejected> {
        let now = batch.now;
        let effects = self.fleet.apply(&event, now)?;
        if effects.is_empty() {
            return Ok(());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        batch.logged += 1;
        if let Err(error) = batch.rows.event(seq, now, &event) {
            batch.failure.get_or_insert(error);
        }
        batch.rows.writes(&effects.writes, now);
        for after in effects.after_commit {
            match after {
                AfterCommit::SubmitTask(submit) => {
                    batch.core_calls.push(CoreCall::Submit { request: submit.into() });
                }
                AfterCommit::CancelTask { task_id, .. } => {
                    batch.core_calls.push(CoreCall::Cancel { task_id });
                }
                AfterCommit::Notify(notification) => self.notify(notification, seq, batch),
                AfterCommit::RunHook(call) => batch.core_calls.push(CoreCall::RunHook(call)),
            }
        }
        Ok(())
    }

    /// Records a notification's webhook deliveries in the batch's outbox (same transaction as
    /// the event); subscribers hear the event itself after the commit.
    fn notify(&mut self, notification: Notification, seq: u64, batch: &mut Batch) {
        let kind = notification.kind();
        if let Notification::RunStatusChanged { to, .. } = &notification {
            batch.run_transitions.push(*to);
        }
        let data = match serde_json::to_value(&notification) {
            Ok(data) => data,
            Err(error) => {
                batch.failure.get_or_insert(StoreError::Encode {
                    what: format!("notification of event seq {seq}"),
                    message: error.to_string(),
                });
                return;
            }
        };
        for webhook in self.settings.webhooks.iter().filter(|w| w.wants(kind)) {
            let body = serde_json::json!({
                "id": format!("{seq}-{}", webhook.name),
                "seq": seq,
                "kind": kind,
                "at": batch.now,
                "data": data,
            });
            batch.rows.outbox(OutboxRow {
                id: 0,
                webhook: webhook.name.clone(),
                seq,
                kind: kind.to_string(),
                body: body.to_string(),
                attempts: 0,
                next_attempt_at: batch.now,
                delivered_at: None,
                last_error: None,
            });
        }
    }

    fn plan(&mut self, batch: &mut Batch) {
        let now = batch.now;
        // Going stale is an event like any other phase change, logged before the plan reads it.
        for event in self.fleet.stale_events(now) {
            if let Err(error) = self.apply(event, batch) {
                tracing::debug!(%error, "stale event refused");
            }
        }
        let gauge_due = self.components_gauge_at.is_none_or(|at| {
            now - at >= chrono::Duration::seconds(COMPONENT_GAUGE_PERIOD_SECONDS) || now < at
        });
        if gauge_due {
            self.metrics.observe_components(&self.fleet, now);
            self.components_gauge_at = Some(now);
        }
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

    /// Commits the batch, then releases what waited on it: replies, query answers, events,
    /// Core calls. On failure nothing is released but the error, and the state is reloaded.
    fn commit(&mut self, mut batch: Batch) -> Result<(), ReducerError> {
        let result = match batch.failure.take() {
            Some(error) => Err(error),
            None => self.write(std::mem::take(&mut batch.rows), batch.now),
        };
        let published = match result {
            Ok(published) => published,
            Err(error) => {
                let message = format!("commit failed ({}): {error}", error.cause());
                if error.is_fenced() {
                    // A deposed leader: no reply succeeds, no Core call leaves, nothing reloads.
                    for (reply, _) in batch.replies {
                        let _ = reply.send(Err(CommandError::Store(message.clone())));
                    }
                    for (_, reply) in batch.queries {
                        let _ = reply.send(Err(CommandError::Store(message.clone())));
                    }
                    return Err(ReducerError::Fenced(error));
                }
                tracing::error!(%error, "commit failed; reloading the last committed state");
                self.health.set_fault("reloading");
                for (reply, _) in batch.replies {
                    let _ = reply.send(Err(CommandError::Store(message.clone())));
                }
                for (_, reply) in batch.queries {
                    let _ = reply.send(Err(CommandError::Store(message.clone())));
                }
                self.reload(&message)?;
                self.health.set_fault(format!("store: {}", error.cause()));
                return Ok(());
            }
        };
        let applied = published.len();
        self.metrics.events_applied(applied as u64);
        for to in batch.run_transitions {
            self.metrics.run_status_changed(to);
        }
        for (reply, result) in batch.replies {
            let _ = reply.send(result);
        }
        for (query, reply) in batch.queries {
            let _ = reply.send(self.query(query, batch.now));
        }
        for record in published {
            let _ = self.events.send(record);
        }
        for call in batch.core_calls {
            let _ = self.applier.send(call);
        }
        if applied > 0 {
            self.metrics.observe_fleet(&self.fleet);
        }
        Ok(())
    }

    /// Writes the batch's rows in one transaction (nothing to write: nothing to do) and returns
    /// the logged events, for subscribers.
    fn write(
        &mut self,
        rows: BatchBuilder,
        now: Timestamp,
    ) -> Result<Vec<EventRecord>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let rows = rows.finish(&self.fleet)?;
        self.commit_durably(&rows, now)?;
        Ok(rows.events)
    }

    /// Drops every uncommitted change by loading the last committed state from the store, then
    /// re-issues the submissions of claimed targets (submit-if-absent).
    fn reload(&mut self, commit: &str) -> Result<(), ReducerError> {
        let config = self.fleet.config.clone();
        let loaded = self
            .store
            .load(config)
            .map_err(|reload| ReducerError::ReloadFailed { commit: commit.to_string(), reload })?;
        self.fleet = loaded.fleet;
        self.next_seq = loaded.last_seq + 1;
        self.next_run_number = next_run_number(&self.fleet);
        self.run_holds.clear();
        self.components_gauge_at = None;
        self.metrics.observe_fleet(&self.fleet);
        self.recover();
        tracing::warn!("state reloaded from the store after a failed commit");
        Ok(())
    }
}

/// Seconds between two refreshes of the components-by-phase gauge.
const COMPONENT_GAUGE_PERIOD_SECONDS: i64 = 1;

/// The number the next created run gets: one more than the highest `run-N` in the fleet.
fn next_run_number(fleet: &Fleet) -> u64 {
    fleet
        .runs
        .keys()
        .filter_map(|id| id.as_str().strip_prefix("run-").and_then(|n| n.parse::<u64>().ok()))
        .max()
        .unwrap_or(0)
        + 1
}
