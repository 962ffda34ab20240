//! The adapter journal: a Core adapter's own record of the tasks it accepted and the steps it
//! took, in Steward's database (tables `adapter_tasks` and `adapter_steps`), so the adapter
//! answers `find_task` the same after a crash and knows which requests may have left.
//!
//! An adapter that drives hardware without idempotency keys (Redfish) writes a step here and
//! commits it *before* the request leaves, so after a crash it knows which requests may have
//! reached the hardware and verifies them instead of sending them again.
//!
//! Two backends behind one API ([`AdapterJournal`]):
//! - SQLite ([`AdapterJournal::open`], `sqlite.rs`): the store's own file, schema migration 2;
//! - PostgreSQL ([`AdapterJournal::open_postgres`], `postgres.rs`, feature `postgres`): the HA
//!   store's database, PostgreSQL migration 4. Every write is fenced by the leadership epoch
//!   the journal was opened with: it reads the epoch `FOR SHARE` in its own transaction and is
//!   refused with [`StoreError::Fenced`] once another instance leads, so a deposed leader can
//!   never journal a step (and so never send the request that follows it).
//!
//! Every method is one short transaction and blocks until it is committed; callers on an async
//! runtime may call it directly (the PostgreSQL client runs on a thread of its own).

#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

use super::{StoreError, StoreOptions};
use std::path::Path;

/// One task row of an adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalTask {
    /// The adapter's task id.
    pub task_id: String,
    /// The idempotency key it was submitted with (unique per adapter).
    pub idempotency_key: String,
    /// Adapter-defined status word.
    pub status: String,
    /// Adapter-defined JSON (typically the request).
    pub data: String,
}

/// One step row of a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalStep {
    /// Adapter-defined step name, unique within the task (e.g. a component id).
    pub step: String,
    /// Adapter-defined state word (e.g. `pending`, `sending`, `done`).
    pub state: String,
    /// Adapter-defined JSON.
    pub data: String,
}

/// The adapter journal of one adapter, on SQLite or (fenced) on PostgreSQL.
#[derive(Debug)]
pub struct AdapterJournal {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Sqlite(sqlite::SqliteJournal),
    #[cfg(feature = "postgres")]
    Postgres(postgres::PgAdapterJournal),
}

/// Calls the same method on whichever backend the journal has.
macro_rules! dispatch {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {
        match &$self.backend {
            Backend::Sqlite(journal) => journal.$method($($arg),*),
            #[cfg(feature = "postgres")]
            Backend::Postgres(journal) => journal.$method($($arg),*),
        }
    };
}

impl AdapterJournal {
    /// Opens the SQLite database at `path` for `adapter` (creating and migrating it like
    /// [`super::Store::open`], with the same pragmas and busy timeout).
    pub fn open(
        path: &Path,
        adapter: &str,
        opts: &StoreOptions,
    ) -> Result<AdapterJournal, StoreError> {
        let journal = sqlite::SqliteJournal::open(path, adapter, opts)?;
        Ok(AdapterJournal { backend: Backend::Sqlite(journal) })
    }

    /// Opens the journal of `adapter` in the PostgreSQL database at `url` (migrating it like
    /// the PostgreSQL store), every write fenced by the leadership `epoch`. The connection lives
    /// on a thread of its own (reconnecting after a lost connection), so this and every method
    /// may be called from async code; it blocks until the first connection is made.
    #[cfg(feature = "postgres")]
    pub fn open_postgres(
        url: &str,
        adapter: &str,
        epoch: i64,
    ) -> Result<AdapterJournal, StoreError> {
        let journal = postgres::PgAdapterJournal::open(url, adapter, epoch)?;
        Ok(AdapterJournal { backend: Backend::Postgres(journal) })
    }

    /// Which database the journal is in: `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The leadership epoch that fences every write (`None` on SQLite, which one process owns).
    pub fn epoch(&self) -> Option<i64> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            #[cfg(feature = "postgres")]
            Backend::Postgres(journal) => Some(journal.epoch()),
        }
    }

    /// Records a new task and its steps in one transaction. Returns `false` (and writes
    /// nothing) when the adapter already has a task with this idempotency key.
    pub fn create_task(
        &self,
        task: &JournalTask,
        steps: &[JournalStep],
        now: &str,
    ) -> Result<bool, StoreError> {
        dispatch!(self, create_task(task, steps, now))
    }

    /// The task submitted with `key`, if any.
    pub fn task_by_key(&self, key: &str) -> Result<Option<JournalTask>, StoreError> {
        dispatch!(self, task_by_key(key))
    }

    /// The task with id `task_id`, if any.
    pub fn task(&self, task_id: &str) -> Result<Option<JournalTask>, StoreError> {
        dispatch!(self, task(task_id))
    }

    /// Every task of the adapter whose status is not one of `finished` (oldest first): the
    /// tasks to resume after a restart.
    pub fn unfinished_tasks(&self, finished: &[&str]) -> Result<Vec<JournalTask>, StoreError> {
        dispatch!(self, unfinished_tasks(finished))
    }

    /// Sets a task's status.
    pub fn set_task_status(
        &self,
        task_id: &str,
        status: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, set_task_status(task_id, status, now))
    }

    /// The steps of a task, in step-name order.
    pub fn steps(&self, task_id: &str) -> Result<Vec<JournalStep>, StoreError> {
        dispatch!(self, steps(task_id))
    }

    /// Writes one step's state and data (insert or replace), committed when this returns.
    pub fn set_step(&self, task_id: &str, step: &JournalStep, now: &str) -> Result<(), StoreError> {
        dispatch!(self, set_step(task_id, step, now))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn task(id: &str, key: &str) -> JournalTask {
        JournalTask {
            task_id: id.into(),
            idempotency_key: key.into(),
            status: "running".into(),
            data: "{}".into(),
        }
    }

    fn step(name: &str, state: &str) -> JournalStep {
        JournalStep { step: name.into(), state: state.into(), data: "{}".into() }
    }

    #[test]
    fn tasks_and_steps_survive_reopen_and_keys_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("steward.db");
        let journal = AdapterJournal::open(&path, "redfish", &StoreOptions::default()).unwrap();
        assert_eq!((journal.kind(), journal.epoch()), ("sqlite", None));
        assert!(journal.create_task(&task("t1", "k1"), &[step("a", "pending")], "now").unwrap());
        assert!(!journal.create_task(&task("t2", "k1"), &[], "now").unwrap());
        journal.set_step("t1", &step("a", "sending"), "now").unwrap();
        journal.set_task_status("t1", "completed", "now").unwrap();
        drop(journal);
        let journal = AdapterJournal::open(&path, "redfish", &StoreOptions::default()).unwrap();
        assert_eq!(journal.task_by_key("k1").unwrap().unwrap().task_id, "t1");
        assert_eq!(journal.task("t1").unwrap().unwrap().status, "completed");
        assert_eq!(journal.steps("t1").unwrap(), vec![step("a", "sending")]);
        assert!(journal.unfinished_tasks(&["completed"]).unwrap().is_empty());
        let other = AdapterJournal::open(&path, "exec", &StoreOptions::default()).unwrap();
        assert!(other.task_by_key("k1").unwrap().is_none());
    }
}
