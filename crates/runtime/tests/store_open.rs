//! Opening database files Steward cannot use: a newer schema, garbage, a truncated file. Each is
//! refused with a clear error and left byte-for-byte untouched; a fresh file gets WAL.
#![allow(clippy::unwrap_used, missing_docs)]

use rusqlite::Connection;
use std::path::Path;
use steward_runtime::store::{SCHEMA_VERSION, Store, StoreError, StoreOptions, replay_and_compare};
use steward_state_machine::FleetConfig;

fn open(path: &Path) -> Result<Store, StoreError> {
    Store::open(path, &StoreOptions::default())
}

/// Writes a valid SQLite file with some data and the given user_version and journal mode.
fn sqlite_file(path: &Path, user_version: i64, journal_mode: &str) {
    let conn = Connection::open(path).unwrap();
    let _: String =
        conn.pragma_update_and_check(None, "journal_mode", journal_mode, |r| r.get(0)).unwrap();
    conn.execute_batch(
        "CREATE TABLE future (x TEXT); INSERT INTO future VALUES ('from a newer steward');",
    )
    .unwrap();
    conn.pragma_update(None, "user_version", user_version).unwrap();
    conn.close().unwrap();
}

fn sibling_files(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    for journal_mode in ["DELETE", "WAL"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("future.db");
        sqlite_file(&path, SCHEMA_VERSION + 1, journal_mode);
        let before = std::fs::read(&path).unwrap();
        let files_before = sibling_files(&path);

        let err = open(&path).unwrap_err();
        match &err {
            StoreError::SchemaTooNew { found, supported } => {
                assert_eq!(*found, SCHEMA_VERSION + 1);
                assert_eq!(*supported, SCHEMA_VERSION);
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
        assert!(err.to_string().contains("newer than this binary"), "{err}");
        assert!(!err.is_retryable());
        assert_eq!(sibling_files(&path), files_before, "{journal_mode}: open left files behind");
        // Replay refuses it the same way, read-only.
        assert!(matches!(
            replay_and_compare(&path, FleetConfig::default()),
            Err(StoreError::SchemaTooNew { .. })
        ));

        // A read-only reader of a WAL file may leave empty -wal/-shm side files; the database
        // file itself is what must not change.
        assert_eq!(std::fs::read(&path).unwrap(), before, "{journal_mode}: bytes changed");
        let conn = Connection::open(&path).unwrap();
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode.to_uppercase(), journal_mode, "journal mode was switched");
    }
}

#[test]
fn garbage_is_refused_as_corrupt_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    // A deterministic pseudo-random 8 KiB blob, and a short text file.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let blob: Vec<u8> = (0..8192)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let cases: [(&str, Vec<u8>); 3] = [
        ("random.db", blob),
        ("text.db", b"hello, this is not a database\n".to_vec()),
        ("json.db", br#"{"racks": []}"#.repeat(400)),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let err = open(&path).unwrap_err();
        match &err {
            StoreError::Corrupt { path: reported, message } => {
                assert_eq!(reported, &path);
                assert!(!message.is_empty());
            }
            other => panic!("{name}: expected Corrupt, got {other:?}"),
        }
        assert!(err.to_string().contains(name), "{err}");
        assert!(matches!(
            replay_and_compare(&path, FleetConfig::default()),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}: bytes changed");
    }
    let mut names = sibling_files(&dir.path().join("x"));
    names.retain(|n| n.contains("-wal") || n.contains("-shm") || n.contains("-journal"));
    assert_eq!(names, Vec::<String>::new(), "no side files created");
}

#[test]
fn a_truncated_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    {
        let mut store = open(&path).unwrap();
        let rack = steward_proto::Rack {
            id: steward_proto::RackId::new("r1"),
            name: "x".repeat(3000),
            location: Default::default(),
            labels: Default::default(),
        };
        let racks = (0..50)
            .map(|i| steward_proto::Rack {
                id: steward_proto::RackId::new(format!("r{i}")),
                ..rack.clone()
            })
            .collect();
        store.commit(&steward_runtime::store::WriteBatch { racks, ..Default::default() }).unwrap();
        store.close().unwrap();
    }
    let full = std::fs::read(&path).unwrap();
    assert!(full.len() > 8192);
    // Keep the header but damage the schema page.
    let mut damaged = full[..4096].to_vec();
    damaged[100..4096].fill(0xA5);
    std::fs::write(&path, &damaged).unwrap();
    let err = open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert_eq!(std::fs::read(&path).unwrap(), damaged);
}

#[test]
fn a_missing_directory_is_an_open_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/steward.db");
    let err = open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("no/such/dir"), "{err}");
    let err =
        replay_and_compare(&dir.path().join("absent.db"), FleetConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(!dir.path().join("absent.db").exists(), "replay must not create the file");
}

#[test]
fn a_fresh_file_is_wal_with_the_current_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    drop(open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    drop(conn);
    // Reopening an up-to-date file migrates nothing and works.
    let store = open(&path).unwrap();
    assert_eq!(store.last_seq().unwrap(), 0);
}

#[test]
fn an_empty_file_becomes_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    let store = open(&path).unwrap();
    assert_eq!(store.last_seq().unwrap(), 0);
}

#[test]
fn an_older_schema_is_refused_by_replay_without_migrating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    sqlite_file(&path, 0, "DELETE");
    let before = std::fs::read(&path).unwrap();
    let err = replay_and_compare(&path, FleetConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooOld { found: 0, .. }), "{err:?}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_version_3_database_migrates_to_visible_webhooks_keeping_its_outbox() {
    use steward_runtime::store::{Backend, OutboxRow, WriteBatch};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z").unwrap().to_utc();
    let row = OutboxRow {
        id: 0,
        webhook: "ops".into(),
        seq: 1,
        kind: "run_status_changed".into(),
        body: "{}".into(),
        attempts: 3,
        next_attempt_at: at,
        delivered_at: None,
        last_error: Some("HTTP 503".into()),
    };
    let mut store = open(&path).unwrap();
    store.commit(&WriteBatch { outbox: vec![row], ..WriteBatch::default() }).unwrap();
    drop(store);
    // Undo migration 4 by hand: the file is now what the previous release wrote.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("ALTER TABLE outbox DROP COLUMN parked_at; DROP TABLE webhook_status;")
        .unwrap();
    conn.pragma_update(None, "user_version", 3).unwrap();
    conn.close().unwrap();

    let store = open(&path).unwrap();
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let pending = store.outbox_pending("ops", 10).unwrap();
    assert_eq!(pending.len(), 1, "an undelivered row of the old release is still due");
    let stats = Backend::webhook_stats(&store, "ops").unwrap();
    assert_eq!((stats.backlog, stats.parked, stats.last_error), (1, 0, None));
}
