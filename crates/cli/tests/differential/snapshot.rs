//! What a mounted layer looks like, entry by entry: the facts two trees
//! must agree on, with times the tools make from the clock kept apart
//! from times the test set.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::Digest;

/// A time the test set explicitly, or one a tool took from the clock
/// during the run (any time after the stack started: the test's own
/// times are all years in the past).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Time {
    At(i64, u32),
    Now,
}

impl Time {
    pub fn new(sec: i64, nsec: u32, fresh_after: i64) -> Self {
        if sec >= fresh_after {
            Time::Now
        } else {
            Time::At(sec, nsec)
        }
    }
}

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `dir`, `file`, `symlink`, `fifo`, `char M:m`, `block M:m`, `socket`.
    pub kind: String,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size of a non-directory (directory sizes depend on the filesystem's
    /// history, not on the tree).
    pub size: u64,
    pub mtime: Time,
    /// Content digest (file) or target (symlink), hex or text.
    pub content: String,
    /// `user.*` and `security.*` xattrs but `security.selinux`, name=hex.
    pub xattrs: Vec<String>,
}

/// A tree: entries by path (`""` is the root), and the groups of paths
/// that are one inode (hard links), each group sorted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    pub entries: BTreeMap<String, Entry>,
    pub links: Vec<Vec<String>>,
}

/// Snapshot of the tree at `root`.
pub fn snapshot(root: &Path, fresh_after: i64) -> Tree {
    let mut t = Tree::default();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    walk(root, String::new(), fresh_after, &mut t, &mut inodes);
    t.links = inodes.into_values().filter(|v| v.len() > 1).collect();
    for g in &mut t.links {
        g.sort();
    }
    t.links.sort();
    t
}

fn walk(
    p: &Path,
    rel: String,
    fresh_after: i64,
    t: &mut Tree,
    inodes: &mut BTreeMap<(u64, u64), Vec<String>>,
) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
    let ft = m.file_type();
    let rdev = || {
        format!(
            "{}:{}",
            rustix::fs::major(m.rdev()),
            rustix::fs::minor(m.rdev())
        )
    };
    let (kind, content) = if ft.is_dir() {
        ("dir".to_string(), String::new())
    } else if ft.is_symlink() {
        let target = std::fs::read_link(p).unwrap();
        (
            "symlink".to_string(),
            String::from_utf8_lossy(target.as_os_str().as_bytes()).into_owned(),
        )
    } else if ft.is_file() {
        let data = std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        ("file".to_string(), hex::encode(sha2::Sha256::digest(&data)))
    } else if ft.is_fifo() {
        ("fifo".to_string(), String::new())
    } else if ft.is_char_device() {
        (format!("char {}", rdev()), String::new())
    } else if ft.is_block_device() {
        (format!("block {}", rdev()), String::new())
    } else {
        ("socket".to_string(), String::new())
    };
    if !ft.is_dir() && m.nlink() > 1 {
        inodes
            .entry((m.dev(), m.ino()))
            .or_default()
            .push(rel.clone());
    }
    let xattrs = xattr_names(p)
        .into_iter()
        .filter_map(|n| Some(format!("{n}={}", hex::encode(get_xattr(p, &n).ok()?))))
        .collect();
    t.entries.insert(
        rel.clone(),
        Entry {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: if ft.is_dir() { 0 } else { m.size() },
            mtime: Time::new(m.mtime(), m.mtime_nsec() as u32, fresh_after),
            content,
            xattrs,
        },
    );
    if ft.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let name = n.to_string_lossy();
            let child = if rel.is_empty() {
                name.into_owned()
            } else {
                format!("{rel}/{name}")
            };
            walk(&p.join(&n), child, fresh_after, t, inodes);
        }
    }
}

/// Names of the xattrs of `p` a layer carries (`user.*`, `security.*`
/// but SELinux labels), sorted.
pub fn xattr_names(p: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = match rustix::fs::llistxattr(p, &mut buf[..]) {
        Ok(n) => n,
        Err(_) => return Vec::new(),
    };
    let mut v: Vec<String> = buf[..n]
        .split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .filter(|s| {
            (s.starts_with("user.") || s.starts_with("security.")) && s != "security.selinux"
        })
        .collect();
    v.sort();
    v
}

/// Value of the xattr `name` of `p` itself.
pub fn get_xattr(p: &Path, name: &str) -> Result<Vec<u8>, rustix::io::Errno> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = rustix::fs::lgetxattr(p, name, &mut buf[..])?;
    buf.truncate(n);
    Ok(buf)
}

/// `tree` as far as a layer tar can carry `layer` onto `parent`: times
/// in whole seconds (tar headers have no more); a directory that exists
/// in the parent keeps the parent's xattrs that the layer removed (a tar
/// member can add xattrs, not remove them; on overlay the new upper
/// directory hides them anyway).
///
/// A directory of the parent that is no member of the diff keeps the
/// parent's time: a full-tree comparison does not count a directory's
/// time alone as a change (the reference's rule), so neither tool's diff
/// carries it.
///
/// Hard links are left out: a new name linked to an unchanged file is a
/// plain file in a tar, which can link only to members of its own (the
/// tools' trees and diff members compare links).
pub fn as_applied(
    mut tree: Tree,
    layer: &Tree,
    parent: Option<&Tree>,
    members: &BTreeSet<String>,
) -> Tree {
    tree.links.clear();
    for (p, e) in tree.entries.iter_mut() {
        if let Time::At(sec, _) = e.mtime {
            e.mtime = Time::At(sec, 0);
        }
        let (Some(l), Some(old)) = (layer.entries.get(p), parent.and_then(|t| t.entries.get(p)))
        else {
            continue;
        };
        if e.kind == "dir" && old.kind == "dir" {
            e.xattrs
                .retain(|x| l.xattrs.contains(x) || !old.xattrs.contains(x));
            if !p.is_empty() && !members.contains(p) {
                e.mtime = match old.mtime {
                    Time::At(sec, _) => Time::At(sec, 0),
                    Time::Now => Time::Now,
                };
            }
        }
    }
    tree
}

/// `tree` with no xattr whose value is empty.
pub fn without_empty_xattrs(mut tree: Tree) -> Tree {
    for e in tree.entries.values_mut() {
        e.xattrs.retain(|x| !x.ends_with('='));
    }
    tree
}

/// Differences between two trees, one line each, `a` and `b` naming the
/// sides; paths for which `skip` is true are left out.
pub fn compare(
    a: &Tree,
    b: &Tree,
    names: (&str, &str),
    skip: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for (p, ea) in &a.entries {
        if skip(p) {
            continue;
        }
        match b.entries.get(p) {
            None => out.push(format!("/{p}: only in {}: {ea:?}", names.0)),
            Some(eb) if eb != ea => out.push(format!(
                "/{p}: {}: {ea:?}\n      {}: {eb:?}",
                names.0, names.1
            )),
            Some(_) => {}
        }
    }
    for (p, eb) in &b.entries {
        if !skip(p) && !a.entries.contains_key(p) {
            out.push(format!("/{p}: only in {}: {eb:?}", names.1));
        }
    }
    if a.links != b.links {
        out.push(format!(
            "hard links: {}: {:?}\n      {}: {:?}",
            names.0, a.links, names.1, b.links
        ));
    }
    out
}
