//! Finds members whose content a later member of the same stream replaced
//! or removed, so that the tar-split record cannot rebuild the stream.
//!
//! A layer tar may name a path twice (the last member wins), turn a
//! directory into a file and back, delete with a whiteout what it added
//! itself, or write below a symlink it made itself (landing on another of
//! its members). The applied layer is then fine, but the record still
//! needs the first member's content, which is gone: replay would fail its
//! CRC check. containers-storage 1.43 refuses exact duplicate names at
//! import ("duplicates of file paths not supported") and fails `diff` on a
//! self-whiteout; strata imports such layers and keeps no record for them,
//! so `diff` falls back to the driver's diff (as the reference does when a
//! record is missing).
//!
//! Memory stays bounded by a few 64-bit hashes per member (normalised
//! names of members, of their parent directories and of symlinks). A hash
//! collision can only make a layer lose its record (a false positive costs
//! exactness of `diff`, never correctness). Rules:
//!
//! - a member over an earlier non-directory member of the same name;
//! - a non-directory over an earlier directory member, or over a path with
//!   earlier members below it;
//! - a member below an earlier symlink member (its target is unknown here);
//! - a whiteout of an earlier member or of a path with earlier members below;
//! - content that is never extracted: whiteouts, opaque markers and AUFS
//!   metadata (`.wh..wh.*`, including `.wh..wh.plnk`) of non-zero size.
//!
//! A directory over a directory only updates metadata; nothing is lost.
//!
//! Not detected (names alone cannot tell): on a full tree (vfs, btrfs), a
//! member written through a symlink of a *lower* layer onto another member
//! of the same layer (`d/x`, then `l/x` with `l -> d` below). Its replay
//! fails its CRC check, as before.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use crate::apply::path::{classify, normalize, split_parent, Role};
use crate::entry::{EntryKind, Header};

/// Watches the headers of one stream; see the module docs for the rules.
#[derive(Debug, Default)]
pub struct ReplacedMembers {
    hasher: RandomState,
    dirs: HashSet<u64>,
    others: HashSet<u64>,
    parents: HashSet<u64>,
    links: HashSet<u64>,
    first: Option<Vec<u8>>,
}

impl ReplacedMembers {
    /// A detector that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The name (as archived) of the first member that made an earlier
    /// member's content unrecoverable, if any.
    pub fn first(&self) -> Option<&[u8]> {
        self.first.as_deref()
    }

    /// Consumes the detector, returning [`Self::first`].
    pub fn into_first(self) -> Option<Vec<u8>> {
        self.first
    }

    fn hash(&self, path: &[u8]) -> u64 {
        self.hasher.hash_one(path)
    }

    fn flag(&mut self, h: &Header) {
        tracing::debug!(
            "member {:?} replaces or removes an earlier member of the same layer",
            String::from_utf8_lossy(&h.raw_path)
        );
        self.first = Some(h.raw_path.clone());
    }

    /// Looks at the next member's header.
    pub fn observe(&mut self, h: &Header) {
        if self.first.is_some() {
            return;
        }
        let n = normalize(&h.path).path;
        let has_content = h.size > 0;
        match classify(&n) {
            // The applier refuses it; the import fails anyway.
            Err(_) => return,
            Ok(Role::Whiteout(name)) => {
                let (parent, _) = split_parent(&n);
                let target = if parent.is_empty() {
                    name.to_vec()
                } else {
                    [parent, b"/", name].concat()
                };
                let t = self.hash(&target);
                if has_content
                    || self.dirs.contains(&t)
                    || self.others.contains(&t)
                    || self.parents.contains(&t)
                {
                    self.flag(h);
                }
                return;
            }
            Ok(Role::Opaque | Role::Meta | Role::LinkDir) => {
                if has_content {
                    self.flag(h);
                }
                return;
            }
            Ok(Role::Normal) => {}
        }
        let hn = self.hash(&n);
        let is_dir = h.kind == EntryKind::Directory;
        if self.others.contains(&hn)
            || (!is_dir && (self.dirs.contains(&hn) || self.parents.contains(&hn)))
        {
            self.flag(h);
            return;
        }
        let prefixes = || {
            n.iter()
                .enumerate()
                .rev()
                .filter(|&(_, &b)| b == b'/')
                .map(|(i, _)| &n[..i])
        };
        if !self.links.is_empty() && prefixes().any(|p| self.links.contains(&self.hash(p))) {
            self.flag(h);
            return;
        }
        if is_dir {
            self.dirs.insert(hn);
        } else {
            self.others.insert(hn);
            if matches!(h.kind, EntryKind::Symlink { .. }) {
                self.links.insert(hn);
            }
        }
        // Longest first: once a parent is known, so are its ancestors.
        for p in prefixes() {
            let hp = self.hash(p);
            if !self.parents.insert(hp) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> Header {
        let mut h = Header::new(path, EntryKind::File);
        h.size = size;
        h
    }
    fn dir(path: &str) -> Header {
        Header::new(path, EntryKind::Directory)
    }
    fn link(path: &str, target: &str) -> Header {
        Header::new(
            path,
            EntryKind::Symlink {
                target: target.into(),
            },
        )
    }

    fn first(members: &[Header]) -> Option<String> {
        let mut d = ReplacedMembers::new();
        for h in members {
            d.observe(h);
        }
        d.into_first()
            .map(|n| String::from_utf8_lossy(&n).into_owned())
    }

    #[test]
    fn detects_replaced_members() {
        let cases: Vec<(&str, Vec<Header>, Option<&str>)> = vec![
            (
                "plain layer",
                vec![
                    dir("a"),
                    file("a/x", 3),
                    link("a/l", "x"),
                    dir("b"),
                    file("b/y", 0),
                ],
                None,
            ),
            (
                "directory after its children, and twice",
                vec![file("d/x", 1), dir("d"), dir("d/"), dir("./d")],
                None,
            ),
            (
                "duplicate file, last wins",
                vec![file("a", 5), file("b", 3), file("a", 7)],
                Some("a"),
            ),
            (
                "same name spelled differently",
                vec![file("./a/b", 5), file("a//b", 1)],
                Some("a//b"),
            ),
            (
                "dir -> file -> dir",
                vec![dir("d"), file("d/x", 5), file("d", 4), dir("d")],
                Some("d"),
            ),
            (
                "file over a path with members below",
                vec![file("d/x", 5), file("d", 1)],
                Some("d"),
            ),
            (
                "file then dir of the same name",
                vec![file("d", 5), dir("d")],
                Some("d"),
            ),
            (
                "whiteout of an own member",
                vec![file("a", 4), file("k", 4), file(".wh.a", 0)],
                Some(".wh.a"),
            ),
            (
                "whiteout of an own directory's contents",
                vec![file("d/e/x", 4), file("d/.wh.e", 0)],
                Some("d/.wh.e"),
            ),
            (
                "whiteout of a lower layer's file",
                vec![file("k", 4), file(".wh.a", 0), file("d/.wh.x", 0)],
                None,
            ),
            (
                "opaque marker keeps this layer's entries",
                vec![file("d/x", 4), file("d/.wh..wh..opq", 0)],
                None,
            ),
            (
                "member below an own symlink",
                vec![dir("real"), link("l", "real"), file("l/x", 1)],
                Some("l/x"),
            ),
            (
                "whiteout with content",
                vec![file(".wh.gone", 3)],
                Some(".wh.gone"),
            ),
            (
                "AUFS link stash with content",
                vec![file(".wh..wh.plnk/123.456", 3)],
                Some(".wh..wh.plnk/123.456"),
            ),
            (
                "sibling prefix is not a parent",
                vec![file("dest-evil/x", 1), file("dest", 1)],
                None,
            ),
        ];
        for (name, members, want) in cases {
            assert_eq!(first(&members).as_deref(), want, "{name}");
        }
    }
}
