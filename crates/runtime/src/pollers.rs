//! Core pollers: inventory sync (raw controller states) and task status. They only read Core
//! and send what they saw to the reducer; the reducer never awaits Core.

use crate::core::Core;
use crate::handle::Handle;
use crate::metrics::Metrics;
use crate::protocol::{Query, QueryReply, ReducerInput};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Observations per reducer input during an inventory sync.
const OBSERVATION_SLICE: usize = 1000;

/// Syncs every component's raw state from Core every `interval`.
pub(crate) async fn inventory_sync(
    handle: Handle,
    core: Arc<dyn Core>,
    interval: Duration,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut ticker = delayed_interval(interval);
    while next_tick(&mut ticker, &stop).await {
        let started = Instant::now();
        let observed = core.observe().await;
        metrics.core_call("observe", started.elapsed());
        match observed {
            Ok(observations) => {
                // Slices keep one sync of a large fleet from becoming one giant batch that
                // commands queue behind.
                for slice in observations.chunks(OBSERVATION_SLICE) {
                    let input = ReducerInput::CoreObservations(slice.to_vec());
                    if handle.inputs.send(input).await.is_err() {
                        return;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "inventory sync failed"),
        }
    }
}

/// Polls the status of every submitted task every `interval`.
pub(crate) async fn task_status(
    handle: Handle,
    core: Arc<dyn Core>,
    interval: Duration,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut ticker = delayed_interval(interval);
    while next_tick(&mut ticker, &stop).await {
        let (reply, answer) = oneshot::channel();
        if handle
            .inputs
            .send(ReducerInput::Query { query: Query::SubmittedTasks, reply })
            .await
            .is_err()
        {
            break;
        }
        let Ok(Ok(QueryReply::SubmittedTasks(tasks))) = answer.await else { break };
        let mut reports = Vec::with_capacity(tasks.len());
        for (task, target) in tasks {
            let started = Instant::now();
            let report = core.task_status(&task).await;
            metrics.core_call("task_status", started.elapsed());
            match report {
                Ok(report) => reports.push((target, report)),
                Err(error) => tracing::debug!(%error, %task, "task status poll failed"),
            }
        }
        if !reports.is_empty()
            && handle.inputs.send(ReducerInput::TaskReports(reports)).await.is_err()
        {
            break;
        }
    }
}

/// Sends the reducer a planning tick every `interval`.
pub(crate) async fn ticker(handle: Handle, interval: Duration, stop: CancellationToken) {
    let mut ticker = delayed_interval(interval);
    while next_tick(&mut ticker, &stop).await {
        if handle.inputs.send(ReducerInput::Tick).await.is_err() {
            break;
        }
    }
}

/// An interval that delays (rather than bursts) after a slow iteration.
fn delayed_interval(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// Waits for the next tick; `false` once `stop` is cancelled.
async fn next_tick(interval: &mut tokio::time::Interval, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = interval.tick() => true,
    }
}
