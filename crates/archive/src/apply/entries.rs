//! One entry: files, directories, links and nodes, and the root entry.

use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;

use rustix::fs::{self, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::meta::{timestamps, Target};
use super::ops::{self, Removed};
use super::path::{self, Role};
use super::resolve::{self, lossy, CachedDir, Missing};
use super::writer::Job;
use super::{Applier, ApplyMode, DeferredDir, OpenFile, State};
use crate::entry::{EntryKind, Header};
use crate::{Error, Result};

/// Largest major and minor numbers the kernel's 32-bit `dev_t` holds.
const MAX_MAJOR: u32 = (1 << 12) - 1;
const MAX_MINOR: u32 = (1 << 20) - 1;

pub(super) fn refused(h: &Header, reason: impl Into<String>) -> Error {
    Error::Refused {
        path: String::from_utf8_lossy(&h.raw_path).into_owned(),
        reason: reason.into(),
    }
}

pub(super) fn err(op: &'static str, path: &[u8], e: impl Into<std::io::Error>) -> Error {
    Error::Path {
        op,
        path: lossy(path),
        source: e.into(),
    }
}

pub(super) fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    p.extend_from_slice(parent);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

impl Applier<'_> {
    /// Starts a member.
    pub(super) fn begin(&mut self, h: Box<Header>) -> Result<()> {
        let n = path::normalize(&h.path);
        if n.had_dotdot {
            tracing::warn!(
                "entry {:?} has `..` components; applying it as {:?} inside the root",
                lossy(&h.raw_path),
                lossy(&n.path)
            );
        }
        if n.path.is_empty() {
            return self.root_entry(h);
        }
        match path::classify(&n.path).map_err(|r| refused(&h, r))? {
            Role::Normal => self.entry(&n.path, h),
            Role::LinkDir => {
                self.plnk = true;
                self.entry(&n.path, h)
            }
            Role::Meta => {
                tracing::debug!("skipping AUFS metadata {:?}", lossy(&n.path));
                Ok(())
            }
            Role::Opaque => self.opaque(&n.path, h),
            Role::Whiteout(name) => self.whiteout(&n.path, name, h),
        }
    }

    /// The directory `parent`, created (0755, container root) if missing.
    pub(super) fn parent_dir(&mut self, parent: &[u8]) -> Result<Rc<CachedDir>> {
        let meta = &mut self.meta;
        let unpacked = &mut self.unpacked;
        let full = self.mode == ApplyMode::FullTree;
        let mut made = |pdir: BorrowedFd<'_>, name: &[u8], fd: BorrowedFd<'_>| -> Result<()> {
            let owner = meta.root_owner()?;
            meta.chown(Target::Fd(fd), owner, parent)?;
            if full {
                let st = fs::fstat(pdir).map_err(|e| err("stat", parent, e))?;
                unpacked.insert((st.st_dev, st.st_ino, name.to_vec()));
            }
            Ok(())
        };
        self.res.dir(parent, Missing::Create(&mut made))
    }

    /// Notes that this layer made `name` in `dir` (full-tree mode).
    fn record(&mut self, dir: &CachedDir, name: &[u8], p: &[u8]) -> Result<()> {
        if self.mode == ApplyMode::FullTree {
            let (dev, ino) = dir.ident().map_err(|e| err("stat", p, e))?;
            self.unpacked.insert((dev, ino, name.to_vec()));
        }
        Ok(())
    }

    /// Removes whatever is at `name` in `d`.
    pub(super) fn clear(&mut self, d: BorrowedFd<'_>, name: &[u8], p: &[u8]) -> Result<()> {
        let removed = ops::remove_any(d, name).map_err(|e| err("remove", p, e))?;
        if removed == Removed::DirOrLink {
            self.res.invalidate();
        }
        Ok(())
    }

    /// Runs `make`; if the name exists, removes it and runs `make` again.
    pub(super) fn create_replacing<T>(
        &mut self,
        (d, name, p): (BorrowedFd<'_>, &[u8], &[u8]),
        op: &'static str,
        mut make: impl FnMut() -> rustix::io::Result<T>,
    ) -> Result<T> {
        match make() {
            Ok(v) => Ok(v),
            Err(Errno::EXIST) => {
                self.clear(d, name, p)?;
                make().map_err(|e| err(op, p, e))
            }
            Err(e) => Err(err(op, p, e)),
        }
    }

    /// A normal entry at the normalised path `p`.
    pub(super) fn entry(&mut self, p: &[u8], h: Box<Header>) -> Result<()> {
        let (parent, name) = path::split_parent(p);
        let node = match h.kind {
            EntryKind::CharDevice { major, minor } => {
                Some((FileType::CharacterDevice, major, minor))
            }
            EntryKind::BlockDevice { major, minor } => Some((FileType::BlockDevice, major, minor)),
            EntryKind::Fifo => Some((FileType::Fifo, 0, 0)),
            EntryKind::Socket => {
                tracing::warn!("skipping socket {:?}: sockets are never created", lossy(p));
                return Ok(());
            }
            _ => None,
        };
        if let Some((_, major, minor)) = node {
            if major > MAX_MAJOR || minor > MAX_MINOR {
                return Err(refused(
                    &h,
                    format!("device {major}:{minor} does not fit the kernel's device numbers"),
                ));
            }
            if self.meta.force_mask().is_some() {
                return Err(refused(
                    &h,
                    "force_mask cannot keep the real owner and mode of a device or FIFO",
                ));
            }
        }
        let dir = self.parent_dir(parent)?;
        let d = dir.fd.as_fd();
        match &h.kind {
            EntryKind::File => {
                let owner_now = self.meta.fresh_owner(&dir);
                let final_mode = self.meta.final_create_mode(&h, p, owner_now)?;
                let fd = self.create_replacing((d, name, p), "create", || {
                    fs::openat(
                        d,
                        name,
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(final_mode.unwrap_or(0o600)),
                    )
                })?;
                self.record(&dir, name, p)?;
                self.file_job(Job::Begin(Box::new(OpenFile {
                    file: std::fs::File::from(fd),
                    path: p.to_vec(),
                    header: h,
                    end: 0,
                    owner_now,
                    maybe_final_mode: final_mode.is_some(),
                })))?;
                self.state = State::File;
                return Ok(());
            }
            EntryKind::Directory => self.make_dir(&dir, name, p, &h)?,
            EntryKind::Symlink { target } => {
                self.create_replacing((d, name, p), "symlink", || {
                    fs::symlinkat(target.as_slice(), d, name)
                })?;
                let t = Target::At {
                    dir: d,
                    name,
                    symlink: true,
                };
                let now = self.meta.fresh_owner(&dir);
                self.meta.apply(t, &h, p, now)?;
                self.meta.times(t, &timestamps(&h), p)?;
            }
            EntryKind::HardLink { target } => self.make_hardlink(d, name, p, target, &h)?,
            _ => {
                let (kind, major, minor) = node.unwrap_or((FileType::Fifo, 0, 0));
                let dev = fs::makedev(major, minor);
                let mode = Mode::from_raw_mode(h.mode & 0o777);
                self.create_replacing((d, name, p), "mknod", || {
                    fs::mknodat(d, name, kind, mode, dev)
                })?;
                let t = Target::At {
                    dir: d,
                    name,
                    symlink: false,
                };
                let now = self.meta.fresh_owner(&dir);
                self.meta.apply(t, &h, p, now)?;
                self.meta.times(t, &timestamps(&h), p)?;
            }
        }
        self.record(&dir, name, p)
    }

    fn make_dir(&mut self, dir: &CachedDir, name: &[u8], p: &[u8], h: &Header) -> Result<()> {
        let d = dir.fd.as_fd();
        let mut now = self.meta.fresh_owner(dir);
        match fs::mkdirat(d, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                // Whatever was there changes: cached directories (and what
                // they know of their mode and group) may be stale.
                self.res.invalidate();
                now = None;
                let st = resolve::lstat_at(d, name).map_err(|e| err("stat", p, e))?;
                let is_dir =
                    st.is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
                if !is_dir {
                    self.clear(d, name, p)?;
                    fs::mkdirat(d, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| err("mkdir", p, e))?;
                }
            }
            Err(e) => return Err(err("mkdir", p, e)),
        }
        let fd = ops::open_subdir(d, name).map_err(|e| err("open", p, e))?;
        self.meta.apply(Target::Fd(fd.as_fd()), h, p, now)?;
        let mode = self.keep_writable(fd.as_fd(), h, p)?;
        let st = fs::fstat(&fd).map_err(|e| err("stat", p, e))?;
        self.deferred.push(DeferredDir {
            path: p.to_vec(),
            ident: (st.st_dev, st.st_ino),
            times: timestamps(h),
            mode,
        });
        self.res.remember(p, CachedDir::new(fd));
        Ok(())
    }

    fn make_hardlink(
        &mut self,
        d: BorrowedFd<'_>,
        name: &[u8],
        p: &[u8],
        target: &[u8],
        h: &Header,
    ) -> Result<()> {
        let t = path::normalize(target);
        if t.path.is_empty() {
            return Err(refused(h, "a hard link to the root directory"));
        }
        if t.had_dotdot {
            tracing::warn!(
                "hard link target {:?} has `..` components; using {:?} inside the root",
                lossy(target),
                lossy(&t.path)
            );
        }
        // The link's header is applied to the target's inode: after the
        // target's own, if the writer thread still has it.
        self.sync_files()?;
        let (tp, tn) = path::split_parent(&t.path);
        let tdir = self.res.dir(tp, Missing::Fail)?;
        let mut tst = resolve::lstat_at(tdir.fd.as_fd(), tn)
            .map_err(|e| err("stat", &t.path, e))?
            .ok_or_else(|| err("link to", &t.path, Errno::NOENT))?;
        let ttype = FileType::from_raw_mode(tst.st_mode);
        if ttype == FileType::Directory {
            return Err(refused(h, "a hard link to a directory"));
        }
        if let Some(unshare) = &self.unshare {
            // An inode with other names that no link member of this stream
            // made may be another tree's too: the link header's metadata
            // must not reach that tree.
            if tst.st_nlink > 1 && !self.linked_here.contains(&(tst.st_dev, tst.st_ino)) {
                (unshare.0)(tdir.fd.as_fd(), tn).map_err(|e| err("unshare", &t.path, e))?;
                tst = resolve::lstat_at(tdir.fd.as_fd(), tn)
                    .map_err(|e| err("stat", &t.path, e))?
                    .ok_or_else(|| err("link to", &t.path, Errno::NOENT))?;
            }
            self.linked_here.insert((tst.st_dev, tst.st_ino));
        }
        if self.meta.force_mask().is_some()
            && !matches!(ttype, FileType::RegularFile | FileType::Symlink)
        {
            return Err(refused(
                h,
                "force_mask cannot keep the real owner and mode of a device or FIFO",
            ));
        }
        let existing = resolve::lstat_at(d, name).map_err(|e| err("stat", p, e))?;
        let same = existing.is_some_and(|st| (st.st_dev, st.st_ino) == (tst.st_dev, tst.st_ino));
        if !same {
            let td = tdir.fd.as_fd();
            self.create_replacing((d, name, p), "link", || {
                fs::linkat(td, tn, d, name, AtFlags::empty())
            })?;
        }
        // The link header's metadata is applied to the inode as the
        // reference does, but a symlink's inode is never chmodded (that is
        // how "chmod through a hard link to a symlink" attacks work).
        let target = Target::At {
            dir: d,
            name,
            symlink: ttype == FileType::Symlink,
        };
        self.meta.apply(target, h, p, None)?;
        self.meta.times(target, &timestamps(h), p)
    }

    /// The root entry (`.`, `./`, or a name that normalises to it).
    fn root_entry(&mut self, h: Box<Header>) -> Result<()> {
        if h.kind != EntryKind::Directory {
            return Err(refused(
                &h,
                "a layer may not turn its root directory into a non-directory",
            ));
        }
        let fd =
            resolve::reopen_dir(self.res.root().fd.as_fd()).map_err(|e| err("open", b".", e))?;
        self.root_entry = true;
        self.meta.apply(Target::Fd(fd.as_fd()), &h, b".", None)?;
        let mode = self.keep_writable(fd.as_fd(), &h, b".")?;
        self.res.root().forget_info();
        self.res.invalidate();
        let st = fs::fstat(&fd).map_err(|e| err("stat", b".", e))?;
        self.deferred.push(DeferredDir {
            path: Vec::new(),
            ident: (st.st_dev, st.st_ino),
            times: timestamps(&h),
            mode,
        });
        Ok(())
    }

    /// Without root, a directory that would not let us add its entries stays
    /// owner-writable until [`Applier::finish`]; returns its final mode then.
    fn keep_writable(&mut self, fd: BorrowedFd<'_>, h: &Header, p: &[u8]) -> Result<Option<u32>> {
        let mode = self.meta.final_mode(h);
        if !self.meta.must_defer_dir_mode(mode) {
            return Ok(None);
        }
        self.meta.chmod(Target::Fd(fd), mode | 0o700, p)?;
        Ok(Some(mode))
    }
}
