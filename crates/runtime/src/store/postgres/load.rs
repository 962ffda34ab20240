//! Loading the fleet from PostgreSQL's state rows, exactly as `store::load` does from SQLite's:
//! the order columns give `rack_components` and `run_targets`, `Fleet::rebuild_indexes` the rest.

use super::conn::pg;
use crate::store::StoreError;
use crate::store::codec::{from_json, to_u32};
use postgres::Client;
use std::collections::BTreeMap;
use steward_proto::{
    Component, ComponentId, ComponentStatus, RackId, RunId, ServiceState, TargetId, TaskId,
};
use steward_state_machine::{ComponentEntry, Fleet, FleetConfig};

/// Reads every state row into a fresh [`Fleet`] and rebuilds its indexes.
pub(crate) fn load_fleet(client: &mut Client, config: FleetConfig) -> Result<Fleet, StoreError> {
    let mut fleet = Fleet::new(config);
    // One snapshot for every table: a REPEATABLE READ, read-only transaction.
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(pg("load: begin"))?;
    for row in tx.query("SELECT id, data FROM racks ORDER BY id", &[]).map_err(pg("load racks"))? {
        let id: String = row.get(0);
        let rack = from_json(row.get(1), || format!("racks row {id} column data"))?;
        fleet.rack_components.entry(RackId::from(id.as_str())).or_default();
        fleet.racks.insert(RackId::from(id), rack);
    }
    let rows = tx
        .query(
            "SELECT id, data, raw_state, status, service_state FROM components ORDER BY ord",
            &[],
        )
        .map_err(pg("load components"))?;
    for row in rows {
        let id: String = row.get(0);
        let component: Component =
            from_json(row.get(1), || format!("components row {id} column data"))?;
        let status = row
            .get::<_, Option<&str>>(3)
            .map(|text| {
                from_json::<ComponentStatus>(text, || format!("components row {id} column status"))
            })
            .transpose()?;
        let id = ComponentId::from(id);
        fleet.rack_components.entry(component.rack_id.clone()).or_default().push(id.clone());
        let entry = ComponentEntry {
            component,
            raw_state: row.get(2),
            status,
            service_state: ServiceState::from(row.get::<_, String>(4)),
            last_observed_at: None,
        };
        fleet.components.insert(id, entry);
    }
    for row in tx.query("SELECT id, data FROM runs ORDER BY id", &[]).map_err(pg("load runs"))? {
        let id: String = row.get(0);
        let run = from_json(row.get(1), || format!("runs row {id} column data"))?;
        fleet.runs.insert(RunId::from(id), run);
    }
    let rows = tx
        .query("SELECT id, run_id, position, data FROM targets ORDER BY run_id, position", &[])
        .map_err(pg("load targets"))?;
    let mut order: BTreeMap<RunId, Vec<TargetId>> = BTreeMap::new();
    for row in rows {
        let id: String = row.get(0);
        let run_id: String = row.get(1);
        to_u32(row.get(2), || format!("targets row {id} column position"))?;
        let target = from_json(row.get(3), || format!("targets row {id} column data"))?;
        let id = TargetId::from(id);
        order.entry(RunId::from(run_id)).or_default().push(id.clone());
        fleet.targets.insert(id, target);
    }
    fleet.run_targets.extend(order);
    for row in tx.query("SELECT id, data FROM tasks ORDER BY id", &[]).map_err(pg("load tasks"))? {
        let id: String = row.get(0);
        let task = from_json(row.get(1), || format!("tasks row {id} column data"))?;
        fleet.tasks.insert(TaskId::from(id), task);
    }
    tx.commit().map_err(pg("load: end"))?;
    fleet.rebuild_indexes();
    Ok(fleet)
}
