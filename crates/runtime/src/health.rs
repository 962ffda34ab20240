//! [`Health`]: what the reducer tells the outside about itself, for liveness (`/healthz`: is the
//! reducer thread running?) and readiness (`/readyz`: is it running and did the last commit
//! succeed?), and the signal a shell waits on to exit when the reducer dies.
//!
//! The reducer thread is the only writer; HTTP handlers and the binary's `serve` read. A
//! `std::sync::Mutex` guards the small state (the reducer is a plain thread, not a task), and a
//! `tokio::sync::watch` channel wakes whoever waits for the reducer to stop.

use std::sync::{Arc, Mutex, MutexGuard};
use steward_proto::Timestamp;
use tokio::sync::watch;

/// Where the reducer thread is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReducerState {
    /// Started, not yet in its loop.
    Starting,
    /// In its loop, taking inputs.
    Running,
    /// Ended after a shutdown request.
    Stopped,
    /// Ended on an error (a failed reload, a panic): the process must not keep answering.
    Failed(String),
}

#[derive(Debug)]
struct State {
    reducer: ReducerState,
    /// Why the store does not take writes right now (`None`: the last commit succeeded).
    fault: Option<String>,
    /// When the last commit succeeded.
    last_commit: Option<Timestamp>,
}

/// Shared health of one runtime. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Health {
    state: Arc<Mutex<State>>,
    stopped: Arc<watch::Sender<ReducerState>>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// A health record for a reducer that is starting.
    pub fn new() -> Self {
        let state = State { reducer: ReducerState::Starting, fault: None, last_commit: None };
        let (stopped, _) = watch::channel(ReducerState::Starting);
        Self { state: Arc::new(Mutex::new(state)), stopped: Arc::new(stopped) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Liveness: `Ok` while the reducer thread runs (or is starting), otherwise why not.
    pub fn live(&self) -> Result<(), String> {
        match &self.lock().reducer {
            ReducerState::Starting | ReducerState::Running => Ok(()),
            ReducerState::Stopped => Err("reducer: stopped".to_string()),
            ReducerState::Failed(reason) => Err(format!("reducer: {reason}")),
        }
    }

    /// Readiness: `Ok` only when the reducer runs and the store took the last commit; otherwise
    /// the reason (`reducer: ...`, `store: disk full`, `reloading`, ...).
    pub fn ready(&self) -> Result<(), String> {
        let state = self.lock();
        match &state.reducer {
            ReducerState::Running => {}
            ReducerState::Starting => return Err("starting".to_string()),
            ReducerState::Stopped => return Err("reducer: stopped".to_string()),
            ReducerState::Failed(reason) => return Err(format!("reducer: {reason}")),
        }
        match &state.fault {
            Some(fault) => Err(fault.clone()),
            None => Ok(()),
        }
    }

    /// When the last commit succeeded (`None`: none since start).
    pub fn last_commit(&self) -> Option<Timestamp> {
        self.lock().last_commit
    }

    /// The reducer's state now.
    pub fn reducer(&self) -> ReducerState {
        self.lock().reducer.clone()
    }

    /// Waits until the reducer thread has ended and returns how (`Stopped` or `Failed`).
    pub async fn stopped(&self) -> ReducerState {
        let mut receiver = self.stopped.subscribe();
        let ended = |s: &ReducerState| matches!(s, ReducerState::Stopped | ReducerState::Failed(_));
        match receiver.wait_for(ended).await {
            Ok(state) => state.clone(),
            // The sender lives as long as any `Health` clone, so this is not reached while
            // someone can still wait; answer as if it stopped.
            Err(_) => ReducerState::Stopped,
        }
    }

    /// Waits until the reducer has failed and returns why; never returns after a clean stop.
    pub async fn failed(&self) -> String {
        match self.stopped().await {
            ReducerState::Failed(reason) => reason,
            _ => std::future::pending().await,
        }
    }

    pub(crate) fn set_reducer(&self, reducer: ReducerState) {
        self.lock().reducer = reducer.clone();
        self.stopped.send_replace(reducer);
    }

    /// Records a store fault (or `reloading`) as the readiness reason.
    pub(crate) fn set_fault(&self, fault: impl Into<String>) {
        self.lock().fault = Some(fault.into());
    }

    /// Records a successful commit: the store takes writes again.
    pub(crate) fn committed(&self, at: Timestamp) {
        let mut state = self.lock();
        state.fault = None;
        state.last_commit = Some(at);
    }

    /// Clears a store fault: a probe found the store taking writes again.
    pub(crate) fn clear_fault(&self) {
        self.lock().fault = None;
    }

    /// Whether a store fault is recorded.
    pub(crate) fn faulted(&self) -> bool {
        self.lock().fault.is_some()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn readiness_follows_the_reducer_and_the_last_commit() {
        let health = Health::new();
        assert_eq!(health.ready(), Err("starting".to_string()));
        assert!(health.live().is_ok());
        health.set_reducer(ReducerState::Running);
        assert!(health.ready().is_ok());
        health.set_fault("store: disk full");
        assert_eq!(health.ready(), Err("store: disk full".to_string()));
        assert!(health.live().is_ok());
        health.committed(chrono::Utc::now());
        assert!(health.ready().is_ok());
        health.set_reducer(ReducerState::Failed("reload failed".into()));
        assert_eq!(health.live(), Err("reducer: reload failed".to_string()));
        assert!(health.ready().is_err());
    }

    #[tokio::test]
    async fn failed_wakes_on_a_failure() {
        let health = Health::new();
        let waiter = {
            let health = health.clone();
            tokio::spawn(async move { health.failed().await })
        };
        health.set_reducer(ReducerState::Running);
        health.set_reducer(ReducerState::Failed("boom".into()));
        assert_eq!(waiter.await.unwrap(), "boom");
    }
}
