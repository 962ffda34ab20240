//! The applier: executes after-commit effects (Core submissions and cancels, site hooks) and
//! reports every outcome back to the reducer as an input. It decides nothing.

use crate::core::{Core, SubmitOutcome, TaskRequest};
use crate::hooks::HookRunner;
use crate::metrics::Metrics;
use crate::protocol::{CoreCall, ReducerInput};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use steward_proto::IdempotencyKey;
use tokio::sync::{Semaphore, mpsc};

/// Calls Core at most this many times at once.
const MAX_CONCURRENT_CORE_CALLS: usize = 64;

/// Runs until the work channel closes.
pub(crate) async fn run(
    mut work: mpsc::UnboundedReceiver<CoreCall>,
    core: Arc<dyn Core>,
    hooks: HookRunner,
    reducer: mpsc::Sender<ReducerInput>,
    metrics: Arc<Metrics>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_CORE_CALLS));
    // Keys with a submission under way: a second request for the same key (recovery racing a
    // re-claim) waits for the first's answer instead of racing it to Core.
    let in_flight: Arc<Mutex<HashSet<IdempotencyKey>>> = Arc::default();
    while let Some(item) = work.recv().await {
        if let CoreCall::RunHook(call) = item {
            // Hooks may run for minutes: they take no Core permit.
            let hooks = hooks.clone();
            let reducer = reducer.clone();
            tokio::spawn(async move { hooks.run(call, reducer).await });
            continue;
        }
        if let CoreCall::Submit { request } = &item {
            let mut keys = in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if !keys.insert(request.idempotency_key.clone()) {
                continue;
            }
        }
        let in_flight = in_flight.clone();
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let core = core.clone();
        let reducer = reducer.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            match item {
                CoreCall::Submit { request } => {
                    let key = request.idempotency_key.clone();
                    submit_if_absent(&*core, request, &reducer, &metrics).await;
                    in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&key);
                }
                CoreCall::Cancel { task_id } => {
                    let started = Instant::now();
                    if let Err(error) = core.cancel(&task_id).await {
                        tracing::warn!(%error, %task_id, "cancel failed");
                    }
                    metrics.core_call("cancel", started.elapsed());
                }
                CoreCall::RunHook(_) => {}
            }
            drop(permit);
        });
    }
}

/// Asks Core for a task under the key first, so a submission interrupted by a crash (or a
/// re-claim after an expired lease) adopts the existing task instead of submitting twice.
async fn submit_if_absent(
    core: &dyn Core,
    request: TaskRequest,
    reducer: &mpsc::Sender<ReducerInput>,
    metrics: &Metrics,
) {
    let started = Instant::now();
    let existing = core.find_task(&request.idempotency_key).await;
    metrics.core_call("find_task", started.elapsed());
    let result = match existing {
        Ok(Some(report)) => Ok(SubmitOutcome::Accepted { task_id: report.task_id }),
        Ok(None) => {
            let started = Instant::now();
            let outcome = core.submit(&request).await;
            metrics.core_call("submit", started.elapsed());
            outcome
        }
        Err(error) => Err(error),
    };
    let input = ReducerInput::SubmitResult {
        target_id: request.target_id,
        key: request.idempotency_key,
        result,
    };
    let _ = reducer.send(input).await;
}
