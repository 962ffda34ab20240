//! Loading the fleet from the state rows on start. Indexes are never stored: the order columns
//! give `rack_components` and `run_targets`, and `Fleet::rebuild_indexes` derives the rest.

use super::codec::{from_json, to_u32};
use super::error::StoreError;
use rusqlite::Connection;
use std::collections::BTreeMap;
use steward_proto::{ComponentId, ComponentStatus, RackId, RunId, ServiceState, TargetId};
use steward_state_machine::{ComponentEntry, Fleet, FleetConfig};

/// Reads every state row into a fresh [`Fleet`] and rebuilds its indexes.
pub(crate) fn load_fleet(conn: &Connection, config: FleetConfig) -> Result<Fleet, StoreError> {
    let mut fleet = Fleet::new(config);

    let mut stmt = conn.prepare_cached("SELECT id, data FROM racks ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let data: String = row.get(1)?;
        let rack = from_json(&data, || format!("racks row {id} column data"))?;
        fleet.rack_components.entry(RackId::from(id.as_str())).or_default();
        fleet.racks.insert(RackId::from(id), rack);
    }
    drop(rows);

    // `ord` is inventory order within each rack (see the schema).
    let mut stmt = conn.prepare_cached(
        "SELECT id, data, raw_state, status, service_state FROM components ORDER BY ord",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let data: String = row.get(1)?;
        let status: Option<String> = row.get(3)?;
        let service_state: String = row.get(4)?;
        let component: steward_proto::Component =
            from_json(&data, || format!("components row {id} column data"))?;
        let status = status
            .map(|text| {
                from_json::<ComponentStatus>(&text, || format!("components row {id} column status"))
            })
            .transpose()?;
        let id = ComponentId::from(id);
        fleet.rack_components.entry(component.rack_id.clone()).or_default().push(id.clone());
        fleet.components.insert(
            id,
            ComponentEntry {
                component,
                raw_state: row.get(2)?,
                status,
                service_state: ServiceState::from(service_state),
                last_observed_at: None,
            },
        );
    }
    drop(rows);

    let mut stmt = conn.prepare_cached("SELECT id, data FROM runs ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let data: String = row.get(1)?;
        let run = from_json(&data, || format!("runs row {id} column data"))?;
        fleet.runs.insert(RunId::from(id), run);
    }
    drop(rows);

    let mut stmt = conn.prepare_cached(
        "SELECT id, run_id, position, data FROM targets ORDER BY run_id, position",
    )?;
    let mut rows = stmt.query([])?;
    let mut order: BTreeMap<RunId, Vec<(u32, TargetId)>> = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let run_id: String = row.get(1)?;
        let position: i64 = row.get(2)?;
        let data: String = row.get(3)?;
        let position = to_u32(position, || format!("targets row {id} column position"))?;
        let target = from_json(&data, || format!("targets row {id} column data"))?;
        let id = TargetId::from(id);
        order.entry(RunId::from(run_id)).or_default().push((position, id.clone()));
        fleet.targets.insert(id, target);
    }
    drop(rows);
    for (run_id, targets) in order {
        fleet.run_targets.insert(run_id, targets.into_iter().map(|(_, id)| id).collect());
    }

    let mut stmt = conn.prepare_cached("SELECT id, data FROM tasks ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let data: String = row.get(1)?;
        let task = from_json(&data, || format!("tasks row {id} column data"))?;
        fleet.tasks.insert(steward_proto::TaskId::from(id), task);
    }
    drop(rows);

    // `rack_components` and `run_targets` come from the rows' order columns; the target
    // indexes follow from them.
    fleet.rebuild_indexes();
    Ok(fleet)
}
