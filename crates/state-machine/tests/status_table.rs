//! Table tests for component status derivation: every core-state string of DESIGN §3.2 per
//! kind, unknown/empty/malformed input, blocking per phase, overrides, `observe` and staleness.
#![allow(clippy::unwrap_used)]

use chrono::{Duration, TimeZone, Utc};
use std::collections::BTreeMap;
use steward_proto::{
    BlockedOperations, ComponentId, ComponentKind, ComponentStatus, OperationClass, Phase,
    PhaseMappingOverride,
};
use steward_state_machine::status::{MappingError, NO_STATE_REASON, effective_status, is_stale};
use steward_state_machine::{Effect, Notification, StatusMapper};

use ComponentKind::{Compute, Node, Nvswitch, PowerShelf};
use Phase::{Deleting, Error, InUse, Initializing, Ready, Unknown};

fn check(kind: ComponentKind, raw: &str, phase: Phase) {
    let status = StatusMapper::default().derive(kind, raw);
    assert_eq!(status.phase, phase, "{kind} {raw:?}");
    let expected_blocked =
        if phase == Ready { BlockedOperations::NONE } else { BlockedOperations::ALL };
    assert_eq!(status.blocked_operations, expected_blocked, "{kind} {raw:?}");
    if phase != Unknown {
        assert_eq!(status.reason, raw, "reason keeps the raw string");
    }
}

#[test]
fn compute_every_listed_word() {
    let cases: &[(&str, Phase)] = &[
        ("Ready", Ready),
        ("StartAssignmentCycle", Ready),
        ("Created", Initializing),
        ("DPUDiscovering", Initializing),
        ("DPUInitializing", Initializing),
        ("HostInitializing", Initializing),
        ("Measuring", Initializing),
        ("PreAssignedMeasuring", Initializing),
        ("PostAssignedMeasuring", Initializing),
        ("BomValidating", Initializing),
        ("Assigned", InUse),
        ("WaitingForCleanup", InUse),
        ("Reprovisioning", InUse),
        ("HostReprovisioning", InUse),
        ("Failed", Error),
        ("ForceDeletion", Deleting),
    ];
    for (raw, phase) in cases {
        check(Compute, raw, *phase);
    }
    // The default table holds exactly these words.
    let mapper = StatusMapper::default();
    let words = mapper.words(Compute);
    assert_eq!(words.len(), cases.len());
    for (word, phase) in words {
        assert!(cases.contains(&(word, phase)), "{word} -> {phase} not in DESIGN 3.2");
    }
}

#[test]
fn compute_only_prefix_before_first_slash_decides() {
    check(Compute, "Assigned/Ready", InUse);
    check(Compute, "Assigned/Measuring/Whatever", InUse);
    check(Compute, "Failed/Discovery", Error);
    check(Compute, "Failed/", Error);
    check(Compute, "Ready/Failed", Ready);
    check(Compute, "DPUInitializing/Init/Step3", Initializing);
    check(Compute, "ForceDeletion/Cleanup", Deleting);
    check(Compute, "HostReprovisioning/PowerDown", InUse);
    check(Compute, "StartAssignmentCycle/x", Ready);
}

#[test]
fn compute_other_non_empty_is_initializing() {
    check(Compute, "Validation", Initializing);
    check(Compute, "MachineValidating/RebootHost", Initializing);
    check(Compute, "ready", Initializing); // case matters: not the listed word
    check(Compute, "{\"state\":\"ready\"}", Initializing);
    check(Compute, "Something new in Core 2.0", Initializing);
}

#[test]
fn compute_empty_is_unknown() {
    for raw in ["", " ", "\t\n  "] {
        let status = StatusMapper::default().derive(Compute, raw);
        assert_eq!(status, ComponentStatus::unknown(NO_STATE_REASON));
    }
    // Nothing before the first '/' means nothing decides: fail closed.
    for raw in ["/Ready", " /x", "/"] {
        let status = StatusMapper::default().derive(Compute, raw);
        assert_eq!(status.phase, Unknown, "{raw:?}");
        assert_eq!(status.blocked_operations, BlockedOperations::ALL);
        assert!(status.reason.contains(raw.trim()), "{}", status.reason);
    }
}

const NVSWITCH_WORDS: &[(&str, Phase)] = &[
    ("ready", Ready),
    ("created", Initializing),
    ("initializing", Initializing),
    ("configuring", Initializing),
    ("validating", Initializing),
    ("bomvalidating", Initializing),
    ("reprovisioning", InUse),
    ("error", Error),
    ("deleting", Deleting),
];

const POWER_SHELF_WORDS: &[(&str, Phase)] = &[
    ("ready", Ready),
    ("initializing", Initializing),
    ("fetchingdata", Initializing),
    ("configuring", Initializing),
    ("maintenance", InUse),
    ("error", Error),
    ("deleting", Deleting),
];

fn check_json_kind(kind: ComponentKind, words: &[(&str, Phase)]) {
    for (word, phase) in words {
        check(kind, &format!("{{\"state\":\"{word}\"}}"), *phase);
        // Other fields are ignored; only the tag is read.
        check(
            kind,
            &format!("{{\"state\":\"{word}\",\"details\":{{\"cause\":\"x\",\"n\":[1,2]}}}}"),
            *phase,
        );
        check(kind, &format!("  {{ \"details\": null, \"state\" : \"{word}\" }}\n"), *phase);
    }
    let mapper = StatusMapper::default();
    let table = mapper.words(kind);
    assert_eq!(table.len(), words.len());
    for entry in table {
        assert!(words.contains(&entry), "{kind}: {entry:?} not in DESIGN 3.2");
    }
}

#[test]
fn nvswitch_every_listed_tag() {
    check_json_kind(Nvswitch, NVSWITCH_WORDS);
}

#[test]
fn power_shelf_every_listed_tag() {
    check_json_kind(PowerShelf, POWER_SHELF_WORDS);
}

#[test]
fn node_plain_words_and_json_form() {
    check_json_kind(Node, NVSWITCH_WORDS);
    for (word, phase) in NVSWITCH_WORDS {
        check(Node, word, *phase);
    }
    check(Node, "maintenance", Unknown); // power-shelf vocabulary, not node's
    check(Node, "Ready", Unknown); // tags are exactly lowercase
    check(Node, "", Unknown);
}

#[test]
fn power_shelf_vocabulary_differs_from_nvswitch() {
    check(PowerShelf, r#"{"state":"maintenance"}"#, InUse);
    check(Nvswitch, r#"{"state":"maintenance"}"#, Unknown);
    check(PowerShelf, r#"{"state":"validating"}"#, Unknown);
    check(PowerShelf, r#"{"state":"reprovisioning"}"#, Unknown);
    check(Nvswitch, r#"{"state":"fetchingdata"}"#, Unknown);
}

#[test]
fn json_kinds_unknown_and_malformed() {
    let bad = [
        "",
        "   ",
        "ready",
        "{",
        "{}",
        "null",
        "[]",
        "\"ready\"",
        r#"["ready"]"#,
        r#"{"State":"ready"}"#,
        r#"{"state":"Ready"}"#,
        r#"{"state":"READY"}"#,
        r#"{"state":" ready"}"#,
        r#"{"state":"rebooting"}"#,
        r#"{"state":""}"#,
        r#"{"state":1}"#,
        r#"{"state":null}"#,
        r#"{"state":{"ready":true}}"#,
        r#"{"state":["ready"]}"#,
        r#"{"state":"ready","state":"error"}"#,
        r#"{"state":"ready"} trailing"#,
        r#"{"status":"ready"}"#,
    ];
    for kind in [Nvswitch, PowerShelf] {
        for raw in bad {
            let status = StatusMapper::default().derive(kind, raw);
            assert_eq!(status.phase, Unknown, "{kind} {raw:?}");
            assert_eq!(status.blocked_operations, BlockedOperations::ALL, "{kind} {raw:?}");
            assert!(!status.reason.is_empty());
        }
    }
    // Escaped tags decode like plain ones.
    check(Nvswitch, r#"{"state":"re\u0061dy"}"#, Ready);
}

#[test]
fn unknown_reasons_explain() {
    let mapper = StatusMapper::default();
    assert_eq!(mapper.derive(Nvswitch, "").reason, NO_STATE_REASON);
    assert!(mapper.derive(Nvswitch, "{oops").reason.starts_with("undecodable controller state: "));
    assert!(mapper.derive(Nvswitch, "{oops").reason.ends_with("{oops"));
    let reason = mapper.derive(PowerShelf, r#"{"state":"exploding"}"#).reason;
    assert!(reason.contains("exploding"), "{reason}");
}

#[test]
fn long_reasons_are_cut_at_a_char_boundary() {
    let mapper = StatusMapper::default();
    let raw = format!("Assigned/{}", "é".repeat(500));
    let status = mapper.derive(Compute, &raw);
    assert_eq!(status.phase, InUse);
    assert!(status.reason.len() <= 210, "{}", status.reason.len());
    assert!(status.reason.starts_with("Assigned/é"));
    assert!(status.reason.ends_with("..."));
    let garbage = "x".repeat(10_000);
    let status = mapper.derive(Nvswitch, &garbage);
    assert_eq!(status.phase, Unknown);
    assert!(status.reason.len() < 300);
}

#[test]
fn blocking_per_phase_defaults() {
    let mapper = StatusMapper::default();
    for phase in Phase::ALL {
        let blocked = mapper.blocked_for(phase);
        if phase == Ready {
            assert!(blocked.is_empty(), "ready blocks nothing");
        } else {
            assert_eq!(blocked, BlockedOperations::ALL, "{phase} blocks both classes");
            for class in OperationClass::ALL {
                assert!(blocked.contains(class));
            }
        }
    }
}

fn sample_override() -> PhaseMappingOverride {
    let mut words = BTreeMap::new();
    words.insert(
        Compute,
        BTreeMap::from([("Failed".to_string(), Initializing), ("Quarantined".to_string(), Error)]),
    );
    words.insert(PowerShelf, BTreeMap::from([("standby".to_string(), Ready)]));
    let blocked = BTreeMap::from([
        (InUse, vec![OperationClass::FirmwareControl]),
        (Initializing, vec![]),
        (Unknown, vec![OperationClass::PowerControl, OperationClass::FirmwareControl]),
    ]);
    PhaseMappingOverride { words, blocked }
}

#[test]
fn override_merges_over_defaults() {
    let mapper = StatusMapper::with_override(&sample_override()).unwrap();
    // Remapped word.
    let failed = mapper.derive(Compute, "Failed/Discovery");
    assert_eq!(failed.phase, Initializing);
    assert!(failed.blocked_operations.is_empty(), "initializing now blocks nothing");
    // Added word.
    assert_eq!(mapper.derive(Compute, "Quarantined").phase, Error);
    assert_eq!(mapper.derive(PowerShelf, r#"{"state":"standby"}"#).phase, Ready);
    // The rest of the defaults stay.
    assert_eq!(mapper.derive(Compute, "Assigned/Ready").phase, InUse);
    assert_eq!(mapper.derive(PowerShelf, r#"{"state":"maintenance"}"#).phase, InUse);
    // Words are per kind: nvswitch did not learn `standby`.
    assert_eq!(mapper.derive(Nvswitch, r#"{"state":"standby"}"#).phase, Unknown);
    // Per-phase blocking changed.
    let in_use = mapper.derive(Compute, "Assigned");
    assert!(in_use.blocked_operations.contains(OperationClass::FirmwareControl));
    assert!(!in_use.blocked_operations.contains(OperationClass::PowerControl));
    assert_eq!(mapper.blocked_for(Error), BlockedOperations::ALL, "unlisted phase keeps default");
    // Unknown still blocks everything.
    assert_eq!(mapper.blocked_for(Unknown), BlockedOperations::ALL);
    assert_eq!(mapper.derive(Nvswitch, "garbage").blocked_operations, BlockedOperations::ALL);
    assert_eq!(mapper.derive(Compute, "").blocked_operations, BlockedOperations::ALL);
}

#[test]
fn override_cannot_unblock_unknown() {
    for classes in [vec![], vec![OperationClass::PowerControl]] {
        let o = PhaseMappingOverride {
            words: BTreeMap::new(),
            blocked: BTreeMap::from([(Unknown, classes.clone())]),
        };
        let err = StatusMapper::with_override(&o).unwrap_err();
        assert!(matches!(err, MappingError::UnknownMustBlockAll { phase: Unknown, .. }));
        assert!(err.to_string().contains("unknown"), "{err}");
    }
}

#[test]
fn override_word_may_map_to_unknown_which_blocks_all() {
    let o = PhaseMappingOverride {
        words: BTreeMap::from([(Compute, BTreeMap::from([("Ready".to_string(), Unknown)]))]),
        blocked: BTreeMap::new(),
    };
    let mapper = StatusMapper::with_override(&o).unwrap();
    let status = mapper.derive(Compute, "Ready");
    assert_eq!(status.phase, Unknown);
    assert_eq!(status.blocked_operations, BlockedOperations::ALL);
}

#[test]
fn override_bad_words_are_refused() {
    let empty = PhaseMappingOverride {
        words: BTreeMap::from([(Nvswitch, BTreeMap::from([(" ".to_string(), Ready)]))]),
        blocked: BTreeMap::new(),
    };
    let err = StatusMapper::with_override(&empty).unwrap_err();
    assert_eq!(err, MappingError::EmptyWord { kind: Nvswitch });
    assert!(err.to_string().contains("nvswitch"));
    let slash = PhaseMappingOverride {
        words: BTreeMap::from([(Compute, BTreeMap::from([("Assigned/Ready".to_string(), Ready)]))]),
        blocked: BTreeMap::new(),
    };
    let err = StatusMapper::with_override(&slash).unwrap_err();
    assert!(err.to_string().contains("Assigned/Ready"), "{err}");
}

#[test]
fn empty_override_is_default() {
    let mapper = StatusMapper::with_override(&PhaseMappingOverride::default()).unwrap();
    assert_eq!(mapper, StatusMapper::default());
}

fn id() -> ComponentId {
    ComponentId::new("c1")
}

#[test]
fn observe_identical_raw_is_no_effect() {
    let mapper = StatusMapper::default();
    let previous = mapper.derive(Compute, "Ready");
    assert!(mapper.observe(&id(), Compute, Some("Ready"), Some(&previous), "Ready").is_none());
    assert!(mapper.observe(&id(), Nvswitch, Some(""), None, "").is_none());
}

#[test]
fn observe_changed_raw_same_phase_persists_without_notify() {
    let mapper = StatusMapper::default();
    let previous = mapper.derive(Compute, "Assigned/Ready");
    let (status, effects) = mapper
        .observe(&id(), Compute, Some("Assigned/Ready"), Some(&previous), "Assigned/Measuring")
        .unwrap();
    assert_eq!(status.phase, InUse);
    assert_eq!(status.reason, "Assigned/Measuring");
    assert_eq!(effects, vec![Effect::PersistComponentStatus(id())]);
}

#[test]
fn observe_phase_change_notifies() {
    let mapper = StatusMapper::default();
    let previous = mapper.derive(Compute, "Ready");
    let (status, effects) =
        mapper.observe(&id(), Compute, Some("Ready"), Some(&previous), "Failed/x").unwrap();
    assert_eq!(status.phase, Error);
    assert_eq!(
        effects,
        vec![
            Effect::PersistComponentStatus(id()),
            Effect::Notify(Notification::ComponentPhaseChanged {
                component_id: id(),
                from: Ready,
                to: Error,
            }),
        ]
    );
}

#[test]
fn observe_first_observation_is_from_unknown() {
    let mapper = StatusMapper::default();
    let (status, effects) =
        mapper.observe(&id(), PowerShelf, None, None, r#"{"state":"ready"}"#).unwrap();
    assert_eq!(status.phase, Ready);
    assert_eq!(effects.len(), 2);
    assert_eq!(
        effects[1],
        Effect::Notify(Notification::ComponentPhaseChanged {
            component_id: id(),
            from: Unknown,
            to: Ready
        })
    );
    // First observation that is itself unknown: a write, but no phase change.
    let (status, effects) = mapper.observe(&id(), PowerShelf, None, None, "junk").unwrap();
    assert_eq!(status.phase, Unknown);
    assert_eq!(effects, vec![Effect::PersistComponentStatus(id())]);
}

#[test]
fn stale_rules() {
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let ten = Some(Duration::minutes(10));
    assert!(is_stale(None, t0, ten), "never observed is stale");
    assert!(is_stale(None, t0, None), "never observed is stale even without a max age");
    assert!(!is_stale(Some(t0), t0, ten));
    assert!(!is_stale(Some(t0), t0 + Duration::minutes(10), ten), "exactly max age is fresh");
    assert!(is_stale(Some(t0), t0 + Duration::minutes(10) + Duration::seconds(1), ten));
    assert!(!is_stale(Some(t0), t0 + Duration::days(365), None), "no max age: never stale");
    assert!(!is_stale(Some(t0), t0 + Duration::days(365), Some(Duration::zero())), "0 disables");
    assert!(!is_stale(Some(t0 + Duration::minutes(5)), t0, ten), "future observation is fresh");
}

#[test]
fn effective_status_reads_stale_as_unknown() {
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let ten = Some(Duration::minutes(10));
    let ready = StatusMapper::default().derive(Compute, "Ready");
    assert_eq!(effective_status(Some(&ready), Some(t0), t0 + Duration::minutes(1), ten), ready);
    let stale = effective_status(Some(&ready), Some(t0), t0 + Duration::hours(1), ten);
    assert_eq!(stale.phase, Unknown);
    assert_eq!(stale.blocked_operations, BlockedOperations::ALL);
    assert!(stale.reason.contains("stale"));
    let never = effective_status(None, Some(t0), t0, ten);
    assert_eq!(never.phase, Unknown);
    let restarted = effective_status(Some(&ready), None, t0, ten);
    assert_eq!(restarted.phase, Unknown);
}

#[test]
fn mapper_deserializes_from_an_override_doc() {
    let mapper: StatusMapper = serde_json::from_str(
        r#"{"words":{"power_shelf":{"standby":"ready"}},"blocked":{"error":["power_control"]}}"#,
    )
    .unwrap();
    assert_eq!(mapper.derive(PowerShelf, r#"{"state":"standby"}"#).phase, Ready);
    assert_eq!(
        mapper.blocked_for(Error),
        BlockedOperations::from_classes([OperationClass::PowerControl])
    );
    let empty: StatusMapper = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, StatusMapper::default());
    let err = serde_json::from_str::<StatusMapper>(r#"{"blocked":{"unknown":[]}}"#).unwrap_err();
    assert!(err.to_string().contains("unknown"), "{err}");
    let err = serde_json::from_str::<StatusMapper>(r#"{"wordz":{}}"#).unwrap_err();
    assert!(err.to_string().contains("wordz"), "{err}");
}

#[test]
fn json_padding_is_json_whitespace_only() {
    check(Nvswitch, " \t\r\n{\"state\":\"ready\"}\n", Ready);
    // A non-breaking space is not JSON whitespace: the document does not decode.
    check(Nvswitch, "\u{a0}{\"state\":\"ready\"}", Unknown);
    check(Node, "\u{a0}{\"state\":\"ready\"}", Unknown);
}
