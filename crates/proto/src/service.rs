//! Service-state history entries and the site service-state table document.

use crate::ids::{ComponentId, ServiceState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One accepted service-state transition, for audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HistoryEntry {
    /// The component.
    pub component_id: ComponentId,
    /// State before.
    pub from: ServiceState,
    /// State after.
    pub to: ServiceState,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (token name, or `steward` for the system).
    pub initiator: String,
    /// Operator's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A site's service-state table as written in config (TOML or JSON); validated at load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServiceTableDoc {
    /// The state a new component starts in.
    pub initial: String,
    /// Every state name.
    pub states: Vec<String>,
    /// Allowed transitions: from -> list of to.
    pub transitions: BTreeMap<String, Vec<String>>,
}
