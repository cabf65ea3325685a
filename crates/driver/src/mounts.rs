//! Is a path a mount point? (the seed's `Checker`, `NewDefaultChecker`,
//! `NewFsChecker`, `Mounted`).
//!
//! Two ways to ask: the mount table (`/proc/self/mountinfo`: the path is
//! some mount's mount point), or the filesystem type (`statfs` of the path
//! reports the driver's filesystem, e.g. overlay's merged directory shows
//! `OVERLAY` only while mounted).

use std::path::{Path, PathBuf};

use crate::fsmagic::{fs_magic, FsMagic};
use crate::{Error, Result};

/// Checks whether a path is mounted.
pub trait MountChecker: Send + Sync {
    /// True when `path` is mounted in the sense of this checker. Errors
    /// (e.g. an unreadable mount table) count as "not mounted"; callers that
    /// need the difference use [`mounted`] or [`is_mount_point`].
    fn is_mounted(&self, path: &Path) -> bool;
}

/// Looks `path` up as a mount point in `/proc/self/mountinfo` (the seed's
/// `NewDefaultChecker`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MountinfoChecker;

impl MountChecker for MountinfoChecker {
    fn is_mounted(&self, path: &Path) -> bool {
        is_mount_point(path).unwrap_or(false)
    }
}

/// Compares the filesystem type of `path` with a magic (the seed's
/// `NewFsChecker`).
#[derive(Debug, Clone, Copy)]
pub struct FsChecker {
    /// The magic a mounted path shows.
    pub magic: FsMagic,
}

impl FsChecker {
    /// A checker for filesystem `magic`.
    pub fn new(magic: FsMagic) -> Self {
        Self { magic }
    }
}

impl MountChecker for FsChecker {
    fn is_mounted(&self, path: &Path) -> bool {
        mounted(self.magic, path).unwrap_or(false)
    }
}

/// Whether the filesystem at `path` has magic `fs` (the seed's `Mounted`).
/// A missing path is "not mounted", not an error.
pub fn mounted(fs: FsMagic, path: &Path) -> Result<bool> {
    match fs_magic(path) {
        Ok(m) => Ok(m == fs),
        Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `path` is the mount point of some mount in this mount namespace.
pub fn is_mount_point(path: &Path) -> Result<bool> {
    let target = canonical(path);
    let table = strata_sys::mountinfo::read_self()
        .map_err(|e| Error::path("read", "/proc/self/mountinfo", e))?;
    Ok(table.iter().any(|m| m.mount_point == target))
}

/// Mount points at or below `dir`, deepest first (so they can be unmounted
/// in order). Only paths under `dir` are returned.
pub fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let base = canonical(dir);
    let table = strata_sys::mountinfo::read_self()
        .map_err(|e| Error::path("read", "/proc/self/mountinfo", e))?;
    let mut out: Vec<PathBuf> = table
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(&base))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    Ok(out)
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_proc_are_mount_points() {
        assert!(MountinfoChecker.is_mounted(Path::new("/")));
        assert!(MountinfoChecker.is_mounted(Path::new("/proc")));
        let dir = tempfile::tempdir().unwrap();
        assert!(!MountinfoChecker.is_mounted(dir.path()));
        assert!(!MountinfoChecker.is_mounted(&dir.path().join("missing")));
    }

    #[test]
    fn fs_checker_compares_magic() {
        assert!(FsChecker::new(FsMagic(0x9fa0)).is_mounted(Path::new("/proc")));
        assert!(!FsChecker::new(FsMagic::OVERLAY).is_mounted(Path::new("/proc")));
        assert!(!mounted(FsMagic::OVERLAY, Path::new("/nonexistent/x")).unwrap());
    }

    #[test]
    fn mounts_under_stays_under() {
        let all = mounts_under(Path::new("/proc")).unwrap();
        assert!(all.iter().all(|p| p.starts_with("/proc")));
        assert!(all.iter().any(|p| p == Path::new("/proc")));
        assert_eq!(all.last().map(|p| p.as_path()), Some(Path::new("/proc")));
    }
}
