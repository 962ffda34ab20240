//! High availability on PostgreSQL (`[store] url`): every instance serves HTTP at once, but
//! only the leader runs the engine. An [`Elector`] (advisory lock + epoch) decides who leads;
//! the supervisor here starts the engine on the PostgreSQL store, fenced by the epoch, when
//! this instance wins, and stops it when leadership is lost or a commit is fenced.
//!
//! On winning it also builds the Core adapter `[core] adapter` names, journaling into the same
//! database under the same epoch: the sim Core into `adapter_journal`, Redfish and exec into
//! `adapter_tasks`/`adapter_steps` (`AdapterJournal::open_postgres`). The new leader's adapter
//! resumes what the journal holds unfinished, and a deposed leader's journal writes are refused
//! like its commits, so it journals no step and sends nothing after it.
//!
//! A standby answers `/readyz` and every API request with 503 problem+json naming the
//! leader's advertised URL (`leader`); `/healthz` is 200 on every live instance.

use crate::config::{Adapter, Config, ConfigError};
use crate::http::server::{runtime_config, sim_config, spawn_reimport};
use crate::http::{ApiState, Auth, PROBLEM_JSON, ServeError, router};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use steward_exec::ExecCore;
use steward_proto::InventoryUpsert;
use steward_redfish::RedfishCore;
use steward_runtime::Runtime;
use steward_runtime::clock::{SharedClock, SystemClock};
use steward_runtime::core::Core;
use steward_runtime::store::journal::AdapterJournal;
use steward_runtime::store::postgres::journal::PgJournal;
use steward_runtime::store::postgres::leader::{Elector, ElectorConfig, Role};
use steward_runtime::store::postgres::{PgStore, redact_url};
use steward_sim::{ExternalJournal, SimConfig, SimCore};
use steward_state_machine::ServiceTable;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// What the HTTP front serves right now.
#[derive(Clone, Default)]
struct Front {
    /// The API while this instance leads.
    api: Option<Router>,
    /// The epoch it leads with.
    epoch: Option<i64>,
    /// The leader's advertised URL while standing by.
    leader: Option<String>,
}

type SharedFront = Arc<RwLock<Front>>;

fn read(front: &SharedFront) -> Front {
    front.read().map(|f| f.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
}

fn write(front: &SharedFront, update: impl FnOnce(&mut Front)) {
    match front.write() {
        Ok(mut guard) => update(&mut guard),
        Err(poisoned) => update(&mut poisoned.into_inner()),
    }
}

/// A running HA instance: the HTTP front and the supervisor of the engine.
pub struct HaServer {
    addr: SocketAddr,
    stop: CancellationToken,
    http: tokio::task::JoinHandle<()>,
    supervisor: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for HaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl HaServer {
    /// Binds the listener, starts standing by and competing for leadership.
    pub async fn start(config: &Config) -> Result<HaServer, ServeError> {
        config.validate()?;
        let url = config.store.url.clone().ok_or_else(|| ConfigError::Invalid {
            key: "store.url".into(),
            message: "HA needs a PostgreSQL url".into(),
        })?;
        let addr = config.listen_addr()?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Bind { addr, message: e.to_string() })?;
        let addr =
            listener.local_addr().map_err(|e| ServeError::Bind { addr, message: e.to_string() })?;
        let front: SharedFront = Arc::new(RwLock::new(Front::default()));
        let app = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .fallback(forward)
            .with_state(front.clone())
            .into_make_service_with_connect_info::<SocketAddr>();
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        let http = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                tracing::error!(%error, "http server failed");
            }
        });
        let elector = Elector::spawn(ElectorConfig {
            url: url.clone(),
            advertise_url: config.advertise_url.clone(),
            holder: format!("pid {} on {addr}", std::process::id()),
            poll: Duration::from_millis(config.store.poll_interval_ms),
            lock_session_timeout: Duration::from_millis(config.store.lock_session_timeout_ms),
        })
        .map_err(|e| ServeError::Start(e.into()))?;
        tracing::info!(%addr, store = %redact_url(&url), "steward standing by for leadership");
        let supervisor = tokio::spawn(supervise(config.clone(), url, elector, front, stop.clone()));
        Ok(HaServer { addr, stop, http, supervisor })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of the API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the engine (if leading), releases leadership and stops serving.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.supervisor.await;
        let mut http = self.http;
        if tokio::time::timeout(Duration::from_secs(2), &mut http).await.is_err() {
            http.abort();
        }
        tracing::info!("steward stopped");
    }
}

/// The engine while this instance leads.
struct Leading {
    runtime: Runtime,
    stopped: CancellationToken,
    /// Cancelled on stepping down: ends the adapter's inventory follower.
    adapter_stop: CancellationToken,
    /// Called on stepping down, after the engine stopped: aborts the adapter's task runners.
    stop_runners: Option<StopAdapter>,
}

/// Follows the elector: starts the engine on winning, stops it on losing (or when its reducer
/// stops, e.g. fenced), and keeps the front's role current.
async fn supervise(
    config: Config,
    url: String,
    elector: Elector,
    front: SharedFront,
    stop: CancellationToken,
) {
    let mut roles = elector.role();
    let mut leading: Option<Leading> = None;
    loop {
        let reducer_stopped = leading.as_ref().map(|l| l.stopped.clone()).unwrap_or_default();
        tokio::select! {
            () = stop.cancelled() => break,
            () = reducer_stopped.cancelled(), if leading.is_some() => {
                tracing::error!("the engine stopped (fenced or unable to write): stepping down");
                step_down(&front, &mut leading).await;
                elector.step_down();
                continue;
            }
            changed = roles.changed() => if changed.is_err() { break },
        }
        let role = roles.borrow_and_update().clone();
        match role {
            Role::Leader { epoch } if leading.is_none() => match lead(&config, &url, epoch).await {
                Ok((now_leading, api)) => {
                    write(&front, |f| {
                        f.api = Some(api);
                        f.epoch = Some(epoch);
                        f.leader = config.advertise_url.clone();
                    });
                    tracing::info!(epoch, "leading: engine started");
                    leading = Some(now_leading);
                }
                Err(error) => {
                    tracing::error!(%error, epoch, "could not start as leader: stepping down");
                    elector.step_down();
                }
            },
            Role::Leader { .. } => {}
            Role::Standby { leader } => {
                step_down(&front, &mut leading).await;
                write(&front, |f| f.leader = leader);
            }
        }
    }
    step_down(&front, &mut leading).await;
    let _ = tokio::task::spawn_blocking(move || elector.stop()).await;
}

/// Stops serving the API and shuts the engine down (its current batch commits or is fenced).
async fn step_down(front: &SharedFront, leading: &mut Option<Leading>) {
    write(front, |f| {
        f.api = None;
        f.epoch = None;
    });
    if let Some(previous) = leading.take() {
        previous.adapter_stop.cancel();
        previous.runtime.shutdown().await;
        // The next leader's adapter resumes the tasks from the journal; none runs on here.
        if let Some(stop) = &previous.stop_runners {
            stop();
        }
        tracing::warn!("stepped down: standing by");
    }
}

/// The Core adapter `[core] adapter` names, with its settings checked before connecting.
enum AdapterSettings {
    Sim(SimConfig),
    Redfish(steward_redfish::Settings),
    Exec(steward_exec::Settings, PathBuf),
}

impl AdapterSettings {
    fn of(config: &Config) -> Result<AdapterSettings, ConfigError> {
        Ok(match config.core.adapter {
            Adapter::Sim => AdapterSettings::Sim(sim_config(config)?),
            Adapter::Redfish => AdapterSettings::Redfish(config.redfish_settings()?),
            Adapter::Exec => {
                let settings = config.exec_settings()?;
                let work_dir = settings.work_dir.clone().ok_or_else(|| ConfigError::Invalid {
                    key: "core.exec.work_dir".into(),
                    message: "must be set with [store] url".into(),
                })?;
                AdapterSettings::Exec(settings, work_dir)
            }
        })
    }

    /// The adapter's name in the journal tables.
    fn name(&self) -> &'static str {
        match self {
            AdapterSettings::Sim(_) => "sim",
            AdapterSettings::Redfish(_) => steward_redfish::core::ADAPTER,
            AdapterSettings::Exec(..) => steward_exec::core::ADAPTER,
        }
    }
}

/// The adapter's journal in the database, fenced by the leader's epoch.
enum Journal {
    /// The sim Core's append-only journal (`adapter_journal`) and its records so far.
    Sim(PgJournal, Vec<String>),
    /// The task journal of Redfish and exec (`adapter_tasks`, `adapter_steps`).
    Tasks(AdapterJournal),
}

/// How to follow an adapter's inventory: bumped when it finds new components, and the inventory.
type Follow = (tokio::sync::watch::Receiver<u64>, Box<dyn Fn() -> InventoryUpsert + Send>);

/// Stops an adapter's task runners (Redfish, exec).
type StopAdapter = Box<dyn Fn() + Send + Sync>;

/// A started adapter: the Core, its inventory now, and (Redfish, exec) how to follow it and
/// how to stop its runners.
struct BuiltCore {
    core: Arc<dyn Core>,
    inventory: InventoryUpsert,
    follow: Option<Follow>,
    stop: Option<StopAdapter>,
}

/// Starts the adapter over its journal (Redfish and exec run their first sync and resume the
/// tasks the journal holds unfinished); `url` names the journal in the adapter's errors.
async fn build_core(
    settings: AdapterSettings,
    journal: Journal,
    url: &str,
    clock: SharedClock,
) -> Result<BuiltCore, ServeError> {
    let name = format!("postgres {}", redact_url(url));
    match (settings, journal) {
        (AdapterSettings::Sim(sim), Journal::Sim(journal, records)) => {
            let sim = SimCore::with_external_journal(
                sim,
                clock,
                &records,
                Box::new(JournalSink(journal)),
            )?;
            let inventory = sim.inventory();
            Ok(BuiltCore { core: Arc::new(sim), inventory, follow: None, stop: None })
        }
        (AdapterSettings::Redfish(settings), Journal::Tasks(journal)) => {
            let redfish = RedfishCore::start_with_journal(settings, journal, name, clock).await?;
            let changes = redfish.inventory_changes();
            let (follow, stop) = (redfish.clone(), redfish.clone());
            Ok(BuiltCore {
                core: Arc::new(redfish.clone()),
                inventory: redfish.inventory(),
                follow: Some((changes, Box::new(move || follow.inventory()))),
                stop: Some(Box::new(move || stop.stop())),
            })
        }
        (AdapterSettings::Exec(settings, work_dir), Journal::Tasks(journal)) => {
            let exec =
                ExecCore::start_with_journal(settings, journal, name, work_dir, clock).await?;
            let changes = exec.inventory_changes();
            let (follow, stop) = (exec.clone(), exec.clone());
            Ok(BuiltCore {
                core: Arc::new(exec.clone()),
                inventory: exec.inventory(),
                follow: Some((changes, Box::new(move || follow.inventory()))),
                stop: Some(Box::new(move || stop.stop())),
            })
        }
        _ => Err(ServeError::Config(ConfigError::Invalid {
            key: "core.adapter".into(),
            message: "internal: the adapter and its journal do not match".into(),
        })),
    }
}

/// The engine on the PostgreSQL store fenced by `epoch`, with the configured Core adapter
/// journaling into the same database under the same epoch; returns it with the API router.
async fn lead(config: &Config, url: &str, epoch: i64) -> Result<(Leading, Router), ServeError> {
    // Everything that can fail without the database is checked before connecting.
    let settings = AdapterSettings::of(config)?;
    let runtime_settings = runtime_config(config)?;
    let url_owned = url.to_string();
    let adapter = settings.name();
    let sim = matches!(settings, AdapterSettings::Sim(_));
    let (store, journal) = tokio::task::spawn_blocking(move || {
        let store = PgStore::open(&url_owned, Some(epoch))?;
        let journal = if sim {
            let (journal, records) = PgJournal::open(&url_owned, adapter, epoch)?;
            Journal::Sim(journal, records)
        } else {
            Journal::Tasks(AdapterJournal::open_postgres(&url_owned, adapter, epoch)?)
        };
        Ok::<_, steward_runtime::store::StoreError>((store, journal))
    })
    .await
    .map_err(|e| ServeError::Start(steward_runtime::StartError::Thread(e.to_string())))?
    .map_err(|e| ServeError::Start(e.into()))?;
    let clock: SharedClock = Arc::new(SystemClock);
    let built = match build_core(settings, journal, url, clock.clone()).await {
        Ok(built) => built,
        Err(error) => {
            // The blocking client must not close on an async thread.
            let _ = tokio::task::spawn_blocking(move || drop(store)).await;
            return Err(error);
        }
    };
    let stop_runners = built.stop;
    let runtime =
        match Runtime::start_with_backend(runtime_settings, Box::new(store), built.core, clock)
            .await
        {
            Ok(runtime) => runtime,
            Err(error) => {
                if let Some(stop) = &stop_runners {
                    stop();
                }
                return Err(error.into());
            }
        };
    let adapter_stop = CancellationToken::new();
    if config.import_core_inventory {
        if let Err(error) = runtime.handle().import_core_inventory(built.inventory).await {
            runtime.shutdown().await;
            if let Some(stop) = &stop_runners {
                stop();
            }
            return Err(error.into());
        }
        if let Some((changes, inventory)) = built.follow {
            spawn_reimport(runtime.handle(), changes, inventory, adapter_stop.clone());
        }
    }
    let api = router(api_state(config, &runtime)?);
    let stopped = runtime.reducer_stopped();
    Ok((Leading { runtime, stopped, adapter_stop, stop_runners }, api))
}

fn api_state(config: &Config, runtime: &Runtime) -> Result<ApiState, ServeError> {
    let service_table = match &config.service_states {
        Some(doc) => ServiceTable::from_doc(doc).map_err(|e| ConfigError::Invalid {
            key: "service_states".into(),
            message: e.to_string(),
        })?,
        None => ServiceTable::default(),
    };
    Ok(ApiState {
        handle: runtime.handle(),
        metrics: runtime.metrics(),
        auth: Arc::new(Auth::new(config.tokens.clone())),
        default_policy: Arc::new(config.default_policy.clone().unwrap_or_default()),
        service_table: Arc::new(service_table.to_table()),
        health: runtime.health(),
    })
}

/// The sim Core's journal in the `adapter_journal` table, fenced by the leader's epoch.
struct JournalSink(PgJournal);

impl ExternalJournal for JournalSink {
    fn append(&mut self, kind: &str, key: Option<&str>, line: &str) -> Result<(), String> {
        self.0.append(kind, key, line).map_err(|e| e.to_string())
    }
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// 200 on the leader, 503 `standby` elsewhere.
async fn readyz(State(front): State<SharedFront>) -> Response {
    let front = read(&front);
    match (front.api.is_some(), front.epoch) {
        (true, Some(epoch)) => {
            axum::Json(json!({"status": "ready", "role": "leader", "epoch": epoch})).into_response()
        }
        _ => standby(front.leader.as_deref()),
    }
}

/// The API on the leader; a 503 naming the leader on a standby.
async fn forward(State(front): State<SharedFront>, request: Request) -> Response {
    let front = read(&front);
    match front.api {
        Some(api) => match api.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => standby(front.leader.as_deref()),
    }
}

/// The standby's answer: 503 problem+json with the leader's URL (when it advertised one).
fn standby(leader: Option<&str>) -> Response {
    let detail = match leader {
        Some(url) => format!("standby: this instance does not lead; the leader is at {url}"),
        None => "standby: this instance does not lead and no leader is known yet".to_string(),
    };
    let body = json!({
        "type": "urn:steward:problem:standby",
        "title": "Service Unavailable",
        "status": 503,
        "detail": detail,
        "leader": leader,
    });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
