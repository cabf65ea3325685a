//! The tar-split record: every byte of a tar stream that is not file content,
//! plus name, size and CRC-64/ISO of each file's content, so that the stream
//! can be rebuilt byte for byte from the files on disk.
//!
//! Format (one JSON object per line, as containers/storage writes it into
//! `<id>.tar-split.gz`; field order and escaping as Go's `encoding/json`):
//!
//! ```text
//! {"type":2,"payload":"<base64 raw bytes>","position":0}
//! {"type":1,"name":"./etc/passwd","size":1234,"payload":"<base64 crc64>","position":1}
//! {"type":1,"name":"./etc/","payload":null,"position":2}
//! ```
//!
//! - One type 2 *segment* precedes each member: the previous member's
//!   padding, then all header blocks of this member (PAX/GNU records and
//!   their padding, the main header, sparse extensions).
//! - One type 1 *file* entry per member (every type, and PAX global
//!   headers too): `name` as archived (after long-name extensions, not
//!   normalised), or `name_raw` (base64) when the name is not UTF-8;
//!   `size` omitted when 0; `payload` the 8-byte big-endian CRC-64/ISO of
//!   the content, `null` when the size is 0.
//! - After the last member: one segment with the last padding and the
//!   end-of-archive blocks, then the bytes after them in segments of at most
//!   1 MiB, and always a final empty segment (`"payload":""`).
//! - `position` counts lines from 0.
//!
//! The layout was checked against `containers-storage import-layer` (1.43).

mod crc;
mod forward;
mod json;
mod replaced;
mod source;

use std::io::{BufRead, Read, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

pub use crc::Crc64;
pub use forward::{record_on_thread, Forwarder};
pub use replaced::ReplacedMembers;
pub use source::{read_ahead, DirSource};

use crate::reader::RawSink;
use crate::{Error, Result};

/// Where replay finds file content by name.
pub trait FileSource {
    /// Opens the file recorded under `name` (archive name, relative to the
    /// layer root). Implementations must confine the lookup to their roots.
    fn open(&self, name: &[u8]) -> std::io::Result<Box<dyn Read + '_>>;

    /// `name` will be needed soon ([`replay`] names files
    /// [`PREFETCH_AHEAD`] entries before their turn): a source on a disk may
    /// open it now and ask for its content to be read in. The file it
    /// returns is read in place of [`FileSource::open`]'s when the turn
    /// comes. `None` (the default, and what a source returns when it cannot
    /// open the file now) leaves the opening, and any error, to `open`.
    fn prefetch(&self, _name: &[u8]) -> Option<Box<dyn Read + '_>> {
        None
    }
}

/// How many record entries ahead of the one it writes [`replay`] reads the
/// record and announces files to the source ([`FileSource::prefetch`]): a
/// layer's files read from a cold disk one after another wait for every
/// read in turn; announced, the disk reads several at once.
pub const PREFETCH_AHEAD: usize = 64;

/// Writes a tar-split record as JSON lines; feed it to a
/// [`crate::reader::Reader`] as its [`RawSink`].
pub struct Recorder<W: Write> {
    out: W,
    pending: Vec<u8>,
    line: Vec<u8>,
    position: u64,
}

impl<W: Write> Recorder<W> {
    /// A recorder writing uncompressed JSON lines to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            pending: Vec::new(),
            line: Vec::new(),
            position: 0,
        }
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> Result<W> {
        self.out
            .flush()
            .map_err(|e| Error::io("writing tar-split record", e))?;
        Ok(self.out)
    }

    fn segment(&mut self, bytes: &[u8]) -> Result<()> {
        self.line.clear();
        self.line.extend_from_slice(b"{\"type\":2,\"payload\":");
        json::push_b64(&mut self.line, bytes);
        self.end_line()
    }

    fn flush_pending(&mut self) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let r = self.segment(&pending);
        self.pending = pending;
        self.pending.clear();
        r
    }

    fn end_line(&mut self) -> Result<()> {
        self.line.extend_from_slice(b",\"position\":");
        self.line
            .extend_from_slice(self.position.to_string().as_bytes());
        self.line.extend_from_slice(b"}\n");
        self.position += 1;
        self.out
            .write_all(&self.line)
            .map_err(|e| Error::io("writing tar-split record", e))
    }
}

impl<W: Write> RawSink for Recorder<W> {
    fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    fn member(&mut self, name: &[u8], size: u64, crc: Option<u64>) -> Result<()> {
        self.flush_pending()?;
        self.line.clear();
        self.line.extend_from_slice(b"{\"type\":1,");
        match std::str::from_utf8(name) {
            Ok(s) => {
                self.line.extend_from_slice(b"\"name\":");
                json::push_str(&mut self.line, s);
            }
            Err(_) => {
                self.line.extend_from_slice(b"\"name_raw\":");
                json::push_b64(&mut self.line, name);
            }
        }
        if size > 0 {
            self.line.extend_from_slice(b",\"size\":");
            self.line.extend_from_slice(size.to_string().as_bytes());
        }
        self.line.extend_from_slice(b",\"payload\":");
        match crc {
            Some(c) => json::push_b64(&mut self.line, &c.to_be_bytes()),
            None => self.line.extend_from_slice(b"null"),
        }
        self.end_line()
    }

    fn end(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            self.flush_pending()?;
        }
        Ok(())
    }

    fn trailing(&mut self, bytes: &[u8]) -> Result<()> {
        self.segment(bytes)
    }
}

/// One line of a record, as read back.
#[derive(serde::Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_raw: Option<String>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    payload: Option<String>,
}

impl Line {
    /// The archive name of a file entry (`name`, else `name_raw`).
    fn file_name(&self, n: usize) -> Result<Vec<u8>> {
        match (&self.name, &self.name_raw) {
            (Some(s), _) => Ok(s.as_bytes().to_vec()),
            (None, Some(raw)) => decode_b64(raw, n),
            (None, None) => Err(corrupt(
                "tar-split record",
                format!("line {}: file entry without a name", n + 1),
            )),
        }
    }
}

/// The regular files with content that a record names, as (archive name,
/// size), reading the whole record (so a damaged one is an error) but no
/// file content.
pub fn files(record: impl BufRead) -> Result<Vec<(Vec<u8>, u64)>> {
    let mut out = Vec::new();
    for item in lines(record) {
        let (n, entry) = item?;
        let size = entry.size.unwrap_or(0);
        if entry.kind == 1 && size > 0 {
            out.push((entry.file_name(n)?, size as u64));
        }
    }
    Ok(out)
}

/// The record's entries with their (0-based) line numbers; blank lines
/// are skipped, a line that does not parse is a `Corrupt` error naming it.
fn lines(record: impl BufRead) -> impl Iterator<Item = Result<(usize, Line)>> {
    record
        .split(b'\n')
        .enumerate()
        .filter_map(|(n, line)| match line {
            Err(e) => Some(Err(Error::io("reading tar-split record", e))),
            Ok(l) if l.iter().all(u8::is_ascii_whitespace) => None,
            Ok(l) => Some(
                serde_json::from_slice(&l)
                    .map(|entry| (n, entry))
                    .map_err(|e| corrupt("tar-split record", format!("line {}: {e}", n + 1))),
            ),
        })
}

fn corrupt(path: &str, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Rebuilds the original tar stream from a record and file contents; returns
/// the number of bytes written. A content mismatch or missing file is a
/// `Corrupt` error naming the file.
pub fn replay(record: impl BufRead, source: &dyn FileSource, out: &mut dyn Write) -> Result<u64> {
    let mut written = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    let mut last_segment: Vec<u8> = Vec::new();
    let mut items = lines(record);
    // Entries read ahead, each with its file's name and the file when the
    // source opened it on announcement.
    let mut ahead = std::collections::VecDeque::with_capacity(PREFETCH_AHEAD);
    loop {
        while ahead.len() < PREFETCH_AHEAD {
            let Some(item) = items.next() else { break };
            let mut announced = None;
            if let Ok((n, e)) = &item {
                if e.kind == 1 && e.size.unwrap_or(0) > 0 {
                    if let Ok(name) = e.file_name(*n) {
                        let file = source.prefetch(&name);
                        announced = Some((name, file));
                    }
                }
            }
            ahead.push_back((item, announced));
        }
        let Some((item, announced)) = ahead.pop_front() else {
            break;
        };
        let (n, entry) = item?;
        match entry.kind {
            2 => {
                let bytes = decode_b64(entry.payload.as_deref().unwrap_or(""), n)?;
                write_out(out, &bytes)?;
                written += bytes.len() as u64;
                last_segment = bytes;
            }
            1 => {
                let size = entry.size.unwrap_or(0);
                if size <= 0 {
                    continue;
                }
                let (name, file) = match announced {
                    Some(a) => a,
                    None => (entry.file_name(n)?, None),
                };
                let shown = String::from_utf8_lossy(&name).into_owned();
                let want = decode_b64(entry.payload.as_deref().unwrap_or(""), n)?;
                let mut file = match file {
                    Some(f) => f,
                    None => source
                        .open(&name)
                        .map_err(|e| corrupt(&shown, format!("cannot open: {e}")))?,
                };
                // A sparse member stores only its data regions; the map is
                // in the header bytes just replayed.
                let stored = StoredRegions::new(sparse_map(&last_segment));
                let mut crc = Crc64::new();
                let mut got = 0u64;
                loop {
                    let k = match file.read(&mut buf) {
                        Ok(0) => break,
                        Ok(k) => k,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(corrupt(&shown, format!("read: {e}"))),
                    };
                    crc.update(&buf[..k]);
                    written += stored.write(got, &buf[..k], out)?;
                    got += k as u64;
                }
                if crc.to_be_bytes()[..] != want[..] {
                    return Err(corrupt(
                        &shown,
                        format!("CRC-64 mismatch ({got} bytes read, {size} recorded)"),
                    ));
                }
            }
            t => {
                return Err(corrupt(
                    "tar-split record",
                    format!("line {}: unknown entry type {t}", n + 1),
                ))
            }
        }
    }
    Ok(written)
}

/// The sparse map of the member whose header blocks end `segment` (a
/// segment is the previous member's padding, then whole header blocks), or
/// `None` for a dense member or headers we cannot parse.
fn sparse_map(segment: &[u8]) -> Option<Vec<crate::entry::SparseRegion>> {
    let headers = &segment[segment.len() % crate::reader::BLOCK..];
    let mut reader = crate::reader::Reader::new(std::io::Cursor::new(headers));
    match reader.next_item() {
        Ok(Some(crate::entry::Item::Header(h))) => h.sparse,
        _ => None,
    }
}

/// Writes the parts of a file's logical content that the archive stores.
struct StoredRegions {
    map: Option<Vec<crate::entry::SparseRegion>>,
}

impl StoredRegions {
    fn new(map: Option<Vec<crate::entry::SparseRegion>>) -> Self {
        Self { map }
    }

    /// Writes what of `chunk` (at logical `offset`) is stored; returns the
    /// bytes written.
    fn write(&self, offset: u64, chunk: &[u8], out: &mut dyn Write) -> Result<u64> {
        let Some(map) = &self.map else {
            write_out(out, chunk)?;
            return Ok(chunk.len() as u64);
        };
        let end = offset + chunk.len() as u64;
        let mut n = 0;
        for r in map {
            let (a, b) = (r.offset.max(offset), (r.offset + r.length).min(end));
            if a < b {
                write_out(out, &chunk[(a - offset) as usize..(b - offset) as usize])?;
                n += b - a;
            }
        }
        Ok(n)
    }
}

fn decode_b64(s: &str, line: usize) -> Result<Vec<u8>> {
    STANDARD
        .decode(s)
        .map_err(|e| corrupt("tar-split record", format!("line {}: {e}", line + 1)))
}

fn write_out(out: &mut dyn Write, bytes: &[u8]) -> Result<()> {
    out.write_all(bytes)
        .map_err(|e| Error::io("writing replayed tar stream", e))
}
