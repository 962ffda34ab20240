//! Tests of the simulated Core: determinism, idempotent submission, task lifecycle on a manual
//! clock, controller-state evolution (checked through the real status mapper), failures,
//! conflicts, cancellation and journal replay.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use steward_proto::{
    ComponentId, ComponentKind, IdempotencyKey, Operation, Phase, RackId, RunId, TargetId,
    TaskStatus,
};
use steward_runtime::clock::ManualClock;
use steward_runtime::core::{Core, CoreError, SubmitOutcome, TaskReport, TaskRequest};
use steward_sim::{FailureRates, LatencyRange, SimConfig, SimCore};
use steward_state_machine::status::StatusMapper;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn sim(config: SimConfig) -> (SimCore, ManualClock) {
    let clock = ManualClock::new(start());
    let core = SimCore::new(config, Arc::new(clock.clone())).unwrap();
    (core, clock)
}

fn fixed(ms: u64) -> SimConfig {
    SimConfig { latency: LatencyRange::fixed(ms), ..SimConfig::default() }
}

fn firmware() -> Operation {
    Operation::FirmwareUpdate { version: "2.0.0".to_owned(), components: vec![] }
}

/// A request for every component of `rack` in the sim's inventory.
fn request(core: &SimCore, rack: &str, op: Operation, attempt: u32) -> TaskRequest {
    let inventory = core.inventory();
    let spec = inventory.racks.iter().find(|r| r.id.as_str() == rack).unwrap();
    let run = RunId::new("run-1");
    let target = TargetId::for_rack(&run, &spec.id);
    TaskRequest {
        idempotency_key: IdempotencyKey::for_attempt(&run, &target, attempt),
        run_id: run,
        target_id: target,
        rack_id: spec.id.clone(),
        operation: op,
        components: spec.components.iter().map(|c| c.id.clone()).collect(),
    }
}

async fn accept(core: &SimCore, request: &TaskRequest) -> steward_proto::TaskId {
    match core.submit(request).await.unwrap() {
        SubmitOutcome::Accepted { task_id } => task_id,
        other => panic!("expected Accepted, got {other:?}"),
    }
}

/// Phase of every component on `rack`, by kind, derived with the default DESIGN §3.2 tables.
async fn phases(core: &SimCore, rack: &str) -> BTreeMap<ComponentKind, Vec<Phase>> {
    let mapper = StatusMapper::default();
    let inventory = core.inventory();
    let kinds: BTreeMap<ComponentId, ComponentKind> = inventory
        .racks
        .iter()
        .flat_map(|r| r.components.iter().map(|c| (c.id.clone(), c.kind)))
        .collect();
    let mut out: BTreeMap<ComponentKind, Vec<Phase>> = BTreeMap::new();
    for obs in core.observe().await.unwrap() {
        if obs.component_id.as_str().starts_with(&format!("{rack}-")) {
            let kind = kinds[&obs.component_id];
            out.entry(kind).or_default().push(mapper.derive(kind, &obs.controller_state).phase);
        }
    }
    out
}

fn all(map: &BTreeMap<ComponentKind, Vec<Phase>>, phase: Phase) -> bool {
    map.values().flatten().all(|p| *p == phase)
}

#[tokio::test]
async fn default_fleet_is_small_and_named() {
    let (core, _) = sim(SimConfig::default());
    let inventory = core.inventory();
    assert_eq!(inventory.racks.len(), 8);
    let first = &inventory.racks[0];
    assert_eq!(first.id.as_str(), "rack-001");
    assert_eq!(first.location.row.as_deref(), Some("row-a"));
    assert_eq!(first.labels.get("row").map(String::as_str), Some("row-a"));
    assert_eq!(inventory.racks[7].location.row.as_deref(), Some("row-b"));
    let ids: Vec<&str> = first.components.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "rack-001-compute-01",
            "rack-001-compute-02",
            "rack-001-compute-03",
            "rack-001-compute-04",
            "rack-001-nvswitch-01",
            "rack-001-nvswitch-02",
            "rack-001-power-shelf-01",
            "rack-001-node-01",
        ]
    );
    let observations = core.observe().await.unwrap();
    assert_eq!(observations.len(), 64);
    assert!(all(&phases(&core, "rack-001").await, Phase::Ready));
}

#[tokio::test]
async fn invalid_config_names_the_field() {
    let clock = Arc::new(ManualClock::new(start()));
    let bad = SimConfig { latency: LatencyRange { min_ms: 10, max_ms: 5 }, ..SimConfig::default() };
    let err = SimCore::new(bad, clock.clone()).unwrap_err();
    assert!(
        matches!(&err, CoreError::InvalidConfig { field, .. } if field == "core.sim.latency.min_ms"),
        "{err}"
    );
    let bad = SimConfig { conflict_rate: 1.5, ..SimConfig::default() };
    let err = SimCore::new(bad, clock).unwrap_err();
    assert!(err.to_string().contains("conflict_rate"), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn same_seed_and_calls_give_same_reports() {
    let config = SimConfig {
        seed: 42,
        latency: LatencyRange { min_ms: 100, max_ms: 10_000 },
        failure_rate: FailureRates::all(0.4),
        conflict_rate: 0.2,
        ..SimConfig::default()
    };
    let mut transcripts = Vec::new();
    for _ in 0..2 {
        let (core, clock) = sim(config.clone());
        let mut transcript = Vec::new();
        for step in 0..40u32 {
            let rack = format!("rack-{:03}", step % 8 + 1);
            let req = request(&core, &rack, firmware(), step / 8 + 1);
            transcript.push(format!("{:?}", core.submit(&req).await.unwrap()));
            clock.advance(Duration::milliseconds(1_500));
            if let Some(report) = core.find_task(&req.idempotency_key).await.unwrap() {
                transcript.push(format!("{report:?}"));
            }
            transcript.push(format!("{:?}", core.observe().await.unwrap()));
        }
        transcripts.push(transcript);
    }
    assert_eq!(transcripts[0], transcripts[1]);
    // The draws did something: some conflicts and some failures happened.
    let text = transcripts[0].join("\n");
    assert!(text.contains("Conflict"), "no conflict drawn");
    assert!(text.contains("status: Failed"), "no failure drawn");
}

#[tokio::test]
async fn outcomes_do_not_depend_on_interleaving() {
    let config = SimConfig {
        seed: 7,
        latency: LatencyRange { min_ms: 0, max_ms: 5_000 },
        failure_rate: FailureRates::all(0.5),
        ..SimConfig::default()
    };
    let (a, _) = sim(config.clone());
    let (b, _) = sim(config);
    let racks: Vec<String> = (1..=8).map(|i| format!("rack-{i:03}")).collect();
    let mut forward = BTreeMap::new();
    for rack in &racks {
        let req = request(&a, rack, firmware(), 1);
        forward.insert(
            rack.clone(),
            (accept(&a, &req).await, a.find_task(&req.idempotency_key).await.unwrap().unwrap()),
        );
    }
    for rack in racks.iter().rev() {
        let req = request(&b, rack, firmware(), 1);
        let task = accept(&b, &req).await;
        let report = b.find_task(&req.idempotency_key).await.unwrap().unwrap();
        assert_eq!(forward[rack], (task, report), "{rack} differs with the call order reversed");
    }
}

#[tokio::test]
async fn duplicate_submit_returns_the_existing_task_and_counts() {
    let (core, _) = sim(fixed(1_000));
    let req = request(&core, "rack-002", firmware(), 1);
    let first = accept(&core, &req).await;
    let second = accept(&core, &req).await;
    assert_eq!(first, second);
    assert_eq!(core.submissions(&req.idempotency_key), 2);
    assert_eq!(core.max_submissions_per_key(), 2);
    assert_eq!(core.duplicate_submits(), 1);
    assert_eq!(core.task_count(), 1);
    let other = request(&core, "rack-003", firmware(), 1);
    assert_eq!(core.submissions(&other.idempotency_key), 0);
}

#[tokio::test]
async fn task_goes_pending_running_completed_on_the_clock() {
    let (core, clock) = sim(fixed(10_000));
    let req = request(&core, "rack-001", Operation::PowerCycle, 1);
    let task = accept(&core, &req).await;
    let status =
        |r: TaskReport| (r.status, r.component_results.values().copied().collect::<Vec<_>>());
    let report = core.task_status(&task).await.unwrap();
    assert_eq!(report.status, TaskStatus::Pending);
    assert_eq!(report.idempotency_key, req.idempotency_key);
    clock.advance(Duration::milliseconds(1_000));
    assert_eq!(core.task_status(&task).await.unwrap().status, TaskStatus::Running);
    clock.advance(Duration::milliseconds(8_999));
    assert_eq!(core.task_status(&task).await.unwrap().status, TaskStatus::Running);
    clock.advance(Duration::milliseconds(1));
    let (done, results) = status(core.task_status(&task).await.unwrap());
    assert_eq!(done, TaskStatus::Completed);
    assert_eq!(results.len(), 8);
    assert!(results.iter().all(|s| *s == TaskStatus::Completed));
    let missing = core.task_status(&steward_proto::TaskId::new("task-nope")).await.unwrap_err();
    assert!(matches!(missing, CoreError::NotFound { .. }));
}

#[tokio::test]
async fn firmware_moves_components_through_non_ready_and_back() {
    let (core, clock) = sim(fixed(10_000));
    let req = request(&core, "rack-004", firmware(), 1);
    accept(&core, &req).await;
    clock.advance(Duration::milliseconds(2_000));
    let during = phases(&core, "rack-004").await;
    assert!(during[&ComponentKind::Compute].iter().all(|p| *p == Phase::InUse), "{during:?}");
    assert!(during.values().flatten().all(|p| *p != Phase::Ready), "{during:?}");
    let compute = ComponentId::new("rack-004-compute-01");
    assert_eq!(core.controller_state(&compute).unwrap(), "Reprovisioning/FirmwareUpdate");
    clock.advance(Duration::milliseconds(6_000));
    let late = phases(&core, "rack-004").await;
    assert!(late[&ComponentKind::Compute].iter().all(|p| *p == Phase::Initializing), "{late:?}");
    // Another rack is untouched meanwhile.
    assert!(all(&phases(&core, "rack-005").await, Phase::Ready));
    clock.advance(Duration::milliseconds(2_000));
    assert!(all(&phases(&core, "rack-004").await, Phase::Ready));
    let observations = core.observe().await.unwrap();
    for obs in observations.iter().filter(|o| o.component_id.as_str().starts_with("rack-004-")) {
        assert_eq!(obs.firmware_version.as_deref(), Some("2.0.0"), "{}", obs.component_id);
    }
    let untouched = observations.iter().find(|o| o.component_id.as_str() == "rack-005-compute-01");
    assert_eq!(untouched.unwrap().firmware_version.as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn firmware_narrowed_to_kinds_touches_only_those() {
    let (core, clock) = sim(fixed(1_000));
    let op = Operation::FirmwareUpdate {
        version: "3.1.0".to_owned(),
        components: vec![ComponentKind::Nvswitch],
    };
    let req = request(&core, "rack-001", op, 1);
    accept(&core, &req).await;
    clock.advance(Duration::milliseconds(500));
    let during = phases(&core, "rack-001").await;
    assert!(during[&ComponentKind::Compute].iter().all(|p| *p == Phase::Ready));
    assert!(during[&ComponentKind::Nvswitch].iter().all(|p| *p != Phase::Ready));
    clock.advance(Duration::milliseconds(500));
    for obs in core.observe().await.unwrap() {
        if obs.component_id.as_str().starts_with("rack-001-nvswitch") {
            assert_eq!(obs.firmware_version.as_deref(), Some("3.1.0"));
        } else if obs.component_id.as_str().starts_with("rack-001-") {
            assert_eq!(obs.firmware_version.as_deref(), Some("1.0.0"));
        }
    }
}

#[tokio::test]
async fn failed_firmware_leaves_compute_failed() {
    let config = SimConfig { failure_rate: FailureRates::all(1.0), ..fixed(1_000) };
    let (core, clock) = sim(config);
    let req = request(&core, "rack-001", firmware(), 1);
    let task = accept(&core, &req).await;
    clock.advance(Duration::milliseconds(1_000));
    let report = core.task_status(&task).await.unwrap();
    assert_eq!(report.status, TaskStatus::Failed);
    assert!(report.message.contains("failed on"), "{}", report.message);
    let failed: Vec<&ComponentId> = report
        .component_results
        .iter()
        .filter(|(_, s)| **s == TaskStatus::Failed)
        .map(|(c, _)| c)
        .collect();
    assert!(!failed.is_empty());
    assert!(
        report
            .component_results
            .values()
            .all(|s| matches!(s, TaskStatus::Failed | TaskStatus::Completed))
    );
    let mapper = StatusMapper::default();
    for obs in core.observe().await.unwrap() {
        if !failed.contains(&&obs.component_id) {
            continue;
        }
        if obs.component_id.as_str().contains("-compute-") {
            assert_eq!(obs.controller_state, "Failed/FirmwareUpdate");
            assert_eq!(
                mapper.derive(ComponentKind::Compute, &obs.controller_state).phase,
                Phase::Error
            );
        }
        assert_eq!(
            obs.firmware_version.as_deref(),
            Some("1.0.0"),
            "a failed update keeps the old version"
        );
    }
}

#[tokio::test]
async fn injected_failures_hit_named_racks_and_next_tasks() {
    let (core, clock) = sim(fixed(0));
    core.inject_failures([RackId::new("rack-002")]);
    core.fail_next(1);
    let a = accept(&core, &request(&core, "rack-001", Operation::PowerOn, 1)).await; // fail_next
    let b = accept(&core, &request(&core, "rack-002", Operation::PowerOn, 1)).await; // rack
    let c = accept(&core, &request(&core, "rack-003", Operation::PowerOn, 1)).await;
    clock.advance(Duration::milliseconds(1));
    assert_eq!(core.task_status(&a).await.unwrap().status, TaskStatus::Failed);
    assert_eq!(core.task_status(&b).await.unwrap().status, TaskStatus::Failed);
    assert_eq!(core.task_status(&c).await.unwrap().status, TaskStatus::Completed);
    core.clear_injected_failures();
    // rack-002 is free again (its task finished) and no longer fails.
    let d = accept(&core, &request(&core, "rack-002", Operation::PowerOn, 2)).await;
    assert_eq!(core.task_status(&d).await.unwrap().status, TaskStatus::Completed);
}

#[tokio::test]
async fn failed_components_recover_when_configured() {
    let config = SimConfig {
        failure_rate: FailureRates::all(1.0),
        recover_after_ms: Some(5_000),
        ..fixed(1_000)
    };
    let (core, clock) = sim(config);
    accept(&core, &request(&core, "rack-001", Operation::PowerCycle, 1)).await;
    clock.advance(Duration::milliseconds(1_000));
    assert!(phases(&core, "rack-001").await.values().flatten().any(|p| *p == Phase::Error));
    clock.advance(Duration::milliseconds(5_000));
    assert!(all(&phases(&core, "rack-001").await, Phase::Ready));
}

#[tokio::test]
async fn conflict_rate_one_always_conflicts_but_counts() {
    let config = SimConfig { conflict_rate: 1.0, ..fixed(1_000) };
    let (core, _) = sim(config);
    let req = request(&core, "rack-001", firmware(), 1);
    for _ in 0..3 {
        let outcome = core.submit(&req).await.unwrap();
        assert!(
            matches!(&outcome, SubmitOutcome::Conflict { message } if message.contains("rack-001")),
            "{outcome:?}"
        );
    }
    assert_eq!(core.submissions(&req.idempotency_key), 3);
    assert_eq!(core.task_count(), 0);
    assert_eq!(core.find_task(&req.idempotency_key).await.unwrap(), None);
}

#[tokio::test]
async fn busy_rack_conflicts_until_its_task_ends() {
    let (core, clock) = sim(fixed(1_000));
    let first = request(&core, "rack-001", firmware(), 1);
    accept(&core, &first).await;
    let second = request(&core, "rack-001", Operation::PowerCycle, 2);
    let outcome = core.submit(&second).await.unwrap();
    assert!(
        matches!(&outcome, SubmitOutcome::Conflict { message } if message.contains("unfinished task")),
        "{outcome:?}"
    );
    clock.advance(Duration::milliseconds(1_000));
    accept(&core, &second).await;
    assert_eq!(core.submissions(&second.idempotency_key), 2);
}

#[tokio::test]
async fn bad_requests_are_rejected() {
    let (core, _) = sim(fixed(1_000));
    let mut req = request(&core, "rack-001", firmware(), 1);
    req.components.push(ComponentId::new("rack-002-compute-01"));
    let outcome = core.submit(&req).await.unwrap();
    assert!(
        matches!(&outcome, SubmitOutcome::Rejected { message } if message.contains("rack-002-compute-01 is on rack rack-002")),
        "{outcome:?}"
    );
    req.components.clear();
    assert!(matches!(core.submit(&req).await.unwrap(), SubmitOutcome::Rejected { .. }));
    req.rack_id = RackId::new("rack-999");
    let outcome = core.submit(&req).await.unwrap();
    assert!(
        matches!(&outcome, SubmitOutcome::Rejected { message } if message.contains("rack-999")),
        "{outcome:?}"
    );
    assert_eq!(core.submissions(&req.idempotency_key), 3);
    assert_eq!(core.task_count(), 0);
}

#[tokio::test]
async fn cancel_terminates_and_restores_ready() {
    let (core, clock) = sim(fixed(10_000));
    let req = request(&core, "rack-001", firmware(), 1);
    let task = accept(&core, &req).await;
    clock.advance(Duration::milliseconds(3_000));
    assert!(!all(&phases(&core, "rack-001").await, Phase::Ready));
    core.cancel(&task).await.unwrap();
    let report = core.task_status(&task).await.unwrap();
    assert_eq!(report.status, TaskStatus::Terminated);
    assert!(report.component_results.values().all(|s| *s == TaskStatus::Terminated));
    assert!(all(&phases(&core, "rack-001").await, Phase::Ready));
    clock.advance(Duration::milliseconds(20_000));
    assert_eq!(core.task_status(&task).await.unwrap().status, TaskStatus::Terminated);
    for obs in core.observe().await.unwrap() {
        assert_eq!(obs.firmware_version.as_deref(), Some("1.0.0"));
    }
    // Cancelling again, or cancelling a finished task, is a no-op.
    core.cancel(&task).await.unwrap();
    let other = accept(&core, &request(&core, "rack-002", firmware(), 1)).await;
    clock.advance(Duration::milliseconds(10_000));
    core.cancel(&other).await.unwrap();
    assert_eq!(core.task_status(&other).await.unwrap().status, TaskStatus::Completed);
    let missing = core.cancel(&steward_proto::TaskId::new("task-nope")).await.unwrap_err();
    assert!(matches!(missing, CoreError::NotFound { .. }));
}

#[tokio::test]
async fn find_task_by_key() {
    let (core, _) = sim(fixed(1_000));
    let req = request(&core, "rack-006", firmware(), 3);
    assert_eq!(core.find_task(&req.idempotency_key).await.unwrap(), None);
    let task = accept(&core, &req).await;
    let found = core.find_task(&req.idempotency_key).await.unwrap().unwrap();
    assert_eq!(found.task_id, task);
    assert_eq!(found.idempotency_key, req.idempotency_key);
    assert_eq!(found.component_results.len(), req.components.len());
    // Looking up does not count as a submission.
    assert_eq!(core.submissions(&req.idempotency_key), 1);
}

#[tokio::test]
async fn set_controller_state_hook() {
    let (core, _) = sim(SimConfig::default());
    let compute = ComponentId::new("rack-003-compute-02");
    core.set_controller_state(&compute, "Assigned/Ready").unwrap();
    let obs = core.observe().await.unwrap();
    let found = obs.iter().find(|o| o.component_id == compute).unwrap();
    assert_eq!(found.controller_state, "Assigned/Ready");
    let err = core.set_controller_state(&ComponentId::new("nope"), "Ready").unwrap_err();
    assert!(matches!(err, CoreError::UnknownComponent { .. }));
}

#[tokio::test]
async fn journal_restores_tasks_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim-journal.jsonl");
    let config = SimConfig {
        journal: Some(path.clone()),
        latency: LatencyRange { min_ms: 5_000, max_ms: 20_000 },
        failure_rate: FailureRates::all(0.3),
        ..SimConfig::default()
    };
    let clock = ManualClock::new(start());
    let first = SimCore::new(config.clone(), Arc::new(clock.clone())).unwrap();
    let mut keys = Vec::new();
    for i in 1..=6 {
        let req = request(&first, &format!("rack-{i:03}"), firmware(), 1);
        accept(&first, &req).await;
        keys.push(req.idempotency_key.clone());
    }
    let dup = request(&first, "rack-001", firmware(), 1);
    accept(&first, &dup).await;
    let cancelled = first.find_task(&keys[5]).await.unwrap().unwrap().task_id;
    first.cancel(&cancelled).await.unwrap();
    first
        .set_controller_state(&ComponentId::new("rack-008-node-01"), r#"{"state":"error"}"#)
        .unwrap();
    clock.advance(Duration::milliseconds(12_000));
    let before_reports: Vec<TaskReport> = {
        let mut v = Vec::new();
        for key in &keys {
            v.push(first.find_task(key).await.unwrap().unwrap());
        }
        v
    };
    let before_obs = first.observe().await.unwrap();
    assert!(before_reports.iter().any(|r| !r.status.is_terminal()), "want an in-flight task");
    assert!(before_reports.iter().any(|r| r.status.is_terminal()), "want a finished task");
    drop(first);

    // A restarted process on the same journal and clock sees the same world.
    let second = SimCore::new(config.clone(), Arc::new(clock.clone())).unwrap();
    for (key, before) in keys.iter().zip(&before_reports) {
        assert_eq!(&second.find_task(key).await.unwrap().unwrap(), before);
    }
    assert_eq!(second.observe().await.unwrap(), before_obs);
    assert_eq!(second.submissions(&keys[0]), 2);
    assert_eq!(second.duplicate_submits(), 1);
    assert_eq!(second.max_submissions_per_key(), 2);
    // Resubmitting after the restart still finds the old task, and in-flight tasks resume.
    let again = accept(&second, &request(&second, "rack-002", firmware(), 1)).await;
    assert_eq!(again, before_reports[1].task_id);
    assert_eq!(second.submissions(&keys[1]), 2);
    clock.advance(Duration::milliseconds(20_000));
    for key in &keys {
        assert!(second.find_task(key).await.unwrap().unwrap().status.is_terminal());
    }
    let after = SimCore::new(config, Arc::new(clock.clone())).unwrap();
    assert_eq!(after.observe().await.unwrap(), second.observe().await.unwrap());
}

#[tokio::test]
async fn journal_drops_a_torn_last_line_and_rejects_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let config = SimConfig { journal: Some(path.clone()), ..fixed(1_000) };
    let clock = Arc::new(ManualClock::new(start()));
    let core = SimCore::new(config.clone(), clock.clone()).unwrap();
    let req = request(&core, "rack-001", firmware(), 1);
    let task = accept(&core, &req).await;
    drop(core);
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{good}{{\"kind\":\"submitted\",\"at\"")).unwrap();
    let core = SimCore::new(config.clone(), clock.clone()).unwrap();
    assert_eq!(core.find_task(&req.idempotency_key).await.unwrap().unwrap().task_id, task);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), good, "torn line dropped");
    // New appends after recovery start on a clean line.
    accept(&core, &request(&core, "rack-002", firmware(), 1)).await;
    drop(core);
    assert_eq!(SimCore::new(config.clone(), clock.clone()).unwrap().task_count(), 2);

    std::fs::write(&path, "not json\n").unwrap();
    let err = SimCore::new(config, clock).unwrap_err();
    assert!(
        matches!(&err, CoreError::Journal { message, .. } if message.contains("line 1")),
        "{err}"
    );
}

#[tokio::test]
async fn zero_latency_tasks_finish_at_once() {
    let (core, _) = sim(fixed(0));
    let task = accept(&core, &request(&core, "rack-001", firmware(), 1)).await;
    assert_eq!(core.task_status(&task).await.unwrap().status, TaskStatus::Completed);
    // The rack is immediately free again.
    accept(&core, &request(&core, "rack-001", Operation::PowerOff, 2)).await;
    let off = core.observe().await.unwrap();
    assert!(
        off.iter()
            .filter(|o| o.component_id.as_str().starts_with("rack-001-"))
            .all(|o| o.power_state.as_deref() == Some("off"))
    );
}

#[test]
fn config_reads_from_toml_with_defaults() {
    let text = r#"
        seed = 9
        racks = 20
        rows = 4
        conflict_rate = 0.1
        [latency]
        min_ms = 0
        max_ms = 50
        [failure_rate]
        firmware_update = 0.05
    "#;
    let config: SimConfig = toml::from_str(text).unwrap();
    assert_eq!(config.seed, 9);
    assert_eq!(config.racks, 20);
    assert_eq!(config.compute_per_rack, 4);
    assert_eq!(config.latency, LatencyRange { min_ms: 0, max_ms: 50 });
    assert_eq!(config.failure_rate.get(steward_proto::OperationKind::FirmwareUpdate), 0.05);
    assert_eq!(config.failure_rate.power_on, 0.0);
    assert!(toml::from_str::<SimConfig>("rackz = 3").is_err(), "unknown fields are rejected");
}
