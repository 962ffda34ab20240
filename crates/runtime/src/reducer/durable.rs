//! Making a batch durable on a store that may fail. A transient failure (another connection
//! holds the write lock: SQLITE_BUSY/LOCKED, or an interrupted operation) is retried with a
//! bounded, doubling backoff until the commit deadline while the batch's callers wait; their
//! replies go out only once the batch is durable. Any other failure, or one that outlasts the
//! deadline, is returned at once so the reducer fails the batch and reloads the last committed
//! state. Readiness and the metrics say which while it lasts.
//!
//! After a failure, quiet ticks probe the store with a write that changes nothing, so readiness
//! comes back by itself once the store takes writes again, without waiting for a command.

use super::Reducer;
use crate::store::{Store, StoreError, WriteBatch};
use std::time::{Duration, Instant};
use steward_proto::Timestamp;

/// First pause between two attempts of a commit that failed transiently.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// How long a readiness probe waits for another connection's lock: short, because the
/// reducer's queries wait behind it.
const PROBE_BUSY_TIMEOUT: Duration = Duration::from_millis(50);

impl Reducer {
    /// Commits `rows`, retrying transient failures until the commit deadline. On success the
    /// store is marked healthy and the latency recorded; every failed attempt is counted by
    /// cause.
    pub(super) fn commit_durably(
        &mut self,
        rows: &WriteBatch,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let deadline = started + self.settings.commit_deadline;
        let mut backoff = FIRST_BACKOFF;
        let mut shortened = false;
        let outcome = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining < Store::BUSY_TIMEOUT {
                // SQLite's own wait for the lock must not carry the commit past its deadline.
                shortened = true;
                let _ = self.store.set_busy_timeout(remaining.max(Duration::from_millis(1)));
            }
            let error = match self.store.commit(rows) {
                Ok(()) => break Ok(()),
                Err(error) => error,
            };
            self.metrics.commit_failed(error.cause());
            let remaining = deadline.saturating_duration_since(Instant::now());
            if !error.is_retryable() || remaining.is_zero() {
                break Err(error);
            }
            tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "commit failed; retrying");
            self.health.set_fault(format!("store: {} (retrying)", error.cause()));
            std::thread::sleep(backoff.min(remaining));
            backoff = (backoff * 2).min(MAX_BACKOFF);
        };
        if shortened {
            let _ = self.store.set_busy_timeout(Store::BUSY_TIMEOUT);
        }
        if outcome.is_ok() {
            self.metrics.commit_duration(started.elapsed());
            self.metrics.committed_at(now.timestamp());
            self.health.committed(now);
        }
        outcome
    }

    /// While a store fault is recorded, checks whether the store takes writes again; if it
    /// does, readiness returns. Called on quiet ticks only.
    pub(super) fn probe_store(&mut self) {
        if !self.health.faulted() {
            return;
        }
        let _ = self.store.set_busy_timeout(PROBE_BUSY_TIMEOUT);
        let probed = self.store.probe_write();
        let _ = self.store.set_busy_timeout(Store::BUSY_TIMEOUT);
        match probed {
            Ok(()) => {
                tracing::info!("the store takes writes again");
                self.health.clear_fault();
            }
            Err(error) => {
                tracing::debug!(%error, "the store still refuses writes");
                self.health.set_fault(format!("store: {}", error.cause()));
            }
        }
    }
}
