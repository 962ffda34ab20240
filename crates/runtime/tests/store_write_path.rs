//! The store's rows as production writes them: commands, Core results and plans go through the
//! real reducer (`ManualReducer`), whose batches are built by `BatchBuilder` and committed by
//! `Store::commit`; the file is then reopened and every row kind must load back to the live
//! fleet, with the event log, history and the fleet's indexes intact, and replay must agree.
#![allow(clippy::unwrap_used, missing_docs)]

use chrono::{Duration, TimeZone, Utc};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use steward_planner::PlannerConfig;
use steward_proto::{
    ComponentId, ComponentKind, ComponentSpec, CreateRunRequest, InventoryUpsert, Observation,
    Operation, RackId, RackSpec, RunId, RunPolicy, Selector, ServiceState, TargetStatus,
    TaskStatus, Timestamp,
};
use steward_runtime::core::{SubmitOutcome, TaskReport};
use steward_runtime::protocol::{Command, CoreCall, ReducerInput, Reply};
use steward_runtime::store::{Store, StoreOptions, replay_and_compare};
use steward_runtime::{ManualClock, ManualReducer, SharedClock};
use steward_state_machine::{Fleet, FleetConfig};

fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn inventory() -> InventoryUpsert {
    let component = |rack: &str, c: u32, kind| ComponentSpec {
        id: ComponentId::new(format!("{rack}-c{c}")),
        kind,
        name: format!("tray {c}"),
        manufacturer: Some("NVIDIA".into()),
        model: None,
        serial: Some(format!("SN-{rack}-{c}")),
        position: Default::default(),
        firmware_version: Some("1.0.0".into()),
        power_state: Some("on".into()),
        labels: BTreeMap::new(),
    };
    let rack = |r: &str| RackSpec {
        id: RackId::new(r),
        name: format!("Rack {r}"),
        location: Default::default(),
        labels: BTreeMap::from([("pool".to_string(), "gpu".to_string())]),
        // Inventory order is not id order: the load must keep it.
        components: vec![
            component(r, 2, ComponentKind::Compute),
            component(r, 1, ComponentKind::PowerShelf),
        ],
    };
    InventoryUpsert { racks: vec![rack("r1"), rack("r2"), rack("r3")] }
}

fn ready(ids: &[ComponentId]) -> ReducerInput {
    let observations = ids
        .iter()
        .map(|id| Observation {
            component_id: id.clone(),
            controller_state: if id.as_str().ends_with("c2") {
                "Ready".into()
            } else {
                r#"{"state":"ready"}"#.into()
            },
            power_state: Some("on".into()),
            firmware_version: None,
            observed_at: None,
        })
        .collect();
    ReducerInput::CoreObservations(observations)
}

fn command(reducer: &mut ManualReducer, command: Command) -> Reply {
    reducer.command(command).unwrap()
}

/// Drives a run over three racks through the reducer: inventory, observations, a service-state
/// change, a run with two racks in flight, submissions accepted, one task completed and one
/// failed. Returns the live fleet.
fn drive(path: &Path, clock: &ManualClock) -> Fleet {
    let shared: SharedClock = Arc::new(clock.clone());
    let mut reducer = ManualReducer::open(
        path,
        &StoreOptions::default(),
        FleetConfig::default(),
        PlannerConfig::default(),
        shared,
    )
    .unwrap();
    let initiator = "test".to_string();
    command(
        &mut reducer,
        Command::UpsertInventory { inventory: inventory(), initiator: initiator.clone() },
    );
    let ids: Vec<ComponentId> = reducer.fleet().components.keys().cloned().collect();
    reducer.process(vec![ready(&ids)]).unwrap();
    command(
        &mut reducer,
        Command::SetServiceState {
            component: ComponentId::new("r3-c2"),
            to: ServiceState::new("maintenance"),
            note: Some("swap PSU".into()),
            initiator: initiator.clone(),
        },
    );
    let request = CreateRunRequest {
        name: Some("cycle".into()),
        operation: Operation::PowerCycle,
        selector: Selector { all: Some(true), ..Default::default() },
        policy: RunPolicy { max_parallel_racks: 2, ..Default::default() },
        dry_run: false,
    };
    command(&mut reducer, Command::CreateRun { request: Box::new(request), initiator });
    clock.advance(Duration::seconds(1));
    reducer.process(vec![ready(&ids), ReducerInput::Tick]).unwrap();
    // The claims' submissions, as the applier would answer them.
    let mut reports = Vec::new();
    let mut answers = Vec::new();
    for (n, call) in reducer.take_core_calls().into_iter().enumerate() {
        let CoreCall::Submit { request } = call else { continue };
        let task_id = steward_proto::TaskId::new(format!("task-{n}"));
        let status = if n == 0 { TaskStatus::Completed } else { TaskStatus::Failed };
        reports.push((
            request.target_id.clone(),
            TaskReport {
                task_id: task_id.clone(),
                idempotency_key: request.idempotency_key.clone(),
                status,
                message: format!("{status:?}"),
                component_results: BTreeMap::new(),
            },
        ));
        answers.push(ReducerInput::SubmitResult {
            target_id: request.target_id,
            key: request.idempotency_key,
            result: Ok(SubmitOutcome::Accepted { task_id }),
        });
    }
    assert_eq!(answers.len(), 2, "two racks in flight");
    clock.advance(Duration::seconds(1));
    reducer.process(answers).unwrap();
    clock.advance(Duration::seconds(1));
    reducer.process(vec![ReducerInput::TaskReports(reports), ReducerInput::Tick]).unwrap();
    reducer.fleet().clone()
}

#[test]
fn what_the_reducer_writes_loads_back_as_the_live_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    let clock = ManualClock::new(t0());
    let live = drive(&path, &clock);
    let run = &live.runs[&RunId::new("run-1")];
    assert_eq!(run.counts.completed, 1, "{run:?}");
    assert!(live.targets.values().any(|t| t.status == TargetStatus::Submitted
        || t.status == TargetStatus::Claimed
        || t.status == TargetStatus::Pending));

    let store = Store::open(&path, &StoreOptions::default()).unwrap();
    let loaded = store.load(FleetConfig::default()).unwrap();
    assert!(loaded.fleet.persisted_eq(&live), "stored rows differ from the live fleet");
    assert_eq!(
        loaded.fleet.rack_components[&RackId::new("r1")],
        vec![ComponentId::new("r1-c2"), ComponentId::new("r1-c1")],
        "inventory order survives"
    );
    let events = store.events_after(0, 10_000).unwrap();
    assert_eq!(events.len() as u64, loaded.last_seq);
    assert!(events.windows(2).all(|w| w[0].seq + 1 == w[1].seq), "no gaps in the log");
    assert!(events.iter().all(|e| e.at >= t0()), "every event carries its batch's now");
    let history = store.history(&ComponentId::new("r3-c2")).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].to.as_str(), "maintenance");
    drop(store);

    let report = replay_and_compare(&path, FleetConfig::default()).unwrap();
    assert!(report.equal, "replay disagrees: {report:?}");
}

#[test]
fn one_batch_carries_one_now() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    let clock = ManualClock::new(t0());
    drive(&path, &clock);
    let store = Store::open(&path, &StoreOptions::default()).unwrap();
    let events = store.events_after(0, 10_000).unwrap();
    // The last batch (task reports + plan) logged several events; all carry one time.
    let last = events.last().unwrap().at;
    let in_last: Vec<_> = events.iter().filter(|e| e.at == last).collect();
    assert!(in_last.len() >= 2, "the last batch logged {} events", in_last.len());
    assert_eq!(last, t0() + Duration::seconds(3));
}
