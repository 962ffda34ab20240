//! The per-target gates (retry backoff, conflict, service state, readiness) and the run-level
//! checks (maintenance window, safety gates).
//!
//! Shared by [`crate::plan`] and [`crate::dry_run_holds`]. The gates return causes
//! ([`crate::cause`]), never text: the messages are rendered there.

use crate::cause::{ComponentState, HoldCause, NotReady, PauseCause, SafetyLimit, SkipCause};
use crate::config::PlannerConfig;
use crate::conflict::{Decision, KindSet, TaskFacts};
use crate::cursor::Cursor;
use chrono::Timelike;
use std::collections::BTreeMap;
use steward_proto::{
    ComponentId, Gate, GateScope, OnNotReady, Operation, OperationClass, RackId, Run, RunPolicy,
    Target, TargetStatus, Timestamp,
};
use steward_state_machine::status::is_stale;
use steward_state_machine::{ComponentEntry, Fleet};

/// What the per-target gates decide for one target.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Every gate passed: the target may be claimed.
    Pass,
    /// The first gate that holds it, and why.
    Hold(HoldCause),
    /// Policy says skip it, and why.
    Skip(SkipCause),
    /// The target's stored readiness hold still holds, word for word, for this cause (fast
    /// path: the rest of the rack was not re-read).
    Unchanged(HoldCause),
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
            return Verdict::Hold(HoldCause::RetryBackoff {
                attempt: target.attempt,
                retry_after,
                backoff_seconds: run.policy.retry_backoff_seconds,
            });
        }
        if let Some(cause) = self.conflict(run, target, claimed) {
            return Verdict::Hold(cause);
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
    fn conflict(&self, run: &Run, target: &Target, claimed: &Claimed<'_>) -> Option<HoldCause> {
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
                return Some(HoldCause::UnknownActive { rack: rack.clone(), target: id.clone() });
            };
            let kinds = *candidate_kinds.get_or_insert_with(|| self.kinds(&target.components));
            let candidate = TaskFacts { operation: run.operation.kind().as_str(), kinds };
            let active = TaskFacts {
                operation: operation.kind().as_str(),
                kinds: self.kinds(&other.components),
            };
            let overlap = target.components.iter().any(|c| other.components.contains(c));
            if let Decision::Conflict(why) = rules.decide(&candidate, &active, overlap) {
                return Some(HoldCause::Conflict {
                    rack: rack.clone(),
                    run: other.run_id.clone(),
                    target: other.id.clone(),
                    operation: operation.clone(),
                    status,
                    why,
                });
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
        let mut first: Option<(&ComponentId, Option<&ComponentEntry>)> = None;
        let mut more = 0usize;
        let entries = self.entries(&target.components);
        for (id, entry) in target.components.iter().zip(entries) {
            if let Some(entry) = entry
                && !run.policy.allows_service_state(&entry.service_state)
            {
                return Verdict::Skip(SkipCause::ServiceState {
                    component: id.clone(),
                    kind: entry.component.kind,
                    service_state: entry.service_state.clone(),
                    allowed: run.policy.allowed_service_states.clone(),
                });
            }
            if !self.ready(entry, class) {
                if first.is_none() {
                    first = Some((id, entry));
                } else {
                    more += 1;
                }
            }
        }
        let Some((id, entry)) = first else {
            return match already_current(run, &target.components, self.fleet) {
                Some(cause) => Verdict::Skip(cause),
                None => Verdict::Pass,
            };
        };
        let not_ready = self.not_ready(id, entry, class);
        if run.policy.on_not_ready == OnNotReady::Skip && !not_ready.unknown() {
            // Only a known not-ready phase skips; unknown status holds (fail closed).
            return Verdict::Skip(SkipCause::NotReady { not_ready, more });
        }
        // The hold names the first blocking component only, so the hold stays the same while
        // that component stays as it is (see `still_held`).
        Verdict::Hold(HoldCause::NotReady(not_ready))
    }

    /// Fast path for a target already held by readiness: if the component its stored hold
    /// names (`Hold::component`) is still not ready in the same way, the hold stands unchanged
    /// and the rest of the rack is not re-read (a rack's gates 6–7 are re-evaluated in full once
    /// that component changes). This keeps re-planning a queue of not-ready racks cheap.
    fn still_held(&self, run: &Run, target: &Target) -> Option<Verdict> {
        let hold = target.hold.as_ref().filter(|h| h.gate == Gate::Readiness)?;
        let named = hold.component.as_ref()?;
        // One lookup by id; then make sure the component belongs to this target, comparing
        // pointers first (ids are shared `Arc`s, and comparing text reads every id's heap data).
        let (id, entry) = self.fleet.components.get_key_value(named)?;
        let same = |c: &&ComponentId| {
            std::ptr::eq(c.as_str(), id.as_str()) || std::ptr::eq(c.as_str(), named.as_str())
        };
        let id = match target.components.iter().find(same) {
            Some(id) => id,
            None => target.components.iter().find(|c| *c == id)?,
        };
        let class = run.operation.class();
        if self.ready(Some(entry), class) {
            return None;
        }
        let not_ready = self.not_ready(id, Some(entry), class);
        if run.policy.on_not_ready == OnNotReady::Skip && !not_ready.unknown() {
            return None;
        }
        let cause = HoldCause::NotReady(not_ready);
        (cause.message(&run.policy) == hold.message).then_some(Verdict::Unchanged(cause))
    }

    /// Whether a component (its inventory entry, `None` if unknown) lets `class` start now:
    /// a fresh status whose phase does not block it.
    fn ready(&self, entry: Option<&ComponentEntry>, class: OperationClass) -> bool {
        entry.is_some_and(|e| match &e.status {
            Some(status) => {
                !status.blocked_operations.contains(class)
                    && !is_stale(e.last_observed_at, self.now, self.fleet.config.status_max_age)
            }
            None => false,
        })
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

    /// Why component `id` (not ready for `class`) is not ready.
    fn not_ready(
        &self,
        id: &ComponentId,
        entry: Option<&ComponentEntry>,
        class: OperationClass,
    ) -> NotReady {
        let state = match entry {
            None => ComponentState::Missing,
            Some(entry) => {
                let kind = entry.component.kind;
                match &entry.status {
                    None => ComponentState::NeverObserved { kind },
                    Some(_)
                        if is_stale(
                            entry.last_observed_at,
                            self.now,
                            self.fleet.config.status_max_age,
                        ) =>
                    {
                        ComponentState::Stale { kind, last_observed_at: entry.last_observed_at }
                    }
                    Some(status) => ComponentState::Blocked {
                        kind,
                        phase: status.phase,
                        reason: status.reason.clone(),
                        class,
                    },
                }
            }
        };
        NotReady { component: id.clone(), state }
    }
}

/// Gate 2: `None` when `now` is inside a window (or there are none), else why it is not.
pub(crate) fn maintenance_window(policy: &RunPolicy, now: Timestamp) -> Option<HoldCause> {
    if policy.maintenance_windows.is_empty() {
        return None;
    }
    let minute = now.hour() * 60 + now.minute();
    if policy.maintenance_windows.iter().any(|w| w.contains(minute)) {
        return None;
    }
    // The nearest window start after now, so the operator knows when dispatch resumes.
    let resumes_at = policy
        .maintenance_windows
        .iter()
        .filter_map(|w| w.minutes())
        .map(|(start, _)| ((start + 1440 - minute) % 1440, start))
        .min()
        .map(|(_, start)| start);
    Some(HoldCause::OutsideWindows { windows: policy.maintenance_windows.clone(), resumes_at })
}

/// Safety gates: the first tripped gate, or `None`.
pub(crate) fn safety_trip(run: &Run) -> Option<PauseCause> {
    let wave = run.waves.get(run.current_wave.saturating_sub(1) as usize);
    for gate in &run.policy.safety_gates {
        let (failures, total, scope) = match gate.scope {
            GateScope::CurrentWave => {
                let Some(wave) = wave else { continue };
                let failures = wave.counts.failures().saturating_sub(wave.acknowledged_failures);
                (failures, wave.size, Some(wave.number))
            }
            GateScope::Run => {
                let acknowledged: u32 = run.waves.iter().map(|w| w.acknowledged_failures).sum();
                let failures = run.counts.failures().saturating_sub(acknowledged);
                (failures, run.counts.total(), None)
            }
        };
        let tripped = |limit| PauseCause::SafetyGate { limit, wave: scope, failures, total };
        if let Some(count) = gate.failure_count
            && failures >= count.max
        {
            return Some(tripped(SafetyLimit::Count(count.max)));
        }
        if let Some(rate) = gate.failure_rate
            && total > 0
            && f64::from(failures) * 100.0 >= rate.percent * f64::from(total)
        {
            return Some(tripped(SafetyLimit::Rate(rate.percent)));
        }
    }
    None
}

/// Policy `skip_if_current` for `firmware_update`: every selected component the update covers
/// reports the requested version. Asked only once every component is ready (so its facts are
/// fresh): a stale or unknown component holds instead, and missing data never skips.
fn already_current(run: &Run, components: &[ComponentId], fleet: &Fleet) -> Option<SkipCause> {
    let steward_proto::Operation::FirmwareUpdate { version, components: kinds } = &run.operation
    else {
        return None;
    };
    if !run.policy.skip_if_current {
        return None;
    }
    let mut covered = 0usize;
    for id in components {
        let component = &fleet.components.get(id)?.component;
        if !kinds.is_empty() && !kinds.contains(&component.kind) {
            continue;
        }
        if component.firmware_version.as_deref() != Some(version.as_str()) {
            return None;
        }
        covered += 1;
    }
    (covered > 0).then(|| SkipCause::AlreadyCurrent { version: version.clone() })
}
