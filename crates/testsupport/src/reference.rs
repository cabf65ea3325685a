//! The reference `containers-storage` on a store of the test's own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{detach_mounts_under, REFERENCE};

/// A store in a test's directory used through the reference binary, always
/// with `-g`/`-R` (without them it would use and mount the machine's
/// /var/lib/containers/storage). Dropping it shuts the store down and
/// detaches whatever is still mounted below its roots.
#[derive(Debug)]
pub struct ReferenceStore {
    /// Graph root (`-g`).
    pub graph: PathBuf,
    /// Run root (`-R`).
    pub run: PathBuf,
    /// Driver (`-s`).
    pub driver: &'static str,
}

impl ReferenceStore {
    /// A store at `<dir>/graph` and `<dir>/run` using `driver`.
    pub fn new(dir: &Path, driver: &'static str) -> Self {
        Self::with_roots(dir.join("graph"), dir.join("run"), driver)
    }

    /// A store with the given roots.
    pub fn with_roots(graph: PathBuf, run: PathBuf, driver: &'static str) -> Self {
        Self { graph, run, driver }
    }

    /// The reference with this store's roots and driver, then `args`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(REFERENCE);
        c.arg("-g")
            .arg(&self.graph)
            .arg("-R")
            .arg(&self.run)
            .arg("-s")
            .arg(self.driver)
            .args(args);
        c
    }

    /// Runs `c`; panics with its stderr on failure; returns stdout.
    fn checked(args: &[&str], c: &mut Command) -> Vec<u8> {
        let out = c
            .stderr(Stdio::piped())
            .output()
            .expect("spawn containers-storage");
        assert!(
            out.status.success(),
            "containers-storage {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Runs a command, returns stdout; panics with stderr on failure.
    pub fn run(&self, args: &[&str]) -> Vec<u8> {
        Self::checked(args, &mut self.cmd(args))
    }

    /// Runs a command with `input` on stdin.
    pub fn run_input(&self, args: &[&str], input: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn containers-storage");
        let mut stdin = child.stdin.take().expect("stdin");
        let data = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().expect("wait");
        writer.join().expect("writer thread").expect("write stdin");
        assert!(
            out.status.success(),
            "containers-storage {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Runs a command with stdin from the file `input`.
    pub fn run_file(&self, args: &[&str], input: &Path) -> Vec<u8> {
        let f =
            std::fs::File::open(input).unwrap_or_else(|e| panic!("open {}: {e}", input.display()));
        Self::checked(args, self.cmd(args).stdin(f))
    }

    /// Runs a command with stdout into the file `out`.
    pub fn run_to_file(&self, args: &[&str], out: &Path) {
        let f =
            std::fs::File::create(out).unwrap_or_else(|e| panic!("create {}: {e}", out.display()));
        Self::checked(args, self.cmd(args).stdout(f));
    }

    /// Runs a command; its stdout, trimmed.
    pub fn run_line(&self, args: &[&str]) -> String {
        let out = self.run(args);
        String::from_utf8(out).expect("utf-8").trim().to_string()
    }

    /// `applydiff ID` with stdin from a file.
    pub fn applydiff_file(&self, id: &str, tar: &Path) {
        self.run_file(&["applydiff", id], tar);
    }

    /// `import-layer [parent]` with stdin from a file; the new layer's ID.
    pub fn import_file(&self, tar: &Path, parent: Option<&str>) -> String {
        let mut args = vec!["import-layer"];
        args.extend(parent);
        last_word(&self.run_file(&args, tar))
    }

    /// `import-layer` of `tar`; the new layer's ID.
    pub fn import(&self, tar: &[u8]) -> String {
        last_word(&self.run_input(&["import-layer"], tar))
    }

    /// `create-layer PARENT`; the new layer's ID.
    pub fn create_child(&self, parent: &str) -> String {
        last_word(&self.run(&["create-layer", parent]))
    }

    /// `mount ID`: where the layer is.
    pub fn mount(&self, id: &str) -> PathBuf {
        PathBuf::from(self.run_line(&["mount", id]))
    }

    /// `unmount ID`.
    pub fn unmount(&self, id: &str) {
        self.run(&["unmount", id]);
    }

    /// Unmounts everything the store mounted (errors ignored: used while
    /// tearing down).
    pub fn shutdown(&self) {
        let _ = self.cmd(&["shutdown", "-f"]).output();
    }
}

/// Layer IDs are the last whitespace-separated word printed (names follow
/// the ID on their own lines otherwise).
fn last_word(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .split_whitespace()
        .last()
        .expect("an ID")
        .to_string()
}

impl Drop for ReferenceStore {
    fn drop(&mut self) {
        self.shutdown();
        detach_mounts_under(&self.graph);
        detach_mounts_under(&self.run);
    }
}
