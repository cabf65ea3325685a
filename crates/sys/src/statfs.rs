//! Filesystem type of a path or descriptor: the `f_type` field of
//! [statfs(2)](https://man7.org/linux/man-pages/man2/statfs.2.html).
//!
//! rustix does the system call; this module only narrows the answer to the
//! 32-bit magic number drivers compare against (`FsMagic` in the driver crate).

use std::os::fd::AsFd;
use std::path::Path;

/// `f_type` of the filesystem holding `path` (`statfs(2)`).
pub fn fs_type(path: &Path) -> std::io::Result<u32> {
    let st = rustix::fs::statfs(path)?;
    Ok(narrow(st.f_type as i64))
}

/// `f_type` of the filesystem holding the open file `fd` (`fstatfs(2)`).
pub fn fs_type_fd(fd: impl AsFd) -> std::io::Result<u32> {
    let st = rustix::fs::fstatfs(fd)?;
    Ok(narrow(st.f_type as i64))
}

/// Space figures of the filesystem holding `path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Fundamental block size in bytes.
    pub block_size: u64,
    /// Total blocks.
    pub blocks: u64,
    /// Blocks available to unprivileged users.
    pub blocks_available: u64,
}

/// Size and free space of the filesystem holding `path` (`statfs(2)`).
pub fn space(path: &Path) -> std::io::Result<Space> {
    let st = rustix::fs::statfs(path)?;
    Ok(Space {
        block_size: st.f_bsize as u64,
        blocks: st.f_blocks,
        blocks_available: st.f_bavail,
    })
}

/// Magic numbers are 32-bit; some ABIs return them sign-extended in a wider
/// signed field (e.g. btrfs's 0x9123683E on 32-bit `long`), so keep the low
/// 32 bits only.
fn narrow(raw: i64) -> u32 {
    (raw as u64 & 0xffff_ffff) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_keeps_low_bits() {
        assert_eq!(narrow(0x9123683E_u32 as i32 as i64), 0x9123683E);
        assert_eq!(narrow(0xEF53), 0xEF53);
    }

    #[test]
    fn proc_is_procfs() {
        // /proc is procfs (PROC_SUPER_MAGIC 0x9fa0) wherever these tests run.
        assert_eq!(fs_type(Path::new("/proc")).unwrap(), 0x9fa0);
        let f = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(fs_type_fd(&f).unwrap(), 0x9fa0);
    }

    #[test]
    fn missing_path_is_error() {
        let e = fs_type(Path::new("/nonexistent/strata/statfs")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
