//! A throwaway PostgreSQL cluster for tests: `initdb` + `pg_ctl` from the machine's server
//! binaries in a temp dir on a free loopback port, as the `postgres` user when running as root
//! (initdb refuses root). Without the binaries, [`PgCluster::start`] returns `None` after
//! printing why (the test then passes as skipped), unless `STEWARD_REQUIRE_TOOLS=1`, which
//! makes it panic instead.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster; stopped (immediately) and deleted on drop.
pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// The loopback port it listens on.
    pub port: u16,
    as_postgres: bool,
}

/// Where `initdb` and `pg_ctl` are: `pg_config --bindir`, then Debian's versioned dirs.
fn find_bindir() -> Option<PathBuf> {
    let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| has(d))
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PgCluster {
    /// Starts a fresh cluster (fsync off: tests measure nothing), or `None` (skipped) when the
    /// server binaries are missing.
    pub fn start() -> Option<PgCluster> {
        Self::start_with_fsync(false)
    }

    /// [`PgCluster::start`] with fsync on or off (benchmarks measure durable commits).
    pub fn start_with_fsync(fsync: bool) -> Option<PgCluster> {
        let Some(bin) = find_bindir() else {
            let message = "skipped: PostgreSQL server binaries not found \
                           (set STEWARD_REQUIRE_TOOLS=1 to fail instead)";
            if std::env::var("STEWARD_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
                panic!("{message}");
            }
            eprintln!("{message}");
            return None;
        };
        let dir = tempfile::Builder::new().prefix("steward-pg").tempdir().unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let status =
                Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status();
            assert!(status.unwrap().success(), "chown of the cluster dir to postgres");
        }
        let cluster = PgCluster { bin, dir, port: free_port(), as_postgres };
        cluster.initdb();
        cluster.pg_ctl_start_with(fsync);
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn initdb(&self) {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args(["-U", "steward", "-A", "trust", "--locale=C", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Starts (or restarts after [`PgCluster::stop`]) the server and waits until it accepts.
    pub fn pg_ctl_start(&self) {
        self.pg_ctl_start_with(false);
    }

    fn pg_ctl_start_with(&self, fsync: bool) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync={} -c max_connections=100",
            self.port,
            self.dir.path().display(),
            if fsync { "on" } else { "off" }
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-t", "60", "-l"])
            .arg(self.dir.path().join("server.log"))
            .args(["-o", &options, "start"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Stops the server (`mode`: `fast` or `immediate`).
    pub fn stop(&self, mode: &str) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-m", mode, "stop"])
            .output();
    }

    /// A URL for database `steward`'s owner on the `postgres` database (created on demand by
    /// [`PgCluster::database`]).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://steward@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a fresh database and returns its URL.
    pub fn database(&self, name: &str) -> String {
        let mut client = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).unwrap();
        client.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        self.url(name)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop("immediate");
    }
}
