//! `plan(fleet, config, now)`: the dispatch plan — actions for the reducer and run-level holds.
//!
//! Per non-terminal run, in (created_at, id) order so older runs get free global slots first:
//! 1. expire claim leases that ran out (any run status);
//! 2. only `running` runs go further (gate 1); others get one run hold;
//! 3. finish the run when every target is terminal and the current wave is the last;
//! 4. safety gates, then the conflict retry timeout of blocked targets (both pause the run);
//! 5. a finished wave: advance (auto_advance, soak elapsed), wait out the soak, or pause at the
//!    wave gate;
//! 6. maintenance window (gate 2);
//! 7. blocked targets whose backoff passed are claimed again if the gates allow;
//! 8. pending targets of the open waves in dispatch order: concurrency (gate 4, stop at the
//!    first target without a free slot), retry backoff, conflict, service state, readiness;
//!    later waves get one run hold (gate 3).
//!
//! Cost: the run list (skipping terminal runs), the run's active targets (bounded by its
//! concurrency), and the pending targets examined before the run runs out of slots. Finished
//! targets are never looked at.
//!
//! Holds: a target examined by the gates gets an individual hold, emitted as an action only when
//! it differs from the stored one (`since` is kept while the gate stays the same, so it means
//! "held by this gate since"). Every pending target the plan did not examine is covered by a
//! [`RunHold`]; see [`RunHold::from`]. Holds, skips and pauses are decided as causes and their
//! messages rendered in one place (`cause.rs`). A readiness hold names the first blocking
//! component in its `component` field (and its message); while that component stays exactly as
//! it was, the target is not re-read component by component (gates 6–7 are re-evaluated in full
//! once it changes), which keeps a queue of not-ready racks cheap to re-plan.
//!
//! Timeouts: a readiness hold older than `max_wait_seconds` pauses the run
//! (`readiness_timeout`) and clears that target's hold, so after a resume its wait starts over.
//! A blocked target whose `blocked_since` is older than `conflict_retry.timeout_seconds`
//! pauses the run (`conflict_retry_timeout`). Both waits count from the run's last run-level
//! change at the latest (`run.updated_at`: start, resume, advance), so time spent paused never
//! counts and a resume gives a fresh timeout.

use crate::cause::{HoldCause, PauseCause, fmt_time};
use crate::config::PlannerConfig;
use crate::cursor::Cursor;
use crate::gates::{Claimed, Ctx, Verdict, maintenance_window, safety_trip};
use serde::{Deserialize, Serialize};
use std::fmt;
use steward_proto::{
    Gate, Hold, Run, RunId, RunStatus, RunStatusReason, Target, TargetId, TargetStatus, Timestamp,
};
use steward_state_machine::{Fleet, FleetEvent};

/// The initiator recorded on pauses and advances the planner makes.
pub const PLANNER_INITIATOR: &str = "planner";

/// A pending target's place in its run: `(wave, position in run_targets)`, as in
/// `Fleet::run_pending`. Ordered like dispatch.
pub type PendingKey = (u32, u32);

/// A hold that applies to many pending targets of one run at once (so a plan never emits one
/// hold per waiting target when a whole run, wave or queue is stopped).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHold {
    /// The run.
    pub run_id: RunId,
    /// The gate.
    pub gate: Gate,
    /// What blocks and what would unblock it.
    pub message: String,
    /// The first pending key covered. A pending target of the run with key `k` and no action in
    /// this plan is covered by the run hold with the greatest `from <= k`; a pending target
    /// below every `from` was examined and keeps its stored `target.hold`. `(0, 0)` covers the
    /// whole run.
    pub from: PendingKey,
}

/// What the reducer should do now, in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Actions, in the order they should be applied.
    pub actions: Vec<Action>,
    /// Run-level holds, grouped by run (runs in planning order), `from` ascending.
    pub run_holds: Vec<RunHold>,
    /// Pending or blocked targets the gates examined (a cost measure for metrics and tests).
    pub examined: u32,
}

impl RunHold {
    /// The run hold for `cause` over the pending targets of `run` from `from` on.
    fn new(run: &Run, cause: &HoldCause, from: PendingKey) -> Self {
        Self {
            run_id: run.id.clone(),
            gate: cause.gate(),
            message: cause.message(&run.policy),
            from,
        }
    }
}

impl Plan {
    /// The run hold covering the pending target at `key` of `run_id`, if any (see
    /// [`RunHold::from`]).
    pub fn run_hold_for(&self, run_id: &RunId, key: PendingKey) -> Option<&RunHold> {
        self.run_holds
            .iter()
            .filter(|h| &h.run_id == run_id && h.from <= key)
            .max_by_key(|h| h.from)
    }
}

/// One decision of the planner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// pending/blocked -> claimed under a lease.
    Claim {
        /// The target.
        target_id: TargetId,
        /// `now + policy.claim_lease_seconds`.
        lease_until: Timestamp,
    },
    /// claimed -> pending: the lease ran out.
    ExpireLease {
        /// The target.
        target_id: TargetId,
    },
    /// pending -> skipped by policy.
    Skip {
        /// The target.
        target_id: TargetId,
        /// Names the gate and the component.
        reason: String,
    },
    /// The target's hold changed (or clears with `None`).
    Hold {
        /// The target.
        target_id: TargetId,
        /// The new hold.
        hold: Option<Hold>,
    },
    /// running -> paused by a gate.
    Pause {
        /// The run.
        run_id: RunId,
        /// Which gate.
        reason: RunStatusReason,
        /// Names the gate, the scope and the numbers, and what to do.
        message: String,
    },
    /// Open wave `wave` (auto_advance after the soak).
    Advance {
        /// The run.
        run_id: RunId,
        /// The wave number being opened.
        wave: u32,
    },
    /// Every target is terminal and the current wave is the last.
    Finish {
        /// The run.
        run_id: RunId,
    },
}

impl Action {
    /// The event the reducer applies for this action.
    pub fn into_event(self) -> FleetEvent {
        match self {
            Action::Claim { target_id, lease_until } => {
                FleetEvent::TargetClaimed { target_id, lease_until }
            }
            Action::ExpireLease { target_id } => FleetEvent::TargetLeaseExpired { target_id },
            Action::Skip { target_id, reason } => FleetEvent::TargetSkipped { target_id, reason },
            Action::Hold { target_id, hold } => FleetEvent::TargetHeld { target_id, hold },
            Action::Pause { run_id, reason, message } => FleetEvent::RunPaused {
                run_id,
                reason,
                message,
                initiator: PLANNER_INITIATOR.to_string(),
            },
            Action::Advance { run_id, wave } => FleetEvent::RunAdvanced {
                run_id,
                expected_wave: Some(wave),
                initiator: PLANNER_INITIATOR.to_string(),
            },
            Action::Finish { run_id } => FleetEvent::RunFinished { run_id },
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Claim { target_id, lease_until } => {
                write!(f, "claim {target_id} (lease until {})", fmt_time(*lease_until))
            }
            Action::ExpireLease { target_id } => write!(f, "expire lease {target_id}"),
            Action::Skip { target_id, reason } => write!(f, "skip {target_id}: {reason}"),
            Action::Hold { target_id, hold: Some(hold) } => {
                write!(f, "hold {target_id} [{}]: {}", hold.gate, hold.message)
            }
            Action::Hold { target_id, hold: None } => write!(f, "clear hold {target_id}"),
            Action::Pause { run_id, reason, message } => {
                write!(f, "pause {run_id} [{reason}]: {message}")
            }
            Action::Advance { run_id, wave } => write!(f, "advance {run_id} to wave {wave}"),
            Action::Finish { run_id } => write!(f, "finish {run_id}"),
        }
    }
}

impl fmt::Display for RunHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run hold {} from {:?} [{}]: {}", self.run_id, self.from, self.gate, self.message)
    }
}

/// Mutable state of one `plan` call.
struct PlanState<'a> {
    /// Active targets over all runs, including the ones claimed earlier in this plan.
    global_active: u64,
    /// Targets claimed earlier in this plan, per rack.
    claimed: Claimed<'a>,
    plan: Plan,
}

/// Computes the dispatch plan for `fleet` at `now`. Pure and deterministic.
pub fn plan(fleet: &Fleet, config: &PlannerConfig, now: Timestamp) -> Plan {
    let ctx = Ctx { fleet, config, now };
    let mut state = PlanState {
        global_active: u64::from(fleet.active_total),
        claimed: Claimed::new(),
        plan: Plan::default(),
    };
    let mut runs: Vec<&Run> = fleet.runs.values().filter(|r| !r.status.is_terminal()).collect();
    runs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    for run in runs {
        plan_run_dispatch(&ctx, run, &mut state);
    }
    state.plan
}

/// `seconds` as a duration, saturating at the largest one chrono represents (policies have no
/// upper bounds, and the planner must never panic on input).
fn secs(seconds: u64) -> chrono::Duration {
    i64::try_from(seconds)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .unwrap_or(chrono::Duration::MAX)
}

/// `at + seconds`, saturating at the latest representable time.
fn after(at: Timestamp, seconds: u64) -> Timestamp {
    at.checked_add_signed(secs(seconds)).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

fn plan_run_dispatch<'a>(ctx: &Ctx<'a>, run: &'a Run, st: &mut PlanState<'a>) {
    let fleet = ctx.fleet;
    let now = ctx.now;
    let policy = &run.policy;
    // `run_active` is sorted by target id, so a cursor walks `targets` instead of descending.
    let mut cursor = Cursor::new(&fleet.targets);
    let active: Vec<&'a Target> = fleet
        .run_active
        .get(&run.id)
        .into_iter()
        .flatten()
        .filter_map(|id| cursor.get(id))
        .collect();
    let pending = fleet.run_pending.get(&run.id);
    let has_pending = pending.is_some_and(|p| !p.is_empty());
    let hold_all = |st: &mut PlanState<'a>, cause: HoldCause| {
        if has_pending {
            st.plan.run_holds.push(RunHold::new(run, &cause, (0, 0)));
        }
    };

    // 1. Leases run out whatever the run's status: the target goes back to pending.
    for target in &active {
        if target.status == TargetStatus::Claimed && target.lease_until.is_none_or(|l| l <= now) {
            st.plan.actions.push(Action::ExpireLease { target_id: target.id.clone() });
        }
    }

    // 2. Gate 1: only running runs dispatch.
    if run.status != RunStatus::Running {
        let cause = HoldCause::NotRunning {
            run: run.id.clone(),
            status: run.status,
            reason: run.status_reason,
            status_message: run.status_message.clone(),
        };
        hold_all(st, cause);
        return;
    }

    let current = run.current_wave;
    let last_wave = u32::try_from(run.waves.len()).unwrap_or(u32::MAX);

    // 3. Finished: every target terminal and nothing left to open.
    if run.counts.all_terminal() && current >= last_wave {
        st.plan.actions.push(Action::Finish { run_id: run.id.clone() });
        return;
    }

    // 4. Safety gates, then conflict retry timeouts: both pause the run.
    let pause = |st: &mut PlanState<'a>, cause: PauseCause| {
        let (reason, message) = (cause.reason(), cause.to_string());
        hold_all(st, HoldCause::Pausing { run: run.id.clone(), pause: cause });
        st.plan.actions.push(Action::Pause { run_id: run.id.clone(), reason, message });
    };
    if let Some(cause) = safety_trip(run) {
        pause(st, cause);
        return;
    }
    let timeout = policy.conflict_retry.timeout_seconds;
    for target in active.iter().filter(|t| t.status == TargetStatus::Blocked) {
        // Counted from the later of the first conflict and the last run-level change (start,
        // resume, advance), so a resume after this very pause gives the target a fresh timeout.
        let first = target.blocked_since.unwrap_or(target.updated_at);
        let since = first.max(run.updated_at);
        if now - since >= secs(timeout) {
            let cause = PauseCause::ConflictRetryTimeout {
                target: target.id.clone(),
                rack: target.rack_id.clone(),
                first,
                counted_from: since,
                timeout_seconds: timeout,
                last_conflict: target.message.clone(),
            };
            pause(st, cause);
            return;
        }
    }

    // 5. Gate 3 at the run level: the open waves are finished, so open the next or wait.
    let open_waves = run.waves.get(..current.min(last_wave) as usize).unwrap_or_default();
    let unfinished: u32 = open_waves.iter().map(|w| w.counts.total() - w.counts.terminal()).sum();
    if unfinished == 0 && current < last_wave {
        let next = current + 1;
        let next_size = run.waves.get(current as usize).map_or(0, |w| w.size);
        let finished = run.waves.get(current.saturating_sub(1) as usize);
        let counts = finished.map(|w| w.counts);
        if policy.auto_advance {
            let finished_at = finished.and_then(|w| w.finished_at).unwrap_or(run.updated_at);
            let opens_at = after(finished_at, policy.soak_seconds);
            if opens_at <= now {
                st.plan.actions.push(Action::Advance { run_id: run.id.clone(), wave: next });
                hold_all(st, HoldCause::WaveOpening { finished: current, counts, next });
            } else {
                let cause = HoldCause::WaveSoaking {
                    finished: current,
                    counts,
                    finished_at,
                    next,
                    opens_at,
                    soak_seconds: policy.soak_seconds,
                };
                hold_all(st, cause);
            }
        } else {
            let cause = PauseCause::WaveGate {
                finished: current,
                waves: last_wave,
                counts,
                next,
                next_size,
                soak_seconds: policy.soak_seconds,
            };
            pause(st, cause);
        }
        return;
    }

    // 6. Gate 2: maintenance windows.
    if let Some(cause) = maintenance_window(policy, now) {
        hold_all(st, cause);
        return;
    }

    let lease_until = after(now, policy.claim_lease_seconds);
    let mut actions: Vec<Action> = Vec::new();
    let mut claimed_here: Vec<&'a Target> = Vec::new();
    let mut examined = 0u32;

    // 7. Blocked targets whose backoff passed: claimed again if the gates allow (they already
    //    hold their slot). A blocked target cannot carry a hold; it simply stays blocked.
    for target in active.iter().filter(|t| t.status == TargetStatus::Blocked) {
        if target.retry_after.is_some_and(|at| at > now) {
            continue;
        }
        examined += 1;
        if ctx.target_gates(run, target, &st.claimed) == Verdict::Pass {
            actions.push(Action::Claim { target_id: target.id.clone(), lease_until });
        }
    }

    // 8. Pending targets of the open waves, in dispatch order.
    let active_count = u32::try_from(active.len()).unwrap_or(u32::MAX);
    let mut run_free = policy.max_parallel_racks.saturating_sub(active_count);
    let global_limit = ctx.config.global_max_parallel.map(u64::from);
    let ids = fleet.run_targets.get(&run.id);
    let mut holds: Vec<RunHold> = Vec::new();
    let next_key = (current.saturating_add(1), 0);
    // A run's targets in dispatch order are usually neighbours in id order ("run:rack").
    let mut targets = Cursor::new(&fleet.targets);
    for &key in pending.into_iter().flat_map(|p| p.range(..next_key)) {
        let in_flight = st.global_active + claimed_here.len() as u64;
        if run_free == 0 {
            let cause = HoldCause::RunConcurrency {
                run: run.id.clone(),
                in_flight: active_count + u32::try_from(claimed_here.len()).unwrap_or(u32::MAX),
                max: policy.max_parallel_racks,
            };
            holds.push(RunHold::new(run, &cause, key));
            break;
        }
        if let Some(limit) = global_limit.filter(|limit| in_flight >= *limit) {
            let cause = HoldCause::GlobalConcurrency { limit, in_flight };
            holds.push(RunHold::new(run, &cause, key));
            break;
        }
        let Some(target) =
            ids.and_then(|ids| ids.get(key.1 as usize)).and_then(|id| targets.get(id))
        else {
            continue;
        };
        if target.status != TargetStatus::Pending {
            continue;
        }
        examined += 1;
        let (cause, unchanged) = match ctx.target_gates(run, target, &st.claimed) {
            Verdict::Pass => {
                actions.push(Action::Claim { target_id: target.id.clone(), lease_until });
                claimed_here.push(target);
                run_free -= 1;
                continue;
            }
            Verdict::Skip(cause) => {
                actions
                    .push(Action::Skip { target_id: target.id.clone(), reason: cause.to_string() });
                continue;
            }
            Verdict::Hold(cause) => (cause, false),
            // The stored hold stands word for word; only its age can matter.
            Verdict::Unchanged(cause) => (cause, true),
        };
        let previous = target.hold.as_ref().filter(|h| h.gate == cause.gate());
        if let (HoldCause::NotReady(not_ready), Some(max_wait), Some(previous)) =
            (&cause, Some(policy.effective_max_wait()), previous)
            && now - previous.since.max(run.updated_at) >= secs(max_wait)
        {
            // Abandon this run's other decisions: a pausing run claims nothing.
            st.plan.examined += examined;
            let timeout = PauseCause::ReadinessTimeout {
                target: target.id.clone(),
                rack: target.rack_id.clone(),
                since: previous.since,
                counted_from: previous.since.max(run.updated_at),
                max_wait,
                not_ready: not_ready.clone(),
            };
            pause(st, timeout);
            // Clear the hold so the wait starts over after a resume.
            st.plan.actions.push(Action::Hold { target_id: target.id.clone(), hold: None });
            return;
        }
        if unchanged {
            continue;
        }
        let hold = cause.hold(policy, previous.map_or(now, |h| h.since));
        if target.hold.as_ref() != Some(&hold) {
            actions.push(Action::Hold { target_id: target.id.clone(), hold: Some(hold) });
        }
    }

    // Gate 3 for the waves not open yet.
    if let Some(&first_later) = pending.and_then(|p| p.range(next_key..).next()) {
        let cause = HoldCause::LaterWave {
            current,
            unfinished,
            size: open_waves.last().map_or(0, |w| w.size),
            next: first_later.0,
            auto_advance: policy.auto_advance,
            soak_seconds: policy.soak_seconds,
        };
        holds.push(RunHold::new(run, &cause, next_key));
    }

    st.global_active += claimed_here.len() as u64;
    for target in claimed_here {
        st.claimed.entry(&target.rack_id).or_default().push((target, &run.operation));
    }
    st.plan.examined += examined;
    st.plan.actions.extend(actions);
    st.plan.run_holds.extend(holds);
}
