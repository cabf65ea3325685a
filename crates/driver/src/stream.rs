//! An in-process pipe for diffs produced on another thread: the producer
//! writes into [`ChunkWriter`], which hands 1 MiB chunks over a bounded
//! channel to [`ChunkReader`]. Unlike an OS pipe, no byte is copied into
//! and out of the kernel on the way, and a failure of the producer reaches
//! the reader as an error instead of a silently truncated stream.

use std::io::{Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Bytes per chunk.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Chunks in flight.
const SLOTS: usize = 4;

type Chunk = std::io::Result<Vec<u8>>;

/// The writing end.
pub struct ChunkWriter {
    buf: Vec<u8>,
    tx: SyncSender<Chunk>,
}

/// The reading end.
pub struct ChunkReader {
    rx: Receiver<Chunk>,
    cur: Vec<u8>,
    pos: usize,
}

/// A connected writer and reader.
pub fn chunk_pipe() -> (ChunkWriter, ChunkReader) {
    let (tx, rx) = sync_channel(SLOTS);
    (
        ChunkWriter {
            buf: Vec::with_capacity(CHUNK_BYTES),
            tx,
        },
        ChunkReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        },
    )
}

fn closed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "reader went away")
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.tx.send(Ok(full)).map_err(|_| closed())
    }

    /// Ends the stream: sends what is buffered, or `err` in its place so
    /// the reader fails with it.
    pub fn finish(mut self, err: Option<std::io::Error>) {
        match err {
            None => {
                let _ = self.send();
            }
            Some(e) => {
                let _ = self.tx.send(Err(e));
            }
        }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK_BYTES - self.buf.len();
        let n = b.len().min(room);
        self.buf.extend_from_slice(&b[..n]);
        if self.buf.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(v)) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The writer finished (or vanished): end of stream.
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_and_errors_surface() {
        let data: Vec<u8> = (0..3 * CHUNK_BYTES + 123)
            .map(|i| (i % 251) as u8)
            .collect();
        let (mut w, mut r) = chunk_pipe();
        let d2 = data.clone();
        let t = std::thread::spawn(move || {
            for piece in d2.chunks(70_001) {
                w.write_all(piece).unwrap();
            }
            w.finish(None);
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        t.join().unwrap();
        assert_eq!(got, data);

        let (mut w, mut r) = chunk_pipe();
        let t = std::thread::spawn(move || {
            w.write_all(b"partial").unwrap();
            w.finish(Some(std::io::Error::other("export failed")));
        });
        let mut got = Vec::new();
        let e = r.read_to_end(&mut got).unwrap_err();
        t.join().unwrap();
        assert!(e.to_string().contains("export failed"), "{e}");
    }
}
