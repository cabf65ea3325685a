//! Confined application of a layer stream into a directory.
//!
//! Every path is resolved inside the root by a directory handle with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`; metadata is set through
//! file descriptors or `*at(…, AT_SYMLINK_NOFOLLOW)`. See DESIGN.md,
//! "Confinement".

use std::os::fd::BorrowedFd;

use idmap::IdMappings;

use crate::entry::Item;
use crate::Result;

/// How whiteouts are stored in an overlay-form layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhiteoutStyle {
    /// Character device 0/0 named after the deleted entry (kernel overlay).
    #[default]
    CharDevice,
    /// Keep `.wh.NAME` as empty regular files (fuse-overlayfs without
    /// `CAP_MKNOD`, AUFS).
    AufsFiles,
}

/// Which xattr namespace marks opaque directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpaqueXattr {
    /// `trusted.overlay.opaque` (root).
    #[default]
    Trusted,
    /// `user.overlay.opaque` (rootless overlay with `userxattr`).
    User,
}

impl OpaqueXattr {
    /// The xattr name.
    pub fn name(self) -> &'static str {
        match self {
            OpaqueXattr::Trusted => "trusted.overlay.opaque",
            OpaqueXattr::User => "user.overlay.opaque",
        }
    }
}

/// Where and how entries land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// Into an empty directory that becomes an overlay upper/lower layer:
    /// whiteouts are stored, not executed.
    Overlay {
        /// How deletions are stored.
        whiteouts: WhiteoutStyle,
        /// Which xattr marks opaque directories.
        opaque: OpaqueXattr,
    },
    /// Onto a full copy of the parent tree (vfs, btrfs): whiteouts delete.
    FullTree,
}

impl Default for ApplyMode {
    fn default() -> Self {
        ApplyMode::Overlay {
            whiteouts: WhiteoutStyle::CharDevice,
            opaque: OpaqueXattr::Trusted,
        }
    }
}

/// Options of an [`Applier`].
#[derive(Debug, Clone, Default)]
pub struct ApplierOptions {
    /// Overlay form or full tree.
    pub mode: ApplyMode,
    /// Container→host ID maps for owners.
    pub id_mappings: IdMappings,
    /// Turn chown failures into one warning instead of an error.
    pub ignore_chown_errors: bool,
    /// When set, every file gets this mode and its real `uid:gid:mode` is
    /// stored in the `user.containers.override_stat` xattr.
    pub force_mask: Option<u32>,
}

/// Writes a stream of [`Item`]s into a directory handle, confined to it.
pub struct Applier<'fd> {
    root: BorrowedFd<'fd>,
    opts: ApplierOptions,
}

impl<'fd> Applier<'fd> {
    /// An applier writing under `root`.
    pub fn new(root: BorrowedFd<'fd>, opts: ApplierOptions) -> Result<Self> {
        Ok(Self { root, opts })
    }

    /// Consumes one item of the entry stream.
    pub fn push(&mut self, item: Item) -> Result<()> {
        let _ = (self.root, &self.opts, item);
        Err(crate::Error::Unsupported(
            "apply (not yet implemented)".into(),
        ))
    }

    /// Finishes: sets deferred directory times and metadata.
    pub fn finish(self) -> Result<()> {
        Err(crate::Error::Unsupported(
            "apply (not yet implemented)".into(),
        ))
    }
}
