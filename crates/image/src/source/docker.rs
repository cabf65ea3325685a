//! The `docker save` archive:
//!
//! ```text
//! manifest.json   [{"Config":"<hex>.json","RepoTags":["name:tag"],"Layers":["<hex>.tar", …]}]
//! <hex>.json      the image config (its sha256 is the image ID)
//! <hex>.tar       a layer (plain, or compressed by some writers); older
//! <id>/layer.tar  archives use these, often as symlinks to each other
//! repositories    legacy tag list (not read)
//! ```
//!
//! It has no registry manifest; skopeo synthesises a schema 2 one whose
//! layer descriptors are the diff IDs and uncompressed sizes, and stores
//! that. [`synthesised_manifest`] writes the same bytes.

use std::collections::HashMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

use super::files::Files;
use super::{Document, Image, LayerBlob, Record};
use crate::digest::{read_document, Digest, Expected, ARCHIVE_MANIFEST_MAX, DOCUMENT_MAX};
use crate::location::ArchiveRef;
use crate::manifest::{parse_config, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST};
use crate::reference::Reference;
use crate::{Error, Result};

/// One item of `manifest.json`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ArchiveItem {
    /// The config member.
    #[serde(rename = "Config")]
    pub config: String,
    /// Names.
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Vec<String>,
    /// The layer members, base first.
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

/// Reads the chosen image of a docker-archive.
pub(crate) fn read(files: &Files, reference: Option<&ArchiveRef>) -> Result<Image> {
    let opened = files.open("manifest.json")?;
    let bytes = read_document(
        opened.reader,
        "manifest.json",
        "manifest.json",
        ARCHIVE_MANIFEST_MAX,
    )?;
    let items: Vec<ArchiveItem> = serde_json::from_slice(&bytes)
        .map_err(|e| Error::document("manifest.json", files.describe(), e))?;
    let item = choose(&items, reference, &files.describe())?;

    let opened = files.open(&item.config)?;
    let config_bytes = read_document(opened.reader, "config", &item.config, DOCUMENT_MAX)?;
    let config = parse_config(&config_bytes, &item.config)?;
    let config_digest = Digest::of(&config_bytes);
    if config.diff_ids.len() != item.layers.len() {
        return Err(Error::document(
            "config",
            &item.config,
            format!(
                "rootfs.diff_ids has {} entries, manifest.json lists {} layers",
                config.diff_ids.len(),
                item.layers.len()
            ),
        ));
    }
    // A diff ID that repeats is the same layer (docker save links the
    // copies); its first member serves all of them.
    let mut first: HashMap<&Digest, &str> = HashMap::new();
    let mut sizes: HashMap<String, u64> = HashMap::new();
    let mut layers = Vec::with_capacity(item.layers.len());
    for (member, diff_id) in item.layers.iter().zip(&config.diff_ids) {
        let member: &str = first.entry(diff_id).or_insert(member.as_str());
        let size = match sizes.get(member) {
            Some(s) => *s,
            None => {
                let s = uncompressed_size(files, member)?;
                sizes.insert(member.to_string(), s);
                s
            }
        };
        layers.push(LayerBlob {
            blob: Expected {
                what: "layer",
                digest: diff_id.clone(),
                size,
            },
            diff_id: diff_id.clone(),
            media_type: DOCKER_LAYER.to_string(),
            file: member.to_string(),
            record: Record::Uncompressed,
        });
    }
    let manifest = synthesised_manifest(&config_digest, config_bytes.len() as u64, &layers)?;
    Ok(Image {
        manifest: Document {
            digest: Digest::of(&manifest),
            media_type: DOCKER_MANIFEST.to_string(),
            bytes: manifest,
        },
        list: None,
        config: Document {
            digest: config_digest,
            media_type: DOCKER_CONFIG.to_string(),
            bytes: config_bytes,
        },
        layers,
        created: config.created,
    })
}

fn choose<'a>(
    items: &'a [ArchiveItem],
    reference: Option<&ArchiveRef>,
    source: &str,
) -> Result<&'a ArchiveItem> {
    match reference {
        None => match items {
            [one] => Ok(one),
            _ => Err(Error::Select(format!(
                "{source}: manifest.json has {} images; choose one with docker-archive:FILE:NAME or :@N",
                items.len()
            ))),
        },
        Some(ArchiveRef::Index(n)) => items.get(*n).ok_or_else(|| {
            Error::Select(format!(
                "{source}: no image @{n}, manifest.json has {}",
                items.len()
            ))
        }),
        Some(ArchiveRef::Name(name)) => {
            for item in items {
                for tag in &item.repo_tags {
                    let parsed = Reference::parse_normalized(tag).map_err(|e| {
                        Error::document("manifest.json", source, format!("tag {tag:?}: {e}"))
                    })?;
                    if parsed.to_string() == *name {
                        return Ok(item);
                    }
                }
            }
            Err(Error::Select(format!("{source}: no image tagged {name}")))
        }
    }
}

/// The uncompressed size of a layer member: its size when it is a plain
/// tar, else the length of its decompressed stream (read once more, as
/// skopeo does, since the synthesised manifest needs it up front).
fn uncompressed_size(files: &Files, member: &str) -> Result<u64> {
    let opened = files.open(member)?;
    let mut reader = opened.reader;
    let mut prefix = [0u8; 6];
    let n = read_prefix(&mut reader, &mut prefix, member)?;
    let kind = strata_archive::Compression::detect(&prefix[..n]);
    if kind == strata_archive::Compression::None {
        return Ok(opened.size);
    }
    let chained = std::io::Cursor::new(prefix[..n].to_vec()).chain(reader);
    let mut dec = strata_archive::compression::decoder(kind, Box::new(chained)).map_err(|e| {
        Error::Archive {
            context: format!("decompressing layer {member}"),
            source: e,
        }
    })?;
    std::io::copy(&mut dec, &mut std::io::sink()).map_err(|e| Error::Archive {
        context: format!("decompressing layer {member}"),
        source: strata_archive::compression::unwrap_error(e, "decompressing"),
    })
}

fn read_prefix(r: &mut dyn Read, buf: &mut [u8], member: &str) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(format!("reading layer {member}"), e)),
        }
    }
    Ok(n)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Schema2<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'a str,
    size: u64,
    digest: &'a str,
}

/// The schema 2 manifest skopeo 1.9 synthesises for a docker-archive image,
/// byte for byte: compact JSON, fields in this order, every layer with the
/// gzip layer media type, its diff ID and its uncompressed size.
pub fn synthesised_manifest(
    config: &Digest,
    config_size: u64,
    layers: &[LayerBlob],
) -> Result<Vec<u8>> {
    let m = Schema2 {
        schema_version: 2,
        media_type: DOCKER_MANIFEST,
        config: Descriptor {
            media_type: DOCKER_CONFIG,
            size: config_size,
            digest: config.as_str(),
        },
        layers: layers
            .iter()
            .map(|l| Descriptor {
                media_type: DOCKER_LAYER,
                size: l.blob.size,
                digest: l.diff_id.as_str(),
            })
            .collect(),
    };
    serde_json::to_vec(&m).map_err(|e| Error::document("manifest", "synthesised", e))
}
