//! Copying a layer tree for a vfs child: every entry with its mode, owner,
//! nanosecond times, xattrs; hard links kept as links; file data reflinked
//! where the filesystem can, else copied in-kernel with holes kept
//! (`strata_sys::clone`).
//!
//! With a [`Shift`], owners are moved to other ID maps on the way (the
//! root directory keeps its owner, as the reference's re-owning walk
//! leaves it), and so are the IDs inside `security.capability` and POSIX
//! ACL xattrs ([`crate::chown`]): a shifted child costs one pass.
//!
//! With `link` (a read-only child of a read-only parent, see
//! [`crate::CreateRequest::share_parent_files`]), every non-directory is a
//! hard link to the parent's inode instead of a copy; directories are
//! still made. [`unshare`] gives one such entry an inode of its own again.
//!
//! The walk is parallel: one rayon task per directory, each opening its
//! directories relative to the two root handles. Directory metadata (owner,
//! mode, xattrs, times) is applied after every task is done, so a read-only
//! directory is only made read-only once its children exist and its mtime is
//! not disturbed by them.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Stat, Timespec, Timestamps, Uid};
use rustix::io::Errno;
use strata_idmap::{IdPair, Shift};
use strata_sys::clone::{CopyMethod, Extent};

use crate::{Error, Result};

struct Ctx<'a> {
    src_root: &'a Path,
    dst_root: &'a Path,
    src_fd: OwnedFd,
    dst_fd: OwnedFd,
    method: AtomicU8,
    links: Mutex<HashMap<(u64, u64), PathBuf>>,
    dirs: Mutex<Vec<(PathBuf, Stat)>>,
    err: Mutex<Option<Error>>,
    failed: AtomicBool,
    euid: u32,
    egid: u32,
    shift: Option<&'a Shift>,
    /// The process umask, when known: files whose mode survives it are
    /// created with their final mode, saving a chmod each.
    umask: Option<u32>,
    /// Non-directories are hard links to the source's inodes.
    link: bool,
    /// One entry is being made private by [`unshare`]: hard links are not
    /// made again, and paths are named through `/proc/self/fd`.
    unsharing: bool,
}

use crate::chown::{io, open_dir};

/// Copies the content of directory `src` into the existing empty directory
/// `dst`, and `src`'s own metadata onto `dst`; with a `shift`, every owner
/// below the root is moved by it.
///
/// With `link` and no `shift`, non-directories are hard links to `src`'s
/// inodes (each falls back to a copy where the link fails: another
/// filesystem, too many links).
pub(crate) fn copy_tree(src: &Path, dst: &Path, shift: Option<&Shift>, link: bool) -> Result<()> {
    let shift = shift.filter(|s| !s.is_identity());
    let mut ctx = Ctx::new(src, dst, shift)?;
    ctx.link = link && shift.is_none();
    let root_st = rustix::fs::fstat(&ctx.src_fd).map_err(|e| io("stat", src, e))?;
    ctx.dirs = Mutex::new(vec![(PathBuf::from("."), root_st)]);
    // The top directory is copied on this thread; a pool is made only when
    // it has subdirectories (an empty layer, the common child of a build
    // step, then costs no threads at all).
    let mut subdirs = Vec::new();
    if let Err(e) = copy_dir_entries(&ctx, Path::new(""), &mut |d| subdirs.push(d)) {
        fail(&ctx, e);
    }
    if !subdirs.is_empty() && !ctx.failed.load(Ordering::Relaxed) {
        in_pool(|| rayon::scope(|s| copy_dirs(s, &ctx, subdirs)));
    }
    if let Some(e) = ctx.err.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    let dirs = std::mem::take(&mut *ctx.dirs.lock().unwrap_or_else(|p| p.into_inner()));
    for (rel, st) in dirs {
        finish_dir(&ctx, &rel, &st)?;
    }
    Ok(())
}

/// Gives entries of a layer that shares inodes with its parent inodes of
/// their own, for [`strata_archive::Unshare`].
pub(crate) struct Unsharer {
    root: PathBuf,
    /// Non-directories of the layer by inode, made at the first unshare:
    /// every name the layer has for an inode moves to the private copy.
    names: Mutex<Option<HashMap<u64, Vec<PathBuf>>>>,
}

impl Unsharer {
    pub(crate) fn new(root: PathBuf) -> Self {
        Unsharer {
            root,
            names: Mutex::new(None),
        }
    }

    /// Replaces the non-directory `name` in `dir` (a directory of the
    /// layer) with a copy under a new inode (content, owner, mode, xattrs
    /// and times as they were), and gives the layer's other names of the
    /// old inode the new one too, as a copied layer has them: the old
    /// inode keeps only its names in other layers.
    pub(crate) fn unshare(&self, dir: BorrowedFd<'_>, name: &[u8]) -> std::io::Result<()> {
        let name = CString::new(name).map_err(|_| std::io::Error::from(Errno::INVAL))?;
        let st = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW)?;
        let tmp = temp_name();
        let mut ctx = Ctx::new(&self.root, &self.root, None).map_err(std::io::Error::other)?;
        ctx.unsharing = true;
        let rel = Path::new(OsStr::from_bytes(name.to_bytes()));
        let made = copy_one(&ctx, (dir, dir), (&name, &tmp), rel, &st).and_then(|()| {
            rustix::fs::renameat(dir, &tmp, dir, &name).map_err(|e| io("rename", rel, e))
        });
        if let Err(e) = made {
            let _ = rustix::fs::unlinkat(dir, &tmp, AtFlags::empty());
            return Err(std::io::Error::other(e));
        }
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if names.is_none() {
            *names = Some(index(&ctx.dst_fd)?);
        }
        for other in names
            .as_ref()
            .and_then(|n| n.get(&st.st_ino))
            .into_iter()
            .flatten()
        {
            self.relink(&ctx.dst_fd, other, (st.st_dev, st.st_ino), (dir, &name))?;
        }
        Ok(())
    }

    /// Points `rel` at the inode `to` names, if `rel` still names `old`.
    /// The path is resolved below the root without following symlinks:
    /// the stream may have changed the tree since it was indexed.
    fn relink(
        &self,
        root: &OwnedFd,
        rel: &Path,
        old: (u64, u64),
        (to_dir, to_name): (BorrowedFd<'_>, &CStr),
    ) -> std::io::Result<()> {
        let (parent, Some(leaf)) = (rel.parent().unwrap_or(Path::new("")), rel.file_name()) else {
            return Ok(());
        };
        let resolve = rustix::fs::ResolveFlags::BENEATH
            | rustix::fs::ResolveFlags::NO_SYMLINKS
            | rustix::fs::ResolveFlags::NO_XDEV;
        let pdir = match rustix::fs::openat2(
            root,
            rel_or_dot(parent),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match rustix::fs::statat(&pdir, leaf, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if (st.st_dev, st.st_ino) == old => {}
            Ok(_) | Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let tmp = temp_name();
        rustix::fs::linkat(to_dir, to_name, &pdir, &tmp, AtFlags::empty())?;
        if let Err(e) = rustix::fs::renameat(&pdir, &tmp, &pdir, leaf) {
            let _ = rustix::fs::unlinkat(&pdir, &tmp, AtFlags::empty());
            return Err(e.into());
        }
        Ok(())
    }
}

fn temp_name() -> CString {
    CString::new(format!(".strata-unshare-{:016x}", rand::random::<u64>())).unwrap_or_default()
}

/// Relative paths of the non-directories under `root` by inode number
/// (from the directory entries: no stat per entry).
fn index(root: &OwnedFd) -> std::io::Result<HashMap<u64, Vec<PathBuf>>> {
    let mut out: HashMap<u64, Vec<PathBuf>> = HashMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let fd = open_dir(root.as_fd(), rel_or_dot(&rel))?;
        for ent in rustix::fs::Dir::read_from(&fd)? {
            let ent = ent?;
            let bytes = ent.file_name().to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let child = rel.join(OsStr::from_bytes(bytes));
            let ft = match ent.file_type() {
                FileType::Unknown => {
                    let st = rustix::fs::statat(&fd, ent.file_name(), AtFlags::SYMLINK_NOFOLLOW)?;
                    FileType::from_raw_mode(st.st_mode)
                }
                ft => ft,
            };
            if ft == FileType::Directory {
                todo.push(child);
            } else {
                out.entry(ent.ino()).or_default().push(child);
            }
        }
    }
    Ok(out)
}

impl<'a> Ctx<'a> {
    fn new(src_root: &'a Path, dst_root: &'a Path, shift: Option<&'a Shift>) -> Result<Self> {
        Ok(Ctx {
            src_root,
            dst_root,
            src_fd: open_dir(rustix::fs::CWD, src_root).map_err(|e| io("open", src_root, e))?,
            dst_fd: open_dir(rustix::fs::CWD, dst_root).map_err(|e| io("open", dst_root, e))?,
            method: AtomicU8::new(0),
            links: Mutex::new(HashMap::new()),
            dirs: Mutex::new(Vec::new()),
            err: Mutex::new(None),
            failed: AtomicBool::new(false),
            euid: rustix::process::geteuid().as_raw(),
            egid: rustix::process::getegid().as_raw(),
            shift,
            umask: read_umask(),
            link: false,
            unsharing: false,
        })
    }
}

/// Runs `f` in a private thread pool of [`copy_threads`] threads (the
/// global pool keeps its size). Copying and re-owning trees is mostly
/// waiting for the disk and the journal, so more tasks than cores keep
/// more I/O in flight.
pub(crate) fn in_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    match rayon::ThreadPoolBuilder::new()
        .num_threads(copy_threads())
        .build()
    {
        Ok(pool) => pool.install(f),
        Err(e) => {
            tracing::debug!("copy pool: {e}; using the global pool");
            f()
        }
    }
}

/// Threads of the copy pool: `STRATA_COPY_THREADS` if set, else four per
/// core (at least 4, at most 32).
fn copy_threads() -> usize {
    if let Some(n) = std::env::var("STRATA_COPY_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 4).clamp(4, 32)
}

/// The `Umask:` line of `/proc/self/status` (Linux 4.7+); `None` if absent.
fn read_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Umask:"))?;
    u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
}

fn fail(ctx: &Ctx<'_>, e: Error) {
    ctx.failed.store(true, Ordering::Relaxed);
    let mut g = ctx.err.lock().unwrap_or_else(|p| p.into_inner());
    if g.is_none() {
        *g = Some(e);
    }
}

fn copy_dirs<'s>(s: &rayon::Scope<'s>, ctx: &'s Ctx<'s>, dirs: Vec<PathBuf>) {
    for d in dirs {
        s.spawn(move |s| copy_dir(s, ctx, d));
    }
}

fn copy_dir<'s>(s: &rayon::Scope<'s>, ctx: &'s Ctx<'s>, rel: PathBuf) {
    if ctx.failed.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = copy_dir_entries(ctx, &rel, &mut |d| s.spawn(move |s| copy_dir(s, ctx, d))) {
        fail(ctx, e);
    }
}

fn rel_or_dot(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

/// Copies the entries of directory `rel`; each subdirectory is made, then
/// handed to `subdir` to be filled.
fn copy_dir_entries(ctx: &Ctx<'_>, rel: &Path, subdir: &mut dyn FnMut(PathBuf)) -> Result<()> {
    let src_dir = open_dir(ctx.src_fd.as_fd(), rel_or_dot(rel))
        .map_err(|e| io("open", &ctx.src_root.join(rel), e))?;
    let dst_dir = open_dir(ctx.dst_fd.as_fd(), rel_or_dot(rel))
        .map_err(|e| io("open", &ctx.dst_root.join(rel), e))?;
    // The root's ACLs stay as they are, as its owner does.
    let shift = ctx.shift.filter(|_| !rel.as_os_str().is_empty());
    copy_xattrs_fd(&src_dir, &dst_dir, shift)
        .map_err(|e| io("copy xattrs", &ctx.dst_root.join(rel), e))?;
    let entries = rustix::fs::Dir::read_from(&src_dir)
        .map_err(|e| io("read directory", &ctx.src_root.join(rel), e))?;
    for ent in entries {
        let ent = ent.map_err(|e| io("read directory", &ctx.src_root.join(rel), e))?;
        let name = ent.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let child_rel = rel.join(OsStr::from_bytes(bytes));
        let known = ent.file_type();
        if ctx.link
            && !matches!(known, FileType::Directory | FileType::Unknown)
            && rustix::fs::linkat(&src_dir, name, &dst_dir, name, AtFlags::empty()).is_ok()
        {
            continue;
        }
        let st = rustix::fs::statat(&src_dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io("lstat", &ctx.src_root.join(&child_rel), e))?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            rustix::fs::mkdirat(&dst_dir, name, Mode::from_raw_mode(0o700))
                .map_err(|e| io("mkdir", &ctx.dst_root.join(&child_rel), e))?;
            ctx.dirs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((child_rel.clone(), st));
            subdir(child_rel);
        } else {
            let dirs = (src_dir.as_fd(), dst_dir.as_fd());
            copy_one(ctx, dirs, (name, name), &child_rel, &st)?;
        }
    }
    Ok(())
}

/// Copies the non-directory `names.0` of `dirs.0` to `names.1` in `dirs.1`.
fn copy_one(
    ctx: &Ctx<'_>,
    (src_dir, dst_dir): (BorrowedFd<'_>, BorrowedFd<'_>),
    (name, dst_name): (&CStr, &CStr),
    rel: &Path,
    st: &Stat,
) -> Result<()> {
    let ft = FileType::from_raw_mode(st.st_mode);
    let paths = || {
        (
            fd_path(ctx, src_dir, ctx.src_root, rel, name),
            fd_path(ctx, dst_dir, ctx.dst_root, rel, dst_name),
        )
    };
    match ft {
        FileType::RegularFile => copy_file(ctx, (src_dir, dst_dir), (name, dst_name), rel, st),
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(src_dir, name, Vec::new())
                .map_err(|e| io("readlink", &ctx.src_root.join(rel), e))?;
            rustix::fs::symlinkat(target.as_c_str(), dst_dir, dst_name)
                .map_err(|e| io("symlink", &ctx.dst_root.join(rel), e))?;
            finish_special(ctx, dst_dir, dst_name, paths(), rel, st)
        }
        FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo | FileType::Socket => {
            rustix::fs::mknodat(
                dst_dir,
                dst_name,
                ft,
                Mode::from_raw_mode(st.st_mode & 0o7777),
                st.st_rdev,
            )
            .map_err(|e| io("mknod", &ctx.dst_root.join(rel), e))?;
            finish_special(ctx, dst_dir, dst_name, paths(), rel, st)
        }
        FileType::Directory | FileType::Unknown => Err(Error::Unsupported(format!(
            "copy of {:?}: not a file, symlink, device or FIFO",
            ctx.src_root.join(rel)
        ))),
    }
}

/// The path of `name` in `dir`: `root`/`rel` in a tree's copy, or
/// through `/proc/self/fd` for an entry made private by [`unshare`]
/// (whose directory is only known by its descriptor).
fn fd_path(ctx: &Ctx<'_>, dir: BorrowedFd<'_>, root: &Path, rel: &Path, name: &CStr) -> PathBuf {
    if !ctx.unsharing {
        root.join(rel)
    } else {
        Path::new("/proc/self/fd")
            .join(dir.as_raw_fd().to_string())
            .join(OsStr::from_bytes(name.to_bytes()))
    }
}

fn method_of(v: u8) -> CopyMethod {
    match v {
        0 => CopyMethod::Clone,
        1 => CopyMethod::CopyRange,
        _ => CopyMethod::ReadWrite,
    }
}

fn method_code(m: CopyMethod) -> u8 {
    match m {
        CopyMethod::Clone => 0,
        CopyMethod::CopyRange => 1,
        CopyMethod::ReadWrite => 2,
    }
}

fn copy_file(
    ctx: &Ctx<'_>,
    (src_dir, dst_dir): (BorrowedFd<'_>, BorrowedFd<'_>),
    (name, dst_name): (&CStr, &CStr),
    rel: &Path,
    st: &Stat,
) -> Result<()> {
    let mode = st.st_mode & 0o7777;
    // Setuid/setgid bits would be cleared by the chown below, and bits the
    // umask removes need a chmod anyway: then create private, chmod later.
    let direct =
        mode & 0o7000 == 0 && ctx.umask.is_some_and(|u| mode & u == 0) && mode & 0o200 != 0;
    let create_mode = if direct { mode } else { 0o600 };
    let create = |what: &Path| {
        rustix::fs::openat(
            dst_dir,
            dst_name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(create_mode),
        )
        .map_err(|e| io("create", &ctx.dst_root.join(what), e))
    };
    let dst = if st.st_nlink > 1 && !ctx.unsharing {
        // The first name of an inode creates the file; later names link to
        // it (the content may still be arriving: it is the same inode).
        let mut links = ctx.links.lock().unwrap_or_else(|p| p.into_inner());
        let key = (st.st_dev, st.st_ino);
        if let Some(first) = links.get(&key) {
            rustix::fs::linkat(&ctx.dst_fd, first, dst_dir, dst_name, AtFlags::empty())
                .map_err(|e| io("link", &ctx.dst_root.join(rel), e))?;
            return Ok(());
        }
        let fd = create(rel)?;
        links.insert(key, rel.to_path_buf());
        fd
    } else {
        create(rel)?
    };
    let src = rustix::fs::openat(
        src_dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io("open", &ctx.src_root.join(rel), e))?;
    let extent = Extent {
        len: u64::try_from(st.st_size).unwrap_or(0),
        allocated: (st.st_blocks as u64).saturating_mul(512),
    };
    let start = method_of(ctx.method.load(Ordering::Relaxed));
    let used = strata_sys::clone::copy_extent(&src, &dst, extent, start)
        .map_err(|e| Error::path("copy", ctx.dst_root.join(rel), e))?;
    if used != start {
        ctx.method.fetch_max(method_code(used), Ordering::Relaxed);
    }
    let owner = ctx.owner(st, rel)?;
    if (owner.uid, owner.gid) != (ctx.euid, ctx.egid) {
        rustix::fs::fchown(
            &dst,
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
        )
        .map_err(|e| io("chown", &ctx.dst_root.join(rel), e))?;
    }
    copy_xattrs_fd(&src, &dst, ctx.shift)
        .map_err(|e| io("copy xattrs", &ctx.dst_root.join(rel), e))?;
    if !direct && mode != 0o600 {
        rustix::fs::fchmod(&dst, Mode::from_raw_mode(st.st_mode & 0o7777))
            .map_err(|e| io("chmod", &ctx.dst_root.join(rel), e))?;
    }
    rustix::fs::futimens(&dst, &times(st))
        .map_err(|e| io("set times", &ctx.dst_root.join(rel), e))?;
    Ok(())
}

fn times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// Owner, xattrs, mode (not for symlinks) and times of a non-regular,
/// non-directory entry.
fn finish_special(
    ctx: &Ctx<'_>,
    dst_dir: BorrowedFd<'_>,
    name: &CStr,
    (src_path, dst_path): (PathBuf, PathBuf),
    rel: &Path,
    st: &Stat,
) -> Result<()> {
    let owner = ctx.owner(st, rel)?;
    if (owner.uid, owner.gid) != (ctx.euid, ctx.egid) {
        rustix::fs::chownat(
            dst_dir,
            name,
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io("lchown", &dst_path, e))?;
    }
    copy_xattrs_path(&src_path, &dst_path, ctx.shift)
        .map_err(|e| io("copy xattrs", &dst_path, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
        rustix::fs::chmodat(
            dst_dir,
            name,
            Mode::from_raw_mode(st.st_mode & 0o7777),
            AtFlags::empty(),
        )
        .map_err(|e| io("chmod", &dst_path, e))?;
    }
    rustix::fs::utimensat(dst_dir, name, &times(st), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io("set times", &dst_path, e))?;
    Ok(())
}

/// Owner, mode and times of a copied directory, once its content is in
/// place (xattrs were copied when its task opened it).
fn finish_dir(ctx: &Ctx<'_>, rel: &Path, st: &Stat) -> Result<()> {
    let dst_path = ctx.dst_root.join(rel);
    let dst = ctx.dst_fd.as_fd();
    // The root keeps its owner: the reference's re-owning walk skips it.
    let owner = if rel == Path::new(".") {
        IdPair {
            uid: st.st_uid,
            gid: st.st_gid,
        }
    } else {
        ctx.owner(st, rel)?
    };
    if (owner.uid, owner.gid) != (ctx.euid, ctx.egid) {
        rustix::fs::chownat(
            dst,
            rel,
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io("chown", &dst_path, e))?;
    }
    rustix::fs::chmodat(
        dst,
        rel,
        Mode::from_raw_mode(st.st_mode & 0o7777),
        AtFlags::empty(),
    )
    .map_err(|e| io("chmod", &dst_path, e))?;
    rustix::fs::utimensat(dst, rel, &times(st), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io("set times", &dst_path, e))?;
    Ok(())
}

/// An xattr value with the IDs it holds moved by `shift`, if any.
fn shifted(name: &OsStr, v: Vec<u8>, shift: Option<&Shift>) -> Vec<u8> {
    match shift {
        Some(s) => s.xattr(name.as_bytes(), &v),
        None => v,
    }
}

impl Ctx<'_> {
    /// The owner an entry gets in the copy.
    fn owner(&self, st: &Stat, rel: &Path) -> Result<IdPair> {
        let old = IdPair {
            uid: st.st_uid,
            gid: st.st_gid,
        };
        match self.shift {
            None => Ok(old),
            Some(s) => s.owner(old).map_err(|source| Error::Owner {
                path: self.src_root.join(rel),
                source: Box::new(source),
            }),
        }
    }
}

fn xattr_unsupported(e: Errno) -> bool {
    e == Errno::OPNOTSUPP || e == Errno::NOSYS
}

fn copy_xattrs_fd(src: &OwnedFd, dst: &OwnedFd, shift: Option<&Shift>) -> rustix::io::Result<()> {
    let mut names = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::flistxattr(src, &mut names[..]) {
            Ok(n) => break n,
            Err(Errno::RANGE) => {
                let want = rustix::fs::flistxattr_query(src)?;
                names.resize(want.max(names.len() * 2), 0);
            }
            Err(e) if xattr_unsupported(e) => return Ok(()),
            Err(e) => return Err(e),
        }
    };
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        let len = match rustix::fs::fgetxattr_query(src, name) {
            Ok(l) => l,
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(e),
        };
        let mut v = vec![0u8; len];
        let got = rustix::fs::fgetxattr(src, name, &mut v[..])?;
        v.truncate(got);
        let v = shifted(name, v, shift);
        rustix::fs::fsetxattr(dst, name, &v, rustix::fs::XattrFlags::empty())?;
    }
    Ok(())
}

fn copy_xattrs_path(src: &Path, dst: &Path, shift: Option<&Shift>) -> rustix::io::Result<()> {
    let n = match rustix::fs::llistxattr_query(src) {
        Ok(0) => return Ok(()),
        Ok(n) => n,
        Err(e) if xattr_unsupported(e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut names = vec![0u8; n];
    let n = rustix::fs::llistxattr(src, &mut names[..])?;
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        let len = match rustix::fs::lgetxattr_query(src, name) {
            Ok(l) => l,
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(e),
        };
        let mut v = vec![0u8; len];
        let got = rustix::fs::lgetxattr(src, name, &mut v[..])?;
        v.truncate(got);
        let v = shifted(name, v, shift);
        rustix::fs::lsetxattr(dst, name, &v, rustix::fs::XattrFlags::empty())?;
    }
    Ok(())
}
