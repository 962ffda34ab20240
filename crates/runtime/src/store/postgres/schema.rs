//! The PostgreSQL schema: the SQLite tables with PostgreSQL types (text columns stay text, so
//! both backends share one encoding), plus the leadership row and the adapter journals (the sim
//! Core's append-only `adapter_journal`; the Redfish and exec adapters' `adapter_tasks` and
//! `adapter_steps`). The
//! migrations are versioned in `steward_schema_version`; append new ones, never edit one.

/// Migration 1: every table of the first release, the leadership row and the adapter journal.
///
/// `components.ord` comes from a sequence: a new component takes the next number, an update
/// keeps it, a component moved to another rack takes a new one (the upsert's `CASE`), so each
/// rack's components load in inventory order as on SQLite. `events.epoch` records which
/// leadership epoch wrote the row (the fencing tests read it).
const V1: &str = r#"
CREATE TABLE events (
    seq   BIGINT PRIMARY KEY,
    at    TEXT NOT NULL,
    kind  TEXT NOT NULL,
    data  TEXT NOT NULL,
    epoch BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE racks (
    id   TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE SEQUENCE components_ord_seq;
CREATE TABLE components (
    id            TEXT PRIMARY KEY,
    rack_id       TEXT NOT NULL REFERENCES racks(id),
    ord           BIGINT NOT NULL DEFAULT nextval('components_ord_seq'),
    data          TEXT NOT NULL,
    raw_state     TEXT,
    status        TEXT,
    service_state TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX components_rack ON components(rack_id);
CREATE INDEX components_ord ON components(ord);
CREATE TABLE service_history (
    id           BIGSERIAL PRIMARY KEY,
    component_id TEXT NOT NULL REFERENCES components(id),
    from_state   TEXT NOT NULL,
    to_state     TEXT NOT NULL,
    at           TEXT NOT NULL,
    initiator    TEXT NOT NULL,
    note         TEXT
);
CREATE INDEX service_history_component ON service_history(component_id, id);
CREATE TABLE runs (
    id         TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    data       TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX runs_status ON runs(status);
CREATE TABLE targets (
    id         TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL REFERENCES runs(id),
    position   BIGINT NOT NULL,
    rack_id    TEXT NOT NULL,
    status     TEXT NOT NULL,
    data       TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX targets_run_position ON targets(run_id, position);
CREATE TABLE tasks (
    id              TEXT PRIMARY KEY,
    target_id       TEXT NOT NULL REFERENCES targets(id),
    run_id          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    status          TEXT NOT NULL,
    data            TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX tasks_target ON tasks(target_id);
CREATE INDEX tasks_key ON tasks(idempotency_key);
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    webhook         TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    delivered_at    TEXT,
    last_error      TEXT
);
CREATE INDEX outbox_pending ON outbox(webhook, seq, id) WHERE delivered_at IS NULL;
CREATE TABLE steward_leader (
    id            INT PRIMARY KEY CHECK (id = 1),
    epoch         BIGINT NOT NULL,
    holder        TEXT,
    advertise_url TEXT,
    since         TEXT
);
INSERT INTO steward_leader (id, epoch) VALUES (1, 0);
CREATE TABLE adapter_journal (
    id      BIGSERIAL PRIMARY KEY,
    adapter TEXT NOT NULL,
    epoch   BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    key     TEXT,
    record  TEXT NOT NULL
);
CREATE INDEX adapter_journal_key ON adapter_journal(adapter, key);
"#;

/// Migration 2: a partial index on the (rare) `site_tables_applied` events, so a start finds the
/// recorded site tables without scanning a long event log backwards.
const V2: &str = r#"
CREATE INDEX events_site_tables ON events(seq) WHERE kind = 'site_tables_applied';
"#;

/// Migration 3: visible webhooks, as SQLite's migration 4. An outbox row that failed
/// `webhook_max_attempts` times is parked (`parked_at`, a dead letter) until an admin requeues
/// it; `webhook_status` keeps each webhook's last success and last failure (with its error),
/// written in the same transaction as the acknowledgement that set them.
const V3: &str = r#"
ALTER TABLE outbox ADD COLUMN parked_at TEXT;
CREATE TABLE webhook_status (
    webhook         TEXT PRIMARY KEY,
    last_success_at TEXT,
    last_failure_at TEXT,
    last_error      TEXT
);
"#;

/// Migration 4: the task journal of the adapters that keep tasks and steps (Redfish, exec), the
/// same two tables as SQLite's migration 2 (`store::journal`), plus the leadership epoch that
/// wrote each row last (every write is fenced by it; the tests read it).
const V4: &str = r#"
CREATE TABLE adapter_tasks (
    adapter         TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    status          TEXT NOT NULL,
    data            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    epoch           BIGINT NOT NULL,
    PRIMARY KEY (adapter, task_id)
);
CREATE UNIQUE INDEX adapter_tasks_key ON adapter_tasks(adapter, idempotency_key);
CREATE TABLE adapter_steps (
    adapter    TEXT NOT NULL,
    task_id    TEXT NOT NULL,
    step       TEXT NOT NULL,
    state      TEXT NOT NULL,
    data       TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    PRIMARY KEY (adapter, task_id, step),
    FOREIGN KEY (adapter, task_id) REFERENCES adapter_tasks(adapter, task_id)
);
"#;

/// The migrations, oldest first; the schema version is how many have run.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The schema version this binary writes and reads.
pub const PG_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Serialises concurrent migrations of one database (a transaction-level advisory lock).
pub(crate) const MIGRATE_LOCK_KEY: i64 = 0x5354_4557_4d49_4752; // "STEWMIGR"

/// The session-level advisory lock that makes one instance the leader.
pub(crate) const LEADER_LOCK_KEY: i64 = 0x5354_4557_4c45_4144; // "STEWLEAD"

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_counts_the_migrations() {
        assert_eq!(PG_SCHEMA_VERSION, 4);
        assert!(MIGRATIONS.iter().all(|m| !m.trim().is_empty()));
    }
}
