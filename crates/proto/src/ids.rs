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

/// Longest accepted id, in characters (racks, components, runs, hooks, webhooks).
pub const MAX_ID_CHARS: usize = 128;

/// Checks one id against the id rules: not empty, at most [`MAX_ID_CHARS`] characters, no
/// control characters (NUL, newlines, terminal escapes) or other non-printable characters, and
/// not `.` or `..` (which cannot be addressed in a URL path). The error says which rule failed.
pub fn check_id(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".to_string());
    }
    let chars = value.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(format!("is {chars} characters long; the limit is {MAX_ID_CHARS}"));
    }
    if value == "." || value == ".." {
        return Err(format!("{value:?} is not a valid id"));
    }
    if let Some(bad) = value.chars().find(|c| !is_printable(*c)) {
        return Err(format!(
            "contains the non-printable character U+{:04X}; ids are printable text",
            u32::from(bad)
        ));
    }
    Ok(())
}

/// Printable: no control characters, no whitespace other than the plain space, no format
/// characters that reorder or hide text (bidi overrides, zero-width characters).
fn is_printable(c: char) -> bool {
    if c.is_control() || (c.is_whitespace() && c != ' ') {
        return false;
    }
    !matches!(u32::from(c), 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0xFEFF)
}

/// Checks `value` against the id rules and records a violation under `field`.
pub fn validate_id(field: &str, value: &str, errors: &mut Vec<crate::FieldError>) {
    if let Err(message) = check_id(value) {
        errors.push(crate::FieldError::new(field, message));
    }
}

#[cfg(test)]
mod id_rules {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for id in ["rack-001", "r.1", "a b", "rack_é", "...", &"x".repeat(MAX_ID_CHARS)] {
            assert_eq!(check_id(id), Ok(()), "{id:?}");
        }
    }

    #[test]
    fn refuses_what_cannot_be_shown_or_addressed() {
        for id in ["", ".", "..", "a\0b", "a\nb", "\u{1b}[31m", "a\u{202e}b", "tab\t"] {
            assert!(check_id(id).is_err(), "{id:?}");
        }
        assert!(check_id(&"x".repeat(MAX_ID_CHARS + 1)).is_err());
    }
}
