//! Re-owning a layer for other ID maps (`update_layer_id_map`).
//!
//! Chowning through a mount would copy files up one name at a time and
//! split hard links that live in lower layers (the kernel keeps them only
//! with `index=on`, fuse-overlayfs never). Instead the layer's merged view is
//! copied once into a fresh directory (hard links kept, data reflinked where
//! the filesystem can), re-owned, given back the layer's own deletion
//! markers (whiteouts and opaque directories, which a merged view hides),
//! and swapped in as the layer's `diff`.

use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use strata_sys::mount::OverlayMount;

use super::{mounting, Overlay};
use crate::{Error, IdMappings, Result};

const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

impl Overlay {
    pub(super) fn update_id_map(
        &self,
        id: &str,
        to_container: &IdMappings,
        to_host: &IdMappings,
    ) -> Result<()> {
        let (dir, in_store) = self
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
                fs::remove_dir_all(p).map_err(|e| Error::path("remove", p, e))?;
            }
        }
        fs::create_dir(&fresh).map_err(|e| Error::path("mkdir", &fresh, e))?;
        let res = self.copy_view(id, &dir, &fresh).and_then(|()| {
            crate::chown::chown_path_by_maps(&fresh, to_container, to_host)?;
            let root = to_host.root_pair()?;
            copy_markers(&diff, &fresh, (root.uid, root.gid))
        });
        if let Err(e) = res {
            let _ = fs::remove_dir_all(&fresh);
            return Err(e);
        }
        fs::rename(&diff, &old).map_err(|e| Error::path("rename", &diff, e))?;
        fs::rename(&fresh, &diff).map_err(|e| Error::path("rename", &fresh, e))?;
        fs::remove_dir_all(&old).map_err(|e| Error::path("remove", &old, e))
    }

    /// Copies the read-only merged view of layer `id` into `dst`.
    fn copy_view(&self, id: &str, dir: &Path, dst: &Path) -> Result<()> {
        let mut lowers = vec![dir.join("diff")];
        lowers.extend(self.lower_dirs_of(dir)?);
        if lowers.len() == 1 {
            lowers.push(dir.join("empty"));
        }
        let mut staging =
            mounting::Staging::new(self.run_root.join("staging").join(format!("{id}-idmap")));
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
        let r = crate::vfs::copy::copy_tree(&view, dst);
        let un = if mounting::is_fuse(&view) {
            mounting::unmount_fuse(&view)
        } else {
            mounting::unmount_kernel(&view)
        };
        r.and(un)
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
                if std::os::unix::fs::MetadataExt::rdev(&md) == 0
                    && target.symlink_metadata().is_err()
                {
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
