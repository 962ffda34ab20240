//! Operations a run performs on components, and their classes.

use crate::component::{ComponentKind, OperationClass};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a run does to each selected component.
///
/// Deserialized through a private wire struct so that unknown fields are rejected for every kind
/// (serde ignores extra fields on unit variants of internally tagged enums).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields, try_from = "OperationWire")]
pub enum Operation {
    /// Power on.
    PowerOn,
    /// Power off.
    PowerOff,
    /// Power cycle.
    PowerCycle,
    /// Firmware update to `version`; `components` narrows the update to those kinds (empty: all).
    FirmwareUpdate {
        /// The firmware version to install.
        version: String,
        /// Component kinds whose firmware is updated; empty means every selected component.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        components: Vec<ComponentKind>,
    },
}

/// The JSON form of [`Operation`] as read: every field of every kind, unknown fields rejected.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperationWire {
    kind: OperationKind,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    components: Option<Vec<ComponentKind>>,
}

impl TryFrom<OperationWire> for Operation {
    type Error = String;

    fn try_from(wire: OperationWire) -> Result<Self, Self::Error> {
        let kind = wire.kind;
        if kind != OperationKind::FirmwareUpdate {
            if wire.version.is_some() {
                return Err(format!("unknown field `version` for operation kind {kind}"));
            }
            if wire.components.is_some() {
                return Err(format!("unknown field `components` for operation kind {kind}"));
            }
        }
        Ok(match kind {
            OperationKind::PowerOn => Operation::PowerOn,
            OperationKind::PowerOff => Operation::PowerOff,
            OperationKind::PowerCycle => Operation::PowerCycle,
            OperationKind::FirmwareUpdate => Operation::FirmwareUpdate {
                version: wire.version.ok_or("missing field `version` for firmware_update")?,
                components: wire.components.unwrap_or_default(),
            },
        })
    }
}

/// The operation's kind without its parameters, for tables and conflict rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// power_on.
    PowerOn,
    /// power_off.
    PowerOff,
    /// power_cycle.
    PowerCycle,
    /// firmware_update.
    FirmwareUpdate,
}

impl OperationKind {
    /// Every kind.
    pub const ALL: [OperationKind; 4] = [
        OperationKind::PowerOn,
        OperationKind::PowerOff,
        OperationKind::PowerCycle,
        OperationKind::FirmwareUpdate,
    ];

    /// The class whose blocking decides whether this kind may run.
    pub fn class(self) -> OperationClass {
        match self {
            OperationKind::FirmwareUpdate => OperationClass::FirmwareControl,
            _ => OperationClass::PowerControl,
        }
    }

    /// The snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::PowerOn => "power_on",
            OperationKind::PowerOff => "power_off",
            OperationKind::PowerCycle => "power_cycle",
            OperationKind::FirmwareUpdate => "firmware_update",
        }
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Operation {
    /// The operation's kind.
    pub fn kind(&self) -> OperationKind {
        match self {
            Operation::PowerOn => OperationKind::PowerOn,
            Operation::PowerOff => OperationKind::PowerOff,
            Operation::PowerCycle => OperationKind::PowerCycle,
            Operation::FirmwareUpdate { .. } => OperationKind::FirmwareUpdate,
        }
    }

    /// The operation's class.
    pub fn class(&self) -> OperationClass {
        self.kind().class()
    }

    /// Whether the operation applies to a component of `kind`.
    pub fn applies_to(&self, kind: ComponentKind) -> bool {
        match self {
            Operation::FirmwareUpdate { components, .. } => {
                components.is_empty() || components.contains(&kind)
            }
            _ => true,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::FirmwareUpdate { version, .. } => write!(f, "firmware_update {version}"),
            other => f.write_str(other.kind().as_str()),
        }
    }
}
