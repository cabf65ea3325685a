//! Changes between layers, their export as a tar stream, and their size.

use std::io::Write;
use std::path::{Path, PathBuf};

use idmap::IdMappings;

use crate::{OpaqueXattr, Result};

/// Kind of a change, numbered as containers/storage numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    /// Content or metadata changed.
    Modify = 0,
    /// Created.
    Add = 1,
    /// Deleted.
    Delete = 2,
}

/// One change: an absolute path inside the layer (`/etc/passwd`) and its kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Change {
    /// Path starting with `/`, as bytes (names need not be UTF-8).
    pub path: Vec<u8>,
    /// What happened.
    pub kind: ChangeKind,
}

/// Options of [`export_changes`] and [`export_overlay_upper`].
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Host→container translation of owners (the layer's maps).
    pub id_mappings: IdMappings,
    /// Opaque-directory xattr of the upper directory (overlay export).
    pub opaque: OpaqueXattr,
}

/// Changes of `layer` against `parent` (both full trees); all `Add` when
/// `parent` is `None`. Sorted as containers/storage sorts them.
pub fn changes_between(layer: &Path, parent: Option<&Path>) -> Result<Vec<Change>> {
    let _ = (layer, parent);
    Err(crate::Error::Unsupported(
        "changes between trees (not yet implemented)".into(),
    ))
}

/// Changes recorded in an overlay upper directory: character-device 0/0
/// whiteouts are deletions, opaque directories delete their lower children.
pub fn overlay_changes(
    upper: &Path,
    lowers: &[PathBuf],
    opaque: OpaqueXattr,
) -> Result<Vec<Change>> {
    let _ = (upper, lowers, opaque);
    Err(crate::Error::Unsupported(
        "overlay changes (not yet implemented)".into(),
    ))
}

/// Writes `changes` of the tree at `root` as an uncompressed tar with
/// AUFS-style whiteouts.
pub fn export_changes(
    root: &Path,
    changes: &[Change],
    opts: &ExportOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let _ = (root, changes, opts, out);
    Err(crate::Error::Unsupported(
        "export (not yet implemented)".into(),
    ))
}

/// Writes an overlay upper directory as a layer tar, converting whiteouts and
/// opaque markers to AUFS form (`.wh..wh..opq` only where the directory exists
/// in one of `lowers`).
pub fn export_overlay_upper(
    upper: &Path,
    lowers: &[PathBuf],
    opts: &ExportOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let _ = (upper, lowers, opts, out);
    Err(crate::Error::Unsupported(
        "overlay export (not yet implemented)".into(),
    ))
}

/// Bytes that `changes` add: sizes of added or modified regular files,
/// hard links counted once, deletions zero.
pub fn changes_size(root: &Path, changes: &[Change]) -> Result<u64> {
    let _ = (root, changes);
    Err(crate::Error::Unsupported(
        "changes size (not yet implemented)".into(),
    ))
}
