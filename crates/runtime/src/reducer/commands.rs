//! Commands and Core results: each becomes fleet events applied at the batch's `now`; a
//! command's reply is computed here but sent only after the batch commits.

use super::{Batch, Reducer};
use crate::core::{CoreError, SubmitOutcome, TaskReport};
use crate::protocol::{
    Command, CommandError, CoreCall, CreateRunOutcome, DryRun, InventorySummary, Reply,
};
use std::collections::{BTreeMap, BTreeSet};
use steward_proto::Timestamp;
use steward_proto::{
    CreateRunRequest, FieldError, Hold, IdempotencyKey, InventoryUpsert, Observation, RunId,
    TargetId, TargetStatus, ValidationErrors, check_id, validate_id,
};
use steward_state_machine::{Fleet, FleetEvent, MAX_CLOCK_SKEW_SECONDS, ObservationTime, Rejected};

impl Reducer {
    pub(super) fn command(
        &mut self,
        command: Command,
        batch: &mut Batch,
    ) -> Result<Reply, CommandError> {
        match command {
            Command::UpsertInventory { inventory, initiator } => {
                validate_inventory(&inventory, &self.fleet)?;
                let summary = InventorySummary {
                    racks: inventory.racks.len(),
                    components: inventory.racks.iter().map(|r| r.components.len()).sum(),
                };
                self.apply(
                    FleetEvent::InventoryUpserted { initiator, racks: inventory.racks },
                    batch,
                )
                .map_err(rejected)?;
                Ok(Reply::Inventory(summary))
            }
            Command::ImportCoreInventory { inventory } => {
                validate_inventory(&inventory, &self.fleet)?;
                let summary = InventorySummary {
                    racks: inventory.racks.len(),
                    components: inventory.racks.iter().map(|r| r.components.len()).sum(),
                };
                let event = FleetEvent::CoreInventoryImported { racks: inventory.racks };
                self.apply(event, batch).map_err(rejected)?;
                Ok(Reply::Inventory(summary))
            }
            Command::Observe { observations, initiator } => {
                self.validate_observations(&observations, batch.now)?;
                let before = batch.logged;
                for observation in observations {
                    if self.out_of_order(&observation, batch.now) {
                        continue;
                    }
                    self.apply(observed_event(observation, &initiator), batch).map_err(rejected)?;
                }
                Ok(Reply::Changed(batch.logged - before))
            }
            Command::SetServiceState { component, to, note, initiator } => {
                let event = FleetEvent::ServiceStateChanged {
                    component_id: component.clone(),
                    to,
                    initiator,
                    note,
                };
                self.apply(event, batch).map_err(rejected)?;
                let view = self.component_view(&component, batch.now)?;
                Ok(Reply::Component(Box::new(view)))
            }
            Command::ForceServiceState { component, to, note, initiator } => {
                let event = FleetEvent::ServiceStateForced {
                    component_id: component.clone(),
                    to,
                    initiator,
                    note,
                };
                self.apply(event, batch).map_err(rejected)?;
                let view = self.component_view(&component, batch.now)?;
                Ok(Reply::Component(Box::new(view)))
            }
            Command::RedeliverWebhook { webhook, initiator } => {
                self.redeliver(webhook, &initiator, batch)
            }
            Command::CreateRun { request, initiator } => {
                self.create_run(*request, &initiator, None, batch)
            }
            Command::RerunRun { run, failed_only, initiator } => {
                let request = self.rerun_request(&run, failed_only)?;
                self.create_run(request, &initiator, Some(run), batch)
            }
            Command::PauseRun { run, reason, initiator } => {
                let message = reason.unwrap_or_else(|| format!("paused by {initiator}"));
                let event = FleetEvent::RunPaused {
                    run_id: run.clone(),
                    reason: steward_proto::RunStatusReason::OperatorPaused,
                    message,
                    initiator,
                };
                self.run_event(run, event, batch)
            }
            Command::ResumeRun { run, initiator } => self.run_event(
                run.clone(),
                FleetEvent::RunResumed { run_id: run, initiator },
                batch,
            ),
            Command::CancelRun { run, reason, initiator } => {
                let event = FleetEvent::RunCancelled { run_id: run.clone(), initiator, reason };
                self.run_event(run, event, batch)
            }
            Command::AdvanceRun { run, expected_wave, initiator } => {
                let event =
                    FleetEvent::RunAdvanced { run_id: run.clone(), expected_wave, initiator };
                self.run_event(run, event, batch)
            }
        }
    }

    /// Refuses a pushed batch if any observation names an invalid or unknown component, or was
    /// made further in the future than the allowed clock skew.
    fn validate_observations(
        &self,
        observations: &[Observation],
        now: Timestamp,
    ) -> Result<(), CommandError> {
        let mut errors = Vec::new();
        for (i, o) in observations.iter().enumerate() {
            let field = format!("[{i}].component_id");
            if let Err(message) = check_id(o.component_id.as_str()) {
                errors.push(FieldError::new(field, message));
            } else if !self.fleet.components.contains_key(&o.component_id) {
                errors
                    .push(FieldError::new(field, format!("unknown component {}", o.component_id)));
            } else if self.fleet.observation_time(&o.component_id, o.observed_at, now)
                == ObservationTime::FromTheFuture
            {
                errors.push(FieldError::new(
                    format!("[{i}].observed_at"),
                    format!(
                        "is more than {MAX_CLOCK_SKEW_SECONDS} seconds in the future (now is {now})"
                    ),
                ));
            }
        }
        ValidationErrors::from_vec(errors).map_err(CommandError::Invalid)
    }

    /// Whether an observation is older than the component's current one (or, from Core, from
    /// the future): such observations are counted and never applied or logged.
    pub(super) fn out_of_order(&self, observation: &Observation, now: Timestamp) -> bool {
        let reason = match self.fleet.observation_time(
            &observation.component_id,
            observation.observed_at,
            now,
        ) {
            ObservationTime::Acceptable => return false,
            ObservationTime::OutOfOrder => "out_of_order",
            ObservationTime::FromTheFuture => "future",
        };
        self.metrics.observation_ignored(reason);
        tracing::debug!(component = %observation.component_id, reason, "observation ignored");
        true
    }

    fn run_event(
        &mut self,
        run: RunId,
        event: FleetEvent,
        batch: &mut Batch,
    ) -> Result<Reply, CommandError> {
        if !self.fleet.runs.contains_key(&run) {
            return Err(CommandError::NotFound { what: "run".into(), id: run.to_string() });
        }
        self.apply(event, batch).map_err(rejected)?;
        self.run_view(&run).map(|r| Reply::Run(Box::new(r)))
    }

    fn create_run(
        &mut self,
        request: CreateRunRequest,
        initiator: &str,
        rerun_of: Option<RunId>,
        batch: &mut Batch,
    ) -> Result<Reply, CommandError> {
        let now = batch.now;
        crate::hooks::validate_names(&request.policy.hooks, &self.settings.hook_names)?;
        let run_id = RunId::new(format!("run-{}", self.next_run_number));
        let dry_run = request.dry_run;
        let mut new_run =
            steward_planner::plan_run(&self.fleet, &request, run_id.clone(), initiator, now)
                .map_err(create_error)?;
        new_run.run.rerun_of = rerun_of;
        if dry_run {
            let holds: BTreeMap<TargetId, Hold> =
                steward_planner::dry_run_holds(&self.fleet, &new_run, &self.settings.planner, now)
                    .into_iter()
                    .collect();
            let mut targets = new_run.targets.clone();
            for target in &mut targets {
                target.hold = holds.get(&target.id).cloned();
            }
            let outcome = DryRun { dry_run: true, run: new_run.run, targets };
            return Ok(Reply::Created(CreateRunOutcome::DryRun(Box::new(outcome))));
        }
        self.next_run_number += 1;
        let event = FleetEvent::RunCreated { run: Box::new(new_run.run), targets: new_run.targets };
        self.apply(event, batch).map_err(rejected)?;
        self.apply(FleetEvent::RunStarted { run_id: run_id.clone() }, batch).map_err(rejected)?;
        let run = self.run_view(&run_id)?;
        Ok(Reply::Created(CreateRunOutcome::Created(Box::new(run))))
    }

    pub(super) fn task_report(
        &mut self,
        target_id: TargetId,
        report: TaskReport,
        batch: &mut Batch,
    ) {
        let event = FleetEvent::TaskObserved {
            task_id: report.task_id,
            target_id,
            status: report.status,
            message: report.message,
            component_results: report.component_results,
        };
        if let Err(error) = self.apply(event, batch) {
            tracing::debug!(%error, "task report not applied");
        }
    }

    pub(super) fn submit_result(
        &mut self,
        target_id: TargetId,
        key: IdempotencyKey,
        result: Result<SubmitOutcome, CoreError>,
        batch: &mut Batch,
    ) {
        let current = self.fleet.targets.get(&target_id);
        let still_claimed = current
            .is_some_and(|t| t.status == TargetStatus::Claimed && t.idempotency_key() == key);
        match result {
            Ok(SubmitOutcome::Accepted { task_id }) if still_claimed => {
                let event = FleetEvent::TargetSubmitted { target_id, task_id };
                if let Err(error) = self.apply(event, batch) {
                    tracing::warn!(%error, "submitted task could not be recorded");
                }
            }
            Ok(SubmitOutcome::Accepted { task_id }) => {
                // The target moved on (cancelled, lease expired and re-claimed under another key):
                // the task Core accepted serves nobody, so it is cancelled.
                let adopted = current.is_some_and(|t| t.task_id.as_ref() == Some(&task_id));
                if !adopted {
                    batch.core_calls.push(CoreCall::Cancel { task_id });
                }
            }
            Ok(SubmitOutcome::Conflict { message }) if still_claimed => {
                let _ = self.apply(FleetEvent::TargetConflict { target_id, message }, batch);
            }
            Ok(SubmitOutcome::Rejected { message }) if still_claimed => {
                let _ = self.apply(FleetEvent::TargetSubmitRejected { target_id, message }, batch);
            }
            Ok(_) => {}
            Err(error) => {
                // A Core outage leaves the target claimed; the lease expires and it is re-claimed.
                tracing::warn!(%error, %target_id, "submission failed; the claim lease will expire and retry");
            }
        }
    }
}

/// The event for one observation; `initiator` is empty for Core's own sync.
pub(super) fn observed_event(observation: Observation, initiator: &str) -> FleetEvent {
    FleetEvent::ComponentObserved {
        initiator: initiator.to_string(),
        component_id: observation.component_id,
        controller_state: observation.controller_state,
        power_state: observation.power_state,
        firmware_version: observation.firmware_version,
        observed_at: observation.observed_at,
    }
}

pub(super) fn not_found(what: &str, id: &impl std::fmt::Display) -> CommandError {
    CommandError::NotFound { what: what.into(), id: id.to_string() }
}

/// Maps a machine's refusal to the command error the API reports.
pub(crate) fn rejected(error: Rejected) -> CommandError {
    match &error {
        Rejected::NotFound { what, id } => {
            CommandError::NotFound { what: (*what).into(), id: id.clone() }
        }
        Rejected::IllegalServiceTransition { allowed, .. } => CommandError::IllegalTransition {
            message: error.to_string(),
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
        },
        Rejected::IllegalTransition { allowed, .. } => CommandError::IllegalTransition {
            message: error.to_string(),
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
        },
        Rejected::Guard { .. } => {
            CommandError::IllegalTransition { message: error.to_string(), allowed: Vec::new() }
        }
        Rejected::Invalid { field, message } => {
            CommandError::Invalid(ValidationErrors(vec![FieldError::new(
                field.clone(),
                message.clone(),
            )]))
        }
    }
}

fn create_error(error: steward_planner::CreateError) -> CommandError {
    match error {
        steward_planner::CreateError::Invalid(errors) => CommandError::Invalid(errors),
        other => {
            let field = other.field().unwrap_or("selector").to_string();
            CommandError::Invalid(ValidationErrors(vec![FieldError::new(field, other.to_string())]))
        }
    }
}

/// Checks an inventory document before anything is applied: duplicate ids, components that
/// would move between racks.
fn validate_inventory(inventory: &InventoryUpsert, fleet: &Fleet) -> Result<(), CommandError> {
    let mut errors = Vec::new();
    let mut racks = BTreeSet::new();
    let mut components = BTreeSet::new();
    for (r, rack) in inventory.racks.iter().enumerate() {
        validate_id(&format!("racks[{r}].id"), rack.id.as_str(), &mut errors);
        if !racks.insert(rack.id.clone()) {
            errors.push(FieldError::new(
                format!("racks[{r}].id"),
                format!("rack {} appears twice", rack.id),
            ));
        }
        for (c, component) in rack.components.iter().enumerate() {
            let field = format!("racks[{r}].components[{c}].id");
            validate_id(&field, component.id.as_str(), &mut errors);
            if !components.insert(component.id.clone()) {
                errors.push(FieldError::new(
                    field.clone(),
                    format!("component {} appears twice", component.id),
                ));
            }
            if let Some(existing) = fleet.components.get(&component.id)
                && existing.component.rack_id != rack.id
            {
                errors.push(FieldError::new(
                    field,
                    format!(
                        "component {} belongs to rack {}; moving components is not supported",
                        component.id, existing.component.rack_id
                    ),
                ));
            }
        }
    }
    ValidationErrors::from_vec(errors).map_err(CommandError::Invalid)
}
