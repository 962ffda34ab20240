//! Leadership on PostgreSQL: one instance holds a session-level advisory lock on a dedicated,
//! unpooled connection and, in the same step, bumps the epoch in `steward_leader`; every
//! commit of its store checks that epoch (see [`super::PgStore`]).
//!
//! The lock is taken once and tracked here (locks stack: retrying `pg_try_advisory_lock` while
//! holding it would need as many unlocks). The client is never told it lost the lock, so the
//! leader pings its lock session every poll; any error steps it down. The lock session has a
//! server-side `idle_session_timeout`, so a paused (SIGSTOPped) leader's session is ended by
//! the server and a standby can take over; a crashed process frees it at once.
//!
//! [`Elector`] runs that loop on a thread of its own and publishes the [`Role`] on a `watch`
//! channel for the async side.

use super::conn::{Session, connect, migrate, pg};
use super::schema::LEADER_LOCK_KEY;
use crate::store::StoreError;
use crate::store::codec::ts;
use postgres::Client;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::watch;

/// What this instance is, as the elector last saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not leading; `leader` is the current leader's advertised URL, if it gave one.
    Standby {
        /// The leader's `advertise_url`.
        leader: Option<String>,
    },
    /// Leading with this epoch: open the store fenced by it, load, recover, serve.
    Leader {
        /// The leadership epoch this instance took.
        epoch: i64,
    },
}

/// Settings of an [`Elector`].
#[derive(Clone, Debug)]
pub struct ElectorConfig {
    /// The database URL (the same one the store uses).
    pub url: String,
    /// This instance's API URL, recorded in the leadership row for standbys to name.
    pub advertise_url: Option<String>,
    /// Recorded as `holder` (host and pid, for operators).
    pub holder: String,
    /// How often a standby tries the lock and the leader pings its session (default 1 s).
    pub poll: Duration,
    /// The lock session's `idle_session_timeout`: how long a paused leader keeps the lock.
    pub lock_session_timeout: Duration,
}

/// The lock session: one connection that holds (or tries for) the advisory lock.
pub struct Leadership {
    client: Client,
    epoch: Option<i64>,
}

impl Leadership {
    /// Connects the lock session and makes sure the schema exists.
    pub fn connect(url: &str, idle_timeout: Duration) -> Result<Self, StoreError> {
        let mut client = connect(url, Session::Lock(idle_timeout))?;
        migrate(&mut client)?;
        Ok(Self { client, epoch: None })
    }

    /// Tries the lock once; on success bumps the epoch (recording holder, URL and time) and
    /// returns it. The bump waits at most 5 s for a deposed leader's in-flight commit.
    pub fn try_acquire(
        &mut self,
        holder: &str,
        advertise_url: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        if let Some(epoch) = self.epoch {
            return Ok(Some(epoch));
        }
        let got: bool = self
            .client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK_KEY])
            .map_err(pg("leadership: try lock"))?
            .get(0);
        if !got {
            return Ok(None);
        }
        match self.bump(holder, advertise_url) {
            Ok(epoch) => {
                self.epoch = Some(epoch);
                Ok(Some(epoch))
            }
            Err(error) => {
                // Leave no half-taken leadership behind.
                let _ = self.client.execute("SELECT pg_advisory_unlock($1)", &[&LEADER_LOCK_KEY]);
                Err(error)
            }
        }
    }

    fn bump(&mut self, holder: &str, advertise_url: Option<&str>) -> Result<i64, StoreError> {
        let now = ts(&chrono::Utc::now());
        let mut tx = self.client.transaction().map_err(pg("leadership: begin"))?;
        tx.batch_execute("SET LOCAL lock_timeout = '5s'").map_err(pg("leadership: timeout"))?;
        tx.query_one("SELECT epoch FROM steward_leader WHERE id = 1 FOR UPDATE", &[])
            .map_err(pg("leadership: lock row"))?;
        let epoch: i64 = tx
            .query_one(
                "UPDATE steward_leader SET epoch = epoch + 1, holder = $1, advertise_url = $2, \
                 since = $3 WHERE id = 1 RETURNING epoch",
                &[&holder, &advertise_url, &now],
            )
            .map_err(pg("leadership: bump epoch"))?
            .get(0);
        tx.commit().map_err(pg("leadership: commit"))?;
        Ok(epoch)
    }

    /// Checks the lock session is alive and the epoch is still ours (any error: step down).
    pub fn ping(&mut self) -> Result<(), StoreError> {
        let current: i64 = self
            .client
            .query_one("SELECT epoch FROM steward_leader WHERE id = 1", &[])
            .map_err(pg("leadership: ping"))?
            .get(0);
        match self.epoch {
            Some(ours) if ours != current => Err(StoreError::Fenced { ours, current }),
            _ => Ok(()),
        }
    }

    /// The current leader's advertised URL (for a standby's 503).
    pub fn leader_url(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self
            .client
            .query_one("SELECT advertise_url FROM steward_leader WHERE id = 1", &[])
            .map_err(pg("leadership: read leader"))?
            .get(0))
    }

    /// Releases the lock (a graceful step-down); dropping the session releases it as well.
    pub fn release(&mut self) -> Result<(), StoreError> {
        if self.epoch.take().is_some() {
            self.client
                .execute("SELECT pg_advisory_unlock($1)", &[&LEADER_LOCK_KEY])
                .map_err(pg("leadership: unlock"))?;
        }
        Ok(())
    }
}

enum Command {
    StepDown,
    Stop,
}

/// The election loop on its own thread; see the module docs.
pub struct Elector {
    role: watch::Receiver<Role>,
    commands: mpsc::Sender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Elector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elector").field("role", &*self.role.borrow()).finish()
    }
}

impl Elector {
    /// Starts the loop; the role starts as a standby that knows no leader.
    pub fn spawn(config: ElectorConfig) -> Result<Elector, StoreError> {
        let (publish, role) = watch::channel(Role::Standby { leader: None });
        let (commands, inbox) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("steward-elector".into())
            .spawn(move || elect(&config, &publish, &inbox))
            .map_err(|e| StoreError::Postgres {
                message: format!("cannot start the elector thread: {e}"),
                retryable: false,
            })?;
        Ok(Elector { role, commands, thread: Some(thread) })
    }

    /// The role channel.
    pub fn role(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// Gives up leadership (drops the lock) and goes back to polling.
    pub fn step_down(&self) {
        let _ = self.commands.send(Command::StepDown);
    }

    /// Releases the lock if held and stops the loop (blocks until the thread ends).
    pub fn stop(mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The loop: standby tries the lock each poll, a leader pings it; publishes every change.
fn elect(config: &ElectorConfig, publish: &watch::Sender<Role>, inbox: &mpsc::Receiver<Command>) {
    let mut session: Option<Leadership> = None;
    let mut round: u64 = 0;
    loop {
        let role = step(config, &mut session);
        publish.send_if_modified(|current| {
            let changed = *current != role;
            *current = role.clone();
            changed
        });
        round = round.wrapping_add(1);
        match inbox.recv_timeout(jittered(config.poll, round)) {
            Ok(Command::StepDown) => {
                if let Some(mut lock) = session.take() {
                    let _ = lock.release();
                }
                publish.send_replace(Role::Standby { leader: None });
            }
            Ok(Command::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    if let Some(mut lock) = session.take() {
        let _ = lock.release();
    }
}

/// One round: (re)connect, then ping as leader or try the lock as standby.
fn step(config: &ElectorConfig, session: &mut Option<Leadership>) -> Role {
    let lock = match session {
        Some(lock) => lock,
        None => match Leadership::connect(&config.url, config.lock_session_timeout) {
            Ok(lock) => session.insert(lock),
            Err(error) => {
                tracing::warn!(%error, "leadership: cannot reach the database");
                return Role::Standby { leader: None };
            }
        },
    };
    if let Some(epoch) = lock.epoch {
        return match lock.ping() {
            Ok(()) => Role::Leader { epoch },
            Err(error) => {
                tracing::error!(%error, epoch, "leadership lost: stepping down");
                *session = None;
                Role::Standby { leader: None }
            }
        };
    }
    match lock.try_acquire(&config.holder, config.advertise_url.as_deref()) {
        Ok(Some(epoch)) => {
            tracing::info!(epoch, "leadership taken");
            Role::Leader { epoch }
        }
        Ok(None) => Role::Standby { leader: lock.leader_url().ok().flatten() },
        Err(error) => {
            tracing::warn!(%error, "leadership: attempt failed");
            *session = None;
            Role::Standby { leader: None }
        }
    }
}

/// `poll` give or take 10%, varied per round so standbys do not retry in lockstep.
fn jittered(poll: Duration, round: u64) -> Duration {
    let seed = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(std::process::id());
    let permille = 900 + (seed >> 32) % 201;
    poll.mul_f64(permille as f64 / 1000.0)
}
