//! The layer store: `<graph>/<driver>-layers/layers.json` (records, with
//! `volatile-layers.json` of later releases beside it) and
//! `<run>/<driver>-layers/mountpoints.json` (mount counts), each behind its
//! lock file; the operations on layers are in the submodules.
//!
//! ```text
//! <graph>/<driver>-layers/layers.json  layers.lock  volatile-layers.json
//!                         <id>.tar-split.gz         how to rebuild the imported tar
//!                         <id>/<item>               big data of a layer
//! <run>/<driver>-layers/mountpoints.json  mountpoints.lock
//! ```
//!
//! An additional (read-only) image store has the same `<driver>-layers`
//! directory and no mount counts.

use std::path::{Path, PathBuf};

use crate::files::Persist;
use crate::record::Kind;
use crate::recordfile::{Location, Mode, Reader, RecordFile, Writer};
use crate::{Error, Result};

pub(crate) mod chain;
pub(crate) mod diff;
pub(crate) mod mount;
pub(crate) mod ops;
mod record;

pub use record::{Layer, MountRecord, FLAG_INCOMPLETE};

/// The layer records of one store, and their mount counts.
#[derive(Debug)]
pub struct LayerStore {
    records: RecordFile<Layer>,
    mounts: Option<RecordFile<MountRecord>>,
    dir: PathBuf,
    mounts_dir: Option<PathBuf>,
}

impl LayerStore {
    /// Opens the layer files of a store: `dir` is `<graph>/<driver>-layers`,
    /// `mounts_dir` (`<run>/<driver>-layers`) is `None` for a read-only
    /// store.
    pub(crate) fn open(
        dir: PathBuf,
        mounts_dir: Option<PathBuf>,
        persist: Persist,
    ) -> Result<Self> {
        let mode = if mounts_dir.is_some() {
            Mode::ReadWrite
        } else {
            Mode::ReadOnly
        };
        let records = RecordFile::open(Location {
            path: dir.join("layers.json"),
            volatile: Some(dir.join("volatile-layers.json")),
            lock: dir.join("layers.lock"),
            persist,
            mode,
        })?;
        let mounts = match &mounts_dir {
            Some(m) => Some(RecordFile::open(Location {
                path: m.join("mountpoints.json"),
                volatile: None,
                lock: m.join("mountpoints.lock"),
                // Mount counts live in the run root and mean nothing after
                // a reboot.
                persist: Persist::Volatile,
                mode: Mode::ReadWrite,
            })?),
            None => None,
        };
        Ok(Self {
            records,
            mounts,
            dir,
            mounts_dir,
        })
    }

    /// The record file of the layers.
    pub fn records(&self) -> &RecordFile<Layer> {
        &self.records
    }

    /// `<graph>/<driver>-layers`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<run>/<driver>-layers` (none for a read-only store).
    pub fn mounts_dir(&self) -> Option<&Path> {
        self.mounts_dir.as_deref()
    }

    /// Whether this is an additional, read-only store.
    pub fn is_read_only(&self) -> bool {
        self.mounts.is_none()
    }

    /// The record file of the mount counts (none for a read-only store).
    pub(crate) fn mount_records(&self) -> Option<&RecordFile<MountRecord>> {
        self.mounts.as_ref()
    }

    /// `<id>.tar-split.gz`.
    pub fn tar_split(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.tar-split.gz"))
    }

    /// The layer's big-data directory.
    pub fn data_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// The records and mount counts under shared locks.
    pub(crate) fn read(&self) -> Result<LayersRead<'_>> {
        let layers = self.records.read()?;
        let mounts = match &self.mounts {
            Some(m) => Some(m.read()?),
            None => None,
        };
        Ok(LayersRead {
            store: self,
            layers,
            mounts,
        })
    }

    /// The records and mount counts under exclusive locks. Mount counts
    /// of layers that are gone are dropped, unless `elsewhere` knows the
    /// layer (a read-only store's layer mounted through this store).
    pub(crate) fn write(&self, elsewhere: impl Fn(&str) -> bool) -> Result<LayersTx<'_>> {
        let Some(mounts) = &self.mounts else {
            return Err(Error::ReadOnly {
                kind: Kind::Layer,
                path: self.records.path().to_path_buf(),
            });
        };
        let layers = self.records.write()?;
        let mut mounts = mounts.write()?;
        // Mount counts of layers that are gone mean nothing.
        let gone: Vec<String> = mounts
            .list()
            .iter()
            .filter(|m| layers.by_id(&m.id).is_none() && !elsewhere(&m.id))
            .map(|m| m.id.clone())
            .collect();
        if !gone.is_empty() {
            mounts.records_mut().retain(|m| !gone.contains(&m.id));
        }
        Ok(LayersTx { layers, mounts })
    }
}

/// Layer records and mount counts read under shared locks.
pub(crate) struct LayersRead<'a> {
    pub(crate) store: &'a LayerStore,
    pub(crate) layers: Reader<Layer>,
    pub(crate) mounts: Option<Reader<MountRecord>>,
}

impl LayersRead<'_> {
    /// The mount record of a layer.
    pub(crate) fn mount_of(&self, id: &str) -> Option<&MountRecord> {
        self.mounts.as_ref()?.by_id(id)
    }
}

/// Layer records and mount counts under exclusive locks.
pub(crate) struct LayersTx<'a> {
    pub(crate) layers: Writer<'a, Layer>,
    pub(crate) mounts: Writer<'a, MountRecord>,
}

impl LayersTx<'_> {
    /// A layer by ID, name or unique prefix.
    pub(crate) fn get(&self, key: &str) -> Result<&Layer> {
        self.layers.get(key)
    }

    /// The mount count of a layer (0 when not mounted).
    pub(crate) fn mount_count(&self, id: &str) -> u64 {
        self.mounts.by_id(id).map_or(0, |m| m.count)
    }

    /// Writes both files and records the writes in both lock files (as the
    /// reference does on every save).
    pub(crate) fn save(&mut self) -> Result<()> {
        self.layers.save()?;
        self.mounts.save()
    }
}

/// IDs of the layers whose parent is `id`.
pub(crate) fn children(layers: &[Layer], id: &str) -> Vec<String> {
    layers
        .iter()
        .filter(|l| l.parent == id)
        .map(|l| l.id.clone())
        .collect()
}
