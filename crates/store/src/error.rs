//! The store crate's error type.

use std::path::PathBuf;

/// A small set of kinds callers branch on (the CLI maps them to exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Unknown layer, name or data item.
    NotFound,
    /// An ID or name is already in use.
    AlreadyExists,
    /// The layer is in use (mounted, has children).
    Busy,
    /// A feature is not available or not implemented.
    Unsupported,
    /// Bad options or arguments.
    InvalidInput,
    /// Stored data is damaged.
    Corrupt,
    /// Other I/O failure.
    Io,
}

/// Errors of the store crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No layer has this ID or name.
    #[error("layer not known: {0}")]
    LayerUnknown(String),
    /// A layer with this ID exists already.
    #[error("a layer with ID {0} already exists")]
    DuplicateId(String),
    /// The name is used by another layer.
    #[error("the name {0:?} is already in use by layer {1}")]
    DuplicateName(String, String),
    /// The layer has children and cannot be deleted.
    #[error("layer {0} has child layers: {1}")]
    HasChildren(String, String),
    /// The layer has no big-data item with this name.
    #[error("layer {layer}: no data item named {name:?}")]
    DataUnknown {
        /// The layer.
        layer: String,
        /// The item.
        name: String,
    },
    /// Bad input, with an explanation.
    #[error("{0}")]
    Invalid(String),
    /// The feature is not implemented or not available.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A stored file could not be parsed.
    #[error("{path:?}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
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
            Error::LayerUnknown(_) | Error::DataUnknown { .. } => ErrorKind::NotFound,
            Error::DuplicateId(_) | Error::DuplicateName(..) => ErrorKind::AlreadyExists,
            Error::HasChildren(..) => ErrorKind::Busy,
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
