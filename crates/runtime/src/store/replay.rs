//! Replay: rebuild the fleet from the event log alone and compare it with the stored state rows.
//!
//! This is the check behind `steward replay --db PATH` and the crash test: the database is
//! opened read-only (never migrated, never written), every event row is decoded exactly as
//! stored and applied through [`Fleet::apply`] with the row's `at`, and the result is compared
//! with what [`super::Store::load`] rebuilds from the state rows, all in one read transaction
//! (so it works beside a running server). The site tables come from the log itself
//! (`site_tables_applied` events); the `config` passed in only seeds the tables of a log that
//! predates them.

use super::codec::{parse_ts, to_u64};
use super::error::StoreError;
use super::inspect;
use super::load::load_fleet;
use super::schema::SCHEMA_VERSION;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use steward_state_machine::{ComponentEntry, Fleet, FleetConfig, FleetEvent};

/// At most this many differences are listed; the rest are counted in one last line.
const MAX_DIFFERENCES: usize = 200;

/// The outcome of [`replay_and_compare`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Event rows read.
    pub events: u64,
    /// Whether the replayed state equals the stored state.
    pub equal: bool,
    /// Human-readable differences, e.g.
    /// `target run-1:r3 status: replay=completed stored=submitted`.
    pub differences: Vec<String>,
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.equal {
            return write!(f, "replayed {} events: state equals the stored rows", self.events);
        }
        writeln!(
            f,
            "replayed {} events: state differs from the stored rows ({} differences)",
            self.events,
            self.differences.len()
        )?;
        for line in &self.differences {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// Opens `path` read-only, replays its event log from `Fleet::new(config)` and compares the
/// result with the stored state rows (racks, components without `last_observed_at`, runs,
/// targets, tasks, and the indexes rebuilt from them).
pub fn replay_and_compare(path: &Path, config: FleetConfig) -> Result<ReplayReport, StoreError> {
    let conn = open_read_only(path)?;
    // One read transaction: the stored rows and the event log come from the same snapshot, so
    // replay agrees with a live server that commits meanwhile (WAL readers never block it).
    // Closing the connection ends the transaction.
    conn.execute_batch("BEGIN DEFERRED")?;
    let stored = load_fleet(&conn, config.clone())?;
    let mut replayed = Fleet::new(config);
    let mut diff = Differences::default();

    let mut stmt = conn.prepare("SELECT seq, at, kind, data FROM events ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    let mut events = 0u64;
    while let Some(row) = rows.next()? {
        events += 1;
        let seq: i64 = row.get(0)?;
        let seq = to_u64(seq, || format!("events row {seq} column seq"))?;
        let at: String = row.get(1)?;
        let kind: String = row.get(2)?;
        let data: String = row.get(3)?;
        let at = parse_ts(&at, || format!("events row {seq} column at"))?;
        let event: FleetEvent = match serde_json::from_str(&data) {
            Ok(event) => event,
            Err(err) => {
                diff.push(format!("event {seq} ({kind}): data is not a fleet event: {err}"));
                continue;
            }
        };
        if let Err(rejected) = replayed.apply(&event, at) {
            diff.push(format!("event {seq} ({kind}): replay rejected it: {rejected}"));
        }
    }
    drop(rows);
    drop(stmt);

    compare_fleets(&replayed, &stored, &mut diff);
    let differences = diff.finish();
    Ok(ReplayReport { events, equal: differences.is_empty(), differences })
}

/// Events read per page by [`replay_backend`].
const REPLAY_PAGE: u32 = 10_000;

/// [`replay_and_compare`] over any [`super::Backend`] (PostgreSQL included): replays its event
/// log page by page from `Fleet::new(config)` and compares the result with what
/// [`super::Backend::load`] rebuilds from the state rows. Reads only.
pub fn replay_backend(
    store: &dyn super::Backend,
    config: FleetConfig,
) -> Result<ReplayReport, StoreError> {
    let stored = store.load(config.clone())?.fleet;
    let mut replayed = Fleet::new(config);
    let mut diff = Differences::default();
    let (mut after, mut events) = (0u64, 0u64);
    loop {
        let page = store.events_after(after, REPLAY_PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in page {
            events += 1;
            let event: FleetEvent = match serde_json::from_value(record.data) {
                Ok(event) => event,
                Err(err) => {
                    let (seq, kind) = (record.seq, record.kind);
                    diff.push(format!("event {seq} ({kind}): data is not a fleet event: {err}"));
                    continue;
                }
            };
            if let Err(rejected) = replayed.apply(&event, record.at) {
                let (seq, kind) = (record.seq, record.kind);
                diff.push(format!("event {seq} ({kind}): replay rejected it: {rejected}"));
            }
        }
    }
    compare_fleets(&replayed, &stored, &mut diff);
    let differences = diff.finish();
    Ok(ReplayReport { events, equal: differences.is_empty(), differences })
}

/// Opens an existing database without creating, migrating or writing anything. (A reader of a
/// WAL file needs the `-shm` index, so SQLite may leave empty `-wal`/`-shm` side files; the
/// database file itself is never written.)
pub(crate) fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    if !path.exists() {
        return Err(StoreError::Open {
            path: path.to_path_buf(),
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some("no such file".to_string()),
            ),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let found = inspect(&conn, path)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    if found < SCHEMA_VERSION {
        return Err(StoreError::SchemaTooOld { found, supported: SCHEMA_VERSION });
    }
    Ok(conn)
}

/// Compares two fleets' state and indexes, appending one line per difference.
pub(crate) fn compare_fleets(replayed: &Fleet, stored: &Fleet, diff: &mut Differences) {
    compare_maps("rack", &replayed.racks, &stored.racks, to_value, diff);
    compare_maps("component", &replayed.components, &stored.components, component_value, diff);
    compare_maps("run", &replayed.runs, &stored.runs, to_value, diff);
    compare_maps("target", &replayed.targets, &stored.targets, to_value, diff);
    compare_maps("task", &replayed.tasks, &stored.tasks, to_value, diff);

    let indexes = |fleet: &Fleet| {
        let mut map = BTreeMap::new();
        map.insert("rack_components", non_empty(&fleet.rack_components));
        map.insert("run_targets", non_empty(&fleet.run_targets));
        map.insert("target_positions", non_empty(&fleet.target_positions));
        map.insert("run_pending", non_empty(&fleet.run_pending));
        map.insert("run_active", non_empty(&fleet.run_active));
        map.insert("rack_active", non_empty(&fleet.rack_active));
        map.insert("active_total", json!(fleet.active_total));
        map
    };
    compare_maps("index", &indexes(replayed), &indexes(stored), |v: &Value| v.clone(), diff);
}

/// A map's JSON with empty entries left out (an index may or may not keep a key for nothing).
fn non_empty<K: Serialize + Ord, V: Serialize>(map: &BTreeMap<K, V>) -> Value {
    let mut out = serde_json::Map::new();
    for (key, value) in map {
        let value = to_value(value);
        let empty = match &value {
            Value::Array(items) => items.is_empty(),
            Value::Object(fields) => fields.is_empty(),
            _ => false,
        };
        if !empty {
            let key = match to_value(key) {
                Value::String(text) => text,
                other => other.to_string(),
            };
            out.insert(key, value);
        }
    }
    Value::Object(out)
}

fn to_value<T: Serialize + ?Sized>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|err| json!({ "unserializable": err.to_string() }))
}

/// A component entry as compared: everything persisted, not the memory-only freshness.
fn component_value(entry: &ComponentEntry) -> Value {
    json!({
        "component": to_value(&entry.component),
        "raw_state": entry.raw_state,
        "status": to_value(&entry.status),
        "service_state": entry.service_state.as_str(),
    })
}

fn compare_maps<K: fmt::Display + Ord, V>(
    what: &str,
    replayed: &BTreeMap<K, V>,
    stored: &BTreeMap<K, V>,
    value: impl Fn(&V) -> Value,
    diff: &mut Differences,
) {
    for (id, left) in replayed {
        match stored.get(id) {
            None => diff.push(format!("{what} {id}: in replay, missing from stored rows")),
            Some(right) => {
                diff_values(&format!("{what} {id}"), "", &value(left), &value(right), diff)
            }
        }
    }
    for id in stored.keys() {
        if !replayed.contains_key(id) {
            diff.push(format!("{what} {id}: in stored rows, missing from replay"));
        }
    }
}

fn diff_values(subject: &str, path: &str, left: &Value, right: &Value, diff: &mut Differences) {
    if left == right {
        return;
    }
    let join = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match (left, right) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let null = Value::Null;
                let l = a.get(key).unwrap_or(&null);
                let r = b.get(key).unwrap_or(&null);
                diff_values(subject, &join(key), l, r, diff);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (index, (l, r)) in a.iter().zip(b).enumerate() {
                diff_values(subject, &format!("{path}[{index}]"), l, r, diff);
            }
        }
        _ => {
            let field = if path.is_empty() { String::new() } else { format!(" {path}") };
            diff.push(format!("{subject}{field}: replay={} stored={}", show(left), show(right)));
        }
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Collected differences, capped at [`MAX_DIFFERENCES`] lines.
#[derive(Default)]
pub(crate) struct Differences {
    lines: Vec<String>,
    dropped: usize,
}

impl Differences {
    fn push(&mut self, line: String) {
        if self.lines.len() < MAX_DIFFERENCES {
            self.lines.push(line);
        } else {
            self.dropped += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.lines.push(format!("... and {} more differences", self.dropped));
        }
        self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_diff_names_the_field() {
        let mut diff = Differences::default();
        let left = json!({"status": "completed", "counts": {"failed": 1}, "waves": [1, 2]});
        let right = json!({"status": "submitted", "counts": {"failed": 0}, "waves": [1, 3]});
        diff_values("target run-1:r3", "", &left, &right, &mut diff);
        assert_eq!(
            diff.finish(),
            vec![
                "target run-1:r3 counts.failed: replay=1 stored=0".to_string(),
                "target run-1:r3 status: replay=completed stored=submitted".to_string(),
                "target run-1:r3 waves[1]: replay=2 stored=3".to_string(),
            ]
        );
    }

    #[test]
    fn differences_are_capped() {
        let mut diff = Differences::default();
        for i in 0..MAX_DIFFERENCES + 5 {
            diff.push(format!("line {i}"));
        }
        let lines = diff.finish();
        assert_eq!(lines.len(), MAX_DIFFERENCES + 1);
        assert_eq!(lines.last().map(String::as_str), Some("... and 5 more differences"));
    }
}
