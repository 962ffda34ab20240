//! The SQLite side of the adapter journal: the tables `adapter_tasks` and `adapter_steps` of
//! schema migration 2 in the store's own file. [`SqliteJournal`] opens its own connection to the
//! database file (WAL lets it write beside the reducer's connection; both use the store's busy
//! timeout) and serializes its own calls with a mutex. Every method is one short transaction.

use super::{JournalStep, JournalTask};
use crate::store::{Store, StoreError, StoreOptions};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// A connection to the SQLite adapter journal of one adapter.
#[derive(Debug)]
pub(super) struct SqliteJournal {
    conn: Mutex<Connection>,
    adapter: String,
}

const INSERT_TASK: &str = "INSERT INTO adapter_tasks \
     (adapter, task_id, idempotency_key, status, data, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)";
const INSERT_STEP: &str = "INSERT INTO adapter_steps (adapter, task_id, step, state, data, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const TASK_COLUMNS: &str = "task_id, idempotency_key, status, data";

impl SqliteJournal {
    /// Opens the database at `path` for `adapter` (creating and migrating it like
    /// [`Store::open`], with the same pragmas and busy timeout).
    pub(super) fn open(
        path: &Path,
        adapter: &str,
        opts: &StoreOptions,
    ) -> Result<SqliteJournal, StoreError> {
        let store = Store::open(path, opts)?;
        Ok(SqliteJournal { conn: Mutex::new(store.conn), adapter: adapter.to_string() })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a new task and its steps in one transaction. Returns `false` (and writes
    /// nothing) when the adapter already has a task with this idempotency key.
    pub(super) fn create_task(
        &self,
        task: &JournalTask,
        steps: &[JournalStep],
        now: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: Option<String> = tx
            .prepare_cached(
                "SELECT task_id FROM adapter_tasks WHERE adapter = ?1 AND idempotency_key = ?2",
            )?
            .query_row(params![self.adapter, task.idempotency_key], |row| row.get(0))
            .optional()?;
        if exists.is_some() {
            return Ok(false);
        }
        tx.prepare_cached(INSERT_TASK)?.execute(params![
            self.adapter,
            task.task_id,
            task.idempotency_key,
            task.status,
            task.data,
            now
        ])?;
        {
            let mut stmt = tx.prepare_cached(INSERT_STEP)?;
            for step in steps {
                stmt.execute(params![
                    self.adapter,
                    task.task_id,
                    step.step,
                    step.state,
                    step.data,
                    now
                ])?;
            }
        }
        tx.commit()?;
        Ok(true)
    }

    /// The task submitted with `key`, if any.
    pub(super) fn task_by_key(&self, key: &str) -> Result<Option<JournalTask>, StoreError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM adapter_tasks WHERE adapter = ?1 AND idempotency_key = ?2"
        );
        let conn = self.lock();
        let task = conn
            .prepare_cached(&sql)?
            .query_row(params![self.adapter, key], task_row)
            .optional()?;
        Ok(task)
    }

    /// The task with id `task_id`, if any.
    pub(super) fn task(&self, task_id: &str) -> Result<Option<JournalTask>, StoreError> {
        let sql =
            format!("SELECT {TASK_COLUMNS} FROM adapter_tasks WHERE adapter = ?1 AND task_id = ?2");
        let conn = self.lock();
        let task = conn
            .prepare_cached(&sql)?
            .query_row(params![self.adapter, task_id], task_row)
            .optional()?;
        Ok(task)
    }

    /// Every task of the adapter whose status is not one of `finished` (oldest first): the
    /// tasks to resume after a restart.
    pub(super) fn unfinished_tasks(
        &self,
        finished: &[&str],
    ) -> Result<Vec<JournalTask>, StoreError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM adapter_tasks WHERE adapter = ?1 ORDER BY created_at, task_id"
        );
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![self.adapter], task_row)?;
        let mut tasks = Vec::new();
        for row in rows {
            let task = row?;
            if !finished.contains(&task.status.as_str()) {
                tasks.push(task);
            }
        }
        Ok(tasks)
    }

    /// Sets a task's status.
    pub(super) fn set_task_status(
        &self,
        task_id: &str,
        status: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "UPDATE adapter_tasks SET status = ?3, updated_at = ?4 WHERE adapter = ?1 AND task_id = ?2",
        )?
        .execute(params![self.adapter, task_id, status, now])?;
        Ok(())
    }

    /// The steps of a task, in step-name order.
    pub(super) fn steps(&self, task_id: &str) -> Result<Vec<JournalStep>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT step, state, data FROM adapter_steps WHERE adapter = ?1 AND task_id = ?2 \
             ORDER BY step",
        )?;
        let rows = stmt.query_map(params![self.adapter, task_id], |row| {
            Ok(JournalStep { step: row.get(0)?, state: row.get(1)?, data: row.get(2)? })
        })?;
        let mut steps = Vec::new();
        for row in rows {
            steps.push(row?);
        }
        Ok(steps)
    }

    /// Writes one step's state and data (insert or replace), committed when this returns.
    pub(super) fn set_step(
        &self,
        task_id: &str,
        step: &JournalStep,
        now: &str,
    ) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "INSERT INTO adapter_steps (adapter, task_id, step, state, data, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(adapter, task_id, step) \
             DO UPDATE SET state = excluded.state, data = excluded.data, \
             updated_at = excluded.updated_at",
        )?
        .execute(params![self.adapter, task_id, step.step, step.state, step.data, now])?;
        Ok(())
    }
}

fn task_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JournalTask> {
    Ok(JournalTask {
        task_id: row.get(0)?,
        idempotency_key: row.get(1)?,
        status: row.get(2)?,
        data: row.get(3)?,
    })
}
