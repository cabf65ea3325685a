//! Creating, importing, deleting and describing layers.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use strata_driver::{Access, ApplyDiffOptions, CreateRequest, LayerRef};
use strata_idmap::IdMap;

use crate::files::{remove_dir_if_exists, remove_file_if_exists};
use crate::record::{now, random_id, Layer, FLAG_INCOMPLETE};
use crate::{Error, Result, Store};

/// Where one side (UIDs or GIDs) of a new layer's ID map comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MapChoice {
    /// The parent's map, or the store's for a base layer.
    #[default]
    Inherit,
    /// No mapping (host IDs), whatever the store or the parent use.
    Host,
    /// This map.
    Explicit(Vec<IdMap>),
}

/// Which ID maps a new layer gets, per side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerMaps {
    /// UID map.
    pub uids: MapChoice,
    /// GID map.
    pub gids: MapChoice,
}

/// Arguments of [`Store::create_layer`] and [`Store::import_layer`].
#[derive(Debug, Clone, Default)]
pub struct NewLayer {
    /// ID to use; a random one when `None`.
    pub id: Option<String>,
    /// Parent layer (ID or name).
    pub parent: Option<String>,
    /// Names, which must not be in use.
    pub names: Vec<String>,
    /// SELinux mount label.
    pub mount_label: Option<String>,
    /// Image layer or container layer.
    pub access: Access,
    /// UID/GID maps.
    pub maps: LayerMaps,
    /// Per-layer driver options (`size`, …).
    pub storage_opt: std::collections::BTreeMap<String, String>,
}

/// How [`Store::delete_layer`] treats layers that others depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    /// Refuse to delete a layer that has children.
    Checked,
    /// Delete anyway (the reference's `delete`).
    Unchecked,
}

/// Receives the tar-split record from the driver and gzips it into a file.
/// The archive pipeline calls it from its own tar-split thread, off the
/// applier's critical path. The outcome is reported through a shared slot
/// when the writer drops; the file is made durable by the store's final
/// sync.
struct TarSplitSink {
    enc: Option<std::io::BufWriter<flate2::write::GzEncoder<std::fs::File>>>,
    error: Arc<Mutex<Option<std::io::Error>>>,
}

impl TarSplitSink {
    fn new(file: std::fs::File, error: Arc<Mutex<Option<std::io::Error>>>) -> Self {
        // The record is read back only by us and the reference, which do
        // not care how well it was packed. The recorder writes a line or
        // two per member; fed one line at a time, the encoder spends more
        // on per-call work (a byte-wise CRC-32, a write of some 80 bytes to
        // the file) than on compressing, so it gets 256 KiB at a time.
        let enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let enc = std::io::BufWriter::with_capacity(256 * 1024, enc);
        Self {
            enc: Some(enc),
            error,
        }
    }
}

impl Write for TarSplitSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.enc.as_mut() {
            Some(e) => e.write(buf),
            None => Err(std::io::Error::other("tar-split sink closed")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.enc.as_mut() {
            Some(e) => e.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for TarSplitSink {
    fn drop(&mut self) {
        if let Some(enc) = self.enc.take() {
            let finished = enc
                .into_inner()
                .map_err(std::io::IntoInnerError::into_error)
                .and_then(|e| e.finish());
            if let Err(e) = finished {
                if let Ok(mut slot) = self.error.lock() {
                    *slot = Some(e);
                }
            }
        }
    }
}

impl Store {
    /// All layer records, in store order.
    pub fn layers(&mut self) -> Result<Vec<Layer>> {
        self.read(|s| Ok(s.state.layers.clone()))
    }

    /// One layer's record, by ID, name or unique ID prefix.
    pub fn layer(&mut self, key: &str) -> Result<Layer> {
        self.read(|s| {
            let i = s.state.get(key)?;
            Ok(s.state.layers[i].clone())
        })
    }

    /// Whether a layer exists.
    pub fn exists(&mut self, key: &str) -> Result<bool> {
        self.read(|s| Ok(s.state.lookup(key).is_some()))
    }

    /// Creates an empty layer (or a child of `req.parent`).
    pub fn create_layer(&mut self, req: &NewLayer) -> Result<Layer> {
        self.put_layer(req, None)
    }

    /// Creates a layer and applies a (possibly compressed) tar stream to it,
    /// keeping its tar-split record so `diff` can reproduce it exactly.
    pub fn import_layer(&mut self, req: &NewLayer, diff: &mut (dyn Read + Send)) -> Result<Layer> {
        self.put_layer(req, Some(diff))
    }

    fn put_layer(&mut self, req: &NewLayer, diff: Option<&mut (dyn Read + Send)>) -> Result<Layer> {
        self.write(|s| {
            let parent = match req.parent.as_deref().filter(|p| !p.is_empty()) {
                Some(p) => Some(s.state.layers[s.state.get(p)?].clone()),
                None => None,
            };
            let id = match req.id.as_deref().filter(|i| !i.is_empty()) {
                Some(id) => {
                    validate_id(id)?;
                    if s.state.layers.iter().any(|l| l.id == id) {
                        return Err(Error::DuplicateId(id.to_string()));
                    }
                    id.to_string()
                }
                None => random_id(),
            };
            let mut names: Vec<String> = Vec::new();
            for n in &req.names {
                if let Some(o) = s.state.name_owner(n) {
                    return Err(Error::DuplicateName(
                        n.clone(),
                        s.state.layers[o].id.clone(),
                    ));
                }
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
            let (uid_map, gid_map) = s.choose_maps(&req.maps, parent.as_ref());
            let mut layer = Layer {
                id: id.clone(),
                names,
                parent: parent.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
                mount_label: req.mount_label.clone().unwrap_or_default(),
                created: now(),
                uid_map,
                gid_map,
                ..Default::default()
            };
            layer
                .flags
                .insert(FLAG_INCOMPLETE.to_string(), Value::Bool(true));
            s.state.layers.push(layer.clone());
            s.save()?;
            match s.fill_layer(&mut layer, req, diff) {
                Ok(()) => {
                    layer.flags.remove(FLAG_INCOMPLETE);
                    if let Some(l) = s.state.layers.iter_mut().find(|l| l.id == id) {
                        *l = layer.clone();
                    }
                    s.save()?;
                    Ok(layer)
                }
                Err(e) => {
                    if let Err(c) = s.remove_layer_locked(&id) {
                        tracing::warn!("cleaning up failed layer {id}: {c}");
                    }
                    Err(e)
                }
            }
        })
    }

    /// Driver create, optional apply, then a sync so the data is durable
    /// before the incomplete flag goes.
    fn fill_layer(
        &mut self,
        layer: &mut Layer,
        req: &NewLayer,
        diff: Option<&mut (dyn Read + Send)>,
    ) -> Result<()> {
        let creq = CreateRequest {
            id: layer.id.clone(),
            parent: layer.parent().map(str::to_string),
            access: req.access,
            mount_label: req.mount_label.clone(),
            storage_opt: req.storage_opt.clone(),
            id_mappings: layer.id_mappings(),
        };
        // A vfs child is a full copy of its parent: its writeback overlaps
        // the copy as an apply's does.
        crate::flush::while_applying(self.sync, &self.graph_root, || self.driver.create(&creq))
            .map_err(|e| Error::driver("creating layer", &layer.id, e))?;
        if let Some(diff) = diff {
            self.apply_into(layer, diff)?;
        }
        self.sync.sync(&self.graph_root)
    }

    /// Applies `diff` to an existing layer (its content is added to what is
    /// there); returns the uncompressed size.
    pub fn apply_diff(&mut self, key: &str, diff: &mut (dyn Read + Send)) -> Result<u64> {
        self.write(|s| {
            let i = s.state.get(key)?;
            let mut layer = s.state.layers[i].clone();
            s.apply_into(&mut layer, diff)?;
            s.sync.sync(&s.graph_root)?;
            s.state.layers[i] = layer.clone();
            s.save()?;
            Ok(layer.uncompressed_size as u64)
        })
    }

    fn apply_into(&mut self, layer: &mut Layer, diff: &mut (dyn Read + Send)) -> Result<()> {
        let final_path = self.paths.tar_split(&layer.id);
        let tmp = self
            .paths
            .layers_dir
            .join(format!(".tmp-{}.tar-split.gz", layer.id));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode_0600()
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        let error = Arc::new(Mutex::new(None));
        let sink = TarSplitSink::new(file, error.clone());
        let opts = ApplyDiffOptions {
            id_mappings: layer.id_mappings(),
            mount_label: (!layer.mount_label.is_empty()).then(|| layer.mount_label.clone()),
            ..Default::default()
        };
        let target = LayerRef {
            id: &layer.id,
            parent: layer.parent(),
        };
        let root = self.graph_root.clone();
        let res = crate::flush::while_applying(self.sync, &root, || {
            self.driver
                .apply_diff(target, &opts, diff, Some(Box::new(sink)))
        });
        let sink_err = error.lock().ok().and_then(|mut e| e.take());
        let report = match (res, sink_err) {
            (Ok(r), None) => r,
            // The record's own failure is the cause when there is one.
            (_, Some(e)) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io("write", &tmp, e));
            }
            (Err(e), None) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::driver("applying diff to", &layer.id, e));
            }
        };
        if let Some(name) = &report.replaced_member {
            // The record could not rebuild the tar (an earlier member's
            // content is gone from the layer): keep none, so `diff` uses
            // the driver's diff, as the reference does without a record.
            tracing::info!(
                "layer {}: member {:?} replaces an earlier member of the same tar; \
                 keeping no tar-split record",
                layer.id,
                String::from_utf8_lossy(name)
            );
            let _ = std::fs::remove_file(&tmp);
            remove_file_if_exists(&final_path)?;
            layer
                .flags
                .insert(crate::record::FLAG_NO_TAR_SPLIT.into(), Value::Bool(true));
        } else {
            std::fs::rename(&tmp, &final_path).map_err(|e| Error::io("rename", &final_path, e))?;
            layer.flags.remove(crate::record::FLAG_NO_TAR_SPLIT);
        }
        layer.compressed_digest = report.compressed_digest;
        layer.compressed_size = report.compressed_size as i64;
        layer.uncompressed_digest = report.uncompressed_digest;
        layer.uncompressed_size = report.uncompressed_size as i64;
        layer.compression = report.compression.as_u8();
        layer.uids = report.uids;
        layer.gids = report.gids;
        Ok(())
    }

    fn choose_maps(&self, maps: &LayerMaps, parent: Option<&Layer>) -> (Vec<IdMap>, Vec<IdMap>) {
        let pick = |c: &MapChoice, parent_map: Option<&Vec<IdMap>>, store: &[IdMap]| match c {
            MapChoice::Inherit => parent_map.cloned().unwrap_or_else(|| store.to_vec()),
            MapChoice::Host => Vec::new(),
            MapChoice::Explicit(m) => m.clone(),
        };
        (
            pick(
                &maps.uids,
                parent.map(|p| &p.uid_map),
                self.default_maps.uids(),
            ),
            pick(
                &maps.gids,
                parent.map(|p| &p.gid_map),
                self.default_maps.gids(),
            ),
        )
    }

    /// Deletes a layer: unmounts it as often as it is mounted, removes its
    /// data, tar-split and big data, then its record.
    pub fn delete_layer(&mut self, key: &str, safety: Safety) -> Result<()> {
        self.write(|s| {
            let i = s.state.get(key)?;
            let id = s.state.layers[i].id.clone();
            if safety == Safety::Checked {
                let kids = s.state.children(&id);
                if !kids.is_empty() {
                    return Err(Error::HasChildren(id, kids.join(", ")));
                }
            }
            s.remove_layer_locked(&id)
        })
    }

    /// Deletes every layer, children before parents, unmounting each.
    pub fn wipe(&mut self) -> Result<()> {
        self.write(|s| {
            loop {
                let leaf = s
                    .state
                    .layers
                    .iter()
                    .rev()
                    .find(|l| s.state.children(&l.id).is_empty())
                    .map(|l| l.id.clone());
                match leaf {
                    Some(id) => s.remove_layer_locked(&id)?,
                    None => break,
                }
            }
            s.save()
        })
    }

    /// Removes a layer with the locks held; saves.
    pub(crate) fn remove_layer_locked(&mut self, id: &str) -> Result<()> {
        while self.state.mount_count(id) > 0 {
            self.unmount_locked(id, crate::Force::No)?;
        }
        // Flag the record first: a crash while the data goes leaves a
        // layer the next read-write open finishes deleting, never a listed
        // layer with half its files.
        if let Some(l) = self.state.layers.iter_mut().find(|l| l.id == id) {
            if !l.is_incomplete() {
                l.flags
                    .insert(FLAG_INCOMPLETE.to_string(), Value::Bool(true));
                self.save()?;
            }
        }
        self.driver
            .remove(id)
            .map_err(|e| Error::driver("removing layer", id, e))?;
        remove_file_if_exists(&self.paths.tar_split(id))?;
        remove_dir_if_exists(&self.paths.data_dir(id))?;
        // With sync=filesystem the removals are made durable before the
        // record goes: a power cut must not leave data no record names.
        self.sync.sync(&self.graph_root)?;
        self.state.layers.retain(|l| l.id != id);
        self.state.mounts.retain(|m| m.id != id);
        self.save()
    }

    /// Replaces a layer's names (each is taken from any layer that has it).
    pub fn set_names(&mut self, key: &str, names: &[String]) -> Result<()> {
        self.change_names(key, names, NameOp::Set)
    }

    /// Adds names to a layer (each is taken from any layer that has it).
    pub fn add_names(&mut self, key: &str, names: &[String]) -> Result<()> {
        self.change_names(key, names, NameOp::Add)
    }

    fn change_names(&mut self, key: &str, names: &[String], op: NameOp) -> Result<()> {
        self.write(|s| {
            let i = s.state.get(key)?;
            let mut list = match op {
                NameOp::Set => Vec::new(),
                NameOp::Add => s.state.layers[i].names.clone(),
            };
            for n in names {
                if !list.contains(n) {
                    list.push(n.clone());
                }
            }
            for (j, l) in s.state.layers.iter_mut().enumerate() {
                if j != i {
                    l.names.retain(|n| !list.contains(n));
                }
            }
            s.state.layers[i].names = list;
            s.save()
        })
    }

    /// Sets a layer's metadata string.
    pub fn set_metadata(&mut self, key: &str, metadata: &str) -> Result<()> {
        self.write(|s| {
            let i = s.state.get(key)?;
            s.state.layers[i].metadata = metadata.to_string();
            s.save()
        })
    }

    /// The path of a layer's big-data item.
    fn big_data_path(&self, id: &str, name: &str) -> PathBuf {
        self.paths
            .data_dir(id)
            .join(crate::files::big_data_file_name(name))
    }

    /// Reads a layer's big-data item.
    pub fn big_data(&mut self, key: &str, name: &str) -> Result<Vec<u8>> {
        self.read(|s| {
            let i = s.state.get(key)?;
            let l = &s.state.layers[i];
            if !l.big_data_names.iter().any(|n| n == name) {
                return Err(Error::DataUnknown {
                    layer: l.id.clone(),
                    name: name.to_string(),
                });
            }
            let p = s.big_data_path(&l.id, name);
            std::fs::read(&p).map_err(|e| Error::io("read", p, e))
        })
    }

    /// Stores a big-data item with a layer.
    pub fn set_big_data(&mut self, key: &str, name: &str, data: &[u8]) -> Result<()> {
        if name.is_empty() {
            return Err(Error::Invalid(
                "can't set empty name for layer big data item".into(),
            ));
        }
        self.write(|s| {
            let i = s.state.get(key)?;
            let id = s.state.layers[i].id.clone();
            crate::files::mkdir_all(&s.paths.data_dir(&id), 0o700)?;
            let persist = s.sync.persist();
            crate::files::write_replacing(&s.big_data_path(&id, name), data, 0o600, persist)?;
            let l = &mut s.state.layers[i];
            if !l.big_data_names.iter().any(|n| n == name) {
                l.big_data_names.push(name.to_string());
                s.save()?;
            }
            Ok(())
        })
    }
}

#[derive(Clone, Copy)]
enum NameOp {
    Set,
    Add,
}

fn validate_id(id: &str) -> Result<()> {
    if id.contains('/') || id == "." || id == ".." || id.contains('\0') {
        return Err(Error::Invalid(format!("invalid layer ID {id:?}")));
    }
    Ok(())
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}
