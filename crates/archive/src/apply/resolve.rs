//! Directories inside the layer root, resolved by the one confined open
//! ([`crate::confined`]) and cached.
//!
//! Resolved directories are cached by their normalised name. Layers list
//! entries mostly in directory order, so the parent of an entry is usually
//! cached or is one real (non-symlink) directory below a cached one, which
//! costs a single `openat(O_NOFOLLOW)`. The cache is cleared whenever a
//! directory or symlink is removed or replaced, since that may change what a
//! cached name resolves to. Missing parents are made by the confined walk,
//! never through a symlink's target.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::rc::Rc;

use rustix::fs::{self, AtFlags, Mode, OFlags};
use rustix::io::Errno;

pub(crate) use crate::confined::MadeDir;
pub use crate::confined::Resolution;
use crate::confined::{self, How, Route, WalkError};
use crate::{Error, Result};

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

/// Cache size before it is cleared.
pub(super) const CACHE_CAP: usize = 512;

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
    resolution: Resolution,
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

impl Resolver {
    pub(crate) fn new(root: BorrowedFd<'_>, resolution: Resolution) -> Result<Self> {
        let root_fd = fs::openat(
            root,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| path_err("open root", b".", e))?;
        if resolution == Resolution::Openat2 && !confined::openat2_available() {
            return Err(Error::Unsupported(
                "openat2(RESOLVE_IN_ROOT) is not available on this kernel".into(),
            ));
        }
        Ok(Self {
            root: CachedDir::new(root_fd),
            resolution,
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
                    self.walk(path, cb)?
                }
            },
            Err(e) => return Err(e),
        };
        let d = CachedDir::new(fd);
        self.remember(path, d.clone());
        Ok(d)
    }

    fn resolve_full(&mut self, path: &[u8]) -> Result<OwnedFd> {
        let how = How {
            resolution: self.resolution,
            ..How::dir()
        };
        let (fd, route) = confined::open_routed(self.root.fd.as_fd(), path, &how)
            .map_err(|e| path_err("resolve", path, e))?;
        match route {
            Route::Openat2 => self.stats.openat2 += 1,
            Route::Walk => self.stats.walked += 1,
        }
        Ok(fd)
    }

    /// The confined walk, making missing directories `path` names.
    fn walk(&self, path: &[u8], create: &mut MadeDir<'_>) -> Result<OwnedFd> {
        let how = How {
            resolution: Resolution::ManualWalk,
            ..How::dir()
        };
        confined::walk(self.root.fd.as_fd(), path, &how, Some(create)).map_err(|e| match e {
            WalkError::Sys(e) => path_err("resolve", path, e),
            WalkError::Made(e) => e,
        })
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
    use crate::confined::tests::fixture;

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
