//! A deterministic simulation driver: the real reducer (fleet, planner, SQLite store) and the
//! simulated Core on a manual clock, stepped in one thread with no timers, so a whole operation
//! run over hundreds of racks replays exactly from its seed. Tests, benchmarks and the
//! simulation proptest use it; production uses `steward_runtime::Runtime`, which runs the same
//! reducer on its own thread.

use crate::core::SimCore;
use std::path::Path;
use std::sync::Arc;
use steward_planner::PlannerConfig;
use steward_proto::{CreateRunRequest, Run, RunId};
use steward_runtime::ManualReducer;
use steward_runtime::clock::{Clock, ManualClock, SharedClock};
use steward_runtime::core::{Core, SubmitOutcome};
use steward_runtime::protocol::{
    Command, CommandError, CoreCall, CreateRunOutcome, ReducerInput, Reply,
};
use steward_runtime::store::StoreOptions;
use steward_state_machine::{Fleet, FleetConfig};

/// The reducer and the simulated Core, advanced step by step on a manual clock.
pub struct Simulation {
    reducer: ManualReducer,
    core: SimCore,
    clock: ManualClock,
    /// Core calls made (submit, find, cancel, status), for reports.
    pub core_calls: u64,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation").finish_non_exhaustive()
    }
}

impl Simulation {
    /// Opens (or creates) the store at `db`, loads it and wires the reducer to `core`.
    pub fn open(
        db: &Path,
        options: &StoreOptions,
        fleet_config: FleetConfig,
        planner: PlannerConfig,
        core: SimCore,
        clock: ManualClock,
    ) -> Result<Self, CommandError> {
        let shared: SharedClock = Arc::new(clock.clone());
        let reducer = ManualReducer::open(db, options, fleet_config, planner, shared)?;
        Ok(Self { reducer, core, clock, core_calls: 0 })
    }

    /// The fleet as the reducer holds it.
    pub fn fleet(&self) -> &Fleet {
        self.reducer.fleet()
    }

    /// The simulated Core.
    pub fn core(&self) -> &SimCore {
        &self.core
    }

    /// The clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    fn command(&mut self, command: Command) -> Result<Reply, CommandError> {
        self.reducer.command(command)
    }

    /// Imports the simulated Core's inventory.
    pub fn import_inventory(&mut self) -> Result<(), CommandError> {
        let inventory = self.core.inventory();
        self.command(Command::UpsertInventory { inventory, initiator: "simulation".into() })
            .map(|_| ())
    }

    /// Creates and starts a run.
    pub fn create_run(&mut self, request: CreateRunRequest) -> Result<Run, CommandError> {
        let command =
            Command::CreateRun { request: Box::new(request), initiator: "simulation".into() };
        match self.command(command)? {
            Reply::Created(CreateRunOutcome::Created(run)) => Ok(*run),
            _ => Err(CommandError::Store("dry run answered a create".into())),
        }
    }

    /// Pauses a run as an operator.
    pub fn pause(&mut self, run: &RunId) -> Result<(), CommandError> {
        let command =
            Command::PauseRun { run: run.clone(), reason: None, initiator: "simulation".into() };
        self.command(command).map(|_| ())
    }

    /// Resumes a run.
    pub fn resume(&mut self, run: &RunId) -> Result<(), CommandError> {
        self.command(Command::ResumeRun { run: run.clone(), initiator: "simulation".into() })
            .map(|_| ())
    }

    /// Advances a run paused at a wave gate.
    pub fn advance(&mut self, run: &RunId) -> Result<(), CommandError> {
        let command = Command::AdvanceRun {
            run: run.clone(),
            expected_wave: None,
            initiator: "simulation".into(),
        };
        self.command(command).map(|_| ())
    }

    /// Cancels a run.
    pub fn cancel(&mut self, run: &RunId) -> Result<(), CommandError> {
        let command =
            Command::CancelRun { run: run.clone(), reason: None, initiator: "simulation".into() };
        self.command(command).map(|_| ())
    }

    /// One step: the clock moves by `by`; Core's inventory and task statuses are polled; the
    /// applier's queued Core calls run; the planner ticks. Everything lands in one batch.
    pub async fn step(&mut self, by: chrono::Duration) -> Result<(), CommandError> {
        self.clock.advance(by);
        let mut inputs = Vec::new();
        self.drain_applier(&mut inputs).await;
        if let Ok(observations) = self.core.observe().await {
            inputs.push(ReducerInput::CoreObservations(observations));
        }
        let mut reports = Vec::new();
        for (task, target) in self.submitted_tasks() {
            self.core_calls += 1;
            if let Ok(report) = self.core.task_status(&task).await {
                reports.push((target, report));
            }
        }
        inputs.push(ReducerInput::TaskReports(reports));
        inputs.push(ReducerInput::Tick);
        self.reducer.process(inputs)?;
        Ok(())
    }

    fn submitted_tasks(&self) -> Vec<(steward_proto::TaskId, steward_proto::TargetId)> {
        let fleet = self.reducer.fleet();
        fleet
            .run_active
            .values()
            .flatten()
            .filter_map(|id| fleet.targets.get(id))
            .filter_map(|t| Some((t.task_id.clone()?, t.id.clone())))
            .collect()
    }

    async fn drain_applier(&mut self, inputs: &mut Vec<ReducerInput>) {
        for call in self.reducer.take_core_calls() {
            self.core_calls += 1;
            match call {
                CoreCall::Submit { request } => {
                    let result = match self.core.find_task(&request.idempotency_key).await {
                        Ok(Some(report)) => Ok(SubmitOutcome::Accepted { task_id: report.task_id }),
                        Ok(None) => self.core.submit(&request).await,
                        Err(error) => Err(error),
                    };
                    inputs.push(ReducerInput::SubmitResult {
                        target_id: request.target_id,
                        key: request.idempotency_key,
                        result,
                    });
                }
                CoreCall::Cancel { task_id } => {
                    let _ = self.core.cancel(&task_id).await;
                }
                CoreCall::RunHook(call) => {
                    // The simulation has no site tools: a hook starts and succeeds at once.
                    let target_id = call.target.id.clone();
                    let invocation_id = call.invocation_id.clone();
                    inputs.push(ReducerInput::HookStarted {
                        target_id: target_id.clone(),
                        invocation_id: invocation_id.clone(),
                    });
                    inputs.push(ReducerInput::HookFinished {
                        target_id,
                        invocation_id,
                        ok: true,
                        message: String::from("simulated hook"),
                    });
                }
            }
        }
    }

    /// Steps until every run is terminal or `max_steps` is reached; returns the steps taken.
    pub async fn run_until_terminal(
        &mut self,
        by: chrono::Duration,
        max_steps: u32,
    ) -> Result<u32, CommandError> {
        for step in 0..max_steps {
            if self.all_runs_terminal() {
                return Ok(step);
            }
            self.step(by).await?;
        }
        Ok(max_steps)
    }

    /// Whether every run is terminal.
    pub fn all_runs_terminal(&self) -> bool {
        self.reducer.fleet().runs.values().all(|run| run.status.is_terminal())
    }

    /// The current time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}
