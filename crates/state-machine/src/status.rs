//! Component status derivation: raw Core controller state -> phase, reason, blocked classes.

use steward_proto::{ComponentKind, ComponentStatus};

/// The per-kind tables (defaults of DESIGN §3.2, optionally overridden by config).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusMapper {}

impl StatusMapper {
    /// Derives the status of a component of `kind` from Core's raw state.
    pub fn derive(&self, kind: ComponentKind, raw: &str) -> ComponentStatus {
        let _ = (kind, raw);
        ComponentStatus::unknown("not implemented yet")
    }
}
