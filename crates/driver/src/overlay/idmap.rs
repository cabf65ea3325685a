//! Layers whose ID maps differ from their lower layers'.
//!
//! Two ways to show the lower layers' files owned under a layer's maps:
//!
//! - **Idmapped lower mounts** (the kernel allows them: the driver says
//!   [`Driver::supports_shifting`](crate::Driver::supports_shifting)).
//!   Nothing is copied or re-owned: the layer directory gets a file
//!   `idmapped-lowers` (JSON) naming the maps its own files are owned
//!   under (`uidmap`, `gidmap`) and, per lower layer ID, the maps that
//!   layer's files are owned under (`lowers`). At mount, every lower whose
//!   maps differ is attached through an idmapped clone that shows on-disk
//!   IDs translated from its maps to the layer's ([`strata_idmap::compose`]).
//!   Children of such a layer inherit the record. containers-storage does
//!   not read it (see README, Differences).
//!
//! - **A shifted copy** otherwise (rootless, fuse-overlayfs,
//!   `_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes`), and for
//!   `update_layer_id_map`: the layer's read-only merged view is copied
//!   once with every owner moved ([`crate::vfs::copy`]; hard links kept,
//!   data reflinked where the filesystem can), given back the layer's own
//!   deletion markers (whiteouts and opaque directories, which a merged
//!   view hides), and becomes `diff1` under a fresh empty `diff`: the
//!   rotation containers-storage makes when it re-owns an overlay layer,
//!   so either tool reads the result and diffs of the layer stay the
//!   generic (owner-mapped) ones.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strata_idmap::{IdMap, Shift};
use strata_sys::mount::OverlayMount;

use super::{layout, mounting, Overlay};
use crate::{CreateRequest, Driver, Error, IdMappings, Result};

const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// The record of a layer shown through idmapped lowers.
const RECORD: &str = "idmapped-lowers";

/// Maps files are owned under.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Owned {
    #[serde(default, rename = "uidmap")]
    uids: Vec<IdMap>,
    #[serde(default, rename = "gidmap")]
    gids: Vec<IdMap>,
}

impl Owned {
    fn of(m: &IdMappings) -> Self {
        Self {
            uids: m.uids().to_vec(),
            gids: m.gids().to_vec(),
        }
    }
}

/// Contents of [`RECORD`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LowerMaps {
    #[serde(flatten)]
    own: Owned,
    lowers: BTreeMap<String, Owned>,
}

/// Per lower directory, the idmap (`uid`, `gid` map lines) to attach it
/// with; lowers missing from the map are used as they are.
pub(super) type LowerIdmaps = HashMap<PathBuf, mounting::IdmapLines>;

impl Overlay {
    /// After `layout.create` of a child: makes the parent's files show
    /// under the new layer's maps when they differ, and carries a parent's
    /// idmapped-lowers record over.
    pub(super) fn shift_new_layer(&self, req: &CreateRequest, parent_dir: &Path) -> Result<()> {
        let own = req.id_mappings.clone();
        let parent_maps = req.parent_mappings.clone().unwrap_or_else(|| own.clone());
        let parent_record = read_record(parent_dir)?;
        let Some(shift) = req.shift() else {
            if parent_record.is_some() {
                self.write_record(&req.id, parent_dir, &parent_maps, &own)?;
            }
            return Ok(());
        };
        if self.supports_shifting() {
            return self.write_record(&req.id, parent_dir, &parent_maps, &own);
        }
        self.shift_copy(&req.id, &shift, &own)
    }

    /// Writes layer `id`'s record: the parent (at `parent_dir`) owned
    /// under `parent_maps`, the parent's lowers as the parent's record
    /// says (else under `parent_maps` too), the layer itself under `own`.
    fn write_record(
        &self,
        id: &str,
        parent_dir: &Path,
        parent_maps: &IdMappings,
        own: &IdMappings,
    ) -> Result<()> {
        let parent_rec = read_record(parent_dir)?;
        let parent_id = dir_id(parent_dir)?;
        let mut rec = LowerMaps {
            own: Owned::of(own),
            lowers: BTreeMap::new(),
        };
        for (_, lid) in self.lower_entries_of(parent_dir)? {
            let Some(lid) = lid else { continue };
            let owned = parent_rec
                .as_ref()
                .and_then(|r| r.lowers.get(&lid).cloned())
                .unwrap_or_else(|| Owned::of(parent_maps));
            rec.lowers.insert(lid, owned);
        }
        rec.lowers.insert(parent_id, Owned::of(parent_maps));
        let data = serde_json::to_vec(&rec).map_err(|e| {
            Error::path(
                "encode",
                self.layout.dir(id).join(RECORD),
                io::Error::other(e),
            )
        })?;
        let p = self.layout.dir(id).join(RECORD);
        fs::write(&p, data).map_err(|e| Error::path("write", &p, e))
    }

    /// The idmaps the lowers of the layer at `dir` are attached with, from
    /// its record; empty without one, or when idmapped lowers are off.
    pub(super) fn lower_idmaps(&self, dir: &Path) -> Result<LowerIdmaps> {
        let mut out = LowerIdmaps::new();
        if !self.supports_shifting() {
            return Ok(out);
        }
        let Some(rec) = read_record(dir)? else {
            return Ok(out);
        };
        for (path, lid) in self.lower_entries_of(dir)? {
            let Some(owned) = lid.and_then(|l| rec.lowers.get(&l).cloned()) else {
                continue;
            };
            if owned != rec.own {
                let uids = strata_idmap::compose(&owned.uids, &rec.own.uids);
                let gids = strata_idmap::compose(&owned.gids, &rec.own.gids);
                out.insert(path, (uids, gids));
            }
        }
        Ok(out)
    }

    pub(super) fn update_id_map(
        &self,
        id: &str,
        to_container: &IdMappings,
        to_host: &IdMappings,
    ) -> Result<()> {
        let (_, in_store) = self
            .find_layer(id)?
            .ok_or_else(|| Error::LayerUnknown(id.to_string()))?;
        if to_container == to_host {
            return Ok(());
        }
        if in_store {
            return Err(Error::Unsupported(format!(
                "re-owning layer {id} of a read-only image store"
            )));
        }
        let shift = Shift::new(
            to_container,
            to_host,
            strata_idmap::shift::kernel_overflow(),
        );
        self.shift_copy(id, &shift, to_host)
    }

    /// Copies layer `id`'s merged view moved by `shift` into a fresh
    /// `diff1` (older `diffN` and the old `diff` go: their content is in
    /// the copy) under a new empty `diff` owned as the old one.
    fn shift_copy(&self, id: &str, shift: &Shift, own: &IdMappings) -> Result<()> {
        let dir = self.layout.dir(id);
        if self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
        {
            return Err(Error::Mount {
                op: "update ID map of mounted layer",
                path: dir,
                source: io::Error::from(io::ErrorKind::ResourceBusy),
            });
        }
        let diff = dir.join("diff");
        let fresh = dir.join(".diff-idmap");
        let old = dir.join(".diff-old");
        for p in [&fresh, &old] {
            if p.exists() {
                crate::vfs::remove_tree(p)?;
            }
        }
        fs::create_dir(&fresh).map_err(|e| Error::path("mkdir", &fresh, e))?;
        let res = self.copy_view(id, &dir, &fresh, shift).and_then(|()| {
            let root = own.root_pair()?;
            copy_markers(&diff, &fresh, (root.uid, root.gid))
        });
        if let Err(e) = res {
            let _ = crate::vfs::remove_tree(&fresh);
            return Err(e);
        }
        let md = fs::symlink_metadata(&diff).map_err(|e| Error::path("stat", &diff, e))?;
        // Everything the layer showed is in the copy now: the old upper
        // and rotated directories go (out of sight first).
        fs::create_dir(&old).map_err(|e| Error::path("mkdir", &old, e))?;
        for (i, d) in std::iter::once(diff.clone())
            .chain(super::rotated_diffs(&dir))
            .enumerate()
        {
            let to = old.join(i.to_string());
            fs::rename(&d, &to).map_err(|e| Error::path("rename", &d, e))?;
        }
        let diff1 = dir.join("diff1");
        fs::rename(&fresh, &diff1).map_err(|e| Error::path("rename", &fresh, e))?;
        // The new upper is the merged root: it keeps the old one's owner,
        // as a re-owning walk leaves the root alone.
        layout::mkdir_mode(&diff, md.permissions().mode() & 0o7777)?;
        std::os::unix::fs::lchown(&diff, Some(md.uid()), Some(md.gid()))
            .map_err(|e| Error::path("chown", &diff, e))?;
        // The link `l/<link>` points at `diff`, which is the new upper.
        crate::vfs::remove_tree(&old)
    }

    /// Copies the read-only merged view of layer `id` into `dst`, owners
    /// moved by `shift`.
    fn copy_view(&self, id: &str, dir: &Path, dst: &Path, shift: &Shift) -> Result<()> {
        let mut lowers = vec![dir.join("diff")];
        lowers.extend(self.lower_dirs_of(dir)?);
        if lowers.len() == 1 {
            lowers.push(dir.join("empty"));
        }
        let mut staging =
            mounting::Staging::new(self.run_root.join("staging").join(format!("{id}-idmap")));
        let idmaps = self.lower_idmaps(dir)?;
        let lowers = staging.idmap_each(&lowers, &idmaps)?;
        let view = staging.next_dir()?;
        let mut options = Vec::new();
        if self.rootless {
            options.push("userxattr".to_string());
        }
        let m = OverlayMount {
            lowers,
            upper: None,
            work: None,
            options,
        };
        match &self.mount_program {
            Some(prog) => mounting::mount_fuse(prog, &m, &view, (&[], &[]))?,
            None if m.lowers.len() > mounting::MAX_STACK
                && Path::new(super::DEFAULT_MOUNT_PROGRAM).exists() =>
            {
                mounting::mount_fuse(
                    Path::new(super::DEFAULT_MOUNT_PROGRAM),
                    &m,
                    &view,
                    (&[], &[]),
                )?
            }
            None => mounting::mount_kernel(&m, &self.layout.home, &view, &mut staging)?,
        }
        let r = crate::vfs::copy::copy_tree(&view, dst, Some(shift), false);
        let un = if mounting::is_fuse(&view) {
            mounting::unmount_fuse(&view)
        } else {
            mounting::unmount_kernel(&view)
        };
        r.and(un)
    }
}

/// The layer ID of a layer directory (its name).
fn dir_id(dir: &Path) -> Result<String> {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::LayerUnknown(dir.display().to_string()))
}

fn read_record(dir: &Path) -> Result<Option<LowerMaps>> {
    let p = dir.join(RECORD);
    match fs::read(&p) {
        Ok(d) => serde_json::from_slice(&d)
            .map(Some)
            .map_err(|e| Error::path("read", &p, io::Error::new(io::ErrorKind::InvalidData, e))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::path("read", &p, e)),
    }
}

/// Re-creates in `dst` the deletion markers of the upper directory `src`:
/// character-device whiteouts, `.wh.` files, opaque xattrs, owned by `owner`.
fn copy_markers(src: &Path, dst: &Path, owner: (u32, u32)) -> Result<()> {
    let mut stack = vec![std::path::PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let sdir = src.join(&rel);
        for ent in fs::read_dir(&sdir).map_err(|e| Error::path("readdir", &sdir, e))? {
            let ent = ent.map_err(|e| Error::path("readdir", &sdir, e))?;
            let ft = ent
                .file_type()
                .map_err(|e| Error::path("stat", ent.path(), e))?;
            let r = rel.join(ent.file_name());
            let target = dst.join(&r);
            let name = ent.file_name();
            if ft.is_char_device() {
                let md = ent
                    .metadata()
                    .map_err(|e| Error::path("stat", ent.path(), e))?;
                if md.rdev() == 0 && target.symlink_metadata().is_err() {
                    rustix::fs::mknodat(
                        rustix::fs::CWD,
                        &target,
                        rustix::fs::FileType::CharacterDevice,
                        rustix::fs::Mode::empty(),
                        0,
                    )
                    .map_err(|e| Error::path("mknod whiteout", &target, e.into()))?;
                    lchown(&target, owner)?;
                }
            } else if ft.is_file() && name.as_encoded_bytes().starts_with(b".wh.") {
                if target.symlink_metadata().is_err() {
                    fs::write(&target, b"").map_err(|e| Error::path("write", &target, e))?;
                    lchown(&target, owner)?;
                }
            } else if ft.is_dir() {
                for x in OPAQUE_XATTRS {
                    if let Some(v) = crate::chown::read_xattr(&ent.path(), x)? {
                        if target.is_dir() {
                            rustix::fs::lsetxattr(&target, x, &v, rustix::fs::XattrFlags::empty())
                                .map_err(|e| Error::path("setxattr", &target, e.into()))?;
                        }
                    }
                }
                if target.is_dir() {
                    stack.push(r);
                }
            }
        }
    }
    Ok(())
}

fn lchown(p: &Path, owner: (u32, u32)) -> Result<()> {
    std::os::unix::fs::lchown(p, Some(owner.0), Some(owner.1))
        .map_err(|e| Error::path("chown", p, e))
}
