//! What strata's tests share: deciding whether a test can run here, scratch
//! directories that clean up their mounts, loop-device filesystems, and the
//! lookup of the real-layer corpus and of the reference binary.
//!
//! # Needs
//!
//! A test that needs root, a tool, a kernel feature, the corpus or the
//! reference binary asks for it first. When the need is met the test runs;
//! when it is not, the test returns early after printing why, and under
//! `CI` (which promises every need is met) it fails instead, naming what is
//! missing:
//!
//! ```no_run
//! #[test]
//! fn privileged_something() {
//!     if !strata_testsupport::need_root("privileged_something") {
//!         return;
//!     }
//!     // …
//! }
//! ```
//!
//! # Clean-up
//!
//! [`Scratch`] and [`LoopFs`] detach every mount below their own directory
//! when dropped, also when the test panics; nothing outside their
//! directory is ever unmounted or removed.

mod loopfs;
mod mounts;
mod reference;

use std::path::{Path, PathBuf};

pub use loopfs::{LoopFs, LoopOptions};
pub use mounts::{detach_mounts_under, mountinfo_line, mounts_under};
pub use reference::ReferenceStore;

/// The reference `containers-storage` binary.
pub const REFERENCE: &str = "/usr/bin/containers-storage";

/// The name of the running test: libtest names each test's thread after
/// it (for messages of helpers that are not given one).
pub fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string()
}

/// Waits until `reached` is true, checking every millisecond or so, for at
/// most `limit`; returns whether it was reached. Tests that need another
/// thread or process to get somewhere wait for that state with this, not
/// for a time that a busy machine may overrun.
pub fn wait_until(limit: std::time::Duration, mut reached: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if reached() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Whether `CI` is set: every need must then be met.
pub fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// The verdict on a need of `test`: `true` when `met`; otherwise fails
/// under `CI` and else prints that the test is skipped because of `why`.
pub fn need(test: &str, met: bool, why: &str) -> bool {
    if !met {
        unmet(test, why);
    }
    met
}

/// Reports an unmet need: fails under `CI`, else prints why `test` is
/// skipped. Returns `false` for `if !… { return }` chains.
pub fn unmet(test: &str, why: &str) -> bool {
    assert!(!ci(), "{test}: {why}, and CI is set");
    eprintln!("skipping {test}: {why}");
    false
}

/// Whether this process runs as root (a fact, not a need).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `test` needs root.
pub fn need_root(test: &str) -> bool {
    need(test, is_root(), "needs root")
}

/// `test` needs the program at `path` (an absolute path).
pub fn need_tool(test: &str, path: &str) -> bool {
    need(
        test,
        is_executable(Path::new(path)),
        &format!("needs {path}"),
    )
}

/// `test` needs root and the programs at `tools`.
pub fn need_root_and_tools(test: &str, tools: &[&str]) -> bool {
    need_root(test) && tools.iter().all(|t| need_tool(test, t))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The reference binary, when installed. Only looks at the file: running
/// even `containers-storage version` without `-g`/`-R` would make
/// /var/lib/containers/storage and leave a mount behind.
pub fn reference(test: &str) -> Option<&'static Path> {
    let p = Path::new(REFERENCE);
    need(test, is_executable(p), &format!("needs {REFERENCE}")).then_some(p)
}

/// The real-layer corpus named by `STRATA_CORPUS`
/// (`../shared/bench/make-corpus.sh` builds it).
#[derive(Debug, Clone)]
pub struct Corpus {
    dir: PathBuf,
}

impl Corpus {
    /// The corpus, when `STRATA_CORPUS` names one holding every file in
    /// `files`; otherwise `None` after saying why (a failure under `CI`).
    pub fn find(test: &str, files: &[&str]) -> Option<Self> {
        let Some(dir) = std::env::var_os("STRATA_CORPUS") else {
            unmet(test, "STRATA_CORPUS is not set");
            return None;
        };
        let c = Corpus { dir: dir.into() };
        for f in files {
            let p = c.dir.join(f);
            if !p.exists() {
                unmet(test, &format!("the corpus lacks {}", p.display()));
                return None;
            }
        }
        Some(c)
    }

    /// The corpus directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file of the corpus (which [`Corpus::find`] checked, if listed).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A temporary directory under /var/tmp (a real disk filesystem, unlike a
/// tmpfs /tmp: overlay, xattrs and reflinks behave as in a store) whose
/// mounts are detached when it is dropped.
#[derive(Debug)]
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A fresh directory named `<prefix>XXXXXX`.
    pub fn new(prefix: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/var/tmp")
            .unwrap_or_else(|e| panic!("temp dir in /var/tmp: {e}"));
        Self { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        detach_mounts_under(self.dir.path());
    }
}
