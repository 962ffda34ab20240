//! Event-log records as stored and served (`GET /v1/events`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One accepted event: sequence number, time, kind and JSON payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventRecord {
    /// Monotonic sequence number, from 1.
    pub seq: u64,
    /// When the reducer accepted it.
    pub at: DateTime<Utc>,
    /// Event kind, snake_case (e.g. `service_state_changed`).
    pub kind: String,
    /// The event's data.
    pub data: serde_json::Value,
}
