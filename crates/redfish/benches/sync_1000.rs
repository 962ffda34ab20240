//! Benchmark: one full observation sync of 1,000 systems over 10 sushy-emulators through the
//! adapter (`RedfishCore::observe`), beside a plain bounded-concurrency reqwest client fetching
//! the same resources (each Systems collection, then every system) in the same run.
//!
//! Needs `sushy-emulator` on PATH (skips with a message otherwise). Run:
//! `cargo bench -p steward-redfish --bench sync_1000`. Prints seconds per sync, requests/s and the
//! ratio adapter/plain; no assertion on speed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use steward_redfish::{RedfishConfig, RedfishCore};
use steward_runtime::clock::{SharedClock, SystemClock};
use steward_runtime::core::Core;
use steward_runtime::store::StoreOptions;

const EMULATORS: usize = 10;
const PER_EMULATOR: usize = 100;
const ROUNDS: usize = 3;
const MAX_IN_FLIGHT: usize = 32;

fn sushy() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("sushy-emulator")).find(|p| p.is_file())
}

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_emulators(dir: &std::path::Path, exe: &PathBuf) -> (Killed, Vec<String>) {
    let mut children = Vec::new();
    let mut urls = Vec::new();
    for e in 0..EMULATORS {
        let sub = dir.join(format!("bmc{e}"));
        std::fs::create_dir_all(&sub).unwrap();
        let systems: Vec<String> = (0..PER_EMULATOR)
            .map(|n| {
                format!(
                    "{{\"uuid\": \"{e:08x}-0000-4000-8000-{n:012x}\", \"name\": \"s{e}-{n}\", \"power_state\": \"On\", \"nics\": []}}"
                )
            })
            .collect();
        let config = sub.join("emulator.py");
        std::fs::write(
            &config,
            format!(
                "SUSHY_EMULATOR_FAKE_SYSTEMS = [{}]\nSUSHY_EMULATOR_STATE_DIR = {:?}\n",
                systems.join(", "),
                sub.join("state").display().to_string()
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(exe)
            .arg("--config")
            .arg(&config)
            .args(["--fake", "-i", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        children.push(child);
        urls.push(format!("http://127.0.0.1:{port}"));
    }
    (Killed(children), urls)
}

async fn wait_up(client: &reqwest::Client, urls: &[String]) {
    for url in urls {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = client
                .get(format!("{url}/redfish/v1/Systems"))
                .basic_auth("admin", Some("password"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "emulator {url} did not come up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The plain client: each collection, then every member, at most MAX_IN_FLIGHT at once.
async fn plain_sync(client: &reqwest::Client, urls: &[String]) -> usize {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut members = Vec::new();
    for url in urls {
        let body: serde_json::Value = client
            .get(format!("{url}/redfish/v1/Systems"))
            .basic_auth("admin", Some("password"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for member in body["Members"].as_array().unwrap() {
            members.push(format!("{url}{}", member["@odata.id"].as_str().unwrap()));
        }
    }
    let mut tasks = Vec::new();
    for member in &members {
        let (client, permits, member) = (client.clone(), permits.clone(), member.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            let response =
                client.get(member).basic_auth("admin", Some("password")).send().await.unwrap();
            response.bytes().await.unwrap().len()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    urls.len() + members.len()
}

fn main() {
    let Some(exe) = sushy() else {
        eprintln!("skipped: sushy-emulator not on PATH");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let (_emulators, urls) = start_emulators(dir.path(), &exe);
        let client = reqwest::Client::new();
        wait_up(&client, &urls).await;
        let password = dir.path().join("pw");
        std::fs::write(&password, "password").unwrap();
        let mut text = format!(
            "username = \"admin\"\npassword_file = {:?}\nmax_in_flight = {MAX_IN_FLIGHT}\ntimeout_ms = 30000\n",
            password.display().to_string()
        );
        for (i, url) in urls.iter().enumerate() {
            text.push_str(&format!("[[endpoints]]\nurl = \"{url}\"\nrack = \"rack-{i:03}\"\n"));
        }
        let settings =
            RedfishConfig::from_table(toml::from_str(&text).unwrap()).unwrap().validate().unwrap();
        let clock: SharedClock = Arc::new(SystemClock);
        let db = dir.path().join("steward.db");
        let core =
            RedfishCore::start(settings, &db, &StoreOptions::default(), clock).await.unwrap();
        let systems = EMULATORS * PER_EMULATOR;
        let requests = EMULATORS + systems;
        let (mut adapter, mut plain) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let observations = core.observe().await.unwrap();
            adapter += started.elapsed();
            assert_eq!(observations.len(), systems);
            let started = Instant::now();
            assert_eq!(plain_sync(&client, &urls).await, requests);
            plain += started.elapsed();
        }
        let per = |d: Duration| d.as_secs_f64() / ROUNDS as f64;
        println!(
            "full sync of {systems} systems over {EMULATORS} emulators ({requests} GETs, max_in_flight {MAX_IN_FLIGHT}, {ROUNDS} rounds):"
        );
        println!(
            "  adapter: {:.2} s/sync, {:.0} requests/s",
            per(adapter),
            requests as f64 / per(adapter)
        );
        println!(
            "  plain reqwest: {:.2} s/sync, {:.0} requests/s",
            per(plain),
            requests as f64 / per(plain)
        );
        println!("  ratio adapter/plain: {:.2}", per(adapter) / per(plain));
    });
}
