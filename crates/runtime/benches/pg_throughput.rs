//! Durable event throughput on PostgreSQL (issue 14, benchmark 6): batches of N events, each
//! with the target row it changes, committed through `PgStore::commit` (the reducer's commit
//! path, fenced by the epoch check) beside a raw `postgres` client inserting the same rows,
//! pre-serialized, with prepared statements in one transaction per batch, in the same run on
//! the same throwaway cluster (fsync on). Prints events/s for both and the ratio.
//!
//! `cargo bench -p steward-runtime --features postgres --bench pg_throughput`;
//! `PG_BENCH_SECONDS` (default 3) bounds each measurement. Without `--bench` it runs one tiny
//! batch per side as a smoke test. Skips (with a message) when PostgreSQL is not installed.
// A benchmark measures wall time, so it reads the clock the pure crates may not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, missing_docs)]

#[path = "../tests/support/pg_cluster.rs"]
mod pg_cluster;

use chrono::{Duration, TimeZone, Utc};
use std::sync::Arc;
use std::time::Instant;
use steward_proto::{
    ComponentId, EventRecord, Operation, RackId, Run, RunId, RunPolicy, RunStatus, RunStatusReason,
    Selector, StatusCounts, Target, TargetId, TargetStatus, TaskId, Timestamp,
};
use steward_runtime::store::postgres::PgStore;
use steward_runtime::store::{Backend, WriteBatch};

const TARGETS: usize = 2000;

fn base() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn run() -> Run {
    Run {
        id: RunId::new("run-1"),
        name: "firmware".into(),
        operation: Operation::FirmwareUpdate { version: "1.2.0".into(), components: vec![] },
        selector: Selector { all: Some(true), ..Selector::default() },
        policy: RunPolicy::default(),
        status: RunStatus::Running,
        status_reason: RunStatusReason::None,
        status_message: String::new(),
        current_wave: 1,
        waves: Vec::new(),
        counts: StatusCounts::default(),
        initiator: "bench".into(),
        created_at: base(),
        started_at: Some(base()),
        finished_at: None,
        rerun_of: None,
        reruns: Vec::new(),
        updated_at: base(),
    }
}

fn target(position: usize, at: Timestamp) -> Target {
    let run_id = RunId::new("run-1");
    let rack_id = RackId::new(format!("rack-{position:05}"));
    let components: Vec<ComponentId> =
        (0..18).map(|c| ComponentId::new(format!("{rack_id}-compute-{c:02}"))).collect();
    Target {
        id: TargetId::for_rack(&run_id, &rack_id),
        run_id,
        rack_id: rack_id.clone(),
        wave: 1,
        components: Arc::from(components),
        status: TargetStatus::Submitted,
        attempt: 1,
        task_id: Some(TaskId::new(format!("task-{position}"))),
        message: format!("task task-{position} is running on {rack_id}"),
        retry_after: None,
        lease_until: Some(at + Duration::seconds(30)),
        conflict_delay_seconds: 0,
        blocked_since: None,
        hold: None,
        hook: None,
        hooks_reported: Vec::new(),
        updated_at: at,
    }
}

fn batch(first_seq: u64, size: usize) -> WriteBatch {
    let mut batch = WriteBatch::default();
    for i in 0..size {
        let seq = first_seq + i as u64;
        let position = seq as usize % TARGETS;
        let at = base() + Duration::milliseconds(seq as i64);
        let target = target(position, at);
        let data = serde_json::json!({"kind": "task_observed", "target_id": target.id,
            "status": "running", "message": "flashing BMC firmware 1.2.0 on 18 components"});
        batch.events.push(EventRecord { seq, at, kind: "task_observed".into(), data });
        batch.targets.push((target, position as u32));
    }
    batch
}

fn setup(url: &str) -> PgStore {
    let mut store = PgStore::open(url, None).unwrap();
    let mut first = WriteBatch { runs: vec![run()], ..WriteBatch::default() };
    first.targets = (0..TARGETS).map(|p| (target(p, base()), p as u32)).collect();
    store.commit(&first).unwrap();
    store.with_client(|c| c.batch_execute("UPDATE steward_leader SET epoch = 1").unwrap());
    drop(store);
    PgStore::open(url, Some(1)).unwrap()
}

/// Events/s through `PgStore::commit`.
fn through_store(url: &str, size: usize, seconds: f64) -> f64 {
    let mut store = setup(url);
    let (mut seq, started) = (1u64, Instant::now());
    while started.elapsed().as_secs_f64() < seconds {
        store.commit(&batch(seq, size)).unwrap();
        seq += size as u64;
    }
    (seq - 1) as f64 / started.elapsed().as_secs_f64()
}

/// Events/s of a raw client writing the same rows, pre-serialized, one transaction per batch.
fn raw(url: &str, size: usize, seconds: f64) -> f64 {
    drop(setup(url));
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let event = client
        .prepare("INSERT INTO events (seq, at, kind, data, epoch) VALUES ($1, $2, $3, $4, 1)")
        .unwrap();
    let upsert = client
        .prepare(
            "INSERT INTO targets (id, run_id, position, rack_id, status, data, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET \
             status = excluded.status, data = excluded.data, updated_at = excluded.updated_at",
        )
        .unwrap();
    let (mut seq, started) = (1u64, Instant::now());
    while started.elapsed().as_secs_f64() < seconds {
        let rows: Vec<_> = {
            let b = batch(seq, size);
            b.events
                .iter()
                .zip(&b.targets)
                .map(|(e, (t, p))| {
                    let ts = |at: &Timestamp| at.to_rfc3339();
                    (
                        e.seq as i64,
                        ts(&e.at),
                        e.kind.clone(),
                        e.data.to_string(),
                        t.id.to_string(),
                        t.run_id.to_string(),
                        i64::from(*p),
                        t.rack_id.to_string(),
                        t.status.as_str().to_string(),
                        serde_json::to_string(t).unwrap(),
                        ts(&t.updated_at),
                    )
                })
                .collect()
        };
        let mut tx = client.transaction().unwrap();
        for r in &rows {
            tx.execute(&event, &[&r.0, &r.1, &r.2, &r.3]).unwrap();
            tx.execute(&upsert, &[&r.4, &r.5, &r.6, &r.7, &r.8, &r.9, &r.10]).unwrap();
        }
        tx.commit().unwrap();
        seq += size as u64;
    }
    (seq - 1) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let Some(cluster) = pg_cluster::PgCluster::start_with_fsync(true) else { return };
    let seconds = if bench {
        std::env::var("PG_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0)
    } else {
        0.01
    };
    let sizes: &[usize] = if bench { &[1, 64, 512] } else { &[4] };
    for (i, &size) in sizes.iter().enumerate() {
        let ours = through_store(&cluster.database(&format!("store_{i}")), size, seconds);
        let base = raw(&cluster.database(&format!("raw_{i}")), size, seconds);
        println!(
            "batch {size:>4}: PgStore::commit {ours:>9.0} events/s, raw client {base:>9.0} \
             events/s, ratio {:.0}%",
            100.0 * ours / base
        );
    }
}
