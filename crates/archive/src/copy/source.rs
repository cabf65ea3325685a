//! The source side of a copy, read through descriptors only.
//!
//! The source path is resolved inside its root (a layer's mount, or `/`
//! for host files) by the confined open ([`crate::confined`]), so `..` stops at the root and absolute symlinks in the path are
//! re-rooted there, as in a chroot. The last component is never followed:
//! a symlink named by the source is copied as a symlink. Below it every
//! object is reached by `openat(parent_fd, name, O_NOFOLLOW)` and checked
//! with `fstat` on the descriptor; no path string is resolved again, so a
//! symlink inside the source layer can never make copy read a host file.

use std::collections::HashMap;
use std::ffi::{CStr, OsStr};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{self, AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::TopDir;
use crate::changes::meta::XattrSet;
use crate::confined::{self, How};
use crate::entry::{EntryKind, Header, Item, Timestamp, Xattr, CHUNK};
use crate::{Applier, Error, Result};

/// What a source path names: the object, already `lstat`ed, and the
/// directory it sits in.
pub(super) struct Node {
    /// Directory holding the object (`O_PATH`).
    parent: OwnedFd,
    /// Name in `parent` (`.` when the source is a directory reached by
    /// `.`/`..` or the root itself).
    name: Vec<u8>,
    /// Its metadata, not following a final symlink.
    pub(super) st: Stat,
}

impl Node {
    /// Whether the source is a directory.
    pub(super) fn is_dir(&self) -> bool {
        FileType::from_raw_mode(self.st.st_mode) == FileType::Directory
    }
}

/// Opens the directory `rel` inside `root` (chroot semantics), `O_PATH`,
/// by the confined open.
pub(super) fn open_dir_in(root: BorrowedFd<'_>, rel: &[u8]) -> std::io::Result<OwnedFd> {
    Ok(confined::open(root, rel, &How::dir())?)
}

/// Splits `path` into its parent and last component, ignoring trailing
/// slashes.
pub(super) fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    let mut end = path.len();
    while end > 0 && path[end - 1] == b'/' {
        end -= 1;
    }
    let p = &path[..end];
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (b"", p),
    }
}

/// Finds `path` inside `root` without following its last component.
pub(super) fn lookup(root: BorrowedFd<'_>, path: &[u8]) -> Result<Node> {
    let shown = String::from_utf8_lossy(path).into_owned();
    let (parent, name) = split_last(path);
    let (parent, name) = if matches!(name, b"" | b"." | b"..") {
        // The whole path names a directory: resolve all of it.
        let dir =
            open_dir_in(root, path).map_err(|e| Error::io(format!("resolving {shown}"), e))?;
        (dir, b".".to_vec())
    } else {
        let dir =
            open_dir_in(root, parent).map_err(|e| Error::io(format!("resolving {shown}"), e))?;
        (dir, name.to_vec())
    };
    let st = fs::statat(&parent, OsStr::from_bytes(&name), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| Error::io(format!("stat {shown}"), e.into()))?;
    Ok(Node { parent, name, st })
}

/// Walks a source tree and hands it to the applier as an entry stream
/// whose names start with `dest`.
pub(super) struct Walk<'a> {
    /// Receives the entries.
    pub applier: Applier<'a>,
    /// Owner forced by `--chown`.
    pub owner: Option<(u32, u32)>,
    /// Entry name of the source itself (empty for the layer root).
    pub dest: Vec<u8>,
    /// Whether a directory source makes its destination directory (which
    /// then gets mode 0755, the `--chown` owner or root, and the current
    /// time, as the reference makes it) or merges into an existing one
    /// (whose metadata is kept).
    pub top: TopDir,
    /// First entry name of each multiply-linked file, by (device, inode).
    pub links: HashMap<(u64, u64), Vec<u8>>,
    /// Root of the destination layer, to find the destination directory
    /// once it exists.
    pub dest_root: BorrowedFd<'a>,
    /// (device, inode) of the destination directory, once known: a source
    /// directory below it would be copied into itself forever.
    pub dest_ident: Option<(u64, u64)>,
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a.is_empty() {
        return b.to_vec();
    }
    let mut v = a.to_vec();
    v.push(b'/');
    v.extend_from_slice(b);
    v
}

fn same(a: &Stat, b: &Stat) -> bool {
    (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
}

impl Walk<'_> {
    /// Copies `node` and everything below it.
    pub(super) fn run(&mut self, node: &Node) -> Result<()> {
        let dest = self.dest.clone();
        self.object(node.parent.as_fd(), &node.name, &node.st, &dest)
    }

    fn object(&mut self, dir: BorrowedFd<'_>, name: &[u8], st: &Stat, path: &[u8]) -> Result<()> {
        let os = OsStr::from_bytes(name);
        let shown = || String::from_utf8_lossy(path).into_owned();
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => EntryKind::File,
            FileType::Directory => EntryKind::Directory,
            FileType::Symlink => {
                let t = fs::readlinkat(dir, os, Vec::new())
                    .map_err(|e| Error::io(format!("readlink {}", shown()), e.into()))?;
                EntryKind::Symlink {
                    target: t.into_bytes(),
                }
            }
            FileType::CharacterDevice => EntryKind::CharDevice {
                major: fs::major(st.st_rdev),
                minor: fs::minor(st.st_rdev),
            },
            FileType::BlockDevice => EntryKind::BlockDevice {
                major: fs::major(st.st_rdev),
                minor: fs::minor(st.st_rdev),
            },
            FileType::Fifo => EntryKind::Fifo,
            FileType::Socket => {
                tracing::warn!("skipping socket {}", shown());
                return Ok(());
            }
            FileType::Unknown => {
                return Err(Error::Copy(format!("{}: unknown file type", shown())))
            }
        };
        let mut h = Header::new(path.to_vec(), kind);
        h.mode = st.st_mode & 0o7777;
        (h.uid, h.gid) = self.owner.unwrap_or((st.st_uid, st.st_gid));
        h.mtime = Timestamp {
            sec: st.st_mtime,
            nsec: st.st_mtime_nsec as u32,
        };
        match h.kind {
            EntryKind::File => self.file(dir, name, st, h),
            EntryKind::Directory => self.dir(dir, name, st, h),
            _ => self.member(h),
        }
    }

    fn member(&mut self, h: Header) -> Result<()> {
        self.applier.push(Item::Header(Box::new(h)))?;
        self.applier.push(Item::End)
    }

    fn file(&mut self, dir: BorrowedFd<'_>, name: &[u8], st: &Stat, mut h: Header) -> Result<()> {
        let path = h.path.clone();
        let shown = || String::from_utf8_lossy(&path).into_owned();
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                h.kind = EntryKind::HardLink {
                    target: first.clone(),
                };
                return self.member(h);
            }
            self.links.insert(key, path.clone());
        }
        let fd = fs::openat(
            dir,
            OsStr::from_bytes(name),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(format!("open {}", shown()), e.into()))?;
        let now = fstat(&fd, &shown)?;
        if !same(&now, st) || FileType::from_raw_mode(now.st_mode) != FileType::RegularFile {
            return Err(changed(&shown()));
        }
        h.size = now.st_size as u64;
        h.xattrs =
            layer_xattrs(fd.as_fd()).map_err(|e| Error::io(format!("xattrs of {}", shown()), e))?;
        let size = h.size;
        self.applier.push(Item::Header(Box::new(h)))?;
        let mut f = std::fs::File::from(fd).take(size);
        let mut offset = 0u64;
        loop {
            let mut buf = Vec::with_capacity(CHUNK);
            let n = (&mut f)
                .take(CHUNK as u64)
                .read_to_end(&mut buf)
                .map_err(|e| Error::io(format!("read {}", shown()), e))?;
            if n == 0 {
                break;
            }
            self.applier.push(Item::Data {
                offset,
                bytes: buf.into(),
            })?;
            offset += n as u64;
        }
        self.applier.push(Item::End)
    }

    fn dir(&mut self, parent: BorrowedFd<'_>, name: &[u8], st: &Stat, mut h: Header) -> Result<()> {
        let path = h.path.clone();
        let shown = || String::from_utf8_lossy(&path).into_owned();
        let fd = fs::openat(
            parent,
            OsStr::from_bytes(name),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(format!("open {}", shown()), e.into()))?;
        let now = fstat(&fd, &shown)?;
        if !same(&now, st) {
            return Err(changed(&shown()));
        }
        if path != self.dest && self.dest_ident == Some((now.st_dev, now.st_ino)) {
            return Err(Error::Copy("cannot copy a directory into itself".into()));
        }
        // The destination of the copy is made as the reference makes it
        // (`mkdir -p` with 0755), or merged into; directories below it are
        // copied with their own metadata.
        let emit = if path == self.dest {
            h.mode = 0o755;
            (h.uid, h.gid) = self.owner.unwrap_or((0, 0));
            h.mtime = Timestamp::now();
            self.top == TopDir::Make
        } else {
            true
        };
        if emit {
            h.xattrs = layer_xattrs(fd.as_fd())
                .map_err(|e| Error::io(format!("xattrs of {}", shown()), e))?;
            self.applier.push(Item::Header(Box::new(h)))?;
            self.applier.push(Item::End)?;
        }
        if path == self.dest {
            self.dest_ident = open_dir_in(self.dest_root, &path)
                .and_then(|d| Ok(fs::fstat(&d)?))
                .ok()
                .map(|st| (st.st_dev, st.st_ino));
        }
        let mut names: Vec<Vec<u8>> = Vec::new();
        let list_err = |e: Errno| Error::io(format!("reading {}", shown()), e.into());
        for e in fs::Dir::read_from(&fd).map_err(list_err)? {
            let e = e.map_err(list_err)?;
            let n: &CStr = e.file_name();
            let n = n.to_bytes();
            if n != b"." && n != b".." {
                names.push(n.to_vec());
            }
        }
        names.sort();
        for n in names {
            let child = match fs::statat(&fd, OsStr::from_bytes(&n), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(c) => c,
                // Gone since the listing: nothing to copy.
                Err(Errno::NOENT) => continue,
                Err(e) => {
                    return Err(Error::io(
                        format!("stat {}/{}", shown(), n.escape_ascii()),
                        e.into(),
                    ))
                }
            };
            self.object(fd.as_fd(), &n, &child, &join(&path, &n))?;
        }
        Ok(())
    }
}

/// The xattrs a layer carries (as the reference's tar writer takes them):
/// `security.capability` and `user.*`, except the overlay's and
/// containers' own, which a layer never gets to write.
fn layer_xattrs(fd: BorrowedFd<'_>) -> std::io::Result<Vec<Xattr>> {
    let unsupported = |e: Errno| matches!(e, Errno::OPNOTSUPP | Errno::NODATA);
    let len = match fs::flistxattr_query(fd) {
        Ok(0) => return Ok(Vec::new()),
        Ok(n) => n,
        Err(e) if unsupported(e) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut names = vec![0u8; len];
    let n = fs::flistxattr(fd, &mut names[..])?;
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if !XattrSet::Exported.contains(name) {
            continue;
        }
        let cname = OsStr::from_bytes(name);
        let value = match fs::fgetxattr_query(fd, cname) {
            Ok(len) => {
                let mut v = vec![0u8; len];
                let got = fs::fgetxattr(fd, cname, &mut v[..])?;
                v.truncate(got);
                v
            }
            // Removed since the listing.
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        out.push(Xattr {
            name: name.to_vec(),
            value,
        });
    }
    Ok(out)
}

fn fstat(fd: &OwnedFd, shown: &dyn Fn() -> String) -> Result<Stat> {
    fs::fstat(fd).map_err(|e| Error::io(format!("stat {}", shown()), e.into()))
}

fn changed(shown: &str) -> Error {
    Error::Copy(format!("{shown} changed while it was copied"))
}
