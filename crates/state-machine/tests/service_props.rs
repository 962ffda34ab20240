//! Property tests for the service-state machine: random request sequences against the table,
//! history replay, and random site tables (loaded tables have every state reachable).
#![allow(clippy::unwrap_used)]

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use steward_proto::{ComponentId, HistoryEntry, ServiceState, ServiceTableDoc};
use steward_state_machine::service::{DEFAULT_STATES, DEFAULT_TRANSITIONS};
use steward_state_machine::{Effect, Rejected, ServiceTable};

fn table_strategy() -> impl Strategy<Value = ServiceTable> {
    prop_oneof![
        Just(ServiceTable::default()),
        valid_doc().prop_map(|d| ServiceTable::from_doc(&d).unwrap()),
    ]
}

/// A random doc that is valid by construction: a chain from the initial state through every
/// state plus random extra edges.
fn valid_doc() -> impl Strategy<Value = ServiceTableDoc> {
    (1usize..7).prop_flat_map(|n| {
        prop::collection::vec((0..n, 0..n), 0..12).prop_map(move |extra| {
            let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
            let mut transitions: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut add = |f: usize, t: usize| {
                let list = transitions.entry(names[f].clone()).or_default();
                if !list.contains(&names[t]) {
                    list.push(names[t].clone());
                }
            };
            for i in 1..n {
                add(i - 1, i);
            }
            for (f, t) in extra {
                add(f, t);
            }
            ServiceTableDoc { initial: names[0].clone(), states: names.clone(), transitions }
        })
    })
}

/// A random doc that may be invalid in any way.
fn random_doc() -> impl Strategy<Value = ServiceTableDoc> {
    let name = prop_oneof![
        8 => prop::sample::select(vec!["a", "b", "c", "d", "e"]).prop_map(str::to_string),
        1 => "[A-Za-z _]{0,3}",
    ];
    (
        name.clone(),
        prop::collection::vec(name.clone(), 0..6),
        prop::collection::btree_map(name.clone(), prop::collection::vec(name, 0..4), 0..6),
    )
        .prop_map(|(initial, states, transitions)| ServiceTableDoc {
            initial,
            states,
            transitions,
        })
}

fn reachable(table: &ServiceTable) -> BTreeSet<ServiceState> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![table.initial().clone()];
    while let Some(s) = stack.pop() {
        if seen.insert(s.clone()) {
            stack.extend(table.allowed_from(&s).iter().cloned());
        }
    }
    seen
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_requests_follow_the_table_and_history_replays(
        table in table_strategy(),
        requests in prop::collection::vec((0usize..8, any::<bool>()), 0..40),
    ) {
        let id = ComponentId::new("c1");
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let doc = table.to_doc();
        let mut state = table.initial().clone();
        let mut history: Vec<HistoryEntry> = Vec::new();
        for (i, (pick, with_note)) in requests.into_iter().enumerate() {
            // Pick among the table's states plus a couple of names it does not know.
            let to = match doc.states.get(pick) {
                Some(name) => ServiceState::new(name),
                None => ServiceState::new(if pick % 2 == 0 { "nowhere" } else { "Bad Name" }),
            };
            let legal = doc.transitions.get(state.as_str()).is_some_and(|l| l.iter().any(|t| t == to.as_str()));
            let before = state.clone();
            let note = with_note.then_some("note");
            let now = t0 + Duration::seconds(i as i64);
            match table.step(&id, &state, &to, "prop", note, now) {
                Ok((next, effects)) => {
                    prop_assert!(legal, "{} -> {} accepted but not in the doc", before, to);
                    prop_assert_eq!(&next, &to);
                    prop_assert_eq!(effects.len(), 3);
                    let mut appended = 0;
                    for effect in effects {
                        if let Effect::AppendHistory(entry) = effect {
                            prop_assert_eq!(&entry.from, &before);
                            prop_assert_eq!(&entry.to, &to);
                            prop_assert_eq!(entry.at, now);
                            prop_assert_eq!(entry.note.as_deref(), note);
                            history.push(entry);
                            appended += 1;
                        }
                    }
                    prop_assert_eq!(appended, 1);
                    state = next;
                }
                Err(Rejected::IllegalServiceTransition { from, to: rejected_to, allowed }) => {
                    prop_assert!(!legal, "{} -> {} rejected but in the doc", before, to);
                    prop_assert_eq!(&from, &before);
                    prop_assert_eq!(&rejected_to, &to);
                    prop_assert_eq!(allowed.as_slice(), table.allowed_from(&before));
                    prop_assert_eq!(&state, &before, "rejection changed the state");
                }
                Err(other) => prop_assert!(false, "unexpected rejection {other:?}"),
            }
        }
        // Replaying the history (folding `to`) reproduces the final state, and it chains.
        let mut replayed = table.initial().clone();
        for entry in &history {
            prop_assert_eq!(&entry.from, &replayed);
            prop_assert!(table.allows(&entry.from, &entry.to));
            replayed = entry.to.clone();
        }
        prop_assert_eq!(replayed, state);
    }

    #[test]
    fn loaded_tables_have_every_state_reachable(doc in random_doc()) {
        match ServiceTable::from_doc(&doc) {
            Ok(table) => {
                let reach = reachable(&table);
                for s in table.states() {
                    prop_assert!(reach.contains(s), "{} unreachable but loaded", s);
                }
                prop_assert!(table.contains(table.initial()));
                for s in table.states() {
                    for t in table.allowed_from(s) {
                        prop_assert!(table.contains(t));
                    }
                }
                // Round-trips through its document.
                prop_assert_eq!(ServiceTable::from_doc(&table.to_doc()).unwrap(), table);
            }
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }

    #[test]
    fn valid_docs_load_and_keep_their_transitions(doc in valid_doc()) {
        let table = ServiceTable::from_doc(&doc).unwrap();
        for (from, tos) in &doc.transitions {
            let allowed: Vec<&str> = table.allowed_from(&ServiceState::new(from)).iter().map(ServiceState::as_str).collect();
            let expected: Vec<&str> = tos.iter().map(String::as_str).collect();
            prop_assert_eq!(allowed, expected);
        }
        let rendered = table.to_table();
        let count: usize = doc.transitions.values().map(Vec::len).sum();
        prop_assert_eq!(rendered.transitions.len(), count);
    }
}

#[test]
fn default_constants_match_default_table() {
    let table = ServiceTable::default();
    assert_eq!(table.states().len(), DEFAULT_STATES.len());
    let total: usize = DEFAULT_TRANSITIONS.iter().map(|(_, t)| t.len()).sum();
    assert_eq!(table.to_table().transitions.len(), total);
}
