//! `StoreError`: every way a store (SQLite or PostgreSQL) can fail, with messages naming the file, table or row.

use std::path::PathBuf;

/// A store failure. [`StoreError::is_retryable`] tells transient lock contention apart from
/// failures that will happen again.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file was written by a newer Steward: its schema version is above what this binary knows.
    /// The file is left untouched.
    #[error(
        "database schema version {found} is newer than this binary supports ({supported}); \
         upgrade steward or use another database file"
    )]
    SchemaTooNew {
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// The newest schema version this binary knows.
        supported: i64,
    },
    /// The file has an older schema and was opened read-only, so it could not be migrated.
    #[error(
        "database schema version {found} is older than this binary's ({supported}); \
         open it once with `steward serve` to migrate it"
    )]
    SchemaTooOld {
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// The schema version this binary reads.
        supported: i64,
    },
    /// The file is not an SQLite database, or SQLite found it corrupt. The file is left untouched.
    #[error("{}: not a usable Steward database: {message}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// SQLite's explanation.
        message: String,
    },
    /// The file could not be opened at all (missing directory, permissions, ...).
    #[error("{}: cannot open database: {source}", .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A schema migration failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// An SQLite statement failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON column or timestamp could not be decoded.
    #[error("cannot decode {what}: {message}")]
    Decode {
        /// Table, row and column, e.g. `targets row run-1:r3 column data`.
        what: String,
        /// The decoder's explanation.
        message: String,
    },
    /// A value could not be encoded for storage (JSON encoding, or an integer out of range).
    #[error("cannot encode {what}: {message}")]
    Encode {
        /// What was being encoded, e.g. `event seq 12`.
        what: String,
        /// Why it failed.
        message: String,
    },
    /// The database file (or SQLite's view of it) does not take writes.
    #[error("{}: database is not writable: {reason}", .path.display())]
    NotWritable {
        /// The file.
        path: PathBuf,
        /// Why (the operating system's or SQLite's explanation).
        reason: String,
    },
    /// A PostgreSQL call failed (connection, statement, migration). The message never carries
    /// the connection URL's password.
    #[error("postgres: {message}")]
    Postgres {
        /// What failed and why.
        message: String,
        /// Whether retrying later may succeed (a lost connection, a serialization failure).
        retryable: bool,
    },
    /// This process's leadership epoch is no longer the database's: another instance took
    /// over, so the commit was refused and nothing was written.
    #[error("fenced: this instance leads epoch {ours} but the database is at epoch {current}")]
    Fenced {
        /// The epoch this process took.
        ours: i64,
        /// The epoch the database holds.
        current: i64,
    },
    /// An outbox row named by id does not exist.
    #[error("outbox row {id} not found")]
    OutboxRowNotFound {
        /// The row id.
        id: i64,
    },
}

impl StoreError {
    /// Whether retrying the same operation later may succeed: the database was busy or locked
    /// by another connection, or the operation was interrupted.
    pub fn is_retryable(&self) -> bool {
        if let StoreError::Postgres { retryable, .. } = self {
            return *retryable;
        }
        matches!(
            self.sqlite_code(),
            Some(
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::OperationInterrupted
            )
        )
    }

    fn sqlite_code(&self) -> Option<rusqlite::ErrorCode> {
        match self {
            StoreError::Sqlite(err) | StoreError::Open { source: err, .. } => {
                err.sqlite_error_code()
            }
            StoreError::Migration(rusqlite_migration::Error::RusqliteError { err, .. }) => {
                err.sqlite_error_code()
            }
            _ => None,
        }
    }

    /// A short, stable name of the cause, for metrics labels and readiness reasons:
    /// `database locked`, `disk full`, `read-only`, `disk I/O error`, `corrupt`, `interrupted`,
    /// `encode` or `other`.
    pub fn cause(&self) -> &'static str {
        use rusqlite::ErrorCode as Code;
        match self {
            StoreError::NotWritable { .. } => return "read-only",
            StoreError::Corrupt { .. } => return "corrupt",
            StoreError::Encode { .. } => return "encode",
            StoreError::Postgres { .. } => return "postgres",
            StoreError::Fenced { .. } => return "fenced",
            _ => {}
        }
        match self.sqlite_code() {
            Some(Code::DatabaseBusy | Code::DatabaseLocked) => "database locked",
            Some(Code::DiskFull) => "disk full",
            Some(Code::ReadOnly | Code::PermissionDenied | Code::CannotOpen) => "read-only",
            Some(Code::SystemIoFailure) => "disk I/O error",
            Some(Code::DatabaseCorrupt | Code::NotADatabase) => "corrupt",
            Some(Code::OperationInterrupted) => "interrupted",
            _ => "other",
        }
    }
}

impl StoreError {
    /// Whether the commit was refused because another instance leads now.
    pub fn is_fenced(&self) -> bool {
        matches!(self, StoreError::Fenced { .. })
    }
}

/// Whether an SQLite error means "this file is not a (sound) database".
pub(crate) fn is_corruption(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}
