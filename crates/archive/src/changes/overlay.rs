//! Changes recorded in an overlay upper directory, and its export as a
//! layer tar with AUFS whiteouts.
//!
//! The upper directory is walked in name order, parents before children
//! (the reference's walk), and each entry is judged against the lower
//! directories (nearest first):
//! - a character device 0/0 is a `Delete` of its name;
//! - a directory marked opaque that also exists in a lower layer is a
//!   `Delete` of the directory (its lower content is gone); what it holds
//!   now follows as usual;
//! - anything else is `Modify` when the path exists in a lower layer, else
//!   `Add`; a directory that exists below with the same mode, size and
//!   mtime is skipped (it was only copied up for a child);
//! - an `Add` or `Delete` lists every ancestor directory that was skipped
//!   as `Modify` just before it, outermost first.
//!
//! "Exists in a lower layer" means "exists in the parent's merged tree",
//! resolved as overlayfs resolves it ([`Lowers`]): the nearest layer that
//! has the path wins, a whiteout or a non-directory at the path or above it
//! hides everything below, and so does an opaque directory above it for the
//! layers under that one. The reference stops at whiteouts too (so a file
//! under a directory deleted below and recreated is an `Add`), but it looks
//! past opaque directories of lower layers (`Modify` of a path the parent
//! does not have), fails with ENOTDIR under a path that is a file below,
//! and follows symlinks of lower layers (on the host, for absolute ones),
//! which turns a `Modify` of a dangling link into an `Add`; strata stays
//! inside the layers (README, "Differences").

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::export::{whiteout_name, Exporter};
use super::meta::{get_xattr, join, lstat, lstat_opt, read_dir_sorted, same_time, Meta};
use super::{Change, ChangeKind, ExportOptions};
use crate::entry::{EntryKind, Header};
use crate::writer::ModeField;
use crate::{Error, OpaqueXattr, Result};

/// The lower layers of an upper directory (nearest first) as one merged
/// tree, with what has been learnt about their directories cached: an
/// upper directory walk asks about the same ancestors again and again.
struct Lowers<'a> {
    dirs: &'a [PathBuf],
    opaque: OpaqueXattr,
    /// (layer, directory path) → what that layer has there.
    seen: HashMap<(usize, Vec<u8>), Held>,
}

/// What one layer holds at a directory path.
#[derive(Clone, Copy)]
enum Held {
    Nothing,
    /// A whiteout or a non-directory: nothing below it is visible.
    Blocker,
    Dir {
        opaque: bool,
    },
}

impl<'a> Lowers<'a> {
    fn new(dirs: &'a [PathBuf], opaque: OpaqueXattr) -> Self {
        Self {
            dirs,
            opaque,
            seen: HashMap::new(),
        }
    }

    fn held(&mut self, layer: usize, dir: &[u8]) -> Result<Held> {
        if let Some(h) = self.seen.get(&(layer, dir.to_vec())) {
            return Ok(*h);
        }
        let p = join(&self.dirs[layer], dir);
        let h = match lstat_opt(&p)? {
            None => Held::Nothing,
            Some(m) if !m.is_dir() => Held::Blocker,
            Some(_) => Held::Dir {
                opaque: is_opaque(&p, self.opaque)?,
            },
        };
        self.seen.insert((layer, dir.to_vec()), h);
        Ok(h)
    }

    /// The entry at `rel` in the merged tree of the lowers; `None` when
    /// the parent layer's tree has nothing there.
    fn get(&mut self, rel: &[u8]) -> Result<Option<Meta>> {
        let ends: Vec<usize> = rel
            .iter()
            .enumerate()
            .filter_map(|(i, &c)| (c == b'/').then_some(i))
            .collect();
        'layers: for layer in 0..self.dirs.len() {
            // An opaque directory above `rel` in this layer hides the
            // layers under it.
            let mut last_layer = false;
            for &end in &ends {
                match self.held(layer, &rel[..end])? {
                    Held::Nothing if last_layer => return Ok(None),
                    Held::Nothing => continue 'layers,
                    Held::Blocker => return Ok(None),
                    Held::Dir { opaque } => last_layer |= opaque,
                }
            }
            match lstat_opt(&join(&self.dirs[layer], rel))? {
                Some(m) => return Ok((!m.is_whiteout()).then_some(m)),
                None if last_layer => return Ok(None),
                None => {}
            }
        }
        Ok(None)
    }
}

fn is_opaque(path: &Path, opaque: OpaqueXattr) -> Result<bool> {
    Ok(get_xattr(path, opaque.name().as_bytes())?.as_deref() == Some(b"y"))
}

/// Called by [`walk`] with the path in the layer, the path on disk and its
/// metadata.
type Visit<'a> = dyn FnMut(&[u8], &Path, &Meta) -> Result<()> + 'a;

/// Visits every entry below `dir` in walk order: `f(path_in_layer, meta)`
/// where the path has no leading `/`.
fn walk(dir: &Path, rel: &mut Vec<u8>, f: &mut Visit<'_>) -> Result<()> {
    for name in read_dir_sorted(dir)? {
        let len = rel.len();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(&name);
        let p = join(dir, &name);
        let m = lstat(&p).map_err(|e| Error::io(format!("lstat {}", p.display()), e))?;
        f(rel, &p, &m)?;
        if m.is_dir() {
            walk(&p, rel, f)?;
        }
        rel.truncate(len);
    }
    Ok(())
}

fn abs(rel: &[u8]) -> Vec<u8> {
    [&b"/"[..], rel].concat()
}

/// See [`super::overlay_changes`].
pub(crate) fn overlay_changes(
    upper: &Path,
    lowers: &[PathBuf],
    opaque: OpaqueXattr,
) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    let mut changed_dirs: HashSet<Vec<u8>> = HashSet::new();
    let mut lowers = Lowers::new(lowers, opaque);
    walk(upper, &mut Vec::new(), &mut |rel, path, m| {
        let below = lowers.get(rel)?;
        let kind = if m.is_whiteout() || (m.is_dir() && below.is_some() && is_opaque(path, opaque)?)
        {
            ChangeKind::Delete
        } else {
            match below {
                None => ChangeKind::Add,
                Some(b) => {
                    if m.is_dir()
                        && b.is_dir()
                        && m.size == b.size
                        && m.mode == b.mode
                        && same_time(m.mtime, b.mtime)
                    {
                        return Ok(());
                    }
                    ChangeKind::Modify
                }
            }
        };
        if m.is_dir() {
            changed_dirs.insert(rel.to_vec());
        }
        if kind != ChangeKind::Modify {
            // Every ancestor that was skipped as unchanged, outermost first.
            let ends: Vec<usize> = rel
                .iter()
                .enumerate()
                .filter_map(|(i, &c)| (c == b'/').then_some(i))
                .collect();
            for end in ends {
                let dir = &rel[..end];
                if changed_dirs.insert(dir.to_vec()) {
                    out.push(Change {
                        path: abs(dir),
                        kind: ChangeKind::Modify,
                    });
                }
            }
        }
        out.push(Change {
            path: abs(rel),
            kind,
        });
        Ok(())
    })?;
    Ok(out)
}

/// See [`super::export_overlay_upper`].
pub(crate) fn export_overlay_upper(
    upper: &Path,
    lowers: &[PathBuf],
    opts: &ExportOptions,
    out: &mut dyn Write,
) -> Result<()> {
    // Members in walk order (a directory's subtree before `dir.conf`), as
    // the reference's driver diff writes them.
    let mut ex = Exporter::new(out, opts);
    let mut lowers = Lowers::new(lowers, opts.opaque);
    walk(upper, &mut Vec::new(), &mut |rel, path, m| {
        if m.is_whiteout() {
            // The whiteout keeps its own owner, mode bits and time.
            let Some(mut h) = ex.header(path, m, rel)? else {
                return Ok(());
            };
            h.path = whiteout_name(rel);
            h.raw_path = h.path.clone();
            h.kind = EntryKind::File;
            h.xattrs.clear();
            return ex.tar.append_header_with(&h, ModeField::PermissionsOnly);
        }
        ex.add_file(path, m, rel)?;
        if m.is_dir() && is_opaque(path, opts.opaque)? && lowers.get(rel)?.is_some() {
            let Some(dir) = ex.header(path, m, rel)? else {
                return Ok(());
            };
            let mut h = Header::new([rel, b"/.wh..wh..opq"].concat(), EntryKind::File);
            h.mode = dir.mode & 0o777;
            h.uid = dir.uid;
            h.gid = dir.gid;
            h.uname = dir.uname;
            h.gname = dir.gname;
            ex.tar.append_header_with(&h, ModeField::PermissionsOnly)?;
        }
        Ok(())
    })?;
    ex.tar.finish()?;
    Ok(())
}
