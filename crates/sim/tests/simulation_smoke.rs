//! Smoke test of the deterministic simulation: a firmware run over a small sim fleet completes.
#![allow(clippy::unwrap_used)]

use chrono::{TimeZone, Utc};
use std::sync::Arc;
use steward_planner::PlannerConfig;
use steward_proto::{CreateRunRequest, Operation, RunPolicy, RunStatus, Selector};
use steward_runtime::ManualClock;
use steward_runtime::store::{StoreOptions, Synchronous};
use steward_sim::Simulation;
use steward_sim::{LatencyRange, SimConfig, SimCore};
use steward_state_machine::FleetConfig;

#[tokio::test]
async fn firmware_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap());
    let config =
        SimConfig { racks: 12, latency: LatencyRange::fixed(2000), ..SimConfig::default() };
    let core = SimCore::new(config, Arc::new(clock.clone())).unwrap();
    let options = StoreOptions { synchronous: Synchronous::Off };
    let mut sim = Simulation::open(
        &dir.path().join("s.db"),
        &options,
        FleetConfig::default(),
        PlannerConfig::default(),
        core,
        clock,
    )
    .unwrap();
    sim.import_inventory().unwrap();
    sim.step(chrono::Duration::seconds(1)).await.unwrap();
    let run = sim
        .create_run(CreateRunRequest {
            name: None,
            operation: Operation::FirmwareUpdate { version: "2.0.0".into(), components: vec![] },
            selector: Selector { all: Some(true), ..Default::default() },
            policy: RunPolicy { max_parallel_racks: 4, ..Default::default() },
            dry_run: false,
        })
        .unwrap();
    let steps = sim.run_until_terminal(chrono::Duration::seconds(1), 2000).await.unwrap();
    let done = &sim.fleet().runs[&run.id];
    println!(
        "steps {steps} status {} counts {:?} msg {}",
        done.status, done.counts, done.status_message
    );
    assert_eq!(done.status, RunStatus::Completed, "{}", done.status_message);
    assert_eq!(done.counts.completed, 12);
    assert_eq!(sim.core().max_submissions_per_key(), 1);
}
