//! Generic diff-family operations built on mount (`get`/`put`) and the
//! archive engine; the seed's `NaiveDiffDriver`, `NaiveLayerIDMapUpdater` and
//! `NaiveCreateFromTemplate`. Drivers with a native path override the
//! corresponding [`Driver`] methods; these stay callable directly.

use std::io::Read;

use idmap::IdMappings;

use crate::{
    ApplyDiffOptions, ApplyReport, Change, CreateRequest, DiffRequest, Driver, Error, FileSource,
    LayerRef, Result,
};

fn todo(what: &str) -> Error {
    Error::Unsupported(format!("{what} (not yet implemented)"))
}

/// Generic diff: changes against the parent, exported as a tar.
pub fn diff<D: Driver + ?Sized>(d: &D, req: &DiffRequest) -> Result<Box<dyn Read + Send>> {
    let _ = (d, req);
    Err(todo("naive diff"))
}

/// Generic changes: mounts both layers and compares the trees.
pub fn changes<D: Driver + ?Sized>(d: &D, req: &DiffRequest) -> Result<Vec<Change>> {
    let _ = (d, req);
    Err(todo("naive changes"))
}

/// Generic apply: mounts the layer and applies onto the full tree.
pub fn apply_diff<D: Driver + ?Sized>(
    d: &D,
    target: LayerRef<'_>,
    opts: &ApplyDiffOptions,
    diff: &mut (dyn Read + Send),
    tar_split: Option<Box<dyn std::io::Write + Send>>,
) -> Result<ApplyReport> {
    let _ = (d, target, opts, diff, tar_split);
    Err(todo("naive apply-diff"))
}

/// Generic diff size: size of the changes against the parent.
pub fn diff_size<D: Driver + ?Sized>(d: &D, req: &DiffRequest) -> Result<u64> {
    let _ = (d, req);
    Err(todo("naive diff-size"))
}

/// Generic ID-map update: mounts the layer and re-owns every file.
pub fn update_layer_id_map<D: Driver + ?Sized>(
    d: &D,
    id: &str,
    maps: (&IdMappings, &IdMappings),
    mount_label: Option<&str>,
) -> Result<()> {
    let _ = (d, id, maps, mount_label);
    Err(todo("naive update-layer-id-map"))
}

/// Generic create-from-template: a new layer on the template's parent with
/// the template's diff applied.
pub fn create_from_template<D: Driver + ?Sized>(
    d: &D,
    req: &CreateRequest,
    template: &str,
    template_mappings: &IdMappings,
) -> Result<()> {
    let _ = (d, req, template, template_mappings);
    Err(todo("naive create-from-template"))
}

/// Generic diff getter: files read from the mounted layer.
pub fn diff_getter<D: Driver + ?Sized>(d: &D, id: &str) -> Result<FileSource> {
    let _ = (d, id);
    Err(todo("naive diff-getter"))
}
