//! The planner's configuration: limits and rules a site sets, never state.
//!
//! It depends only on [`crate::conflict`] (for the rule list), so the gates, the plan and the
//! dry run can all read it without depending on each other.

use crate::conflict::ConflictRules;
use serde::{Deserialize, Serialize};

/// Planner configuration (not state).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlannerConfig {
    /// Racks in flight over every run at once (`None`: no global limit).
    pub global_max_parallel: Option<u32>,
    /// Rack conflict rules (default: DESIGN §3.6).
    pub conflict_rules: ConflictRules,
}
