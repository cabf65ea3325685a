//! Changes between layers, their export as a tar stream, and their size.
//!
//! - [`changes_between`]: two full trees (vfs, btrfs, naive diff);
//! - [`overlay_changes`]: an overlay upper directory against its lowers;
//! - [`export_changes`] / [`export_overlay_upper`]: a layer tar with AUFS
//!   whiteouts, shaped like containers/storage's `diff` output;
//! - [`changes_size`]: what `diffsize` reports;
//! - [`Change::to_line`]: one line as the `changes` command prints it.

use std::io::Write;
use std::path::{Path, PathBuf};

use strata_idmap::IdMappings;

use crate::{OpaqueXattr, Result};

mod export;
pub(crate) mod meta;
mod overlay;
mod quote;
mod tree;

pub use quote::go_quote;
pub use tree::{changes_between_mapped, TreeIdMaps};

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
    /// Whether owners and modes come from `user.containers.override_stat`
    /// (layers written with `force_mask`).
    pub override_stat: OverrideStat,
    /// Order of the members ([`export_changes`]).
    pub order: ExportOrder,
}

/// Member order of [`export_changes`], as the reference orders its diffs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportOrder {
    /// Sorted by path bytes, a deletion at the place of the deleted path
    /// (`a`, `a-b`, `a/x`): the reference's diff of a layer against a
    /// parent.
    #[default]
    ByPath,
    /// A walk of the tree, each directory before what it holds, siblings
    /// by name (`a`, `a/x`, `a-b`): the reference's diff of a layer with no
    /// parent, which is a tar of the whole tree.
    Walk,
}

/// Where [`export_changes`] and [`export_overlay_upper`] take owners and
/// modes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverrideStat {
    /// From the files themselves.
    #[default]
    Ignore,
    /// From the `user.containers.override_stat` xattr (`uid:gid:0mode`,
    /// host IDs) where a file has one, as a layer written with
    /// `force_mask` keeps them; the file's own when it has none.
    Use,
}

impl ChangeKind {
    /// The word the `changes` command prints: `Modify`, `Add`, `Delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Modify => "Modify",
            ChangeKind::Add => "Add",
            ChangeKind::Delete => "Delete",
        }
    }
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Change {
    /// The line the `changes` command prints for this change, without the
    /// newline: `Modify "/etc"`, the path quoted as Go's `%q` quotes it.
    pub fn to_line(&self) -> String {
        format!("{} {}", self.kind, go_quote(&self.path))
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_line())
    }
}

/// Changes of `layer` against `parent` (both full trees); all `Add` when
/// `parent` is `None`. Siblings are listed by name, each directory before
/// what it holds, deletions after the rest of their directory — one of the
/// orders the reference produces (its sibling order is random).
pub fn changes_between(layer: &Path, parent: Option<&Path>) -> Result<Vec<Change>> {
    changes_between_mapped(layer, parent, &TreeIdMaps::default())
}

/// Changes recorded in an overlay upper directory: character-device 0/0
/// whiteouts are deletions, opaque directories delete their lower children.
/// `lowers` are the lower layers' directories, nearest first. The order is
/// the reference's (a walk by name).
pub fn overlay_changes(
    upper: &Path,
    lowers: &[PathBuf],
    opaque: OpaqueXattr,
) -> Result<Vec<Change>> {
    overlay::overlay_changes(upper, lowers, opaque)
}

/// Writes `changes` of the tree at `root` as an uncompressed tar with
/// AUFS-style whiteouts.
pub fn export_changes(
    root: &Path,
    changes: &[Change],
    opts: &ExportOptions,
    out: &mut dyn Write,
) -> Result<()> {
    export::export_changes(root, changes, opts, out)
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
    overlay::export_overlay_upper(upper, lowers, opts, out)
}

/// Bytes that `changes` add: sizes of added or modified non-directories
/// (regular files, and symlinks by their target length, as the reference
/// counts them), hard links counted once, deletions zero. A changed path
/// that no longer exists counts zero.
pub fn changes_size(root: &Path, changes: &[Change]) -> Result<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    for c in changes {
        if c.kind == ChangeKind::Delete {
            continue;
        }
        let rel = c.path.strip_prefix(b"/").unwrap_or(&c.path);
        let Some(m) = meta::lstat_opt(&meta::join(root, rel))? else {
            continue;
        };
        if m.is_dir() || (m.nlink > 1 && !seen.insert((m.dev, m.ino))) {
            continue;
        }
        total += m.size;
    }
    Ok(total)
}
