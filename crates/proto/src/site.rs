//! [`SiteTables`]: the site's configured tables that decide events (status mapping and blocked
//! operations per phase, the service-state table, the default run policy), as the event log
//! records them when they first apply and whenever a start changes them, so `steward replay`
//! needs no config.
//!
//! Every field is optional: `None` means the built-in default. New tables are added as further
//! optional fields (the conflict rules were), so logs written before them still decode.

use crate::{ConflictRule, PhaseMappingOverride, RunPolicy, ServiceTableDoc};
use serde::{Deserialize, Serialize};

/// The effective site tables of a server (`None` fields: the built-in default).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SiteTables {
    /// Overrides of the status tables (raw word -> phase, blocked operations per phase).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase_mapping: Option<PhaseMappingOverride>,
    /// The site's service-state table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_states: Option<ServiceTableDoc>,
    /// Defaults under every run request's policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_policy: Option<RunPolicy>,
    /// The planner's rack conflict rules (`[[planner.conflict_rules]]`), first match wins; a
    /// log written before they were recorded decodes as `None`, the built-in rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict_rules: Option<Vec<ConflictRule>>,
}

impl SiteTables {
    /// Whether every table is the built-in default.
    pub fn is_default(&self) -> bool {
        self == &SiteTables::default()
    }

    /// Normalises an empty phase-mapping override to `None` (both mean the defaults), so equal
    /// tables compare equal however they were written.
    pub fn normalized(mut self) -> Self {
        if self.phase_mapping.as_ref() == Some(&PhaseMappingOverride::default()) {
            self.phase_mapping = None;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_log_written_before_conflict_rules_were_recorded_still_decodes() {
        let old = r#"{"default_policy":null,"service_states":null}"#;
        let tables: SiteTables = serde_json::from_str(old).unwrap();
        assert_eq!(tables.conflict_rules, None, "None: the built-in rules");
        let rule = r#"{"conflict_rules":[{"name":"all","verdict":"compatible"}]}"#;
        let tables: SiteTables = serde_json::from_str(rule).unwrap();
        let rules = tables.conflict_rules.clone().unwrap();
        assert_eq!((rules[0].name.as_str(), rules[0].verdict), ("all", crate::Verdict::Compatible));
        let back = serde_json::to_string(&tables).unwrap();
        assert_eq!(serde_json::from_str::<SiteTables>(&back).unwrap(), tables);
        assert!(!serde_json::to_string(&SiteTables::default()).unwrap().contains("conflict_rules"));
    }
}
