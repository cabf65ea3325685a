//! [`DirSource`]: file contents for replay from a layer directory and its
//! lower directories, with every lookup confined to the directory it is made
//! in.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::FileSource;
use crate::confined::{self, How};
use crate::reader::fields::normalize;
use crate::{Error, Result};

/// A [`FileSource`] over a list of directories: the layer directory first,
/// then its lower directories; the first directory holding the name wins.
///
/// Names are resolved by the confined open ([`crate::confined`]) relative to
/// each directory's handle, so `..` stops at that directory and absolute
/// symlinks are re-rooted in it: a hostile record naming
/// `../../etc/shadow` cannot read outside.
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

impl DirSource {
    /// The file under the first root that has it.
    fn open_fd(&self, name: &[u8]) -> std::result::Result<OwnedFd, Errno> {
        let rel = normalize(name);
        let rel = if rel.is_empty() { b".".to_vec() } else { rel };
        let mut last = Errno::NOENT;
        for root in &self.roots {
            match open_confined(root, &rel) {
                Ok(fd) => return Ok(fd),
                Err(e) if e == Errno::NOENT || e == Errno::NOTDIR => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

impl FileSource for DirSource {
    fn open(&self, name: &[u8]) -> std::io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(File::from(self.open_fd(name)?)))
    }

    fn prefetch(&self, name: &[u8]) -> Option<Box<dyn Read + '_>> {
        self.open_fd(name).ok().map(read_ahead)
    }
}

/// A [`FileSource::prefetch`]'s file: asks the kernel to start reading all
/// of `fd`'s file into the page cache and hands it back to be read.
pub fn read_ahead(fd: OwnedFd) -> Box<dyn Read> {
    let _ = rustix::fs::fadvise(&fd, 0, None, rustix::fs::Advice::WillNeed);
    Box::new(File::from(fd))
}

/// The name under one root, chroot-like ([`crate::confined`]).
fn open_confined(root: &OwnedFd, rel: &[u8]) -> std::result::Result<OwnedFd, Errno> {
    let how = How::new(OFlags::RDONLY | OFlags::NOCTTY);
    confined::open(root.as_fd(), rel, &how)
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
        // The fast path, then the fallback walk forced: the same answers.
        for forced in [false, true] {
            let _walk = forced.then(crate::confined::force_walk);
            let how = if forced { "walk" } else { "openat2" };
            assert_eq!(read(b"./d/a").unwrap(), b"upper", "{how}");
            assert_eq!(read(b"b").unwrap(), b"lower", "{how}");
            // `..` and symlinks never leave the directory they are
            // resolved in.
            assert_eq!(read(b"../secret").unwrap(), b"inside", "{how}");
            assert_eq!(read(b"../../../../secret").unwrap(), b"inside", "{how}");
            assert!(
                read(b"abs").is_err(),
                "re-rooted into upper: no /secret there ({how})"
            );
            assert!(read(b"rel").is_err(), "{how}");
            assert!(read(b"missing").is_err(), "{how}");
        }
    }
}
