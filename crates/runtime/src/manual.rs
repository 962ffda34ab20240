//! [`ManualReducer`]: the engine's reducer driven by the caller's own thread, one batch per
//! call, with no timers, pollers or applier task. Deterministic harnesses (the simulation in
//! `steward-sim`, benchmarks) use it; production uses [`crate::Runtime`], which runs the same
//! reducer on its own thread.

use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::protocol::{Command, CommandError, CoreCall, ReducerInput, Reply};
use crate::reducer::{Reducer, ReducerSettings};
use crate::store::{Store, StoreOptions};
use std::path::Path;
use std::sync::Arc;
use steward_planner::PlannerConfig;
use steward_state_machine::{Fleet, FleetConfig};
use tokio::sync::{broadcast, mpsc, oneshot};

/// The reducer and its store, stepped by the caller. Core calls the reducer releases after each
/// commit queue up until [`ManualReducer::take_core_calls`].
pub struct ManualReducer {
    reducer: Reducer,
    core_calls: mpsc::UnboundedReceiver<CoreCall>,
}

impl std::fmt::Debug for ManualReducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManualReducer").finish_non_exhaustive()
    }
}

impl ManualReducer {
    /// Opens (or creates) the store at `db`, loads it (not a replay) and queues the recovery
    /// submissions of claimed targets.
    pub fn open(
        db: &Path,
        options: &StoreOptions,
        fleet_config: FleetConfig,
        planner: PlannerConfig,
        clock: SharedClock,
    ) -> Result<Self, CommandError> {
        let store = Store::open(db, options).map_err(|e| CommandError::Store(e.to_string()))?;
        let loaded = store.load(fleet_config).map_err(|e| CommandError::Store(e.to_string()))?;
        let (events, _) = broadcast::channel(16);
        let (core_call_sender, core_calls) = mpsc::unbounded_channel();
        let settings = ReducerSettings {
            planner,
            webhooks: Vec::new(),
            max_batch: usize::MAX,
            commit_deadline: std::time::Duration::from_secs(30),
            health: crate::health::Health::new(),
            hook_names: Default::default(),
        };
        let mut reducer = Reducer::new(
            loaded.fleet,
            Box::new(store),
            loaded.last_seq,
            clock,
            settings,
            events,
            core_call_sender,
            Arc::new(Metrics::new()),
        );
        reducer.recover();
        Ok(Self { reducer, core_calls })
    }

    /// The fleet as the reducer holds it (committed state between calls).
    pub fn fleet(&self) -> &Fleet {
        self.reducer.fleet()
    }

    /// Processes `inputs` as one batch and commits it. Replies go to the inputs' own channels.
    pub fn process(&mut self, inputs: Vec<ReducerInput>) -> Result<(), CommandError> {
        self.reducer.process(inputs).map(|_| ()).map_err(|e| CommandError::Store(e.to_string()))
    }

    /// Runs one command as its own batch and returns its reply.
    pub fn command(&mut self, command: Command) -> Result<Reply, CommandError> {
        let (reply, mut answer) = oneshot::channel();
        self.process(vec![ReducerInput::Command { command, reply }])?;
        answer.try_recv().map_err(|_| CommandError::ShuttingDown)?
    }

    /// The Core calls released by the commits so far, oldest first.
    pub fn take_core_calls(&mut self) -> Vec<CoreCall> {
        let mut calls = Vec::new();
        while let Ok(call) = self.core_calls.try_recv() {
            calls.push(call);
        }
        calls
    }
}
