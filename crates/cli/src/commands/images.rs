//! Images: `create-image`, `images`, `images-by-digest`, `image`,
//! `delete-image` and the image big-data commands, with the reference's
//! outputs and messages.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use strata_store::{BigDataItem, DeleteMode, Image, NewImage, Store};

use super::{fail, metadata_arg, read_data, reference_message, write_data};
use crate::args::{
    CreateImageOpts, DataKey, DataOpts, DeleteImageOpts, ImagesByDigestOpts, ImagesOpts, Items,
    ListDataOpts, SetDataOpts,
};
use crate::output::{go_quote, print, print_created, print_json, print_lines};

/// `create-image [TOP]`: the new ID, then a tab and a name per line.
pub(super) fn create(s: &Store, o: &CreateImageOpts) -> Result<ExitCode> {
    let req = NewImage {
        id: o.id.clone(),
        top_layer: o.top_layer.clone().filter(|t| !t.is_empty()),
        names: o.names.clone(),
        metadata: metadata_arg(&o.metadata)?.unwrap_or_default(),
        digest: o.digest.clone().filter(|d| !d.is_empty()),
        ..Default::default()
    };
    let image = match s.images().create(&req) {
        Ok(i) => i,
        Err(e) => return fail(reference_message(&e)),
    };
    print_created(o.json.json, &image, &image.id, &image.names, "\n")?;
    Ok(ExitCode::SUCCESS)
}

/// One image as `images` lists it.
fn listing(i: &Image) -> String {
    let mut out = format!("{}\n", i.id);
    for n in &i.names {
        out.push_str(&format!("\tname: {n}\n"));
    }
    for d in &i.digests {
        out.push_str(&format!("\tdigest: {d}\n"));
    }
    for k in &i.big_data_names {
        out.push_str(&format!("\tdata: {k}\n"));
    }
    out
}

fn print_list(images: &[Image], o: &ImagesOpts) -> Result<()> {
    if o.json.json {
        print_json(images)
    } else if o.quiet {
        print_lines(images.iter().map(|i| &i.id))
    } else {
        print(&images.iter().map(listing).collect::<String>())
    }
}

/// `images`: the store's own images, then the read-only stores'.
pub(super) fn list(s: &Store, o: &ImagesOpts) -> Result<ExitCode> {
    print_list(&s.images().list()?, o)?;
    Ok(ExitCode::SUCCESS)
}

/// `images-by-digest DIGEST`.
pub(super) fn by_digest(s: &Store, o: &ImagesByDigestOpts) -> Result<ExitCode> {
    if let Err(e) = strata_store::bigdata::validate_digest(&o.digest) {
        return fail(format!("{}: {e}", o.digest));
    }
    print_list(&s.images().by_digest(&o.digest)?, &o.list)?;
    Ok(ExitCode::SUCCESS)
}

/// `image ID…`: the images found; an unknown one fails the command
/// silently, as in the reference.
pub(super) fn examine(s: &Store, o: &Items) -> Result<ExitCode> {
    let mut found = Vec::new();
    let mut ok = true;
    for key in &o.layers {
        match s.images().lookup(key)? {
            Some(i) => found.push(i),
            None => ok = false,
        }
    }
    if o.json.json {
        print_json(&found)?;
    } else {
        for i in &found {
            print(&details(s, i))?;
        }
    }
    Ok(super::status(ok))
}

fn details(s: &Store, i: &Image) -> String {
    let mut out = format!("ID: {}\n", i.id);
    for n in &i.names {
        out.push_str(&format!("Name: {n}\n"));
    }
    out.push_str(&format!("Top Layer: {}\n", i.top_layer));
    for m in &i.mapped_layers {
        out.push_str(&format!("Top Layer: {m}\n"));
    }
    for d in &i.digests {
        out.push_str(&format!("Digest: {d}\n"));
    }
    for k in &i.big_data_names {
        out.push_str(&format!("Data: {k}\n"));
    }
    match s.images().size(&i.id) {
        Ok(n) => out.push_str(&format!("Size: {n}\n")),
        Err(e) => out.push_str(&format!("Size unknown: {}\n", reference_message(&e))),
    }
    if i.read_only {
        out.push_str("Read Only: true\n");
    }
    out
}

fn locating(key: &str, e: &strata_store::Error) -> String {
    match e.kind() {
        strata_store::ErrorKind::NotFound => {
            format!(
                "locating image with ID {}: image not known",
                go_quote(key.as_bytes())
            )
        }
        _ => reference_message(e),
    }
}

/// `list-image-data IMAGE`.
pub(super) fn list_data(s: &Store, o: &ListDataOpts) -> Result<ExitCode> {
    let image = match s.images().get(&o.layer) {
        Ok(i) => i,
        Err(e) => return fail(locating(&o.layer, &e)),
    };
    if o.json.json {
        print_json(&image.big_data_names)?;
    } else {
        print_lines(&image.big_data_names)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `get-image-data IMAGE KEY`: the bytes, to `--file` or stdout.
pub(super) fn get_data(s: &Store, o: &DataOpts) -> Result<ExitCode> {
    let image = match s.images().get(&o.layer) {
        Ok(i) => i,
        Err(e) => return fail(locating(&o.layer, &e)),
    };
    match s.images().big_data(&image.id, &o.name) {
        Ok(data) => write_data(o.file.as_deref(), &data),
        Err(_) => fail(format!(
            "locating item named {} for image with ID {} (consider removing the image to resolve the issue): file does not exist",
            go_quote(o.name.as_bytes()),
            go_quote(image.id.as_bytes())
        )),
    }
}

/// `get-image-data-size IMAGE KEY`.
pub(super) fn data_size(s: &Store, o: &DataKey) -> Result<ExitCode> {
    if let Err(e) = s.images().get(&o.key) {
        return fail(locating(&o.key, &e));
    }
    match s.images().big_data_size(&o.key, &o.name) {
        Ok(n) => print(&format!("{n}\n")).map(|_| ExitCode::SUCCESS),
        Err(e) => fail(reference_message(&e)),
    }
}

/// `get-image-data-digest IMAGE KEY`.
pub(super) fn data_digest(s: &Store, o: &DataKey) -> Result<ExitCode> {
    if let Err(e) = s.images().get(&o.key) {
        return fail(locating(&o.key, &e));
    }
    match s.images().big_data_digest(&o.key, &o.name) {
        Ok(d) => print(&format!("{d}\n")).map(|_| ExitCode::SUCCESS),
        Err(e) => fail(reference_message(&e)),
    }
}

/// `set-image-data IMAGE KEY`: from `--file` or stdin; the digest of a
/// `manifest*` item is the sha256 of its bytes, as the reference's CLI
/// computes it.
pub(super) fn set_data(s: &Store, o: &SetDataOpts) -> Result<ExitCode> {
    if let Err(e) = s.images().get(&o.layer) {
        return fail(locating(&o.layer, &e));
    }
    if o.name.is_empty() {
        return fail(
            "can't set empty name for image big data item: not a valid name for a big data item",
        );
    }
    let data = read_data(o.file.as_deref())?;
    let item = BigDataItem {
        key: o.name.clone(),
        data,
        digest: None,
    };
    match s.images().set_big_data(&o.layer, &item) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => fail(reference_message(&e)),
    }
}

/// `delete-image [-t] IMAGE…`: on stderr, `IMAGE: LAYER` for each layer
/// deleted (or that would be) and `IMAGE: ERROR` for failures; with
/// `--json`, one object keyed by the arguments.
pub(super) fn delete(s: &Store, o: &DeleteImageOpts) -> Result<ExitCode> {
    let mode = if o.test {
        DeleteMode::Test
    } else {
        DeleteMode::Commit
    };
    let mut report = BTreeMap::new();
    let mut ok = true;
    for key in &o.images {
        let mut entry = serde_json::Map::new();
        match s.images().delete(key, mode) {
            Ok(layers) => {
                if !o.json.json {
                    for l in &layers {
                        eprintln!("{key}: {l}");
                    }
                }
                if !layers.is_empty() {
                    entry.insert("deleted-layers".into(), layers.into());
                }
            }
            Err(e) => {
                ok = false;
                let msg = match e.kind() {
                    strata_store::ErrorKind::NotFound => "identifier is not an image".to_string(),
                    _ => reference_message(&e),
                };
                if !o.json.json {
                    eprintln!("{key}: {msg}");
                }
                entry.insert("error".into(), msg.into());
            }
        }
        report.insert(key.clone(), entry);
    }
    if o.json.json {
        print_json(&report)?;
    }
    Ok(super::status(ok))
}
