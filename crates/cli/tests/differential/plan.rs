//! Random edits of a layer, drawn from a seed and from what the tree holds
//! now (listed from the reference's mount), so that a seed always gives
//! the same edits for as long as the reference gives the same trees.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::edits::{parent_of, Prim};
use super::rng::Rng;
use super::snapshot::xattr_names;

/// Entry types the planner tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Fifo,
    Other,
}

/// One entry of the tree as the planner sees it.
#[derive(Debug, Clone)]
pub struct Node {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub nlink: u64,
    pub size: u64,
    pub mtime: (i64, u32),
    pub xattrs: Vec<String>,
    pub children: usize,
}

/// The entries under `root`, parents first, the root as `""`.
pub fn list(root: &Path) -> Vec<Node> {
    let mut out = Vec::new();
    walk(root, String::new(), &mut out);
    out
}

fn walk(p: &Path, rel: String, out: &mut Vec<Node>) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if std::os::unix::fs::FileTypeExt::is_fifo(&ft) {
        Kind::Fifo
    } else {
        Kind::Other
    };
    let mut names: Vec<String> = Vec::new();
    if kind == Kind::Dir {
        names = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
    }
    out.push(Node {
        path: rel.clone(),
        kind,
        mode: m.mode() & 0o7777,
        nlink: m.nlink(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec() as u32),
        xattrs: if kind == Kind::Symlink {
            Vec::new()
        } else {
            xattr_names(p)
        },
        children: names.len(),
    });
    for n in names {
        let child = if rel.is_empty() {
            n.clone()
        } else {
            format!("{rel}/{n}")
        };
        walk(&p.join(&n), child, out);
    }
}

/// A few names, some of which sort around each other in ways that matter
/// (`a`, `a-b`, `a.conf`: a directory's subtree against its siblings), one
/// with a space and one not ASCII.
const NAMES: &[&str] = &[
    "a", "a-b", "a.conf", "b", "c", "d4", "sub", "f", "g", "bin", "etc", "lib", "x y", "é", "n1",
    "n2", ".hidden", "zz",
];
const FILE_MODES: &[u32] = &[
    0o644, 0o644, 0o600, 0o755, 0o700, 0o444, 0o4755, 0o2755, 0o640, 0o000,
];
const DIR_MODES: &[u32] = &[0o755, 0o755, 0o700, 0o750, 0o1777, 0o555, 0o2775];
const OWNERS: &[(u32, u32)] = &[
    (0, 0),
    (1, 1),
    (1000, 1000),
    (65534, 65534),
    (0, 1000),
    (100, 0),
];
const TARGETS: &[&str] = &[
    "a",
    "../a",
    "sub/f",
    "/etc",
    "/etc/passwd",
    "/nonexistent",
    "/usr",
    "zz",
    ".",
    "a/b/c",
    "/tmp",
    "b",
];

/// A composite edit: its name (for the failure report) and its steps.
pub struct Step {
    pub label: &'static str,
    pub prims: Vec<Prim>,
}

/// Draws the edits of a stack.
pub struct Planner {
    rng: Rng,
    /// Directories deleted so far, with what they held (path below the
    /// directory, kind), to be recreated with the same names later.
    deleted: Vec<(String, Vec<(String, Kind)>)>,
}

/// The edits of one layer: how many composite edits and the time that
/// every entry they touch gets at the end.
pub struct LayerPlan {
    pub steps: usize,
    pub stamp: (i64, u32),
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

impl Planner {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
            deleted: Vec::new(),
        }
    }

    /// Number of layers of the stack (2 to 5).
    pub fn layers(&mut self) -> usize {
        self.rng.range(2, 5)
    }

    /// The plan of layer `i`.
    pub fn layer(&mut self, i: usize) -> LayerPlan {
        let steps = if i == 0 {
            self.rng.range(12, 36)
        } else if self.rng.chance(5) {
            0
        } else {
            self.rng.range(2, 14)
        };
        LayerPlan {
            steps,
            stamp: self.stamp(i),
        }
    }

    /// A time in the past, per layer, whole seconds now and then (the
    /// reference treats a missing sub-second part as equal to any).
    fn stamp(&mut self, layer: usize) -> (i64, u32) {
        let sec = 1_100_000_000 + layer as i64 * 1_000_000 + self.rng.below(500_000) as i64;
        let nsec = if self.rng.chance(25) {
            0
        } else {
            self.rng.below(1_000_000_000) as u32
        };
        (sec, nsec)
    }

    fn content(&mut self) -> Vec<u8> {
        let n = match self.rng.weighted(&[10, 50, 30, 10]) {
            0 => 0,
            1 => self.rng.range(1, 64),
            2 => self.rng.range(64, 4096),
            _ => self.rng.range(4096, 70_000),
        };
        self.rng.bytes(n)
    }

    fn pick<'a>(&mut self, nodes: &'a [Node], f: impl Fn(&Node) -> bool) -> Option<&'a Node> {
        let c: Vec<&Node> = nodes.iter().filter(|n| f(n)).collect();
        if c.is_empty() {
            None
        } else {
            Some(c[self.rng.below(c.len())])
        }
    }

    fn dir<'a>(&mut self, nodes: &'a [Node]) -> &'a Node {
        self.pick(nodes, |n| n.kind == Kind::Dir)
            .expect("the root is a directory")
    }

    /// A name not yet used in `dir`.
    fn fresh(&mut self, nodes: &[Node], dir: &str) -> Option<String> {
        for _ in 0..6 {
            let name: &str = self.rng.pick::<&str>(NAMES);
            let p = join(dir, name);
            if !nodes.iter().any(|n| n.path == p) {
                return Some(p);
            }
        }
        None
    }

    fn file_mode(&mut self) -> u32 {
        *self.rng.pick(FILE_MODES)
    }

    fn dir_mode(&mut self) -> u32 {
        *self.rng.pick(DIR_MODES)
    }

    fn new_file(&mut self, path: String, out: &mut Vec<Prim>) {
        let data = self.content();
        let mode = self.file_mode();
        out.push(Prim::Write {
            path: path.clone(),
            data,
            mode,
        });
        if self.rng.chance(20) {
            let (uid, gid) = *self.rng.pick(OWNERS);
            out.push(Prim::Lchown {
                path: path.clone(),
                uid,
                gid,
            });
            // chown drops setuid and setgid: set the mode again.
            out.push(Prim::Chmod { path, mode });
        }
    }

    fn target(&mut self, same_len_as: Option<usize>) -> String {
        if let Some(n) = same_len_as {
            let t: String = (0..n)
                .map(|_| (b'a' + self.rng.below(26) as u8) as char)
                .collect();
            return t;
        }
        self.rng.pick(TARGETS).to_string()
    }

    /// A directory `path` with a small random subtree (up to `depth`
    /// levels).
    fn new_tree(&mut self, path: String, depth: usize, out: &mut Vec<Prim>) {
        let mode = self.dir_mode();
        out.push(Prim::Mkdir {
            path: path.clone(),
            mode,
        });
        let n = self.rng.range(0, 3);
        let mut used = BTreeSet::new();
        for _ in 0..n {
            let name = *self.rng.pick(NAMES);
            if !used.insert(name) {
                continue;
            }
            let child = join(&path, name);
            match self.rng.weighted(&[5, if depth > 0 { 3 } else { 0 }, 1, 1]) {
                0 => self.new_file(child, out),
                1 => self.new_tree(child, depth - 1, out),
                2 => {
                    let target = self.target(None);
                    out.push(Prim::Symlink {
                        path: child,
                        target,
                    })
                }
                _ => out.push(Prim::Fifo {
                    path: child,
                    mode: 0o644,
                }),
            }
        }
    }

    /// Recreates what `path` held, names and kinds, with new content.
    fn recreate(&mut self, path: &str, shape: &[(String, Kind)], out: &mut Vec<Prim>) {
        let mode = self.dir_mode();
        out.push(Prim::Mkdir {
            path: path.to_string(),
            mode,
        });
        for (rel, kind) in shape {
            let p = join(path, rel);
            match kind {
                Kind::Dir => {
                    let mode = self.dir_mode();
                    out.push(Prim::Mkdir { path: p, mode })
                }
                Kind::Symlink => {
                    let target = self.target(None);
                    out.push(Prim::Symlink { path: p, target })
                }
                Kind::Fifo => out.push(Prim::Fifo {
                    path: p,
                    mode: 0o600,
                }),
                Kind::File | Kind::Other => self.new_file(p, out),
            }
        }
    }

    /// What the directory `dir` holds, as paths below it with kinds.
    fn shape(nodes: &[Node], dir: &str) -> Vec<(String, Kind)> {
        let prefix = format!("{dir}/");
        nodes
            .iter()
            .filter_map(|n| Some((n.path.strip_prefix(&prefix)?.to_string(), n.kind)))
            .collect()
    }

    fn remove_tree(&mut self, nodes: &[Node], dir: &str, out: &mut Vec<Prim>) {
        self.deleted
            .push((dir.to_string(), Self::shape(nodes, dir)));
        out.push(Prim::RemoveTree {
            path: dir.to_string(),
        });
    }

    /// One composite edit of the tree `nodes` (layer `layer`).
    pub fn step(&mut self, nodes: &[Node], layer: usize, stamp: (i64, u32)) -> Step {
        loop {
            let weights: &[usize] = if layer == 0 {
                &[
                    30, 16, 6, 3, 5, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 2, 2, 3, 0, 1, 0, 1, 0,
                ]
            } else {
                &[
                    8, 5, 3, 2, 4, 6, 3, 6, 5, 3, 4, 4, 3, 6, 4, 4, 5, 5, 4, 2, 3, 2, 4, 3,
                ]
            };
            let op = self.rng.weighted(weights);
            let mut out = Vec::new();
            if let Some(label) = self.try_op(op, nodes, stamp, &mut out) {
                if !out.is_empty() {
                    return Step { label, prims: out };
                }
            }
        }
    }

    fn try_op(
        &mut self,
        op: usize,
        nodes: &[Node],
        stamp: (i64, u32),
        out: &mut Vec<Prim>,
    ) -> Option<&'static str> {
        let is = |k: Kind| move |n: &Node| n.kind == k && !n.path.is_empty();
        let leaf = |n: &Node| matches!(n.kind, Kind::File | Kind::Symlink | Kind::Fifo);
        let label = match op {
            0 => {
                let d = self.dir(nodes).path.clone();
                let p = self.fresh(nodes, &d)?;
                self.new_file(p, out);
                "new file"
            }
            1 => {
                let d = self.dir(nodes).path.clone();
                let p = self.fresh(nodes, &d)?;
                let depth = self.rng.range(0, 4);
                self.new_tree(p, depth, out);
                "new directory tree"
            }
            2 => {
                let d = self.dir(nodes).path.clone();
                let p = self.fresh(nodes, &d)?;
                let target = self.target(None);
                out.push(Prim::Symlink { path: p, target });
                "new symlink"
            }
            3 => {
                let d = self.dir(nodes).path.clone();
                let path = self.fresh(nodes, &d)?;
                out.push(Prim::Fifo { path, mode: 0o644 });
                "new fifo"
            }
            4 => {
                let from = self.pick(nodes, is(Kind::File))?.path.clone();
                let d = self.dir(nodes).path.clone();
                let to = self.fresh(nodes, &d)?;
                out.push(Prim::Link { from, to });
                "hard link"
            }
            5 => {
                // Rewrite in place: a hard-linked name now and then, so a
                // later layer modifies one name of a linked inode.
                let linked = self.rng.chance(50);
                let n = match self.pick(nodes, |n| n.kind == Kind::File && n.nlink > 1) {
                    Some(n) if linked => n,
                    _ => self.pick(nodes, is(Kind::File))?,
                };
                let (path, mode) = (n.path.clone(), n.mode);
                let data = self.content();
                out.push(Prim::Write { path, data, mode });
                "rewrite file"
            }
            6 => {
                let path = self.pick(nodes, is(Kind::File))?.path.clone();
                let n = self.rng.range(1, 300);
                let data = self.rng.bytes(n);
                out.push(Prim::Append { path, data });
                "append to file"
            }
            7 => {
                let path = self.pick(nodes, leaf)?.path.clone();
                out.push(Prim::Unlink { path });
                "delete"
            }
            8 => {
                let d = self
                    .pick(nodes, |n| {
                        n.kind == Kind::Dir && !n.path.is_empty() && n.children > 0
                    })?
                    .path
                    .clone();
                self.remove_tree(nodes, &d, out);
                "delete tree"
            }
            9 => match self.pick(nodes, |n| {
                n.kind == Kind::Dir && !n.path.is_empty() && n.children == 0
            }) {
                Some(n) => {
                    out.push(Prim::Rmdir {
                        path: n.path.clone(),
                    });
                    "delete empty directory"
                }
                None => {
                    let d = self.dir(nodes).path.clone();
                    let path = self.fresh(nodes, &d)?;
                    out.push(Prim::Mkdir { path, mode: 0o755 });
                    "new empty directory"
                }
            },
            10 => {
                let n = self.pick(nodes, is(Kind::File))?;
                let path = n.path.clone();
                out.push(Prim::Unlink { path: path.clone() });
                self.new_file(path, out);
                "recreate file"
            }
            11 => {
                let d = self.pick(nodes, is(Kind::Dir))?.path.clone();
                self.remove_tree(nodes, &d, out);
                let shape = Self::shape(nodes, &d);
                self.recreate(&d, &shape, out);
                "delete and recreate directory with the same names"
            }
            12 => {
                // A directory deleted before (this layer or an earlier one)
                // comes back with the same names, where its parent exists.
                let free: Vec<usize> = (0..self.deleted.len())
                    .filter(|&i| {
                        let p = &self.deleted[i].0;
                        let parent = parent_of(p);
                        !nodes.iter().any(|n| &n.path == p)
                            && nodes
                                .iter()
                                .any(|n| n.path == parent && n.kind == Kind::Dir)
                    })
                    .collect();
                if free.is_empty() {
                    return None;
                }
                let (p, shape) = self.deleted[free[self.rng.below(free.len())]].clone();
                self.recreate(&p, &shape, out);
                "recreate a deleted directory with the same names"
            }
            13 => {
                let n = self.pick(nodes, |n| !n.path.is_empty() && n.kind != Kind::Other)?;
                let (path, kind) = (n.path.clone(), n.kind);
                if kind == Kind::Dir {
                    self.remove_tree(nodes, &path, out);
                } else {
                    out.push(Prim::Unlink { path: path.clone() });
                }
                let choices: Vec<Kind> = [Kind::File, Kind::Dir, Kind::Symlink]
                    .into_iter()
                    .filter(|k| *k != kind)
                    .collect();
                match *self.rng.pick(&choices) {
                    Kind::File => self.new_file(path, out),
                    Kind::Dir => {
                        let depth = self.rng.range(0, 2);
                        self.new_tree(path, depth, out)
                    }
                    _ => {
                        let target = self.target(None);
                        out.push(Prim::Symlink { path, target })
                    }
                }
                "replace with another type"
            }
            14 => {
                let from = self.pick(nodes, |n| !n.path.is_empty())?.path.clone();
                let to = self.fresh(nodes, &parent_of(&from))?;
                out.push(Prim::Rename { from, to });
                "rename within directory"
            }
            15 => {
                let from = self.pick(nodes, |n| !n.path.is_empty())?.path.clone();
                let inside = format!("{from}/");
                let d = self
                    .pick(nodes, |n| {
                        n.kind == Kind::Dir && n.path != from && !n.path.starts_with(&inside)
                    })?
                    .path
                    .clone();
                if d == parent_of(&from) {
                    return None;
                }
                let to = self.fresh(nodes, &d)?;
                out.push(Prim::Rename { from, to });
                "rename across directories"
            }
            16 => {
                let n = self.pick(nodes, |n| {
                    matches!(n.kind, Kind::File | Kind::Dir | Kind::Fifo)
                })?;
                let path = n.path.clone();
                let mode = if n.kind == Kind::Dir {
                    self.dir_mode()
                } else {
                    self.file_mode()
                };
                out.push(Prim::Chmod { path, mode });
                "chmod"
            }
            17 => {
                let path = self.pick(nodes, |_| true)?.path.clone();
                let (uid, gid) = *self.rng.pick(OWNERS);
                out.push(Prim::Lchown { path, uid, gid });
                "chown"
            }
            18 => {
                let path = self
                    .pick(nodes, |n| matches!(n.kind, Kind::File | Kind::Dir))?
                    .path
                    .clone();
                let name = format!("user.{}", *self.rng.pick(&["a", "b", "mime_type"]));
                let n = self.rng.range(0, 40);
                let value = self.rng.bytes(n);
                out.push(Prim::SetXattr { path, name, value });
                "set user xattr"
            }
            19 => {
                let n = self.pick(nodes, |n| n.xattrs.iter().any(|x| x.starts_with("user.")))?;
                let path = n.path.clone();
                let names: Vec<String> = n
                    .xattrs
                    .iter()
                    .filter(|x| x.starts_with("user."))
                    .cloned()
                    .collect();
                let name = self.rng.pick(&names).clone();
                out.push(Prim::RemoveXattr { path, name });
                "remove user xattr"
            }
            20 => {
                let path = self.pick(nodes, is(Kind::File))?.path.clone();
                out.push(Prim::SetXattr {
                    path,
                    name: "security.capability".into(),
                    value: self.capability(),
                });
                "set file capability"
            }
            21 => {
                let path = self
                    .pick(nodes, |n| {
                        n.xattrs.iter().any(|x| x == "security.capability")
                    })?
                    .path
                    .clone();
                out.push(Prim::RemoveXattr {
                    path,
                    name: "security.capability".into(),
                });
                "remove file capability"
            }
            22 => {
                let n = self.pick(nodes, |n| n.kind != Kind::Other)?;
                let path = n.path.clone();
                let (sec, nsec) = match self.rng.below(3) {
                    // Same second, another sub-second part.
                    0 => (
                        n.mtime.0,
                        (n.mtime.1 + 1 + self.rng.below(1000) as u32) % 1_000_000_000,
                    ),
                    // Same second, none.
                    1 => (n.mtime.0, 0),
                    _ => (stamp.0 - 1 - self.rng.below(5000) as i64, stamp.1),
                };
                out.push(Prim::SetTime { path, sec, nsec });
                "mtime only"
            }
            _ => {
                let n = self.pick(nodes, is(Kind::Symlink))?;
                let (path, size, mtime) = (n.path.clone(), n.size as usize, n.mtime);
                out.push(Prim::Unlink { path: path.clone() });
                if self.rng.chance(40) {
                    // Same length, same time: only the target tells.
                    let target = self.target(Some(size.max(1)));
                    out.push(Prim::Symlink {
                        path: path.clone(),
                        target,
                    });
                    out.push(Prim::SetTime {
                        path,
                        sec: mtime.0,
                        nsec: mtime.1,
                    });
                    "retarget symlink keeping size and time"
                } else {
                    let target = self.target(None);
                    out.push(Prim::Symlink { path, target });
                    "retarget symlink"
                }
            }
        };
        Some(label)
    }

    /// A version 2 `security.capability` value with a few capabilities.
    fn capability(&mut self) -> Vec<u8> {
        let caps: &[u32] = &[1 << 10, 1 << 12, (1 << 10) | (1 << 13), 1 << 21];
        let permitted = *self.rng.pick(caps);
        let mut v = Vec::new();
        // VFS_CAP_REVISION_2 with the effective flag.
        v.extend_from_slice(&0x0200_0001u32.to_le_bytes());
        v.extend_from_slice(&permitted.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v
    }
}
