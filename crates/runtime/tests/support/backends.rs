//! Runs one store test on every backend: a fresh SQLite file, or a fresh database in a
//! throwaway PostgreSQL cluster (feature `postgres`; skipped when the server binaries are
//! missing, see `pg_cluster.rs`).
#![allow(dead_code, clippy::unwrap_used)]

use steward_runtime::store::{Backend, Store, StoreOptions};

/// Where a test's store lives; [`Fixture::open`] opens a new connection to it each time.
pub enum Fixture {
    /// An SQLite file in a temp dir.
    Sqlite(tempfile::TempDir),
    /// A PostgreSQL database URL.
    #[cfg(feature = "postgres")]
    Postgres(String),
}

impl Fixture {
    /// A fresh SQLite file.
    pub fn sqlite() -> Fixture {
        Fixture::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A new connection (SQLite: the file reopened; PostgreSQL: a new, unfenced session).
    pub fn open(&self) -> Box<dyn Backend> {
        match self {
            Fixture::Sqlite(dir) => Box::new(
                Store::open(&dir.path().join("steward.db"), &StoreOptions::default()).unwrap(),
            ),
            #[cfg(feature = "postgres")]
            Fixture::Postgres(url) => {
                Box::new(steward_runtime::store::postgres::PgStore::open(url, None).unwrap())
            }
        }
    }
}

/// A test case over a fixture.
pub type Case = (&'static str, fn(&Fixture));

/// Runs every case on its own database of one throwaway PostgreSQL cluster.
#[cfg(feature = "postgres")]
pub fn on_postgres(cases: &[Case]) {
    let Some(cluster) = super::pg_cluster::PgCluster::start() else { return };
    for (index, (name, case)) in cases.iter().enumerate() {
        eprintln!("postgres: {name}");
        case(&Fixture::Postgres(cluster.database(&format!("case_{index}"))));
    }
}
