//! [`Server`]: what `steward serve` (and `steward demo`) run — the runtime with the Core adapter
//! a [`Config`] names (sim, Redfish or exec), the adapter's fleet imported into the inventory,
//! and the HTTP API on a TCP listener — plus a clean shutdown (stop accepting, then let the
//! reducer commit and stop).
//!
//! Before it opens anything (the sim Core's journal, the database, its WAL) a server checks that
//! the database is writable and takes the exclusive lock beside it ([`DbLock`]), held until the
//! server is dropped: a second server on the same file is refused without a trace.

use super::{ApiState, Auth, router};
use crate::config::{Adapter, Config, ConfigError, SynchronousSetting};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use steward_exec::ExecCore;
use steward_proto::InventoryUpsert;
use steward_redfish::RedfishCore;
use steward_runtime::Metrics;
use steward_runtime::clock::{SharedClock, SystemClock};
use steward_runtime::core::{Core, CoreError};
use steward_runtime::store::{
    DbLock, LockError, StoreError, StoreOptions, Synchronous, check_writable,
};
use steward_runtime::webhooks::WebhookConfig;
use steward_runtime::{CommandError, Handle};
use steward_runtime::{Runtime, RuntimeConfig, StartError};
use steward_sim::{SimConfig, SimCore};
use steward_state_machine::ServiceTable;
use tokio_util::sync::CancellationToken;

/// Initiator of the inventory imported from Core at start.
pub const IMPORT_INITIATOR: &str = "steward";

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database cannot be written.
    #[error("refusing to serve: {0}")]
    Store(#[from] StoreError),
    /// Another process holds the database's lock.
    #[error("refusing to serve: {0}")]
    Lock(#[from] LockError),
    /// The runtime did not start (store, recovery).
    #[error("could not start the runtime: {0}")]
    Start(#[from] StartError),
    /// The Core adapter did not start.
    #[error("could not start the core adapter: {0}")]
    Core(#[from] CoreError),
    /// Importing Core's inventory failed.
    #[error("could not import the core inventory: {0}")]
    Import(#[from] CommandError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {message}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        message: String,
    },
}

/// The sim Core settings of a config: `[core.sim]` over the defaults, with the journal next to
/// the database unless configured.
pub fn sim_config(config: &Config) -> Result<SimConfig, ConfigError> {
    let sim = SimConfig::deserialize(toml::Value::Table(config.core.sim.clone()))
        .map_err(|e| ConfigError::Invalid { key: "core.sim".into(), message: e.to_string() })?;
    if sim.journal.is_none() && !config.core.sim.contains_key("journal") {
        let mut sim = sim;
        sim.journal = Some(journal_path(&config.db));
        return Ok(sim);
    }
    Ok(sim)
}

fn journal_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".sim-journal");
    db.with_file_name(name)
}

/// The runtime settings of a config.
pub fn runtime_config(config: &Config) -> Result<RuntimeConfig, ConfigError> {
    let mut runtime = RuntimeConfig::new(config.db.clone());
    runtime.store = StoreOptions {
        synchronous: match config.synchronous {
            SynchronousSetting::Off => Synchronous::Off,
            SynchronousSetting::Normal => Synchronous::Normal,
            SynchronousSetting::Full => Synchronous::Full,
        },
    };
    runtime.phase_mapping = config.phase_mapping.clone();
    runtime.service_table = config.service_states.clone();
    runtime.default_policy = config.default_policy.clone();
    runtime.status_max_age = match config.status_max_age_seconds {
        0 => None,
        seconds => Some(Duration::from_secs(seconds)),
    };
    runtime.planner.global_max_parallel = config.planner.global_max_parallel_racks;
    if let Some(rules) = &config.planner.conflict_rules {
        runtime.planner.conflict_rules = steward_planner::ConflictRules { rules: rules.clone() };
    }
    runtime.plan_interval = Duration::from_millis(config.plan_interval_ms);
    runtime.sync_interval = Duration::from_millis(config.sync_interval_ms);
    runtime.task_poll_interval = Duration::from_millis(config.task_poll_interval_ms);
    runtime.commit_retry_deadline = Duration::from_millis(config.commit_retry_deadline_ms);
    runtime.webhook_max_attempts = config.webhook_max_attempts;
    runtime.webhooks = config
        .webhooks
        .iter()
        .map(|w| WebhookConfig {
            name: w.effective_name(),
            url: w.url.clone(),
            secret: w.secret.clone(),
            events: w.events.clone(),
        })
        .collect();
    runtime.hooks = crate::hooks_config::runtime_hooks(&config.hooks);
    Ok(runtime)
}

/// What a start has made before the runtime: the adapter, its inventory and the held lock.
struct Started {
    core: Arc<dyn Core>,
    clock: SharedClock,
    inventory: InventoryUpsert,
    sim: Option<SimCore>,
    lock: DbLock,
}

/// The checks that come before anything is created or changed: the database is writable, and
/// this process takes the one-writer lock beside it.
fn preflight(config: &Config) -> Result<DbLock, ServeError> {
    check_writable(&config.db)?;
    Ok(DbLock::acquire(&config.db)?)
}

/// A running steward service.
pub struct Server {
    runtime: Runtime,
    sim: Option<SimCore>,
    addr: SocketAddr,
    stop: CancellationToken,
    http: tokio::task::JoinHandle<()>,
    /// Held for the server's life; dropped (released) after the runtime stopped.
    _lock: DbLock,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Server {
    /// Validates `config`, starts the sim Core it describes, the runtime and the HTTP API.
    pub async fn start(config: &Config) -> Result<Server, ServeError> {
        config.validate()?;
        match config.core.adapter {
            Adapter::Redfish => return Self::start_with_redfish(config).await,
            Adapter::Exec => return Self::start_with_exec(config).await,
            Adapter::Sim => {}
        }
        let sim = sim_config(config)?;
        Self::start_with_sim(config, sim).await
    }

    /// Starts with the Redfish adapter of `[core.redfish]`: its journal lives in the same
    /// database; discovered systems are imported at start and whenever discovery finds new ones.
    async fn start_with_redfish(config: &Config) -> Result<Server, ServeError> {
        let settings = config.redfish_settings()?;
        let lock = preflight(config)?;
        let clock: SharedClock = Arc::new(SystemClock);
        let store = runtime_config(config)?.store;
        let redfish = RedfishCore::start(settings, &config.db, &store, clock.clone()).await?;
        let core: Arc<dyn Core> = Arc::new(redfish.clone());
        let started = Started { core, clock, inventory: redfish.inventory(), sim: None, lock };
        let server = Self::start_with_core(config, started, None).await?;
        if config.import_core_inventory {
            let changes = redfish.inventory_changes();
            let inventory = move || redfish.inventory();
            spawn_reimport(server.handle(), changes, inventory, server.stop.clone());
        }
        Ok(server)
    }

    /// Starts with the exec adapter of `[core.exec]`: its journal lives in the same database,
    /// its command files in `core.exec.work_dir`; the components its observe command reports
    /// are imported at start and whenever it reports new ones.
    async fn start_with_exec(config: &Config) -> Result<Server, ServeError> {
        let settings = config.exec_settings()?;
        let lock = preflight(config)?;
        let clock: SharedClock = Arc::new(SystemClock);
        let store = runtime_config(config)?.store;
        let exec = ExecCore::start(settings, &config.db, &store, clock.clone()).await?;
        let core: Arc<dyn Core> = Arc::new(exec.clone());
        let started = Started { core, clock, inventory: exec.inventory(), sim: None, lock };
        let server = Self::start_with_core(config, started, None).await?;
        if config.import_core_inventory {
            let changes = exec.inventory_changes();
            let inventory = move || exec.inventory();
            spawn_reimport(server.handle(), changes, inventory, server.stop.clone());
        }
        Ok(server)
    }

    /// Like [`Server::start`] with explicit sim Core settings (the demo's fleet).
    pub async fn start_with_sim(config: &Config, sim: SimConfig) -> Result<Server, ServeError> {
        config.validate()?;
        let lock = preflight(config)?;
        let clock: SharedClock = Arc::new(SystemClock);
        let fresh_journal = sim.journal.clone().filter(|path| !path.exists());
        let sim = SimCore::new(sim, clock.clone())?;
        let core: Arc<dyn Core> = Arc::new(sim.clone());
        let inventory = sim.inventory();
        let started = Started { core, clock, inventory, sim: Some(sim), lock };
        Self::start_with_core(config, started, fresh_journal).await
    }

    /// Starts the runtime over an adapter and serves the API. `fresh_journal` is an adapter
    /// journal file this start created, removed again if the store refuses to start.
    async fn start_with_core(
        config: &Config,
        started: Started,
        fresh_journal: Option<PathBuf>,
    ) -> Result<Server, ServeError> {
        let Started { core, clock, inventory, sim, lock } = started;
        let addr = config.listen_addr()?;
        let runtime_config = runtime_config(config)?;
        let service_table = match &config.service_states {
            Some(doc) => ServiceTable::from_doc(doc).map_err(|e| ConfigError::Invalid {
                key: "service_states".into(),
                message: e.to_string(),
            })?,
            None => ServiceTable::default(),
        };
        let default_policy = Arc::new(config.default_policy.clone().unwrap_or_default());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Bind { addr, message: e.to_string() })?;
        let addr =
            listener.local_addr().map_err(|e| ServeError::Bind { addr, message: e.to_string() })?;
        let runtime = match Runtime::start(runtime_config, core, clock).await {
            Ok(runtime) => runtime,
            Err(error) => {
                // The store refused (corrupt, newer schema, a service state missing from the
                // table): leave no journal the refused start created.
                if let Some(journal) = fresh_journal {
                    let _ = std::fs::remove_file(journal);
                }
                return Err(error.into());
            }
        };
        if config.import_core_inventory {
            // Core-owned fields only: names, labels and locations set by the operator survive.
            let summary = runtime.handle().import_core_inventory(inventory).await;
            if let Err(error) = summary {
                runtime.shutdown().await;
                return Err(error.into());
            }
        }
        let state = ApiState {
            handle: runtime.handle(),
            metrics: runtime.metrics(),
            auth: Arc::new(Auth::new(config.tokens.clone())),
            default_policy,
            service_table: Arc::new(service_table.to_table()),
            health: runtime.health(),
        };
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        let http = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                tracing::error!(%error, "http server failed");
            }
        });
        tracing::info!(%addr, db = %config.db.display(), "steward serving");
        Ok(Server { runtime, sim, addr, stop, http, _lock: lock })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of the API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The runtime's handle.
    pub fn handle(&self) -> Handle {
        self.runtime.handle()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.runtime.metrics()
    }

    /// Liveness and readiness; `health().failed()` resolves if the reducer dies.
    pub fn health(&self) -> steward_runtime::Health {
        self.runtime.health()
    }

    /// The sim Core (failure injection for the demo and tests); `None` with another adapter.
    pub fn sim(&self) -> Option<&SimCore> {
        self.sim.as_ref()
    }

    /// Stops accepting requests (in-flight ones get two seconds), then shuts the runtime down:
    /// the reducer commits its current batch and stops.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let mut http = self.http;
        if tokio::time::timeout(Duration::from_secs(2), &mut http).await.is_err() {
            http.abort();
        }
        self.runtime.shutdown().await;
        tracing::info!("steward stopped");
    }
}

/// Re-imports an adapter's inventory (Redfish, exec) whenever it finds components it did not
/// know (`changes` bumps).
pub(crate) fn spawn_reimport(
    handle: Handle,
    mut changes: tokio::sync::watch::Receiver<u64>,
    inventory: impl Fn() -> InventoryUpsert + Send + 'static,
    stop: CancellationToken,
) {
    changes.mark_unchanged();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = changes.changed() => if changed.is_err() { return },
            }
            // Core-owned fields only, as at start: operator names and labels survive.
            if let Err(error) = handle.import_core_inventory(inventory()).await {
                tracing::warn!(%error, "could not import newly discovered components");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn configured_conflict_rules_reach_the_planner_and_the_recorded_site_tables() {
        let text = "[[planner.conflict_rules]]\nname = \"all\"\nverdict = \"compatible\"\n";
        let config = Config::from_toml_str(text).unwrap();
        let rules = config.planner.conflict_rules.clone().unwrap();
        let runtime = runtime_config(&config).unwrap();
        assert_eq!(runtime.planner.conflict_rules.rules, rules);
        assert_eq!(runtime.site_tables().conflict_rules, Some(rules), "recorded in the log");
        let defaults = runtime_config(&Config::default()).unwrap();
        assert_eq!(defaults.site_tables().conflict_rules, None, "built-in rules: nothing recorded");
    }
}
