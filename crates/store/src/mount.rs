//! Mounting and unmounting layers, with counts kept in `mountpoints.json`
//! so that they survive across processes.

use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, StatxAttributes, StatxFlags, CWD};
use strata_driver::MountOptions;

use crate::state::MountRecord;
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
    /// Mounts a layer (or counts one more mount of an already mounted
    /// layer) and returns where its tree is.
    pub fn mount(&mut self, key: &str, req: &MountRequest) -> Result<PathBuf> {
        self.write(|s| {
            let i = s.state.get(key)?;
            let layer = s.state.layers[i].clone();
            if let Some(m) = s.state.mounts.iter_mut().find(|m| m.id == layer.id) {
                if m.count > 0 && !m.path.is_empty() && is_mount_root(Path::new(&m.path)) {
                    m.count += 1;
                    let path = PathBuf::from(&m.path);
                    s.save()?;
                    return Ok(path);
                }
            }
            let opts = MountOptions {
                mount_label: req
                    .mount_label
                    .clone()
                    .or_else(|| (!layer.mount_label.is_empty()).then(|| layer.mount_label.clone())),
                options: req.options.clone(),
                ..Default::default()
            };
            let path = s
                .driver
                .get(&layer.id, &opts)
                .map_err(|e| Error::driver("mounting", &layer.id, e))?;
            let path_s = path.to_string_lossy().into_owned();
            // A real mount made just now means the layer was not mounted
            // before: a count left by a process killed between its
            // unmount and its save is stale. (vfs hands out plain
            // directories, whose counts only add up.)
            let fresh_mount = is_mount_root(&path);
            match s.state.mounts.iter_mut().find(|m| m.id == layer.id) {
                Some(m) => {
                    m.path = path_s;
                    m.count = if fresh_mount { 1 } else { m.count + 1 };
                }
                None => s.state.mounts.push(MountRecord {
                    id: layer.id.clone(),
                    path: path_s,
                    count: 1,
                    ..Default::default()
                }),
            }
            s.save()?;
            Ok(path)
        })
    }

    /// Releases one mount of a layer (all of them with [`Force::Yes`]).
    /// Returns whether the layer is still mounted afterwards.
    pub fn unmount(&mut self, key: &str, force: Force) -> Result<bool> {
        self.write(|s| {
            let i = s.state.get(key)?;
            let id = s.state.layers[i].id.clone();
            s.unmount_locked(&id, force)
        })
    }

    pub(crate) fn unmount_locked(&mut self, id: &str, force: Force) -> Result<bool> {
        if force == Force::No {
            if let Some(m) = self.state.mounts.iter_mut().find(|m| m.id == id) {
                if m.count > 1 {
                    m.count -= 1;
                    self.save()?;
                    return Ok(true);
                }
            }
        }
        let path = self
            .state
            .mounts
            .iter()
            .find(|m| m.id == id)
            .map(|m| PathBuf::from(&m.path));
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
        self.state.mounts.retain(|m| m.id != id);
        self.save()?;
        Ok(false)
    }

    /// How many times a layer is mounted, and where.
    pub fn mounted(&mut self, key: &str) -> Result<(u64, Option<PathBuf>)> {
        self.read(|s| {
            let i = s.state.get(key)?;
            let id = &s.state.layers[i].id;
            Ok(match s.state.mount_of(id) {
                Some(m) if m.count > 0 => (m.count, Some(PathBuf::from(&m.path))),
                _ => (0, None),
            })
        })
    }

    /// Every mount record.
    pub fn mounts(&mut self) -> Result<Vec<MountRecord>> {
        self.read(|s| Ok(s.state.mounts.clone()))
    }

    /// Releases the driver. Refuses while layers are mounted, unless
    /// `force`, which unmounts them all first.
    pub fn shutdown(&mut self, force: Force) -> Result<()> {
        let mounted: Vec<String> = self.read(|s| {
            Ok(s.state
                .mounts
                .iter()
                .filter(|m| m.count > 0)
                .map(|m| m.id.clone())
                .collect())
        })?;
        if !mounted.is_empty() {
            if force == Force::No {
                return Err(Error::Invalid(format!(
                    "layer is in use by a container: {}",
                    mounted.join(", ")
                )));
            }
            self.write(|s| {
                for id in &mounted {
                    s.unmount_locked(id, Force::Yes)?;
                }
                Ok(())
            })?;
        }
        self.driver
            .cleanup()
            .map_err(|e| Error::driver("shutting down", self.driver.name().to_string(), e))
    }

    /// Owners (host IDs) that a mapped layer's maps cannot represent, of
    /// its mount point and the directories above it inside the driver's
    /// home (as the reference computes them); empty for unmapped layers.
    pub fn layer_parent_owners(&mut self, key: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        self.read(|s| {
            let i = s.state.get(key)?;
            let l = &s.state.layers[i];
            if l.uid_map.is_empty() && l.gid_map.is_empty() {
                return Ok((Vec::new(), Vec::new()));
            }
            let m = s
                .state
                .mount_of(&l.id)
                .filter(|m| m.count > 0)
                .ok_or_else(|| Error::Invalid("LayerParentOwner: layer is not mounted".into()))?;
            let mut uids = Vec::new();
            let mut gids = Vec::new();
            let home = s.graph_root.join(s.driver.name());
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
        })
    }
}
