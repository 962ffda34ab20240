//! Store tests on real SQLite files and (feature `postgres`) a throwaway PostgreSQL: every row kind round-trips, batches are atomic, reopening
//! preserves state, event paging, outbox order and delivery bookkeeping, history order. The rows
//! production writes (through the reducer and `BatchBuilder`) are tested in `store_write_path.rs`.
#![allow(clippy::unwrap_used, missing_docs)]

use chrono::{Duration, TimeZone, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use steward_proto::{
    BlockedOperations, Component, ComponentId, ComponentKind, ComponentPosition, ComponentStatus,
    EventRecord, Gate, HistoryEntry, Hold, IdempotencyKey, Location, Operation, Phase, Rack,
    RackId, Run, RunId, RunPolicy, RunStatus, RunStatusReason, Selector, ServiceState,
    StatusCounts, Target, TargetId, TargetStatus, Task, TaskId, TaskStatus, Timestamp, Wave,
};
use steward_runtime::store::{
    Backend, ComponentRow, OutboxAck, OutboxRow, Store, StoreError, StoreOptions, Synchronous,
    WriteBatch,
};
use steward_state_machine::FleetConfig;
use support::backends::{Case, Fixture};

mod support;

/// The cases that hold on every backend, run below on SQLite and on PostgreSQL.
const CASES: &[Case] = &[
    ("every_row_kind_round_trips_through_a_reopen", every_row_kind_round_trips_through_a_reopen),
    (
        "upserts_replace_rows_and_keep_inventory_order",
        upserts_replace_rows_and_keep_inventory_order,
    ),
    ("a_failing_batch_leaves_nothing", a_failing_batch_leaves_nothing),
    ("events_after_pages_in_sequence_order", events_after_pages_in_sequence_order),
    (
        "outbox_is_ordered_by_seq_per_webhook_and_tracks_delivery",
        outbox_is_ordered_by_seq_per_webhook_and_tracks_delivery,
    ),
    ("a_parked_row_leaves_the_queue_until_requeued", a_parked_row_leaves_the_queue_until_requeued),
    ("history_is_oldest_first_per_component", history_is_oldest_first_per_component),
    ("an_empty_database_loads_an_empty_fleet", an_empty_database_loads_an_empty_fleet),
    (
        "a_component_moved_to_another_rack_goes_last_there",
        a_component_moved_to_another_rack_goes_last_there,
    ),
];

#[test]
fn row_cases_on_sqlite() {
    for (name, case) in CASES {
        eprintln!("sqlite: {name}");
        case(&Fixture::sqlite());
    }
}

#[cfg(feature = "postgres")]
#[test]
fn row_cases_on_postgres() {
    support::backends::on_postgres(CASES);
}

fn t(minutes: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("steward.db")
}

fn open(path: &Path) -> Store {
    Store::open(path, &StoreOptions::default()).unwrap()
}

fn rack(id: &str) -> Rack {
    Rack {
        id: RackId::new(id),
        name: format!("Rack {id}"),
        location: Location {
            region: Some("eu-west".into()),
            datacenter: Some("dc1".into()),
            room: None,
            row: Some("A".into()),
            position: Some("3".into()),
        },
        labels: BTreeMap::from([("pool".to_string(), "gpu".to_string())]),
    }
}

fn component(id: &str, rack: &str, kind: ComponentKind, slot: u32) -> Component {
    Component {
        id: ComponentId::new(id),
        rack_id: RackId::new(rack),
        kind,
        name: id.to_uppercase(),
        manufacturer: Some("NVIDIA".into()),
        model: None,
        serial: Some(format!("SN-{id}")),
        position: ComponentPosition { slot: Some(slot), tray_index: None },
        firmware_version: Some("1.0.0".into()),
        power_state: Some("on".into()),
        labels: BTreeMap::new(),
    }
}

fn component_row(component: Component, raw: Option<&str>) -> ComponentRow {
    let status = raw.map(|raw| ComponentStatus {
        phase: Phase::Ready,
        reason: raw.to_string(),
        blocked_operations: BlockedOperations::NONE,
    });
    ComponentRow {
        component,
        raw_state: raw.map(str::to_string),
        status,
        service_state: ServiceState::new("in_service"),
        updated_at: t(0),
    }
}

fn run(id: &str, status: RunStatus) -> Run {
    let counts = StatusCounts { pending: 1, submitted: 1, ..StatusCounts::default() };
    Run {
        rerun_of: None,
        reruns: Vec::new(),
        id: RunId::new(id),
        name: "firmware 1.2.0".into(),
        operation: Operation::FirmwareUpdate { version: "1.2.0".into(), components: vec![] },
        selector: Selector {
            racks: Some(vec![RackId::new("r1"), RackId::new("r2")]),
            ..Selector::default()
        },
        policy: RunPolicy { max_parallel_racks: 2, ..RunPolicy::default() },
        status,
        status_reason: RunStatusReason::None,
        status_message: String::new(),
        current_wave: 1,
        waves: vec![Wave {
            number: 1,
            size: 2,
            counts,
            acknowledged_failures: 0,
            opened_at: Some(t(1)),
            finished_at: None,
        }],
        counts,
        initiator: "alice".into(),
        created_at: t(0),
        started_at: Some(t(1)),
        finished_at: None,
        updated_at: t(2) + Duration::nanoseconds(123_456_789),
    }
}

fn target(run: &str, rack: &str, status: TargetStatus) -> Target {
    let run_id = RunId::new(run);
    let rack_id = RackId::new(rack);
    Target {
        hook: None,
        hooks_reported: Vec::new(),
        id: TargetId::for_rack(&run_id, &rack_id),
        run_id,
        rack_id,
        wave: 1,
        components: Arc::from(vec![ComponentId::new(format!("{rack}-c1"))]),
        status,
        attempt: 1,
        task_id: (status == TargetStatus::Submitted).then(|| TaskId::new(format!("task-{rack}"))),
        message: format!("{status}"),
        retry_after: None,
        lease_until: Some(t(3)),
        conflict_delay_seconds: 30,
        blocked_since: None,
        hold: (status == TargetStatus::Pending).then(|| Hold {
            gate: Gate::Concurrency,
            message: "2 of 2 racks in flight".into(),
            since: t(2),
            component: None,
        }),
        updated_at: t(2),
    }
}

fn task(target: &Target) -> Task {
    Task {
        id: TaskId::new(format!("task-{}", target.rack_id)),
        target_id: target.id.clone(),
        run_id: target.run_id.clone(),
        rack_id: target.rack_id.clone(),
        idempotency_key: IdempotencyKey::for_attempt(&target.run_id, &target.id, target.attempt),
        status: TaskStatus::Running,
        component_results: BTreeMap::from([(ComponentId::new("r2-c1"), TaskStatus::Running)]),
        message: "flashing".into(),
        updated_at: t(4),
    }
}

fn event(seq: u64, kind: &str) -> EventRecord {
    EventRecord {
        seq,
        at: t(seq as i64),
        kind: kind.to_string(),
        data: serde_json::json!({"kind": kind, "n": seq}),
    }
}

fn history(component: &str, from: &str, to: &str, at: Timestamp) -> HistoryEntry {
    HistoryEntry {
        component_id: ComponentId::new(component),
        from: ServiceState::new(from),
        to: ServiceState::new(to),
        at,
        initiator: "alice".into(),
        note: Some(format!("{from} to {to}")),
    }
}

fn outbox(webhook: &str, seq: u64) -> OutboxRow {
    OutboxRow {
        id: 0,
        webhook: webhook.to_string(),
        seq,
        kind: "run_status_changed".into(),
        body: format!(r#"{{"seq":{seq}}}"#),
        attempts: 0,
        next_attempt_at: t(seq as i64),
        delivered_at: None,
        last_error: None,
    }
}

/// A batch with one of everything: two racks, three components, a run with two targets (one
/// pending, one submitted with its task), history and an outbox row.
fn full_batch() -> WriteBatch {
    let pending = target("run-1", "r1", TargetStatus::Pending);
    let submitted = target("run-1", "r2", TargetStatus::Submitted);
    WriteBatch {
        events: vec![event(1, "inventory_upserted"), event(2, "run_created")],
        racks: vec![rack("r1"), rack("r2")],
        components: vec![
            // Inventory order is not id order: the load must keep inventory order per rack.
            component_row(component("r1-c2", "r1", ComponentKind::Compute, 2), Some("Ready")),
            component_row(component("r1-c1", "r1", ComponentKind::PowerShelf, 1), None),
            component_row(component("r2-c1", "r2", ComponentKind::Nvswitch, 1), Some("x")),
        ],
        runs: vec![run("run-1", RunStatus::Running)],
        targets: vec![(pending.clone(), 0), (submitted.clone(), 1)],
        tasks: vec![task(&submitted)],
        outbox_acks: Vec::new(),
        history: vec![history("r1-c1", "in_service", "maintenance", t(1))],
        outbox: vec![outbox("ops", 2)],
    }
}

fn every_row_kind_round_trips_through_a_reopen(fx: &Fixture) {
    let batch = full_batch();
    {
        let mut store = fx.open();
        store.commit(&batch).unwrap();
        drop(store);
    }
    let store = fx.open();
    let loaded = store.load(FleetConfig::default()).unwrap();
    let fleet = loaded.fleet;
    assert_eq!(loaded.last_seq, 2);

    let racks: Vec<Rack> = fleet.racks.values().cloned().collect();
    assert_eq!(racks, batch.racks);
    assert_eq!(fleet.components.len(), 3);
    for row in &batch.components {
        let entry = &fleet.components[&row.component.id];
        assert_eq!(entry.component, row.component);
        assert_eq!(entry.raw_state, row.raw_state);
        assert_eq!(entry.status, row.status);
        assert_eq!(entry.service_state, row.service_state);
        assert_eq!(entry.last_observed_at, None, "freshness is never loaded");
    }
    assert_eq!(fleet.runs[&RunId::new("run-1")], batch.runs[0]);
    for (target, _) in &batch.targets {
        assert_eq!(&fleet.targets[&target.id], target);
    }
    assert_eq!(fleet.tasks.values().cloned().collect::<Vec<_>>(), batch.tasks);

    // Indexes rebuilt from rows.
    assert_eq!(
        fleet.rack_components[&RackId::new("r1")],
        vec![ComponentId::new("r1-c2"), ComponentId::new("r1-c1")],
        "rack_components keeps inventory order"
    );
    let run_id = RunId::new("run-1");
    assert_eq!(
        fleet.run_targets[&run_id],
        vec![TargetId::new("run-1:r1"), TargetId::new("run-1:r2")]
    );
    assert_eq!(fleet.run_pending[&run_id], BTreeSet::from([(1, 0)]));
    assert_eq!(fleet.run_active[&run_id], BTreeSet::from([TargetId::new("run-1:r2")]));
    assert_eq!(fleet.rack_active[&RackId::new("r2")], BTreeSet::from([TargetId::new("run-1:r2")]));
    assert!(!fleet.rack_active.contains_key(&RackId::new("r1")));
    assert_eq!(fleet.active_total, 1);

    assert_eq!(store.events_after(0, 100).unwrap(), batch.events);
    assert_eq!(store.history(&ComponentId::new("r1-c1")).unwrap(), batch.history);
    let pending = store.outbox_pending("ops", 10).unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].id > 0);
    assert_eq!(OutboxRow { id: 0, ..pending[0].clone() }, batch.outbox[0]);
}

fn upserts_replace_rows_and_keep_inventory_order(fx: &Fixture) {
    let mut store = fx.open();
    store.commit(&full_batch()).unwrap();

    let mut done = target("run-1", "r2", TargetStatus::Completed);
    done.message = "task completed".into();
    let mut finished = run("run-1", RunStatus::Completed);
    finished.finished_at = Some(t(9));
    let mut moved =
        component_row(component("r1-c2", "r1", ComponentKind::Compute, 2), Some("Failed/x"));
    moved.service_state = ServiceState::new("maintenance");
    let mut renamed = rack("r1");
    renamed.name = "renamed".into();
    store
        .commit(&WriteBatch {
            events: vec![event(3, "task_observed")],
            racks: vec![renamed.clone()],
            components: vec![moved.clone()],
            runs: vec![finished.clone()],
            targets: vec![(done.clone(), 1)],
            ..WriteBatch::default()
        })
        .unwrap();

    let fleet = store.load(FleetConfig::default()).unwrap().fleet;
    assert_eq!(fleet.racks[&RackId::new("r1")], renamed);
    assert_eq!(fleet.runs[&RunId::new("run-1")], finished);
    assert_eq!(fleet.targets[&done.id], done);
    assert_eq!(fleet.components[&moved.component.id].raw_state.as_deref(), Some("Failed/x"));
    assert_eq!(fleet.components[&moved.component.id].service_state.as_str(), "maintenance");
    assert_eq!(
        fleet.rack_components[&RackId::new("r1")],
        vec![ComponentId::new("r1-c2"), ComponentId::new("r1-c1")],
        "an update keeps the component's place"
    );
    assert_eq!(fleet.active_total, 0);
    assert!(fleet.run_active.get(&RunId::new("run-1")).is_none_or(BTreeSet::is_empty));
    assert_eq!(store.last_seq().unwrap(), 3);
}

fn a_failing_batch_leaves_nothing(fx: &Fixture) {
    let mut store = fx.open();
    store.commit(&full_batch()).unwrap();

    // Events, a rack and history are written before the target whose run does not exist.
    let orphan = target("run-404", "r1", TargetStatus::Pending);
    let bad = WriteBatch {
        events: vec![event(3, "run_created"), event(4, "target_claimed")],
        racks: vec![rack("r9")],
        history: vec![history("r1-c1", "maintenance", "in_service", t(5))],
        targets: vec![(orphan, 0)],
        outbox: vec![outbox("ops", 3)],
        ..WriteBatch::default()
    };
    let err = store.commit(&bad).unwrap_err();
    assert!(matches!(err, StoreError::Sqlite(_) | StoreError::Postgres { .. }), "{err}");
    assert!(!err.is_retryable());

    // A reused sequence number fails the same way.
    let dup = WriteBatch { events: vec![event(2, "again")], ..WriteBatch::default() };
    assert!(store.commit(&dup).is_err());

    drop(store);
    let store = fx.open();
    assert_eq!(store.last_seq().unwrap(), 2);
    assert_eq!(store.events_after(2, 10).unwrap(), vec![]);
    let fleet = store.load(FleetConfig::default()).unwrap().fleet;
    assert!(!fleet.racks.contains_key(&RackId::new("r9")));
    assert!(!fleet.runs.contains_key(&RunId::new("run-404")));
    assert_eq!(fleet.targets.len(), 2);
    assert_eq!(store.history(&ComponentId::new("r1-c1")).unwrap().len(), 1);
    assert_eq!(store.outbox_pending("ops", 10).unwrap().len(), 1);
}

#[test]
fn reopening_with_other_options_preserves_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let mut store = open(&path);
    store.commit(&full_batch()).unwrap();
    drop(store);
    for synchronous in [Synchronous::Normal, Synchronous::Off, Synchronous::Full] {
        let store = Store::open(&path, &StoreOptions { synchronous }).unwrap();
        let loaded = store.load(FleetConfig::default()).unwrap();
        assert_eq!(loaded.last_seq, 2);
        assert_eq!(loaded.fleet.components.len(), 3);
        assert_eq!(loaded.fleet.targets.len(), 2);
        assert_eq!(loaded.fleet.tasks.len(), 1);
    }
}

#[test]
fn synchronous_option_reads_snake_case_and_defaults_to_full() {
    assert_eq!(StoreOptions::default().synchronous, Synchronous::Full);
    let opts: StoreOptions = serde_json::from_str(r#"{"synchronous":"normal"}"#).unwrap();
    assert_eq!(opts.synchronous, Synchronous::Normal);
    let opts: StoreOptions = serde_json::from_str("{}").unwrap();
    assert_eq!(opts.synchronous, Synchronous::Full);
    assert!(serde_json::from_str::<StoreOptions>(r#"{"synchronous":"FULL"}"#).is_err());
}

fn events_after_pages_in_sequence_order(fx: &Fixture) {
    let mut store = fx.open();
    assert_eq!(store.last_seq().unwrap(), 0);
    assert_eq!(store.events_after(0, 10).unwrap(), vec![]);
    for chunk in (1..=10u64).collect::<Vec<_>>().chunks(4) {
        let events = chunk.iter().map(|seq| event(*seq, "component_observed")).collect();
        store.commit(&WriteBatch { events, ..WriteBatch::default() }).unwrap();
    }
    let mut after = 0;
    let mut pages = Vec::new();
    loop {
        let page = store.events_after(after, 3).unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        pages.push(page.iter().map(|e| e.seq).collect::<Vec<_>>());
    }
    assert_eq!(pages, vec![vec![1, 2, 3], vec![4, 5, 6], vec![7, 8, 9], vec![10]]);
    assert_eq!(store.events_after(4, 1).unwrap(), vec![event(5, "component_observed")]);
    assert_eq!(store.events_after(u64::MAX, 10).unwrap(), vec![]);
    assert_eq!(store.events_after(0, 0).unwrap(), vec![]);
    assert_eq!(store.last_seq().unwrap(), 10);
}

fn outbox_is_ordered_by_seq_per_webhook_and_tracks_delivery(fx: &Fixture) {
    let mut store = fx.open();
    // Rows arrive out of sequence order and for two webhooks.
    store
        .commit(&WriteBatch {
            outbox: vec![outbox("ops", 7), outbox("audit", 5), outbox("ops", 3)],
            ..WriteBatch::default()
        })
        .unwrap();
    store.commit(&WriteBatch { outbox: vec![outbox("ops", 5)], ..WriteBatch::default() }).unwrap();

    let seqs = |store: &dyn Backend, hook: &str| -> Vec<u64> {
        store.outbox_pending(hook, 10).unwrap().iter().map(|r| r.seq).collect()
    };
    assert_eq!(seqs(store.as_ref(), "ops"), vec![3, 5, 7]);
    assert_eq!(seqs(store.as_ref(), "audit"), vec![5]);
    assert_eq!(seqs(store.as_ref(), "nobody"), Vec::<u64>::new());
    assert_eq!(store.outbox_pending("ops", 2).unwrap().len(), 2);

    let head = store.outbox_pending("ops", 1).unwrap().remove(0);
    let failed = |at, error: &str| OutboxAck::Failed {
        id: head.id,
        at: t(at - 1),
        next_attempt_at: t(at),
        error: error.to_string(),
    };
    ack(store.as_mut(), failed(30, "connection refused")).unwrap();
    ack(store.as_mut(), failed(60, "HTTP 503")).unwrap();
    let retried = store.outbox_row(head.id).unwrap().unwrap();
    assert_eq!(retried.attempts, 2);
    assert_eq!(retried.next_attempt_at, t(60));
    assert_eq!(retried.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(seqs(store.as_ref(), "ops"), vec![3, 5, 7], "a failed attempt keeps its place");

    let stats = store.webhook_stats("ops").unwrap();
    assert_eq!((stats.backlog, stats.parked), (3, 0));
    assert_eq!(stats.last_failure_at, Some(t(59)));
    assert_eq!(stats.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(stats.last_success_at, None);

    ack(store.as_mut(), OutboxAck::Delivered { id: head.id, at: t(61) }).unwrap();
    let stats = store.webhook_stats("ops").unwrap();
    assert_eq!((stats.backlog, stats.last_success_at), (2, Some(t(61))));
    assert_eq!(stats.last_error.as_deref(), Some("HTTP 503"), "the last failure stays visible");
    let delivered = store.outbox_row(head.id).unwrap().unwrap();
    assert_eq!(delivered.delivered_at, Some(t(61)));
    assert_eq!(delivered.last_error, None);
    assert_eq!(seqs(store.as_ref(), "ops"), vec![5, 7]);

    // A row can also be updated through a batch by id.
    let mut next = store.outbox_pending("ops", 1).unwrap().remove(0);
    next.delivered_at = Some(t(62));
    store.commit(&WriteBatch { outbox: vec![next], ..WriteBatch::default() }).unwrap();
    assert_eq!(seqs(store.as_ref(), "ops"), vec![7]);

    assert!(matches!(
        ack(store.as_mut(), OutboxAck::Delivered { id: 9999, at: t(1) }),
        Err(StoreError::OutboxRowNotFound { id: 9999 })
    ));
    let ghost_failure =
        OutboxAck::Failed { id: 9999, at: t(1), next_attempt_at: t(1), error: "x".to_string() };
    assert!(matches!(
        ack(store.as_mut(), ghost_failure),
        Err(StoreError::OutboxRowNotFound { id: 9999 })
    ));
    let ghost = OutboxRow { id: 9999, ..outbox("ops", 8) };
    assert!(store.commit(&WriteBatch { outbox: vec![ghost], ..WriteBatch::default() }).is_err());
    assert_eq!(seqs(store.as_ref(), "ops"), vec![7]);
}

/// Commits one webhook acknowledgement the way the reducer does: inside a batch.
fn ack(store: &mut dyn Backend, ack: OutboxAck) -> Result<(), StoreError> {
    store.commit(&WriteBatch { outbox_acks: vec![ack], ..WriteBatch::default() })
}

fn a_parked_row_leaves_the_queue_until_requeued(fx: &Fixture) {
    let mut store = fx.open();
    let rows = vec![outbox("ops", 3), outbox("ops", 4), outbox("audit", 5)];
    store.commit(&WriteBatch { outbox: rows, ..WriteBatch::default() }).unwrap();
    let head = store.outbox_pending("ops", 1).unwrap().remove(0);
    let parked = OutboxAck::Parked {
        id: head.id,
        webhook: "ops".into(),
        at: t(10),
        error: "HTTP 500 Internal Server Error".into(),
    };
    ack(store.as_mut(), parked).unwrap();
    let seqs = |store: &dyn Backend| -> Vec<u64> {
        store.outbox_pending("ops", 10).unwrap().iter().map(|r| r.seq).collect()
    };
    assert_eq!(seqs(store.as_ref()), vec![4], "a parked row no longer blocks the next one");
    let stats = store.webhook_stats("ops").unwrap();
    assert_eq!((stats.backlog, stats.parked), (1, 1));
    assert_eq!(stats.last_failure_at, Some(t(10)));
    assert_eq!(stats.last_error.as_deref(), Some("HTTP 500 Internal Server Error"));

    ack(store.as_mut(), OutboxAck::Requeued { webhook: "ops".into(), at: t(20) }).unwrap();
    assert_eq!(seqs(store.as_ref()), vec![3, 4], "the requeued row goes first again, in seq order");
    let requeued = store.outbox_row(head.id).unwrap().unwrap();
    assert_eq!((requeued.attempts, requeued.next_attempt_at), (0, t(20)));
    assert_eq!(store.webhook_stats("ops").unwrap().parked, 0);
    assert_eq!(store.webhook_stats("audit").unwrap().backlog, 1, "other webhooks untouched");
    let never = store.webhook_stats("never-used").unwrap();
    assert_eq!(never, Default::default(), "a webhook without rows has empty stats");
}

fn history_is_oldest_first_per_component(fx: &Fixture) {
    let mut store = fx.open();
    store.commit(&full_batch()).unwrap();
    let steps = [
        history("r1-c2", "in_service", "maintenance", t(10)),
        history("r1-c1", "maintenance", "firmware_update", t(11)),
        history("r1-c2", "maintenance", "rma", t(12)),
    ];
    store.commit(&WriteBatch { history: steps[..2].to_vec(), ..WriteBatch::default() }).unwrap();
    store.commit(&WriteBatch { history: steps[2..].to_vec(), ..WriteBatch::default() }).unwrap();

    let c2 = store.history(&ComponentId::new("r1-c2")).unwrap();
    assert_eq!(c2, vec![steps[0].clone(), steps[2].clone()]);
    let c1 = store.history(&ComponentId::new("r1-c1")).unwrap();
    assert_eq!(
        c1.iter().map(|h| h.to.as_str()).collect::<Vec<_>>(),
        ["maintenance", "firmware_update"]
    );
    assert_eq!(store.history(&ComponentId::new("nope")).unwrap(), vec![]);
    // History of an unknown component is refused (foreign key), with nothing written.
    let stray = history("ghost", "in_service", "maintenance", t(13));
    assert!(store.commit(&WriteBatch { history: vec![stray], ..WriteBatch::default() }).is_err());
    assert_eq!(store.history(&ComponentId::new("ghost")).unwrap(), vec![]);
}

fn an_empty_database_loads_an_empty_fleet(fx: &Fixture) {
    let store = fx.open();
    let loaded = store.load(FleetConfig::default()).unwrap();
    assert_eq!(loaded.last_seq, 0);
    assert!(loaded.fleet.racks.is_empty() && loaded.fleet.runs.is_empty());
    assert_eq!(loaded.fleet.active_total, 0);
}

fn a_component_moved_to_another_rack_goes_last_there(fx: &Fixture) {
    let mut store = fx.open();
    store.commit(&full_batch()).unwrap();
    let moved = component_row(component("r1-c2", "r2", ComponentKind::Compute, 9), Some("Ready"));
    let added = component_row(component("r1-c3", "r1", ComponentKind::Node, 3), None);
    store.commit(&WriteBatch { components: vec![moved, added], ..WriteBatch::default() }).unwrap();
    drop(store);
    let fleet = fx.open().load(FleetConfig::default()).unwrap().fleet;
    assert_eq!(
        fleet.rack_components[&RackId::new("r1")],
        vec![ComponentId::new("r1-c1"), ComponentId::new("r1-c3")]
    );
    assert_eq!(
        fleet.rack_components[&RackId::new("r2")],
        vec![ComponentId::new("r2-c1"), ComponentId::new("r1-c2")]
    );
    assert_eq!(fleet.components[&ComponentId::new("r1-c2")].component.rack_id.as_str(), "r2");
}

#[test]
fn a_read_only_store_reads_beside_the_writer_and_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let mut writer = open(&path);
    writer.commit(&full_batch()).unwrap();
    let mut reader = Store::open_read_only(&path).unwrap();
    assert_eq!(reader.last_seq().unwrap(), 2);
    writer
        .commit(&WriteBatch { events: vec![event(3, "run_started")], ..WriteBatch::default() })
        .unwrap();
    assert_eq!(reader.events_after(2, 10).unwrap(), vec![event(3, "run_started")]);
    let err = reader
        .commit(&WriteBatch { events: vec![event(4, "x")], ..WriteBatch::default() })
        .unwrap_err();
    assert!(matches!(err, StoreError::Sqlite(_)), "{err:?}");
    assert_eq!(writer.last_seq().unwrap(), 3);
}
