//! The image store: `<graph>/<driver>-images/images.json` behind
//! `images.lock`, and each image's big data in a directory of its own.
//!
//! ```text
//! <graph>/<driver>-images/images.json  images.lock
//!                         <image ID>/<file name of a big-data key>
//!                         <image ID>/userdata/   (later releases: the image's
//!                                                 own files, never big data)
//! ```
//!
//! What one image store does alone lives here (records, names and their
//! history, metadata, big data and digests); what involves layers or
//! containers (creating on a top layer, deleting with the layers only the
//! image used, refusing while a container uses it) is in [`ops`], on the
//! [`Store`](crate::Store).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::bigdata;
use crate::files::{remove_dir_if_exists, Persist};
use crate::record::{dedup_names, format_time_keeping_offset, now, validate_id, Kind};
use crate::recordfile::{Location, Mode, Reader, RecordFile, Records, Writer};
use crate::{Error, Result};

pub(crate) mod ops;
mod record;

pub use record::{Image, MANIFEST_PREFIX};

/// One big-data item given with a new record.
#[derive(Debug, Clone, Default)]
pub struct BigDataItem {
    /// The key (`manifest`, `sha256:<config digest>`, …).
    pub key: String,
    /// The bytes.
    pub data: Vec<u8>,
    /// Its digest; by default the sha256 of the bytes. Engines give the
    /// digest of a signed schema-1 manifest without its signatures here.
    pub digest: Option<String>,
}

/// What a new image is made of; everything is written in one save.
#[derive(Debug, Clone, Default)]
pub struct NewImage {
    /// ID to use; a random one when `None`.
    pub id: Option<String>,
    /// Top layer (ID or name); none for an image without layers.
    pub top_layer: Option<String>,
    /// Names, which must not be used by another image.
    pub names: Vec<String>,
    /// Metadata.
    pub metadata: String,
    /// The image's digest (`sha256:…`).
    pub digest: Option<String>,
    /// Creation time; now when `None`. Its UTC offset is kept.
    pub created: Option<time::OffsetDateTime>,
    /// Big data to store with the image.
    pub big_data: Vec<BigDataItem>,
    /// Earlier names, newest first.
    pub names_history: Vec<String>,
    /// Flags.
    pub flags: BTreeMap<String, Value>,
}

/// How a name list changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameOp {
    /// The given names replace the old ones.
    Set,
    /// The given names go in front of the old ones (the library's
    /// `AddNames`, as image pullers use it).
    Add,
    /// The given names go after the old ones (the CLI's `add-names`).
    Append,
    /// The given names are removed.
    Remove,
}

/// The names a record ends up with: repeats dropped, first one kept.
pub(crate) fn new_names(old: &[String], given: &[String], op: NameOp) -> Vec<String> {
    let list: Vec<String> = match op {
        NameOp::Set => given.to_vec(),
        NameOp::Add => given.iter().chain(old).cloned().collect(),
        NameOp::Append => old.iter().chain(given).cloned().collect(),
        NameOp::Remove => old.iter().filter(|n| !given.contains(n)).cloned().collect(),
    };
    dedup_names(&list)
}

/// The images of one store (the store's own, or an additional read-only
/// one).
#[derive(Debug)]
pub struct ImageStore {
    records: RecordFile<Image>,
    dir: PathBuf,
    persist: Persist,
}

impl ImageStore {
    /// Opens `<graph>/<driver>-images` (creating its lock file).
    pub(crate) fn open(dir: PathBuf, persist: Persist, mode: Mode) -> Result<Self> {
        let records = RecordFile::open(Location {
            path: dir.join("images.json"),
            volatile: None,
            lock: dir.join("images.lock"),
            persist,
            mode,
        })?;
        Ok(Self {
            records,
            dir,
            persist,
        })
    }

    /// The record file.
    pub fn records(&self) -> &RecordFile<Image> {
        &self.records
    }

    /// `<graph>/<driver>-images`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this is an additional, read-only store.
    pub fn is_read_only(&self) -> bool {
        self.records.is_read_only()
    }

    /// The directory of an image's big data.
    pub fn data_dir(&self, id: &str) -> Result<PathBuf> {
        validate_id(Kind::Image, id)?;
        Ok(self.dir.join(id))
    }

    /// The subdirectories of `<driver>-images` (data directories, with or
    /// without a record).
    pub fn data_dirs(&self) -> Result<Vec<String>> {
        bigdata::data_dirs(&self.dir)
    }

    /// The records under a shared lock, marked read-only when this store is.
    pub(crate) fn read(&self) -> Result<Reader<Image>> {
        self.records.read()
    }

    /// The records under an exclusive lock.
    pub(crate) fn write(&self) -> Result<Writer<'_, Image>> {
        self.records.write()
    }

    /// Adds a record on top layer `top` (already resolved to an ID), with
    /// its big data, in one save.
    pub(crate) fn create(
        &self,
        w: &mut Writer<'_, Image>,
        req: &NewImage,
        top: String,
    ) -> Result<Image> {
        let id = w.new_id(req.id.as_deref())?;
        let names = dedup_names(&req.names);
        w.check_free_names(&names)?;
        let mut image = Image {
            id: id.clone(),
            digest: req.digest.clone().unwrap_or_default(),
            names,
            names_history: req.names_history.clone(),
            top_layer: top,
            metadata: req.metadata.clone(),
            created: req
                .created
                .map(format_time_keeping_offset)
                .unwrap_or_else(now),
            flags: req.flags.clone(),
            ..Default::default()
        };
        image
            .recompute_digests()
            .map_err(|e| Error::Invalid(format!("validating digests for new image: {e}")))?;
        let dir = self.data_dir(&id)?;
        // Data left by a writer that died before saving its record.
        remove_dir_if_exists(&dir)?;
        let res = (|| {
            for item in &req.big_data {
                bigdata::write(&dir, &item.key, &item.data, self.persist)?;
                record_item(&mut image, item)?;
            }
            w.records_mut().push(image.clone());
            w.save()
        })();
        if let Err(e) = res {
            if let Err(c) = remove_dir_if_exists(&dir) {
                tracing::warn!("cleaning up after failed image {id}: {c}");
            }
            return Err(e);
        }
        Ok(image)
    }

    /// Changes an image's names (taking them from other images) and
    /// records them in its history.
    pub(crate) fn set_names(
        &self,
        w: &mut Writer<'_, Image>,
        id: &str,
        names: &[String],
        op: NameOp,
    ) -> Result<()> {
        let old = w.get(id)?.names.clone();
        let result = new_names(&old, names, op);
        let recs = w.records_mut();
        recs.assign_names(id, &result)?;
        recs.update(id, |img| {
            for n in &result {
                img.names_history.retain(|h| h != n);
                img.names_history.insert(0, n.clone());
            }
        });
        w.save()
    }

    /// Stores a big-data item and records its size and digest; the record
    /// is saved only when something in it changed.
    pub(crate) fn set_big_data(
        &self,
        w: &mut Writer<'_, Image>,
        id: &str,
        item: &BigDataItem,
    ) -> Result<()> {
        let id = w.get(id)?.id.clone();
        bigdata::write(&self.data_dir(&id)?, &item.key, &item.data, self.persist)?;
        let mut image = w.get(&id)?.clone();
        let before = image.clone();
        record_item(&mut image, item)?;
        if image != before {
            w.records_mut().update(&id, |r| *r = image);
            w.save()?;
        }
        Ok(())
    }

    /// Removes an image's record and then its directory.
    pub(crate) fn delete(&self, w: &mut Writer<'_, Image>, id: &str) -> Result<()> {
        let dir = self.data_dir(id)?;
        w.records_mut().remove(id);
        w.save()?;
        remove_dir_if_exists(&dir)
    }
}

/// Records a written item's key, size and digest in `image`.
fn record_item(image: &mut Image, item: &BigDataItem) -> Result<()> {
    let digest = item
        .digest
        .clone()
        .unwrap_or_else(|| bigdata::sha256(&item.data));
    if !image.big_data_names.contains(&item.key) {
        image.big_data_names.push(item.key.clone());
    }
    image
        .big_data_sizes
        .insert(item.key.clone(), item.data.len() as i64);
    image.big_data_digests.insert(item.key.clone(), digest);
    image
        .recompute_digests()
        .map_err(|e| Error::Invalid(format!("computing digests for image {:?}: {e}", image.id)))
}

/// Reads an image's big-data item.
pub(crate) fn big_data(store: &ImageStore, image: &Image, key: &str) -> Result<Vec<u8>> {
    bigdata::read(&store.data_dir(&image.id)?, key)
}

/// The size of an item: recorded, else the file's length.
pub(crate) fn big_data_size(store: &ImageStore, image: &Image, key: &str) -> Result<i64> {
    if let Some(n) = image.big_data_sizes.get(key) {
        return Ok(*n);
    }
    let p = bigdata::path(&store.data_dir(&image.id)?, key)?;
    match std::fs::metadata(&p) {
        Ok(m) => Ok(m.len() as i64),
        Err(_) => Err(Error::SizeUnknown {
            kind: Kind::Image,
            id: image.id.clone(),
            name: key.to_string(),
        }),
    }
}

/// The recorded digest of an item (images never compute a missing one).
pub(crate) fn big_data_digest(image: &Image, key: &str) -> Result<String> {
    image
        .big_data_digests
        .get(key)
        .cloned()
        .ok_or_else(|| Error::DigestUnknown {
            kind: Kind::Image,
            id: image.id.clone(),
            name: key.to_string(),
        })
}

/// Images whose digests include `digest`.
pub(crate) fn by_digest<'a>(
    records: &'a Records<Image>,
    digest: &'a str,
) -> impl Iterator<Item = &'a Image> {
    records
        .list()
        .iter()
        .filter(move |i| i.digests.iter().any(|d| d == digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_operations() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let old = s(&["a", "b"]);
        assert_eq!(
            new_names(&old, &s(&["c", "a"]), NameOp::Set),
            s(&["c", "a"])
        );
        assert_eq!(
            new_names(&old, &s(&["c", "a"]), NameOp::Add),
            s(&["c", "a", "b"])
        );
        assert_eq!(new_names(&old, &s(&["a"]), NameOp::Remove), s(&["b"]));
        assert_eq!(new_names(&[], &s(&["x", "x"]), NameOp::Set), s(&["x"]));
    }
}
