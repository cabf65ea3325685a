//! The one-pass import pipeline: decompress, read, record, digest, apply.
//!
//! ```text
//! compressed input:
//! thread "read":        input ─> sha256 (input) ─> chunks ─┐
//!                       ┌──────────────────────────────────┘
//! thread "decompress":  └─> decoder ─> chunks ─┬─> thread "hash": sha256 (tar) │
//! plain tar:                                    │                                 │
//! thread "decompress":  input ─> chunks ────────┴─> thread "hash": sha256 (input  │
//!                                        (bounded, buffers recycled)   = tar)     │
//!                       ┌─────────────────────────────────────────────────────────┘
//! calling thread:       └─> tar reader ─> tar-split recorder
//!                                  └─> applier / callback
//! ```
//!
//! A compressed input is read and hashed on a thread of its own, so that
//! the kernel's copy into the chunks and the input digest overlap the
//! decoder, the longest stage of a compressed layer, which reads its chunks
//! in place and does nothing else. The tar stream is hashed beside the
//! parser, by a [`StreamHasher`] that gets the same chunks; a plain tar is
//! hashed once ([`read_plain`]): its input digest is its tar digest.
//!
//! Parsing and applying share one thread: a hand-off per entry costs more
//! than the parsing it would offload, especially when other processes
//! compete for the cores; a hand-off per 256 KiB chunk costs nothing.
//!
//! Neighbouring threads share a [`crate::chunks`] channel: read and
//! decompression errors travel downstream in-band, so the caller sees the
//! first real cause (a decoder error, a bad header, an applier error),
//! never "channel closed", and a stage that dies is an error, not an early
//! end of the tar. When parsing stops, it drops its receiver; the stage
//! before it stops at its next send, and so on back to the reader.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::fd::BorrowedFd;

use sha2::{Digest, Sha256};
use strata_idmap::IdMappings;

use crate::chunks::{self, ChunkReader, ChunkReceiver, ChunkSender};
use crate::compression::{buf_decoder, decoder, smuggle, unwrap_error};
use crate::entry::{Bytes, Item, CHUNK};
use crate::reader::{read_full, NoRecord, RawSink, Reader, Record, Source};
use crate::tarsplit::{record_on_thread, ReplacedMembers};
use crate::{Applier, ApplierOptions, ApplyMode, Compression, Error, Result};

/// Chunks of decompressed bytes in flight between decompression and parsing.
const BYTE_SLOTS: usize = 16;
/// Chunks read and waiting to be decoded (a compressed input).
const READ_SLOTS: usize = 4;
/// Chunks the tar stream's hash may fall behind the parser's input: the
/// parser goes on while the hash is behind by fewer than this.
const HASH_LAG: usize = 24;

/// Options of [`apply_layer`].
#[derive(Default)]
pub struct ApplyOptions {
    /// Overlay form or full tree.
    pub mode: ApplyMode,
    /// Container→host ID maps for owners.
    pub id_mappings: IdMappings,
    /// Turn chown failures into one warning instead of an error.
    pub ignore_chown_errors: bool,
    /// When set, every file gets this mode and its real `uid:gid:mode` is
    /// stored in the `user.containers.override_stat` xattr.
    pub force_mask: Option<u32>,
    /// Receives the tar-split record as JSON lines (uncompressed); the caller
    /// compresses it. It is flushed, not finished, at the end.
    pub tar_split: Option<Box<dyn Write + Send>>,
    /// See [`ApplierOptions::unshare`].
    pub unshare: Option<crate::Unshare>,
}

/// What one pass over a layer stream measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Detected compression of the input.
    pub compression: Compression,
    /// `sha256:<hex>` of the input bytes as given.
    pub compressed_digest: String,
    /// Number of input bytes as given.
    pub compressed_size: u64,
    /// `sha256:<hex>` of the uncompressed tar stream.
    pub uncompressed_digest: String,
    /// Number of bytes of the uncompressed tar stream.
    pub uncompressed_size: u64,
    /// Container uids seen in the stream, sorted, unique.
    pub uids: Vec<u32>,
    /// Container gids seen in the stream, sorted, unique.
    pub gids: Vec<u32>,
    /// When a tar-split record was asked for: the name of the first member
    /// that replaced or removed an earlier member of the same stream (see
    /// [`crate::tarsplit::ReplacedMembers`]). The record then cannot
    /// rebuild the stream from the applied files; callers drop it.
    pub replaced_member: Option<Vec<u8>>,
    /// Whether an entry of the stream was applied to the root directory
    /// itself (`./`), setting its owner and mode; always `false` when the
    /// stream was not applied.
    pub root_entry: bool,
}

/// Applies a (possibly compressed) layer stream into the directory `root`.
///
/// On error the root may hold part of the layer; the caller removes it.
pub fn apply_layer(
    root: BorrowedFd<'_>,
    input: impl Read + Send,
    opts: ApplyOptions,
) -> Result<ApplyReport> {
    let mut applier = Applier::new(
        root,
        ApplierOptions {
            mode: opts.mode,
            id_mappings: opts.id_mappings,
            ignore_chown_errors: opts.ignore_chown_errors,
            force_mask: opts.force_mask,
            unshare: opts.unshare,
        },
    )?;
    let mut report = read_layer(input, opts.tar_split, |item| applier.push(item))?;
    report.root_entry = applier.root_entry_applied();
    applier.finish()?;
    Ok(report)
}

/// Everything [`apply_layer`] does except applying: digests, sizes, ID sets
/// and the tar-split record of a (possibly compressed) layer stream.
pub fn digest_layer(
    input: impl Read + Send,
    tar_split: Option<Box<dyn Write + Send>>,
) -> Result<ApplyReport> {
    run(input, tar_split, None)
}

/// Runs the pipeline and hands every [`Item`] to `on_item` on the calling
/// thread; the first error (of any stage or of `on_item`) stops it.
pub fn read_layer(
    input: impl Read + Send,
    tar_split: Option<Box<dyn Write + Send>>,
    mut on_item: impl FnMut(Item) -> Result<()>,
) -> Result<ApplyReport> {
    run(input, tar_split, Some(&mut on_item))
}

type ItemFn<'a> = &'a mut dyn FnMut(Item) -> Result<()>;

struct Decompressed {
    compression: Compression,
    /// The input's digest and size.
    digest: String,
    size: u64,
    /// The tar stream's (the same as the input's for a plain tar).
    tar_digest: String,
    tar_size: u64,
}

struct Parsed {
    uids: BTreeSet<u32>,
    gids: BTreeSet<u32>,
    replaced: Option<Vec<u8>>,
}

fn run(
    mut input: impl Read + Send,
    tar_split: Option<Box<dyn Write + Send>>,
    on_item: Option<ItemFn<'_>>,
) -> Result<ApplyReport> {
    let mut prefix = [0u8; 6];
    let n = read_full(&mut input, &mut prefix)?;
    let compression = Compression::detect(&prefix[..n]);
    let chained = std::io::Cursor::new(prefix[..n].to_vec()).chain(input);
    // Emptied chunks go back to the decompressor, which then neither
    // allocates nor zeroes a buffer per chunk.
    // The chunks are held by the tar stream's hasher too.
    let (bytes_tx, bytes_rx) =
        chunks::channel_keeping(BYTE_SLOTS, BYTE_SLOTS + HASH_LAG + 2, "strata-decompress");
    std::thread::scope(|s| {
        let dec = std::thread::Builder::new()
            .name("strata-decompress".into())
            .spawn_scoped(s, move || decompress(compression, chained, bytes_tx))
            .map_err(|e| Error::io("starting decompression thread", e))?;
        // Parsing, recording and applying share this thread: a hand-off per
        // entry would cost more than the parsing it offloads. Reading,
        // decompressing and hashing run on the others.
        let input = ChunkInput::new(bytes_rx);
        // Parsing drops the input when it stops, so the decompressor's next
        // send fails and it ends before it is joined.
        let parsed = parse(input, tar_split, on_item);
        let decompressed = join(dec, "decompression");
        // A parse or apply error is the earliest cause that reached us;
        // the decompression result matters only when parsing succeeded (a
        // panic there reaches the parser as an abandoned stream).
        let parsed = parsed?;
        let decompressed = decompressed?;
        Ok(report(decompressed, parsed))
    })
}

fn report(decompressed: Decompressed, parsed: Parsed) -> ApplyReport {
    ApplyReport {
        compression: decompressed.compression,
        compressed_digest: decompressed.digest,
        compressed_size: decompressed.size,
        uncompressed_digest: decompressed.tar_digest,
        uncompressed_size: decompressed.tar_size,
        uids: parsed.uids.into_iter().collect(),
        gids: parsed.gids.into_iter().collect(),
        replaced_member: parsed.replaced,
        root_entry: false,
    }
}

/// Joins a pipeline stage's thread; a panic there is an error naming the
/// stage.
pub(crate) fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>, stage: &str) -> Result<T> {
    h.join().unwrap_or_else(|_| Err(panicked(stage)))
}

/// The error of a pipeline thread that panicked (its message went to stderr).
fn panicked(stage: &str) -> Error {
    Error::io(
        format!("{stage} stage"),
        std::io::Error::other("thread panicked"),
    )
}

/// Counts and hashes everything read through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    size: u64,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            size: 0,
        }
    }

    /// The `sha256:<hex>` digest and the size.
    fn finish(self) -> (String, u64) {
        (sha256_digest(self.hash), self.size)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

fn sha256_digest(h: Sha256) -> String {
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// A thread that hashes the chunks it is given, in order, up to
/// [`HASH_LAG`] chunks behind: the tar stream's digest (a plain tar's
/// input is its tar stream), computed beside the parser instead of before
/// it or on its thread. Where the parser is slow (many small files) the
/// hash catches up, and where it is fast (big files) the parser does not
/// wait for it.
struct StreamHasher {
    tx: crossbeam_channel::Sender<Bytes>,
    thread: std::thread::JoinHandle<(String, u64)>,
}

impl StreamHasher {
    /// Starts the thread for the chunks `tx` sends, handing `tx` back; if
    /// it cannot, `tx`'s consumer is told why.
    fn start_for(tx: ChunkSender) -> Result<(Self, ChunkSender)> {
        match Self::start() {
            Ok(h) => Ok((h, tx)),
            Err(e) => {
                tx.fail(e);
                Err(downstream("starting the hashing thread failed"))
            }
        }
    }

    fn start() -> Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded::<Bytes>(HASH_LAG);
        let thread = std::thread::Builder::new()
            .name("strata-hash".into())
            .spawn(move || {
                let mut hash = Sha256::new();
                let mut size = 0u64;
                for chunk in rx {
                    hash.update(&chunk);
                    size += chunk.len() as u64;
                }
                (sha256_digest(hash), size)
            })
            .map_err(|e| Error::io("starting the hashing thread", e))?;
        Ok(Self { tx, thread })
    }

    /// Hands `chunk` to the hasher and, the same buffer, to `tx`'s
    /// consumer; `false` once that consumer is gone (it reports why).
    fn send(&self, tx: &ChunkSender, chunk: Vec<u8>) -> bool {
        let chunk = tx.share(chunk);
        // The hashing thread ends only when this sender is dropped.
        self.tx.send(chunk.clone()).is_ok() && tx.send_shared(chunk).is_ok()
    }

    /// The `sha256:<hex>` digest and the size of everything sent.
    fn finish(self) -> Result<(String, u64)> {
        drop(self.tx);
        self.thread.join().map_err(|_| panicked("hashing"))
    }
}

fn decompress(
    compression: Compression,
    input: impl Read + Send,
    tx: ChunkSender,
) -> Result<Decompressed> {
    if compression == Compression::None {
        return read_plain(input, tx);
    }
    let (hasher, tx) = StreamHasher::start_for(tx)?;
    // Reading and hashing the input run on a thread of their own, so that
    // the decoder, the longest stage of a compressed layer, does nothing
    // else; it reads the chunks in place.
    let (raw_tx, raw_rx) = chunks::channel(READ_SLOTS, "strata-read");
    std::thread::scope(|s| {
        let reader = std::thread::Builder::new()
            .name("strata-read".into())
            .spawn_scoped(s, move || read_hashed(input, raw_tx))
            .map_err(|e| Error::io("starting the input reader thread", e))?;
        let mut raw = ChunkReader::new(raw_rx);
        let decoded = (|| {
            let mut dec = buf_decoder(compression, Box::new(&mut raw))?;
            pump_with(&mut dec, &tx, |chunk| hasher.send(&tx, chunk))
        })();
        // When the parser stopped first the rest of the input is not read;
        // otherwise bytes after the compressed stream still belong to the
        // input digest.
        let decoded = end_stream(decoded, tx, "decompression failed").and_then(|()| {
            std::io::copy(&mut raw, &mut std::io::sink())
                .map(|_| ())
                .map_err(|e| unwrap_error(e, "reading layer input"))
        });
        // The reader ends at the input's end or error, or at its next send
        // once this receiver is gone.
        drop(raw);
        let read = join(reader, "input reader");
        let tar = hasher.finish();
        decoded?;
        let (digest, size) = read?;
        let (tar_digest, tar_size) = tar?;
        Ok(Decompressed {
            compression,
            digest,
            size,
            tar_digest,
            tar_size,
        })
    })
}

/// A compressed input's first stage: reads `input` into chunks for `tx`
/// and hashes them (the input digest).
fn read_hashed(input: impl Read + Send, tx: ChunkSender) -> Result<(String, u64)> {
    let read = (|| {
        let mut hashed = Hashing::new(decoder(Compression::None, Box::new(input))?);
        // The decoder may have stopped first; it reports why.
        pump(&mut hashed, &tx)?;
        Ok(hashed.finish())
    })();
    match read {
        Ok(digest) => {
            tx.finish();
            Ok(digest)
        }
        Err(e) => {
            tx.fail(e);
            Err(downstream("reading the input failed"))
        }
    }
}

/// The error of a stage that passed its real one on to the next stage,
/// whose report is the one the caller sees.
fn downstream(what: &str) -> Error {
    Error::Unsupported(format!("{what} (reported downstream)"))
}

/// Reads `input` into chunks (buffers from `tx`) and sends them to `tx`
/// until the input ends (`true`) or the consumer is gone (`false`).
fn pump(input: &mut dyn Read, tx: &ChunkSender) -> Result<bool> {
    pump_with(input, tx, |chunk| tx.send(chunk).is_ok())
}

/// [`pump`], each chunk handed to `send`, which says whether its consumers
/// are still there.
fn pump_with(
    input: &mut dyn Read,
    tx: &ChunkSender,
    mut send: impl FnMut(Vec<u8>) -> bool,
) -> Result<bool> {
    loop {
        let mut chunk = tx.buffer();
        // Reused chunks are full-sized already: this zeroes only new
        // buffers.
        chunk.resize(CHUNK, 0);
        let got = read_full(&mut *input, &mut chunk)?;
        if got == 0 {
            return Ok(true);
        }
        chunk.truncate(got);
        if !send(chunk) {
            return Ok(false);
        }
    }
}

/// Ends `tx`'s stream after [`pump_with`] returned `pumped`: finished at
/// the input's end (the parser then finishes while the hash catches up),
/// failed with the stage's error (`failed` is this stage's report of it).
/// A parser that stopped first reports why itself.
fn end_stream(pumped: Result<bool>, tx: ChunkSender, failed: &str) -> Result<()> {
    match pumped {
        Ok(true) => {
            tx.finish();
            Ok(())
        }
        Ok(false) => Err(downstream("parsing stopped")),
        Err(e) => {
            tx.fail(e);
            Err(downstream(failed))
        }
    }
}

/// A plain tar's stage: reads the input into chunks for the parser and
/// the [`StreamHasher`]; the input digest is the tar digest.
fn read_plain(input: impl Read + Send, tx: ChunkSender) -> Result<Decompressed> {
    let (hasher, tx) = StreamHasher::start_for(tx)?;
    let read = (|| {
        let mut input = decoder(Compression::None, Box::new(input))?;
        // The parser reads to the input's end (trailing bytes included)
        // unless it failed, and reports why.
        pump_with(&mut input, &tx, |chunk| hasher.send(&tx, chunk))
    })();
    let read = end_stream(read, tx, "reading the input failed");
    let hashed = hasher.finish();
    read?;
    let (digest, size) = hashed?;
    Ok(Decompressed {
        compression: Compression::None,
        digest: digest.clone(),
        size,
        tar_digest: digest,
        tar_size: size,
    })
}

/// The tar stream as the decompression stage sends it, in chunks. The reader
/// copies header blocks out of them but takes file content as slices of the
/// chunks themselves ([`Source::take_bytes`]), so content is never copied
/// on this thread.
struct ChunkInput {
    rx: ChunkReceiver,
    chunk: Bytes,
    pos: usize,
}

impl ChunkInput {
    fn new(rx: ChunkReceiver) -> Self {
        Self {
            rx,
            chunk: Bytes::new(),
            pos: 0,
        }
    }

    /// Makes unread bytes available; `false` at the end of the stream.
    fn fill(&mut self) -> std::io::Result<bool> {
        while self.pos == self.chunk.len() {
            // Whoever drops the last slice of a chunk (this thread or the
            // applier's writer) sends the buffer back.
            match self.rx.next_chunk().map_err(smuggle)? {
                Some(b) => {
                    self.chunk = b;
                    self.pos = 0;
                }
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}

impl Source for ChunkInput {
    fn read_into(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() || !self.fill()? {
            return Ok(0);
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }

    fn take_bytes(&mut self, max: usize) -> std::io::Result<Bytes> {
        if max == 0 || !self.fill()? {
            return Ok(Bytes::new());
        }
        let n = max.min(self.chunk.len() - self.pos);
        let bytes = self.chunk.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(bytes)
    }
}

/// Parses the tar stream, recording tar-split (on a thread of its own)
/// when a writer was given.
fn parse(
    input: ChunkInput,
    tar_split: Option<Box<dyn Write + Send>>,
    on_item: Option<ItemFn<'_>>,
) -> Result<Parsed> {
    match tar_split {
        Some(w) => record_on_thread(w, |fwd| parse_with(input, fwd, Record::Yes, on_item)),
        None => parse_with(input, NoRecord, Record::No, on_item).map(|(p, _)| p),
    }
}

fn parse_with<S: RawSink>(
    input: ChunkInput,
    sink: S,
    record: Record,
    mut on_item: Option<ItemFn<'_>>,
) -> Result<(Parsed, S)> {
    // Only a recorded stream needs to know whether its record can be
    // replayed.
    let mut replaced = (record == Record::Yes).then(ReplacedMembers::new);
    let mut reader = Reader::with_sink(input, sink, record);
    let mut uids = BTreeSet::new();
    let mut gids = BTreeSet::new();
    while let Some(item) = reader.next_item()? {
        if let Item::Header(h) = &item {
            uids.insert(h.uid);
            gids.insert(h.gid);
            if let Some(r) = replaced.as_mut() {
                r.observe(h);
            }
        }
        if let Some(f) = on_item.as_mut() {
            f(item)?;
        }
    }
    let (_, sink) = reader.into_parts();
    Ok((
        Parsed {
            uids,
            gids,
            replaced: replaced.and_then(ReplacedMembers::into_first),
        },
        sink,
    ))
}
