//! What a layer's tree holds: inodes, allocated bytes, and the apparent
//! size of its non-directories. One parallel walk (a rayon task per
//! directory) serves every driver's `read_write_disk_usage` and the overlay
//! driver's native diff size.
//!
//! An inode with several names counts once; directories count as inodes
//! and allocated space but not in the apparent size, as the reference's
//! `diffsize` counts them.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::{DiskUsage, Error, Result};

/// Totals of one tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeUsage {
    /// Inodes, the root included.
    pub inodes: u64,
    /// Bytes allocated (`st_blocks` × 512).
    pub allocated: u64,
    /// Sum of `st_size` of everything but directories.
    pub apparent: u64,
}

impl From<TreeUsage> for DiskUsage {
    fn from(u: TreeUsage) -> Self {
        DiskUsage {
            size: u.allocated,
            inodes: u.inodes,
        }
    }
}

#[derive(Default)]
struct Totals {
    inodes: AtomicU64,
    allocated: AtomicU64,
    apparent: AtomicU64,
    linked: Mutex<HashSet<(u64, u64)>>,
    err: Mutex<Option<Error>>,
}

impl Totals {
    fn add(&self, m: &std::fs::Metadata) {
        if m.nlink() > 1 && !m.is_dir() {
            let mut seen = self.linked.lock().unwrap_or_else(|p| p.into_inner());
            if !seen.insert((m.dev(), m.ino())) {
                return;
            }
        }
        self.inodes.fetch_add(1, Ordering::Relaxed);
        self.allocated
            .fetch_add(m.blocks() * 512, Ordering::Relaxed);
        if !m.is_dir() {
            self.apparent.fetch_add(m.size(), Ordering::Relaxed);
        }
    }

    fn fail(&self, e: Error) {
        let mut g = self.err.lock().unwrap_or_else(|p| p.into_inner());
        g.get_or_insert(e);
    }
}

/// Walks `root` (not following symlinks) and totals it.
pub fn tree_usage(root: &Path) -> Result<TreeUsage> {
    let m = std::fs::symlink_metadata(root).map_err(|e| Error::path("lstat", root, e))?;
    let t = Totals::default();
    t.add(&m);
    if m.is_dir() {
        rayon::scope(|s| walk(s, root.to_path_buf(), &t));
    }
    if let Some(e) = t.err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(TreeUsage {
        inodes: t.inodes.into_inner(),
        allocated: t.allocated.into_inner(),
        apparent: t.apparent.into_inner(),
    })
}

fn walk<'s>(s: &rayon::Scope<'s>, dir: PathBuf, t: &'s Totals) {
    let rd = match std::fs::read_dir(&dir) {
        Ok(r) => r,
        Err(e) => return t.fail(Error::path("read directory", &dir, e)),
    };
    for ent in rd {
        let ent = match ent {
            Ok(e) => e,
            Err(e) => return t.fail(Error::path("read directory", &dir, e)),
        };
        // fstatat relative to the open directory: no path walk per entry.
        let m = match ent.metadata() {
            Ok(m) => m,
            Err(e) => return t.fail(Error::path("lstat", ent.path(), e)),
        };
        t.add(&m);
        if m.is_dir() {
            s.spawn(move |s| walk(s, ent.path(), t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_inodes_sizes_and_links_once() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::write(r.join("a/f"), vec![1u8; 5000]).unwrap();
        std::fs::write(r.join("a/b/g"), b"xyz").unwrap();
        std::fs::hard_link(r.join("a/f"), r.join("a/b/f2")).unwrap();
        std::os::unix::fs::symlink("a/f", r.join("l")).unwrap();
        let u = tree_usage(r).unwrap();
        // root, a, a/b, f (= f2), g, l
        assert_eq!(u.inodes, 6);
        // f once, g, and the symlink's target length.
        assert_eq!(u.apparent, 5000 + 3 + 3);
        assert!(u.allocated >= 4096, "{u:?}");
        // A symlink to a directory is not followed.
        std::os::unix::fs::symlink(r.join("a"), r.join("la")).unwrap();
        assert_eq!(tree_usage(r).unwrap().inodes, 7);
        assert!(tree_usage(&r.join("missing")).is_err());
    }
}
