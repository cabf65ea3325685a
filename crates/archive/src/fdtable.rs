//! The process's file descriptor table.
//!
//! The kernel grows a process's descriptor table by doubling it when a new
//! descriptor does not fit (64, 128, 256, 512, 1024, …). When more than one
//! thread shares the table, every growth waits for an RCU grace period
//! (`expand_fdtable`), which takes milliseconds and stalls the thread that
//! opened the file while the others may be waiting for it. An import holds
//! a few hundred descriptors at its peak (cached directories and files
//! being written), so it would pay three or four such waits; growing the
//! table once, before the threads start, pays none.

use std::os::fd::AsFd;

use rustix::fs::{Mode, OFlags};
use rustix::process::{getrlimit, Resource};

/// Makes room for descriptors `0..n` in the table now, so that opening up
/// to `n` files later does not grow it. Clamped to the soft `RLIMIT_NOFILE`
/// limit; best effort (a failure only means the table grows later, as it
/// would have). Cheap when the table is that big already.
pub(crate) fn reserve(n: u32) {
    let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let top = u64::from(n).min(soft).saturating_sub(1);
    // The first 64 entries are part of the process from its start.
    if top < 64 {
        return;
    }
    let Ok(any) = rustix::fs::open("/", OFlags::PATH | OFlags::CLOEXEC, Mode::empty()) else {
        return;
    };
    // The lowest free descriptor at or above `top`: the table is grown to
    // hold it, and keeps that size when it is closed.
    let _ = rustix::io::fcntl_dupfd_cloexec(any.as_fd(), top as i32);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_size() -> u64 {
        // FDSize in /proc/self/status is the table's current capacity.
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = s.lines().find(|l| l.starts_with("FDSize:")).unwrap();
        line[7..].trim().parse().unwrap()
    }

    #[test]
    fn reserve_grows_the_table_and_closes_what_it_opened() {
        let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        let want = 2048.min(soft) as u32;
        reserve(want);
        assert!(
            table_size() >= u64::from(want),
            "FDSize {} < {want}",
            table_size()
        );
        let top = format!("/proc/self/fd/{}", want - 1);
        assert!(std::fs::symlink_metadata(&top).is_err(), "{top} left open");
    }
}
