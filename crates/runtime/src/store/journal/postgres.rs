//! The PostgreSQL side of the adapter journal (feature `postgres`): the tables `adapter_tasks`
//! and `adapter_steps` of PostgreSQL migration 4, in the HA store's database, so whichever
//! instance leads finds the tasks and steps the previous leader journaled.
//!
//! Every write runs in its own transaction that first reads the leadership epoch `FOR SHARE`
//! and refuses with [`StoreError::Fenced`] when it is no longer the epoch this journal was
//! opened with; the share lock makes a takeover's epoch bump wait for a write in flight, and a
//! write after the bump see it. Reads are not fenced (they change nothing).
//!
//! The synchronous client must not run on an async runtime's threads, and adapters call the
//! journal from async code: the connection lives on a thread of its own, which runs one job at
//! a time and reconnects when the connection was lost (PostgreSQL restarted); each call waits
//! for its job's answer.

use super::{JournalStep, JournalTask};
use crate::store::StoreError;
use crate::store::postgres::{Session, connect, migrate, pg};
use postgres::{Client, Transaction};
use std::sync::mpsc;

/// The connection and what every job needs.
struct Conn {
    url: String,
    adapter: String,
    epoch: i64,
    client: Option<Client>,
}

impl Conn {
    /// The live connection, reconnecting first when it was lost.
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            self.client = Some(connect(&self.url, Session::Writer)?);
        }
        self.client.as_mut().ok_or_else(|| StoreError::Postgres {
            message: "journal: no connection".into(),
            retryable: true,
        })
    }

    /// Begins a write: a transaction in which the epoch is still ours.
    fn fenced(&mut self) -> Result<(Transaction<'_>, i64), StoreError> {
        let ours = self.epoch;
        let mut tx = self.client()?.transaction().map_err(pg("journal: begin"))?;
        let current: i64 = tx
            .query_one("SELECT epoch FROM steward_leader WHERE id = 1 FOR SHARE", &[])
            .map_err(pg("journal: read leadership epoch"))?
            .get(0);
        if current != ours {
            return Err(StoreError::Fenced { ours, current });
        }
        Ok((tx, ours))
    }
}

type Job = Box<dyn FnOnce(&mut Conn) + Send>;

/// The journal of one adapter in PostgreSQL, written under one leadership epoch.
pub(super) struct PgAdapterJournal {
    jobs: mpsc::Sender<Job>,
    epoch: i64,
}

impl std::fmt::Debug for PgAdapterJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAdapterJournal").field("epoch", &self.epoch).finish_non_exhaustive()
    }
}

const TASK_COLUMNS: &str = "task_id, idempotency_key, status, data";

fn gone() -> StoreError {
    StoreError::Postgres { message: "journal thread stopped".into(), retryable: false }
}

impl PgAdapterJournal {
    /// Starts the journal's thread, which connects and migrates the database; returns once
    /// that succeeded (or with its error).
    pub(super) fn open(url: &str, adapter: &str, epoch: i64) -> Result<Self, StoreError> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready, opened) = mpsc::channel::<Result<(), StoreError>>();
        let mut conn =
            Conn { url: url.to_string(), adapter: adapter.to_string(), epoch, client: None };
        std::thread::Builder::new()
            .name(format!("steward-journal-{adapter}"))
            .spawn(move || {
                let first = conn.client().and_then(migrate);
                let failed = first.is_err();
                let _ = ready.send(first);
                if failed {
                    return;
                }
                for job in inbox {
                    job(&mut conn);
                }
            })
            .map_err(|e| StoreError::Postgres {
                message: format!("cannot start the journal thread: {e}"),
                retryable: false,
            })?;
        opened.recv().map_err(|_| gone())??;
        Ok(PgAdapterJournal { jobs, epoch })
    }

    pub(super) fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Runs `job` on the journal's thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::channel();
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(job(conn));
        });
        self.jobs.send(job).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }

    pub(super) fn create_task(
        &self,
        task: &JournalTask,
        steps: &[JournalStep],
        now: &str,
    ) -> Result<bool, StoreError> {
        let (task, steps, now) = (task.clone(), steps.to_vec(), now.to_string());
        self.call(move |conn| {
            let adapter = conn.adapter.clone();
            let (mut tx, epoch) = conn.fenced()?;
            let inserted = tx
                .execute(
                    "INSERT INTO adapter_tasks (adapter, task_id, idempotency_key, status, data, \
                     created_at, updated_at, epoch) VALUES ($1, $2, $3, $4, $5, $6, $6, $7) \
                     ON CONFLICT (adapter, idempotency_key) DO NOTHING",
                    &[
                        &adapter,
                        &task.task_id,
                        &task.idempotency_key,
                        &task.status,
                        &task.data,
                        &now,
                        &epoch,
                    ],
                )
                .map_err(pg("journal: insert task"))?;
            if inserted == 0 {
                return Ok(false);
            }
            let insert = tx
                .prepare(
                    "INSERT INTO adapter_steps (adapter, task_id, step, state, data, updated_at, \
                     epoch) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .map_err(pg("journal: prepare step insert"))?;
            for step in &steps {
                tx.execute(
                    &insert,
                    &[&adapter, &task.task_id, &step.step, &step.state, &step.data, &now, &epoch],
                )
                .map_err(pg("journal: insert step"))?;
            }
            tx.commit().map_err(pg("journal: commit"))?;
            Ok(true)
        })
    }

    pub(super) fn task_by_key(&self, key: &str) -> Result<Option<JournalTask>, StoreError> {
        let key = key.to_string();
        self.call(move |conn| {
            let adapter = conn.adapter.clone();
            let sql = format!(
                "SELECT {TASK_COLUMNS} FROM adapter_tasks WHERE adapter = $1 AND idempotency_key = $2"
            );
            let row = conn.client()?.query_opt(&sql, &[&adapter, &key]);
            Ok(row.map_err(pg("journal: read task by key"))?.as_ref().map(task_row))
        })
    }

    pub(super) fn task(&self, task_id: &str) -> Result<Option<JournalTask>, StoreError> {
        let task_id = task_id.to_string();
        self.call(move |conn| {
            let adapter = conn.adapter.clone();
            let sql = format!(
                "SELECT {TASK_COLUMNS} FROM adapter_tasks WHERE adapter = $1 AND task_id = $2"
            );
            let row = conn.client()?.query_opt(&sql, &[&adapter, &task_id]);
            Ok(row.map_err(pg("journal: read task"))?.as_ref().map(task_row))
        })
    }

    pub(super) fn unfinished_tasks(
        &self,
        finished: &[&str],
    ) -> Result<Vec<JournalTask>, StoreError> {
        let finished: Vec<String> = finished.iter().map(|s| s.to_string()).collect();
        self.call(move |conn| {
            let adapter = conn.adapter.clone();
            // Byte order, as SQLite sorts text (the database's collation may differ).
            let sql = format!(
                "SELECT {TASK_COLUMNS} FROM adapter_tasks WHERE adapter = $1 \
                 AND NOT (status = ANY($2)) ORDER BY created_at COLLATE \"C\", task_id COLLATE \"C\""
            );
            let rows = conn.client()?.query(&sql, &[&adapter, &finished]);
            Ok(rows.map_err(pg("journal: read unfinished tasks"))?.iter().map(task_row).collect())
        })
    }

    pub(super) fn set_task_status(
        &self,
        task_id: &str,
        status: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        let (task_id, status, now) = (task_id.to_string(), status.to_string(), now.to_string());
        self.call(move |conn| {
            let adapter = conn.adapter.clone();
            let (mut tx, epoch) = conn.fenced()?;
            tx.execute(
                "UPDATE adapter_tasks SET status = $3, updated_at = $4, epoch = $5 \
                 WHERE adapter = $1 AND task_id = $2",
                &[&adapter, &task_id, &status, &now, &epoch],
            )
            .map_err(pg("journal: update task"))?;
            tx.commit().map_err(pg("journal: commit"))
        })
    }

    pub(super) fn steps(&self, task_id: &str) -> Result<Vec<JournalStep>, StoreError> {
        let task_id = task_id.to_string();
        self.call(move |conn| {
            let adapter = conn.adapter.clone();
            let rows = conn.client()?.query(
                "SELECT step, state, data FROM adapter_steps WHERE adapter = $1 AND task_id = $2 \
                 ORDER BY step COLLATE \"C\"",
                &[&adapter, &task_id],
            );
            Ok(rows
                .map_err(pg("journal: read steps"))?
                .iter()
                .map(|row| JournalStep { step: row.get(0), state: row.get(1), data: row.get(2) })
                .collect())
        })
    }

    pub(super) fn set_step(
        &self,
        task_id: &str,
        step: &JournalStep,
        now: &str,
    ) -> Result<(), StoreError> {
        let (task_id, step, now) = (task_id.to_string(), step.clone(), now.to_string());
        self.call(move |conn| {
            let adapter = conn.adapter.clone();
            let (mut tx, epoch) = conn.fenced()?;
            tx.execute(
                "INSERT INTO adapter_steps (adapter, task_id, step, state, data, updated_at, epoch) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (adapter, task_id, step) \
                 DO UPDATE SET state = excluded.state, data = excluded.data, \
                 updated_at = excluded.updated_at, epoch = excluded.epoch",
                &[&adapter, &task_id, &step.step, &step.state, &step.data, &now, &epoch],
            )
            .map_err(pg("journal: write step"))?;
            tx.commit().map_err(pg("journal: commit"))
        })
    }
}

fn task_row(row: &postgres::Row) -> JournalTask {
    JournalTask {
        task_id: row.get(0),
        idempotency_key: row.get(1),
        status: row.get(2),
        data: row.get(3),
    }
}
