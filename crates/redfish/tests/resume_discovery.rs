//! A task resumed after a restart whose BMC does not answer the first discovery: the step in
//! flight waits for the system to be rediscovered (the observation polls keep syncing) and then
//! verifies what it sent, instead of failing as "not a discovered system" at once. Against the
//! loopback Redfish double; the request left once, and nothing is sent twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod double;

use double::Double;
use std::sync::Arc;
use std::time::{Duration, Instant};
use steward_proto::{ComponentId, IdempotencyKey, Operation, RackId, RunId, TargetId, TaskStatus};
use steward_redfish::{RedfishConfig, RedfishCore};
use steward_runtime::clock::SystemClock;
use steward_runtime::core::{Core, SubmitOutcome, TaskRequest};
use steward_runtime::store::StoreOptions;

/// The adapter over one BMC (compute systems of rack `r1`), its journal in `dir`.
async fn adapter(dir: &std::path::Path, bmc: &str, timeout_ms: u64) -> RedfishCore {
    let password = dir.join("password");
    std::fs::write(&password, "password\n").unwrap();
    let text = format!(
        "username = \"admin\"\npassword_file = {:?}\ntimeout_ms = {timeout_ms}\n\
         power_settle_seconds = 60\n\
         [[endpoints]]\nurl = \"{bmc}\"\nrack = \"r1\"\nkind = \"compute\"\n",
        password.display().to_string()
    );
    let settings =
        RedfishConfig::from_table(toml::from_str(&text).unwrap()).unwrap().validate().unwrap();
    let db = dir.join("steward.db");
    RedfishCore::start(settings, &db, &StoreOptions::default(), Arc::new(SystemClock))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_step_waits_for_its_bmc_to_be_rediscovered_and_sends_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = Double::start(&["a"]).await;
    let first = adapter(dir.path(), &bmc.url, 20_000).await;
    bmc.hold_power("a", true);
    let request = TaskRequest {
        idempotency_key: IdempotencyKey::new("k-resume"),
        run_id: RunId::new("run-1"),
        target_id: TargetId::new("run-1/r1/k-resume"),
        rack_id: RackId::new("r1"),
        operation: Operation::PowerOff,
        components: vec![ComponentId::new("r1-a")],
    };
    let SubmitOutcome::Accepted { task_id } = first.submit(&request).await.unwrap() else {
        panic!("not accepted");
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while bmc.posts().is_empty() {
        assert!(Instant::now() < deadline, "the ForceOff never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The process "dies" with the ForceOff sent and not yet visible.
    first.stop();

    // The BMC does not answer for the system when the next process starts.
    bmc.hold_get("a", true);
    let second = adapter(dir.path(), &bmc.url, 1_000).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let report = second.task_status(&task_id).await.unwrap();
    assert_eq!(report.status, TaskStatus::Running, "the step waits: {report:?}");

    // The BMC is back and the power change shows; the observation polls rediscover it.
    bmc.hold_get("a", false);
    bmc.hold_power("a", false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let report = loop {
        let _ = second.observe().await;
        let report = second.task_status(&task_id).await.unwrap();
        if report.status != TaskStatus::Running {
            break report;
        }
        assert!(Instant::now() < deadline, "still running: {report:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(report.status, TaskStatus::Completed, "{report:?}");
    assert_eq!(bmc.power("a"), "Off");
    assert_eq!(bmc.posts(), vec!["Reset a ForceOff"], "verified, never sent again");
}
