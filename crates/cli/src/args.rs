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
    #[command(flatten)]
    pub json: Json,
    /// Parent layer (name or ID)
    pub parent: Option<String>,
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
    #[command(name = "create-layer")]
    CreateLayer(LayerOpts),
    /// Import a new layer
    #[command(name = "import-layer")]
    ImportLayer {
        /// Read from file instead of stdin
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        #[command(flatten)]
        opts: LayerOpts,
    },
    /// Apply a diff to a layer
    #[command(name = "applydiff", alias = "apply-diff")]
    ApplyDiff {
        /// Read from file instead of stdin
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// The layer.
        layer: String,
        /// Reference layer (accepted, unused, as by the reference).
        reference: Option<String>,
    },
    /// Mount a layer or container
    Mount {
        /// Mount Label
        #[arg(short = 'l', long = "label")]
        label: Option<String>,
        /// Mount Options
        #[arg(short = 'o', long = "opt")]
        opt: Option<String>,
        /// Mount image readonly
        #[arg(short = 'r', long = "ro", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
              value_parser = clap::builder::BoolishValueParser::new())]
        ro: bool,
        #[command(flatten)]
        json: Json,
        /// Layers.
        #[arg(required = true)]
        layers: Vec<String>,
    },
    /// Unmount an image, layer or container
    #[command(alias = "umount")]
    Unmount {
        #[command(flatten)]
        force: Force,
        #[command(flatten)]
        json: Json,
        /// Layers.
        #[arg(required = true)]
        layers: Vec<String>,
    },
    /// Check if a file system is mounted
    Mounted {
        #[command(flatten)]
        json: Json,
        /// Layers.
        #[arg(required = true)]
        layers: Vec<String>,
    },
    /// Compare two layers
    Changes {
        #[command(flatten)]
        json: Json,
        /// The layer.
        layer: String,
        /// Layer to compare with (default: the parent).
        reference: Option<String>,
    },
    /// Compare two layers
    Diff(DiffOpts),
    /// Compare two layers
    #[command(alias = "diff-size")]
    Diffsize {
        /// The layer.
        layer: String,
        /// Layer to compare with (default: the parent).
        reference: Option<String>,
    },
    /// Delete a layer, with safety checks
    #[command(name = "delete-layer")]
    DeleteLayer {
        #[command(flatten)]
        json: Json,
        /// Layers.
        layers: Vec<String>,
    },
    /// Delete a layer or image or container, with no safety checks
    Delete {
        #[command(flatten)]
        json: Json,
        /// Layers.
        layers: Vec<String>,
    },
    /// List layers
    Layers {
        #[command(flatten)]
        json: Json,
        /// Use a tree
        #[arg(short = 't', long = "tree", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
              value_parser = clap::builder::BoolishValueParser::new())]
        tree: bool,
    },
    /// Examine a layer
    Layer {
        #[command(flatten)]
        json: Json,
        /// Layers.
        #[arg(required = true)]
        layers: Vec<String>,
    },
    /// Check if a layer or image or container exists
    Exists(ExistsOpts),
    /// Check storage consistency (and repair it)
    Check(CheckOpts),
    /// Check on graph driver status
    Status {
        #[command(flatten)]
        json: Json,
    },
    /// Wipe all layers, images, and containers
    Wipe {
        #[command(flatten)]
        json: Json,
    },
    /// Shut down layer storage
    Shutdown {
        #[command(flatten)]
        force: Force,
        #[command(flatten)]
        json: Json,
    },
    /// Return strata version information
    Version {
        #[command(flatten)]
        json: Json,
    },
    /// Retrieve layer, image, or container metadata
    Metadata {
        /// Omit names and IDs
        #[arg(short = 'q', long = "quiet", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set,
              value_parser = clap::builder::BoolishValueParser::new())]
        quiet: bool,
        #[command(flatten)]
        json: Json,
        /// Layers.
        layers: Vec<String>,
    },
    /// Set layer, image, or container metadata
    #[command(name = "set-metadata")]
    SetMetadata {
        /// Metadata
        #[arg(short = 'm', long = "metadata")]
        metadata: Option<String>,
        /// Metadata File
        #[arg(short = 'f', long = "metadata-file")]
        file: Option<PathBuf>,
        /// The layer.
        layer: String,
    },
    /// Get layer, image, or container name or names
    #[command(name = "get-names")]
    GetNames {
        #[command(flatten)]
        json: Json,
        /// Layers.
        #[arg(required = true)]
        layers: Vec<String>,
    },
    /// Add layer, image, or container name or names
    #[command(name = "add-names")]
    AddNames(NamesOpts),
    /// Set layer, image, or container name or names
    #[command(name = "set-names")]
    SetNames(NamesOpts),
    /// List data items that are attached to a layer
    #[command(name = "list-layer-data")]
    ListLayerData {
        #[command(flatten)]
        json: Json,
        /// The layer.
        layer: String,
    },
    /// Get data that is attached to a layer
    #[command(name = "get-layer-data")]
    GetLayerData {
        /// Write data to file
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// The layer.
        layer: String,
        /// The item.
        name: String,
    },
    /// Set data that is attached to a layer
    #[command(name = "set-layer-data")]
    SetLayerData {
        /// Read data from file
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// The layer.
        layer: String,
        /// The item.
        name: String,
    },
    /// Copy files or directories into a layer, possibly from another layer
    Copy {
        /// Set owner on copied files (UID[:GID])
        #[arg(long = "chown")]
        chown: Option<String>,
        /// `[LAYER:]/path` sources, then the `LAYER:/path` destination.
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Compute the set of unmapped parent UIDs and GIDs of the layer
    #[command(name = "layer-parent-owners")]
    LayerParentOwners {
        #[command(flatten)]
        json: Json,
        /// Layers.
        #[arg(required = true)]
        layers: Vec<String>,
    },
    /// Print a shell completion script
    #[command(hide = true)]
    Completion {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Image and container commands (not yet supported).
    #[command(external_subcommand)]
    Other(Vec<String>),
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
