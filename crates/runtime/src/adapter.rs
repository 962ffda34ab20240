//! Shared parts of the Core adapters that run their tasks inside this process (Redfish, exec):
//! the set of task runners an adapter spawned, stopped together when the adapter steps down,
//! and the bookkeeping of which rack has an unfinished task and which tasks were cancelled.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use steward_proto::RackId;

/// The task runners an adapter spawned, and whether it was stopped (then no new one starts).
#[derive(Debug, Default)]
pub struct TaskRunners {
    state: Mutex<RunnerState>,
}

#[derive(Debug, Default)]
struct RunnerState {
    stopped: bool,
    handles: Vec<tokio::task::AbortHandle>,
}

impl TaskRunners {
    /// Spawns `work` as the runner of `task_id` on the current tokio runtime. Returns false,
    /// spawning nothing, once [`TaskRunners::stop`] was called: the task is left, as journaled,
    /// to the next start.
    pub fn spawn(&self, task_id: &str, work: impl Future<Output = ()> + Send + 'static) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.stopped {
            tracing::warn!(task = %task_id, "adapter stopped: the task is left to the next start");
            return false;
        }
        let handle = tokio::spawn(work);
        state.handles.retain(|h| !h.is_finished());
        state.handles.push(handle.abort_handle());
        true
    }

    /// Aborts every runner where it stands (as a crash would; the journal keeps what it
    /// committed) and refuses new ones. The HA server calls it through the adapter's `stop`
    /// when it steps down, so the next leader's adapter is the only one working on the tasks.
    pub fn stop(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.stopped = true;
        for handle in state.handles.drain(..) {
            handle.abort();
        }
    }
}

/// Racks with an unfinished task (rack -> task id) and the cancel flag of every running task.
#[derive(Debug, Default)]
pub struct ActiveTasks {
    state: Mutex<Active>,
}

/// What [`ActiveTasks`] guards.
#[derive(Debug, Default)]
pub struct Active {
    /// The unfinished task of each rack.
    pub racks: HashMap<RackId, String>,
    /// Running tasks asked to cancel.
    pub cancelled: BTreeSet<String>,
}

impl ActiveTasks {
    /// The guarded bookkeeping (a poisoned lock is taken over: the data stays consistent, each
    /// update is one insert or remove).
    pub fn lock(&self) -> MutexGuard<'_, Active> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets a finished task: its rack is free and its cancel flag is dropped.
    pub fn finished(&self, rack: &RackId, task_id: &str) {
        let mut active = self.lock();
        active.racks.remove(rack);
        active.cancelled.remove(task_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stopped_runner_set_aborts_its_runners_and_spawns_no_more() {
        let runners = TaskRunners::default();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
        let sender = tx.clone();
        assert!(runners.spawn("t1", async move {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            let _ = sender.send("t1 finished");
        }));
        runners.stop();
        let sender = tx.clone();
        assert!(!runners.spawn("t2", async move {
            let _ = sender.send("t2 ran");
        }));
        drop(tx);
        assert_eq!(rx.recv().await, None, "no runner sent anything");
    }

    #[test]
    fn a_finished_task_frees_its_rack_and_its_cancel_flag() {
        let active = ActiveTasks::default();
        active.lock().racks.insert("r1".into(), "t1".to_string());
        active.lock().cancelled.insert("t1".to_string());
        active.finished(&"r1".into(), "t1");
        assert!(active.lock().racks.is_empty());
        assert!(active.lock().cancelled.is_empty());
    }
}
