//! Confined resolution of directories inside the layer root, with a cache.
//!
//! Two resolvers give the same answers:
//! - the fast path, `openat2(root, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`:
//!   the kernel treats `root` as `/` for this lookup, so `..` stops there and
//!   absolute symlinks are re-rooted (Linux 5.6+);
//! - a component-by-component walk for kernels without openat2, paths longer
//!   than `PATH_MAX`, and for creating missing parents: each component is
//!   opened with `O_PATH | O_NOFOLLOW` relative to the previous one, symlinks
//!   are read and their targets spliced into the remaining components
//!   (absolute targets restart at the root), `..` at depth 0 stays at the
//!   root. The walk counts its depth itself; `..` below the root is opened
//!   from the current directory, which is correct as long as nobody renames
//!   directories of the layer while it is applied (the applier is the only
//!   writer of a layer being made).
//!
//! Resolved directories are cached by their normalised name. Layers list
//! entries mostly in directory order, so the parent of an entry is usually
//! cached or is one real (non-symlink) directory below a cached one, which
//! costs a single `openat(O_NOFOLLOW)`. The cache is cleared whenever a
//! directory or symlink is removed or replaced, since that may change what a
//! cached name resolves to.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::rc::Rc;

use rustix::fs::{self, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::{Error, Result};

/// How paths inside the root are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolution {
    /// `openat2(RESOLVE_IN_ROOT)` when the kernel has it, else the walk.
    #[default]
    Auto,
    /// Always `openat2`; an error where the kernel lacks it.
    Openat2,
    /// Always the component-by-component walk (for tests and old kernels).
    ManualWalk,
}

/// Counters of how directories were resolved (for tests and tuning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResolveStats {
    /// Answered from the cache.
    pub cached: u64,
    /// One real directory below a cached one.
    pub stepped: u64,
    /// Resolved by `openat2`.
    pub openat2: u64,
    /// Resolved by the component walk.
    pub walked: u64,
}

/// Longest symlink chain followed in one resolution (as the kernel's 40).
const MAX_LINKS: u32 = 40;
/// Paths at least this long go to the walk (`PATH_MAX` includes the NUL).
const PATH_MAX: usize = 4096;
/// Cache size before it is cleared.
const CACHE_CAP: usize = 512;

/// A resolved directory.
#[derive(Debug)]
pub(crate) struct CachedDir {
    /// `O_PATH` or read-only directory descriptor.
    pub fd: OwnedFd,
    info: std::cell::Cell<Option<DirInfo>>,
}

/// What the applier needs to know about a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirInfo {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub gid: u32,
}

impl CachedDir {
    pub(crate) fn new(fd: OwnedFd) -> Rc<Self> {
        Rc::new(Self {
            fd,
            info: std::cell::Cell::new(None),
        })
    }

    /// Identity, mode and group of the directory, fetched once.
    pub(crate) fn info(&self) -> std::io::Result<DirInfo> {
        if let Some(i) = self.info.get() {
            return Ok(i);
        }
        let st = fs::fstat(&self.fd)?;
        let i = DirInfo {
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
            gid: st.st_gid,
        };
        self.info.set(Some(i));
        Ok(i)
    }

    /// `(st_dev, st_ino)` of the directory.
    pub(crate) fn ident(&self) -> std::io::Result<(u64, u64)> {
        self.info().map(|i| (i.dev, i.ino))
    }

    /// Drops the remembered mode and group (after a metadata change).
    pub(crate) fn forget_info(&self) {
        self.info.set(None);
    }
}

/// Callback for a directory made while resolving: (parent, name, new dir).
pub(crate) type MadeDir<'a> = dyn FnMut(BorrowedFd<'_>, &[u8], BorrowedFd<'_>) -> Result<()> + 'a;

/// What to do about missing directories.
pub(crate) enum Missing<'a> {
    /// Fail with `ENOENT`.
    Fail,
    /// Create them (0755); the callback gets the parent, the name and the
    /// new directory, and sets its owner. Components that come from a
    /// symlink's target are never created.
    Create(&'a mut MadeDir<'a>),
}

/// Resolves directories inside one root.
pub(crate) struct Resolver {
    root: Rc<CachedDir>,
    use_openat2: bool,
    cache: HashMap<Vec<u8>, Rc<CachedDir>>,
    pub(crate) stats: ResolveStats,
}

pub(crate) fn lossy(path: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(path))
}

fn path_err(op: &'static str, path: &[u8], e: Errno) -> Error {
    Error::Path {
        op,
        path: lossy(path),
        source: e.into(),
    }
}

fn openat2_supported(root: BorrowedFd<'_>) -> bool {
    match fs::openat2(
        root,
        ".",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!("openat2 unavailable ({e}); using the component walk");
            false
        }
    }
}

impl Resolver {
    pub(crate) fn new(root: BorrowedFd<'_>, resolution: Resolution) -> Result<Self> {
        let root_fd = fs::openat(
            root,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| path_err("open root", b".", e))?;
        let use_openat2 = match resolution {
            Resolution::Auto => openat2_supported(root),
            Resolution::Openat2 => {
                if !openat2_supported(root) {
                    return Err(Error::Unsupported(
                        "openat2(RESOLVE_IN_ROOT) is not available on this kernel".into(),
                    ));
                }
                true
            }
            Resolution::ManualWalk => false,
        };
        Ok(Self {
            root: CachedDir::new(root_fd),
            use_openat2,
            cache: HashMap::new(),
            stats: ResolveStats::default(),
        })
    }

    /// The root directory (opened read-only).
    pub(crate) fn root(&self) -> &Rc<CachedDir> {
        &self.root
    }

    /// Forgets every cached directory.
    pub(crate) fn invalidate(&mut self) {
        self.cache.clear();
    }

    /// Remembers `fd` as the directory named `path`.
    pub(crate) fn remember(&mut self, path: &[u8], dir: Rc<CachedDir>) {
        if self.cache.len() >= CACHE_CAP {
            self.cache.clear();
        }
        self.cache.insert(path.to_vec(), dir);
    }

    /// The directory named by the normalised `path`, following symlinks
    /// inside the root.
    pub(crate) fn dir(&mut self, path: &[u8], missing: Missing<'_>) -> Result<Rc<CachedDir>> {
        if path.is_empty() {
            return Ok(self.root.clone());
        }
        if let Some(d) = self.cache.get(path) {
            self.stats.cached += 1;
            return Ok(d.clone());
        }
        let (parent, name) = super::path::split_parent(path);
        let parent_dir = if parent.is_empty() {
            Some(self.root.clone())
        } else {
            self.cache.get(parent).cloned()
        };
        if let Some(p) = parent_dir {
            // One real directory below a cached one: O_NOFOLLOW refuses a
            // symlink here, which then takes the full resolution below.
            if let Ok(fd) = fs::openat(
                &p.fd,
                name,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                self.stats.stepped += 1;
                let d = CachedDir::new(fd);
                self.remember(path, d.clone());
                return Ok(d);
            }
        }
        let fd = match self.resolve_full(path) {
            Ok(fd) => fd,
            Err(e) if e.kind() == crate::ErrorKind::NotFound => match missing {
                Missing::Fail => return Err(e),
                Missing::Create(cb) => {
                    self.stats.walked += 1;
                    self.walk(path, Some(cb))?
                }
            },
            Err(e) => return Err(e),
        };
        let d = CachedDir::new(fd);
        self.remember(path, d.clone());
        Ok(d)
    }

    fn resolve_full(&mut self, path: &[u8]) -> Result<OwnedFd> {
        if self.use_openat2 && path.len() < PATH_MAX {
            let mut tries = 0;
            loop {
                match fs::openat2(
                    &self.root.fd,
                    path,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                ) {
                    Ok(fd) => {
                        self.stats.openat2 += 1;
                        return Ok(fd);
                    }
                    // A rename or mount raced with the lookup: retry.
                    Err(Errno::AGAIN) if tries < 16 => tries += 1,
                    Err(e) => return Err(path_err("resolve", path, e)),
                }
            }
        }
        self.stats.walked += 1;
        self.walk(path, None)
    }

    /// The component walk. With `create`, missing components named by
    /// `path` itself (not by a symlink target) are created.
    fn walk(&self, path: &[u8], mut create: Option<&mut MadeDir<'_>>) -> Result<OwnedFd> {
        // Pending components, last to process at the end; the flag marks
        // components that come from a symlink target.
        let mut pending: Vec<(Vec<u8>, bool)> = path
            .split(|&b| b == b'/')
            .rev()
            .map(|c| (c.to_vec(), false))
            .collect();
        let mut cur: Option<OwnedFd> = None;
        let mut depth = 0usize;
        let mut links = 0u32;
        let err = |op, e| path_err(op, path, e);
        while let Some((comp, from_link)) = pending.pop() {
            let at = cur.as_ref().map_or(self.root.fd.as_fd(), |f| f.as_fd());
            match comp.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if depth > 0 {
                        let up = fs::openat(
                            at,
                            "..",
                            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                            Mode::empty(),
                        )
                        .map_err(|e| err("resolve", e))?;
                        depth -= 1;
                        cur = if depth == 0 { None } else { Some(up) };
                    }
                    continue;
                }
                _ => {}
            }
            let fd = match fs::openat(
                at,
                comp.as_slice(),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create.is_some() && !from_link => {
                    match fs::mkdirat(at, comp.as_slice(), Mode::from_raw_mode(0o700)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(err("mkdir", e)),
                    }
                    let made = fs::openat(
                        at,
                        comp.as_slice(),
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| err("mkdir", e))?;
                    fs::fchmod(&made, Mode::from_raw_mode(0o755)).map_err(|e| err("chmod", e))?;
                    if let Some(cb) = create.as_mut() {
                        cb(at, comp.as_slice(), made.as_fd())?;
                    }
                    cur = Some(made);
                    depth += 1;
                    continue;
                }
                Err(e) => return Err(err("resolve", e)),
            };
            let st = fs::fstat(&fd).map_err(|e| err("resolve", e))?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    cur = Some(fd);
                    depth += 1;
                }
                FileType::Symlink => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(err("resolve", Errno::LOOP));
                    }
                    let target = fs::readlinkat(&fd, "", Vec::new())
                        .map_err(|e| err("readlink", e))?
                        .into_bytes();
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
                _ => return Err(err("resolve", Errno::NOTDIR)),
            }
        }
        match cur {
            Some(fd) => Ok(fd),
            None => fs::openat(
                &self.root.fd,
                ".",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| err("resolve", e)),
        }
    }
}

/// Opens a real (non-`O_PATH`) descriptor of the directory `dir`, e.g. to
/// set xattrs or list it.
pub(crate) fn reopen_dir(dir: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
    Ok(fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`, `None` when it does not exist.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> std::io::Result<Option<fs::Stat>> {
    match fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fixture tree inside `root`, and a victim directory beside it.
    fn fixture() -> (tempfile::TempDir, std::fs::File) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let victim = t.path().join("victim");
        std::fs::create_dir_all(victim.join("x")).unwrap();
        for d in ["a/b/c", "run", "var", "etc"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("file"), b"").unwrap();
        symlink("/run", root.join("var/run")).unwrap();
        symlink("../..", root.join("a/b/up2")).unwrap();
        symlink("../../../../..", root.join("a/b/c/up5")).unwrap();
        symlink(&victim, root.join("abs_victim")).unwrap();
        symlink("../victim", root.join("rel_victim")).unwrap();
        symlink("/", root.join("slash")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        symlink("file", root.join("to_file")).unwrap();
        symlink("a/b/up2/a", root.join("chain1")).unwrap();
        symlink("chain1/b/c/up5/etc", root.join("chain2")).unwrap();
        symlink("/proc/self/root", root.join("magic")).unwrap();
        symlink("nowhere/deeper", root.join("dangling")).unwrap();
        let dir = std::fs::File::open(&root).unwrap();
        (t, dir)
    }

    fn ident(fd: &OwnedFd) -> (u64, u64) {
        let st = fs::fstat(fd).unwrap();
        (st.st_dev, st.st_ino)
    }

    #[test]
    fn walk_agrees_with_openat2() {
        let (t, dir) = fixture();
        let root = t.path().join("root");
        let expect_in_root: &[(&str, Option<&str>)] = &[
            ("a/b/c", Some("a/b/c")),
            ("var/run", Some("run")),
            ("a/b/up2", Some("")),
            ("a/b/up2/etc", Some("etc")),
            ("a/b/c/up5", Some("")),
            ("a/b/c/up5/a/b", Some("a/b")),
            ("slash", Some("")),
            ("slash/etc", Some("etc")),
            ("chain1", Some("a")),
            ("chain2", Some("etc")),
            ("abs_victim", None),
            ("rel_victim", None),
            ("rel_victim/x", None),
            ("loop1", None),
            ("to_file", None),
            ("file", None),
            ("magic", None),
            ("dangling", None),
            ("missing/dir", None),
        ];
        for (p, want) in expect_in_root {
            let mut answers = Vec::new();
            for r in [Resolution::Openat2, Resolution::ManualWalk] {
                let mut res = Resolver::new(dir.as_fd(), r).unwrap();
                let got = res.dir(p.as_bytes(), Missing::Fail);
                answers.push(got.as_ref().map(|d| ident(&d.fd)).map_err(|e| e.kind()));
                match (want, &got) {
                    (Some(w), Ok(d)) => {
                        let expected = std::fs::File::open(root.join(w)).unwrap();
                        assert_eq!(ident(&d.fd), ident(&expected.into()), "{p} ({r:?})");
                    }
                    (None, Err(_)) => {}
                    _ => panic!("{p} ({r:?}): want {want:?}, got {got:?}"),
                }
            }
            assert_eq!(answers[0], answers[1], "{p}: openat2 vs walk");
        }
    }

    #[test]
    fn walk_creates_only_named_components() {
        let (t, dir) = fixture();
        let root = t.path().join("root");
        for r in [Resolution::Openat2, Resolution::ManualWalk] {
            let mut res = Resolver::new(dir.as_fd(), r).unwrap();
            let mut made = Vec::new();
            let mut cb = |_: BorrowedFd<'_>, n: &[u8], _: BorrowedFd<'_>| -> Result<()> {
                made.push(n.to_vec());
                Ok(())
            };
            res.dir(b"var/run/new/deep", Missing::Create(&mut cb))
                .unwrap();
            assert!(root.join("run/new/deep").is_dir());
            assert_eq!(made, vec![b"new".to_vec(), b"deep".to_vec()], "{r:?}");
            std::fs::remove_dir_all(root.join("run/new")).unwrap();
            let mut cb2 = |_: BorrowedFd<'_>, _: &[u8], _: BorrowedFd<'_>| -> Result<()> {
                panic!("nothing may be created through a dangling link")
            };
            let e = res
                .dir(b"dangling/x", Missing::Create(&mut cb2))
                .unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::NotFound, "{r:?}");
            assert!(!root.join("nowhere").exists());
        }
        assert!(!t.path().join("victim/new").exists());
    }

    #[test]
    fn step_from_cache_refuses_symlinks() {
        let (_t, dir) = fixture();
        let mut res = Resolver::new(dir.as_fd(), Resolution::Openat2).unwrap();
        res.dir(b"var", Missing::Fail).unwrap();
        let before = res.stats;
        res.dir(b"var/run", Missing::Fail).unwrap();
        assert_eq!(
            res.stats.stepped, before.stepped,
            "a symlink is not stepped into"
        );
        assert_eq!(res.stats.openat2, before.openat2 + 1);
        res.dir(b"a", Missing::Fail).unwrap();
        res.dir(b"a/b", Missing::Fail).unwrap();
        assert!(res.stats.stepped >= 2);
    }
}
