//! The on-disk layout of the overlay home, identical to containers/storage:
//!
//! ```text
//! <home>/
//! ├── .has-mount-program          "true" | "false"
//! ├── l/<LINK> -> ../<id>/diff    26 base32 characters, relative symlink
//! └── <id>/                       0700
//!     ├── diff/                   the layer's files (0555 on a base layer,
//!     │                           the parent's diff mode on a child)
//!     ├── link                    LINK, no newline (0644)
//!     ├── lower                   l/<parent LINK>:l/<grandparent LINK>:…
//!     │                           nearest first, absent on a base layer
//!     ├── empty/                  base layers only: the lower of their mounts
//!     ├── work/                   overlay workdir (0700)
//!     └── merged/                 mount point (0700)
//! ```

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::Rng;

use crate::{Error, Result};

/// Length of a short link name.
pub const LINK_LEN: usize = 26;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A fresh random short link name (26 base32 characters).
pub fn new_link_id() -> String {
    let mut rng = rand::rng();
    (0..LINK_LEN)
        .map(|_| BASE32[rng.random_range(0..32)] as char)
        .collect()
}

/// Whether `s` looks like a short link name.
pub fn is_link_id(s: &str) -> bool {
    s.len() == LINK_LEN && s.bytes().all(|b| BASE32.contains(&b))
}

/// Refuses IDs that would leave the home ([`crate::check_layer_id`]) and
/// `l`, the directory of short links.
pub fn check_id(id: &str) -> Result<()> {
    crate::check_layer_id(id)?;
    if id == "l" {
        return Err(Error::InvalidOption {
            key: "id".into(),
            reason: "\"l\" is not a valid layer ID (the short links' directory)".into(),
        });
    }
    Ok(())
}

/// What a child records of its parent: the parent's short link and the
/// parent's own `lower` entries.
#[derive(Debug, Clone)]
pub struct ParentLinks {
    /// The parent's short link name.
    pub link: String,
    /// The parent's `lower` entries (`l/LINK`), nearest first.
    pub lower: Vec<String>,
}

impl ParentLinks {
    /// Reads them from a layer directory (in this home or another store's).
    pub fn read(dir: &Path) -> Result<Self> {
        let lp = dir.join("link");
        let link = fs::read_to_string(&lp)
            .map_err(|e| Error::path("read", &lp, e))?
            .trim()
            .to_string();
        if !is_link_id(&link) {
            return Err(Error::path(
                "read",
                lp,
                io::Error::new(io::ErrorKind::InvalidData, "not a short link name"),
            ));
        }
        let lo = dir.join("lower");
        let lower = match fs::read_to_string(&lo) {
            Ok(s) => s
                .trim()
                .split(':')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::path("read", lo, e)),
        };
        Ok(Self { link, lower })
    }
}

/// Paths in one overlay home.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The home directory.
    pub home: PathBuf,
}

impl Layout {
    /// The layer directory.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.home.join(id)
    }
    /// `<id>/diff`.
    pub fn diff(&self, id: &str) -> PathBuf {
        self.home.join(id).join("diff")
    }
    /// `<id>/work`.
    pub fn work(&self, id: &str) -> PathBuf {
        self.home.join(id).join("work")
    }
    /// `<id>/merged`.
    pub fn merged(&self, id: &str) -> PathBuf {
        self.home.join(id).join("merged")
    }
    /// `<id>/empty`.
    pub fn empty(&self, id: &str) -> PathBuf {
        self.home.join(id).join("empty")
    }
    /// `l/`.
    pub fn links(&self) -> PathBuf {
        self.home.join("l")
    }

    /// The layer's short link name from its `link` file.
    pub fn read_link(&self, id: &str) -> Result<Option<String>> {
        let p = self.dir(id).join("link");
        match fs::read_to_string(&p) {
            Ok(s) => Ok(Some(s.trim().to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::path("read", p, e)),
        }
    }

    /// The `lower` file as a list of `l/LINK` entries, nearest first.
    pub fn read_lower(&self, id: &str) -> Result<Vec<String>> {
        let p = self.dir(id).join("lower");
        match fs::read_to_string(&p) {
            Ok(s) => Ok(s
                .trim()
                .split(':')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::path("read", p, e)),
        }
    }

    /// Creates the layer directory tree for `id` (see the module docs).
    /// `owner` is the host (uid, gid) of the layer's root; `diff_mode` the
    /// mode of `diff`. On failure the partial directory is removed.
    pub fn create(
        &self,
        id: &str,
        parent: Option<&ParentLinks>,
        owner: (u32, u32),
        diff_mode: u32,
    ) -> Result<()> {
        let dir = self.dir(id);
        let mut b = fs::DirBuilder::new();
        b.mode(0o700);
        match b.create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::LayerExists(id.to_string()))
            }
            Err(e) => return Err(Error::path("mkdir", dir, e)),
        }
        let res = self.fill(id, parent, owner, diff_mode);
        if res.is_err() {
            if let Ok(Some(link)) = self.read_link(id) {
                let _ = fs::remove_file(self.links().join(link));
            }
            let _ = fs::remove_dir_all(&dir);
        }
        res
    }

    fn fill(
        &self,
        id: &str,
        parent: Option<&ParentLinks>,
        owner: (u32, u32),
        diff_mode: u32,
    ) -> Result<()> {
        let dir = self.dir(id);
        chown(&dir, owner)?;
        let diff = self.diff(id);
        mkdir_mode(&diff, diff_mode)?;
        chown(&diff, owner)?;

        // The `link` file first, then the `l/` symlink: a process killed in
        // between leaves a `link` naming a missing symlink, which `remove`
        // tolerates and mount-time repair rebuilds, never an `l/` entry that
        // no layer names (which nothing would ever clean up).
        let link = new_link_id();
        write_file(&dir.join("link"), link.as_bytes())?;
        let lpath = self.links().join(&link);
        std::os::unix::fs::symlink(Path::new("..").join(id).join("diff"), &lpath)
            .map_err(|e| Error::path("symlink", &lpath, e))?;

        match parent {
            Some(p) => {
                let mut lower = format!("l/{}", p.link);
                for l in &p.lower {
                    lower.push(':');
                    lower.push_str(l);
                }
                write_file(&dir.join("lower"), lower.as_bytes())?;
            }
            None => {
                let e = self.empty(id);
                mkdir_mode(&e, 0o700)?;
                chown(&e, owner)?;
            }
        }
        for d in [self.work(id), self.merged(id)] {
            mkdir_mode(&d, 0o700)?;
            chown(&d, owner)?;
        }
        Ok(())
    }

    /// Restores missing pieces of the link bookkeeping for `id`: the `l/`
    /// symlink from the `link` file, or the `link` file from an `l/` entry
    /// that points at this layer.
    pub fn repair(&self, id: &str) -> Result<()> {
        let target = Path::new("..").join(id).join("diff");
        match self.read_link(id)? {
            Some(link) if is_link_id(&link) => {
                let lpath = self.links().join(&link);
                match fs::read_link(&lpath) {
                    Ok(t) if t == target => Ok(()),
                    Ok(_) => {
                        fs::remove_file(&lpath).map_err(|e| Error::path("remove", &lpath, e))?;
                        std::os::unix::fs::symlink(&target, &lpath)
                            .map_err(|e| Error::path("symlink", &lpath, e))
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        tracing::warn!(layer = id, link, "restoring missing short link");
                        std::os::unix::fs::symlink(&target, &lpath)
                            .map_err(|e| Error::path("symlink", &lpath, e))
                    }
                    Err(e) => Err(Error::path("readlink", lpath, e)),
                }
            }
            _ => {
                // No usable `link` file: find our entry in l/, else make one.
                let links = self.links();
                let rd = fs::read_dir(&links).map_err(|e| Error::path("readdir", &links, e))?;
                for ent in rd {
                    let ent = ent.map_err(|e| Error::path("readdir", &links, e))?;
                    if fs::read_link(ent.path()).ok().as_deref() == Some(target.as_path()) {
                        let name = ent.file_name().to_string_lossy().into_owned();
                        tracing::warn!(layer = id, link = name, "restoring missing link file");
                        return write_file(&self.dir(id).join("link"), name.as_bytes());
                    }
                }
                let link = new_link_id();
                let lpath = links.join(&link);
                std::os::unix::fs::symlink(&target, &lpath)
                    .map_err(|e| Error::path("symlink", &lpath, e))?;
                write_file(&self.dir(id).join("link"), link.as_bytes())
            }
        }
    }
}

/// `mkdir` with an exact mode (not reduced by the umask).
pub fn mkdir_mode(p: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .mode(mode)
        .create(p)
        .map_err(|e| Error::path("mkdir", p, e))?;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(|e| Error::path("chmod", p, e))
}

fn chown(p: &Path, owner: (u32, u32)) -> Result<()> {
    if owner == (0, 0) {
        return Ok(());
    }
    std::os::unix::fs::lchown(p, Some(owner.0), Some(owner.1))
        .map_err(|e| Error::path("chown", p, e))
}

/// Writes a small file with mode 0644.
pub fn write_file(p: &Path, data: &[u8]) -> Result<()> {
    fs::write(p, data).map_err(|e| Error::path("write", p, e))?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::path("chmod", p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_ids_are_base32() {
        let a = new_link_id();
        assert!(is_link_id(&a), "{a}");
        assert_ne!(a, new_link_id());
        assert!(!is_link_id("abc"));
        assert!(!is_link_id(&"1".repeat(26)));
    }

    #[test]
    fn ids_that_escape_are_refused() {
        for bad in ["", ".", "..", "a/b", "l"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
        check_id("0123abc").unwrap();
    }
}
