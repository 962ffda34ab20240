//! Identifier newtypes (racks, components, runs, targets, tasks, service states).
//!
//! Ids are cheap to clone (`Arc<str>` inside) because the planner and the reducer copy them on
//! hot paths; on the wire they are plain JSON strings.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Creates the id from any string.
            pub fn new(value: impl AsRef<str>) -> Self {
                Self(Arc::from(value.as_ref()))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", &*self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::new(value)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(Arc::from(value))
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A rack, the unit a run dispatches one task to.
    RackId
);
string_id!(
    /// A component (compute tray, NVLink switch, power shelf, node).
    ComponentId
);
string_id!(
    /// An operation run.
    RunId
);
string_id!(
    /// A run's target: one rack within one run.
    TargetId
);
string_id!(
    /// A task as Core names it.
    TaskId
);
string_id!(
    /// An operator service state name (`in_service`, `maintenance`, ... or a site's own).
    ServiceState
);
string_id!(
    /// The idempotency key of a task submission, derived from run, target and attempt.
    IdempotencyKey
);

impl IdempotencyKey {
    /// The key for one submission attempt of a target: `run/target/attempt`.
    pub fn for_attempt(run: &RunId, target: &TargetId, attempt: u32) -> Self {
        Self::new(format!("{run}/{target}/{attempt}"))
    }
}

impl TargetId {
    /// The id of the target covering `rack` in `run`.
    pub fn for_rack(run: &RunId, rack: &RackId) -> Self {
        Self::new(format!("{run}:{rack}"))
    }
}
