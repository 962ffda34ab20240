//! The Redfish adapter in HA mode: its journal in PostgreSQL (`AdapterJournal::open_postgres`,
//! fenced by a leadership epoch) on a throwaway cluster (skipped when the server binaries are
//! missing; `STEWARD_REQUIRE_TOOLS=1` fails instead), against the loopback Redfish double.
//!
//! A leader's adapter sends one system's ForceOff (held on the BMC) while another system's
//! step has not sent yet; another instance then takes over (the epoch is bumped) and builds its
//! adapter on the same journal. The new adapter resumes the task: it verifies the ForceOff that
//! left instead of sending it again and sends the one that had not; the deposed adapter's
//! journal writes are refused, so it sends nothing more, and a new submission to it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod double;
#[path = "../../runtime/tests/support/pg_cluster.rs"]
mod pg_cluster;

use double::Double;
use std::sync::Arc;
use std::time::{Duration, Instant};
use steward_proto::{ComponentId, IdempotencyKey, Operation, RackId, RunId, TargetId, TaskStatus};
use steward_redfish::{RedfishConfig, RedfishCore};
use steward_runtime::clock::SystemClock;
use steward_runtime::core::{Core, CoreError, SubmitOutcome, TaskRequest};
use steward_runtime::store::journal::AdapterJournal;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// The adapter over `bmc` (compute systems in rack `r1`) with its journal in PostgreSQL.
async fn adapter(dir: &std::path::Path, bmc: &str, url: &str, epoch: i64) -> RedfishCore {
    let password = dir.join("password");
    std::fs::write(&password, "password\n").unwrap();
    let text = format!(
        "username = \"admin\"\npassword_file = {:?}\ntimeout_ms = 20000\n\
         power_settle_seconds = 60\n\
         [[endpoints]]\nurl = \"{bmc}\"\nrack = \"r1\"\nkind = \"compute\"\n",
        password.display().to_string()
    );
    let settings =
        RedfishConfig::from_table(toml::from_str(&text).unwrap()).unwrap().validate().unwrap();
    let url = url.to_string();
    let journal =
        blocking(move || AdapterJournal::open_postgres(&url, "redfish", epoch).unwrap()).await;
    assert_eq!(journal.epoch(), Some(epoch));
    RedfishCore::start_with_journal(settings, journal, "postgres".into(), Arc::new(SystemClock))
        .await
        .unwrap()
}

fn request(key: &str, operation: Operation, components: &[&str]) -> TaskRequest {
    TaskRequest {
        idempotency_key: IdempotencyKey::new(key),
        run_id: RunId::new("run-1"),
        target_id: TargetId::new(format!("run-1/r1/{key}")),
        rack_id: RackId::new("r1"),
        operation,
        components: components.iter().map(|c| ComponentId::new(format!("r1-{c}"))).collect(),
    }
}

/// Bumps the leadership epoch as a takeover does; returns the new epoch.
async fn take_over(url: &str) -> i64 {
    let url = url.to_string();
    blocking(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .query_one(
                "UPDATE steward_leader SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch",
                &[],
            )
            .unwrap()
            .get(0)
    })
    .await
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_resumes_the_task_verifies_what_left_and_the_old_one_is_fenced() {
    let Some(cluster) = blocking(pg_cluster::PgCluster::start).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = std::thread::scope(|s| s.spawn(|| cluster.database("redfish")).join().unwrap());
    // Migrate the fresh database, then lead it with epoch 1.
    let migrate = url.clone();
    drop(blocking(move || AdapterJournal::open_postgres(&migrate, "redfish", 0).unwrap()).await);
    let first = take_over(&url).await;
    let bmc = Double::start(&["a", "b"]).await;
    let old = adapter(dir.path(), &bmc.url, &url, first).await;

    // a's ForceOff leaves but shows only when released; b's step cannot read its system yet.
    bmc.hold_power("a", true);
    bmc.hold_get("b", true);
    let submitted = old.submit(&request("k-off", Operation::PowerOff, &["a", "b"])).await;
    let Ok(SubmitOutcome::Accepted { task_id }) = submitted else { panic!("{submitted:?}") };
    wait_until("a's Reset never arrived", || !bmc.posts().is_empty()).await;
    assert_eq!(bmc.posts(), vec!["Reset a ForceOff"]);

    // Another instance takes over and builds its adapter on the same journal.
    let second = take_over(&url).await;
    assert!(second > first);
    // The deposed adapter's b step reads its system now, but cannot journal its ForceOff as
    // sent, so it never sends it.
    bmc.hold_get("b", false);
    // (Its failure cannot be journaled either: the journal still shows the step running.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = old.task_status(&task_id).await.unwrap();
    assert_eq!(report.component_results[&ComponentId::new("r1-b")], TaskStatus::Running);
    assert_eq!(bmc.posts(), vec!["Reset a ForceOff"], "the deposed adapter sent nothing more");
    let new = adapter(dir.path(), &bmc.url, &url, second).await;
    bmc.hold_power("a", false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let report = loop {
        let report = new.task_status(&task_id).await.unwrap();
        if report.status != TaskStatus::Running && report.status != TaskStatus::Pending {
            break report;
        }
        assert!(Instant::now() < deadline, "the new leader did not finish: {report:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(report.status, TaskStatus::Completed, "{report:?}");
    assert_eq!((bmc.power("a").as_str(), bmc.power("b").as_str()), ("Off", "Off"));
    // Give the deposed adapter's runner time to try (and be refused) anything it would.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut posts = bmc.posts();
    posts.sort();
    assert_eq!(
        posts,
        vec!["Reset a ForceOff", "Reset b ForceOff"],
        "a's request was verified, not sent again; b's was sent once"
    );

    // The deposed adapter can journal nothing, so it submits nothing.
    // (Until its runner has ended, it answers that the rack is busy.)
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let answer = old.submit(&request("k-on", Operation::PowerOn, &["a"])).await;
        if !matches!(answer, Ok(SubmitOutcome::Conflict { .. })) || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(matches!(refused, Err(CoreError::Journal { .. })), "{refused:?}");
    assert_eq!(bmc.posts().len(), 2, "nothing sent by the deposed adapter");
    let answer = new.find_task(&IdempotencyKey::new("k-on")).await.unwrap();
    assert!(answer.is_none(), "no task journaled by the deposed adapter");
    let new_answer = new.submit(&request("k-on", Operation::PowerOn, &["a"])).await.unwrap();
    assert!(matches!(new_answer, SubmitOutcome::Accepted { .. }), "{new_answer:?}");
}
