//! `ExecCore` driven directly (no server) with `/bin/sh` scripts and a temp database: a timeout
//! kills the command's whole process group, submissions are idempotent per key and refuse
//! unknown components and a second task on a busy rack, and after a restart a task journaled
//! as `started` whose command is gone is failed, never started again, while a `pending` one is
//! started; a stopped adapter (an HA leader stepping down) leaves its running command to the
//! next adapter on the same journal, which adopts it instead of starting it again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use steward_exec::{ExecCore, Settings};
use steward_proto::{
    ComponentId, IdempotencyKey, Operation, OperationKind, RackId, RunId, TargetId, TaskId,
    TaskStatus,
};
use steward_runtime::clock::SystemClock;
use steward_runtime::core::{Core, SubmitOutcome, TaskReport, TaskRequest};
use steward_runtime::store::StoreOptions;
use steward_runtime::store::journal::{AdapterJournal, JournalStep, JournalTask};

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    let status = std::process::Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    assert!(status.success());
    path.display().to_string()
}

/// Two racks of one compute component each; `flash` as the firmware command.
fn settings(dir: &Path, flash_body: &str, timeout: Duration) -> Settings {
    let observe = script(
        dir,
        "observe.sh",
        r#"echo '[{"component_id":"r1-c1","rack_id":"r1","kind":"compute","controller_state":"Ready"},
{"component_id":"r2-c1","rack_id":"r2","kind":"compute","controller_state":"Ready"}]'"#,
    );
    let flash = script(dir, "flash.sh", flash_body);
    Settings {
        observe: vec![observe],
        commands: vec![(OperationKind::FirmwareUpdate, vec![flash])],
        timeout,
        observe_timeout: Duration::from_secs(30),
        work_dir: None,
    }
}

async fn start(dir: &Path, settings: Settings) -> ExecCore {
    ExecCore::start(
        settings,
        &dir.join("steward.db"),
        &StoreOptions::default(),
        Arc::new(SystemClock),
    )
    .await
    .unwrap()
}

fn request(key: &str, rack: &str, components: &[&str]) -> TaskRequest {
    TaskRequest {
        idempotency_key: IdempotencyKey::new(key),
        run_id: RunId::new("run1"),
        target_id: TargetId::new(format!("run1:{rack}")),
        rack_id: RackId::new(rack),
        operation: Operation::FirmwareUpdate { version: "2.0.0".into(), components: Vec::new() },
        components: components.iter().map(|c| ComponentId::new(*c)).collect(),
    }
}

fn accepted(outcome: SubmitOutcome) -> TaskId {
    match outcome {
        SubmitOutcome::Accepted { task_id } => task_id,
        other => panic!("expected accepted, got {other:?}"),
    }
}

async fn wait_terminal(core: &ExecCore, task: &TaskId) -> TaskReport {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let report = core.task_status(task).await.unwrap();
        if report.status.is_terminal() {
            return report;
        }
        assert!(std::time::Instant::now() < deadline, "task never ended: {report:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const RESULT: &str = r#"cat > /dev/null
r=''
for c in $STEWARD_COMPONENTS; do r="$r${r:+,}\"$c\":\"completed\""; done
echo "{\"result\":{$r}}""#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_process_group_and_fails_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let body = format!("cat > /dev/null\nsleep 300 &\necho $! > {pid_file:?}\nwait");
    let core = start(dir.path(), settings(dir.path(), &body, Duration::from_secs(1))).await;
    let task = accepted(core.submit(&request("k1", "r1", &["r1-c1"])).await.unwrap());
    let report = wait_terminal(&core, &task).await;
    assert_eq!(report.status, TaskStatus::Failed);
    assert!(report.message.starts_with("timed out after 1 s"), "{report:?}");
    assert_eq!(report.component_results[&ComponentId::new("r1-c1")], TaskStatus::Failed);
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !gone_or_zombie(&pid) {
        assert!(std::time::Instant::now() < deadline, "the command's child {pid} survived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn gone_or_zombie(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_are_idempotent_checked_and_one_per_rack() {
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("go");
    let log = dir.path().join("started.log");
    let body = format!(
        "echo \"$STEWARD_TASK_KEY\" >> {log:?}\nwhile [ ! -e {gate:?} ]; do sleep 0.1; done\n{RESULT}"
    );
    let core = start(dir.path(), settings(dir.path(), &body, Duration::from_secs(120))).await;
    let first = accepted(core.submit(&request("k1", "r1", &["r1-c1"])).await.unwrap());
    let again = accepted(core.submit(&request("k1", "r1", &["r1-c1"])).await.unwrap());
    assert_eq!(first, again, "the same key is the same task");
    let busy = core.submit(&request("k2", "r1", &["r1-c1"])).await.unwrap();
    assert!(matches!(busy, SubmitOutcome::Conflict { .. }), "{busy:?}");
    let unknown = core.submit(&request("k3", "r2", &["r9-c1"])).await.unwrap();
    assert!(
        matches!(&unknown, SubmitOutcome::Rejected { message } if message.contains("never reported")),
        "{unknown:?}"
    );
    let elsewhere = core.submit(&request("k4", "r2", &["r1-c1"])).await.unwrap();
    assert!(matches!(elsewhere, SubmitOutcome::Rejected { .. }), "{elsewhere:?}");
    let mut power = request("k5", "r2", &["r2-c1"]);
    power.operation = Operation::PowerOn;
    let refused = core.submit(&power).await.unwrap();
    assert!(
        matches!(&refused, SubmitOutcome::Rejected { message } if message.contains("core.exec.power_on")),
        "{refused:?}"
    );
    std::fs::write(&gate, "").unwrap();
    let report = wait_terminal(&core, &first).await;
    assert_eq!(report.status, TaskStatus::Completed, "{report:?}");
    let found = core.find_task(&IdempotencyKey::new("k1")).await.unwrap().unwrap();
    assert_eq!(found.task_id, first);
    assert_eq!(found.component_results[&ComponentId::new("r1-c1")], TaskStatus::Completed);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "k1\n", "started once");
    // The rack is free again.
    let next = accepted(core.submit(&request("k2", "r1", &["r1-c1"])).await.unwrap());
    assert_eq!(wait_terminal(&core, &next).await.status, TaskStatus::Completed);
    assert!(core.find_task(&IdempotencyKey::new("nope")).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_started_task_is_never_started_again_and_a_pending_one_starts() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("started.log");
    let body = format!("echo \"$STEWARD_TASK_KEY\" >> {log:?}\n{RESULT}");
    let settings = settings(dir.path(), &body, Duration::from_secs(120));
    // What a crashed process left: one task committed as started (its command gone, no
    // output), one journaled but never started.
    {
        let journal =
            AdapterJournal::open(&dir.path().join("steward.db"), "exec", &StoreOptions::default())
                .unwrap();
        for (key, rack, status) in [("k-started", "r1", "started"), ("k-pending", "r2", "pending")]
        {
            let req = request(key, rack, &[&format!("{rack}-c1")]);
            let task = JournalTask {
                task_id: format!("exec-{key}"),
                idempotency_key: key.into(),
                status: status.into(),
                data: serde_json::json!({ "request": req }).to_string(),
            };
            let step = JournalStep {
                step: format!("{rack}-c1"),
                state: "pending".into(),
                data: "{}".into(),
            };
            assert!(journal.create_task(&task, &[step], "2026-01-01T00:00:00Z").unwrap());
        }
    }
    let core = start(dir.path(), settings).await;
    let started = core.find_task(&IdempotencyKey::new("k-started")).await.unwrap().unwrap();
    let report = wait_terminal(&core, &started.task_id).await;
    assert_eq!(report.status, TaskStatus::Failed);
    assert!(report.message.contains("never started twice"), "{report:?}");
    let pending = core.find_task(&IdempotencyKey::new("k-pending")).await.unwrap().unwrap();
    assert_eq!(wait_terminal(&core, &pending.task_id).await.status, TaskStatus::Completed);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "k-pending\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_adapter_leaves_its_command_to_the_next_one_which_adopts_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("started.log");
    let body = format!("echo \"$STEWARD_TASK_KEY\" >> {log:?}\nsleep 2\n{RESULT}");
    let settings = settings(dir.path(), &body, Duration::from_secs(120));
    let first = start(dir.path(), settings.clone()).await;
    let task = accepted(first.submit(&request("k1", "r1", &["r1-c1"])).await.unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !log.exists() {
        assert!(std::time::Instant::now() < deadline, "the command never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.stop();
    // Stopped: a new submission is journaled but not run here (left to the next start).
    let parked = accepted(first.submit(&request("k2", "r2", &["r2-c1"])).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = first.task_status(&parked).await.unwrap();
    assert_eq!(report.status, TaskStatus::Pending, "{report:?}");

    // The next adapter on the same journal: k1's command is watched, k2 starts.
    let second = start(dir.path(), settings).await;
    let report = wait_terminal(&second, &task).await;
    assert_eq!(report.status, TaskStatus::Completed, "{report:?}");
    assert_eq!(wait_terminal(&second, &parked).await.status, TaskStatus::Completed);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "k1\nk2\n", "each key started once");
}
