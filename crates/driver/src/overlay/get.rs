//! Mounting and unmounting one layer (`get`/`put` after reference counting).

use std::fs;
use std::path::{Path, PathBuf};

use strata_sys::mount::OverlayMount;

use super::{layout, mounting, Overlay, DEFAULT_MOUNT_PROGRAM};
use crate::{Error, IdMap, MountOptions, Result};

impl Overlay {
    /// Mounts layer `id` at its `merged` directory and returns that path.
    pub(super) fn mount_layer(&self, id: &str, opts: &MountOptions) -> Result<PathBuf> {
        let (dir, in_store) = self
            .find_layer(id)?
            .ok_or_else(|| Error::LayerUnknown(id.to_string()))?;
        if !in_store {
            self.layout.repair(id)?;
            ensure_merged(&dir)?;
        }
        let merged = dir.join("merged");
        let mut m = self.mount_spec(&dir, in_store, opts)?;
        let lowers = std::mem::take(&mut m.lowers);
        let shift =
            !opts.disable_shifting && (!opts.uid_maps.is_empty() || !opts.gid_maps.is_empty());
        let maps: (&[IdMap], &[IdMap]) = if shift {
            (&opts.uid_maps, &opts.gid_maps)
        } else {
            (&[], &[])
        };
        if let Some(prog) = &self.mount_program {
            mounting::check_fuse_options(&m.options)?;
            m.lowers = lowers;
            mounting::mount_fuse(prog, &m, &merged, maps)?;
            return Ok(merged);
        }
        if lowers.len() > mounting::MAX_STACK {
            // The kernel stacks at most 500 lowers, and nesting overlays
            // loses whiteouts across the nested boundary; a FUSE overlay
            // has no such limit.
            if Path::new(DEFAULT_MOUNT_PROGRAM).exists() {
                m.lowers = lowers;
                m.options.retain(|o| o != "userxattr" && o != "volatile");
                mounting::mount_fuse(Path::new(DEFAULT_MOUNT_PROGRAM), &m, &merged, maps)?;
                return Ok(merged);
            }
            tracing::warn!(
                layer = id,
                depth = lowers.len(),
                "no mount program for a deep stack: nesting kernel overlays, whiteouts between nested groups are not honoured"
            );
        }
        let mut staging = mounting::Staging::new(self.run_root.join("staging").join(id));
        // A layer whose lowers are owned under other maps (see `idmap`)
        // shows them through idmapped clones.
        let idmaps = self.lower_idmaps(&dir)?;
        // Without idmapped lowers the layers were chowned when created
        // (chown-based shifting by the caller); the maps go unused, as
        // with the reference.
        m.lowers = if !idmaps.is_empty() {
            if lowers.len() > mounting::MAX_STACK {
                return Err(Error::Unsupported(format!(
                    "idmapped mounts of more than {} layers",
                    mounting::MAX_STACK
                )));
            }
            staging.idmap_each(&lowers, &idmaps)?
        } else if shift && self.idmapped_lower() {
            if lowers.len() > mounting::MAX_STACK {
                return Err(Error::Unsupported(format!(
                    "idmapped mounts of more than {} layers",
                    mounting::MAX_STACK
                )));
            }
            staging.idmap(&lowers, maps.0, maps.1)?
        } else {
            lowers
        };
        mounting::mount_kernel(&m, &self.layout.home, &merged, &mut staging)?;
        Ok(merged)
    }

    /// The overlay mount of the layer at `dir`: lowers, upper and work
    /// (unless read-only) and options.
    fn mount_spec(&self, dir: &Path, in_store: bool, opts: &MountOptions) -> Result<OverlayMount> {
        let mut options: Vec<String> = if opts.options.is_empty() {
            self.opts.mount_options.clone()
        } else {
            opts.options.clone()
        };
        // Layers from an additional image or layer store are never written.
        let read_only =
            in_store || dir.join("additionallayer").exists() || options.iter().any(|o| o == "ro");
        options.retain(|o| o != "ro" && o != "rw");
        if self.rootless
            && self.mount_program.is_none()
            && !options.iter().any(|o| o == "userxattr")
        {
            options.push("userxattr".into());
        }
        if opts.volatile {
            options.push("volatile".into());
        }
        if let Some(label) = opts.mount_label.as_deref().filter(|l| !l.is_empty()) {
            options.push(format!("context=\"{label}\""));
        }
        let mut m = OverlayMount {
            lowers: self.lower_dirs_of(dir)?,
            ..Default::default()
        };
        let diff = dir.join("diff");
        if read_only {
            m.lowers.insert(0, diff);
            if m.lowers.len() == 1 {
                // Two lowers at least when there is no upper.
                m.lowers.push(dir.join("empty"));
            }
            if self.mount_program.is_none() {
                options.push("ro".into());
            }
        } else {
            if m.lowers.is_empty() {
                m.lowers.push(dir.join("empty"));
            }
            let work = dir.join("work");
            // A volatile mount leaves work/work/incompat/volatile behind and
            // the kernel refuses the workdir until it is cleared.
            let inner = work.join("work");
            if inner.join("incompat/volatile").exists() {
                fs::remove_dir_all(&inner).map_err(|e| Error::path("remove", &inner, e))?;
            }
            m.upper = Some(diff);
            m.work = Some(work);
        }
        m.options = options;
        Ok(m)
    }

    /// Where layer `id` is mounted: its `merged` directory, in the home or
    /// in the image store that holds it.
    pub(super) fn merged_of(&self, id: &str) -> Result<PathBuf> {
        Ok(match self.find_layer(id)? {
            Some((dir, _)) => dir.join("merged"),
            None => self.layout.merged(id),
        })
    }

    /// Unmounts layer `id` if it is mounted.
    pub(super) fn unmount_layer(&self, id: &str) -> Result<()> {
        let merged = self.merged_of(id)?;
        if !mounting::is_mounted(&merged) {
            return Ok(());
        }
        if self.mount_program.is_some() || mounting::is_fuse(&merged) {
            mounting::unmount_fuse(&merged)
        } else {
            mounting::unmount_kernel(&merged)
        }
    }
}

/// The reference removes `merged` when it unmounts; it comes back owned
/// like the layer's `diff`.
fn ensure_merged(dir: &Path) -> Result<()> {
    let merged = dir.join("merged");
    if merged.exists() {
        return Ok(());
    }
    layout::mkdir_mode(&merged, 0o700)?;
    let md = fs::metadata(dir.join("diff")).map_err(|e| Error::path("stat", dir, e))?;
    use std::os::unix::fs::MetadataExt;
    if (md.uid(), md.gid()) != (0, 0) {
        std::os::unix::fs::lchown(&merged, Some(md.uid()), Some(md.gid()))
            .map_err(|e| Error::path("chown", &merged, e))?;
    }
    Ok(())
}
