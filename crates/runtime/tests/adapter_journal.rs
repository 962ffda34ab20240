//! The adapter journal (`store::journal::AdapterJournal`, the task journal of the Redfish and
//! exec adapters) on both backends: the same cases on an SQLite file and (feature `postgres`) on
//! a fresh database of a throwaway PostgreSQL cluster, plus PostgreSQL's fencing: once another
//! instance has bumped the leadership epoch, every write of the old epoch is refused and
//! leaves the rows as they were.
#![allow(clippy::unwrap_used, missing_docs)]

use steward_runtime::store::StoreOptions;
use steward_runtime::store::journal::{AdapterJournal, JournalStep, JournalTask};

mod support;

/// Where a case's journal lives; [`Place::open`] opens a new connection each time.
enum Place {
    Sqlite(tempfile::TempDir),
    #[cfg(feature = "postgres")]
    Postgres(String),
}

impl Place {
    fn open(&self, adapter: &str) -> AdapterJournal {
        match self {
            Place::Sqlite(dir) => AdapterJournal::open(
                &dir.path().join("steward.db"),
                adapter,
                &StoreOptions::default(),
            )
            .unwrap(),
            // Nobody leads a fresh database: its epoch is 0.
            #[cfg(feature = "postgres")]
            Place::Postgres(url) => AdapterJournal::open_postgres(url, adapter, 0).unwrap(),
        }
    }
}

type Case = (&'static str, fn(&Place));

const CASES: &[Case] = &[
    ("tasks_and_steps_survive_reopen_and_keys_are_unique", survive_reopen_and_keys_are_unique),
    ("unfinished_tasks_are_oldest_first", unfinished_tasks_are_oldest_first),
    ("steps_are_upserted_and_in_name_order", steps_are_upserted_and_in_name_order),
    ("a_step_of_an_unknown_task_is_refused", a_step_of_an_unknown_task_is_refused),
];

#[test]
fn journal_cases_on_sqlite() {
    for (name, case) in CASES {
        eprintln!("sqlite: {name}");
        case(&Place::Sqlite(tempfile::tempdir().unwrap()));
    }
}

#[cfg(feature = "postgres")]
#[test]
fn journal_cases_on_postgres() {
    let Some(cluster) = support::pg_cluster::PgCluster::start() else { return };
    for (index, (name, case)) in CASES.iter().enumerate() {
        eprintln!("postgres: {name}");
        case(&Place::Postgres(cluster.database(&format!("journal_{index}"))));
    }
}

fn task(id: &str, key: &str, status: &str) -> JournalTask {
    JournalTask {
        task_id: id.into(),
        idempotency_key: key.into(),
        status: status.into(),
        data: format!("{{\"id\":\"{id}\"}}"),
    }
}

fn step(name: &str, state: &str) -> JournalStep {
    JournalStep { step: name.into(), state: state.into(), data: format!("{{\"s\":\"{state}\"}}") }
}

fn survive_reopen_and_keys_are_unique(place: &Place) {
    let journal = place.open("redfish");
    assert!(
        journal.create_task(&task("t1", "k1", "running"), &[step("a", "pending")], "t0").unwrap()
    );
    assert!(!journal.create_task(&task("t2", "k1", "running"), &[], "t0").unwrap());
    assert!(journal.task("t2").unwrap().is_none(), "a refused task writes nothing");
    journal.set_step("t1", &step("a", "sending"), "t1").unwrap();
    journal.set_task_status("t1", "completed", "t1").unwrap();
    drop(journal);
    let journal = place.open("redfish");
    assert_eq!(journal.task_by_key("k1").unwrap(), Some(task("t1", "k1", "completed")));
    assert_eq!(journal.task("t1").unwrap().unwrap().status, "completed");
    assert_eq!(journal.steps("t1").unwrap(), vec![step("a", "sending")]);
    assert!(journal.unfinished_tasks(&["completed"]).unwrap().is_empty());
    let other = place.open("exec");
    assert!(other.task_by_key("k1").unwrap().is_none(), "adapters do not see each other");
    assert!(other.create_task(&task("t1", "k1", "pending"), &[], "t2").unwrap());
    assert_eq!(other.task("t1").unwrap().unwrap().status, "pending");
    assert_eq!(journal.task("t1").unwrap().unwrap().status, "completed");
}

fn unfinished_tasks_are_oldest_first(place: &Place) {
    let journal = place.open("exec");
    let times =
        ["2026-01-01T00:00:03+00:00", "2026-01-01T00:00:01+00:00", "2026-01-01T00:00:02+00:00"];
    for (i, at) in times.iter().enumerate() {
        let id = format!("t{i}");
        assert!(journal.create_task(&task(&id, &format!("k{i}"), "pending"), &[], at).unwrap());
    }
    journal.set_task_status("t2", "started", "2026-01-01T00:00:04+00:00").unwrap();
    let ids = |tasks: Vec<JournalTask>| tasks.into_iter().map(|t| t.task_id).collect::<Vec<_>>();
    assert_eq!(ids(journal.unfinished_tasks(&["completed"]).unwrap()), ["t1", "t2", "t0"]);
    journal.set_task_status("t1", "completed", "2026-01-01T00:00:05+00:00").unwrap();
    journal.set_task_status("t0", "failed", "2026-01-01T00:00:05+00:00").unwrap();
    assert_eq!(ids(journal.unfinished_tasks(&["completed", "failed"]).unwrap()), ["t2"]);
    assert_eq!(ids(journal.unfinished_tasks(&[]).unwrap()), ["t1", "t2", "t0"]);
}

fn steps_are_upserted_and_in_name_order(place: &Place) {
    let journal = place.open("exec");
    let steps = [step("b", "pending"), step("a", "pending"), step("B", "pending")];
    assert!(journal.create_task(&task("t", "k", "pending"), &steps, "t0").unwrap());
    // Byte order, as SQLite sorts: upper case first.
    let names =
        |j: &AdapterJournal| j.steps("t").unwrap().into_iter().map(|s| s.step).collect::<Vec<_>>();
    assert_eq!(names(&journal), ["B", "a", "b"]);
    journal.set_step("t", &step("a", "done"), "t1").unwrap();
    journal.set_step("t", &step("@process", "process"), "t1").unwrap();
    assert_eq!(names(&journal), ["@process", "B", "a", "b"]);
    let a = journal.steps("t").unwrap().into_iter().find(|s| s.step == "a").unwrap();
    assert_eq!(a, step("a", "done"));
    assert!(journal.steps("missing").unwrap().is_empty());
}

fn a_step_of_an_unknown_task_is_refused(place: &Place) {
    let journal = place.open("redfish");
    assert!(journal.set_step("nope", &step("a", "pending"), "t0").is_err());
    assert!(journal.steps("nope").unwrap().is_empty());
    assert!(journal.task("nope").unwrap().is_none());
}

/// A journal opened under epoch `e`: once another instance bumps the epoch (as a takeover
/// does), every write is refused `Fenced` and changes nothing; reads still answer.
#[cfg(feature = "postgres")]
#[test]
fn a_write_after_another_instance_took_over_is_fenced() {
    let Some(cluster) = support::pg_cluster::PgCluster::start() else { return };
    let url = cluster.database("fenced");
    let bump = |url: &str| -> i64 {
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        client
            .query_one(
                "UPDATE steward_leader SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch",
                &[],
            )
            .unwrap()
            .get(0)
    };
    // Opening migrates the database; then this instance "wins" epoch 1.
    drop(AdapterJournal::open_postgres(&url, "exec", 0).unwrap());
    let ours = bump(&url);
    let journal = AdapterJournal::open_postgres(&url, "exec", ours).unwrap();
    assert_eq!((journal.kind(), journal.epoch()), ("postgres", Some(ours)));
    assert!(
        journal.create_task(&task("t1", "k1", "pending"), &[step("a", "pending")], "t0").unwrap()
    );
    journal.set_step("t1", &step("a", "running"), "t1").unwrap();

    let current = bump(&url);
    let fenced = |result: Result<(), steward_runtime::store::StoreError>| {
        let error = result.unwrap_err();
        assert!(error.is_fenced(), "{error}");
        assert!(matches!(error,
            steward_runtime::store::StoreError::Fenced { ours: o, current: c } if o == ours && c == current));
    };
    fenced(journal.set_task_status("t1", "started", "t2"));
    fenced(journal.set_step("t1", &step("a", "sent"), "t2"));
    fenced(journal.create_task(&task("t2", "k2", "pending"), &[], "t2").map(|_| ()));
    assert_eq!(journal.task("t1").unwrap().unwrap().status, "pending");
    assert_eq!(journal.steps("t1").unwrap(), vec![step("a", "running")]);
    assert!(journal.task_by_key("k2").unwrap().is_none());

    // The new leader's journal writes; no row carries the old epoch after the bump.
    let new = AdapterJournal::open_postgres(&url, "exec", current).unwrap();
    new.set_task_status("t1", "started", "t3").unwrap();
    assert_eq!(journal.task("t1").unwrap().unwrap().status, "started");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let epoch: i64 = client
        .query_one("SELECT epoch FROM adapter_tasks WHERE task_id = 't1'", &[])
        .unwrap()
        .get(0);
    assert_eq!(epoch, current);
}
