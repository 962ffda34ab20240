//! Components, racks and the derived component status (phase, reason, blocked operations).

use crate::ids::{ComponentId, RackId, ServiceState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The kind of a component; each kind has its own controller vocabulary in Core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// A compute tray (host state display string).
    Compute,
    /// An NVLink switch tray (JSON-tagged controller state).
    Nvswitch,
    /// A power shelf (JSON-tagged controller state).
    PowerShelf,
    /// A plain node (plain word or JSON form, nvswitch vocabulary).
    Node,
}

impl ComponentKind {
    /// Every kind, in declaration order.
    pub const ALL: [ComponentKind; 4] = [
        ComponentKind::Compute,
        ComponentKind::Nvswitch,
        ComponentKind::PowerShelf,
        ComponentKind::Node,
    ];

    /// The snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Compute => "compute",
            ComponentKind::Nvswitch => "nvswitch",
            ComponentKind::PowerShelf => "power_shelf",
            ComponentKind::Node => "node",
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The lifecycle phase derived from Core's raw controller state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No usable state: never observed, stale, or not understood. Blocks everything.
    Unknown,
    /// Being brought up or validated.
    Initializing,
    /// Idle and healthy: the only phase that blocks nothing by default.
    Ready,
    /// Assigned or busy.
    InUse,
    /// Failed.
    Error,
    /// Being deleted.
    Deleting,
}

impl Phase {
    /// Every phase, in declaration order.
    pub const ALL: [Phase; 6] = [
        Phase::Unknown,
        Phase::Initializing,
        Phase::Ready,
        Phase::InUse,
        Phase::Error,
        Phase::Deleting,
    ];

    /// The snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Unknown => "unknown",
            Phase::Initializing => "initializing",
            Phase::Ready => "ready",
            Phase::InUse => "in_use",
            Phase::Error => "error",
            Phase::Deleting => "deleting",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A class of operations that a component status can block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OperationClass {
    /// power_on, power_off, power_cycle.
    PowerControl,
    /// firmware_update.
    FirmwareControl,
}

impl OperationClass {
    /// Every class.
    pub const ALL: [OperationClass; 2] =
        [OperationClass::PowerControl, OperationClass::FirmwareControl];

    fn bit(self) -> u8 {
        match self {
            OperationClass::PowerControl => 1,
            OperationClass::FirmwareControl => 2,
        }
    }

    /// The snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationClass::PowerControl => "power_control",
            OperationClass::FirmwareControl => "firmware_control",
        }
    }
}

impl fmt::Display for OperationClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of operation classes, stored as bits; serialized as a sorted JSON array of names.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = Vec<OperationClass>))]
pub struct BlockedOperations(u8);

impl BlockedOperations {
    /// Blocks nothing.
    pub const NONE: BlockedOperations = BlockedOperations(0);
    /// Blocks every class.
    pub const ALL: BlockedOperations = BlockedOperations(3);

    /// Builds a set from classes.
    pub fn from_classes(classes: impl IntoIterator<Item = OperationClass>) -> Self {
        let mut set = Self::NONE;
        for class in classes {
            set.insert(class);
        }
        set
    }

    /// Adds a class.
    pub fn insert(&mut self, class: OperationClass) {
        self.0 |= class.bit();
    }

    /// Whether `class` is blocked.
    pub fn contains(self, class: OperationClass) -> bool {
        self.0 & class.bit() != 0
    }

    /// Whether nothing is blocked.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The blocked classes in a stable order.
    pub fn classes(self) -> Vec<OperationClass> {
        OperationClass::ALL.into_iter().filter(|c| self.contains(*c)).collect()
    }
}

impl fmt::Debug for BlockedOperations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.classes()).finish()
    }
}

impl Serialize for BlockedOperations {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.classes().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for BlockedOperations {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let classes = Vec::<OperationClass>::deserialize(deserializer)?;
        Ok(Self::from_classes(classes))
    }
}

/// The derived status of one component: can it be touched now, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ComponentStatus {
    /// The phase.
    pub phase: Phase,
    /// Core's raw controller state string, or why there is none.
    pub reason: String,
    /// The operation classes not allowed now.
    pub blocked_operations: BlockedOperations,
}

impl ComponentStatus {
    /// The status of a component Steward knows nothing usable about: blocks everything.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self {
            phase: Phase::Unknown,
            reason: reason.into(),
            blocked_operations: BlockedOperations::ALL,
        }
    }
}

/// Where a rack stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Location {
    /// Region name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Datacenter name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    /// Room name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Row name; `one_per_row_round_robin` ordering spreads targets across rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<String>,
    /// Position within the row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
}

/// A rack in the inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rack {
    /// Rack id.
    pub id: RackId,
    /// Human name.
    #[serde(default)]
    pub name: String,
    /// Location.
    #[serde(default)]
    pub location: Location,
    /// Free-form labels used by label selectors.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Where a component sits in its rack.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct ComponentPosition {
    /// Slot number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// Tray index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tray_index: Option<u32>,
}

/// Inventory facts about a component (not its derived status).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Component id.
    pub id: ComponentId,
    /// The rack holding it.
    pub rack_id: RackId,
    /// Kind.
    pub kind: ComponentKind,
    /// Human name.
    #[serde(default)]
    pub name: String,
    /// Manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Position in the rack.
    #[serde(default)]
    pub position: ComponentPosition,
    /// Last firmware version reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    /// Last power state reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<String>,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A component as the API shows it: inventory, derived status and service state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ComponentView {
    /// Inventory facts.
    #[serde(flatten)]
    pub component: Component,
    /// Derived status (unknown when never observed or stale).
    pub status: ComponentStatus,
    /// Operator service state.
    pub service_state: ServiceState,
}

/// One raw observation of a component pushed by Core or an operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Observation {
    /// The component observed.
    pub component_id: ComponentId,
    /// Core's raw controller state (display string or tagged JSON, per kind).
    pub controller_state: String,
    /// Power state, if reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<String>,
    /// Firmware version, if reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    /// When Core observed it; defaults to when Steward received it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<chrono::DateTime<chrono::Utc>>,
}
