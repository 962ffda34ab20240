//! Durable event throughput through the reducer (issue 4, benchmark 7a), with a raw rusqlite
//! baseline beside it in the same run.
//!
//! A real [`Runtime`] (reducer thread, group commit, `synchronous=FULL`, WAL) serves `CALLERS`
//! concurrent `Handle` callers; each caller owns distinct components and sends commands that each
//! log exactly one event, awaiting every reply (a reply means the event is durable):
//!
//! * `service`: `set_service_state` toggling maintenance / in_service (one event, one component
//!   row, one history row per command);
//! * `observe`: `observe` with one observation whose raw state alternates between `Ready` and
//!   `Assigned/Ready` (one event, one component row per command).
//!
//! Events and transactions are counted from the runtime's metrics (the reducer plans once per
//! batch that changed something; planning ticks are pushed an hour apart), which gives the
//! reducer's average batch size. The raw baseline then opens a fresh file with the same schema,
//! pragmas and inventory rows and inserts, through plain cached prepared statements, the very
//! event rows the reducer logged (read back from its file, byte for byte) in batches of that
//! average size: once the event rows alone, once with the state rows each event wrote too.
//!
//! `cargo bench -p steward-sim --bench reducer_throughput`. Knobs: `THROUGHPUT_SECONDS`
//! (default 4) per measurement, `THROUGHPUT_CALLERS` (default `16,256,1024`),
//! `THROUGHPUT_WORKLOADS` (`service,observe`), `BENCH_SYNC` (`full`; `normal` or `off` on both
//! sides separates fsync from CPU). Without `--bench` it runs a tiny smoke case.
// A benchmark measures wall time, so it reads the clock the pure crates may not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, missing_docs)]

mod reducer_common;

use reducer_common::{Counters, NullCore, benching, env_list, env_or, tokio_runtime};
use rusqlite::{Connection, params};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use steward_proto::{
    ComponentId, ComponentKind, ComponentSpec, InventoryUpsert, Observation, RackSpec, ServiceState,
};
use steward_runtime::store::{Store, StoreOptions, Synchronous};
use steward_runtime::{Runtime, RuntimeConfig, SystemClock};

const PER_RACK: usize = 20;

fn inventory(racks: usize) -> InventoryUpsert {
    let rack = |r: usize| RackSpec {
        id: format!("rack-{r:05}").into(),
        name: format!("rack {r}"),
        location: Default::default(),
        labels: [("row".to_string(), format!("row-{}", r / 20))].into(),
        components: (0..PER_RACK)
            .map(|c| ComponentSpec {
                id: format!("rack-{r:05}-compute-{c:02}").into(),
                kind: ComponentKind::Compute,
                name: format!("compute tray {c}"),
                manufacturer: Some("NVIDIA".into()),
                model: Some("GB200 compute tray".into()),
                serial: Some(format!("SN{r:05}{c:02}")),
                position: Default::default(),
                firmware_version: Some("1.0.0".into()),
                power_state: Some("on".into()),
                labels: Default::default(),
            })
            .collect(),
    };
    InventoryUpsert { racks: (0..racks).map(rack).collect() }
}

fn component_ids(inventory: &InventoryUpsert) -> Vec<ComponentId> {
    inventory.racks.iter().flat_map(|r| r.components.iter().map(|c| c.id.clone())).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Service,
    Observe,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Service => "service",
            Workload::Observe => "observe",
        }
    }
}

struct ReducerResult {
    commands: u64,
    counters: Counters,
    seconds: f64,
    first_seq: u64,
}

impl ReducerResult {
    fn rate(&self) -> f64 {
        self.counters.events / self.seconds
    }

    fn avg_batch(&self) -> f64 {
        self.counters.events / self.counters.batches.max(1.0)
    }
}

async fn run_reducer(db: &Path, callers: usize, workload: Workload, seconds: f64) -> ReducerResult {
    let mut config = RuntimeConfig::new(db);
    config.store = StoreOptions { synchronous: reducer_common::bench_sync() };
    config.plan_interval = Duration::from_secs(3600);
    config.sync_interval = Duration::from_secs(3600);
    config.task_poll_interval = Duration::from_secs(3600);
    let runtime = Runtime::start(config, Arc::new(NullCore), Arc::new(SystemClock)).await.unwrap();
    let handle = runtime.handle();
    let racks = callers.div_ceil(PER_RACK).max(100);
    let inventory = inventory(racks);
    let ids = component_ids(&inventory);
    handle.upsert_inventory(inventory, "bench").await.unwrap();
    // Give every component a first raw state so each observation below is a change.
    let ready = |id: &ComponentId, state: &str| Observation {
        component_id: id.clone(),
        controller_state: state.into(),
        power_state: Some("on".into()),
        firmware_version: Some("1.0.0".into()),
        observed_at: None,
    };
    handle.observe(ids.iter().map(|id| ready(id, "Ready")).collect(), "bench").await.unwrap();
    let metrics = runtime.metrics();
    let before = Counters::read(&metrics);
    let first_seq = before.events as u64 + 1;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let handle = handle.clone();
        let mine: Vec<ComponentId> = ids.iter().skip(caller).step_by(callers).cloned().collect();
        tasks.push(tokio::spawn(async move {
            let mut sent = 0u64;
            let mut pass = 0usize;
            while Instant::now() < deadline {
                for id in &mine {
                    match workload {
                        Workload::Service => {
                            let to =
                                if pass.is_multiple_of(2) { "maintenance" } else { "in_service" };
                            handle
                                .set_service_state(
                                    id.clone(),
                                    ServiceState::from(to),
                                    Some("bench toggle".into()),
                                    "bench",
                                )
                                .await
                                .unwrap();
                        }
                        Workload::Observe => {
                            let state =
                                if pass.is_multiple_of(2) { "Assigned/Ready" } else { "Ready" };
                            let changed =
                                handle.observe(vec![ready(id, state)], "bench").await.unwrap();
                            assert_eq!(changed, 1);
                        }
                    }
                    sent += 1;
                }
                pass += 1;
            }
            sent
        }));
    }
    let mut commands = 0;
    for task in tasks {
        commands += task.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let counters = Counters::read(&metrics).since(before);
    runtime.shutdown().await;
    assert_eq!(counters.events as u64, commands, "one event per command");
    ReducerResult { commands, counters, seconds, first_seq }
}

/// One measured event and the state rows it wrote, as the store holds them.
struct LoggedRow {
    seq: i64,
    at: String,
    kind: String,
    data: String,
    component: String,
    history: Option<(String, String, String, String, Option<String>)>,
}

/// Reads the measured events back from the reducer's file, with the component row each one
/// upserted (its final JSON, the same size) and the history row a service change appended.
fn logged_rows(db: &Path, first_seq: u64) -> (Vec<LoggedRow>, BTreeMap<String, ComponentCols>) {
    let conn = Connection::open(db).unwrap();
    let mut components = BTreeMap::new();
    let mut stmt = conn
        .prepare(
            "SELECT id, rack_id, data, raw_state, status, service_state, updated_at \
             FROM components",
        )
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    while let Some(row) = rows.next().unwrap() {
        let id: String = row.get(0).unwrap();
        components.insert(
            id,
            ComponentCols {
                rack_id: row.get(1).unwrap(),
                data: row.get(2).unwrap(),
                raw_state: row.get(3).unwrap(),
                status: row.get(4).unwrap(),
                service_state: row.get(5).unwrap(),
                updated_at: row.get(6).unwrap(),
            },
        );
    }
    drop(rows);
    let mut history = conn
        .prepare(
            "SELECT component_id, from_state, to_state, at, initiator, note FROM service_history \
             ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect::<Vec<(String, String, String, String, String, Option<String>)>>()
        .into_iter();
    let mut stmt = conn
        .prepare("SELECT seq, at, kind, data FROM events WHERE seq >= ?1 ORDER BY seq")
        .unwrap();
    let mut rows = stmt.query(params![first_seq as i64]).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let data: String = row.get(3).unwrap();
        let kind: String = row.get(2).unwrap();
        let value: serde_json::Value = serde_json::from_str(&data).unwrap();
        let component = value["component_id"].as_str().unwrap().to_string();
        let history = (kind == "service_state_changed").then(|| {
            let (c, from, to, at, initiator, note) = history.next().unwrap();
            assert_eq!(c, component);
            (from, to, at, initiator, note)
        });
        out.push(LoggedRow {
            seq: row.get(0).unwrap(),
            at: row.get(1).unwrap(),
            kind,
            data,
            component,
            history,
        });
    }
    (out, components)
}

struct ComponentCols {
    rack_id: String,
    data: String,
    raw_state: Option<String>,
    status: Option<String>,
    service_state: String,
    updated_at: String,
}

// The store's statements, verbatim, so the baseline writes the same indexes the same way.
const INSERT_EVENT: &str = "INSERT INTO events (seq, at, kind, data) VALUES (?1, ?2, ?3, ?4)";
const UPSERT_COMPONENT: &str = "INSERT INTO components \
     (id, rack_id, ord, data, raw_state, status, service_state, updated_at) \
     VALUES (?1, ?2, (SELECT coalesce(max(ord), 0) + 1 FROM components), ?3, ?4, ?5, ?6, ?7) \
     ON CONFLICT(id) DO UPDATE SET rack_id = excluded.rack_id, data = excluded.data, \
     raw_state = excluded.raw_state, status = excluded.status, \
     service_state = excluded.service_state, updated_at = excluded.updated_at";
const INSERT_HISTORY: &str = "INSERT INTO service_history \
     (component_id, from_state, to_state, at, initiator, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// A fresh file with the store's schema and the reducer file's racks and components, opened
/// raw with the store's pragmas.
fn baseline_file(source: &Path, path: &Path) -> Connection {
    drop(Store::open(path, &StoreOptions { synchronous: Synchronous::Full }).unwrap());
    let conn = Connection::open(path).unwrap();
    let _: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).unwrap();
    let sync = match reducer_common::bench_sync() {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
        Synchronous::Off => "OFF",
    };
    conn.pragma_update(None, "synchronous", sync).unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn.execute("ATTACH DATABASE ?1 AS src", params![source.to_str().unwrap()]).unwrap();
    conn.execute_batch(
        "INSERT INTO racks SELECT * FROM src.racks; \
         INSERT INTO components SELECT * FROM src.components; DETACH DATABASE src;",
    )
    .unwrap();
    conn
}

fn run_baseline(
    source: &Path,
    path: &Path,
    rows: &[LoggedRow],
    components: &BTreeMap<String, ComponentCols>,
    batch: usize,
    with_state: bool,
) -> f64 {
    let mut conn = baseline_file(source, path);
    let started = Instant::now();
    for chunk in rows.chunks(batch.max(1)) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
        {
            let mut events = tx.prepare_cached(INSERT_EVENT).unwrap();
            for row in chunk {
                events.execute(params![row.seq, row.at, row.kind, row.data]).unwrap();
            }
        }
        if with_state {
            let mut upsert = tx.prepare_cached(UPSERT_COMPONENT).unwrap();
            for row in chunk {
                let c = &components[&row.component];
                upsert
                    .execute(params![
                        row.component,
                        c.rack_id,
                        c.data,
                        c.raw_state,
                        c.status,
                        c.service_state,
                        c.updated_at
                    ])
                    .unwrap();
            }
            let mut history = tx.prepare_cached(INSERT_HISTORY).unwrap();
            for row in chunk {
                if let Some((from, to, at, initiator, note)) = &row.history {
                    history.execute(params![row.component, from, to, at, initiator, note]).unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }
    rows.len() as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let bench = benching();
    let seconds: f64 = env_or("THROUGHPUT_SECONDS", if bench { 4.0 } else { 0.2 });
    let callers = env_list("THROUGHPUT_CALLERS", if bench { &[16, 256, 1024] } else { &[8] });
    let workloads: Vec<Workload> = std::env::var("THROUGHPUT_WORKLOADS")
        .unwrap_or_else(|_| "service,observe".into())
        .split(',')
        .filter_map(|w| match w.trim() {
            "service" => Some(Workload::Service),
            "observe" => Some(Workload::Observe),
            _ => None,
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio_runtime();
    println!(
        "reducer throughput: Runtime (reducer thread, group commit, synchronous={:?}, WAL), \
         {seconds} s per case; raw = rusqlite, same schema, same event rows, same average batch",
        reducer_common::bench_sync()
    );
    println!(
        "{:>8} {:>7} {:>11} {:>8} {:>9} {:>13} {:>6} {:>15} {:>6}",
        "workload",
        "callers",
        "reducer/s",
        "batches",
        "avg batch",
        "raw events/s",
        "ratio",
        "raw ev+state/s",
        "ratio"
    );
    for workload in &workloads {
        for &n in &callers {
            let db = dir.path().join(format!("reducer-{}-{n}.db", workload.name()));
            let result = rt.block_on(run_reducer(&db, n, *workload, seconds));
            let (rows, components) = logged_rows(&db, result.first_seq);
            assert_eq!(rows.len() as u64, result.commands);
            let batch = result.avg_batch().round() as usize;
            let raw_events = run_baseline(
                &db,
                &dir.path().join(format!("raw-{}-{n}.db", workload.name())),
                &rows,
                &components,
                batch,
                false,
            );
            let raw_state = run_baseline(
                &db,
                &dir.path().join(format!("raw-state-{}-{n}.db", workload.name())),
                &rows,
                &components,
                batch,
                true,
            );
            println!(
                "{:>8} {:>7} {:>11.0} {:>8.0} {:>9.1} {:>13.0} {:>5.0}% {:>15.0} {:>5.0}%",
                workload.name(),
                n,
                result.rate(),
                result.counters.batches,
                result.avg_batch(),
                raw_events,
                100.0 * result.rate() / raw_events,
                raw_state,
                100.0 * result.rate() / raw_state,
            );
        }
    }
}
