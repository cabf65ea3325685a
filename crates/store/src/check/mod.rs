//! Checking a store for damage, and repairing it: `strata check`.
//!
//! What is looked at, per layer record and then for the store as a whole:
//!
//! ```text
//! <driver>-layers/layers.json   parses (each record that still parses is kept)
//!   each layer                  not left incomplete; parent listed; the driver
//!                               has its data; big-data items present;
//!                               <id>.tar-split.gz present when the layer was
//!                               imported, readable to its end;
//!                               full:  replaying the record with the layer's
//!                                      files gives the tar whose digest and
//!                                      size the record lists (each file's
//!                                      CRC-64 checked on the way)
//!                               quick: each file the record names is there,
//!                                      a regular file of the recorded size
//!   overlay                     link names a 26-character l/ entry that
//!                               points back at the layer; lower lists the
//!                               parents' links, nearest first
//!   a damaged layer's children  damaged too (they cannot be used without it)
//! driver home, <driver>-layers  no layer data, tar-split or big data that no
//!                               record names
//! <run>/<driver>-layers/mountpoints.json  parses; no count for a mount that
//!                               is gone (drivers that really mount)
//! ```
//!
//! Repair removes damaged layers and everything that depends on them
//! (children first), rebuilds what the records describe (overlay links and
//! lower files), removes data no record names and mount counts of mounts
//! that are gone, and moves a record file that does not parse aside
//! (`<file>.damaged-<ns>`) before writing back the records that did parse.
//! It never removes a layer it found intact.

mod items;
mod layers;
mod records;
mod repair;

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

pub use records::{salvage, Salvage};
pub use repair::RepairOutcome;

/// How thoroughly layer contents are verified.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CheckMode {
    /// Replay every layer's tar-split record against its files and compare
    /// digests and sizes.
    #[default]
    Full,
    /// Presence, sizes and records only; no file content is read.
    Quick,
}

/// What [`crate::Store::repair`] may remove besides damaged layers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RepairScope {
    /// Layers (and, once there are images, images).
    #[default]
    Layers,
    /// Also containers whose layers are damaged (`--force`).
    WithContainers,
}

/// The kind of item a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    /// A layer (or a layer-store file or directory).
    Layer,
    /// An image (or an image-store file or directory).
    Image,
    /// A container (or a container-store file or directory).
    Container,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What kind of item.
    pub kind: ItemKind,
    /// The item: a layer ID, or the path of a store file or directory.
    pub id: String,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong with an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A record file does not parse (in whole or in part).
    RecordsDamaged(String),
    /// A mount-count file does not parse.
    MountsDamaged(String),
    /// The layer was left incomplete by an interrupted writer.
    Incomplete,
    /// The layer of this container was left flagged incomplete by an
    /// interrupted create (or the reference's delete); its data is there
    /// (repair completes it, as opening the store does).
    ContainerLayerIncomplete(String),
    /// The parent layer is not listed.
    ParentMissing(String),
    /// An ancestor is damaged.
    ParentDamaged(String),
    /// The driver has no data for the layer.
    DataMissing,
    /// The layer was imported but its tar-split record is gone.
    TarSplitMissing,
    /// The tar-split record cannot be read to its end.
    TarSplitDamaged(String),
    /// A file the record names is missing or not a regular file.
    FileMissing(String),
    /// A file the record names has another size.
    FileSize {
        /// Archive name.
        name: String,
        /// Size in the record.
        expected: u64,
        /// Size on disk.
        found: u64,
    },
    /// Replaying the record found altered or missing content.
    ContentAltered(String),
    /// The replayed tar has another digest than the record lists.
    DigestMismatch {
        /// `diff-digest` of the record.
        expected: String,
        /// Digest of the replayed tar.
        found: String,
    },
    /// The replayed tar has another size than the record lists.
    SizeMismatch {
        /// `diff-size` of the record.
        expected: u64,
        /// Size of the replayed tar.
        found: u64,
    },
    /// A layer the item uses is not listed.
    LayerMissing(String),
    /// A layer the item uses is damaged.
    LayerDamaged(String),
    /// The container's image is not listed.
    ImageMissing(String),
    /// A big-data item the record lists has no file.
    BigDataMissing(String),
    /// Overlay bookkeeping (`link`, `l/`, `lower`) is missing or wrong.
    Links(String),
    /// Layer data, a record or a temporary file that no record names.
    Unnamed(PathBuf),
    /// A mount count for a mount that no longer exists.
    StaleMount {
        /// Recorded mount point.
        path: String,
        /// Recorded count.
        count: u64,
    },
}

impl Problem {
    /// Whether repairing it means removing the layer.
    pub fn removes_layer(&self) -> bool {
        !matches!(
            self,
            Problem::RecordsDamaged(_)
                | Problem::MountsDamaged(_)
                | Problem::ContainerLayerIncomplete(_)
                | Problem::Links(_)
                | Problem::Unnamed(_)
                | Problem::StaleMount { .. }
        )
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::RecordsDamaged(r) => write!(f, "records damaged: {r}"),
            Problem::MountsDamaged(r) => write!(f, "mount records damaged: {r}"),
            Problem::Incomplete => f.write_str("layer is incomplete (interrupted write)"),
            Problem::ContainerLayerIncomplete(c) => write!(
                f,
                "layer of container {c} is flagged incomplete (interrupted create or delete)"
            ),
            Problem::ParentMissing(p) => write!(f, "parent layer {p} is missing"),
            Problem::ParentDamaged(p) => write!(f, "depends on damaged layer {p}"),
            Problem::DataMissing => f.write_str("layer data is missing"),
            Problem::TarSplitMissing => f.write_str("tar-split record is missing"),
            Problem::TarSplitDamaged(r) => write!(f, "tar-split record is damaged: {r}"),
            Problem::FileMissing(n) => write!(f, "file {n:?} is missing"),
            Problem::FileSize {
                name,
                expected,
                found,
            } => write!(f, "file {name:?} has {found} bytes, expected {expected}"),
            Problem::ContentAltered(r) => write!(f, "layer content does not match: {r}"),
            Problem::DigestMismatch { expected, found } => {
                write!(f, "layer content digest is {found}, expected {expected}")
            }
            Problem::SizeMismatch { expected, found } => {
                write!(f, "layer content size is {found}, expected {expected}")
            }
            Problem::BigDataMissing(n) => write!(f, "data item {n:?} is missing"),
            Problem::LayerMissing(l) => write!(f, "layer {l} is missing"),
            Problem::LayerDamaged(l) => write!(f, "layer {l} is damaged"),
            Problem::ImageMissing(i) => write!(f, "image {i} is missing"),
            Problem::Links(r) => write!(f, "overlay links: {r}"),
            Problem::Unnamed(p) => write!(f, "{} is named by no record", p.display()),
            Problem::StaleMount { path, count } => {
                write!(f, "mount count {count} for {path}, which is not mounted")
            }
        }
    }
}

/// The findings of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every problem, grouped by item in the order found.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// Items of `kind` with problems, each with its messages, in order.
    pub fn by_item(&self, kind: ItemKind) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for f in self.findings.iter().filter(|f| f.kind == kind) {
            match out.iter_mut().find(|(id, _)| *id == f.id) {
                Some((_, msgs)) => msgs.push(f.problem.to_string()),
                None => out.push((f.id.clone(), vec![f.problem.to_string()])),
            }
        }
        out
    }

    pub(crate) fn push(&mut self, id: impl Into<String>, problem: Problem) {
        self.push_kind(ItemKind::Layer, id, problem);
    }

    pub(crate) fn push_kind(&mut self, kind: ItemKind, id: impl Into<String>, problem: Problem) {
        self.findings.push(Finding {
            kind,
            id: id.into(),
            problem,
        });
    }

    /// IDs of images or containers that repair removes (damaged records).
    pub fn damaged_items(&self, kind: ItemKind) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for f in &self.findings {
            let removes = !matches!(f.problem, Problem::RecordsDamaged(_) | Problem::Unnamed(_));
            if f.kind == kind && removes && !ids.contains(&f.id) {
                ids.push(f.id.clone());
            }
        }
        ids
    }

    /// IDs of layers that repair removes.
    pub fn damaged_layers(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for f in &self.findings {
            if f.kind == ItemKind::Layer && f.problem.removes_layer() && !ids.contains(&f.id) {
                ids.push(f.id.clone());
            }
        }
        ids
    }
}

/// What a repair did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repaired {
    /// Layers removed.
    pub removed_layers: Vec<String>,
    /// Images removed.
    pub removed_images: Vec<String>,
    /// Containers removed (`--force`).
    pub removed_containers: Vec<String>,
    /// Layers whose overlay links or lower file were rebuilt.
    pub rebuilt: Vec<String>,
    /// Paths of data no record named, removed.
    pub removed_unnamed: Vec<PathBuf>,
    /// Record files moved aside (old path, new path).
    pub moved_aside: Vec<(PathBuf, PathBuf)>,
    /// Layers whose stale mount counts were dropped.
    pub mounts_dropped: Vec<String>,
    /// Containers' layers left flagged incomplete, completed.
    pub completed: Vec<String>,
}
