//! Command round-trip latency at a paced rate (issue 4, benchmark 7b).
//!
//! A real [`Runtime`] (`synchronous=FULL`, group commit) over a sim fleet of 500 racks × 20
//! components (10,000), with its pollers running at their default intervals (inventory sync
//! every 5 s over all 10,000 components, planning every 500 ms, task polls every second), takes
//! an open-loop stream of `set_service_state` commands at `LATENCY_RATE` (default 5,000/s):
//! command `i` is due at `start + i / rate` and is sent from its own task as soon as the
//! scheduler wakes at or after that time; its latency runs from its *due* time to its durable
//! reply, so scheduler lateness and queueing count against it (no coordinated omission). The
//! commands toggle components maintenance / in_service in rotation, each one logging one event,
//! one component row and one history row.
//!
//! `cargo bench -p steward-sim --bench reducer_latency`. Knobs: `LATENCY_SECONDS` (default
//! 20, after a 2 s warm-up that is not recorded), `LATENCY_RATE`, `LATENCY_RACKS` (500),
//! `BENCH_SYNC` (`full`; `normal` or `off` separates fsync stalls from reducer work). Without
//! `--bench` it runs a tiny smoke case.
// A benchmark measures wall time, so it reads the clock the pure crates may not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, missing_docs)]

mod reducer_common;

use reducer_common::{benching, env_or, ms, quantile, sim_config, tokio_runtime};
use std::sync::Arc;
use std::time::Duration;
use steward_proto::{ComponentId, ServiceState};
use steward_runtime::core::Core;
use steward_runtime::store::StoreOptions;
use steward_runtime::{Runtime, RuntimeConfig, SharedClock, SystemClock};
use steward_sim::SimCore;
use tokio::time::Instant;

struct Outcome {
    latencies: Vec<Duration>,
    errors: u64,
    sent: u64,
    seconds: f64,
}

async fn run(racks: u32, rate: f64, warmup: f64, seconds: f64) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let core = SimCore::new(sim_config(racks, 18, true), clock.clone()).unwrap();
    let inventory = core.inventory();
    let ids: Vec<ComponentId> =
        inventory.racks.iter().flat_map(|r| r.components.iter().map(|c| c.id.clone())).collect();
    let mut config = RuntimeConfig::new(dir.path().join("latency.db"));
    config.store = StoreOptions { synchronous: reducer_common::bench_sync() };
    let runtime = Runtime::start(config, Arc::new(core.clone()), clock).await.unwrap();
    let handle = runtime.handle();
    handle.upsert_inventory(inventory, "bench").await.unwrap();
    // The first full sync (every component turns ready) happens now, not mid-measurement;
    // the poller's later syncs find nothing changed.
    handle.observe(core.observe().await.unwrap(), "bench").await.unwrap();
    let ids = Arc::new(ids);
    let period = Duration::from_secs_f64(1.0 / rate);
    let total = ((warmup + seconds) * rate) as u64;
    let warm = (warmup * rate) as u64;
    let (results, mut collected) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now() + Duration::from_millis(10);
    let mut next = 0u64;
    while next < total {
        let due = start + period * next as u32;
        tokio::time::sleep_until(due).await;
        let now = Instant::now();
        // Everything due by now goes out now; each command runs in its own task.
        while next < total && start + period * next as u32 <= now {
            let i = next;
            let due = start + period * i as u32;
            let handle = handle.clone();
            let ids = ids.clone();
            let results = results.clone();
            tokio::spawn(async move {
                let n = ids.len() as u64;
                let id = ids[(i % n) as usize].clone();
                let to = if (i / n).is_multiple_of(2) { "maintenance" } else { "in_service" };
                let ok = handle
                    .set_service_state(id, ServiceState::from(to), None, "bench")
                    .await
                    .is_ok();
                let _ = results.send((i, due.elapsed(), ok));
            });
            next += 1;
        }
    }
    drop(results);
    let mut latencies = Vec::with_capacity(total as usize);
    let mut errors = 0;
    while let Some((i, latency, ok)) = collected.recv().await {
        if i < warm {
            continue;
        }
        if ok {
            latencies.push(latency);
        } else {
            errors += 1;
        }
    }
    let seconds = start.elapsed().as_secs_f64() - warmup;
    runtime.shutdown().await;
    latencies.sort();
    Outcome { latencies, errors, sent: total - warm, seconds }
}

fn main() {
    let bench = benching();
    let rate: f64 = env_or("LATENCY_RATE", 5000.0);
    let seconds: f64 = env_or("LATENCY_SECONDS", if bench { 20.0 } else { 0.2 });
    let warmup: f64 = if bench { 2.0 } else { 0.1 };
    let racks: u32 = env_or("LATENCY_RACKS", if bench { 500 } else { 10 });
    let rt = tokio_runtime();
    let outcome = rt.block_on(run(racks, rate, warmup, seconds));
    let l = &outcome.latencies;
    println!(
        "reducer latency: set_service_state at {rate:.0}/s open loop for {seconds} s over {} \
         components (synchronous={:?}, pollers on)",
        racks * 20,
        reducer_common::bench_sync()
    );
    println!(
        "sent {} in {:.1} s ({:.0}/s achieved), errors {}",
        outcome.sent,
        outcome.seconds,
        outcome.sent as f64 / outcome.seconds,
        outcome.errors
    );
    println!(
        "latency ms: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        ms(quantile(l, 0.5)),
        ms(quantile(l, 0.9)),
        ms(quantile(l, 0.99)),
        ms(quantile(l, 0.999)),
        ms(quantile(l, 1.0))
    );
    assert_eq!(outcome.errors, 0, "every command must be accepted");
}
