//! The image crate's error type.

/// A small set of kinds callers branch on (the CLI maps them to exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The image, reference, blob or archive member does not exist.
    NotFound,
    /// Something of that name exists already.
    AlreadyExists,
    /// A feature is not available or not implemented.
    Unsupported,
    /// Bad arguments (a reference that does not parse, an ambiguous choice).
    InvalidInput,
    /// The image's data is damaged: a digest, size or document is wrong.
    Corrupt,
    /// Other I/O failure.
    Io,
}

/// Errors of the image crate. Every variant names the blob, member or field
/// it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image reference (name, tag, digest) does not parse.
    #[error("invalid image reference {input:?}: {reason}")]
    Reference {
        /// What was given.
        input: String,
        /// Why it is refused.
        reason: String,
    },
    /// A source or destination (`oci:DIR[:REF]`, …) does not parse.
    #[error("invalid image location {input:?}: {reason}")]
    Location {
        /// What was given.
        input: String,
        /// Why it is refused.
        reason: String,
    },
    /// The source holds no image matching the request, or several.
    #[error("{0}")]
    Select(String),
    /// A blob's digest or size is not the one its descriptor gives.
    #[error("{what} {digest}: {reason}")]
    Blob {
        /// `layer`, `config`, `manifest`, …
        what: &'static str,
        /// The digest the descriptor gives.
        digest: String,
        /// What did not match.
        reason: String,
    },
    /// A JSON document does not parse or misses a required field.
    #[error("{what} {name}: {reason}")]
    Document {
        /// `manifest`, `config`, `index`, `manifest.json`, …
        what: &'static str,
        /// Its digest or file name.
        name: String,
        /// The parser's message or the missing field.
        reason: String,
    },
    /// Importing or exporting one layer failed.
    #[error("layer {digest}: {source}")]
    Layer {
        /// The layer blob's digest.
        digest: String,
        /// Cause.
        #[source]
        source: Box<Error>,
    },
    /// A document names a media type strata does not know.
    #[error("{what} {name}: unknown media type {media_type:?}")]
    MediaType {
        /// `manifest`, `layer`, `config`, …
        what: &'static str,
        /// Its digest or file name.
        name: String,
        /// The media type.
        media_type: String,
    },
    /// A document is larger than strata reads.
    #[error("{what} {name} is larger than {limit} bytes")]
    TooLarge {
        /// `manifest`, `config`, …
        what: &'static str,
        /// Its digest or file name.
        name: String,
        /// The limit.
        limit: u64,
    },
    /// An archive member (or a link in it) leaves the archive.
    #[error("archive {archive:?}: member {member:?} leaves the archive")]
    Escape {
        /// The archive file.
        archive: std::path::PathBuf,
        /// The member's name (or link target).
        member: String,
    },
    /// Not implemented or not available.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, on which path.
        context: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The store failed (a layer that failed its check comes back as the
    /// check's own error, not as this).
    #[error(transparent)]
    Store(strata_store::Error),
    /// A layer stream could not be read or written.
    #[error("{context}: {source}")]
    Archive {
        /// What was being done.
        context: String,
        /// Cause.
        #[source]
        source: strata_archive::Error,
    },
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Reference { .. } | Error::Location { .. } | Error::Select(_) => {
                ErrorKind::InvalidInput
            }
            Error::Blob { .. }
            | Error::Document { .. }
            | Error::TooLarge { .. }
            | Error::Escape { .. } => ErrorKind::Corrupt,
            Error::MediaType { .. } | Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::Layer { source, .. } => source.kind(),
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                _ => ErrorKind::Io,
            },
            Error::Store(e) => match e.kind() {
                strata_store::ErrorKind::NotFound => ErrorKind::NotFound,
                strata_store::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                strata_store::ErrorKind::Unsupported => ErrorKind::Unsupported,
                strata_store::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
                strata_store::ErrorKind::Corrupt => ErrorKind::Corrupt,
                strata_store::ErrorKind::Busy
                | strata_store::ErrorKind::ReadOnly
                | strata_store::ErrorKind::Io => ErrorKind::Io,
            },
            Error::Archive { source, .. } => match source.kind() {
                strata_archive::ErrorKind::NotFound => ErrorKind::NotFound,
                strata_archive::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                strata_archive::ErrorKind::Unsupported => ErrorKind::Unsupported,
                strata_archive::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
                strata_archive::ErrorKind::Corrupt => ErrorKind::Corrupt,
                strata_archive::ErrorKind::Busy | strata_archive::ErrorKind::Io => ErrorKind::Io,
            },
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A document that does not parse.
    pub(crate) fn document(
        what: &'static str,
        name: impl Into<String>,
        reason: impl ToString,
    ) -> Self {
        Error::Document {
            what,
            name: name.into(),
            reason: reason.to_string(),
        }
    }
}

impl From<strata_store::Error> for Error {
    fn from(e: strata_store::Error) -> Self {
        match e {
            strata_store::Error::Rejected { source, .. } => match source.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Error::Store(strata_store::Error::Rejected {
                    layer: String::new(),
                    source: other,
                }),
            },
            e => Error::Store(e),
        }
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
