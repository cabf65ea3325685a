//! Changes, diffs and diff sizes between layers.

use std::io::{BufReader, Write};

use strata_archive::{Change, Compression};
use strata_driver::DiffRequest;

use crate::layers::LayersRead;
use crate::record::Kind;
use crate::{Error, Result, Store};

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
        let mut w = compressor(kind, out)?;
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
    }
}

/// A writer that may compress, finished explicitly so errors surface.
pub(crate) enum Compressor<'a> {
    Plain(&'a mut dyn Write),
    Gzip(Box<strata_archive::ParallelGzip<&'a mut dyn Write>>),
    Zstd(zstd::stream::write::Encoder<'static, &'a mut dyn Write>),
}

impl Write for Compressor<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Compressor::Plain(w) => w.write(buf),
            Compressor::Gzip(w) => w.write(buf),
            Compressor::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Compressor::Plain(w) => w.flush(),
            Compressor::Gzip(w) => w.flush(),
            Compressor::Zstd(w) => w.flush(),
        }
    }
}

impl Compressor<'_> {
    fn finish(self) -> Result<()> {
        let r = match self {
            Compressor::Plain(w) => w.flush(),
            Compressor::Gzip(w) => w.finish().and_then(|w| w.flush()),
            Compressor::Zstd(w) => w.finish().and_then(|w| w.flush()),
        };
        r.map_err(|e| Error::io("write diff", "<output>", e))
    }
}

fn compressor(kind: Compression, out: &mut dyn Write) -> Result<Compressor<'_>> {
    match kind {
        Compression::None => Ok(Compressor::Plain(out)),
        Compression::Gzip => Ok(Compressor::Gzip(
            strata_archive::ParallelGzip::new(out, flate2::Compression::default())
                .map(Box::new)
                .map_err(|e| Error::io("start gzip for", "<output>", e))?,
        )),
        Compression::Zstd => zstd::stream::write::Encoder::new(out, 3)
            .map(Compressor::Zstd)
            .map_err(|e| Error::io("start zstd", "<output>", e)),
        other => Err(Error::Unsupported(format!(
            "{} compression of diffs",
            other.name()
        ))),
    }
}
