//! Creating, importing, deleting and describing layers.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use strata_archive::{ApplyReport, Compression};
use strata_driver::{Access, ApplyDiffOptions, CreateRequest, LayerRef};
use strata_idmap::IdMap;

use crate::files::{remove_dir_if_exists, remove_file_if_exists};
use crate::layers::{children, Layer, LayersTx, FLAG_INCOMPLETE};
use crate::record::{dedup_names, now, validate_id, Kind};
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
    /// An image layer on an image layer: see
    /// [`strata_driver::CreateRequest::share_parent_files`].
    pub share_parent_files: bool,
}

/// What a new layer's content is.
/// What an imported stream must turn out to be before its layer counts as
/// complete (see [`Store::import_layer_checked`]).
pub struct LayerCheck<'a> {
    /// Called with what the pipeline measured (digests and sizes of the
    /// input and of the tar); an error rejects the layer, which is then
    /// removed. The error comes back as [`Error::Rejected`].
    pub verify: &'a (dyn Fn(&ApplyReport) -> std::result::Result<(), BoxError> + Sync),
    /// How the layer's compressed digest, size and compression are recorded.
    pub record: RecordInput,
}

/// An error a [`LayerCheck`] returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How an imported layer's `compressed-*` fields are recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecordInput {
    /// As the input was (its digest, size and compression).
    #[default]
    AsRead,
    /// As the uncompressed tar (what containers/image records for a stream
    /// it decompressed itself, such as a docker-archive layer).
    AsUncompressed,
}

pub(crate) enum Fill<'a> {
    /// Empty, or a copy of the parent for drivers that copy.
    Empty,
    /// A layer stream applied to it.
    Diff(&'a mut (dyn Read + Send)),
    /// A tar stream that must pass a check before the layer is complete.
    Checked(&'a mut (dyn Read + Send), &'a LayerCheck<'a>),
    /// An ID-mapped copy of this layer (a mapped top layer of an image).
    Template(&'a Layer),
    /// Empty, and still flagged incomplete when this returns: a
    /// container's layer, which the container's record completes
    /// ([`Store::complete_layer`]), so that a crash in between leaves a
    /// layer the next open removes instead of an orphan.
    ForContainer,
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
    /// All layer records: the store's own, then those of the read-only
    /// stores.
    pub fn layers(&self) -> Result<Vec<Layer>> {
        let mut out = self.layer_store.read()?.layers.list().to_vec();
        for ro in &self.ro_layer_stores {
            out.extend(ro.read()?.layers.list().iter().cloned());
        }
        Ok(out)
    }

    /// One layer's record, by ID, name or unique ID prefix (the store's
    /// own layers first).
    pub fn layer(&self, key: &str) -> Result<Layer> {
        if let Some(l) = self.layer_store.read()?.layers.lookup(key) {
            return Ok(l.clone());
        }
        for ro in &self.ro_layer_stores {
            if let Some(l) = ro.read()?.layers.lookup(key) {
                return Ok(l.clone());
            }
        }
        Err(Error::unknown(Kind::Layer, key))
    }

    /// Creates an empty layer (or a child of `req.parent`).
    pub fn create_layer(&self, req: &NewLayer) -> Result<Layer> {
        self.put_layer(req, Fill::Empty)
    }

    /// Creates a layer and applies a (possibly compressed) tar stream to it,
    /// keeping its tar-split record so `diff` can reproduce it exactly.
    pub fn import_layer(&self, req: &NewLayer, diff: &mut (dyn Read + Send)) -> Result<Layer> {
        self.put_layer(req, Fill::Diff(diff))
    }

    /// Like [`Store::import_layer`], but the stream must pass `check`
    /// before the layer counts as complete; a layer that fails it is
    /// removed, so no one ever sees it (image imports verify blob and diff
    /// digests this way without hashing twice).
    pub fn import_layer_checked(
        &self,
        req: &NewLayer,
        diff: &mut (dyn Read + Send),
        check: &LayerCheck<'_>,
    ) -> Result<Layer> {
        // The check's own lifetime is enough for this call.
        let check: &LayerCheck<'_> = check;
        self.put_layer(req, Fill::Checked(diff, check))
    }

    fn put_layer(&self, req: &NewLayer, fill: Fill<'_>) -> Result<Layer> {
        let mut tx = self.layers_tx()?;
        let parent = self.new_parent(&tx, req)?;
        self.put_layer_locked(&mut tx, req, parent.as_ref(), fill)
    }

    /// The parent `req` names, if any, when it may be one.
    pub(crate) fn new_parent(&self, tx: &LayersTx<'_>, req: &NewLayer) -> Result<Option<Layer>> {
        let Some(p) = req.parent.as_deref().filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let parent = self.parent_layer(tx, p)?;
        // A container's layer is no base for others.
        if self
            .container_store
            .read()?
            .by_alt_key(&parent.id)
            .is_some()
        {
            return Err(Error::Invalid(
                "would-be parent layer is a container".into(),
            ));
        }
        Ok(Some(parent))
    }

    /// A layer that can be a parent: one of the store's own or of a
    /// read-only store.
    pub(crate) fn parent_layer(&self, tx: &LayersTx<'_>, key: &str) -> Result<Layer> {
        if let Some(l) = tx.layers.lookup(key) {
            return Ok(l.clone());
        }
        for ro in &self.ro_layer_stores {
            if let Some(l) = ro.read()?.layers.lookup(key) {
                return Ok(l.clone());
            }
        }
        Err(Error::unknown(Kind::Layer, key))
    }

    /// Makes a layer with the layer locks held: the record first, flagged
    /// incomplete, then the driver's data, then the record again.
    pub(crate) fn put_layer_locked(
        &self,
        tx: &mut LayersTx<'_>,
        req: &NewLayer,
        parent: Option<&Layer>,
        fill: Fill<'_>,
    ) -> Result<Layer> {
        let mut layer = self.new_record(tx, req, parent)?;
        let id = layer.id.clone();
        tx.layers.records_mut().push(layer.clone());
        tx.save()?;
        let pending = matches!(fill, Fill::ForContainer);
        let filled = match fill {
            Fill::Template(t) => self.fill_from_template(&mut layer, req, parent, t),
            Fill::Diff(d) => self.fill_layer(&mut layer, req, parent, Some((d, None))),
            Fill::Checked(d, c) => self.fill_layer(&mut layer, req, parent, Some((d, Some(c)))),
            Fill::Empty | Fill::ForContainer => self.fill_layer(&mut layer, req, parent, None),
        };
        match filled {
            Ok(()) if pending => Ok(layer),
            Ok(()) => {
                layer.flags.remove(FLAG_INCOMPLETE);
                let done = layer.clone();
                tx.layers.records_mut().update(&id, |l| *l = done);
                tx.save()?;
                Ok(layer)
            }
            Err(e) => {
                if let Err(c) = self.remove_layer_locked(tx, &id) {
                    tracing::warn!("cleaning up failed layer {id}: {c}");
                }
                Err(e)
            }
        }
    }

    /// The record of a new layer, flagged incomplete: its ID (given, and
    /// then free, or random), names (free), maps; not yet in the store.
    pub(crate) fn new_record(
        &self,
        tx: &LayersTx<'_>,
        req: &NewLayer,
        parent: Option<&Layer>,
    ) -> Result<Layer> {
        let id = tx.layers.new_id(req.id.as_deref())?;
        let names = dedup_names(&req.names);
        tx.layers.check_free_names(&names)?;
        let (uid_map, gid_map) = self.choose_maps(&req.maps, parent);
        strata_idmap::IdMappings::checked(uid_map.clone(), gid_map.clone())?;
        let mut layer = Layer {
            id,
            names,
            parent: parent.map(|p| p.id.clone()).unwrap_or_default(),
            mount_label: req.mount_label.clone().unwrap_or_default(),
            created: now(),
            uid_map,
            gid_map,
            ..Default::default()
        };
        layer
            .flags
            .insert(FLAG_INCOMPLETE.to_string(), Value::Bool(true));
        Ok(layer)
    }

    /// Clears the incomplete flag of a layer made with
    /// [`Fill::ForContainer`].
    pub(crate) fn complete_layer(&self, tx: &mut LayersTx<'_>, id: &str) -> Result<()> {
        tx.layers
            .records_mut()
            .update(id, |l| l.flags.remove(FLAG_INCOMPLETE));
        tx.save()
    }

    /// Driver create, optional apply, then a sync so the data is durable
    /// before the incomplete flag goes.
    fn fill_layer(
        &self,
        layer: &mut Layer,
        req: &NewLayer,
        parent: Option<&Layer>,
        diff: Option<(&mut (dyn Read + Send), Option<&LayerCheck<'_>>)>,
    ) -> Result<()> {
        let creq = self.create_request(layer, req, parent);
        // A vfs child is a full copy of its parent: its writeback overlaps
        // the copy as an apply's does.
        crate::flush::while_applying(self.sync, &self.graph_root, || self.driver.create(&creq))
            .map_err(|e| Error::driver("creating layer", &layer.id, e))?;
        if let Some((diff, check)) = diff {
            self.apply_into(layer, diff, check)?;
        }
        self.sync.sync(&self.graph_root)
    }

    /// An ID-mapped copy of a template layer: the driver copies its
    /// content with the new maps; the record takes its digests, sizes,
    /// ID sets and tar-split record.
    fn fill_from_template(
        &self,
        layer: &mut Layer,
        req: &NewLayer,
        parent: Option<&Layer>,
        template: &Layer,
    ) -> Result<()> {
        let creq = self.create_request(layer, req, parent);
        crate::flush::while_applying(self.sync, &self.graph_root, || {
            self.driver
                .create_from_template(&creq, &template.id, &template.id_mappings())
        })
        .map_err(|e| Error::driver("creating layer", &layer.id, e))?;
        layer.compressed_digest = template.compressed_digest.clone();
        layer.compressed_size = template.compressed_size;
        layer.uncompressed_digest = template.uncompressed_digest.clone();
        layer.uncompressed_size = template.uncompressed_size;
        layer.compression = template.compression;
        layer.uids = template.uids.clone();
        layer.gids = template.gids.clone();
        let from = self.layer_store.tar_split(&template.id);
        if from.exists() {
            let to = self.layer_store.tar_split(&layer.id);
            std::fs::copy(&from, &to).map_err(|e| Error::io("copy", &to, e))?;
        }
        self.sync.sync(&self.graph_root)
    }

    pub(crate) fn create_request(
        &self,
        layer: &Layer,
        req: &NewLayer,
        parent: Option<&Layer>,
    ) -> CreateRequest {
        CreateRequest {
            id: layer.id.clone(),
            parent: layer.parent().map(str::to_string),
            access: req.access,
            mount_label: req.mount_label.clone(),
            storage_opt: req.storage_opt.clone(),
            id_mappings: layer.id_mappings(),
            // Maps other than the parent's: the driver re-owns the parent's
            // files (the reference's Create + UpdateLayerIDMap).
            parent_mappings: parent.map(Layer::id_mappings),
            share_parent_files: req.share_parent_files,
        }
    }

    /// Applies `diff` to an existing layer (its content is added to what is
    /// there); returns the uncompressed size.
    pub fn apply_diff(&self, key: &str, diff: &mut (dyn Read + Send)) -> Result<u64> {
        let mut tx = self.layers_tx()?;
        let mut layer = tx.get(key)?.clone();
        self.apply_into(&mut layer, diff, None)?;
        self.sync.sync(&self.graph_root)?;
        let size = layer.uncompressed_size as u64;
        let id = layer.id.clone();
        tx.layers.records_mut().update(&id, |l| *l = layer);
        tx.save()?;
        Ok(size)
    }

    /// Applies a layer stream to the made layer `layer` and fills in its
    /// record from what the pass measured, once `check` passed.
    pub(crate) fn apply_into(
        &self,
        layer: &mut Layer,
        diff: &mut (dyn Read + Send),
        check: Option<&LayerCheck<'_>>,
    ) -> Result<ApplyReport> {
        let final_path = self.layer_store.tar_split(&layer.id);
        let tmp = self
            .layer_store
            .dir()
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
        let res = crate::flush::while_applying(self.sync, &self.graph_root, || {
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
        if let Some(c) = check {
            if let Err(e) = (c.verify)(&report) {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::Rejected {
                    layer: layer.id.clone(),
                    source: e,
                });
            }
        }
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
                .insert(super::record::FLAG_NO_TAR_SPLIT.into(), Value::Bool(true));
        } else {
            std::fs::rename(&tmp, &final_path).map_err(|e| Error::io("rename", &final_path, e))?;
            layer.flags.remove(super::record::FLAG_NO_TAR_SPLIT);
        }
        if check.map(|c| c.record).unwrap_or_default() == RecordInput::AsUncompressed {
            layer.compressed_digest = report.uncompressed_digest.clone();
            layer.compressed_size = report.uncompressed_size as i64;
            layer.compression = Compression::None.as_u8();
        } else {
            layer.compressed_digest = report.compressed_digest.clone();
            layer.compressed_size = report.compressed_size as i64;
            layer.compression = report.compression.as_u8();
        }
        layer.uncompressed_digest = report.uncompressed_digest.clone();
        layer.uncompressed_size = report.uncompressed_size as i64;
        layer.uids = report.uids.clone();
        layer.gids = report.gids.clone();
        Ok(report)
    }

    pub(crate) fn choose_maps(
        &self,
        maps: &LayerMaps,
        parent: Option<&Layer>,
    ) -> (Vec<IdMap>, Vec<IdMap>) {
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
    /// data, tar-split and big data, then its record. [`Safety::Checked`]
    /// refuses a layer that has children or is the top layer of an image or
    /// the layer of a container; deleting a mapped layer drops it from its
    /// image's `mapped-layers`.
    pub fn delete_layer(&self, key: &str, safety: Safety) -> Result<()> {
        let mut tx = self.layers_tx()?;
        let mut images = self.image_store.write()?;
        let containers = self.container_store.read()?;
        let id = tx.get(key)?.id.clone();
        if safety == Safety::Checked {
            if let Some(kid) = children(tx.layers.list(), &id).first() {
                return Err(Error::HasChildren(id, kid.clone()));
            }
            if let Some(i) = images.list().iter().find(|i| i.top_layer == id) {
                return Err(Error::InUse {
                    kind: Kind::Layer,
                    id,
                    user_kind: Kind::Image,
                    user: i.id.clone(),
                });
            }
            if let Some(c) = containers.by_alt_key(&id) {
                return Err(Error::InUse {
                    kind: Kind::Layer,
                    id,
                    user_kind: Kind::Container,
                    user: c.id.clone(),
                });
            }
        }
        self.remove_layer_locked(&mut tx, &id)?;
        if images.list().iter().any(|i| i.mapped_layers.contains(&id)) {
            images
                .records_mut()
                .for_each_mut(|i| i.mapped_layers.retain(|m| *m != id));
            images.save()?;
        }
        Ok(())
    }

    /// Removes a layer with the layer locks held; saves.
    pub(crate) fn remove_layer_locked(&self, tx: &mut LayersTx<'_>, id: &str) -> Result<()> {
        self.remove_layers_locked(tx, &[id.to_string()])
    }

    /// Removes layers with the layer locks held: unmounts each as often as
    /// it is mounted, flags them all incomplete in one save, removes their
    /// data, tar-split and big data, then their records in one more save.
    pub(crate) fn remove_layers_locked(&self, tx: &mut LayersTx<'_>, ids: &[String]) -> Result<()> {
        for id in ids {
            while tx.mount_count(id) > 0 {
                self.unmount_locked(tx, id, crate::Force::No)?;
            }
        }
        // Flag the records first: a crash while the data goes leaves
        // layers the next read-write open finishes deleting, never a listed
        // layer with half its files.
        let unflagged: Vec<&String> = ids
            .iter()
            .filter(|id| tx.layers.by_id(id).is_some_and(|l| !l.is_incomplete()))
            .collect();
        if !unflagged.is_empty() {
            for id in unflagged {
                tx.layers.records_mut().update(id, |l| {
                    l.flags
                        .insert(FLAG_INCOMPLETE.to_string(), Value::Bool(true));
                });
            }
            tx.save()?;
        }
        for id in ids {
            match self.driver.remove(id) {
                Ok(()) => {}
                // An ID the driver refuses is one it never made a layer for
                // (its create failed the same way): nothing to remove.
                Err(e) if e.kind() == strata_driver::ErrorKind::InvalidInput => {
                    tracing::info!("layer {id}: the driver has nothing to remove: {e}");
                }
                Err(e) => return Err(Error::driver("removing layer", id, e)),
            }
            remove_file_if_exists(&self.layer_store.tar_split(id))?;
            remove_dir_if_exists(&self.layer_store.data_dir(id))?;
        }
        // With sync=filesystem the removals are made durable before the
        // records go: a power cut must not leave data no record names.
        self.sync.sync(&self.graph_root)?;
        let gone: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        tx.layers
            .records_mut()
            .retain(|l| !gone.contains(l.id.as_str()));
        tx.mounts
            .records_mut()
            .retain(|m| !gone.contains(m.id.as_str()));
        tx.save()
    }

    /// The path of a layer's big-data item.
    fn layer_data_dir(&self, id: &str) -> Result<PathBuf> {
        validate_id(Kind::Layer, id)?;
        Ok(self.layer_store.data_dir(id))
    }

    /// Reads a layer's big-data item.
    pub fn big_data(&self, key: &str, name: &str) -> Result<Vec<u8>> {
        let l = self.layer(key)?;
        if !l.big_data_names.iter().any(|n| n == name) {
            return Err(Error::DataUnknown {
                kind: Kind::Layer,
                id: l.id.clone(),
                name: name.to_string(),
            });
        }
        let dir = match self.layer_store.read()?.layers.by_id(&l.id) {
            Some(_) => self.layer_data_dir(&l.id)?,
            None => self.ro_layer_data_dir(&l.id)?,
        };
        crate::bigdata::read(&dir, name)
    }

    fn ro_layer_data_dir(&self, id: &str) -> Result<PathBuf> {
        validate_id(Kind::Layer, id)?;
        for ro in &self.ro_layer_stores {
            if ro.read()?.layers.by_id(id).is_some() {
                return Ok(ro.data_dir(id));
            }
        }
        Err(Error::unknown(Kind::Layer, id))
    }

    /// Stores a big-data item with a layer.
    pub fn set_big_data(&self, key: &str, name: &str, data: &[u8]) -> Result<()> {
        if name.is_empty() {
            return Err(Error::Invalid(
                "can't set empty name for layer big data item".into(),
            ));
        }
        let mut tx = self.layers_tx()?;
        let id = tx.get(key)?.id.clone();
        crate::bigdata::write(&self.layer_data_dir(&id)?, name, data, self.sync.persist())?;
        if !tx.get(&id)?.big_data_names.iter().any(|n| n == name) {
            tx.layers
                .records_mut()
                .update(&id, |l| l.big_data_names.push(name.to_string()));
            tx.save()?;
        }
        Ok(())
    }
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
