//! The status page in a real browser: headless Chromium, driven over the Chrome DevTools Protocol
//! (a small client on a websocket), against a real `steward serve` with the sim Core.
//!
//! Without Chromium on PATH the tests print a skip notice and pass, unless
//! `STEWARD_REQUIRE_TOOLS=1` (set by `.ci/run`, which installs Debian's `chromium`). With
//! `STEWARD_UPDATE_SCREENSHOTS=1` the walk-through rewrites the README's screenshots in `docs/`.
//! The ignored test measures load and update time with 10,000 racks (figures in README.md):
//! `cargo test --release --test status_page -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod binary_support;

use binary_support::{Steward, fast_config, temp_dir};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Chromium on PATH, or `None` after printing why the test is skipped (or panicking when tools
/// are required).
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        assert!(
            std::env::var("STEWARD_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "chromium not on PATH and STEWARD_REQUIRE_TOOLS=1"
        );
        println!("skipped: chromium not on PATH (set STEWARD_REQUIRE_TOOLS=1 to fail instead)");
    }
    found
}

/// A headless Chromium process and a DevTools connection to one page.
struct Browser {
    child: Child,
    page: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Console errors and uncaught exceptions seen so far.
    errors: Vec<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn launch(binary: &Path, width: u32, height: u32) -> Browser {
        let profile = temp_dir();
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--hide-scrollbars",
            ])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let endpoint = devtools_endpoint(&mut child);
        let (mut browser, _) = tungstenite::connect(endpoint.as_str()).unwrap();
        let target = call(&mut browser, 1, "Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().unwrap().to_string();
        let _ = browser.close(None);
        let base = endpoint.split("/devtools/").next().unwrap();
        let (page, _) = tungstenite::connect(format!("{base}/devtools/page/{target}")).unwrap();
        if let MaybeTlsStream::Plain(stream) = page.get_ref() {
            stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        }
        let mut browser = Browser { child, page, next_id: 10, errors: vec![], _profile: profile };
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            browser.call(domain, json!({}));
        }
        browser
    }

    /// Sends a command and returns its result, recording console errors that arrive meanwhile.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.page.send(Message::text(message)).unwrap();
        loop {
            let Message::Text(text) = self.page.read().unwrap() else { continue };
            let reply: Value = serde_json::from_str(text.as_str()).unwrap();
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method} failed: {reply}");
                return reply["result"].clone();
            }
            self.record(&reply);
        }
    }

    fn record(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => {
                self.errors.push(params["exceptionDetails"].to_string());
            }
            Some("Runtime.consoleAPICalled") if params["type"] == "error" => {
                self.errors.push(params["args"].to_string());
            }
            Some("Log.entryAdded") if params["entry"]["level"] == "error" => {
                let entry = &params["entry"];
                self.errors.push(format!("{} ({})", entry["text"], entry["url"]));
            }
            _ => {}
        }
    }

    fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
    }

    /// Evaluates an expression in the page (awaiting promises) and returns its JSON value.
    fn eval(&mut self, expression: &str) -> Value {
        let params = json!({"expression": expression, "returnByValue": true, "awaitPromise": true});
        let result = self.call("Runtime.evaluate", params);
        assert!(result.get("exceptionDetails").is_none(), "{expression}: {result}");
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is truthy (a throw, say before the page has loaded, counts as
    /// not yet); returns its value.
    fn wait_for(&mut self, expression: &str, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(45);
        let guarded = format!(
            "(() => {{ try {{ return ({expression}); }} catch (e) {{ return null; }} }})()"
        );
        loop {
            let value = self.eval(&guarded);
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {expression}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let data = decode_base64(shot["data"].as_str().unwrap());
        std::fs::write(path, data).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-off command on a fresh connection (the browser endpoint).
fn call(
    socket: &mut WebSocket<MaybeTlsStream<TcpStream>>,
    id: u64,
    method: &str,
    params: Value,
) -> Value {
    let message = json!({"id": id, "method": method, "params": params}).to_string();
    socket.send(Message::text(message)).unwrap();
    loop {
        if let Message::Text(text) = socket.read().unwrap() {
            let reply: Value = serde_json::from_str(text.as_str()).unwrap();
            if reply["id"] == id {
                return reply["result"].clone();
            }
        }
    }
}

/// The `ws://` address Chromium prints once its DevTools server listens.
fn devtools_endpoint(child: &mut Child) -> String {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.split("DevTools listening on ").nth(1)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30)).expect("chromium printed no DevTools address")
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let digits: Vec<u8> = text.bytes().filter(|c| *c != b'=').map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let bits = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, d)| acc | (u32::from(*d) << (18 - 6 * i)));
        out.extend_from_slice(&bits.to_be_bytes()[1..chunk.len()]);
    }
    out
}

fn docs_dir() -> Option<PathBuf> {
    (std::env::var("STEWARD_UPDATE_SCREENSHOTS").as_deref() == Ok("1"))
        .then(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("docs"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn status_page_shows_the_fleet_and_follows_a_run_live() {
    let Some(chromium) = chromium() else { return };
    let dir = temp_dir();
    let steward = Steward::start(dir.path(), &fast_config("", "", ""));
    let api = steward.api();
    let rt = runtime();
    rt.block_on(api.wait_ready());
    let racks = rt.block_on(api.ok("/v1/racks"));
    let mut rack_ids: Vec<String> =
        racks.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    rack_ids.sort();

    let mut browser = Browser::launch(&chromium, 1400, 900);
    browser.navigate(&format!("{}/", steward.url));
    browser.wait_for("window.steward && window.steward.state.ready", "the page to load");
    browser.eval("window.__noReload = true");

    // A component taken out of service: its rack gets a badge, its page a history line.
    let components = rt.block_on(api.ok("/v1/components"));
    let component = components[0]["id"].as_str().unwrap().to_string();
    let change = json!({"to": "maintenance", "note": "swap PSU"});
    let set = rt.block_on(api.post(&format!("/v1/components/{component}/service-state"), &change));
    assert_eq!(set.status, 200, "{:?}", set.body);
    let rack = components[0]["rack_id"].as_str().unwrap().to_string();
    let badge = format!(
        "(window.steward.state.layout.cells.find(c => c.rack.id === '{rack}') || {{}}).outOfService"
    );
    assert_eq!(browser.wait_for(&badge, "the out-of-service badge"), json!(1));

    // The grid draws every rack of the inventory.
    let drawn = browser.eval("window.steward.drawnRackIds().slice().sort()");
    assert_eq!(drawn, json!(rack_ids));
    let grid = browser.eval("document.getElementById('grid').getAttribute('aria-label')");
    assert!(grid.as_str().unwrap().starts_with(&format!("{} racks", rack_ids.len())), "{grid}");

    // A run created through the API appears, and its progress moves without a reload; it then
    // pauses at its wave gate, and the page says why and what command advances it.
    let body = json!({"name": "fw-1.2.0", "operation": {"kind": "firmware_update", "version": "1.2.0"},
        "selector": {"all": true}, "policy": {"waves": {"count": [2, 4]}}});
    let run = rt.block_on(api.post("/v1/runs", &body));
    assert_eq!(run.status, 201, "{:?}", run.body);
    let id = run.body["id"].as_str().unwrap().to_string();
    let card = format!("document.querySelector('#runs [data-run=\"{id}\"]')");
    browser.wait_for(&card, "the new run to appear");
    let progress = format!("{card}.querySelector('.progress').textContent");
    browser.wait_for(&format!("{progress} === '2/6 done'"), "wave 1 to complete on the page");
    let paused = rt.block_on(api.wait_run(&id, "paused", Some("wave_gate")));
    let note = browser.wait_for(
        &format!(
            "{card}.dataset.status === 'paused' && {card}.querySelector('.paused-note').textContent"
        ),
        "the paused run's reason",
    );
    let note = note.as_str().unwrap();
    assert!(note.contains(&format!("steward run advance {id}")), "{note}");
    let reason = paused["status_message"].as_str().filter(|m| !m.is_empty()).unwrap_or("wave gate");
    assert!(note.contains(reason), "{note} should show {reason}");
    if let Some(docs) = docs_dir() {
        browser.screenshot(&docs.join("status-fleet.png"));
    }

    // The run's detail lists every target with its status and the hold of each waiting one.
    browser.eval(&format!("location.hash = '#/runs/{id}'"));
    let rows =
        browser.wait_for("document.querySelectorAll('#run-detail tbody tr').length", "targets");
    assert_eq!(rows, json!(rack_ids.len()));
    let targets = rt.block_on(api.ok(&format!("/v1/runs/{id}/targets")));
    let held: Vec<Value> = targets
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["hold"].is_object())
        .map(|t| json!([t["rack_id"], t["hold"]["gate"], t["hold"]["message"]]))
        .collect();
    assert_eq!(held.len(), 4, "the four targets of wave 2 wait: {targets}");
    let shown = browser.eval("[...document.querySelectorAll('#run-detail tbody tr')].filter(r => r.cells[4].textContent).map(r => [r.cells[0].textContent, r.cells[4].textContent, r.cells[5].textContent])");
    assert_eq!(shown, json!(held), "the page shows each waiting target's hold");
    if let Some(docs) = docs_dir() {
        browser.screenshot(&docs.join("status-run.png"));
    }

    browser.eval("location.hash = '#/'");
    let advanced = rt.block_on(api.post(&format!("/v1/runs/{id}/advance"), &json!({})));
    assert_eq!(advanced.status, 200, "{:?}", advanced.body);
    browser
        .wait_for(&format!("{card} && {progress} === '6/6 done'"), "the run to finish on the page");
    assert_eq!(browser.eval("window.__noReload"), json!(true), "the page reloaded");

    // A component page shows its service-state history.
    browser.eval(&format!("location.hash = '#/components/{component}'"));
    let history = browser.wait_for(
        "document.querySelector('#history tbody') && document.getElementById('history').textContent",
        "the component's history",
    );
    let history = history.as_str().unwrap();
    assert!(history.contains("maintenance") && history.contains("swap PSU"), "{history}");

    assert!(browser.errors.is_empty(), "console errors: {:#?}", browser.errors);
    drop(browser);
    assert!(steward.stop().success());
}

#[test]
fn status_page_asks_for_a_token_and_keeps_it_for_the_session() {
    let Some(chromium) = chromium() else { return };
    let dir = temp_dir();
    let tokens = format!(
        "[[tokens]]\nname = \"watcher\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"look-only"))
    );
    let steward = Steward::start(dir.path(), &fast_config("", "", &tokens));
    let mut browser = Browser::launch(&chromium, 1200, 800);
    browser.navigate(&format!("{}/", steward.url));
    browser.wait_for("!document.getElementById('login').hidden", "the token prompt");
    browser.eval(
        "document.getElementById('token').value = 'look-only';
         document.getElementById('login-form').requestSubmit()",
    );
    browser.wait_for("window.steward.state.ready", "the page to load with the token");
    let drawn = browser.eval("window.steward.drawnRackIds().length");
    assert_eq!(drawn, json!(6));
    browser.wait_for("document.getElementById('conn').textContent === 'live'", "the event stream");
    let stored = browser.eval("sessionStorage.getItem('steward.token')");
    assert_eq!(stored, json!("look-only"));
    let url = browser.eval("location.href");
    assert!(!url.as_str().unwrap().contains("look-only"), "token in the URL: {url}");
    // The refused first attempt (401) is the only error the browser may log.
    browser.errors.retain(|e| !e.contains("401"));
    assert!(browser.errors.is_empty(), "console errors: {:#?}", browser.errors);
    assert!(!steward.log().contains("look-only"), "the token was logged");
}

/// An inventory of `racks` racks in rows of 100, four compute trays each.
fn big_inventory(first: usize, racks: usize) -> Value {
    let racks: Vec<Value> = (first..first + racks)
        .map(|n| {
            let components: Vec<Value> = (1..=4)
                .map(|c| json!({"id": format!("big-{n:05}-c{c}"), "kind": "compute", "name": format!("tray {c}")}))
                .collect();
            json!({"id": format!("big-{n:05}"), "name": format!("big-{n:05}"),
                   "location": {"row": format!("r{:03}", n / 100)}, "components": components})
        })
        .collect();
    json!({ "racks": racks })
}

fn observations(first: usize, racks: usize, state: &str) -> Value {
    let list: Vec<Value> = (first..first + racks)
        .flat_map(|n| (1..=4).map(move |c| (n, c)))
        .map(
            |(n, c)| json!({"component_id": format!("big-{n:05}-c{c}"), "controller_state": state}),
        )
        .collect();
    Value::Array(list)
}

/// Measures the page with 10,000 imported racks: time to first full grid, and time from an
/// observation posted to the API until the page has redrawn the rack. Prints the figures the
/// README quotes; asserts only that every rack is drawn and every change arrives.
#[test]
#[ignore = "measurement: cargo test --release --test status_page -- --ignored --nocapture"]
fn status_page_with_ten_thousand_racks() {
    let Some(chromium) = chromium() else { return };
    let dir = temp_dir();
    let steward = Steward::start(dir.path(), &fast_config("", "", ""));
    let api = steward.api();
    let rt = runtime();
    for chunk in 0..10 {
        let imported = rt.block_on(api.post("/v1/inventory", &big_inventory(chunk * 1000, 1000)));
        assert_eq!(imported.status, 200, "{:?}", imported.body);
        let observed =
            rt.block_on(api.post("/v1/observations", &observations(chunk * 1000, 1000, "Ready")));
        assert_eq!(observed.status, 200, "{:?}", observed.body);
    }
    let total = rt.block_on(api.ok("/v1/racks")).as_array().unwrap().len();
    let mut browser = Browser::launch(&chromium, 1600, 1000);
    let mut loads = vec![];
    for _ in 0..3 {
        let started = Instant::now();
        browser.navigate(&format!("{}/", steward.url));
        browser.wait_for("window.steward && window.steward.state.ready", "the page to load");
        loads.push((
            started.elapsed().as_millis(),
            browser.eval("window.steward.state.stats.loadMs"),
        ));
    }
    assert_eq!(browser.eval("window.steward.drawnRackIds().length"), json!(total));
    let nodes = browser.eval("document.getElementsByTagName('*').length");
    browser.wait_for("document.getElementById('conn').textContent === 'live'", "the event stream");
    let mut updates = vec![];
    for n in [17usize, 4242, 9999, 123, 5000] {
        let state = if updates.len() % 2 == 0 { "Failed" } else { "HostInitializing" };
        let phase = if state == "Failed" { "error" } else { "initializing" };
        let cell = format!(
            "window.steward.state.layout.cells.find(c => c.rack.id === 'big-{n:05}').phase === '{phase}'"
        );
        let started = Instant::now();
        let posted = rt.block_on(api.post("/v1/observations", &observations(n, 1, state)));
        assert_eq!(posted.status, 200);
        browser.wait_for(&cell, "the rack's new phase");
        updates.push((
            started.elapsed().as_millis(),
            browser.eval("window.steward.state.stats.lastUpdateMs"),
        ));
    }
    if let Some(docs) = docs_dir() {
        browser.screenshot(&docs.join("status-10k.png"));
    }
    println!("racks: {total}; DOM elements: {nodes}");
    println!("load (navigate → grid drawn, ms; page's own count from script start): {loads:?}");
    println!(
        "update (POST observation → rack redrawn, ms; page's own event → redraw): {updates:?}"
    );
    assert!(browser.errors.is_empty(), "console errors: {:#?}", browser.errors);
}
