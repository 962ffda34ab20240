//! An adapter journal in the store's PostgreSQL database (`adapter_journal`), so whichever
//! instance leads sees what the previous leader submitted. Appends are fenced like commits: an
//! append from an instance whose epoch is no longer the database's is refused, so a deposed
//! leader cannot record (and so cannot make) a submission.
//!
//! Adapters call [`PgJournal::append`] from async code, so the connection lives on a thread of
//! its own and each append waits for that thread's answer.

use super::conn::{Session, connect, pg};
use crate::store::StoreError;
use std::sync::mpsc;

/// One record to append.
struct Append {
    kind: String,
    key: Option<String>,
    record: String,
    reply: mpsc::Sender<Result<(), StoreError>>,
}

/// The journal of one adapter (`adapter` column) written under one leadership epoch.
pub struct PgJournal {
    requests: mpsc::Sender<Append>,
}

impl std::fmt::Debug for PgJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgJournal").finish_non_exhaustive()
    }
}

impl PgJournal {
    /// Connects, reads every record of `adapter` in append order, and starts the writer thread
    /// whose appends are fenced by `epoch`. Blocks: call off the async runtime's threads.
    pub fn open(
        url: &str,
        adapter: &str,
        epoch: i64,
    ) -> Result<(PgJournal, Vec<String>), StoreError> {
        let mut client = connect(url, Session::Writer)?;
        let records = client
            .query("SELECT record FROM adapter_journal WHERE adapter = $1 ORDER BY id", &[&adapter])
            .map_err(pg("journal: read"))?
            .into_iter()
            .map(|row| row.get::<_, String>(0))
            .collect();
        let (requests, inbox) = mpsc::channel::<Append>();
        let adapter = adapter.to_string();
        std::thread::Builder::new()
            .name("steward-journal".into())
            .spawn(move || {
                for request in inbox {
                    let result = append(&mut client, &adapter, epoch, &request);
                    let _ = request.reply.send(result);
                }
            })
            .map_err(|e| StoreError::Postgres {
                message: format!("cannot start the journal thread: {e}"),
                retryable: false,
            })?;
        Ok((PgJournal { requests }, records))
    }

    /// Appends one record durably (committed before this returns), or refuses it.
    pub fn append(&self, kind: &str, key: Option<&str>, record: &str) -> Result<(), StoreError> {
        let (reply, answer) = mpsc::channel();
        let request = Append {
            kind: kind.to_string(),
            key: key.map(str::to_string),
            record: record.to_string(),
            reply,
        };
        let gone =
            || StoreError::Postgres { message: "journal thread stopped".into(), retryable: false };
        self.requests.send(request).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

fn append(
    client: &mut postgres::Client,
    adapter: &str,
    epoch: i64,
    request: &Append,
) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg("journal: begin"))?;
    let current: i64 = tx
        .query_one("SELECT epoch FROM steward_leader WHERE id = 1 FOR SHARE", &[])
        .map_err(pg("journal: read epoch"))?
        .get(0);
    if current != epoch {
        return Err(StoreError::Fenced { ours: epoch, current });
    }
    tx.execute(
        "INSERT INTO adapter_journal (adapter, epoch, kind, key, record) \
         VALUES ($1, $2, $3, $4, $5)",
        &[&adapter, &epoch, &request.kind, &request.key, &request.record],
    )
    .map_err(pg("journal: append"))?;
    tx.commit().map_err(pg("journal: commit"))
}
