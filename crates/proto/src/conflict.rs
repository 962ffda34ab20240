//! Rack conflict rules as data (DESIGN §3.6 gate 5): what a site writes under
//! `[[planner.conflict_rules]]` and what the event log records in [`crate::SiteTables`]. The
//! planner (`steward_planner::conflict`) evaluates them and holds the built-in defaults.
//!
//! A rule compares two tasks on the same rack (a candidate and an active one) and says
//! `conflict` or `compatible`; the first matching rule decides, and no match means conflict.

use crate::ComponentKind;
use serde::{Deserialize, Serialize};

/// Which tasks one side of a rule matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskMatcher {
    /// Operation names (see `steward_planner::conflict::KNOWN_OPERATIONS`); empty matches every
    /// operation.
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
    #[serde(default)]
    pub a: TaskMatcher,
    /// The other side.
    #[serde(default)]
    pub b: TaskMatcher,
    /// Component relation required for the rule to apply.
    #[serde(default)]
    pub components: ComponentOverlap,
    /// The decision.
    pub verdict: Verdict,
}
