//! The PostgreSQL store (feature `postgres`): the same tables, the same one-transaction commit
//! of a [`WriteBatch`] and the same loading as the SQLite store, on the synchronous `postgres`
//! client driven from the reducer's own thread, plus what running several instances on one
//! database needs: leadership ([`leader`]), the epoch check that fences a deposed leader in
//! every commit, and an adapter journal in the same database ([`journal`]).
//!
//! Every call blocks: use these types off the async runtime's worker threads (the reducer's
//! thread, `spawn_blocking`, or threads of their own), and drop them there too.

mod conn;
pub mod journal;
pub mod leader;
mod load;
mod schema;

pub(crate) use conn::pg;
pub use conn::{Session, connect, migrate, redact_url};
pub use schema::PG_SCHEMA_VERSION;

use super::codec::{JsonBuf, from_json, parse_opt_ts, parse_ts, to_i64, to_u32, to_u64, ts};
use super::{
    Backend, EventRecord, HistoryEntry, Loaded, OutboxAck, OutboxRow, StoreError, WebhookStats,
    WriteBatch,
};
use postgres::{Client, Statement, Transaction};
use std::cell::RefCell;
use steward_proto::{ComponentId, ServiceState};
use steward_state_machine::FleetConfig;

/// The statements of the commit path, prepared once per connection.
struct Statements {
    epoch_for_share: Statement,
    insert_event: Statement,
    upsert_rack: Statement,
    upsert_component: Statement,
    upsert_run: Statement,
    upsert_target: Statement,
    upsert_task: Statement,
    insert_history: Statement,
    insert_outbox: Statement,
    update_outbox: Statement,
    ack_delivered: Statement,
    ack_failed: Statement,
    ack_parked: Statement,
    requeue: Statement,
    status_success: Statement,
    status_failure: Statement,
}

const UPSERT_COMPONENT: &str = "INSERT INTO components \
     (id, rack_id, data, raw_state, status, service_state, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (id) DO UPDATE SET rack_id = excluded.rack_id, data = excluded.data, \
     raw_state = excluded.raw_state, status = excluded.status, \
     service_state = excluded.service_state, updated_at = excluded.updated_at, \
     ord = CASE WHEN components.rack_id <> excluded.rack_id THEN excluded.ord \
     ELSE components.ord END";
const OUTBOX_COLUMNS: &str =
    "id, webhook, seq, kind, body, attempts, next_attempt_at, delivered_at, last_error";

impl Statements {
    fn prepare(client: &mut Client) -> Result<Self, postgres::Error> {
        Ok(Self {
            epoch_for_share: client
                .prepare("SELECT epoch FROM steward_leader WHERE id = 1 FOR SHARE")?,
            insert_event: client.prepare(
                "INSERT INTO events (seq, at, kind, data, epoch) VALUES ($1, $2, $3, $4, $5)",
            )?,
            upsert_rack: client.prepare(
                "INSERT INTO racks (id, data) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            )?,
            upsert_component: client.prepare(UPSERT_COMPONENT)?,
            upsert_run: client.prepare(
                "INSERT INTO runs (id, status, data, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, data = excluded.data, \
                 updated_at = excluded.updated_at",
            )?,
            upsert_target: client.prepare(
                "INSERT INTO targets (id, run_id, position, rack_id, status, data, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, data = excluded.data, \
                 updated_at = excluded.updated_at",
            )?,
            upsert_task: client.prepare(
                "INSERT INTO tasks \
                 (id, target_id, run_id, idempotency_key, status, data, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET target_id = excluded.target_id, \
                 run_id = excluded.run_id, idempotency_key = excluded.idempotency_key, \
                 status = excluded.status, data = excluded.data, \
                 updated_at = excluded.updated_at",
            )?,
            insert_history: client.prepare(
                "INSERT INTO service_history \
                 (component_id, from_state, to_state, at, initiator, note) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )?,
            insert_outbox: client.prepare(
                "INSERT INTO outbox \
                 (webhook, seq, kind, body, attempts, next_attempt_at, delivered_at, last_error) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )?,
            update_outbox: client.prepare(
                "UPDATE outbox SET webhook = $2, seq = $3, kind = $4, body = $5, attempts = $6, \
                 next_attempt_at = $7, delivered_at = $8, last_error = $9 WHERE id = $1",
            )?,
            ack_delivered: client
                .prepare("UPDATE outbox SET delivered_at = $2, last_error = NULL WHERE id = $1")?,
            ack_failed: client.prepare(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, \
                 last_error = $3 WHERE id = $1",
            )?,
            ack_parked: client.prepare(
                "UPDATE outbox SET attempts = attempts + 1, parked_at = $2, last_error = $3 \
                 WHERE id = $1",
            )?,
            requeue: client.prepare(
                "UPDATE outbox SET parked_at = NULL, attempts = 0, next_attempt_at = $2 \
                 WHERE webhook = $1 AND delivered_at IS NULL AND parked_at IS NOT NULL",
            )?,
            status_success: client.prepare(
                "INSERT INTO webhook_status (webhook, last_success_at) \
                 SELECT webhook, $2::text FROM outbox WHERE id = $1 \
                 ON CONFLICT (webhook) DO UPDATE SET last_success_at = excluded.last_success_at",
            )?,
            status_failure: client.prepare(
                "INSERT INTO webhook_status (webhook, last_failure_at, last_error) \
                 SELECT webhook, $2::text, $3::text FROM outbox WHERE id = $1 \
                 ON CONFLICT (webhook) DO UPDATE SET last_failure_at = excluded.last_failure_at, \
                 last_error = excluded.last_error",
            )?,
        })
    }
}

/// The PostgreSQL store: one connection, owned by one writer (the reducer).
///
/// With an epoch ([`PgStore::open`] after winning leadership) every commit first reads the
/// leadership row `FOR SHARE` and refuses the batch with [`StoreError::Fenced`] when another
/// instance has bumped the epoch since; without one (tests, tools) commits are not fenced.
pub struct PgStore {
    client: RefCell<Client>,
    statements: Statements,
    epoch: Option<i64>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("epoch", &self.epoch).finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects, migrates the database to [`PG_SCHEMA_VERSION`] and prepares the commit path.
    /// `epoch`: the leadership epoch every commit must still find (None: unfenced).
    pub fn open(url: &str, epoch: Option<i64>) -> Result<PgStore, StoreError> {
        let mut client = connect(url, Session::Writer)?;
        migrate(&mut client)?;
        let statements = Statements::prepare(&mut client).map_err(pg("prepare statements"))?;
        Ok(PgStore { client: RefCell::new(client), statements, epoch })
    }

    /// The epoch this store's commits are fenced by.
    pub fn epoch(&self) -> Option<i64> {
        self.epoch
    }

    /// Runs `f` on the connection (for tests and benchmarks that read rows directly).
    pub fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> T) -> T {
        f(&mut self.client.borrow_mut())
    }

    fn write(&self, tx: &mut Transaction<'_>, batch: &WriteBatch) -> Result<(), StoreError> {
        let s = &self.statements;
        let epoch = self.epoch.unwrap_or(0);
        let (mut buf, mut buf2) = (JsonBuf::default(), JsonBuf::default());
        let ex = pg("commit: write row");
        for event in &batch.events {
            let seq = to_i64(event.seq, || format!("event seq {}", event.seq))?;
            let data = buf.encode(&event.data, || format!("event seq {} data", event.seq))?;
            let at = ts(&event.at);
            tx.execute(&s.insert_event, &[&seq, &at, &event.kind, &data, &epoch]).map_err(&ex)?;
        }
        for rack in &batch.racks {
            let data = buf.encode(rack, || format!("rack {}", rack.id))?;
            tx.execute(&s.upsert_rack, &[&rack.id.as_str(), &data]).map_err(&ex)?;
        }
        for row in &batch.components {
            let id = &row.component.id;
            let data = buf.encode(&row.component, || format!("component {id}"))?;
            let status = row
                .status
                .as_ref()
                .map(|status| buf2.encode(status, || format!("component {id} status")))
                .transpose()?;
            let params: [&(dyn postgres::types::ToSql + Sync); 7] = [
                &id.as_str(),
                &row.component.rack_id.as_str(),
                &data,
                &row.raw_state,
                &status,
                &row.service_state.as_str(),
                &ts(&row.updated_at),
            ];
            tx.execute(&s.upsert_component, &params).map_err(&ex)?;
        }
        for run in &batch.runs {
            let data = buf.encode(run, || format!("run {}", run.id))?;
            let params: [&(dyn postgres::types::ToSql + Sync); 4] =
                [&run.id.as_str(), &run.status.as_str(), &data, &ts(&run.updated_at)];
            tx.execute(&s.upsert_run, &params).map_err(&ex)?;
        }
        for (target, position) in &batch.targets {
            let data = buf.encode(target, || format!("target {}", target.id))?;
            let params: [&(dyn postgres::types::ToSql + Sync); 7] = [
                &target.id.as_str(),
                &target.run_id.as_str(),
                &i64::from(*position),
                &target.rack_id.as_str(),
                &target.status.as_str(),
                &data,
                &ts(&target.updated_at),
            ];
            tx.execute(&s.upsert_target, &params).map_err(&ex)?;
        }
        for task in &batch.tasks {
            let data = buf.encode(task, || format!("task {}", task.id))?;
            let params: [&(dyn postgres::types::ToSql + Sync); 7] = [
                &task.id.as_str(),
                &task.target_id.as_str(),
                &task.run_id.as_str(),
                &task.idempotency_key.as_str(),
                &task.status.as_str(),
                &data,
                &ts(&task.updated_at),
            ];
            tx.execute(&s.upsert_task, &params).map_err(&ex)?;
        }
        for entry in &batch.history {
            let params: [&(dyn postgres::types::ToSql + Sync); 6] = [
                &entry.component_id.as_str(),
                &entry.from.as_str(),
                &entry.to.as_str(),
                &ts(&entry.at),
                &entry.initiator,
                &entry.note,
            ];
            tx.execute(&s.insert_history, &params).map_err(&ex)?;
        }
        for row in &batch.outbox {
            self.write_outbox(tx, row)?;
        }
        for ack in &batch.outbox_acks {
            self.write_outbox_ack(tx, ack)?;
        }
        Ok(())
    }

    /// One webhook acknowledgement (and the webhook's last success or failure), as SQLite's
    /// `write_outbox_ack`; a row that does not exist fails the whole batch.
    fn write_outbox_ack(
        &self,
        tx: &mut Transaction<'_>,
        ack: &OutboxAck,
    ) -> Result<(), StoreError> {
        let s = &self.statements;
        let ex = pg("commit: write webhook acknowledgement");
        let (id, changed) = match ack {
            OutboxAck::Delivered { id, at } => {
                let changed = tx.execute(&s.ack_delivered, &[id, &ts(at)]).map_err(&ex)?;
                tx.execute(&s.status_success, &[id, &ts(at)]).map_err(&ex)?;
                (*id, changed)
            }
            OutboxAck::Failed { id, at, next_attempt_at, error } => {
                let changed =
                    tx.execute(&s.ack_failed, &[id, &ts(next_attempt_at), error]).map_err(&ex)?;
                tx.execute(&s.status_failure, &[id, &ts(at), error]).map_err(&ex)?;
                (*id, changed)
            }
            OutboxAck::Parked { id, at, error, .. } => {
                let changed = tx.execute(&s.ack_parked, &[id, &ts(at), error]).map_err(&ex)?;
                tx.execute(&s.status_failure, &[id, &ts(at), error]).map_err(&ex)?;
                (*id, changed)
            }
            OutboxAck::Requeued { webhook, at } => {
                tx.execute(&s.requeue, &[webhook, &ts(at)]).map_err(&ex)?;
                return Ok(());
            }
        };
        if changed == 0 {
            return Err(StoreError::OutboxRowNotFound { id });
        }
        Ok(())
    }

    fn write_outbox(&self, tx: &mut Transaction<'_>, row: &OutboxRow) -> Result<(), StoreError> {
        let s = &self.statements;
        let seq = to_i64(row.seq, || format!("outbox row for seq {}", row.seq))?;
        let next = ts(&row.next_attempt_at);
        let delivered = row.delivered_at.as_ref().map(ts);
        let attempts = i64::from(row.attempts);
        let ex = pg("commit: write outbox row");
        if row.id == 0 {
            let params: [&(dyn postgres::types::ToSql + Sync); 8] = [
                &row.webhook,
                &seq,
                &row.kind,
                &row.body,
                &attempts,
                &next,
                &delivered,
                &row.last_error,
            ];
            tx.execute(&s.insert_outbox, &params).map_err(&ex)?;
            return Ok(());
        }
        let params: [&(dyn postgres::types::ToSql + Sync); 9] = [
            &row.id,
            &row.webhook,
            &seq,
            &row.kind,
            &row.body,
            &attempts,
            &next,
            &delivered,
            &row.last_error,
        ];
        if tx.execute(&s.update_outbox, &params).map_err(&ex)? == 0 {
            return Err(StoreError::OutboxRowNotFound { id: row.id });
        }
        Ok(())
    }
}

/// Reads the leadership row `FOR SHARE` in `tx` and refuses when it is not `ours`. The share
/// lock makes a takeover (which updates the row) wait for this transaction, and this
/// transaction see a takeover that committed before it.
fn check_epoch(
    tx: &mut Transaction<'_>,
    statement: &Statement,
    ours: i64,
) -> Result<(), StoreError> {
    let current: i64 =
        tx.query_one(statement, &[]).map_err(pg("commit: read leadership epoch"))?.get(0);
    if current != ours {
        return Err(StoreError::Fenced { ours, current });
    }
    Ok(())
}

impl Backend for PgStore {
    fn commit(&mut self, batch: &WriteBatch) -> Result<(), StoreError> {
        let mut client = self.client.borrow_mut();
        let mut tx = client.transaction().map_err(pg("commit: begin"))?;
        if let Some(ours) = self.epoch {
            check_epoch(&mut tx, &self.statements.epoch_for_share, ours)?;
        }
        self.write(&mut tx, batch)?;
        tx.commit().map_err(pg("commit"))
    }

    fn load(&self, config: FleetConfig) -> Result<Loaded, StoreError> {
        let mut client = self.client.borrow_mut();
        let fleet = load::load_fleet(&mut client, config)?;
        drop(client);
        Ok(Loaded { fleet, last_seq: self.last_seq()? })
    }

    fn recorded_site_tables(&self) -> Result<Option<steward_proto::SiteTables>, StoreError> {
        let row = self
            .client
            .borrow_mut()
            .query_opt(
                "SELECT data FROM events WHERE kind = 'site_tables_applied' \
                 ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .map_err(pg("read the recorded site tables"))?;
        let Some(row) = row else { return Ok(None) };
        let data: String = row.get(0);
        match from_json(&data, || "the last site_tables_applied event".to_string())? {
            steward_state_machine::FleetEvent::SiteTablesApplied { tables } => Ok(Some(*tables)),
            _ => Err(StoreError::Decode {
                what: "the last site_tables_applied event".to_string(),
                message: "its data is another event".to_string(),
            }),
        }
    }

    fn events_after(&self, after: u64, limit: u32) -> Result<Vec<EventRecord>, StoreError> {
        let Ok(after) = i64::try_from(after) else { return Ok(Vec::new()) };
        let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT seq, at, kind, data FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &i64::from(limit)],
            )
            .map_err(pg("read events"))?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.get(0);
                let at: String = row.get(1);
                let data: String = row.get(3);
                Ok(EventRecord {
                    seq: to_u64(seq, || format!("events row {seq} column seq"))?,
                    at: parse_ts(&at, || format!("events row {seq} column at"))?,
                    kind: row.get(2),
                    data: from_json(&data, || format!("events row {seq} column data"))?,
                })
            })
            .collect()
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        let seq: Option<i64> = self
            .client
            .borrow_mut()
            .query_one("SELECT max(seq) FROM events", &[])
            .map_err(pg("read last seq"))?
            .get(0);
        to_u64(seq.unwrap_or(0), || "events column seq".to_string())
    }

    fn history(&self, component: &ComponentId) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT id, from_state, to_state, at, initiator, note FROM service_history \
                 WHERE component_id = $1 ORDER BY id",
                &[&component.as_str()],
            )
            .map_err(pg("read history"))?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.get(0);
                let at: String = row.get(3);
                Ok(HistoryEntry {
                    component_id: component.clone(),
                    from: ServiceState::from(row.get::<_, String>(1)),
                    to: ServiceState::from(row.get::<_, String>(2)),
                    at: parse_ts(&at, || format!("service_history row {id} column at"))?,
                    initiator: row.get(4),
                    note: row.get(5),
                })
            })
            .collect()
    }

    fn outbox_pending(&self, webhook: &str, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE webhook = $1 AND delivered_at IS NULL \
             AND parked_at IS NULL ORDER BY seq, id LIMIT $2"
        );
        let rows = self
            .client
            .borrow_mut()
            .query(&sql, &[&webhook, &i64::from(limit)])
            .map_err(pg("read outbox"))?;
        rows.iter().map(outbox_row).collect()
    }

    fn webhook_stats(&self, webhook: &str) -> Result<WebhookStats, StoreError> {
        let mut client = self.client.borrow_mut();
        let counts = client
            .query_one(
                "SELECT count(*) FILTER (WHERE parked_at IS NULL), \
                 count(*) FILTER (WHERE parked_at IS NOT NULL) \
                 FROM outbox WHERE webhook = $1 AND delivered_at IS NULL",
                &[&webhook],
            )
            .map_err(pg("read webhook backlog"))?;
        let status = client
            .query_opt(
                "SELECT last_success_at, last_failure_at, last_error FROM webhook_status \
                 WHERE webhook = $1",
                &[&webhook],
            )
            .map_err(pg("read webhook status"))?;
        let (success, failure, last_error): (Option<String>, Option<String>, Option<String>) =
            status.map(|row| (row.get(0), row.get(1), row.get(2))).unwrap_or_default();
        let what = |column: &str| format!("webhook_status {webhook:?} column {column}");
        Ok(WebhookStats {
            backlog: to_u64(counts.get(0), || what("backlog"))?,
            parked: to_u64(counts.get(1), || what("parked"))?,
            last_success_at: parse_opt_ts(success, || what("last_success_at"))?,
            last_failure_at: parse_opt_ts(failure, || what("last_failure_at"))?,
            last_error,
        })
    }

    fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>, StoreError> {
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = $1");
        let row =
            self.client.borrow_mut().query_opt(&sql, &[&id]).map_err(pg("read outbox row"))?;
        row.as_ref().map(outbox_row).transpose()
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn optimize(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}

fn outbox_row(row: &postgres::Row) -> Result<OutboxRow, StoreError> {
    let id: i64 = row.get(0);
    let seq: i64 = row.get(2);
    let attempts: i64 = row.get(5);
    let next: String = row.get(6);
    Ok(OutboxRow {
        id,
        webhook: row.get(1),
        seq: to_u64(seq, || format!("outbox row {id} column seq"))?,
        kind: row.get(3),
        body: row.get(4),
        attempts: to_u32(attempts, || format!("outbox row {id} column attempts"))?,
        next_attempt_at: parse_ts(&next, || format!("outbox row {id} column next_attempt_at"))?,
        delivered_at: parse_opt_ts(row.get(7), || format!("outbox row {id} column delivered_at"))?,
        last_error: row.get(8),
    })
}
