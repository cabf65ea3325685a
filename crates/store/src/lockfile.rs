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
//! `fcntl` locks belong to the process, not to a descriptor: a second
//! `F_SETLKW` from the same process never waits, unlocking through any
//! descriptor drops the process's lock, and closing *any* descriptor of the
//! file drops every lock the process holds on it. So within one process a
//! lock file is opened once — a registry keyed by (device, inode) hands the
//! same [`LockFile`] to every caller, whichever `Store` value or thread it
//! is — and an in-process reader/writer lock decides who may hold it. The
//! `fcntl` lock is taken when the first holder arrives and released when the
//! last one leaves, so threads and `Store` values of one process exclude
//! each other exactly as processes do.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

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

/// How a lock file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read-write, falling back to read-only where the file or directory
    /// cannot be written (as the reference does).
    ReadWrite,
    /// Read-only (the lock files of additional image stores); only shared
    /// locks can be taken.
    ReadOnly,
}

/// Who holds the lock inside this process.
#[derive(Debug, Default)]
struct Holders {
    /// Threads holding it shared.
    readers: usize,
    /// A thread holds it exclusively.
    writer: bool,
    /// A thread is waiting for the `fcntl` lock on behalf of readers; new
    /// readers wait for it instead of assuming the lock is held.
    acquiring: bool,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    fd: OwnedFd,
    writable: bool,
    holders: Mutex<Holders>,
    changed: Condvar,
    /// Descriptors opened while racing another opener of the same file:
    /// closing them would drop this process's locks, so they live as long
    /// as the shared entry.
    _spare: Mutex<Vec<OwnedFd>>,
}

/// One lock file, shared by everything in this process that opens it.
#[derive(Debug, Clone)]
pub struct LockFile {
    inner: Arc<Inner>,
}

type Registry = Mutex<HashMap<(u64, u64), Weak<Inner>>>;

fn registry() -> &'static Registry {
    static R: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    R.get_or_init(Registry::default)
}

fn lock_registry() -> MutexGuard<'static, HashMap<(u64, u64), Weak<Inner>>> {
    registry().lock().unwrap_or_else(|p| p.into_inner())
}

fn dev_ino(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

impl LockFile {
    /// Opens (creating with mode 0644 when missing) the lock file at `path`.
    /// Where it cannot be opened for writing it is opened read-only and can
    /// only be locked shared.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, Access::ReadWrite)
    }

    /// Opens a lock file as [`LockFile::open`] does, read-only when asked.
    /// A missing parent directory is created (0700), as the reference does.
    pub fn open_with(path: &Path, access: Access) -> Result<Self> {
        let mut reg = lock_registry();
        // Known already (by inode): share it without opening the file again.
        if let Ok(st) = rustix::fs::stat(path) {
            if let Some(inner) = reg.get(&dev_ino(&st)).and_then(Weak::upgrade) {
                return Ok(Self { inner });
            }
        }
        let (fd, writable) = open_fd(path, access)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::io("stat lock", path, e.into()))?;
        let key = dev_ino(&st);
        if let Some(inner) = reg.get(&key).and_then(Weak::upgrade) {
            // The path was replaced under us by a file we already hold.
            inner
                ._spare
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(fd);
            return Ok(Self { inner });
        }
        reg.retain(|_, w| w.strong_count() > 0);
        let inner = Arc::new(Inner {
            path: path.to_path_buf(),
            fd,
            writable,
            holders: Mutex::default(),
            changed: Condvar::new(),
            _spare: Mutex::default(),
        });
        reg.insert(key, Arc::downgrade(&inner));
        Ok(Self { inner })
    }

    /// Path of the lock file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether the file could be opened for writing.
    pub fn is_writable(&self) -> bool {
        self.inner.writable
    }

    /// Takes the lock, waiting for other holders in this process and in
    /// others; released when the guard drops.
    pub fn lock(&self, mode: LockMode) -> Result<LockGuard> {
        match mode {
            LockMode::Shared => self.lock_shared(),
            LockMode::Exclusive => self.lock_exclusive(),
        }
    }

    fn holders(&self) -> MutexGuard<'_, Holders> {
        self.inner.holders.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, Holders>) -> MutexGuard<'a, Holders> {
        self.inner
            .changed
            .wait(g)
            .unwrap_or_else(|p| p.into_inner())
    }

    fn lock_shared(&self) -> Result<LockGuard> {
        let mut h = self.holders();
        while h.writer || h.acquiring {
            h = self.wait(h);
        }
        if h.readers > 0 {
            h.readers += 1;
            return Ok(self.guard(LockMode::Shared));
        }
        h.acquiring = true;
        drop(h);
        let res = fcntl(&self.inner, FlockOperation::LockShared);
        let mut h = self.holders();
        h.acquiring = false;
        if res.is_ok() {
            h.readers = 1;
        }
        drop(h);
        self.inner.changed.notify_all();
        res.map(|()| self.guard(LockMode::Shared))
    }

    fn lock_exclusive(&self) -> Result<LockGuard> {
        if !self.inner.writable {
            return Err(Error::io(
                "lock",
                &self.inner.path,
                std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            ));
        }
        let mut h = self.holders();
        while h.writer || h.acquiring || h.readers > 0 {
            h = self.wait(h);
        }
        h.writer = true;
        drop(h);
        let res = fcntl(&self.inner, FlockOperation::LockExclusive);
        if res.is_err() {
            self.holders().writer = false;
            self.inner.changed.notify_all();
        }
        res.map(|()| self.guard(LockMode::Exclusive))
    }

    fn guard(&self, mode: LockMode) -> LockGuard {
        LockGuard {
            file: self.clone(),
            mode,
        }
    }

    fn release(&self, mode: LockMode) {
        let mut h = self.holders();
        let last = match mode {
            LockMode::Shared => {
                h.readers -= 1;
                h.readers == 0
            }
            LockMode::Exclusive => true,
        };
        if last {
            if let Err(e) = fcntl(&self.inner, FlockOperation::Unlock) {
                tracing::warn!("unlocking {:?}: {e}", self.inner.path);
            }
        }
        if mode == LockMode::Exclusive {
            h.writer = false;
        }
        drop(h);
        self.inner.changed.notify_all();
    }

    /// The token currently stored (all zeros for a new, empty file; a
    /// short token is padded with zeros).
    pub fn token(&self) -> Result<Token> {
        let mut buf = [0u8; TOKEN_LEN];
        let mut done = 0;
        while done < TOKEN_LEN {
            match rustix::io::pread(&self.inner.fd, &mut buf[done..], done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io("read lock token", &self.inner.path, e.into())),
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
            match rustix::io::pwrite(&self.inner.fd, &token[done..], done as u64) {
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io("write lock token", &self.inner.path, e.into())),
            }
        }
        Ok(token)
    }
}

fn open_fd(path: &Path, access: Access) -> Result<(OwnedFd, bool)> {
    let mode = Mode::from_raw_mode(0o644);
    let create = |flags: OFlags| -> Result<rustix::io::Result<OwnedFd>> {
        let flags = flags | OFlags::CREATE | OFlags::CLOEXEC;
        match rustix::fs::open(path, flags, mode) {
            Err(rustix::io::Errno::NOENT) => {
                if let Some(dir) = path.parent() {
                    crate::files::mkdir_all(dir, 0o700)?;
                }
                Ok(rustix::fs::open(path, flags, mode))
            }
            r => Ok(r),
        }
    };
    let fail = |e: rustix::io::Errno| Error::io("open lock", path, e.into());
    let read_only = || rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty());
    match access {
        Access::ReadOnly => match read_only() {
            Ok(fd) => Ok((fd, false)),
            Err(_) => Ok((create(OFlags::RDONLY)?.map_err(fail)?, false)),
        },
        Access::ReadWrite => match create(OFlags::RDWR)? {
            Ok(fd) => Ok((fd, true)),
            Err(rustix::io::Errno::ACCESS | rustix::io::Errno::ROFS) => {
                Ok((read_only().map_err(fail)?, false))
            }
            Err(e) => Err(fail(e)),
        },
    }
}

fn fcntl(inner: &Inner, op: FlockOperation) -> Result<()> {
    loop {
        match rustix::fs::fcntl_lock(inner.fd.as_fd(), op) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::io("lock", &inner.path, e.into())),
        }
    }
}

/// A held lock; unlocks on drop.
#[derive(Debug)]
pub struct LockGuard {
    file: LockFile,
    mode: LockMode,
}

impl LockGuard {
    /// The lock file held.
    pub fn file(&self) -> &LockFile {
        &self.file
    }

    /// How it is held.
    pub fn mode(&self) -> LockMode {
        self.mode
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.file.release(self.mode);
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
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

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

    #[test]
    fn one_entry_per_file_and_threads_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/x.lock");
        let a = LockFile::open(&p).unwrap();
        let b = LockFile::open(&p).unwrap();
        assert!(Arc::ptr_eq(&a.inner, &b.inner), "two entries for one file");
        let held = a.lock(LockMode::Exclusive).unwrap();
        let got = Arc::new(AtomicBool::new(false));
        let t = {
            let got = got.clone();
            std::thread::spawn(move || {
                let _g = b.lock(LockMode::Shared).unwrap();
                got.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(!got.load(Ordering::SeqCst), "reader ran under a writer");
        drop(held);
        t.join().unwrap();
        assert!(got.load(Ordering::SeqCst));
        // Readers share.
        let r1 = a.lock(LockMode::Shared).unwrap();
        let r2 = a.lock(LockMode::Shared).unwrap();
        drop(r1);
        drop(r2);
        let _w = a.lock(LockMode::Exclusive).unwrap();
    }

    #[test]
    fn read_only_files_refuse_exclusive_locks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ro.lock");
        let lf = LockFile::open_with(&p, Access::ReadOnly).unwrap();
        assert!(!lf.is_writable());
        assert!(lf.lock(LockMode::Exclusive).is_err());
        drop(lf.lock(LockMode::Shared).unwrap());
    }
}
