//! Run follow-ups and hook reports: the request a rerun creates (a finished run's failed, and
//! optionally skipped, targets under the same operation and policy), and hook results from the
//! hook runner turned into events.

use super::{Batch, Reducer};
use crate::protocol::CommandError;
use steward_proto::{
    CreateRunRequest, FieldError, RunId, Selector, TargetStatus, ValidationErrors,
};
use steward_state_machine::FleetEvent;

impl Reducer {
    /// The request of a rerun of `run_id`: explicit components of its failed and terminated
    /// targets (plus skipped ones unless `failed_only`), in the first run's dispatch order.
    pub(super) fn rerun_request(
        &self,
        run_id: &RunId,
        failed_only: bool,
    ) -> Result<CreateRunRequest, CommandError> {
        let run = self
            .fleet
            .runs
            .get(run_id)
            .ok_or_else(|| CommandError::NotFound { what: "run".into(), id: run_id.to_string() })?;
        if !run.status.is_terminal() {
            return Err(CommandError::IllegalTransition {
                message: format!(
                    "run {run_id} is {}; only a finished run can be rerun",
                    run.status
                ),
                allowed: Vec::new(),
            });
        }
        let wanted = |status: TargetStatus| {
            status.is_failure() || (!failed_only && status == TargetStatus::Skipped)
        };
        let components: Vec<_> = self
            .fleet
            .run_targets
            .get(run_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.fleet.targets.get(id))
            .filter(|target| wanted(target.status))
            .flat_map(|target| target.components.iter().cloned())
            .collect();
        if components.is_empty() {
            let what = if failed_only { "failed" } else { "failed or skipped" };
            return Err(CommandError::Invalid(ValidationErrors(vec![FieldError::new(
                "failed_only",
                format!("run {run_id} has no {what} targets to rerun"),
            )])));
        }
        Ok(CreateRunRequest {
            name: Some(format!("rerun of {run_id}")),
            operation: run.operation.clone(),
            selector: Selector { components: Some(components), ..Selector::default() },
            policy: run.policy.clone(),
            dry_run: false,
        })
    }

    /// Applies a hook start or end. A report that no longer fits (the target moved on: a
    /// cancel, or a late duplicate after a restart) is dropped: the hook already counted once.
    pub(super) fn hook_report(&mut self, event: FleetEvent, batch: &mut Batch) {
        if let Err(error) = self.apply(event, batch) {
            tracing::debug!(%error, "hook report ignored");
        }
    }
}
