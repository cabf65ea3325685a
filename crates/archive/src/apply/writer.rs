//! Regular files are finished on a second thread.
//!
//! Applying a layer of many small files is mostly system calls, and most of
//! them act on a file already open: writing its content, its owner, mode,
//! xattrs and times, closing it. Only creating it touches the namespace. So
//! the applying thread creates each file (confined, as every other entry)
//! and hands the open descriptor, the content and the header to this
//! thread, which does the rest through the descriptor alone; both cores
//! make files at once.
//!
//! What must not change: the end result and the errors. The writer works in
//! the order it was given; an entry whose effect depends on a handed-off
//! file's metadata (a hard link, which applies its own header to the same
//! inode) first waits for the writer to catch up ([`FileWriter::sync`]), and
//! [`FileWriter::finish`] waits for everything before directory times are
//! set. The writer's first error stops its work and is returned at the next
//! hand-off. Memory stays bounded: hand-offs travel in batches of at most
//! [`BATCH_JOBS`] jobs or [`BATCH_BYTES`] of content, [`BATCHES`] at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::meta::{timestamps, Meta, Target};
use super::OpenFile;
use crate::entry::Bytes;
use crate::{Error, Result};

/// Jobs per batch.
const BATCH_JOBS: usize = 64;
/// Content bytes per batch.
const BATCH_BYTES: usize = 1 << 20;
/// Batches in flight between the threads.
const BATCHES: usize = 8;
/// The most files open between the threads: the batches in the channel,
/// the one being filled and the one being written.
pub(super) const FILES_IN_FLIGHT: usize = BATCH_JOBS * (BATCHES + 2);

/// One step of a regular file, in stream order.
pub(super) enum Job {
    /// A file was created; its content follows.
    Begin(Box<OpenFile>),
    /// Content at an offset of the current file.
    Data { offset: u64, bytes: Bytes },
    /// The current file is complete: size, owner, mode, xattrs, times, close.
    End,
    /// Reply once every earlier job is done.
    Sync(Sender<()>),
}

/// What the writer thread hands back when it ends.
struct Done {
    meta: Option<Meta>,
    error: Option<Error>,
}

/// The applying thread's side of the writer.
pub(super) struct FileWriter {
    tx: Option<Sender<Vec<Job>>>,
    batch: Vec<Job>,
    batch_bytes: usize,
    failed: Arc<AtomicBool>,
    thread: Option<JoinHandle<Done>>,
}

impl FileWriter {
    /// Starts the writer thread with its own copy of the metadata policy.
    pub(super) fn start(meta: Meta) -> Result<Self> {
        let (tx, rx) = bounded::<Vec<Job>>(BATCHES);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let thread = std::thread::Builder::new()
            .name("strata-write".into())
            .spawn(move || run(rx, meta, &flag))
            .map_err(|e| Error::io("starting the file writer thread", e))?;
        Ok(Self {
            tx: Some(tx),
            batch: Vec::with_capacity(BATCH_JOBS),
            batch_bytes: 0,
            failed,
            thread: Some(thread),
        })
    }

    /// Queues a job. An error is the writer's, from an earlier job.
    pub(super) fn push(&mut self, job: Job) -> Result<()> {
        if let Job::Data { bytes, .. } = &job {
            self.batch_bytes += bytes.len();
        }
        self.batch.push(job);
        if self.batch.len() >= BATCH_JOBS || self.batch_bytes >= BATCH_BYTES {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<()> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(self.stop());
        }
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_JOBS));
        self.batch_bytes = 0;
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(batch).is_ok());
        if !sent {
            return Err(self.stop());
        }
        Ok(())
    }

    /// Waits until every queued job is done.
    pub(super) fn sync(&mut self) -> Result<()> {
        let (tx, rx) = bounded(1);
        self.batch.push(Job::Sync(tx));
        self.send()?;
        if rx.recv().is_err() || self.failed.load(Ordering::Relaxed) {
            return Err(self.stop());
        }
        Ok(())
    }

    /// Finishes every queued job and ends the thread; gives back its
    /// metadata policy (with its counts of skipped chowns and xattrs).
    pub(super) fn finish(mut self) -> Result<Meta> {
        self.send()?;
        self.tx = None;
        match self.join() {
            Done {
                meta: Some(meta),
                error: None,
            } => Ok(meta),
            Done { error, .. } => Err(error.unwrap_or_else(|| stopped("stopped"))),
        }
    }

    /// Ends the thread after a failure and returns its error.
    fn stop(&mut self) -> Error {
        self.batch.clear();
        self.tx = None;
        self.join().error.unwrap_or_else(|| stopped("stopped"))
    }

    fn join(&mut self) -> Done {
        let joined = self.thread.take().map(JoinHandle::join);
        match joined {
            Some(Ok(done)) => done,
            _ => Done {
                meta: None,
                error: Some(stopped("panicked")),
            },
        }
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        // After an error elsewhere: the files handed off so far are still
        // finished, so a failed apply leaves what applying them one by one
        // would have left.
        if let Some(tx) = self.tx.take() {
            if !self.batch.is_empty() {
                let _ = tx.send(std::mem::take(&mut self.batch));
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn stopped(how: &str) -> Error {
    Error::io(
        "file writer",
        std::io::Error::other(format!("the writer thread {how}")),
    )
}

fn run(rx: Receiver<Vec<Job>>, mut meta: Meta, failed: &AtomicBool) -> Done {
    let mut cur: Option<Box<OpenFile>> = None;
    let mut error = None;
    for batch in rx {
        for job in batch {
            if let Job::Sync(reply) = job {
                let _ = reply.send(());
                continue;
            }
            if error.is_some() {
                continue;
            }
            if let Err(e) = step(&mut meta, &mut cur, job) {
                error = Some(e);
                cur = None;
                failed.store(true, Ordering::Relaxed);
            }
        }
    }
    Done {
        meta: Some(meta),
        error,
    }
}

fn step(meta: &mut Meta, cur: &mut Option<Box<OpenFile>>, job: Job) -> Result<()> {
    match job {
        Job::Begin(f) => *cur = Some(f),
        Job::Data { offset, bytes } => {
            if let Some(f) = cur.as_mut() {
                f.write(offset, &bytes)?;
            }
        }
        Job::End => {
            if let Some(f) = cur.take() {
                close_file(meta, *f)?;
            }
        }
        Job::Sync(_) => {}
    }
    Ok(())
}

/// Ends a regular file: size, owner, mode, xattrs, times.
fn close_file(meta: &mut Meta, f: OpenFile) -> Result<()> {
    if f.end < f.header.size {
        // Trailing hole of a sparse file (or an empty file): no zeros
        // are written.
        f.file.set_len(f.header.size).map_err(|e| Error::Path {
            op: "truncate",
            path: super::resolve::lossy(&f.path),
            source: e,
        })?;
    }
    let t = Target::Fd(std::os::fd::AsFd::as_fd(&f.file));
    meta.apply(t, &f.header, &f.path, f.owner_now)?;
    meta.times(t, &timestamps(&f.header), &f.path)
}
