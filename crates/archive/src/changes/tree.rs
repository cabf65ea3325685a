//! Changes between two full trees (vfs, btrfs and the naive diff).
//!
//! Both trees are walked together, one directory at a time; the subtrees of
//! a directory are compared in parallel (rayon) and their results joined in
//! name order, so the output is deterministic.
//!
//! The rules follow containers/storage's `changes` for trees:
//! - an entry only in the new tree is `Add`, and so is everything below it;
//! - an entry in both is `Modify` when type or mode, owner (in container ID
//!   space), rdev, the `user.*` xattrs or `security.capability` differ, or,
//!   for non-directories, size or mtime (see [`super::meta::same_time`]) —
//!   and, unlike the reference, when a symlink's target differs (the
//!   reference misses a retarget that keeps size and mtime);
//! - entries of an old directory missing in the new one are `Delete`d after
//!   the directory's other changes; nothing below a deleted directory, or
//!   below an old directory replaced by a non-directory, is listed;
//! - a directory whose subtree has changes but that is not itself changed
//!   is listed as `Modify` before them; the root never is.
//!
//! The reference lists siblings in Go map order, which is random from run to
//! run; strata lists them by name (bytes), deletions after the rest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use strata_idmap::{IdMappings, IdPair};

use super::meta::{self, join, layer_xattrs, lstat, read_dir_sorted, same_time, Meta, XattrSet};
use super::{Change, ChangeKind};
use crate::{Error, Result};

/// ID maps of the two trees of [`changes_between_mapped`]: owners are
/// compared in container ID space.
#[derive(Debug, Clone, Default)]
pub struct TreeIdMaps {
    /// Maps of the newer tree (the layer).
    pub layer: IdMappings,
    /// Maps of the older tree (the parent).
    pub parent: IdMappings,
}

struct Ctx<'a> {
    maps: &'a TreeIdMaps,
}

/// Changes of `layer` against `parent` with owners compared in container ID
/// space through each tree's maps.
pub fn changes_between_mapped(
    layer: &Path,
    parent: Option<&Path>,
    maps: &TreeIdMaps,
) -> Result<Vec<Change>> {
    let ctx = Ctx { maps };
    let root = lstat(layer).map_err(|e| Error::io(format!("lstat {}", layer.display()), e))?;
    if !root.is_dir() {
        return Err(Error::io(
            format!("{} is not a directory", layer.display()),
            std::io::ErrorKind::NotADirectory.into(),
        ));
    }
    let old = match parent {
        Some(p) => Some(lstat(p).map_err(|e| Error::io(format!("lstat {}", p.display()), e))?),
        None => None,
    };
    let old_dir = match (parent, old) {
        (Some(p), Some(m)) if m.is_dir() => Some(p.to_path_buf()),
        _ => None,
    };
    let mut out = Vec::new();
    compare_dir(&ctx, layer, old_dir.as_deref(), b"", &mut out)?;
    Ok(out)
}

/// One entry of the new tree and what it was in the old one.
struct Pair {
    name: Vec<u8>,
    new: Meta,
    old: Option<Meta>,
}

/// Appends the changes below the directory `new_dir` (whose path in the
/// layer is `rel`, `""` for the root) against `old_dir` (`None`: all added).
fn compare_dir(
    ctx: &Ctx<'_>,
    new_dir: &Path,
    old_dir: Option<&Path>,
    rel: &[u8],
    out: &mut Vec<Change>,
) -> Result<()> {
    let new_names = read_dir_sorted(new_dir)?;
    let mut old_entries: HashMap<Vec<u8>, Meta> = HashMap::new();
    let mut old_names = Vec::new();
    if let Some(od) = old_dir {
        old_names = read_dir_sorted(od)?;
        for name in &old_names {
            let p = join(od, name);
            let m = lstat(&p).map_err(|e| Error::io(format!("lstat {}", p.display()), e))?;
            old_entries.insert(name.clone(), m);
        }
    }
    let mut pairs = Vec::with_capacity(new_names.len());
    for name in new_names {
        let p = join(new_dir, &name);
        let new = lstat(&p).map_err(|e| Error::io(format!("lstat {}", p.display()), e))?;
        let old = old_entries.remove(&name);
        pairs.push(Pair { name, new, old });
    }

    // Each child's own change and its subtree, computed in parallel.
    let results: Vec<Result<Vec<Change>>> = pairs
        .par_iter()
        .map(|pair| child_changes(ctx, new_dir, old_dir, rel, pair))
        .collect();
    for r in results {
        out.extend(r?);
    }
    for name in old_names {
        if old_entries.contains_key(&name) {
            out.push(Change {
                path: child_path(rel, &name),
                kind: ChangeKind::Delete,
            });
        }
    }
    Ok(())
}

fn child_path(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(rel.len() + name.len() + 1);
    p.extend_from_slice(rel);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

fn child_changes(
    ctx: &Ctx<'_>,
    new_dir: &Path,
    old_dir: Option<&Path>,
    rel: &[u8],
    pair: &Pair,
) -> Result<Vec<Change>> {
    let path = child_path(rel, &pair.name);
    let new_path = join(new_dir, &pair.name);
    let mut out = Vec::new();
    let own = match pair.old {
        None => Some(ChangeKind::Add),
        Some(old) => {
            let old_path = join(old_dir.unwrap_or(Path::new("")), &pair.name);
            differs(ctx, &pair.new, &new_path, &old, &old_path)?.then_some(ChangeKind::Modify)
        }
    };
    if let Some(kind) = own {
        out.push(Change {
            path: path.clone(),
            kind,
        });
    }
    if pair.new.is_dir() {
        let old_sub: Option<PathBuf> = match pair.old {
            Some(old) if old.is_dir() => old_dir.map(|d| join(d, &pair.name)),
            _ => None,
        };
        let before = out.len();
        compare_dir(ctx, &new_path, old_sub.as_deref(), &path, &mut out)?;
        if own.is_none() && out.len() > before {
            out.insert(
                before,
                Change {
                    path,
                    kind: ChangeKind::Modify,
                },
            );
        }
    }
    Ok(out)
}

fn container_ids(maps: &IdMappings, m: &Meta) -> IdPair {
    let host = IdPair {
        uid: m.uid,
        gid: m.gid,
    };
    maps.to_container(host).unwrap_or(host)
}

fn differs(
    ctx: &Ctx<'_>,
    new: &Meta,
    new_path: &Path,
    old: &Meta,
    old_path: &Path,
) -> Result<bool> {
    if new.mode != old.mode
        || new.rdev != old.rdev
        || container_ids(&ctx.maps.layer, new) != container_ids(&ctx.maps.parent, old)
    {
        return Ok(true);
    }
    if !old.is_dir() && (!same_time(new.mtime, old.mtime) || new.size != old.size) {
        return Ok(true);
    }
    if new.file_type() == meta::S_IFLNK {
        let a = std::fs::read_link(new_path)
            .map_err(|e| Error::io(format!("readlink {}", new_path.display()), e))?;
        let b = std::fs::read_link(old_path)
            .map_err(|e| Error::io(format!("readlink {}", old_path.display()), e))?;
        if a != b {
            return Ok(true);
        }
    }
    Ok(layer_xattrs(new_path, XattrSet::Compared)? != layer_xattrs(old_path, XattrSet::Compared)?)
}
