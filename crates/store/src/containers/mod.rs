//! The container store: `<graph>/<driver>-containers/containers.json`
//! (and `volatile-containers.json` of later releases) behind
//! `containers.lock`, each container's big data, and the per-container
//! directories engines keep their files in.
//!
//! ```text
//! <graph>/<driver>-containers/containers.json  containers.lock
//!                             <container ID>/<file name of a big-data key>
//!                             <container ID>/userdata/   the container directory
//! <run>/<driver>-containers/<container ID>/userdata/     the container run directory
//! ```
//!
//! What one container store does alone lives here; creating a container
//! on an image (its read-write layer, mapped layers) and deleting it with
//! its layer are in [`ops`], on the [`Store`](crate::Store).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::bigdata;
use crate::files::{mkdir_all, remove_dir_if_exists, Persist};
use crate::images::{new_names, BigDataItem, NameOp};
use crate::layers::ops::LayerMaps;
use crate::record::{dedup_names, now, validate_id, Kind};
use crate::recordfile::{Location, Mode, Reader, RecordFile, Writer};
use crate::Result;

pub(crate) mod ops;
mod record;

pub use record::{Container, FLAG_MOUNT_LABEL, FLAG_MOUNT_OPTS, FLAG_PROCESS_LABEL, FLAG_VOLATILE};

/// Whether a container's data must survive a crash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// The usual.
    #[default]
    Durable,
    /// `--volatile`: recorded as the `Volatile` flag; the driver may mount
    /// its layer without syncs (overlay's `volatile` option).
    Volatile,
}

/// What a new container is made of.
#[derive(Debug, Clone, Default)]
pub struct NewContainer {
    /// ID to use; a random one when `None`.
    pub id: Option<String>,
    /// The image (ID or name); none for a container without an image.
    pub image: Option<String>,
    /// Names, which must not be used by another container.
    pub names: Vec<String>,
    /// Metadata.
    pub metadata: String,
    /// SELinux mount label; give both labels or neither.
    pub mount_label: Option<String>,
    /// SELinux process label; give both labels or neither.
    pub process_label: Option<String>,
    /// Mount options of the container's layer (`MountOpts`).
    pub mount_opts: Vec<String>,
    /// Volatile or not.
    pub durability: Durability,
    /// ID maps (by default the image's top layer's, else the store's).
    pub maps: LayerMaps,
    /// Per-layer driver options (`size`, …).
    pub storage_opt: BTreeMap<String, String>,
    /// Big data to store with the container.
    pub big_data: Vec<BigDataItem>,
}

/// The containers of a store.
#[derive(Debug)]
pub struct ContainerStore {
    records: RecordFile<Container>,
    dir: PathBuf,
    run_dir: PathBuf,
    persist: Persist,
}

impl ContainerStore {
    /// Opens `<graph>/<driver>-containers`, with the run directories in
    /// `run_dir` (`<run>/<driver>-containers`).
    pub(crate) fn open(dir: PathBuf, run_dir: PathBuf, persist: Persist) -> Result<Self> {
        let records = RecordFile::open(Location {
            path: dir.join("containers.json"),
            volatile: Some(dir.join("volatile-containers.json")),
            lock: dir.join("containers.lock"),
            persist,
            mode: Mode::ReadWrite,
        })?;
        Ok(Self {
            records,
            dir,
            run_dir,
            persist,
        })
    }

    /// The record file.
    pub fn records(&self) -> &RecordFile<Container> {
        &self.records
    }

    /// `<graph>/<driver>-containers`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<run>/<driver>-containers`.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The directory of a container's big data.
    pub fn data_dir(&self, id: &str) -> Result<PathBuf> {
        validate_id(Kind::Container, id)?;
        Ok(self.dir.join(id))
    }

    /// The subdirectories of `<driver>-containers` (data directories, with
    /// or without a record).
    pub fn data_dirs(&self) -> Result<Vec<String>> {
        bigdata::data_dirs(&self.dir)
    }

    /// `<graph>/<driver>-containers/<id>/userdata`, created (0700) when
    /// missing, as the reference creates it on every call.
    pub(crate) fn userdata(&self, id: &str) -> Result<PathBuf> {
        let p = self.data_dir(id)?.join("userdata");
        mkdir_all(&p, 0o700)?;
        Ok(p)
    }

    /// `<run>/<driver>-containers/<id>/userdata`, created when missing.
    pub(crate) fn run_userdata(&self, id: &str) -> Result<PathBuf> {
        validate_id(Kind::Container, id)?;
        let p = self.run_dir.join(id).join("userdata");
        mkdir_all(&p, 0o700)?;
        Ok(p)
    }

    pub(crate) fn read(&self) -> Result<Reader<Container>> {
        self.records.read()
    }

    pub(crate) fn write(&self) -> Result<Writer<'_, Container>> {
        self.records.write()
    }

    /// Checks a new container's ID and names; returns the ID to use.
    pub(crate) fn check_new(
        &self,
        w: &Writer<'_, Container>,
        req: &NewContainer,
    ) -> Result<String> {
        let id = w.new_id(req.id.as_deref())?;
        w.check_free_names(&req.names)?;
        Ok(id)
    }

    /// Adds a record (with its big data) in one save.
    pub(crate) fn create(
        &self,
        w: &mut Writer<'_, Container>,
        mut c: Container,
        req: &NewContainer,
    ) -> Result<Container> {
        c.names = dedup_names(&req.names);
        c.metadata = req.metadata.clone();
        c.created = now();
        let dir = self.data_dir(&c.id)?;
        remove_dir_if_exists(&dir)?;
        let res = (|| {
            for item in &req.big_data {
                bigdata::write(&dir, &item.key, &item.data, self.persist)?;
                record_item(&mut c, item);
            }
            w.records_mut().push(c.clone());
            w.save()
        })();
        if let Err(e) = res {
            if let Err(x) = remove_dir_if_exists(&dir) {
                tracing::warn!("cleaning up after failed container {}: {x}", c.id);
            }
            return Err(e);
        }
        Ok(c)
    }

    /// Changes a container's names (taking them from other containers).
    pub(crate) fn set_names(
        &self,
        w: &mut Writer<'_, Container>,
        id: &str,
        names: &[String],
        op: NameOp,
    ) -> Result<()> {
        let old = w.get(id)?.names.clone();
        let result = new_names(&old, names, op);
        w.records_mut().assign_names(id, &result)?;
        w.save()
    }

    /// Stores a big-data item (its digest is always the sha256 of the
    /// bytes); saves the record when it changed.
    pub(crate) fn set_big_data(
        &self,
        w: &mut Writer<'_, Container>,
        key: &str,
        name: &str,
        data: &[u8],
    ) -> Result<()> {
        let id = w.get(key)?.id.clone();
        bigdata::write(&self.data_dir(&id)?, name, data, self.persist)?;
        let mut c = w.get(&id)?.clone();
        let before = c.clone();
        record_item(
            &mut c,
            &BigDataItem {
                key: name.to_string(),
                data: data.to_vec(),
                digest: None,
            },
        );
        if c != before {
            w.records_mut().update(&id, |r| *r = c);
            w.save()?;
        }
        Ok(())
    }

    /// Removes a container's record, then its directories in the graph
    /// and run roots.
    pub(crate) fn delete(&self, w: &mut Writer<'_, Container>, id: &str) -> Result<()> {
        let dir = self.data_dir(id)?;
        w.records_mut().remove(id);
        w.save()?;
        remove_dir_if_exists(&dir)?;
        remove_dir_if_exists(&self.run_dir.join(id))
    }
}

fn record_item(c: &mut Container, item: &BigDataItem) {
    if !c.big_data_names.contains(&item.key) {
        c.big_data_names.push(item.key.clone());
    }
    c.big_data_sizes
        .insert(item.key.clone(), item.data.len() as i64);
    c.big_data_digests
        .insert(item.key.clone(), bigdata::sha256(&item.data));
}

/// Reads a container's big-data item.
pub(crate) fn big_data(store: &ContainerStore, c: &Container, key: &str) -> Result<Vec<u8>> {
    bigdata::read(&store.data_dir(&c.id)?, key)
}

/// The size of an item: recorded, else measured from its file.
pub(crate) fn big_data_size(store: &ContainerStore, c: &Container, key: &str) -> Result<i64> {
    if let Some(n) = c.big_data_sizes.get(key) {
        return Ok(*n);
    }
    Ok(big_data(store, c, key)?.len() as i64)
}

/// The digest of an item: recorded, else computed from its file (the
/// reference then tries to save it under a read lock and fails; strata
/// only reports it).
pub(crate) fn big_data_digest(store: &ContainerStore, c: &Container, key: &str) -> Result<String> {
    if let Some(d) = c.big_data_digests.get(key) {
        return Ok(d.clone());
    }
    Ok(bigdata::sha256(&big_data(store, c, key)?))
}
