//! Writing an image to `oci:DIR[:REF]`, `oci-archive:FILE[:REF]` or
//! `docker-archive:FILE[:NAME]`.
//!
//! Layers arrive as uncompressed tars (from a store: the tar-split replay,
//! the imported bytes exactly) and are checked against the config's diff
//! IDs as they stream. For OCI they are compressed (gzip by default) and
//! described by a new OCI manifest; a docker-archive holds them
//! uncompressed under `<diff ID hex>.tar` with `manifest.json`, as
//! `docker save` and skopeo write it. The config is written byte for byte.

mod out;

use std::io::Write;

use serde::Serialize;
use strata_archive::compression::Encoder;

use crate::digest::Digest;
use crate::location::{ArchiveRef, Location};
use crate::manifest::{parse_config, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use crate::{Error, Result};
use out::{Hashing, Out};

/// Layer compression of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    /// gzip (the OCI default).
    Gzip,
    /// zstd.
    Zstd,
    /// Plain tar (the docker-archive form).
    None,
}

impl Compress {
    /// Parses `gzip`, `zstd` or `none`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "gzip" => Ok(Compress::Gzip),
            "zstd" => Ok(Compress::Zstd),
            "none" => Ok(Compress::None),
            o => Err(Error::Location {
                input: o.to_string(),
                reason: "compression is gzip, zstd or none".into(),
            }),
        }
    }

    /// The compression it writes.
    fn kind(self) -> strata_archive::Compression {
        match self {
            Compress::Gzip => strata_archive::Compression::Gzip,
            Compress::Zstd => strata_archive::Compression::Zstd,
            Compress::None => strata_archive::Compression::None,
        }
    }

    fn oci_layer_type(self) -> &'static str {
        match self {
            Compress::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compress::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compress::None => "application/vnd.oci.image.layer.v1.tar",
        }
    }
}

/// Writes the uncompressed tar of layer `index` (base first) to `out`.
pub type LayerWriter<'a> = dyn FnMut(usize, &mut dyn Write) -> Result<()> + 'a;

/// What is exported.
#[derive(Debug, Clone)]
pub struct ExportImage {
    /// The config, byte for byte; its `rootfs.diff_ids` give the layers.
    pub config: Vec<u8>,
}

/// An image as a store keeps it, for export.
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// The config, byte for byte.
    pub config: Vec<u8>,
    /// Its layers, base first.
    pub layers: Vec<String>,
}

/// What an export needs from a store. [`strata_store::Store`] implements it.
pub trait ExportStore {
    /// The image with this ID or name: its config (the big-data item the
    /// manifest's config digest names) and its layer chain.
    fn image_for_export(&self, key: &str) -> Result<StoredImage>;
    /// Writes a layer's uncompressed tar (its diff against its parent).
    fn layer_tar(&self, id: &str, out: &mut dyn Write) -> Result<()>;
}

/// Exports the image `key` of `store` to `dest`.
pub fn export_from_store(
    store: &dyn ExportStore,
    key: &str,
    dest: &Location,
    compress: Option<Compress>,
) -> Result<Exported> {
    let stored = store.image_for_export(key)?;
    let diff_ids = parse_config(&stored.config, key)?.diff_ids;
    if diff_ids.len() != stored.layers.len() {
        return Err(Error::document(
            "config",
            key,
            format!(
                "rootfs.diff_ids has {} entries, the image has {} layers",
                diff_ids.len(),
                stored.layers.len()
            ),
        ));
    }
    let mut layers = |i: usize, out: &mut dyn Write| store.layer_tar(&stored.layers[i], out);
    export(
        &ExportImage {
            config: stored.config.clone(),
        },
        &mut layers,
        dest,
        compress,
    )
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The digest of the manifest written (of `manifest.json` for a
    /// docker-archive).
    pub manifest: Digest,
    /// The layer blobs' digests, base first.
    pub layers: Vec<Digest>,
}

/// Writes `image` to `dest`; `compress` defaults to gzip for OCI and must
/// be none (or unset) for a docker-archive.
pub fn export(
    image: &ExportImage,
    layers: &mut LayerWriter<'_>,
    dest: &Location,
    compress: Option<Compress>,
) -> Result<Exported> {
    let config = parse_config(&image.config, "of the image")?;
    // Both OCI forms write the same blobs; a layout directory also keeps
    // the other refs of its index.json.
    let mut oci = |mut out: Out, reference: &Option<String>, index: Option<Vec<u8>>| {
        let done = write_oci(
            &mut out,
            image,
            &config.diff_ids,
            layers,
            compress,
            reference.as_deref(),
            index,
        )?;
        out.finish()?;
        Ok(done)
    };
    match dest {
        Location::Oci { dir, reference } => {
            std::fs::create_dir_all(dir.join("blobs/sha256"))
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            let index = std::fs::read(dir.join("index.json")).ok();
            oci(Out::Dir(dir.clone()), reference, index)
        }
        Location::OciArchive { file, reference } => oci(Out::tar(file)?, reference, None),
        Location::DockerArchive { file, reference } => {
            if compress.is_some_and(|c| c != Compress::None) {
                return Err(Error::Unsupported(
                    "compressed layers in a docker-archive (its layers are plain tars)".into(),
                ));
            }
            let tags = match reference {
                None => Vec::new(),
                Some(ArchiveRef::Name(n)) => vec![n.clone()],
                Some(ArchiveRef::Index(_)) => {
                    return Err(Error::Location {
                        input: file.display().to_string(),
                        reason: "an export destination takes a name, not @N".into(),
                    })
                }
            };
            let mut out = Out::tar(file)?;
            let done = write_docker(&mut out, image, &config.diff_ids, layers, tags)?;
            out.finish()?;
            Ok(done)
        }
    }
}

/// The gzip level of exported layers. skopeo (pgzip at its default level)
/// wrote the bench's two-layer image (minbase + layer2) in 386 MB, zlib's
/// level 6 in 378 MB and level 4 in 382 MB, with a core compressing
/// layer2.tar at 91 MB/s instead of 66 (zlib-rs).
const GZIP_LEVEL: u32 = 4;

/// Plain chunks in flight to the compressing thread.
const COMPRESS_SLOTS: usize = 8;
/// Plain bytes per chunk handed to the compressing thread.
const COMPRESS_CHUNK: usize = 256 * 1024;

/// Streams layer `index` into `out`, compressed, checking its diff ID.
fn write_layer(
    layers: &mut LayerWriter<'_>,
    index: usize,
    diff_id: &Digest,
    compress: Compress,
    out: &mut dyn Write,
) -> Result<()> {
    let written = if compress == Compress::None {
        let mut plain = Hashing::new(&mut *out);
        layers(index, &mut plain)?;
        let (_, written) = plain.finish();
        out.flush().map_err(|e| Error::io("writing layer", e))?;
        written
    } else {
        compress_layer(layers, index, compress, out)?
    };
    if written.digest != *diff_id {
        return Err(Error::Blob {
            what: "layer",
            digest: diff_id.to_string(),
            reason: format!("the stored layer's tar has digest {}", written.digest),
        });
    }
    Ok(())
}

/// Makes layer `index`'s tar on this thread and compresses it into `out`
/// on a thread of its own, so that reading the layer's files (from the
/// disk, when they are not cached) and compressing them overlap. Gives
/// back the plain tar's digest and size.
fn compress_layer(
    layers: &mut LayerWriter<'_>,
    index: usize,
    compress: Compress,
    out: &mut dyn Write,
) -> Result<out::Written> {
    let (plain_tx, plain_rx) = crossbeam_channel::bounded::<Vec<u8>>(COMPRESS_SLOTS);
    // Unbounded, so the compressor never waits for this thread, which
    // takes what is ready at every chunk it hands over: what waits here is
    // at most the compressed form of the chunks in flight.
    let (packed_tx, packed_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    std::thread::scope(|s| {
        let encoder = std::thread::Builder::new()
            .name("strata-compress".into())
            .spawn_scoped(s, move || -> std::io::Result<()> {
                let mut enc = Encoder::new(compress.kind(), Packed(packed_tx), GZIP_LEVEL)
                    .map_err(std::io::Error::other)?;
                for chunk in plain_rx {
                    enc.write_all(&chunk)?;
                }
                enc.finish().map(drop)
            })
            .map_err(|e| Error::io("starting the compressing thread", e))?;
        let mut feed = Feed {
            tx: Some(plain_tx),
            chunk: Vec::with_capacity(COMPRESS_CHUNK),
            packed: &packed_rx,
            out,
        };
        let mut plain = Hashing::new(&mut feed);
        let made = layers(index, &mut plain);
        let (_, written) = plain.finish();
        // Sends what is left.
        let fed = made.and_then(|()| feed.send().map_err(|e| Error::io("writing layer", e)));
        // Ends the compressor's input, also after an error.
        feed.tx = None;
        let drained = feed.drain(true);
        let encoded = encoder
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the compressing thread panicked")));
        // The compressor's failure is the cause of any broken pipe above.
        encoded.map_err(|e| Error::io("compressing layer", e))?;
        fed?;
        drained.map_err(|e| Error::io("writing layer", e))?;
        Ok(written)
    })
}

/// The plain tar's way to the compressing thread, in chunks; hands on what
/// comes back compressed whenever it passes a chunk.
struct Feed<'a, 'o> {
    tx: Option<crossbeam_channel::Sender<Vec<u8>>>,
    chunk: Vec<u8>,
    packed: &'a crossbeam_channel::Receiver<Vec<u8>>,
    out: &'o mut dyn Write,
}

impl Feed<'_, '_> {
    fn send(&mut self) -> std::io::Result<()> {
        self.drain(false)?;
        if self.chunk.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(COMPRESS_CHUNK));
        match &self.tx {
            Some(tx) if tx.send(full).is_ok() => Ok(()),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the compressing thread stopped",
            )),
        }
    }

    /// Writes out what the compressor gave back: what is ready, or (`all`)
    /// everything until it ends.
    fn drain(&mut self, all: bool) -> std::io::Result<()> {
        loop {
            let next = if all {
                self.packed.recv().ok()
            } else {
                self.packed.try_recv().ok()
            };
            match next {
                Some(b) => self.out.write_all(&b)?,
                None => return self.out.flush(),
            }
        }
    }
}

impl Write for Feed<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(COMPRESS_CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == COMPRESS_CHUNK {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Compressed bytes on their way back from the compressing thread.
struct Packed(crossbeam_channel::Sender<Vec<u8>>);

impl Write for Packed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.send(buf.to_vec()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the layer's writer stopped")
        })?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

fn write_oci(
    out: &mut Out,
    image: &ExportImage,
    diff_ids: &[Digest],
    layers: &mut LayerWriter<'_>,
    compress: Option<Compress>,
    reference: Option<&str>,
    old_index: Option<Vec<u8>>,
) -> Result<Exported> {
    let compress = compress.unwrap_or(Compress::Gzip);
    let blob_name = |d: &Digest| d.blob_path();
    let mut descs = Vec::new();
    for (i, diff_id) in diff_ids.iter().enumerate() {
        let w = out.blob(blob_name, |o| write_layer(layers, i, diff_id, compress, o))?;
        descs.push(Descriptor {
            media_type: compress.oci_layer_type().into(),
            digest: w.digest.to_string(),
            size: w.size,
            annotations: None,
        });
    }
    let cd = Digest::of(&image.config);
    out.file(&cd.blob_path(), &image.config)?;
    let m = Manifest {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        config: Descriptor {
            media_type: OCI_CONFIG.into(),
            digest: cd.to_string(),
            size: image.config.len() as u64,
            annotations: None,
        },
        layers: descs,
    };
    let mbytes = serde_json::to_vec(&m).map_err(|e| Error::document("manifest", "new", e))?;
    let md = Digest::of(&mbytes);
    out.file(&md.blob_path(), &mbytes)?;
    let mut entry = serde_json::json!({
        "mediaType": OCI_MANIFEST, "digest": md.to_string(), "size": mbytes.len(),
    });
    if let Some(r) = reference {
        entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": r});
    }
    let mut entries: Vec<serde_json::Value> = old_index
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("manifests").and_then(|m| m.as_array()).cloned())
        .unwrap_or_default();
    if let Some(r) = reference {
        entries
            .retain(|e| e["annotations"]["org.opencontainers.image.ref.name"].as_str() != Some(r));
    }
    entries.push(entry);
    let index =
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
    out.file("oci-layout", br#"{"imageLayoutVersion": "1.0.0"}"#)?;
    out.file(
        "index.json",
        &serde_json::to_vec(&index).map_err(|e| Error::document("index", "new", e))?,
    )?;
    Ok(Exported {
        manifest: md,
        layers: m
            .layers
            .iter()
            .map(|d| Digest::parse(&d.digest))
            .collect::<Result<_>>()?,
    })
}

fn write_docker(
    out: &mut Out,
    image: &ExportImage,
    diff_ids: &[Digest],
    layers: &mut LayerWriter<'_>,
    tags: Vec<String>,
) -> Result<Exported> {
    let mut names = Vec::new();
    for (i, diff_id) in diff_ids.iter().enumerate() {
        let name = format!("{}.tar", diff_id.hex());
        // The same layer twice in one image is one member.
        if !names.contains(&name) {
            let fixed = name.clone();
            out.blob(
                move |_| fixed.clone(),
                |o| write_layer(layers, i, diff_id, Compress::None, o),
            )?;
        }
        names.push(name);
    }
    let cd = Digest::of(&image.config);
    let config_name = format!("{}.json", cd.hex());
    out.file(&config_name, &image.config)?;
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": tags, "Layers": names}]);
    let bytes =
        serde_json::to_vec(&manifest).map_err(|e| Error::document("manifest.json", "new", e))?;
    out.file("manifest.json", &bytes)?;
    Ok(Exported {
        manifest: Digest::of(&bytes),
        layers: diff_ids.to_vec(),
    })
}
