//! HA on PostgreSQL, black-box: real `steward serve` processes sharing one database of a
//! throwaway PostgreSQL cluster the test starts itself (skipped with a message when the server
//! binaries are missing; `STEWARD_REQUIRE_TOOLS=1` makes that a failure).
//!
//! - the leader SIGKILLed mid-run: the standby takes over and finishes the run, and the sim
//!   Core's journal (in the same database) shows no key submitted twice;
//! - the leader SIGSTOPped past the standby's takeover, then SIGCONTed: it writes no event and
//!   no journal record under its old epoch, and answers no command with success;
//! - PostgreSQL restarted mid-run: a leader emerges with a higher epoch and the run completes;
//! - the exec adapter (`/bin/sh` site scripts, task journal in PostgreSQL, a shared work_dir):
//!   the leader SIGKILLed while a firmware script runs, the standby adopts that script and
//!   finishes the run, and the scripts' own log shows no task key started twice;
//! - the Redfish adapter against sushy-emulator (skipped without it, like `redfish_sushy.rs`):
//!   the leader SIGKILLed once a Reset left, the standby finishes the power cycle and no
//!   system gets a second Reset.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../crates/runtime/tests/support/pg_cluster.rs"]
mod pg_cluster;
mod redfish_support;

use pg_cluster::PgCluster;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use steward_runtime::store::postgres::PgStore;
use steward_runtime::store::replay_backend;
use steward_state_machine::FleetConfig;

const BIN: &str = env!("CARGO_BIN_EXE_steward");
const RACKS: u64 = 8;
/// Shorter leadership timings for the pause and restart tests.
const FAST: &str = "poll_interval_ms = 300\nlock_session_timeout_ms = 2000";

/// One `steward serve` on a fixed loopback port, advertising it.
struct Node {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Node {
    /// `timings`: extra `[store]` keys (empty: the defaults, 1 s poll and 5 s lock session).
    fn start(dir: &std::path::Path, name: &str, db_url: &str, timings: &str) -> Node {
        let sim = format!(
            "[core.sim]\nracks = {RACKS}\nrows = 2\nlatency = {{ min_ms = 300, max_ms = 900 }}\n"
        );
        Node::start_with(dir, name, db_url, timings, &sim)
    }

    /// Like [`Node::start`] with the given `[core]` tables instead of the sim Core's.
    fn start_with(
        dir: &std::path::Path,
        name: &str,
        db_url: &str,
        timings: &str,
        core: &str,
    ) -> Node {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let config = format!(
            "listen = \"127.0.0.1:{port}\"\nadvertise_url = \"{url}\"\nplan_interval_ms = 50\n\
             sync_interval_ms = 100\ntask_poll_interval_ms = 50\n\
             [store]\nurl = \"{db_url}\"\n{timings}\n{core}"
        );
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .env("STEWARD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Node { child, url, log }
    }

    fn signal(&self, name: &str) {
        let status =
            Command::new("kill").args([name, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill {name}");
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap()
}

/// `/readyz`: Some(epoch) when the node leads.
async fn leads(node: &Node) -> Option<i64> {
    let response = client().get(format!("{}/readyz", node.url)).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json::<Value>().await.ok()?["epoch"].as_i64()
}

async fn wait_leader(node: &Node, within: Duration) -> i64 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(epoch) = leads(node).await {
            return epoch;
        }
        assert!(Instant::now() < deadline, "{} did not lead in time:\n{}", node.url, node.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get(url: &str) -> Option<Value> {
    let response = client().get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

async fn create_run(node: &Node) -> String {
    let body = json!({
        "operation": {"kind": "firmware_update", "version": "2.0.0"},
        "selector": {"all": true},
        "policy": {"max_parallel_racks": 2}
    });
    let response = client().post(format!("{}/v1/runs", node.url)).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "create run: {}", response.status());
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

/// Waits until the run has at least `n` completed targets (as `node` sees it).
async fn wait_completed(node: &Node, run: &str, n: u64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(run) = get(&format!("{}/v1/runs/{run}", node.url)).await
            && run["counts"]["completed"].as_u64().unwrap_or(0) >= n
        {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "run {run} not progressing on {}:\n{}",
            node.url,
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `f` on a scoped plain thread and waits (blocks this worker briefly; tests only).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join().unwrap())
}

/// Runs `f` on a plain thread (the synchronous client must not run on the async runtime).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

async fn count(url: &str, sql: &'static str, epoch: Option<i64>) -> i64 {
    let url = url.to_string();
    blocking(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        match epoch {
            Some(epoch) => client.query_one(sql, &[&epoch]).unwrap().get(0),
            None => client.query_one(sql, &[]).unwrap().get(0),
        }
    })
    .await
}

/// Nothing submitted twice: one `submitted` record per key, no duplicate submit call; and
/// replaying the database's event log equals its rows.
async fn assert_journal_and_replay(url: &str) {
    let twice = count(
        url,
        "SELECT count(*) FROM (SELECT key FROM adapter_journal WHERE kind = 'submitted' \
         GROUP BY key HAVING count(*) > 1) AS twice",
        None,
    )
    .await;
    assert_eq!(twice, 0, "an idempotency key was submitted to Core twice");
    let duplicates =
        count(url, "SELECT count(*) FROM adapter_journal WHERE kind = 'duplicate'", None).await;
    assert_eq!(duplicates, 0, "a submit call repeated a key Core already had");
    let submitted =
        count(url, "SELECT count(*) FROM adapter_journal WHERE kind = 'submitted'", None).await;
    assert_eq!(submitted, RACKS as i64, "one task per rack");
    let url = url.to_string();
    let report = blocking(move || {
        let store = PgStore::open(&url, None).unwrap();
        replay_backend(&store, FleetConfig::default()).unwrap()
    })
    .await;
    assert!(report.equal, "replay differs from the stored rows: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_run_the_standby_finishes_it_without_duplicates() {
    let Some(cluster) = blocking(PgCluster::start).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = off_runtime(|| cluster.database("kill"));
    let a = Node::start(dir.path(), "a", &url, "");
    let first = wait_leader(&a, Duration::from_secs(60)).await;
    let b = Node::start(dir.path(), "b", &url, "");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(leads(&b).await, None, "two leaders");

    // The standby answers 503 naming the leader; the CLI retries there.
    let refused = client().get(format!("{}/v1/runs", b.url)).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["leader"], a.url.as_str(), "{problem}");
    let cli = Command::new(BIN).args(["--server", &b.url, "--json", "run", "list"]).output();
    let cli = cli.unwrap();
    assert!(cli.status.success(), "CLI via the standby: {}", String::from_utf8_lossy(&cli.stderr));

    let run = create_run(&a).await;
    wait_completed(&a, &run, 2, Duration::from_secs(60)).await;
    let killed = Instant::now();
    a.signal("-KILL");
    let second = wait_leader(&b, Duration::from_secs(60)).await;
    eprintln!(
        "takeover (default settings): standby ready {} ms after SIGKILL",
        killed.elapsed().as_millis()
    );
    assert!(second > first, "the epoch grows on takeover ({first} -> {second})");

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = get(&format!("{}/v1/runs/{run}", b.url)).await.map(|r| r["status"].clone());
        if status == Some(json!("completed")) {
            break;
        }
        assert!(Instant::now() < deadline, "run not completed after takeover:\n{}", b.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(b);
    assert_journal_and_replay(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_resumed_after_takeover_is_fenced() {
    let Some(cluster) = blocking(PgCluster::start).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = off_runtime(|| cluster.database("fence"));
    let a = Node::start(dir.path(), "a", &url, FAST);
    let old = wait_leader(&a, Duration::from_secs(60)).await;
    let b = Node::start(dir.path(), "b", &url, FAST);
    let run = create_run(&a).await;
    wait_completed(&a, &run, 1, Duration::from_secs(60)).await;

    a.signal("-STOP");
    let new = wait_leader(&b, Duration::from_secs(60)).await;
    assert!(new > old);
    let events_sql = "SELECT count(*) FROM events WHERE epoch = $1";
    let journal_sql = "SELECT count(*) FROM adapter_journal WHERE epoch = $1";
    let events_before = count(&url, events_sql, Some(old)).await;
    let journal_before = count(&url, journal_sql, Some(old)).await;

    a.signal("-CONT");
    // The resumed leader still believes it leads until its first commit or ping fails: a
    // command sent to it now must not succeed.
    let answer = client()
        .post(format!("{}/v1/components/rack-001-node-01/service-state", a.url))
        .json(&json!({"to": "maintenance", "note": "fencing test"}))
        .send()
        .await;
    if let Ok(answer) = answer {
        assert!(!answer.status().is_success(), "a fenced leader acknowledged a command");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(leads(&a).await, None, "the old leader still claims to lead:\n{}", a.log());
    assert!(a.log().contains("stepping down"), "the old leader did not step down:\n{}", a.log());
    assert_eq!(count(&url, events_sql, Some(old)).await, events_before, "old epoch wrote events");
    assert_eq!(
        count(&url, journal_sql, Some(old)).await,
        journal_before,
        "old epoch reached Core's journal"
    );

    let deadline = Instant::now() + Duration::from_secs(120);
    while get(&format!("{}/v1/runs/{run}", b.url)).await.map(|r| r["status"].clone())
        != Some(json!("completed"))
    {
        assert!(Instant::now() < deadline, "run not completed after takeover:\n{}", b.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let history = get(&format!("{}/v1/components/rack-001-node-01/history", b.url)).await;
    assert_eq!(history, Some(json!([])), "the fenced command left a history entry");
    drop((a, b));
    assert_journal_and_replay(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_run_a_leader_emerges_and_the_run_completes() {
    let Some(cluster) = blocking(PgCluster::start).await else { return };
    let cluster = Arc::new(cluster);
    let dir = tempfile::tempdir().unwrap();
    let url = off_runtime(|| cluster.database("restart"));
    let a = Node::start(dir.path(), "a", &url, FAST);
    let first = wait_leader(&a, Duration::from_secs(60)).await;
    let b = Node::start(dir.path(), "b", &url, FAST);
    let run = create_run(&a).await;
    wait_completed(&a, &run, 1, Duration::from_secs(60)).await;

    let restart = cluster.clone();
    blocking(move || {
        restart.stop("fast");
        restart.pg_ctl_start();
    })
    .await;

    let deadline = Instant::now() + Duration::from_secs(60);
    let (leader, epoch) = loop {
        if let Some(epoch) = leads(&a).await.filter(|e| *e > first) {
            break (&a, epoch);
        }
        if let Some(epoch) = leads(&b).await.filter(|e| *e > first) {
            break (&b, epoch);
        }
        assert!(
            Instant::now() < deadline,
            "no leader after the restart:\n{}\n{}",
            a.log(),
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(epoch > first);
    let deadline = Instant::now() + Duration::from_secs(120);
    while get(&format!("{}/v1/runs/{run}", leader.url)).await.map(|r| r["status"].clone())
        != Some(json!("completed"))
    {
        assert!(
            Instant::now() < deadline,
            "run not completed after the restart:\n{}",
            leader.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop((a, b));
    assert_journal_and_replay(&url).await;
}

/// Writes an executable shell script.
fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    let status = Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    assert!(status.success());
    path.display().to_string()
}

const EXEC_RACKS: [&str; 4] = ["rack-001", "rack-002", "rack-003", "rack-004"];

/// An exec site: an observe script over four racks of one compute each (firmware versions in
/// `state/`), and a firmware script that logs every start in `started.log`; the first task
/// sleeps 8 s (so the test can kill the leader while it runs), the others 1 s. Returns the
/// `[core]` tables, the work directory shared by both instances.
fn exec_site(dir: &std::path::Path) -> String {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let d = dir.display().to_string();
    let s = state.display().to_string();
    let observe = script(
        dir,
        "observe.sh",
        &format!(
            r#"printf '['
sep=''
for rack in {racks}; do
  id="$rack-c1"
  fw=1.0.0
  if [ -e "{s}/$id.fw" ]; then read -r fw < "{s}/$id.fw"; fi
  printf '%s{{"component_id":"%s","rack_id":"%s","kind":"compute","controller_state":"Ready","power_state":"on","firmware_version":"%s"}}' "$sep" "$id" "$rack" "$fw"
  sep=','
done
printf ']\n'"#,
            racks = EXEC_RACKS.join(" ")
        ),
    );
    let flash = script(
        dir,
        "flash.sh",
        &format!(
            r#"echo "$STEWARD_TASK_KEY" >> "{d}/started.log"
cat > /dev/null
for c in $STEWARD_COMPONENTS; do
  echo "{{\"component\":\"$c\",\"status\":\"running\",\"message\":\"flashing\"}}"
done
if mkdir "{d}/slept" 2>/dev/null; then sleep 8; else sleep 1; fi
r=''
for c in $STEWARD_COMPONENTS; do
  echo "$STEWARD_FIRMWARE_VERSION" > "{s}/$c.fw"
  r="$r${{r:+,}}\"$c\":{{\"status\":\"completed\",\"message\":\"now $STEWARD_FIRMWARE_VERSION\"}}"
done
echo "{{\"result\":{{$r}}}}""#
        ),
    );
    let work = dir.join("work");
    format!(
        "[core]\nadapter = \"exec\"\n[core.exec]\nobserve = [{observe:?}]\n\
         firmware_update = [{flash:?}]\ntimeout_seconds = 300\nwork_dir = {:?}\n",
        work.display().to_string()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_leader_killed_mid_script_the_standby_adopts_it_and_starts_no_key_twice() {
    let Some(cluster) = blocking(PgCluster::start).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = off_runtime(|| cluster.database("exec_kill"));
    let core = exec_site(dir.path());
    let a = Node::start_with(dir.path(), "a", &url, "", &core);
    let first = wait_leader(&a, Duration::from_secs(60)).await;
    let b = Node::start_with(dir.path(), "b", &url, "", &core);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(leads(&b).await, None, "two leaders");
    // Wait for the import of the observed fleet.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let components = get(&format!("{}/v1/components", a.url)).await;
        let ready = components.as_ref().and_then(Value::as_array).is_some_and(|all| {
            all.len() == EXEC_RACKS.len()
                && all.iter().all(|c| c.pointer("/status/phase") == Some(&json!("ready")))
        });
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "fleet not imported and ready:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One rack at a time, no retries: the kill lands on the first rack's script.
    let body = json!({
        "operation": {"kind": "firmware_update", "version": "3.1.0"},
        "selector": {"all": true},
        "policy": {"max_parallel_racks": 1, "max_attempts": 1}
    });
    let response = client().post(format!("{}/v1/runs", a.url)).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "create run: {}", response.status());
    let run = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let slept = dir.path().join("slept");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !slept.exists() {
        assert!(Instant::now() < deadline, "the firmware script never started:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.signal("-KILL");
    let second = wait_leader(&b, Duration::from_secs(60)).await;
    assert!(second > first, "the epoch grows on takeover ({first} -> {second})");

    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        if let Some(done) = get(&format!("{}/v1/runs/{run}", b.url)).await
            && done["finished_at"].is_string()
        {
            break done;
        }
        assert!(Instant::now() < deadline, "run not finished after takeover:\n{}", b.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["status"], "completed", "{done:#}\n{}", b.log());
    let targets = get(&format!("{}/v1/runs/{run}/targets", b.url)).await.unwrap();
    for target in targets.as_array().unwrap() {
        assert_eq!(target["status"], "completed", "{target:#}");
        assert_eq!(target["attempt"], 1, "no retry: {target:#}");
    }
    let started = std::fs::read_to_string(dir.path().join("started.log")).unwrap();
    let keys: Vec<&str> = started.lines().collect();
    let unique: std::collections::BTreeSet<&str> = keys.iter().copied().collect();
    assert_eq!(keys.len(), EXEC_RACKS.len(), "one start per rack, none twice:\n{started}");
    assert_eq!(unique.len(), keys.len(), "every key started exactly once:\n{started}");
    // Which way the new leader found the first rack's script (both are correct): still running
    // and watched through /proc, or gone with its result line left in the shared work_dir.
    let log = b.log();
    let resumed = log.lines().filter(|l| l.contains("resuming exec task")).count();
    let watched = log.lines().filter(|l| l.contains("watching a command started before")).count();
    eprintln!("takeover: {resumed} exec task(s) resumed, {watched} running command(s) adopted");
    assert_eq!(resumed, 1, "the task the old leader started is resumed:\n{log}");

    // The journal is in PostgreSQL: one finished task per rack, the first one finished by the
    // new leader's epoch.
    let tasks = count(
        &url,
        "SELECT count(*) FROM adapter_tasks WHERE adapter = 'exec' AND status = 'completed'",
        None,
    )
    .await;
    assert_eq!(tasks, EXEC_RACKS.len() as i64);
    let by_new =
        count(&url, "SELECT count(*) FROM adapter_tasks WHERE epoch = $1", Some(second)).await;
    assert_eq!(by_new, EXEC_RACKS.len() as i64, "the new leader journaled every task's end");
    drop((a, b));
    let url = url.to_string();
    let report = blocking(move || {
        let store = PgStore::open(&url, None).unwrap();
        replay_backend(&store, FleetConfig::default()).unwrap()
    })
    .await;
    assert!(report.equal, "replay differs from the stored rows: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redfish_leader_killed_mid_power_cycle_the_standby_finishes_it_with_no_second_reset() {
    if !redfish_support::available() {
        return;
    }
    let Some(cluster) = blocking(PgCluster::start).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = off_runtime(|| cluster.database("redfish_kill"));
    let emulators: Vec<redfish_support::Emulator> = (1..=2)
        .map(|n| redfish_support::Emulator::start(&dir.path().join(format!("bmc{n}")), n, 2, "On"))
        .collect();
    let refs: Vec<&redfish_support::Emulator> = emulators.iter().collect();
    let full = redfish_support::steward_config(dir.path(), &refs, "");
    let core = &full[full.find("[core]").unwrap()..];
    let a = Node::start_with(dir.path(), "a", &url, "", core);
    let first = wait_leader(&a, Duration::from_secs(60)).await;
    let b = Node::start_with(dir.path(), "b", &url, "", core);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let components = get(&format!("{}/v1/components", a.url)).await;
        let ready = components.as_ref().and_then(Value::as_array).is_some_and(|all| {
            all.len() == 4
                && all.iter().all(|c| c.pointer("/status/phase") == Some(&json!("ready")))
        });
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "systems not imported and ready:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = json!({"operation": {"kind": "power_cycle"}, "selector": {"all": true},
                      "policy": {"max_parallel_racks": 2, "max_attempts": 1}});
    let response = client().post(format!("{}/v1/runs", a.url)).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "create run: {}", response.status());
    let run = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while emulators.iter().all(|e| e.uuids.iter().all(|u| e.resets(u) == 0)) {
        assert!(Instant::now() < deadline, "no Reset was ever sent:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.signal("-KILL");
    let second = wait_leader(&b, Duration::from_secs(60)).await;
    assert!(second > first);
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        if let Some(done) = get(&format!("{}/v1/runs/{run}", b.url)).await
            && done["finished_at"].is_string()
        {
            break done;
        }
        assert!(Instant::now() < deadline, "run not finished after takeover:\n{}", b.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["status"], "completed", "{done:#}\n{}", b.log());
    for emulator in &emulators {
        for uuid in &emulator.uuids {
            assert_eq!(emulator.power_state(uuid).as_deref(), Some("On"), "{uuid}");
            let resets = emulator.resets(uuid);
            assert!(resets <= 1, "{uuid} got {resets} Reset POSTs");
        }
    }
    let tasks = count(
        &url,
        "SELECT count(*) FROM adapter_tasks WHERE adapter = 'redfish' AND status = 'done'",
        None,
    )
    .await;
    assert_eq!(tasks, 2, "one finished task per rack in the PostgreSQL journal");
}
