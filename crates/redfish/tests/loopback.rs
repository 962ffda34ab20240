//! Crate-level tests of `RedfishCore` against the loopback Redfish double (`double/`): the
//! task-monitor path of a firmware update (202 + `Location`, the task Running, then Completed or
//! Exception; and a bare monitor, 202 without a body, then 204), and a cancel that lands while a step is in flight and another has not sent yet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod double;

use double::{Double, RUNNING_POLLS};
use std::sync::Arc;
use std::time::{Duration, Instant};
use steward_proto::{ComponentId, IdempotencyKey, Operation, RackId, RunId, TargetId, TaskStatus};
use steward_redfish::{RedfishConfig, RedfishCore};
use steward_runtime::clock::SystemClock;
use steward_runtime::core::{Core, SubmitOutcome, TaskReport, TaskRequest};
use steward_runtime::store::StoreOptions;

/// Starts the adapter over `endpoints` (url, kind), all in rack `r1`, with its journal in `dir`.
async fn adapter(dir: &std::path::Path, endpoints: &[(&str, &str)]) -> RedfishCore {
    let password = dir.join("password");
    std::fs::write(&password, "password\n").unwrap();
    let mut text = format!(
        "username = \"admin\"\npassword_file = {:?}\ntimeout_ms = 20000\n\
         power_settle_seconds = 60\nfirmware_timeout_seconds = 300\n\
         firmware_image_uri = \"http://repo.invalid/fw/{{kind}}/{{version}}.bin\"\n",
        password.display().to_string()
    );
    for (url, kind) in endpoints {
        text.push_str(&format!(
            "[[endpoints]]\nurl = \"{url}\"\nrack = \"r1\"\nkind = \"{kind}\"\n"
        ));
    }
    let settings =
        RedfishConfig::from_table(toml::from_str(&text).unwrap()).unwrap().validate().unwrap();
    let db = dir.join("steward.db");
    RedfishCore::start(settings, &db, &StoreOptions::default(), Arc::new(SystemClock))
        .await
        .unwrap()
}

fn request(key: &str, operation: Operation, components: &[&str]) -> TaskRequest {
    TaskRequest {
        idempotency_key: IdempotencyKey::new(key),
        run_id: RunId::new("run-1"),
        target_id: TargetId::new(format!("run-1/r1/{key}")),
        rack_id: RackId::new("r1"),
        operation,
        components: components.iter().map(|c| ComponentId::new(format!("r1-{c}"))).collect(),
    }
}

async fn submit(core: &RedfishCore, request: &TaskRequest) -> steward_proto::TaskId {
    match core.submit(request).await.unwrap() {
        SubmitOutcome::Accepted { task_id } => task_id,
        other => panic!("not accepted: {other:?}"),
    }
}

/// Polls the task until `done` holds (generous deadline for a loaded machine).
async fn wait_report(
    core: &RedfishCore,
    task: &steward_proto::TaskId,
    what: &str,
    done: impl Fn(&TaskReport) -> bool,
) -> TaskReport {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report = core.task_status(task).await.unwrap();
        if done(&report) {
            return report;
        }
        assert!(Instant::now() < deadline, "{what}: still {report:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn finished(report: &TaskReport) -> bool {
    matches!(report.status, TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Terminated)
}

fn result(report: &TaskReport, system: &str) -> TaskStatus {
    report.component_results[&ComponentId::new(format!("r1-{system}"))]
}

fn firmware(version: &str) -> Operation {
    Operation::FirmwareUpdate { version: version.into(), components: Vec::new() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_monitor_that_ends_completed_counts_once_the_version_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = Double::start(&["a"]).await;
    let core = adapter(dir.path(), &[(&bmc.url, "compute")]).await;

    let task = submit(&core, &request("k-fw-ok", firmware("2.0.0"), &["a"])).await;
    let report = wait_report(&core, &task, "firmware task", finished).await;
    assert_eq!(report.status, TaskStatus::Completed, "{report:?}");
    assert_eq!(result(&report, "a"), TaskStatus::Completed);
    assert_eq!(bmc.bios("a"), "2.0.0");
    assert_eq!(bmc.posts(), vec!["SimpleUpdate http://repo.invalid/fw/compute/2.0.0.bin"]);
    assert!(
        bmc.monitor_gets() > RUNNING_POLLS,
        "the monitor was followed through its Running answers ({} GETs)",
        bmc.monitor_gets()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_task_monitor_202_then_204_is_followed_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = Double::start(&["a"]).await;
    bmc.bare_monitors();
    let core = adapter(dir.path(), &[(&bmc.url, "compute")]).await;

    let task = submit(&core, &request("k-fw-bare", firmware("2.1.0"), &["a"])).await;
    let report = wait_report(&core, &task, "firmware task", finished).await;
    assert_eq!(report.status, TaskStatus::Completed, "{report:?}");
    assert_eq!(bmc.bios("a"), "2.1.0");
    assert_eq!(bmc.monitor_gets(), RUNNING_POLLS + 1, "polled until the 204, then no more");
    assert_eq!(bmc.posts().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_monitor_that_ends_in_exception_fails_the_step_with_the_task_message() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = Double::start(&["a"]).await;
    let core = adapter(dir.path(), &[(&bmc.url, "compute")]).await;

    let started = Instant::now();
    let task = submit(&core, &request("k-fw-bad", firmware("bad-3.0"), &["a"])).await;
    let report = wait_report(&core, &task, "firmware task", finished).await;
    assert_eq!(report.status, TaskStatus::Failed, "{report:?}");
    assert_eq!(result(&report, "a"), TaskStatus::Failed);
    assert!(report.message.contains("Exception"), "{}", report.message);
    assert!(
        report.message.contains("image bad-3.0 failed signature verification"),
        "the task's own message reaches the step: {}",
        report.message
    );
    // Decided by the task, not by waiting out firmware_timeout_seconds for a version.
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(bmc.bios("a"), "1.0.0");
    assert_eq!(bmc.posts().len(), 1, "sent once: {:?}", bmc.posts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_kind_lets_the_step_in_flight_finish_and_sends_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    // Compute systems a and b behind one BMC, power shelf p behind another, one rack: power_off
    // runs compute first, then power shelves.
    let compute = Double::start(&["a", "b"]).await;
    let shelf = Double::start(&["p"]).await;
    let core = adapter(dir.path(), &[(&compute.url, "compute"), (&shelf.url, "power_shelf")]).await;

    // b's step cannot read its system yet; a's ForceOff shows only when released.
    compute.hold_get("b", true);
    compute.hold_power("a", true);
    let task = submit(&core, &request("k-cancel", Operation::PowerOff, &["a", "b", "p"])).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while compute.posts().is_empty() {
        assert!(Instant::now() < deadline, "a's Reset never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(compute.posts(), vec!["Reset a ForceOff"]);

    core.cancel(&task).await.unwrap();
    compute.hold_get("b", false);
    let report =
        wait_report(&core, &task, "b terminated", |r| result(r, "b") == TaskStatus::Terminated)
            .await;
    assert_eq!(report.status, TaskStatus::Running, "a's step is still in flight: {report:?}");
    assert_eq!(result(&report, "a"), TaskStatus::Running);
    assert!(report.message.contains("cancelled before ForceOff was sent"), "{}", report.message);

    compute.hold_power("a", false);
    let report = wait_report(&core, &task, "task end", finished).await;
    assert_eq!(report.status, TaskStatus::Terminated, "{report:?}");
    assert_eq!(result(&report, "a"), TaskStatus::Completed, "the step in flight finished");
    assert_eq!(result(&report, "b"), TaskStatus::Terminated);
    assert_eq!(result(&report, "p"), TaskStatus::Terminated, "the next kind never started");
    assert_eq!(compute.power("a"), "Off");
    assert_eq!(compute.power("b"), "On");
    assert_eq!(shelf.power("p"), "On");
    assert_eq!(compute.posts(), vec!["Reset a ForceOff"], "nothing sent after the cancel");
    assert!(shelf.posts().is_empty(), "{:?}", shelf.posts());
}
