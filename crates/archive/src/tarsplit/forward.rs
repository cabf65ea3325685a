//! Recording tar-split on a thread of its own.
//!
//! Encoding the record (base64 of every header, JSON lines) costs a few
//! percent of an import's time, all of it on the thread that also makes
//! the system calls of the apply. [`Forwarder`] instead copies each event's
//! bytes into a batch and hands full batches to a thread that feeds them to
//! a [`Recorder`]; batches come back empty for reuse, so the steady state
//! allocates nothing.

use std::io::Write;
use std::ops::Range;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::Recorder;
use crate::reader::RawSink;
use crate::{Error, Result};

/// Bytes of events per batch before it is handed over.
const BATCH_BYTES: usize = 256 * 1024;
/// Events per batch before it is handed over.
const BATCH_EVENTS: usize = 1024;
/// Batches in flight.
const SLOTS: usize = 4;

enum Event {
    Raw(Range<usize>),
    Member {
        name: Range<usize>,
        size: u64,
        crc: Option<u64>,
    },
    End,
    Trailing(Range<usize>),
}

#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    events: Vec<Event>,
}

impl Batch {
    fn push_bytes(&mut self, b: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b);
        start..self.bytes.len()
    }

    fn replay<W: Write>(&self, r: &mut Recorder<W>) -> Result<()> {
        for e in &self.events {
            match e {
                Event::Raw(b) => r.raw(&self.bytes[b.clone()])?,
                Event::Member { name, size, crc } => {
                    r.member(&self.bytes[name.clone()], *size, *crc)?
                }
                Event::End => r.end()?,
                Event::Trailing(b) => r.trailing(&self.bytes[b.clone()])?,
            }
        }
        Ok(())
    }
}

/// A [`RawSink`] that passes events to a recorder on another thread; see
/// [`record_on_thread`].
pub struct Forwarder {
    batch: Batch,
    tx: Sender<Batch>,
    empty: Receiver<Batch>,
}

impl Forwarder {
    fn hand_over(&mut self) -> Result<()> {
        let mut next = self.empty.try_recv().unwrap_or_default();
        next.bytes.clear();
        next.events.clear();
        let full = std::mem::replace(&mut self.batch, next);
        self.tx
            .send(full)
            // The recorder stopped; its own error is what the caller reports.
            .map_err(|_| {
                Error::io(
                    "writing tar-split record",
                    std::io::Error::other("recorder stopped"),
                )
            })
    }

    fn pushed(&mut self) -> Result<()> {
        if self.batch.bytes.len() >= BATCH_BYTES || self.batch.events.len() >= BATCH_EVENTS {
            self.hand_over()?;
        }
        Ok(())
    }

    /// Hands over what is left; the recorder thread then finishes.
    fn close(mut self) -> Result<()> {
        if self.batch.events.is_empty() {
            return Ok(());
        }
        self.hand_over()
    }
}

impl RawSink for Forwarder {
    fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        let r = self.batch.push_bytes(bytes);
        self.batch.events.push(Event::Raw(r));
        self.pushed()
    }
    fn member(&mut self, name: &[u8], size: u64, crc: Option<u64>) -> Result<()> {
        let name = self.batch.push_bytes(name);
        self.batch.events.push(Event::Member { name, size, crc });
        self.pushed()
    }
    fn end(&mut self) -> Result<()> {
        self.batch.events.push(Event::End);
        self.pushed()
    }
    fn trailing(&mut self, bytes: &[u8]) -> Result<()> {
        let r = self.batch.push_bytes(bytes);
        self.batch.events.push(Event::Trailing(r));
        self.pushed()
    }
}

/// Runs `body` with a [`Forwarder`] whose events a [`Recorder`] writing to
/// `out` receives on a scoped thread. `body` must hand the forwarder back
/// (it is closed then); the result is `body`'s, else the recorder's error.
pub fn record_on_thread<T>(
    out: Box<dyn Write + Send>,
    body: impl FnOnce(Forwarder) -> Result<(T, Forwarder)>,
) -> Result<T> {
    let (tx, rx) = bounded::<Batch>(SLOTS);
    let (give_back, empty) = bounded::<Batch>(SLOTS + 1);
    std::thread::scope(|s| {
        let recorder = std::thread::Builder::new()
            .name("strata-tar-split".into())
            .spawn_scoped(s, move || -> Result<()> {
                let mut r = Recorder::new(out);
                for batch in rx {
                    batch.replay(&mut r)?;
                    let _ = give_back.try_send(batch);
                }
                r.finish().map(drop)
            })
            .map_err(|e| Error::io("starting tar-split thread", e))?;
        let fwd = Forwarder {
            batch: Batch::default(),
            tx,
            empty,
        };
        let res = body(fwd).and_then(|(v, fwd)| fwd.close().map(|()| v));
        // On failure, `body` dropped the forwarder: the recorder sees the
        // channel close and ends.
        let recorded = crate::pipeline::join(recorder, "tar-split");
        match (res, recorded) {
            (Ok(v), Ok(())) => Ok(v),
            // A recorder failure explains a "recorder stopped" in `body`.
            (_, Err(e)) => Err(e),
            (Err(e), Ok(())) => Err(e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer whose bytes the test can read after the writer moved away.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn feed(s: &mut dyn RawSink, n: usize) -> Result<()> {
        for i in 0..n {
            s.raw(&[i as u8; 512])?;
            s.member(
                format!("f{i}").as_bytes(),
                i as u64,
                (i > 0).then_some(i as u64 * 7),
            )?;
        }
        s.raw(&[0; 1024])?;
        s.end()?;
        s.trailing(b"junk")?;
        s.trailing(b"")
    }

    #[test]
    fn same_record_as_inline() {
        // Enough events for several batches, by bytes and by count.
        for n in [0, 1, 5, 3000] {
            let mut inline = Recorder::new(Vec::new());
            feed(&mut inline, n).unwrap();
            let want = inline.finish().unwrap();
            let got = Shared::default();
            record_on_thread(Box::new(got.clone()), |mut f| {
                feed(&mut f, n)?;
                Ok(((), f))
            })
            .unwrap();
            assert_eq!(*got.0.lock().unwrap(), want, "n={n}");
        }
    }

    struct Failing;
    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn recorder_error_is_reported() {
        let e = record_on_thread(Box::new(Failing), |mut f| {
            feed(&mut f, 3000)?;
            Ok(((), f))
        })
        .unwrap_err();
        assert!(e.to_string().contains("disk on fire"), "{e}");
    }
}
