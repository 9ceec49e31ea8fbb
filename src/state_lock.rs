//! One daemon per state directory: an advisory lock on `<storage.dir>/LOCK`, held for the process's
//! life.
//!
//! Two daemons on one state directory would append to the same WALs, replay each other's batches
//! and hand out the same RecordIds, so the second must not start. The lock is `flock(2)` (std's
//! `File::try_lock`): the kernel releases it when the process ends, however it ends (`kill -9`
//! included), so a crash never leaves a stale lock for an operator to clean up. The holder's PID is
//! written into the file only to name it in the refusal; the lock, not the PID, decides.
//!
//! Ground floor: imports nothing of ours.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

const LOCK_FILE: &str = "LOCK";

#[derive(Debug, Error)]
pub enum StateLockError {
    #[error("the state directory {dir} is in use by another sluice (PID {pid}); each daemon needs its own storage.dir (or --storage-dir): stop that one first, or give this one another directory")]
    InUse { dir: PathBuf, pid: String },
    #[error("cannot lock the state directory {dir}: {source}")]
    Io { dir: PathBuf, source: std::io::Error },
}

/// Held while the daemon runs; dropping it (or the process ending) releases the directory.
#[derive(Debug)]
pub struct StateDirLock {
    _file: File,
}

impl StateDirLock {
    /// Locks `dir` (creating it), or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<Self, StateLockError> {
        let io = |source| StateLockError::Io { dir: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(LOCK_FILE);
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                let pid = if pid.is_empty() { "unknown".to_string() } else { pid.to_string() };
                return Err(StateLockError::InUse { dir: dir.to_path_buf(), pid });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateDirLock::acquire(dir.path()).unwrap();
        let refused = StateDirLock::acquire(dir.path()).unwrap_err();
        let text = refused.to_string();
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        drop(first);
        StateDirLock::acquire(dir.path()).unwrap();
    }
}
