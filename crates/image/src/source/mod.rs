//! Reading an image from `oci:`, `oci-archive:` or `docker-archive:`.
//!
//! [`Source::open`] reads and verifies the small documents (index,
//! manifest, config) and describes the layers; [`Source::open_layer`] then
//! streams one layer blob, checked against its descriptor as it is read.

pub mod docker;
mod files;
mod layout;

use std::io::Read;

use crate::digest::{Checked, Digest, Expected, Hashing};
use crate::location::Location;
use crate::platform::Platform;
use crate::Result;
use files::{Files, TarIndex};

/// A small document of the image, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its bytes, exactly.
    pub bytes: Vec<u8>,
}

/// One layer of the image and where its blob is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// The blob as its descriptor gives it. For a docker-archive that is
    /// the diff ID and uncompressed size (what the synthesised manifest
    /// says).
    pub blob: Expected,
    /// Digest of the uncompressed layer (from the config).
    pub diff_id: Digest,
    /// The descriptor's media type.
    pub media_type: String,
    /// The file or member that holds it.
    pub(crate) file: String,
    /// Where the stored layer's compressed digest, size and compression
    /// come from.
    pub record: Record,
}

/// How a layer's compressed fields are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// As read: the blob is what was imported (registry-style sources).
    AsRead,
    /// As the uncompressed tar: a docker-archive source hands containers/image
    /// the decompressed stream, so skopeo records the layer as uncompressed.
    Uncompressed,
}

/// The image chosen from a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The image's manifest (for a docker-archive, the schema 2 manifest
    /// skopeo synthesises for it).
    pub manifest: Document,
    /// The index the manifest was chosen from, when it came from one that
    /// is itself a blob.
    pub list: Option<Document>,
    /// The config.
    pub config: Document,
    /// The layers, base first.
    pub layers: Vec<LayerBlob>,
    /// The config's `created`, formatted as containers/storage stores it.
    pub created: Option<String>,
}

impl Image {
    /// The image ID containers/image gives it: the config digest's hex.
    pub fn id(&self) -> &str {
        self.config.digest.hex()
    }

    /// The layer IDs containers/image gives the layers, base first.
    pub fn layer_ids(&self) -> Vec<String> {
        let diff_ids: Vec<Digest> = self.layers.iter().map(|l| l.diff_id.clone()).collect();
        crate::manifest::layer_ids(&diff_ids)
    }
}

/// What to choose when a source has several images.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    /// The platform wanted from an index.
    pub platform: Option<Platform>,
}

/// An opened image source.
pub struct Source {
    files: Files,
}

impl Source {
    /// Opens `location`, chooses the image and reads its documents.
    pub fn open(location: &Location, choice: &Choice) -> Result<(Source, Image)> {
        match location {
            Location::Oci { dir, reference } => {
                let files = Files::Dir(dir.clone());
                let image = layout::read(&files, reference.as_deref(), choice)?;
                Ok((Source { files }, image))
            }
            Location::OciArchive { file, reference } => {
                let files = Files::Archive(TarIndex::build(file)?);
                let image = layout::read(&files, reference.as_deref(), choice)?;
                Ok((Source { files }, image))
            }
            Location::DockerArchive { file, reference } => {
                let files = Files::Archive(TarIndex::build(file)?);
                let image = docker::read(&files, reference.as_ref())?;
                Ok((Source { files }, image))
            }
        }
    }

    /// Streams a layer blob. It fails as soon as more bytes come than the
    /// descriptor gives, and at the end when fewer came or (with
    /// [`Hashing::Verify`]) the digest differs. A docker-archive layer is
    /// checked by its consumer (its descriptor describes the uncompressed
    /// tar, which the member may not be).
    pub fn open_layer(&self, layer: &LayerBlob, hashing: Hashing) -> Result<Box<dyn Read + Send>> {
        let opened = self.files.open(&layer.file)?;
        Ok(match layer.record {
            Record::AsRead => Box::new(Checked::new(opened.reader, layer.blob.clone(), hashing)),
            Record::Uncompressed => opened.reader,
        })
    }

    /// Writes layer `layer` uncompressed to `out` (for converting an image
    /// to another format); the blob is checked as it streams.
    pub fn write_layer_tar(&self, layer: &LayerBlob, out: &mut dyn std::io::Write) -> Result<()> {
        let ctx = || format!("reading layer {}", layer.blob.digest);
        let mut reader = self.open_layer(layer, Hashing::Verify)?;
        let mut prefix = [0u8; 6];
        let mut n = 0;
        while n < prefix.len() {
            match reader.read(&mut prefix[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => return Err(crate::digest::unwrap_io(e, ctx())),
            }
        }
        let kind = strata_archive::Compression::detect(&prefix[..n]);
        let chained = std::io::Cursor::new(prefix[..n].to_vec()).chain(reader);
        let mut dec =
            strata_archive::compression::decoder(kind, Box::new(chained)).map_err(|e| {
                crate::Error::Archive {
                    context: ctx(),
                    source: e,
                }
            })?;
        std::io::copy(&mut dec, out).map_err(|e| {
            // The check's own error, when that is what stopped the copy.
            match strata_archive::compression::unwrap_error(e, "decompressing") {
                strata_archive::Error::Io { source, .. } => crate::digest::unwrap_io(source, ctx()),
                other => crate::Error::Archive {
                    context: ctx(),
                    source: other,
                },
            }
        })?;
        Ok(())
    }

    /// Where the source is, for messages.
    pub fn describe(&self) -> String {
        self.files.describe()
    }
}
