//! The store crate's error type.

use std::path::PathBuf;

use crate::record::Kind;

/// A small set of kinds callers branch on (the CLI maps them to exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Unknown layer, image, container, name or data item.
    NotFound,
    /// An ID or name is already in use.
    AlreadyExists,
    /// The record is in use (mounted, has children, used by an image or a
    /// container).
    Busy,
    /// A feature is not available or not implemented.
    Unsupported,
    /// Bad options or arguments.
    InvalidInput,
    /// Stored data is damaged.
    Corrupt,
    /// A write to a read-only store.
    ReadOnly,
    /// Other I/O failure.
    Io,
}

/// Errors of the store crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No record of this kind has this ID or name.
    #[error("{kind} not known: {key}")]
    Unknown {
        /// Layer, image or container.
        kind: Kind,
        /// The ID or name asked for.
        key: String,
    },
    /// A record of this kind with this ID exists already.
    #[error("{} {kind} with ID {id:?} already exists: that ID is already in use", kind.article())]
    DuplicateId {
        /// Layer, image or container.
        kind: Kind,
        /// The ID.
        id: String,
    },
    /// The name is used by another record of the same kind.
    #[error("{kind} name {name:?} is already associated with {kind} {owner:?}: that name is already in use")]
    DuplicateName {
        /// Layer, image or container.
        kind: Kind,
        /// The name.
        name: String,
        /// The record that has it.
        owner: String,
    },
    /// The record is used by another and cannot go.
    #[error("{kind} {id} used by {user_kind} {user}: {kind} is in use by {} {user_kind}", user_kind.article())]
    InUse {
        /// What cannot go.
        kind: Kind,
        /// Its ID.
        id: String,
        /// What uses it.
        user_kind: Kind,
        /// The user's ID.
        user: String,
    },
    /// Layers are mounted (so the store cannot shut down).
    #[error("a layer is mounted: layer is in use by a container: {}", .0.join(", "))]
    Mounted(Vec<String>),
    /// The layer has children and cannot be deleted.
    #[error("layer {0} used by layer {1}: layer has children")]
    HasChildren(String, String),
    /// The record has no big-data item with this name.
    #[error("{kind} {id}: no data item named {name:?}")]
    DataUnknown {
        /// Layer, image or container.
        kind: Kind,
        /// The record.
        id: String,
        /// The item.
        name: String,
    },
    /// The size of a big-data item is not recorded and cannot be found.
    #[error("{kind} {id}: size of data item {name:?} is not known")]
    SizeUnknown {
        /// Image or container.
        kind: Kind,
        /// The record.
        id: String,
        /// The item.
        name: String,
    },
    /// The digest of a big-data item is not recorded.
    #[error("{kind} {id}: could not compute digest of data item {name:?}")]
    DigestUnknown {
        /// Image or container.
        kind: Kind,
        /// The record.
        id: String,
        /// The item.
        name: String,
    },
    /// A write to a read-only (additional) store.
    #[error("{path:?}: the {kind} store is read-only")]
    ReadOnly {
        /// What was to be written.
        kind: Kind,
        /// The record file.
        path: PathBuf,
    },
    /// Bad input, with an explanation.
    #[error("{0}")]
    Invalid(String),
    /// The feature is not implemented or not available.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A stored file could not be parsed.
    #[error("{path:?}{}: {reason}", offset.map(|o| format!(" at byte {o}")).unwrap_or_default())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where parsing stopped, when known.
        offset: Option<u64>,
        /// What was wrong.
        reason: String,
    },
    /// The configuration file could not be parsed.
    #[error("configuration {path:?}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// An I/O operation on a path failed.
    #[error("{op} {path:?}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A driver operation failed.
    #[error("{op} {layer}: {source}")]
    Driver {
        /// The operation (`create`, `mount`, …).
        op: &'static str,
        /// The layer (or the driver name for init).
        layer: String,
        /// Cause.
        #[source]
        source: strata_driver::Error,
    },
    /// An archive operation failed.
    #[error("{op} {layer}: {source}")]
    Archive {
        /// The operation.
        op: &'static str,
        /// The layer.
        layer: String,
        /// Cause.
        #[source]
        source: strata_archive::Error,
    },
    /// An imported stream failed the check its importer gave
    /// ([`crate::LayerCheck`]); the layer was removed.
    #[error("layer {layer}: {source}")]
    Rejected {
        /// The layer.
        layer: String,
        /// The check's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A copy into a layer failed.
    #[error("copying {from} to {to}: {source}")]
    Copy {
        /// The source as given (`LAYER:/path` or a host path).
        from: String,
        /// The destination as given.
        to: String,
        /// Cause.
        #[source]
        source: strata_archive::Error,
    },
    /// An ID map could not be parsed.
    #[error(transparent)]
    IdMap(#[from] strata_idmap::Error),
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Unknown { .. }
            | Error::DataUnknown { .. }
            | Error::SizeUnknown { .. }
            | Error::DigestUnknown { .. } => ErrorKind::NotFound,
            Error::DuplicateId { .. } | Error::DuplicateName { .. } => ErrorKind::AlreadyExists,
            Error::HasChildren(..) | Error::InUse { .. } | Error::Mounted(_) => ErrorKind::Busy,
            Error::ReadOnly { .. } => ErrorKind::ReadOnly,
            Error::Invalid(_) | Error::Config { .. } | Error::IdMap(_) => ErrorKind::InvalidInput,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::Corrupt { .. } | Error::Rejected { .. } => ErrorKind::Corrupt,
            Error::Io { source, .. } => io_kind(source),
            Error::Driver { source, .. } => match source.kind() {
                strata_driver::ErrorKind::Unsupported
                | strata_driver::ErrorKind::Prerequisites
                | strata_driver::ErrorKind::IncompatibleFs => ErrorKind::Unsupported,
                strata_driver::ErrorKind::NotFound => ErrorKind::NotFound,
                strata_driver::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                strata_driver::ErrorKind::Busy => ErrorKind::Busy,
                strata_driver::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
                strata_driver::ErrorKind::Corrupt => ErrorKind::Corrupt,
                strata_driver::ErrorKind::Io => ErrorKind::Io,
            },
            Error::Archive { source, .. } | Error::Copy { source, .. } => match source.kind() {
                strata_archive::ErrorKind::NotFound => ErrorKind::NotFound,
                strata_archive::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                strata_archive::ErrorKind::Busy => ErrorKind::Busy,
                strata_archive::ErrorKind::Unsupported => ErrorKind::Unsupported,
                strata_archive::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
                strata_archive::ErrorKind::Corrupt => ErrorKind::Corrupt,
                strata_archive::ErrorKind::Io => ErrorKind::Io,
            },
        }
    }

    /// Wraps an I/O error on a path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// An unknown record of this kind.
    pub fn unknown(kind: Kind, key: impl Into<String>) -> Self {
        Error::Unknown {
            kind,
            key: key.into(),
        }
    }

    /// Wraps a driver error.
    pub fn driver(
        op: &'static str,
        layer: impl Into<String>,
        source: strata_driver::Error,
    ) -> Self {
        Error::Driver {
            op,
            layer: layer.into(),
            source,
        }
    }
}

fn io_kind(e: &std::io::Error) -> ErrorKind {
    match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
        std::io::ErrorKind::ResourceBusy => ErrorKind::Busy,
        std::io::ErrorKind::Unsupported => ErrorKind::Unsupported,
        std::io::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
        _ => ErrorKind::Io,
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
