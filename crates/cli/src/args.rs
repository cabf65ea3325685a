//! What the user typed: the command line as the reference's
//! `containers-storage` accepts it (global options before or after the
//! command, booleans as `--x` or `--x=false`, the last of a repeated option
//! winning).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `strata`: layered container storage, a drop-in for `containers-storage`.
#[derive(Debug, Parser)]
#[command(
    name = "strata",
    args_override_self = true,
    disable_version_flag = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Root of the storage tree
    #[arg(short = 'g', long = "graph", global = true, value_name = "DIR")]
    pub graph: Option<PathBuf>,
    /// Root of the runtime state tree
    #[arg(short = 'R', long = "run", global = true, value_name = "DIR")]
    pub run: Option<PathBuf>,
    /// Storage driver to use ($STORAGE_DRIVER)
    #[arg(
        short = 's',
        long = "storage-driver",
        global = true,
        value_name = "NAME"
    )]
    pub driver: Option<String>,
    /// Set storage driver options ($STORAGE_OPTS); `<driver>.sync=filesystem`
    /// makes layer data durable before a layer counts as complete
    #[arg(long = "storage-opt", global = true, action = clap::ArgAction::Append, value_name = "KEY=VALUE")]
    pub storage_opt: Vec<String>,
    /// Print debugging information
    #[arg(short = 'D', long = "debug", global = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub debug: bool,
    /// The command.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// `--json/-j`.
#[derive(Debug, Args, Clone, Default)]
pub struct Json {
    /// Prefer JSON output
    #[arg(short = 'j', long = "json", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,
}

/// Options of `check`: the reference's later releases' shape
/// (`check [-q] [-r [-f]] [-j]`).
#[derive(Debug, Args, Clone, Default)]
pub struct CheckOpts {
    /// Perform only quick checks (presence, sizes, records; no content)
    #[arg(short = 'q', long = "quick", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub quick: bool,
    /// Remove damaged layers and what depends on them, rebuild what can be rebuilt
    #[arg(short = 'r', long = "repair", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub repair: bool,
    /// Remove damaged containers too (implies --repair)
    #[arg(short = 'f', long = "force", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub force: bool,
    #[command(flatten)]
    pub json: Json,
}

/// Options of `create-layer` and `import-layer`.
#[derive(Debug, Args, Clone, Default)]
pub struct LayerOpts {
    /// Layer ID
    #[arg(short = 'i', long = "id")]
    pub id: Option<String>,
    /// Mount Label
    #[arg(short = 'l', long = "label")]
    pub label: Option<String>,
    /// Layer name
    #[arg(short = 'n', long = "name", action = clap::ArgAction::Append)]
    pub names: Vec<String>,
    /// Mark as read-only
    #[arg(short = 'r', long = "readonly", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub readonly: bool,
    #[command(flatten)]
    pub maps: MapOpts,
    #[command(flatten)]
    pub json: Json,
    /// Parent layer (name or ID)
    pub parent: Option<String>,
}

/// ID-map options of `create-layer`, `import-layer` and `create-container`.
#[derive(Debug, Args, Clone, Default)]
pub struct MapOpts {
    /// UID map
    #[arg(long = "uidmap")]
    pub uidmap: Option<String>,
    /// GID map
    #[arg(long = "gidmap")]
    pub gidmap: Option<String>,
    /// Force host UID map
    #[arg(long = "hostuidmap", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub hostuidmap: bool,
    /// Force host GID map
    #[arg(long = "hostgidmap", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub hostgidmap: bool,
    /// subuid UID map for a user
    #[arg(long = "subuidmap")]
    pub subuidmap: Option<String>,
    /// subgid GID map for a group
    #[arg(long = "subgidmap")]
    pub subgidmap: Option<String>,
}

/// Boolean option helper for `--force/-f` and similar.
#[derive(Debug, Args, Clone, Default)]
pub struct Force {
    /// Force the operation
    #[arg(short = 'f', long = "force", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub force: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a new layer
    #[command(name = "create-layer", alias = "createlayer")]
    CreateLayer(LayerOpts),
    /// Import a new layer
    #[command(name = "import-layer", alias = "importlayer")]
    ImportLayer(ImportOpts),
    /// Import an image from oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REF]
    #[command(name = "import-image")]
    ImportImage(ImportImageOpts),
    /// Export an image to oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:NAME]
    #[command(name = "export-image")]
    ExportImage(ExportImageOpts),
    /// Apply a diff to a layer
    #[command(name = "applydiff", alias = "apply-diff")]
    ApplyDiff(ApplyDiffOpts),
    /// Mount a layer or container
    Mount(MountOpts),
    /// Unmount an image, layer or container
    #[command(alias = "umount")]
    Unmount(UnmountOpts),
    /// Check if a file system is mounted
    Mounted(Items),
    /// Compare two layers
    Changes(ChangesOpts),
    /// Compare two layers
    Diff(DiffOpts),
    /// Compare two layers
    #[command(alias = "diff-size")]
    Diffsize(Pair),
    /// Delete a layer, with safety checks
    #[command(name = "delete-layer", alias = "deletelayer")]
    DeleteLayer(DeleteOpts),
    /// Delete a layer or image or container, with no safety checks
    Delete(DeleteOpts),
    /// List layers
    Layers(ListOpts),
    /// Examine a layer
    Layer(Items),
    /// Check if a layer or image or container exists
    Exists(ExistsOpts),
    /// Check storage consistency (and repair it)
    Check(CheckOpts),
    /// Check on graph driver status
    Status(Json),
    /// Wipe all layers, images, and containers
    Wipe(Json),
    /// Shut down layer storage
    Shutdown(ShutdownOpts),
    /// Return strata version information
    Version(Json),
    /// Retrieve layer, image, or container metadata
    Metadata(MetadataOpts),
    /// Set layer, image, or container metadata
    #[command(name = "set-metadata", alias = "setmetadata")]
    SetMetadata(SetMetadataOpts),
    /// Get layer, image, or container name or names
    #[command(name = "get-names", alias = "getnames")]
    GetNames(Items),
    /// Add layer, image, or container name or names
    #[command(name = "add-names", alias = "addnames")]
    AddNames(NamesOpts),
    /// Set layer, image, or container name or names
    #[command(name = "set-names", alias = "setnames")]
    SetNames(NamesOpts),
    /// List data items that are attached to a layer
    #[command(name = "list-layer-data")]
    ListLayerData(ListDataOpts),
    /// Get data that is attached to a layer
    #[command(name = "get-layer-data")]
    GetLayerData(DataOpts),
    /// Set data that is attached to a layer
    #[command(name = "set-layer-data")]
    SetLayerData(SetDataOpts),
    /// Copy files or directories into a layer, possibly from another layer
    Copy(CopyOpts),
    /// Compute the set of unmapped parent UIDs and GIDs of the layer
    #[command(name = "layer-parent-owners")]
    LayerParentOwners(Items),
    /// Print a shell completion script
    #[command(hide = true)]
    Completion {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Create a new image using layers
    #[command(name = "create-image", alias = "createimage")]
    CreateImage(CreateImageOpts),
    /// List images
    Images(ImagesOpts),
    /// List images by digest
    #[command(name = "images-by-digest")]
    ImagesByDigest(ImagesByDigestOpts),
    /// Examine an image
    Image(Items),
    /// List data items that are attached to an image
    #[command(name = "list-image-data", alias = "listimagedata")]
    ListImageData(ListDataOpts),
    /// Get data that is attached to an image
    #[command(name = "get-image-data", alias = "getimagedata")]
    GetImageData(DataOpts),
    /// Get size of data that is attached to an image
    #[command(name = "get-image-data-size", alias = "getimagedatasize")]
    GetImageDataSize(DataKey),
    /// Get digest of data that is attached to an image
    #[command(name = "get-image-data-digest", alias = "getimagedatadigest")]
    GetImageDataDigest(DataKey),
    /// Set data that is attached to an image (with sometimes wrong digest)
    #[command(name = "set-image-data", alias = "setimagedata")]
    SetImageData(SetDataOpts),
    /// Delete an image, with safety checks
    #[command(name = "delete-image", alias = "deleteimage")]
    DeleteImage(DeleteImageOpts),
    /// Create a new container from an image
    #[command(name = "create-container", alias = "createcontainer")]
    CreateContainer(CreateContainerOpts),
    /// List containers
    Containers(ContainersOpts),
    /// Examine a container
    Container(Items),
    /// List data items that are attached to an container
    #[command(name = "list-container-data", alias = "listcontainerdata")]
    ListContainerData(ListDataOpts),
    /// Get data that is attached to an container
    #[command(name = "get-container-data", alias = "getcontainerdata")]
    GetContainerData(DataOpts),
    /// Get size of data that is attached to an container
    #[command(name = "get-container-data-size", alias = "getcontainerdatasize")]
    GetContainerDataSize(DataKey),
    /// Get digest of data that is attached to an container
    #[command(name = "get-container-data-digest", alias = "getcontainerdatadigest")]
    GetContainerDataDigest(DataKey),
    /// Set data that is attached to an container
    #[command(name = "set-container-data", alias = "setcontainerdata")]
    SetContainerData(SetDataOpts),
    /// Find the container's associated data directory
    #[command(name = "get-container-dir", alias = "getcontainerdir")]
    GetContainerDir(ListDataOpts),
    /// Find the container's associated runtime directory
    #[command(name = "get-container-run-dir", alias = "getcontainerrundir")]
    GetContainerRunDir(ListDataOpts),
    /// Compute the set of unmapped parent UIDs and GIDs of the container
    #[command(name = "container-parent-owners")]
    ContainerParentOwners(Items),
    /// Delete a container, with safety checks
    #[command(name = "delete-container", alias = "deletecontainer")]
    DeleteContainer(DeleteOpts),
    /// Anything else: not a command.
    #[command(external_subcommand)]
    Other(Vec<String>),
}

/// Options of `create-image`.
#[derive(Debug, Args)]
pub struct CreateImageOpts {
    /// Image name
    #[arg(short = 'n', long = "name", action = clap::ArgAction::Append)]
    pub names: Vec<String>,
    /// Image ID
    #[arg(short = 'i', long = "id")]
    pub id: Option<String>,
    /// Image Digest
    #[arg(short = 'd', long = "digest")]
    pub digest: Option<String>,
    #[command(flatten)]
    pub metadata: MetadataSource,
    #[command(flatten)]
    pub json: Json,
    /// Top layer (name or ID); none or "" for an image without layers
    pub top_layer: Option<String>,
}

/// `--metadata/-m` and `--metadata-file/-f` of the create commands.
#[derive(Debug, Args)]
pub struct MetadataSource {
    /// Metadata
    #[arg(short = 'm', long = "metadata")]
    pub metadata: Option<String>,
    /// Metadata File
    #[arg(short = 'f', long = "metadata-file")]
    pub file: Option<PathBuf>,
}

/// Options of `images` and `containers`.
#[derive(Debug, Args)]
pub struct ImagesOpts {
    /// Only print IDs
    #[arg(short = 'q', long = "quiet", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub quiet: bool,
    #[command(flatten)]
    pub json: Json,
    /// Ignored (the reference takes and ignores them too).
    #[arg(hide = true)]
    pub rest: Vec<String>,
}

/// Options of `containers`.
#[derive(Debug, Args)]
pub struct ContainersOpts {
    #[command(flatten)]
    pub json: Json,
    /// Ignored (the reference takes and ignores them too).
    #[arg(hide = true)]
    pub rest: Vec<String>,
}

/// Options of `images-by-digest`.
#[derive(Debug, Args)]
pub struct ImagesByDigestOpts {
    /// The digest (`sha256:…`); before the flattened options, whose
    /// ignored trailing words must come after it.
    #[arg(required = true)]
    pub digest: String,
    #[command(flatten)]
    pub list: ImagesOpts,
}

/// An item and the name of one of its big-data items.
#[derive(Debug, Args)]
pub struct DataKey {
    /// The image or container.
    pub key: String,
    /// The item.
    pub name: String,
}

/// Options of `delete-image`.
#[derive(Debug, Args)]
pub struct DeleteImageOpts {
    /// Only test removal
    #[arg(short = 't', long = "test", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub test: bool,
    #[command(flatten)]
    pub json: Json,
    /// Images.
    pub images: Vec<String>,
}

/// Options of `create-container`.
#[derive(Debug, Args)]
pub struct CreateContainerOpts {
    /// Container name
    #[arg(short = 'n', long = "name", action = clap::ArgAction::Append)]
    pub names: Vec<String>,
    /// Container ID
    #[arg(short = 'i', long = "id")]
    pub id: Option<String>,
    #[command(flatten)]
    pub metadata: MetadataSource,
    #[command(flatten)]
    pub json: Json,
    /// Mark as volatile
    #[arg(long = "volatile", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub volatile: bool,
    #[command(flatten)]
    pub maps: MapOpts,
    /// The image (name or ID); "" for a container without an image
    pub image: String,
}

/// Options of `import-layer`.
#[derive(Debug, Args)]
pub struct ImportOpts {
    /// Read from file instead of stdin
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub opts: LayerOpts,
}

/// Options of `import-image`.
#[derive(Debug, Args)]
pub struct ImportImageOpts {
    /// Name for the image (normalised as skopeo stores it: t/i:1 → docker.io/t/i:1)
    #[arg(short = 'n', long = "name")]
    pub names: Vec<String>,
    /// Platform to take from an index: OS/ARCH[/VARIANT]
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// Where the image is
    pub source: String,
}

/// Options of `export-image`.
#[derive(Debug, Args)]
pub struct ExportImageOpts {
    /// Layer compression: gzip (OCI default), zstd or none (docker-archive)
    #[arg(long = "compress")]
    pub compress: Option<String>,
    /// Image ID or name
    pub image: String,
    /// Where to write it
    pub dest: String,
}

/// Options of `applydiff`.
#[derive(Debug, Args)]
pub struct ApplyDiffOpts {
    /// Read from file instead of stdin
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// The layer.
    pub layer: String,
    /// Reference layer (accepted, unused, as by the reference).
    pub reference: Option<String>,
}

/// Options of `mount`.
#[derive(Debug, Args)]
pub struct MountOpts {
    /// Mount Label
    #[arg(short = 'l', long = "label")]
    pub label: Option<String>,
    /// Mount Options
    #[arg(short = 'o', long = "opt")]
    pub opt: Option<String>,
    /// Mount image readonly
    #[arg(short = 'r', long = "ro", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub ro: bool,
    #[command(flatten)]
    pub json: Json,
    /// Layers.
    #[arg(required = true)]
    pub layers: Vec<String>,
}

/// Options of `unmount`.
#[derive(Debug, Args)]
pub struct UnmountOpts {
    #[command(flatten)]
    pub force: Force,
    #[command(flatten)]
    pub json: Json,
    /// Layers.
    #[arg(required = true)]
    pub layers: Vec<String>,
}

/// `--json` and one or more layers (`mounted`, `layer`, `get-names`,
/// `layer-parent-owners`).
#[derive(Debug, Args)]
pub struct Items {
    #[command(flatten)]
    pub json: Json,
    /// Layers.
    #[arg(required = true)]
    pub layers: Vec<String>,
}

/// Options of `changes`.
#[derive(Debug, Args)]
pub struct ChangesOpts {
    #[command(flatten)]
    pub json: Json,
    #[command(flatten)]
    pub pair: Pair,
}

/// A layer and the layer it is compared with (`changes`, `diffsize`).
#[derive(Debug, Args)]
pub struct Pair {
    /// The layer.
    pub layer: String,
    /// Layer to compare with (default: the parent).
    pub reference: Option<String>,
}

/// Options of `delete-layer` and `delete`.
#[derive(Debug, Args)]
pub struct DeleteOpts {
    #[command(flatten)]
    pub json: Json,
    /// Layers.
    pub layers: Vec<String>,
}

/// Options of `layers`.
#[derive(Debug, Args)]
pub struct ListOpts {
    #[command(flatten)]
    pub json: Json,
    /// Use a tree
    #[arg(short = 't', long = "tree", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub tree: bool,
}

/// Options of `shutdown`.
#[derive(Debug, Args)]
pub struct ShutdownOpts {
    #[command(flatten)]
    pub force: Force,
    #[command(flatten)]
    pub json: Json,
}

/// Options of `metadata`.
#[derive(Debug, Args)]
pub struct MetadataOpts {
    /// Omit names and IDs
    #[arg(short = 'q', long = "quiet", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub quiet: bool,
    #[command(flatten)]
    pub json: Json,
    /// Layers.
    pub layers: Vec<String>,
}

/// Options of `set-metadata`.
#[derive(Debug, Args)]
pub struct SetMetadataOpts {
    /// Metadata
    #[arg(short = 'm', long = "metadata")]
    pub metadata: Option<String>,
    /// Metadata File
    #[arg(short = 'f', long = "metadata-file")]
    pub file: Option<PathBuf>,
    /// The layer.
    pub layer: String,
}

/// Options of `list-layer-data`.
#[derive(Debug, Args)]
pub struct ListDataOpts {
    #[command(flatten)]
    pub json: Json,
    /// The layer.
    pub layer: String,
}

/// Options of `get-layer-data`.
#[derive(Debug, Args)]
pub struct DataOpts {
    /// Write data to file
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// The layer.
    pub layer: String,
    /// The item.
    pub name: String,
}

/// Options of `set-layer-data`.
#[derive(Debug, Args)]
pub struct SetDataOpts {
    /// Read data from file
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// The layer.
    pub layer: String,
    /// The item.
    pub name: String,
}

/// Options of `copy`.
#[derive(Debug, Args)]
pub struct CopyOpts {
    /// Set owner on copied files (UID[:GID])
    #[arg(long = "chown")]
    pub chown: Option<String>,
    /// `[LAYER:]/path` sources, then the `LAYER:/path` destination.
    #[arg(required = true, num_args = 2..)]
    pub paths: Vec<String>,
}

/// Options of `diff`.
#[derive(Debug, Args)]
pub struct DiffOpts {
    /// Write to file instead of stdout
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Compress using gzip
    #[arg(short = 'c', long = "gzip", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub gzip: bool,
    /// Compress using bzip2 (not currently supported)
    #[arg(short = 'b', long = "bzip2", visible_alias = "bz2", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub bzip2: bool,
    /// Compress using xz (not currently supported)
    #[arg(short = 'x', long = "xz", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub xz: bool,
    /// Use no compression
    #[arg(short = 'u', long = "uncompressed", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub uncompressed: bool,
    /// The layer.
    pub layer: String,
    /// Layer to compare with (default: the parent).
    pub reference: Option<String>,
}

/// Options of `exists`.
#[derive(Debug, Args)]
pub struct ExistsOpts {
    /// Only succeed if the match is a container
    #[arg(short = 'c', long = "container", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub container: bool,
    /// Only succeed if the match is an image
    #[arg(short = 'i', long = "image", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub image: bool,
    /// Only succeed if the match is a layer
    #[arg(short = 'l', long = "layer", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub layer: bool,
    /// Don't print names
    #[arg(short = 'q', long = "quiet", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub quiet: bool,
    #[command(flatten)]
    pub json: Json,
    /// Names or IDs.
    pub names: Vec<String>,
}

/// Options of `add-names` and `set-names`.
#[derive(Debug, Args)]
pub struct NamesOpts {
    /// New name
    #[arg(short = 'n', long = "name", action = clap::ArgAction::Append)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub json: Json,
    /// The layer.
    pub layer: String,
}

#[cfg(test)]
mod tests {
    /// clap's own checks of the definitions (a debug build runs them only
    /// for the subcommand it parses).
    #[test]
    fn definitions_pass_clap_checks() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
