//! Fleet scenarios: inventory, observations, service states, a run dispatched end to end,
//! cancellation, late task reports, and rejections that leave the fleet unchanged.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeDelta, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use steward_proto::{
    ComponentKind, ComponentPosition, ComponentSpec, Operation, Phase, RackSpec, Run, RunPolicy,
    RunStatus, RunStatusReason, Selector, ServiceState, StatusCounts, Target, TargetId,
    TargetStatus, TaskStatus, Timestamp, Wave,
};
use steward_state_machine::{Effect, Fleet, FleetConfig, FleetEvent, Rejected};

fn t0() -> Timestamp {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
}

fn at(s: i64) -> Timestamp {
    t0() + TimeDelta::seconds(s)
}

fn component(id: &str, kind: ComponentKind) -> ComponentSpec {
    ComponentSpec {
        id: id.into(),
        kind,
        name: id.to_string(),
        manufacturer: None,
        model: None,
        serial: None,
        position: ComponentPosition::default(),
        firmware_version: None,
        power_state: None,
        labels: BTreeMap::new(),
    }
}

fn inventory(racks: &[&str]) -> FleetEvent {
    FleetEvent::InventoryUpserted {
        initiator: String::new(),
        racks: racks
            .iter()
            .map(|r| RackSpec {
                id: (*r).into(),
                name: r.to_string(),
                location: Default::default(),
                labels: BTreeMap::new(),
                components: vec![
                    component(&format!("{r}-c1"), ComponentKind::Compute),
                    component(&format!("{r}-ps"), ComponentKind::PowerShelf),
                ],
            })
            .collect(),
    }
}

/// A run over `waves` (each a list of rack ids), all pending.
fn run_created(run_id: &str, waves: &[&[&str]], policy: RunPolicy) -> FleetEvent {
    let mut targets = Vec::new();
    let mut wave_list = Vec::new();
    for (w, racks) in waves.iter().enumerate() {
        wave_list.push(Wave {
            number: w as u32 + 1,
            size: racks.len() as u32,
            counts: StatusCounts::default(),
            acknowledged_failures: 0,
            opened_at: None,
            finished_at: None,
        });
        for rack in *racks {
            targets.push(Target::pending(
                &run_id.into(),
                (*rack).into(),
                w as u32 + 1,
                Arc::from(vec![format!("{rack}-c1").into()]),
                t0(),
            ));
        }
    }
    let run = Run {
        rerun_of: None,
        reruns: Vec::new(),
        id: run_id.into(),
        name: String::new(),
        operation: Operation::PowerCycle,
        selector: Selector::default(),
        policy,
        status: RunStatus::Pending,
        status_reason: RunStatusReason::None,
        status_message: String::new(),
        current_wave: 0,
        waves: wave_list,
        counts: StatusCounts::default(),
        initiator: "alice".into(),
        created_at: t0(),
        started_at: None,
        finished_at: None,
        updated_at: t0(),
    };
    FleetEvent::RunCreated { run: Box::new(run), targets }
}

fn fleet() -> Fleet {
    Fleet::new(FleetConfig {
        status_max_age: Some(TimeDelta::minutes(10)),
        ..FleetConfig::default()
    })
}

/// Applies and checks the invariants; a rejection must leave the fleet unchanged.
fn apply(fleet: &mut Fleet, event: &FleetEvent, now: Timestamp) -> Result<Vec<Effect>, Rejected> {
    let before = fleet.snapshot();
    let result = fleet.apply_effects(event, now);
    if result.is_err() {
        assert_eq!(fleet.snapshot(), before, "a rejected event changed the fleet");
    }
    fleet.check_invariants().unwrap();
    result
}

fn tid(run: &str, rack: &str) -> TargetId {
    TargetId::for_rack(&run.into(), &rack.into())
}

#[test]
fn inventory_upsert_is_idempotent_and_keeps_state() {
    let mut f = fleet();
    let effects = apply(&mut f, &inventory(&["r1", "r2"]), t0()).unwrap();
    assert_eq!(effects.iter().filter(|e| e.kind() == "persist_rack").count(), 2);
    assert_eq!(effects.iter().filter(|e| e.kind() == "persist_component").count(), 4);
    assert_eq!(f.rack_components["r1"], vec!["r1-c1".into(), "r1-ps".into()]);
    assert_eq!(f.components["r1-c1"].service_state, ServiceState::new("in_service"));
    // Service state and observed status survive a re-upsert.
    let change = FleetEvent::ServiceStateChanged {
        component_id: "r1-c1".into(),
        to: "maintenance".into(),
        initiator: "bob".into(),
        note: None,
    };
    let effects = apply(&mut f, &change, t0()).unwrap();
    assert!(effects.iter().any(|e| e.kind() == "append_history"));
    let observe = FleetEvent::ComponentObserved {
        initiator: String::new(),
        component_id: "r1-c1".into(),
        controller_state: "Ready".into(),
        power_state: Some("on".into()),
        firmware_version: None,
        observed_at: None,
    };
    apply(&mut f, &observe, t0()).unwrap();
    let effects = apply(&mut f, &inventory(&["r1", "r2"]), at(1)).unwrap();
    assert!(effects.is_empty(), "identical upsert: {effects:?}");
    assert_eq!(f.components["r1-c1"].service_state, ServiceState::new("maintenance"));
    assert_eq!(f.components["r1-c1"].status.as_ref().unwrap().phase, Phase::Ready);
    assert_eq!(f.components["r1-c1"].component.power_state.as_deref(), Some("on"));
    // Illegal service transition: rejected, unchanged.
    let illegal = FleetEvent::ServiceStateChanged {
        component_id: "r1-c1".into(),
        to: "maintenance".into(),
        initiator: "bob".into(),
        note: None,
    };
    assert!(apply(&mut f, &illegal, t0()).is_err());
}

#[test]
fn observations_freshness_and_identical_reobservation() {
    let mut f = fleet();
    apply(&mut f, &inventory(&["r1"]), t0()).unwrap();
    let id = "r1-c1".into();
    assert_eq!(f.effective_status(&id, t0()).phase, Phase::Unknown);
    let observe = |state: &str| FleetEvent::ComponentObserved {
        initiator: String::new(),
        component_id: "r1-c1".into(),
        controller_state: state.into(),
        power_state: None,
        firmware_version: None,
        observed_at: None,
    };
    let effects = apply(&mut f, &observe("Ready"), t0()).unwrap();
    assert!(effects.contains(&Effect::PersistComponentStatus(id.clone())));
    assert_eq!(f.effective_status(&id, at(60)).phase, Phase::Ready);
    // Identical: no effects, but freshness is renewed.
    let effects = apply(&mut f, &observe("Ready"), at(500)).unwrap();
    assert!(effects.is_empty());
    assert_eq!(f.components[&id].last_observed_at, Some(at(500)));
    assert_eq!(f.effective_status(&id, at(1000)).phase, Phase::Ready);
    // Stale after 10 minutes without observation.
    assert_eq!(f.effective_status(&id, at(500 + 601)).phase, Phase::Unknown);
    // After a restart nothing is fresh.
    f.forget_observation_times();
    assert_eq!(f.effective_status(&id, at(501)).phase, Phase::Unknown);
    // Unknown component.
    assert!(
        apply(
            &mut f,
            &FleetEvent::ComponentObserved {
                initiator: String::new(),
                component_id: "nope".into(),
                controller_state: "Ready".into(),
                power_state: None,
                firmware_version: None,
                observed_at: None
            },
            t0()
        )
        .is_err()
    );
}

#[test]
fn run_end_to_end_with_two_waves() {
    let mut f = fleet();
    apply(&mut f, &inventory(&["r1", "r2"]), t0()).unwrap();
    let policy = RunPolicy { max_attempts: 2, ..RunPolicy::default() };
    apply(&mut f, &run_created("run-1", &[&["r1"], &["r2"]], policy), t0()).unwrap();
    let run_id: steward_proto::RunId = "run-1".into();
    assert_eq!(f.runs[&run_id].counts.pending, 2);
    assert_eq!(f.run_pending[&run_id].len(), 2);
    let t1 = tid("run-1", "r1");
    // Not running yet: no claim.
    let claim =
        |t: &TargetId, s| FleetEvent::TargetClaimed { target_id: t.clone(), lease_until: at(s) };
    assert!(matches!(apply(&mut f, &claim(&t1, 30), t0()), Err(Rejected::Guard { .. })));
    apply(&mut f, &FleetEvent::RunStarted { run_id: run_id.clone() }, t0()).unwrap();
    let effects = apply(&mut f, &claim(&t1, 30), t0()).unwrap();
    assert!(effects.iter().any(|e| e.kind() == "submit_task"));
    assert_eq!(f.active_total, 1);
    assert!(f.rack_active["r1"].contains(&t1));
    apply(
        &mut f,
        &FleetEvent::TargetSubmitted { target_id: t1.clone(), task_id: "task-1".into() },
        at(1),
    )
    .unwrap();
    let observed = |status| FleetEvent::TaskObserved {
        task_id: "task-1".into(),
        target_id: t1.clone(),
        status,
        message: String::new(),
        component_results: BTreeMap::new(),
    };
    let effects = apply(&mut f, &observed(TaskStatus::Running), at(2)).unwrap();
    assert_eq!(effects, vec![Effect::PersistTask("task-1".into())]);
    assert!(apply(&mut f, &observed(TaskStatus::Running), at(3)).unwrap().is_empty());
    let effects = apply(&mut f, &observed(TaskStatus::Completed), at(4)).unwrap();
    assert!(effects.contains(&Effect::PersistTarget(t1.clone())));
    assert_eq!(f.targets[&t1].status, TargetStatus::Completed);
    assert_eq!(f.active_total, 0);
    assert_eq!(f.runs[&run_id].waves[0].finished_at, Some(at(4)));
    assert_eq!(f.runs[&run_id].waves[1].finished_at, None);
    // A late duplicate is harmless.
    assert!(apply(&mut f, &observed(TaskStatus::Completed), at(5)).unwrap().is_empty());
    // Wave gate, advance with the wrong and the right expected wave.
    apply(
        &mut f,
        &FleetEvent::RunPaused {
            run_id: run_id.clone(),
            reason: RunStatusReason::WaveGate,
            message: "wave 1 finished".into(),
            initiator: "planner".into(),
        },
        at(6),
    )
    .unwrap();
    let advance = |w| FleetEvent::RunAdvanced {
        run_id: run_id.clone(),
        expected_wave: Some(w),
        initiator: "op".into(),
    };
    assert!(apply(&mut f, &advance(3), at(7)).is_err());
    apply(&mut f, &advance(2), at(7)).unwrap();
    assert_eq!(f.runs[&run_id].current_wave, 2);
    // Second target: task fails once (retry), then succeeds.
    let t2 = tid("run-1", "r2");
    apply(&mut f, &claim(&t2, 100), at(8)).unwrap();
    apply(
        &mut f,
        &FleetEvent::TargetSubmitted { target_id: t2.clone(), task_id: "task-2".into() },
        at(9),
    )
    .unwrap();
    let finish2 = |task: &str, status| FleetEvent::TaskObserved {
        task_id: task.into(),
        target_id: t2.clone(),
        status,
        message: "boom".into(),
        component_results: BTreeMap::new(),
    };
    apply(&mut f, &finish2("task-2", TaskStatus::Failed), at(10)).unwrap();
    assert_eq!((f.targets[&t2].status, f.targets[&t2].attempt), (TargetStatus::Pending, 2));
    assert!(f.run_pending[&run_id].contains(&(2, 1)));
    // The old task's late report is harmless.
    assert!(apply(&mut f, &finish2("task-2", TaskStatus::Failed), at(11)).unwrap().is_empty());
    assert!(apply(&mut f, &FleetEvent::RunFinished { run_id: run_id.clone() }, at(11)).is_err());
    apply(&mut f, &claim(&t2, 200), at(70)).unwrap();
    apply(
        &mut f,
        &FleetEvent::TargetSubmitted { target_id: t2.clone(), task_id: "task-3".into() },
        at(71),
    )
    .unwrap();
    assert_eq!(f.tasks.len(), 2);
    apply(&mut f, &finish2("task-3", TaskStatus::Completed), at(72)).unwrap();
    assert_eq!(f.tasks["task-3"].idempotency_key.as_str(), "run-1/run-1:r2/2");
    apply(&mut f, &FleetEvent::RunFinished { run_id: run_id.clone() }, at(73)).unwrap();
    assert_eq!(f.runs[&run_id].status, RunStatus::Completed);
    assert_eq!(f.runs[&run_id].counts.completed, 2);
}

#[test]
fn cancel_skips_waiting_targets_and_cancels_submitted_tasks() {
    let mut f = fleet();
    apply(&mut f, &inventory(&["r1", "r2", "r3"]), t0()).unwrap();
    let policy = RunPolicy { max_parallel_racks: 3, ..RunPolicy::default() };
    apply(&mut f, &run_created("run-1", &[&["r1", "r2", "r3"]], policy), t0()).unwrap();
    apply(&mut f, &FleetEvent::RunStarted { run_id: "run-1".into() }, t0()).unwrap();
    let (t1, t2) = (tid("run-1", "r1"), tid("run-1", "r2"));
    apply(&mut f, &FleetEvent::TargetClaimed { target_id: t1.clone(), lease_until: at(30) }, t0())
        .unwrap();
    apply(
        &mut f,
        &FleetEvent::TargetSubmitted { target_id: t1.clone(), task_id: "task-1".into() },
        t0(),
    )
    .unwrap();
    apply(&mut f, &FleetEvent::TargetClaimed { target_id: t2.clone(), lease_until: at(30) }, t0())
        .unwrap();
    let effects = apply(
        &mut f,
        &FleetEvent::RunCancelled {
            run_id: "run-1".into(),
            initiator: "carol".into(),
            reason: Some("bad firmware".into()),
        },
        at(1),
    )
    .unwrap();
    assert!(
        effects.contains(&Effect::CancelTask { task_id: "task-1".into(), target_id: t1.clone() })
    );
    assert_eq!(f.runs["run-1"].status, RunStatus::Cancelled);
    assert_eq!(f.targets[&t1].status, TargetStatus::Submitted);
    assert_eq!(f.targets[&t2].status, TargetStatus::Skipped);
    assert_eq!(f.runs["run-1"].counts.skipped, 2);
    // A restart before Core reports would ask Core again to cancel the running task.
    assert_eq!(f.cancels_in_flight(), vec![("task-1".into(), t1.clone())]);
    // Counts keep moving after the run is terminal.
    apply(
        &mut f,
        &FleetEvent::TaskObserved {
            task_id: "task-1".into(),
            target_id: t1.clone(),
            status: TaskStatus::Terminated,
            message: String::new(),
            component_results: BTreeMap::new(),
        },
        at(2),
    )
    .unwrap();
    assert_eq!(f.targets[&t1].status, TargetStatus::Terminated);
    assert_eq!(f.runs["run-1"].counts.terminated, 1);
    assert_eq!(f.active_total, 0);
    assert!(f.runs["run-1"].waves[0].finished_at.is_some());
    assert!(f.cancels_in_flight().is_empty());
}

#[test]
fn run_creation_is_validated() {
    let mut f = fleet();
    apply(&mut f, &inventory(&["r1"]), t0()).unwrap();
    // Unknown rack.
    let r = apply(&mut f, &run_created("run-1", &[&["r9"]], RunPolicy::default()), t0());
    assert!(
        matches!(r, Err(Rejected::Invalid { ref field, .. }) if field == "targets[0].rack_id"),
        "{r:?}"
    );
    // Invalid policy.
    let bad = RunPolicy { max_attempts: 0, ..RunPolicy::default() };
    let r = apply(&mut f, &run_created("run-1", &[&["r1"]], bad), t0());
    assert!(
        matches!(r, Err(Rejected::Invalid { ref field, .. }) if field.contains("max_attempts")),
        "{r:?}"
    );
    // No targets.
    let r = apply(&mut f, &run_created("run-1", &[], RunPolicy::default()), t0());
    assert!(r.is_err());
    apply(&mut f, &run_created("run-1", &[&["r1"]], RunPolicy::default()), t0()).unwrap();
    // Run id reused.
    let r = apply(&mut f, &run_created("run-1", &[&["r1"]], RunPolicy::default()), t0());
    assert!(matches!(r, Err(Rejected::Invalid { ref field, .. }) if field == "run.id"));
    // Target id reused by another run: the target id is run-1:r1 only if the run is run-1, so
    // build a run-2 whose target claims run-1's id.
    let FleetEvent::RunCreated { run, mut targets } =
        run_created("run-2", &[&["r1"]], RunPolicy::default())
    else {
        unreachable!()
    };
    targets[0].id = tid("run-1", "r1");
    let r = apply(&mut f, &FleetEvent::RunCreated { run, targets }, t0());
    assert!(
        matches!(r, Err(Rejected::Invalid { ref field, .. }) if field == "targets[0].id"),
        "{r:?}"
    );
}

#[test]
fn conflict_uses_the_run_policy_and_holds_are_persisted_only_on_change() {
    let mut f = fleet();
    apply(&mut f, &inventory(&["r1"]), t0()).unwrap();
    let mut policy = RunPolicy::default();
    policy.conflict_retry.initial_delay_seconds = 10;
    policy.conflict_retry.max_delay_seconds = 15;
    apply(&mut f, &run_created("run-1", &[&["r1"]], policy), t0()).unwrap();
    apply(&mut f, &FleetEvent::RunStarted { run_id: "run-1".into() }, t0()).unwrap();
    let t1 = tid("run-1", "r1");
    let hold = steward_proto::Hold {
        gate: steward_proto::Gate::Readiness,
        message: "r1-c1 is initializing".into(),
        since: t0(),
        component: None,
    };
    let held = FleetEvent::TargetHeld { target_id: t1.clone(), hold: Some(hold) };
    assert_eq!(apply(&mut f, &held, t0()).unwrap().len(), 1);
    assert!(apply(&mut f, &held, at(1)).unwrap().is_empty());
    let mut delays = Vec::new();
    let mut now = 0;
    for _ in 0..3 {
        let claim = FleetEvent::TargetClaimed { target_id: t1.clone(), lease_until: at(now + 30) };
        apply(&mut f, &claim, at(now)).unwrap();
        assert_eq!(f.targets[&t1].hold, None, "a claim clears the hold");
        let conflict = FleetEvent::TargetConflict { target_id: t1.clone(), message: "busy".into() };
        apply(&mut f, &conflict, at(now)).unwrap();
        let target = &f.targets[&t1];
        assert_eq!(target.status, TargetStatus::Blocked);
        assert!(f.rack_active["r1"].contains(&t1), "blocked targets occupy the rack");
        delays.push(target.conflict_delay_seconds);
        now += target.conflict_delay_seconds as i64;
    }
    assert_eq!(delays, vec![10, 15, 15]);
}

#[test]
fn rebuild_indexes_reproduces_the_incremental_indexes() {
    let mut f = fleet();
    apply(&mut f, &inventory(&["r1", "r2"]), t0()).unwrap();
    let policy = RunPolicy { max_parallel_racks: 2, ..RunPolicy::default() };
    apply(&mut f, &run_created("run-1", &[&["r1"], &["r2"]], policy), t0()).unwrap();
    apply(&mut f, &FleetEvent::RunStarted { run_id: "run-1".into() }, t0()).unwrap();
    let claim = FleetEvent::TargetClaimed { target_id: tid("run-1", "r1"), lease_until: at(30) };
    apply(&mut f, &claim, t0()).unwrap();
    let mut loaded = f.clone();
    loaded.target_positions.clear();
    loaded.run_pending.clear();
    loaded.run_active.clear();
    loaded.rack_active.clear();
    loaded.active_total = 0;
    assert!(loaded.check_invariants().is_err());
    loaded.rebuild_indexes();
    loaded.check_invariants().unwrap();
    assert!(loaded.persisted_eq(&f));
    assert_eq!(loaded.target_positions, f.target_positions);
}

#[test]
fn a_task_failing_after_cancel_fails_its_target_instead_of_retrying() {
    let mut f = fleet();
    apply(&mut f, &inventory(&["r1"]), t0()).unwrap();
    let policy = RunPolicy { max_attempts: 3, ..RunPolicy::default() };
    apply(&mut f, &run_created("run-1", &[&["r1"]], policy), t0()).unwrap();
    apply(&mut f, &FleetEvent::RunStarted { run_id: "run-1".into() }, t0()).unwrap();
    let t1 = tid("run-1", "r1");
    apply(&mut f, &FleetEvent::TargetClaimed { target_id: t1.clone(), lease_until: at(30) }, t0())
        .unwrap();
    apply(
        &mut f,
        &FleetEvent::TargetSubmitted { target_id: t1.clone(), task_id: "task-1".into() },
        t0(),
    )
    .unwrap();
    let cancel = FleetEvent::RunCancelled {
        run_id: "run-1".into(),
        initiator: "carol".into(),
        reason: None,
    };
    apply(&mut f, &cancel, at(1)).unwrap();
    let failed = FleetEvent::TaskObserved {
        task_id: "task-1".into(),
        target_id: t1.clone(),
        status: TaskStatus::Failed,
        message: "flash failed".into(),
        component_results: BTreeMap::new(),
    };
    apply(&mut f, &failed, at(2)).unwrap();
    // Attempts were left (1 of 3), but a cancelled run never dispatches again.
    assert_eq!(f.targets[&t1].status, TargetStatus::Failed);
    assert_eq!(f.runs["run-1"].counts.terminal(), 1);
    assert_eq!(f.active_total, 0);
}
