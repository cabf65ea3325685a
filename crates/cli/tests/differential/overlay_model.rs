//! The changes of an overlay layer, read from its upper directory against
//! its lower directories as the reference's native diff does, computed two
//! ways to judge a disagreement:
//! - with the reference's way of looking a path up in the lowers
//!   ([`Lookup::REFERENCE`]): whiteouts at or above the path stop it, the
//!   path is `stat`ed (following symlinks, absolute ones on the host),
//!   opaque directories of lower layers are not consulted, and ENOTDIR is
//!   an error;
//! - as the parent's merged tree has it ([`Lookup::MERGED`]): `lstat`, and
//!   whiteouts, non-directories and opaque directories hide what is below
//!   them, as overlayfs shows it.
//!
//! When the reference's answer is the first, strata's the second, and they
//! differ, the difference is one of the reference's known faults. This is
//! the test's own reading of the rules, written apart from strata's.

use std::collections::{BTreeSet, HashSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// How a path is looked up in the lower layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    /// `stat` (follow symlinks) instead of `lstat`.
    pub follow: bool,
    /// Opaque directories of lower layers hide nothing.
    pub opaque_blind: bool,
    /// A non-directory above the path is not a stop: the path is `stat`ed
    /// through it, and ENOTDIR is an error.
    pub notdir_error: bool,
}

impl Lookup {
    pub const REFERENCE: Lookup = Lookup {
        follow: true,
        opaque_blind: true,
        notdir_error: true,
    };
    pub const MERGED: Lookup = Lookup {
        follow: false,
        opaque_blind: false,
        notdir_error: false,
    };
}

const OPAQUE: &str = "trusted.overlay.opaque";

/// What the rules look at of a lower entry.
#[derive(Clone, Copy)]
struct Found {
    dir: bool,
    size: u64,
    mode: u32,
    mtime: (i64, i64),
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    super::snapshot::get_xattr(p, OPAQUE).is_ok_and(|v| v == b"y")
}

fn errno(e: &std::io::Error) -> Option<rustix::io::Errno> {
    e.raw_os_error().map(rustix::io::Errno::from_raw_os_error)
}

/// `rel` (no leading `/`) in `lowers` (nearest first).
fn lookup(lowers: &[PathBuf], rel: &str, how: Lookup) -> Result<Option<Found>, String> {
    let parts: Vec<&str> = rel.split('/').collect();
    'layers: for l in lowers {
        let mut opaque_above = false;
        let mut dir = l.clone();
        for part in &parts[..parts.len() - 1] {
            dir = dir.join(part);
            match std::fs::symlink_metadata(&dir) {
                Err(e) if errno(&e) == Some(rustix::io::Errno::NOENT) => {
                    if opaque_above {
                        return Ok(None);
                    }
                    continue 'layers;
                }
                Err(e) => return Err(format!("lstat {}: {e}", dir.display())),
                Ok(m) if is_whiteout(&m) => return Ok(None),
                Ok(m) if !m.is_dir() => {
                    if how.notdir_error {
                        break;
                    }
                    return Ok(None);
                }
                Ok(_) => opaque_above |= !how.opaque_blind && is_opaque(&dir),
            }
        }
        let p = l.join(rel);
        let m = if how.follow {
            std::fs::metadata(&p)
        } else {
            std::fs::symlink_metadata(&p)
        };
        match m {
            Ok(m) if is_whiteout(&m) => return Ok(None),
            Ok(m) => {
                return Ok(Some(Found {
                    dir: m.is_dir(),
                    size: m.size(),
                    mode: m.mode(),
                    mtime: (m.mtime(), m.mtime_nsec()),
                }))
            }
            Err(e) => match errno(&e) {
                Some(rustix::io::Errno::NOENT) if opaque_above => return Ok(None),
                Some(rustix::io::Errno::NOENT) => {}
                Some(rustix::io::Errno::NOTDIR) if !how.notdir_error => {}
                _ => return Err(format!("stat {}: {e}", p.display())),
            },
        }
    }
    Ok(None)
}

/// Entries of `upper` in walk order (parents first, by name), as paths
/// without a leading `/`.
fn walk(upper: &Path) -> Vec<String> {
    fn go(dir: &Path, rel: &str, out: &mut Vec<String>) {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            let child = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            out.push(child.clone());
            let p = dir.join(&n);
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                go(&p, &child, out);
            }
        }
    }
    let mut out = Vec::new();
    go(upper, "", &mut out);
    out
}

fn same_time(a: (i64, i64), b: (i64, i64)) -> bool {
    a.0 == b.0 && (a.1 == b.1 || a.1 == 0 || b.1 == 0)
}

/// The `changes` lines of the layer whose upper directory is `upper`,
/// sorted; an error where the lookup fails.
pub fn changes(upper: &Path, lowers: &[PathBuf], how: Lookup) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut changed_dirs: HashSet<String> = HashSet::new();
    for rel in walk(upper) {
        let p = upper.join(&rel);
        let m = std::fs::symlink_metadata(&p).unwrap();
        let deleted = is_whiteout(&m)
            || (m.is_dir() && is_opaque(&p) && lookup(lowers, &rel, how)?.is_some());
        let kind = if deleted {
            "Delete"
        } else {
            match lookup(lowers, &rel, how)? {
                None => "Add",
                Some(b) => {
                    if m.is_dir()
                        && b.dir
                        && m.size() == b.size
                        && m.mode() == b.mode
                        && same_time((m.mtime(), m.mtime_nsec()), b.mtime)
                    {
                        continue;
                    }
                    "Modify"
                }
            }
        };
        if m.is_dir() {
            changed_dirs.insert(rel.clone());
        }
        if kind != "Modify" {
            let mut ancestors = Vec::new();
            let mut a = rel.as_str();
            while let Some(i) = a.rfind('/') {
                a = &a[..i];
                ancestors.push(a.to_string());
            }
            for a in ancestors.into_iter().rev() {
                if changed_dirs.insert(a.clone()) {
                    out.push(format!("Modify {:?}", format!("/{a}")));
                }
            }
        }
        out.push(format!("{kind} {:?}", format!("/{rel}")));
    }
    out.sort();
    Ok(out)
}

/// Opaque directories of `upper` that the diff marks with `.wh..wh..opq`:
/// those the lowers have (a failed lookup counts as "not there", as the
/// reference's export does not fail on it).
pub fn opaque_markers(upper: &Path, lowers: &[PathBuf], how: Lookup) -> BTreeSet<String> {
    walk(upper)
        .into_iter()
        .filter(|rel| {
            let p = upper.join(rel);
            std::fs::symlink_metadata(&p).unwrap().is_dir()
                && is_opaque(&p)
                && matches!(lookup(lowers, rel, how), Ok(Some(_)))
        })
        .collect()
}

/// Entries of `upper` whose path in a lower layer is itself a symlink
/// that `stat` cannot resolve (`ELOOP`: a link to itself, or a cycle;
/// not the paths below such a link, which the reference keeps). The
/// reference `stat`s lower paths, following links: for such an entry its
/// `changes` fail and its diff leaves the entry out (it logs "Can't add
/// file … too many levels of symbolic links" and goes on).
pub fn lower_loops(upper: &Path, lowers: &[PathBuf]) -> BTreeSet<String> {
    walk(upper)
        .into_iter()
        .filter(|rel| {
            lowers.iter().any(|l| {
                let p = l.join(rel);
                std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink())
                    && std::fs::metadata(&p)
                        .is_err_and(|e| errno(&e) == Some(rustix::io::Errno::LOOP))
            })
        })
        .collect()
}
