//! A cancel is an after-commit Core call, so a crash between the commit and the call loses it,
//! and an adapter may keep a cancel flag only in memory. After a restart the engine asks Core
//! again to cancel every running task of a cancelled run: here the first process's Core drops
//! the cancel on the floor, the second one receives it, and the target ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;
use steward_proto::{
    CreateRunRequest, IdempotencyKey, Observation, Operation, RunId, RunPolicy, Selector,
    TargetStatus, TaskId,
};
use steward_runtime::core::{Core, CoreError, SubmitOutcome, TaskReport, TaskRequest};
use steward_runtime::{CreateRunOutcome, Runtime, RuntimeConfig, SharedClock, SystemClock};
use steward_sim::{LatencyRange, SimConfig, SimCore};

/// The sim Core, with every cancel recorded and, when `forward` is false, lost.
struct CancelRecorder {
    inner: SimCore,
    forward: bool,
    cancels: Arc<Mutex<Vec<TaskId>>>,
}

#[async_trait::async_trait]
impl Core for CancelRecorder {
    async fn observe(&self) -> Result<Vec<Observation>, CoreError> {
        self.inner.observe().await
    }
    async fn submit(&self, request: &TaskRequest) -> Result<SubmitOutcome, CoreError> {
        self.inner.submit(request).await
    }
    async fn task_status(&self, task: &TaskId) -> Result<TaskReport, CoreError> {
        self.inner.task_status(task).await
    }
    async fn find_task(&self, key: &IdempotencyKey) -> Result<Option<TaskReport>, CoreError> {
        self.inner.find_task(key).await
    }
    async fn cancel(&self, task: &TaskId) -> Result<(), CoreError> {
        self.cancels.lock().unwrap().push(task.clone());
        if self.forward { self.inner.cancel(task).await } else { Ok(()) }
    }
}

fn config(db: &std::path::Path) -> RuntimeConfig {
    let mut config = RuntimeConfig::new(db);
    config.plan_interval = Duration::from_millis(50);
    config.task_poll_interval = Duration::from_millis(50);
    config
}

async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_lost_with_a_crash_is_sent_again_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cancel.db");
    let clock: SharedClock = Arc::new(SystemClock);
    // Tasks that would run for ten minutes: only a cancel ends them within the test.
    let latency = LatencyRange { min_ms: 600_000, max_ms: 600_000 };
    let sim = SimConfig { racks: 1, latency, ..SimConfig::default() };
    let core = SimCore::new(sim, clock.clone()).unwrap();

    let lost = Arc::new(Mutex::new(Vec::new()));
    let first = CancelRecorder { inner: core.clone(), forward: false, cancels: lost.clone() };
    let runtime = Runtime::start(config(&db), Arc::new(first), clock.clone()).await.unwrap();
    let handle = runtime.handle();
    handle.upsert_inventory(core.inventory(), "test").await.unwrap();
    handle.observe(core.observe().await.unwrap(), "test").await.unwrap();
    let request = CreateRunRequest {
        name: None,
        operation: Operation::FirmwareUpdate { version: "2.0.0".into(), components: vec![] },
        selector: Selector { all: Some(true), ..Default::default() },
        policy: RunPolicy::default(),
        dry_run: false,
    };
    let CreateRunOutcome::Created(run) = handle.create_run(request, "test").await.unwrap() else {
        panic!("not a dry run");
    };
    let run_id: RunId = run.id.clone();
    let task = wait_for("the task to be submitted", async || {
        let targets = handle.targets(run_id.clone()).await.ok()?;
        targets.into_iter().find(|t| t.status == TargetStatus::Submitted)?.task_id
    })
    .await;
    handle.cancel_run(run_id.clone(), None, "test").await.unwrap();
    wait_for("the first cancel", async || (!lost.lock().unwrap().is_empty()).then_some(())).await;
    runtime.shutdown().await;
    assert_eq!(*lost.lock().unwrap(), vec![task.clone()], "the first process's cancel was lost");

    let resent = Arc::new(Mutex::new(Vec::new()));
    let second = CancelRecorder { inner: core.clone(), forward: true, cancels: resent.clone() };
    let runtime = Runtime::start(config(&db), Arc::new(second), clock).await.unwrap();
    let handle = runtime.handle();
    wait_for("the cancel to be sent again", async || {
        resent.lock().unwrap().contains(&task).then_some(())
    })
    .await;
    let ended = wait_for("the target to end", async || {
        let targets = handle.targets(run_id.clone()).await.ok()?;
        let target = targets.into_iter().next()?;
        target.status.is_terminal().then_some(target.status)
    })
    .await;
    assert_eq!(ended, TargetStatus::Terminated);
    runtime.shutdown().await;
}
