//! Graph drivers: how layers are kept on disk and mounted.
//!
//! A *layer* is a filesystem tree identified by an ID, optionally stacked on
//! a parent layer. A driver creates layers (empty, or as a child of a
//! parent), mounts them (`get`) and unmounts them (`put`), removes them, and
//! produces and applies diffs between a layer and its parent.
//!
//! The [`Driver`] trait has the required verbs; diff, changes, apply-diff,
//! diff-size, update-layer-id-map and create-from-template are default
//! methods built on the required ones (module [`naive`]), which a driver
//! overrides when it has a native path. Optional capabilities are values
//! ([`Capabilities`], [`Driver::additional_layer_store`],
//! [`Driver::differ`]), never discovered by downcasting.
//!
//! Drivers are made by name through a [`table::Drivers`] table.
//!
//! On-disk layout of each driver is documented in its module.
//!
//! ```
//! use strata_driver::{Access, CreateRequest, InitOptions, MountOptions};
//! let dir = tempfile::tempdir()?;
//! let vfs = strata_driver::vfs::init(&InitOptions {
//!     home: dir.path().join("vfs"),
//!     run_root: dir.path().join("run"),
//!     ..Default::default()
//! })?;
//! let layer = |id: &str, parent: Option<&str>| CreateRequest {
//!     id: id.into(),
//!     parent: parent.map(str::to_string),
//!     access: Access::ReadWrite,
//!     ..Default::default()
//! };
//! vfs.create(&layer("base", None))?;
//! let root = vfs.get("base", &MountOptions::default())?;
//! std::fs::write(root.join("hello"), "world")?;
//! vfs.put("base")?;
//! // A child shows its parent's tree.
//! vfs.create(&layer("child", Some("base")))?;
//! let child = vfs.get("child", &MountOptions::default())?;
//! assert_eq!(std::fs::read_to_string(child.join("hello"))?, "world");
//! vfs.put("child")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The seed's API, item by item
//!
//! Every item of the Go `drivers` package (the seed) and where it lives here:
//!
//! | seed (Go) | strata |
//! |---|---|
//! | `ProtoDriver`, `DiffDriver`, `LayerIDMapUpdater`, `Driver` | [`Driver`] |
//! | `Create` / `CreateReadWrite`, `CreateOpts` | [`Driver::create`], [`CreateRequest`] with [`Access`] |
//! | `CreateFromTemplate`, `TemplateDriver`, `NaiveCreateFromTemplate` | [`Driver::create_from_template`], [`naive::create_from_template`] |
//! | `Remove`, `Get`, `Put`, `Exists`, `MountOpts` | [`Driver::remove`], [`Driver::get`], [`Driver::put`], [`Driver::exists`], [`MountOptions`] |
//! | `Status`, `Metadata`, `ReadWriteDiskUsage`, `Cleanup`, `AdditionalImageStores` | [`Driver::status`], [`Driver::metadata`], [`Driver::read_write_disk_usage`] ([`DiskUsage`]), [`Driver::cleanup`], [`Driver::additional_image_stores`] |
//! | `Diff`, `Changes`, `ApplyDiff`, `DiffSize`, `ApplyDiffOpts` | [`Driver::diff`], [`Driver::changes`], [`Driver::apply_diff`], [`Driver::diff_size`], [`ApplyDiffOptions`], [`DiffRequest`], [`LayerRef`] |
//! | `NaiveDiffDriver`, `NewNaiveDiffDriver` | the default methods, built on [`naive`] |
//! | `UpdateLayerIDMap`, `SupportsShifting`, `NewNaiveLayerIDMapUpdater` | [`Driver::update_layer_id_map`], [`Driver::supports_shifting`], [`naive::update_layer_id_map`] |
//! | `ChownPathByMaps` | [`chown::chown_path_by_maps`] |
//! | `Capabilities`, `CapabilityDriver` | [`Capabilities`], [`Driver::capabilities`] |
//! | `DiffGetterDriver`, `FileGetCloser` | [`Driver::diff_getter`], [`FileSource`], [`naive::DirFileSource`] |
//! | `AdditionalLayerStoreDriver`, `AdditionalLayer` | [`Driver::additional_layer_store`], [`AdditionalLayerStore`], [`AdditionalLayer`] |
//! | `DriverWithDiffer`, `Differ`, `DriverWithDifferOutput` | [`Driver::differ`], [`DifferSupport`], [`Differ`], [`DifferOutput`] |
//! | `Options`, `InitFunc` | [`InitOptions`], [`InitFn`] |
//! | `Register`, `New`, priority list | [`table::Drivers::register`], [`table::Drivers::new_driver`], [`table::PRIORITY`] |
//! | `FsMagic`, `FsMagic*` constants, `FsMagicUnsupported`, `FsNames`, `GetFSMagic` | [`fsmagic::FsMagic`] and its constants, [`fsmagic::FsMagic::NAMES`], [`fsmagic::fs_name`], [`fsmagic::fs_magic`] |
//! | `Checker`, `NewDefaultChecker`, `NewFsChecker`, `Mounted` | [`mounts::MountChecker`], [`mounts::MountinfoChecker`], [`mounts::FsChecker`], [`mounts::mounted`] |
//! | `RefCounter`, `NewRefCounter`, `Increment`, `Decrement` | [`refcount::RefCounter`] (and [`refcount::RefGuard`]) |
//! | `ErrNotSupported`, `ErrPrerequisites`, `ErrIncompatibleFS`, `ErrLayerUnknown` | [`Error::NotSupported`], [`Error::Prerequisites`], [`Error::IncompatibleFs`], [`Error::LayerUnknown`], via [`Error::kind`] |
//! | `ApplyUncompressedLayer` | [`strata_archive::apply_layer`] (used by [`naive::apply_diff`]) |
//!
//! Driver options (`key=value`, with or without the driver prefix) are
//! parsed at init into typed structs ([`options`]).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

pub use strata_archive::{ApplyReport, Change, ChangeKind};
pub use strata_idmap::{IdMap, IdMappings};

pub mod btrfs;
pub mod chown;
#[cfg(feature = "testsuite")]
pub mod conformance;
mod error;
pub mod fsmagic;
pub mod mounts;
pub mod naive;
pub mod options;
pub mod overlay;
pub mod refcount;
pub mod table;
pub mod usage;
pub mod vfs;

pub use error::{Error, ErrorKind, Result};

/// Checks a layer ID: not empty, not `.` or `..`, no `/` or NUL (it names
/// a directory of the driver's home). [`ErrorKind::InvalidInput`] naming
/// the ID otherwise.
pub fn check_layer_id(id: &str) -> Result<()> {
    if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
        return Err(Error::InvalidOption {
            key: "id".into(),
            reason: format!("{id:?} is not a valid layer ID"),
        });
    }
    Ok(())
}

/// How a driver is initialised (the seed's `Options`).
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// The driver's home: `<graph root>/<driver name>`.
    pub home: PathBuf,
    /// The driver's run directory: `<run root>/<driver name>`.
    pub run_root: PathBuf,
    /// `key=value` options as given (`overlay.mount_program=…`, `mountopt=…`),
    /// parsed by each driver into its typed options.
    pub driver_options: Vec<String>,
    /// ID maps of the store (rootless or userns-remapped stores).
    pub id_mappings: IdMappings,
    /// Enable experimental features.
    pub experimental: bool,
}

/// Makes a driver (the seed's `InitFunc`).
pub type InitFn = fn(&InitOptions) -> Result<Box<dyn Driver>>;

/// Whether a layer is an image layer or a container's writable layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// An image layer: never mounted read-write by a container.
    #[default]
    ReadOnly,
    /// A container's writable layer.
    ReadWrite,
}

/// Arguments of [`Driver::create`].
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// ID of the new layer.
    pub id: String,
    /// Parent layer, if any.
    pub parent: Option<String>,
    /// Image or container layer.
    pub access: Access,
    /// SELinux label for the layer's mounts.
    pub mount_label: Option<String>,
    /// Per-layer driver options (`size`, `inodes`, …).
    pub storage_opt: BTreeMap<String, String>,
    /// ID maps of the new layer (its files are owned by host IDs under them).
    pub id_mappings: IdMappings,
    /// ID maps the parent's (or template's) files are owned under, when
    /// they may differ from `id_mappings`. The new layer then shows the
    /// parent's files owned as [`chown::chown_path_by_maps`] would re-own
    /// them: the seed's `Create` followed by `UpdateLayerIDMap`, done by the
    /// driver in one step (a shifted copy, a snapshot re-owned in place,
    /// or idmapped lower mounts). `None`: the parent's files stay as they
    /// are.
    pub parent_mappings: Option<IdMappings>,
    /// The new layer and its parent are image layers whose files nothing
    /// changes in place (an image's layers, as `import-image` makes them):
    /// a driver that starts a child as a copy of its parent (vfs) may give
    /// it the parent's non-directories as hard links instead of copies.
    /// Ignored for a read-write layer and when the owners are shifted.
    pub share_parent_files: bool,
}

impl CreateRequest {
    /// This request as a child of `template` whose files are owned under
    /// `template_mappings`: a driver whose child holds (or shows) its
    /// parent's tree makes a template's copy this way.
    pub fn child_of_template(&self, template: &str, template_mappings: &IdMappings) -> Self {
        Self {
            parent: Some(template.to_string()),
            parent_mappings: Some(template_mappings.clone()),
            ..self.clone()
        }
    }

    /// The re-owning the parent's files need in the new layer, if any.
    pub fn shift(&self) -> Option<strata_idmap::Shift> {
        let from = self.parent_mappings.as_ref()?;
        if self.parent.is_none() || *from == self.id_mappings {
            return None;
        }
        Some(strata_idmap::Shift::new(
            from,
            &self.id_mappings,
            strata_idmap::shift::kernel_overflow(),
        ))
    }
}

/// A layer and its parent, as named to [`Driver::apply_diff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerRef<'a> {
    /// The layer.
    pub id: &'a str,
    /// Its parent, if any.
    pub parent: Option<&'a str>,
}

/// Arguments of [`Driver::get`] (mount).
#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// SELinux label for the mount.
    pub mount_label: Option<String>,
    /// User namespace maps to show content with (idmapped mounts).
    pub uid_maps: Vec<IdMap>,
    /// Group maps, as `uid_maps`.
    pub gid_maps: Vec<IdMap>,
    /// Extra mount options (`ro`, …).
    pub options: Vec<String>,
    /// Skip syncing of the writable layer (overlay `volatile`).
    pub volatile: bool,
    /// Never shift IDs at mount time.
    pub disable_shifting: bool,
}

/// Which pair of layers a diff-family method compares.
#[derive(Debug, Clone, Default)]
pub struct DiffRequest {
    /// The layer whose changes are wanted.
    pub id: String,
    /// ID maps of the layer.
    pub id_mappings: IdMappings,
    /// Layer to compare against; `None` means "everything is added".
    pub parent: Option<String>,
    /// ID maps of the parent.
    pub parent_mappings: IdMappings,
    /// SELinux label for any mounts made on the way.
    pub mount_label: Option<String>,
}

/// Options of [`Driver::apply_diff`].
#[derive(Debug, Clone, Default)]
pub struct ApplyDiffOptions {
    /// ID maps of the layer being written.
    pub id_mappings: IdMappings,
    /// SELinux label for any mounts made on the way.
    pub mount_label: Option<String>,
    /// Turn chown failures into a warning.
    pub ignore_chown_errors: bool,
    /// Force this mode onto files, keeping the real one in an xattr.
    pub force_mask: Option<u32>,
}

/// What the driver can promise about its diffs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Diffs of read-only layers are byte-identical each time, so callers
    /// need no tar-split record.
    pub reproduces_exact_diffs: bool,
}

/// Disk usage of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskUsage {
    /// Bytes allocated.
    pub size: u64,
    /// Number of inodes.
    pub inodes: u64,
}

/// A file source for tar-split replay (the seed's `FileGetCloser`).
pub type FileSource = Box<dyn strata_archive::tarsplit::FileSource + Send>;

/// A layer in an additional layer store (experimental protocol).
pub trait AdditionalLayer: Send {
    /// Creates layer `id` with parent `parent` from this layer.
    fn create_as(&self, id: &str, parent: Option<&str>) -> Result<()>;
    /// The layer's `info` file.
    fn info(&self) -> Result<Box<dyn Read + Send>>;
    /// The raw layer blob.
    fn blob(&self) -> Result<Box<dyn Read + Send>>;
}

/// Lookup of layers in an additional layer store.
pub trait AdditionalLayerStore: Send + Sync {
    /// Finds a layer by compressed digest and image reference.
    fn lookup(&self, digest: &str, image_ref: &str) -> Result<Box<dyn AdditionalLayer>>;
    /// Finds a layer by ID.
    fn lookup_by_id(&self, id: &str) -> Result<Box<dyn AdditionalLayer>>;
}

/// What an external differ produced into a staging directory.
#[derive(Debug, Clone, Default)]
pub struct DifferOutput {
    /// Staging directory that holds the content.
    pub target: PathBuf,
    /// Size of the layer.
    pub size: u64,
    /// Container uids seen.
    pub uids: Vec<u32>,
    /// Container gids seen.
    pub gids: Vec<u32>,
    /// `sha256:…` of the uncompressed layer, when known.
    pub uncompressed_digest: Option<String>,
    /// Free-form metadata.
    pub metadata: String,
    /// Named blobs to store with the layer.
    pub big_data: BTreeMap<String, Vec<u8>>,
}

/// An external differ that fills a staging directory.
pub trait Differ {
    /// Writes the layer's content into `dest`.
    fn apply_diff(&self, dest: &std::path::Path, opts: &ApplyDiffOptions) -> Result<DifferOutput>;
}

/// Staged applies by an external differ.
pub trait DifferSupport: Send + Sync {
    /// Creates a staging directory and runs `differ` into it.
    fn apply_with_differ(
        &self,
        parent: Option<&str>,
        opts: &ApplyDiffOptions,
        differ: &dyn Differ,
    ) -> Result<DifferOutput>;
    /// Moves a staging directory into place as layer `id`'s content.
    fn apply_from_staging(
        &self,
        id: &str,
        parent: Option<&str>,
        output: &DifferOutput,
    ) -> Result<()>;
    /// Removes a staging directory after a failure.
    fn cleanup_staging(&self, staging: &std::path::Path) -> Result<()>;
    /// Where layer `id`'s files are stored.
    fn differ_target(&self, id: &str) -> Result<PathBuf>;
}

/// Layers whose [`Driver::apply_diff`] writes only the layer's own
/// directory and reads nothing of its parent's (overlay: each layer's data
/// is its own directory, whiteouts are its own files). A chain of such
/// layers can be created first, parent first, and then applied
/// concurrently.
///
/// What a child takes from its parent when it is created (overlay: the
/// owner and mode of its root) is then taken before the parent is
/// applied; [`ConcurrentApply::settle`] takes it again afterwards.
pub trait ConcurrentApply: Send + Sync {
    /// Called once `layer` and its parent are both applied, parents before
    /// children: gives `layer` what it would have taken from its parent
    /// had it been created after the parent's apply, unless its own stream
    /// set it (`root`).
    fn settle(&self, layer: LayerRef<'_>, root: RootEntry) -> Result<()>;
}

/// Whether a layer's own stream set its root directory's metadata (the
/// [`ApplyReport::root_entry`] of its apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootEntry {
    /// The stream had an entry for `./`: the root is the stream's.
    Applied,
    /// The root is as the layer's creation made it.
    Absent,
}

impl RootEntry {
    /// From an apply's report.
    pub fn of(report: &ApplyReport) -> Self {
        if report.root_entry {
            RootEntry::Applied
        } else {
            RootEntry::Absent
        }
    }
}

/// A graph driver.
///
/// # The contract
///
/// What every driver does, whatever its storage; the conformance suite
/// (module `conformance`, feature `testsuite`) asserts each point on every
/// driver:
///
/// - **IDs.** A layer ID is a non-empty name without `/` or NUL, not `.`
///   or `..` ([`check_layer_id`]; a driver may refuse more names it uses
///   itself). A method given an invalid ID fails with
///   [`ErrorKind::InvalidInput`] and changes nothing.
/// - **Unknown layers.** Every method that needs the layer fails with
///   [`ErrorKind::NotFound`] for an ID that does not exist (or names a
///   missing parent), except [`Driver::exists`] (`false`) and
///   [`Driver::remove`] (nothing to do).
/// - **Mounts are counted.** Each [`Driver::get`] is matched by one
///   [`Driver::put`]; the tree stays usable until the last put, which
///   releases it. A get without a put keeps the layer mounted until it is
///   put, removed, or the driver cleaned up.
/// - **Failures leave nothing behind.** A create that fails leaves no
///   layer under the ID; an existing layer is never touched by a create of
///   the same ID.
pub trait Driver: Send + Sync {
    /// Name (`overlay`, `vfs`, `btrfs`, …).
    fn name(&self) -> &str;

    /// Creates an empty layer, or a child of `req.parent` showing the
    /// parent's tree.
    ///
    /// An existing ID fails with [`ErrorKind::AlreadyExists`] (the layer
    /// stays as it was); a missing parent with [`ErrorKind::NotFound`],
    /// leaving no layer behind.
    fn create(&self, req: &CreateRequest) -> Result<()>;

    /// Removes a layer and its content.
    ///
    /// A missing layer is not an error (removal is idempotent). A layer
    /// that is mounted is released first, whatever its count; it is then
    /// unknown to every method.
    fn remove(&self, id: &str) -> Result<()>;

    /// Mounts a layer (or counts one more use of its mount) and returns
    /// where its tree is; a second get returns the same path.
    ///
    /// A missing layer fails with [`ErrorKind::NotFound`]; a mount option
    /// the driver does not support is an error and mounts nothing.
    fn get(&self, id: &str, opts: &MountOptions) -> Result<PathBuf>;

    /// Releases one [`Driver::get`] of a layer; the last one unmounts it.
    ///
    /// A put of a layer that is not mounted (never got, or put as often as
    /// got) does nothing; a put of a missing layer fails with
    /// [`ErrorKind::NotFound`].
    fn put(&self, id: &str) -> Result<()>;

    /// Whether the layer exists. An I/O error is an error, not "no".
    fn exists(&self, id: &str) -> Result<bool>;

    /// Diagnostic key/value pairs (`Backing Filesystem`, …).
    fn status(&self) -> Vec<(String, String)>;

    /// Low-level facts about one layer (`UpperDir`, `LowerDir`, …); a
    /// missing layer fails with [`ErrorKind::NotFound`].
    fn metadata(&self, id: &str) -> Result<BTreeMap<String, String>>;

    /// Disk usage of the layer's own (writable) directory; a missing layer
    /// fails with [`ErrorKind::NotFound`].
    fn read_write_disk_usage(&self, id: &str) -> Result<DiskUsage>;

    /// Releases everything the driver holds (mounts, the home bind mount),
    /// also the mounts of layers got and never put. Calling it again does
    /// nothing.
    fn cleanup(&self) -> Result<()>;

    /// Read-only stores whose layers may serve as lowers.
    fn additional_image_stores(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// What the driver promises about diffs.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// A file source over the layer's own files, for tar-split replay; a
    /// missing layer fails with [`ErrorKind::NotFound`].
    fn diff_getter(&self, id: &str) -> Result<FileSource> {
        naive::diff_getter(self, id)
    }

    /// The additional layer store, when the driver has one.
    fn additional_layer_store(&self) -> Option<&dyn AdditionalLayerStore> {
        None
    }

    /// Staged applies by an external differ, when supported.
    fn differ(&self) -> Option<&dyn DifferSupport> {
        None
    }

    /// Concurrent applies of a chain of layers, when the driver's applies
    /// never read the parent's content.
    fn concurrent_apply(&self) -> Option<&dyn ConcurrentApply> {
        None
    }

    /// A tar of the layer's changes against the parent. A missing layer
    /// or parent fails with [`ErrorKind::NotFound`] (so do
    /// [`Driver::changes`] and [`Driver::diff_size`]).
    fn diff(&self, req: &DiffRequest) -> Result<Box<dyn Read + Send>> {
        naive::diff(self, req)
    }

    /// The list of changes against the parent.
    fn changes(&self, req: &DiffRequest) -> Result<Vec<Change>> {
        naive::changes(self, req)
    }

    /// Applies a (possibly compressed) layer stream to layer `id`, whose
    /// parent is `parent`. Returns what the pass measured. A missing layer
    /// fails with [`ErrorKind::NotFound`] before any input is read.
    fn apply_diff(
        &self,
        target: LayerRef<'_>,
        opts: &ApplyDiffOptions,
        diff: &mut (dyn Read + Send),
        tar_split: Option<Box<dyn std::io::Write + Send>>,
    ) -> Result<ApplyReport> {
        naive::apply_diff(self, target, opts, diff, tar_split)
    }

    /// Size in bytes of the layer's changes against the parent.
    fn diff_size(&self, req: &DiffRequest) -> Result<u64> {
        naive::diff_size(self, req)
    }

    /// Re-owns the layer's files from `to_container`'s host IDs to
    /// `to_host`'s host IDs for the same container IDs; a missing layer
    /// fails with [`ErrorKind::NotFound`].
    fn update_layer_id_map(
        &self,
        id: &str,
        to_container: &IdMappings,
        to_host: &IdMappings,
        mount_label: Option<&str>,
    ) -> Result<()> {
        naive::update_layer_id_map(self, id, (to_container, to_host), mount_label)
    }

    /// Whether mounts can shift IDs (so no chown is needed in user namespaces).
    fn supports_shifting(&self) -> bool {
        false
    }

    /// Creates `req.id` with the same content as `template` (whose files
    /// are owned under `template_mappings`), owned under `req.id_mappings`.
    /// A missing template fails with [`ErrorKind::NotFound`], leaving no
    /// layer behind.
    fn create_from_template(
        &self,
        req: &CreateRequest,
        template: &str,
        template_mappings: &IdMappings,
    ) -> Result<()> {
        naive::create_from_template(self, req, template, template_mappings)
    }
}
