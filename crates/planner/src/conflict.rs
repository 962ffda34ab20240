//! Rack conflict rules as data (DESIGN §3.6 gate 5) and their evaluation.
//!
//! A rule compares two tasks on the same rack (a candidate and an active one) and says
//! `conflict` or `compatible`. Rules are tried in order, symmetrically (`a` may match either
//! task); the first rule that matches decides. When no rule matches, or a rule cannot be
//! evaluated (a component is missing from the inventory), the answer is **conflict**: the
//! planner fails closed. Sites override the whole list through config (serde).

use serde::{Deserialize, Serialize};
use steward_proto::{ComponentKind, FieldError, ValidationErrors};

/// Operation names a matcher may use: today's operations plus the exclusive ones DESIGN §3.4
/// announces (`bring_up`, `decommission`), so a site can write rules for them ahead of time.
pub const KNOWN_OPERATIONS: [&str; 6] =
    ["power_on", "power_off", "power_cycle", "firmware_update", "bring_up", "decommission"];

/// Which tasks one side of a rule matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskMatcher {
    /// Operation names (see [`KNOWN_OPERATIONS`]); empty matches every operation.
    pub operations: Vec<String>,
    /// The task must touch at least one component of one of these kinds; empty matches any.
    pub component_kinds: Vec<ComponentKind>,
}

/// How the two tasks' component sets must relate for a rule to apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentOverlap {
    /// Applies whatever the components.
    #[default]
    Any,
    /// Applies when the tasks share at least one component.
    Overlapping,
    /// Applies when the tasks share no component.
    Disjoint,
}

impl ComponentOverlap {
    fn describe(self) -> &'static str {
        match self {
            ComponentOverlap::Any => "on the same rack",
            ComponentOverlap::Overlapping => "on overlapping components",
            ComponentOverlap::Disjoint => "on disjoint components",
        }
    }
}

/// What a matching rule decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The tasks may not run at once.
    Conflict,
    /// The tasks may run at once.
    Compatible,
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictRule {
    /// Name shown in hold messages.
    pub name: String,
    /// One side.
    pub a: TaskMatcher,
    /// The other side.
    pub b: TaskMatcher,
    /// Component relation required for the rule to apply.
    #[serde(default)]
    pub components: ComponentOverlap,
    /// The decision.
    pub verdict: Verdict,
}

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

impl TaskMatcher {
    /// `None` when the matcher needs component kinds and they are unknown.
    fn matches(&self, task: &TaskFacts<'_>) -> Option<bool> {
        if !self.operations.is_empty() && !self.operations.iter().any(|o| o == task.operation) {
            return Some(false);
        }
        if self.component_kinds.is_empty() {
            return Some(true);
        }
        let kinds = task.kinds?;
        Some(self.component_kinds.iter().any(|k| kinds.contains(*k)))
    }
}

impl ConflictRules {
    /// Checks operation names and rule names; paths start with `prefix`.
    pub fn validate(&self, prefix: &str) -> Result<(), ValidationErrors> {
        let mut errors = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let path = format!("{prefix}.rules[{index}]");
            if rule.name.trim().is_empty() {
                errors.push(FieldError::new(format!("{path}.name"), "must not be empty"));
            } else if self.rules[..index].iter().any(|r| r.name == rule.name) {
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
                            format!(
                                "unknown operation {op:?}; known: {}",
                                KNOWN_OPERATIONS.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        ValidationErrors::from_vec(errors)
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
            let forward = rule.a.matches(candidate).zip(rule.b.matches(active));
            let backward = rule.a.matches(active).zip(rule.b.matches(candidate));
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
                        rule.components.describe(),
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
