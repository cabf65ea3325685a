//! Mounting and unmounting layers, with counts kept in `mountpoints.json`
//! so that they survive across processes.

use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, StatxAttributes, StatxFlags, CWD};
use strata_driver::MountOptions;

use crate::layers::{LayersTx, MountRecord};
use crate::{Error, Result, Store};

/// Whether [`Store::unmount`] drops every outstanding mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Force {
    /// Drop one mount.
    No,
    /// Drop all mounts.
    Yes,
}

/// Arguments of [`Store::mount`].
#[derive(Debug, Clone, Default)]
pub struct MountRequest {
    /// SELinux label (default: the layer's).
    pub mount_label: Option<String>,
    /// Extra mount options (`ro`, …).
    pub options: Vec<String>,
}

/// Whether `path` is the root of a mount (statx `STATX_ATTR_MOUNT_ROOT`).
pub fn is_mount_root(path: &Path) -> bool {
    match rustix::fs::statx(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    ) {
        Ok(st) => {
            st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
                && st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
        }
        Err(_) => false,
    }
}

impl Store {
    /// Mounts a container's layer (with the container's ID maps, mount
    /// options and volatile flag) when `key` names a container, else a
    /// layer; counts one more mount of an already mounted layer. Returns
    /// where the tree is.
    pub fn mount(&self, key: &str, req: &MountRequest) -> Result<PathBuf> {
        let container = self.container_store.read()?.lookup(key).cloned();
        let mut tx = self.layers_tx()?;
        let (id, opts) = match container {
            Some(c) => {
                let mut options = c.mount_opts();
                options.extend(req.options.iter().cloned());
                let opts = MountOptions {
                    mount_label: req.mount_label.clone(),
                    uid_maps: c.uid_map.clone(),
                    gid_maps: c.gid_map.clone(),
                    options,
                    volatile: c.is_volatile(),
                    ..Default::default()
                };
                (c.layer, opts)
            }
            None => {
                let opts = MountOptions {
                    mount_label: req.mount_label.clone(),
                    options: req.options.clone(),
                    ..Default::default()
                };
                (self.parent_layer(&tx, key)?.id, opts)
            }
        };
        self.mount_locked(&mut tx, &id, opts)
    }

    /// Mounts a layer with the layer locks held.
    pub(crate) fn mount_locked(
        &self,
        tx: &mut LayersTx<'_>,
        id: &str,
        mut opts: MountOptions,
    ) -> Result<PathBuf> {
        let layer = self.parent_layer(tx, id)?;
        if let Some(m) = tx.mounts.by_id(&layer.id) {
            if m.count > 0 && !m.path.is_empty() && is_mount_root(Path::new(&m.path)) {
                let path = PathBuf::from(&m.path);
                tx.mounts.records_mut().update(&layer.id, |m| m.count += 1);
                tx.save()?;
                return Ok(path);
            }
        }
        if opts.mount_label.is_none() && !layer.mount_label.is_empty() {
            opts.mount_label = Some(layer.mount_label.clone());
        }
        let path = self
            .driver
            .get(&layer.id, &opts)
            .map_err(|e| Error::driver("mounting", &layer.id, e))?;
        let path_s = path.to_string_lossy().into_owned();
        // A real mount made just now means the layer was not mounted
        // before: a count left by a process killed between its
        // unmount and its save is stale. (vfs hands out plain
        // directories, whose counts only add up.)
        let fresh_mount = is_mount_root(&path);
        let mounts = tx.mounts.records_mut();
        if mounts.by_id(&layer.id).is_some() {
            mounts.update(&layer.id, |m| {
                m.path = path_s;
                m.count = if fresh_mount { 1 } else { m.count + 1 };
            });
        } else {
            mounts.push(MountRecord {
                id: layer.id.clone(),
                path: path_s,
                count: 1,
                ..Default::default()
            });
        }
        tx.save()?;
        Ok(path)
    }

    /// Releases one mount (all of them with [`Force::Yes`]) of a
    /// container's layer, a layer, or an image's top layer, tried in that
    /// order. Returns whether the layer is still mounted afterwards.
    pub fn unmount(&self, key: &str, force: Force) -> Result<bool> {
        let container = self
            .container_store
            .read()?
            .lookup(key)
            .map(|c| c.layer.clone());
        let image_top = match container {
            Some(_) => None,
            None => self.image_top_layer(key)?,
        };
        let mut tx = self.layers_tx()?;
        let id = match (container, self.parent_layer(&tx, key), image_top) {
            (Some(l), _, _) => l,
            (None, Ok(l), _) => l.id,
            (None, Err(_), Some(top)) => top,
            (None, Err(e), None) => return Err(e),
        };
        self.parent_layer(&tx, &id)?;
        self.unmount_locked(&mut tx, &id, force)
    }

    /// The top layer of the image `key` names.
    fn image_top_layer(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .images()
            .lookup(key)?
            .and_then(|i| i.top_layer().map(str::to_string)))
    }

    pub(crate) fn unmount_locked(
        &self,
        tx: &mut LayersTx<'_>,
        id: &str,
        force: Force,
    ) -> Result<bool> {
        if force == Force::No && tx.mount_count(id) > 1 {
            tx.mounts.records_mut().update(id, |m| m.count -= 1);
            tx.save()?;
            return Ok(true);
        }
        let path = tx.mounts.by_id(id).map(|m| PathBuf::from(&m.path));
        // A process killed between the driver's mount and its save leaves
        // an unrecorded mount under a later one at the same path: put
        // until the path is no longer a mount (bounded, in case a driver
        // keeps something mounted there on purpose).
        for _ in 0..8 {
            match self.driver.put(id) {
                Ok(()) => {}
                Err(e) if e.kind() == strata_driver::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::driver("unmounting", id, e)),
            }
            match &path {
                Some(p) if !p.as_os_str().is_empty() && is_mount_root(p) => {}
                _ => break,
            }
        }
        tx.mounts.records_mut().remove(id);
        tx.save()?;
        Ok(false)
    }

    /// How many times a container's layer or a layer is mounted, and where.
    pub fn mounted(&self, key: &str) -> Result<(u64, Option<PathBuf>)> {
        let container = self
            .container_store
            .read()?
            .lookup(key)
            .map(|c| c.layer.clone());
        let r = self.layer_store.read()?;
        let id = match container {
            Some(l) => l,
            None => r.layers.get(key)?.id.clone(),
        };
        Ok(match r.mount_of(&id) {
            Some(m) if m.count > 0 => (m.count, Some(PathBuf::from(&m.path))),
            _ => (0, None),
        })
    }

    /// Every mount record.
    pub fn mounts(&self) -> Result<Vec<MountRecord>> {
        Ok(self
            .layer_store
            .read()?
            .mounts
            .as_ref()
            .map(|m| m.list().to_vec())
            .unwrap_or_default())
    }

    /// Owners (host IDs) that a mapped layer's maps cannot represent, of
    /// its mount point and the directories above it inside the driver's
    /// home (as the reference computes them); empty for unmapped layers.
    pub fn layer_parent_owners(&self, key: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        self.parent_owners(key, "LayerParentOwner")
    }

    /// [`Store::layer_parent_owners`], its errors prefixed with `who`.
    pub(crate) fn parent_owners(&self, key: &str, who: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        let r = self.layer_store.read()?;
        let l = r.layers.get(key)?;
        if l.uid_map.is_empty() && l.gid_map.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let m = r
            .mount_of(&l.id)
            .filter(|m| m.count > 0)
            .ok_or_else(|| Error::Invalid(format!("{who}: layer is not mounted")))?;
        let mut uids = Vec::new();
        let mut gids = Vec::new();
        let home = self.graph_root.join(self.driver.name());
        let mut dir = Some(Path::new(&m.path));
        while let Some(d) = dir.filter(|d| d.starts_with(&home) && *d != home) {
            let st = rustix::fs::stat(d).map_err(|e| Error::io("stat", d, e.into()))?;
            let (u, g) = (st.st_uid, st.st_gid);
            if !l.uid_map.iter().any(|r| r.to_container(u).is_some()) && !uids.contains(&u) {
                uids.push(u);
            }
            if !l.gid_map.iter().any(|r| r.to_container(g).is_some()) && !gids.contains(&g) {
                gids.push(g);
            }
            dir = d.parent();
        }
        uids.sort_unstable();
        gids.sort_unstable();
        Ok((uids, gids))
    }
}
