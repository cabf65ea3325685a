//! [`DirSource`]: file contents for replay from a layer directory and its
//! lower directories, with every lookup confined to the directory it is made
//! in.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{openat, openat2, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::FileSource;
use crate::reader::fields::normalize;
use crate::{Error, Result};

/// A [`FileSource`] over a list of directories: the layer directory first,
/// then its lower directories; the first directory holding the name wins.
///
/// Names are resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
/// relative to each directory's handle, so `..` stops at that directory and
/// absolute symlinks are re-rooted in it: a hostile record naming
/// `../../etc/shadow` cannot read outside. Where openat2 is missing, a
/// component walk that refuses symlinks and `..` is used instead.
pub struct DirSource {
    roots: Vec<OwnedFd>,
}

impl DirSource {
    /// Opens the directories (layer first, then lowers, nearest first).
    pub fn new<P: AsRef<Path>>(dirs: &[P]) -> Result<Self> {
        let roots = dirs
            .iter()
            .map(|d| {
                let d = d.as_ref();
                rustix::fs::open(
                    d,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| Error::Path {
                    op: "open",
                    path: d.to_path_buf(),
                    source: e.into(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { roots })
    }

    /// A source over already opened directory handles.
    pub fn from_fds(roots: Vec<OwnedFd>) -> Self {
        Self { roots }
    }
}

impl FileSource for DirSource {
    fn open(&self, name: &[u8]) -> std::io::Result<Box<dyn Read + '_>> {
        let rel = normalize(name);
        let rel = if rel.is_empty() { b".".to_vec() } else { rel };
        let mut last = Errno::NOENT;
        for root in &self.roots {
            match open_confined(root, &rel) {
                Ok(fd) => return Ok(Box::new(File::from(fd))),
                Err(e) if e == Errno::NOENT || e == Errno::NOTDIR => last = e,
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.into())
    }
}

fn open_confined(root: &OwnedFd, rel: &[u8]) -> std::result::Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY;
    match openat2(
        root,
        OsStr::from_bytes(rel),
        flags,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Err(Errno::NOSYS) => walk(root, rel, flags),
        r => r,
    }
}

/// Fallback without openat2: open one component at a time, refusing `..`
/// and symlinks (stricter than openat2, never looser).
pub(crate) fn walk(
    root: &OwnedFd,
    rel: &[u8],
    flags: OFlags,
) -> std::result::Result<OwnedFd, Errno> {
    let comps: Vec<&[u8]> = rel
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    let mut dir: Option<OwnedFd> = None;
    for (i, comp) in comps.iter().enumerate() {
        if *comp == b".." {
            return Err(Errno::XDEV);
        }
        let at = dir.as_ref().map_or(root.as_fd(), |d| d.as_fd());
        let last = i + 1 == comps.len();
        let f = if last {
            flags | OFlags::NOFOLLOW
        } else {
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        };
        let fd = openat(at, OsStr::from_bytes(comp), f, Mode::empty())?;
        if last {
            return Ok(fd);
        }
        dir = Some(fd);
    }
    openat(root, ".", flags, Mode::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confined_lookups_and_fallback() {
        let outer = tempfile::tempdir().unwrap();
        let upper = outer.path().join("upper");
        let lower = outer.path().join("lower");
        std::fs::create_dir_all(upper.join("d")).unwrap();
        std::fs::create_dir_all(&lower).unwrap();
        std::fs::write(outer.path().join("secret"), b"outside").unwrap();
        std::fs::write(upper.join("d/a"), b"upper").unwrap();
        std::fs::write(lower.join("b"), b"lower").unwrap();
        std::fs::write(lower.join("secret"), b"inside").unwrap();
        std::os::unix::fs::symlink("/secret", upper.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../secret", upper.join("rel")).unwrap();
        let src = DirSource::new(&[&upper, &lower]).unwrap();
        let read = |n: &[u8]| -> std::io::Result<Vec<u8>> {
            let mut v = Vec::new();
            src.open(n)?.read_to_end(&mut v)?;
            Ok(v)
        };
        assert_eq!(read(b"./d/a").unwrap(), b"upper");
        assert_eq!(read(b"b").unwrap(), b"lower");
        // `..` and symlinks never leave the directory they are resolved in.
        assert_eq!(read(b"../secret").unwrap(), b"inside");
        assert_eq!(read(b"../../../../secret").unwrap(), b"inside");
        assert!(
            read(b"abs").is_err(),
            "re-rooted into upper: no /secret there"
        );
        assert!(read(b"rel").is_err());
        assert!(read(b"missing").is_err());
        // The fallback walk agrees on plain names and refuses the rest.
        let root =
            rustix::fs::open(&upper, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        assert!(walk(&root, b"d/a", flags).is_ok());
        assert_eq!(walk(&root, b"../secret", flags).unwrap_err(), Errno::XDEV);
        assert!(walk(&root, b"abs", flags).is_err());
        assert!(walk(&root, b"rel", flags).is_err());
    }
}
