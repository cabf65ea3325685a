//! The power-loss lab: a store on crashfs, operations run traced, the power
//! cut at chosen points, and what a reboot finds looked at.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::Digest;
use strata_crashfs::{Counts, CrashFs, Cut, Ended, Model, Tree};

/// The reference binary.
pub const REFERENCE: &str = "/usr/bin/containers-storage";

/// Which program writes the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Strata,
    Reference,
}

impl Tool {
    pub fn program(self) -> &'static str {
        match self {
            Tool::Strata => env!("CARGO_BIN_EXE_strata"),
            Tool::Reference => REFERENCE,
        }
    }
}

/// Durability asked of strata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// Default: as the reference.
    None,
    /// `vfs.sync=filesystem`.
    Filesystem,
}

/// One command of an operation.
#[derive(Debug, Clone)]
pub struct Step {
    pub args: Vec<String>,
    pub stdin: Option<PathBuf>,
}

impl Step {
    pub fn new(args: &[&str]) -> Self {
        Step {
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: None,
        }
    }
    pub fn stdin(mut self, p: &Path) -> Self {
        self.stdin = Some(p.to_path_buf());
        self
    }
}

/// A temporary directory with the crashfs mount point, a run root (a tmpfs
/// in real life: emptied at every "reboot") and a storage.conf.
pub struct Lab {
    pub dir: tempfile::TempDir,
}

impl Lab {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("strata-power-")
            .tempdir_in("/var/tmp")
            .unwrap();
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        std::fs::write(
            dir.path().join("storage.conf"),
            "[storage]\ndriver = \"vfs\"\n",
        )
        .unwrap();
        Lab { dir }
    }

    pub fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    pub fn graph(&self) -> PathBuf {
        self.mnt().join("root")
    }

    pub fn run_root(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// A file for test input, outside the store.
    pub fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    /// The power came back: the run root is gone.
    pub fn reboot(&self) {
        let _ = std::fs::remove_dir_all(self.run_root());
    }

    fn argv(&self, sync: Sync, args: &[String]) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![
            "-g".into(),
            self.graph().into(),
            "-R".into(),
            self.run_root().into(),
            "-s".into(),
            "vfs".into(),
        ];
        if sync == Sync::Filesystem {
            v.push("--storage-opt".into());
            v.push("vfs.sync=filesystem".into());
        }
        v.extend(args.iter().map(OsString::from));
        v
    }

    fn env(&self, c: &mut Command) {
        c.env(
            "CONTAINERS_STORAGE_CONF",
            self.dir.path().join("storage.conf"),
        )
        .env_remove("STORAGE_DRIVER")
        .env_remove("STORAGE_OPTS");
    }

    /// Runs a step untraced (on whatever is mounted).
    pub fn run(&self, tool: Tool, sync: Sync, step: &Step) -> Output {
        let mut c = Command::new(tool.program());
        c.args(self.argv(sync, &step.args));
        self.env(&mut c);
        c.stdin(match &step.stdin {
            Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
            None => Stdio::null(),
        });
        c.output().unwrap()
    }

    /// Runs a step traced on `fs`; returns how it ended and its stdout.
    pub fn run_traced(&self, fs: &CrashFs, tool: Tool, sync: Sync, step: &Step) -> (Ended, String) {
        let argv = self.argv(sync, &step.args);
        let args: Vec<&OsStr> = argv.iter().map(OsString::as_os_str).collect();
        let out_path = self.dir.path().join("traced.out");
        let err_path = self.dir.path().join("traced.err");
        let out = std::fs::File::create(&out_path).unwrap();
        let err = std::fs::File::create(&err_path).unwrap();
        let stdin = step.stdin.clone();
        let conf = self.dir.path().join("storage.conf");
        let ended = fs
            .run(OsStr::new(tool.program()), &args, move |c| {
                c.env("CONTAINERS_STORAGE_CONF", conf)
                    .env_remove("STORAGE_DRIVER")
                    .env_remove("STORAGE_OPTS")
                    .stdout(out)
                    .stderr(err);
                match stdin {
                    Some(p) => c.stdin(std::fs::File::open(p).unwrap()),
                    None => c.stdin(Stdio::null()),
                };
            })
            .unwrap();
        if ended != Ended::Exited(0) {
            let e = std::fs::read_to_string(&err_path).unwrap_or_default();
            if !e.is_empty() && ended != Ended::Killed {
                eprintln!("traced {:?} {ended:?}: {e}", step.args);
            }
        }
        (
            ended,
            std::fs::read_to_string(&out_path).unwrap_or_default(),
        )
    }

    /// Mounts `tree` at the mount point.
    pub fn mount(&self, tree: Tree, model: Model) -> CrashFs {
        CrashFs::mount(&self.mnt(), tree, model).unwrap()
    }

    /// A store made by `steps` (run untraced, then all synced): the state
    /// every cut starts from.
    pub fn prepare(&self, tool: Tool, steps: &[Step]) -> Tree {
        self.reboot();
        let fs = self.mount(Tree::default(), Model::Journal);
        for s in steps {
            let out = self.run(tool, Sync::None, s);
            assert!(
                out.status.success(),
                "{:?}: {}",
                s.args,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        fs.syncfs();
        let t = fs.shut_down().unwrap();
        self.reboot();
        t
    }
}

/// Where to cut, from the counts of a run that was not cut: before every
/// sync point; the first and a middle change of every stretch between sync
/// points; and after the operation returned.
pub fn cut_points(c: &Counts) -> Vec<Cut> {
    let mut v: Vec<Cut> = (1..=c.syncs).map(Cut::BeforeSync).collect();
    let mut bounds = vec![0];
    bounds.extend(c.ops_at_sync.iter().copied());
    bounds.push(c.ops);
    for w in bounds.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b > a {
            v.push(Cut::BeforeOp(a + 1));
        }
        if b > a + 2 {
            v.push(Cut::BeforeOp(a + (b - a) / 2 + 1));
        }
    }
    v.dedup();
    v.push(Cut::Never);
    v
}

/// How many cuts each operation gets: `STRATA_POWER_CUTS=all` for every
/// cut point (the full run whose figures docs/check.md gives), a number for
/// that many, and by default a fixed budget that keeps the suite's time
/// bounded.
pub fn cut_budget() -> Option<usize> {
    const DEFAULT: usize = 6;
    match std::env::var("STRATA_POWER_CUTS").as_deref() {
        Ok("all") => None,
        Ok(n) => Some(n.parse().expect("STRATA_POWER_CUTS: a number or all")),
        Err(_) => Some(DEFAULT),
    }
}

/// At most `budget` of `cuts`, spread evenly over them; the last (after
/// the operation returned) is always among them.
pub fn within_budget(cuts: Vec<Cut>, budget: Option<usize>) -> Vec<Cut> {
    let n = cuts.len();
    match budget {
        Some(b) if b < n && b > 0 => (1..=b).map(|i| cuts[i * n / b - 1]).collect(),
        _ => cuts,
    }
}

/// sha256 of bytes, hex.
pub fn sha(d: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(d))
}

/// A layer tar made in code: directories, small and large files, a symlink
/// and a hard link, so that an import makes many writes.
pub fn layer_tar(seed: u8) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_path(path).unwrap();
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add(&format!("d{seed}/"), tar::EntryType::Directory, b"", None);
    add(
        &format!("d{seed}/sub/"),
        tar::EntryType::Directory,
        b"",
        None,
    );
    for (i, size) in [0usize, 10, 5000, 70_000, 300_000].iter().enumerate() {
        let data: Vec<u8> = (0..*size)
            .map(|j| (j as u8).wrapping_mul(seed).wrapping_add(i as u8))
            .collect();
        add(
            &format!("d{seed}/sub/f{i}"),
            tar::EntryType::Regular,
            &data,
            None,
        );
    }
    add(
        &format!("d{seed}/link"),
        tar::EntryType::Symlink,
        b"",
        Some("sub/f2"),
    );
    add(
        &format!("d{seed}/hard"),
        tar::EntryType::Link,
        b"",
        Some(&format!("d{seed}/sub/f3")),
    );
    b.into_inner().unwrap()
}

/// Appends a line to the report file named by `STRATA_POWER_REPORT`, if set.
pub fn report_line(line: &str) {
    eprintln!("{line}");
    if let Some(p) = std::env::var_os("STRATA_POWER_REPORT") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
