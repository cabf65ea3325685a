//! Confined application of a layer stream into a directory.
//!
//! Every path is resolved inside the root by a directory handle with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`; metadata is set through
//! file descriptors or `*at(…, AT_SYMLINK_NOFOLLOW)`. See DESIGN.md,
//! "Confinement".

use std::io::{Read, Write};
use std::os::fd::BorrowedFd;

use idmap::IdMappings;

use crate::{Compression, Result};

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

/// Options of [`apply_layer`].
#[derive(Default)]
pub struct ApplyOptions {
    /// Overlay form or full tree.
    pub mode: ApplyMode,
    /// Container→host ID maps for owners.
    pub id_mappings: IdMappings,
    /// Turn chown failures into one warning instead of an error.
    pub ignore_chown_errors: bool,
    /// When set, every file gets this mode and its real `uid:gid:mode` is
    /// stored in the `user.containers.override_stat` xattr.
    pub force_mask: Option<u32>,
    /// Receives the tar-split record as JSON lines (uncompressed); the caller
    /// compresses it.
    pub tar_split: Option<Box<dyn Write + Send>>,
}

/// What one pass over a layer stream measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Detected compression of the input.
    pub compression: Compression,
    /// `sha256:<hex>` of the input bytes as given.
    pub compressed_digest: String,
    /// Number of input bytes as given.
    pub compressed_size: u64,
    /// `sha256:<hex>` of the uncompressed tar stream.
    pub uncompressed_digest: String,
    /// Number of bytes of the uncompressed tar stream.
    pub uncompressed_size: u64,
    /// Container uids seen in the stream, sorted, unique.
    pub uids: Vec<u32>,
    /// Container gids seen in the stream, sorted, unique.
    pub gids: Vec<u32>,
}

/// Applies a (possibly compressed) layer stream into the directory `root`.
///
/// On error the root may hold part of the layer; the caller removes it.
pub fn apply_layer(
    root: BorrowedFd<'_>,
    input: impl Read + Send,
    opts: ApplyOptions,
) -> Result<ApplyReport> {
    let _ = (root, input, opts);
    Err(crate::Error::Unsupported(
        "apply (not yet implemented)".into(),
    ))
}
