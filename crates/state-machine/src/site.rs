//! The site tables as fleet events: [`FleetEvent::SiteTablesApplied`] swaps the status mapper
//! and the service-state table the machines read (so replaying the log reproduces what decided
//! each event, with no config), and [`FleetEvent::ServiceStateForced`] moves a component to any
//! state of the table, the operator's way out when a new table drops a state components are in.
//! The planner's conflict rules ride along in the same document (`SiteTables::conflict_rules`):
//! the machines do not read them; they are recorded so the log names the rules that decided the
//! claims after it.
//!
//! [`FleetEvent::SiteTablesApplied`]: crate::FleetEvent::SiteTablesApplied
//! [`FleetEvent::ServiceStateForced`]: crate::FleetEvent::ServiceStateForced

use crate::effect::{Effect, Notification};
use crate::error::Rejected;
use crate::fleet::Fleet;
use crate::service::ServiceTable;
use crate::status::StatusMapper;
use std::collections::BTreeMap;
use steward_proto::{ComponentId, HistoryEntry, ServiceState, SiteTables, Timestamp};

/// The machines' tables a [`SiteTables`] document describes, validated.
pub fn tables_config(tables: &SiteTables) -> Result<(StatusMapper, ServiceTable), Rejected> {
    let mapper = match &tables.phase_mapping {
        Some(mapping) => StatusMapper::with_override(mapping).map_err(|e| Rejected::Invalid {
            field: "phase_mapping".into(),
            message: e.to_string(),
        })?,
        None => StatusMapper::default(),
    };
    let service_table = match &tables.service_states {
        Some(doc) => ServiceTable::from_doc(doc).map_err(|e| Rejected::Invalid {
            field: "service_states".into(),
            message: e.to_string(),
        })?,
        None => ServiceTable::default(),
    };
    Ok((mapper, service_table))
}

impl Fleet {
    /// Components whose service state `table` lacks, by missing state.
    pub fn missing_service_states(
        &self,
        table: &ServiceTable,
    ) -> BTreeMap<ServiceState, Vec<ComponentId>> {
        let mut missing: BTreeMap<ServiceState, Vec<ComponentId>> = BTreeMap::new();
        for (id, entry) in &self.components {
            if !table.contains(&entry.service_state) {
                missing.entry(entry.service_state.clone()).or_default().push(id.clone());
            }
        }
        missing
    }

    /// Switches to the tables of `tables`. Refused, changing nothing, when the service-state
    /// table lacks a state some component is in (the message names them). Writes no rows: the
    /// tables live in the event log only.
    pub(crate) fn apply_site_tables(
        &mut self,
        tables: &SiteTables,
    ) -> Result<Vec<Effect>, Rejected> {
        let (mapper, service_table) = tables_config(tables)?;
        let missing = self.missing_service_states(&service_table);
        if !missing.is_empty() {
            let listed: Vec<String> = missing
                .iter()
                .map(|(state, ids)| {
                    let ids: Vec<&str> = ids.iter().map(ComponentId::as_str).collect();
                    format!("{state} (components {})", ids.join(", "))
                })
                .collect();
            return Err(Rejected::Invalid {
                field: "service_states.states".into(),
                message: format!(
                    "the new service-state table lacks states components are in: {}; keep those \
                     states or move the components first (`steward service force`)",
                    listed.join("; ")
                ),
            });
        }
        self.config.mapper = mapper;
        self.config.service_table = service_table;
        Ok(Vec::new())
    }

    /// Moves a component to any state of the table, bypassing the transitions (an audited
    /// administrative correction; the note is required and recorded in the history).
    pub(crate) fn force_service_state(
        &mut self,
        id: &ComponentId,
        to: &ServiceState,
        initiator: &str,
        note: &str,
        now: Timestamp,
    ) -> Result<Vec<Effect>, Rejected> {
        if note.trim().is_empty() {
            return Err(Rejected::Invalid {
                field: "note".into(),
                message: "a forced service-state move needs a note saying why".into(),
            });
        }
        if !self.config.service_table.contains(to) {
            let states: Vec<&str> =
                self.config.service_table.states().iter().map(ServiceState::as_str).collect();
            return Err(Rejected::Invalid {
                field: "to".into(),
                message: format!("{to} is not a service state; states: {}", states.join(", ")),
            });
        }
        let entry = self
            .components
            .get_mut(id)
            .ok_or_else(|| Rejected::NotFound { what: "component", id: id.to_string() })?;
        let history = HistoryEntry {
            component_id: id.clone(),
            from: entry.service_state.clone(),
            to: to.clone(),
            at: now,
            initiator: initiator.to_string(),
            note: Some(format!("forced: {note}")),
        };
        entry.service_state = to.clone();
        Ok(vec![
            Effect::PersistServiceState(id.clone()),
            Effect::AppendHistory(history.clone()),
            Effect::Notify(Notification::ServiceStateChanged(history)),
        ])
    }
}
