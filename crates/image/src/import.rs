//! Importing an image into a store, recorded as skopeo 1.9 records it.
//!
//! In order (containers/image 5.23's `Commit`):
//!
//! 1. each layer, base first, under the ID [`crate::manifest::layer_ids`]
//!    gives it; a layer with that ID already in the store is used as it is;
//!    a new one streams once through the store's import path, and the
//!    pipeline's digests must match the blob and the config's diff ID
//!    before the layer counts as complete;
//! 2. the image record (ID = config digest hex) on the top layer, with its
//!    big data: `sha256:<config>` (the config), `manifest-<list digest>`
//!    (when the manifest came from an index blob), `manifest-<digest>` and
//!    `manifest` (the manifest), `signature-<hex>` (empty); metadata
//!    `{"signatures-sizes":{"<manifest digest>":[]}}`; `created` from the
//!    config; the names, normalised, put in front of any the image had.
//!
//! Nothing of the image is recorded before every layer is in; layers
//! fully imported and verified stay when a later one fails, as skopeo's do.

use std::io::{self, Read};

use crate::digest::{Digest, Hashing};
use crate::location::Location;
use crate::source::{Choice, Image, LayerBlob, Record, Source};
use crate::{Error, Result};

/// One big-data item of the image record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigData {
    /// Its key.
    pub key: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// The image record the import writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The image ID (the config digest's hex).
    pub id: String,
    /// The top layer (none for an image without layers).
    pub top_layer: Option<String>,
    /// Names to put in front of the image's names (moved from any other
    /// image that has them), normalised.
    pub names: Vec<String>,
    /// The image's digest: the index's when the manifest came from one,
    /// else the manifest's.
    pub digest: Digest,
    /// The metadata string.
    pub metadata: String,
    /// The config's `created` (RFC 3339), if any.
    pub created: Option<String>,
    /// Big data, in the order it is written.
    pub big_data: Vec<BigData>,
}

/// A new layer of an imported image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImageLayer {
    /// Its ID.
    pub id: String,
    /// Its parent's ID.
    pub parent: Option<String>,
}

/// What an import needs from a store. [`strata_store::Store`] implements
/// it; tests may give their own.
pub trait ImageTarget {
    /// Whether a complete layer with exactly this ID exists.
    fn has_layer(&self, id: &str) -> Result<bool>;
    /// Imports one layer stream; it must pass `check` before it counts as
    /// complete, else it is removed.
    fn put_layer(
        &self,
        layer: &NewImageLayer,
        diff: &mut (dyn Read + Send),
        check: &strata_store::LayerCheck<'_>,
    ) -> Result<()>;
    /// The top layer of the image with exactly this ID: `None` when there
    /// is no such image, `Some("")` for an image without layers.
    fn image_top_layer(&self, id: &str) -> Result<Option<String>>;
    /// Writes the image record: creates it, or, when `exists`, replaces its
    /// big data and metadata and adds the names.
    fn write_image(&self, record: &ImageRecord, exists: bool) -> Result<()>;
}

/// What happens during an import, for progress displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A layer starts: its position (0-based), count, ID and blob size.
    LayerStart {
        /// Position, base first.
        index: usize,
        /// How many layers the image has.
        count: usize,
        /// The layer ID.
        id: String,
        /// Bytes of the blob.
        size: u64,
    },
    /// Bytes of layer `index`'s blob read so far.
    LayerBytes {
        /// Position.
        index: usize,
        /// Bytes read.
        read: u64,
    },
    /// Layer `index` is in the store (`reused`: it was there already).
    LayerDone {
        /// Position.
        index: usize,
        /// Whether it was in the store before.
        reused: bool,
    },
    /// The image record is written.
    ImageDone {
        /// The image ID.
        id: String,
    },
}

/// A progress callback; it may be called from another thread.
pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// What [`import`] takes.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Names for the image (any docker reference form; normalised).
    pub names: Vec<String>,
    /// The image to take from an index.
    pub choice: Choice,
}

/// What [`import`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The image ID.
    pub id: String,
    /// The layer IDs, base first.
    pub layers: Vec<String>,
    /// How many layers were already in the store.
    pub reused: usize,
    /// The names given, normalised.
    pub names: Vec<String>,
}

/// Imports the image at `location` into `target`.
pub fn import(
    target: &dyn ImageTarget,
    location: &Location,
    opts: &ImportOptions,
    progress: ProgressFn<'_>,
) -> Result<Imported> {
    let names = opts
        .names
        .iter()
        .map(|n| crate::reference::normalize_name(n))
        .collect::<Result<Vec<_>>>()?;
    let (source, image) = Source::open(location, &opts.choice)?;
    let ids = image.layer_ids();
    let existing = target.image_top_layer(image.id())?;
    let top = ids.last().cloned();
    if let Some(t) = &existing {
        if Some(t.as_str()) != top.as_deref().or(Some("")) {
            return Err(Error::Select(format!(
                "image {} exists with top layer {t:?}, this one would have {:?}",
                image.id(),
                top.unwrap_or_default()
            )));
        }
    }
    let mut reused = 0;
    for (index, (layer, id)) in image.layers.iter().zip(&ids).enumerate() {
        progress(Progress::LayerStart {
            index,
            count: ids.len(),
            id: id.clone(),
            size: layer.blob.size,
        });
        let was_there = target.has_layer(id)?;
        if was_there {
            reused += 1;
        } else {
            let parent = index.checked_sub(1).map(|p| ids[p].clone());
            put_one(
                target,
                &source,
                layer,
                NewImageLayer {
                    id: id.clone(),
                    parent,
                },
                |read| progress(Progress::LayerBytes { index, read }),
            )?;
        }
        progress(Progress::LayerDone {
            index,
            reused: was_there,
        });
    }
    let record = image_record(&image, top, names.clone());
    target.write_image(&record, existing.is_some())?;
    progress(Progress::ImageDone {
        id: record.id.clone(),
    });
    Ok(Imported {
        id: record.id,
        layers: ids,
        reused,
        names,
    })
}

fn put_one(
    target: &dyn ImageTarget,
    source: &Source,
    layer: &LayerBlob,
    new: NewImageLayer,
    on_read: impl Fn(u64) + Send + Sync,
) -> Result<()> {
    let reader = source.open_layer(layer, Hashing::SizeOnly)?;
    let mut counted = Counting {
        inner: reader,
        read: 0,
        last: 0,
        on_read,
    };
    let verify =
        |r: &strata_store::ApplyReport| -> std::result::Result<(), strata_store::BoxError> {
            check_report(layer, r).map_err(|e| Box::new(e) as strata_store::BoxError)
        };
    let check = strata_store::LayerCheck {
        verify: &verify,
        record: match layer.record {
            Record::AsRead => strata_store::RecordInput::AsRead,
            Record::Uncompressed => strata_store::RecordInput::AsUncompressed,
        },
    };
    target
        .put_layer(&new, &mut counted, &check)
        .map_err(|e| match e {
            // Already about this blob.
            Error::Blob { .. } => e,
            e => Error::Layer {
                digest: layer.blob.digest.to_string(),
                source: Box::new(e),
            },
        })
}

/// Compares what the pipeline measured with the blob's descriptor and the
/// config's diff ID.
pub fn check_report(layer: &LayerBlob, r: &strata_store::ApplyReport) -> Result<()> {
    match layer.record {
        Record::AsRead => layer.blob.check(&r.compressed_digest, r.compressed_size)?,
        Record::Uncompressed => layer
            .blob
            .check(&r.uncompressed_digest, r.uncompressed_size)?,
    }
    if r.uncompressed_digest != layer.diff_id.as_str() {
        return Err(Error::Blob {
            what: "layer",
            digest: layer.blob.digest.to_string(),
            reason: format!(
                "uncompressed, it has digest {}; the config's diff ID is {}",
                r.uncompressed_digest, layer.diff_id
            ),
        });
    }
    Ok(())
}

/// The record skopeo's `Commit` leaves for `image`.
pub fn image_record(image: &Image, top_layer: Option<String>, names: Vec<String>) -> ImageRecord {
    let m = &image.manifest.digest;
    let mut big_data = vec![BigData {
        key: image.config.digest.to_string(),
        data: image.config.bytes.clone(),
    }];
    if let Some(list) = &image.list {
        big_data.push(BigData {
            key: format!("manifest-{}", list.digest),
            data: list.bytes.clone(),
        });
    }
    big_data.push(BigData {
        key: format!("manifest-{m}"),
        data: image.manifest.bytes.clone(),
    });
    big_data.push(BigData {
        key: "manifest".into(),
        data: image.manifest.bytes.clone(),
    });
    big_data.push(BigData {
        key: format!("signature-{}", m.hex()),
        data: Vec::new(),
    });
    ImageRecord {
        id: image.id().to_string(),
        top_layer,
        names,
        digest: image.list.as_ref().map_or(m, |l| &l.digest).clone(),
        metadata: format!(r#"{{"signatures-sizes":{{"{m}":[]}}}}"#),
        created: image.created.clone(),
        big_data,
    }
}

/// Counts the bytes read and reports them, at most every 1 MiB.
struct Counting<R, F> {
    inner: R,
    read: u64,
    last: u64,
    on_read: F,
}

impl<R: Read, F: Fn(u64)> Read for Counting<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read - self.last >= 1 << 20 || (n == 0 && self.read != self.last) {
            self.last = self.read;
            (self.on_read)(self.read);
        }
        Ok(n)
    }
}
