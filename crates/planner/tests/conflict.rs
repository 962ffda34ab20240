//! The default conflict rules as a decision table, fail-closed defaults, config overrides and
//! their validation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use steward_planner::conflict::{Decision, KindSet, TaskFacts};
use steward_planner::{ConflictRules, PlannerConfig};
use steward_proto::ComponentKind::{self, *};

fn kinds(list: &[ComponentKind]) -> Option<KindSet> {
    let mut set = KindSet::default();
    for k in list {
        set.insert(*k);
    }
    Some(set)
}

/// One task of a pair: operation name and the kinds of its components.
type Side<'a> = (&'a str, &'a [ComponentKind]);

fn decide(rules: &ConflictRules, a: Side<'_>, b: Side<'_>, overlap: bool) -> String {
    let fa = TaskFacts { operation: a.0, kinds: kinds(a.1) };
    let fb = TaskFacts { operation: b.0, kinds: kinds(b.1) };
    let forward = rules.decide(&fa, &fb, overlap);
    // Rules are symmetric: the verdict does not depend on which task is the candidate.
    let backward = rules.decide(&fb, &fa, overlap);
    assert_eq!(
        matches!(forward, Decision::Compatible),
        matches!(backward, Decision::Compatible),
        "asymmetric verdict for {a:?} / {b:?}"
    );
    match forward {
        Decision::Compatible => "compatible".into(),
        Decision::Conflict(why) => format!("conflict: {why}"),
    }
}

#[test]
fn default_rules_decision_table() {
    let rules = ConflictRules::default();
    let table: &[(Side, Side, bool, &str)] = &[
        (
            ("power_cycle", &[PowerShelf]),
            ("firmware_update", &[Compute]),
            false,
            "conflict: power_cycle conflicts with firmware_update on the same rack (rule power_shelf_power_control)",
        ),
        (
            ("power_on", &[Compute, PowerShelf]),
            ("power_off", &[Nvswitch]),
            false,
            "conflict: power_on conflicts with power_off on the same rack (rule power_shelf_power_control)",
        ),
        (
            ("firmware_update", &[Compute]),
            ("firmware_update", &[Compute]),
            true,
            "conflict: firmware_update conflicts with firmware_update on overlapping components (rule firmware_overlap)",
        ),
        (
            ("firmware_update", &[Compute]),
            ("power_cycle", &[Compute]),
            true,
            "conflict: firmware_update conflicts with power_cycle on overlapping components (rule firmware_overlap)",
        ),
        (("firmware_update", &[Compute]), ("power_cycle", &[Compute]), false, "compatible"),
        (("firmware_update", &[Nvswitch]), ("firmware_update", &[Compute]), false, "compatible"),
        (
            ("power_cycle", &[Compute]),
            ("power_off", &[Compute]),
            true,
            "conflict: power_cycle conflicts with power_off on overlapping components (rule power_overlap)",
        ),
        (("power_cycle", &[Compute]), ("power_on", &[Node]), false, "compatible"),
        (
            ("bring_up", &[Compute]),
            ("power_on", &[Node]),
            false,
            "conflict: bring_up conflicts with power_on on the same rack (rule exclusive_operations)",
        ),
        (
            ("decommission", &[Compute]),
            ("firmware_update", &[Node]),
            false,
            "conflict: decommission conflicts with firmware_update on the same rack (rule exclusive_operations)",
        ),
        (
            ("reboot_dance", &[Compute]),
            ("power_on", &[Node]),
            false,
            "conflict: no conflict rule decides reboot_dance next to power_on, so it counts as a conflict",
        ),
    ];
    for (a, b, overlap, expected) in table {
        assert_eq!(decide(&rules, *a, *b, *overlap), *expected, "{a:?} / {b:?} overlap {overlap}");
    }
}

#[test]
fn a_rule_that_needs_unknown_component_kinds_is_a_conflict() {
    let rules = ConflictRules::default();
    let a = TaskFacts { operation: "power_cycle", kinds: None };
    let b = TaskFacts { operation: "firmware_update", kinds: kinds(&[Compute]) };
    let Decision::Conflict(why) = rules.decide(&a, &b, false) else { panic!("compatible") };
    assert!(why.contains("cannot be evaluated"), "{why}");
}

#[test]
fn sites_override_the_rules_and_bad_rules_are_named() {
    use steward_planner::{ComponentOverlap, ConflictRule, TaskMatcher, Verdict};
    let nodes = TaskMatcher { operations: Vec::new(), component_kinds: vec![Node] };
    let config = PlannerConfig {
        global_max_parallel: Some(40),
        conflict_rules: ConflictRules {
            rules: vec![ConflictRule {
                name: "anything_goes_on_nodes".into(),
                a: nodes.clone(),
                b: nodes,
                components: ComponentOverlap::Any,
                verdict: Verdict::Compatible,
            }],
        },
    };
    config.conflict_rules.validate("conflict_rules").unwrap();
    assert_eq!(
        decide(
            &config.conflict_rules,
            ("power_cycle", &[Node]),
            ("firmware_update", &[Node]),
            true
        ),
        "compatible"
    );
    assert!(
        decide(&config.conflict_rules, ("power_cycle", &[Compute]), ("power_on", &[Node]), false)
            .starts_with("conflict: no conflict rule")
    );

    let typo = ConflictRule {
        name: "x".into(),
        a: TaskMatcher { operations: vec!["power_cylce".into()], component_kinds: Vec::new() },
        b: TaskMatcher::default(),
        components: ComponentOverlap::Any,
        verdict: Verdict::Conflict,
    };
    let twice = ConflictRule { a: TaskMatcher::default(), ..typo.clone() };
    let rules = ConflictRules { rules: vec![typo, twice] };
    let errors = rules.validate("planner.conflict_rules").unwrap_err();
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["planner.conflict_rules.rules[0].a.operations[0]", "planner.conflict_rules.rules[1].name"]
    );
    assert!(errors.0[0].message.starts_with("unknown operation \"power_cylce\""));
    ConflictRules::default().validate("conflict_rules").unwrap();
}
