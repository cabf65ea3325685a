//! Images as the store sees them: created on a layer, deleted with the
//! layers only they used, refused while a container uses them, searched
//! in the store's own image store and then in the read-only ones.

use std::collections::HashSet;
use std::path::PathBuf;

use strata_driver::MountOptions;

use super::{by_digest, BigDataItem, Image, ImageStore, NameOp, NewImage};
use crate::containers::Container;
use crate::layers::{children, Layer, LayersTx};
use crate::record::Kind;
use crate::recordfile::Records;
use crate::{Error, Force, MountRequest, Result, Store};

/// Whether [`Images::delete`] deletes or only reports what it would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    /// Delete the image and the layers only it used.
    Commit,
    /// Change nothing; report the layers that would go.
    Test,
}

/// The images of a store: `store.images()`.
#[derive(Debug, Clone, Copy)]
pub struct Images<'a> {
    store: &'a Store,
}

impl Store {
    /// The images: the store's own, then those of the read-only stores.
    pub fn images(&self) -> Images<'_> {
        Images { store: self }
    }
}

fn marked(mut i: Image, store: &ImageStore) -> Image {
    i.read_only = store.is_read_only();
    i
}

impl<'a> Images<'a> {
    fn stores(&self) -> impl Iterator<Item = &'a ImageStore> {
        std::iter::once(&self.store.image_store).chain(&self.store.ro_image_stores)
    }

    /// Every image: the store's own, then the read-only stores' (an ID
    /// may appear in both).
    pub fn list(&self) -> Result<Vec<Image>> {
        let mut out = Vec::new();
        for s in self.stores() {
            out.extend(s.read()?.list().iter().map(|i| marked(i.clone(), s)));
        }
        Ok(out)
    }

    /// The image with this ID, name or unique ID prefix, if any (the
    /// store's own first).
    pub fn lookup(&self, key: &str) -> Result<Option<Image>> {
        for s in self.stores() {
            if let Some(i) = s.read()?.lookup(key) {
                return Ok(Some(marked(i.clone(), s)));
            }
        }
        Ok(None)
    }

    /// Like [`Images::lookup`], but an unknown image is an error.
    pub fn get(&self, key: &str) -> Result<Image> {
        self.lookup(key)?
            .ok_or_else(|| Error::unknown(Kind::Image, key))
    }

    /// Whether an image has this ID, name or unique ID prefix.
    pub fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.lookup(key)?.is_some())
    }

    /// Images known by `digest` (their digest or a manifest's).
    pub fn by_digest(&self, digest: &str) -> Result<Vec<Image>> {
        let mut out = Vec::new();
        for s in self.stores() {
            let r = s.read()?;
            out.extend(by_digest(&r, digest).map(|i| marked(i.clone(), s)));
        }
        Ok(out)
    }

    /// Creates an image on a top layer (the store's own or a read-only
    /// store's), with its names, metadata and big data, in one save.
    pub fn create(&self, req: &NewImage) -> Result<Image> {
        let st = self.store;
        let tx = st.layers_tx()?;
        let top = match req.top_layer.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => st.parent_layer(&tx, t)?.id,
            None => String::new(),
        };
        let mut w = st.image_store.write()?;
        st.image_store.create(&mut w, req, top)
    }

    /// Deletes an image from the store's own image store, then the layers
    /// only it used: its mapped layers, then its top layer and down the
    /// parent chain, stopping at a layer a container uses, another image
    /// starts from, or that has a child not being deleted. Refused while a
    /// container uses the image. Returns the layers deleted (or, in
    /// [`DeleteMode::Test`], that would be).
    pub fn delete(&self, key: &str, mode: DeleteMode) -> Result<Vec<String>> {
        let st = self.store;
        let mut tx = st.layers_tx()?;
        let mut images = st.image_store.write()?;
        let containers = st.container_store.write()?;
        let image = images.get(key)?.clone();
        // The reference names the last such container.
        if let Some(c) = containers.list().iter().rev().find(|c| c.image == image.id) {
            return Err(Error::InUse {
                kind: Kind::Image,
                id: image.id,
                user_kind: Kind::Container,
                user: c.id.clone(),
            });
        }
        let doomed = layers_only_used_by(&image, &tx, &images, containers.list());
        if mode == DeleteMode::Test {
            return Ok(doomed);
        }
        st.image_store.delete(&mut images, &image.id)?;
        st.remove_layers_locked(&mut tx, &doomed)?;
        Ok(doomed)
    }

    /// Changes an image's names; a name another image has moves here.
    pub fn set_names(&self, key: &str, names: &[String], op: NameOp) -> Result<()> {
        let st = self.store;
        let mut w = st.image_store.write()?;
        let id = self.own_id(&w, key)?;
        st.image_store.set_names(&mut w, &id, names, op)
    }

    /// The ID of an image of the store's own image store; a read-only
    /// image cannot be changed.
    fn own_id(&self, w: &Records<Image>, key: &str) -> Result<String> {
        if let Some(i) = w.lookup(key) {
            return Ok(i.id.clone());
        }
        for s in &self.store.ro_image_stores {
            if s.read()?.lookup(key).is_some() {
                return Err(Error::ReadOnly {
                    kind: Kind::Image,
                    path: s.records().path().to_path_buf(),
                });
            }
        }
        Err(Error::unknown(Kind::Image, key))
    }

    /// Replaces an image's metadata.
    pub fn set_metadata(&self, key: &str, metadata: &str) -> Result<()> {
        let st = self.store;
        let mut w = st.image_store.write()?;
        let id = self.own_id(&w, key)?;
        w.records_mut()
            .update(&id, |i| i.metadata = metadata.to_string());
        w.save()
    }

    /// The store (own or read-only) that has the image, and the image.
    fn find(&self, key: &str) -> Result<(&'a ImageStore, Image)> {
        for s in self.stores() {
            if let Some(i) = s.read()?.lookup(key) {
                return Ok((s, marked(i.clone(), s)));
            }
        }
        Err(Error::unknown(Kind::Image, key))
    }

    /// Reads a big-data item of an image.
    pub fn big_data(&self, key: &str, name: &str) -> Result<Vec<u8>> {
        let (s, i) = self.find(key)?;
        super::big_data(s, &i, name)
    }

    /// The size of a big-data item (recorded, else its file's length).
    pub fn big_data_size(&self, key: &str, name: &str) -> Result<i64> {
        let (s, i) = self.find(key)?;
        super::big_data_size(s, &i, name)
    }

    /// The recorded digest of a big-data item.
    pub fn big_data_digest(&self, key: &str, name: &str) -> Result<String> {
        let (_, i) = self.find(key)?;
        super::big_data_digest(&i, name)
    }

    /// Stores a big-data item with an image; a `manifest*` item's digest
    /// becomes one of the image's digests.
    pub fn set_big_data(&self, key: &str, item: &BigDataItem) -> Result<()> {
        let st = self.store;
        let mut w = st.image_store.write()?;
        let id = self.own_id(&w, key)?;
        st.image_store.set_big_data(&mut w, &id, item)
    }

    /// The image's size: the diff sizes of its top layer, mapped layers
    /// and their ancestors (measured when a layer has no recorded digest),
    /// plus its big data.
    pub fn size(&self, key: &str) -> Result<i64> {
        let (_, image) = self.find(key)?;
        let mut total: i64 = image.big_data_sizes.values().sum();
        let mut seen = HashSet::new();
        let starts = image
            .top_layer()
            .into_iter()
            .chain(image.mapped_layers.iter().map(String::as_str));
        for start in starts {
            let mut next = Some(start.to_string());
            while let Some(id) = next.take().filter(|i| !i.is_empty()) {
                if !seen.insert(id.clone()) {
                    break;
                }
                let layer = self.store.layer(&id)?;
                total += if layer.uncompressed_digest.is_empty() {
                    self.store.diff_size(None, &layer.id)? as i64
                } else {
                    layer.uncompressed_size
                };
                next = layer.parent().map(str::to_string);
            }
        }
        Ok(total)
    }

    /// Mounts an image's top layer read-only (`ro` is added to `req`'s
    /// options).
    pub fn mount(&self, key: &str, req: &MountRequest) -> Result<PathBuf> {
        let (_, image) = self.find(key)?;
        let top = image
            .top_layer()
            .ok_or_else(|| Error::Invalid(format!("image {} has no layers to mount", image.id)))?
            .to_string();
        let mut options = req.options.clone();
        if !options.iter().any(|o| o == "ro") {
            options.push("ro".into());
        }
        let st = self.store;
        let mut tx = st.layers_tx()?;
        let opts = MountOptions {
            mount_label: req.mount_label.clone(),
            options,
            ..Default::default()
        };
        st.mount_locked(&mut tx, &top, opts)
    }

    /// Releases a mount of an image's top layer.
    pub fn unmount(&self, key: &str, force: Force) -> Result<bool> {
        let (_, image) = self.find(key)?;
        let top = image.top_layer().unwrap_or_default().to_string();
        let mut tx = self.store.layers_tx()?;
        self.store.parent_layer(&tx, &top)?;
        self.store.unmount_locked(&mut tx, &top, force)
    }
}

/// The layers that deleting `image` deletes, in order: mapped layers, then
/// from the top layer down while no container, other image or surviving
/// child needs them. Layers not in the store's own layer store (a
/// read-only store's) end the walk.
fn layers_only_used_by(
    image: &Image,
    tx: &LayersTx<'_>,
    images: &Records<Image>,
    containers: &[Container],
) -> Vec<String> {
    let mut doomed: Vec<String> = image.mapped_layers.clone();
    let used_by_others: HashSet<&str> = images
        .list()
        .iter()
        .filter(|i| i.id != image.id)
        .flat_map(|i| {
            std::iter::once(i.top_layer.as_str()).chain(i.mapped_layers.iter().map(String::as_str))
        })
        .collect();
    let container_layers: HashSet<&str> = containers.iter().map(|c| c.layer.as_str()).collect();
    let layers: &[Layer] = tx.layers.list();
    let mut next = image.top_layer().map(str::to_string);
    while let Some(id) = next.take() {
        let Some(layer) = tx.layers.by_id(&id) else {
            break;
        };
        if container_layers.contains(id.as_str()) || used_by_others.contains(id.as_str()) {
            break;
        }
        if children(layers, &id).iter().any(|k| !doomed.contains(k)) {
            break;
        }
        doomed.push(id);
        next = layer.parent().map(str::to_string);
    }
    doomed
}
