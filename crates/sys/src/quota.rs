//! XFS-style project quotas: project IDs on directories
//! (`FS_IOC_FSGETXATTR`/`FS_IOC_FSSETXATTR` of
//! [ioctl_xfs_fsgetxattr(2)](https://man7.org/linux/man-pages/man2/ioctl_xfs_fsgetxattr.2.html),
//! with `FS_XFLAG_PROJINHERIT`) and limits set through
//! [quotactl_fd(2)](https://man7.org/linux/man-pages/man2/quotactl.2.html)
//! (kernel 5.14+) with `Q_XSETQLIM`.
//!
//! # Safety
//!
//! Each unsafe block is one `ioctl(2)` or `quotactl_fd(2)` on a borrowed,
//! open file descriptor with a pointer to a stack value of the exact
//! `#[repr(C)]` layout (`struct fsxattr`, `struct fs_disk_quota`) the call
//! expects; sizes are checked by tests.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

#[repr(C)]
#[derive(Default)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}

#[repr(C)]
#[derive(Default)]
struct FsDiskQuota {
    version: i8,
    flags: i8,
    fieldmask: u16,
    id: u32,
    blk_hardlimit: u64,
    blk_softlimit: u64,
    ino_hardlimit: u64,
    ino_softlimit: u64,
    bcount: u64,
    icount: u64,
    itimer: i32,
    btimer: i32,
    iwarns: u16,
    bwarns: u16,
    itimer_hi: i8,
    btimer_hi: i8,
    rtbtimer_hi: i8,
    padding2: i8,
    rtb_hardlimit: u64,
    rtb_softlimit: u64,
    rtbcount: u64,
    rtbtimer: i32,
    rtbwarns: u16,
    padding3: i16,
    padding4: [u8; 8],
}

/// `_IOR('X', 31, struct fsxattr)` (`linux/fs.h`).
const FS_IOC_FSGETXATTR: u64 = crate::ioc::ior::<FsXattr>(b'X', 31);
/// `_IOW('X', 32, struct fsxattr)` (`linux/fs.h`).
const FS_IOC_FSSETXATTR: u64 = crate::ioc::iow::<FsXattr>(b'X', 32);
/// `FS_XFLAG_PROJINHERIT`: new entries inherit the directory's project ID.
const FS_XFLAG_PROJINHERIT: u32 = 0x200;
const SYS_QUOTACTL_FD: libc::c_long = libc::SYS_quotactl_fd;
/// `PRJQUOTA` (`linux/quota.h`).
const PRJQUOTA: u32 = 2;
/// `XQM_CMD(x)`: `('X' << 8) + x` (`linux/dqblk_xfs.h`).
const fn xqm_cmd(x: u32) -> u32 {
    ((b'X' as u32) << 8) + x
}
/// `QCMD(cmd, type)`: `(cmd << 8) | (type & 0xff)` (`linux/quota.h`).
const fn qcmd(cmd: u32, ty: u32) -> u32 {
    (cmd << 8) | (ty & 0xff)
}
/// `QCMD(Q_XSETQLIM, PRJQUOTA)`; `Q_XSETQLIM` is `XQM_CMD(4)`.
const Q_XSETQLIM_PRJ: u32 = qcmd(xqm_cmd(4), PRJQUOTA);
/// `QCMD(Q_XGETQUOTA, PRJQUOTA)`; `Q_XGETQUOTA` is `XQM_CMD(3)`.
const Q_XGETQUOTA_PRJ: u32 = qcmd(xqm_cmd(3), PRJQUOTA);
const FS_DQUOT_VERSION: i8 = 1;
const FS_PROJ_QUOTA: i8 = 2;
const FS_DQ_IHARD: u16 = 1 << 1;
const FS_DQ_BHARD: u16 = 1 << 3;

fn check(rc: libc::c_long) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The project ID of the file `fd` (`ioctl(FS_IOC_FSGETXATTR)`).
pub fn project_id(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut x = FsXattr::default();
    // SAFETY: see module docs; `x` is a `struct fsxattr`.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FSGETXATTR as _, &mut x) }.into())?;
    Ok(x.projid)
}

/// Sets the project ID of directory `fd` and marks it so that new entries
/// inherit it (`ioctl(FS_IOC_FSGETXATTR)`, then `FS_IOC_FSSETXATTR`).
pub fn set_project_id(fd: BorrowedFd<'_>, projid: u32) -> io::Result<()> {
    let mut x = FsXattr::default();
    // SAFETY: see module docs; `x` is a `struct fsxattr`.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FSGETXATTR as _, &mut x) }.into())?;
    x.projid = projid;
    x.xflags |= FS_XFLAG_PROJINHERIT;
    // SAFETY: as above.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FSSETXATTR as _, &x) }.into())
}

/// Hard limits of one project quota. Zero means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProjectLimits {
    /// Bytes (rounded up to 512-byte basic blocks).
    pub bytes: u64,
    /// Inodes.
    pub inodes: u64,
}

/// `quotactl_fd(fd, QCMD(Q_XSETQLIM, PRJQUOTA), projid, …)`: sets the hard
/// limits of project `projid` on the filesystem of `fd`. Fails (`ENOSYS`,
/// `ESRCH`, `ENOTSUP`, `EINVAL`) where project quotas are not enabled.
pub fn set_project_limits(fd: BorrowedFd<'_>, projid: u32, lim: ProjectLimits) -> io::Result<()> {
    let mut q = FsDiskQuota {
        version: FS_DQUOT_VERSION,
        flags: FS_PROJ_QUOTA,
        fieldmask: FS_DQ_BHARD | FS_DQ_IHARD,
        id: projid,
        blk_hardlimit: lim.bytes.div_ceil(512),
        ino_hardlimit: lim.inodes,
        ..Default::default()
    };
    // SAFETY: see module docs; `q` is a `struct fs_disk_quota`.
    check(unsafe {
        libc::syscall(
            SYS_QUOTACTL_FD,
            fd.as_raw_fd(),
            Q_XSETQLIM_PRJ,
            projid,
            &mut q as *mut FsDiskQuota,
        )
    })
}

/// Whether project quotas are enforced on the filesystem of `fd`: reads the
/// quota of project `projid` (`Q_XGETQUOTA`), changing nothing. A project
/// without a quota record (`ENOENT`) still means quotas are on.
pub fn project_quota_enabled(fd: BorrowedFd<'_>, projid: u32) -> io::Result<()> {
    let mut q = FsDiskQuota::default();
    // SAFETY: see module docs; `q` is a `struct fs_disk_quota` the kernel fills.
    let r = check(unsafe {
        libc::syscall(
            SYS_QUOTACTL_FD,
            fd.as_raw_fd(),
            Q_XGETQUOTA_PRJ,
            projid,
            &mut q as *mut FsDiskQuota,
        )
    });
    match r {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_kernel_abi() {
        assert_eq!(std::mem::size_of::<FsXattr>(), 28);
        assert_eq!(std::mem::size_of::<FsDiskQuota>(), 112);
        // Values the kernel headers give on x86_64.
        assert_eq!(Q_XSETQLIM_PRJ, 0x0058_0402);
        assert_eq!(Q_XGETQUOTA_PRJ, 0x0058_0302);
        assert_eq!(FS_IOC_FSGETXATTR, 0x801c_581f);
        assert_eq!(FS_IOC_FSSETXATTR, 0x401c_5820);
    }
}
