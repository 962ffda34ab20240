//! The inventory upsert document (`POST /v1/inventory`, `steward inventory import`).

use crate::component::{Component, ComponentKind, ComponentPosition, Location, Rack};
use crate::ids::{ComponentId, RackId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Racks with their components, to create or update.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InventoryUpsert {
    /// The racks.
    pub racks: Vec<RackSpec>,
}

/// One rack in an upsert document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RackSpec {
    /// Rack id.
    pub id: RackId,
    /// Human name.
    #[serde(default)]
    pub name: String,
    /// Location.
    #[serde(default)]
    pub location: Location,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Components in the rack.
    #[serde(default)]
    pub components: Vec<ComponentSpec>,
}

/// One component in an upsert document; its rack is the enclosing rack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ComponentSpec {
    /// Component id.
    pub id: ComponentId,
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
    /// Firmware version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    /// Power state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl RackSpec {
    /// The rack part of the spec.
    pub fn rack(&self) -> Rack {
        Rack {
            id: self.id.clone(),
            name: self.name.clone(),
            location: self.location.clone(),
            labels: self.labels.clone(),
        }
    }

    /// The components of the spec, each bound to this rack.
    pub fn components(&self) -> impl Iterator<Item = Component> + '_ {
        self.components.iter().map(|spec| spec.component(&self.id))
    }
}

impl ComponentSpec {
    /// The component, bound to `rack_id`.
    pub fn component(&self, rack_id: &RackId) -> Component {
        Component {
            id: self.id.clone(),
            rack_id: rack_id.clone(),
            kind: self.kind,
            name: self.name.clone(),
            manufacturer: self.manufacturer.clone(),
            model: self.model.clone(),
            serial: self.serial.clone(),
            position: self.position.clone(),
            firmware_version: self.firmware_version.clone(),
            power_state: self.power_state.clone(),
            labels: self.labels.clone(),
        }
    }
}
