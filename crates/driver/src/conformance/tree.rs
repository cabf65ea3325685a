//! Building and checking small trees for the conformance cases.

use std::fmt::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// One entry of a fixture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file with content.
    File(&'static [u8]),
    /// A directory.
    Dir,
    /// A symbolic link to a target.
    Symlink(&'static str),
    /// A hard link to another path of the fixture (relative).
    HardLink(&'static str),
}

/// A tree: (relative path, entry, mode, uid, gid), created in order.
pub struct Fixture(pub Vec<(&'static str, Entry, u32, u32, u32)>);

impl Fixture {
    /// The base layer the cases start from: regular, setuid and setgid files,
    /// a sticky directory owned by a non-root user, a symlink, a hard link.
    pub fn base() -> Fixture {
        Fixture(vec![
            ("a", Entry::File(b"content of a\n"), 0o644, 0, 0),
            ("b", Entry::File(b"content of b\n"), 0o644, 0, 0),
            ("c", Entry::File(b"c\n"), 0o755, 0, 0),
            ("dir", Entry::Dir, 0o755, 0, 0),
            ("dir/f", Entry::File(b"f in dir\n"), 0o600, 0, 0),
            ("suid", Entry::File(b"#!/bin/sh\n"), 0o4755, 0, 0),
            ("sgid", Entry::File(b"sgid\n"), 0o2755, 0, 5),
            ("sticky", Entry::Dir, 0o1777, 1000, 1000),
            ("sticky/own", Entry::File(b"own\n"), 0o640, 1000, 1001),
            ("link", Entry::Symlink("a"), 0o777, 0, 0),
            ("hard", Entry::HardLink("c"), 0o755, 0, 0),
        ])
    }

    /// Creates the fixture under `root` (as root: owners are set).
    pub fn create(&self, root: &Path) {
        for (rel, entry, mode, uid, gid) in &self.0 {
            let p = root.join(rel);
            match entry {
                Entry::File(data) => {
                    std::fs::write(&p, data).unwrap_or_else(|e| panic!("{p:?}: {e}"))
                }
                Entry::Dir => std::fs::create_dir(&p).unwrap_or_else(|e| panic!("{p:?}: {e}")),
                Entry::Symlink(t) => {
                    std::os::unix::fs::symlink(t, &p).unwrap_or_else(|e| panic!("{p:?}: {e}"))
                }
                Entry::HardLink(t) => {
                    std::fs::hard_link(root.join(t), &p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
                    continue;
                }
            }
            std::os::unix::fs::lchown(&p, Some(*uid), Some(*gid))
                .unwrap_or_else(|e| panic!("{p:?}: {e}"));
            if !matches!(entry, Entry::Symlink(_)) {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))
                    .unwrap_or_else(|e| panic!("{p:?}: {e}"));
            }
        }
    }

    /// Asserts that `root` holds the fixture (types, content, modes, owners,
    /// link targets, hard links sharing an inode), with owners shifted by
    /// `shift` (host = container + shift).
    pub fn verify(&self, root: &Path, shift: u32) {
        for (rel, entry, mode, uid, gid) in &self.0 {
            let p = root.join(rel);
            let m = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            match entry {
                Entry::File(data) => {
                    assert!(m.file_type().is_file(), "{rel}: not a file");
                    assert_eq!(std::fs::read(&p).unwrap(), *data, "{rel}: content");
                }
                Entry::Dir => assert!(m.is_dir(), "{rel}: not a directory"),
                Entry::Symlink(t) => {
                    assert!(m.file_type().is_symlink(), "{rel}: not a symlink");
                    assert_eq!(
                        std::fs::read_link(&p).unwrap(),
                        Path::new(t),
                        "{rel}: target"
                    );
                }
                Entry::HardLink(t) => {
                    let o = std::fs::symlink_metadata(root.join(t)).unwrap();
                    assert_eq!(
                        (m.dev(), m.ino()),
                        (o.dev(), o.ino()),
                        "{rel}: not a link of {t}"
                    );
                    continue;
                }
            }
            if !matches!(entry, Entry::Symlink(_)) {
                assert_eq!(
                    m.mode() & 0o7777,
                    *mode,
                    "{rel}: mode {:o}",
                    m.mode() & 0o7777
                );
            }
            assert_eq!(
                (m.uid(), m.gid()),
                (uid + shift, gid + shift),
                "{rel}: owner"
            );
        }
    }
}

/// A listing of everything under `root`: mode, owner, size, path, target.
pub fn dump_tree(root: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            let _ = writeln!(out, "?????? {}", p.display());
            continue;
        };
        let rel = p.strip_prefix(root).unwrap_or(&p);
        let _ = write!(
            out,
            "{:07o} {:>6}:{:<6} {:>8} /{}",
            m.mode(),
            m.uid(),
            m.gid(),
            m.len(),
            rel.display()
        );
        if m.file_type().is_symlink() {
            if let Ok(t) = std::fs::read_link(&p) {
                let _ = write!(out, " -> {}", t.display());
            }
        }
        out.push('\n');
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                let mut kids: Vec<_> = rd.flatten().map(|e| e.path()).collect();
                kids.sort();
                kids.reverse();
                stack.extend(kids);
            }
        }
    }
    out
}

/// Names in a directory, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
