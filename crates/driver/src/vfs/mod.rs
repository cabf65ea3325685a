//! The vfs driver: every layer is a full tree, and a child starts as a copy
//! of its parent. Slow to create on filesystems without reflinks, but works
//! anywhere and needs no mounts.
//!
//! On-disk layout (as containers/storage 1.43 lays it out, so either tool
//! reads the other's layers):
//!
//! ```text
//! <graph root>/vfs/            0700   (the driver's home)
//! ├── dir/                     0700
//! │   └── <id>/                0555 for a base layer (owned by the mapped
//! │                            root); a child copies its parent's root
//! └── tmp/                     0700   strata's own (the reference never
//!     │                               looks here)
//!     └── <id>-<rand>/         a layer being made, renamed into dir/ when
//!                              complete, or one being removed; unlocked
//!                              leftovers are removed at init
//! ```
//!
//! Staging lives beside `dir/`, not in it, so that opening the driver
//! lists a directory that is empty but for crashed work, not one with an
//! entry per layer (2 ms on a store of 5,000 layers, paid by every
//! command).
//!
//! The run root is not used. `get` returns `dir/<id>`; `put` has nothing to
//! release. Options: `ignore_chown_errors`, `imagestore` (read-only stores
//! whose `vfs/dir/<id>` layers can be parents); `mountopt` is refused and
//! the only mount option accepted is `ro`. A child whose ID maps differ
//! from its parent's is a copy with every owner below the root moved to
//! the new maps in the same pass ([`copy`]).
//!
//! Shared files: a read-only child created with
//! [`CreateRequest::share_parent_files`] (each layer of an image strata
//! imports) gets hard links to its parent's regular files, symlinks,
//! devices and FIFOs instead of copies; only its directories are new.
//! Such a layer is still a complete tree that the reference reads as its
//! own, and costs the disk and time of its directories only. Nothing
//! changes a layer's file in place but two operations, and on vfs both
//! first give the layer's files inodes of their own, whichever layer they
//! are in (a parent's inodes may be its children's): a hard link member
//! of [`Driver::apply_diff`] whose target has other names (its header's
//! owner and mode go to the linked inode; the target, with every name the
//! layer has for it, moves to a private copy first), and
//! [`Driver::update_layer_id_map`] (which re-owns a private copy of the
//! whole tree, swapped in for it).

pub(crate) mod copy;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Gid, Mode, Uid};
use strata_idmap::IdMappings;

use crate::options::VfsOptions;
use crate::{
    naive, ApplyDiffOptions, ApplyReport, CreateRequest, DiskUsage, Driver, Error, InitOptions,
    LayerRef, MountOptions, Result,
};

/// Mode of a base layer's root directory (what the reference creates).
pub const BASE_ROOT_MODE: u32 = 0o555;

/// Initialises the driver in `opts.home`.
pub fn init(opts: &InitOptions) -> Result<Box<dyn Driver>> {
    Ok(Box::new(Vfs::new(opts)?))
}

/// The vfs driver.
#[derive(Debug)]
pub struct Vfs {
    home: PathBuf,
    options: VfsOptions,
    id_mappings: IdMappings,
}

fn mkdir_private(p: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(p)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::path("mkdir", p, e)),
    }
}

impl Vfs {
    /// Opens (creating if needed) a vfs home.
    pub fn new(opts: &InitOptions) -> Result<Self> {
        let options = VfsOptions::parse(&opts.driver_options)?;
        let d = Vfs {
            home: opts.home.clone(),
            options,
            id_mappings: opts.id_mappings.clone(),
        };
        mkdir_private(&d.home)?;
        mkdir_private(&d.home.join("dir"))?;
        let root = d.id_mappings.root_pair()?;
        if !opts.id_mappings.is_identity() {
            for p in [&d.home, &d.home.join("dir")] {
                rustix::fs::chown(
                    p,
                    Some(Uid::from_raw(root.uid)),
                    Some(Gid::from_raw(root.gid)),
                )
                .map_err(|e| Error::path("chown", p, e.into()))?;
            }
        }
        d.remove_leftovers()?;
        Ok(d)
    }

    fn dir_root(&self) -> PathBuf {
        self.home.join("dir")
    }

    fn tmp_root(&self) -> PathBuf {
        self.home.join("tmp")
    }

    /// Layers a crashed create or remove left behind.
    fn remove_leftovers(&self) -> Result<()> {
        let root = self.tmp_root();
        let rd = match std::fs::read_dir(&root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::path("read directory", &root, e)),
        };
        for ent in rd {
            let ent = ent.map_err(|e| Error::path("read directory", &root, e))?;
            // A staging dir is locked while its create or remove runs (maybe
            // in another process); only unlocked ones are leftovers.
            let p = ent.path();
            match lock_dir(&p, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(_held) => remove_tree(&p)?,
                Err(e) if e.kind() == crate::ErrorKind::NotFound => {}
                Err(e) => tracing::debug!("leaving {}: {e}", p.display()),
            }
        }
        Ok(())
    }

    /// [`crate::check_layer_id`], and no leading `.`: staging directories
    /// of earlier strata releases (`dir/.tmp-…`) are named so.
    fn check_id(id: &str) -> Result<()> {
        crate::check_layer_id(id)?;
        if id.starts_with('.') {
            return Err(Error::InvalidOption {
                key: "id".into(),
                reason: format!("{id:?} is not a valid layer ID (a leading dot is vfs's own)"),
            });
        }
        Ok(())
    }

    fn own_dir(&self, id: &str) -> PathBuf {
        self.dir_root().join(id)
    }

    /// Where layer `id` lives: this store first, then the image stores.
    fn find(&self, id: &str) -> Result<Option<PathBuf>> {
        Self::check_id(id)?;
        let own = self.own_dir(id);
        let stores = self
            .options
            .image_stores
            .iter()
            .map(|s| s.join("vfs").join("dir").join(id));
        for p in std::iter::once(own).chain(stores) {
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => return Ok(Some(p)),
                Ok(_) => {
                    return Err(Error::path(
                        "open layer",
                        &p,
                        std::io::Error::other("not a directory"),
                    ))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::path("stat", &p, e)),
            }
        }
        Ok(None)
    }

    fn layer_dir(&self, id: &str) -> Result<PathBuf> {
        self.find(id)?
            .ok_or_else(|| Error::LayerUnknown(id.to_string()))
    }

    /// A fresh staging path for `id` in `tmp/`, which is made on first use.
    fn staging(&self, id: &str) -> Result<PathBuf> {
        let root = self.tmp_root();
        match std::fs::DirBuilder::new().mode(0o700).create(&root) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::path("mkdir", &root, e)),
        }
        let r: u64 = rand::random();
        Ok(root.join(format!("{id}-{r:016x}")))
    }

    /// A new staging directory for `id`, locked (so that no other process
    /// takes it for a leftover) until the returned handle is dropped.
    fn locked_staging(&self, id: &str) -> Result<(PathBuf, std::os::fd::OwnedFd)> {
        let tmp = self.staging(id)?;
        std::fs::create_dir(&tmp).map_err(|e| Error::path("mkdir", &tmp, e))?;
        let held = lock_dir(&tmp, rustix::fs::FlockOperation::LockExclusive)?;
        Ok((tmp, held))
    }

    fn build(&self, req: &CreateRequest, tmp: &Path) -> Result<()> {
        let maps = if req.id_mappings.is_identity() {
            &self.id_mappings
        } else {
            &req.id_mappings
        };
        let root = maps.root_pair()?;
        match &req.parent {
            Some(parent) => {
                let src = self.layer_dir(parent)?;
                // Shifted owners are never linked (copy_tree copies then).
                let link = req.share_parent_files && req.access == crate::Access::ReadOnly;
                copy::copy_tree(&src, tmp, req.shift().as_ref(), link)?;
            }
            None => {
                rustix::fs::chown(
                    tmp,
                    Some(Uid::from_raw(root.uid)),
                    Some(Gid::from_raw(root.gid)),
                )
                .map_err(|e| Error::path("chown", tmp, e.into()))?;
                rustix::fs::chmod(tmp, Mode::from_raw_mode(BASE_ROOT_MODE))
                    .map_err(|e| Error::path("chmod", tmp, e.into()))?;
            }
        }
        Ok(())
    }
}

/// Opens directory `p` and takes a `flock` on it (held until the returned
/// handle is dropped; it follows the directory through renames).
fn lock_dir(p: &Path, op: rustix::fs::FlockOperation) -> Result<std::os::fd::OwnedFd> {
    use rustix::fs::OFlags;
    let fd = rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::path("open", p, e.into()))?;
    rustix::fs::flock(&fd, op).map_err(|e| Error::path("lock", p, e.into()))?;
    Ok(fd)
}

/// Removes a tree, making directories writable where needed (a layer may
/// hold directories without write permission, which stop a non-root
/// remover).
pub(crate) fn remove_tree(p: &Path) -> Result<()> {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            make_writable(p);
            std::fs::remove_dir_all(p).map_err(|e| Error::path("remove", p, e))
        }
        Err(e) => Err(Error::path("remove", p, e)),
    }
}

fn make_writable(p: &Path) {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return;
    };
    if !m.is_dir() {
        return;
    }
    let _ = rustix::fs::chmod(p, Mode::from_raw_mode((m.mode() & 0o7777) | 0o700));
    if let Ok(rd) = std::fs::read_dir(p) {
        for ent in rd.flatten() {
            make_writable(&ent.path());
        }
    }
}

impl Driver for Vfs {
    fn name(&self) -> &str {
        "vfs"
    }

    fn create(&self, req: &CreateRequest) -> Result<()> {
        Self::check_id(&req.id)?;
        if !req.storage_opt.is_empty() {
            return Err(Error::Unsupported(
                "--storage-opt is not supported for vfs".into(),
            ));
        }
        if self.find(&req.id)?.is_some() {
            return Err(Error::LayerExists(req.id.clone()));
        }
        let (tmp, _held) = self.locked_staging(&req.id)?;
        if let Err(e) = self.build(req, &tmp) {
            if let Err(c) = remove_tree(&tmp) {
                tracing::warn!("cleaning up {}: {c}", tmp.display());
            }
            return Err(e);
        }
        let dst = self.own_dir(&req.id);
        if let Err(e) = std::fs::rename(&tmp, &dst) {
            let _ = remove_tree(&tmp);
            return Err(Error::path("rename", &dst, e));
        }
        Ok(())
    }

    fn remove(&self, id: &str) -> Result<()> {
        Self::check_id(id)?;
        let dir = self.own_dir(id);
        // Move it out of sight first, so a crash mid-removal leaves no
        // half-deleted layer under its real name.
        let _held = match lock_dir(&dir, rustix::fs::FlockOperation::LockExclusive) {
            Ok(fd) => fd,
            Err(e) if e.kind() == crate::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let doomed = self.staging(id)?;
        match std::fs::rename(&dir, &doomed) {
            Ok(()) => remove_tree(&doomed),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::path("rename", &dir, e)),
        }
    }

    fn get(&self, id: &str, opts: &MountOptions) -> Result<PathBuf> {
        if let Some(o) = opts.options.iter().find(|o| o.as_str() != "ro") {
            return Err(Error::InvalidOption {
                key: o.clone(),
                reason: "vfs driver does not support mount options".into(),
            });
        }
        self.layer_dir(id)
    }

    fn put(&self, id: &str) -> Result<()> {
        // Nothing is mounted, nothing to release; only an unknown layer is
        // an error (the reference's vfs accepts any put, its overlay does
        // not: one contract for all drivers).
        self.layer_dir(id).map(drop)
    }

    fn exists(&self, id: &str) -> Result<bool> {
        Ok(self.find(id)?.is_some())
    }

    fn status(&self) -> Vec<(String, String)> {
        // The reference reports no driver-specific status for vfs.
        Vec::new()
    }

    fn metadata(&self, id: &str) -> Result<BTreeMap<String, String>> {
        self.layer_dir(id)?;
        Ok(BTreeMap::new())
    }

    fn read_write_disk_usage(&self, id: &str) -> Result<DiskUsage> {
        Ok(crate::usage::tree_usage(&self.layer_dir(id)?)?.into())
    }

    fn cleanup(&self) -> Result<()> {
        Ok(())
    }

    fn additional_image_stores(&self) -> Vec<PathBuf> {
        self.options.image_stores.clone()
    }

    fn create_from_template(
        &self,
        req: &CreateRequest,
        template: &str,
        template_mappings: &IdMappings,
    ) -> Result<()> {
        // A (shifted) copy of the template, as the reference's vfs makes
        // it: the template's tree is what the new layer holds.
        self.create(&req.child_of_template(template, template_mappings))
    }

    fn apply_diff(
        &self,
        target: LayerRef<'_>,
        opts: &ApplyDiffOptions,
        diff: &mut (dyn Read + Send),
        tar_split: Option<Box<dyn std::io::Write + Send>>,
    ) -> Result<ApplyReport> {
        let mut opts = opts.clone();
        opts.ignore_chown_errors |= self.options.ignore_chown_errors;
        // Any layer's files may be another layer's too (a child's links to
        // its parent's, so a parent's to its children's).
        let unshare = |root: &Path| {
            let u = copy::Unsharer::new(root.to_path_buf());
            strata_archive::Unshare(std::sync::Arc::new(
                move |dir: BorrowedFd<'_>, name: &[u8]| u.unshare(dir, name),
            ))
        };
        naive::apply_diff_unsharing(self, target, &opts, diff, tar_split, Some(&unshare))
    }

    fn update_layer_id_map(
        &self,
        id: &str,
        to_container: &IdMappings,
        to_host: &IdMappings,
        _mount_label: Option<&str>,
    ) -> Result<()> {
        let dir = self.layer_dir(id)?;
        if to_container == to_host {
            return Ok(());
        }
        // Re-owning in place would re-own the files of every layer that
        // shares them (a child's are its parent's, so a parent's may be
        // its children's): the layer becomes a shifted copy of itself,
        // swapped in whole.
        let (tmp, _held) = self.locked_staging(id)?;
        let shift = strata_idmap::Shift::new(
            to_container,
            to_host,
            strata_idmap::shift::kernel_overflow(),
        );
        let swapped = copy::copy_tree(&dir, &tmp, Some(&shift), false).and_then(|()| {
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                &tmp,
                rustix::fs::CWD,
                &dir,
                rustix::fs::RenameFlags::EXCHANGE,
            )
            .map_err(|e| Error::path("exchange", &dir, e.into()))
        });
        // Either the half-made copy or, swapped out, the shared tree.
        if let Err(c) = remove_tree(&tmp) {
            tracing::warn!("cleaning up {}: {c}", tmp.display());
        }
        swapped
    }
}
