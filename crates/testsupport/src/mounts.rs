//! Mounts below a test's own directory, and their removal.

use std::path::{Path, PathBuf};

use rustix::mount::{unmount, UnmountFlags};

/// Mount points at or below `dir`, deepest first, from
/// /proc/self/mountinfo (escapes decoded).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = strata_sys::mountinfo::read_self()
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    v
}

/// Detaches every mount at or below `dir`, deepest first; mounts stacked
/// on one point take several rounds. Only paths below `dir` are touched.
pub fn detach_mounts_under(dir: &Path) {
    for _ in 0..4 {
        let list = mounts_under(dir);
        if list.is_empty() {
            return;
        }
        for m in list {
            debug_assert!(m.starts_with(dir));
            let _ = unmount(&m, UnmountFlags::DETACH);
        }
    }
}

/// The raw /proc/self/mountinfo line of the topmost mount at `p`, or an
/// empty string when nothing is mounted there (for checking a mount's
/// type and options).
pub fn mountinfo_line(p: &Path) -> String {
    let info = std::fs::read("/proc/self/mountinfo").unwrap_or_default();
    info.split(|&b| b == b'\n')
        .rfind(|l| strata_sys::mountinfo::parse_line(l).is_ok_and(|m| m.mount_point == p))
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .unwrap_or_default()
}
