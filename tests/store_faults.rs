//! Store faults on real files and real processes (issue 9): a write lock held by another
//! connection shorter and longer than the commit deadline, a read-only database at start, a
//! file-size limit reached mid-run (RLIMIT_FSIZE on the child), a second `serve` on the same
//! file, and `replay` of a custom-table database without `--config`. Each ends with the server
//! writing again or a non-zero exit with the cause on stderr, and checks that every
//! acknowledged command is in the store and that `replay` agrees.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod binary_support;

use binary_support::{Api, BIN, Steward, fast_config, outcome, temp_dir};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// A `steward serve` started through an arbitrary command line (a shell with `ulimit`, ...).
struct Served {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
}

impl Served {
    /// Starts `command` (which must exec `steward serve`) and waits for "serving on".
    fn start(mut command: Command) -> Served {
        let mut child = command
            .env("STEWARD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("serving on ").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let Ok(url) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!("steward did not start; log:\n{}", log.lock().unwrap());
        };
        Served { child, url, log }
    }

    fn api(&self) -> Api {
        Api::new(&self.url, None)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> ExitStatus {
        let id = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &id]).status().unwrap().success());
        wait_exit(&mut self.child, &self.log)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_exit(child: &mut Child, log: &Arc<Mutex<String>>) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "steward did not exit; log:\n{}", log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn serve_command(config: &Path, db: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.args(["serve", "--config"]).arg(config).arg("--db").arg(db);
    command
}

/// `steward replay --db DB` (no config) must exit 0: the replayed state equals the rows.
fn assert_replay_agrees(db: &Path) {
    let output = Command::new(BIN).args(["replay", "--db"]).arg(db).output().unwrap();
    let (code, stdout, stderr) = outcome(&output);
    assert_eq!(code, 0, "replay disagrees:\n{stdout}\n{stderr}");
}

/// Every history note in the database (read directly, not through a server).
fn stored_notes(db: &Path) -> BTreeSet<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT note FROM service_history WHERE note IS NOT NULL").unwrap();
    stmt.query_map([], |row| row.get::<_, String>(0)).unwrap().map(Result::unwrap).collect()
}

/// The names of the files in `dir`.
fn files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
        .collect()
}

/// Moves `component` to `to` with `note`; returns the answer.
async fn set_state(api: &Api, component: &str, to: &str, note: &str) -> binary_support::Answer {
    api.post(&format!("/v1/components/{component}/service-state"), &json!({"to": to, "note": note}))
        .await
}

/// Holds SQLite's write lock on `db` from another connection for `hold`, on a thread.
fn hold_write_lock(db: &Path, hold: Duration) -> std::thread::JoinHandle<()> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE;").unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(hold);
        conn.execute_batch("COMMIT;").unwrap();
    })
}

/// Polls `/readyz` until its answer satisfies `done`; returns the body.
async fn wait_readyz(api: &Api, timeout: Duration, done: impl Fn(u16, &Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let answer = api.get("/readyz").await;
        if done(answer.status, &answer.body) {
            return answer.body;
        }
        assert!(tokio::time::Instant::now() < deadline, "readyz never matched: {answer:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const NODE: &str = "rack-001-node-01";

#[tokio::test(flavor = "multi_thread")]
async fn a_write_lock_shorter_than_the_deadline_delays_the_reply_and_loses_nothing() {
    let dir = temp_dir();
    let steward = Steward::start(dir.path(), &fast_config("", "", ""));
    let api = steward.api();
    assert_eq!(api.get("/readyz").await.status, 200);
    // Longer than SQLite's own 5 s busy wait, so the reducer's retry loop runs too.
    let holder = hold_write_lock(&steward.db, Duration::from_secs(7));
    let write = {
        let api = api.clone();
        tokio::spawn(async move { set_state(&api, NODE, "maintenance", "during the lock").await })
    };
    let reason =
        wait_readyz(&api, Duration::from_secs(20), |status, _| status == 503).await["detail"]
            .clone();
    assert!(reason.as_str().unwrap().contains("database locked"), "{reason}");
    holder.join().unwrap();
    let answer = write.await.unwrap();
    assert_eq!(answer.status, 200, "the write waited for the lock: {answer:?}");
    wait_readyz(&api, Duration::from_secs(10), |status, _| status == 200).await;
    let after = set_state(&api, NODE, "in_service", "after the lock").await;
    assert_eq!(after.status, 200, "{after:?}");
    let metrics = api.get("/metrics").await.body.as_str().unwrap().to_string();
    assert!(metrics.contains("steward_commit_failures_total{cause=\"database locked\"}"));
    let db = steward.db.clone();
    assert!(steward.stop().success());
    let notes = stored_notes(&db);
    assert!(notes.contains("during the lock") && notes.contains("after the lock"), "{notes:?}");
    assert_replay_agrees(&db);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_lock_past_the_deadline_fails_the_batch_with_503_then_recovers() {
    let dir = temp_dir();
    let steward =
        Steward::start(dir.path(), &fast_config("commit_retry_deadline_ms = 1500", "", ""));
    let api = steward.api();
    set_state(&api, NODE, "maintenance", "before the lock").await;
    let holder = hold_write_lock(&steward.db, Duration::from_secs(5));
    let refused = set_state(&api, NODE, "in_service", "refused by the lock").await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.content_type.starts_with("application/problem+json"), "{refused:?}");
    let detail = refused.body["detail"].as_str().unwrap();
    assert!(detail.contains("database locked"), "{detail}");
    let ready = api.get("/readyz").await;
    assert_eq!(ready.status, 503, "{ready:?}");
    assert_eq!(api.get("/healthz").await.status, 200, "the reducer still runs");
    holder.join().unwrap();
    // The server recovers by itself: a probe on a quiet tick finds the store writable again.
    wait_readyz(&api, Duration::from_secs(20), |status, _| status == 200).await;
    let component = api.ok(&format!("/v1/components/{NODE}")).await;
    assert_eq!(component["service_state"], "maintenance", "the refused change was dropped");
    let after = set_state(&api, NODE, "in_service", "after the lock").await;
    assert_eq!(after.status, 200, "{after:?}");
    let db = steward.db.clone();
    assert!(steward.stop().success());
    let notes = stored_notes(&db);
    assert!(notes.contains("before the lock") && notes.contains("after the lock"), "{notes:?}");
    assert!(!notes.contains("refused by the lock"), "{notes:?}");
    assert_replay_agrees(&db);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_serve_is_refused_before_it_touches_anything() {
    let dir = temp_dir();
    let steward = Steward::start(dir.path(), &fast_config("", "", ""));
    let api = steward.api();
    assert_eq!(set_state(&api, NODE, "maintenance", "first server").await.status, 200);
    let before = files(dir.path());
    let lock_file = dir.path().join("steward.db.lock");
    let holder_pid = std::fs::read_to_string(&lock_file).unwrap();
    let output = serve_command(&steward.config, &steward.db).output().unwrap();
    let (code, _, stderr) = outcome(&output);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&lock_file.display().to_string()), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", holder_pid.trim())), "{stderr}");
    assert_eq!(files(dir.path()), before, "the refused start created nothing");
    assert_eq!(std::fs::read_to_string(&lock_file).unwrap(), holder_pid);
    // Readers keep working beside the server.
    assert_replay_agrees(&steward.db);
    assert_eq!(set_state(&api, NODE, "in_service", "still writing").await.status, 200);
    let db = steward.db.clone();
    assert!(steward.stop().success());
    assert!(stored_notes(&db).contains("still writing"));
    assert_replay_agrees(&db);
}

/// Runs `command` as the unprivileged `nobody` when the tests run as root (root writes any
/// file whatever its mode).
fn unprivileged(mut command: Command) -> Command {
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if !root {
        return command;
    }
    let mut wrapped = Command::new("setpriv");
    wrapped.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
    wrapped.arg(command.get_program()).args(command.get_args());
    command = wrapped;
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_database_is_refused_at_start_naming_the_path() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir();
    let steward = Steward::start(dir.path(), &fast_config("", "", ""));
    assert_eq!(set_state(&steward.api(), NODE, "maintenance", "acknowledged").await.status, 200);
    let (db, config) = (steward.db.clone(), steward.config.clone());
    assert!(steward.stop().success());
    let set_mode = |path: &Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    set_mode(dir.path(), 0o755);
    set_mode(&config, 0o644);
    set_mode(&db, 0o444);
    let before = files(dir.path());
    let output = unprivileged(serve_command(&config, &db)).output().unwrap();
    let (code, _, stderr) = outcome(&output);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&db.display().to_string()), "{stderr}");
    assert!(stderr.contains("not writable"), "{stderr}");
    assert_eq!(files(dir.path()), before, "the refused start created nothing");
    set_mode(&db, 0o644);
    assert!(stored_notes(&db).contains("acknowledged"));
    assert_replay_agrees(&db);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_size_limit_mid_run_fails_writes_with_503_and_loses_nothing() {
    let dir = temp_dir();
    let steward = Steward::start(dir.path(), &fast_config("", "", ""));
    let (db, config) = (steward.db.clone(), steward.config.clone());
    assert!(steward.stop().success());
    let largest = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .max()
        .unwrap();
    // dash counts `ulimit -f` in 512-byte blocks: room for a few commits past today's files.
    let blocks = (largest + 256 * 1024) / 512;
    let script = format!("ulimit -f {blocks}; exec \"$0\" serve --config \"$1\" --db \"$2\"");
    let mut command = Command::new("sh");
    command.arg("-c").arg(script).arg(BIN).arg(&config).arg(&db);
    let served = Served::start(command);
    let api = served.api();
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..2000 {
        let (to, note) = (if i % 2 == 0 { "maintenance" } else { "in_service" }, format!("w{i}"));
        let answer = set_state(&api, NODE, to, &note).await;
        match answer.status {
            200 => acknowledged.push(note),
            503 => {
                refused = Some(answer);
                break;
            }
            other => panic!("unexpected {other}: {answer:?}"),
        }
    }
    let refused = refused.expect("the file-size limit was never reached");
    assert!(refused.content_type.starts_with("application/problem+json"), "{refused:?}");
    assert!(refused.body["detail"].as_str().unwrap().contains("commit failed"), "{refused:?}");
    // While the limit refuses writes readiness names the store's cause; it may also be ready
    // again already: a checkpoint lets the WAL restart from its beginning, below the limit.
    let ready = api.get("/readyz").await;
    if ready.status != 200 {
        assert_eq!(ready.status, 503, "{ready:?}");
        let detail = ready.body["detail"].as_str().unwrap();
        assert!(detail.starts_with("store: ") || detail == "reloading", "{ready:?}");
    }
    let metrics = api.get("/metrics").await.body.as_str().unwrap().to_string();
    assert!(
        metrics.lines().any(|l| l.starts_with("steward_commit_failures_total{cause=\"disk")),
        "no disk failure counted:\n{metrics}"
    );
    assert_eq!(api.get("/healthz").await.status, 200, "the reducer still runs and answers");
    let log = served.log();
    let status = served.stop();
    assert!(status.code().is_some(), "killed by a signal ({status:?}); log:\n{log}");
    let notes = stored_notes(&db);
    let lost: Vec<&String> = acknowledged.iter().filter(|n| !notes.contains(*n)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert_replay_agrees(&db);
}

const CUSTOM_TABLES: &str = r#"
[phase_mapping.words.compute]
Frobnicating = "in_use"

[service_states]
initial = "in_service"
states = ["in_service", "maintenance", "repair"]
[service_states.transitions]
in_service = ["maintenance"]
maintenance = ["in_service", "repair"]
repair = ["maintenance"]
"#;

const SMALLER_TABLE: &str = r#"
[service_states]
initial = "in_service"
states = ["in_service", "maintenance"]
[service_states.transitions]
in_service = ["maintenance"]
maintenance = ["in_service"]
"#;

fn write_config(dir: &Path, name: &str, tables: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, fast_config("", "", tables)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_of_a_custom_table_database_needs_no_config() {
    let dir = temp_dir();
    let steward = Steward::start(dir.path(), &fast_config("", "", CUSTOM_TABLES));
    let api = steward.api();
    assert_eq!(set_state(&api, NODE, "maintenance", "m").await.status, 200);
    assert_eq!(set_state(&api, NODE, "repair", "r").await.status, 200);
    let observed = api
        .post(
            "/v1/observations",
            &json!([{"component_id": "rack-002-compute-01", "controller_state": "Frobnicating"}]),
        )
        .await;
    assert_eq!(observed.status, 200, "{observed:?}");
    let (db, custom) = (steward.db.clone(), steward.config.clone());
    assert!(steward.stop().success());
    assert_replay_agrees(&db);

    // A table without `repair` is refused while a component is in it, naming both.
    let smaller = write_config(dir.path(), "smaller.toml", SMALLER_TABLE);
    let output = serve_command(&smaller, &db).output().unwrap();
    let (code, _, stderr) = outcome(&output);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("repair") && stderr.contains(NODE), "{stderr}");

    // The admin command moves it first (audited), then the smaller table starts.
    let steward = Served::start(serve_command(&custom, &db));
    let forced = steward
        .api()
        .post(
            &format!("/v1/components/{NODE}/service-state/force"),
            &json!({"to": "in_service", "note": "repair retired"}),
        )
        .await;
    assert_eq!(forced.status, 200, "{forced:?}");
    assert!(steward.stop().success());
    let steward = Served::start(serve_command(&smaller, &db));
    let component = steward.api().ok(&format!("/v1/components/{NODE}")).await;
    assert_eq!(component["service_state"], "in_service");
    assert!(steward.stop().success());
    let notes = stored_notes(&db);
    assert!(["m", "r", "forced: repair retired"].iter().all(|n| notes.contains(*n)), "{notes:?}");
    assert_replay_agrees(&db);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_reload_exits_non_zero_with_the_cause_on_stderr() {
    let dir = temp_dir();
    std::fs::write(dir.path().join("steward.toml"), fast_config("", "", "")).unwrap();
    let (config, db) = (dir.path().join("steward.toml"), dir.path().join("steward.db"));
    let mut served = Served::start(serve_command(&config, &db));
    let api = served.api();
    assert_eq!(set_state(&api, NODE, "maintenance", "acknowledged").await.status, 200);
    // Another writer pulls a table from under the server: the next commit fails, and so does
    // reloading the state from the store.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.execute_batch("ALTER TABLE components RENAME TO components_away;").unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let url = format!("{}/v1/components/{NODE}/service-state", served.url);
    let _ = http.post(url).json(&json!({"to": "in_service"})).send().await;
    let status = wait_exit(&mut served.child, &served.log);
    let log = served.log();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(log.contains("the reducer stopped") && log.contains("components"), "log:\n{log}");
    conn.execute_batch("ALTER TABLE components_away RENAME TO components;").unwrap();
    drop(conn);
    assert!(stored_notes(&db).contains("acknowledged"));
    assert_replay_agrees(&db);
}
