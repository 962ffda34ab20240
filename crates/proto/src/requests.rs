//! Request bodies of the HTTP API as typed structs. The server parses exactly these, and the CLI
//! builds exactly these, so a client cannot send a shape the server would not parse.
//!
//! A run request's policy states only what the caller gives ([`PolicyOverrides`]); the server
//! lays it over the site's default policy, which itself lies over the built-in defaults.

use crate::hooks::HookRefs;
use crate::ids::ServiceState;
use crate::operation::Operation;
use crate::policy::{
    ConflictRetry, MaintenanceWindow, OnNotReady, Ordering, RunPolicy, SafetyGate, WaveSpec,
};
use crate::run::{CreateRunRequest, Selector};
use serde::{Deserialize, Serialize};

/// Declares [`PolicyOverrides`]: one optional field per [`RunPolicy`] field, and the merge.
macro_rules! policy_overrides {
    ($($(#[$doc:meta])* $field:ident: $ty:ty,)*) => {
        /// A run policy as a request states it: every field optional; what is absent comes from
        /// the base policy ([`PolicyOverrides::over`]).
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(deny_unknown_fields)]
        pub struct PolicyOverrides {
            $(
                $(#[$doc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }

        impl PolicyOverrides {
            /// `base` with every given field replaced.
            pub fn over(self, mut base: RunPolicy) -> RunPolicy {
                $(
                    if let Some(value) = self.$field {
                        base.$field = value.into();
                    }
                )*
                base
            }
        }
    };
}

policy_overrides! {
    /// Racks in flight at once for this run.
    max_parallel_racks: u32,
    /// Wave split.
    waves: WaveSpec,
    /// Target order.
    ordering: Ordering,
    /// Open the next wave by itself after the soak.
    auto_advance: bool,
    /// Seconds between a wave finishing and the next opening.
    soak_seconds: u64,
    /// Safety gates, OR-combined.
    safety_gates: Vec<SafetyGate>,
    /// Hold or skip targets that are not ready.
    on_not_ready: OnNotReady,
    /// Longest readiness hold before the run pauses.
    max_wait_seconds: u64,
    /// Service states a component may be in.
    allowed_service_states: Vec<ServiceState>,
    /// Daily UTC windows in which dispatch may start.
    maintenance_windows: Vec<MaintenanceWindow>,
    /// Attempts per target (first try included).
    max_attempts: u32,
    /// Wait before a failed target is retried.
    retry_backoff_seconds: u64,
    /// Claim lease length.
    claim_lease_seconds: u64,
    /// Conflict backoff and timeout.
    conflict_retry: ConflictRetry,
    /// Hooks (names from the server's config) before and after each rack's task.
    hooks: HookRefs,
    /// `firmware_update`: skip racks already at the requested version.
    skip_if_current: bool,
}

/// `POST /v1/runs` body as sent: the policy holds only the fields the caller gives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Human name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The operation.
    pub operation: Operation,
    /// The selection.
    pub selector: Selector,
    /// Policy fields given by the caller.
    #[serde(default)]
    pub policy: PolicyOverrides,
    /// Plan only: return waves, targets and holds, create nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

impl RunRequest {
    /// The full request, with the policy laid over `base` (the site's default policy).
    pub fn with_base_policy(self, base: RunPolicy) -> CreateRunRequest {
        CreateRunRequest {
            name: self.name,
            operation: self.operation,
            selector: self.selector,
            policy: self.policy.over(base),
            dry_run: self.dry_run,
        }
    }
}

/// `POST /v1/components/{id}/service-state` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServiceStateRequest {
    /// The state to move to.
    pub to: ServiceState,
    /// The operator's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `POST /v1/components/{id}/service-state/force` body (admin): any state of the table, with a
/// required note.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ForceServiceStateRequest {
    /// The state to move to.
    pub to: ServiceState,
    /// Why (recorded in the history).
    pub note: String,
}

/// `POST /v1/runs/{id}/pause`, `/resume`, `/cancel` body (optional).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/runs/{id}/advance` body (optional).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AdvanceRequest {
    /// Refuse unless this is the wave that would open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_wave: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_what_is_given() {
        let base = RunPolicy { max_parallel_racks: 4, soak_seconds: 60, ..RunPolicy::default() };
        let given = PolicyOverrides {
            max_parallel_racks: Some(2),
            max_wait_seconds: Some(30),
            ..Default::default()
        };
        let merged = given.over(base);
        assert_eq!(merged.max_parallel_racks, 2);
        assert_eq!(merged.soak_seconds, 60, "absent fields keep the base");
        assert_eq!(merged.max_wait_seconds, Some(30));
    }

    #[test]
    fn an_empty_policy_serializes_to_nothing() {
        let text = serde_json::to_string(&PolicyOverrides::default()).unwrap_or_default();
        assert_eq!(text, "{}");
        let refused = serde_json::from_str::<PolicyOverrides>(r#"{"max_paralel_racks": 1}"#);
        assert!(refused.is_err(), "unknown policy fields are refused");
    }
}

/// `POST /v1/runs/{id}/rerun` body: a new run over a finished run's failed targets (and its
/// skipped ones unless `failed_only`), with the same operation and policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RerunRequest {
    /// Only failed and terminated targets (not skipped ones).
    #[serde(default)]
    pub failed_only: bool,
}
