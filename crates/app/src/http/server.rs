//! [`Server`]: what `steward serve` (and `steward demo`) run — the runtime with a sim Core built
//! from a [`Config`], the sim fleet imported into the inventory, and the HTTP API on a TCP
//! listener — plus a clean shutdown (stop accepting, then let the reducer commit and stop).

use super::{ApiState, Auth, router};
use crate::config::{Config, ConfigError, SynchronousSetting};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use steward_runtime::Metrics;
use steward_runtime::clock::{SharedClock, SystemClock};
use steward_runtime::core::{Core, CoreError};
use steward_runtime::store::{StoreOptions, Synchronous};
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
    runtime.status_max_age = match config.status_max_age_seconds {
        0 => None,
        seconds => Some(Duration::from_secs(seconds)),
    };
    runtime.planner.global_max_parallel = config.planner.global_max_parallel_racks;
    runtime.plan_interval = Duration::from_millis(config.plan_interval_ms);
    runtime.sync_interval = Duration::from_millis(config.sync_interval_ms);
    runtime.task_poll_interval = Duration::from_millis(config.task_poll_interval_ms);
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

/// A running steward service.
pub struct Server {
    runtime: Runtime,
    sim: SimCore,
    addr: SocketAddr,
    stop: CancellationToken,
    http: tokio::task::JoinHandle<()>,
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
        let sim = sim_config(config)?;
        Self::start_with_sim(config, sim).await
    }

    /// Like [`Server::start`] with explicit sim Core settings (the demo's fleet).
    pub async fn start_with_sim(config: &Config, sim: SimConfig) -> Result<Server, ServeError> {
        config.validate()?;
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
        let clock: SharedClock = Arc::new(SystemClock);
        let sim = SimCore::new(sim, clock.clone())?;
        let core: Arc<dyn Core> = Arc::new(sim.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Bind { addr, message: e.to_string() })?;
        let addr =
            listener.local_addr().map_err(|e| ServeError::Bind { addr, message: e.to_string() })?;
        let runtime = Runtime::start(runtime_config, core, clock).await?;
        if config.import_core_inventory {
            let summary =
                runtime.handle().upsert_inventory(sim.inventory(), IMPORT_INITIATOR).await;
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
        Ok(Server { runtime, sim, addr, stop, http })
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

    /// The sim Core (failure injection for the demo and tests).
    pub fn sim(&self) -> &SimCore {
        &self.sim
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
