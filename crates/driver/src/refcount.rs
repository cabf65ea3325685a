//! Mount reference counting (the seed's `RefCounter`).
//!
//! A driver mounts a layer on the first `get` and unmounts it on the last
//! `put`. Counts live in memory; when a count is zero but the path is
//! mounted (another process, or an earlier run of this one, mounted it), the
//! first increment takes the existing mount as one reference, and a
//! decrement from zero of a mounted path reports it as the last one, so it
//! is unmounted rather than leaked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::mounts::MountChecker;

#[derive(Default)]
struct Entry {
    count: usize,
}

/// Per-path reference counts, re-synced against a [`MountChecker`].
pub struct RefCounter {
    counts: Mutex<HashMap<PathBuf, Entry>>,
    checker: Box<dyn MountChecker>,
}

impl RefCounter {
    /// A counter that asks `checker` whether a path with no references is
    /// mounted anyway.
    pub fn new(checker: Box<dyn MountChecker>) -> Self {
        Self {
            counts: Mutex::new(HashMap::new()),
            checker,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<PathBuf, Entry>> {
        // A panic while holding the lock leaves counts that are still
        // integers; keep going with them.
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a reference to `path`; returns the new count. A count of 1
    /// means the caller must mount.
    pub fn increment(&self, path: &Path) -> usize {
        let mut m = self.lock();
        let e = m.entry(path.to_path_buf()).or_default();
        if e.count == 0 && self.checker.is_mounted(path) {
            e.count = 1;
        }
        e.count += 1;
        e.count
    }

    /// Drops a reference to `path`; returns the new count. A count of 0
    /// means the caller must unmount.
    pub fn decrement(&self, path: &Path) -> usize {
        let mut m = self.lock();
        let e = m.entry(path.to_path_buf()).or_default();
        if e.count == 0 && self.checker.is_mounted(path) {
            e.count = 1;
        }
        e.count = e.count.saturating_sub(1);
        let c = e.count;
        if c == 0 {
            m.remove(path);
        }
        c
    }

    /// Current count of `path` (without re-syncing).
    pub fn count(&self, path: &Path) -> usize {
        self.lock().get(path).map_or(0, |e| e.count)
    }
}

/// A reference that is dropped when the guard is (RAII form of
/// [`RefCounter::increment`] / [`RefCounter::decrement`]).
pub struct RefGuard {
    counter: Arc<RefCounter>,
    path: PathBuf,
    count: usize,
}

impl RefGuard {
    /// Takes a reference to `path`.
    pub fn new(counter: Arc<RefCounter>, path: &Path) -> Self {
        let count = counter.increment(path);
        Self {
            counter,
            path: path.to_path_buf(),
            count,
        }
    }

    /// The count right after this guard took its reference.
    pub fn count_at_start(&self) -> usize {
        self.count
    }

    /// The path referenced.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RefGuard {
    fn drop(&mut self) {
        self.counter.decrement(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Fake(Arc<AtomicBool>);
    impl MountChecker for Fake {
        fn is_mounted(&self, _: &Path) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn counts_up_and_down() {
        let mounted = Arc::new(AtomicBool::new(false));
        let rc = RefCounter::new(Box::new(Fake(mounted.clone())));
        let p = Path::new("/x");
        assert_eq!(rc.increment(p), 1);
        mounted.store(true, Ordering::SeqCst);
        assert_eq!(rc.increment(p), 2);
        assert_eq!(rc.decrement(p), 1);
        assert_eq!(rc.decrement(p), 0);
        mounted.store(false, Ordering::SeqCst);
        assert_eq!(rc.decrement(p), 0, "never below zero");
        assert_eq!(rc.count(p), 0);
    }

    #[test]
    fn resyncs_with_foreign_mount() {
        let mounted = Arc::new(AtomicBool::new(true));
        let rc = RefCounter::new(Box::new(Fake(mounted.clone())));
        let p = Path::new("/y");
        // Mounted by someone else: our first get is the second reference.
        assert_eq!(rc.increment(p), 2);
        assert_eq!(rc.decrement(p), 1);
        let q = Path::new("/z");
        // A put with no get of a mounted path is the last reference.
        assert_eq!(rc.decrement(q), 0);
    }

    #[test]
    fn guard_decrements_on_drop() {
        let rc = Arc::new(RefCounter::new(Box::new(Fake(Arc::new(AtomicBool::new(
            false,
        ))))));
        let p = Path::new("/g");
        {
            let g1 = RefGuard::new(rc.clone(), p);
            let g2 = RefGuard::new(rc.clone(), p);
            assert_eq!((g1.count_at_start(), g2.count_at_start()), (1, 2));
            assert_eq!(rc.count(p), 2);
        }
        assert_eq!(rc.count(p), 0);
    }
}
