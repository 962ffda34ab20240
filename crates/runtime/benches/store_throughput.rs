//! Durable event throughput of the store (issue 4, benchmark 7a, raw-baseline half).
//!
//! For batch sizes 1, 64 and 512 it commits batches of N event rows, each with one target row
//! (realistic JSON: a `task_observed` event and a target with 18 components), through
//! `Store::commit` with `synchronous=FULL`, and beside it a raw rusqlite baseline that inserts
//! the same rows, pre-serialized, with plain prepared statements in one transaction per batch on
//! a file with the same pragmas. It prints events/s for both and the ratio.
//!
//! `cargo bench -p steward-runtime --bench store_throughput` runs it; `STORE_BENCH_SECONDS`
//! (default 3) bounds each measurement and `STORE_BENCH_SYNC=off|normal` changes the
//! `synchronous` setting of both sides (to tell CPU cost from fsync cost). Without `--bench` (as under `cargo test --all-targets`)
//! it runs a few tiny batches as a smoke test.
// A benchmark measures wall time, so it reads the clock the pure crates may not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, missing_docs)]

use chrono::{Duration, TimeZone, Utc};
use rusqlite::{Connection, params};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use steward_proto::{
    ComponentId, EventRecord, Gate, Hold, Operation, RackId, Run, RunId, RunPolicy, RunStatus,
    RunStatusReason, Selector, StatusCounts, Target, TargetId, TargetStatus, TaskId, Timestamp,
    Wave,
};
use steward_runtime::store::{Store, StoreOptions, Synchronous, WriteBatch};

const RUNS: usize = 10;
const TARGETS_PER_RUN: usize = 1000;
const COMPONENTS_PER_TARGET: usize = 18;

/// `STORE_BENCH_SYNC=off|normal|full` (default full) for both sides, to separate CPU from fsync.
fn synchronous() -> Synchronous {
    match std::env::var("STORE_BENCH_SYNC").as_deref() {
        Ok("off") => Synchronous::Off,
        Ok("normal") => Synchronous::Normal,
        _ => Synchronous::Full,
    }
}

fn base_time() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn run(index: usize) -> Run {
    let id = RunId::new(format!("run-{index:02}"));
    let counts = StatusCounts { pending: TARGETS_PER_RUN as u32, ..StatusCounts::default() };
    Run {
        rerun_of: None,
        reruns: Vec::new(),
        id,
        name: format!("firmware 1.2.{index}"),
        operation: Operation::FirmwareUpdate { version: "1.2.0".into(), components: vec![] },
        selector: Selector { all: Some(true), ..Selector::default() },
        policy: RunPolicy { max_parallel_racks: 64, ..RunPolicy::default() },
        status: RunStatus::Running,
        status_reason: RunStatusReason::None,
        status_message: String::new(),
        current_wave: 1,
        waves: vec![Wave {
            number: 1,
            size: TARGETS_PER_RUN as u32,
            counts,
            acknowledged_failures: 0,
            opened_at: Some(base_time()),
            finished_at: None,
        }],
        counts,
        initiator: "bench".into(),
        created_at: base_time(),
        started_at: Some(base_time()),
        finished_at: None,
        updated_at: base_time(),
    }
}

fn target(run: usize, position: usize, status: TargetStatus, at: Timestamp) -> Target {
    let run_id = RunId::new(format!("run-{run:02}"));
    let rack_id = RackId::new(format!("rack-{position:05}"));
    let components: Vec<ComponentId> = (0..COMPONENTS_PER_TARGET)
        .map(|c| ComponentId::new(format!("{rack_id}-compute-{c:02}")))
        .collect();
    Target {
        hook: None,
        hooks_reported: Vec::new(),
        id: TargetId::for_rack(&run_id, &rack_id),
        run_id,
        rack_id: rack_id.clone(),
        wave: 1,
        components: Arc::from(components),
        status,
        attempt: 1,
        task_id: Some(TaskId::new(format!("task-{run}-{position}"))),
        message: format!("task task-{run}-{position} is running on {rack_id}"),
        retry_after: None,
        lease_until: Some(at + Duration::seconds(30)),
        conflict_delay_seconds: 0,
        blocked_since: None,
        hold: (status == TargetStatus::Pending).then(|| Hold {
            gate: Gate::Concurrency,
            message: "64 of 64 racks in flight for this run".into(),
            since: at,
            component: None,
        }),
        updated_at: at,
    }
}

/// One event with the target row it changes.
struct Row {
    event: EventRecord,
    target: (Target, u32),
}

fn rows(first_seq: u64, count: usize) -> Vec<Row> {
    (0..count)
        .map(|i| {
            let seq = first_seq + i as u64;
            let slot = (seq as usize) % (RUNS * TARGETS_PER_RUN);
            let (run, position) = (slot / TARGETS_PER_RUN, slot % TARGETS_PER_RUN);
            let at = base_time() + Duration::milliseconds(seq as i64);
            let target = target(run, position, TargetStatus::Submitted, at);
            let results: serde_json::Map<String, serde_json::Value> = target
                .components
                .iter()
                .take(4)
                .map(|c| (c.to_string(), serde_json::json!("running")))
                .collect();
            let data = serde_json::json!({
                "kind": "task_observed",
                "task_id": target.task_id,
                "target_id": target.id,
                "status": "running",
                "message": "flashing BMC firmware 1.2.0 on 18 components",
                "component_results": results,
            });
            let event = EventRecord { seq, at, kind: "task_observed".into(), data };
            Row { event, target: (target, position as u32) }
        })
        .collect()
}

fn setup_store(path: &Path) -> Store {
    let mut store = Store::open(path, &StoreOptions { synchronous: synchronous() }).unwrap();
    let mut batch = WriteBatch { runs: (0..RUNS).map(run).collect(), ..WriteBatch::default() };
    for r in 0..RUNS {
        for p in 0..TARGETS_PER_RUN {
            batch.targets.push((target(r, p, TargetStatus::Pending, base_time()), p as u32));
        }
    }
    store.commit(&batch).unwrap();
    store
}

const RAW_SCHEMA: &str = "
    CREATE TABLE events (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL,
                         data TEXT NOT NULL);
    CREATE TABLE targets (id TEXT PRIMARY KEY, run_id TEXT NOT NULL, position INTEGER NOT NULL,
                          rack_id TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL,
                          updated_at TEXT NOT NULL);";
const RAW_EVENT: &str = "INSERT INTO events (seq, at, kind, data) VALUES (?1, ?2, ?3, ?4)";
const RAW_TARGET: &str = "INSERT INTO targets (id, run_id, position, rack_id, status, data, \
     updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO UPDATE SET \
     status = excluded.status, data = excluded.data, updated_at = excluded.updated_at";

/// A row as the baseline writes it: every column already a string.
struct RawRow {
    seq: i64,
    at: String,
    kind: String,
    data: String,
    target_id: String,
    run_id: String,
    position: u32,
    rack_id: String,
    status: String,
    target_data: String,
    updated_at: String,
}

fn raw_rows(rows: &[Row]) -> Vec<RawRow> {
    rows.iter()
        .map(|row| {
            let (target, position) = &row.target;
            RawRow {
                seq: row.event.seq as i64,
                at: row.event.at.to_rfc3339(),
                kind: row.event.kind.clone(),
                data: row.event.data.to_string(),
                target_id: target.id.to_string(),
                run_id: target.run_id.to_string(),
                position: *position,
                rack_id: target.rack_id.to_string(),
                status: target.status.as_str().to_string(),
                target_data: serde_json::to_string(target).unwrap(),
                updated_at: target.updated_at.to_rfc3339(),
            }
        })
        .collect()
}

fn setup_raw(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    let _: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).unwrap();
    let mode = match synchronous() {
        Synchronous::Off => "OFF",
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", mode).unwrap();
    // The same page cache as the store, so the comparison is about the store's own work.
    conn.pragma_update(None, "cache_size", -65_536).unwrap();
    conn.execute_batch(RAW_SCHEMA).unwrap();
    let seed = rows(1, RUNS * TARGETS_PER_RUN);
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut stmt = tx.prepare_cached(RAW_TARGET).unwrap();
        for row in raw_rows(&seed) {
            stmt.execute(params![
                row.target_id,
                row.run_id,
                row.position,
                row.rack_id,
                "pending",
                row.target_data,
                row.updated_at
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
    conn
}

fn raw_commit(conn: &mut Connection, batch: &[RawRow]) {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
    {
        let mut events = tx.prepare_cached(RAW_EVENT).unwrap();
        for row in batch {
            events.execute(params![row.seq, row.at, row.kind, row.data]).unwrap();
        }
        let mut targets = tx.prepare_cached(RAW_TARGET).unwrap();
        for row in batch {
            targets
                .execute(params![
                    row.target_id,
                    row.run_id,
                    row.position,
                    row.rack_id,
                    row.status,
                    row.target_data,
                    row.updated_at
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

#[derive(Default)]
struct Measured {
    events: usize,
    seconds: f64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds
    }
}

/// The store side: its database and the batches still to commit (built up front, because the
/// reducer hands the store a finished batch).
struct StoreCase {
    store: Store,
    batches: std::vec::IntoIter<WriteBatch>,
}

impl StoreCase {
    fn new(dir: &Path, batch_size: usize, max_batches: usize) -> Self {
        let store = setup_store(&dir.join(format!("store-{batch_size}.db")));
        let batches: Vec<WriteBatch> = (0..max_batches)
            .map(|b| {
                let mut batch = WriteBatch::default();
                for row in rows(1 + (b * batch_size) as u64, batch_size) {
                    batch.events.push(row.event);
                    batch.targets.push(row.target);
                }
                batch
            })
            .collect();
        Self { store, batches: batches.into_iter() }
    }

    /// Commits batches for `budget` seconds (or until they run out).
    fn run(&mut self, budget: f64, total: &mut Measured) {
        let start = Instant::now();
        for batch in self.batches.by_ref() {
            self.store.commit(&batch).unwrap();
            total.events += batch.events.len();
            if start.elapsed().as_secs_f64() >= budget {
                break;
            }
        }
        total.seconds += start.elapsed().as_secs_f64();
    }
}

/// The baseline side: the same rows, pre-serialized, through plain prepared statements.
struct RawCase {
    conn: Connection,
    batches: std::vec::IntoIter<Vec<RawRow>>,
}

impl RawCase {
    fn new(dir: &Path, batch_size: usize, max_batches: usize) -> Self {
        let conn = setup_raw(&dir.join(format!("raw-{batch_size}.db")));
        let batches: Vec<Vec<RawRow>> = (0..max_batches)
            .map(|b| raw_rows(&rows(1 + (b * batch_size) as u64, batch_size)))
            .collect();
        Self { conn, batches: batches.into_iter() }
    }

    fn run(&mut self, budget: f64, total: &mut Measured) {
        let start = Instant::now();
        for batch in self.batches.by_ref() {
            raw_commit(&mut self.conn, &batch);
            total.events += batch.len();
            if start.elapsed().as_secs_f64() >= budget {
                break;
            }
        }
        total.seconds += start.elapsed().as_secs_f64();
    }
}

/// Rounds per case: store and baseline alternate, so drifting machine load hits both alike.
const ROUNDS: usize = 5;

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let budget: f64 = std::env::var("STORE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 3.0 } else { 0.05 });
    let dir = tempfile::tempdir().unwrap();
    println!(
        "store throughput, synchronous={:?}, WAL, one target row per event \
         ({budget} s per case in {ROUNDS} alternating rounds)",
        synchronous()
    );
    println!("{:>6} {:>14} {:>14} {:>7}", "batch", "store ev/s", "raw ev/s", "ratio");
    for batch_size in [1usize, 64, 512] {
        // Enough batches for ~100k events/s over the budget, at most 150k events per side.
        let max_batches = if benching {
            ((100_000.0 * budget) as usize / batch_size).clamp(50, 150_000 / batch_size)
        } else {
            3
        };
        let mut store_case = StoreCase::new(dir.path(), batch_size, max_batches);
        let mut raw_case = RawCase::new(dir.path(), batch_size, max_batches);
        let (mut store, mut raw) = (Measured::default(), Measured::default());
        for _ in 0..ROUNDS {
            store_case.run(budget / ROUNDS as f64, &mut store);
            raw_case.run(budget / ROUNDS as f64, &mut raw);
        }
        println!(
            "{:>6} {:>14.0} {:>14.0} {:>6.0}%   ({} vs {} events)",
            batch_size,
            store.rate(),
            raw.rate(),
            100.0 * store.rate() / raw.rate(),
            store.events,
            raw.events
        );
    }
}
