//! Lock files compatible with containers/storage.
//!
//! A lock file is held with whole-file `fcntl` record locks (`F_SETLKW`,
//! shared for readers, exclusive for writers), the kind Go's
//! `pkg/lockfile` takes, so both programs exclude each other. `flock(2)`
//! locks would not: the two lock families do not see each other on Linux.
//!
//! After changing the data a lock protects, the writer stores a fresh
//! 64-byte *last-writer token* at offset 0 of the lock file: 8 bytes of
//! wall-clock time in nanoseconds (little-endian), 8 bytes of a per-process
//! counter, 4 bytes of the process ID, and random bytes for the rest.
//! Readers remember the token they last saw and reload when it differs.
//!
//! `fcntl` locks belong to the process, not to the descriptor, and closing
//! *any* descriptor of the file drops them; so each lock file is opened once
//! per [`LockFile`] and kept open, and threads of one process do not exclude
//! each other through it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rand::RngCore;
use rustix::fs::{FlockOperation, Mode, OFlags};

use crate::{Error, Result};

/// Size of the last-writer token.
pub const TOKEN_LEN: usize = 64;

/// The last-writer token stored at offset 0 of a lock file.
pub type Token = [u8; TOKEN_LEN];

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Shared or exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Readers: many at once.
    Shared,
    /// A writer: alone.
    Exclusive,
}

/// One lock file, opened once and kept open.
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    fd: OwnedFd,
    writable: bool,
}

impl LockFile {
    /// Opens (creating with mode 0644 when missing) the lock file at `path`.
    /// A read-only file can only be locked shared.
    pub fn open(path: &Path) -> Result<Self> {
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC;
        match rustix::fs::open(path, flags, Mode::from_raw_mode(0o644)) {
            Ok(fd) => Ok(Self {
                path: path.to_path_buf(),
                fd,
                writable: true,
            }),
            Err(rustix::io::Errno::ACCESS) | Err(rustix::io::Errno::ROFS) => {
                let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|e| Error::io("open lock", path, e.into()))?;
                Ok(Self {
                    path: path.to_path_buf(),
                    fd,
                    writable: false,
                })
            }
            Err(e) => Err(Error::io("open lock", path, e.into())),
        }
    }

    /// Path of the lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file could be opened for writing.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Takes the lock, waiting for other holders; released when the guard drops.
    pub fn lock(&self, mode: LockMode) -> Result<LockGuard<'_>> {
        let op = match mode {
            LockMode::Shared => FlockOperation::LockShared,
            LockMode::Exclusive if self.writable => FlockOperation::LockExclusive,
            LockMode::Exclusive => {
                return Err(Error::io(
                    "lock",
                    &self.path,
                    std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                ))
            }
        };
        loop {
            match rustix::fs::fcntl_lock(self.fd.as_fd(), op) {
                Ok(()) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io("lock", &self.path, e.into())),
            }
        }
        Ok(LockGuard { file: self })
    }

    /// The token currently stored (all zeros for a new, empty file).
    pub fn token(&self) -> Result<Token> {
        let mut buf = [0u8; TOKEN_LEN];
        let mut done = 0;
        while done < TOKEN_LEN {
            match rustix::io::pread(&self.fd, &mut buf[done..], done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io("read lock token", &self.path, e.into())),
            }
        }
        Ok(buf)
    }

    /// Writes a fresh last-writer token; call with the exclusive lock held,
    /// after the protected data is written.
    pub fn record_write(&self) -> Result<Token> {
        let token = new_token();
        let mut done = 0;
        while done < TOKEN_LEN {
            match rustix::io::pwrite(&self.fd, &token[done..], done as u64) {
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io("write lock token", &self.path, e.into())),
            }
        }
        Ok(token)
    }
}

/// A held lock; unlocks on drop.
#[derive(Debug)]
pub struct LockGuard<'a> {
    file: &'a LockFile,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = rustix::fs::fcntl_lock(self.file.fd.as_fd(), FlockOperation::Unlock) {
            tracing::warn!("unlocking {:?}: {e}", self.file.path);
        }
    }
}

fn new_token() -> Token {
    let mut t = [0u8; TOKEN_LEN];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t[0..8].copy_from_slice(&now.to_le_bytes());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    t[8..16].copy_from_slice(&n.to_le_bytes());
    t[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    rand::rng().fill_bytes(&mut t[20..]);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_changes() {
        let dir = tempfile::tempdir().unwrap();
        let lf = LockFile::open(&dir.path().join("x.lock")).unwrap();
        assert_eq!(lf.token().unwrap(), [0u8; TOKEN_LEN]);
        let g = lf.lock(LockMode::Exclusive).unwrap();
        let a = lf.record_write().unwrap();
        assert_eq!(lf.token().unwrap(), a);
        let b = lf.record_write().unwrap();
        assert_ne!(a, b);
        assert_eq!(&b[16..20], &std::process::id().to_le_bytes());
        drop(g);
        let len = std::fs::metadata(lf.path()).unwrap().len();
        assert_eq!(len, TOKEN_LEN as u64);
    }
}
