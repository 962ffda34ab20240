//! Replay tests (the backend cases run on SQLite and on PostgreSQL): a fleet driven through `Fleet::apply` and persisted row by row replays from its
//! event log to the same state; a tampered row shows up as a named difference; replay reads
//! a crashed (un-checkpointed) WAL file and never writes the database file.
#![allow(clippy::unwrap_used, missing_docs)]

use chrono::{Duration, TimeZone, Utc};
use std::path::Path;
use steward_proto::{
    ComponentId, ComponentKind, ComponentSpec, EventRecord, Operation, RackId, RackSpec, Run,
    RunId, RunPolicy, RunStatus, RunStatusReason, Selector, ServiceState, StatusCounts, Target,
    TargetId, TargetStatus, TaskId, TaskStatus, Timestamp, Wave,
};
use steward_runtime::store::{
    Backend, BatchBuilder, Store, StoreOptions, WriteBatch, replay_and_compare, replay_backend,
};
use support::backends::{Case, Fixture};

mod support;
use steward_state_machine::{Fleet, FleetConfig, FleetEvent};

fn t(seconds: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap() + Duration::seconds(seconds)
}

fn rack_spec(id: &str) -> RackSpec {
    let component = |suffix: &str, kind| ComponentSpec {
        id: ComponentId::new(format!("{id}-{suffix}")),
        kind,
        name: suffix.to_string(),
        manufacturer: None,
        model: None,
        serial: Some(format!("SN-{id}-{suffix}")),
        position: Default::default(),
        firmware_version: Some("1.0.0".into()),
        power_state: None,
        labels: Default::default(),
    };
    RackSpec {
        id: RackId::new(id),
        name: format!("Rack {id}"),
        location: Default::default(),
        labels: Default::default(),
        components: vec![
            component("tray1", ComponentKind::Compute),
            component("shelf", ComponentKind::PowerShelf),
        ],
    }
}

fn new_run(racks: &[&str]) -> (Run, Vec<Target>) {
    let run_id = RunId::new("run-1");
    let targets: Vec<Target> = racks
        .iter()
        .map(|rack| {
            let rack_id = RackId::new(*rack);
            Target {
                hook: None,
                hooks_reported: Vec::new(),
                id: TargetId::for_rack(&run_id, &rack_id),
                run_id: run_id.clone(),
                rack_id: rack_id.clone(),
                wave: 1,
                components: vec![ComponentId::new(format!("{rack}-tray1"))].into(),
                status: TargetStatus::Pending,
                attempt: 1,
                task_id: None,
                message: String::new(),
                retry_after: None,
                lease_until: None,
                conflict_delay_seconds: 0,
                blocked_since: None,
                hold: None,
                updated_at: t(0),
            }
        })
        .collect();
    let counts = StatusCounts { pending: targets.len() as u32, ..StatusCounts::default() };
    let run = Run {
        rerun_of: None,
        reruns: Vec::new(),
        id: run_id,
        name: "cycle".into(),
        operation: Operation::PowerCycle,
        selector: Selector { all: Some(true), ..Selector::default() },
        policy: RunPolicy { max_parallel_racks: 2, ..RunPolicy::default() },
        status: RunStatus::Pending,
        status_reason: RunStatusReason::None,
        status_message: String::new(),
        current_wave: 1,
        waves: vec![Wave {
            number: 1,
            size: targets.len() as u32,
            counts,
            acknowledged_failures: 0,
            opened_at: None,
            finished_at: None,
        }],
        counts,
        initiator: "alice".into(),
        created_at: t(0),
        started_at: None,
        finished_at: None,
        updated_at: t(0),
    };
    (run, targets)
}

fn script() -> Vec<FleetEvent> {
    let (run, targets) = new_run(&["r1", "r2", "r3"]);
    let target = |rack: &str| TargetId::new(format!("run-1:{rack}"));
    vec![
        FleetEvent::InventoryUpserted {
            initiator: String::new(),
            racks: vec![rack_spec("r1"), rack_spec("r2"), rack_spec("r3")],
        },
        FleetEvent::ComponentObserved {
            initiator: String::new(),
            component_id: ComponentId::new("r1-tray1"),
            controller_state: "Ready".into(),
            power_state: Some("on".into()),
            firmware_version: None,
            observed_at: None,
        },
        FleetEvent::ComponentObserved {
            initiator: String::new(),
            component_id: ComponentId::new("r2-tray1"),
            controller_state: "Assigned/Ready".into(),
            power_state: None,
            firmware_version: None,
            observed_at: None,
        },
        FleetEvent::ServiceStateChanged {
            component_id: ComponentId::new("r3-shelf"),
            to: ServiceState::new("maintenance"),
            initiator: "alice".into(),
            note: Some("fan swap".into()),
        },
        FleetEvent::RunCreated { run: Box::new(run), targets },
        FleetEvent::RunStarted { run_id: RunId::new("run-1") },
        FleetEvent::TargetClaimed { target_id: target("r1"), lease_until: t(100) },
        FleetEvent::TargetSubmitted { target_id: target("r1"), task_id: TaskId::new("task-1") },
        FleetEvent::TargetClaimed { target_id: target("r2"), lease_until: t(100) },
        FleetEvent::TaskObserved {
            task_id: TaskId::new("task-1"),
            target_id: target("r1"),
            status: TaskStatus::Completed,
            message: "done".into(),
            component_results: Default::default(),
        },
    ]
}

/// Applies the script like the reducer would: each accepted event and the rows its effects name
/// go into a batch (`group` events per batch), committed through `BatchBuilder`. Returns the
/// live fleet.
fn drive_grouped(store: &mut dyn Backend, events: &[FleetEvent], group: usize) -> Fleet {
    let mut fleet = Fleet::new(FleetConfig::default());
    let mut builder = BatchBuilder::new();
    for (i, event) in events.iter().enumerate() {
        let seq = i as u64 + 1;
        let at = t(seq as i64);
        let effects =
            fleet.apply(event, at).unwrap_or_else(|err| panic!("event {seq} rejected: {err}"));
        builder.event(seq, at, event).unwrap();
        builder.writes(&effects.writes, at);
        if (seq as usize).is_multiple_of(group) {
            store.commit(&std::mem::take(&mut builder).finish(&fleet).unwrap()).unwrap();
        }
    }
    if !builder.is_empty() {
        store.commit(&builder.finish(&fleet).unwrap()).unwrap();
    }
    fleet
}

fn drive(store: &mut dyn Backend, events: &[FleetEvent]) -> Fleet {
    drive_grouped(store, events, 1)
}

fn open(path: &Path) -> Store {
    Store::open(path, &StoreOptions::default()).unwrap()
}

#[test]
fn replay_of_a_persisted_run_equals_the_stored_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    let mut store = open(&path);
    let live = drive(&mut store, &script());
    let loaded = store.load(FleetConfig::default()).unwrap();
    assert!(loaded.fleet.persisted_eq(&live), "load differs from the live fleet");
    assert_eq!(loaded.last_seq, script().len() as u64);
    let history = store.history(&ComponentId::new("r3-shelf")).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!((history[0].from.as_str(), history[0].to.as_str()), ("in_service", "maintenance"));
    assert_eq!(history[0].note.as_deref(), Some("fan swap"));
    store.close().unwrap();

    let before = std::fs::read(&path).unwrap();
    let report = replay_and_compare(&path, FleetConfig::default()).unwrap();
    assert_eq!(report.events, script().len() as u64);
    assert!(report.equal, "{report}");
    assert!(report.differences.is_empty());
    assert_eq!(std::fs::read(&path).unwrap(), before, "replay wrote to the database file");
}

#[test]
fn group_commits_of_any_size_replay_equal() {
    for group in [2, 3, 64] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("steward.db");
        let mut store = open(&path);
        let live = drive_grouped(&mut store, &script(), group);
        assert!(store.load(FleetConfig::default()).unwrap().fleet.persisted_eq(&live));
        drop(store);
        let report = replay_and_compare(&path, FleetConfig::default()).unwrap();
        assert!(report.equal, "group {group}: {report}");
    }
}

#[test]
fn a_tampered_row_is_reported_by_name_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    let mut store = open(&path);
    let live = drive(&mut store, &script());
    // Roll one target row back without an event: the log and the rows now disagree.
    let id = TargetId::new("run-1:r1");
    let mut stale = live.targets[&id].clone();
    assert_eq!(stale.status, TargetStatus::Completed);
    stale.status = TargetStatus::Submitted;
    store.commit(&WriteBatch { targets: vec![(stale, 0)], ..WriteBatch::default() }).unwrap();
    drop(store);

    let report = replay_and_compare(&path, FleetConfig::default()).unwrap();
    assert!(!report.equal);
    assert!(
        report
            .differences
            .contains(&"target run-1:r1 status: replay=completed stored=submitted".to_string()),
        "{report}"
    );
    assert!(report.to_string().contains("differs"), "{report}");
}

#[test]
fn replay_reads_a_crashed_wal_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    let mut store = open(&path);
    drive(&mut store, &script());
    // Leave the connection open forever, as a killed process would: the commits sit in the
    // WAL, not yet checkpointed into the database file.
    std::mem::forget(store);
    let wal = dir.path().join("steward.db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    let before = std::fs::read(&path).unwrap();

    let report = replay_and_compare(&path, FleetConfig::default()).unwrap();
    assert_eq!(report.events, script().len() as u64);
    assert!(report.equal, "{report}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn an_empty_database_replays_equal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    open(&path).close().unwrap();
    let report = replay_and_compare(&path, FleetConfig::default()).unwrap();
    assert_eq!(
        report,
        steward_runtime::store::ReplayReport { events: 0, equal: true, differences: vec![] }
    );
}

#[test]
fn an_undecodable_or_rejected_event_is_a_difference() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    let mut store = open(&path);
    let events = vec![
        EventRecord {
            seq: 1,
            at: t(1),
            kind: "mystery".into(),
            data: serde_json::json!({"kind": "mystery"}),
        },
        EventRecord {
            seq: 2,
            at: t(2),
            kind: "run_started".into(),
            data: serde_json::json!({"kind": "run_started", "run_id": "run-404"}),
        },
    ];
    store.commit(&WriteBatch { events, ..WriteBatch::default() }).unwrap();
    drop(store);
    let report = replay_and_compare(&path, FleetConfig::default()).unwrap();
    assert_eq!(report.events, 2);
    assert!(!report.equal);
    assert!(
        report.differences[0].starts_with("event 1 (mystery): data is not a fleet event"),
        "{report}"
    );
    assert!(
        report.differences[1].starts_with("event 2 (run_started): replay rejected it"),
        "{report}"
    );
}

/// Group commits of `group` events replay to the stored rows, read through the backend.
fn replay_equals_rows(fx: &Fixture, group: usize) {
    let mut store = fx.open();
    let live = drive_grouped(store.as_mut(), &script(), group);
    assert!(store.load(FleetConfig::default()).unwrap().fleet.persisted_eq(&live));
    drop(store);
    let report = replay_backend(fx.open().as_ref(), FleetConfig::default()).unwrap();
    assert_eq!(report.events, script().len() as u64);
    assert!(report.equal, "group {group}: {report}");
}

/// A row changed without an event is a named difference on every backend.
fn tampered_row_is_named(fx: &Fixture) {
    let mut store = fx.open();
    let live = drive(store.as_mut(), &script());
    let id = TargetId::new("run-1:r1");
    let mut stale = live.targets[&id].clone();
    stale.status = TargetStatus::Submitted;
    store.commit(&WriteBatch { targets: vec![(stale, 0)], ..WriteBatch::default() }).unwrap();
    let report = replay_backend(store.as_ref(), FleetConfig::default()).unwrap();
    assert!(!report.equal);
    assert!(
        report
            .differences
            .contains(&"target run-1:r1 status: replay=completed stored=submitted".to_string()),
        "{report}"
    );
}

const CASES: &[Case] = &[
    ("replay_equals_rows, one event per batch", |fx| replay_equals_rows(fx, 1)),
    ("replay_equals_rows, batches of 3", |fx| replay_equals_rows(fx, 3)),
    ("replay_equals_rows, batches of 64", |fx| replay_equals_rows(fx, 64)),
    ("tampered_row_is_named", tampered_row_is_named),
];

#[test]
fn replay_cases_on_sqlite() {
    for (name, case) in CASES {
        eprintln!("sqlite: {name}");
        case(&Fixture::sqlite());
    }
}

#[cfg(feature = "postgres")]
#[test]
fn replay_cases_on_postgres() {
    support::backends::on_postgres(CASES);
}
