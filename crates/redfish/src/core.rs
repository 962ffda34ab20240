//! [`RedfishCore`]: the `Core` trait over Redfish BMCs.
//!
//! A task is one rack's operation over its selected systems. `submit` writes the task and one
//! `pending` step per component to the adapter journal (Steward's database) and commits before
//! any request leaves; a runner then works through the kinds in order (power shelves, switches,
//! compute, nodes; the reverse for `power_off`), the steps of one kind in parallel, the next kind
//! only when every step of the previous one succeeded. Status is read back from the journal, so
//! `find_task` and `task_status` answer the same after a restart; unfinished tasks resume at
//! start, where every step verifies what it may already have sent (see `ops`).
//!
//! `cancel` marks the task: no step starts after it, a step that has not sent its first request
//! ends `terminated` without sending it, and a step whose request already left finishes (its
//! result verified as usual); the task then reports `terminated`. The mark lives in memory only:
//! after a restart an unfinished cancelled task resumes like any other (every step verifies what
//! it may already have sent) until it is cancelled again.

use crate::client::{Bmc, http_client};
use crate::config::Settings;
use crate::fleet::{EndpointState, SystemRef, sync_endpoint};
use crate::mapping::StateTable;
use crate::ops::{Outcome, StepContext, StepData, run_step};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use steward_proto::{
    ComponentId, ComponentKind, IdempotencyKey, InventoryUpsert, Observation, Operation, RackId,
    RackSpec, TaskId, TaskStatus,
};
use steward_runtime::adapter::{Active, ActiveTasks, TaskRunners};
use steward_runtime::clock::SharedClock;
use steward_runtime::core::{Core, CoreError, SubmitOutcome, TaskReport, TaskRequest};
use steward_runtime::store::StoreOptions;
use steward_runtime::store::journal::{AdapterJournal, JournalStep, JournalTask};
use tokio::sync::{Semaphore, watch};

/// The adapter's name in the journal.
pub const ADAPTER: &str = "redfish";

const PENDING: &str = "pending";
const RUNNING: &str = "running";
const DONE: &str = "done";
const FAILED: &str = "failed";
const TERMINATED: &str = "terminated";
/// How often a resumed step looks again for a system its BMC has not yet rediscovered.
const DISCOVERY_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// The Redfish Core adapter. Cheap to clone.
#[derive(Clone)]
pub struct RedfishCore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedfishCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedfishCore").field("endpoints", &self.inner.endpoints.len()).finish()
    }
}

struct Inner {
    settings: Settings,
    table: StateTable,
    endpoints: Vec<EndpointState>,
    systems: RwLock<BTreeMap<ComponentId, SystemRef>>,
    journal: AdapterJournal,
    journal_path: String,
    clock: SharedClock,
    /// Racks with an unfinished task, and the cancel flag of every running task.
    active: ActiveTasks,
    inventory: watch::Sender<u64>,
    /// The task runners, aborted by [`RedfishCore::stop`].
    runners: TaskRunners,
}

/// The journaled request of a task.
#[derive(serde::Serialize, serde::Deserialize)]
struct TaskData {
    request: TaskRequest,
}

impl RedfishCore {
    /// Builds the adapter over the SQLite database at `db` (the adapter journal lives there) and
    /// runs a first discovery; unfinished tasks from an earlier process resume.
    pub async fn start(
        settings: Settings,
        db: &Path,
        store: &StoreOptions,
        clock: SharedClock,
    ) -> Result<RedfishCore, CoreError> {
        let journal_path = db.display().to_string();
        let journal = AdapterJournal::open(db, ADAPTER, store).map_err(|e| CoreError::Journal {
            path: journal_path.clone(),
            message: e.to_string(),
        })?;
        Self::start_with_journal(settings, journal, journal_path, clock).await
    }

    /// Builds the adapter over a ready journal (in HA mode: PostgreSQL, fenced by the leader's
    /// epoch, so a deposed leader journals no step and therefore sends no request;
    /// `journal_name` names it in errors) and runs a first discovery; the unfinished tasks the
    /// journal holds resume, every step verifying what it may already have sent.
    pub async fn start_with_journal(
        settings: Settings,
        journal: AdapterJournal,
        journal_path: String,
        clock: SharedClock,
    ) -> Result<RedfishCore, CoreError> {
        let http = http_client(&settings).map_err(|message| CoreError::InvalidConfig {
            field: "core.redfish".into(),
            message,
        })?;
        let permits = Arc::new(Semaphore::new(settings.max_in_flight));
        let endpoints = settings
            .endpoints
            .iter()
            .map(|e| {
                let bmc = Bmc::new(
                    http.clone(),
                    &e.url,
                    &settings.username,
                    settings.password.clone(),
                    permits.clone(),
                );
                EndpointState::new(e.clone(), bmc)
            })
            .collect();
        let core = RedfishCore {
            inner: Arc::new(Inner {
                table: StateTable::new(&settings.state_table),
                settings,
                endpoints,
                systems: RwLock::default(),
                journal,
                journal_path,
                clock,
                active: ActiveTasks::default(),
                inventory: watch::channel(0).0,
                runners: TaskRunners::default(),
            }),
        };
        core.sync().await;
        core.resume()?;
        Ok(core)
    }

    /// The discovered fleet as an inventory document (one rack per endpoint rack).
    pub fn inventory(&self) -> InventoryUpsert {
        let systems = self.inner.systems.read().unwrap_or_else(|p| p.into_inner());
        let mut racks: BTreeMap<RackId, RackSpec> = BTreeMap::new();
        for endpoint in &self.inner.endpoints {
            let id = endpoint.config.rack.clone();
            racks.entry(id.clone()).or_insert_with(|| RackSpec {
                id: id.clone(),
                name: id.to_string(),
                location: Default::default(),
                labels: Default::default(),
                components: Vec::new(),
            });
        }
        for system in systems.values() {
            if let Some(rack) = racks.get_mut(&system.rack) {
                rack.components.push(system.spec.clone());
            }
        }
        InventoryUpsert { racks: racks.into_values().collect() }
    }

    /// Bumped whenever discovery finds a system it did not know: re-import [`Self::inventory`].
    pub fn inventory_changes(&self) -> watch::Receiver<u64> {
        self.inner.inventory.subscribe()
    }

    /// One full sync of every endpoint (concurrently; requests bounded by `max_in_flight`).
    async fn sync(&self) -> Vec<Observation> {
        let inner = &self.inner;
        let known = inner.systems.read().unwrap_or_else(|p| p.into_inner()).clone();
        let now = inner.clock.now();
        let syncs = futures_util::future::join_all(
            inner
                .endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| sync_endpoint(i, e, &known, &inner.table, now)),
        )
        .await;
        let mut observations = Vec::new();
        let mut added = false;
        {
            let mut systems = inner.systems.write().unwrap_or_else(|p| p.into_inner());
            for sync in syncs {
                observations.extend(sync.observations);
                for found in sync.found {
                    added |= systems.insert(found.spec.id.clone(), found).is_none();
                }
            }
        }
        if added {
            inner.inventory.send_modify(|generation| *generation += 1);
        }
        observations
    }

    fn journal_error(&self, error: impl std::fmt::Display) -> CoreError {
        CoreError::Journal { path: self.inner.journal_path.clone(), message: error.to_string() }
    }

    fn now_text(&self) -> String {
        self.inner.clock.now().to_rfc3339()
    }

    /// Restarts the runners of tasks an earlier process left unfinished.
    fn resume(&self) -> Result<(), CoreError> {
        let tasks = self
            .inner
            .journal
            .unfinished_tasks(&[DONE, FAILED, TERMINATED])
            .map_err(|e| self.journal_error(e))?;
        for task in tasks {
            let data: TaskData = serde_json::from_str(&task.data)
                .map_err(|e| CoreError::Protocol(format!("journal task {}: {e}", task.task_id)))?;
            tracing::info!(task = %task.task_id, "resuming redfish task after restart");
            self.lock_active().racks.insert(data.request.rack_id.clone(), task.task_id.clone());
            self.spawn_runner(task.task_id, data.request);
        }
        Ok(())
    }

    fn lock_active(&self) -> std::sync::MutexGuard<'_, Active> {
        self.inner.active.lock()
    }

    fn spawn_runner(&self, task_id: String, request: TaskRequest) {
        let core = self.clone();
        let id = task_id.clone();
        self.inner.runners.spawn(&id, async move {
            let status = core.run_task(&task_id, &request).await;
            let now = core.now_text();
            if let Err(error) = core.inner.journal.set_task_status(&task_id, status, &now) {
                tracing::error!(%error, task = %task_id, "cannot record task end");
            }
            core.inner.active.finished(&request.rack_id, &task_id);
        });
    }

    /// Stops the adapter's work in this process: every task runner is aborted where it stands
    /// (as a crash would stop it; the journal keeps what it committed) and no new one starts.
    /// The HA server calls this when it steps down, so the next leader's adapter, resuming
    /// from the journal, is the only one working on the tasks.
    pub fn stop(&self) {
        self.inner.runners.stop();
    }

    /// Runs the steps kind by kind; returns the task's final journal status.
    async fn run_task(&self, task_id: &str, request: &TaskRequest) -> &'static str {
        let steps = match self.inner.journal.steps(task_id) {
            Ok(steps) => steps,
            Err(error) => {
                tracing::error!(%error, task = %task_id, "cannot read task steps");
                return FAILED;
            }
        };
        let state: BTreeMap<String, JournalStep> =
            steps.into_iter().map(|s| (s.step.clone(), s)).collect();
        let mut blocked: Option<String> = None;
        for kind in kind_order(&request.operation) {
            let group: Vec<&ComponentId> = request
                .components
                .iter()
                .filter(|c| {
                    self.kind_of(c) == Some(kind)
                        || (self.kind_of(c).is_none() && kind == ComponentKind::Node)
                })
                .collect();
            if group.is_empty() {
                continue;
            }
            if let Some(reason) = self.cancel_reason(task_id).or_else(|| blocked.clone()) {
                for component in group {
                    self.finish_unstarted(task_id, component, &state, &reason);
                }
                continue;
            }
            let results = futures_util::future::join_all(
                group.iter().map(|c| self.run_one(task_id, c, &request.operation, &state)),
            )
            .await;
            if results.iter().any(|ok| !ok) {
                blocked = Some(format!("not started: a {kind} step of this task did not succeed"));
            }
        }
        self.final_status(task_id)
    }

    fn cancel_reason(&self, task_id: &str) -> Option<String> {
        self.is_cancelled(task_id).then(|| "not started: the task was cancelled".to_string())
    }

    fn is_cancelled(&self, task_id: &str) -> bool {
        self.lock_active().cancelled.contains(task_id)
    }

    fn finish_unstarted(
        &self,
        task_id: &str,
        component: &ComponentId,
        state: &BTreeMap<String, JournalStep>,
        reason: &str,
    ) {
        let pending = state.get(component.as_str()).is_none_or(|s| s.state == PENDING);
        if pending {
            let data = StepData { sent: Vec::new(), message: reason.to_string() };
            self.write_step(task_id, component, TERMINATED, &data);
        }
    }

    fn kind_of(&self, component: &ComponentId) -> Option<ComponentKind> {
        let systems = self.inner.systems.read().unwrap_or_else(|p| p.into_inner());
        systems.get(component).map(|s| s.kind)
    }

    fn write_step(&self, task_id: &str, component: &ComponentId, state: &str, data: &StepData) {
        if let Err(error) = self.try_write_step(task_id, component, state, data) {
            tracing::error!(%error, task = %task_id, %component, "cannot journal step");
        }
    }

    fn try_write_step(
        &self,
        task_id: &str,
        component: &ComponentId,
        state: &str,
        data: &StepData,
    ) -> Result<(), String> {
        let step = JournalStep {
            step: component.to_string(),
            state: state.to_string(),
            data: serde_json::to_string(data).map_err(|e| e.to_string())?,
        };
        self.inner.journal.set_step(task_id, &step, &self.now_text()).map_err(|e| e.to_string())
    }

    /// The system behind `component`. A task resumed after a restart may find its BMC not yet
    /// rediscovered (unreachable at the first sync): the observation pollers keep syncing, so
    /// this waits for the system to reappear, up to `power_settle_seconds`, unless the task is
    /// cancelled meanwhile; only then does the step fail (never blindly re-sent either way).
    async fn discovered(&self, task_id: &str, component: &ComponentId) -> Option<SystemRef> {
        let started = std::time::Instant::now();
        loop {
            let found = self
                .inner
                .systems
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(component)
                .cloned();
            if found.is_some()
                || started.elapsed() >= self.inner.settings.power_settle
                || self.cancel_reason(task_id).is_some()
            {
                return found;
            }
            tokio::time::sleep(DISCOVERY_POLL).await;
        }
    }

    /// Runs one component's step unless it already finished; `true` when it succeeded.
    async fn run_one(
        &self,
        task_id: &str,
        component: &ComponentId,
        operation: &Operation,
        state: &BTreeMap<String, JournalStep>,
    ) -> bool {
        let previous = state.get(component.as_str());
        match previous.map(|s| s.state.as_str()) {
            Some(DONE) => return true,
            Some(FAILED | TERMINATED) => return false,
            _ => {}
        }
        let mut data: StepData =
            previous.and_then(|s| serde_json::from_str(&s.data).ok()).unwrap_or_default();
        let Some(system) = self.discovered(task_id, component).await else {
            data.message = format!(
                "{component} is not a discovered Redfish system (waited {} s for its BMC)",
                self.inner.settings.power_settle.as_secs()
            );
            self.write_step(task_id, component, FAILED, &data);
            return false;
        };
        if skips(operation, system.kind) {
            data.message = format!("firmware update does not select kind {}", system.kind);
            self.write_step(task_id, component, DONE, &data);
            return true;
        }
        if data.sent.is_empty()
            && let Some(reason) = self.cancel_reason(task_id)
        {
            data.message = reason;
            self.write_step(task_id, component, TERMINATED, &data);
            return false;
        }
        self.write_step(task_id, component, RUNNING, &data);
        let outcome = self.step(task_id, &system, operation, &mut data).await;
        let (state, ok) = match outcome {
            Outcome::Done(message) => {
                data.message = message;
                (DONE, true)
            }
            Outcome::Failed(message) => {
                data.message = message;
                (FAILED, false)
            }
            Outcome::Cancelled(message) => {
                data.message = message;
                (TERMINATED, false)
            }
        };
        self.write_step(task_id, component, state, &data);
        ok
    }

    async fn step(
        &self,
        task_id: &str,
        system: &SystemRef,
        operation: &Operation,
        data: &mut StepData,
    ) -> Outcome {
        let Some(endpoint) = self.inner.endpoints.get(system.endpoint) else {
            return Outcome::Failed("endpoint missing".into());
        };
        let component = system.spec.id.clone();
        let journal = |d: &StepData| self.try_write_step(task_id, &component, RUNNING, d);
        let cancelled = || self.is_cancelled(task_id);
        let ctx = StepContext {
            system,
            endpoint,
            power_settle: self.inner.settings.power_settle,
            firmware_timeout: self.inner.settings.firmware_timeout,
            image_uri: self.inner.settings.firmware_image_uri.as_deref(),
            journal: &journal,
            cancelled: &cancelled,
        };
        run_step(&ctx, operation, data).await
    }

    fn final_status(&self, task_id: &str) -> &'static str {
        let Ok(steps) = self.inner.journal.steps(task_id) else { return FAILED };
        if steps.iter().any(|s| s.state == FAILED) {
            FAILED
        } else if steps.iter().any(|s| s.state == TERMINATED) {
            TERMINATED
        } else {
            DONE
        }
    }

    fn report(&self, task: &JournalTask) -> Result<TaskReport, CoreError> {
        let steps = self.inner.journal.steps(&task.task_id).map_err(|e| self.journal_error(e))?;
        let mut results = BTreeMap::new();
        let mut messages = Vec::new();
        for step in &steps {
            let status = step_status(&step.state);
            let data: StepData = serde_json::from_str(&step.data).unwrap_or_default();
            if !data.message.is_empty() && status != TaskStatus::Completed {
                messages.push(format!("{}: {}", step.step, data.message));
            }
            results.insert(ComponentId::new(&step.step), status);
        }
        let status = match task.status.as_str() {
            DONE => TaskStatus::Completed,
            FAILED => TaskStatus::Failed,
            TERMINATED => TaskStatus::Terminated,
            _ if results.values().all(|s| *s == TaskStatus::Pending) => TaskStatus::Pending,
            _ => TaskStatus::Running,
        };
        Ok(TaskReport {
            task_id: TaskId::new(&task.task_id),
            idempotency_key: IdempotencyKey::new(&task.idempotency_key),
            status,
            message: if messages.is_empty() { status.to_string() } else { messages.join("; ") },
            component_results: results,
        })
    }

    fn validate_request(&self, request: &TaskRequest) -> Option<String> {
        if request.components.is_empty() {
            return Some("no components selected".into());
        }
        let systems = self.inner.systems.read().unwrap_or_else(|p| p.into_inner());
        for component in &request.components {
            match systems.get(component) {
                None => return Some(format!("{component} is not a discovered Redfish system")),
                Some(s) if s.rack != request.rack_id => {
                    return Some(format!(
                        "{component} is in rack {}, not {}",
                        s.rack, request.rack_id
                    ));
                }
                Some(_) => {}
            }
        }
        None
    }
}

fn step_status(state: &str) -> TaskStatus {
    match state {
        PENDING => TaskStatus::Pending,
        DONE => TaskStatus::Completed,
        FAILED => TaskStatus::Failed,
        TERMINATED => TaskStatus::Terminated,
        _ => TaskStatus::Running,
    }
}

fn skips(operation: &Operation, kind: ComponentKind) -> bool {
    matches!(operation, Operation::FirmwareUpdate { components, .. }
        if !components.is_empty() && !components.contains(&kind))
}

/// Bring-up order (power shelves, switches, compute, nodes); `power_off` the reverse.
fn kind_order(operation: &Operation) -> Vec<ComponentKind> {
    let mut order = vec![
        ComponentKind::PowerShelf,
        ComponentKind::Nvswitch,
        ComponentKind::Compute,
        ComponentKind::Node,
    ];
    if *operation == Operation::PowerOff {
        order.reverse();
    }
    order
}

#[async_trait::async_trait]
impl Core for RedfishCore {
    async fn observe(&self) -> Result<Vec<Observation>, CoreError> {
        Ok(self.sync().await)
    }

    async fn submit(&self, request: &TaskRequest) -> Result<SubmitOutcome, CoreError> {
        let key = request.idempotency_key.as_str();
        if let Some(task) =
            self.inner.journal.task_by_key(key).map_err(|e| self.journal_error(e))?
        {
            return Ok(SubmitOutcome::Accepted { task_id: TaskId::new(task.task_id) });
        }
        if let Some(message) = self.validate_request(request) {
            return Ok(SubmitOutcome::Rejected { message });
        }
        let task_id = format!("rf-{key}");
        {
            let mut active = self.lock_active();
            if let Some(other) = active.racks.get(&request.rack_id) {
                return Ok(SubmitOutcome::Conflict {
                    message: format!("task {other} is running on rack {}", request.rack_id),
                });
            }
            active.racks.insert(request.rack_id.clone(), task_id.clone());
        }
        let data = serde_json::to_string(&TaskData { request: request.clone() })
            .map_err(|e| CoreError::Protocol(e.to_string()))?;
        let task = JournalTask {
            task_id: task_id.clone(),
            idempotency_key: key.to_string(),
            status: RUNNING.into(),
            data,
        };
        let empty = serde_json::to_string(&StepData::default()).unwrap_or_default();
        let steps: Vec<JournalStep> = request
            .components
            .iter()
            .map(|c| JournalStep {
                step: c.to_string(),
                state: PENDING.into(),
                data: empty.clone(),
            })
            .collect();
        let created = self.inner.journal.create_task(&task, &steps, &self.now_text());
        if !matches!(created, Ok(true)) {
            self.lock_active().racks.remove(&request.rack_id);
        }
        match created.map_err(|e| self.journal_error(e))? {
            true => self.spawn_runner(task_id.clone(), request.clone()),
            false => {
                let existing =
                    self.inner.journal.task_by_key(key).map_err(|e| self.journal_error(e))?;
                let id = existing.map_or(task_id.clone(), |t| t.task_id);
                return Ok(SubmitOutcome::Accepted { task_id: TaskId::new(id) });
            }
        }
        Ok(SubmitOutcome::Accepted { task_id: TaskId::new(task_id) })
    }

    async fn task_status(&self, task: &TaskId) -> Result<TaskReport, CoreError> {
        let found = self.inner.journal.task(task.as_str()).map_err(|e| self.journal_error(e))?;
        let found = found.ok_or_else(|| CoreError::NotFound { task: task.clone() })?;
        self.report(&found)
    }

    async fn find_task(&self, key: &IdempotencyKey) -> Result<Option<TaskReport>, CoreError> {
        let found =
            self.inner.journal.task_by_key(key.as_str()).map_err(|e| self.journal_error(e))?;
        found.map(|task| self.report(&task)).transpose()
    }

    async fn cancel(&self, task: &TaskId) -> Result<(), CoreError> {
        let found = self.inner.journal.task(task.as_str()).map_err(|e| self.journal_error(e))?;
        if found.is_none() {
            return Err(CoreError::NotFound { task: task.clone() });
        }
        self.lock_active().cancelled.insert(task.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_off_runs_kinds_in_reverse() {
        assert_eq!(kind_order(&Operation::PowerOn)[0], ComponentKind::PowerShelf);
        assert_eq!(kind_order(&Operation::PowerOff)[0], ComponentKind::Node);
        assert_eq!(step_status("running"), TaskStatus::Running);
    }
}
