//! Opening a store: directories, driver, and the three record stores it
//! composes (layers, images, containers), plus the additional read-only
//! image stores.
//!
//! Locks are always taken in the reference's order — layers, then
//! images, then containers (the store's own before the read-only ones) —
//! and held until the operation ends, so operations that span kinds see
//! and leave a consistent store.

use std::path::{Path, PathBuf};

use strata_driver::Driver;
use strata_idmap::IdMappings;

use crate::containers::ContainerStore;
use crate::files::{absolute, mkdir_all};
use crate::images::ImageStore;
use crate::layers::LayerStore;
use crate::lockfile::{LockFile, LockMode};
use crate::recordfile::Mode;
use crate::{Error, Result, StoreOptions};

/// Whether opening cleans what interrupted writers left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leftovers {
    Remove,
    Keep,
}

/// An open store. Reads take `&self`; a `Store` may be shared between
/// threads, and two `Store` values on one store exclude each other as two
/// processes do.
pub struct Store {
    pub(crate) graph_root: PathBuf,
    pub(crate) run_root: PathBuf,
    pub(crate) driver_options: Vec<String>,
    pub(crate) driver: Box<dyn Driver>,
    pub(crate) layer_store: LayerStore,
    pub(crate) ro_layer_stores: Vec<LayerStore>,
    pub(crate) image_store: ImageStore,
    pub(crate) ro_image_stores: Vec<ImageStore>,
    pub(crate) container_store: ContainerStore,
    pub(crate) graph_lock: LockFile,
    pub(crate) default_maps: IdMappings,
    pub(crate) sync: crate::SyncMode,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("graph_root", &self.graph_root)
            .field("run_root", &self.run_root)
            .field("driver", &self.driver.name())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating when missing) the store described by `opts`, and
    /// removes layers left incomplete by an interrupted writer.
    pub fn open(opts: &StoreOptions) -> Result<Self> {
        Self::open_inner(opts, None, Leftovers::Remove)
    }

    /// Opens the store as it is, for [`Store::check`] and
    /// [`Store::repair`]: incomplete layers and temporary files are left
    /// for the check to report (a damaged record file is a finding then,
    /// not an error).
    pub fn open_for_check(opts: &StoreOptions) -> Result<Self> {
        Self::open_inner(opts, None, Leftovers::Keep)
    }

    /// Opens the store with a driver the caller made (its name decides the
    /// `<driver>-layers` directories).
    pub fn open_with_driver(opts: &StoreOptions, driver: Box<dyn Driver>) -> Result<Self> {
        Self::open_inner(opts, Some(driver), Leftovers::Remove)
    }

    fn open_inner(
        opts: &StoreOptions,
        given: Option<Box<dyn Driver>>,
        leftovers: Leftovers,
    ) -> Result<Self> {
        if opts.graph_root.as_os_str().is_empty() || opts.run_root.as_os_str().is_empty() {
            return Err(Error::Invalid(
                "no storage runroot or graphroot specified".into(),
            ));
        }
        let graph_root = absolute(&opts.graph_root)?;
        let run_root = absolute(&opts.run_root)?;
        mkdir_all(&graph_root, 0o700)?;
        mkdir_all(&run_root, 0o700)?;
        mkdir_all(&graph_root.join("mounts"), 0o700)?;
        mkdir_all(&graph_root.join("tmp"), 0o700)?;
        let graph_lock = LockFile::open(&graph_root.join("storage.lock"))?;
        LockFile::open(&graph_root.join("userns.lock"))?;

        let ids = IdMappings::new(opts.uid_map.clone(), opts.gid_map.clone());
        // `sync` is the store's to honour; the driver gets the rest.
        let mut driver_options = opts.driver_options.clone();
        let sync_options = crate::SyncMode::take_from(&mut driver_options);
        let driver = match given {
            Some(d) => d,
            None => {
                let _g = graph_lock.lock(LockMode::Exclusive)?;
                pick_driver(&graph_root, &run_root, opts, driver_options, &ids)?
            }
        };
        let name = driver.name().to_string();
        let sync = sync_options.mode_for(&name)?;
        let persist = sync.persist();
        for dir in [
            run_root.join(format!("{name}-containers")),
            run_root.join(format!("{name}-locks")),
        ] {
            mkdir_all(&dir, 0o700)?;
        }
        let layer_store = LayerStore::open(
            graph_root.join(format!("{name}-layers")),
            Some(run_root.join(format!("{name}-layers"))),
            persist,
        )?;
        let image_store = ImageStore::open(
            graph_root.join(format!("{name}-images")),
            persist,
            Mode::ReadWrite,
        )?;
        let container_store = ContainerStore::open(
            graph_root.join(format!("{name}-containers")),
            run_root.join(format!("{name}-containers")),
            persist,
        )?;
        let mut ro_layer_stores = Vec::new();
        let mut ro_image_stores = Vec::new();
        for extra in driver.additional_image_stores() {
            ro_image_stores.push(ImageStore::open(
                extra.join(format!("{name}-images")),
                persist,
                Mode::ReadOnly,
            )?);
            ro_layer_stores.push(LayerStore::open(
                extra.join(format!("{name}-layers")),
                None,
                persist,
            )?);
        }
        let store = Store {
            graph_root,
            run_root,
            driver_options: opts.driver_options.clone(),
            driver,
            layer_store,
            ro_layer_stores,
            image_store,
            ro_image_stores,
            container_store,
            graph_lock,
            default_maps: ids,
            sync,
        };
        if leftovers == Leftovers::Remove {
            store.remove_incomplete()?;
            store.image_store.records().remove_stale_temporaries()?;
            store.container_store.records().remove_stale_temporaries()?;
        }
        Ok(store)
    }

    /// The driver.
    pub fn driver(&self) -> &dyn Driver {
        &*self.driver
    }

    /// The graph root (absolute).
    pub fn graph_root(&self) -> &Path {
        &self.graph_root
    }

    /// The run root (absolute).
    pub fn run_root(&self) -> &Path {
        &self.run_root
    }

    /// The driver options in effect.
    pub fn driver_options(&self) -> &[String] {
        &self.driver_options
    }

    /// The store's own layer records.
    pub fn layer_store(&self) -> &LayerStore {
        &self.layer_store
    }

    /// The store's own image records.
    pub fn image_store(&self) -> &ImageStore {
        &self.image_store
    }

    /// The container records.
    pub fn container_store(&self) -> &ContainerStore {
        &self.container_store
    }

    /// The additional (read-only) image stores, in configured order, each
    /// with its layer records.
    pub fn read_only_stores(&self) -> impl Iterator<Item = (&ImageStore, &LayerStore)> {
        self.ro_image_stores.iter().zip(&self.ro_layer_stores)
    }

    /// The store's own layer records and mount counts, locked exclusively.
    pub(crate) fn layers_tx(&self) -> Result<crate::layers::LayersTx<'_>> {
        self.layer_store.write(|id| {
            self.ro_layer_stores
                .iter()
                .any(|ro| ro.read().is_ok_and(|r| r.layers.by_id(id).is_some()))
        })
    }

    /// Cleans what an interrupted writer left: incomplete layers and the
    /// temporary files of atomic writes and imports (`.tmp-*` beside
    /// layers.json and mountpoints.json). Writers hold the exclusive locks
    /// while such files exist, so under those locks every one is stale.
    fn remove_incomplete(&self) -> Result<()> {
        let ls = &self.layer_store;
        // Most opens find no incomplete layer: look for the flag's name
        // in the bytes before parsing every record.
        let any = ls.records().mentions(b"\"incomplete\"")?
            && ls.read()?.layers.list().iter().any(|l| l.is_incomplete());
        let mut dirs = vec![ls.dir().to_path_buf()];
        dirs.extend(ls.mounts_dir().map(Path::to_path_buf));
        let tmp_files = || -> Vec<PathBuf> {
            dirs.iter()
                .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
                .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
                .map(|e| e.path())
                .collect()
        };
        let stale = !tmp_files().is_empty();
        if !(any || stale) || ls.records().is_read_only() {
            return Ok(());
        }
        let mut tx = self.layers_tx()?;
        for p in tmp_files() {
            tracing::info!("removing stale temporary file {}", p.display());
            crate::files::remove_file_if_exists(&p)?;
        }
        let ids: Vec<String> = tx
            .layers
            .list()
            .iter()
            .filter(|l| l.is_incomplete())
            .map(|l| l.id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        // A container's layer is complete once the container's record is
        // saved; a crash before its flag was cleared leaves it flagged.
        let containers = self.container_store.read()?;
        for id in ids {
            if containers.by_alt_key(&id).is_some() {
                tracing::info!("completing the layer {id} of a container");
                self.complete_layer(&mut tx, &id)?;
            } else {
                tracing::info!("removing incomplete layer {id}");
                self.remove_layer_locked(&mut tx, &id)?;
            }
        }
        Ok(())
    }
}

fn pick_driver(
    graph_root: &Path,
    run_root: &Path,
    opts: &StoreOptions,
    driver_options: Vec<String>,
    ids: &IdMappings,
) -> Result<Box<dyn Driver>> {
    let topts = strata_driver::table::StoreOptions {
        graph_root: graph_root.to_path_buf(),
        run_root: run_root.to_path_buf(),
        driver_options,
        id_mappings: ids.clone(),
        experimental: false,
    };
    let name = opts.driver.as_deref().filter(|n| !n.is_empty());
    strata_driver::table::Drivers::builtin()
        .new_driver(name, &topts)
        .map_err(|e| Error::driver("initializing driver", name.unwrap_or("(any)"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Store>();
    }
}
