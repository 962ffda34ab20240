//! [`ExecCore`]: the `Core` trait over the site's own commands.
//!
//! A task is one rack's operation: one run of the operation's configured command. `submit`
//! journals the task (`pending`) in Steward's database; its runner then writes the request
//! document, commits the task as `started` and only then spawns the command. A task journaled
//! as `started` is never spawned again, whatever happens: after a restart its command is
//! found again by the pid journaled after the spawn (or by a `/proc` scan for its
//! `STEWARD_TASK_ID`) and watched until it ends, and when it is gone its stdout file, which
//! survives the crash, decides through the result line. A `pending` task never started, so it
//! is started after a restart.
//!
//! Progress lines update the journal's per-component steps as they arrive, so `task_status`
//! and `find_task` answer from the journal, the same before and after a crash. Cancelling
//! stops a task whose command has not started; a running command is never interrupted (it
//! may be half-way through flashing a rack): its own result stands.

use crate::config::Settings;
use crate::process::{
    TaskFiles, find_task_process, is_task_process, kill_group, run_observe, spawn_task,
};
use crate::protocol::{
    ComponentState, Exit, Progress, Verdict, last_line, parse_observe, request_document,
    request_env, unknown_state,
};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use steward_proto::{
    ComponentId, ComponentKind, ComponentSpec, IdempotencyKey, InventoryUpsert, Observation,
    RackId, RackSpec, TaskId, TaskStatus,
};
use steward_runtime::adapter::{Active, ActiveTasks, TaskRunners};
use steward_runtime::clock::SharedClock;
use steward_runtime::core::{Core, CoreError, SubmitOutcome, TaskReport, TaskRequest};
use steward_runtime::store::StoreOptions;
use steward_runtime::store::journal::{AdapterJournal, JournalStep, JournalTask};
use tokio::process::Child;
use tokio::sync::watch;

/// The adapter's name in the journal.
pub const ADAPTER: &str = "exec";

/// Journaled, command not started: may be started (again) after a restart.
const PENDING: &str = "pending";
/// Committed before the spawn: the command is never spawned again.
const STARTED: &str = "started";
const COMPLETED: &str = "completed";
const FAILED: &str = "failed";
const TERMINATED: &str = "terminated";
const FINISHED: [&str; 3] = [COMPLETED, FAILED, TERMINATED];

/// The step holding the command's pid, start time and the task's message. Submissions naming
/// a component with this id are refused, so it never collides with a component step.
const PROCESS_STEP: &str = "@process";

/// How often a running command's output and liveness are checked.
const POLL: Duration = Duration::from_millis(200);

/// The exec Core adapter. Cheap to clone.
#[derive(Clone)]
pub struct ExecCore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ExecCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecCore").field("work_dir", &self.inner.work_dir).finish_non_exhaustive()
    }
}

struct Inner {
    settings: Settings,
    journal: AdapterJournal,
    journal_path: String,
    work_dir: PathBuf,
    clock: SharedClock,
    components: RwLock<BTreeMap<ComponentId, Known>>,
    active: ActiveTasks,
    /// The last observe failure (logged once per distinct reason).
    observe_error: Mutex<Option<String>>,
    inventory: watch::Sender<u64>,
    /// The task runners, aborted by [`ExecCore::stop`].
    runners: TaskRunners,
}

/// A component the observe command reported.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Known {
    rack: RackId,
    kind: ComponentKind,
    name: String,
    firmware: Option<String>,
    power: Option<String>,
}

/// The journaled request of a task.
#[derive(Serialize, Deserialize)]
struct TaskData {
    request: TaskRequest,
}

/// The journaled process of a task.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ProcessData {
    #[serde(default)]
    pid: Option<u32>,
    #[serde(default)]
    started_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    message: String,
}

/// The journaled part of a component step.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct StepData {
    #[serde(default)]
    message: String,
}

/// How a runner finds its command.
enum Start {
    /// Never started: start it.
    Fresh,
    /// Started by an earlier process: watch it (if it still runs) or read what it left.
    Started(ProcessData),
}

/// The command being watched.
enum Running {
    Child(Child),
    Orphan(u32),
}

impl ExecCore {
    /// Builds the adapter over the SQLite database at `db` (the adapter journal lives there;
    /// the work directory defaults to `{db}.exec`), runs the observe command once and resumes
    /// the tasks an earlier process left unfinished.
    pub async fn start(
        settings: Settings,
        db: &Path,
        store: &StoreOptions,
        clock: SharedClock,
    ) -> Result<ExecCore, CoreError> {
        let journal_path = db.display().to_string();
        let journal = AdapterJournal::open(db, ADAPTER, store).map_err(|e| CoreError::Journal {
            path: journal_path.clone(),
            message: e.to_string(),
        })?;
        let work_dir = settings.work_dir_for(db);
        Self::start_with_journal(settings, journal, journal_path, work_dir, clock).await
    }

    /// Builds the adapter over a ready journal (in HA mode: PostgreSQL, fenced by the leader's
    /// epoch; `journal_name` names it in errors) with its command files in `work_dir`, runs
    /// the observe command once and resumes the tasks the journal holds unfinished (a task a
    /// previous leader `started` is watched or judged from its files, never started again).
    pub async fn start_with_journal(
        settings: Settings,
        journal: AdapterJournal,
        journal_name: String,
        work_dir: PathBuf,
        clock: SharedClock,
    ) -> Result<ExecCore, CoreError> {
        std::fs::create_dir_all(&work_dir).map_err(|e| CoreError::InvalidConfig {
            field: "core.exec.work_dir".into(),
            message: format!("cannot create {}: {e}", work_dir.display()),
        })?;
        let core = ExecCore {
            inner: Arc::new(Inner {
                settings,
                journal,
                journal_path: journal_name,
                work_dir,
                clock,
                components: RwLock::default(),
                active: ActiveTasks::default(),
                observe_error: Mutex::default(),
                inventory: watch::channel(0).0,
                runners: TaskRunners::default(),
            }),
        };
        core.sync().await;
        core.resume()?;
        Ok(core)
    }

    /// The observed fleet as an inventory document.
    pub fn inventory(&self) -> InventoryUpsert {
        let components = self.inner.components.read().unwrap_or_else(|p| p.into_inner());
        let mut racks: BTreeMap<RackId, RackSpec> = BTreeMap::new();
        for (id, known) in components.iter() {
            let rack = racks.entry(known.rack.clone()).or_insert_with(|| RackSpec {
                id: known.rack.clone(),
                name: known.rack.to_string(),
                location: Default::default(),
                labels: Default::default(),
                components: Vec::new(),
            });
            rack.components.push(ComponentSpec {
                id: id.clone(),
                kind: known.kind,
                name: known.name.clone(),
                manufacturer: None,
                model: None,
                serial: None,
                position: Default::default(),
                firmware_version: known.firmware.clone(),
                power_state: known.power.clone(),
                labels: Default::default(),
            });
        }
        InventoryUpsert { racks: racks.into_values().collect() }
    }

    /// Bumped whenever the observe command reports a component that is new (or moved to
    /// another rack or kind): re-import [`Self::inventory`].
    pub fn inventory_changes(&self) -> watch::Receiver<u64> {
        self.inner.inventory.subscribe()
    }

    /// One observe run. A failing command or an output that is not a JSON array makes every
    /// known component `unknown` (with the reason) instead of leaving its last status to age;
    /// a known component missing from a good output is `unknown` too.
    async fn sync(&self) -> Vec<Observation> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let output = run_observe(&inner.settings.observe, inner.settings.observe_timeout).await;
        let parsed = output.and_then(|stdout| parse_observe(&stdout, now));
        let mut components = inner.components.write().unwrap_or_else(|p| p.into_inner());
        let unknown = |id: &ComponentId, kind: ComponentKind, reason: &str| Observation {
            component_id: id.clone(),
            controller_state: unknown_state(kind, reason),
            power_state: None,
            firmware_version: None,
            observed_at: Some(now),
        };
        let (observed, warnings) = match parsed {
            Ok(parsed) => parsed,
            Err(reason) => {
                let reason = format!("observe command failed: {reason}");
                self.note_observe_error(Some(&reason));
                return components.iter().map(|(id, k)| unknown(id, k.kind, &reason)).collect();
            }
        };
        self.note_observe_error(None);
        for warning in warnings {
            tracing::warn!(%warning, "observe command: entry skipped");
        }
        let mut changed = false;
        let mut seen = BTreeSet::new();
        let mut observations = Vec::with_capacity(observed.len());
        for entry in observed {
            let id = entry.observation.component_id.clone();
            let known = Known {
                rack: entry.rack,
                kind: entry.kind,
                name: entry.name,
                firmware: entry.observation.firmware_version.clone(),
                power: entry.observation.power_state.clone(),
            };
            match components.get_mut(&id) {
                Some(old) if old.rack == known.rack && old.kind == known.kind => *old = known,
                _ => {
                    components.insert(id.clone(), known);
                    changed = true;
                }
            }
            seen.insert(id);
            observations.push(entry.observation);
        }
        for (id, known) in components.iter().filter(|(id, _)| !seen.contains(*id)) {
            observations.push(unknown(id, known.kind, "not in the observe command's output"));
        }
        drop(components);
        if changed {
            inner.inventory.send_modify(|generation| *generation += 1);
        }
        observations
    }

    fn note_observe_error(&self, error: Option<&str>) {
        let mut last = self.inner.observe_error.lock().unwrap_or_else(|p| p.into_inner());
        match error {
            Some(error) if last.as_deref() != Some(error) => {
                tracing::warn!(%error, "observe failed; every component reads unknown");
                *last = Some(error.to_string());
            }
            None if last.is_some() => {
                tracing::info!("observe command works again");
                *last = None;
            }
            _ => {}
        }
    }

    fn journal_error(&self, error: impl std::fmt::Display) -> CoreError {
        CoreError::Journal { path: self.inner.journal_path.clone(), message: error.to_string() }
    }

    fn lock_active(&self) -> std::sync::MutexGuard<'_, Active> {
        self.inner.active.lock()
    }

    fn files(&self, task_id: &str) -> TaskFiles {
        let digest = sha2::Sha256::digest(task_id.as_bytes());
        let stem = hex::encode(&digest[..16]);
        TaskFiles::new(&self.inner.work_dir, &stem)
    }

    /// Restarts the runners of the tasks an earlier process left unfinished: a `pending` one
    /// starts its command, a `started` one never does.
    fn resume(&self) -> Result<(), CoreError> {
        let tasks =
            self.inner.journal.unfinished_tasks(&FINISHED).map_err(|e| self.journal_error(e))?;
        for task in tasks {
            let data: TaskData = serde_json::from_str(&task.data)
                .map_err(|e| CoreError::Protocol(format!("journal task {}: {e}", task.task_id)))?;
            let start = if task.status == PENDING {
                Start::Fresh
            } else {
                Start::Started(self.process_data(&task.task_id))
            };
            tracing::info!(task = %task.task_id, status = %task.status,
                "resuming exec task after restart");
            self.lock_active().racks.insert(data.request.rack_id.clone(), task.task_id.clone());
            self.spawn_runner(task.task_id, data.request, start);
        }
        Ok(())
    }

    fn process_data(&self, task_id: &str) -> ProcessData {
        let steps = self.inner.journal.steps(task_id).unwrap_or_default();
        steps
            .iter()
            .find(|s| s.step == PROCESS_STEP)
            .and_then(|s| serde_json::from_str(&s.data).ok())
            .unwrap_or_default()
    }

    fn spawn_runner(&self, task_id: String, request: TaskRequest, start: Start) {
        let core = self.clone();
        let id = task_id.clone();
        self.inner.runners.spawn(&id, async move {
            core.run_task(&task_id, &request, start).await;
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

    async fn run_task(&self, task_id: &str, request: &TaskRequest, start: Start) {
        let files = self.files(task_id);
        let (running, process) = match start {
            Start::Fresh => match self.start_command(task_id, request, &files).await {
                Some(started) => started,
                None => return,
            },
            Start::Started(process) => {
                let pid = process
                    .pid
                    .filter(|pid| is_task_process(*pid, task_id))
                    .or_else(|| find_task_process(task_id));
                match pid {
                    Some(pid) => {
                        tracing::info!(task = %task_id, pid, "watching a command started before the restart");
                        (Some(Running::Orphan(pid)), process)
                    }
                    None => (None, process),
                }
            }
        };
        let verdict = self.watch(task_id, request, &files, running, &process).await;
        self.finish(task_id, &verdict, &process, &files);
    }

    /// Writes the request, commits `started`, spawns. `None` when the task ended without a
    /// command (cancelled, or it could not be started: recorded).
    async fn start_command(
        &self,
        task_id: &str,
        request: &TaskRequest,
        files: &TaskFiles,
    ) -> Option<(Option<Running>, ProcessData)> {
        if self.lock_active().cancelled.contains(task_id) {
            self.finish_unstarted(
                task_id,
                request,
                TERMINATED,
                "not started: the task was cancelled",
            );
            return None;
        }
        let Some(argv) = self.inner.settings.command(request.operation.kind()) else {
            let message = format!(
                "no command is configured for {0} (core.exec.{0})",
                request.operation.kind().as_str()
            );
            self.finish_unstarted(task_id, request, FAILED, &message);
            return None;
        };
        let argv = argv.to_vec();
        if let Err(error) = std::fs::write(&files.input, request_document(task_id, request)) {
            let message = format!("not started: cannot write {}: {error}", files.input.display());
            self.finish_unstarted(task_id, request, FAILED, &message);
            return None;
        }
        // The durable mark that makes a second start impossible; without it, no spawn (the
        // task stays pending, retried with a capped backoff).
        let mut delay = Duration::from_millis(100);
        loop {
            let now = self.inner.clock.now().to_rfc3339();
            match self.inner.journal.set_task_status(task_id, STARTED, &now) {
                Ok(()) => break,
                Err(error) if error.is_fenced() => {
                    // Another instance leads now and owns the task: never spawn it here.
                    tracing::warn!(%error, task = %task_id,
                        "not starting the command: this instance no longer leads");
                    return None;
                }
                Err(error) => {
                    tracing::warn!(%error, task = %task_id,
                        "cannot journal the start; the command waits until it can");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        let env = request_env(task_id, request);
        let started_at = self.inner.clock.now();
        match spawn_task(&argv, &env, files) {
            Ok(child) => {
                let process = ProcessData {
                    pid: child.id(),
                    started_at: Some(started_at),
                    message: String::new(),
                };
                let running = format!("running (pid {})", process.pid.unwrap_or_default());
                self.write_process(task_id, &ProcessData { message: running, ..process.clone() });
                tracing::info!(task = %task_id, pid = ?process.pid, command = %argv[0], "command started");
                Some((Some(Running::Child(child)), process))
            }
            Err(error) => {
                let process =
                    ProcessData { pid: None, started_at: Some(started_at), message: String::new() };
                let verdict = Progress::new(&request.components).verdict(&Exit::Code(-1), "");
                let verdict = Verdict { ok: false, message: error.clone(), ..verdict };
                let components = verdict
                    .components
                    .into_iter()
                    .map(|(c, (s, _))| (c, (s, error.clone())))
                    .collect();
                self.finish(task_id, &Verdict { components, ..verdict }, &process, files);
                None
            }
        }
    }

    /// Follows the command's stdout into the journal until the command is gone (killing its
    /// group at the deadline); the verdict from what it printed and how it ended.
    async fn watch(
        &self,
        task_id: &str,
        request: &TaskRequest,
        files: &TaskFiles,
        mut running: Option<Running>,
        process: &ProcessData,
    ) -> Verdict {
        let mut progress = Progress::new(&request.components);
        let mut reader = OutputReader::default();
        let timeout = self.inner.settings.timeout;
        let started_at = process.started_at.unwrap_or_else(|| self.inner.clock.now());
        let deadline = chrono::Duration::from_std(timeout)
            .ok()
            .and_then(|limit| started_at.checked_add_signed(limit))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        let mut killed = false;
        let exit = loop {
            let exit = match &mut running {
                None => Some(Exit::Gone),
                Some(Running::Child(child)) => match child.try_wait() {
                    Ok(Some(status)) => Some(match status.code() {
                        Some(code) => Exit::Code(code),
                        None => Exit::Signal,
                    }),
                    Ok(None) => None,
                    Err(error) => {
                        tracing::warn!(%error, task = %task_id, "cannot wait for the command");
                        None
                    }
                },
                Some(Running::Orphan(pid)) => {
                    (!is_task_process(*pid, task_id)).then_some(Exit::Gone)
                }
            };
            let mut changed = BTreeSet::new();
            for line in reader.read(&files.stdout, exit.is_some()) {
                changed.extend(progress.feed(&line));
            }
            for component in changed {
                if let Some((state, message)) = progress.components.get(&component) {
                    // Progress is not final: a component is final only in the verdict.
                    let state = match state {
                        ComponentState::Pending => ComponentState::Pending,
                        _ => ComponentState::Running,
                    };
                    self.write_step(task_id, &component, state, message);
                }
            }
            if let Some(exit) = exit {
                break exit;
            }
            if !killed && self.inner.clock.now() >= deadline {
                let pid = match &running {
                    Some(Running::Child(child)) => child.id(),
                    Some(Running::Orphan(pid)) => Some(*pid),
                    None => None,
                };
                if let Some(pid) = pid {
                    tracing::warn!(task = %task_id, pid, "command timed out; killing its process group");
                    kill_group(pid).await;
                }
                killed = true;
            }
            tokio::time::sleep(POLL).await;
        };
        let exit = if killed { Exit::TimedOut(timeout.as_secs()) } else { exit };
        let stderr = std::fs::read(&files.stderr).unwrap_or_default();
        let stderr = last_line(&String::from_utf8_lossy(tail(&stderr, 64 * 1024)));
        progress.verdict(&exit, &stderr)
    }

    /// Journals the verdict: component steps, the task's message, its final status; then
    /// removes the task's files (kept when the final status could not be journaled, so a
    /// restart can still read them).
    fn finish(&self, task_id: &str, verdict: &Verdict, process: &ProcessData, files: &TaskFiles) {
        for (component, (state, message)) in &verdict.components {
            self.write_step(task_id, component, *state, message);
        }
        let data = ProcessData { message: verdict.message.clone(), ..process.clone() };
        self.write_process(task_id, &data);
        let status = if verdict.ok { COMPLETED } else { FAILED };
        let now = self.inner.clock.now().to_rfc3339();
        match self.inner.journal.set_task_status(task_id, status, &now) {
            Ok(()) => files.remove(),
            Err(error) => tracing::error!(%error, task = %task_id, "cannot journal the task's end"),
        }
        tracing::info!(task = %task_id, status, message = %verdict.message, "exec task finished");
    }

    fn finish_unstarted(&self, task_id: &str, request: &TaskRequest, status: &str, message: &str) {
        let state =
            if status == TERMINATED { ComponentState::Terminated } else { ComponentState::Failed };
        for component in &request.components {
            self.write_step(task_id, component, state, message);
        }
        self.write_process(
            task_id,
            &ProcessData { message: message.to_string(), ..Default::default() },
        );
        let now = self.inner.clock.now().to_rfc3339();
        if let Err(error) = self.inner.journal.set_task_status(task_id, status, &now) {
            tracing::error!(%error, task = %task_id, "cannot journal the task's end");
        }
    }

    fn write_step(
        &self,
        task_id: &str,
        component: &ComponentId,
        state: ComponentState,
        message: &str,
    ) {
        let data = StepData { message: message.to_string() };
        let step = JournalStep {
            step: component.to_string(),
            state: state.as_str().to_string(),
            data: serde_json::to_string(&data).unwrap_or_default(),
        };
        let now = self.inner.clock.now().to_rfc3339();
        if let Err(error) = self.inner.journal.set_step(task_id, &step, &now) {
            tracing::error!(%error, task = %task_id, %component, "cannot journal a step");
        }
    }

    fn write_process(&self, task_id: &str, data: &ProcessData) {
        let step = JournalStep {
            step: PROCESS_STEP.to_string(),
            state: "process".to_string(),
            data: serde_json::to_string(data).unwrap_or_default(),
        };
        let now = self.inner.clock.now().to_rfc3339();
        if let Err(error) = self.inner.journal.set_step(task_id, &step, &now) {
            tracing::error!(%error, task = %task_id, "cannot journal the command's process");
        }
    }

    fn report(&self, task: &JournalTask) -> Result<TaskReport, CoreError> {
        let steps = self.inner.journal.steps(&task.task_id).map_err(|e| self.journal_error(e))?;
        let mut results = BTreeMap::new();
        let mut message = String::new();
        for step in &steps {
            if step.step == PROCESS_STEP {
                let data: ProcessData = serde_json::from_str(&step.data).unwrap_or_default();
                message = data.message;
                continue;
            }
            let status = match ComponentState::from_word(&step.state) {
                ComponentState::Pending => TaskStatus::Pending,
                ComponentState::Running => TaskStatus::Running,
                ComponentState::Completed => TaskStatus::Completed,
                ComponentState::Failed => TaskStatus::Failed,
                ComponentState::Terminated => TaskStatus::Terminated,
            };
            results.insert(ComponentId::new(&step.step), status);
        }
        let status = match task.status.as_str() {
            PENDING => TaskStatus::Pending,
            COMPLETED => TaskStatus::Completed,
            FAILED => TaskStatus::Failed,
            TERMINATED => TaskStatus::Terminated,
            _ => TaskStatus::Running,
        };
        Ok(TaskReport {
            task_id: TaskId::new(&task.task_id),
            idempotency_key: IdempotencyKey::new(&task.idempotency_key),
            status,
            message: if message.is_empty() { status.to_string() } else { message },
            component_results: results,
        })
    }

    fn validate_request(&self, request: &TaskRequest) -> Option<String> {
        if request.components.is_empty() {
            return Some("no components selected".into());
        }
        if request.components.iter().any(|c| c.as_str() == PROCESS_STEP) {
            return Some(format!("{PROCESS_STEP} is reserved"));
        }
        let components = self.inner.components.read().unwrap_or_else(|p| p.into_inner());
        for component in &request.components {
            match components.get(component) {
                None => {
                    return Some(format!("{component} was never reported by the observe command"));
                }
                Some(known) if known.rack != request.rack_id => {
                    return Some(format!(
                        "{component} is in rack {}, not {}",
                        known.rack, request.rack_id
                    ));
                }
                Some(_) => {}
            }
        }
        None
    }
}

/// The last `max` bytes of `bytes`.
fn tail(bytes: &[u8], max: usize) -> &[u8] {
    &bytes[bytes.len().saturating_sub(max)..]
}

/// Reads a growing stdout file line by line.
#[derive(Debug, Default)]
struct OutputReader {
    offset: u64,
    partial: Vec<u8>,
}

impl OutputReader {
    /// The complete lines appended since the last call; with `last`, the unterminated rest
    /// too. A line longer than the protocol's limit is handed over in pieces (each malformed).
    fn read(&mut self, path: &Path, last: bool) -> Vec<String> {
        use std::io::{Read, Seek, SeekFrom};
        let mut fresh = Vec::new();
        if let Ok(mut file) = std::fs::File::open(path)
            && file.seek(SeekFrom::Start(self.offset)).is_ok()
            && let Ok(read) = file.take(4 * 1024 * 1024).read_to_end(&mut fresh)
        {
            self.offset += read as u64;
        }
        self.partial.extend_from_slice(&fresh);
        let mut lines = Vec::new();
        while let Some(at) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=at).collect();
            lines.push(String::from_utf8_lossy(&line[..at]).into_owned());
        }
        let limit = crate::protocol::MAX_LINE_BYTES + 1;
        if self.partial.len() > limit || (last && !self.partial.is_empty()) {
            lines.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
        }
        if last && !fresh.is_empty() && fresh.len() == 4 * 1024 * 1024 {
            // More than one read's worth after the end: read the rest too.
            lines.extend(self.read(path, true));
        }
        lines
    }
}

#[async_trait::async_trait]
impl Core for ExecCore {
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
        let kind = request.operation.kind();
        if self.inner.settings.command(kind).is_none() {
            return Ok(SubmitOutcome::Rejected {
                message: format!(
                    "this site has no command for {0} (core.exec.{0} is not configured)",
                    kind.as_str()
                ),
            });
        }
        if let Some(message) = self.validate_request(request) {
            return Ok(SubmitOutcome::Rejected { message });
        }
        let task_id = format!("exec-{key}");
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
            .map_err(|e| CoreError::Protocol(e.to_string()));
        let created = data.and_then(|data| {
            let task = JournalTask {
                task_id: task_id.clone(),
                idempotency_key: key.to_string(),
                status: PENDING.into(),
                data,
            };
            let empty = serde_json::to_string(&StepData::default()).unwrap_or_default();
            let steps: Vec<JournalStep> = request
                .components
                .iter()
                .map(|c| JournalStep {
                    step: c.to_string(),
                    state: ComponentState::Pending.as_str().into(),
                    data: empty.clone(),
                })
                .collect();
            let now = self.inner.clock.now().to_rfc3339();
            self.inner.journal.create_task(&task, &steps, &now).map_err(|e| self.journal_error(e))
        });
        if !matches!(created, Ok(true)) {
            self.lock_active().racks.remove(&request.rack_id);
        }
        if created? {
            self.spawn_runner(task_id.clone(), request.clone(), Start::Fresh);
            return Ok(SubmitOutcome::Accepted { task_id: TaskId::new(task_id) });
        }
        let existing = self.inner.journal.task_by_key(key).map_err(|e| self.journal_error(e))?;
        let id = existing.map_or(task_id, |t| t.task_id);
        Ok(SubmitOutcome::Accepted { task_id: TaskId::new(id) })
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
        let found = found.ok_or_else(|| CoreError::NotFound { task: task.clone() })?;
        if !FINISHED.contains(&found.status.as_str()) {
            self.lock_active().cancelled.insert(task.to_string());
        }
        Ok(())
    }
}
