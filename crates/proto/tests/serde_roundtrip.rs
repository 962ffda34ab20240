//! Serde contract of `steward-proto`: JSON round-trips for every type, the exact wire spellings
//! of API.md, unknown fields rejected, policy validation reporting every problem with its path,
//! and golden JSON for a run, a target and a component status.
//!
//! Regenerate the golden files with `STEWARD_UPDATE_GOLDEN=1 cargo test -p steward-proto`.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use steward_proto::*;

fn t(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, minute, 0).unwrap()
}

/// Serializes, parses back, compares; returns the JSON value for spelling checks.
fn roundtrip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) -> Value {
    let text = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(&back, value, "round-trip changed the value: {text}");
    let pretty = serde_json::to_string_pretty(value).unwrap();
    let back: T = serde_json::from_str(&pretty).unwrap();
    assert_eq!(&back, value);
    serde_json::from_str(&text).unwrap()
}

fn parse<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    serde_json::from_value(value)
}

// ---------------------------------------------------------------- ids and enums

#[test]
fn ids_are_plain_strings() {
    assert_eq!(roundtrip(&RackId::new("r12")), json!("r12"));
    assert_eq!(roundtrip(&ComponentId::new("r12-c3")), json!("r12-c3"));
    assert_eq!(roundtrip(&RunId::new("run-1")), json!("run-1"));
    assert_eq!(roundtrip(&TargetId::new("run-1:r12")), json!("run-1:r12"));
    assert_eq!(roundtrip(&TaskId::new("task-9")), json!("task-9"));
    assert_eq!(roundtrip(&ServiceState::new("maintenance")), json!("maintenance"));
    let key = IdempotencyKey::for_attempt(&RunId::new("run-1"), &TargetId::new("run-1:r12"), 2);
    assert_eq!(roundtrip(&key), json!("run-1/run-1:r12/2"));
    assert_eq!(TargetId::for_rack(&RunId::new("a"), &RackId::new("b")).as_str(), "a:b");
}

fn check_spellings<T>(values: &[T], spellings: &[&str])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    assert_eq!(values.len(), spellings.len(), "every variant needs a spelling");
    for (value, spelling) in values.iter().zip(spellings) {
        assert_eq!(roundtrip(value), json!(spelling));
    }
}

#[test]
fn component_enums_spellings() {
    check_spellings(&ComponentKind::ALL, &["compute", "nvswitch", "power_shelf", "node"]);
    check_spellings(
        &Phase::ALL,
        &["unknown", "initializing", "ready", "in_use", "error", "deleting"],
    );
    check_spellings(&OperationClass::ALL, &["power_control", "firmware_control"]);
    check_spellings(
        &OperationKind::ALL,
        &["power_on", "power_off", "power_cycle", "firmware_update"],
    );
    for kind in ComponentKind::ALL {
        assert_eq!(roundtrip(&kind), json!(kind.as_str()));
        assert_eq!(kind.to_string(), kind.as_str());
    }
    for phase in Phase::ALL {
        assert_eq!(roundtrip(&phase), json!(phase.as_str()));
    }
    assert!(parse::<Phase>(json!("Ready")).is_err());
    assert!(parse::<ComponentKind>(json!("powershelf")).is_err());
}

#[test]
fn status_enums_spellings() {
    check_spellings(
        RunStatus::ALL,
        &[
            "pending",
            "running",
            "paused",
            "completed",
            "completed_with_failures",
            "failed",
            "cancelled",
        ],
    );
    check_spellings(
        RunStatusReason::ALL,
        &[
            "none",
            "operator_paused",
            "wave_gate",
            "safety_gate",
            "conflict_retry_timeout",
            "readiness_timeout",
        ],
    );
    check_spellings(
        TargetStatus::ALL,
        &[
            "pending",
            "claimed",
            "blocked",
            "submitted",
            "completed",
            "failed",
            "terminated",
            "skipped",
            "pre_hooks",
            "post_hooks",
        ],
    );
    check_spellings(
        TaskStatus::ALL,
        &["pending", "waiting", "running", "completed", "failed", "terminated"],
    );
    check_spellings(
        Gate::ALL,
        &[
            "run_status",
            "maintenance_window",
            "wave",
            "concurrency",
            "conflict",
            "service_state",
            "readiness",
            "retry_backoff",
            "already_current",
        ],
    );
    check_spellings(&[GateScope::CurrentWave, GateScope::Run], &["current_wave", "run"]);
    check_spellings(&[OnNotReady::Wait, OnNotReady::Skip], &["wait", "skip"]);
    // as_str/parse agree with serde.
    for s in RunStatus::ALL {
        assert_eq!(RunStatus::parse(s.as_str()), Some(*s));
        assert_eq!(roundtrip(s), json!(s.as_str()));
    }
    for s in TargetStatus::ALL {
        assert_eq!(TargetStatus::parse(s.as_str()), Some(*s));
        assert_eq!(roundtrip(s), json!(s.as_str()));
    }
    for s in TaskStatus::ALL {
        assert_eq!(TaskStatus::parse(s.as_str()), Some(*s));
    }
    for s in RunStatusReason::ALL {
        assert_eq!(RunStatusReason::parse(s.as_str()), Some(*s));
    }
    for g in Gate::ALL {
        assert_eq!(Gate::parse(g.as_str()), Some(*g));
    }
    assert_eq!(RunStatus::parse("Running"), None);
}

#[test]
fn blocked_operations_is_a_sorted_array() {
    assert_eq!(roundtrip(&BlockedOperations::NONE), json!([]));
    assert_eq!(roundtrip(&BlockedOperations::ALL), json!(["power_control", "firmware_control"]));
    let one = BlockedOperations::from_classes([OperationClass::FirmwareControl]);
    assert_eq!(roundtrip(&one), json!(["firmware_control"]));
    let parsed: BlockedOperations =
        parse(json!(["firmware_control", "power_control", "power_control"])).unwrap();
    assert_eq!(parsed, BlockedOperations::ALL);
    assert!(parse::<BlockedOperations>(json!(["reboot"])).is_err());
}

// ---------------------------------------------------------------- inventory and status

fn sample_status() -> ComponentStatus {
    ComponentStatus {
        phase: Phase::InUse,
        reason: "Assigned/Ready".to_string(),
        blocked_operations: BlockedOperations::ALL,
    }
}

fn sample_rack() -> Rack {
    Rack {
        id: RackId::new("r12"),
        name: "rack 12".to_string(),
        location: Location {
            region: Some("eu-west".into()),
            datacenter: Some("dc1".into()),
            room: Some("hall-a".into()),
            row: Some("row-3".into()),
            position: Some("12".into()),
        },
        labels: BTreeMap::from([("pool".to_string(), "gpu".to_string())]),
    }
}

fn sample_component() -> Component {
    Component {
        id: ComponentId::new("r12-c3"),
        rack_id: RackId::new("r12"),
        kind: ComponentKind::Compute,
        name: "tray 3".to_string(),
        manufacturer: Some("Acme".into()),
        model: Some("GB200".into()),
        serial: Some("SN123".into()),
        position: ComponentPosition { slot: Some(3), tray_index: Some(1) },
        firmware_version: Some("1.1.0".into()),
        power_state: Some("on".into()),
        labels: BTreeMap::from([("role".to_string(), "worker".to_string())]),
    }
}

#[test]
fn component_status_roundtrip() {
    let value = roundtrip(&sample_status());
    assert_eq!(
        value,
        json!({"phase":"in_use","reason":"Assigned/Ready","blocked_operations":["power_control","firmware_control"]})
    );
    roundtrip(&ComponentStatus::unknown("no controller state from Core"));
    assert!(
        parse::<ComponentStatus>(
            json!({"phase":"ready","reason":"","blocked_operations":[],"x":1})
        )
        .is_err()
    );
}

#[test]
fn inventory_types_roundtrip() {
    roundtrip(&sample_rack());
    roundtrip(&Rack {
        id: RackId::new("bare"),
        name: String::new(),
        location: Location::default(),
        labels: BTreeMap::new(),
    });
    let minimal: Rack = parse(json!({"id":"r1"})).unwrap();
    assert_eq!(minimal.location, Location::default());
    let value = roundtrip(&sample_component());
    assert_eq!(value["kind"], json!("compute"));
    assert_eq!(value["rack_id"], json!("r12"));
    assert_eq!(value["position"], json!({"slot":3,"tray_index":1}));
    let view = ComponentView {
        component: sample_component(),
        status: sample_status(),
        service_state: ServiceState::new("in_service"),
    };
    let value = roundtrip(&view);
    // Flattened: inventory fields sit beside status and service_state.
    assert_eq!(value["id"], json!("r12-c3"));
    assert_eq!(value["status"]["phase"], json!("in_use"));
    assert_eq!(value["service_state"], json!("in_service"));

    let upsert: InventoryUpsert = parse(json!({"racks":[{
        "id":"r1","name":"rack 1","location":{"region":"eu","row":"a"},"labels":{"pool":"x"},
        "components":[{"id":"c1","kind":"power_shelf","name":"ps","serial":"S1"},
                      {"id":"c2","kind":"nvswitch","position":{"slot":2}}]
    }]}))
    .unwrap();
    roundtrip(&upsert);
    let rack = &upsert.racks[0];
    assert_eq!(rack.components.len(), 2);
    assert_eq!(rack.components().next().unwrap().rack_id, RackId::new("r1"));
    assert!(parse::<InventoryUpsert>(json!({"racks":[{"id":"r1","colour":"red"}]})).is_err());
    assert!(
        parse::<InventoryUpsert>(
            json!({"racks":[{"id":"r1","components":[{"id":"c","kind":"gpu"}]}]})
        )
        .is_err()
    );
}

#[test]
fn observation_roundtrip_and_unknown_fields() {
    let full = Observation {
        component_id: ComponentId::new("c1"),
        controller_state: "{\"state\":\"ready\"}".to_string(),
        power_state: Some("on".into()),
        firmware_version: Some("2.0".into()),
        observed_at: Some(t(5)),
    };
    let value = roundtrip(&full);
    assert_eq!(value["observed_at"], json!("2026-03-01T12:05:00Z"));
    let minimal: Observation =
        parse(json!({"component_id":"c1","controller_state":"Ready"})).unwrap();
    assert_eq!(minimal.observed_at, None);
    assert_eq!(roundtrip(&minimal), json!({"component_id":"c1","controller_state":"Ready"}));
    assert!(
        parse::<Observation>(
            json!({"component_id":"c1","controller_state":"Ready","phase":"ready"})
        )
        .is_err()
    );
}

#[test]
fn phase_mapping_override_roundtrip() {
    let o = PhaseMappingOverride {
        words: BTreeMap::from([(
            ComponentKind::Compute,
            BTreeMap::from([("Quarantined".to_string(), Phase::Error)]),
        )]),
        blocked: BTreeMap::from([(Phase::InUse, vec![OperationClass::FirmwareControl])]),
    };
    let value = roundtrip(&o);
    assert_eq!(
        value,
        json!({"words":{"compute":{"Quarantined":"error"}},"blocked":{"in_use":["firmware_control"]}})
    );
    assert_eq!(parse::<PhaseMappingOverride>(json!({})).unwrap(), PhaseMappingOverride::default());
}

// ---------------------------------------------------------------- operations and policy

#[test]
fn operation_every_variant() {
    assert_eq!(roundtrip(&Operation::PowerOn), json!({"kind":"power_on"}));
    assert_eq!(roundtrip(&Operation::PowerOff), json!({"kind":"power_off"}));
    assert_eq!(roundtrip(&Operation::PowerCycle), json!({"kind":"power_cycle"}));
    let fw = Operation::FirmwareUpdate { version: "1.2.0".into(), components: vec![] };
    assert_eq!(roundtrip(&fw), json!({"kind":"firmware_update","version":"1.2.0"}));
    let narrowed = Operation::FirmwareUpdate {
        version: "1.2.0".into(),
        components: vec![ComponentKind::Nvswitch, ComponentKind::PowerShelf],
    };
    assert_eq!(
        roundtrip(&narrowed),
        json!({"kind":"firmware_update","version":"1.2.0","components":["nvswitch","power_shelf"]})
    );
    assert!(parse::<Operation>(json!({"kind":"reboot"})).is_err());
    assert!(parse::<Operation>(json!({"kind":"firmware_update"})).is_err(), "version required");
    assert!(
        parse::<Operation>(json!({"kind":"firmware_update","version":"1","force":true})).is_err()
    );
    // Unknown fields are rejected for parameterless kinds too.
    let err = parse::<Operation>(json!({"kind":"power_on","force":true})).unwrap_err();
    assert!(err.to_string().contains("force"), "{err}");
    let err = parse::<Operation>(json!({"kind":"power_cycle","version":"1.0"})).unwrap_err();
    assert!(err.to_string().contains("version"), "{err}");
    let err = parse::<Operation>(json!({"kind":"firmware_update"})).unwrap_err();
    assert!(err.to_string().contains("version"), "{err}");
}

#[test]
fn wave_spec_and_ordering_variants() {
    assert_eq!(roundtrip(&WaveSpec::Equal { count: 3 }), json!({"equal":{"count":3}}));
    assert_eq!(roundtrip(&WaveSpec::Percentage(vec![5, 25, 70])), json!({"percentage":[5,25,70]}));
    assert_eq!(roundtrip(&WaveSpec::Count(vec![1, 10])), json!({"count":[1,10]}));
    assert_eq!(roundtrip(&Ordering::AsGiven), json!("as_given"));
    assert_eq!(roundtrip(&Ordering::Random { seed: 42 }), json!({"random":{"seed":42}}));
    assert_eq!(roundtrip(&Ordering::OnePerRowRoundRobin), json!("one_per_row_round_robin"));
    assert_eq!(
        parse::<Ordering>(json!({"random":{"seed":42}})).unwrap(),
        Ordering::Random { seed: 42 }
    );
    assert!(parse::<WaveSpec>(json!({"equal":{"count":3,"size":2}})).is_err());
    assert!(parse::<Ordering>(json!("shuffled")).is_err());
}

#[test]
fn safety_gate_and_small_policy_types() {
    let count = SafetyGate {
        failure_count: Some(FailureCount { max: 3 }),
        failure_rate: None,
        scope: GateScope::CurrentWave,
    };
    assert_eq!(roundtrip(&count), json!({"failure_count":{"max":3},"scope":"current_wave"}));
    let rate = SafetyGate {
        failure_count: None,
        failure_rate: Some(FailureRate { percent: 20.0 }),
        scope: GateScope::Run,
    };
    assert_eq!(roundtrip(&rate), json!({"failure_rate":{"percent":20.0},"scope":"run"}));
    let defaulted: SafetyGate = parse(json!({"failure_count":{"max":1}})).unwrap();
    assert_eq!(defaulted.scope, GateScope::CurrentWave);
    roundtrip(&MaintenanceWindow { start: "22:00".into(), end: "04:00".into() });
    let retry = ConflictRetry::default();
    assert_eq!(
        roundtrip(&retry),
        json!({"timeout_seconds":3600,"initial_delay_seconds":30,"max_delay_seconds":300})
    );
    assert!(parse::<SafetyGate>(json!({"failure_count":{"max":1},"scop":"run"})).is_err());
}

/// API.md's policy example, comments and all.
const API_POLICY_EXAMPLE: &str = r#"{"max_parallel_racks": 4,
 "waves": {"percentage": [5, 25, 70]},            // or {"equal": {"count": 3}} or {"count": [1, 10]}
 "ordering": "as_given",                          // or {"random": {"seed": 42}} or "one_per_row_round_robin"
 "auto_advance": false, "soak_seconds": 600,
 "safety_gates": [{"failure_count": {"max": 3}, "scope": "current_wave"},
                  {"failure_rate": {"percent": 20}, "scope": "run"}],
 "on_not_ready": "wait", "max_wait_seconds": 3600,
 "allowed_service_states": ["maintenance", "firmware_update"],
 "maintenance_windows": [{"start": "22:00", "end": "04:00"}],
 "max_attempts": 2, "retry_backoff_seconds": 60,
 "claim_lease_seconds": 30,
 "hooks": {"pre": ["drain"], "post": ["validate"]},   // names of hooks defined in the server's config only
 "skip_if_current": true,                              // firmware_update: skip racks already at the version
 "conflict_retry": {"timeout_seconds": 3600, "initial_delay_seconds": 30, "max_delay_seconds": 300}}"#;

fn strip_line_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn full_policy() -> RunPolicy {
    RunPolicy {
        max_parallel_racks: 4,
        waves: WaveSpec::Percentage(vec![5, 25, 70]),
        ordering: Ordering::AsGiven,
        auto_advance: false,
        soak_seconds: 600,
        safety_gates: vec![
            SafetyGate {
                failure_count: Some(FailureCount { max: 3 }),
                failure_rate: None,
                scope: GateScope::CurrentWave,
            },
            SafetyGate {
                failure_count: None,
                failure_rate: Some(FailureRate { percent: 20.0 }),
                scope: GateScope::Run,
            },
        ],
        on_not_ready: OnNotReady::Wait,
        max_wait_seconds: Some(3600),
        allowed_service_states: Some(vec![
            ServiceState::new("maintenance"),
            ServiceState::new("firmware_update"),
        ]),
        maintenance_windows: vec![MaintenanceWindow { start: "22:00".into(), end: "04:00".into() }],
        max_attempts: 2,
        retry_backoff_seconds: 60,
        claim_lease_seconds: 30,
        hooks: steward_proto::HookRefs { pre: vec!["drain".into()], post: vec!["validate".into()] },
        skip_if_current: true,
        conflict_retry: ConflictRetry {
            timeout_seconds: 3600,
            initial_delay_seconds: 30,
            max_delay_seconds: 300,
        },
    }
}

#[test]
fn api_policy_example_parses() {
    let policy: RunPolicy = serde_json::from_str(&strip_line_comments(API_POLICY_EXAMPLE)).unwrap();
    assert_eq!(policy, full_policy());
    assert!(policy.validate("policy").is_ok());
    roundtrip(&policy);
    // The alternatives named in the comments parse too.
    for (waves, expected) in [
        (json!({"equal": {"count": 3}}), WaveSpec::Equal { count: 3 }),
        (json!({"count": [1, 10]}), WaveSpec::Count(vec![1, 10])),
    ] {
        let p: RunPolicy = parse(json!({ "waves": waves })).unwrap();
        assert_eq!(p.waves, expected);
    }
    for (ordering, expected) in [
        (json!({"random": {"seed": 42}}), Ordering::Random { seed: 42 }),
        (json!("one_per_row_round_robin"), Ordering::OnePerRowRoundRobin),
    ] {
        let p: RunPolicy = parse(json!({ "ordering": ordering })).unwrap();
        assert_eq!(p.ordering, expected);
    }
}

#[test]
fn empty_policy_is_defaults() {
    let policy: RunPolicy = parse(json!({})).unwrap();
    assert_eq!(policy, RunPolicy::default());
    assert_eq!(policy.max_parallel_racks, 1);
    assert_eq!(policy.waves, WaveSpec::Equal { count: 1 });
    assert_eq!(policy.ordering, Ordering::AsGiven);
    assert!(!policy.auto_advance);
    assert_eq!(policy.claim_lease_seconds, 30);
    assert_eq!(policy.on_not_ready, OnNotReady::Wait);
    assert!(policy.validate("policy").is_ok());
    roundtrip(&policy);
    // A partial conflict_retry fills the rest from defaults.
    let partial: RunPolicy = parse(json!({"conflict_retry": {"timeout_seconds": 60}})).unwrap();
    assert_eq!(partial.conflict_retry.timeout_seconds, 60);
    assert_eq!(partial.conflict_retry.max_delay_seconds, 300);
    // Default service states: everything but rma and decommissioned.
    assert!(policy.allows_service_state(&ServiceState::new("in_service")));
    assert!(!policy.allows_service_state(&ServiceState::new("rma")));
    assert!(!policy.allows_service_state(&ServiceState::new("decommissioned")));
}

#[test]
fn unknown_fields_rejected() {
    let err = parse::<RunPolicy>(json!({"max_parallel": 4})).unwrap_err();
    assert!(err.to_string().contains("max_parallel"), "{err}");
    assert!(parse::<RunPolicy>(json!({"conflict_retry": {"timeout": 1}})).is_err());
    assert!(
        parse::<RunPolicy>(
            json!({"maintenance_windows": [{"start":"01:00","end":"02:00","tz":"CET"}]})
        )
        .is_err()
    );
    let err = parse::<Selector>(json!({"racks": ["r1"], "rack": "r2"})).unwrap_err();
    assert!(err.to_string().contains("rack"), "{err}");
    assert!(
        parse::<Observation>(json!({"component_id":"c","controller_state":"x","extra":0})).is_err()
    );
    let err = parse::<CreateRunRequest>(json!({
        "operation": {"kind": "power_cycle"}, "selector": {"all": true}, "priority": 1
    }))
    .unwrap_err();
    assert!(err.to_string().contains("priority"), "{err}");
    assert!(parse::<HistoryEntry>(json!({
        "component_id":"c","from":"a","to":"b","at":"2026-03-01T12:00:00Z","initiator":"x","who":"y"
    }))
    .is_err());
    assert!(
        parse::<ServiceTableDoc>(json!({"initial":"a","states":["a"],"transitions":{},"x":1}))
            .is_err()
    );
}

#[test]
fn policy_validation_reports_every_problem_with_paths() {
    let policy: RunPolicy = parse(json!({
        "max_parallel_racks": 0,
        "waves": {"percentage": [50, 40]},
        "safety_gates": [{"failure_rate": {"percent": 150}}]
    }))
    .unwrap();
    let errors = policy.validate("policy").unwrap_err();
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "policy.max_parallel_racks",
            "policy.waves.percentage",
            "policy.safety_gates[0].failure_rate.percent"
        ]
    );
    assert_eq!(errors.first_field(), Some("policy.max_parallel_racks"));
    let text = errors.to_string();
    assert!(text.contains("sum 90"), "{text}");
    assert!(text.contains("150"), "{text}");

    // Many more, all at once.
    let bad = RunPolicy {
        max_parallel_racks: 0,
        waves: WaveSpec::Count(vec![0]),
        safety_gates: vec![
            SafetyGate { failure_count: None, failure_rate: None, scope: GateScope::Run },
            SafetyGate {
                failure_count: Some(FailureCount { max: 0 }),
                failure_rate: None,
                scope: GateScope::Run,
            },
        ],
        max_wait_seconds: Some(0),
        allowed_service_states: Some(vec![]),
        maintenance_windows: vec![MaintenanceWindow { start: "25:00".into(), end: "4:00".into() }],
        max_attempts: 0,
        claim_lease_seconds: 0,
        conflict_retry: ConflictRetry {
            timeout_seconds: 0,
            initial_delay_seconds: 0,
            max_delay_seconds: 0,
        },
        ..RunPolicy::default()
    };
    let errors = bad.validate("policy").unwrap_err();
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    for expected in [
        "policy.max_parallel_racks",
        "policy.waves.count",
        "policy.safety_gates[0]",
        "policy.safety_gates[1].failure_count.max",
        "policy.max_wait_seconds",
        "policy.allowed_service_states",
        "policy.maintenance_windows[0].start",
        "policy.maintenance_windows[0].end",
        "policy.max_attempts",
        "policy.claim_lease_seconds",
        "policy.conflict_retry.initial_delay_seconds",
        "policy.conflict_retry.timeout_seconds",
    ] {
        assert!(fields.contains(&expected), "missing {expected} in {fields:?}");
    }
    assert!(
        parse::<RunPolicy>(json!({"waves": {"equal": {"count": 0}}}))
            .unwrap()
            .validate("policy")
            .unwrap_err()
            .0
            .iter()
            .any(|e| e.field == "policy.waves.equal.count")
    );
    // FieldError and ValidationErrors are data too.
    roundtrip(&errors);
    roundtrip(&FieldError::new("policy.max_attempts", "must be at least 1"));
}

// ---------------------------------------------------------------- runs, targets, tasks

fn sample_counts() -> StatusCounts {
    StatusCounts {
        pending: 5,
        claimed: 1,
        blocked: 0,
        submitted: 2,
        completed: 3,
        failed: 1,
        terminated: 0,
        skipped: 1,
        pre_hooks: 0,
        post_hooks: 0,
    }
}

fn sample_run() -> Run {
    Run {
        rerun_of: None,
        reruns: Vec::new(),
        id: RunId::new("run-1"),
        name: "fw 1.2.0 rollout".into(),
        operation: Operation::FirmwareUpdate { version: "1.2.0".into(), components: vec![] },
        selector: Selector {
            racks: Some(vec![RackId::new("r1"), RackId::new("r2")]),
            ..Selector::default()
        },
        policy: RunPolicy {
            max_parallel_racks: 2,
            safety_gates: vec![SafetyGate {
                failure_count: Some(FailureCount { max: 1 }),
                failure_rate: None,
                scope: GateScope::Run,
            }],
            ..RunPolicy::default()
        },
        status: RunStatus::Paused,
        status_reason: RunStatusReason::SafetyGate,
        status_message: "safety gate failure_count (scope run): 1 failure >= max 1".into(),
        current_wave: 2,
        waves: vec![
            Wave {
                number: 1,
                size: 1,
                counts: StatusCounts { completed: 1, ..StatusCounts::default() },
                acknowledged_failures: 0,
                opened_at: Some(t(0)),
                finished_at: Some(t(4)),
            },
            Wave {
                number: 2,
                size: 1,
                counts: StatusCounts { failed: 1, ..StatusCounts::default() },
                acknowledged_failures: 0,
                opened_at: Some(t(5)),
                finished_at: None,
            },
        ],
        counts: StatusCounts { completed: 1, failed: 1, ..StatusCounts::default() },
        initiator: "alice".into(),
        created_at: t(0),
        started_at: Some(t(0)),
        finished_at: None,
        updated_at: t(9),
    }
}

fn sample_target() -> Target {
    Target {
        hook: None,
        hooks_reported: Vec::new(),
        id: TargetId::new("run-1:r12"),
        run_id: RunId::new("run-1"),
        rack_id: RackId::new("r12"),
        wave: 2,
        components: Arc::from(vec![ComponentId::new("r12-c1"), ComponentId::new("r12-c2")]),
        status: TargetStatus::Pending,
        attempt: 1,
        task_id: None,
        message: "waiting for readiness".into(),
        retry_after: None,
        lease_until: None,
        conflict_delay_seconds: 0,
        blocked_since: None,
        hold: Some(Hold {
            gate: Gate::Readiness,
            message: "r12-c1 is in_use (Assigned/Ready): firmware_control blocked".into(),
            since: t(7),
            component: None,
        }),
        updated_at: t(7),
    }
}

#[test]
fn counts_selector_and_request_roundtrip() {
    let value = roundtrip(&sample_counts());
    for status in TargetStatus::ALL {
        assert_eq!(value[status.as_str()], json!(sample_counts().get(*status)), "{status}");
    }
    assert_eq!(sample_counts().total(), 13);
    for selector in [
        json!({"racks": ["r1", "r2"]}),
        json!({"labels": {"pool": "gpu"}}),
        json!({"all": true, "kinds": ["compute"], "exclude_runs": ["run-0"]}),
        json!({"components": ["c1"]}),
    ] {
        let parsed: Selector = parse(selector.clone()).unwrap();
        assert_eq!(roundtrip(&parsed), selector);
    }
    let request: CreateRunRequest = parse(json!({
        "name": "fw",
        "operation": {"kind": "firmware_update", "version": "1.2.0"},
        "selector": {"racks": ["r1"]},
        "policy": {"max_parallel_racks": 2},
        "dry_run": true
    }))
    .unwrap();
    assert!(request.dry_run);
    assert_eq!(request.policy.max_parallel_racks, 2);
    roundtrip(&request);
    let minimal: CreateRunRequest =
        parse(json!({"operation": {"kind": "power_on"}, "selector": {"all": true}})).unwrap();
    assert_eq!(minimal.policy, RunPolicy::default());
    assert!(!minimal.dry_run);
    roundtrip(&minimal);
}

#[test]
fn run_target_task_hold_roundtrip() {
    roundtrip(&sample_run());
    roundtrip(&sample_target());
    let hold = sample_target().hold.unwrap();
    assert_eq!(roundtrip(&hold)["gate"], json!("readiness"));
    let task = Task {
        id: TaskId::new("task-9"),
        target_id: TargetId::new("run-1:r12"),
        run_id: RunId::new("run-1"),
        rack_id: RackId::new("r12"),
        idempotency_key: IdempotencyKey::new("run-1/run-1:r12/1"),
        status: TaskStatus::Running,
        component_results: BTreeMap::from([
            (ComponentId::new("r12-c1"), TaskStatus::Completed),
            (ComponentId::new("r12-c2"), TaskStatus::Waiting),
        ]),
        message: "updating".into(),
        updated_at: t(8),
    };
    let value = roundtrip(&task);
    assert_eq!(value["component_results"]["r12-c2"], json!("waiting"));
    let submitted = Target {
        hook: None,
        status: TargetStatus::Submitted,
        task_id: Some(TaskId::new("task-9")),
        lease_until: Some(t(8)),
        hold: None,
        ..sample_target()
    };
    let value = roundtrip(&submitted);
    assert_eq!(value["task_id"], json!("task-9"));
    assert_eq!(value["hold"], Value::Null);
}

#[test]
fn hold_component_is_optional_on_the_wire() {
    let hold = sample_target().hold.unwrap();
    let value = roundtrip(&hold);
    assert!(value.get("component").is_none(), "no key when None: {value}");
    let named = Hold { component: Some(ComponentId::new("r12-c1")), ..hold.clone() };
    assert_eq!(roundtrip(&named)["component"], json!("r12-c1"));
    // A hold written before the field existed reads back with `None`.
    let old = json!({"gate": "readiness", "message": hold.message, "since": hold.since});
    assert_eq!(parse::<Hold>(old).unwrap(), hold);
}

#[test]
fn history_and_event_records_roundtrip() {
    let entry = HistoryEntry {
        component_id: ComponentId::new("c1"),
        from: ServiceState::new("in_service"),
        to: ServiceState::new("maintenance"),
        at: t(1),
        initiator: "alice".into(),
        note: Some("swap DIMM".into()),
    };
    assert_eq!(
        roundtrip(&entry),
        json!({"component_id":"c1","from":"in_service","to":"maintenance",
               "at":"2026-03-01T12:01:00Z","initiator":"alice","note":"swap DIMM"})
    );
    let no_note = HistoryEntry { note: None, ..entry };
    assert!(roundtrip(&no_note).get("note").is_none());
    let record = EventRecord {
        seq: 42,
        at: t(2),
        kind: "service_state_changed".into(),
        data: json!({"component_id": "c1", "to": "maintenance"}),
    };
    assert_eq!(
        roundtrip(&record),
        json!({"seq":42,"at":"2026-03-01T12:02:00Z","kind":"service_state_changed",
               "data":{"component_id":"c1","to":"maintenance"}})
    );
    let doc = ServiceTableDoc {
        initial: "a".into(),
        states: vec!["a".into(), "b".into()],
        transitions: BTreeMap::from([("a".to_string(), vec!["b".to_string()])]),
    };
    roundtrip(&doc);
}

// ---------------------------------------------------------------- golden JSON

fn golden<T: Serialize>(name: &str, value: &T) {
    let path = format!("{}/tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let actual = format!("{}\n", serde_json::to_string_pretty(value).unwrap());
    if std::env::var_os("STEWARD_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (run with STEWARD_UPDATE_GOLDEN=1 once)"));
    assert_eq!(actual, expected, "{name}.json differs from the serialized value");
}

/// Field names API.md promises for each object.
fn assert_has_fields(value: &Value, fields: &[&str]) {
    for field in fields {
        assert!(value.get(field).is_some(), "missing API.md field {field:?} in {value}");
    }
}

#[test]
fn golden_run() {
    let run = sample_run();
    golden("run", &run);
    assert_has_fields(
        &serde_json::to_value(&run).unwrap(),
        &[
            "id",
            "name",
            "operation",
            "status",
            "status_reason",
            "status_message",
            "current_wave",
            "waves",
            "counts",
            "created_at",
            "started_at",
            "finished_at",
        ],
    );
}

#[test]
fn golden_target() {
    let target = sample_target();
    golden("target", &target);
    assert_has_fields(
        &serde_json::to_value(&target).unwrap(),
        &[
            "id",
            "rack_id",
            "wave",
            "status",
            "attempt",
            "task_id",
            "message",
            "retry_after",
            "hold",
            "updated_at",
        ],
    );
    let value = serde_json::to_value(&target).unwrap();
    assert_has_fields(&value["hold"], &["gate", "message", "since"]);
}

#[test]
fn golden_component_status() {
    let status = sample_status();
    golden("component_status", &status);
    assert_has_fields(
        &serde_json::to_value(&status).unwrap(),
        &["phase", "reason", "blocked_operations"],
    );
}
