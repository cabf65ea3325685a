//! Shared helpers of the CLI tests: a fresh store per test, the built
//! `strata` binary and, where installed, the reference `containers-storage`.
#![allow(dead_code)]

pub mod records;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use strata_testsupport::REFERENCE;
use strata_testsupport::{current_test, Corpus, Scratch};

/// Whether the reference binary is installed; under CI its absence fails.
pub fn have_reference() -> bool {
    strata_testsupport::reference(&current_test()).is_some()
}

/// Whether we are root (needed for overlay mounts); under CI not being
/// root fails.
pub fn is_root() -> bool {
    strata_testsupport::need_root(&current_test())
}

/// A fresh store (graph and run roots in a temp dir) used with one driver.
pub struct Env {
    pub dir: Scratch,
    pub driver: String,
    conf: PathBuf,
    lookups: Lookups,
}

/// How the strata processes of an [`Env`] resolve paths inside layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookups {
    /// openat2 where the kernel has it (the default).
    Fast,
    /// The confined open's fallback walk, forced
    /// (`STRATA_CONFINED_WALK=1`).
    Walk,
}

impl Env {
    /// A new store for `driver`.
    pub fn new(driver: &str) -> Self {
        let dir = Scratch::new("strata-cli-");
        // A configuration of our own so the machine's storage.conf (and
        // its overlay mount options) does not leak into tests.
        let conf = dir.path().join("storage.conf");
        std::fs::write(&conf, format!("[storage]\ndriver = \"{driver}\"\n")).unwrap();
        Self {
            dir,
            driver: driver.to_string(),
            conf,
            lookups: Lookups::Fast,
        }
    }

    /// A new store for `driver` whose strata processes resolve paths
    /// inside layers as `lookups` says.
    pub fn with_lookups(driver: &str, lookups: Lookups) -> Self {
        Self {
            lookups,
            ..Self::new(driver)
        }
    }

    pub fn graph(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn run_root(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        self.store_args(&mut c, args);
        c
    }

    /// A command that runs strata on this store under `wrapper` (strace,
    /// time): `wrapper wrapper_args… strata -g … -R … -s … args…`.
    pub fn strata_under(&self, wrapper: &str, wrapper_args: &[&str], args: &[&str]) -> Command {
        let mut c = Command::new(wrapper);
        c.args(wrapper_args).arg(env!("CARGO_BIN_EXE_strata"));
        self.store_args(&mut c, args);
        c
    }

    fn store_args(&self, c: &mut Command, args: &[&str]) {
        // Relative paths in options (the reference's vfs takes a relative
        // imagestore and makes it) land in the test's own directory.
        match self.lookups {
            Lookups::Fast => c.env_remove("STRATA_CONFINED_WALK"),
            Lookups::Walk => c.env("STRATA_CONFINED_WALK", "1"),
        };
        c.current_dir(self.dir.path())
            .env("CONTAINERS_STORAGE_CONF", &self.conf)
            .env_remove("STORAGE_DRIVER")
            .env_remove("STORAGE_OPTS")
            .arg("-g")
            .arg(self.graph())
            .arg("-R")
            .arg(self.run_root())
            .arg("-s")
            .arg(&self.driver)
            .args(args);
    }

    /// Runs strata with stdin from `input`.
    pub fn strata_in(&self, args: &[&str], input: &[u8]) -> Output {
        run(self.command(env!("CARGO_BIN_EXE_strata"), args), input)
    }

    /// Runs strata.
    pub fn strata(&self, args: &[&str]) -> Output {
        self.strata_in(args, b"")
    }

    /// Runs strata, asserts success with an empty stderr, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        ok(self.strata(args), args)
    }

    /// Like [`Env::ok`] with stdin.
    pub fn ok_in(&self, args: &[&str], input: &[u8]) -> String {
        ok(self.strata_in(args, input), args)
    }

    /// Runs the reference with stdin from `input`.
    pub fn reference_in(&self, args: &[&str], input: &[u8]) -> Output {
        run(self.command(REFERENCE, args), input)
    }

    /// Runs the reference.
    pub fn reference(&self, args: &[&str]) -> Output {
        self.reference_in(args, b"")
    }

    /// Runs the reference, asserts success, returns stdout.
    pub fn ref_ok(&self, args: &[&str]) -> String {
        let o = self.reference(args);
        assert!(
            o.status.success(),
            "reference {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// The layers.json of this store.
    pub fn layers_json(&self) -> serde_json::Value {
        let p = self
            .graph()
            .join(format!("{}-layers/layers.json", self.driver));
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }
}

fn run(mut c: Command, input: &[u8]) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = feeder.join();
    out
}

/// Asserts a successful run with nothing on stderr; returns stdout.
pub fn ok(o: Output, args: &[&str]) -> String {
    assert!(
        o.status.success(),
        "strata {args:?} failed ({:?}): {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stderr.is_empty(),
        "strata {args:?} wrote to stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// First line of an output (the ID printed by create-layer/import-layer).
pub fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// A small layer tar built in code: directories, files, a symlink, a hard
/// link, an empty file and a file with a long name.
pub fn small_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let dir = |path: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(1_600_000_000);
        (h, path.to_string())
    };
    let mut entries = vec![dir("etc/"), dir("usr/"), dir("usr/bin/")];
    for (h, p) in entries.drain(..) {
        let mut h = h;
        b.append_data(&mut h, p, std::io::empty()).unwrap();
    }
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_600_000_000);
        b.append_data(&mut h, path, data).unwrap();
    };
    file(&mut b, "etc/motd", b"hello from the base layer\n", 0o644);
    file(&mut b, "etc/empty", b"", 0o600);
    file(&mut b, "usr/bin/tool", b"#!/bin/sh\necho hi\n", 0o755);
    let long = format!("usr/{}", "x".repeat(150));
    file(&mut b, &long, b"long name\n", 0o644);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    h.set_mtime(1_600_000_000);
    b.append_link(&mut h, "etc/motd.link", "motd").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_mode(0o644);
    h.set_size(0);
    h.set_mtime(1_600_000_000);
    b.append_link(&mut h, "etc/motd.hard", "etc/motd").unwrap();
    b.into_inner().unwrap()
}

/// A second layer: changes a file, deletes one (whiteout), adds one.
pub fn top_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], kind: tar::EntryType, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_600_000_100);
        b.append_data(&mut h, path, data).unwrap();
    };
    add("etc/", b"", tar::EntryType::Directory, 0o755);
    add("etc/motd", b"version 2\n", tar::EntryType::Regular, 0o644);
    add("etc/.wh.empty", b"", tar::EntryType::Regular, 0o000);
    add("etc/new", b"new file\n", tar::EntryType::Regular, 0o644);
    b.into_inner().unwrap()
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A real Debian tree as a tar: the corpus' debian-minbase.tar (required
/// under CI), else a tar of /usr/share/doc made with GNU tar (real files of
/// this machine).
pub fn real_tar(dir: &Path) -> PathBuf {
    if let Some(c) = Corpus::find(&current_test(), &["debian-minbase.tar"]) {
        return c.file("debian-minbase.tar");
    }
    let out = dir.join("real.tar");
    let st = Command::new("tar")
        .args(["--numeric-owner", "-C", "/usr/share", "-cf"])
        .arg(&out)
        .args([
            "doc/apt",
            "doc/bash",
            "doc/coreutils",
            "doc/tar",
            "common-licenses",
        ])
        .status()
        .expect("run tar");
    if !st.success() {
        // Some of those may be missing; fall back to all of /usr/share/doc.
        let st = Command::new("tar")
            .args(["--numeric-owner", "-C", "/usr/share", "-cf"])
            .arg(&out)
            .arg("doc")
            .status()
            .expect("run tar");
        assert!(st.success(), "could not build a tar of /usr/share/doc");
    }
    out
}

/// The sorted list of `tar -tv`-like facts (name, type, mode, size) of a
/// tar, to compare trees.
pub fn tar_listing(data: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(data);
    let mut v: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            format!(
                "{} {:?} {:o} {}",
                String::from_utf8_lossy(&e.path_bytes()),
                h.entry_type(),
                h.mode().unwrap_or(0),
                h.size().unwrap_or(0)
            )
        })
        .collect();
    v.sort();
    v
}

/// Whether `p` is mode `mode` (permission bits).
pub fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}
