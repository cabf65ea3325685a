//! Streaming tar reader: ustar, GNU and PAX members become
//! [`crate::entry::Item`]s, while every byte that is not file content is
//! handed to a [`RawSink`] (the tar-split recorder).
//!
//! # Why our own reader
//!
//! `tar::Archive` hides the raw header blocks, PAX bodies, GNU long-name
//! blocks, padding and trailing bytes, and tar-split needs every one of them
//! byte for byte; it also lacks PAX sparse maps. So this is a thin state
//! machine over 512-byte blocks that uses the `tar` crate for the header
//! *layout* (`tar::Header`, `GnuHeader`, `UstarHeader`, ustar prefix joining)
//! and our own small parsers ([`fields`]) for numbers (empty fields, base-256
//! negatives) and PAX records (values may contain newlines). It mirrors Go's
//! `archive/tar` (what containers-storage uses) where behaviour is visible:
//! which bytes form one tar-split segment, how a missing end-of-archive
//! marker or missing final padding is accepted, and which size is recorded.
//!
//! Memory is bounded: one header record is at most [`MAX_HEADER_RECORD`]
//! bytes, all header bytes of one member at most [`MAX_MEMBER_HEADERS`], and
//! content flows in chunks of at most [`CHUNK`].

pub mod fields;
mod member;

use std::io::Read;

use crate::entry::{Bytes, Item, SparseRegion, CHUNK};
use crate::tarsplit::Crc64;
use crate::{Error, Result};

pub use member::MemberInfo;

/// Largest single header record (PAX extended header, GNU long name) accepted.
pub const MAX_HEADER_RECORD: u64 = 1024 * 1024;

/// Largest total of header bytes (all PAX/GNU records, extension blocks and
/// sparse maps) that may precede one member's content.
pub const MAX_MEMBER_HEADERS: u64 = 4 * MAX_HEADER_RECORD;

/// Size of the chunks trailing bytes after the end-of-archive marker are
/// recorded in (as containers/storage's tar-split does).
pub const TRAILING_CHUNK: usize = 1024 * 1024;

pub(crate) const BLOCK: usize = 512;

/// Receives the non-content bytes of a tar stream, in stream order, and one
/// notice per member; a tar-split recorder implements it.
pub trait RawSink {
    /// Non-content bytes (headers, PAX and GNU records, padding).
    fn raw(&mut self, bytes: &[u8]) -> Result<()>;
    /// A member's content ended. `name` is the member name as archived (after
    /// PAX/GNU long names, before normalisation); `size` the logical size;
    /// `crc` the CRC-64/ISO of the logical content, given when `size > 0`.
    fn member(&mut self, name: &[u8], size: u64, crc: Option<u64>) -> Result<()>;
    /// The end of the archive was reached (after the end-of-archive marker
    /// or at end of input).
    fn end(&mut self) -> Result<()>;
    /// Bytes after the end of the archive; called once per chunk of at most
    /// [`TRAILING_CHUNK`] bytes and finally once with an empty slice.
    fn trailing(&mut self, bytes: &[u8]) -> Result<()>;
}

/// A sink that records nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRecord;

impl RawSink for NoRecord {
    fn raw(&mut self, _: &[u8]) -> Result<()> {
        Ok(())
    }
    fn member(&mut self, _: &[u8], _: u64, _: Option<u64>) -> Result<()> {
        Ok(())
    }
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
    fn trailing(&mut self, _: &[u8]) -> Result<()> {
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Headers,
    Content,
    Done,
}

/// The member whose content is being read.
struct Current {
    info: MemberInfo,
    /// Stored regions (one dense region for ordinary files).
    regions: Vec<SparseRegion>,
    region: usize,
    within: u64,
    /// Content bytes of this member still in the stream.
    stored_left: u64,
    /// Padding after the stored bytes.
    pad: usize,
    /// Logical offset the CRC has reached.
    crc_pos: u64,
    crc: Option<Crc64>,
}

/// A pull reader of [`Item`]s from an uncompressed tar stream.
pub struct Reader<R, S = NoRecord> {
    input: R,
    sink: S,
    record: bool,
    state: State,
    cur: Option<Current>,
    block: Box<[u8; BLOCK]>,
}

/// Where a [`Reader`] takes its bytes from: any [`Read`], or an input that
/// holds the stream in memory already and hands out file content as shared
/// slices instead of copies (the import pipeline's).
pub trait Source {
    /// Reads into `buf`, as [`Read::read`] does.
    fn read_into(&mut self, buf: &mut [u8]) -> std::io::Result<usize>;

    /// The next bytes of the stream, at most `max` (more than zero) of them;
    /// empty only at the end of the input. The default reads into a new
    /// buffer.
    fn take_bytes(&mut self, max: usize) -> std::io::Result<Bytes> {
        let mut buf = vec![0; max];
        let got = fill(self, &mut buf)?;
        buf.truncate(got);
        Ok(buf.into())
    }
}

impl<R: Read + ?Sized> Source for R {
    fn read_into(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read(buf)
    }
}

impl<R: Source> Reader<R, NoRecord> {
    /// A reader that records nothing.
    pub fn new(input: R) -> Self {
        Self::with_sink(input, NoRecord, Record::No)
    }
}

/// Whether a [`Reader`] computes content CRCs for its sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Compute CRC-64/ISO of each member's content (tar-split).
    Yes,
    /// Skip the CRC (the sink gets `None`).
    No,
}

impl<R: Source, S: RawSink> Reader<R, S> {
    /// A reader feeding `sink`.
    pub fn with_sink(input: R, sink: S, record: Record) -> Self {
        Self {
            input,
            sink,
            record: record == Record::Yes,
            state: State::Headers,
            cur: None,
            block: Box::new([0; BLOCK]),
        }
    }

    /// The sink, e.g. to finish a recording.
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Gives back the input and the sink.
    pub fn into_parts(self) -> (R, S) {
        (self.input, self.sink)
    }

    /// The member being read, if any (between its `Header` and `End`).
    pub fn current(&self) -> Option<&MemberInfo> {
        self.cur.as_ref().map(|c| &c.info)
    }

    /// The next item, or `None` after the end of the archive (trailing bytes
    /// included) has been consumed.
    pub fn next_item(&mut self) -> Result<Option<Item>> {
        match self.state {
            State::Done => Ok(None),
            State::Headers => match self.read_member()? {
                Some(cur) => {
                    let header = Box::new(cur.info.header.clone());
                    self.cur = Some(cur);
                    self.state = State::Content;
                    Ok(Some(Item::Header(header)))
                }
                None => {
                    self.finish_archive()?;
                    self.state = State::Done;
                    Ok(None)
                }
            },
            State::Content => self.content(),
        }
    }

    fn content(&mut self) -> Result<Option<Item>> {
        let Some(cur) = self.cur.as_mut() else {
            self.state = State::Headers;
            return Ok(Some(Item::End));
        };
        while let Some(r) = cur.regions.get(cur.region) {
            if cur.within == r.length {
                cur.region += 1;
                cur.within = 0;
                continue;
            }
            let max = (r.length - cur.within).min(CHUNK as u64) as usize;
            let bytes = self.input.take_bytes(max).map_err(input_error)?;
            let n = bytes.len();
            if n == 0 {
                return Err(Error::UnexpectedEof("inside file content".into()));
            }
            let offset = r.offset + cur.within;
            if let Some(crc) = cur.crc.as_mut() {
                crc.zeros(offset - cur.crc_pos);
                crc.update(&bytes);
                cur.crc_pos = offset + n as u64;
            }
            cur.within += n as u64;
            cur.stored_left -= n as u64;
            return Ok(Some(Item::Data { offset, bytes }));
        }
        // Content done: tell the sink, then consume the padding (which the
        // next tar-split segment starts with).
        let mut cur = self.cur.take().expect("current member");
        let size = cur.info.record_size;
        let crc = cur.crc.as_mut().map(|c| {
            c.zeros(size.saturating_sub(cur.crc_pos));
            c.value()
        });
        self.sink
            .member(&cur.info.name, size, if size > 0 { crc } else { None })?;
        self.read_padding(cur.pad)?;
        self.state = State::Headers;
        Ok(Some(Item::End))
    }

    /// Reads padding of `n` bytes. Like Go's reader, a stream that ends
    /// exactly where the padding would start is a clean end.
    fn read_padding(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let mut pad = [0u8; BLOCK];
        let got = read_full(&mut self.input, &mut pad[..n])?;
        self.sink.raw(&pad[..got])?;
        if got != 0 && got != n {
            return Err(Error::UnexpectedEof("inside padding".into()));
        }
        Ok(())
    }

    /// Reads one header block; `None` at a clean end of input.
    fn read_block(&mut self) -> Result<Option<()>> {
        let got = read_full(&mut self.input, &mut self.block[..])?;
        if got == 0 {
            return Ok(None);
        }
        self.sink.raw(&self.block[..got])?;
        if got != BLOCK {
            return Err(Error::UnexpectedEof(format!(
                "inside a header block ({got} of 512 bytes)"
            )));
        }
        Ok(Some(()))
    }

    /// Reads `size` bytes of a header record (PAX body, long name) and its
    /// padding, all recorded as raw bytes.
    fn read_record(&mut self, size: u64, what: &'static str, budget: &mut u64) -> Result<Vec<u8>> {
        if size > MAX_HEADER_RECORD {
            return Err(Error::HeaderTooLarge {
                what,
                size,
                limit: MAX_HEADER_RECORD,
            });
        }
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        take_budget(budget, padded)?;
        let mut buf = vec![0; padded as usize];
        let got = read_full(&mut self.input, &mut buf)?;
        self.sink.raw(&buf[..got])?;
        if (got as u64) < size || (got as u64 != padded && got as u64 != size) {
            return Err(Error::UnexpectedEof(format!("inside a {what}")));
        }
        buf.truncate(size as usize);
        Ok(buf)
    }

    /// After the end of the archive: consume and record trailing bytes.
    fn finish_archive(&mut self) -> Result<()> {
        self.sink.end()?;
        let mut buf = vec![0u8; TRAILING_CHUNK];
        loop {
            let got = read_full(&mut self.input, &mut buf)?;
            self.sink.trailing(&buf[..got])?;
            if got == 0 {
                return Ok(());
            }
        }
    }
}

fn take_budget(budget: &mut u64, n: u64) -> Result<()> {
    if n > *budget {
        return Err(Error::HeaderTooLarge {
            what: "headers of one member",
            size: MAX_MEMBER_HEADERS - *budget + n,
            limit: MAX_MEMBER_HEADERS,
        });
    }
    *budget -= n;
    Ok(())
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_full(input: &mut (impl Source + ?Sized), buf: &mut [u8]) -> Result<usize> {
    fill(input, buf).map_err(input_error)
}

/// [`read_full`] with the input's own error.
fn fill(input: &mut (impl Source + ?Sized), buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read_into(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Errors from the input are passed through when they are already ours
/// (the pipeline smuggles a decompression error inside an `io::Error`).
fn input_error(e: std::io::Error) -> Error {
    crate::compression::unwrap_error(e, "reading tar stream")
}
