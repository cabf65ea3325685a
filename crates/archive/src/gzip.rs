//! A gzip writer that compresses on every core.
//!
//! What it writes is one gzip member holding one deflate stream, as a
//! single-threaded encoder would, readable by any gzip reader (Go's, zlib's,
//! `gzip -d`, flate2's single-member `GzDecoder`). The stream is cut into
//! blocks of [`BLOCK`] input bytes that worker threads compress at once,
//! each primed with the 32 KiB of input before it (the deflate window, so
//! the ratio stays that of one stream) and ended with a sync flush, which
//! leaves it byte-aligned and not final; the writer puts the blocks out in
//! order, then an empty final block, the CRC-32 and the size. pigz writes
//! gzip the same way.
//!
//! Memory stays bounded: at most [`IN_FLIGHT_PER_WORKER`] blocks per worker
//! are handed out and not yet written.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::thread::JoinHandle;

use crc_fast::{CrcAlgorithm, Digest};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use flate2::{Compress, Compression, FlushCompress};

/// Input bytes per block.
pub const BLOCK: usize = 256 * 1024;
/// The deflate window: how much earlier input primes a block.
const WINDOW: usize = 32 * 1024;
/// Blocks handed out per worker before the writer waits for one.
const IN_FLIGHT_PER_WORKER: usize = 3;
/// The member header: no name, no time, OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

struct Job {
    seq: u64,
    /// Up to [`WINDOW`] bytes of the input before `data`.
    dict: Vec<u8>,
    data: Vec<u8>,
}

type Done = (u64, io::Result<Vec<u8>>);

/// A [`Write`] that gzips into `W` on several threads; call
/// [`ParallelGzip::finish`] to end the member (dropping it unfinished
/// leaves a truncated stream, and the workers end on their own).
pub struct ParallelGzip<W: Write> {
    out: W,
    level: Compression,
    block: Vec<u8>,
    /// The end of the input handed out so far, at most [`WINDOW`] bytes.
    tail: Vec<u8>,
    crc: Digest,
    size: u64,
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    next_seq: u64,
    next_out: u64,
    /// Compressed blocks that arrived before their turn.
    waiting: BTreeMap<u64, Vec<u8>>,
    limit: usize,
}

impl<W: Write> ParallelGzip<W> {
    /// Writes the header and starts a worker per core (at most 8).
    pub fn new(mut out: W, level: Compression) -> io::Result<Self> {
        out.write_all(&HEADER)?;
        let n = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let (jobs, rx) = bounded::<Job>(n);
        let (done_tx, done) = unbounded::<Done>();
        let mut workers = Vec::with_capacity(n);
        for _ in 0..n {
            let rx = rx.clone();
            let tx = done_tx.clone();
            workers.push(
                std::thread::Builder::new()
                    .name("strata-gzip".into())
                    .spawn(move || work(level, rx, tx))?,
            );
        }
        Ok(Self {
            out,
            level,
            block: Vec::with_capacity(BLOCK),
            tail: Vec::new(),
            crc: Digest::new(CrcAlgorithm::Crc32IsoHdlc),
            size: 0,
            jobs: Some(jobs),
            done,
            workers,
            next_seq: 0,
            next_out: 0,
            waiting: BTreeMap::new(),
            limit: n * IN_FLIGHT_PER_WORKER,
        })
    }

    /// Hands the current block to the workers.
    fn dispatch(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        while self.next_seq - self.next_out >= self.limit as u64 {
            self.collect_one()?;
        }
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        // The next block's window: this block's end, reaching into the
        // one before when this one is short.
        let dict = std::mem::take(&mut self.tail);
        let keep = WINDOW.min(data.len());
        let mut tail = Vec::with_capacity(WINDOW);
        tail.extend_from_slice(&dict[dict.len().saturating_sub(WINDOW - keep)..]);
        tail.extend_from_slice(&data[data.len() - keep..]);
        self.tail = tail;
        let job = Job {
            seq: self.next_seq,
            dict,
            data,
        };
        let sent = self.jobs.as_ref().map(|j| j.send(job).is_ok());
        if sent != Some(true) {
            return Err(io::Error::other("gzip workers stopped"));
        }
        self.next_seq += 1;
        Ok(())
    }

    /// Waits for one compressed block and writes out every block whose
    /// turn has come.
    fn collect_one(&mut self) -> io::Result<()> {
        let (seq, r) = self
            .done
            .recv()
            .map_err(|_| io::Error::other("gzip workers stopped"))?;
        self.waiting.insert(seq, r?);
        while let Some(b) = self.waiting.remove(&self.next_out) {
            self.out.write_all(&b)?;
            self.next_out += 1;
        }
        Ok(())
    }

    /// Compresses what is left, ends the member and gives back the writer
    /// (not flushed).
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch()?;
        while self.next_out < self.next_seq {
            self.collect_one()?;
        }
        self.stop();
        let mut last = Vec::with_capacity(64);
        Compress::new(self.level, false)
            .compress_vec(&[], &mut last, FlushCompress::Finish)
            .map_err(io::Error::other)?;
        self.out.write_all(&last)?;
        let crc = self.crc.finalize() as u32;
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&(self.size as u32).to_le_bytes())?;
        let ParallelGzip { out, .. } = self;
        Ok(out)
    }

    /// Ends the workers and waits for them.
    fn stop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        self.crc.update(buf);
        self.size += n as u64;
        while !buf.is_empty() {
            let room = BLOCK - self.block.len();
            let take = room.min(buf.len());
            self.block.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.block.len() == BLOCK {
                self.dispatch()?;
            }
        }
        Ok(n)
    }

    /// Writes out the blocks already compressed; a gzip stream cannot be
    /// flushed mid-block without changing it, so the current block stays.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A worker: compresses blocks until the writer goes.
fn work(level: Compression, jobs: Receiver<Job>, done: Sender<Done>) {
    let mut c = Compress::new(level, false);
    for job in jobs {
        c.reset();
        let r = compress_block(&mut c, &job.dict, &job.data);
        if done.send((job.seq, r)).is_err() {
            return;
        }
    }
}

fn compress_block(c: &mut Compress, dict: &[u8], data: &[u8]) -> io::Result<Vec<u8>> {
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    // Deflate grows incompressible input by a few bytes per 16 KiB.
    let mut out = Vec::with_capacity(data.len() + data.len() / 1000 + 64);
    let mut input = data;
    loop {
        let before = c.total_in();
        c.compress_vec(input, &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        input = &input[(c.total_in() - before) as usize..];
        // The flush is complete once it returns with room to spare.
        if input.is_empty() && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(64 * 1024);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip_single_member(z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(z)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// Text-like input that compresses, with repeats farther apart than a
    /// block, and incompressible stretches.
    fn sample(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        (0..len)
            .map(|i| {
                if (i / 100_000) % 3 == 2 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                } else {
                    b"the quick brown fox jumps over the lazy dog\n"[i % 44]
                        ^ ((i / 5000) as u8 & 1)
                }
            })
            .collect()
    }

    #[test]
    fn one_member_that_any_reader_reads_back() {
        for len in [
            0,
            1,
            WINDOW - 1,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            7 * BLOCK + 12_345,
        ] {
            let data = sample(len);
            let mut z = ParallelGzip::new(Vec::new(), Compression::default()).unwrap();
            // Writes of odd sizes cross block boundaries anywhere.
            for piece in data.chunks(70_001) {
                z.write_all(piece).unwrap();
            }
            let z = z.finish().unwrap();
            // The single-member decoder stops at the first member's end:
            // all the data means one member.
            assert_eq!(gunzip_single_member(&z), data, "{len} bytes");
            // The trailer's CRC-32 and size are checked by the decoder; a
            // wrong one would have failed above. Here, the size field.
            let isize = u32::from_le_bytes(z[z.len() - 4..].try_into().unwrap());
            assert_eq!(isize as usize, len);
        }
    }

    #[test]
    fn ratio_is_that_of_one_stream() {
        // 20 KiB of noise over and over: only a block that sees the end of
        // the one before (its window) compresses its start.
        let noise = sample(300_000)[200_000..220_480].to_vec();
        let data: Vec<u8> = noise.iter().copied().cycle().take(4 * BLOCK + 5).collect();
        let mut z = ParallelGzip::new(Vec::new(), Compression::default()).unwrap();
        z.write_all(&data).unwrap();
        let ours = z.finish().unwrap().len();
        let mut one = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        one.write_all(&data).unwrap();
        let single = one.finish().unwrap().len();
        // Primed blocks cost a few bytes each (the sync flush markers);
        // unprimed ones would each spell out the noise again (+20 KiB).
        assert!(ours <= single + 64 * 5, "{ours} against {single}");
    }

    #[test]
    fn a_failing_output_is_an_error() {
        struct Full(usize);
        impl Write for Full {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                if self.0 < b.len() {
                    return Err(io::Error::new(io::ErrorKind::StorageFull, "no space"));
                }
                self.0 -= b.len();
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let data = sample(6 * BLOCK);
        let mut z = ParallelGzip::new(Full(100_000), Compression::default()).unwrap();
        let err = z
            .write_all(&data)
            .and_then(|()| z.finish().map(|_| ()))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    }
}
