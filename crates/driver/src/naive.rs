//! Generic diff-family operations built on mount (`get`/`put`) and the
//! archive engine; the seed's `NaiveDiffDriver`, `NaiveLayerIDMapUpdater` and
//! `NaiveCreateFromTemplate`. Drivers with a native path override the
//! corresponding [`Driver`] methods; these stay callable directly.
//!
//! Every function mounts what it needs and releases it before returning,
//! also on failure ([`Mounted`] puts on drop).

use std::io::{Read, Seek};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use strata_archive::changes::{
    changes_between_mapped, changes_size, export_changes, ExportOptions, ExportOrder, TreeIdMaps,
};
use strata_archive::{ApplyMode, ApplyOptions};
use strata_idmap::IdMappings;

use crate::{
    ApplyDiffOptions, ApplyReport, Change, CreateRequest, DiffRequest, Driver, Error, FileSource,
    LayerRef, MountOptions, Result,
};

/// A layer mounted by [`Driver::get`], released with [`Driver::put`] on drop.
pub struct Mounted<'d, D: Driver + ?Sized> {
    driver: &'d D,
    id: String,
    path: PathBuf,
}

impl<'d, D: Driver + ?Sized> Mounted<'d, D> {
    /// Mounts `id` with `opts`.
    pub fn new(driver: &'d D, id: &str, opts: &MountOptions) -> Result<Self> {
        let path = driver.get(id, opts)?;
        Ok(Self {
            driver,
            id: id.to_string(),
            path,
        })
    }

    /// Where the layer's tree is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl<D: Driver + ?Sized> Drop for Mounted<'_, D> {
    fn drop(&mut self) {
        if let Err(e) = self.driver.put(&self.id) {
            tracing::warn!("releasing layer {}: {e}", self.id);
        }
    }
}

fn mount_opts(label: Option<&str>) -> MountOptions {
    MountOptions {
        mount_label: label.map(str::to_string),
        ..Default::default()
    }
}

/// Mounts the layer and (if any) its parent, and lists the changes.
fn with_changes<D: Driver + ?Sized, T>(
    d: &D,
    req: &DiffRequest,
    f: impl FnOnce(&Path, Vec<Change>) -> Result<T>,
) -> Result<T> {
    let opts = mount_opts(req.mount_label.as_deref());
    let layer = Mounted::new(d, &req.id, &opts)?;
    let parent = match &req.parent {
        Some(p) => Some(Mounted::new(d, p, &opts)?),
        None => None,
    };
    // Owners compare as container IDs: a child re-owned to other maps
    // has not changed its files.
    let maps = TreeIdMaps {
        layer: req.id_mappings.clone(),
        parent: req.parent_mappings.clone(),
    };
    let changes = changes_between_mapped(layer.path(), parent.as_ref().map(|p| p.path()), &maps)?;
    f(layer.path(), changes)
}

/// Generic diff: changes against the parent, exported as a tar.
///
/// The tar is written to an unnamed temporary file first (the returned
/// reader must not borrow the driver, and the layers must stay mounted
/// while being read), then handed back positioned at its start.
pub fn diff<D: Driver + ?Sized>(d: &D, req: &DiffRequest) -> Result<Box<dyn Read + Send>> {
    let tmpdir = std::env::temp_dir();
    let mut file = tempfile_in(&tmpdir)?;
    with_changes(d, req, |root, changes| {
        let opts = ExportOptions {
            id_mappings: req.id_mappings.clone(),
            // With no parent the reference tars the whole tree.
            order: if req.parent.is_none() {
                ExportOrder::Walk
            } else {
                ExportOrder::ByPath
            },
            ..Default::default()
        };
        let mut w = std::io::BufWriter::new(&mut file);
        export_changes(root, &changes, &opts, &mut w)?;
        std::io::Write::flush(&mut w).map_err(|e| Error::path("write", &tmpdir, e))?;
        Ok(())
    })?;
    file.rewind().map_err(|e| Error::path("seek", &tmpdir, e))?;
    Ok(Box::new(file))
}

fn tempfile_in(dir: &Path) -> Result<std::fs::File> {
    // O_TMPFILE where the filesystem has it, else a file unlinked at once.
    tempfile::tempfile_in(dir).map_err(|e| Error::path("create temporary file in", dir, e))
}

/// Generic changes: mounts both layers and compares the trees.
pub fn changes<D: Driver + ?Sized>(d: &D, req: &DiffRequest) -> Result<Vec<Change>> {
    with_changes(d, req, |_, c| Ok(c))
}

/// Generic apply: mounts the layer and applies onto the full tree
/// (whiteouts delete from it).
pub fn apply_diff<D: Driver + ?Sized>(
    d: &D,
    target: LayerRef<'_>,
    opts: &ApplyDiffOptions,
    diff: &mut (dyn Read + Send),
    tar_split: Option<Box<dyn std::io::Write + Send>>,
) -> Result<ApplyReport> {
    apply_diff_unsharing(d, target, opts, diff, tar_split, None)
}

/// [`apply_diff`] onto a tree whose non-directories may share inodes with
/// another tree's: `unshare` makes the layer's
/// [`strata_archive::ApplierOptions::unshare`] from its mounted root.
pub(crate) fn apply_diff_unsharing<D: Driver + ?Sized>(
    d: &D,
    target: LayerRef<'_>,
    opts: &ApplyDiffOptions,
    diff: &mut (dyn Read + Send),
    tar_split: Option<Box<dyn std::io::Write + Send>>,
    unshare: Option<&dyn Fn(&Path) -> strata_archive::Unshare>,
) -> Result<ApplyReport> {
    let layer = Mounted::new(d, target.id, &mount_opts(opts.mount_label.as_deref()))?;
    let root = open_root(layer.path())?;
    let unshare = unshare.map(|make| make(layer.path()));
    let report = strata_archive::apply_layer(
        std::os::fd::AsFd::as_fd(&root),
        diff,
        ApplyOptions {
            mode: ApplyMode::FullTree,
            id_mappings: opts.id_mappings.clone(),
            ignore_chown_errors: opts.ignore_chown_errors,
            force_mask: opts.force_mask,
            tar_split,
            unshare,
        },
    )?;
    Ok(report)
}

fn open_root(p: &Path) -> Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::path("open", p, e.into()))
}

/// Generic diff size: size of the changes against the parent.
pub fn diff_size<D: Driver + ?Sized>(d: &D, req: &DiffRequest) -> Result<u64> {
    with_changes(d, req, |root, changes| Ok(changes_size(root, &changes)?))
}

/// Generic ID-map update: mounts the layer and re-owns every file.
pub fn update_layer_id_map<D: Driver + ?Sized>(
    d: &D,
    id: &str,
    maps: (&IdMappings, &IdMappings),
    mount_label: Option<&str>,
) -> Result<()> {
    let layer = Mounted::new(d, id, &mount_opts(mount_label))?;
    crate::chown::chown_path_by_maps(layer.path(), maps.0, maps.1)
}

/// Generic create-from-template: a new layer on the template's parent with
/// the template's diff applied. On failure the new layer is removed.
pub fn create_from_template<D: Driver + ?Sized>(
    d: &D,
    req: &CreateRequest,
    template: &str,
    template_mappings: &IdMappings,
) -> Result<()> {
    d.create(req)?;
    let result = (|| {
        let mut tar = d.diff(&DiffRequest {
            id: template.to_string(),
            id_mappings: template_mappings.clone(),
            parent: req.parent.clone(),
            parent_mappings: req.id_mappings.clone(),
            mount_label: req.mount_label.clone(),
        })?;
        d.apply_diff(
            LayerRef {
                id: &req.id,
                parent: req.parent.as_deref(),
            },
            &ApplyDiffOptions {
                id_mappings: req.id_mappings.clone(),
                mount_label: req.mount_label.clone(),
                ..Default::default()
            },
            &mut tar,
            None,
        )
    })();
    match result {
        Ok(_) => Ok(()),
        Err(e) => {
            if let Err(c) = d.remove(&req.id) {
                tracing::warn!("removing half-made layer {}: {c}", req.id);
            }
            Err(e)
        }
    }
}

/// A [`strata_archive::tarsplit::FileSource`] over a directory, confined to it
/// by the one confined open ([`strata_archive::confined`]): `..` and absolute
/// symlinks cannot leave the root, and a symlink named by a record is not
/// followed.
pub struct DirFileSource {
    root: OwnedFd,
}

impl DirFileSource {
    /// A source reading under `root`.
    pub fn open(root: &Path) -> Result<Self> {
        Ok(Self {
            root: open_root(root)?,
        })
    }
}

impl DirFileSource {
    fn open_fd(&self, name: &[u8]) -> std::io::Result<OwnedFd> {
        use rustix::fs::OFlags;
        use std::os::fd::AsFd;
        use strata_archive::confined::{self, How};
        let how = How::new(OFlags::RDONLY | OFlags::NOFOLLOW);
        Ok(confined::open(self.root.as_fd(), name, &how)?)
    }
}

impl strata_archive::tarsplit::FileSource for DirFileSource {
    fn open(&self, name: &[u8]) -> std::io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(std::fs::File::from(self.open_fd(name)?)))
    }

    fn prefetch(&self, name: &[u8]) -> Option<Box<dyn Read + '_>> {
        self.open_fd(name)
            .ok()
            .map(strata_archive::tarsplit::read_ahead)
    }
}

/// Generic diff getter: files read from the mounted layer.
///
/// The layer is mounted, its root opened, and released at once: the open
/// handle keeps the tree reachable. Drivers whose `put` must not run while
/// a handle is open (a mount that cannot be detached) override
/// [`Driver::diff_getter`].
pub fn diff_getter<D: Driver + ?Sized>(d: &D, id: &str) -> Result<FileSource> {
    let layer = Mounted::new(d, id, &MountOptions::default())?;
    let src = DirFileSource::open(layer.path())?;
    drop(layer);
    Ok(Box::new(src))
}
