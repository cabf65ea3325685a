//! The OCI image layout (a directory, or the same tree in a tar archive):
//!
//! ```text
//! oci-layout          {"imageLayoutVersion":"1.0.0"}
//! index.json          an image index; entries may carry the annotation
//!                     org.opencontainers.image.ref.name (the REF of oci:DIR:REF)
//! blobs/sha256/<hex>  manifests, indexes, configs, layers
//! ```
//!
//! The image is chosen as skopeo chooses it: by REF when one is given,
//! else the only entry of `index.json`. An entry that is itself an index
//! gives one manifest per platform, chosen with `--platform`. strata also
//! takes `index.json` itself as such a list when it has several entries
//! that all carry a platform and no REF is given.

use oci_spec::image::{Descriptor, ImageIndex};

use super::files::Files;
use super::{Choice, Document, Image, LayerBlob, Record};
use crate::digest::{read_blob, read_document, Expected, DOCUMENT_MAX};
use crate::manifest::{
    descriptor_digest, descriptor_platform, kind_of, parse_config, parse_index, parse_manifest,
    Kind, OCI_INDEX,
};
use crate::platform::choose;
use crate::{Error, Result};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Reads the image `reference` (or the only one) of the layout in `files`.
pub(crate) fn read(files: &Files, reference: Option<&str>, choice: &Choice) -> Result<Image> {
    let opened = files.open("index.json")?;
    let bytes = read_document(opened.reader, "index", "index.json", DOCUMENT_MAX)?;
    let index = parse_index(&bytes, OCI_INDEX, "index.json")?;
    let entry = pick_entry(&index, reference, choice, &files.describe())?;
    let (list, manifest_desc) = match entry {
        Picked::One(d) => resolve(files, d, choice)?,
        Picked::Manifest(d) => (None, d),
    };
    read_image(files, list, &manifest_desc)
}

enum Picked {
    /// An entry that may be a manifest or an index.
    One(Descriptor),
    /// A manifest chosen by platform from `index.json` itself.
    Manifest(Descriptor),
}

fn pick_entry(
    index: &ImageIndex,
    reference: Option<&str>,
    choice: &Choice,
    source: &str,
) -> Result<Picked> {
    let entries = index.manifests();
    let name_of = |d: &Descriptor| {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .cloned()
    };
    if let Some(r) = reference {
        let hits: Vec<&Descriptor> = entries
            .iter()
            .filter(|d| name_of(d).as_deref() == Some(r))
            .collect();
        return match hits.as_slice() {
            [one] => Ok(Picked::One((*one).clone())),
            [] => Err(Error::Select(format!(
                "{source}: no image with reference {r:?} in index.json"
            ))),
            _ => Err(Error::Select(format!(
                "{source}: several images have the reference {r:?} in index.json"
            ))),
        };
    }
    match entries.as_slice() {
        [one] => Ok(Picked::One(one.clone())),
        [] => Err(Error::Select(format!(
            "{source}: index.json lists no images"
        ))),
        many if many.iter().all(|d| d.platform().is_some()) => {
            let candidates = many
                .iter()
                .map(|d| (descriptor_platform(d), d.clone()))
                .collect();
            Ok(Picked::Manifest(choose(
                candidates,
                choice.platform.as_ref(),
                &format!("{source}: index.json"),
            )?))
        }
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|d| name_of(d).unwrap_or_else(|| d.digest().to_string()))
                .collect();
            Err(Error::Select(format!(
                "{source}: index.json lists several images ({}); choose one with oci:DIR:REF",
                names.join(", ")
            )))
        }
    }
}

fn expected(what: &'static str, d: &Descriptor) -> Result<Expected> {
    Ok(Expected {
        what,
        digest: descriptor_digest(d)?,
        size: d.size(),
    })
}

fn read_expected(files: &Files, e: &Expected) -> Result<Vec<u8>> {
    let opened = files.open(&e.digest.blob_path())?;
    read_blob(opened.reader, e)
}

/// Follows an entry that may be an index to the manifest for the platform.
fn resolve(
    files: &Files,
    entry: Descriptor,
    choice: &Choice,
) -> Result<(Option<Document>, Descriptor)> {
    let media_type = entry.media_type().to_string();
    let e = expected("manifest", &entry)?;
    match kind_of(&media_type, "manifest", e.digest.as_str())? {
        Kind::Manifest => Ok((None, entry)),
        Kind::Index => {
            let e = Expected { what: "index", ..e };
            let bytes = read_expected(files, &e)?;
            let list = parse_index(&bytes, &media_type, e.digest.as_str())?;
            let mut candidates = Vec::new();
            for d in list.manifests() {
                let t = d.media_type().to_string();
                if kind_of(&t, "manifest", d.digest().as_ref())? == Kind::Index {
                    return Err(Error::Unsupported(format!(
                        "index {} lists another index ({})",
                        e.digest,
                        d.digest()
                    )));
                }
                candidates.push((descriptor_platform(d), d.clone()));
            }
            let chosen = choose(
                candidates,
                choice.platform.as_ref(),
                &format!("index {}", e.digest),
            )?;
            Ok((
                Some(Document {
                    digest: e.digest,
                    media_type,
                    bytes,
                }),
                chosen,
            ))
        }
    }
}

fn read_image(files: &Files, list: Option<Document>, desc: &Descriptor) -> Result<Image> {
    let media_type = desc.media_type().to_string();
    let e = expected("manifest", desc)?;
    if kind_of(&media_type, "manifest", e.digest.as_str())? != Kind::Manifest {
        return Err(Error::Unsupported(format!(
            "manifest {} is an index inside an index",
            e.digest
        )));
    }
    let bytes = read_expected(files, &e)?;
    let manifest = parse_manifest(&bytes, &media_type, e.digest.as_str())?;
    let ce = expected("config", manifest.config())?;
    let config_bytes = read_expected(files, &ce)?;
    let config = parse_config(&config_bytes, ce.digest.as_str())?;
    if config.diff_ids.len() != manifest.layers().len() {
        return Err(Error::document(
            "config",
            ce.digest.as_str(),
            format!(
                "rootfs.diff_ids has {} entries, manifest {} lists {} layers",
                config.diff_ids.len(),
                e.digest,
                manifest.layers().len()
            ),
        ));
    }
    let layers = manifest
        .layers()
        .iter()
        .zip(&config.diff_ids)
        .map(|(d, diff_id)| {
            let blob = expected("layer", d)?;
            Ok(LayerBlob {
                file: blob.digest.blob_path(),
                blob,
                diff_id: diff_id.clone(),
                media_type: d.media_type().to_string(),
                record: Record::AsRead,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Image {
        manifest: Document {
            digest: e.digest,
            media_type,
            bytes,
        },
        list,
        config: Document {
            digest: ce.digest,
            media_type: manifest.config().media_type().to_string(),
            bytes: config_bytes,
        },
        layers,
        created: config.created,
    })
}
