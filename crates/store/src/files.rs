//! Small file helpers: atomic writes, directories with modes.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::{Error, Result};

/// Creates `path` and its missing parents with `mode` (existing
/// directories keep theirs).
pub fn mkdir_all(path: &Path, mode: u32) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| Error::io("mkdir", path, e))
}

/// Whether a replaced file must survive a crash of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// fsync the file before the rename and the directory after it: the
    /// new content is on disk when the call returns.
    Durable,
    /// fsync the file before the rename only (what containers-storage does):
    /// after a crash the file holds the old or the new content, never an
    /// empty or partial one, but the rename itself may be lost.
    Ordered,
    /// No syncs: for the run root, whose content (mount counts) describes
    /// state that a reboot ends anyway (it is a tmpfs in normal setups).
    Volatile,
}

/// Replaces `path` with `data` through a temporary file and a rename, so
/// readers see the old or the new content, never a mix.
pub fn write_replacing(path: &Path, data: &[u8], mode: u32, persist: Persist) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut r = [0u8; 6];
    rand::rng().fill_bytes(&mut r);
    let tmp = dir.join(format!(".tmp-{base}{}", hex::encode(r)));
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(data).map_err(|e| Error::io("write", &tmp, e))?;
        if persist != Persist::Volatile {
            f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return res;
    }
    match persist {
        Persist::Durable => sync_dir(dir),
        Persist::Ordered | Persist::Volatile => Ok(()),
    }
}

/// fsyncs a directory.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = std::fs::File::open(dir).map_err(|e| Error::io("open", dir, e))?;
    f.sync_all().map_err(|e| Error::io("fsync", dir, e))
}

/// Syncs the whole filesystem that holds `path` (`syncfs(2)`).
pub fn syncfs(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    rustix::fs::syncfs(&f).map_err(|e| Error::io("syncfs", path, e.into()))
}

/// Removes a file; a missing file is fine.
pub fn remove_file_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Removes a directory tree; a missing one is fine.
pub fn remove_dir_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Makes `p` absolute against the current directory without resolving links.
pub fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io("resolve", p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.json");
        write_replacing(&p, b"one", 0o600, Persist::Durable).unwrap();
        write_replacing(&p, b"two", 0o600, Persist::Ordered).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o600);
    }
}
