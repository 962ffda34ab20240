//! No dead effects: every kind in `EFFECT_KINDS` (and every notification kind) is produced by
//! at least one transition, driven through the machines and the fleet.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use steward_proto::hooks::invocation_id;
use steward_proto::{
    ComponentKind, ComponentPosition, ComponentSpec, HookPhase, HookRefs, IdempotencyKey,
    Operation, RackSpec, Run, RunPolicy, RunStatus, RunStatusReason, Selector, StatusCounts,
    Target, TaskStatus, Timestamp, Wave,
};
use steward_state_machine::{EFFECT_KINDS, Effect, Fleet, FleetConfig, FleetEvent, Notification};

fn t0() -> Timestamp {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
}

fn scenario() -> Vec<FleetEvent> {
    let target =
        Target::pending(&"run-1".into(), "r1".into(), 1, Arc::from(vec!["c1".into()]), t0());
    let run = Run {
        rerun_of: None,
        reruns: Vec::new(),
        id: "run-1".into(),
        name: String::new(),
        operation: Operation::PowerOn,
        selector: Selector::default(),
        policy: RunPolicy {
            hooks: HookRefs { pre: vec!["drain".into()], post: Vec::new() },
            ..RunPolicy::default()
        },
        status: RunStatus::Pending,
        status_reason: RunStatusReason::None,
        status_message: String::new(),
        current_wave: 0,
        waves: vec![Wave {
            number: 1,
            size: 1,
            counts: StatusCounts::default(),
            acknowledged_failures: 0,
            opened_at: None,
            finished_at: None,
        }],
        counts: StatusCounts::default(),
        initiator: String::new(),
        created_at: t0(),
        started_at: None,
        finished_at: None,
        updated_at: t0(),
    };
    vec![
        FleetEvent::InventoryUpserted {
            initiator: String::new(),
            racks: vec![RackSpec {
                id: "r1".into(),
                name: String::new(),
                location: Default::default(),
                labels: BTreeMap::new(),
                components: vec![ComponentSpec {
                    id: "c1".into(),
                    kind: ComponentKind::Compute,
                    name: String::new(),
                    manufacturer: None,
                    model: None,
                    serial: None,
                    position: ComponentPosition::default(),
                    firmware_version: None,
                    power_state: None,
                    labels: BTreeMap::new(),
                }],
            }],
        },
        FleetEvent::ComponentObserved {
            initiator: String::new(),
            component_id: "c1".into(),
            controller_state: "Ready".into(),
            power_state: None,
            firmware_version: None,
            observed_at: None,
        },
        FleetEvent::ServiceStateChanged {
            component_id: "c1".into(),
            to: "maintenance".into(),
            initiator: "op".into(),
            note: None,
        },
        FleetEvent::RunCreated { run: Box::new(run), targets: vec![target] },
        FleetEvent::RunStarted { run_id: "run-1".into() },
        FleetEvent::TargetClaimed {
            target_id: "run-1:r1".into(),
            lease_until: t0() + chrono::TimeDelta::seconds(30),
        },
        FleetEvent::HookFinished {
            target_id: "run-1:r1".into(),
            invocation_id: invocation_id(
                IdempotencyKey::for_attempt(&"run-1".into(), &"run-1:r1".into(), 1).as_str(),
                HookPhase::Pre,
                0,
            ),
            ok: true,
            message: "drained".into(),
        },
        FleetEvent::TargetSubmitted { target_id: "run-1:r1".into(), task_id: "task-1".into() },
        FleetEvent::TaskObserved {
            task_id: "task-1".into(),
            target_id: "run-1:r1".into(),
            status: TaskStatus::Running,
            message: String::new(),
            component_results: BTreeMap::new(),
        },
        FleetEvent::RunCancelled { run_id: "run-1".into(), initiator: "op".into(), reason: None },
    ]
}

#[test]
fn every_effect_kind_is_produced() {
    let mut fleet = Fleet::new(FleetConfig::default());
    let mut kinds = BTreeSet::new();
    let mut notifications = BTreeSet::new();
    for event in scenario() {
        for effect in fleet.apply_effects(&event, t0()).unwrap() {
            assert!(EFFECT_KINDS.contains(&effect.kind()), "{} not listed", effect.kind());
            if let Effect::Notify(n) = &effect {
                notifications.insert(n.kind());
            }
            kinds.insert(effect.kind());
        }
    }
    let all: BTreeSet<&str> = EFFECT_KINDS.into_iter().collect();
    assert_eq!(all.len(), EFFECT_KINDS.len(), "duplicate names in EFFECT_KINDS");
    assert_eq!(kinds, all, "dead effect kinds: {:?}", all.difference(&kinds).collect::<Vec<_>>());
    let expected: BTreeSet<&str> =
        ["service_state_changed", "run_status_changed", "component_phase_changed"].into();
    assert_eq!(notifications, expected);
    let _ = Notification::kind;
}

#[test]
fn only_external_effects_wait_for_commit() {
    let mut fleet = Fleet::new(FleetConfig::default());
    for event in scenario() {
        for effect in fleet.apply_effects(&event, t0()).unwrap() {
            let external = matches!(
                effect,
                Effect::SubmitTask(_)
                    | Effect::CancelTask { .. }
                    | Effect::Notify(_)
                    | Effect::RunHook(_)
            );
            assert_eq!(effect.after_commit(), external, "{effect:?}");
        }
    }
}
