//! Copying a tree from one root into another, neither side leaving its
//! root (the `copy` command of containers-storage).
//!
//! The source is resolved inside its root and walked by descriptors only
//! ([`source`]); the destination is written by the confined [`Applier`]
//! (full-tree mode) rooted at the destination root, fed entries named
//! `<dest>/<relative path>`, so symlinks already in the destination
//! resolve inside it, as in a chroot, never on the host.
//!
//! As the reference: a directory's contents merge into the destination
//! (which takes the source directory's mode and owner, except the root,
//! which keeps its own); a non-directory replaces what is at the
//! destination unless that is a directory; an owner override owns
//! everything copied; modes with set-id bits, hard links among the copied
//! files, modification times, `user.*` xattrs and file capabilities are
//! kept. Unlike the reference, a source that is itself a symlink is copied
//! as a symlink, not as its target.

mod source;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType};

use crate::apply::path::{normalize, split_parent};
use crate::{Applier, ApplierOptions, ApplyMode, Error, Result};

/// What [`copy_tree`] copies where.
#[derive(Debug, Clone, Copy)]
pub struct CopyRequest<'a> {
    /// Root the source path is resolved in (a layer's mount, or `/`).
    pub source_root: BorrowedFd<'a>,
    /// The source path inside `source_root`; its last component is not
    /// followed.
    pub source: &'a [u8],
    /// Root of the destination tree.
    pub dest_root: BorrowedFd<'a>,
    /// Where the source lands inside `dest_root`, as [`dest_name`] gives it
    /// (empty for the root itself).
    pub dest: &'a [u8],
    /// Owner given to everything copied (`--chown UID:GID`), else each
    /// object keeps its own.
    pub owner: Option<(u32, u32)>,
}

/// The entry name of a destination path inside its root: no leading `/`,
/// no `.` components, `..` resolved lexically and stopped at the root.
pub fn dest_name(path: &[u8]) -> Vec<u8> {
    normalize(path).path
}

/// Copies the object at `req.source` and everything below it to
/// `req.dest`.
pub fn copy_tree(req: &CopyRequest<'_>) -> Result<()> {
    let node = source::lookup(req.source_root, req.source)?;
    let top = check_destination(req.dest_root, req.dest, node.is_dir())?;
    let applier = Applier::new(
        req.dest_root,
        ApplierOptions {
            mode: ApplyMode::FullTree,
            ..Default::default()
        },
    )?;
    let mut walk = source::Walk {
        applier,
        owner: req.owner,
        dest: req.dest.to_vec(),
        top,
        links: HashMap::new(),
        dest_root: req.dest_root,
        dest_ident: None,
    };
    walk.run(&node)?;
    walk.applier.finish()
}

/// Refuses what the reference refuses: a non-directory over a directory,
/// a directory over a non-directory (a symlink there is replaced, never
/// followed); says whether a directory source merges into an existing
/// directory. The lookup is confined to the root; the check only shapes
/// errors and metadata, confinement does not depend on it.
fn check_destination(droot: BorrowedFd<'_>, dname: &[u8], src_is_dir: bool) -> Result<TopDir> {
    let shown = format!("/{}", String::from_utf8_lossy(dname));
    let existing = if dname.is_empty() {
        Some(FileType::Directory)
    } else {
        let (parent, name) = split_parent(dname);
        // Missing parents are created by the applier, which reports any
        // other problem with the path.
        source::open_dir_in(droot, parent).ok().and_then(|dir| {
            rustix::fs::statat(&dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW)
                .ok()
                .map(|st| FileType::from_raw_mode(st.st_mode))
        })
    };
    match existing {
        Some(FileType::Directory) if !src_is_dir => Err(Error::Copy(format!(
            "cannot overwrite directory {shown:?} with non-directory"
        ))),
        Some(FileType::Directory) => Ok(TopDir::Merge),
        None | Some(FileType::Symlink) => Ok(TopDir::Make),
        Some(_) if src_is_dir => Err(Error::Copy(format!(
            "cannot copy a directory onto {shown:?}: not a directory"
        ))),
        Some(_) => Ok(TopDir::Make),
    }
}

/// What happens to the destination of a directory source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopDir {
    /// It is made (or replaces a symlink).
    Make,
    /// It exists: its contents merge, its metadata stays.
    Merge,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for (path, want) in [
            ("/../../etc", "etc"),
            ("/", ""),
            ("", ""),
            ("/a/./b/", "a/b"),
            ("a/../../b/c", "b/c"),
            ("//x//y", "x/y"),
        ] {
            assert_eq!(dest_name(path.as_bytes()), want.as_bytes(), "{path}");
        }
        assert_eq!(source::split_last(b"a/b/c/"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(source::split_last(b"c"), (&b""[..], &b"c"[..]));
    }
}
