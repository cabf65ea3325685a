//! Byte chunks handed from a producer thread to a consumer over a bounded
//! channel: the import pipeline's decompression stage feeds its tar reader
//! this way, and a driver's diff export feeds the caller's reader.
//!
//! ```text
//! producer: ChunkSender::buffer ─> fill ─> send ─┐  (slots in flight)
//!           ... ─> finish | fail(error)          │
//! consumer: ChunkReceiver::next_chunk <──────────┘  Bytes; the buffer goes
//!           (or ChunkReader: io::Read)               back when it drops
//! ```
//!
//! A producer may also share a chunk ([`ChunkSender::share`]) with another
//! reader of the same bytes before sending it: the buffer goes back once
//! both are done with it.
//!
//! A stream ends only where the producer says so ([`ChunkSender::finish`]):
//! a producer that fails says why ([`ChunkSender::fail`]), and one that goes
//! away without a word (a panic, an early return) reaches the consumer as
//! [`Error::Abandoned`], never as a short stream that looks complete. A
//! consumer that stops makes the producer's next [`ChunkSender::send`] fail,
//! so the producer stops too.
//!
//! [`spawn_reader`] runs a producer on a thread of its own and hands back an
//! [`io::Read`] of what it writes; the thread is joined when the stream
//! ends or the reader is dropped.

use std::io::{self, BufRead, Read, Write};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::compression::smuggle;
use crate::entry::Bytes;
use crate::{Error, Result};

/// What travels from producer to consumer.
enum Msg {
    Data(Bytes),
    End,
    Failed(Error),
}

/// The producing end of [`channel`].
pub struct ChunkSender {
    tx: Sender<Msg>,
    free: Receiver<Vec<u8>>,
    /// Where the buffers of sent chunks go back to.
    recycle: Sender<Vec<u8>>,
}

/// The consumer is gone; it reports why itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerGone;

/// The consuming end of [`channel`].
pub struct ChunkReceiver {
    rx: Receiver<Msg>,
    /// The producer, named in [`Error::Abandoned`].
    producer: &'static str,
    ended: bool,
}

/// A connected sender and receiver with `slots` chunks in flight; the
/// producer is named `producer` in errors.
pub fn channel(slots: usize, producer: &'static str) -> (ChunkSender, ChunkReceiver) {
    // Room for every chunk that can be in flight or held by the consumer.
    channel_keeping(slots, slots + 2, producer)
}

/// [`channel`], keeping up to `kept` buffers for reuse: for a producer that
/// also [shares](ChunkSender::share) its chunks with a reader of its own,
/// which holds some of them too.
pub fn channel_keeping(
    slots: usize,
    kept: usize,
    producer: &'static str,
) -> (ChunkSender, ChunkReceiver) {
    let (tx, rx) = bounded(slots);
    let (free_tx, free_rx) = bounded(kept);
    (
        ChunkSender {
            tx,
            free: free_rx,
            recycle: free_tx,
        },
        ChunkReceiver {
            rx,
            producer,
            ended: false,
        },
    )
}

impl ChunkSender {
    /// A buffer to fill: one the consumer is done with (its length and
    /// content are whatever it held), or a new empty one.
    pub fn buffer(&self) -> Vec<u8> {
        self.free.try_recv().unwrap_or_default()
    }

    /// `chunk` as bytes that can be both sent ([`ChunkSender::send_shared`])
    /// and kept: its buffer comes back to [`ChunkSender::buffer`] when the
    /// last of their slices is dropped.
    pub fn share(&self, chunk: Vec<u8>) -> Bytes {
        Bytes::from_owner(Recycled {
            buf: chunk,
            free: self.recycle.clone(),
        })
    }

    /// Hands `chunk` to the consumer, waiting for room.
    pub fn send(&self, chunk: Vec<u8>) -> std::result::Result<(), ConsumerGone> {
        self.send_shared(self.share(chunk))
    }

    /// Hands a [shared](ChunkSender::share) chunk to the consumer, waiting
    /// for room.
    pub fn send_shared(&self, chunk: Bytes) -> std::result::Result<(), ConsumerGone> {
        self.tx.send(Msg::Data(chunk)).map_err(|_| ConsumerGone)
    }

    /// Ends the stream: the consumer reads to its end.
    pub fn finish(self) {
        let _ = self.tx.send(Msg::End);
    }

    /// Ends the stream with `e`: the consumer's next read fails with it.
    pub fn fail(self, e: Error) {
        let _ = self.tx.send(Msg::Failed(e));
    }
}

impl ChunkReceiver {
    /// The next chunk, `None` once the producer finished. The chunk's buffer
    /// goes back to the producer when the last slice of it is dropped.
    pub fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.ended {
            return Ok(None);
        }
        match self.rx.recv() {
            Ok(Msg::Data(b)) => Ok(Some(b)),
            Ok(Msg::End) => {
                self.ended = true;
                Ok(None)
            }
            Ok(Msg::Failed(e)) => {
                self.ended = true;
                Err(e)
            }
            Err(_) => {
                self.ended = true;
                Err(Error::Abandoned(self.producer))
            }
        }
    }
}

/// A chunk that goes back to the producer when the last slice of it is
/// dropped, so that neither a new buffer nor its zeroing is paid per chunk.
struct Recycled {
    buf: Vec<u8>,
    free: Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.capacity() > 0 {
            // A full free list (or a finished producer) drops it.
            let _ = self.free.try_send(buf);
        }
    }
}

/// [`io::Write`] into a [`ChunkSender`], `chunk` bytes at a time.
pub struct ChunkWriter {
    tx: ChunkSender,
    buf: Vec<u8>,
    chunk: usize,
}

impl ChunkWriter {
    /// A writer sending chunks of `chunk` bytes.
    pub fn new(tx: ChunkSender, chunk: usize) -> Self {
        Self {
            tx,
            buf: Vec::new(),
            chunk,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut next = self.tx.buffer();
        next.clear();
        let full = std::mem::replace(&mut self.buf, next);
        self.tx
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the reader went away"))
    }

    /// Sends what is buffered and ends the stream.
    pub fn finish(mut self) {
        if self.send().is_ok() {
            self.tx.finish();
        }
    }

    /// Ends the stream with `e` in place of what is buffered.
    pub fn fail(self, e: Error) {
        self.tx.fail(e);
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.buf.capacity() < self.chunk {
            self.buf.reserve_exact(self.chunk - self.buf.len());
        }
        let n = b.len().min(self.chunk - self.buf.len());
        self.buf.extend_from_slice(&b[..n]);
        if self.buf.len() == self.chunk {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// [`io::Read`] over a [`ChunkReceiver`]; a failed or abandoned stream is
/// an error carrying the crate's [`Error`].
pub struct ChunkReader {
    rx: ChunkReceiver,
    cur: Bytes,
    pos: usize,
}

impl ChunkReader {
    /// A reader of what `rx` receives.
    pub fn new(rx: ChunkReceiver) -> Self {
        Self {
            rx,
            cur: Bytes::new(),
            pos: 0,
        }
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.cur.len() {
            match self.rx.next_chunk().map_err(smuggle)? {
                Some(b) => {
                    self.cur = b;
                    self.pos = 0;
                }
                None => return Ok(&[]),
            }
        }
        Ok(&self.cur[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.cur.len());
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let have = self.fill_buf()?;
        let n = out.len().min(have.len());
        out[..n].copy_from_slice(&have[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// Chunks in flight between a spawned producer and its reader.
const SLOTS: usize = 4;
/// Bytes per chunk of a spawned producer: one chunk per read of a 1 MiB
/// buffered copy.
pub const PRODUCER_CHUNK: usize = 1 << 20;

/// What a spawned producer writes, as [`io::Read`]. The producer's thread
/// is joined when the stream ends (or fails), or when this is dropped.
pub struct ProducedReader {
    reader: Option<ChunkReader>,
    thread: Option<JoinHandle<()>>,
}

/// Runs `produce` on a thread named `name`, writing into a
/// [`ChunkWriter`]; its `Err`, or its end without finishing (a panic), is
/// what the reader's last read returns.
pub fn spawn_reader<F>(name: &'static str, produce: F) -> Result<ProducedReader>
where
    F: FnOnce(&mut ChunkWriter) -> Result<()> + Send + 'static,
{
    let (tx, rx) = channel(SLOTS, name);
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut w = ChunkWriter::new(tx, PRODUCER_CHUNK);
            match produce(&mut w) {
                Ok(()) => w.finish(),
                Err(e) => w.fail(e),
            }
        })
        .map_err(|e| Error::io(format!("starting thread {name}"), e))?;
    Ok(ProducedReader {
        reader: Some(ChunkReader::new(rx)),
        thread: Some(thread),
    })
}

impl ProducedReader {
    /// Drops the receiving end (a producer still sending stops) and waits
    /// for the thread.
    fn join(&mut self) {
        self.reader = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                // Its reader saw Error::Abandoned; the panic message went to
                // stderr.
                tracing::debug!("producer thread panicked");
            }
        }
    }
}

impl Read for ProducedReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Some(r) = self.reader.as_mut() else {
            return Ok(0);
        };
        let res = r.read(out);
        if !out.is_empty() && matches!(res, Ok(0) | Err(_)) {
            self.join();
        }
        res
    }
}

impl Drop for ProducedReader {
    fn drop(&mut self) {
        self.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn bytes_arrive_in_order() {
        let want = data(3 * PRODUCER_CHUNK + 123);
        let d2 = want.clone();
        let mut r = spawn_reader("test-producer", move |w| {
            for piece in d2.chunks(70_001) {
                w.write_all(piece).map_err(|e| Error::io("write", e))?;
            }
            Ok(())
        })
        .unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, want);
        assert!(r.thread.is_none(), "joined at the end of the stream");
    }

    #[test]
    fn a_failed_producer_is_an_error_not_an_end() {
        let mut r = spawn_reader("test-producer", |w| {
            w.write_all(&data(PRODUCER_CHUNK + 5))
                .map_err(|e| Error::io("write", e))?;
            Err(Error::Unsupported("export failed".into()))
        })
        .unwrap();
        let mut got = Vec::new();
        let e = r.read_to_end(&mut got).unwrap_err();
        assert!(e.to_string().contains("export failed"), "{e}");
        assert!(r.thread.is_none());
    }

    #[test]
    fn a_producer_killed_mid_stream_is_an_error_not_an_end() {
        let mut r = spawn_reader("test-producer", |w| {
            w.write_all(&data(2 * PRODUCER_CHUNK + 7))
                .map_err(|e| Error::io("write", e))?;
            panic!("producer killed mid-stream");
        })
        .unwrap();
        let mut got = Vec::new();
        let e = r.read_to_end(&mut got).unwrap_err();
        assert!(
            e.to_string()
                .contains("test-producer stopped without finishing"),
            "{e}"
        );
        // What it sent before dying arrived, and nothing claims to be the end.
        assert_eq!(got.len(), 2 * PRODUCER_CHUNK);
        assert!(r.thread.is_none());
    }

    #[test]
    fn a_reader_dropped_early_stops_and_joins_the_producer() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let mut r = spawn_reader("test-producer", move |w| {
            let res = (0..1000).try_for_each(|_| {
                w.write_all(&data(PRODUCER_CHUNK))
                    .map_err(|e| Error::io("write", e))
            });
            done_tx.send(res.is_err()).unwrap();
            res
        })
        .unwrap();
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        drop(r);
        assert!(done_rx.recv().unwrap(), "the producer saw the reader go");
    }

    #[test]
    fn buffered_reads_lend_the_chunks_themselves() {
        let (tx, rx) = channel(4, "test");
        let mut r = ChunkReader::new(rx);
        std::thread::scope(|s| {
            s.spawn(move || {
                for i in 0..3u8 {
                    tx.send(vec![i; 10]).unwrap();
                }
                tx.send(Vec::new()).unwrap();
                tx.send(vec![9; 4]).unwrap();
                tx.fail(Error::Unsupported("input gone".into()));
            });
            // A chunk is lent whole, and what is not consumed stays.
            let first = r.fill_buf().unwrap();
            assert_eq!(first, &[0; 10]);
            r.consume(4);
            assert_eq!(r.fill_buf().unwrap(), &[0; 6]);
            // Reads cross into the next chunk only when this one is used up.
            let mut buf = [0xff; 8];
            assert_eq!(r.read(&mut buf).unwrap(), 6);
            assert_eq!(r.read(&mut buf).unwrap(), 8);
            assert_eq!(&buf, &[1; 8]);
            // Consuming more than the chunk holds stops at its end.
            r.consume(100);
            // An empty chunk is skipped, not taken for the end.
            assert_eq!(r.fill_buf().unwrap(), &[2; 10]);
            r.consume(10);
            assert_eq!(r.fill_buf().unwrap(), &[9; 4]);
            r.consume(4);
            let e = r.fill_buf().unwrap_err();
            assert!(e.to_string().contains("input gone"), "{e}");
        });
    }

    #[test]
    fn buffers_are_recycled() {
        let (tx, mut rx) = channel(2, "test");
        tx.send(vec![1; 8]).unwrap();
        let b = rx.next_chunk().unwrap().unwrap();
        assert_eq!(&b[..], &[1; 8]);
        drop(b);
        assert_eq!(tx.buffer().capacity(), 8);
        tx.finish();
        assert!(rx.next_chunk().unwrap().is_none());
        assert!(rx.next_chunk().unwrap().is_none());
    }

    #[test]
    fn a_shared_chunk_comes_back_when_both_readers_are_done() {
        let (tx, mut rx) = channel_keeping(2, 4, "test");
        let kept = tx.share(vec![3; 8]);
        tx.send_shared(kept.slice(2..)).unwrap();
        let got = rx.next_chunk().unwrap().unwrap();
        assert_eq!(&got[..], &[3; 6]);
        drop(got);
        // The other reader still holds it.
        assert_eq!(tx.buffer().capacity(), 0);
        drop(kept);
        assert_eq!(tx.buffer().capacity(), 8);
    }
}
