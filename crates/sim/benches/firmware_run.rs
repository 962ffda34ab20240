//! A firmware run over a large sim fleet, start to terminal (issue 4, benchmark 7c).
//!
//! A real [`Runtime`] (reducer thread, `synchronous=FULL`, applier, pollers) drives the
//! simulated Core with zero task latency over `FIRMWARE_RACKS` racks (default 10,000) of
//! `FIRMWARE_COMPUTE` compute trays (default 18: 180,000 components). The inventory is imported
//! in chunks and one full sync marks every component ready; then the clock starts, a
//! `firmware_update` run over every rack is created with `max_parallel_racks` =
//! `FIRMWARE_PARALLEL` (default 1,000), and the run is polled until it is terminal. Planning and
//! task polling run every `FIRMWARE_TICK_MS` (default 50 ms), inventory syncs every 5 s.
//!
//! The default run gives up after `FIRMWARE_TIMEOUT` seconds (default 110) and then reports the
//! progress made and the rate, so the bench stays within a couple of minutes even when the goal
//! is far off.
//!
//! `cargo bench -p steward-sim --bench firmware_run`. Without `--bench` it runs 20 racks.
// A benchmark measures wall time, so it reads the clock the pure crates may not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, missing_docs)]

mod reducer_common;

use reducer_common::{Counters, benching, env_or, proc_status_kb, sim_config, tokio_runtime};
use std::sync::Arc;
use std::time::{Duration, Instant};
use steward_proto::{CreateRunRequest, InventoryUpsert, Operation, RunPolicy, RunStatus, Selector};
use steward_runtime::core::Core;
use steward_runtime::store::{StoreOptions, Synchronous};
use steward_runtime::{CreateRunOutcome, Runtime, RuntimeConfig, SharedClock, SystemClock};
use steward_sim::SimCore;

struct Knobs {
    racks: u32,
    compute: u32,
    parallel: u32,
    tick: Duration,
    timeout: Duration,
}

async fn run(knobs: &Knobs) {
    let dir = tempfile::tempdir().unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let setup = Instant::now();
    let core = SimCore::new(sim_config(knobs.racks, knobs.compute, false), clock.clone()).unwrap();
    let inventory = core.inventory();
    let components: usize = inventory.racks.iter().map(|r| r.components.len()).sum();
    let mut config = RuntimeConfig::new(dir.path().join("firmware.db"));
    config.store = StoreOptions { synchronous: Synchronous::Full };
    config.plan_interval = knobs.tick;
    config.task_poll_interval = knobs.tick;
    config.sync_interval = Duration::from_secs(5);
    let runtime = Runtime::start(config, Arc::new(core.clone()), clock).await.unwrap();
    let handle = runtime.handle();
    for chunk in inventory.racks.chunks(500) {
        let part = InventoryUpsert { racks: chunk.to_vec() };
        handle.upsert_inventory(part, "bench").await.unwrap();
    }
    let imported = setup.elapsed();
    handle.observe(core.observe().await.unwrap(), "bench").await.unwrap();
    let synced = setup.elapsed();
    println!(
        "firmware run: {} racks x {} compute = {components} components, max_parallel_racks {}, \
         tick {} ms, sim latency 0, synchronous=FULL",
        knobs.racks,
        knobs.compute,
        knobs.parallel,
        knobs.tick.as_millis()
    );
    println!(
        "setup: import {:.1} s, first full sync {:.1} s",
        imported.as_secs_f64(),
        (synced - imported).as_secs_f64()
    );
    let metrics = runtime.metrics();
    let before = Counters::read(&metrics);
    let started = Instant::now();
    let request = CreateRunRequest {
        name: Some("firmware 2.0.0 everywhere".into()),
        operation: Operation::FirmwareUpdate { version: "2.0.0".into(), components: vec![] },
        selector: Selector { all: Some(true), ..Default::default() },
        policy: RunPolicy { max_parallel_racks: knobs.parallel, ..Default::default() },
        dry_run: false,
    };
    let run = match handle.create_run(request, "bench").await.unwrap() {
        CreateRunOutcome::Created(run) => run,
        CreateRunOutcome::DryRun(_) => panic!("asked for a real run"),
    };
    let created = started.elapsed();
    let mut last_report = Instant::now();
    let finished = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = handle.run(run.id.clone()).await.unwrap();
        if now.status.is_terminal() {
            break now;
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            println!(
                "  {:>5.1} s: {} completed, {} submitted, {} claimed, {} pending",
                started.elapsed().as_secs_f64(),
                now.counts.completed,
                now.counts.submitted,
                now.counts.claimed,
                now.counts.pending
            );
        }
        if started.elapsed() >= knobs.timeout {
            break now;
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let counters = Counters::read(&metrics).since(before);
    let done = finished.counts.completed + finished.counts.failed + finished.counts.skipped;
    println!(
        "create_run reply {:.2} s; {} after {wall:.1} s: {} of {} targets completed \
         ({} failed), {:.0} racks/s",
        created.as_secs_f64(),
        finished.status,
        finished.counts.completed,
        finished.counts.total(),
        finished.counts.failed,
        f64::from(done) / wall
    );
    println!(
        "events {:.0} in {:.0} batches (avg {:.1}); {:.0} events/s; sim submissions max per key {}",
        counters.events,
        counters.batches,
        counters.events / counters.batches.max(1.0),
        counters.events / wall,
        core.max_submissions_per_key()
    );
    if !finished.status.is_terminal() {
        println!(
            "NOT TERMINAL after {:.0} s: at this rate the run would take ~{:.0} s",
            knobs.timeout.as_secs_f64(),
            f64::from(finished.counts.total()) / (f64::from(done) / wall).max(1e-9)
        );
    }
    let memory = proc_status_kb();
    println!(
        "process VmHWM {} MiB (sim Core, runtime, bench together)",
        memory.get("VmHWM").copied().unwrap_or(0) / 1024
    );
    runtime.shutdown().await;
    if finished.status.is_terminal() {
        assert_eq!(finished.status, RunStatus::Completed, "{}", finished.status_message);
    }
}

fn main() {
    let bench = benching();
    let knobs = Knobs {
        racks: env_or("FIRMWARE_RACKS", if bench { 10_000 } else { 20 }),
        compute: env_or("FIRMWARE_COMPUTE", 18),
        parallel: env_or("FIRMWARE_PARALLEL", 1_000),
        tick: Duration::from_millis(env_or("FIRMWARE_TICK_MS", 50)),
        timeout: Duration::from_secs(env_or("FIRMWARE_TIMEOUT", if bench { 110 } else { 60 })),
    };
    tokio_runtime().block_on(run(&knobs));
}
