//! Embedding Steward in another daemon: a Core of the daemon's own (here a toy one that
//! completes every task at once), an inventory and a power-cycle run created through the
//! `Handle`, events followed until the run is terminal, and the outcome printed.
//!
//! Run it with `cargo run -p steward-runtime --example embedded` (add `--no-default-features` to
//! build the engine without webhook delivery and Prometheus metrics, as a lean embedder would).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use steward_proto::{
    ComponentKind, ComponentSpec, CreateRunRequest, IdempotencyKey, InventoryUpsert, Observation,
    Operation, RackSpec, RunPolicy, Selector, TaskId, TaskStatus,
};
use steward_runtime::core::{Core, CoreError, SubmitOutcome, TaskReport, TaskRequest};
use steward_runtime::{Runtime, RuntimeConfig, SystemClock};

/// The daemon's own Core: every component is ready; every task completes immediately.
#[derive(Default)]
struct InstantCore {
    components: Vec<steward_proto::ComponentId>,
    tasks: Mutex<BTreeMap<IdempotencyKey, TaskReport>>,
}

#[async_trait::async_trait]
impl Core for InstantCore {
    async fn observe(&self) -> Result<Vec<Observation>, CoreError> {
        let ready = |id: &steward_proto::ComponentId| Observation {
            component_id: id.clone(),
            controller_state: "Ready".into(),
            power_state: Some("on".into()),
            firmware_version: None,
            observed_at: None,
        };
        Ok(self.components.iter().map(ready).collect())
    }

    async fn submit(&self, request: &TaskRequest) -> Result<SubmitOutcome, CoreError> {
        let mut tasks = self.tasks.lock().map_err(|_| CoreError::Unavailable("poisoned".into()))?;
        let report = tasks.entry(request.idempotency_key.clone()).or_insert_with(|| TaskReport {
            task_id: TaskId::new(format!("task-{}", request.rack_id)),
            idempotency_key: request.idempotency_key.clone(),
            status: TaskStatus::Completed,
            message: "done".into(),
            component_results: BTreeMap::new(),
        });
        Ok(SubmitOutcome::Accepted { task_id: report.task_id.clone() })
    }

    async fn task_status(&self, task: &TaskId) -> Result<TaskReport, CoreError> {
        let tasks = self.tasks.lock().map_err(|_| CoreError::Unavailable("poisoned".into()))?;
        tasks
            .values()
            .find(|r| &r.task_id == task)
            .cloned()
            .ok_or(CoreError::NotFound { task: task.clone() })
    }

    async fn find_task(&self, key: &IdempotencyKey) -> Result<Option<TaskReport>, CoreError> {
        let tasks = self.tasks.lock().map_err(|_| CoreError::Unavailable("poisoned".into()))?;
        Ok(tasks.get(key).cloned())
    }

    async fn cancel(&self, _task: &TaskId) -> Result<(), CoreError> {
        Ok(())
    }
}

fn inventory() -> InventoryUpsert {
    let rack = |r: u32| RackSpec {
        id: format!("r{r}").into(),
        name: format!("rack {r}"),
        location: Default::default(),
        labels: Default::default(),
        components: (1..=2)
            .map(|c| ComponentSpec {
                id: format!("r{r}-c{c}").into(),
                kind: ComponentKind::Compute,
                name: format!("tray {c}"),
                manufacturer: None,
                model: None,
                serial: None,
                position: Default::default(),
                firmware_version: None,
                power_state: None,
                labels: Default::default(),
            })
            .collect(),
    };
    InventoryUpsert { racks: (1..=3).map(rack).collect() }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let inventory = inventory();
    let components =
        inventory.racks.iter().flat_map(|r| r.components.iter().map(|c| c.id.clone())).collect();
    let core = Arc::new(InstantCore { components, ..Default::default() });
    let mut config = RuntimeConfig::new(dir.path().join("steward.db"));
    config.sync_interval = Duration::from_millis(100);
    config.task_poll_interval = Duration::from_millis(100);
    config.plan_interval = Duration::from_millis(100);
    let runtime = Runtime::start(config, core, Arc::new(SystemClock)).await?;
    let handle = runtime.handle();
    let mut events = handle.subscribe();

    handle.upsert_inventory(inventory, "embedder").await?;
    let request = CreateRunRequest {
        name: Some("cycle everything".into()),
        operation: Operation::PowerCycle,
        selector: Selector { all: Some(true), ..Default::default() },
        policy: RunPolicy { max_parallel_racks: 2, ..Default::default() },
        dry_run: false,
    };
    let run = match handle.create_run(request, "embedder").await? {
        steward_runtime::CreateRunOutcome::Created(run) => run,
        steward_runtime::CreateRunOutcome::DryRun(_) => return Err("asked for a real run".into()),
    };
    println!("created {} over {} racks", run.id, run.counts.total());

    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let event = events.recv().await?;
            if event.kind == "run_finished" {
                return Ok::<_, Box<dyn std::error::Error>>(handle.run(run.id.clone()).await?);
            }
        }
    })
    .await??;
    println!(
        "run {} finished: {} ({} completed, {} failed)",
        outcome.id, outcome.status, outcome.counts.completed, outcome.counts.failed
    );
    runtime.shutdown().await;
    if outcome.status != steward_proto::RunStatus::Completed {
        return Err(format!("run did not complete: {}", outcome.status).into());
    }
    Ok(())
}
