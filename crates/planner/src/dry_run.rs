//! Dry run: the holds each target of a planned, not yet created run would get now, as if the
//! run had just started (wave 1 open, nothing in flight for it).
//!
//! Unlike [`crate::plan`], this examines every target (the operator asked to see them all), and
//! reports targets that would be skipped as holds of the deciding gate whose message starts with
//! "would be skipped". Targets that would be claimed right away get no entry.

use crate::cause::HoldCause;
use crate::config::PlannerConfig;
use crate::create::NewRun;
use crate::gates::{Claimed, Ctx, Verdict, maintenance_window};
use steward_proto::{Hold, RunStatus, TargetId, Timestamp};
use steward_state_machine::Fleet;

/// The hold each target of `new_run` would get if the run were running at `now`.
pub fn dry_run_holds(
    fleet: &Fleet,
    new_run: &NewRun,
    config: &PlannerConfig,
    now: Timestamp,
) -> Vec<(TargetId, Hold)> {
    let ctx = Ctx { fleet, config, now };
    let mut run = new_run.run.clone();
    run.status = RunStatus::Running;
    run.current_wave = 1;
    let policy = &run.policy;
    let hold = |cause: &HoldCause| cause.hold(policy, now);
    let window = maintenance_window(policy, now).map(|cause| hold(&cause));
    let mut run_free = policy.max_parallel_racks;
    let mut global_free =
        config.global_max_parallel.map(|limit| limit.saturating_sub(fleet.active_total));
    let claimed_empty = Claimed::new();
    let mut holds = Vec::new();
    for target in &new_run.targets {
        let held = if let Some(window) = &window {
            Some(window.clone())
        } else if target.wave > 1 {
            Some(hold(&HoldCause::AfterFirstWave { wave: target.wave }))
        } else if run_free == 0 {
            Some(hold(&HoldCause::WouldRunConcurrency { max: policy.max_parallel_racks }))
        } else if global_free == Some(0) {
            Some(hold(&HoldCause::WouldGlobalConcurrency))
        } else {
            // Claims of this dry run occupy their racks for later targets of the same run only
            // through the slot count: one run never has two targets on one rack.
            match ctx.target_gates(&run, target, &claimed_empty) {
                Verdict::Pass => {
                    run_free -= 1;
                    global_free = global_free.map(|free| free.saturating_sub(1));
                    None
                }
                Verdict::Hold(cause) | Verdict::Unchanged(cause) => Some(hold(&cause)),
                Verdict::Skip(cause) => Some(Hold {
                    gate: cause.gate(),
                    message: cause.dry_run_message(),
                    since: now,
                    component: None,
                }),
            }
        };
        if let Some(held) = held {
            holds.push((target.id.clone(), held));
        }
    }
    holds
}
