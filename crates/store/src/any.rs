//! Operations on whatever a key names — a layer, an image or a container —
//! and on the whole store (wipe, shutdown).
//!
//! Lookups go through the kinds in the reference's order: layers, then
//! images, then containers (each kind's names are its own, so a layer named
//! `x` answers before an image named `x`). The unchecked delete goes the
//! other way, containers first, as the reference's does.

use crate::containers::Container;
use crate::images::{new_names, Image, NameOp};
use crate::layers::Layer;
use crate::lockfile::LockMode;
use crate::record::Kind;
use crate::{Error, Force, Result, Store};

/// What a key named.
#[derive(Debug, Clone)]
pub enum Found {
    /// A layer.
    Layer(Layer),
    /// An image.
    Image(Image),
    /// A container.
    Container(Container),
}

impl Found {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Found::Layer(_) => Kind::Layer,
            Found::Image(_) => Kind::Image,
            Found::Container(_) => Kind::Container,
        }
    }

    /// Its ID.
    pub fn id(&self) -> &str {
        match self {
            Found::Layer(l) => &l.id,
            Found::Image(i) => &i.id,
            Found::Container(c) => &c.id,
        }
    }

    /// Its names.
    pub fn names(&self) -> &[String] {
        match self {
            Found::Layer(l) => &l.names,
            Found::Image(i) => &i.names,
            Found::Container(c) => &c.names,
        }
    }

    /// Its metadata.
    pub fn metadata(&self) -> &str {
        match self {
            Found::Layer(l) => &l.metadata,
            Found::Image(i) => &i.metadata,
            Found::Container(c) => &c.metadata,
        }
    }
}

impl Store {
    /// The layer, image or container `key` names (tried in that order).
    pub fn lookup(&self, key: &str) -> Result<Option<Found>> {
        if let Ok(l) = self.layer(key) {
            return Ok(Some(Found::Layer(l)));
        }
        if let Some(i) = self.images().lookup(key)? {
            return Ok(Some(Found::Image(i)));
        }
        Ok(self.containers().lookup(key)?.map(Found::Container))
    }

    /// Whether a layer, image or container has this ID or name.
    pub fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.lookup(key)?.is_some())
    }

    /// The metadata of the layer, image or container `key` names.
    pub fn metadata(&self, key: &str) -> Result<String> {
        self.lookup(key)?
            .map(|f| f.metadata().to_string())
            .ok_or_else(|| Error::unknown(Kind::Layer, key))
    }

    /// The names of the layer, image or container `key` names.
    pub fn names(&self, key: &str) -> Result<Vec<String>> {
        self.lookup(key)?
            .map(|f| f.names().to_vec())
            .ok_or_else(|| Error::unknown(Kind::Layer, key))
    }

    /// Replaces the metadata of the layer, image or container `key` names.
    pub fn set_metadata(&self, key: &str, metadata: &str) -> Result<()> {
        let mut tx = self.layers_tx()?;
        if let Some(l) = tx.layers.lookup(key) {
            let id = l.id.clone();
            tx.layers
                .records_mut()
                .update(&id, |l| l.metadata = metadata.to_string());
            return tx.save();
        }
        if self.images().exists(key)? {
            return self.images().set_metadata(key, metadata);
        }
        if self.containers().exists(key)? {
            return self.containers().set_metadata(key, metadata);
        }
        Err(Error::unknown(Kind::Layer, key))
    }

    /// Gives the layer, image or container `key` names exactly `names`
    /// (taking each from any other record of its kind that has it).
    pub fn set_names(&self, key: &str, names: &[String]) -> Result<()> {
        self.change_names(key, names, NameOp::Set)
    }

    /// Adds names after the existing ones (the CLI's `add-names`).
    pub fn add_names(&self, key: &str, names: &[String]) -> Result<()> {
        self.change_names(key, names, NameOp::Append)
    }

    /// Removes names.
    pub fn remove_names(&self, key: &str, names: &[String]) -> Result<()> {
        self.change_names(key, names, NameOp::Remove)
    }

    /// Changes the names of the layer, image or container `key` names.
    pub fn change_names(&self, key: &str, names: &[String], op: NameOp) -> Result<()> {
        let mut tx = self.layers_tx()?;
        if let Some(l) = tx.layers.lookup(key) {
            let id = l.id.clone();
            let result = new_names(&l.names, names, op);
            tx.layers.records_mut().assign_names(&id, &result)?;
            return tx.save();
        }
        if self.images().exists(key)? {
            return self.images().set_names(key, names, op);
        }
        if self.containers().exists(key)? {
            return self.containers().set_names(key, names, op);
        }
        Err(Error::unknown(Kind::Layer, key))
    }

    /// Deletes what `key` names with no safety checks (the reference's
    /// `delete`): a container with its layer and directories; else an
    /// image's record and data only (its layers stay); else a layer, even
    /// one others use. Returns what it deleted.
    pub fn delete(&self, key: &str) -> Result<Kind> {
        if let Some(c) = self.containers().lookup(key)? {
            let mut tx = self.layers_tx()?;
            let _images = self.image_store.write()?;
            let mut w = self.container_store.write()?;
            if w.by_id(&c.id).is_none() {
                return Err(Error::unknown(Kind::Container, key));
            }
            self.container_store.delete(&mut w, &c.id)?;
            if tx.layers.by_id(&c.layer).is_some() {
                self.remove_layer_locked(&mut tx, &c.layer)?;
            }
            return Ok(Kind::Container);
        }
        {
            let _tx = self.layers_tx()?;
            let mut w = self.image_store.write()?;
            if let Some(i) = w.lookup(key) {
                let id = i.id.clone();
                self.image_store.delete(&mut w, &id)?;
                return Ok(Kind::Image);
            }
        }
        self.delete_layer(key, crate::Safety::Unchecked)?;
        Ok(Kind::Layer)
    }

    /// Deletes every container (record and directories), every image and
    /// then every layer (children first, each unmounted first).
    pub fn wipe(&self) -> Result<()> {
        let mut tx = self.layers_tx()?;
        let mut images = self.image_store.write()?;
        let mut containers = self.container_store.write()?;
        let ids: Vec<String> = containers.list().iter().map(|c| c.id.clone()).collect();
        for id in ids {
            self.container_store.delete(&mut containers, &id)?;
        }
        containers.save()?;
        let ids: Vec<String> = images.list().iter().map(|i| i.id.clone()).collect();
        for id in ids {
            self.image_store.delete(&mut images, &id)?;
        }
        images.save()?;
        // Children before parents: the reverse of an order where every
        // parent comes before its children.
        let mut order: Vec<String> = Vec::new();
        let mut placed = std::collections::HashSet::new();
        let list = tx.layers.list();
        while order.len() < list.len() {
            let before = order.len();
            for l in list {
                let ready = l.parent.is_empty()
                    || placed.contains(l.parent.as_str())
                    || tx.layers.by_id(&l.parent).is_none();
                if ready && !placed.contains(l.id.as_str()) {
                    placed.insert(l.id.as_str());
                    order.push(l.id.clone());
                }
            }
            if order.len() == before {
                break;
            }
        }
        order.reverse();
        self.remove_layers_locked(&mut tx, &order)
    }

    /// Releases the driver. Refuses while layers are mounted, unless
    /// `force`, which unmounts them all first.
    pub fn shutdown(&self, force: Force) -> Result<()> {
        let _graph = self.graph_lock.lock(LockMode::Exclusive)?;
        let mut tx = self.layers_tx()?;
        let mounted: Vec<String> = tx
            .mounts
            .list()
            .iter()
            .filter(|m| m.count > 0)
            .map(|m| m.id.clone())
            .collect();
        if !mounted.is_empty() {
            if force == Force::No {
                return Err(Error::Mounted(mounted));
            }
            for id in &mounted {
                self.unmount_locked(&mut tx, id, Force::Yes)?;
            }
        }
        self.driver
            .cleanup()
            .map_err(|e| Error::driver("shutting down", self.driver.name().to_string(), e))?;
        self.graph_lock.record_write()?;
        tx.save()
    }
}
