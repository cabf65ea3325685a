//! The one confined open: every lookup of a path inside a layer (applying,
//! exporting, replaying a tar-split record, copying, a driver's diff
//! getter) goes through [`open`].
//!
//! - The fast path is `openat2(2)` with `RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS` (plus `RESOLVE_NO_SYMLINKS` for
//!   [`Symlinks::Refuse`]): the kernel treats the root as `/` for the
//!   lookup, so `..` stops there and absolute symlinks are re-rooted.
//!   `EAGAIN` (a rename or mount raced with the lookup) is retried, then
//!   the walk answers.
//! - The fallback is a component walk with `openat(2)` and `O_NOFOLLOW`:
//!   symlink targets are read and spliced into the remaining components
//!   (absolute ones restart at the root), `..` at the root stays there,
//!   magic links (`/proc/self/...`) never resolve because nothing is
//!   followed by the kernel. It serves kernels without openat2 (before
//!   5.6, or a seccomp filter answering `ENOSYS`, which is remembered for
//!   the process), paths of `PATH_MAX` bytes or more, and runs where
//!   [`Resolution::ManualWalk`] or [`force_walk`] ask for it. Tests hold
//!   it to the same answers as the fast path.
//!
//! The walk counts its depth itself: `..` below the root is opened from
//! the current directory, which is right as long as nobody renames the
//! layer's directories during the lookup (layers being written have one
//! writer; trees being read are read through descriptors, and a raced
//! rename can at worst land in another directory *inside* the root, never
//! outside it, since depth 0 is the root's own descriptor).
//!
//! Setting `STRATA_CONFINED_WALK=1` in the environment forces the walk for
//! the whole process (the CLI's hostile-layer suites run both ways).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;

use rustix::fs::{self, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// How paths inside a root are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolution {
    /// `openat2` when the kernel has it, else the walk.
    #[default]
    Auto,
    /// Always `openat2`; `ENOSYS` where the kernel lacks it.
    Openat2,
    /// Always the component walk (for tests and old kernels).
    ManualWalk,
}

/// Which symlinks a lookup follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Symlinks {
    /// Followed inside the root, as in a chroot (the last component too,
    /// unless the flags hold `O_NOFOLLOW`).
    #[default]
    InRoot,
    /// None: a symlink on the way fails with `ELOOP`; a symlink as the
    /// last component does too, unless `O_PATH | O_NOFOLLOW` asks for the
    /// link itself.
    Refuse,
}

/// What one lookup asks for.
#[derive(Debug, Clone, Copy)]
pub struct How {
    /// `open(2)` flags for the object found (`O_CLOEXEC` is added; no
    /// `O_CREAT`).
    pub flags: OFlags,
    /// Which symlinks are followed.
    pub symlinks: Symlinks,
    /// Fast path, walk, or whichever works.
    pub resolution: Resolution,
}

impl How {
    /// `flags`, symlinks followed inside the root, [`Resolution::Auto`].
    pub fn new(flags: OFlags) -> Self {
        Self {
            flags,
            symlinks: Symlinks::InRoot,
            resolution: Resolution::Auto,
        }
    }

    /// `O_PATH | O_DIRECTORY`: a directory handle to look up further from.
    pub fn dir() -> Self {
        Self::new(OFlags::PATH | OFlags::DIRECTORY)
    }
}

/// Which resolver answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Openat2,
    Walk,
}

/// Paths at least this long go to the walk (`PATH_MAX` includes the NUL).
const PATH_MAX: usize = 4096;
/// Longest symlink chain followed in one lookup (as the kernel's 40).
const MAX_LINKS: u32 = 40;
/// `EAGAIN` retries before the walk answers.
const RETRIES: u32 = 16;

const UNKNOWN: u8 = 0;
const PRESENT: u8 = 1;
const MISSING: u8 = 2;
/// Whether this kernel has openat2, once seen.
static OPENAT2: AtomicU8 = AtomicU8::new(UNKNOWN);
/// Live [`ForcedWalk`] guards.
static FORCED: AtomicUsize = AtomicUsize::new(0);

/// While alive, every [`Resolution::Auto`] lookup in the process takes the
/// walk (see [`force_walk`]).
#[derive(Debug)]
pub struct ForcedWalk(());

impl Drop for ForcedWalk {
    fn drop(&mut self) {
        FORCED.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Makes [`Resolution::Auto`] lookups take the walk until the guard is
/// dropped, for tests that run a suite through the fallback. Lookups of
/// other threads are affected too, which is harmless: both resolvers give
/// the same answers.
pub fn force_walk() -> ForcedWalk {
    FORCED.fetch_add(1, Ordering::SeqCst);
    ForcedWalk(())
}

fn walk_forced() -> bool {
    static ENV: OnceLock<bool> = OnceLock::new();
    FORCED.load(Ordering::SeqCst) > 0
        || *ENV.get_or_init(|| std::env::var_os("STRATA_CONFINED_WALK").is_some_and(|v| v == "1"))
}

/// Whether the kernel has `openat2` (probed once; a forced walk does not
/// change the answer).
pub fn openat2_available() -> bool {
    match OPENAT2.load(Ordering::Relaxed) {
        PRESENT => true,
        MISSING => false,
        _ => {
            let cwd = fs::CWD;
            let r = fs::openat2(
                cwd,
                ".",
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT,
            );
            let have = r.is_ok() || r.as_ref().is_err_and(|e| *e != Errno::NOSYS);
            remember(have);
            have
        }
    }
}

fn remember(have: bool) {
    if !have {
        tracing::debug!("openat2 unavailable (ENOSYS); confined lookups use the component walk");
    }
    OPENAT2.store(if have { PRESENT } else { MISSING }, Ordering::Relaxed);
}

/// Opens `path` inside `root` as `how` asks, never leaving `root`.
///
/// `path` is relative to the root (a leading `/` is the root; an empty
/// path is the root itself). Errors are the kernel's: `ENOENT`, `ENOTDIR`,
/// `ELOOP` for a symlink refused or a chain too long, `ENOSYS` for
/// [`Resolution::Openat2`] on a kernel without it.
pub fn open(root: BorrowedFd<'_>, path: &[u8], how: &How) -> Result<OwnedFd, Errno> {
    open_routed(root, path, how).map(|(fd, _)| fd)
}

/// [`open`], also saying which resolver answered.
pub(crate) fn open_routed(
    root: BorrowedFd<'_>,
    path: &[u8],
    how: &How,
) -> Result<(OwnedFd, Route), Errno> {
    let fast = match how.resolution {
        Resolution::ManualWalk => false,
        Resolution::Openat2 => true,
        Resolution::Auto => !walk_forced() && OPENAT2.load(Ordering::Relaxed) != MISSING,
    };
    if fast && path.len() < PATH_MAX {
        match openat2(root, path, how) {
            Ok(fd) => return Ok((fd, Route::Openat2)),
            Err(Errno::NOSYS) if how.resolution == Resolution::Auto => remember(false),
            Err(Errno::AGAIN) if how.resolution == Resolution::Auto => {}
            Err(e) => return Err(e),
        }
    }
    let fd = walk(root, path, how, None).map_err(|e| match e {
        WalkError::Sys(e) => e,
        WalkError::Made(_) => unreachable!("no directories are made without a callback"),
    })?;
    Ok((fd, Route::Walk))
}

/// The fast path, with `EAGAIN` retried.
fn openat2(root: BorrowedFd<'_>, path: &[u8], how: &How) -> Result<OwnedFd, Errno> {
    let mut resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    if how.symlinks == Symlinks::Refuse {
        resolve |= ResolveFlags::NO_SYMLINKS;
    }
    let path = if path.is_empty() { b"." } else { path };
    let mut tries = 0;
    loop {
        match fs::openat2(
            root,
            std::ffi::OsStr::from_bytes(path),
            how.flags | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        ) {
            Err(Errno::AGAIN) if tries < RETRIES => tries += 1,
            r => {
                let answered = r.is_ok() || r.as_ref().is_err_and(|e| *e != Errno::NOSYS);
                if answered && OPENAT2.load(Ordering::Relaxed) == UNKNOWN {
                    OPENAT2.store(PRESENT, Ordering::Relaxed);
                }
                return r;
            }
        }
    }
}

/// Callback for a directory the walk made: (parent, name, new directory).
pub(crate) type MadeDir<'a> =
    dyn FnMut(BorrowedFd<'_>, &[u8], BorrowedFd<'_>) -> crate::Result<()> + 'a;

/// Why the walk stopped.
#[derive(Debug)]
pub(crate) enum WalkError {
    /// A lookup failed.
    Sys(Errno),
    /// The callback for a made directory failed.
    Made(crate::Error),
}

impl From<Errno> for WalkError {
    fn from(e: Errno) -> Self {
        WalkError::Sys(e)
    }
}

/// The component walk. With `create` (directory lookups only), missing
/// components named by `path` itself, not by a symlink target, are made
/// (0755) and handed to the callback.
pub(crate) fn walk(
    root: BorrowedFd<'_>,
    path: &[u8],
    how: &How,
    mut create: Option<&mut MadeDir<'_>>,
) -> Result<OwnedFd, WalkError> {
    let step = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    // Pending components, the next one last; the flag marks components
    // that come from a symlink target.
    let mut pending: Vec<(Vec<u8>, bool)> = path
        .split(|&b| b == b'/')
        .rev()
        .map(|c| (c.to_vec(), false))
        .collect();
    let mut cur: Option<OwnedFd> = None;
    let mut depth = 0usize;
    let mut links = 0u32;
    while let Some((comp, from_link)) = pending.pop() {
        let at = cur.as_ref().map_or(root, |f| f.as_fd());
        // A trailing `/` or `/.` makes the name a directory to go
        // through (followed, as the kernel does), not the last component.
        let last = pending.is_empty();
        match comp.as_slice() {
            b"" | b"." => continue,
            b".." => {
                if depth > 0 {
                    let up = fs::openat(at, "..", step | OFlags::DIRECTORY, Mode::empty())?;
                    depth -= 1;
                    cur = if depth == 0 { None } else { Some(up) };
                }
                continue;
            }
            _ => {}
        }
        let name = std::ffi::OsStr::from_bytes(&comp);
        if last && how.flags.contains(OFlags::NOFOLLOW) {
            return Ok(fs::openat(
                at,
                name,
                how.flags | OFlags::CLOEXEC,
                Mode::empty(),
            )?);
        }
        let fd = match fs::openat(at, name, step, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if !from_link && create.is_some() => {
                let made = make_dir(at, &comp, create.as_mut())?;
                cur = Some(made);
                depth += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let st = fs::fstat(&fd)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => {
                links += 1;
                if how.symlinks == Symlinks::Refuse || links > MAX_LINKS {
                    return Err(Errno::LOOP.into());
                }
                let target = fs::readlinkat(&fd, "", Vec::new())?.into_bytes();
                if target.first() == Some(&b'/') {
                    cur = None;
                    depth = 0;
                }
                pending.extend(
                    target
                        .split(|&b| b == b'/')
                        .rev()
                        .map(|c| (c.to_vec(), true)),
                );
            }
            FileType::Directory if !last => {
                cur = Some(fd);
                depth += 1;
            }
            _ if !last => return Err(Errno::NOTDIR.into()),
            // The O_PATH handle already open is the answer.
            ft if how.flags.contains(OFlags::PATH) => {
                if how.flags.contains(OFlags::DIRECTORY) && ft != FileType::Directory {
                    return Err(Errno::NOTDIR.into());
                }
                return Ok(fd);
            }
            // Reopened for real by name; O_NOFOLLOW so that a symlink
            // swapped in meanwhile fails instead of being followed.
            _ => {
                let flags = how.flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                return Ok(fs::openat(at, name, flags, Mode::empty())?);
            }
        }
    }
    // The path named a directory by `.`, `..` or the root itself.
    let at = cur.as_ref().map_or(root, |f| f.as_fd());
    Ok(fs::openat(
        at,
        ".",
        how.flags | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Makes the directory `name` in `at` for the walk and opens it.
fn make_dir(
    at: BorrowedFd<'_>,
    name: &[u8],
    create: Option<&mut &mut MadeDir<'_>>,
) -> Result<OwnedFd, WalkError> {
    let name_os = std::ffi::OsStr::from_bytes(name);
    // 0700 until the callback has set the owner, then 0755.
    match fs::mkdirat(at, name_os, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let made = fs::openat(at, name_os, flags, Mode::empty())?;
    fs::fchmod(&made, Mode::from_raw_mode(0o755))?;
    if let Some(cb) = create {
        cb(at, name, made.as_fd()).map_err(WalkError::Made)?;
    }
    Ok(made)
}

#[cfg(test)]
pub(crate) mod tests;
