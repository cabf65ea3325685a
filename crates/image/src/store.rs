//! [`ImageTarget`] and [`ExportStore`] for strata's store.

use strata_store::{BigDataItem, ChainLayer, NameOp, NewImage, NewLayer, Store};

use crate::export::{ExportStore, StoredImage};
use crate::import::{ImageRecord, ImageTarget, PendingLayer};
use crate::{Error, Result};

impl ImageTarget for Store {
    fn has_layer(&self, id: &str) -> Result<bool> {
        Ok(self
            .layers()?
            .iter()
            .any(|l| l.id == id && !l.is_incomplete()))
    }

    fn put_layers(&self, layers: Vec<PendingLayer<'_>>) -> Result<Option<(usize, Error)>> {
        let chain = layers
            .into_iter()
            .map(|p| ChainLayer {
                req: NewLayer {
                    id: Some(p.layer.id),
                    parent: p.layer.parent,
                    // Image layers on image layers, never written in place.
                    share_parent_files: true,
                    ..Default::default()
                },
                diff: p.diff,
                check: p.check,
            })
            .collect();
        let out = self.import_chain(chain)?;
        Ok(out.failed.map(|(i, e)| (i, Error::from(e))))
    }

    fn image_top_layer(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .images()
            .lookup(id)?
            .filter(|i| i.id == id)
            .map(|i| i.top_layer))
    }

    fn write_image(&self, record: &ImageRecord, exists: bool) -> Result<()> {
        let items: Vec<BigDataItem> = record
            .big_data
            .iter()
            .map(|b| BigDataItem {
                key: b.key.clone(),
                data: b.data.clone(),
                digest: None,
            })
            .collect();
        let images = self.images();
        if exists {
            // containers/image on an image that is there already: its big
            // data and metadata again, then the names in front.
            for item in &items {
                images.set_big_data(&record.id, item)?;
            }
            images.set_metadata(&record.id, &record.metadata)?;
            return add_names(self, record);
        }
        let created = record
            .created
            .as_deref()
            .map(|c| {
                time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| {
                        Error::document("config", record.id.as_str(), format!("created {c:?}: {e}"))
                    })
            })
            .transpose()?;
        // Names no other image has go into the record in its one save
        // (with the history AddNames would leave); otherwise they are
        // moved here afterwards, as AddNames moves them.
        let free = record
            .names
            .iter()
            .all(|n| matches!(images.lookup(n), Ok(None)));
        let req = NewImage {
            id: Some(record.id.clone()),
            top_layer: record.top_layer.clone(),
            names: if free {
                record.names.clone()
            } else {
                Vec::new()
            },
            names_history: if free {
                record.names.iter().rev().cloned().collect()
            } else {
                Vec::new()
            },
            metadata: record.metadata.clone(),
            digest: Some(record.digest.to_string()),
            created,
            big_data: items,
            ..Default::default()
        };
        images.create(&req)?;
        if !free {
            add_names(self, record)?;
        }
        Ok(())
    }
}

fn add_names(store: &Store, record: &ImageRecord) -> Result<()> {
    if record.names.is_empty() {
        return Ok(());
    }
    store
        .images()
        .set_names(&record.id, &record.names, NameOp::Add)?;
    Ok(())
}

impl ExportStore for Store {
    fn image_for_export(&self, key: &str) -> Result<StoredImage> {
        let image = self.images().get(&lookup_key(self, key))?;
        // The config is the big-data item the manifest names (skopeo's key
        // is the config digest); an image made by hand may only have
        // `sha256:<id>`.
        let manifest = self.images().big_data(&image.id, "manifest").ok();
        let key_from_manifest = manifest
            .as_deref()
            .and_then(|m| serde_json::from_slice::<serde_json::Value>(m).ok())
            .and_then(|v| v["config"]["digest"].as_str().map(str::to_string));
        let config_key = key_from_manifest.unwrap_or_else(|| format!("sha256:{}", image.id));
        let config = self.images().big_data(&image.id, &config_key)?;
        let mut layers = Vec::new();
        let mut next = Some(image.top_layer.clone()).filter(|t| !t.is_empty());
        while let Some(id) = next {
            let l = self.layer(&id)?;
            next = l.parent().map(str::to_string);
            layers.push(l.id);
        }
        layers.reverse();
        Ok(StoredImage { config, layers })
    }

    fn layer_tar(&self, id: &str, out: &mut dyn std::io::Write) -> Result<()> {
        // An imported layer comes back from its tar-split record, byte for
        // byte as it was imported.
        self.diff(None, id, Some(strata_store::Compression::None), out)?;
        Ok(())
    }
}

/// `key` as given, or as skopeo would have stored it (`t/i:1` →
/// `docker.io/t/i:1`) when only that form names an image.
fn lookup_key(store: &Store, key: &str) -> String {
    if matches!(store.images().lookup(key), Ok(Some(_))) {
        return key.to_string();
    }
    match crate::reference::normalize_name(key) {
        Ok(n) if matches!(store.images().lookup(&n), Ok(Some(_))) => n,
        _ => key.to_string(),
    }
}
