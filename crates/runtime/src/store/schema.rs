//! The store's schema as an ordered list of migrations; `PRAGMA user_version` records how many
//! have run. Append new migrations at the end, never edit a released one.

use rusqlite_migration::{M, Migrations};

/// Migration 1: every table of the first release.
///
/// State rows keep the whole value as JSON in `data` plus the columns queries filter or order
/// by, and no more indexes than that: every index is written on the hot path. A target's run
/// and position never change, so its upsert leaves those columns (and their index) alone.
///
/// `components.ord` orders each rack's components the way `Fleet::apply` lists them: a new
/// component gets the next number (inventory order), an update keeps it, and a component that
/// moves to another rack gets the next number again (the trigger), i.e. goes last in its new
/// rack. The upsert never names `ord`, so status updates leave its index alone.
const V1: &str = r#"
CREATE TABLE events (
    seq  INTEGER PRIMARY KEY,
    at   TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);

CREATE TABLE racks (
    id         TEXT PRIMARY KEY,
    data       TEXT NOT NULL
);

CREATE TABLE components (
    id            TEXT PRIMARY KEY,
    rack_id       TEXT NOT NULL REFERENCES racks(id),
    ord           INTEGER NOT NULL,
    data          TEXT NOT NULL,
    raw_state     TEXT,
    status        TEXT,
    service_state TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX components_rack ON components(rack_id);
CREATE INDEX components_ord ON components(ord);
CREATE TRIGGER components_moved AFTER UPDATE OF rack_id ON components
WHEN old.rack_id <> new.rack_id
BEGIN
    UPDATE components SET ord = (SELECT max(ord) + 1 FROM components) WHERE id = new.id;
END;

CREATE TABLE service_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
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
    position   INTEGER NOT NULL,
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
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook         TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    delivered_at    TEXT,
    last_error      TEXT
);
CREATE INDEX outbox_pending ON outbox(webhook, seq, id) WHERE delivered_at IS NULL;
"#;

/// Migration 2: the adapter journal (`store::journal`), where a Core adapter records its tasks
/// and their steps before a request leaves, so `find_task` and crash recovery work from
/// Steward's own database. Generic: `adapter` names the adapter, `data` is the adapter's JSON.
/// A task row's key is unique per adapter; a step is named by the adapter (e.g. a component id).
const V2: &str = r#"
CREATE TABLE adapter_tasks (
    adapter         TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    status          TEXT NOT NULL,
    data            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
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
    PRIMARY KEY (adapter, task_id, step),
    FOREIGN KEY (adapter, task_id) REFERENCES adapter_tasks(adapter, task_id)
);
"#;

/// Migration 3: a partial index on the (rare) `site_tables_applied` events, so a start finds the
/// recorded site tables without scanning a long event log backwards.
const V3: &str = r#"
CREATE INDEX events_site_tables ON events(seq) WHERE kind = 'site_tables_applied';
"#;

/// Migration 4: visible webhooks. An outbox row that failed `webhook_max_attempts` times is
/// parked (`parked_at`, a dead letter) until an admin requeues it; `webhook_status` keeps each
/// webhook's last success and last failure (with its error), written in the same transaction
/// as the acknowledgement that set them.
const V4: &str = r#"
ALTER TABLE outbox ADD COLUMN parked_at TEXT;

CREATE TABLE webhook_status (
    webhook         TEXT PRIMARY KEY,
    last_success_at TEXT,
    last_failure_at TEXT,
    last_error      TEXT
);
"#;

const MIGRATION_LIST: &[M<'static>] = &[M::up(V1), M::up(V2), M::up(V3), M::up(V4)];

/// The migrations, oldest first.
pub(crate) const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_LIST);

/// The schema version this binary writes and reads (the number of migrations).
pub const SCHEMA_VERSION: i64 = MIGRATION_LIST.len() as i64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        assert!(MIGRATIONS.validate().is_ok());
        assert_eq!(SCHEMA_VERSION, 4);
    }
}
