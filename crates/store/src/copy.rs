//! `copy`: files of the host or of other layers copied into a layer,
//! through the layers' mounts, neither side leaving its root
//! ([`strata_archive::copy`] does the walking and writing).

use std::ffi::OsString;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use strata_archive::copy::{copy_tree, dest_name, CopyRequest as TreeCopy};

use crate::{Error, Force, MountRequest, Result, Store};

/// One side of a copy: a path inside a layer, or (without a layer) a host
/// path, relative to the working directory unless absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyPath {
    /// The layer (name or ID), if any.
    pub layer: Option<String>,
    /// The path inside the layer's root, or on the host.
    pub path: String,
}

impl CopyPath {
    /// Splits `LAYER:/path`; a plain path (or one whose part before the
    /// first `:` is empty or holds a `/`) has no layer.
    pub fn parse(arg: &str) -> Self {
        match arg.split_once(':') {
            Some((l, p)) if !l.is_empty() && !l.contains('/') => CopyPath {
                layer: Some(l.to_string()),
                path: p.to_string(),
            },
            _ => CopyPath {
                layer: None,
                path: arg.to_string(),
            },
        }
    }
}

/// As the user wrote it: `LAYER:/path` or `path`.
impl fmt::Display for CopyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.layer {
            Some(l) => write!(f, "{l}:{}", self.path),
            None => f.write_str(&self.path),
        }
    }
}

/// Arguments of [`Store::copy`].
#[derive(Debug, Clone)]
pub struct CopyRequest {
    /// What to copy, in order.
    pub sources: Vec<CopyPath>,
    /// Where to: a path inside a layer.
    pub dest: CopyPath,
    /// Owner given to everything copied (`--chown`).
    pub owner: Option<(u32, u32)>,
}

fn open_root(p: &Path) -> Result<OwnedFd> {
    // A plain read-only open of a directory (std sets O_CLOEXEC): the
    // handle every confined lookup starts from.
    std::fs::File::open(p)
        .map(OwnedFd::from)
        .map_err(|e| Error::io("open", p, e))
}

impl Store {
    /// Copies each source into the destination layer, mounting the layers
    /// involved for the time of the copy. As the reference: a directory's
    /// contents merge into the destination, a non-directory replaces what
    /// is there unless that is a directory.
    pub fn copy(&self, req: &CopyRequest) -> Result<()> {
        let Some(dlayer) = &req.dest.layer else {
            return Err(Error::Invalid(
                "copy: destination must be LAYER:/path".into(),
            ));
        };
        let dname = dest_name(req.dest.path.as_bytes());
        let mut mounted: Vec<String> = Vec::new();
        let res = (|| -> Result<()> {
            let droot = open_root(&self.mount(dlayer, &MountRequest::default())?)?;
            mounted.push(dlayer.clone());
            for src in &req.sources {
                let sroot = match &src.layer {
                    Some(l) => {
                        let r = self.mount(l, &MountRequest::default())?;
                        mounted.push(l.clone());
                        open_root(&r)?
                    }
                    None => open_root(Path::new("/"))?,
                };
                // Host paths are relative to the working directory; layer
                // paths to the layer root.
                let spath: OsString = match &src.layer {
                    None if !src.path.starts_with('/') => std::env::current_dir()
                        .map_err(|e| Error::io("reading the working directory", ".", e))?
                        .join(&src.path)
                        .into_os_string(),
                    _ => src.path.clone().into(),
                };
                copy_tree(&TreeCopy {
                    source_root: sroot.as_fd(),
                    source: spath.as_bytes(),
                    dest_root: droot.as_fd(),
                    dest: &dname,
                    owner: req.owner,
                })
                .map_err(|e| Error::Copy {
                    from: src.to_string(),
                    to: req.dest.to_string(),
                    source: e,
                })?;
            }
            Ok(())
        })();
        for l in mounted.iter().rev() {
            if let Err(e) = self.unmount(l, Force::No) {
                tracing::warn!("unmounting {l}: {e}");
            }
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_paths() {
        for (arg, layer, path) in [
            ("abc:/etc/x", Some("abc"), "/etc/x"),
            ("/etc/x", None, "/etc/x"),
            ("./a:b", None, "./a:b"),
            (":x", None, ":x"),
            ("abc:", Some("abc"), ""),
        ] {
            let p = CopyPath::parse(arg);
            assert_eq!(
                (p.layer.as_deref(), p.path.as_str()),
                (layer, path),
                "{arg}"
            );
            assert_eq!(p.to_string(), arg);
        }
    }
}
