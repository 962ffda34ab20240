//! Test fixture for the Redfish adapter: sushy-emulator processes started by the tests (free
//! loopback ports, each with its own state directory), their request logs, and the rule for a
//! machine without the tool (skip with a clear message, or fail with STEWARD_REQUIRE_TOOLS=1),
//! and https emulators (`--ssl-certificate`/`--ssl-key`) for the TLS tests.
//! Nothing is installed here: `sushy-emulator` must be on PATH (`.ci/run` puts a venv there).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The emulator's executable on PATH, if any.
pub fn sushy() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("sushy-emulator")).find(|p| p.is_file())
}

/// `true` when the emulator is available; otherwise prints why the test is skipped (or panics
/// when STEWARD_REQUIRE_TOOLS=1).
pub fn available() -> bool {
    if sushy().is_some() {
        return true;
    }
    if std::env::var("STEWARD_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("sushy-emulator not on PATH and STEWARD_REQUIRE_TOOLS=1");
    }
    eprintln!("skipped: sushy-emulator not on PATH (set STEWARD_REQUIRE_TOOLS=1 to fail instead)");
    false
}

/// An htpasswd file for admin / password (bcrypt cost 4), written by the emulator's own Python.
fn write_htpasswd(path: &Path) {
    let python = sushy().unwrap().with_file_name("python3");
    let script = "import bcrypt,sys; h=bcrypt.hashpw(b'password', bcrypt.gensalt(4)).decode(); \
                  open(sys.argv[1],'w').write('admin:'+h+'\\n')";
    let status = Command::new(python).args(["-c", script]).arg(path).status().unwrap();
    assert!(status.success(), "could not write {}", path.display());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// How an emulator is started beyond its systems.
#[derive(Default)]
struct Options<'a> {
    /// With `tests/fixtures/sushy_versions.py`.
    versioned: bool,
    /// With basic auth (admin / password).
    auth: bool,
    /// https with (certificate, key).
    tls: Option<(&'a Path, &'a Path)>,
    /// A fixed port.
    port: Option<u16>,
}

/// One running emulator.
pub struct Emulator {
    child: Option<Child>,
    /// Base URL.
    pub url: String,
    /// System UUIDs (the Redfish `Id`s).
    pub uuids: Vec<String>,
    log: PathBuf,
}

impl Emulator {
    /// Starts an emulator in `dir` with `systems` fake systems in `power` state.
    pub fn start(dir: &Path, tag: u32, systems: u32, power: &str) -> Emulator {
        Self::start_with(dir, tag, systems, power, false, false)
    }

    /// Like [`Emulator::start`], with `tests/fixtures/sushy_versions.py` (a fake driver that keeps
    /// firmware versions) when `versioned`, and basic auth (admin / password, bcrypt cost 4) when
    /// `auth`.
    pub fn start_with(
        dir: &Path,
        tag: u32,
        systems: u32,
        power: &str,
        versioned: bool,
        auth: bool,
    ) -> Emulator {
        let options = Options { versioned, auth, ..Options::default() };
        Self::start_full(dir, tag, systems, power, options)
    }

    /// An emulator serving https with `tls` = (certificate PEM file, key PEM file), on `port`
    /// when given (a BMC restarted with another certificate), else on a free port.
    pub fn start_tls(
        dir: &Path,
        tag: u32,
        systems: u32,
        tls: (&Path, &Path),
        port: Option<u16>,
    ) -> Emulator {
        let options = Options { tls: Some(tls), port, ..Options::default() };
        Self::start_full(dir, tag, systems, "On", options)
    }

    fn start_full(dir: &Path, tag: u32, systems: u32, power: &str, options: Options) -> Emulator {
        let Options { versioned, auth, tls, port } = options;
        std::fs::create_dir_all(dir).unwrap();
        let uuids: Vec<String> =
            (1..=systems).map(|n| format!("{tag:08x}-0000-4000-8000-{n:012x}")).collect();
        let entries: Vec<String> = uuids
            .iter()
            .enumerate()
            .map(|(i, u)| {
                format!("{{\"uuid\": \"{u}\", \"name\": \"sys-{tag}-{i}\", \"power_state\": \"{power}\", \"nics\": []}}")
            })
            .collect();
        let config = dir.join("emulator.py");
        let mut text = format!(
            "SUSHY_EMULATOR_FAKE_SYSTEMS = [{}]\nSUSHY_EMULATOR_STATE_DIR = {:?}\n",
            entries.join(", "),
            dir.join("state").display().to_string()
        );
        if auth {
            let htpasswd = dir.join("htpasswd");
            write_htpasswd(&htpasswd);
            text.push_str(&format!(
                "SUSHY_EMULATOR_AUTH_FILE = {:?}\n",
                htpasswd.display().to_string()
            ));
        }
        std::fs::write(&config, text).unwrap();
        let port = port.unwrap_or_else(free_port);
        let log = dir.join("requests.log");
        let exe = sushy().expect("sushy-emulator on PATH");
        let mut command = if versioned {
            // The emulator's own interpreter (the venv's python3 beside it) runs the fixture.
            let python = exe.with_file_name("python3");
            let fixture =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sushy_versions.py");
            let mut command = Command::new(python);
            command.arg(fixture);
            command
        } else {
            Command::new(exe)
        };
        if let Some((cert, key)) = tls {
            command.arg("--ssl-certificate").arg(cert).arg("--ssl-key").arg(key);
        }
        let child = command
            .arg("--config")
            .arg(&config)
            .args(["--fake", "-i", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        let emulator = Emulator { child: Some(child), url, uuids, log };
        if tls.is_some() {
            emulator.wait_listening();
        } else {
            emulator.wait_up();
        }
        emulator
    }

    /// Waits until the port accepts connections (an https emulator, which the plain-HTTP
    /// helpers here cannot read).
    fn wait_listening(&self) {
        let addr = self.url.trim_start_matches("https://");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("sushy-emulator at {} did not come up", self.url);
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_default()
    }

    /// How many requests for `path` (any method) the request log shows.
    pub fn requests(&self, path: &str) -> usize {
        let needle = format!(" {path} HTTP");
        std::fs::read_to_string(&self.log).unwrap_or_default().matches(&needle).count()
    }

    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.get_json("/redfish/v1/Systems").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("sushy-emulator at {} did not come up", self.url);
    }

    /// GETs a resource with curl-free std networking (plain HTTP/1.0).
    pub fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Basic YWRtaW46cGFzc3dvcmQ=\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        if !text.starts_with("HTTP/1.1 200") && !text.starts_with("HTTP/1.0 200") {
            return None;
        }
        serde_json::from_str(text.split("\r\n\r\n").nth(1)?).ok()
    }

    /// A system's PowerState as the emulator reports it.
    pub fn power_state(&self, uuid: &str) -> Option<String> {
        let system = self.get_json(&format!("/redfish/v1/Systems/{uuid}"))?;
        system["PowerState"].as_str().map(str::to_string)
    }

    /// How many Reset POSTs the emulator's request log shows for `uuid`.
    pub fn resets(&self, uuid: &str) -> usize {
        let needle = format!("POST /redfish/v1/Systems/{uuid}/Actions/ComputerSystem.Reset");
        std::fs::read_to_string(&self.log).unwrap_or_default().matches(&needle).count()
    }

    /// How many SimpleUpdate POSTs the request log shows.
    pub fn simple_updates(&self) -> usize {
        let needle = "POST /redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate";
        std::fs::read_to_string(&self.log).unwrap_or_default().matches(needle).count()
    }

    /// A system's BiosVersion.
    pub fn bios_version(&self, uuid: &str) -> Option<String> {
        let system = self.get_json(&format!("/redfish/v1/Systems/{uuid}"))?;
        system["BiosVersion"].as_str().map(str::to_string)
    }

    /// The process id (for SIGSTOP/SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// Kills the emulator (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A steward config driving `emulators`, one rack each (`rack-001`, ...).
pub fn steward_config(dir: &Path, emulators: &[&Emulator], extra: &str) -> String {
    let password = dir.join("bmc-password");
    std::fs::write(&password, "password\n").unwrap();
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\nsynchronous = \"normal\"\nplan_interval_ms = 100\n\
         sync_interval_ms = 500\ntask_poll_interval_ms = 200\n{extra}\n[core]\nadapter = \"redfish\"\n\
         [core.redfish]\nusername = \"admin\"\npassword_file = {:?}\ntimeout_ms = 2000\n\
         power_settle_seconds = 60\nfirmware_image_uri = \"http://127.0.0.1:9/fw/{{kind}}/{{version}}.bin\"\n",
        password.display().to_string()
    );
    for (i, emulator) in emulators.iter().enumerate() {
        text.push_str(&format!(
            "[[core.redfish.endpoints]]\nurl = \"{}\"\nrack = \"rack-{:03}\"\n",
            emulator.url,
            i + 1
        ));
    }
    text
}
