//! Shared helpers of the apply tests: an item-stream builder, tree
//! snapshots taken through directory descriptors (so paths longer than
//! PATH_MAX work), and a sandbox with a victim directory beside the root.
#![allow(dead_code)]

pub mod hostile;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{self, AtFlags, FileType, Mode, OFlags};
use sha2::{Digest, Sha256};
use strata_archive::apply::Resolution;
use strata_archive::entry::{EntryKind, Header, Item, Timestamp, Xattr, CHUNK};
use strata_archive::{Applier, ApplierOptions};

/// Default mtime of built entries.
pub const MTIME: Timestamp = Timestamp {
    sec: 1_600_000_000,
    nsec: 123_456_789,
};

/// Builds an item stream.
#[derive(Default)]
pub struct L {
    pub items: Vec<Item>,
}

pub fn hdr(path: &[u8], kind: EntryKind) -> Header {
    let mut h = Header::new(path.to_vec(), kind);
    h.mtime = MTIME;
    h
}

impl L {
    pub fn new() -> Self {
        Self::default()
    }
    /// A member with content (split in chunks).
    pub fn member(mut self, h: Header, content: &[u8]) -> Self {
        let mut h = h;
        if h.kind == EntryKind::File && h.sparse.is_none() {
            h.size = content.len() as u64;
        }
        self.items.push(Item::Header(Box::new(h)));
        for (i, c) in content.chunks(CHUNK).enumerate() {
            self.items.push(Item::Data {
                offset: (i * CHUNK) as u64,
                bytes: c.to_vec().into(),
            });
        }
        self.items.push(Item::End);
        self
    }
    pub fn file(self, path: &str, content: &[u8]) -> Self {
        self.member(hdr(path.as_bytes(), EntryKind::File), content)
    }
    pub fn dir(self, path: &str) -> Self {
        self.member(hdr(path.as_bytes(), EntryKind::Directory), b"")
    }
    pub fn symlink(self, path: &str, target: &str) -> Self {
        let mut h = hdr(
            path.as_bytes(),
            EntryKind::Symlink {
                target: target.as_bytes().to_vec(),
            },
        );
        h.mode = 0o777;
        self.member(h, b"")
    }
    pub fn link(self, path: &str, target: &str) -> Self {
        self.member(
            hdr(
                path.as_bytes(),
                EntryKind::HardLink {
                    target: target.as_bytes().to_vec(),
                },
            ),
            b"",
        )
    }
    pub fn kind(self, path: &str, kind: EntryKind) -> Self {
        self.member(hdr(path.as_bytes(), kind), b"")
    }
    /// Changes the last header.
    pub fn with(mut self, f: impl FnOnce(&mut Header)) -> Self {
        let h = self
            .items
            .iter_mut()
            .rev()
            .find_map(|i| match i {
                Item::Header(h) => Some(h),
                _ => None,
            })
            .expect("a header");
        f(h);
        self
    }
    pub fn xattr(self, name: &str, value: &[u8]) -> Self {
        self.with(|h| {
            h.xattrs.push(Xattr {
                name: name.as_bytes().to_vec(),
                value: value.to_vec(),
            })
        })
    }
    pub fn mode(self, mode: u32) -> Self {
        self.with(|h| h.mode = mode)
    }
    pub fn owner(self, uid: u32, gid: u32) -> Self {
        self.with(|h| {
            h.uid = uid;
            h.gid = gid;
        })
    }
    /// Copies the stream (items are not Clone).
    pub fn items(&self) -> Vec<Item> {
        self.items
            .iter()
            .map(|i| match i {
                Item::Header(h) => Item::Header(h.clone()),
                Item::Data { offset, bytes } => Item::Data {
                    offset: *offset,
                    bytes: bytes.clone(),
                },
                Item::End => Item::End,
            })
            .collect()
    }
}

/// Applies `layer` under `root`.
pub fn apply(
    root: &Path,
    layer: &L,
    opts: ApplierOptions,
    resolution: Resolution,
) -> strata_archive::Result<()> {
    let dir = File::open(root).expect("open root");
    let mut a = Applier::with_resolution(dir.as_fd(), opts, resolution)?;
    for item in layer.items() {
        a.push(item)?;
    }
    a.finish()
}

/// One object of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// `None` for directories when times are not compared.
    pub mtime: Option<(i64, i64)>,
    pub sha256: Option<String>,
    pub target: Option<Vec<u8>>,
    pub rdev: u64,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// First path (in walk order) with the same inode, for hard links.
    pub link_group: Option<Vec<u8>>,
}

/// What a snapshot records.
#[derive(Debug, Clone, Copy)]
pub struct SnapOpts {
    /// Record directory mtimes.
    pub dir_times: bool,
    /// Skip these xattr names.
    pub skip_xattr_prefix: &'static [&'static str],
}

impl Default for SnapOpts {
    fn default() -> Self {
        Self {
            dir_times: true,
            skip_xattr_prefix: &[],
        }
    }
}

pub type Tree = BTreeMap<Vec<u8>, Node>;

fn kind_of(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "file",
        FileType::Directory => "dir",
        FileType::Symlink => "symlink",
        FileType::CharacterDevice => "char",
        FileType::BlockDevice => "block",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        _ => "unknown",
    }
}

fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> Vec<u8> {
    use std::os::fd::AsRawFd;
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    p
}

fn xattrs_of(dir: BorrowedFd<'_>, name: &[u8], o: &SnapOpts) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let p = proc_path(dir, name);
    let mut out = BTreeMap::new();
    let mut buf = vec![0u8; 65536];
    let n = match fs::llistxattr(p.as_slice(), &mut buf[..]) {
        Ok(n) => n,
        Err(_) => return out,
    };
    for x in buf[..n].split(|&b| b == 0).filter(|x| !x.is_empty()) {
        let xs = String::from_utf8_lossy(x);
        if o.skip_xattr_prefix.iter().any(|p| xs.starts_with(p)) {
            continue;
        }
        let mut v = vec![0u8; 65536];
        if let Ok(m) = fs::lgetxattr(p.as_slice(), x, &mut v[..]) {
            out.insert(x.to_vec(), v[..m].to_vec());
        }
    }
    out
}

fn node_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    rel: &[u8],
    o: &SnapOpts,
    inodes: &mut BTreeMap<(u64, u64), Vec<u8>>,
) -> Node {
    let st = fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).expect("stat");
    let t = FileType::from_raw_mode(st.st_mode);
    let mut n = Node {
        kind: kind_of(t),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: if t == FileType::Directory {
            0
        } else {
            st.st_size as u64
        },
        mtime: Some((st.st_mtime, st.st_mtime_nsec as i64)),
        sha256: None,
        target: None,
        rdev: st.st_rdev,
        xattrs: xattrs_of(dir, name, o),
        link_group: None,
    };
    if t == FileType::Directory && !o.dir_times {
        n.mtime = None;
    }
    if t == FileType::Symlink {
        n.target = Some(
            fs::readlinkat(dir, name, Vec::new())
                .expect("readlink")
                .into_bytes(),
        );
    }
    if t == FileType::RegularFile {
        let fd = fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open");
        let mut f = File::from(fd);
        let mut h = Sha256::new();
        std::io::copy(&mut f, &mut h).expect("read");
        n.sha256 = Some(hex::encode(h.finalize()));
    }
    if t != FileType::Directory && st.st_nlink > 1 {
        let first = inodes
            .entry((st.st_dev, st.st_ino))
            .or_insert_with(|| rel.to_vec());
        n.link_group = Some(first.clone());
    }
    n
}

/// Snapshot of the tree under `root` (the root itself is the empty path);
/// names listed in `skip` (relative paths) are not entered.
pub fn snapshot_with(root: &Path, skip: &[&[u8]], o: SnapOpts) -> Tree {
    let top = File::open(root).expect("open snapshot root");
    let parent = File::open(root.parent().unwrap_or(Path::new("/"))).expect("open parent");
    let mut tree = Tree::new();
    let mut inodes = BTreeMap::new();
    let root_name = root.file_name().map(|n| n.as_encoded_bytes().to_vec());
    if let Some(rn) = &root_name {
        tree.insert(
            Vec::new(),
            node_at(parent.as_fd(), rn, b"", &o, &mut inodes),
        );
    }
    let mut stack: Vec<(OwnedFd, Vec<u8>)> = vec![(top.into(), Vec::new())];
    while let Some((fd, rel)) = stack.pop() {
        let mut names: Vec<Vec<u8>> = fs::Dir::read_from(&fd)
            .expect("readdir")
            .map(|e| e.expect("dirent").file_name().to_bytes().to_vec())
            .filter(|n| n != b"." && n != b"..")
            .collect();
        names.sort();
        for name in names {
            let mut r = rel.clone();
            if !r.is_empty() {
                r.push(b'/');
            }
            r.extend_from_slice(&name);
            if skip.contains(&r.as_slice()) {
                continue;
            }
            let node = node_at(fd.as_fd(), &name, &r, &o, &mut inodes);
            if node.kind == "dir" {
                let sub = fs::openat(
                    &fd,
                    name.as_slice(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .expect("open dir");
                stack.push((sub, r.clone()));
            }
            tree.insert(r, node);
        }
    }
    tree
}

pub fn snapshot(root: &Path) -> Tree {
    snapshot_with(root, &[], SnapOpts::default())
}

/// Describes the differences of two trees (empty when equal).
pub fn diff_trees(a: &Tree, b: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("only in first: {}", String::from_utf8_lossy(k))),
            Some(w) if w != v => out.push(format!(
                "differs: {}\n  {:?}\n  {:?}",
                String::from_utf8_lossy(k),
                v,
                w
            )),
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            out.push(format!("only in second: {}", String::from_utf8_lossy(k)));
        }
    }
    out
}

/// A temp dir with the layer root `dest`, and beside it `victim/` and
/// `dest-evil/` full of things a hostile layer would like to touch.
pub struct Sandbox {
    pub tmp: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("strata-apply-")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let t = tmp.path();
        std::fs::create_dir(t.join("dest")).unwrap();
        for v in ["victim", "dest-evil"] {
            let d = t.join(v);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("file"), b"precious\n").unwrap();
            std::fs::create_dir(d.join("sub")).unwrap();
            std::fs::write(d.join("sub/inner"), b"inner\n").unwrap();
            std::os::unix::fs::symlink("file", d.join("link")).unwrap();
            let f = File::open(d.join("file")).unwrap();
            fs::fchmod(&f, Mode::from_raw_mode(0o640)).unwrap();
        }
        Self { tmp }
    }
    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("dest")
    }
    pub fn victim(&self) -> PathBuf {
        self.tmp.path().join("victim")
    }
    /// Everything in the temp dir except inside the root.
    pub fn outside(&self) -> Tree {
        snapshot_with(self.tmp.path(), &[b"dest"], SnapOpts::default())
    }
    pub fn inside(&self) -> Tree {
        snapshot_with(
            &self.root(),
            &[],
            SnapOpts {
                dir_times: false,
                ..SnapOpts::default()
            },
        )
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

pub fn s(x: &str) -> Vec<u8> {
    x.as_bytes().to_vec()
}

/// A tiny tar writer for hostile archives: names and link names are written
/// as raw bytes (no checks), with a PAX record when they do not fit or when
/// extra records are given.
#[derive(Default)]
pub struct TarB {
    pub out: Vec<u8>,
}

/// One member for [`TarB::add`].
pub struct M<'a> {
    pub name: &'a [u8],
    pub kind: tar::EntryType,
    pub link: &'a [u8],
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub data: &'a [u8],
    pub dev: (u32, u32),
    pub pax: Vec<(String, Vec<u8>)>,
}

impl<'a> M<'a> {
    pub fn new(name: &'a str, kind: tar::EntryType) -> Self {
        Self {
            name: name.as_bytes(),
            kind,
            link: b"",
            mode: if kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            },
            uid: 0,
            gid: 0,
            data: b"",
            dev: (0, 0),
            pax: Vec::new(),
        }
    }
    pub fn file(name: &'a str, data: &'a [u8]) -> Self {
        Self {
            data,
            ..Self::new(name, tar::EntryType::Regular)
        }
    }
    pub fn link(name: &'a str, kind: tar::EntryType, link: &'a str) -> Self {
        Self {
            link: link.as_bytes(),
            mode: 0o777,
            ..Self::new(name, kind)
        }
    }
}

fn pad(out: &mut Vec<u8>) {
    let r = out.len() % 512;
    if r != 0 {
        out.resize(out.len() + 512 - r, 0);
    }
}

impl TarB {
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&mut self, name: &[u8], kind: tar::EntryType, m: &M<'_>, size: u64) {
        let mut h = tar::Header::new_ustar();
        {
            let u = h.as_ustar_mut().expect("ustar");
            let n = name.len().min(100);
            u.name[..n].copy_from_slice(&name[..n]);
            let l = m.link.len().min(100);
            u.linkname[..l].copy_from_slice(&m.link[..l]);
        }
        h.set_entry_type(kind);
        h.set_mode(m.mode);
        h.set_uid(m.uid);
        h.set_gid(m.gid);
        h.set_mtime(1_600_000_000);
        h.set_size(size);
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            h.set_device_major(m.dev.0).expect("major");
            h.set_device_minor(m.dev.1).expect("minor");
        }
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
    }

    pub fn add(mut self, m: M<'_>) -> Self {
        let mut pax = m.pax.clone();
        if m.name.len() > 100 {
            pax.push(("path".into(), m.name.to_vec()));
        }
        if m.link.len() > 100 {
            pax.push(("linkpath".into(), m.link.to_vec()));
        }
        if !pax.is_empty() {
            let mut body = Vec::new();
            for (k, v) in &pax {
                // "len key=value\n" where len counts itself.
                let rest = k.len() + v.len() + 3;
                let mut len = rest + 1;
                while len.to_string().len() + rest != len {
                    len += 1;
                }
                body.extend_from_slice(format!("{len} {k}=").as_bytes());
                body.extend_from_slice(v);
                body.push(b'\n');
            }
            let ph = M::new("PaxHeader", tar::EntryType::XHeader);
            self.header(
                b"PaxHeader",
                tar::EntryType::XHeader,
                &ph,
                body.len() as u64,
            );
            self.out.extend_from_slice(&body);
            pad(&mut self.out);
        }
        self.header(m.name, m.kind, &m, m.data.len() as u64);
        self.out.extend_from_slice(m.data);
        pad(&mut self.out);
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.resize(self.out.len() + 1024, 0);
        self.out
    }
}

/// Applies a tar stream through the crate's pipeline: `apply_layer` for
/// [`Resolution::Auto`], else `read_layer` feeding an applier that uses
/// `resolution`.
pub fn apply_tar(
    root: &Path,
    tar: &[u8],
    opts: ApplierOptions,
    resolution: Resolution,
) -> strata_archive::Result<()> {
    let dir = File::open(root).expect("open root");
    if resolution == Resolution::Auto {
        let o = strata_archive::ApplyOptions {
            mode: opts.mode,
            id_mappings: opts.id_mappings,
            ignore_chown_errors: opts.ignore_chown_errors,
            force_mask: opts.force_mask,
            tar_split: None,
            unshare: opts.unshare,
        };
        return strata_archive::apply_layer(dir.as_fd(), tar, o).map(|_| ());
    }
    let mut a = Applier::with_resolution(dir.as_fd(), opts, resolution)?;
    strata_archive::read_layer(tar, None, |item| a.push(item))?;
    a.finish()
}

/// What a hostile case must end with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expect {
    Ok,
    Err(strata_archive::ErrorKind),
}

/// Runs one hostile case once per resolution in a fresh [`Sandbox`]:
/// `apply(root, victim_path, resolution)`. Asserts that nothing outside the
/// root changed, the outcome, that every run leaves the same tree inside,
/// and `check` on successful runs.
pub fn run_case<const N: usize>(
    name: &str,
    runs: [Resolution; N],
    apply: impl Fn(&Path, &str, Resolution) -> strata_archive::Result<()>,
    expect: Expect,
    check: impl Fn(&Path, &Tree),
) {
    let mut inside = Vec::new();
    for r in runs {
        let sb = Sandbox::new();
        let victim = sb.victim().to_string_lossy().into_owned();
        let before = sb.outside();
        let got = apply(&sb.root(), &victim, r);
        let after = sb.outside();
        let d = diff_trees(&before, &after);
        assert!(
            d.is_empty(),
            "{name} ({r:?}): outside the root changed:\n{}",
            d.join("\n")
        );
        match (&got, expect) {
            (Ok(()), Expect::Ok) => {}
            (Err(e), Expect::Err(k)) => {
                assert_eq!(e.kind(), k, "{name} ({r:?}): wrong error: {e}")
            }
            _ => panic!("{name} ({r:?}): expected {expect:?}, got {got:?}"),
        }
        let tree = sb.inside();
        if got.is_ok() {
            check(&sb.root(), &tree);
        }
        inside.push(without_sandbox_name(tree, sb.tmp.path()));
    }
    for (i, t) in inside.iter().enumerate().skip(1) {
        let d = diff_trees(&inside[0], t);
        assert!(
            d.is_empty(),
            "{name}: {:?} and {:?} differ:\n{}",
            runs[0],
            runs[i],
            d.join("\n")
        );
    }
}

/// The tree with the sandbox's (random) path replaced by `SANDBOX`, so that
/// two sandboxes compare equal.
pub fn without_sandbox_name(t: Tree, sandbox: &Path) -> Tree {
    let needle = sandbox
        .to_string_lossy()
        .trim_start_matches('/')
        .to_string();
    let fix = |b: &[u8]| -> Vec<u8> {
        String::from_utf8_lossy(b)
            .replace(&needle, "SANDBOX")
            .into_bytes()
    };
    t.into_iter()
        .map(|(k, mut n)| {
            n.target = n.target.as_deref().map(fix);
            n.link_group = n.link_group.as_deref().map(fix);
            (fix(&k), n)
        })
        .collect()
}

/// Like [`run_case`] for any outcome: asserts only that nothing outside the
/// root changed and that every run leaves the same tree inside.
pub fn run_case_any<const N: usize>(
    name: &str,
    runs: [Resolution; N],
    apply: impl Fn(&Path, &str, Resolution) -> strata_archive::Result<()>,
) {
    let mut inside = Vec::new();
    for r in runs {
        let sb = Sandbox::new();
        let victim = sb.victim().to_string_lossy().into_owned();
        let before = sb.outside();
        let _ = apply(&sb.root(), &victim, r);
        let after = sb.outside();
        let d = diff_trees(&before, &after);
        assert!(
            d.is_empty(),
            "{name} ({r:?}): outside the root changed:\n{}",
            d.join("\n")
        );
        inside.push(without_sandbox_name(sb.inside(), sb.tmp.path()));
    }
    for (i, t) in inside.iter().enumerate().skip(1) {
        let d = diff_trees(&inside[0], t);
        assert!(
            d.is_empty(),
            "{name}: {:?} and {:?} differ:\n{}",
            runs[0],
            runs[i],
            d.join("\n")
        );
    }
}
