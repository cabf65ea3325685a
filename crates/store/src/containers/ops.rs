//! Containers as the store sees them: a read-write layer on an image's
//! top layer (or on an ID-mapped copy of it), a record, and directories in
//! the graph and run roots.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use strata_driver::Access;
use strata_idmap::IdMap;

use super::{
    big_data, big_data_digest, big_data_size, Container, ContainerStore, Durability, NewContainer,
    FLAG_MOUNT_LABEL, FLAG_MOUNT_OPTS, FLAG_PROCESS_LABEL, FLAG_VOLATILE,
};
use crate::images::{Image, NameOp};
use crate::layers::ops::{Fill, LayerMaps, MapChoice, NewLayer};
use crate::layers::{Layer, LayersTx};
use crate::record::Kind;
use crate::recordfile::Writer;
use crate::{Error, Result, Store};

/// The containers of a store: `store.containers()`.
#[derive(Debug, Clone, Copy)]
pub struct Containers<'a> {
    store: &'a Store,
}

impl Store {
    /// The containers.
    pub fn containers(&self) -> Containers<'_> {
        Containers { store: self }
    }
}

/// UID and GID maps.
type Maps = (Vec<IdMap>, Vec<IdMap>);

/// An image found for a new container, and whether it is the store's own.
struct Source {
    image: Image,
    own: bool,
}

impl<'a> Containers<'a> {
    fn cs(&self) -> &'a ContainerStore {
        &self.store.container_store
    }

    /// Every container.
    pub fn list(&self) -> Result<Vec<Container>> {
        Ok(self.cs().read()?.list().to_vec())
    }

    /// The container with this ID, name, layer ID or unique ID prefix.
    pub fn lookup(&self, key: &str) -> Result<Option<Container>> {
        Ok(self.cs().read()?.lookup(key).cloned())
    }

    /// Like [`Containers::lookup`], but an unknown container is an error.
    pub fn get(&self, key: &str) -> Result<Container> {
        self.lookup(key)?
            .ok_or_else(|| Error::unknown(Kind::Container, key))
    }

    /// Whether a container has this ID, name, layer or unique ID prefix.
    pub fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.lookup(key)?.is_some())
    }

    /// Creates a container: a new read-write layer on the image's top
    /// layer (on an ID-mapped copy of it when the container's maps differ
    /// from the top layer's and the driver cannot shift IDs; the copy is
    /// recorded in the image's `mapped-layers` and reused), then the record.
    /// Nothing is left behind when it fails.
    pub fn create(&self, req: &NewContainer) -> Result<Container> {
        let st = self.store;
        if req.mount_label.is_some() != req.process_label.is_some() {
            return Err(Error::Invalid(
                "ProcessLabel and Mountlabel must either not be specified or both specified".into(),
            ));
        }
        let mut tx = st.layers_tx()?;
        let mut images = st.image_store.write()?;
        let source = self.source(&images, req.image.as_deref())?;
        let top = match source.as_ref().and_then(|s| s.image.top_layer()) {
            Some(t) => Some(st.parent_layer(&tx, t)?),
            None => None,
        };
        let (uid_map, gid_map) = st.choose_maps(&req.maps, top.as_ref());
        let mut containers = self.cs().write()?;
        let id = self.cs().check_new(&containers, req)?;
        let (parent, layer_maps) = self.parent_for(
            &mut tx,
            &mut images,
            source.as_ref(),
            top,
            (uid_map, gid_map),
        )?;
        let mount_label = req.mount_label.clone().unwrap_or_default();
        let layer = st.put_layer_locked(
            &mut tx,
            &NewLayer {
                mount_label: Some(mount_label.clone()).filter(|l| !l.is_empty()),
                access: Access::ReadWrite,
                maps: LayerMaps {
                    uids: MapChoice::Explicit(layer_maps.0),
                    gids: MapChoice::Explicit(layer_maps.1),
                },
                storage_opt: req.storage_opt.clone(),
                ..Default::default()
            },
            parent.as_ref(),
            Fill::ForContainer,
        )?;
        let record = Container {
            id,
            image: source.map(|s| s.image.id).unwrap_or_default(),
            layer: layer.id.clone(),
            uid_map: explicit(&req.maps.uids),
            gid_map: explicit(&req.maps.gids),
            flags: flags(req, &mount_label),
            ..Default::default()
        };
        match self.cs().create(&mut containers, record, req) {
            Ok(c) => {
                st.complete_layer(&mut tx, &layer.id)?;
                Ok(c)
            }
            Err(e) => {
                if let Err(x) = st.remove_layer_locked(&mut tx, &layer.id) {
                    tracing::warn!("removing the layer of a failed container: {x}");
                }
                Err(e)
            }
        }
    }

    fn source(&self, images: &Writer<'_, Image>, key: Option<&str>) -> Result<Option<Source>> {
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Ok(None);
        };
        if let Some(i) = images.lookup(key) {
            return Ok(Some(Source {
                image: i.clone(),
                own: true,
            }));
        }
        for s in &self.store.ro_image_stores {
            if let Some(i) = s.read()?.lookup(key) {
                let mut image = i.clone();
                image.read_only = true;
                return Ok(Some(Source { image, own: false }));
            }
        }
        Err(Error::unknown(Kind::Image, key))
    }

    /// The parent of a new container layer and that layer's maps.
    fn parent_for(
        &self,
        tx: &mut LayersTx<'_>,
        images: &mut Writer<'_, Image>,
        source: Option<&Source>,
        top: Option<Layer>,
        maps: Maps,
    ) -> Result<(Option<Layer>, Maps)> {
        let st = self.store;
        let Some(top) = top else {
            return Ok((None, maps));
        };
        if top.uid_map == maps.0 && top.gid_map == maps.1 {
            return Ok((Some(top), maps));
        }
        if st.driver.supports_shifting() && contiguous(&maps.0) && contiguous(&maps.1) {
            // The mount shifts IDs; the layer keeps its parent's.
            let own = (top.uid_map.clone(), top.gid_map.clone());
            return Ok((Some(top), own));
        }
        let Some(source) = source.filter(|s| s.own) else {
            // A read-only image's top layer gets no mapped copy: the
            // container's own layer is made with the maps.
            return Ok((Some(top), maps));
        };
        let image = &source.image;
        for m in &image.mapped_layers {
            if let Some(l) = tx.layers.by_id(m) {
                if l.uid_map == maps.0 && l.gid_map == maps.1 {
                    return Ok((Some(l.clone()), maps));
                }
            }
        }
        let grand = match top.parent() {
            Some(p) => Some(st.parent_layer(tx, p)?),
            None => None,
        };
        let mapped = st.put_layer_locked(
            tx,
            &NewLayer {
                mount_label: Some(top.mount_label.clone()).filter(|l| !l.is_empty()),
                access: Access::ReadOnly,
                maps: LayerMaps {
                    uids: MapChoice::Explicit(maps.0.clone()),
                    gids: MapChoice::Explicit(maps.1.clone()),
                },
                ..Default::default()
            },
            grand.as_ref(),
            Fill::Template(&top),
        )?;
        images
            .records_mut()
            .update(&image.id, |i| i.mapped_layers.push(mapped.id.clone()));
        if let Err(e) = images.save() {
            let _ = st.remove_layer_locked(tx, &mapped.id);
            return Err(e);
        }
        Ok((Some(mapped), maps))
    }

    /// Deletes a container: its record and directories, then its layer
    /// (unmounted first).
    pub fn delete(&self, key: &str) -> Result<()> {
        let st = self.store;
        let mut tx = st.layers_tx()?;
        let _images = st.image_store.write()?;
        let mut w = self.cs().write()?;
        let c = w.get(key)?.clone();
        self.cs().delete(&mut w, &c.id)?;
        if tx.layers.by_id(&c.layer).is_some() {
            st.remove_layer_locked(&mut tx, &c.layer)?;
        }
        Ok(())
    }

    /// Changes a container's names; a name another container has moves
    /// here.
    pub fn set_names(&self, key: &str, names: &[String], op: NameOp) -> Result<()> {
        let mut w = self.cs().write()?;
        let id = w.get(key)?.id.clone();
        self.cs().set_names(&mut w, &id, names, op)
    }

    /// Replaces a container's metadata.
    pub fn set_metadata(&self, key: &str, metadata: &str) -> Result<()> {
        let mut w = self.cs().write()?;
        let id = w.get(key)?.id.clone();
        w.records_mut()
            .update(&id, |c| c.metadata = metadata.to_string());
        w.save()
    }

    /// Reads a big-data item of a container.
    pub fn big_data(&self, key: &str, name: &str) -> Result<Vec<u8>> {
        let c = self.get(key)?;
        big_data(self.cs(), &c, name)
    }

    /// The size of a big-data item.
    pub fn big_data_size(&self, key: &str, name: &str) -> Result<i64> {
        let c = self.get(key)?;
        big_data_size(self.cs(), &c, name)
    }

    /// The digest of a big-data item.
    pub fn big_data_digest(&self, key: &str, name: &str) -> Result<String> {
        let c = self.get(key)?;
        big_data_digest(self.cs(), &c, name)
    }

    /// Stores a big-data item with a container.
    pub fn set_big_data(&self, key: &str, name: &str, data: &[u8]) -> Result<()> {
        let mut w = self.cs().write()?;
        self.cs().set_big_data(&mut w, key, name, data)
    }

    /// The container's directory in the graph root (`…/userdata`), created
    /// when missing.
    pub fn dir(&self, key: &str) -> Result<PathBuf> {
        let c = self.get(key)?;
        self.cs().userdata(&c.id)
    }

    /// The container's directory in the run root, created when missing.
    pub fn run_dir(&self, key: &str) -> Result<PathBuf> {
        let c = self.get(key)?;
        self.cs().run_userdata(&c.id)
    }

    /// The container's size: its layer's changes, its big data and the
    /// files in its two directories (which are created, as the reference
    /// creates them).
    pub fn size(&self, key: &str) -> Result<i64> {
        let c = self.get(key)?;
        let mut total: i64 = c.big_data_sizes.values().sum();
        total += self.store.diff_size(None, &c.layer)? as i64;
        for dir in [self.cs().userdata(&c.id)?, self.cs().run_userdata(&c.id)?] {
            total += tree_size(&dir)? as i64;
        }
        Ok(total)
    }

    /// Owners of the mounted container layer's directories that its maps
    /// cannot represent.
    pub fn parent_owners(&self, key: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        let c = self.get(key)?;
        self.store.parent_owners(&c.layer, "ContainerParentOwner")
    }
}

fn explicit(c: &MapChoice) -> Vec<IdMap> {
    match c {
        MapChoice::Explicit(m) => m.clone(),
        MapChoice::Inherit | MapChoice::Host => Vec::new(),
    }
}

fn contiguous(maps: &[IdMap]) -> bool {
    maps.windows(2).all(|w| {
        w[0].container_id.checked_add(w[0].size) == Some(w[1].container_id)
            && w[0].host_id.checked_add(w[0].size) == Some(w[1].host_id)
    })
}

fn flags(req: &NewContainer, mount_label: &str) -> std::collections::BTreeMap<String, Value> {
    let mut f = std::collections::BTreeMap::new();
    f.insert(FLAG_MOUNT_LABEL.to_string(), Value::from(mount_label));
    f.insert(
        FLAG_PROCESS_LABEL.to_string(),
        Value::from(req.process_label.clone().unwrap_or_default()),
    );
    if !req.mount_opts.is_empty() {
        f.insert(
            FLAG_MOUNT_OPTS.to_string(),
            Value::from(req.mount_opts.clone()),
        );
    }
    if req.durability == Durability::Volatile {
        f.insert(FLAG_VOLATILE.to_string(), Value::Bool(true));
    }
    f
}

/// Bytes in the files under `dir` (hard links counted once).
fn tree_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut seen = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| Error::io("read directory", &d, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("read directory", &d, e))?;
            let md = ent
                .metadata()
                .map_err(|e| Error::io("stat", ent.path(), e))?;
            if md.is_dir() {
                stack.push(ent.path());
            } else if seen.insert((md.dev(), md.ino())) {
                total += md.len();
            }
        }
    }
    Ok(total)
}
