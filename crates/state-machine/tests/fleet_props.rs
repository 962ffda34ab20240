//! Fleet property tests: random sequences of every `FleetEvent` kind over a small inventory.
//!
//! After every event: `check_invariants` holds (indexes and counts equal a from-scratch
//! recomputation); a rejected event leaves the fleet unchanged (persisted snapshot and
//! observation times); an accepted event with no effects leaves the persisted snapshot
//! unchanged (so the runtime may skip logging it). At the end, replaying the logged events
//! (accepted ones with effects) on a fresh fleet is accepted event for event, yields the same
//! effects, and reproduces the persisted state.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use steward_proto::{
    ComponentId, ComponentKind, ComponentPosition, ComponentSpec, Gate, Hold, Operation, RackId,
    RackSpec, Run, RunId, RunPolicy, RunStatus, RunStatusReason, Selector, StatusCounts, Target,
    TargetId, TargetStatus, TaskId, TaskStatus, Timestamp, Wave,
};
use steward_state_machine::{Effect, Fleet, FleetConfig, FleetEvent, Rejected};

fn t0() -> Timestamp {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
}

const RACKS: usize = 5;
const RAW_STATES: &[&str] = &[
    "Ready",
    "Assigned/Ready",
    "HostInitializing",
    "",
    "Failed",
    r#"{"state":"ready"}"#,
    r#"{"state":"maintenance"}"#,
    "garbage{",
];
const SERVICE_STATES: &[&str] =
    &["in_service", "maintenance", "firmware_update", "rma", "decommissioned", "bogus"];

fn rack(i: usize) -> RackId {
    RackId::new(format!("r{i}"))
}

fn run_id(i: u8) -> RunId {
    RunId::new(format!("run-{i}"))
}

fn target_id(run: u8, rack_index: usize) -> TargetId {
    TargetId::for_rack(&run_id(run), &rack(rack_index))
}

fn component_id(rack_index: usize, which: u8) -> ComponentId {
    ComponentId::new(format!("r{rack_index}-{}", if which == 0 { "c" } else { "ps" }))
}

fn spec(id: ComponentId, kind: ComponentKind, model: Option<String>) -> ComponentSpec {
    ComponentSpec {
        id,
        kind,
        name: String::new(),
        manufacturer: None,
        model,
        serial: None,
        position: ComponentPosition::default(),
        firmware_version: None,
        power_state: None,
        labels: BTreeMap::new(),
    }
}

fn inventory(racks: u8, model: u8) -> FleetEvent {
    let racks = (0..RACKS)
        .filter(|i| racks & (1 << i) != 0)
        .map(|i| RackSpec {
            id: rack(i),
            name: format!("rack {i}"),
            location: Default::default(),
            labels: BTreeMap::new(),
            components: vec![
                spec(component_id(i, 0), ComponentKind::Compute, Some(format!("m{model}"))),
                spec(component_id(i, 1), ComponentKind::PowerShelf, None),
            ],
        })
        .collect();
    FleetEvent::InventoryUpserted { initiator: String::new(), racks }
}

fn run_created(run: u8, racks: u8, waves: u8, max_attempts: u32) -> FleetEvent {
    let chosen: Vec<usize> = (0..RACKS).filter(|i| racks & (1 << i) != 0).collect();
    let waves = u32::from(waves.max(1));
    let n = chosen.len() as u32;
    let wave_of = |i: u32| (i * waves).checked_div(n).unwrap_or(0) + 1;
    let mut sizes = vec![0u32; waves as usize];
    let targets: Vec<Target> = chosen
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let wave = wave_of(i as u32);
            sizes[wave as usize - 1] += 1;
            Target::pending(
                &run_id(run),
                rack(*r),
                wave,
                Arc::from(vec![component_id(*r, 0)]),
                t0(),
            )
        })
        .collect();
    let run = Run {
        rerun_of: None,
        reruns: Vec::new(),
        id: run_id(run),
        name: String::new(),
        operation: Operation::PowerCycle,
        selector: Selector::default(),
        policy: RunPolicy {
            max_attempts,
            retry_backoff_seconds: 20,
            max_parallel_racks: 2,
            ..RunPolicy::default()
        },
        status: RunStatus::Pending,
        status_reason: RunStatusReason::None,
        status_message: String::new(),
        current_wave: 0,
        waves: sizes
            .iter()
            .enumerate()
            .map(|(i, size)| Wave {
                number: i as u32 + 1,
                size: *size,
                counts: StatusCounts::default(),
                acknowledged_failures: 0,
                opened_at: None,
                finished_at: None,
            })
            .collect(),
        counts: StatusCounts::default(),
        initiator: "prop".into(),
        created_at: t0(),
        started_at: None,
        finished_at: None,
        updated_at: t0(),
    };
    FleetEvent::RunCreated { run: Box::new(run), targets }
}

#[derive(Clone, Debug)]
enum Op {
    Inventory(u8, u8),
    Observe(usize, u8, u8, Option<u8>),
    Service(usize, u8, u8),
    CreateRun(u8, u8, u8, u32),
    RunEvent(u8, u8, u8),
    Target(u8, usize, u8, u8),
    Task(u8, usize, u8, u8),
}

fn gen_op() -> impl Strategy<Value = Op> {
    let rack = 0..RACKS;
    prop_oneof![
        1 => (any::<u8>(), 0u8..2).prop_map(|(m, v)| Op::Inventory(m, v)),
        3 => (rack.clone(), 0u8..2, 0..RAW_STATES.len() as u8, prop::option::of(0u8..2))
            .prop_map(|(r, w, s, p)| Op::Observe(r, w, s, p)),
        1 => (rack.clone(), 0u8..2, 0..SERVICE_STATES.len() as u8)
            .prop_map(|(r, w, s)| Op::Service(r, w, s)),
        2 => (0u8..3, any::<u8>(), 1u8..4, 1u32..4).prop_map(|(r, m, w, a)| Op::CreateRun(r, m, w, a)),
        4 => (0u8..3, 0u8..24, any::<u8>()).prop_map(|(r, k, d)| Op::RunEvent(r, k, d)),
        10 => (0u8..3, rack.clone(), 0u8..14, any::<u8>()).prop_map(|(r, t, k, d)| Op::Target(r, t, k, d)),
        6 => (0u8..3, rack, 0u8..6, any::<u8>()).prop_map(|(r, t, s, d)| Op::Task(r, t, s, d)),
    ]
}

/// Turns an op into a concrete event, using the fleet to aim at live task ids often.
fn realise(op: &Op, fleet: &Fleet, now: Timestamp, next_task: &mut u32) -> FleetEvent {
    match op {
        Op::Inventory(mask, model) => inventory(*mask | 0b1111, *model),
        Op::Observe(r, w, s, p) => FleetEvent::ComponentObserved {
            initiator: String::new(),
            component_id: component_id(*r, *w),
            controller_state: RAW_STATES[*s as usize].to_string(),
            power_state: p.map(|p| if p == 0 { "on".into() } else { "off".into() }),
            firmware_version: None,
            observed_at: None,
        },
        Op::Service(r, w, s) => FleetEvent::ServiceStateChanged {
            component_id: component_id(*r, *w),
            to: SERVICE_STATES[*s as usize].into(),
            initiator: "prop".into(),
            note: None,
        },
        Op::CreateRun(r, mask, waves, attempts) => run_created(*r, *mask, *waves, *attempts),
        Op::RunEvent(r, kind, d) => {
            let live: Vec<&RunId> =
                fleet.runs.values().filter(|r| !r.status.is_terminal()).map(|r| &r.id).collect();
            let run_id = if *d % 3 != 0 && !live.is_empty() {
                live[usize::from(*d) % live.len()].clone()
            } else {
                pick(fleet.runs.keys(), usize::from(*d), *d % 8 == 0).unwrap_or(run_id(*r))
            };
            match kind {
                0 | 1 => FleetEvent::RunStarted { run_id },
                2 => FleetEvent::RunPaused {
                    run_id,
                    reason: RunStatusReason::ALL[*d as usize % RunStatusReason::ALL.len()],
                    message: String::new(),
                    initiator: "prop".into(),
                },
                3 | 4 => FleetEvent::RunResumed { run_id, initiator: "prop".into() },
                5..=7 => FleetEvent::RunAdvanced {
                    run_id,
                    expected_wave: (d % 3 != 0).then_some(u32::from(d % 4)),
                    initiator: "prop".into(),
                },
                8..=22 => FleetEvent::RunFinished { run_id },
                _ => FleetEvent::RunCancelled { run_id, initiator: "prop".into(), reason: None },
            }
        }
        Op::Target(r, t, kind, d) => {
            let target_id =
                live_target(fleet, *t + usize::from(*d), *d % 4 != 0).unwrap_or_else(|| {
                    pick(fleet.targets.keys(), *t + usize::from(*d), *d % 8 == 0)
                        .unwrap_or(target_id(*r, *t))
                });
            // Half the time, pick an event kind that fits the target's status.
            let status = fleet.targets.get(&target_id).map(|t| t.status);
            let kind = match status {
                Some(TargetStatus::Pending) if d % 2 == 0 => {
                    [0, 0, 0, 12, 13][usize::from(*d / 2) % 5]
                }
                Some(TargetStatus::Claimed) if d % 2 == 0 => {
                    [5, 5, 5, 9, 10, 11][usize::from(*d / 2) % 6]
                }
                Some(TargetStatus::Blocked) if d % 2 == 0 => [0, 0, 13][usize::from(*d / 2) % 3],
                _ => *kind,
            };
            match kind {
                0..=4 => FleetEvent::TargetClaimed {
                    target_id,
                    lease_until: now + TimeDelta::seconds(i64::from(*d % 60) - 5),
                },
                5..=8 => {
                    *next_task += 1;
                    FleetEvent::TargetSubmitted {
                        target_id,
                        task_id: TaskId::new(format!("task-{next_task}")),
                    }
                }
                9 => FleetEvent::TargetConflict { target_id, message: "busy".into() },
                10 => FleetEvent::TargetLeaseExpired { target_id },
                11 => FleetEvent::TargetSubmitRejected { target_id, message: "no".into() },
                12 => FleetEvent::TargetSkipped { target_id, reason: "policy".into() },
                _ => FleetEvent::TargetHeld {
                    target_id,
                    hold: (d % 3 != 0).then(|| Hold {
                        gate: Gate::ALL[*d as usize % Gate::ALL.len()],
                        message: format!("hold {}", d % 2),
                        since: t0(),
                        component: None,
                    }),
                },
            }
        }
        Op::Task(r, t, s, d) => {
            let target_id =
                live_target(fleet, *t + usize::from(*d), *d % 4 != 0).unwrap_or_else(|| {
                    pick(fleet.targets.keys(), *t + usize::from(*d), *d % 8 == 0)
                        .unwrap_or(target_id(*r, *t))
                });
            let live = fleet.targets.get(&target_id).and_then(|t| t.task_id.clone());
            let task_id = match live {
                Some(id) if d % 4 != 0 => id,
                _ => TaskId::new(format!("task-{}", d % 8)),
            };
            FleetEvent::TaskObserved {
                task_id,
                target_id,
                status: TaskStatus::ALL[*s as usize],
                message: if d % 2 == 0 { String::new() } else { "m".into() },
                component_results: BTreeMap::new(),
            }
        }
    }
}

/// Mostly an existing key (so events reach deep states), sometimes none (to test NotFound).
fn pick<'a, K: Clone + 'a>(
    keys: impl ExactSizeIterator<Item = &'a K>,
    index: usize,
    skip: bool,
) -> Option<K> {
    let len = keys.len();
    if skip || len == 0 {
        return None;
    }
    keys.into_iter().nth(index % len).cloned()
}

/// A non-terminal target, when `want` and one exists.
fn live_target(fleet: &Fleet, index: usize, want: bool) -> Option<TargetId> {
    let live: Vec<&TargetId> =
        fleet.targets.values().filter(|t| !t.status.is_terminal()).map(|t| &t.id).collect();
    (want && !live.is_empty()).then(|| live[index % live.len()].clone())
}

fn observation_times(fleet: &Fleet) -> Vec<Option<Timestamp>> {
    fleet.components.values().map(|e| e.last_observed_at).collect()
}

fn config() -> FleetConfig {
    FleetConfig { status_max_age: Some(TimeDelta::minutes(10)), ..FleetConfig::default() }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn fleet_random_sequences(ops in prop::collection::vec((gen_op(), 0i64..90), 1..120)) {
        let mut fleet = Fleet::new(config());
        let mut now = t0();
        let mut log: Vec<(FleetEvent, Timestamp, Vec<Effect>)> = Vec::new();
        let first = inventory(0b0_1111, 0);
        let effects = fleet.apply_effects(&first, now).unwrap();
        log.push((first, now, effects));
        for event in [run_created(0, 0b1111, 2, 2), FleetEvent::RunStarted { run_id: run_id(0) }] {
            let effects = fleet.apply_effects(&event, now).unwrap();
            log.push((event, now, effects));
        }
        let mut next_task = 0;
        let mut accepted = 0usize;
        for (op, dt) in &ops {
            now += TimeDelta::seconds(*dt);
            let event = realise(op, &fleet, now, &mut next_task);
            let before = fleet.snapshot();
            let times = observation_times(&fleet);
            match fleet.apply_effects(&event, now) {
                Ok(effects) => {
                    accepted += 1;
                    if std::env::var_os("FLEET_PROPS_TRACE").is_some() {
                        eprintln!("accepted: {}", serde_json::to_string(&event).unwrap().chars().take(60).collect::<String>());
                    }
                    if effects.is_empty() {
                        prop_assert_eq!(&fleet.snapshot(), &before,
                            "accepted {:?} without effects but changed persisted state", event);
                    } else {
                        log.push((event.clone(), now, effects));
                    }
                }
                Err(rejected) => {
                    let known = matches!(
                        rejected,
                        Rejected::IllegalTransition { .. }
                            | Rejected::IllegalServiceTransition { .. }
                            | Rejected::Guard { .. }
                            | Rejected::NotFound { .. }
                            | Rejected::Invalid { .. }
                    );
                    prop_assert!(known);
                    if std::env::var_os("FLEET_PROPS_TRACE").is_some() {
                        eprintln!("rejected: {rejected}");
                    }
                    prop_assert_eq!(&fleet.snapshot(), &before, "rejected {:?} changed the fleet", event);
                    prop_assert_eq!(observation_times(&fleet), times);
                }
            }
            if let Err(violation) = fleet.check_invariants() {
                prop_assert!(false, "after {:?}: {}", event, violation);
            }
            for run in fleet.runs.values() {
                prop_assert!(run.current_wave as usize <= run.waves.len());
                for wave in &run.waves {
                    if wave.size > 0 {
                        prop_assert_eq!(wave.finished_at.is_some(), wave.counts.all_terminal(),
                            "wave {} of {}: finished_at vs counts {:?}", wave.number, run.id, wave.counts);
                    }
                }
            }
        }
        let _ = accepted;
        // Replay of the logged events.
        let mut replayed = Fleet::new(config());
        for (event, at, effects) in &log {
            let again = replayed.apply_effects(event, *at);
            prop_assert_eq!(again.as_ref(), Ok(effects), "replay of {:?} differs", event);
        }
        prop_assert!(replayed.persisted_eq(&fleet));
        prop_assert_eq!(
            serde_json::to_string(&replayed.snapshot()).unwrap(),
            serde_json::to_string(&fleet.snapshot()).unwrap()
        );
    }
}

/// Every event a well-behaved planner/runtime could send now (all must be accepted).
fn legal_candidates(fleet: &Fleet, now: Timestamp, next_task: u32) -> Vec<FleetEvent> {
    let mut out = Vec::new();
    for run in fleet.runs.values() {
        let run_id = run.id.clone();
        match run.status {
            RunStatus::Pending => out.push(FleetEvent::RunStarted { run_id: run_id.clone() }),
            // At a wave gate only `advance` opens the next wave; `resume` is refused there.
            RunStatus::Paused if run.status_reason == RunStatusReason::WaveGate => {
                out.push(FleetEvent::RunAdvanced {
                    run_id: run_id.clone(),
                    expected_wave: None,
                    initiator: "op".into(),
                })
            }
            RunStatus::Paused => {
                out.push(FleetEvent::RunResumed { run_id: run_id.clone(), initiator: "op".into() })
            }
            RunStatus::Running => {
                if run.counts.all_terminal() {
                    out.push(FleetEvent::RunFinished { run_id: run_id.clone() });
                }
                let current = run.current_wave as usize;
                if current >= 1
                    && current < run.waves.len()
                    && run.waves[current - 1].counts.all_terminal()
                {
                    out.push(FleetEvent::RunAdvanced {
                        run_id: run_id.clone(),
                        expected_wave: Some(run.current_wave + 1),
                        initiator: "planner".into(),
                    });
                    out.push(FleetEvent::RunPaused {
                        run_id: run_id.clone(),
                        reason: RunStatusReason::WaveGate,
                        message: format!("wave {current} finished"),
                        initiator: "planner".into(),
                    });
                }
                if run.counts.failures() > 0 {
                    out.push(FleetEvent::RunPaused {
                        run_id: run_id.clone(),
                        reason: RunStatusReason::SafetyGate,
                        message: "failures".into(),
                        initiator: "planner".into(),
                    });
                }
            }
            _ => {}
        }
        for target_id in &fleet.run_targets[&run.id] {
            let t = &fleet.targets[target_id];
            let ready = t.retry_after.is_none_or(|r| r <= now);
            let claimable = run.status == RunStatus::Running && t.wave <= run.current_wave && ready;
            let id = t.id.clone();
            match t.status {
                TargetStatus::Pending | TargetStatus::Blocked if claimable => {
                    out.push(FleetEvent::TargetClaimed {
                        target_id: id,
                        lease_until: now + TimeDelta::seconds(30),
                    });
                }
                TargetStatus::Claimed => {
                    out.push(FleetEvent::TargetSubmitted {
                        target_id: id.clone(),
                        task_id: TaskId::new(format!("task-{next_task}")),
                    });
                    out.push(FleetEvent::TargetConflict {
                        target_id: id.clone(),
                        message: "busy".into(),
                    });
                    out.push(FleetEvent::TargetSubmitRejected {
                        target_id: id.clone(),
                        message: "no".into(),
                    });
                    if t.lease_until.is_some_and(|l| l <= now) {
                        out.push(FleetEvent::TargetLeaseExpired { target_id: id });
                    }
                }
                TargetStatus::Submitted => {
                    for status in [
                        TaskStatus::Running,
                        TaskStatus::Completed,
                        TaskStatus::Completed,
                        TaskStatus::Failed,
                        TaskStatus::Terminated,
                    ] {
                        out.push(FleetEvent::TaskObserved {
                            task_id: t.task_id.clone().unwrap(),
                            target_id: id.clone(),
                            status,
                            message: String::new(),
                            component_results: BTreeMap::new(),
                        });
                    }
                }
                _ => {}
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A well-behaved driver: every event it sends is accepted, runs reach terminal statuses
    /// following the terminal-status rule, and replay reproduces the state.
    #[test]
    fn fleet_driver_lifecycles(
        runs in prop::collection::vec((any::<u8>(), 1u8..4, 1u32..4), 1..4),
        choices in prop::collection::vec((any::<u16>(), 0i64..40), 1..250),
    ) {
        let mut fleet = Fleet::new(config());
        let mut log: Vec<(FleetEvent, Timestamp)> = Vec::new();
        let mut now = t0();
        let mut events = vec![inventory(0b1_1111, 0)];
        for (i, (mask, waves, attempts)) in runs.iter().enumerate() {
            events.push(run_created(i as u8, *mask | 1, *waves, *attempts));
        }
        for event in events {
            fleet.apply(&event, now).unwrap();
            log.push((event, now));
        }
        let mut next_task = 0u32;
        for (choice, dt) in &choices {
            now += TimeDelta::seconds(*dt);
            let candidates = legal_candidates(&fleet, now, next_task);
            if candidates.is_empty() {
                continue;
            }
            let event = candidates[usize::from(*choice) % candidates.len()].clone();
            if matches!(event, FleetEvent::TargetSubmitted { .. }) {
                next_task += 1;
            }
            let result = fleet.apply(&event, now);
            prop_assert!(result.is_ok(), "{:?} rejected: {:?}", event, result);
            if let Err(violation) = fleet.check_invariants() {
                prop_assert!(false, "after {:?}: {}", event, violation);
            }
            log.push((event, now));
        }
        for run in fleet.runs.values() {
            if std::env::var_os("FLEET_PROPS_TRACE").is_some() {
                eprintln!("driver run: {} wave {}/{}", run.status, run.current_wave, run.waves.len());
            }
            if run.status.is_terminal() {
                prop_assert_eq!(run.status, steward_state_machine::run::finished_status(run));
                prop_assert!(run.waves.iter().all(|w| w.size == 0 || w.finished_at.is_some()));
            }
        }
        let mut replayed = Fleet::new(config());
        for (event, at) in &log {
            prop_assert!(replayed.apply(event, *at).is_ok());
        }
        prop_assert!(replayed.persisted_eq(&fleet));
    }
}
