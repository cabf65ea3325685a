//! The one-pass import pipeline: decompress, read, record, digest, apply.

use std::io::{Read, Write};
use std::os::fd::BorrowedFd;

use idmap::IdMappings;

use crate::{ApplyMode, Compression, Result};

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
