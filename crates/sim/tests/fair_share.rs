//! Fair share of the global limit through the real reducer and the simulated Core (issue 10
//! item 8): a second run completes targets while the first, created earlier with more racks
//! than the global limit, still has pending ones; both finish.
#![allow(clippy::unwrap_used)]

use chrono::{TimeZone, Utc};
use std::sync::Arc;
use steward_planner::PlannerConfig;
use steward_proto::{
    CreateRunRequest, Operation, RackId, Run, RunPolicy, RunStatus, Selector, TargetStatus,
};
use steward_runtime::ManualClock;
use steward_runtime::store::{StoreOptions, Synchronous};
use steward_sim::{LatencyRange, SimConfig, SimCore, Simulation};
use steward_state_machine::FleetConfig;

fn request(racks: std::ops::RangeInclusive<u32>) -> CreateRunRequest {
    CreateRunRequest {
        name: None,
        operation: Operation::FirmwareUpdate { version: "2.0.0".into(), components: vec![] },
        selector: Selector {
            racks: Some(racks.map(|i| RackId::new(format!("rack-{i:03}"))).collect()),
            ..Default::default()
        },
        policy: RunPolicy { max_parallel_racks: 10, ..Default::default() },
        dry_run: false,
    }
}

fn completed(sim: &Simulation, run: &Run) -> u32 {
    sim.fleet().runs[&run.id].counts.completed
}

fn pending(sim: &Simulation, run: &Run) -> usize {
    let fleet = sim.fleet();
    fleet.run_targets[&run.id]
        .iter()
        .filter(|id| fleet.targets[*id].status == TargetStatus::Pending)
        .count()
}

#[tokio::test]
async fn a_second_run_completes_racks_while_the_first_still_has_pending_ones() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap());
    let config =
        SimConfig { racks: 16, latency: LatencyRange::fixed(3000), ..SimConfig::default() };
    let core = SimCore::new(config, Arc::new(clock.clone())).unwrap();
    let planner = PlannerConfig { global_max_parallel: Some(4), ..PlannerConfig::default() };
    let options = StoreOptions { synchronous: Synchronous::Off };
    let db = dir.path().join("s.db");
    let mut sim =
        Simulation::open(&db, &options, FleetConfig::default(), planner, core, clock).unwrap();
    sim.import_inventory().unwrap();
    let second = chrono::Duration::seconds(1);
    sim.step(second).await.unwrap();

    let first = sim.create_run(request(1..=12)).unwrap();
    sim.step(second).await.unwrap();
    assert_eq!(sim.fleet().run_active[&first.id].len(), 4, "alone, it takes the whole limit");
    let later = sim.create_run(request(13..=16)).unwrap();

    let mut steps = 0;
    while completed(&sim, &later) == 0 {
        sim.step(second).await.unwrap();
        steps += 1;
        assert!(steps < 200, "the second run never completed a rack");
    }
    assert!(
        pending(&sim, &first) > 0,
        "the second run completed a rack while the first still had pending ones"
    );
    assert!(sim.fleet().active_total <= 4, "the global limit holds");

    sim.run_until_terminal(second, 2000).await.unwrap();
    for run in [&first, &later] {
        let done = &sim.fleet().runs[&run.id];
        assert_eq!(done.status, RunStatus::Completed, "{}", done.status_message);
    }
    assert_eq!(completed(&sim, &first) + completed(&sim, &later), 16);
}
