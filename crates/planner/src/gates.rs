//! The per-target gates (retry backoff, conflict, service state, readiness) and the run-level
//! checks (maintenance window, safety gates), with the operator-facing messages they produce.
//!
//! Shared by [`crate::plan`] and [`crate::dry_run_holds`]. Every message says what blocks and
//! what would unblock it.

use crate::config::PlannerConfig;
use crate::conflict::{Decision, KindSet, TaskFacts};
use crate::cursor::Cursor;
use chrono::Timelike;
use std::collections::BTreeMap;
use steward_proto::{
    ComponentId, Gate, GateScope, OnNotReady, Operation, OperationClass, Phase, RackId, Run,
    RunPolicy, Target, TargetStatus, Timestamp, policy::DEFAULT_DISALLOWED_SERVICE_STATES,
};
use steward_state_machine::status::is_stale;
use steward_state_machine::{ComponentEntry, Fleet};

/// What the per-target gates decide for one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every gate passed: the target may be claimed.
    Pass,
    /// The first gate that holds it, with its message.
    Hold(Gate, String),
    /// Policy says skip it: the gate that decided and the reason.
    Skip(Gate, String),
    /// The target's stored hold still holds, word for word (readiness fast path).
    Unchanged,
}

/// Targets claimed earlier in the same plan, by rack, with their run's operation: they occupy
/// the rack exactly like active targets do.
pub(crate) type Claimed<'a> = BTreeMap<&'a RackId, Vec<(&'a Target, &'a Operation)>>;

/// Evaluation context.
pub(crate) struct Ctx<'a> {
    pub fleet: &'a Fleet,
    pub config: &'a PlannerConfig,
    pub now: Timestamp,
}

impl<'a> Ctx<'a> {
    /// Gates 5–7 (and the retry backoff) for `target` of `run`. For a blocked target being
    /// re-claimed, the target itself is not a conflict with itself and its backoff was checked.
    pub fn target_gates(&self, run: &Run, target: &Target, claimed: &Claimed<'_>) -> Verdict {
        if target.status == TargetStatus::Pending
            && let Some(retry_after) = target.retry_after.filter(|at| *at > self.now)
        {
            return Verdict::Hold(
                Gate::RetryBackoff,
                format!(
                    "attempt {} failed; attempt {} may start at {} (retry_backoff_seconds {})",
                    target.attempt.saturating_sub(1).max(1),
                    target.attempt,
                    fmt_time(retry_after),
                    run.policy.retry_backoff_seconds
                ),
            );
        }
        if let Some(message) = self.conflict(run, target, claimed) {
            return Verdict::Hold(Gate::Conflict, message);
        }
        if let Some(verdict) = self.still_held(run, target) {
            return verdict;
        }
        self.components(run, target)
    }

    fn kinds(&self, components: &[ComponentId]) -> Option<KindSet> {
        let mut set = KindSet::default();
        for id in components {
            set.insert(self.fleet.components.get(id)?.component.kind);
        }
        Some(set)
    }

    /// Gate 5: a conflicting active task of any run on the same rack.
    fn conflict(&self, run: &Run, target: &Target, claimed: &Claimed<'_>) -> Option<String> {
        let rules = &self.config.conflict_rules;
        let rack = &target.rack_id;
        let from_fleet = self.fleet.rack_active.get(rack).into_iter().flatten().map(|id| {
            let other = self.fleet.targets.get(id);
            let operation =
                other.and_then(|t| self.fleet.runs.get(&t.run_id)).map(|r| &r.operation);
            (id, other, operation, other.map(|t| t.status))
        });
        let from_plan = claimed.get(rack).into_iter().flatten().map(|(other, operation)| {
            (&other.id, Some(*other), Some(*operation), Some(TargetStatus::Claimed))
        });
        let mut candidate_kinds = None;
        for (id, other, operation, status) in from_fleet.chain(from_plan) {
            if *id == target.id {
                continue;
            }
            let (Some(other), Some(operation), Some(status)) = (other, operation, status) else {
                return Some(format!(
                    "rack {rack} has active target {id} whose run or operation is unknown, so it \
                     counts as a conflict; retried when that target finishes"
                ));
            };
            let kinds = *candidate_kinds.get_or_insert_with(|| self.kinds(&target.components));
            let candidate = TaskFacts { operation: run.operation.kind().as_str(), kinds };
            let active = TaskFacts {
                operation: operation.kind().as_str(),
                kinds: self.kinds(&other.components),
            };
            let overlap = target.components.iter().any(|c| other.components.contains(c));
            if let Decision::Conflict(why) = rules.decide(&candidate, &active, overlap) {
                return Some(format!(
                    "rack {rack} busy with run {} target {} ({}, {}): {why}; retried when that \
                     task finishes",
                    other.run_id, other.id, operation, status
                ));
            }
        }
        None
    }

    /// Gates 6 and 7 in one pass over the target's components (one lookup each): a component
    /// whose service state the policy does not allow skips the target (gate 6 comes first, so
    /// it wins wherever it is found); otherwise every component's phase must allow the
    /// operation's class (gate 7). Unknown or stale status always holds, never skips: missing
    /// data must not decide anything.
    fn components(&self, run: &Run, target: &Target) -> Verdict {
        let class = run.operation.class();
        let max_age = self.fleet.config.status_max_age;
        let mut first: Option<(&ComponentId, Option<&ComponentEntry>)> = None;
        let mut more = 0usize;
        let entries = self.entries(&target.components);
        for (id, entry) in target.components.iter().zip(entries) {
            if let Some(entry) = entry
                && !run.policy.allows_service_state(&entry.service_state)
            {
                return Verdict::Skip(
                    Gate::ServiceState,
                    format!(
                        "component {id} ({}) is in service state {}, which the run's policy does \
                         not allow ({}); skipped",
                        entry.component.kind,
                        entry.service_state,
                        allowed_states(&run.policy)
                    ),
                );
            }
            let ready = entry.is_some_and(|e| match &e.status {
                Some(status) => {
                    !status.blocked_operations.contains(class)
                        && !is_stale(e.last_observed_at, self.now, max_age)
                }
                None => false,
            });
            if !ready {
                if first.is_none() {
                    first = Some((id, entry));
                } else {
                    more += 1;
                }
            }
        }
        let Some((id, entry)) = first else {
            return Verdict::Pass;
        };
        let (message, unknown) = self.not_ready(id, entry, class);
        if run.policy.on_not_ready == OnNotReady::Skip && !unknown {
            // Only a known not-ready phase skips; unknown status holds (fail closed).
            let others = match more {
                0 => String::new(),
                1 => " (1 more component not ready)".to_string(),
                n => format!(" ({n} more components not ready)"),
            };
            let message = message.replace("; waits until ready", "");
            return Verdict::Skip(
                Gate::Readiness,
                format!("{message}{others}; skipped (on_not_ready skip)"),
            );
        }
        // The hold names the first blocking component only, so the message stays the same
        // while that component stays as it is (see `still_held`).
        Verdict::Hold(Gate::Readiness, message)
    }

    /// Fast path for a target already held by readiness: if the component its stored hold
    /// names is still not ready in the same way, the hold stands unchanged and the rest of the
    /// rack is not re-read (a rack's gates 6–7 are re-evaluated in full once that component
    /// changes). This keeps re-planning a queue of not-ready racks cheap.
    fn still_held(&self, run: &Run, target: &Target) -> Option<Verdict> {
        let hold = target.hold.as_ref().filter(|h| h.gate == Gate::Readiness)?;
        let named = hold.message.strip_prefix("component ")?.split(' ').next()?;
        // One lookup by name; then make sure the component belongs to this target, comparing
        // pointers first (ids are shared `Arc`s, and comparing text reads every id's heap data).
        let (id, entry) = self.fleet.components.get_key_value(named)?;
        let same = |c: &&ComponentId| std::ptr::eq(c.as_str(), id.as_str());
        let id = match target.components.iter().find(same) {
            Some(id) => id,
            None => target.components.iter().find(|c| *c == id)?,
        };
        let entry = Some(entry);
        let class = run.operation.class();
        let ready = entry.is_some_and(|e| match &e.status {
            Some(status) => {
                !status.blocked_operations.contains(class)
                    && !is_stale(e.last_observed_at, self.now, self.fleet.config.status_max_age)
            }
            None => false,
        });
        if ready {
            return None;
        }
        let (message, unknown) = self.not_ready(id, entry, class);
        if run.policy.on_not_ready == OnNotReady::Skip && !unknown {
            return None;
        }
        (hold_message(&run.policy, Gate::Readiness, message) == hold.message)
            .then_some(Verdict::Unchanged)
    }

    /// The inventory entries of `ids` (in the same order), `None` for unknown ids.
    ///
    /// A rack's component ids are usually adjacent in id order, so the ids are visited in
    /// sorted order through a [`Cursor`]: a handful of neighbouring keys instead of one tree
    /// descent per id (each comparing against keys scattered over the heap).
    fn entries(&self, ids: &[ComponentId]) -> Vec<Option<&'a ComponentEntry>> {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_unstable_by(|a, b| ids[*a].cmp(&ids[*b]));
        let mut out = vec![None; ids.len()];
        let mut cursor = Cursor::new(&self.fleet.components);
        for index in order {
            out[index] = cursor.get(&ids[index]);
        }
        out
    }

    /// Why component `id` is not ready, and whether that is for lack of a usable status.
    fn not_ready(
        &self,
        id: &ComponentId,
        entry: Option<&ComponentEntry>,
        class: OperationClass,
    ) -> (String, bool) {
        let Some(entry) = entry else {
            return (
                format!("component {id} is not in the inventory; held until it is imported"),
                true,
            );
        };
        let kind = entry.component.kind;
        match &entry.status {
            None => (
                format!(
                    "component {id} ({kind}) has no status yet (never observed); waits until Core \
                     reports it ready"
                ),
                true,
            ),
            Some(_)
                if is_stale(entry.last_observed_at, self.now, self.fleet.config.status_max_age) =>
            {
                let why = match entry.last_observed_at {
                    None => "not re-observed since restart".to_string(),
                    Some(at) => format!("stale: last observed at {}", fmt_time(at)),
                };
                (
                    format!(
                        "component {id} ({kind}) has no fresh status ({why}); waits until Core \
                         reports it ready"
                    ),
                    true,
                )
            }
            Some(status) => (
                format!(
                    "component {id} ({kind}) is {} (Core: {}), which blocks {class}; waits until \
                     ready",
                    status.phase, status.reason
                ),
                status.phase == Phase::Unknown,
            ),
        }
    }
}

/// The hold message of a gate verdict as stored on the target: readiness holds say when the run
/// would pause.
pub(crate) fn hold_message(policy: &RunPolicy, gate: Gate, message: String) -> String {
    match (gate, policy.max_wait_seconds) {
        (Gate::Readiness, Some(max_wait)) => {
            format!("{message} (the run pauses after {max_wait}s of waiting)")
        }
        _ => message,
    }
}

/// The allowed service states of a policy, for messages.
fn allowed_states(policy: &RunPolicy) -> String {
    match &policy.allowed_service_states {
        Some(states) => {
            let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
            format!("allowed: {}", names.join(", "))
        }
        None => format!("allowed: all but {}", DEFAULT_DISALLOWED_SERVICE_STATES.join(", ")),
    }
}

/// Gate 2: `None` when `now` is inside a window (or there are none), else the hold message.
pub(crate) fn maintenance_window(policy: &RunPolicy, now: Timestamp) -> Option<String> {
    if policy.maintenance_windows.is_empty() {
        return None;
    }
    let minute = now.hour() * 60 + now.minute();
    if policy.maintenance_windows.iter().any(|w| w.contains(minute)) {
        return None;
    }
    let windows: Vec<String> =
        policy.maintenance_windows.iter().map(|w| format!("{}-{}", w.start, w.end)).collect();
    // The nearest window start after now, so the operator knows when dispatch resumes.
    let next = policy
        .maintenance_windows
        .iter()
        .filter_map(|w| w.minutes())
        .map(|(start, _)| ((start + 1440 - minute) % 1440, start))
        .min();
    let resume = match next {
        Some((_, start)) => {
            format!("; dispatch resumes at {:02}:{:02} UTC", start / 60, start % 60)
        }
        None => String::new(),
    };
    Some(format!("outside every maintenance window ({} UTC){resume}", windows.join(", ")))
}

/// Safety gates: the message of the first tripped gate, or `None`.
pub(crate) fn safety_trip(run: &Run) -> Option<String> {
    let wave = run.waves.get(run.current_wave.saturating_sub(1) as usize);
    for gate in &run.policy.safety_gates {
        let (failures, total, scope) = match gate.scope {
            GateScope::CurrentWave => {
                let Some(wave) = wave else { continue };
                let failures = wave.counts.failures().saturating_sub(wave.acknowledged_failures);
                (failures, wave.size, format!("wave {}", wave.number))
            }
            GateScope::Run => {
                let acknowledged: u32 = run.waves.iter().map(|w| w.acknowledged_failures).sum();
                let failures = run.counts.failures().saturating_sub(acknowledged);
                (failures, run.counts.total(), "the run".to_string())
            }
        };
        let numbers =
            format!("{failures} of {total} target{} failed", if total == 1 { "" } else { "s" });
        let tail = "; resume to acknowledge these failures and continue, or cancel the run";
        if let Some(count) = gate.failure_count
            && failures >= count.max
        {
            return Some(format!(
                "safety gate failure_count {} tripped in {scope}: {numbers}{tail}",
                count.max
            ));
        }
        if let Some(rate) = gate.failure_rate
            && total > 0
            && f64::from(failures) * 100.0 >= rate.percent * f64::from(total)
        {
            return Some(format!(
                "safety gate failure_rate {}% tripped in {scope}: {numbers}{tail}",
                rate.percent
            ));
        }
    }
    None
}

/// A timestamp as operators read it.
pub(crate) fn fmt_time(at: Timestamp) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
