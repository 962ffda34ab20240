//! The SQLite store: state rows, the event log and the webhook outbox.
//!
//! One [`Store`] owns one `rusqlite::Connection` and is meant to live on the single writer (the
//! reducer). [`Store::commit`] writes a whole [`WriteBatch`] (events and the state rows they
//! explain, history entries, outbox rows) in one immediate transaction, so a batch is durable
//! whole or not at all. [`Store::load`] rebuilds the reducer's [`Fleet`] from the state rows on
//! start (no replay); [`replay::replay_and_compare`] rebuilds it from the event log alone and
//! reports where the two disagree.
//!
//! Opening never damages a file it cannot use: a file that is not an SQLite database, or whose
//! schema is newer than this binary, is refused before anything is written to it.

mod backend;
mod batch;
pub(crate) mod codec;
mod error;
pub mod journal;
mod load;
pub mod lock;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod replay;
mod schema;

pub use backend::Backend;
pub use batch::BatchBuilder;
pub use error::StoreError;
pub use lock::{DbLock, LockError, check_writable, lock_path};
pub use replay::{ReplayReport, replay_and_compare, replay_backend};

/// The SQLite store under the name that sets it beside the PostgreSQL one.
pub type SqliteStore = Store;
pub use schema::SCHEMA_VERSION;

use codec::{JsonBuf, from_json, parse_opt_ts, parse_ts, to_i64, to_u32, to_u64, ts};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use steward_proto::{
    Component, ComponentId, ComponentStatus, EventRecord, HistoryEntry, Rack, Run, ServiceState,
    Target, Task, Timestamp,
};
use steward_state_machine::{Fleet, FleetConfig};

/// How long a statement waits for a lock held by another connection before failing with a
/// retryable error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// WAL size (in pages) at which SQLite checkpoints inside a commit; the reducer checkpoints
/// between batches long before that.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 16_384;

/// The last `site_tables_applied` event: answered from the partial index of migration 3, so a
/// start never scans the event log.
const LAST_SITE_TABLES_SQL: &str = "SELECT data FROM events WHERE kind = 'site_tables_applied' \
                                    ORDER BY seq DESC LIMIT 1";

/// Page cache per connection, in KiB (as `PRAGMA cache_size` takes it: negative means KiB).
const CACHE_SIZE_KIB: i64 = -65_536;

/// Prepared statements kept per connection (every statement the store runs fits).
const STATEMENT_CACHE: usize = 64;

/// SQLite's `synchronous` setting: how hard a commit waits for the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    /// No fsync: fastest, loses recent commits on power loss (and may corrupt on OS crash).
    Off,
    /// fsync at checkpoints only: in WAL mode a power loss may lose the last commits.
    Normal,
    /// fsync on every commit: a committed batch survives power loss. The default, because Core
    /// calls follow recorded intent.
    #[default]
    Full,
}

impl Synchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// Options for [`Store::open`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreOptions {
    /// Durability of each commit (default `full`).
    pub synchronous: Synchronous,
}

/// A component's persisted row: inventory facts, Core's raw state, the status derived from it
/// and the operator's service state. Freshness (`last_observed_at`) is memory-only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentRow {
    /// Inventory facts (the rack id inside is indexed).
    pub component: Component,
    /// Core's last raw controller state, if ever observed.
    pub raw_state: Option<String>,
    /// Status derived from `raw_state` (None: never observed).
    pub status: Option<ComponentStatus>,
    /// Operator service state.
    pub service_state: ServiceState,
    /// When the row last changed.
    pub updated_at: Timestamp,
}

/// One webhook delivery waiting in (or done with) the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    /// Row id; `0` for a new row (the store assigns one), otherwise the row to update.
    pub id: i64,
    /// Which webhook (its configured name or URL) the delivery is for.
    pub webhook: String,
    /// Sequence number of the event that caused it; deliveries per webhook go in this order.
    pub seq: u64,
    /// Notification kind (e.g. `service_state_changed`).
    pub kind: String,
    /// The exact JSON body to POST.
    pub body: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Earliest time of the next attempt.
    pub next_attempt_at: Timestamp,
    /// When a 2xx acknowledged it (None: still pending).
    pub delivered_at: Option<Timestamp>,
    /// The last attempt's failure.
    pub last_error: Option<String>,
}

/// Everything one reducer batch writes, committed in one transaction in field order.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    /// Event-log rows (sequence numbers must be new).
    pub events: Vec<EventRecord>,
    /// Racks to upsert.
    pub racks: Vec<Rack>,
    /// Components to upsert (their racks must exist or be in `racks`). New components must come
    /// in the order `Fleet::apply` listed them (its `PersistComponent` effects' order): the store
    /// numbers them in write order to rebuild each rack's component order. [`BatchBuilder`]
    /// keeps that order.
    pub components: Vec<ComponentRow>,
    /// Runs to upsert.
    pub runs: Vec<Run>,
    /// Targets to upsert, each with its position in its run's dispatch order (from 0).
    pub targets: Vec<(Target, u32)>,
    /// Tasks to upsert (their targets must exist or be in `targets`).
    pub tasks: Vec<Task>,
    /// Service-state history entries to append.
    pub history: Vec<HistoryEntry>,
    /// Outbox rows to insert (`id == 0`) or update.
    pub outbox: Vec<OutboxRow>,
    /// Webhook acknowledgements, written in the same transaction as the rest.
    pub outbox_acks: Vec<OutboxAck>,
}

/// What a webhook worker reported about one outbox row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboxAck {
    /// A 2xx acknowledged it.
    Delivered {
        /// The row.
        id: i64,
        /// When.
        at: Timestamp,
    },
    /// The attempt failed; try again at `next_attempt_at`.
    Failed {
        /// The row.
        id: i64,
        /// When the attempt failed.
        at: Timestamp,
        /// Earliest next attempt.
        next_attempt_at: Timestamp,
        /// Why it failed.
        error: String,
    },
    /// The attempt failed and the row has used up its attempts: it is parked (a dead letter)
    /// until [`OutboxAck::Requeued`].
    Parked {
        /// The row.
        id: i64,
        /// The webhook the row belongs to.
        webhook: String,
        /// When the last attempt failed.
        at: Timestamp,
        /// Why it failed.
        error: String,
    },
    /// Every parked row of `webhook` goes back to the queue with a fresh attempt count.
    Requeued {
        /// The webhook.
        webhook: String,
        /// The earliest next attempt (now).
        at: Timestamp,
    },
}

/// One webhook's delivery state, as `GET /v1/webhooks` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WebhookStats {
    /// Undelivered rows still being tried.
    pub backlog: u64,
    /// Rows parked after too many failed attempts.
    pub parked: u64,
    /// The last 2xx.
    pub last_success_at: Option<Timestamp>,
    /// The last failed attempt.
    pub last_failure_at: Option<Timestamp>,
    /// Its error.
    pub last_error: Option<String>,
}

impl WriteBatch {
    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.racks.is_empty()
            && self.components.is_empty()
            && self.runs.is_empty()
            && self.targets.is_empty()
            && self.tasks.is_empty()
            && self.history.is_empty()
            && self.outbox.is_empty()
            && self.outbox_acks.is_empty()
    }
}

/// The state loaded on start.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The fleet rebuilt from the state rows, indexes included; every status counts as stale.
    pub fleet: Fleet,
    /// The last sequence number in the event log (0 when empty).
    pub last_seq: u64,
}

/// The SQLite store. Not shared: one writer owns it.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

const INSERT_EVENT: &str = "INSERT INTO events (seq, at, kind, data) VALUES (?1, ?2, ?3, ?4)";
const UPSERT_RACK: &str = "INSERT INTO racks (id, data) VALUES (?1, ?2) \
     ON CONFLICT(id) DO UPDATE SET data = excluded.data";
const UPSERT_COMPONENT: &str = "INSERT INTO components \
     (id, rack_id, ord, data, raw_state, status, service_state, updated_at) \
     VALUES (?1, ?2, (SELECT coalesce(max(ord), 0) + 1 FROM components), ?3, ?4, ?5, ?6, ?7) \
     ON CONFLICT(id) DO UPDATE SET rack_id = excluded.rack_id, data = excluded.data, \
     raw_state = excluded.raw_state, status = excluded.status, \
     service_state = excluded.service_state, updated_at = excluded.updated_at";
const UPSERT_RUN: &str = "INSERT INTO runs (id, status, data, updated_at) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT(id) DO UPDATE SET status = excluded.status, data = excluded.data, \
     updated_at = excluded.updated_at";
const UPSERT_TARGET: &str = "INSERT INTO targets \
     (id, run_id, position, rack_id, status, data, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
     ON CONFLICT(id) DO UPDATE SET status = excluded.status, data = excluded.data, \
     updated_at = excluded.updated_at";
const UPSERT_TASK: &str = "INSERT INTO tasks \
     (id, target_id, run_id, idempotency_key, status, data, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
     ON CONFLICT(id) DO UPDATE SET target_id = excluded.target_id, run_id = excluded.run_id, \
     idempotency_key = excluded.idempotency_key, status = excluded.status, \
     data = excluded.data, updated_at = excluded.updated_at";
const INSERT_HISTORY: &str = "INSERT INTO service_history \
     (component_id, from_state, to_state, at, initiator, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const INSERT_OUTBOX: &str = "INSERT INTO outbox \
     (webhook, seq, kind, body, attempts, next_attempt_at, delivered_at, last_error) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const UPDATE_OUTBOX: &str = "UPDATE outbox SET webhook = ?2, seq = ?3, kind = ?4, body = ?5, \
     attempts = ?6, next_attempt_at = ?7, delivered_at = ?8, last_error = ?9 WHERE id = ?1";
const OUTBOX_COLUMNS: &str =
    "id, webhook, seq, kind, body, attempts, next_attempt_at, delivered_at, last_error";

impl Store {
    /// Opens (creating if missing) the database at `path`, sets the pragmas and migrates it to
    /// this binary's schema.
    ///
    /// The file is inspected before anything is written: a file that is not an SQLite database
    /// yields [`StoreError::Corrupt`] and one whose schema version is newer than
    /// [`SCHEMA_VERSION`] yields [`StoreError::SchemaTooNew`]; neither is modified.
    pub fn open(path: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        // SQLite silently opens a file it cannot write read-only; refuse it here, before the
        // first commit would fail.
        if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
            return Err(StoreError::NotWritable {
                path: path.to_path_buf(),
                reason: "SQLite opened it read-only".to_string(),
            });
        }
        Self::init(conn, path, opts)
    }

    /// Sets how long a statement waits for another connection's lock (the reducer shortens it
    /// when a commit's retry deadline is near).
    pub fn set_busy_timeout(&self, timeout: Duration) -> Result<(), StoreError> {
        self.conn.busy_timeout(timeout)?;
        Ok(())
    }

    /// The default busy timeout ([`Store::set_busy_timeout`] restores it with this).
    pub const BUSY_TIMEOUT: Duration = BUSY_TIMEOUT;

    /// Checks that the store takes a write now, without changing anything a reader sees: one
    /// immediate transaction that rewrites `user_version` with its own value (a real page write,
    /// so a full disk or a file-size limit fails it as a commit would).
    pub fn probe_write(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        Ok(())
    }

    /// A read-only connection to an existing database at this binary's schema version, for
    /// readers (e.g. the events API) beside the writer: WAL lets it read while the writer
    /// commits. Nothing is created, migrated or written; [`Store::commit`] on it fails.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        Ok(Store { conn: replay::open_read_only(path)? })
    }

    /// An in-memory store (no WAL; for unit tests and dry runs).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory()?;
        Self::init(conn, Path::new(":memory:"), &StoreOptions::default())
    }

    fn init(mut conn: Connection, path: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Read-only inspection first: nothing below may run on a file we are going to refuse.
        let found = inspect(&conn, path)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION });
        }
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
            tracing::warn!(path = %path.display(), mode, "SQLite refused WAL journal mode");
        }
        conn.pragma_update(None, "synchronous", opts.synchronous.pragma_value())?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Keep the hot state rows in memory: a 64 MiB page cache (the default is 2 MiB).
        conn.pragma_update(None, "cache_size", CACHE_SIZE_KIB)?;
        // Checkpoints run between batches (`checkpoint`), not inside a commit that a reply waits
        // on; the automatic one stays as a backstop for a WAL that grows past ~64 MiB.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
        schema::MIGRATIONS.to_latest(&mut conn)?;
        Ok(Store { conn })
    }

    /// Writes the whole batch in one immediate transaction: all of it or, on error, none of it.
    pub fn commit(&mut self, batch: &WriteBatch) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (mut buf, mut buf2) = (JsonBuf::default(), JsonBuf::default());
        {
            let mut stmt = tx.prepare_cached(INSERT_EVENT)?;
            for event in &batch.events {
                let seq = to_i64(event.seq, || format!("event seq {}", event.seq))?;
                let data = buf.encode(&event.data, || format!("event seq {} data", event.seq))?;
                stmt.execute(params![seq, ts(&event.at), event.kind, data])?;
            }
        }
        if !batch.racks.is_empty() {
            let mut stmt = tx.prepare_cached(UPSERT_RACK)?;
            for rack in &batch.racks {
                let data = buf.encode(rack, || format!("rack {}", rack.id))?;
                stmt.execute(params![rack.id.as_str(), data])?;
            }
        }
        if !batch.components.is_empty() {
            let mut stmt = tx.prepare_cached(UPSERT_COMPONENT)?;
            for row in &batch.components {
                let id = &row.component.id;
                let data = buf.encode(&row.component, || format!("component {id}"))?;
                let status = row
                    .status
                    .as_ref()
                    .map(|status| buf2.encode(status, || format!("component {id} status")))
                    .transpose()?;
                stmt.execute(params![
                    id.as_str(),
                    row.component.rack_id.as_str(),
                    data,
                    row.raw_state,
                    status,
                    row.service_state.as_str(),
                    ts(&row.updated_at),
                ])?;
            }
        }
        if !batch.runs.is_empty() {
            let mut stmt = tx.prepare_cached(UPSERT_RUN)?;
            for run in &batch.runs {
                let data = buf.encode(run, || format!("run {}", run.id))?;
                stmt.execute(params![
                    run.id.as_str(),
                    run.status.as_str(),
                    data,
                    ts(&run.updated_at)
                ])?;
            }
        }
        if !batch.targets.is_empty() {
            let mut stmt = tx.prepare_cached(UPSERT_TARGET)?;
            for (target, position) in &batch.targets {
                let data = buf.encode(target, || format!("target {}", target.id))?;
                stmt.execute(params![
                    target.id.as_str(),
                    target.run_id.as_str(),
                    position,
                    target.rack_id.as_str(),
                    target.status.as_str(),
                    data,
                    ts(&target.updated_at),
                ])?;
            }
        }
        if !batch.tasks.is_empty() {
            let mut stmt = tx.prepare_cached(UPSERT_TASK)?;
            for task in &batch.tasks {
                let data = buf.encode(task, || format!("task {}", task.id))?;
                stmt.execute(params![
                    task.id.as_str(),
                    task.target_id.as_str(),
                    task.run_id.as_str(),
                    task.idempotency_key.as_str(),
                    task.status.as_str(),
                    data,
                    ts(&task.updated_at),
                ])?;
            }
        }
        if !batch.history.is_empty() {
            let mut stmt = tx.prepare_cached(INSERT_HISTORY)?;
            for entry in &batch.history {
                stmt.execute(params![
                    entry.component_id.as_str(),
                    entry.from.as_str(),
                    entry.to.as_str(),
                    ts(&entry.at),
                    entry.initiator,
                    entry.note,
                ])?;
            }
        }
        for row in &batch.outbox {
            let seq = to_i64(row.seq, || format!("outbox row for seq {}", row.seq))?;
            let next = ts(&row.next_attempt_at);
            let delivered = row.delivered_at.as_ref().map(ts);
            if row.id == 0 {
                tx.prepare_cached(INSERT_OUTBOX)?.execute(params![
                    row.webhook,
                    seq,
                    row.kind,
                    row.body,
                    row.attempts,
                    next,
                    delivered,
                    row.last_error,
                ])?;
            } else {
                let changed = tx.prepare_cached(UPDATE_OUTBOX)?.execute(params![
                    row.id,
                    row.webhook,
                    seq,
                    row.kind,
                    row.body,
                    row.attempts,
                    next,
                    delivered,
                    row.last_error,
                ])?;
                if changed == 0 {
                    return Err(StoreError::OutboxRowNotFound { id: row.id });
                }
            }
        }
        for ack in &batch.outbox_acks {
            write_outbox_ack(&tx, ack)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Rebuilds the fleet from the state rows (not by replay), with its indexes. Every
    /// component's `last_observed_at` is `None`, so nothing dispatches on pre-restart data.
    pub fn load(&self, config: FleetConfig) -> Result<Loaded, StoreError> {
        let fleet = load::load_fleet(&self.conn, config)?;
        Ok(Loaded { fleet, last_seq: self.last_seq()? })
    }

    /// Up to `limit` events with `seq > after`, in sequence order.
    pub fn events_after(&self, after: u64, limit: u32) -> Result<Vec<EventRecord>, StoreError> {
        // Sequence numbers above i64::MAX cannot exist, so such an `after` has nothing after it.
        let Ok(after) = i64::try_from(after) else { return Ok(Vec::new()) };
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, at, kind, data FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![after, limit])?;
        let mut events = Vec::new();
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let at: String = row.get(1)?;
            let data: String = row.get(3)?;
            events.push(EventRecord {
                seq: to_u64(seq, || format!("events row {seq} column seq"))?,
                at: parse_ts(&at, || format!("events row {seq} column at"))?,
                kind: row.get(2)?,
                data: from_json(&data, || format!("events row {seq} column data"))?,
            });
        }
        Ok(events)
    }

    /// The site tables the event log last recorded (`None`: never recorded, the built-in
    /// defaults apply). Scans the log backwards to the last `site_tables_applied` event.
    pub fn recorded_site_tables(&self) -> Result<Option<steward_proto::SiteTables>, StoreError> {
        let data: Option<String> = self
            .conn
            .prepare_cached(LAST_SITE_TABLES_SQL)?
            .query_row([], |row| row.get(0))
            .optional()?;
        let Some(data) = data else { return Ok(None) };
        match from_json(&data, || "the last site_tables_applied event".to_string())? {
            steward_state_machine::FleetEvent::SiteTablesApplied { tables } => Ok(Some(*tables)),
            _ => Err(StoreError::Decode {
                what: "the last site_tables_applied event".to_string(),
                message: "its data is another event".to_string(),
            }),
        }
    }

    /// The last sequence number in the event log (0 when empty).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        last_seq(&self.conn)
    }

    /// The component's service-state history, oldest first.
    pub fn history(&self, component: &ComponentId) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, from_state, to_state, at, initiator, note FROM service_history \
             WHERE component_id = ?1 ORDER BY id",
        )?;
        let mut rows = stmt.query(params![component.as_str()])?;
        let mut entries = Vec::new();
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let from: String = row.get(1)?;
            let to: String = row.get(2)?;
            let at: String = row.get(3)?;
            entries.push(HistoryEntry {
                component_id: component.clone(),
                from: ServiceState::from(from),
                to: ServiceState::from(to),
                at: parse_ts(&at, || format!("service_history row {id} column at"))?,
                initiator: row.get(4)?,
                note: row.get(5)?,
            });
        }
        Ok(entries)
    }

    /// Up to `limit` undelivered, unparked outbox rows of `webhook`, in event order.
    pub fn outbox_pending(&self, webhook: &str, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE webhook = ?1 AND delivered_at IS NULL \
             AND parked_at IS NULL ORDER BY seq, id LIMIT ?2"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![webhook, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(outbox_row(row)?);
        }
        Ok(out)
    }

    /// Backlog, parked count and last success and failure of `webhook`.
    pub fn webhook_stats(&self, webhook: &str) -> Result<WebhookStats, StoreError> {
        let (backlog, parked): (i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT count(*) FILTER (WHERE parked_at IS NULL), \
                 count(*) FILTER (WHERE parked_at IS NOT NULL) \
                 FROM outbox WHERE webhook = ?1 AND delivered_at IS NULL",
            )?
            .query_row(params![webhook], |row| Ok((row.get(0)?, row.get(1)?)))?;
        let status: Option<(Option<String>, Option<String>, Option<String>)> = self
            .conn
            .prepare_cached(
                "SELECT last_success_at, last_failure_at, last_error FROM webhook_status \
                 WHERE webhook = ?1",
            )?
            .query_row(params![webhook], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .optional()?;
        let (success, failure, last_error) = status.unwrap_or_default();
        let what = |column: &str| format!("webhook_status {webhook:?} column {column}");
        Ok(WebhookStats {
            backlog: to_u64(backlog, || what("backlog"))?,
            parked: to_u64(parked, || what("parked"))?,
            last_success_at: parse_opt_ts(success, || what("last_success_at"))?,
            last_failure_at: parse_opt_ts(failure, || what("last_failure_at"))?,
            last_error,
        })
    }

    /// One outbox row by id.
    pub fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>, StoreError> {
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?1");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![id])?;
        rows.next()?.map(outbox_row).transpose()
    }

    /// Copies committed WAL frames into the database file without blocking anyone
    /// (`PRAGMA wal_checkpoint(PASSIVE)`); the reducer calls it when it has nothing else to do.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Runs `PRAGMA optimize` (call on close, or now and then on a long-lived store).
    pub fn optimize(&self) -> Result<(), StoreError> {
        self.conn.execute_batch("PRAGMA optimize;")?;
        Ok(())
    }

    /// Optimizes and closes the connection, reporting any error instead of dropping it.
    pub fn close(self) -> Result<(), StoreError> {
        self.optimize()?;
        self.conn.close().map_err(|(_, err)| StoreError::Sqlite(err))
    }
}

/// Reads `PRAGMA user_version` and parses the schema, without writing; a file that is not a
/// database (or is corrupt where SQLite looks first) becomes [`StoreError::Corrupt`].
pub(crate) fn inspect(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let corrupt = |err: rusqlite::Error| {
        if error::is_corruption(&err) {
            StoreError::Corrupt { path: path.to_path_buf(), message: err.to_string() }
        } else {
            StoreError::Sqlite(err)
        }
    };
    let version: i64 =
        conn.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(corrupt)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get::<_, i64>(0))
        .map_err(corrupt)?;
    if version < 0 {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            message: format!("user_version {version} is not a Steward schema version"),
        });
    }
    Ok(version)
}

pub(crate) fn last_seq(conn: &Connection) -> Result<u64, StoreError> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT max(seq) FROM events")?
        .query_row([], |row| row.get(0))
        .optional()?
        .flatten();
    to_u64(seq.unwrap_or(0), || "events column seq".to_string())
}

/// Writes one webhook acknowledgement inside the batch's transaction (and the webhook's last
/// success or failure); a row that does not exist fails the whole batch.
fn write_outbox_ack(tx: &rusqlite::Transaction<'_>, ack: &OutboxAck) -> Result<(), StoreError> {
    let (id, changed) = match ack {
        OutboxAck::Delivered { id, at } => {
            let changed = tx
                .prepare_cached(
                    "UPDATE outbox SET delivered_at = ?2, last_error = NULL WHERE id = ?1",
                )?
                .execute(params![id, ts(at)])?;
            tx.prepare_cached(STATUS_SUCCESS)?.execute(params![id, ts(at)])?;
            (*id, changed)
        }
        OutboxAck::Failed { id, at, next_attempt_at, error } => {
            let changed = tx
                .prepare_cached(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, \
                     last_error = ?3 WHERE id = ?1",
                )?
                .execute(params![id, ts(next_attempt_at), error])?;
            tx.prepare_cached(STATUS_FAILURE)?.execute(params![id, ts(at), error])?;
            (*id, changed)
        }
        OutboxAck::Parked { id, at, error, .. } => {
            let changed = tx
                .prepare_cached(
                    "UPDATE outbox SET attempts = attempts + 1, parked_at = ?2, \
                     last_error = ?3 WHERE id = ?1",
                )?
                .execute(params![id, ts(at), error])?;
            tx.prepare_cached(STATUS_FAILURE)?.execute(params![id, ts(at), error])?;
            (*id, changed)
        }
        OutboxAck::Requeued { webhook, at } => {
            tx.prepare_cached(
                "UPDATE outbox SET parked_at = NULL, attempts = 0, next_attempt_at = ?2 \
                 WHERE webhook = ?1 AND delivered_at IS NULL AND parked_at IS NOT NULL",
            )?
            .execute(params![webhook, ts(at)])?;
            return Ok(());
        }
    };
    if changed == 0 {
        return Err(StoreError::OutboxRowNotFound { id });
    }
    Ok(())
}

/// Records a webhook's last success (`?1` the outbox row, `?2` when).
const STATUS_SUCCESS: &str = "INSERT INTO webhook_status (webhook, last_success_at) \
     SELECT webhook, ?2 FROM outbox WHERE id = ?1 \
     ON CONFLICT(webhook) DO UPDATE SET last_success_at = excluded.last_success_at";
/// Records a webhook's last failure (`?1` the outbox row, `?2` when, `?3` the error).
const STATUS_FAILURE: &str = "INSERT INTO webhook_status (webhook, last_failure_at, last_error) \
     SELECT webhook, ?2, ?3 FROM outbox WHERE id = ?1 \
     ON CONFLICT(webhook) DO UPDATE SET last_failure_at = excluded.last_failure_at, \
     last_error = excluded.last_error";

fn outbox_row(row: &rusqlite::Row<'_>) -> Result<OutboxRow, StoreError> {
    let id: i64 = row.get(0)?;
    let seq: i64 = row.get(2)?;
    let attempts: i64 = row.get(5)?;
    let next: String = row.get(6)?;
    Ok(OutboxRow {
        id,
        webhook: row.get(1)?,
        seq: to_u64(seq, || format!("outbox row {id} column seq"))?,
        kind: row.get(3)?,
        body: row.get(4)?,
        attempts: to_u32(attempts, || format!("outbox row {id} column attempts"))?,
        next_attempt_at: parse_ts(&next, || format!("outbox row {id} column next_attempt_at"))?,
        delivered_at: parse_opt_ts(row.get(7)?, || format!("outbox row {id} column delivered_at"))?,
        last_error: row.get(8)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pragma(store: &Store, name: &str) -> String {
        store
            .conn
            .pragma_query_value(None, name, |row| row.get::<_, rusqlite::types::Value>(0))
            .map(|value| match value {
                rusqlite::types::Value::Integer(n) => n.to_string(),
                rusqlite::types::Value::Text(text) => text,
                other => format!("{other:?}"),
            })
            .unwrap()
    }

    #[test]
    fn open_sets_the_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        for (synchronous, expected) in
            [(Synchronous::Off, "0"), (Synchronous::Normal, "1"), (Synchronous::Full, "2")]
        {
            let store = Store::open(&path, &StoreOptions { synchronous }).unwrap();
            assert_eq!(pragma(&store, "journal_mode"), "wal");
            assert_eq!(pragma(&store, "synchronous"), expected);
            assert_eq!(pragma(&store, "foreign_keys"), "1");
            assert_eq!(pragma(&store, "busy_timeout"), "5000");
            assert_eq!(pragma(&store, "cache_size"), CACHE_SIZE_KIB.to_string());
            assert_eq!(pragma(&store, "user_version"), SCHEMA_VERSION.to_string());
        }
    }

    #[test]
    fn the_recorded_site_tables_are_found_through_the_index_not_a_log_scan() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), &StoreOptions::default()).unwrap();
        let plan: Vec<String> = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {LAST_SITE_TABLES_SQL}"))
            .unwrap()
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(plan, vec!["SCAN events USING INDEX events_site_tables".to_string()]);
    }

    #[test]
    fn busy_and_locked_are_retryable() {
        let busy = |code| {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        assert!(busy(rusqlite::ffi::SQLITE_BUSY).is_retryable());
        assert!(busy(rusqlite::ffi::SQLITE_LOCKED).is_retryable());
        assert!(!busy(rusqlite::ffi::SQLITE_CONSTRAINT).is_retryable());
        assert!(!StoreError::OutboxRowNotFound { id: 1 }.is_retryable());
    }

    #[test]
    fn a_busy_database_fails_retryably_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.db");
        let mut store = Store::open(&path, &StoreOptions::default()).unwrap();
        store.conn.busy_timeout(Duration::from_millis(50)).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE;").unwrap();
        let err = store.commit(&WriteBatch::default()).unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        other.execute_batch("COMMIT;").unwrap();
        store.commit(&WriteBatch::default()).unwrap();
    }
}
