//! Observation time: whatever order observations arrive in, a component's derived status is the
//! status of its newest observation, and it reads as unknown once that observation is older
//! than `status_max_age`. Going stale is an event with a phase-change notification.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use std::collections::BTreeMap;
use steward_proto::{ComponentKind, ComponentPosition, ComponentSpec, Phase, RackSpec, Timestamp};
use steward_state_machine::{
    Effect, Fleet, FleetConfig, FleetEvent, Notification, ObservationTime,
};

const MAX_AGE: i64 = 600;
const STATES: [&str; 4] = ["Ready", "Failed", "Assigned/Ready", "HostInitializing"];

fn t0() -> Timestamp {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
}

fn at(s: i64) -> Timestamp {
    t0() + TimeDelta::seconds(s)
}

fn fleet() -> Fleet {
    let config =
        FleetConfig { status_max_age: Some(TimeDelta::seconds(MAX_AGE)), ..FleetConfig::default() };
    let mut fleet = Fleet::new(config);
    let component = ComponentSpec {
        id: "c1".into(),
        kind: ComponentKind::Compute,
        name: "c1".into(),
        manufacturer: None,
        model: None,
        serial: None,
        position: ComponentPosition::default(),
        firmware_version: None,
        power_state: None,
        labels: BTreeMap::new(),
    };
    let rack = RackSpec {
        id: "r1".into(),
        name: "r1".into(),
        location: Default::default(),
        labels: BTreeMap::new(),
        components: vec![component],
    };
    let inventory = FleetEvent::InventoryUpserted { initiator: String::new(), racks: vec![rack] };
    fleet.apply(&inventory, t0()).unwrap();
    fleet
}

fn observed(state: &str, observed_at: Timestamp) -> FleetEvent {
    FleetEvent::ComponentObserved {
        initiator: String::new(),
        component_id: "c1".into(),
        controller_state: state.to_string(),
        power_state: None,
        firmware_version: None,
        observed_at: Some(observed_at),
    }
}

fn phase_of(state: &str) -> Phase {
    match state {
        "Ready" => Phase::Ready,
        "Failed" => Phase::Error,
        "Assigned/Ready" => Phase::InUse,
        _ => Phase::Initializing,
    }
}

proptest! {
    /// Observations with distinct times, delivered in any order, each at a receive time not
    /// before its own: the status equals the newest observation's, or unknown past the age.
    #[test]
    fn derived_status_is_the_newest_observations(
        observations in prop::collection::vec((0usize..4, 0i64..2000), 1..12),
        delays in prop::collection::vec(0i64..900, 12),
    ) {
        let mut times = std::collections::BTreeSet::new();
        let observations: Vec<(usize, i64)> =
            observations.into_iter().filter(|(_, t)| times.insert(*t)).collect();
        let mut fleet = fleet();
        let mut now = t0();
        let mut newest: Option<(i64, usize)> = None;
        for (index, (state, time)) in observations.iter().enumerate() {
            now = now.max(at(time + delays[index]));
            let expected_order = fleet.observation_time(&"c1".into(), Some(at(*time)), now);
            fleet.apply(&observed(STATES[*state], at(*time)), now).unwrap();
            let is_newest = newest.is_none_or(|(t, _)| *time > t);
            prop_assert_eq!(expected_order == ObservationTime::Acceptable, is_newest);
            if is_newest {
                newest = Some((*time, *state));
            }
            let (time, state) = newest.unwrap();
            let status = fleet.effective_status(&"c1".into(), now);
            if (now - at(time)).num_seconds() > MAX_AGE {
                prop_assert_eq!(status.phase, Phase::Unknown);
            } else {
                prop_assert_eq!(status.phase, phase_of(STATES[state]));
            }
        }
    }
}

#[test]
fn going_stale_is_an_event_with_a_notification_and_a_refresh_changes_it_back() {
    let mut fleet = fleet();
    fleet.apply(&observed("Ready", at(0)), at(0)).unwrap();
    assert!(fleet.stale_events(at(MAX_AGE)).is_empty(), "exactly max_age old is still fresh");
    let stale = fleet.stale_events(at(MAX_AGE + 1));
    assert_eq!(
        stale,
        vec![FleetEvent::ComponentStale { component_id: "c1".into(), last_observed_at: at(0) }]
    );
    let effects = fleet.apply_effects(&stale[0], at(MAX_AGE + 1)).unwrap();
    assert!(effects.contains(&Effect::Notify(Notification::ComponentPhaseChanged {
        component_id: "c1".into(),
        from: Phase::Ready,
        to: Phase::Unknown,
    })));
    assert_eq!(fleet.components["c1"].status.as_ref().unwrap().phase, Phase::Unknown);
    assert!(fleet.stale_events(at(MAX_AGE + 2)).is_empty(), "stale once, not on every tick");
    // Re-observing the same raw state is a change now (unknown -> ready).
    let effects = fleet.apply(&observed("Ready", at(MAX_AGE + 5)), at(MAX_AGE + 5)).unwrap();
    assert!(!effects.is_empty());
    assert_eq!(fleet.effective_status(&"c1".into(), at(MAX_AGE + 5)).phase, Phase::Ready);
}

#[test]
fn an_observation_older_than_the_age_is_unknown_at_once_and_the_future_is_refused() {
    let mut fleet = fleet();
    let now = at(5000);
    fleet.apply(&observed("Ready", at(0)), now).unwrap();
    assert_eq!(fleet.effective_status(&"c1".into(), now).phase, Phase::Unknown);
    assert_eq!(fleet.components["c1"].status.as_ref().map(|s| s.phase), None);
    assert_eq!(
        fleet.observation_time(&"c1".into(), Some(at(5031)), now),
        ObservationTime::FromTheFuture
    );
    assert_eq!(
        fleet.observation_time(&"c1".into(), Some(at(5030)), now),
        ObservationTime::Acceptable
    );
}

/// A fleet of `n` components `c0..c{n-1}` in one rack.
fn fleet_of(n: usize) -> Fleet {
    let config =
        FleetConfig { status_max_age: Some(TimeDelta::seconds(MAX_AGE)), ..FleetConfig::default() };
    let mut fleet = Fleet::new(config);
    let components = (0..n)
        .map(|i| ComponentSpec {
            id: format!("c{i}").as_str().into(),
            kind: ComponentKind::Compute,
            name: format!("c{i}"),
            manufacturer: None,
            model: None,
            serial: None,
            position: ComponentPosition::default(),
            firmware_version: None,
            power_state: None,
            labels: BTreeMap::new(),
        })
        .collect();
    let rack = RackSpec {
        id: "r1".into(),
        name: "r1".into(),
        location: Default::default(),
        labels: BTreeMap::new(),
        components,
    };
    let inventory = FleetEvent::InventoryUpserted { initiator: String::new(), racks: vec![rack] };
    fleet.apply(&inventory, t0()).unwrap();
    fleet
}

proptest! {
    /// `stale_events` skips its scan while no component can have aged; that shortcut never
    /// hides one: at every check it finds exactly the components a full scan would.
    #[test]
    fn stale_events_find_exactly_the_aged_components(
        steps in prop::collection::vec((0usize..4, 0i64..700, 0i64..300, any::<bool>()), 1..40),
    ) {
        let mut fleet = fleet_of(4);
        let mut now = t0();
        for (component, age, advance, check) in steps {
            now += TimeDelta::seconds(advance);
            let id = format!("c{component}");
            let mut event = observed("Ready", now - TimeDelta::seconds(age));
            if let FleetEvent::ComponentObserved { component_id, .. } = &mut event {
                *component_id = id.as_str().into();
            }
            fleet.apply(&event, now).unwrap();
            if !check {
                continue;
            }
            let expected: Vec<String> = fleet
                .components
                .iter()
                .filter(|(_, e)| e.raw_state.is_some())
                .filter(|(_, e)| {
                    e.last_observed_at.is_some_and(|last| (now - last).num_seconds() > MAX_AGE)
                })
                .map(|(id, _)| id.to_string())
                .collect();
            let events = fleet.stale_events(now);
            let found: Vec<String> = events
                .iter()
                .filter_map(|e| match e {
                    FleetEvent::ComponentStale { component_id, .. } => Some(component_id.to_string()),
                    _ => None,
                })
                .collect();
            prop_assert_eq!(&found, &expected);
            for event in &events {
                fleet.apply(event, now).unwrap();
            }
        }
    }
}
