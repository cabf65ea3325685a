//! Durability of applied layers.
//!
//! By default a store syncs nothing but its metadata, as containers-storage
//! does: a crash of the machine shortly after an import may leave a layer
//! listed as complete whose files are empty or missing. The driver option
//! `sync=filesystem` (the name and values later containers-storage releases
//! use; `--storage-opt overlay.sync=filesystem`, or `sync = "filesystem"` in
//! `[storage.options.<driver>]`) makes a layer's data durable before its
//! `incomplete` flag goes: an import then ends with `syncfs` of the graph
//! root. Waiting for all of a big layer's data at the end would idle the
//! disk while the layer is unpacked and idle the CPU while it is written, so
//! [`while_applying`] also starts writeback every [`FLUSH_PERIOD`] from a
//! second thread: the final `syncfs` then finds most of the data written.

use std::path::Path;
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

use crate::files::{syncfs, Persist};
use crate::{Error, Result};

/// How often the background thread starts writeback while a layer is applied.
///
/// Measured on the corpus (fresh ext4, 2 cores): 30 ms beat 100 ms by 10–15%
/// and 300 ms by 20%; 1–10 ms were no better than 30 ms.
pub const FLUSH_PERIOD: Duration = Duration::from_millis(30);

/// Whether a layer's data is synced to disk before it counts as complete:
/// the driver option `sync`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// `sync=none` (the default): layer data reaches the disk whenever the
    /// kernel writes it; layers.json is still written through an fsynced
    /// temporary file and a rename, so it is never seen half written.
    #[default]
    None,
    /// `sync=filesystem`: `syncfs` before the incomplete flag is cleared,
    /// and every metadata write is durable when the command returns.
    Filesystem,
}

impl SyncMode {
    /// Parses a value of the `sync` option.
    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "" | "none" => Ok(SyncMode::None),
            "filesystem" => Ok(SyncMode::Filesystem),
            other => Err(Error::Invalid(format!(
                "invalid sync mode {other:?}: use \"none\" or \"filesystem\""
            ))),
        }
    }

    /// Takes the `sync` option (`sync=…` or `<driver>.sync=…`) out of a
    /// store's driver options, so the driver never sees it; the last one
    /// given wins.
    pub fn take_from(options: &mut Vec<String>) -> Result<Self> {
        let mut mode = SyncMode::default();
        let mut rest = Vec::with_capacity(options.len());
        for o in options.drain(..) {
            let (key, value) = o.split_once('=').unwrap_or((o.as_str(), ""));
            let key = key.trim().to_ascii_lowercase();
            if key == "sync" || key.ends_with(".sync") {
                mode = Self::parse(value.trim())?;
            } else {
                rest.push(o);
            }
        }
        *options = rest;
        Ok(mode)
    }

    /// Makes what was written under `root` durable, in `Filesystem` mode.
    pub(crate) fn sync(self, root: &Path) -> Result<()> {
        match self {
            SyncMode::Filesystem => syncfs(root),
            SyncMode::None => Ok(()),
        }
    }

    /// How a metadata file of the graph root is replaced.
    pub(crate) fn persist(self) -> Persist {
        match self {
            SyncMode::Filesystem => Persist::Durable,
            SyncMode::None => Persist::Ordered,
        }
    }
}

/// Runs `apply`; meanwhile, in `Filesystem` mode, a second thread
/// starts writeback of `root`'s filesystem every [`FLUSH_PERIOD`]. It stops
/// (without waiting out its period) as soon as `apply` returns.
pub(crate) fn while_applying<T>(mode: SyncMode, root: &Path, apply: impl FnOnce() -> T) -> T {
    let (out, flushes) = flushing_every(FLUSH_PERIOD, mode, || syncfs(root), apply);
    if flushes.failed > 0 {
        tracing::debug!(
            "background writeback failed {} of {} times; the final sync decides",
            flushes.failed,
            flushes.rounds
        );
    }
    out
}

/// What the background writeback did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Flushes {
    /// Flushes started.
    rounds: u32,
    /// Of those, how many failed.
    failed: u32,
}

fn flushing_every<T>(
    period: Duration,
    mode: SyncMode,
    flush: impl Fn() -> Result<()> + Sync,
    apply: impl FnOnce() -> T,
) -> (T, Flushes) {
    if mode == SyncMode::None {
        return (apply(), Flushes::default());
    }
    std::thread::scope(|s| {
        let (stop, stopped) = channel::<()>();
        let flush = &flush;
        let flusher = std::thread::Builder::new()
            .name("strata-flush".into())
            .spawn_scoped(s, move || {
                let mut done = Flushes::default();
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    done.rounds += 1;
                    // Only a head start: a failure here surfaces again in
                    // the final sync, which decides.
                    if let Err(e) = flush() {
                        tracing::debug!("background writeback: {e}");
                        done.failed += 1;
                    }
                }
                done
            });
        let out = apply();
        drop(stop);
        let flushes = match flusher {
            Ok(h) => h.join().unwrap_or_default(),
            Err(e) => {
                tracing::debug!("no background writeback: {e}");
                Flushes::default()
            }
        };
        (out, flushes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn flusher_stops_with_the_apply() {
        let dir = tempfile::tempdir().unwrap();
        let flush = || syncfs(dir.path());
        // A period of an hour: returning at all shows that the end of the
        // apply wakes the flusher instead of waiting out its period.
        let t = Instant::now();
        let hour = Duration::from_secs(3600);
        let (v, f) = flushing_every(hour, SyncMode::Filesystem, flush, || 7);
        assert_eq!(v, 7);
        assert_eq!(f, Flushes::default());
        assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    }

    #[test]
    fn flusher_syncs_while_the_apply_runs() {
        let dir = tempfile::tempdir().unwrap();
        let slow = || {
            std::thread::sleep(Duration::from_millis(200));
            8
        };
        let (v, f) = flushing_every(
            Duration::from_millis(1),
            SyncMode::Filesystem,
            || syncfs(dir.path()),
            slow,
        );
        assert_eq!(v, 8);
        assert!(f.rounds >= 2, "{f:?}");
        assert_eq!(f.failed, 0, "syncfs of a temp dir failed: {f:?}");
        // Without sync=filesystem nothing flushes.
        let (_, f) = flushing_every(
            Duration::from_millis(1),
            SyncMode::None,
            || panic!("flushed in none mode"),
            slow,
        );
        assert_eq!(f, Flushes::default());
    }

    #[test]
    fn failed_flushes_are_counted_and_do_not_fail_the_apply() {
        let (v, f) = flushing_every(
            Duration::from_millis(1),
            SyncMode::Filesystem,
            || {
                Err(Error::io(
                    "syncfs",
                    "/nowhere",
                    std::io::Error::other("boom"),
                ))
            },
            || {
                std::thread::sleep(Duration::from_millis(50));
                9
            },
        );
        assert_eq!(v, 9);
        assert!(f.rounds >= 1, "{f:?}");
        assert_eq!(f.failed, f.rounds, "{f:?}");
    }

    #[test]
    fn sync_option() {
        let mut o: Vec<String> = [
            "overlay.mountopt=nodev",
            "overlay.sync=filesystem",
            "size=1G",
        ]
        .map(String::from)
        .into();
        assert_eq!(SyncMode::take_from(&mut o).unwrap(), SyncMode::Filesystem);
        assert_eq!(o, ["overlay.mountopt=nodev", "size=1G"]);
        let mut o = vec!["vfs.sync=filesystem".to_string(), "SYNC=none".to_string()];
        assert_eq!(SyncMode::take_from(&mut o).unwrap(), SyncMode::None);
        assert!(o.is_empty());
        let mut o = vec!["mountopt=nodev".to_string()];
        assert_eq!(SyncMode::take_from(&mut o).unwrap(), SyncMode::None);
        let err = SyncMode::take_from(&mut vec!["vfs.sync=always".into()]).unwrap_err();
        assert!(
            err.to_string().contains("invalid sync mode \"always\""),
            "{err}"
        );
    }
}
