//! `plan(fleet, config, now)`: the dispatch plan — actions for the reducer and run-level holds.
//!
//! Per non-terminal run, in (created_at, id) order:
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
//! Fair share (step 8 under `global_max_parallel`): the runs' walks are interleaved. Each free
//! global slot goes to the running run with the fewest targets in flight (active plus claimed
//! in this plan), the oldest first on ties, which walks its queue until it claims one target;
//! from equal counts that is round-robin over the runs, so a second run makes progress while
//! the first still has pending racks. Without a global limit each run walks its whole queue in
//! turn. A run that pauses in its walk (readiness timeout) claims nothing: the pass is planned
//! again without it (at most once per pausing run).
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
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, btree_set};
use std::fmt;
use std::iter::Peekable;
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

/// What one dispatch pass shares between the runs' walks.
struct Slots<'a> {
    /// Active targets over all runs plus the ones claimed so far in this pass.
    global_active: u64,
    /// Targets claimed so far in this pass, per rack: they occupy the rack like active ones.
    claimed: Claimed<'a>,
}

/// One run's part of the plan (steps 1–7 and, for a pausing run, its pause), kept apart so the
/// plan lists actions and run holds grouped by run in planning order.
#[derive(Default)]
struct RunOut {
    actions: Vec<Action>,
    holds: Vec<RunHold>,
    examined: u32,
}

/// Computes the dispatch plan for `fleet` at `now`. Pure and deterministic.
pub fn plan(fleet: &Fleet, config: &PlannerConfig, now: Timestamp) -> Plan {
    let ctx = Ctx { fleet, config, now };
    let mut runs: Vec<&Run> = fleet.runs.values().filter(|r| !r.status.is_terminal()).collect();
    runs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    let mut outs: Vec<RunOut> = Vec::with_capacity(runs.len());
    let mut walks: Vec<Walk<'_>> = Vec::new();
    for (index, run) in runs.iter().enumerate() {
        let mut out = RunOut::default();
        if let Some(walk) = prepare_run(&ctx, run, index, &mut out) {
            walks.push(walk);
        }
        outs.push(out);
    }
    // Step 8 for every run at once. A run that pauses in the walk (readiness timeout) claims
    // nothing, so the pass starts over without it: the slots it took go to the others.
    while let Some(position) = dispatch(&ctx, &mut walks) {
        let walk = walks.remove(position);
        let index = walk.index;
        walk.into_pause(&mut outs[index]);
    }
    let mut plan = Plan::default();
    let mut walks = walks.into_iter().peekable();
    for (index, out) in outs.into_iter().enumerate() {
        plan.actions.extend(out.actions);
        plan.run_holds.extend(out.holds);
        plan.examined += out.examined;
        if let Some(walk) = walks.next_if(|w| w.index == index) {
            plan.examined += walk.examined_blocked + walk.examined;
            plan.actions.extend(walk.reclaims);
            plan.actions.extend(walk.actions);
            plan.run_holds.extend(walk.holds);
        }
    }
    plan
}

/// One pass of step 8 over the walks; `Some(position)` of a walk that pauses the run instead.
///
/// Without a global limit every run walks its queue in turn, oldest first. Under the limit,
/// free global slots are shared fairly: each slot goes to the run with the fewest targets in
/// flight (active ones plus the ones claimed in this pass), the oldest on ties, and that run
/// walks its queue until it claims one target (or runs out of pending targets or of its own
/// slots). From equal counts this is round-robin over the running runs, oldest first; a run
/// that already holds more slots than another waits until the other has caught up, so a
/// second run makes progress while the first still has pending racks.
fn dispatch<'a>(ctx: &Ctx<'a>, walks: &mut [Walk<'a>]) -> Option<usize> {
    let mut slots =
        Slots { global_active: u64::from(ctx.fleet.active_total), claimed: Claimed::new() };
    for walk in walks.iter_mut() {
        walk.restart(ctx);
    }
    if ctx.config.global_max_parallel.is_none() {
        for (position, walk) in walks.iter_mut().enumerate() {
            loop {
                match walk.step(ctx, &mut slots) {
                    Step::Claimed => {}
                    Step::Done => break,
                    Step::Pausing => return Some(position),
                }
            }
        }
        return None;
    }
    let mut queue: BinaryHeap<Reverse<(u64, usize)>> =
        walks.iter().enumerate().map(|(position, w)| Reverse((w.in_flight(), position))).collect();
    while let Some(Reverse((_, position))) = queue.pop() {
        let walk = &mut walks[position];
        match walk.step(ctx, &mut slots) {
            Step::Claimed => queue.push(Reverse((walk.in_flight(), position))),
            Step::Done => {}
            Step::Pausing => return Some(position),
        }
    }
    None
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

/// Steps 1–7 for `run`: lease expiries, the run-level gates and the re-claims of blocked
/// targets go to `out`; `Some(walk)` when the run goes on to dispatch pending targets (step 8).
fn prepare_run<'a>(
    ctx: &Ctx<'a>,
    run: &'a Run,
    index: usize,
    out: &mut RunOut,
) -> Option<Walk<'a>> {
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
    let hold_all = |out: &mut RunOut, cause: HoldCause| {
        if has_pending {
            out.holds.push(RunHold::new(run, &cause, (0, 0)));
        }
    };

    // 1. Leases run out whatever the run's status: the target goes back to pending.
    for target in &active {
        if target.status == TargetStatus::Claimed && target.lease_until.is_none_or(|l| l <= now) {
            out.actions.push(Action::ExpireLease { target_id: target.id.clone() });
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
        hold_all(out, cause);
        return None;
    }

    let current = run.current_wave;
    let last_wave = u32::try_from(run.waves.len()).unwrap_or(u32::MAX);

    // 3. Finished: every target terminal and nothing left to open.
    if run.counts.all_terminal() && current >= last_wave {
        out.actions.push(Action::Finish { run_id: run.id.clone() });
        return None;
    }

    // 4. Safety gates, then conflict retry timeouts: both pause the run.
    let pause = |out: &mut RunOut, cause: PauseCause| {
        let (reason, message) = (cause.reason(), cause.to_string());
        hold_all(out, HoldCause::Pausing { run: run.id.clone(), pause: cause });
        out.actions.push(Action::Pause { run_id: run.id.clone(), reason, message });
    };
    if let Some(cause) = safety_trip(run) {
        pause(out, cause);
        return None;
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
            pause(out, cause);
            return None;
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
                out.actions.push(Action::Advance { run_id: run.id.clone(), wave: next });
                hold_all(out, HoldCause::WaveOpening { finished: current, counts, next });
            } else {
                let cause = HoldCause::WaveSoaking {
                    finished: current,
                    counts,
                    finished_at,
                    next,
                    opens_at,
                    soak_seconds: policy.soak_seconds,
                };
                hold_all(out, cause);
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
            pause(out, cause);
        }
        return None;
    }

    // 6. Gate 2: maintenance windows.
    if let Some(cause) = maintenance_window(policy, now) {
        hold_all(out, cause);
        return None;
    }

    let lease_until = after(now, policy.claim_lease_seconds);
    let mut reclaims: Vec<Action> = Vec::new();
    let mut examined_blocked = 0u32;

    // 7. Blocked targets whose backoff passed: claimed again if the gates allow (they already
    //    hold their slot, so they take no global one). A blocked target cannot carry a hold;
    //    it simply stays blocked. Every blocked target is in `rack_active`, so a pending target
    //    claimed in step 8 is checked against it whatever the order.
    let none_claimed = Claimed::new();
    for target in active.iter().filter(|t| t.status == TargetStatus::Blocked) {
        if target.retry_after.is_some_and(|at| at > now) {
            continue;
        }
        examined_blocked += 1;
        if ctx.target_gates(run, target, &none_claimed) == Verdict::Pass {
            reclaims.push(Action::Claim { target_id: target.id.clone(), lease_until });
        }
    }

    let active_count = u32::try_from(active.len()).unwrap_or(u32::MAX);
    Some(Walk {
        index,
        run,
        active_count,
        unfinished,
        open_waves_size: open_waves.last().map_or(0, |w| w.size),
        lease_until,
        pending,
        ids: fleet.run_targets.get(&run.id),
        reclaims,
        examined_blocked,
        keys: None,
        targets: Cursor::new(&fleet.targets),
        run_free: 0,
        claimed_here: 0,
        actions: Vec::new(),
        holds: Vec::new(),
        examined: 0,
        pausing: None,
    })
}

/// What one [`Walk::step`] did.
enum Step {
    /// Claimed one pending target (one global slot taken).
    Claimed,
    /// Nothing more to claim in this pass (queue, run slots or global slots exhausted).
    Done,
    /// A readiness hold timed out: the run pauses and claims nothing.
    Pausing,
}

/// Step 8 of one run: its pending targets of the open waves in dispatch order, walked a claim
/// at a time so free global slots can be shared between runs (see [`dispatch`]).
struct Walk<'a> {
    /// Position in planning order (oldest first), the tie-break of the fair share.
    index: usize,
    run: &'a Run,
    active_count: u32,
    /// Unfinished targets of the open waves (for the later-wave hold).
    unfinished: u32,
    /// Size of the last open wave (for the later-wave hold).
    open_waves_size: u32,
    lease_until: Timestamp,
    pending: Option<&'a BTreeSet<PendingKey>>,
    /// The run's targets by position (`PendingKey.1`).
    ids: Option<&'a Vec<TargetId>>,
    /// Step 7's re-claims of blocked targets.
    reclaims: Vec<Action>,
    examined_blocked: u32,
    // The state of the current pass, reset by `restart`.
    keys: Option<Peekable<btree_set::Range<'a, PendingKey>>>,
    targets: Cursor<'a, TargetId, Target>,
    run_free: u32,
    claimed_here: u32,
    actions: Vec<Action>,
    holds: Vec<RunHold>,
    examined: u32,
    pausing: Option<(PauseCause, TargetId)>,
}

impl<'a> Walk<'a> {
    /// The first pending key of the waves not open yet.
    fn next_key(&self) -> PendingKey {
        (self.run.current_wave.saturating_add(1), 0)
    }

    /// Forgets what an earlier pass decided and starts at the first pending target again.
    fn restart(&mut self, ctx: &Ctx<'a>) {
        let next_key = self.next_key();
        self.keys = self.pending.map(|p| p.range(..next_key).peekable());
        self.targets = Cursor::new(&ctx.fleet.targets);
        self.run_free = self.run.policy.max_parallel_racks.saturating_sub(self.active_count);
        self.claimed_here = 0;
        self.actions.clear();
        self.holds.clear();
        self.examined = 0;
        self.pausing = None;
    }

    /// Targets of the run in flight: active ones plus the ones claimed in this pass.
    fn in_flight(&self) -> u64 {
        u64::from(self.active_count) + u64::from(self.claimed_here)
    }

    /// Walks on until one target is claimed, the walk is over, or the run must pause.
    fn step(&mut self, ctx: &Ctx<'a>, slots: &mut Slots<'a>) -> Step {
        let run = self.run;
        let policy = &run.policy;
        let now = ctx.now;
        loop {
            let Some(&key) = self.keys.as_mut().and_then(|k| k.peek().copied()) else {
                self.finish();
                return Step::Done;
            };
            if self.run_free == 0 {
                let cause = HoldCause::RunConcurrency {
                    run: run.id.clone(),
                    in_flight: self.active_count.saturating_add(self.claimed_here),
                    max: policy.max_parallel_racks,
                };
                self.holds.push(RunHold::new(run, &cause, key));
                self.finish();
                return Step::Done;
            }
            let in_flight = slots.global_active;
            if let Some(limit) =
                ctx.config.global_max_parallel.map(u64::from).filter(|limit| in_flight >= *limit)
            {
                let cause = HoldCause::GlobalConcurrency { limit, in_flight };
                self.holds.push(RunHold::new(run, &cause, key));
                self.finish();
                return Step::Done;
            }
            if let Some(keys) = self.keys.as_mut() {
                keys.next();
            }
            let Some(target) = self
                .ids
                .and_then(|ids| ids.get(key.1 as usize))
                .and_then(|id| self.targets.get(id))
            else {
                continue;
            };
            if target.status != TargetStatus::Pending {
                continue;
            }
            self.examined += 1;
            let (cause, unchanged) = match ctx.target_gates(run, target, &slots.claimed) {
                Verdict::Pass => {
                    let lease_until = self.lease_until;
                    self.actions.push(Action::Claim { target_id: target.id.clone(), lease_until });
                    slots.global_active += 1;
                    slots
                        .claimed
                        .entry(&target.rack_id)
                        .or_default()
                        .push((target, &run.operation));
                    self.claimed_here = self.claimed_here.saturating_add(1);
                    self.run_free -= 1;
                    return Step::Claimed;
                }
                Verdict::Skip(cause) => {
                    self.actions.push(Action::Skip {
                        target_id: target.id.clone(),
                        reason: cause.to_string(),
                    });
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
                let timeout = PauseCause::ReadinessTimeout {
                    target: target.id.clone(),
                    rack: target.rack_id.clone(),
                    since: previous.since,
                    counted_from: previous.since.max(run.updated_at),
                    max_wait,
                    not_ready: not_ready.clone(),
                };
                self.pausing = Some((timeout, target.id.clone()));
                return Step::Pausing;
            }
            if unchanged {
                continue;
            }
            let hold = cause.hold(policy, previous.map_or(now, |h| h.since));
            if target.hold.as_ref() != Some(&hold) {
                self.actions.push(Action::Hold { target_id: target.id.clone(), hold: Some(hold) });
            }
        }
    }

    /// Ends the walk: no more keys, and gate 3's hold for the waves not open yet.
    fn finish(&mut self) {
        self.keys = None;
        let next_key = self.next_key();
        if let Some(&first_later) = self.pending.and_then(|p| p.range(next_key..).next()) {
            let policy = &self.run.policy;
            let cause = HoldCause::LaterWave {
                current: self.run.current_wave,
                unfinished: self.unfinished,
                size: self.open_waves_size,
                next: first_later.0,
                auto_advance: policy.auto_advance,
                soak_seconds: policy.soak_seconds,
            };
            self.holds.push(RunHold::new(self.run, &cause, next_key));
        }
    }

    /// The run's pause after a readiness timeout: every other decision of its walk (claims,
    /// re-claims, holds) is abandoned, the run is held as pausing, and the timed-out target's
    /// hold is cleared so its wait starts over after a resume.
    fn into_pause(self, out: &mut RunOut) {
        out.examined += self.examined_blocked + self.examined;
        let Some((cause, target_id)) = self.pausing else { return };
        let run = self.run;
        let (reason, message) = (cause.reason(), cause.to_string());
        out.holds.push(RunHold::new(
            run,
            &HoldCause::Pausing { run: run.id.clone(), pause: cause },
            (0, 0),
        ));
        out.actions.push(Action::Pause { run_id: run.id.clone(), reason, message });
        out.actions.push(Action::Hold { target_id, hold: None });
    }
}
