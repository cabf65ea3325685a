//! Filesystem magic numbers (the seed's `FsMagic`, `FsNames`, `GetFSMagic`).
//!
//! A driver checks the filesystem under its home before it starts: overlay
//! cannot stack on overlay, btrfs needs btrfs, and so on.

use std::fmt;
use std::path::Path;

use crate::{Error, Result};

/// Filesystem ID as `statfs(2)` reports it in `f_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FsMagic(pub u32);

impl FsMagic {
    /// Not a real filesystem ID: "unsupported / unknown".
    pub const UNSUPPORTED: FsMagic = FsMagic(0x0000_0000);
    /// Aufs.
    pub const AUFS: FsMagic = FsMagic(0x6175_6673);
    /// Btrfs.
    pub const BTRFS: FsMagic = FsMagic(0x9123_683E);
    /// Cramfs.
    pub const CRAMFS: FsMagic = FsMagic(0x28cd_3d45);
    /// eCryptfs.
    pub const ECRYPTFS: FsMagic = FsMagic(0xf15f);
    /// ext2/3/4.
    pub const EXTFS: FsMagic = FsMagic(0x0000_EF53);
    /// F2fs.
    pub const F2FS: FsMagic = FsMagic(0xF2F5_2010);
    /// GPFS.
    pub const GPFS: FsMagic = FsMagic(0x4750_4653);
    /// Jffs2.
    pub const JFFS2: FsMagic = FsMagic(0x0000_72b6);
    /// Jfs.
    pub const JFS: FsMagic = FsMagic(0x3153_464a);
    /// NFS.
    pub const NFS: FsMagic = FsMagic(0x0000_6969);
    /// ramfs.
    pub const RAMFS: FsMagic = FsMagic(0x8584_58f6);
    /// ReiserFS.
    pub const REISERFS: FsMagic = FsMagic(0x5265_4973);
    /// SMB.
    pub const SMBFS: FsMagic = FsMagic(0x0000_517B);
    /// SquashFS.
    pub const SQUASHFS: FsMagic = FsMagic(0x7371_7368);
    /// tmpfs.
    pub const TMPFS: FsMagic = FsMagic(0x0102_1994);
    /// VxFS.
    pub const VXFS: FsMagic = FsMagic(0xa501_fcf5);
    /// XFS.
    pub const XFS: FsMagic = FsMagic(0x5846_5342);
    /// ZFS.
    pub const ZFS: FsMagic = FsMagic(0x2fc1_2fc1);
    /// overlayfs.
    pub const OVERLAY: FsMagic = FsMagic(0x794C_7630);
    /// FUSE (fuse-overlayfs and friends).
    pub const FUSE: FsMagic = FsMagic(0x6573_5546);

    /// The seed's `FsNames` table: every known magic with its name.
    pub const NAMES: &'static [(FsMagic, &'static str)] = &[
        (FsMagic::AUFS, "aufs"),
        (FsMagic::BTRFS, "btrfs"),
        (FsMagic::CRAMFS, "cramfs"),
        (FsMagic::ECRYPTFS, "ecryptfs"),
        (FsMagic::EXTFS, "extfs"),
        (FsMagic::F2FS, "f2fs"),
        (FsMagic::GPFS, "gpfs"),
        (FsMagic::JFFS2, "jffs2"),
        (FsMagic::JFS, "jfs"),
        (FsMagic::NFS, "nfs"),
        (FsMagic::OVERLAY, "overlayfs"),
        (FsMagic::RAMFS, "ramfs"),
        (FsMagic::REISERFS, "reiserfs"),
        (FsMagic::SMBFS, "smb"),
        (FsMagic::SQUASHFS, "squashfs"),
        (FsMagic::TMPFS, "tmpfs"),
        (FsMagic::UNSUPPORTED, "unsupported"),
        (FsMagic::VXFS, "vxfs"),
        (FsMagic::XFS, "xfs"),
        (FsMagic::ZFS, "zfs"),
    ];

    /// Name from [`FsMagic::NAMES`], or `None` for a magic not in the table
    /// (FUSE is deliberately absent there, as in the seed).
    pub fn name(self) -> Option<&'static str> {
        Self::NAMES
            .iter()
            .find(|(m, _)| *m == self)
            .map(|(_, n)| *n)
    }
}

impl fmt::Display for FsMagic {
    /// The name, or `<unknown>` with the hex value (the form drivers print
    /// in `Backing Filesystem`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "<unknown> (0x{:x})", self.0),
        }
    }
}

/// The seed's `FsNames`: name of a magic, `None` when not listed.
pub fn fs_name(magic: FsMagic) -> Option<&'static str> {
    magic.name()
}

/// Filesystem ID of the filesystem holding `path` (the seed's `GetFSMagic`).
pub fn fs_magic(path: &Path) -> Result<FsMagic> {
    strata_sys::statfs::fs_type(path)
        .map(FsMagic)
        .map_err(|e| Error::path("statfs", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_match_constants() {
        let table = [
            (FsMagic::AUFS, "aufs", 0x61756673),
            (FsMagic::BTRFS, "btrfs", 0x9123683E),
            (FsMagic::EXTFS, "extfs", 0xEF53),
            (FsMagic::OVERLAY, "overlayfs", 0x794C7630),
            (FsMagic::TMPFS, "tmpfs", 0x01021994),
            (FsMagic::XFS, "xfs", 0x58465342),
            (FsMagic::ZFS, "zfs", 0x2fc12fc1),
            (FsMagic::UNSUPPORTED, "unsupported", 0),
        ];
        for (m, name, raw) in table {
            assert_eq!(m.0, raw);
            assert_eq!(m.name(), Some(name));
            assert_eq!(m.to_string(), name);
        }
        let mut seen: Vec<u32> = FsMagic::NAMES.iter().map(|(m, _)| m.0).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), FsMagic::NAMES.len());
        assert_eq!(FsMagic::NAMES.len(), 20);
        assert_eq!(fs_name(FsMagic::FUSE), None);
        assert_eq!(FsMagic(0x1234).to_string(), "<unknown> (0x1234)");
    }

    #[test]
    fn magic_of_proc_and_missing() {
        assert_eq!(fs_magic(Path::new("/proc")).unwrap(), FsMagic(0x9fa0));
        let e = fs_magic(Path::new("/nonexistent/x")).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
    }
}
