//! Service-state table tests: the default table exhaustively, rejection messages, every
//! site-table validation error naming its culprit, and TOML/JSON loading.
#![allow(clippy::unwrap_used)]

use chrono::{TimeZone, Utc};
use std::collections::BTreeMap;
use steward_proto::{ComponentId, HistoryEntry, ServiceState, ServiceTableDoc, Timestamp};
use steward_state_machine::service::{ServiceTableError, default_doc};
use steward_state_machine::{Effect, Notification, Rejected, ServiceTable};

const DEFAULT_STATES: [&str; 5] =
    ["in_service", "maintenance", "firmware_update", "rma", "decommissioned"];

/// DESIGN §3.3, written out independently of the implementation.
const LEGAL: [(&str, &str); 9] = [
    ("in_service", "maintenance"),
    ("maintenance", "in_service"),
    ("maintenance", "firmware_update"),
    ("maintenance", "rma"),
    ("maintenance", "decommissioned"),
    ("firmware_update", "maintenance"),
    ("firmware_update", "in_service"),
    ("rma", "maintenance"),
    ("rma", "decommissioned"),
];

fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn s(name: &str) -> ServiceState {
    ServiceState::new(name)
}

#[test]
fn default_table_shape() {
    let table = ServiceTable::default();
    assert_eq!(table.initial(), &s("in_service"));
    let states: Vec<&str> = table.states().iter().map(ServiceState::as_str).collect();
    assert_eq!(states, DEFAULT_STATES);
    assert_eq!(ServiceTable::from_doc(&default_doc()).unwrap(), table);
    assert!(table.allowed_from(&s("decommissioned")).is_empty());
    assert!(table.allowed_from(&s("no_such_state")).is_empty());
    assert!(table.contains(&s("rma")));
    assert!(!table.contains(&s("broken")));
}

#[test]
fn default_transitions_exhaustive() {
    let table = ServiceTable::default();
    let id = ComponentId::new("rack1-tray3");
    let mut accepted = 0;
    for from in DEFAULT_STATES {
        for to in DEFAULT_STATES.iter().copied().chain(["unknown_state", ""]) {
            let legal = LEGAL.contains(&(from, to));
            let result = table.step(&id, &s(from), &s(to), "alice", Some("why"), now());
            match result {
                Ok((state, effects)) => {
                    assert!(legal, "{from} -> {to} accepted but not in DESIGN 3.3");
                    accepted += 1;
                    assert_eq!(state, s(to));
                    let entry = HistoryEntry {
                        component_id: id.clone(),
                        from: s(from),
                        to: s(to),
                        at: now(),
                        initiator: "alice".to_string(),
                        note: Some("why".to_string()),
                    };
                    assert_eq!(
                        effects,
                        vec![
                            Effect::PersistServiceState(id.clone()),
                            Effect::AppendHistory(entry.clone()),
                            Effect::Notify(Notification::ServiceStateChanged(entry)),
                        ]
                    );
                }
                Err(err) => {
                    assert!(!legal, "{from} -> {to} rejected but DESIGN 3.3 allows it: {err}");
                    let allowed: Vec<ServiceState> =
                        LEGAL.iter().filter(|(f, _)| *f == from).map(|(_, t)| s(t)).collect();
                    assert_eq!(
                        err,
                        Rejected::IllegalServiceTransition { from: s(from), to: s(to), allowed }
                    );
                }
            }
        }
    }
    assert_eq!(accepted, LEGAL.len());
}

#[test]
fn to_table_lists_exactly_the_transitions() {
    let table = ServiceTable::default().to_table();
    assert_eq!(table.machine, "service");
    assert_eq!(table.initial, "in_service");
    assert_eq!(table.terminal, vec!["decommissioned".to_string()]);
    assert_eq!(table.transitions.len(), LEGAL.len());
    for (from, to) in LEGAL {
        let t = table.lookup(from, &format!("to_{to}")).unwrap();
        assert_eq!(t.to, to);
    }
    assert!(table.lookup("in_service", "to_rma").is_none());
    assert_eq!(table.events.len(), DEFAULT_STATES.len());
    assert!(table.to_mermaid().contains("maintenance --> rma: to_rma"));
}

#[test]
fn rejection_names_from_to_and_allowed() {
    let table = ServiceTable::default();
    let err = table
        .step(&ComponentId::new("c"), &s("in_service"), &s("rma"), "bob", None, now())
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("in_service"), "{text}");
    assert!(text.contains("rma"), "{text}");
    assert!(text.contains("allowed: maintenance"), "{text}");
    // Terminal state: nothing allowed.
    let err = table
        .step(&ComponentId::new("c"), &s("decommissioned"), &s("in_service"), "bob", None, now())
        .unwrap_err();
    assert!(err.to_string().contains("allowed: none"), "{err}");
}

#[test]
fn same_state_is_illegal_unless_listed() {
    let table = ServiceTable::default();
    let id = ComponentId::new("c");
    assert!(table.step(&id, &s("maintenance"), &s("maintenance"), "a", None, now()).is_err());
    let doc = ServiceTableDoc {
        initial: "up".into(),
        states: vec!["up".into()],
        transitions: BTreeMap::from([("up".to_string(), vec!["up".to_string()])]),
    };
    let looped = ServiceTable::from_doc(&doc).unwrap();
    let (state, effects) = looped.step(&id, &s("up"), &s("up"), "a", None, now()).unwrap();
    assert_eq!(state, s("up"));
    assert_eq!(effects.len(), 3);
}

fn doc(initial: &str, states: &[&str], transitions: &[(&str, &[&str])]) -> ServiceTableDoc {
    ServiceTableDoc {
        initial: initial.to_string(),
        states: states.iter().map(|s| s.to_string()).collect(),
        transitions: transitions
            .iter()
            .map(|(f, to)| (f.to_string(), to.iter().map(|t| t.to_string()).collect()))
            .collect(),
    }
}

fn load_err(d: &ServiceTableDoc) -> ServiceTableError {
    ServiceTable::from_doc(d).unwrap_err()
}

#[test]
fn error_empty_states() {
    let err = load_err(&doc("up", &[], &[]));
    assert_eq!(err, ServiceTableError::EmptyStates);
    assert!(err.to_string().contains("states"));
}

#[test]
fn error_invalid_name() {
    for bad in ["", "Maintenance", "in service", "rma!", "décommissioned"] {
        let err = load_err(&doc("up", &["up", bad], &[("up", &[])]));
        assert_eq!(err, ServiceTableError::InvalidName { name: bad.to_string() });
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
}

#[test]
fn error_duplicate_state() {
    let err = load_err(&doc("up", &["up", "down", "up"], &[("up", &["down"])]));
    assert_eq!(err, ServiceTableError::DuplicateState { name: "up".into() });
    assert!(err.to_string().contains("\"up\""), "{err}");
}

#[test]
fn error_missing_initial() {
    let err = load_err(&doc("active", &["up", "down"], &[("up", &["down"])]));
    assert_eq!(err, ServiceTableError::MissingInitial { initial: "active".into() });
    assert!(err.to_string().contains("\"active\""), "{err}");
}

#[test]
fn error_unknown_state_from_and_to() {
    let err = load_err(&doc("up", &["up", "down"], &[("up", &["down"]), ("sideways", &["up"])]));
    assert_eq!(
        err,
        ServiceTableError::UnknownState { from_or_to: "from", name: "sideways".into() }
    );
    assert!(err.to_string().contains("\"sideways\""), "{err}");
    let err = load_err(&doc("up", &["up", "down"], &[("up", &["down", "gone"])]));
    assert_eq!(err, ServiceTableError::UnknownState { from_or_to: "to", name: "gone".into() });
    assert!(err.to_string().contains("to state \"gone\""), "{err}");
}

#[test]
fn error_duplicate_transition() {
    let err = load_err(&doc("up", &["up", "down"], &[("up", &["down", "down"])]));
    assert_eq!(
        err,
        ServiceTableError::DuplicateTransition { from: "up".into(), to: "down".into() }
    );
    assert!(err.to_string().contains("\"up\" -> \"down\""), "{err}");
}

#[test]
fn error_unreachable() {
    let err = load_err(&doc(
        "up",
        &["up", "down", "island"],
        &[("up", &["down"]), ("down", &["up"]), ("island", &["up"])],
    ));
    assert_eq!(
        err,
        ServiceTableError::Unreachable { state: "island".into(), initial: "up".into() }
    );
    assert!(err.to_string().contains("\"island\""), "{err}");
    // Reachable only through an intermediate state is fine.
    let ok = ServiceTable::from_doc(&doc("a", &["a", "b", "c"], &[("a", &["b"]), ("b", &["c"])]));
    assert!(ok.is_ok());
}

#[test]
fn error_parse() {
    let err = ServiceTable::from_toml_str("initial = ").unwrap_err();
    assert!(matches!(err, ServiceTableError::Parse { format: "toml", .. }), "{err}");
    assert!(err.to_string().contains("toml"));
    let err = ServiceTable::from_json_str("{\"initial\": 3}").unwrap_err();
    assert!(matches!(err, ServiceTableError::Parse { format: "json", .. }), "{err}");
    // Unknown fields are rejected.
    let err = ServiceTable::from_json_str(
        r#"{"initial":"up","states":["up"],"transitions":{},"extra":1}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("extra"), "{err}");
}

#[test]
fn custom_table_from_toml() {
    let toml = r#"
initial = "staged"
states = ["staged", "serving", "drained", "repair", "retired"]

[transitions]
staged = ["serving"]
serving = ["drained"]
drained = ["serving", "repair", "retired"]
repair = ["drained"]
"#;
    let table = ServiceTable::from_toml_str(toml).unwrap();
    assert_eq!(table.initial(), &s("staged"));
    assert_eq!(table.states().len(), 5);
    assert_eq!(table.allowed_from(&s("drained")), &[s("serving"), s("repair"), s("retired")]);
    assert_eq!(table.to_table().terminal, vec!["retired".to_string()]);
    let id = ComponentId::new("n1");
    assert!(table.step(&id, &s("staged"), &s("serving"), "ops", None, now()).is_ok());
    assert!(table.step(&id, &s("serving"), &s("retired"), "ops", None, now()).is_err());
    assert_eq!(ServiceTable::from_doc(&table.to_doc()).unwrap(), table);
}

#[test]
fn custom_table_from_json() {
    let json = r#"{
        "initial": "active",
        "states": ["active", "hold", "gone"],
        "transitions": {"active": ["hold"], "hold": ["active", "gone"]}
    }"#;
    let table = ServiceTable::from_json_str(json).unwrap();
    assert_eq!(table.initial(), &s("active"));
    assert_eq!(table.allowed_from(&s("hold")), &[s("active"), s("gone")]);
    // A TOML with a validation error reports the validation error, not a parse error.
    let err = ServiceTable::from_toml_str("initial = \"x\"\nstates = [\"a\"]\n[transitions]\n")
        .unwrap_err();
    assert_eq!(err, ServiceTableError::MissingInitial { initial: "x".into() });
}

#[test]
fn table_serde_goes_through_the_validated_doc() {
    let json = serde_json::to_value(ServiceTable::default()).unwrap();
    assert_eq!(json["initial"], serde_json::json!("in_service"));
    let back: ServiceTable = serde_json::from_value(json).unwrap();
    assert_eq!(back, ServiceTable::default());
    let bad = serde_json::json!({"initial": "x", "states": ["a"], "transitions": {}});
    let err = serde_json::from_value::<ServiceTable>(bad).unwrap_err();
    assert!(err.to_string().contains("\"x\""), "{err}");
}
