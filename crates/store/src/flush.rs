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

use strata_driver::options::DriverOption;

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

    /// Takes the `sync` options (`sync=…`, `<driver>.sync=…`) out of a
    /// store's driver options, so that no driver sees them. Which one
    /// applies is known once the driver is: [`SyncOptions::mode_for`]. An
    /// option the grammar refuses ([`strata_driver::options`]) stays, for
    /// the driver to report.
    pub fn take_from(options: &mut Vec<String>) -> SyncOptions {
        let mut taken = Vec::new();
        options.retain(|o| match DriverOption::parse(o) {
            Ok(opt) if opt.key == "sync" && opt.target().is_ok() => {
                taken.push(opt);
                false
            }
            _ => true,
        });
        SyncOptions(taken)
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

/// The `sync` options of a store, taken out of its driver options.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions(Vec<DriverOption>);

impl SyncOptions {
    /// The mode for `driver`: the last `sync` option meant for it (none:
    /// the default).
    pub fn mode_for(&self, driver: &str) -> Result<SyncMode> {
        let mut mode = SyncMode::default();
        for o in &self.0 {
            if o.is_for(driver).unwrap_or(false) {
                mode = SyncMode::parse(&o.value)?;
            }
        }
        Ok(mode)
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
    use std::sync::atomic::{AtomicU32, Ordering};
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

    /// An apply that lasts until `flush` was called `n` times (or a
    /// minute passed: the behaviour under test broken), so that the tests
    /// do not depend on how long a flush takes on a busy machine.
    fn apply_until(calls: &AtomicU32, n: u32, out: u8) -> impl FnOnce() -> u8 + '_ {
        move || {
            strata_testsupport::wait_until(Duration::from_secs(60), || {
                calls.load(Ordering::SeqCst) >= n
            });
            out
        }
    }

    #[test]
    fn flusher_syncs_while_the_apply_runs() {
        let dir = tempfile::tempdir().unwrap();
        let calls = AtomicU32::new(0);
        let flush = || {
            calls.fetch_add(1, Ordering::SeqCst);
            syncfs(dir.path())
        };
        let (v, f) = flushing_every(
            Duration::from_millis(1),
            SyncMode::Filesystem,
            flush,
            apply_until(&calls, 2, 8),
        );
        assert_eq!(v, 8);
        assert!(f.rounds >= 2, "{f:?}");
        assert_eq!(f.rounds, calls.load(Ordering::SeqCst));
        assert_eq!(f.failed, 0, "syncfs of a temp dir failed: {f:?}");
        // Without sync=filesystem nothing flushes.
        let (_, f) = flushing_every(
            Duration::from_millis(1),
            SyncMode::None,
            || panic!("flushed in none mode"),
            || std::thread::sleep(Duration::from_millis(200)),
        );
        assert_eq!(f, Flushes::default());
    }

    #[test]
    fn failed_flushes_are_counted_and_do_not_fail_the_apply() {
        let calls = AtomicU32::new(0);
        let (v, f) = flushing_every(
            Duration::from_millis(1),
            SyncMode::Filesystem,
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::io(
                    "syncfs",
                    "/nowhere",
                    std::io::Error::other("boom"),
                ))
            },
            apply_until(&calls, 1, 9),
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
            "ovelray.sync=none",
        ]
        .map(String::from)
        .into();
        let taken = SyncMode::take_from(&mut o);
        assert_eq!(taken.mode_for("overlay").unwrap(), SyncMode::Filesystem);
        assert_eq!(taken.mode_for("vfs").unwrap(), SyncMode::None);
        // A typo'd prefix stays for the driver to refuse, naming it.
        assert_eq!(
            o,
            ["overlay.mountopt=nodev", "size=1G", "ovelray.sync=none"]
        );
        let mut o = vec!["vfs.sync=filesystem".to_string(), "SYNC=none".to_string()];
        let taken = SyncMode::take_from(&mut o);
        assert_eq!(taken.mode_for("vfs").unwrap(), SyncMode::None);
        assert!(o.is_empty());
        let mut o = vec!["mountopt=nodev".to_string()];
        let taken = SyncMode::take_from(&mut o);
        assert_eq!(taken.mode_for("vfs").unwrap(), SyncMode::None);
        let taken = SyncMode::take_from(&mut vec!["vfs.sync=always".into()]);
        let err = taken.mode_for("vfs").unwrap_err();
        assert!(
            err.to_string().contains("invalid sync mode \"always\""),
            "{err}"
        );
        // Meant for another driver: not this one's business.
        assert_eq!(taken.mode_for("overlay").unwrap(), SyncMode::None);
    }
}
