//! `Runtime`: builds and starts everything around the reducer from a config struct — store,
//! recovery, reducer thread, applier, pollers, planning ticker, webhook workers — and stops it.

use crate::applier;
use crate::clock::SharedClock;
use crate::core::Core;
use crate::handle::Handle;
use crate::health::{Health, ReducerState};
use crate::hooks::HookConfig;
use crate::metrics::Metrics;
use crate::pollers;
use crate::protocol::ReducerInput;
use crate::reducer::{Reducer, ReducerError, ReducerSettings};
use crate::store::{Backend, Store, StoreError, StoreOptions};
#[cfg(feature = "webhooks")]
use crate::webhooks;
use crate::webhooks::WebhookConfig;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use steward_planner::{ConflictRules, PlannerConfig};
use steward_proto::{PhaseMappingOverride, RunPolicy, ServiceTableDoc, SiteTables};
use steward_state_machine::{FleetConfig, ServiceTable, StatusMapper};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Everything the runtime needs besides a Core and a clock.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// SQLite file.
    pub db_path: PathBuf,
    /// Store options (synchronous mode).
    pub store: StoreOptions,
    /// Overrides of the status tables.
    pub phase_mapping: PhaseMappingOverride,
    /// The site service-state table (`None`: the default table).
    pub service_table: Option<ServiceTableDoc>,
    /// The site's default run policy (`None`: none). The engine only records it in the event
    /// log with the other site tables; the shell merges it under run requests.
    pub default_policy: Option<RunPolicy>,
    /// A status older than this reads as unknown (`None`: never).
    pub status_max_age: Option<Duration>,
    /// Planner settings (global concurrency, conflict rules).
    pub planner: PlannerConfig,
    /// How often the planner runs even when nothing arrives.
    pub plan_interval: Duration,
    /// How often the inventory is synced from Core.
    pub sync_interval: Duration,
    /// How often submitted tasks are polled.
    pub task_poll_interval: Duration,
    /// Webhooks.
    pub webhooks: Vec<WebhookConfig>,
    /// Site hooks runs may reference by name.
    pub hooks: Vec<HookConfig>,
    /// Failed attempts after which a webhook delivery is parked (dead letter) until an admin
    /// requeues it (default 20).
    pub webhook_max_attempts: u32,
    /// Most inputs folded into one batch (one transaction).
    pub max_batch: usize,
    /// Input queue length.
    pub queue: usize,
    /// How long a commit that fails transiently (the database is locked by another connection)
    /// is retried, its callers waiting, before the batch fails (default 30 s).
    pub commit_retry_deadline: Duration,
}

impl RuntimeConfig {
    /// Defaults around a database path.
    pub fn new(db_path: impl Into<PathBuf>) -> Self {
        Self {
            db_path: db_path.into(),
            store: StoreOptions::default(),
            phase_mapping: PhaseMappingOverride::default(),
            service_table: None,
            default_policy: None,
            status_max_age: Some(Duration::from_secs(600)),
            planner: PlannerConfig::default(),
            plan_interval: Duration::from_millis(500),
            sync_interval: Duration::from_secs(5),
            task_poll_interval: Duration::from_secs(1),
            webhooks: Vec::new(),
            hooks: Vec::new(),
            webhook_max_attempts: crate::webhooks::DEFAULT_MAX_ATTEMPTS,
            max_batch: 1024,
            queue: 8192,
            commit_retry_deadline: Duration::from_secs(30),
        }
    }

    /// The site tables this config describes, as the event log records them.
    pub fn site_tables(&self) -> SiteTables {
        SiteTables {
            phase_mapping: Some(self.phase_mapping.clone()),
            service_states: self.service_table.clone(),
            default_policy: self.default_policy.clone(),
            conflict_rules: (self.planner.conflict_rules != ConflictRules::default())
                .then(|| self.planner.conflict_rules.rules.clone()),
        }
        .normalized()
    }

    /// The machines' configuration, validated (the planner's conflict rules too, since they
    /// are recorded with the site tables).
    pub fn fleet_config(&self) -> Result<FleetConfig, StartError> {
        let rules = &self.planner.conflict_rules.rules;
        if let Err(errors) =
            steward_planner::conflict::validate_rules(rules, "planner.conflict_rules")
        {
            let key = errors.first_field().unwrap_or("planner.conflict_rules").to_string();
            return Err(StartError::Config { key, message: errors.to_string() });
        }
        let mapper = StatusMapper::with_override(&self.phase_mapping).map_err(|e| {
            StartError::Config { key: "phase_mapping".into(), message: e.to_string() }
        })?;
        let service_table = match &self.service_table {
            Some(doc) => ServiceTable::from_doc(doc).map_err(|e| StartError::Config {
                key: "service_states".into(),
                message: e.to_string(),
            })?,
            None => ServiceTable::default(),
        };
        let status_max_age =
            self.status_max_age.and_then(|age| chrono::Duration::from_std(age).ok());
        Ok(FleetConfig { mapper, service_table, status_max_age })
    }
}

/// Why the runtime did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration value is invalid.
    #[error("config {key}: {message}")]
    Config {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The store could not be opened or loaded.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The site tables cannot take effect on this database (e.g. the new service-state table
    /// lacks a state components are in), or could not be recorded.
    #[error("site tables: {0}")]
    SiteTables(String),
    /// The reducer thread could not be started.
    #[error("could not start the reducer thread: {0}")]
    Thread(String),
}

/// A started runtime: the reducer thread plus its applier, pollers and webhook workers.
///
/// # Example
///
/// Embedding Steward with a Core of the daemon's own (here one that owns no hardware yet):
/// import an inventory, plan a run without creating it, then shut down. A fuller example with
/// a working Core is `examples/embedded.rs`; the simulated Core lives in `steward-sim`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use steward_proto::{
///     CreateRunRequest, IdempotencyKey, InventoryUpsert, Observation, Operation, RunPolicy,
///     Selector, TaskId,
/// };
/// use steward_runtime::core::{Core, CoreError, SubmitOutcome, TaskReport, TaskRequest};
/// use steward_runtime::{CreateRunOutcome, Runtime, RuntimeConfig, SystemClock};
///
/// struct NoHardware;
///
/// #[async_trait::async_trait]
/// impl Core for NoHardware {
///     async fn observe(&self) -> Result<Vec<Observation>, CoreError> {
///         Ok(Vec::new())
///     }
///     async fn submit(&self, _: &TaskRequest) -> Result<SubmitOutcome, CoreError> {
///         Ok(SubmitOutcome::Rejected { message: "no hardware".into() })
///     }
///     async fn task_status(&self, task: &TaskId) -> Result<TaskReport, CoreError> {
///         Err(CoreError::NotFound { task: task.clone() })
///     }
///     async fn find_task(&self, _: &IdempotencyKey) -> Result<Option<TaskReport>, CoreError> {
///         Ok(None)
///     }
///     async fn cancel(&self, _: &TaskId) -> Result<(), CoreError> {
///         Ok(())
///     }
/// }
///
/// let dir = tempfile::tempdir()?;
/// let config = RuntimeConfig::new(dir.path().join("steward.db"));
/// let runtime = Runtime::start(config, Arc::new(NoHardware), Arc::new(SystemClock)).await?;
/// let handle = runtime.handle();
/// let inventory: InventoryUpsert = serde_json::from_value(serde_json::json!({"racks": [
///     {"id": "r1", "components": [{"id": "r1-c1", "kind": "compute"}]},
///     {"id": "r2", "components": [{"id": "r2-c1", "kind": "compute"}]},
/// ]}))?;
/// let summary = handle.upsert_inventory(inventory, "my-daemon").await?;
/// assert_eq!(summary.racks, 2);
///
/// let request = CreateRunRequest {
///     name: Some("preview".into()),
///     operation: Operation::PowerCycle,
///     selector: Selector { all: Some(true), ..Default::default() },
///     policy: RunPolicy { max_parallel_racks: 2, ..Default::default() },
///     dry_run: true,
/// };
/// let CreateRunOutcome::DryRun(plan) = handle.create_run(request, "my-daemon").await? else {
///     panic!("a dry run creates nothing");
/// };
/// assert_eq!(plan.targets.len(), 2);
/// assert!(handle.runs().await?.is_empty());
/// runtime.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Runtime {
    handle: Handle,
    metrics: Arc<Metrics>,
    health: Health,
    stop: CancellationToken,
    /// Cancelled when the reducer thread returns (shutdown, a failed reload, or fenced).
    stopped: CancellationToken,
    reducer: Option<std::thread::JoinHandle<Result<(), ReducerError>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// Opens the store, loads state (not a replay), recovers in-flight work and starts every
    /// task. Must be called inside a tokio runtime.
    pub async fn start(
        config: RuntimeConfig,
        core: Arc<dyn Core>,
        clock: SharedClock,
    ) -> Result<Runtime, StartError> {
        #[cfg(not(feature = "webhooks"))]
        if !config.webhooks.is_empty() {
            return Err(StartError::Config {
                key: "webhooks".into(),
                message: "this build has no webhook delivery (cargo feature `webhooks`)".into(),
            });
        }
        // A bad config is refused before the database is opened (or created).
        config.fleet_config()?;
        let path = config.db_path.clone();
        let options = config.store.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&path, &options))
            .await
            .map_err(|e| StartError::Thread(e.to_string()))??;
        Self::start_with_backend(config, Box::new(store), core, clock).await
    }

    /// [`Runtime::start`] on a store the caller opened (PostgreSQL, or SQLite opened by hand);
    /// `config.db_path` and `config.store` are not used.
    pub async fn start_with_backend(
        config: RuntimeConfig,
        store: Box<dyn Backend>,
        core: Arc<dyn Core>,
        clock: SharedClock,
    ) -> Result<Runtime, StartError> {
        let fleet_config = config.fleet_config();
        // The store is loaded, and dropped on failure, off the async threads: a blocking
        // client (PostgreSQL's) may not run or close on them. The fleet loads with the tables
        // the log recorded last; the start then records the configured ones if they differ.
        let (store, loaded, recorded) = tokio::task::spawn_blocking(move || {
            let recorded = store.recorded_site_tables()?.unwrap_or_default();
            let loaded = store.load(loaded_config(&recorded, fleet_config?))?;
            Ok::<_, StartError>((store, loaded, recorded))
        })
        .await
        .map_err(|e| StartError::Thread(e.to_string()))??;
        let metrics = Arc::new(Metrics::new());
        metrics.observe_fleet(&loaded.fleet);
        let (inputs, receiver) = mpsc::channel(config.queue);
        let (events, _) = broadcast::channel(4096);
        let (work, work_receiver) = mpsc::unbounded_channel();
        let handle = Handle { inputs: inputs.clone(), events: events.clone() };
        let health = Health::new();
        let settings = ReducerSettings {
            planner: config.planner.clone(),
            webhooks: config.webhooks.clone(),
            max_batch: config.max_batch,
            commit_deadline: config.commit_retry_deadline,
            health: health.clone(),
            hook_names: crate::hooks::names(&config.hooks),
        };
        let mut reducer = Reducer::new(
            loaded.fleet,
            store,
            loaded.last_seq,
            clock.clone(),
            settings,
            events,
            work,
            metrics.clone(),
        );
        let tables = config.site_tables();
        if tables != recorded {
            reducer.record_site_tables(tables).map_err(StartError::SiteTables)?;
        }
        reducer.recover();
        let reducer_health = health.clone();
        let stopped = CancellationToken::new();
        let stopped_by_reducer = stopped.clone();
        let reducer = std::thread::Builder::new()
            .name("steward-reducer".into())
            .spawn(move || {
                let outcome = run_reducer(reducer, receiver, &reducer_health);
                stopped_by_reducer.cancel();
                outcome
            })
            .map_err(|e| StartError::Thread(e.to_string()))?;
        let stop = CancellationToken::new();
        #[cfg_attr(not(feature = "webhooks"), allow(unused_mut))]
        let mut tasks = vec![
            tokio::spawn(applier::run(
                work_receiver,
                core.clone(),
                crate::hooks::HookRunner::new(&config.hooks),
                inputs.clone(),
                metrics.clone(),
            )),
            tokio::spawn(pollers::inventory_sync(
                handle.clone(),
                core.clone(),
                config.sync_interval,
                metrics.clone(),
                stop.clone(),
            )),
            tokio::spawn(pollers::task_status(
                handle.clone(),
                core.clone(),
                config.task_poll_interval,
                metrics.clone(),
                stop.clone(),
            )),
            tokio::spawn(pollers::ticker(handle.clone(), config.plan_interval, stop.clone())),
        ];
        #[cfg(feature = "webhooks")]
        for webhook in config.webhooks {
            let settings = webhooks::DeliverySettings {
                max_attempts: config.webhook_max_attempts.max(1),
                metrics: metrics.clone(),
            };
            tasks.push(tokio::spawn(webhooks::deliver(
                handle.clone(),
                webhook,
                settings,
                clock.clone(),
                stop.clone(),
            )));
        }
        Ok(Runtime { handle, metrics, health, stop, stopped, reducer: Some(reducer), tasks })
    }

    /// Liveness and readiness of this runtime; [`Health::failed`] resolves when the reducer
    /// died, after which the process must not keep answering.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// A handle for commands, queries and subscriptions.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// A token cancelled when the reducer thread has returned, for whatever reason (a fenced
    /// leader's reducer stops on its first refused commit).
    pub fn reducer_stopped(&self) -> CancellationToken {
        self.stopped.clone()
    }

    /// Stops pollers and workers, lets the reducer commit its current batch, and waits for it.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        let _ = self.handle.inputs.send(ReducerInput::Shutdown).await;
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if let Some(reducer) = self.reducer.take()
            && let Ok(Ok(Err(error))) = tokio::task::spawn_blocking(move || reducer.join()).await
        {
            tracing::error!(%error, "the reducer had stopped on an error");
        }
    }
}

/// The reducer thread's body: runs the loop and reports how it ended to [`Health`] (a panic
/// included), so a shell waiting on [`Health::failed`] can exit instead of answering without a
/// reducer.
fn run_reducer(
    reducer: Reducer,
    receiver: mpsc::Receiver<ReducerInput>,
    health: &Health,
) -> Result<(), ReducerError> {
    health.set_reducer(ReducerState::Running);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reducer.run(receiver)))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(ReducerError::Panicked(message))
        });
    match &outcome {
        Ok(()) => health.set_reducer(ReducerState::Stopped),
        Err(error) => health.set_reducer(ReducerState::Failed(error.to_string())),
    }
    outcome
}

/// The machines' configuration the stored rows were decided by: the tables the log last
/// recorded, with the runtime's own settings (status age). The start then switches to the
/// config's tables through a logged event if they differ.
fn loaded_config(recorded: &SiteTables, mut config: FleetConfig) -> FleetConfig {
    if let Ok((mapper, service_table)) = steward_state_machine::tables_config(recorded) {
        config.mapper = mapper;
        config.service_table = service_table;
    }
    config
}
