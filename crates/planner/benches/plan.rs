//! Planner benchmark (issue 3 item 6): one `plan` call on a fleet of N racks × 18 components
//! with 20 running runs covering every rack, mixed phases.
//!
//! Cases, each for 1,000 / 10,000 / 50,000 racks:
//! - `start`: every run just started; each has 25 free slots (500 claims per plan);
//! - `middle`: 40% of every run's targets finished, 20 of 25 slots busy (5 free per run), the
//!   holds of earlier ticks already stored;
//! - `full`: like `middle` but all 25 slots busy: nothing can move;
//! - `shared`: like `start` under a global limit of 250 racks (half the runs' slots), so the
//!   free global slots are shared between the runs (fair share: interleaved walks).
//!
//! The fleet is built through `Fleet::apply` (inventory, observations, run creation, claims,
//! submissions, task results), exactly as the reducer would.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use chrono::{Duration, TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;
use steward_planner::{Action, PlannerConfig, plan, plan_run};
use steward_proto::{
    ComponentId, ComponentKind, ComponentSpec, CreateRunRequest, Location, Operation, RackId,
    RackSpec, RunId, RunPolicy, Selector, TargetStatus, TaskId, TaskStatus, Timestamp, WaveSpec,
};
use steward_state_machine::{Fleet, FleetConfig, FleetEvent};

const RUNS: usize = 20;
const SLOTS: u32 = 25;

#[derive(Clone, Copy, PartialEq)]
enum Stage {
    Start,
    Middle,
    Full,
}

fn kind_of(slot: usize) -> ComponentKind {
    match slot {
        0..=11 => ComponentKind::Compute,
        12..=15 => ComponentKind::Nvswitch,
        _ => ComponentKind::PowerShelf,
    }
}

fn apply(fleet: &mut Fleet, event: FleetEvent, now: Timestamp) {
    if let Err(e) = fleet.apply(&event, now) {
        panic!("refused: {e}");
    }
}

/// N racks × 18 components; 1% of components initializing, 0.3% never observed (about one
/// rack in five is not ready).
fn build(racks: usize, stage: Stage) -> (Fleet, Timestamp) {
    let now = Utc.with_ymd_and_hms(2026, 1, 5, 12, 0, 0).unwrap();
    let mut fleet = Fleet::new(FleetConfig::default());
    let specs: Vec<RackSpec> = (0..racks)
        .map(|r| RackSpec {
            id: RackId::new(format!("r{r:05}")),
            name: String::new(),
            location: Location { row: Some(format!("row{}", r / 40)), ..Location::default() },
            labels: BTreeMap::new(),
            components: (0..18)
                .map(|c| ComponentSpec {
                    id: ComponentId::new(format!("r{r:05}-c{c:02}")),
                    kind: kind_of(c),
                    name: String::new(),
                    manufacturer: None,
                    model: None,
                    serial: None,
                    position: Default::default(),
                    firmware_version: None,
                    power_state: None,
                    labels: BTreeMap::new(),
                })
                .collect(),
        })
        .collect();
    apply(
        &mut fleet,
        FleetEvent::InventoryUpserted { initiator: String::new(), racks: specs },
        now,
    );
    let mut n = 0usize;
    for r in 0..racks {
        for c in 0..18 {
            n += 1;
            if n.is_multiple_of(331) {
                continue; // never observed: unknown
            }
            let raw = match (kind_of(c), n.is_multiple_of(100)) {
                (ComponentKind::Compute, false) => "Ready".to_string(),
                (ComponentKind::Compute, true) => "HostInitializing/Discovery".to_string(),
                (_, false) => r#"{"state":"ready"}"#.to_string(),
                (_, true) => r#"{"state":"configuring"}"#.to_string(),
            };
            apply(
                &mut fleet,
                FleetEvent::ComponentObserved {
                    initiator: String::new(),
                    component_id: ComponentId::new(format!("r{r:05}-c{c:02}")),
                    controller_state: raw,
                    power_state: None,
                    firmware_version: None,
                    observed_at: None,
                },
                now,
            );
        }
    }
    let per_run = racks / RUNS;
    let mut task = 0u32;
    for i in 0..RUNS {
        let run_id = RunId::new(format!("run-{i:02}"));
        let request = CreateRunRequest {
            name: None,
            operation: Operation::FirmwareUpdate { version: "2.0".into(), components: Vec::new() },
            selector: Selector {
                racks: Some(
                    (i * per_run..(i + 1) * per_run)
                        .map(|r| RackId::new(format!("r{r:05}")))
                        .collect(),
                ),
                ..Selector::default()
            },
            policy: RunPolicy {
                max_parallel_racks: SLOTS,
                waves: WaveSpec::Equal { count: 1 },
                ..RunPolicy::default()
            },
            dry_run: false,
        };
        let new_run = plan_run(&fleet, &request, run_id.clone(), "bench", now).unwrap();
        apply(
            &mut fleet,
            FleetEvent::RunCreated { run: Box::new(new_run.run), targets: new_run.targets },
            now,
        );
        apply(&mut fleet, FleetEvent::RunStarted { run_id: run_id.clone() }, now);
        if stage == Stage::Start {
            continue;
        }
        // Finish 40% of the run's targets (the ready ones, in order), then fill the slots.
        let finished = per_run * 2 / 5;
        let busy = if stage == Stage::Full { SLOTS as usize } else { SLOTS as usize - 5 };
        let mut done = 0usize;
        let mut active = 0usize;
        let ids: Vec<_> = fleet.run_targets[&run_id].clone();
        for id in ids {
            if done == finished && active == busy {
                break;
            }
            let target = &fleet.targets[&id];
            let ready = target
                .components
                .iter()
                .all(|c| fleet.effective_status(c, now).blocked_operations.is_empty());
            if !ready || target.status != TargetStatus::Pending {
                continue;
            }
            apply(
                &mut fleet,
                FleetEvent::TargetClaimed {
                    target_id: id.clone(),
                    lease_until: now + Duration::seconds(3600),
                },
                now,
            );
            task += 1;
            let task_id = TaskId::new(format!("task-{task}"));
            apply(
                &mut fleet,
                FleetEvent::TargetSubmitted { target_id: id.clone(), task_id: task_id.clone() },
                now,
            );
            if done < finished {
                done += 1;
                let status = if done.is_multiple_of(25) {
                    TaskStatus::Failed
                } else {
                    TaskStatus::Completed
                };
                apply(
                    &mut fleet,
                    FleetEvent::TaskObserved {
                        task_id,
                        target_id: id,
                        status,
                        message: String::new(),
                        component_results: BTreeMap::new(),
                    },
                    now,
                );
            } else {
                active += 1;
            }
        }
        // Small runs may lack ready targets to fill the slots: Core runs whatever it was given.
        let ids: Vec<_> = fleet.run_targets[&run_id].clone();
        for id in ids {
            if active == busy {
                break;
            }
            if fleet.targets[&id].status != TargetStatus::Pending {
                continue;
            }
            let lease_until = now + Duration::seconds(3600);
            apply(
                &mut fleet,
                FleetEvent::TargetClaimed { target_id: id.clone(), lease_until },
                now,
            );
            task += 1;
            let task_id = TaskId::new(format!("task-{task}"));
            apply(&mut fleet, FleetEvent::TargetSubmitted { target_id: id, task_id }, now);
            active += 1;
        }
    }
    if stage != Stage::Start {
        // Steady state: the holds of earlier ticks are stored, so this plan repeats none.
        for action in plan(&fleet, &PlannerConfig::default(), now).actions {
            if matches!(action, Action::Hold { .. } | Action::Skip { .. }) {
                apply(&mut fleet, action.into_event(), now);
            }
        }
    }
    (fleet, now)
}

fn bench_plan(c: &mut Criterion) {
    let config = PlannerConfig::default();
    let sizes: Vec<usize> = match std::env::var("PLANNER_BENCH_SIZES") {
        Ok(text) => text.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) => vec![1_000, 10_000, 50_000],
    };
    let mut group = c.benchmark_group("plan");
    group.sample_size(20);
    for &racks in &sizes {
        for (stage, name) in [
            (Stage::Start, "start"),
            (Stage::Middle, "middle"),
            (Stage::Full, "full"),
            (Stage::Start, "shared"),
        ] {
            let config = if name == "shared" {
                PlannerConfig {
                    global_max_parallel: Some(RUNS as u32 * SLOTS / 2),
                    ..config.clone()
                }
            } else {
                config.clone()
            };
            let (fleet, now) = build(racks, stage);
            let p = plan(&fleet, &config, now);
            let claims = p.actions.iter().filter(|a| matches!(a, Action::Claim { .. })).count();
            eprintln!(
                "plan/{name}/{racks}: {} targets, {} finished, {} actions ({claims} claims), {} run holds, {} examined",
                fleet.targets.len(),
                fleet.targets.values().filter(|t| t.status.is_terminal()).count(),
                p.actions.len(),
                p.run_holds.len(),
                p.examined
            );
            group.bench_with_input(BenchmarkId::new(name, racks), &fleet, |b, fleet| {
                b.iter(|| black_box(plan(black_box(fleet), &config, now)));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_plan);
criterion_main!(benches);
