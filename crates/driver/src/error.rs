//! The driver crate's error type. The seed's four sentinel errors
//! (`ErrNotSupported`, `ErrPrerequisites`, `ErrIncompatibleFS`,
//! `ErrLayerUnknown`) are variants here.

use std::path::PathBuf;

/// A small set of kinds callers branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The driver is not supported here (seed: `ErrNotSupported`), or a
    /// feature is not implemented.
    Unsupported,
    /// Prerequisites not met, e.g. wrong backing filesystem (seed: `ErrPrerequisites`).
    Prerequisites,
    /// The backing filesystem cannot host this driver (seed: `ErrIncompatibleFS`).
    IncompatibleFs,
    /// Unknown layer (seed: `ErrLayerUnknown`).
    NotFound,
    /// Exists already.
    AlreadyExists,
    /// In use.
    Busy,
    /// Bad options or input.
    InvalidInput,
    /// Stored data is damaged.
    Corrupt,
    /// Other I/O failure.
    Io,
}

/// Errors of the driver crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Driver not supported (seed: `ErrNotSupported`).
    #[error("driver not supported: {0}")]
    NotSupported(String),
    /// A feature that is not available or not implemented.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Prerequisites for the driver not satisfied (seed: `ErrPrerequisites`).
    #[error("prerequisites for driver not satisfied (wrong filesystem?): {0}")]
    Prerequisites(String),
    /// Backing filesystem unsupported (seed: `ErrIncompatibleFS`).
    #[error("backing file system is unsupported for this graph driver: {0}")]
    IncompatibleFs(String),
    /// Unknown layer (seed: `ErrLayerUnknown`).
    #[error("unknown layer {0}")]
    LayerUnknown(String),
    /// The layer exists already.
    #[error("layer {0} already exists")]
    LayerExists(String),
    /// A driver option is unknown or malformed.
    #[error("invalid driver option {key:?}: {reason}")]
    InvalidOption {
        /// The key as given.
        key: String,
        /// Why it was refused.
        reason: String,
    },
    /// A mount or unmount failed.
    #[error("{op} {path:?}: {source}")]
    Mount {
        /// `mount`, `umount`, `fsconfig`, …
        op: &'static str,
        /// Target.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// An I/O operation on a path failed.
    #[error("{op} {path:?}: {source}")]
    Path {
        /// The operation.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// An external program failed.
    #[error("{program} failed: {message}")]
    Command {
        /// Program name.
        program: String,
        /// Its stderr or exit status.
        message: String,
    },
    /// An error from the archive engine.
    #[error(transparent)]
    Archive(#[from] strata_archive::Error),
    /// An ID map error.
    #[error(transparent)]
    IdMap(#[from] strata_idmap::Error),
    /// A file's owner cannot be moved to other ID maps.
    #[error("mapping the owner of {path:?}: {source}")]
    Owner {
        /// The file.
        path: PathBuf,
        /// Which ID has no counterpart.
        #[source]
        source: Box<strata_idmap::Error>,
    },
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotSupported(_) | Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::Prerequisites(_) => ErrorKind::Prerequisites,
            Error::IncompatibleFs(_) => ErrorKind::IncompatibleFs,
            Error::LayerUnknown(_) => ErrorKind::NotFound,
            Error::LayerExists(_) => ErrorKind::AlreadyExists,
            Error::InvalidOption { .. } | Error::IdMap(_) | Error::Owner { .. } => {
                ErrorKind::InvalidInput
            }
            Error::Command { .. } => ErrorKind::Io,
            Error::Archive(e) => match e.kind() {
                strata_archive::ErrorKind::NotFound => ErrorKind::NotFound,
                strata_archive::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                strata_archive::ErrorKind::Busy => ErrorKind::Busy,
                strata_archive::ErrorKind::Unsupported => ErrorKind::Unsupported,
                strata_archive::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
                strata_archive::ErrorKind::Corrupt => ErrorKind::Corrupt,
                strata_archive::ErrorKind::Io => ErrorKind::Io,
            },
            Error::Mount { source, .. } | Error::Path { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                std::io::ErrorKind::ResourceBusy => ErrorKind::Busy,
                std::io::ErrorKind::Unsupported => ErrorKind::Unsupported,
                _ => ErrorKind::Io,
            },
        }
    }

    /// Wraps an I/O error on a path.
    pub fn path(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Path {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
