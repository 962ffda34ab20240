//! One writer per database: [`DbLock`], an exclusive OS lock (`flock` through std's
//! `File::try_lock`) on a lock file beside the database, held for the life of the process and
//! released by the kernel when it dies; and [`check_writable`], which refuses a database file
//! the process cannot write before anything opens it.
//!
//! A refused start leaves no trace: the lock file is only ever created by a process that then
//! holds it, so when the lock is refused the file already exists (its holder made it) and is
//! only read, for the holder's process id. The file is never deleted: deleting a lock file on
//! exit lets a waiting process lock an unlinked inode while a third one creates a fresh file,
//! and two writers would run. On a clean exit its pid is cleared instead.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "{} is locked by another steward (pid {}): one process writes a database; \
         stop the other one or use another --db",
        .path.display(),
        .pid.map_or_else(|| "unknown".to_string(), |pid| pid.to_string())
    )]
    Held {
        /// The lock file.
        path: PathBuf,
        /// The holder's process id, as it wrote it into the file.
        pid: Option<u32>,
    },
    /// The lock file could not be opened, created or locked.
    #[error("{}: cannot take the database lock: {source}", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// The exclusive lock on a database; dropping it releases the lock (so does the process's death).
#[derive(Debug)]
pub struct DbLock {
    file: File,
    path: PathBuf,
}

/// The lock file of a database: `<db>.lock` beside it.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    db.with_file_name(name)
}

impl DbLock {
    /// Takes the lock on `db`'s lock file, or refuses at once (no waiting) naming the lock file
    /// and the holder's pid. Writes this process's id into the file once the lock is held.
    pub fn acquire(db: &Path) -> Result<DbLock, LockError> {
        let path = lock_path(db);
        let io = |source| LockError::Io { path: path.clone(), source };
        let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                // Only a process that goes on to lock the file creates it; `create` (not
                // `create_new`) because another starter may create it at the same moment.
                OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)
            }
            .map_err(io)?,
            Err(error) => return Err(io(error)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held { pid: read_pid(&mut file), path });
            }
            Err(TryLockError::Error(error)) => return Err(io(error)),
        }
        write_pid(&mut file, Some(std::process::id())).map_err(io)?;
        Ok(DbLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DbLock {
    fn drop(&mut self) {
        // Clears the pid so a stale one never names a live, unrelated process; the kernel
        // releases the lock when the file closes.
        let _ = write_pid(&mut self.file, None);
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn write_pid(file: &mut File, pid: Option<u32>) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    if let Some(pid) = pid {
        writeln!(file, "{pid}")?;
    }
    file.sync_all()
}

/// Refuses a database the process cannot write, naming the path and the reason, without
/// creating or changing anything: an existing file must open for writing, and SQLite's
/// `-wal` file too if there is one. A missing file is fine (the store creates it).
pub fn check_writable(db: &Path) -> Result<(), super::StoreError> {
    let mut wal = db.as_os_str().to_os_string();
    wal.push("-wal");
    for path in [db.to_path_buf(), PathBuf::from(wal)] {
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(super::StoreError::NotWritable { path, reason: error.to_string() });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_file_and_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let first = DbLock::acquire(&db).unwrap();
        let error = DbLock::acquire(&db).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("s.db.lock"), "{message}");
        assert!(message.contains(&format!("pid {}", std::process::id())), "{message}");
        drop(first);
        let again = DbLock::acquire(&db).unwrap();
        assert_eq!(again.path(), lock_path(&db));
        assert!(!db.exists(), "the lock never creates the database");
    }

    #[test]
    fn a_missing_database_is_writable_and_nothing_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new.db");
        check_writable(&db).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
