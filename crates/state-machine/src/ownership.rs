//! Field ownership between Core and the operator.
//!
//! Core owns what it observes: which components exist, their kinds, serials, manufacturers,
//! models, positions, firmware and power. The operator owns names, labels and rack locations.
//! An import of Core's inventory (at every start) therefore adds what is new and updates
//! Core-owned fields only: [`Fleet::keep_operator_fields`] rewrites Core's document so that every
//! operator-owned field of a rack or component Steward already knows keeps its current value.

use crate::fleet::Fleet;
use steward_proto::RackSpec;

impl Fleet {
    /// Core's racks with every operator-owned field of an existing rack or component replaced
    /// by the value Steward already holds.
    pub fn keep_operator_fields(&self, racks: &[RackSpec]) -> Vec<RackSpec> {
        let fleet = self;
        racks
            .iter()
            .map(|spec| {
                let mut spec = spec.clone();
                if let Some(rack) = fleet.racks.get(&spec.id) {
                    spec.name.clone_from(&rack.name);
                    spec.location = rack.location.clone();
                    spec.labels.clone_from(&rack.labels);
                }
                for component in &mut spec.components {
                    if let Some(entry) = fleet.components.get(&component.id) {
                        component.name.clone_from(&entry.component.name);
                        component.labels.clone_from(&entry.component.labels);
                    }
                }
                spec
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{FleetConfig, FleetEvent};
    use steward_proto::{ComponentKind, ComponentPosition, ComponentSpec, Timestamp};

    fn rack(name: &str, label: Option<(&str, &str)>, serial: &str) -> RackSpec {
        let labels = label.map(|(k, v)| (k.to_string(), v.to_string())).into_iter().collect();
        RackSpec {
            id: "r1".into(),
            name: name.to_string(),
            location: Default::default(),
            labels,
            components: vec![ComponentSpec {
                id: "c1".into(),
                kind: ComponentKind::Compute,
                name: format!("{name}-c1"),
                manufacturer: None,
                model: None,
                serial: Some(serial.to_string()),
                position: ComponentPosition::default(),
                firmware_version: None,
                power_state: None,
                labels: Default::default(),
            }],
        }
    }

    #[test]
    fn import_updates_core_fields_and_keeps_operator_ones() {
        let now = Timestamp::default();
        let mut fleet = Fleet::new(FleetConfig::default());
        let operator = rack("canary rack", Some(("pool", "canary")), "S1");
        let upsert =
            FleetEvent::InventoryUpserted { initiator: "op".into(), racks: vec![operator] };
        fleet.apply(&upsert, now).expect("upsert");
        let core = rack("core-name", None, "S2");
        let import = FleetEvent::CoreInventoryImported { racks: vec![core] };
        fleet.apply(&import, now).expect("import");
        let rack = &fleet.racks["r1"];
        assert_eq!(rack.name, "canary rack");
        assert_eq!(rack.labels.get("pool").map(String::as_str), Some("canary"));
        let component = &fleet.components["c1"].component;
        assert_eq!(component.name, "canary rack-c1", "the operator's name is kept");
        assert_eq!(component.serial.as_deref(), Some("S2"), "Core's serial is taken");
    }
}
