//! The crate's error type.

use std::path::PathBuf;

/// A small set of error kinds that callers branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A named thing does not exist.
    NotFound,
    /// A thing exists already.
    AlreadyExists,
    /// A resource is in use.
    Busy,
    /// The operation or input feature is not implemented or not available here.
    Unsupported,
    /// The caller's input is malformed or refused (bad tar, hostile path).
    InvalidInput,
    /// Stored data does not match what was recorded (checksum mismatch).
    Corrupt,
    /// Any other I/O failure.
    Io,
}

/// Errors of the archive crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stream is not a valid tar archive. The message contains
    /// `invalid tar header`, which scripts written for containers-storage match.
    #[error("invalid tar header: {0}")]
    InvalidHeader(String),
    /// The stream ended inside a header or a member's content. The message
    /// contains `unexpected EOF`.
    #[error("unexpected EOF: {0}")]
    UnexpectedEof(String),
    /// A header record (PAX or GNU long name) exceeds the size limit.
    #[error("invalid tar header: {what} of {size} bytes exceeds the limit of {limit} bytes")]
    HeaderTooLarge {
        /// Which record.
        what: &'static str,
        /// Its declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Decompression failed.
    #[error("decompressing {format} stream: {source}")]
    Decompress {
        /// Compression format.
        format: &'static str,
        /// The decoder's error.
        #[source]
        source: std::io::Error,
    },
    /// An entry would escape the root or is otherwise refused.
    #[error("refusing entry {path:?}: {reason}")]
    Refused {
        /// Entry name as in the archive (lossy).
        path: String,
        /// Why.
        reason: String,
    },
    /// An I/O operation on a path inside the root failed.
    #[error("{op} {path:?}: {source}")]
    Path {
        /// The operation (`create`, `chown`, `setxattr`, …).
        op: &'static str,
        /// The path, relative to the root.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Replayed content does not match the tar-split record.
    #[error("corrupt layer content for {path:?}: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What did not match.
        reason: String,
    },
    /// A copy that cannot be done as asked (a directory onto a file, a
    /// directory into itself, a source that changed while it was read).
    #[error("{0}")]
    Copy(String),
    /// A feature that is not implemented.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// ID map translation failed.
    #[error(transparent)]
    IdMap(#[from] strata_idmap::Error),
    /// The named producer of a chunk stream went away without finishing
    /// it (it panicked): what was received is not the whole stream.
    #[error("{0} stopped without finishing its stream")]
    Abandoned(&'static str),
    /// Other I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidHeader(_)
            | Error::UnexpectedEof(_)
            | Error::HeaderTooLarge { .. }
            | Error::Decompress { .. }
            | Error::Refused { .. }
            | Error::Copy(_)
            | Error::IdMap(_) => ErrorKind::InvalidInput,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::Abandoned(_) => ErrorKind::Io,
            Error::Path { source, .. } | Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                std::io::ErrorKind::ResourceBusy => ErrorKind::Busy,
                std::io::ErrorKind::Unsupported => ErrorKind::Unsupported,
                _ => ErrorKind::Io,
            },
        }
    }

    /// Wraps an I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
