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
//! Lower paths are examined with `lstat`. The reference follows a final
//! symlink there (absolute ones resolve on the host), which can turn a
//! `Modify` of a dangling link into an `Add`; strata stays inside the layers.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::export::{whiteout_name, Exporter};
use super::meta::{get_xattr, join, lstat, lstat_opt, read_dir_sorted, same_time, Meta};
use super::{Change, ChangeKind, ExportOptions};
use crate::entry::{EntryKind, Header};
use crate::writer::ModeField;
use crate::{Error, OpaqueXattr, Result};

/// The first lower layer holding `rel`, with its metadata; `None` when no
/// lower has it or the first one that does holds a whiteout there (as the
/// reference judges it; opaque directories in lowers are not consulted).
fn in_lowers(lowers: &[PathBuf], rel: &[u8]) -> Result<Option<Meta>> {
    for l in lowers {
        if let Some(m) = lstat_opt(&join(l, rel))? {
            return Ok((!m.is_whiteout()).then_some(m));
        }
    }
    Ok(None)
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
    walk(upper, &mut Vec::new(), &mut |rel, path, m| {
        let below = in_lowers(lowers, rel)?;
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
        if m.is_dir() && is_opaque(path, opts.opaque)? && in_lowers(lowers, rel)?.is_some() {
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
