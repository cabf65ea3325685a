//! Re-owning a layer's files from one ID mapping to another (the seed's
//! `ChownPathByMaps`).
//!
//! Each entry's on-disk owner is a host ID under the old maps; it is taken
//! to its container ID (an ID the old maps lack is an error naming the
//! file), then to the host ID under the new maps (a container ID the new
//! maps lack becomes the kernel's overflow ID), as containers-storage
//! 1.43 does; see [`strata_idmap::Shift`]. The layer's root directory
//! keeps its owner, as with the reference.
//!
//! What a plain `chown(2)` would lose or leave wrong is handled:
//! - hard links: an inode with several names is re-owned once;
//! - set-user-ID and set-group-ID bits, which `chown` clears on files, are
//!   put back;
//! - `security.capability`, which `chown` removes, is put back, with the
//!   root ID of a version 3 (namespaced) capability moved to the new maps
//!   (also where the owner stays, as one the new maps leave out does);
//! - POSIX ACLs (`system.posix_acl_access`, `system.posix_acl_default`)
//!   name users and groups by ID: those IDs are moved too.
//!
//! The walk is in-process and parallel (one task per directory) and goes
//! through directory handles only: every entry is reached with `*at`
//! calls relative to its directory, never by a path that could cross a
//! symlink, and symlinks themselves are re-owned with
//! `AT_SYMLINK_NOFOLLOW`.

use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Stat, Uid, XattrFlags};
use rustix::io::Errno;
use strata_idmap::{IdMappings, IdPair, Shift};

use crate::{Error, Result};

pub use strata_idmap::shift::{ACL_ACCESS, ACL_DEFAULT, CAPABILITY};

/// Re-owns every entry under `path` (but not `path` itself) from
/// `to_container`'s host IDs to `to_host`'s host IDs for the same
/// container IDs.
pub fn chown_path_by_maps(
    path: &Path,
    to_container: &IdMappings,
    to_host: &IdMappings,
) -> Result<()> {
    if to_container == to_host {
        return Ok(());
    }
    shift_tree(
        path,
        &Shift::new(
            to_container,
            to_host,
            strata_idmap::shift::kernel_overflow(),
        ),
    )
}

/// Re-owns the entries under `root` (not `root` itself) by `shift`.
pub fn shift_tree(root: &Path, shift: &Shift) -> Result<()> {
    if shift.is_identity() {
        return Ok(());
    }
    let fd = open_dir(rustix::fs::CWD, Path::new(root)).map_err(|e| io("open", root, e))?;
    let ctx = Ctx {
        shift,
        root,
        seen: Mutex::new(HashSet::new()),
        err: Mutex::new(None),
        failed: AtomicBool::new(false),
    };
    crate::vfs::copy::in_pool(|| rayon::scope(|s| walk(s, &ctx, fd, PathBuf::new())));
    match ctx.err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

struct Ctx<'a> {
    shift: &'a Shift,
    root: &'a Path,
    /// Inodes with several names already re-owned: a second visit would
    /// see the new owner and translate it again.
    seen: Mutex<HashSet<(u64, u64)>>,
    err: Mutex<Option<Error>>,
    failed: AtomicBool,
}

impl Ctx<'_> {
    fn fail(&self, e: Error) {
        self.failed.store(true, Ordering::Relaxed);
        let mut g = self.err.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(e);
        }
    }

    fn path(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    /// Whether this is the first visit of a multiply linked inode.
    fn first_visit(&self, st: &Stat) -> bool {
        st.st_nlink <= 1
            || self
                .seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((st.st_dev, st.st_ino))
    }

    fn new_owner(&self, st: &Stat, rel: &Path) -> Result<IdPair> {
        self.shift
            .owner(IdPair {
                uid: st.st_uid,
                gid: st.st_gid,
            })
            .map_err(|source| Error::Owner {
                path: self.path(rel),
                source: Box::new(source),
            })
    }
}

/// An error of `op` on `p` (shared with the vfs copy's walk).
pub(crate) fn io(op: &'static str, p: &Path, e: Errno) -> Error {
    Error::path(op, p, e.into())
}

/// Opens directory `rel` under `at`, never following a symlink.
pub(crate) fn open_dir(at: BorrowedFd<'_>, rel: &Path) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        at,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn walk<'s>(s: &rayon::Scope<'s>, ctx: &'s Ctx<'s>, dir: OwnedFd, rel: PathBuf) {
    if ctx.failed.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = walk_entries(s, ctx, &dir, &rel) {
        ctx.fail(e);
    }
}

fn walk_entries<'s>(
    s: &rayon::Scope<'s>,
    ctx: &'s Ctx<'s>,
    dir: &OwnedFd,
    rel: &Path,
) -> Result<()> {
    let entries =
        rustix::fs::Dir::read_from(dir).map_err(|e| io("read directory", &ctx.path(rel), e))?;
    for ent in entries {
        let ent = ent.map_err(|e| io("read directory", &ctx.path(rel), e))?;
        let name = ent.file_name();
        if matches!(name.to_bytes(), b"." | b"..") {
            continue;
        }
        let child = rel.join(OsStr::from_bytes(name.to_bytes()));
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io("lstat", &ctx.path(&child), e))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let sub = open_dir(dir.as_fd(), Path::new(OsStr::from_bytes(name.to_bytes())))
                    .map_err(|e| io("open", &ctx.path(&child), e))?;
                shift_dir(ctx, &sub, &st, &child)?;
                s.spawn(move |s| walk(s, ctx, sub, child));
            }
            ft => {
                if ctx.first_visit(&st) {
                    shift_entry(ctx, (dir.as_fd(), name), (&st, ft), &child)?;
                }
            }
        }
    }
    Ok(())
}

/// A directory, through its own handle: owner, ACLs.
fn shift_dir(ctx: &Ctx<'_>, fd: &OwnedFd, st: &Stat, rel: &Path) -> Result<()> {
    let new = ctx.new_owner(st, rel)?;
    let names = XattrNames::of(XattrAt::Fd(fd.as_fd()))
        .map_err(|e| io("list xattrs", &ctx.path(rel), e))?;
    if (new.uid, new.gid) != (st.st_uid, st.st_gid) {
        rustix::fs::fchown(
            fd,
            Some(Uid::from_raw(new.uid)),
            Some(Gid::from_raw(new.gid)),
        )
        .map_err(|e| io("chown", &ctx.path(rel), e))?;
        // Set-ID bits survive a directory's chown on current kernels, but
        // not on every one: put them back when there were any.
        if st.st_mode & 0o6000 != 0 {
            rustix::fs::fchmod(fd, Mode::from_raw_mode(st.st_mode & 0o7777))
                .map_err(|e| io("restore set-ID bits", &ctx.path(rel), e))?;
        }
    }
    for acl in [ACL_ACCESS, ACL_DEFAULT] {
        if names.has(acl) {
            rewrite_xattr(XattrAt::Fd(fd.as_fd()), acl, ctx.shift)
                .map_err(|e| io("rewrite ACL", &ctx.path(rel), e))?;
        }
    }
    Ok(())
}

/// Anything but a directory, by name in its directory.
fn shift_entry(
    ctx: &Ctx<'_>,
    (dir, name): (BorrowedFd<'_>, &CStr),
    (st, ft): (&Stat, FileType),
    rel: &Path,
) -> Result<()> {
    let new = ctx.new_owner(st, rel)?;
    let changed = (new.uid, new.gid) != (st.st_uid, st.st_gid);
    if ft == FileType::Symlink {
        // Symlinks carry neither capabilities nor ACLs.
        if changed {
            chown_at(dir, name, new).map_err(|e| io("lchown", &ctx.path(rel), e))?;
        }
        return Ok(());
    }
    let at = XattrAt::proc(dir, name);
    let names = XattrNames::of(at.borrow()).map_err(|e| io("list xattrs", &ctx.path(rel), e))?;
    // Read even when the owner stays (an owner the new maps leave out
    // may be the overflow ID already): a v3 root ID still moves.
    let cap = if names.has(CAPABILITY) {
        get_xattr(at.borrow(), CAPABILITY).map_err(|e| io("read capability", &ctx.path(rel), e))?
    } else {
        None
    };
    if changed {
        chown_at(dir, name, new).map_err(|e| io("lchown", &ctx.path(rel), e))?;
        if ft == FileType::RegularFile && st.st_mode & 0o6000 != 0 {
            let f = rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::NOCTTY
                    | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io("open", &ctx.path(rel), e))?;
            rustix::fs::fchmod(&f, Mode::from_raw_mode(st.st_mode & 0o7777))
                .map_err(|e| io("restore set-ID bits", &ctx.path(rel), e))?;
        }
    }
    if let Some(v) = cap {
        let moved = ctx.shift.xattr(CAPABILITY.as_bytes(), &v);
        // A chown removed it; otherwise only a moved root ID is written.
        if changed || moved != v {
            set_xattr(at.borrow(), CAPABILITY, &moved)
                .map_err(|e| io("restore security.capability", &ctx.path(rel), e))?;
        }
    }
    if names.has(ACL_ACCESS) {
        rewrite_xattr(at.borrow(), ACL_ACCESS, ctx.shift)
            .map_err(|e| io("rewrite ACL", &ctx.path(rel), e))?;
    }
    Ok(())
}

fn chown_at(dir: BorrowedFd<'_>, name: &CStr, to: IdPair) -> rustix::io::Result<()> {
    rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw(to.uid)),
        Some(Gid::from_raw(to.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// Where xattrs are read and written: a handle, or a name in a directory
/// reached through `/proc/self/fd/<dir>/<name>` with the `l*` calls, which
/// never follow the last component (rustix has no `getxattrat`).
enum XattrAt<'a> {
    Fd(BorrowedFd<'a>),
    Path(CString),
}

impl XattrAt<'_> {
    fn proc(dir: BorrowedFd<'_>, name: &CStr) -> XattrAt<'static> {
        let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        p.extend_from_slice(name.to_bytes());
        // No NUL inside: `name` is a C string and the prefix is ASCII.
        XattrAt::Path(CString::new(p).unwrap_or_default())
    }

    fn borrow(&self) -> XattrAt<'_> {
        match self {
            XattrAt::Fd(fd) => XattrAt::Fd(*fd),
            XattrAt::Path(p) => XattrAt::Path(p.clone()),
        }
    }
}

/// The xattr names an entry has (only whether a few are present matters).
struct XattrNames(Vec<u8>);

impl XattrNames {
    fn of(at: XattrAt<'_>) -> rustix::io::Result<Self> {
        let mut buf = vec![0u8; 256];
        loop {
            let r = match &at {
                XattrAt::Fd(fd) => rustix::fs::flistxattr(fd, &mut buf[..]),
                XattrAt::Path(p) => rustix::fs::llistxattr(p.as_c_str(), &mut buf[..]),
            };
            match r {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(Self(buf));
                }
                Err(Errno::RANGE) => buf.resize(buf.len() * 4, 0),
                Err(Errno::OPNOTSUPP) | Err(Errno::NOSYS) => return Ok(Self(Vec::new())),
                Err(e) => return Err(e),
            }
        }
    }

    fn has(&self, name: &str) -> bool {
        self.0.split(|&b| b == 0).any(|n| n == name.as_bytes())
    }
}

fn get_xattr(at: XattrAt<'_>, name: &str) -> rustix::io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        let r = match &at {
            XattrAt::Fd(fd) => rustix::fs::fgetxattr(fd, name, &mut buf[..]),
            XattrAt::Path(p) => rustix::fs::lgetxattr(p.as_c_str(), name, &mut buf[..]),
        };
        match r {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) => buf.resize(buf.len() * 4, 0),
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

fn set_xattr(at: XattrAt<'_>, name: &str, v: &[u8]) -> rustix::io::Result<()> {
    match &at {
        XattrAt::Fd(fd) => rustix::fs::fsetxattr(fd, name, v, XattrFlags::empty()),
        XattrAt::Path(p) => rustix::fs::lsetxattr(p.as_c_str(), name, v, XattrFlags::empty()),
    }
}

/// Reads an ID-bearing xattr and writes it back moved, when it changes.
fn rewrite_xattr(at: XattrAt<'_>, name: &str, shift: &Shift) -> rustix::io::Result<()> {
    let Some(v) = get_xattr(at.borrow(), name)? else {
        return Ok(());
    };
    let new = shift.xattr(name.as_bytes(), &v);
    if new != v {
        set_xattr(at, name, &new)?;
    }
    Ok(())
}

/// Reads an xattr of `p` (not following symlinks); `None` when absent or
/// when the filesystem has no xattrs.
pub(crate) fn read_xattr(p: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let c = CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::path("getxattr", p, std::io::ErrorKind::InvalidInput.into()))?;
    match get_xattr(XattrAt::Path(c), name) {
        Ok(v) => Ok(v),
        Err(Errno::OPNOTSUPP) => Ok(None),
        Err(e) => Err(io("getxattr", p, e)),
    }
}
