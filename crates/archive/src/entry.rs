//! The parsed form of a tar member, as it flows from the reader to the
//! applier (and from a tree walk to the exporter).
//!
//! A member travels as one [`Item::Header`] followed by zero or more
//! [`Item::Data`] chunks (file content, in increasing offset order; sparse
//! files skip the holes) and one [`Item::End`]. Chunks are bounded in size so
//! a large file never sits in memory whole.

pub use bytes::Bytes;

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Whole seconds (may be negative).
    pub sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nsec: u32,
}

impl Timestamp {
    /// The current time (the epoch if the clock is before it).
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        }
    }
}

/// What a tar member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file of `size` bytes (logical size, holes included).
    File,
    /// A hard link to an earlier member, named relative to the archive root.
    HardLink {
        /// Target as written in the archive (normalised like [`Header::path`]).
        target: Vec<u8>,
    },
    /// A symbolic link with the given target (kept verbatim).
    Symlink {
        /// Link target bytes.
        target: Vec<u8>,
    },
    /// A directory.
    Directory,
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// A socket (never created on apply).
    Socket,
}

/// One extended attribute (`SCHILY.xattr.NAME` in PAX).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xattr {
    /// Attribute name, e.g. `security.capability`.
    pub name: Vec<u8>,
    /// Raw value.
    pub value: Vec<u8>,
}

/// One data region of a sparse file: `length` bytes of content belong at
/// `offset`; everything between regions is a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseRegion {
    /// Offset in the logical file.
    pub offset: u64,
    /// Length of the region.
    pub length: u64,
}

/// Metadata of one tar member, after PAX/GNU extensions are folded in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Path relative to the layer root: no leading `/` or `./`, no trailing
    /// `/`, `.` components removed. `..` components are *kept* so that the
    /// applier can refuse them with a clear error; the root itself is the
    /// empty path.
    pub path: Vec<u8>,
    /// Path exactly as the archive spelled it (for messages and tar-split).
    pub raw_path: Vec<u8>,
    /// Member type.
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (`0o7777` mask).
    pub mode: u32,
    /// Owner in container ID space.
    pub uid: u32,
    /// Group in container ID space.
    pub gid: u32,
    /// User name, if the archive carries one.
    pub uname: Option<Vec<u8>>,
    /// Group name, if the archive carries one.
    pub gname: Option<Vec<u8>>,
    /// Modification time.
    pub mtime: Timestamp,
    /// Access time, when the archive carries one (PAX or GNU).
    pub atime: Option<Timestamp>,
    /// Logical size of the content (0 for everything but files).
    pub size: u64,
    /// Sparse map for sparse files; `None` for dense content.
    pub sparse: Option<Vec<SparseRegion>>,
    /// Extended attributes, in archive order.
    pub xattrs: Vec<Xattr>,
}

impl Header {
    /// A header with the given path and kind and neutral metadata
    /// (mode 0o644, or 0o755 for directories, owned by 0:0, time 0).
    pub fn new(path: impl Into<Vec<u8>>, kind: EntryKind) -> Self {
        let path = path.into();
        let mode = if kind == EntryKind::Directory {
            0o755
        } else {
            0o644
        };
        Self {
            raw_path: path.clone(),
            path,
            kind,
            mode,
            uid: 0,
            gid: 0,
            uname: None,
            gname: None,
            mtime: Timestamp::default(),
            atime: None,
            size: 0,
            sparse: None,
            xattrs: Vec::new(),
        }
    }
}

/// One step of the entry stream.
#[derive(Debug)]
pub enum Item {
    /// Start of a member.
    Header(Box<Header>),
    /// A chunk of the current member's content at a logical offset.
    Data {
        /// Offset within the logical file.
        offset: u64,
        /// The bytes: often a slice of the buffer the stream was read
        /// into, shared rather than copied.
        bytes: Bytes,
    },
    /// End of the current member.
    End,
}

/// Maximum bytes in one [`Item::Data`] chunk.
pub const CHUNK: usize = 256 * 1024;
