//! Property tests of the simulated Core over random call schedules: the same schedule gives the
//! same transcript, a process restarted on the journal sees exactly the live state, terminal
//! task statuses never change, a rack never holds two unfinished tasks, and every submit call
//! is counted once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use steward_proto::{IdempotencyKey, Operation, RunId, TargetId, TaskId, TaskStatus};
use steward_runtime::clock::ManualClock;
use steward_runtime::core::{Core, SubmitOutcome, TaskRequest};
use steward_sim::{FailureRates, LatencyRange, SimConfig, SimCore};

#[derive(Clone, Debug)]
enum Step {
    Submit { rack: u32, attempt: u32, op: u8 },
    Advance { ms: i64 },
    Cancel { nth: usize },
    Observe,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1u32..=4, 1u32..=3, 0u8..4).prop_map(|(rack, attempt, op)| Step::Submit { rack, attempt, op }),
        3 => (0i64..4_000).prop_map(|ms| Step::Advance { ms }),
        1 => (0usize..16).prop_map(|nth| Step::Cancel { nth }),
        1 => Just(Step::Observe),
    ]
}

fn operation(op: u8) -> Operation {
    match op {
        0 => Operation::PowerOn,
        1 => Operation::PowerOff,
        2 => Operation::PowerCycle,
        _ => Operation::FirmwareUpdate { version: "9.9.9".to_owned(), components: vec![] },
    }
}

fn request(core: &SimCore, rack: u32, attempt: u32, op: u8) -> TaskRequest {
    let inventory = core.inventory();
    let spec = &inventory.racks[usize::try_from(rack - 1).unwrap()];
    let run = RunId::new(format!("run-{op}"));
    let target = TargetId::for_rack(&run, &spec.id);
    TaskRequest {
        idempotency_key: IdempotencyKey::for_attempt(&run, &target, attempt),
        run_id: run,
        target_id: target,
        rack_id: spec.id.clone(),
        operation: operation(op),
        components: spec.components.iter().map(|c| c.id.clone()).collect(),
    }
}

struct Outcome {
    transcript: Vec<String>,
    tasks: Vec<TaskId>,
    keys: Vec<IdempotencyKey>,
}

async fn drive(core: &SimCore, clock: &ManualClock, steps: &[Step]) -> Outcome {
    let mut out = Outcome { transcript: Vec::new(), tasks: Vec::new(), keys: Vec::new() };
    let mut terminal: BTreeMap<TaskId, TaskStatus> = BTreeMap::new();
    let mut calls = 0u32;
    for step in steps {
        match step {
            Step::Submit { rack, attempt, op } => {
                let req = request(core, *rack, *attempt, *op);
                let outcome = core.submit(&req).await.unwrap();
                calls += 1;
                if let SubmitOutcome::Accepted { task_id } = &outcome
                    && !out.tasks.contains(task_id)
                {
                    out.tasks.push(task_id.clone());
                }
                if !out.keys.contains(&req.idempotency_key) {
                    out.keys.push(req.idempotency_key.clone());
                }
                out.transcript.push(format!("{outcome:?}"));
            }
            Step::Advance { ms } => clock.advance(Duration::milliseconds(*ms)),
            Step::Cancel { nth } => {
                if let Some(task) = out.tasks.get(*nth) {
                    core.cancel(task).await.unwrap();
                }
            }
            Step::Observe => out.transcript.push(format!("{:?}", core.observe().await.unwrap())),
        }
        // Invariants after every step.
        let mut unfinished_per_rack: BTreeMap<String, u32> = BTreeMap::new();
        for task in &out.tasks {
            let report = core.task_status(task).await.unwrap();
            if let Some(before) = terminal.get(task) {
                assert_eq!(*before, report.status, "terminal status of {task} changed");
            }
            if report.status.is_terminal() {
                terminal.insert(task.clone(), report.status);
            } else {
                // Keys look like `run-0/run-0:rack-001/1`.
                let after_colon = report.idempotency_key.as_str().split(':').nth(1).unwrap();
                let rack = after_colon.split('/').next().unwrap().to_owned();
                *unfinished_per_rack.entry(rack).or_default() += 1;
            }
            out.transcript.push(format!("{report:?}"));
        }
        assert!(
            unfinished_per_rack.values().all(|n| *n <= 1),
            "two unfinished tasks on one rack: {unfinished_per_rack:?}"
        );
        let counted: u32 = out.keys.iter().map(|k| core.submissions(k)).sum();
        assert_eq!(counted, calls, "every submit call is counted once");
    }
    out
}

fn config(seed: u64, journal: Option<std::path::PathBuf>) -> SimConfig {
    SimConfig {
        seed,
        racks: 4,
        rows: 2,
        latency: LatencyRange { min_ms: 0, max_ms: 6_000 },
        failure_rate: FailureRates::all(0.3),
        conflict_rate: 0.2,
        recover_after_ms: Some(3_000),
        journal,
        ..SimConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn schedules_are_deterministic_and_replayable(
        seed in any::<u64>(),
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let start = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("journal.jsonl");

            let clock = ManualClock::new(start);
            let live = SimCore::new(config(seed, Some(path.clone())), Arc::new(clock.clone())).unwrap();
            let first = drive(&live, &clock, &steps).await;

            let twin_clock = ManualClock::new(start);
            let twin = SimCore::new(config(seed, None), Arc::new(twin_clock.clone())).unwrap();
            let second = drive(&twin, &twin_clock, &steps).await;
            assert_eq!(first.transcript, second.transcript, "same seed, same calls, same answers");

            let restarted = SimCore::new(config(seed, Some(path)), Arc::new(clock.clone())).unwrap();
            assert_eq!(restarted.observe().await.unwrap(), live.observe().await.unwrap());
            for task in &first.tasks {
                assert_eq!(
                    restarted.task_status(task).await.unwrap(),
                    live.task_status(task).await.unwrap()
                );
            }
            for key in &first.keys {
                assert_eq!(restarted.submissions(key), live.submissions(key));
            }
            assert_eq!(restarted.duplicate_submits(), live.duplicate_submits());
            // Both keep evolving identically after the restart.
            clock.advance(Duration::milliseconds(10_000));
            assert_eq!(restarted.observe().await.unwrap(), live.observe().await.unwrap());
            for task in &first.tasks {
                assert!(restarted.task_status(task).await.unwrap().status.is_terminal());
            }
        });
    }
}
