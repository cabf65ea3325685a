//! Importing a chain of layers (an image's), concurrently where the driver
//! allows it.
//!
//! On a driver whose applies write only the layer's own directory
//! ([`strata_driver::ConcurrentApply`], overlay), every layer of the chain
//! is recorded (flagged incomplete) and created parent first, then the
//! streams are applied by a few workers at once, then each layer is
//! settled parent first and the flags go. Elsewhere (vfs, btrfs: a child
//! starts as a copy of its applied parent) the layers are imported one
//! after the other, as [`Store::import_layer_checked`] does.
//!
//! Either way the outcome is the same: the layers before the first one
//! that failed are complete; that one and every later one are gone.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use strata_archive::ApplyReport;
use strata_driver::{ConcurrentApply, LayerRef, RootEntry};

use crate::layers::{Layer, LayersTx, FLAG_INCOMPLETE};
use crate::{Error, LayerCheck, NewLayer, Result, Store};

/// Concurrent applies at most: each is a pipeline of its own threads, and
/// more would only add memory.
const MAX_WORKERS: usize = 4;

/// One layer of [`Store::import_chain`].
pub struct ChainLayer<'a> {
    /// The new layer: its parent is a layer in the store or an earlier
    /// layer of the chain.
    pub req: NewLayer,
    /// Its (possibly compressed) tar stream.
    pub diff: Box<dyn Read + Send + 'a>,
    /// What the stream must turn out to be.
    pub check: &'a LayerCheck<'a>,
}

/// What [`Store::import_chain`] did.
#[derive(Debug)]
pub struct ChainImport {
    /// The complete layers, in chain order: every layer before `failed`.
    pub done: Vec<Layer>,
    /// The first layer (its position in the chain) that is not in, and
    /// why; no later layer is in either.
    pub failed: Option<(usize, Error)>,
}

/// A made layer waiting for (or done with) its apply.
struct Slot<'a> {
    layer: Layer,
    diff: Option<Box<dyn Read + Send + 'a>>,
    check: &'a LayerCheck<'a>,
    outcome: Option<Result<ApplyReport>>,
}

impl Store {
    /// Imports a chain of layers, each checked as by
    /// [`Store::import_layer_checked`]; applies them concurrently when
    /// the driver allows it (see the module docs).
    pub fn import_chain(&self, layers: Vec<ChainLayer<'_>>) -> Result<ChainImport> {
        let mut tx = self.layers_tx()?;
        let Some(conc) = self.driver.concurrent_apply().filter(|_| layers.len() > 1) else {
            return self.import_one_by_one(&mut tx, layers);
        };
        let mut slots = Vec::with_capacity(layers.len());
        for (i, l) in layers.into_iter().enumerate() {
            if let Err(e) = self.make_slot(&mut tx, l).map(|s| slots.push(s)) {
                // Nothing was applied yet: the made layers go too.
                self.discard(&mut tx, &slots);
                return Ok(ChainImport {
                    done: Vec::new(),
                    failed: Some((i, e)),
                });
            }
        }
        self.apply_slots(&mut slots);
        self.settle(&mut tx, conc, slots)
    }

    fn import_one_by_one(
        &self,
        tx: &mut LayersTx<'_>,
        layers: Vec<ChainLayer<'_>>,
    ) -> Result<ChainImport> {
        let mut done = Vec::new();
        for (i, mut l) in layers.into_iter().enumerate() {
            let put = self.new_parent(tx, &l.req).and_then(|parent| {
                let fill = super::ops::Fill::Checked(&mut *l.diff, l.check);
                self.put_layer_locked(tx, &l.req, parent.as_ref(), fill)
            });
            match put {
                Ok(layer) => done.push(layer),
                Err(e) => {
                    return Ok(ChainImport {
                        done,
                        failed: Some((i, e)),
                    })
                }
            }
        }
        Ok(ChainImport { done, failed: None })
    }

    /// Records one layer (incomplete) and has the driver create it.
    fn make_slot<'a>(&self, tx: &mut LayersTx<'_>, l: ChainLayer<'a>) -> Result<Slot<'a>> {
        let parent = self.new_parent(tx, &l.req)?;
        let layer = self.new_record(tx, &l.req, parent.as_ref())?;
        tx.layers.records_mut().push(layer.clone());
        tx.save()?;
        let creq = self.create_request(&layer, &l.req, parent.as_ref());
        let made =
            crate::flush::while_applying(self.sync, &self.graph_root, || self.driver.create(&creq))
                .map_err(|e| Error::driver("creating layer", &layer.id, e));
        if let Err(e) = made {
            self.discard_one(tx, &layer.id);
            return Err(e);
        }
        Ok(Slot {
            layer,
            diff: Some(l.diff),
            check: l.check,
            outcome: None,
        })
    }

    /// Applies every slot's stream, a few at once, parents first; once one
    /// fails, later ones (which go anyway) are not started.
    fn apply_slots(&self, slots: &mut [Slot<'_>]) {
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get().max(2))
            .min(MAX_WORKERS)
            .min(slots.len());
        let next = AtomicUsize::new(0);
        let first_failed = AtomicUsize::new(usize::MAX);
        let cells: Vec<Mutex<&mut Slot<'_>>> = slots.iter_mut().map(Mutex::new).collect();
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(cell) = cells.get(i) else { return };
                    if i > first_failed.load(Ordering::SeqCst) {
                        continue;
                    }
                    let mut slot = cell.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(mut diff) = slot.diff.take() else {
                        continue;
                    };
                    let check = slot.check;
                    let out = self.apply_into(&mut slot.layer, &mut *diff, Some(check));
                    if out.is_err() {
                        first_failed.fetch_min(i, Ordering::SeqCst);
                    }
                    slot.outcome = Some(out);
                });
            }
        });
    }

    /// Parent first: the applied layers take what they inherit from their
    /// parent; the data is made durable; the flags go from every layer
    /// before the first failure, and that one and later ones are removed.
    fn settle(
        &self,
        tx: &mut LayersTx<'_>,
        conc: &dyn ConcurrentApply,
        mut slots: Vec<Slot<'_>>,
    ) -> Result<ChainImport> {
        let mut failed = None;
        let mut good = 0;
        for (i, slot) in slots.iter_mut().enumerate() {
            // The earliest slot that is not applied is always one that
            // failed: only slots after a failure are skipped.
            let settled = match slot.outcome.take() {
                Some(Ok(report)) => conc
                    .settle(
                        LayerRef {
                            id: &slot.layer.id,
                            parent: slot.layer.parent(),
                        },
                        RootEntry::of(&report),
                    )
                    .map_err(|e| Error::driver("settling layer", &slot.layer.id, e)),
                Some(Err(e)) => Err(e),
                None => Err(Error::Invalid(format!(
                    "layer {} was not applied",
                    slot.layer.id
                ))),
            };
            if let Err(e) = settled {
                failed = Some((i, e));
                break;
            }
            good = i + 1;
        }
        if let Err(e) = self.sync.sync(&self.graph_root) {
            // Nothing counts as complete that may not be on disk.
            good = 0;
            failed = Some((0, e));
        }
        let bad = slots.split_off(good);
        self.discard(tx, &bad);
        let mut done = Vec::with_capacity(slots.len());
        for mut slot in slots {
            slot.layer.flags.remove(FLAG_INCOMPLETE);
            let finished = slot.layer.clone();
            tx.layers
                .records_mut()
                .update(&slot.layer.id, |l| *l = finished);
            done.push(slot.layer);
        }
        tx.save()?;
        Ok(ChainImport { done, failed })
    }

    /// Removes made layers, children first.
    fn discard(&self, tx: &mut LayersTx<'_>, slots: &[Slot<'_>]) {
        for slot in slots.iter().rev() {
            self.discard_one(tx, &slot.layer.id);
        }
    }

    fn discard_one(&self, tx: &mut LayersTx<'_>, id: &str) {
        if let Err(c) = self.remove_layer_locked(tx, id) {
            tracing::warn!("cleaning up failed layer {id}: {c}");
        }
    }
}
