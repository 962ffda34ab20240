//! Recording the site tables in the event log at start: when the tables a server starts with
//! differ from the ones the log last recorded (none recorded means the built-in defaults), one
//! `site_tables_applied` event is applied through `Fleet::apply` and committed before the
//! reducer takes any input, so every later event was decided by tables the log names and
//! replay needs no config.

use super::Reducer;
use crate::store::BatchBuilder;
use steward_proto::SiteTables;
use steward_state_machine::FleetEvent;

impl Reducer {
    /// Applies and commits `tables` as a `site_tables_applied` event. Refused (nothing
    /// written, nothing changed) when the fleet rejects them, e.g. a service-state table that
    /// lacks a state components are in; the message names them.
    pub(crate) fn record_site_tables(&mut self, tables: SiteTables) -> Result<(), String> {
        let now = self.clock.now();
        let event = FleetEvent::SiteTablesApplied { tables: Box::new(tables) };
        let before = self.fleet.config.clone();
        self.fleet.apply(&event, now).map_err(|rejected| rejected.to_string())?;
        let seq = self.next_seq;
        let mut rows = BatchBuilder::new();
        let written = rows
            .event(seq, now, &event)
            .map_err(|e| e.to_string())
            .and_then(|()| self.write(rows, now).map_err(|e| e.to_string()));
        match written {
            Ok(_) => {
                self.next_seq += 1;
                self.metrics.events_applied(1);
                tracing::info!(seq, "site tables recorded in the event log");
                Ok(())
            }
            Err(error) => {
                self.fleet.config = before;
                Err(format!("cannot record the site tables: {error}"))
            }
        }
    }
}
