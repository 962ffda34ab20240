//! Property tests for status derivation: never panics, unknown always blocks everything,
//! malformed or out-of-vocabulary JSON is unknown, and compute looks only before the first `/`.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use steward_proto::{BlockedOperations, ComponentKind, Phase};
use steward_state_machine::StatusMapper;
use steward_state_machine::status::default_words;

fn kind() -> impl Strategy<Value = ComponentKind> {
    prop::sample::select(ComponentKind::ALL.to_vec())
}

/// Strings that look a bit like controller states: words, slashes, JSON punctuation, unicode.
fn raw_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[A-Za-z/{}\":, ]{0,40}",
        "\\{\"state\":\"[a-zA-Z]{0,15}\"(,\"details\":[0-9a-z\"{}:]{0,10})?\\}",
        prop::sample::select(vec![
            "Ready".to_string(),
            "Assigned/Ready".to_string(),
            "{\"state\":\"ready\"}".to_string(),
            "ready".to_string(),
        ]),
    ]
}

fn vocabulary(kind: ComponentKind) -> Vec<&'static str> {
    default_words(kind).iter().map(|(w, _)| *w).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn derive_never_panics_and_unknown_blocks_all(kind in kind(), raw in raw_like()) {
        let mapper = StatusMapper::default();
        let status = mapper.derive(kind, &raw);
        if status.phase == Phase::Unknown {
            prop_assert_eq!(status.blocked_operations, BlockedOperations::ALL);
        }
        prop_assert_eq!(status.blocked_operations, mapper.blocked_for(status.phase));
        prop_assert!(status.reason.len() <= 240, "reason too long: {}", status.reason.len());
        prop_assert!(!status.reason.is_empty());
    }

    #[test]
    fn blocked_is_all_whenever_phase_is_unknown_under_any_override(
        kind in kind(),
        raw in raw_like(),
        unblock_in_use in any::<bool>(),
        unblock_error in any::<bool>(),
    ) {
        let mut o = steward_proto::PhaseMappingOverride::default();
        if unblock_in_use { o.blocked.insert(Phase::InUse, vec![]); }
        if unblock_error { o.blocked.insert(Phase::Error, vec![]); }
        let mapper = StatusMapper::with_override(&o).unwrap();
        let status = mapper.derive(kind, &raw);
        if status.phase == Phase::Unknown {
            prop_assert_eq!(status.blocked_operations, BlockedOperations::ALL);
        }
        prop_assert_eq!(mapper.blocked_for(Phase::Unknown), BlockedOperations::ALL);
    }

    #[test]
    fn malformed_json_is_unknown(
        kind in prop::sample::select(vec![ComponentKind::Nvswitch, ComponentKind::PowerShelf]),
        word in prop::sample::select(vec!["ready", "error", "maintenance", "configuring"]),
        cut in 0usize..30,
        junk in "[^}]{0,8}",
    ) {
        // A valid document cut short, or with junk appended after it: never decodes.
        let doc = format!("{{\"state\":\"{word}\"}}");
        let truncated = &doc[..cut.min(doc.len() - 1)];
        let status = StatusMapper::default().derive(kind, truncated);
        prop_assert_eq!(status.phase, Phase::Unknown, "{:?}", truncated);
        prop_assert_eq!(status.blocked_operations, BlockedOperations::ALL);
        if !junk.trim().is_empty() {
            let trailing = format!("{doc}{junk}");
            let status = StatusMapper::default().derive(kind, &trailing);
            prop_assert_eq!(status.phase, Phase::Unknown, "{:?}", trailing);
            prop_assert_eq!(status.blocked_operations, BlockedOperations::ALL);
        }
    }

    #[test]
    fn arbitrary_strings_for_json_kinds_are_unknown_unless_a_listed_tag(
        kind in prop::sample::select(vec![ComponentKind::Nvswitch, ComponentKind::PowerShelf]),
        raw in any::<String>(),
    ) {
        let status = StatusMapper::default().derive(kind, &raw);
        let tag = serde_json::from_str::<serde_json::Value>(&raw)
            .ok()
            .and_then(|v| v.as_object().and_then(|o| o.get("state")).and_then(|s| s.as_str().map(str::to_string)));
        match tag {
            Some(tag) if vocabulary(kind).contains(&tag.as_str()) => prop_assert_ne!(status.phase, Phase::Unknown),
            _ => {
                prop_assert_eq!(status.phase, Phase::Unknown);
                prop_assert_eq!(status.blocked_operations, BlockedOperations::ALL);
            }
        }
    }

    #[test]
    fn garbage_state_tags_are_unknown(
        kind in kind(),
        tag in "[a-zA-Z_ -]{0,20}",
        extra in prop::option::of("[a-z]{1,8}"),
    ) {
        let vocab = vocabulary(kind);
        prop_assume!(!vocab.contains(&tag.as_str()));
        let raw = match extra {
            Some(field) => format!("{{\"{field}x\":1,\"state\":\"{tag}\"}}"),
            None => format!("{{\"state\":\"{tag}\"}}"),
        };
        let status = StatusMapper::default().derive(kind, &raw);
        if kind == ComponentKind::Compute {
            // Compute does not read JSON: a non-empty unlisted string is initializing.
            prop_assert_eq!(status.phase, Phase::Initializing);
        } else {
            prop_assert_eq!(status.phase, Phase::Unknown, "{:?}", raw);
            prop_assert_eq!(status.blocked_operations, BlockedOperations::ALL);
        }
    }

    #[test]
    fn node_plain_word_matches_json_form(word in "[a-z]{0,14}") {
        let mapper = StatusMapper::default();
        let plain = mapper.derive(ComponentKind::Node, &word);
        let json = mapper.derive(ComponentKind::Node, &format!("{{\"state\":\"{word}\"}}"));
        prop_assert_eq!(plain.phase, json.phase);
        prop_assert_eq!(plain.blocked_operations, json.blocked_operations);
        prop_assert_eq!(json.phase, mapper.derive(ComponentKind::Nvswitch, &format!("{{\"state\":\"{word}\"}}")).phase);
    }

    #[test]
    fn compute_prefix_decides(raw in raw_like(), suffix in "(/[A-Za-z/ ]{0,12})?") {
        let mapper = StatusMapper::default();
        let full = format!("{raw}{suffix}");
        let prefix = full.split('/').next().unwrap();
        let a = mapper.derive(ComponentKind::Compute, &full);
        let b = mapper.derive(ComponentKind::Compute, prefix);
        prop_assert_eq!(a.phase, b.phase, "{:?} vs {:?}", full, prefix);
        prop_assert_eq!(a.blocked_operations, b.blocked_operations);
    }

    #[test]
    fn compute_listed_words_with_any_suffix(
        entry in prop::sample::select(default_words(ComponentKind::Compute).to_vec()),
        suffix in "/[ -~]{0,20}",
    ) {
        let status = StatusMapper::default().derive(ComponentKind::Compute, &format!("{}{suffix}", entry.0));
        prop_assert_eq!(status.phase, entry.1);
    }

    #[test]
    fn observe_is_silent_exactly_on_identical_raw(kind in kind(), a in raw_like(), b in raw_like()) {
        let mapper = StatusMapper::default();
        let id = steward_proto::ComponentId::new("c");
        let previous = mapper.derive(kind, &a);
        let result = mapper.observe(&id, kind, Some(&a), Some(&previous), &b);
        if a == b {
            prop_assert!(result.is_none());
        } else {
            let (status, effects) = result.unwrap();
            prop_assert_eq!(&status, &mapper.derive(kind, &b));
            prop_assert_eq!(effects.len(), if status.phase == previous.phase { 1 } else { 2 });
        }
    }
}
