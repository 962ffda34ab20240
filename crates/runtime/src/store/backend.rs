//! The store seam: [`Backend`], what the reducer and its readers need from a store. SQLite
//! ([`super::Store`]) is the embedded default; PostgreSQL (`store::postgres`, feature
//! `postgres`) implements the same trait with the same tables and the same one-transaction
//! commit, plus an epoch check that fences a deposed leader.

use super::{EventRecord, HistoryEntry, Loaded, OutboxRow, StoreError, WebhookStats, WriteBatch};
use steward_proto::ComponentId;
use steward_state_machine::FleetConfig;

/// A store the reducer owns and writes alone. Every method but [`Backend::commit`] only reads.
pub trait Backend: Send {
    /// Writes the whole batch in one transaction: all of it or, on error, none of it.
    fn commit(&mut self, batch: &WriteBatch) -> Result<(), StoreError>;
    /// Rebuilds the fleet from the state rows (not by replay), with its indexes.
    fn load(&self, config: FleetConfig) -> Result<Loaded, StoreError>;
    /// Up to `limit` events with `seq > after`, in sequence order.
    fn events_after(&self, after: u64, limit: u32) -> Result<Vec<EventRecord>, StoreError>;
    /// The last sequence number in the event log (0 when empty).
    fn last_seq(&self) -> Result<u64, StoreError>;
    /// The component's service-state history, oldest first.
    fn history(&self, component: &ComponentId) -> Result<Vec<HistoryEntry>, StoreError>;
    /// Up to `limit` undelivered, unparked outbox rows of `webhook`, in event order.
    fn outbox_pending(&self, webhook: &str, limit: u32) -> Result<Vec<OutboxRow>, StoreError>;
    /// Backlog, parked count and last success and failure of `webhook` (all empty for a
    /// webhook that never had a row).
    fn webhook_stats(&self, webhook: &str) -> Result<WebhookStats, StoreError>;
    /// One outbox row by id.
    fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>, StoreError>;
    /// Housekeeping between batches (SQLite: a passive WAL checkpoint); may do nothing.
    fn checkpoint(&self) -> Result<(), StoreError>;
    /// Housekeeping on close (SQLite: `PRAGMA optimize`); may do nothing.
    fn optimize(&self) -> Result<(), StoreError>;
    /// Which backend this is, for logs (`sqlite` or `postgres`).
    fn kind(&self) -> &'static str;
    /// The site tables of the last `site_tables_applied` event, if any (replay needs no config).
    fn recorded_site_tables(&self) -> Result<Option<steward_proto::SiteTables>, StoreError>;
    /// How long one statement waits for another connection's lock (SQLite); may do nothing.
    fn set_busy_timeout(&self, _timeout: std::time::Duration) -> Result<(), StoreError> {
        Ok(())
    }
    /// A write that changes nothing, to learn whether the store takes writes again after a
    /// fault; may do nothing where a failed commit already says so.
    fn probe_write(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl Backend for super::Store {
    fn commit(&mut self, batch: &WriteBatch) -> Result<(), StoreError> {
        super::Store::commit(self, batch)
    }
    fn load(&self, config: FleetConfig) -> Result<Loaded, StoreError> {
        super::Store::load(self, config)
    }
    fn events_after(&self, after: u64, limit: u32) -> Result<Vec<EventRecord>, StoreError> {
        super::Store::events_after(self, after, limit)
    }
    fn last_seq(&self) -> Result<u64, StoreError> {
        super::Store::last_seq(self)
    }
    fn history(&self, component: &ComponentId) -> Result<Vec<HistoryEntry>, StoreError> {
        super::Store::history(self, component)
    }
    fn outbox_pending(&self, webhook: &str, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        super::Store::outbox_pending(self, webhook, limit)
    }
    fn webhook_stats(&self, webhook: &str) -> Result<WebhookStats, StoreError> {
        super::Store::webhook_stats(self, webhook)
    }
    fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>, StoreError> {
        super::Store::outbox_row(self, id)
    }
    fn checkpoint(&self) -> Result<(), StoreError> {
        super::Store::checkpoint(self)
    }
    fn optimize(&self) -> Result<(), StoreError> {
        super::Store::optimize(self)
    }
    fn kind(&self) -> &'static str {
        "sqlite"
    }
    fn recorded_site_tables(&self) -> Result<Option<steward_proto::SiteTables>, StoreError> {
        super::Store::recorded_site_tables(self)
    }
    fn set_busy_timeout(&self, timeout: std::time::Duration) -> Result<(), StoreError> {
        super::Store::set_busy_timeout(self, timeout)
    }
    fn probe_write(&mut self) -> Result<(), StoreError> {
        super::Store::probe_write(self)
    }
}
