//! Changes, diffs and diff sizes between layers.

use std::io::{BufReader, Write};

use strata_archive::compression::Encoder;
use strata_archive::{Change, Compression};
use strata_driver::DiffRequest;

use crate::layers::LayersRead;
use crate::record::Kind;
use crate::{Error, Result, Store};

/// gzip's level for diffs: zlib's default, as the reference writes them.
const DIFF_GZIP_LEVEL: u32 = 6;

impl Store {
    /// The layer store holding `key` (the store's own first), locked shared.
    fn layers_holding(&self, key: &str) -> Result<LayersRead<'_>> {
        for s in std::iter::once(&self.layer_store).chain(&self.ro_layer_stores) {
            let read = s.read()?;
            if read.layers.lookup(key).is_some() {
                return Ok(read);
            }
        }
        Err(Error::unknown(Kind::Layer, key))
    }

    fn diff_request(
        f: &LayersRead<'_>,
        from: Option<&str>,
        to: &str,
    ) -> Result<(DiffRequest, bool)> {
        let layers = &f.layers;
        let t = layers.get(to)?;
        let (parent, parent_mappings, is_parent) = match from.filter(|f| !f.is_empty()) {
            Some(from) => {
                let fl = layers.get(from)?;
                (Some(fl.id.clone()), fl.id_mappings(), fl.id == t.parent)
            }
            None => match t.parent() {
                Some(p) => {
                    let pm = layers
                        .lookup(p)
                        .map(|l| l.id_mappings())
                        .unwrap_or_default();
                    (Some(p.to_string()), pm, true)
                }
                None => (None, Default::default(), true),
            },
        };
        Ok((
            DiffRequest {
                id: t.id.clone(),
                id_mappings: t.id_mappings(),
                parent,
                parent_mappings,
                mount_label: (!t.mount_label.is_empty()).then(|| t.mount_label.clone()),
            },
            is_parent,
        ))
    }

    /// Changes of layer `to` against `from` (default: its parent).
    pub fn changes(&self, from: Option<&str>, to: &str) -> Result<Vec<Change>> {
        let f = self.layers_holding(to)?;
        let (req, _) = Self::diff_request(&f, from, to)?;
        self.driver
            .changes(&req)
            .map_err(|e| Error::driver("computing changes of", &req.id, e))
    }

    /// Size in bytes of the changes of `to` against `from` (default: its parent).
    pub fn diff_size(&self, from: Option<&str>, to: &str) -> Result<u64> {
        let f = self.layers_holding(to)?;
        let (req, _) = Self::diff_request(&f, from, to)?;
        self.driver
            .diff_size(&req)
            .map_err(|e| Error::driver("computing diff size of", &req.id, e))
    }

    /// Writes the diff of `to` against `from` (default: its parent) to
    /// `out`, compressed as `compression` asks (default: as the layer was
    /// imported). An imported layer compared with its parent is rebuilt from
    /// its tar-split record, byte for byte as it was imported.
    pub fn diff(
        &self,
        from: Option<&str>,
        to: &str,
        compression: Option<Compression>,
        out: &mut dyn Write,
    ) -> Result<()> {
        let f = self.layers_holding(to)?;
        let (req, is_parent) = Self::diff_request(&f, from, to)?;
        let layer_compression =
            Compression::from_u8(f.layers.get(to)?.compression).unwrap_or_default();
        let kind = compression.unwrap_or(layer_compression);
        let mut w = Encoder::new(kind, out, DIFF_GZIP_LEVEL).map_err(|e| Error::Archive {
            op: "compressing the diff of",
            layer: req.id.clone(),
            source: e,
        })?;
        let ts = f.store.tar_split(&req.id);
        if is_parent && ts.exists() {
            let file = std::fs::File::open(&ts).map_err(|e| Error::io("open", &ts, e))?;
            let record = BufReader::new(flate2::read::GzDecoder::new(file));
            let source = self
                .driver
                .diff_getter(&req.id)
                .map_err(|e| Error::driver("reading files of", &req.id, e))?;
            strata_archive::tarsplit::replay(record, &*source, &mut w).map_err(|e| {
                Error::Archive {
                    op: "replaying tar-split of",
                    layer: req.id.clone(),
                    source: e,
                }
            })?;
        } else {
            let r = self
                .driver
                .diff(&req)
                .map_err(|e| Error::driver("computing diff of", &req.id, e))?;
            // std's copy reads straight from a BufReader's buffer: a read
            // and a write per MiB instead of per 8 KiB.
            std::io::copy(&mut std::io::BufReader::with_capacity(1 << 20, r), &mut w)
                .map_err(|e| Error::io("write diff of", &req.id, e))?;
        }
        w.finish()
            .map(drop)
            .map_err(|e| Error::io("write diff", "<output>", e))
    }
}
