//! Time and freshness of component observations.
//!
//! An observation carries Core's `observed_at`. The fleet keeps the newest one per component
//! (`last_observed_at`, memory only) and ignores anything older, so a late or replayed
//! observation can never make a component read fresher than its newest observation. A status
//! whose observation is older than `status_max_age` is stale: [`Fleet::stale_events`] finds the
//! components that crossed the age at `now` and the reducer logs a `ComponentStale` event for
//! each, which sets the status to `unknown` (persisted, notified as a phase change, replayed).
//! Time is always an argument: nothing here reads a clock.

use crate::effect::Effect;
use crate::error::Rejected;
use crate::fleet::{ComponentEntry, Fleet, FleetEvent};
use crate::status::{is_stale, make_stale};
use steward_proto::{ComponentId, Phase, Timestamp};

/// Largest accepted distance of an `observed_at` into the future (Core's clock ahead of ours),
/// in seconds. Beyond it a pushed observation is refused and one of Core's is dropped (counted).
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 30;

/// How an observation's time relates to what the fleet already knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObservationTime {
    /// Not older than the component's current observation, not too far in the future.
    Acceptable,
    /// Older than the component's current observation: ignored.
    OutOfOrder,
    /// Further in the future than [`MAX_CLOCK_SKEW_SECONDS`]: refused.
    FromTheFuture,
}

impl Fleet {
    /// Classifies an observation of `component` made at `observed_at` (absent: `now`).
    pub fn observation_time(
        &self,
        component: &ComponentId,
        observed_at: Option<Timestamp>,
        now: Timestamp,
    ) -> ObservationTime {
        let Some(at) = observed_at else {
            return ObservationTime::Acceptable;
        };
        if at - now > chrono::Duration::seconds(MAX_CLOCK_SKEW_SECONDS) {
            return ObservationTime::FromTheFuture;
        }
        let last = self.components.get(component).and_then(|e| e.last_observed_at);
        if last.is_some_and(|last| at.min(now) < last) {
            return ObservationTime::OutOfOrder;
        }
        ObservationTime::Acceptable
    }

    /// One `ComponentStale` event for every component whose status is still derived from an
    /// observation that is now older than `status_max_age` (in component id order).
    ///
    /// Scans the components only when one may have aged (`now` past the fleet's lower bound of
    /// the earliest ageing), and refreshes that bound while scanning; otherwise it is O(1).
    pub fn stale_events(&mut self, now: Timestamp) -> Vec<FleetEvent> {
        let Some(max_age) =
            self.config.status_max_age.filter(|age| *age > chrono::Duration::zero())
        else {
            return Vec::new();
        };
        match self.stale_check_at {
            Some(check_at) if now >= check_at => {}
            _ => return Vec::new(),
        }
        let mut earliest: Option<Timestamp> = None;
        let mut events = Vec::new();
        for (id, entry) in &self.components {
            let Some(last) = entry.last_observed_at.filter(|_| entry.raw_state.is_some()) else {
                continue;
            };
            // Components about to go stale count too: if their event is refused, the next
            // batch scans again instead of forgetting them.
            earliest = Some(earliest.map_or(last + max_age, |t| t.min(last + max_age)));
            if is_stale(Some(last), now, Some(max_age)) {
                events.push(FleetEvent::ComponentStale {
                    component_id: id.clone(),
                    last_observed_at: last,
                });
            }
        }
        self.stale_check_at = earliest;
        events
    }

    /// Applies `ComponentStale`: the status becomes unknown until Core reports it again.
    pub(crate) fn mark_stale(
        &mut self,
        id: &ComponentId,
        last_observed_at: Timestamp,
    ) -> Result<Vec<Effect>, Rejected> {
        let entry = self
            .components
            .get_mut(id)
            .ok_or_else(|| Rejected::NotFound { what: "component", id: id.to_string() })?;
        Ok(make_stale(id, &mut entry.raw_state, &mut entry.status, last_observed_at))
    }
}

/// The label `/metrics` counts a component under at `now`: its effective phase, or `stale`
/// when its observation is older than `status_max_age` (or it was made stale and not
/// re-observed); `unknown` when never observed or not observed since a restart.
pub fn phase_label(fleet: &Fleet, entry: &ComponentEntry, now: Timestamp) -> &'static str {
    let Some(status) = &entry.status else {
        return Phase::Unknown.as_str();
    };
    let aged = entry
        .last_observed_at
        .is_some_and(|last| is_stale(Some(last), now, fleet.config.status_max_age));
    if aged || (entry.raw_state.is_none() && status.reason.starts_with("stale:")) {
        return "stale";
    }
    if entry.last_observed_at.is_none() {
        return Phase::Unknown.as_str();
    }
    status.phase.as_str()
}

/// Components counted by [`phase_label`] at `now` (every phase and `stale` present, maybe 0).
pub fn components_by_phase(
    fleet: &Fleet,
    now: Timestamp,
) -> std::collections::BTreeMap<&'static str, u64> {
    let mut counts: std::collections::BTreeMap<&'static str, u64> =
        Phase::ALL.iter().map(|p| (p.as_str(), 0)).chain([("stale", 0)]).collect();
    for entry in fleet.components.values() {
        *counts.entry(phase_label(fleet, entry, now)).or_default() += 1;
    }
    counts
}
