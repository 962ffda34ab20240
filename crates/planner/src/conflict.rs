//! Rack conflict rules as data (DESIGN §3.6 gate 5) and their evaluation.
//!
//! A rule compares two tasks on the same rack (a candidate and an active one) and says
//! `conflict` or `compatible`. Rules are tried in order, symmetrically (`a` may match either
//! task); the first rule that matches decides. When no rule matches, or a rule cannot be
//! evaluated (a component is missing from the inventory), the answer is **conflict**: the
//! planner fails closed. Sites override the whole list through config
//! (`[[planner.conflict_rules]]`); the rule types are plain data in `steward_proto::conflict`
//! so the event log can record them (`SiteTables::conflict_rules`).

use serde::{Deserialize, Serialize};
use steward_proto::{ComponentKind, FieldError, ValidationErrors};
pub use steward_proto::{ComponentOverlap, ConflictRule, TaskMatcher, Verdict};

/// Operation names a matcher may use: today's operations plus the exclusive ones DESIGN §3.4
/// announces (`bring_up`, `decommission`), so a site can write rules for them ahead of time.
pub const KNOWN_OPERATIONS: [&str; 6] =
    ["power_on", "power_off", "power_cycle", "firmware_update", "bring_up", "decommission"];

/// The ordered rule list. `Default` is DESIGN §3.6.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictRules {
    /// Rules, first match wins; no match means conflict.
    pub rules: Vec<ConflictRule>,
}

fn ops(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_string()).collect()
}

const POWER_OPS: [&str; 3] = ["power_on", "power_off", "power_cycle"];

impl Default for ConflictRules {
    fn default() -> Self {
        let power = || TaskMatcher { operations: ops(&POWER_OPS), component_kinds: Vec::new() };
        let firmware =
            || TaskMatcher { operations: ops(&["firmware_update"]), component_kinds: Vec::new() };
        let firmware_or_power = || TaskMatcher {
            operations: ops(&["firmware_update", "power_on", "power_off", "power_cycle"]),
            component_kinds: Vec::new(),
        };
        let rule = |name: &str, a, b, components, verdict| ConflictRule {
            name: name.to_string(),
            a,
            b,
            components,
            verdict,
        };
        Self {
            rules: vec![
                rule(
                    "exclusive_operations",
                    TaskMatcher {
                        operations: ops(&["bring_up", "decommission"]),
                        component_kinds: Vec::new(),
                    },
                    TaskMatcher::default(),
                    ComponentOverlap::Any,
                    Verdict::Conflict,
                ),
                rule(
                    "power_shelf_power_control",
                    TaskMatcher {
                        operations: ops(&POWER_OPS),
                        component_kinds: vec![ComponentKind::PowerShelf],
                    },
                    TaskMatcher::default(),
                    ComponentOverlap::Any,
                    Verdict::Conflict,
                ),
                rule(
                    "firmware_overlap",
                    firmware(),
                    firmware_or_power(),
                    ComponentOverlap::Overlapping,
                    Verdict::Conflict,
                ),
                rule(
                    "firmware_disjoint",
                    firmware(),
                    firmware_or_power(),
                    ComponentOverlap::Disjoint,
                    Verdict::Compatible,
                ),
                rule(
                    "power_overlap",
                    power(),
                    power(),
                    ComponentOverlap::Overlapping,
                    Verdict::Conflict,
                ),
                rule(
                    "power_disjoint",
                    power(),
                    power(),
                    ComponentOverlap::Disjoint,
                    Verdict::Compatible,
                ),
            ],
        }
    }
}

/// One task as the rules see it.
#[derive(Clone, Copy, Debug)]
pub struct TaskFacts<'a> {
    /// Operation name.
    pub operation: &'a str,
    /// Kinds of the components the task touches, or `None` if some component is unknown.
    pub kinds: Option<KindSet>,
}

/// A set of component kinds (bit per kind).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindSet(u8);

impl KindSet {
    fn bit(kind: ComponentKind) -> u8 {
        match kind {
            ComponentKind::Compute => 1,
            ComponentKind::Nvswitch => 2,
            ComponentKind::PowerShelf => 4,
            ComponentKind::Node => 8,
        }
    }

    /// Adds a kind.
    pub fn insert(&mut self, kind: ComponentKind) {
        self.0 |= Self::bit(kind);
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: ComponentKind) -> bool {
        self.0 & Self::bit(kind) != 0
    }
}

/// The outcome of comparing two tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A rule said compatible.
    Compatible,
    /// They conflict; the text explains by which rule (or that no rule decided).
    Conflict(String),
}

/// Whether `matcher` matches `task`; `None` when it needs component kinds and they are unknown.
fn matches(matcher: &TaskMatcher, task: &TaskFacts<'_>) -> Option<bool> {
    if !matcher.operations.is_empty() && !matcher.operations.iter().any(|o| o == task.operation) {
        return Some(false);
    }
    if matcher.component_kinds.is_empty() {
        return Some(true);
    }
    let kinds = task.kinds?;
    Some(matcher.component_kinds.iter().any(|k| kinds.contains(*k)))
}

/// How a hold message describes a rule's component relation.
fn describe(overlap: ComponentOverlap) -> &'static str {
    match overlap {
        ComponentOverlap::Any => "on the same rack",
        ComponentOverlap::Overlapping => "on overlapping components",
        ComponentOverlap::Disjoint => "on disjoint components",
    }
}

impl ConflictRules {
    /// Checks operation names and rule names; paths start with `prefix` (`{prefix}.rules[i]`).
    pub fn validate(&self, prefix: &str) -> Result<(), ValidationErrors> {
        validate_rules(&self.rules, &format!("{prefix}.rules"))
    }

    /// Decides whether `candidate` may run next to `active` on one rack. `overlap` is whether
    /// their component sets intersect.
    pub fn decide(
        &self,
        candidate: &TaskFacts<'_>,
        active: &TaskFacts<'_>,
        overlap: bool,
    ) -> Decision {
        for rule in &self.rules {
            let applies = match rule.components {
                ComponentOverlap::Any => true,
                ComponentOverlap::Overlapping => overlap,
                ComponentOverlap::Disjoint => !overlap,
            };
            if !applies {
                continue;
            }
            let forward = matches(&rule.a, candidate).zip(matches(&rule.b, active));
            let backward = matches(&rule.a, active).zip(matches(&rule.b, candidate));
            let matched = match (forward, backward) {
                (Some((true, true)), _) | (_, Some((true, true))) => true,
                (Some(_), Some(_)) => false,
                // A side needed component kinds nobody knows: the rule cannot be evaluated.
                _ => {
                    return Decision::Conflict(format!(
                        "rule {} cannot be evaluated (a component is missing from the inventory), \
                         so it counts as a conflict",
                        rule.name
                    ));
                }
            };
            if matched {
                return match rule.verdict {
                    Verdict::Compatible => Decision::Compatible,
                    Verdict::Conflict => Decision::Conflict(format!(
                        "{} conflicts with {} {} (rule {})",
                        candidate.operation,
                        active.operation,
                        describe(rule.components),
                        rule.name
                    )),
                };
            }
        }
        Decision::Conflict(format!(
            "no conflict rule decides {} next to {}, so it counts as a conflict",
            candidate.operation, active.operation
        ))
    }
}

/// Checks a rule list as a site writes it: every rule named, no name twice, every operation
/// known. Paths are `{prefix}[i].name`, `{prefix}[i].a.operations[j]`, e.g.
/// `planner.conflict_rules[1].a.operations[0]`; every problem is listed.
pub fn validate_rules(rules: &[ConflictRule], prefix: &str) -> Result<(), ValidationErrors> {
    let mut errors = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let path = format!("{prefix}[{index}]");
        if rule.name.trim().is_empty() {
            errors.push(FieldError::new(format!("{path}.name"), "must not be empty"));
        } else if rules[..index].iter().any(|r| r.name == rule.name) {
            errors.push(FieldError::new(
                format!("{path}.name"),
                format!("rule name {:?} is used twice", rule.name),
            ));
        }
        for (side, matcher) in [("a", &rule.a), ("b", &rule.b)] {
            for (i, op) in matcher.operations.iter().enumerate() {
                if !KNOWN_OPERATIONS.contains(&op.as_str()) {
                    errors.push(FieldError::new(
                        format!("{path}.{side}.operations[{i}]"),
                        format!("unknown operation {op:?}; known: {}", KNOWN_OPERATIONS.join(", ")),
                    ));
                }
            }
        }
    }
    ValidationErrors::from_vec(errors)
}
