//! The deterministic simulation harness under proptest: whole operation runs over hundreds of
//! racks on the simulated Core with random latencies, failures and conflicts, while a scripted
//! operator pauses, resumes, advances and cancels. After every step the fleet's invariants and
//! the planner's dispatch invariants hold; at the end every run is terminal, its counts add up,
//! no task was submitted twice, and replaying the event log equals the stored state.
//!
//! Cases default to 8 (each is a whole multi-run simulation); set `PROPTEST_CASES` for more.
//! A failing case prints its inputs; re-run it by pasting them into `replay_one` below.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use steward_planner::PlannerConfig;
use steward_proto::{
    CreateRunRequest, FailureCount, GateScope, Operation, RunPolicy, RunStatus, RunStatusReason,
    SafetyGate, Selector, WaveSpec,
};
use steward_runtime::ManualClock;
use steward_runtime::store::{StoreOptions, Synchronous, replay_and_compare};
use steward_sim::Simulation;
use steward_sim::{FailureRates, LatencyRange, SimConfig, SimCore};
use steward_state_machine::{Fleet, FleetConfig};

/// One simulated scenario.
#[derive(Clone, Debug)]
struct Scenario {
    seed: u64,
    racks: u32,
    max_latency_ms: u64,
    failure_rate: f64,
    conflict_rate: f64,
    runs: Vec<RunShape>,
    /// Step numbers at which the operator pauses (and later resumes) the first run.
    operator_pauses: Vec<u32>,
    /// Step at which the last run is cancelled, if any.
    cancel_at: Option<u32>,
}

#[derive(Clone, Debug)]
struct RunShape {
    power: bool,
    max_parallel: u32,
    waves: u32,
    auto_advance: bool,
    gate_max_failures: Option<u32>,
    max_attempts: u32,
}

fn run_shape() -> impl Strategy<Value = RunShape> {
    (any::<bool>(), 1u32..40, 1u32..4, any::<bool>(), proptest::option::of(1u32..6), 1u32..3)
        .prop_map(|(power, max_parallel, waves, auto_advance, gate_max_failures, max_attempts)| {
            RunShape { power, max_parallel, waves, auto_advance, gate_max_failures, max_attempts }
        })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<u64>(),
        100u32..200,
        0u64..8_000,
        0.0f64..0.25,
        0.0f64..0.25,
        proptest::collection::vec(run_shape(), 1..3),
        proptest::collection::vec(1u32..200, 0..3),
        proptest::option::of(5u32..400),
    )
        .prop_map(
            |(
                seed,
                racks,
                max_latency_ms,
                failure_rate,
                conflict_rate,
                runs,
                operator_pauses,
                cancel_at,
            )| {
                Scenario {
                    seed,
                    racks,
                    max_latency_ms,
                    failure_rate,
                    conflict_rate,
                    runs,
                    operator_pauses,
                    cancel_at,
                }
            },
        )
}

fn request(shape: &RunShape) -> CreateRunRequest {
    let operation = if shape.power {
        Operation::PowerCycle
    } else {
        Operation::FirmwareUpdate { version: "9.9.9".into(), components: vec![] }
    };
    let safety_gates = shape
        .gate_max_failures
        .map(|max| SafetyGate {
            failure_count: Some(FailureCount { max }),
            failure_rate: None,
            scope: GateScope::Run,
        })
        .into_iter()
        .collect();
    CreateRunRequest {
        name: None,
        operation,
        selector: Selector { all: Some(true), ..Default::default() },
        policy: RunPolicy {
            max_parallel_racks: shape.max_parallel,
            waves: WaveSpec::Equal { count: shape.waves },
            auto_advance: shape.auto_advance,
            safety_gates,
            max_attempts: shape.max_attempts,
            retry_backoff_seconds: 5,
            ..Default::default()
        },
        dry_run: false,
    }
}

/// Dispatch invariants the planner promises, checked on the live fleet.
fn check_dispatch(fleet: &Fleet) -> Result<(), String> {
    fleet.check_invariants()?;
    for (run_id, run) in &fleet.runs {
        let active = run.counts.active();
        if active > run.policy.max_parallel_racks {
            return Err(format!(
                "run {run_id} has {active} active targets, above max_parallel_racks {}",
                run.policy.max_parallel_racks
            ));
        }
        if !matches!(run.status, RunStatus::Running | RunStatus::Paused | RunStatus::Cancelled)
            && active > 0
            && !run.status.is_terminal()
        {
            return Err(format!("run {run_id} in {} has active targets", run.status));
        }
        for wave in &run.waves {
            let untouched = wave.counts.pending
                + if run.status == RunStatus::Cancelled { wave.counts.skipped } else { 0 };
            if wave.number > run.current_wave && untouched != wave.size {
                return Err(format!(
                    "run {run_id}: wave {} dispatched before it opened (current {})",
                    wave.number, run.current_wave
                ));
            }
        }
    }
    for (rack, active) in &fleet.rack_active {
        let submitted_or_claimed: Vec<_> = active
            .iter()
            .filter_map(|id| fleet.targets.get(id))
            .filter(|t| t.status != steward_proto::TargetStatus::Blocked)
            .collect();
        if submitted_or_claimed.len() > 1 {
            // Every run in these scenarios touches every component of the rack, so any two live
            // tasks on one rack conflict under the default rules.
            return Err(format!(
                "rack {rack} has {} live tasks at once",
                submitted_or_claimed.len()
            ));
        }
    }
    Ok(())
}

async fn simulate(scenario: Scenario) -> Result<(), TestCaseError> {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sim.db");
    let start = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
    let clock = ManualClock::new(start);
    let config = SimConfig {
        seed: scenario.seed,
        racks: scenario.racks,
        rows: 4,
        compute_per_rack: 4,
        nvswitch_per_rack: 1,
        power_shelf_per_rack: 1,
        node_per_rack: 0,
        latency: LatencyRange { min_ms: 0, max_ms: scenario.max_latency_ms },
        failure_rate: FailureRates::all(scenario.failure_rate),
        conflict_rate: scenario.conflict_rate,
        recover_after_ms: Some(5_000),
        ..SimConfig::default()
    };
    let core = SimCore::new(config, Arc::new(clock.clone())).unwrap();
    let options = StoreOptions { synchronous: Synchronous::Off };
    let mut sim = Simulation::open(
        &db,
        &options,
        FleetConfig::default(),
        PlannerConfig::default(),
        core,
        clock,
    )
    .unwrap();
    sim.import_inventory().unwrap();
    sim.step(chrono::Duration::seconds(1)).await.unwrap();
    let mut runs = Vec::new();
    for shape in &scenario.runs {
        runs.push(sim.create_run(request(shape)).unwrap().id);
    }
    let mut paused_by_operator_at: BTreeMap<u32, u32> = BTreeMap::new();
    let max_steps = 20_000;
    let mut step = 0;
    while !sim.all_runs_terminal() {
        prop_assert!(
            step < max_steps,
            "not terminal after {max_steps} steps: {:?}",
            sim.fleet()
                .runs
                .values()
                .map(|r| (&r.id, r.status, &r.status_message, r.counts))
                .collect::<Vec<_>>()
        );
        step += 1;
        if scenario.operator_pauses.contains(&step) && sim.pause(&runs[0]).is_ok() {
            paused_by_operator_at.insert(step, step + 7);
        }
        if scenario.cancel_at == Some(step) {
            let _ = sim.cancel(runs.last().unwrap());
        }
        operate(&mut sim, &runs, step, &paused_by_operator_at);
        sim.step(chrono::Duration::seconds(1)).await.unwrap();
        if let Err(violation) = check_dispatch(sim.fleet()) {
            prop_assert!(false, "step {step}: {violation}");
        }
    }
    for run in sim.fleet().runs.values() {
        let counts = run.counts;
        let targets = sim.fleet().run_targets[&run.id].len() as u32;
        prop_assert_eq!(counts.total(), targets, "run {} counts {:?}", run.id, counts);
        prop_assert_eq!(
            counts.terminal(),
            targets,
            "run {} not all terminal: {:?}",
            run.id,
            counts
        );
        let wave_sum: u32 = run.waves.iter().map(|w| w.counts.total()).sum();
        prop_assert_eq!(wave_sum, targets);
        if run.status == RunStatus::Completed {
            prop_assert_eq!(counts.failures(), 0);
        }
    }
    prop_assert_eq!(sim.core().duplicate_submits(), 0, "an idempotency key reached Core twice");
    eprintln!(
        "scenario seed {} racks {}: {step} steps in {:?}",
        scenario.seed,
        scenario.racks,
        started.elapsed()
    );
    drop(sim);
    let report = replay_and_compare(&db, FleetConfig::default()).unwrap();
    prop_assert!(report.equal, "replay differs: {:?}", report.differences);
    Ok(())
}

/// The scripted operator: resumes safety and operator pauses after a while, advances wave gates.
fn operate(
    sim: &mut Simulation,
    runs: &[steward_proto::RunId],
    step: u32,
    paused: &BTreeMap<u32, u32>,
) {
    for run_id in runs {
        let Some(run) = sim.fleet().runs.get(run_id) else { continue };
        if run.status != RunStatus::Paused {
            continue;
        }
        match run.status_reason {
            RunStatusReason::WaveGate => {
                let _ = sim.advance(run_id);
            }
            RunStatusReason::OperatorPaused => {
                if paused.values().any(|resume_at| *resume_at == step)
                    || paused.values().all(|r| *r < step)
                {
                    let _ = sim.resume(run_id);
                }
            }
            _ => {
                let _ = sim.resume(run_id);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(8),
        max_shrink_iters: 20,
        ..ProptestConfig::default()
    })]

    #[test]
    fn simulated_runs_end_terminal_with_invariants_held(scenario in scenario()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(simulate(scenario))?;
    }
}

/// A fixed, larger scenario that always runs (two overlapping runs, failures and conflicts).
#[tokio::test]
async fn replay_one() {
    let scenario = Scenario {
        seed: 7,
        racks: 240,
        max_latency_ms: 6_000,
        failure_rate: 0.1,
        conflict_rate: 0.1,
        runs: vec![
            RunShape {
                power: false,
                max_parallel: 16,
                waves: 3,
                auto_advance: false,
                gate_max_failures: Some(3),
                max_attempts: 2,
            },
            RunShape {
                power: true,
                max_parallel: 8,
                waves: 1,
                auto_advance: true,
                gate_max_failures: None,
                max_attempts: 1,
            },
        ],
        operator_pauses: vec![20],
        cancel_at: None,
    };
    simulate(scenario).await.unwrap();
}

/// Regression (CI, 2026-11-29): a run cancelled early while a target waited must leave no
/// target pending once the run is terminal.
#[tokio::test]
async fn cancelled_run_leaves_no_target_pending() {
    let scenario = Scenario {
        seed: 13089470584781304475,
        racks: 164,
        max_latency_ms: 5549,
        failure_rate: 0.19789443634216694,
        conflict_rate: 0.24349633526587725,
        runs: vec![
            RunShape {
                power: false,
                max_parallel: 17,
                waves: 2,
                auto_advance: false,
                gate_max_failures: None,
                max_attempts: 1,
            },
            RunShape {
                power: false,
                max_parallel: 18,
                waves: 3,
                auto_advance: true,
                gate_max_failures: None,
                max_attempts: 2,
            },
        ],
        operator_pauses: vec![],
        cancel_at: Some(36),
    };
    simulate(scenario).await.unwrap();
}
