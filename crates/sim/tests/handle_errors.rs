//! Bad input through the embedding `Handle` gets a typed error and changes nothing: unknown ids,
//! illegal transitions (with the allowed targets), invalid policies (every field path), and a
//! database file that is corrupt or from a newer schema (refused, file untouched).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use steward_proto::{
    ComponentId, CreateRunRequest, FailureRate, Operation, RunId, RunPolicy, SafetyGate, Selector,
    ServiceState, WaveSpec,
};
use steward_runtime::store::StoreError;
use steward_runtime::{CommandError, Runtime, RuntimeConfig, StartError, SystemClock};
use steward_sim::{SimConfig, SimCore};

async fn started(dir: &std::path::Path) -> (Runtime, SimCore) {
    let clock = Arc::new(SystemClock);
    let core = SimCore::new(SimConfig { racks: 2, ..SimConfig::default() }, clock.clone()).unwrap();
    let runtime =
        Runtime::start(RuntimeConfig::new(dir.join("s.db")), Arc::new(core.clone()), clock)
            .await
            .unwrap();
    runtime.handle().upsert_inventory(core.inventory(), "test").await.unwrap();
    (runtime, core)
}

fn firmware(policy: RunPolicy) -> CreateRunRequest {
    CreateRunRequest {
        name: None,
        operation: Operation::FirmwareUpdate { version: "2".into(), components: vec![] },
        selector: Selector { all: Some(true), ..Default::default() },
        policy,
        dry_run: false,
    }
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, _) = started(dir.path()).await;
    let handle = runtime.handle();
    let missing = handle.component(ComponentId::new("nope")).await.unwrap_err();
    assert_eq!(missing, CommandError::NotFound { what: "component".into(), id: "nope".into() });
    let missing = handle.pause_run(RunId::new("run-404"), None, "t").await.unwrap_err();
    assert!(
        matches!(missing, CommandError::NotFound { ref what, .. } if what == "run"),
        "{missing:?}"
    );
    let missing = handle.history(ComponentId::new("nope")).await.unwrap_err();
    assert!(matches!(missing, CommandError::NotFound { .. }));
    let missing = handle
        .set_service_state(ComponentId::new("nope"), ServiceState::new("maintenance"), None, "t")
        .await
        .unwrap_err();
    assert!(matches!(missing, CommandError::NotFound { .. }), "{missing:?}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn illegal_service_transition_names_the_allowed_states_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, core) = started(dir.path()).await;
    let handle = runtime.handle();
    let component = core.inventory().racks[0].components[0].id.clone();
    let error = handle
        .set_service_state(component.clone(), ServiceState::new("rma"), None, "alice")
        .await
        .unwrap_err();
    match &error {
        CommandError::IllegalTransition { message, allowed } => {
            assert_eq!(allowed, &vec!["maintenance".to_string()]);
            assert!(message.contains("in_service") && message.contains("rma"), "{message}");
        }
        other => panic!("expected an illegal transition, got {other:?}"),
    }
    let view = handle.component(component.clone()).await.unwrap();
    assert_eq!(view.service_state.as_str(), "in_service");
    assert!(handle.history(component).await.unwrap().is_empty());
    runtime.shutdown().await;
}

#[tokio::test]
async fn invalid_policy_reports_every_field_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, _) = started(dir.path()).await;
    let handle = runtime.handle();
    let policy = RunPolicy {
        max_parallel_racks: 0,
        waves: WaveSpec::Percentage(vec![50, 40]),
        safety_gates: vec![SafetyGate {
            failure_rate: Some(FailureRate { percent: 150.0 }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let error = handle.create_run(firmware(policy), "alice").await.unwrap_err();
    let CommandError::Invalid(errors) = error else { panic!("expected invalid, got {error:?}") };
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"policy.max_parallel_racks"), "{fields:?}");
    assert!(fields.contains(&"policy.waves.percentage"), "{fields:?}");
    assert!(fields.contains(&"policy.safety_gates[0].failure_rate.percent"), "{fields:?}");
    assert!(handle.runs().await.unwrap().is_empty());
    runtime.shutdown().await;
}

#[tokio::test]
async fn illegal_run_transitions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, _) = started(dir.path()).await;
    let handle = runtime.handle();
    let run = match handle.create_run(firmware(RunPolicy::default()), "alice").await.unwrap() {
        steward_runtime::CreateRunOutcome::Created(run) => run,
        other => panic!("{other:?}"),
    };
    let error = handle.resume_run(run.id.clone(), "alice").await.unwrap_err();
    assert!(matches!(error, CommandError::IllegalTransition { .. }), "{error:?}");
    handle.cancel_run(run.id.clone(), None, "alice").await.unwrap();
    let error = handle.pause_run(run.id.clone(), None, "alice").await.unwrap_err();
    match error {
        CommandError::IllegalTransition { message, allowed } => {
            assert!(allowed.is_empty(), "a cancelled run allows nothing: {allowed:?}");
            assert!(message.contains("cancelled"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    runtime.shutdown().await;
}

fn start_error(path: &std::path::Path) -> StartError {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let clock = Arc::new(SystemClock);
        let core = SimCore::new(SimConfig::default(), clock.clone()).unwrap();
        Runtime::start(RuntimeConfig::new(path), Arc::new(core), clock).await.unwrap_err()
    })
}

#[test]
fn corrupt_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let error = start_error(&path);
    assert!(matches!(error, StartError::Store(StoreError::Corrupt { .. })), "{error:?}");
    assert!(error.to_string().contains("garbage.db"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.execute_batch("CREATE TABLE t(x); PRAGMA user_version = 999;").unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let error = start_error(&path);
    assert!(matches!(error, StartError::Store(StoreError::SchemaTooNew { .. })), "{error:?}");
    assert!(error.to_string().contains("999"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}
