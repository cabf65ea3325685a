//! The tar-split record: every byte of a tar stream that is not file content,
//! plus name, size and CRC-64/ISO of each file's content, so that the stream
//! can be rebuilt byte for byte from the files on disk.
//!
//! Format (one JSON object per line, as containers/storage writes it into
//! `<id>.tar-split.gz`):
//!
//! ```text
//! {"type":2,"payload":"<base64 raw bytes>","position":0}
//! {"type":1,"name":"etc/passwd","size":1234,"payload":"<base64 crc64>","position":1}
//! ```
//!
//! `name_raw` (base64) replaces `name` when the name is not UTF-8.

use std::io::{BufRead, Read, Write};

use crate::Result;

/// Where replay finds file content by name.
pub trait FileSource {
    /// Opens the file recorded under `name` (archive name, relative to the
    /// layer root). Implementations must confine the lookup to their roots.
    fn open(&self, name: &[u8]) -> std::io::Result<Box<dyn Read + '_>>;
}

/// Rebuilds the original tar stream from a record and file contents; returns
/// the number of bytes written. A content mismatch is a `Corrupt` error
/// naming the file.
pub fn replay(record: impl BufRead, source: &dyn FileSource, out: &mut dyn Write) -> Result<u64> {
    let _ = (record, source, out);
    Err(crate::Error::Unsupported(
        "tar-split replay (not yet implemented)".into(),
    ))
}
