//! btrfs ioctls: subvolume create, snapshot and delete, quota enable,
//! qgroup create/destroy and limits, and the subvolume ID of a directory.
//!
//! Argument structs are local `#[repr(C)]` copies of `linux/btrfs.h`
//! (sizes checked by tests); request numbers are written as the header's
//! `_IOW`/`_IOR`/`_IOWR` definitions, and tests compare them with the
//! numbers the kernel headers give on x86_64. The calls are documented in
//! [ioctl_btrfs(2)](https://man7.org/linux/man-pages/man2/ioctl_btrfs.2.html)
//! and the kernel's `Documentation/filesystems/btrfs.rst`.
//!
//! # Safety
//!
//! Every unsafe block is one `ioctl(2)` on a borrowed, open file descriptor
//! with a pointer to a stack value of the exact struct type and size the
//! request number encodes; the kernel reads or writes only within it.

#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

/// `BTRFS_IOCTL_MAGIC`.
const MAGIC: u8 = 0x94;
const PATH_NAME_MAX: usize = 4087;
const SUBVOL_NAME_MAX: usize = 4039;
/// Objectid of the root directory of every subvolume.
pub const FIRST_FREE_OBJECTID: u64 = 256;
/// `BTRFS_QGROUP_LIMIT_MAX_RFER`.
const LIMIT_MAX_RFER: u64 = 1;
/// `BTRFS_QUOTA_CTL_ENABLE`.
const QUOTA_CTL_ENABLE: u64 = 1;

#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; PATH_NAME_MAX + 1],
}

#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; SUBVOL_NAME_MAX + 1],
}

#[repr(C)]
struct QuotaCtlArgs {
    cmd: u64,
    status: u64,
}

#[repr(C)]
struct QgroupLimit {
    flags: u64,
    max_rfer: u64,
    max_excl: u64,
    rsv_rfer: u64,
    rsv_excl: u64,
}

#[repr(C)]
struct QgroupLimitArgs {
    qgroupid: u64,
    lim: QgroupLimit,
}

#[repr(C)]
struct QgroupCreateArgs {
    create: u64,
    qgroupid: u64,
}

#[repr(C)]
struct InoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; 4080],
}

use crate::ioc::{ior, iow, iowr};

/// `_IOW(BTRFS_IOCTL_MAGIC, 23, struct btrfs_ioctl_vol_args_v2)`.
const IOC_SNAP_CREATE_V2: u64 = iow::<VolArgsV2>(MAGIC, 23);
/// `_IOW(BTRFS_IOCTL_MAGIC, 14, struct btrfs_ioctl_vol_args)`.
const IOC_SUBVOL_CREATE: u64 = iow::<VolArgs>(MAGIC, 14);
/// `_IOW(BTRFS_IOCTL_MAGIC, 15, struct btrfs_ioctl_vol_args)`.
const IOC_SNAP_DESTROY: u64 = iow::<VolArgs>(MAGIC, 15);
/// `_IOWR(BTRFS_IOCTL_MAGIC, 40, struct btrfs_ioctl_quota_ctl_args)`.
const IOC_QUOTA_CTL: u64 = iowr::<QuotaCtlArgs>(MAGIC, 40);
/// `_IOW(BTRFS_IOCTL_MAGIC, 42, struct btrfs_ioctl_qgroup_create_args)`.
const IOC_QGROUP_CREATE: u64 = iow::<QgroupCreateArgs>(MAGIC, 42);
/// `_IOR(BTRFS_IOCTL_MAGIC, 43, struct btrfs_ioctl_qgroup_limit_args)`.
const IOC_QGROUP_LIMIT: u64 = ior::<QgroupLimitArgs>(MAGIC, 43);
/// `_IOWR(BTRFS_IOCTL_MAGIC, 18, struct btrfs_ioctl_ino_lookup_args)`.
const IOC_INO_LOOKUP: u64 = iowr::<InoLookupArgs>(MAGIC, 18);

fn copy_name(dst: &mut [u8], name: &OsStr) -> io::Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() >= dst.len() || b.contains(&b'/') || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid subvolume name {name:?}"),
        ));
    }
    dst[..b.len()].copy_from_slice(b);
    Ok(())
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `BTRFS_IOC_SUBVOL_CREATE`: creates subvolume `name` in directory `dir`.
pub fn subvol_create(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let mut a = VolArgs {
        fd: 0,
        name: [0; PATH_NAME_MAX + 1],
    };
    copy_name(&mut a.name, name)?;
    // SAFETY: see module docs; `a` matches IOC_SUBVOL_CREATE's size.
    check(unsafe { libc::ioctl(dir.as_raw_fd(), IOC_SUBVOL_CREATE as _, &mut a) })
}

/// `BTRFS_IOC_SNAP_CREATE_V2`: snapshots subvolume `src` as `name` in `dir`
/// (writable).
pub fn snapshot(src: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let mut a = VolArgsV2 {
        fd: i64::from(src.as_raw_fd()),
        transid: 0,
        flags: 0,
        unused: [0; 4],
        name: [0; SUBVOL_NAME_MAX + 1],
    };
    copy_name(&mut a.name, name)?;
    // SAFETY: see module docs; `a` matches IOC_SNAP_CREATE_V2's size.
    check(unsafe { libc::ioctl(dir.as_raw_fd(), IOC_SNAP_CREATE_V2 as _, &mut a) })
}

/// `BTRFS_IOC_SNAP_DESTROY`: deletes subvolume `name` in `dir`.
pub fn subvol_delete(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let mut a = VolArgs {
        fd: 0,
        name: [0; PATH_NAME_MAX + 1],
    };
    copy_name(&mut a.name, name)?;
    // SAFETY: see module docs; `a` matches IOC_SNAP_DESTROY's size.
    check(unsafe { libc::ioctl(dir.as_raw_fd(), IOC_SNAP_DESTROY as _, &mut a) })
}

/// `BTRFS_IOC_INO_LOOKUP` for the subvolume root: the ID of the subvolume
/// that `fd` (any file in it) belongs to.
pub fn subvol_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut a = InoLookupArgs {
        treeid: 0,
        objectid: FIRST_FREE_OBJECTID,
        name: [0; 4080],
    };
    // SAFETY: see module docs; `a` matches IOC_INO_LOOKUP's size.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), IOC_INO_LOOKUP as _, &mut a) })?;
    Ok(a.treeid)
}

/// `BTRFS_IOC_QUOTA_CTL(ENABLE)` on the filesystem of `fd`.
pub fn quota_enable(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut a = QuotaCtlArgs {
        cmd: QUOTA_CTL_ENABLE,
        status: 0,
    };
    // SAFETY: see module docs; `a` matches IOC_QUOTA_CTL's size.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), IOC_QUOTA_CTL as _, &mut a) })
}

/// `BTRFS_IOC_QGROUP_LIMIT`: limits the referenced bytes of the subvolume
/// that `fd` is in (qgroup 0/its ID) to `max_rfer`.
pub fn qgroup_limit(fd: BorrowedFd<'_>, max_rfer: u64) -> io::Result<()> {
    let mut a = QgroupLimitArgs {
        qgroupid: 0,
        lim: QgroupLimit {
            flags: LIMIT_MAX_RFER,
            max_rfer,
            max_excl: 0,
            rsv_rfer: 0,
            rsv_excl: 0,
        },
    };
    // SAFETY: see module docs; `a` matches IOC_QGROUP_LIMIT's size.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), IOC_QGROUP_LIMIT as _, &mut a) })
}

/// `BTRFS_IOC_QGROUP_CREATE(create = 0)`: removes qgroup `0/subvol_id`.
pub fn qgroup_destroy(fd: BorrowedFd<'_>, subvol_id: u64) -> io::Result<()> {
    let mut a = QgroupCreateArgs {
        create: 0,
        qgroupid: subvol_id,
    };
    // SAFETY: see module docs; `a` matches IOC_QGROUP_CREATE's size.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), IOC_QGROUP_CREATE as _, &mut a) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_kernel_abi() {
        assert_eq!(std::mem::size_of::<VolArgs>(), 4096);
        assert_eq!(std::mem::size_of::<VolArgsV2>(), 4096);
        assert_eq!(std::mem::size_of::<InoLookupArgs>(), 4096);
        assert_eq!(std::mem::size_of::<QgroupLimitArgs>(), 48);
        // Values from linux/btrfs.h on x86_64.
        assert_eq!(IOC_SUBVOL_CREATE, 0x5000_940e);
        assert_eq!(IOC_SNAP_CREATE_V2, 0x5000_9417);
        assert_eq!(IOC_SNAP_DESTROY, 0x5000_940f);
        assert_eq!(IOC_QUOTA_CTL, 0xc010_9428);
        assert_eq!(IOC_QGROUP_LIMIT, 0x8030_942b);
        assert_eq!(IOC_QGROUP_CREATE, 0x4010_942a);
        assert_eq!(IOC_INO_LOOKUP, 0xd000_9412);
    }

    #[test]
    fn names_are_checked() {
        let mut buf = [0u8; 8];
        assert!(copy_name(&mut buf, OsStr::new("a/b")).is_err());
        assert!(copy_name(&mut buf, OsStr::new("")).is_err());
        assert!(copy_name(&mut buf, OsStr::new("12345678")).is_err());
        copy_name(&mut buf, OsStr::new("abc")).unwrap();
        assert_eq!(&buf[..4], b"abc\0");
    }
}
