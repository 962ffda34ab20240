//! The store's schema as an ordered list of migrations; `PRAGMA user_version` records how many
//! have run. Append new migrations at the end, never edit a released one.

use rusqlite_migration::{M, Migrations};

/// Migration 1: every table of the first release.
///
/// State rows keep the whole value as JSON in `data` plus the columns queries filter or order
/// by. `components` keeps its implicit rowid so that `ORDER BY rowid` gives first-insertion
/// (inventory) order: upserts keep the rowid of the row they update.
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
    id            TEXT NOT NULL UNIQUE,
    rack_id       TEXT NOT NULL REFERENCES racks(id),
    data          TEXT NOT NULL,
    raw_state     TEXT,
    status        TEXT,
    service_state TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX components_rack ON components(rack_id);

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
CREATE INDEX targets_status ON targets(status);

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

const MIGRATION_LIST: &[M<'static>] = &[M::up(V1)];

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
        assert_eq!(SCHEMA_VERSION, 1);
    }
}
