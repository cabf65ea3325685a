//! Opening a store: directories, driver, locks, and the locked
//! read/modify/write cycle every operation goes through.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_driver::Driver;
use strata_idmap::IdMappings;

use crate::files::{absolute, mkdir_all};
use crate::lockfile::{LockFile, LockMode};
use crate::state::{Paths, State};
use crate::{Error, Result, StoreOptions};

#[derive(Debug)]
pub(crate) struct Locks {
    pub(crate) layers: LockFile,
    pub(crate) mounts: LockFile,
}

/// Whether opening cleans what interrupted writers left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leftovers {
    Remove,
    Keep,
}

/// An open layer store.
pub struct Store {
    pub(crate) graph_root: PathBuf,
    pub(crate) run_root: PathBuf,
    pub(crate) driver_options: Vec<String>,
    pub(crate) driver: Box<dyn Driver>,
    pub(crate) paths: Paths,
    pub(crate) locks: Arc<Locks>,
    pub(crate) state: State,
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

fn touch(path: &Path) -> Result<()> {
    // Opening creates it (0644, empty) when missing; the handle is closed at
    // once, which would drop this process's fcntl locks on it — none are
    // held at this point.
    LockFile::open(path).map(drop)
}

impl Store {
    /// Opens (creating when missing) the store described by `opts`, and
    /// removes layers left incomplete by an interrupted writer.
    pub fn open(opts: &StoreOptions) -> Result<Self> {
        Self::open_inner(opts, None, Leftovers::Remove)
    }

    /// Opens the store as it is, for [`Store::check`] and
    /// [`Store::repair`]: incomplete layers and temporary files are left
    /// for the check to report, and record files are not read yet (a
    /// damaged one is a finding, not an error).
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
        touch(&graph_root.join("userns.lock"))?;

        let ids = IdMappings::new(opts.uid_map.clone(), opts.gid_map.clone());
        // `sync` is the store's to honour; the driver gets the rest.
        let mut driver_options = opts.driver_options.clone();
        let sync = crate::SyncMode::take_from(&mut driver_options)?;
        let driver = match given {
            Some(d) => d,
            None => {
                let _g = graph_lock.lock(LockMode::Exclusive)?;
                pick_driver(&graph_root, &run_root, opts, driver_options, &ids)?
            }
        };
        let name = driver.name().to_string();
        let layers_dir = graph_root.join(format!("{name}-layers"));
        let mounts_dir = run_root.join(format!("{name}-layers"));
        for (dir, lock) in [
            (
                graph_root.join(format!("{name}-images")),
                Some("images.lock"),
            ),
            (
                graph_root.join(format!("{name}-containers")),
                Some("containers.lock"),
            ),
            (layers_dir.clone(), None),
            (mounts_dir.clone(), None),
            (run_root.join(format!("{name}-containers")), None),
            (run_root.join(format!("{name}-locks")), None),
        ] {
            mkdir_all(&dir, 0o700)?;
            if let Some(l) = lock {
                touch(&dir.join(l))?;
            }
        }
        let locks = Arc::new(Locks {
            layers: LockFile::open(&layers_dir.join("layers.lock"))?,
            mounts: LockFile::open(&mounts_dir.join("mountpoints.lock"))?,
        });
        let mut store = Store {
            graph_root,
            run_root,
            driver_options: opts.driver_options.clone(),
            driver,
            paths: Paths {
                layers_dir,
                mounts_dir,
            },
            locks,
            state: State::default(),
            default_maps: ids,
            sync,
        };
        if leftovers == Leftovers::Remove {
            store.remove_incomplete()?;
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

    /// Runs `f` with the layer files loaded under shared locks.
    pub(crate) fn read<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let locks = self.locks.clone();
        let _l = locks.layers.lock(LockMode::Shared)?;
        let _m = locks.mounts.lock(LockMode::Shared)?;
        self.state
            .refresh(&self.paths, &locks.layers, &locks.mounts)?;
        f(self)
    }

    /// Runs `f` with the layer files loaded under exclusive locks; `f`
    /// saves what it changes with [`Store::save`].
    pub(crate) fn write<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let locks = self.locks.clone();
        let _l = locks.layers.lock(LockMode::Exclusive)?;
        let _m = locks.mounts.lock(LockMode::Exclusive)?;
        self.state
            .refresh(&self.paths, &locks.layers, &locks.mounts)?;
        f(self)
    }

    /// Writes both layer files; call inside [`Store::write`].
    pub(crate) fn save(&mut self) -> Result<()> {
        let locks = self.locks.clone();
        let persist = self.sync.persist();
        self.state
            .save(&self.paths, &locks.layers, &locks.mounts, persist)
    }

    /// Cleans what an interrupted writer left: incomplete layers and the
    /// temporary files of atomic writes and imports (`.tmp-*` beside
    /// layers.json and mountpoints.json). Writers hold the exclusive locks
    /// while such files exist, so under those locks every one is stale.
    fn remove_incomplete(&mut self) -> Result<()> {
        let any = self.read(|s| Ok(s.state.layers.iter().any(|l| l.is_incomplete())))?;
        let tmp_files = |s: &Self| -> Vec<PathBuf> {
            [&s.paths.layers_dir, &s.paths.mounts_dir]
                .iter()
                .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
                .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
                .map(|e| e.path())
                .collect()
        };
        let stale = !tmp_files(self).is_empty();
        if !(any || stale) || !self.locks.layers.is_writable() {
            return Ok(());
        }
        self.write(|s| {
            for p in tmp_files(s) {
                tracing::info!("removing stale temporary file {}", p.display());
                crate::files::remove_file_if_exists(&p)?;
            }
            let ids: Vec<String> = s
                .state
                .layers
                .iter()
                .filter(|l| l.is_incomplete())
                .map(|l| l.id.clone())
                .collect();
            for id in ids {
                tracing::info!("removing incomplete layer {id}");
                s.remove_layer_locked(&id)?;
            }
            Ok(())
        })
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
