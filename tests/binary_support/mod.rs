//! Shared helpers of the black-box tests: start the real `steward` binary on a free loopback
//! port with a temp database and a fast config, talk to it over HTTP, run CLI commands, stop it
//! with SIGTERM.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The steward binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_steward");

/// The repository's examples directory.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// A fast config: short intervals, a small sim fleet (6 racks in 2 rows, 8 components each).
/// `top` holds top-level keys, `tables` extra tables (tokens, webhooks, sim failure rates...).
pub fn fast_config(top: &str, sim: &str, tables: &str) -> String {
    let latency =
        if sim.contains("latency") { "" } else { "latency = { min_ms = 100, max_ms = 250 }" };
    format!(
        "listen = \"127.0.0.1:0\"\nsynchronous = \"normal\"\nplan_interval_ms = 50\n\
         sync_interval_ms = 100\ntask_poll_interval_ms = 50\n{top}\n\
         [core.sim]\nracks = 6\nrows = 2\n{latency}\n{sim}\n\
         {tables}\n"
    )
}

/// A running `steward serve`.
pub struct Steward {
    child: Option<Child>,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The directory holding the database and config.
    pub dir: PathBuf,
    /// The database file.
    pub db: PathBuf,
    /// The config file.
    pub config: PathBuf,
    log: Arc<Mutex<String>>,
}

impl Steward {
    /// Writes `config` into `dir` and starts `steward serve` on it.
    pub fn start(dir: &Path, config: &str) -> Steward {
        let config_path = dir.join("steward.toml");
        std::fs::write(&config_path, config).unwrap();
        let db = dir.join("steward.db");
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config_path)
            .arg("--db")
            .arg(&db)
            .env("STEWARD_LOG", "info")
            .env_remove("STEWARD_TOKEN")
            .env_remove("STEWARD_SERVER")
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
                if let Some(rest) = line.split("serving on ").nth(1) {
                    let url = rest.split_whitespace().next().unwrap_or_default().to_string();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url);
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("steward did not start; log:\n{}", log.lock().unwrap());
            }
        };
        Steward { child: Some(child), url, dir: dir.to_path_buf(), db, config: config_path, log }
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let status =
            Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("steward did not stop after SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An HTTP client without a token.
    pub fn api(&self) -> Api {
        Api::new(&self.url, None)
    }

    /// An HTTP client with a token.
    pub fn api_with(&self, token: &str) -> Api {
        Api::new(&self.url, Some(token.to_string()))
    }

    /// Runs a CLI command against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.url, args)
    }
}

impl Drop for Steward {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `steward --server URL ARGS...`.
pub fn cli(url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--server")
        .arg(url)
        .args(args)
        .env_remove("STEWARD_TOKEN")
        .env_remove("STEWARD_SERVER")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Exit code, stdout and stderr of a CLI run.
pub fn outcome(output: &Output) -> (i32, String, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// A small JSON-over-HTTP client.
#[derive(Clone)]
pub struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// One answer: status, content type and JSON body (or the text as a JSON string).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Content-Type header.
    pub content_type: String,
    /// Body as JSON (a string value when it is not JSON).
    pub body: Value,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Api {
    /// A client for `base`.
    pub fn new(base: &str, token: Option<String>) -> Api {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        Api { base: base.to_string(), token, http }
    }

    /// Sends a request built with [`Api::request`] (with the token, if any).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.unwrap_or_else(|e| panic!("request failed: {e:?}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, content_type, body, headers }
    }

    /// A request builder for `path` on this server, for headers the helpers do not set.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{}", self.base, path))
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{}", self.base, path))).await
    }

    /// POST a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(self.http.post(format!("{}{}", self.base, path)).json(body)).await
    }

    /// POST raw bytes as JSON.
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> Answer {
        let request = self
            .http
            .post(format!("{}{}", self.base, path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(request).await
    }

    /// GET, asserting 200, returning the body.
    pub async fn ok(&self, path: &str) -> Value {
        let answer = self.get(path).await;
        assert_eq!(answer.status, 200, "GET {path}: {answer:?}");
        answer.body
    }

    /// Polls GET `path` until `done(body)` or `timeout`; returns the last body.
    pub async fn wait_for(
        &self,
        path: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let body = self.ok(path).await;
            if done(&body) {
                return body;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting on {path}; last answer: {body:#}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every component is observed ready.
    pub async fn wait_ready(&self) -> usize {
        let all = self
            .wait_for("/v1/components", Duration::from_secs(20), |body| {
                let items = body.as_array().unwrap();
                !items.is_empty()
                    && items
                        .iter()
                        .all(|c| c.pointer("/status/phase") == Some(&Value::from("ready")))
            })
            .await;
        all.as_array().unwrap().len()
    }

    /// Waits until exactly `count` components are listed, each `ready` (an adapter may import
    /// systems a sync apart, so "all listed are ready" alone can hold too early); returns it.
    pub async fn wait_ready_count(&self, count: usize) -> usize {
        let all = self
            .wait_for("/v1/components", Duration::from_secs(60), |body| {
                let items = body.as_array().unwrap();
                items.len() == count
                    && items
                        .iter()
                        .all(|c| c.pointer("/status/phase") == Some(&Value::from("ready")))
            })
            .await;
        all.as_array().unwrap().len()
    }

    /// Waits until a run has `status` (and `reason`, if given).
    pub async fn wait_run(&self, id: &str, status: &str, reason: Option<&str>) -> Value {
        self.wait_for(&format!("/v1/runs/{id}"), Duration::from_secs(30), |run| {
            run["status"] == status && reason.is_none_or(|r| run["status_reason"] == r)
        })
        .await
    }
}

/// A fresh temp directory.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// POSTs `size` bytes of spaces over a raw connection (writing on another thread, ignoring write
/// errors because the server may answer and close early) and returns the answer's status line
/// and headers.
pub fn raw_oversized_post(url: &str, path: &str, size: usize) -> String {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {size}\r\nConnection: close\r\n\r\n"
    );
    let writer = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < size {
            let n = chunk.len().min(size - sent);
            if writer.write_all(&chunk[..n]).is_err() {
                break;
            }
            sent += n;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    String::from_utf8_lossy(&answer).to_string()
}
