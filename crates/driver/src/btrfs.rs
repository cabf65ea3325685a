//! The btrfs driver: a subvolume per layer, a child is a writable snapshot
//! of its parent. Layout, as containers/storage keeps it:
//!
//! ```text
//! <home>/                 0700, bind-mounted privately until cleanup
//! └── subvolumes/         0700
//!     └── <id>/           a subvolume: the layer's full tree
//! ```
//!
//! `get` returns the subvolume's path (no mount is needed); a `size`
//! storage option puts a qgroup limit on the subvolume (quotas are enabled
//! on first use); `btrfs.min_space` is the smallest size accepted. Removal
//! deletes subvolumes nested inside the layer first.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{Mode, OFlags};

use crate::fsmagic::{fs_magic, FsMagic};
use crate::options::{self, DriverOption};
use crate::{
    CreateRequest, DiskUsage, Driver, Error, IdMappings, InitOptions, MountOptions, Result,
};

/// Typed options of the btrfs driver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BtrfsOptions {
    /// Smallest `size` accepted for a layer (`btrfs.min_space`).
    pub min_space: Option<u64>,
    /// Default `size` for new layers (`btrfs.size`).
    pub size: Option<u64>,
}

impl BtrfsOptions {
    /// Parses the driver options (grammar: [`crate::options`]).
    pub fn parse(opts: &[String]) -> Result<Self> {
        let mut o = Self::default();
        for opt in options::parse("btrfs", opts)? {
            match opt.key.as_str() {
                "min_space" => o.min_space = Some(opt.size()?),
                "size" => o.size = Some(opt.size()?),
                "mountopt" => {
                    return Err(opt.invalid("btrfs driver does not support mount options"))
                }
                _ => return Err(opt.unknown("btrfs")),
            }
        }
        Ok(o)
    }
}

/// The btrfs driver.
pub struct Btrfs {
    home: PathBuf,
    opts: BtrfsOptions,
    id_mappings: IdMappings,
    home_mounted: Mutex<bool>,
    quota_enabled: Mutex<bool>,
}

/// Initialises the driver in `opts.home`.
pub fn init(opts: &InitOptions) -> Result<Box<dyn Driver>> {
    Ok(Box::new(Btrfs::new(opts)?))
}

fn open_dir(p: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        p,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| Error::path("open", p, e.into()))
}

fn nearest_existing(p: &Path) -> &Path {
    let mut cur = p;
    while !cur.exists() {
        match cur.parent() {
            Some(parent) => cur = parent,
            None => break,
        }
    }
    cur
}

impl Btrfs {
    /// Initialises the driver (see [`init`]).
    pub fn new(init: &InitOptions) -> Result<Self> {
        let opts = BtrfsOptions::parse(&init.driver_options)?;
        let probe = nearest_existing(&init.home);
        if fs_magic(probe)? != FsMagic::BTRFS {
            return Err(Error::Prerequisites(format!(
                "{} is not on a btrfs filesystem",
                init.home.display()
            )));
        }
        let subvols = init.home.join("subvolumes");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&subvols)
            .map_err(|e| Error::path("mkdir", &subvols, e))?;
        let home_mounted =
            strata_sys::mount::make_private(&init.home).map_err(|e| Error::Mount {
                op: "make private",
                path: init.home.clone(),
                source: e,
            })?;
        Ok(Self {
            home: init.home.clone(),
            opts,
            id_mappings: init.id_mappings.clone(),
            home_mounted: Mutex::new(home_mounted),
            quota_enabled: Mutex::new(false),
        })
    }

    fn subvolumes(&self) -> PathBuf {
        self.home.join("subvolumes")
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.subvolumes().join(id)
    }

    fn set_size(&self, id: &str, size: u64) -> Result<()> {
        if let Some(min) = self.opts.min_space {
            if size < min {
                return Err(Error::InvalidOption {
                    key: "size".into(),
                    reason: format!("btrfs: storage size {size} is less than min_space {min}"),
                });
            }
        }
        let fd = open_dir(&self.dir(id))?;
        let mut enabled = self.quota_enabled.lock().unwrap_or_else(|e| e.into_inner());
        if !*enabled {
            strata_sys::btrfs::quota_enable(fd.as_fd())
                .map_err(|e| Error::path("btrfs quota enable", &self.home, e))?;
            *enabled = true;
        }
        strata_sys::btrfs::qgroup_limit(fd.as_fd(), size)
            .map_err(|e| Error::path("btrfs qgroup limit", self.dir(id), e))
    }

    /// Deletes the subvolume at `dir/name` and every subvolume nested in it.
    fn delete_tree(&self, parent: &Path, name: &OsStr) -> Result<()> {
        let path = parent.join(name);
        // Nested subvolumes first: their roots have inode 256.
        let mut nested = Vec::new();
        let mut stack = vec![path.clone()];
        let top_dev = fs::symlink_metadata(&path)
            .map_err(|e| Error::path("stat", &path, e))?
            .dev();
        while let Some(d) = stack.pop() {
            let rd = match fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) => return Err(Error::path("readdir", &d, e)),
            };
            for ent in rd {
                let ent = ent.map_err(|e| Error::path("readdir", &d, e))?;
                let ft = ent
                    .file_type()
                    .map_err(|e| Error::path("stat", ent.path(), e))?;
                if !ft.is_dir() {
                    continue;
                }
                let md = ent
                    .metadata()
                    .map_err(|e| Error::path("stat", ent.path(), e))?;
                if md.ino() == strata_sys::btrfs::FIRST_FREE_OBJECTID && md.dev() != top_dev {
                    nested.push(ent.path());
                } else {
                    stack.push(ent.path());
                }
            }
        }
        for n in nested {
            if let (Some(p), Some(name)) = (n.parent(), n.file_name()) {
                self.delete_tree(p, name)?;
            }
        }
        // Quotas may have been enabled by another process; the qgroup of
        // the subvolume is removed when there is one.
        let qid = open_dir(&path)
            .ok()
            .and_then(|fd| strata_sys::btrfs::subvol_id(fd.as_fd()).ok());
        let pfd = open_dir(parent)?;
        strata_sys::btrfs::subvol_delete(pfd.as_fd(), name)
            .map_err(|e| Error::path("btrfs subvolume delete", &path, e))?;
        if let Some(q) = qid {
            if let Err(e) = strata_sys::btrfs::qgroup_destroy(pfd.as_fd(), q) {
                tracing::debug!(qgroup = q, error = %e, "qgroup not removed");
            }
        }
        Ok(())
    }
}

impl Driver for Btrfs {
    fn name(&self) -> &str {
        "btrfs"
    }

    fn create(&self, req: &CreateRequest) -> Result<()> {
        crate::check_layer_id(&req.id)?;
        let mut size = self.opts.size;
        for (k, v) in &req.storage_opt {
            let opt = DriverOption::from_pair(k, v);
            match opt.key.as_str() {
                "size" => size = Some(opt.size()?),
                _ => return Err(opt.unknown("btrfs")),
            }
        }
        if self.dir(&req.id).symlink_metadata().is_ok() {
            return Err(Error::LayerExists(req.id.clone()));
        }
        let svfd = open_dir(&self.subvolumes())?;
        let name = OsStr::new(&req.id);
        match &req.parent {
            Some(p) => {
                crate::check_layer_id(p)?;
                let src = open_dir(&self.dir(p)).map_err(|e| match e.kind() {
                    crate::ErrorKind::NotFound => Error::LayerUnknown(p.clone()),
                    _ => e,
                })?;
                strata_sys::btrfs::snapshot(src.as_fd(), svfd.as_fd(), name)
                    .map_err(|e| Error::path("btrfs snapshot", self.dir(&req.id), e))?;
            }
            None => {
                strata_sys::btrfs::subvol_create(svfd.as_fd(), name)
                    .map_err(|e| Error::path("btrfs subvolume create", self.dir(&req.id), e))?;
                let maps = if req.id_mappings.is_identity() {
                    &self.id_mappings
                } else {
                    &req.id_mappings
                };
                let root = maps.root_pair()?;
                let d = self.dir(&req.id);
                if (root.uid, root.gid) != (0, 0) {
                    std::os::unix::fs::lchown(&d, Some(root.uid), Some(root.gid))
                        .map_err(|e| Error::path("chown", &d, e))?;
                }
                // A new subvolume's root is 0755; a base layer's root is
                // 0555, as the reference makes it (and vfs and overlay).
                rustix::fs::chmod(
                    &d,
                    rustix::fs::Mode::from_raw_mode(crate::vfs::BASE_ROOT_MODE),
                )
                .map_err(|e| Error::path("chmod", &d, e.into()))?;
            }
        }
        if let Some(size) = size {
            if let Err(e) = self.set_size(&req.id, size) {
                let _ = self.remove(&req.id);
                return Err(e);
            }
        }
        Ok(())
    }

    fn remove(&self, id: &str) -> Result<()> {
        crate::check_layer_id(id)?;
        if self.dir(id).symlink_metadata().is_err() {
            return Ok(());
        }
        self.delete_tree(&self.subvolumes(), OsStr::new(id))
    }

    fn get(&self, id: &str, opts: &MountOptions) -> Result<PathBuf> {
        crate::check_layer_id(id)?;
        if opts.options.iter().any(|o| o != "ro" && o != "rw") {
            return Err(Error::Unsupported(format!(
                "btrfs driver does not support mount options {:?}",
                opts.options
            )));
        }
        let d = self.dir(id);
        match fs::metadata(&d) {
            Ok(md) if md.is_dir() => Ok(d),
            Ok(_) => Err(Error::path(
                "get",
                d,
                io::Error::new(io::ErrorKind::InvalidData, "not a directory"),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::LayerUnknown(id.to_string()))
            }
            Err(e) => Err(Error::path("stat", d, e)),
        }
    }

    fn put(&self, id: &str) -> Result<()> {
        // Nothing is mounted per layer; only an unknown layer is an error.
        if self.exists(id)? {
            Ok(())
        } else {
            Err(Error::LayerUnknown(id.to_string()))
        }
    }

    fn exists(&self, id: &str) -> Result<bool> {
        crate::check_layer_id(id)?;
        match self.dir(id).symlink_metadata() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::path("stat", self.dir(id), e)),
        }
    }

    fn status(&self) -> Vec<(String, String)> {
        vec![
            ("Build Version".into(), "strata (kernel ioctls)".into()),
            ("Library Version".into(), "102".into()),
        ]
    }

    fn metadata(&self, id: &str) -> Result<BTreeMap<String, String>> {
        if !self.exists(id)? {
            return Err(Error::LayerUnknown(id.to_string()));
        }
        Ok(BTreeMap::new())
    }

    fn read_write_disk_usage(&self, id: &str) -> Result<DiskUsage> {
        let root = self.get(id, &MountOptions::default())?;
        Ok(crate::usage::tree_usage(&root)?.into())
    }

    fn cleanup(&self) -> Result<()> {
        let mut hm = self.home_mounted.lock().unwrap_or_else(|e| e.into_inner());
        if *hm || strata_sys::mount::is_self_bind(&self.home).unwrap_or(false) {
            strata_sys::mount::unmount(&self.home, rustix::mount::UnmountFlags::DETACH).map_err(
                |e| Error::Mount {
                    op: "umount",
                    path: self.home.clone(),
                    source: e,
                },
            )?;
            *hm = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = BtrfsOptions::parse(&[
            "btrfs.min_space=10M".to_string(),
            "overlay.mountopt=x".to_string(),
        ])
        .unwrap();
        assert_eq!(o.min_space, Some(10 << 20));
        let e = BtrfsOptions::parse(&["btrfs.nope=1".to_string()]).unwrap_err();
        assert!(e.to_string().contains("btrfs.nope"));
    }
}
