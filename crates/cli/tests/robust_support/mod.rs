//! Shared helpers of the robustness tests (hostile layers, crashes,
//! concurrency, modes, ENOSPC): a raw tar builder that writes any name
//! bytes (the `tar` crate refuses `..`), tree snapshots to prove that nothing
//! outside a layer changed, and loop-mounted scratch filesystems.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Env;
use strata_testsupport::{LoopFs, LoopOptions};

/// A small xorshift generator: reproducible runs from a printed seed.
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from `$var` when set, else from the clock; the seed is
    /// printed so that a failing run can be repeated.
    pub fn from_env(var: &str) -> Self {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("seed: {var}={seed}");
        Self(seed)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// An index below `n`.
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
}

fn spawn(e: &Env, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .env("CONTAINERS_STORAGE_CONF", e.dir.path().join("storage.conf"))
        .env_remove("STORAGE_DRIVER")
        .env_remove("STORAGE_OPTS")
        .arg("-g")
        .arg(e.graph())
        .arg("-R")
        .arg(e.run_root())
        .arg("-s")
        .arg(&e.driver)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Runs strata with `args`, SIGKILLs it after `delay` unless it ended;
/// returns whether it was killed before finishing.
pub fn kill_after(e: &Env, args: &[&str], delay: Duration) -> bool {
    let mut c = spawn(e, args);
    let start = Instant::now();
    loop {
        if let Some(_st) = c.try_wait().unwrap() {
            return false;
        }
        if start.elapsed() >= delay {
            let _ = c.kill();
            let _ = c.wait();
            return true;
        }
        std::thread::sleep(Duration::from_micros(300));
    }
}

/// Builds tar streams byte by byte, with no validation at all.
#[derive(Default)]
pub struct RawTar {
    out: Vec<u8>,
    owner: (u32, u32),
}

/// Tar type flags.
pub const REG: u8 = b'0';
pub const HARD: u8 = b'1';
pub const SYM: u8 = b'2';
pub const CHR: u8 = b'3';
pub const BLK: u8 = b'4';
pub const DIR: u8 = b'5';
pub const FIFO: u8 = b'6';
/// Not a tar type: what some writers use for sockets (GNU tar never
/// archives them; we write the type anyway to see it refused or skipped).
pub const SOCK: u8 = b's';

fn octal(field: &mut [u8], v: u64) {
    let n = field.len() - 1;
    let s = format!("{v:0n$o}");
    let s = s.as_bytes();
    let s = &s[s.len().saturating_sub(n)..];
    field[..s.len()].copy_from_slice(s);
    field[n] = 0;
}

impl RawTar {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// One member with every field given.
    #[allow(clippy::too_many_arguments)]
    pub fn member(
        &mut self,
        name: &[u8],
        kind: u8,
        mode: u32,
        data: &[u8],
        link: &[u8],
        dev: (u64, u64),
    ) -> &mut Self {
        let mut h = [0u8; 512];
        let n = name.len().min(100);
        h[..n].copy_from_slice(&name[..n]);
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], u64::from(self.owner.0));
        octal(&mut h[116..124], u64::from(self.owner.1));
        octal(&mut h[124..136], data.len() as u64);
        octal(&mut h[136..148], 1_600_000_000);
        h[156] = kind;
        let l = link.len().min(100);
        h[157..157 + l].copy_from_slice(&link[..l]);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[265..269].copy_from_slice(b"root");
        h[297..301].copy_from_slice(b"root");
        octal(&mut h[329..337], dev.0);
        octal(&mut h[337..345], dev.1);
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.out.extend_from_slice(&h);
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    /// Owner of the members that follow.
    pub fn owner(&mut self, uid: u32, gid: u32) -> &mut Self {
        self.owner = (uid, gid);
        self
    }

    /// A regular file.
    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.member(name.as_bytes(), REG, mode, data, b"", (0, 0))
    }

    /// A directory.
    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.member(name.as_bytes(), DIR, mode, b"", b"", (0, 0))
    }

    /// A symlink `name -> target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.member(name.as_bytes(), SYM, 0o777, b"", target.as_bytes(), (0, 0))
    }

    /// A hard link `name` to the member `target`.
    pub fn hardlink(&mut self, name: &str, target: &str, mode: u32) -> &mut Self {
        self.member(name.as_bytes(), HARD, mode, b"", target.as_bytes(), (0, 0))
    }

    /// A PAX extended header (`x`) applying to the next member.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (k, v) in records {
            // "LEN KEY=VALUE\n" where LEN counts itself.
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len.to_string().len() + rest > len {
                len += 1;
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        self.member(b"PaxHeaders.0/x", b'x', 0o644, &body, b"", (0, 0))
    }

    /// A GNU long name (`L`) applying to the next member.
    pub fn gnu_long_name(&mut self, name: &[u8]) -> &mut Self {
        let mut v = name.to_vec();
        v.push(0);
        self.member(b"././@LongLink", b'L', 0o644, &v, b"", (0, 0))
    }

    /// A GNU long link target (`K`) applying to the next member.
    pub fn gnu_long_link(&mut self, target: &[u8]) -> &mut Self {
        let mut v = target.to_vec();
        v.push(0);
        self.member(b"././@LongLink", b'K', 0o644, &v, b"", (0, 0))
    }

    /// The stream with its two zero end blocks.
    pub fn finish(&self) -> Vec<u8> {
        let mut v = self.out.clone();
        v.extend(std::iter::repeat_n(0u8, 1024));
        v
    }

    /// The stream without end blocks (for truncation cases).
    pub fn bytes(&self) -> Vec<u8> {
        self.out.clone()
    }
}

/// What we compare of one path between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// File type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size.
    pub size: u64,
    /// Modification time (ns).
    pub mtime: i128,
    /// Content digest (files) or link target (symlinks).
    pub content: Vec<u8>,
}

/// A recursive snapshot of a tree that does not descend into any path in
/// `skip` (those are recorded as present, nothing more).
pub fn snapshot(root: &Path, skip: &[PathBuf]) -> BTreeMap<PathBuf, Fact> {
    let mut out = BTreeMap::new();
    walk(root, skip, &mut out);
    out
}

fn walk(p: &Path, skip: &[PathBuf], out: &mut BTreeMap<PathBuf, Fact>) {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return;
    };
    let skipped = skip.iter().any(|s| s == p);
    let content = if skipped {
        Vec::new()
    } else if m.file_type().is_symlink() {
        std::fs::read_link(p)
            .map(|t| t.into_os_string().into_encoded_bytes())
            .unwrap_or_default()
    } else if m.file_type().is_file() {
        use sha2::Digest;
        std::fs::read(p)
            .map(|d| sha2::Sha256::digest(&d).to_vec())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    out.insert(
        p.to_path_buf(),
        Fact {
            mode: if skipped { 0 } else { m.mode() },
            uid: if skipped { 0 } else { m.uid() },
            gid: if skipped { 0 } else { m.gid() },
            size: if skipped || m.is_dir() { 0 } else { m.size() },
            mtime: if skipped {
                0
            } else {
                i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
            },
            content,
        },
    );
    if m.is_dir() && !skipped {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                walk(&e.path(), skip, out);
            }
        }
    }
}

/// Differences between two snapshots, ignoring paths for which `allowed`
/// returns true; one line per difference.
pub fn diff_snapshots(
    before: &BTreeMap<PathBuf, Fact>,
    after: &BTreeMap<PathBuf, Fact>,
    allowed: &dyn Fn(&Path) -> bool,
) -> Vec<String> {
    let mut d = Vec::new();
    for (p, f) in after {
        if allowed(p) {
            continue;
        }
        match before.get(p) {
            None => d.push(format!("new: {}", p.display())),
            Some(b) if b != f => d.push(format!("changed: {} {b:?} -> {f:?}", p.display())),
            _ => {}
        }
    }
    for p in before.keys() {
        if !after.contains_key(p) && !allowed(p) {
            d.push(format!("gone: {}", p.display()));
        }
    }
    d
}

/// Whether `p` is a character device, a socket or a FIFO.
pub fn is_special(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .map(|m| {
            let t = m.file_type();
            t.is_char_device() || t.is_socket() || t.is_fifo() || t.is_block_device()
        })
        .unwrap_or(false)
}

/// Where a driver keeps the content of layer `id`.
pub fn layer_dir(graph: &Path, driver: &str, id: &str) -> PathBuf {
    match driver {
        "vfs" => graph.join("vfs/dir").join(id),
        "overlay" => graph.join("overlay").join(id).join("diff"),
        "btrfs" => graph.join("btrfs/subvolumes").join(id),
        other => panic!("unknown driver {other}"),
    }
}

/// The directory a driver keeps per layer (removed with the layer).
pub fn layer_home(graph: &Path, driver: &str, id: &str) -> PathBuf {
    match driver {
        "overlay" => graph.join("overlay").join(id),
        _ => layer_dir(graph, driver, id),
    }
}

/// A loop-mounted filesystem of type `fstype` (`size_mib`) made from the
/// image file `image` and mounted at `mnt`, both in the test's directory;
/// unmounted and detached on drop. `None` (after saying why) when it cannot
/// be had here; under CI that fails.
pub fn loop_fs(image: &Path, mnt: &Path, fstype: &'static str, size_mib: u64) -> Option<LoopFs> {
    let test = strata_testsupport::current_test();
    LoopFs::at(&test, image, mnt, &LoopOptions::new(fstype, size_mib))
}

/// Mount points at or under `dir`, deepest first, as strings (the form
/// mountpoints.json records).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    strata_testsupport::mounts_under(dir)
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// Members of a tar stream (entries without the root), as
/// `path -> "kind mode content-or-target"`; an error when the stream does
/// not parse or a member cannot be read in full.
pub fn tar_members(data: &[u8]) -> Result<BTreeMap<String, String>, String> {
    use std::io::Read;
    let mut out = BTreeMap::new();
    let mut a = tar::Archive::new(data);
    for e in a.entries().map_err(|e| e.to_string())? {
        let mut e = e.map_err(|e| e.to_string())?;
        let path = e.path().map_err(|e| e.to_string())?;
        let path = path.to_string_lossy().trim_end_matches('/').to_string();
        let path = path.trim_start_matches("./").to_string();
        let mode = e.header().mode().map_err(|e| e.to_string())? & 0o7777;
        let kind = e.header().entry_type();
        let what = if kind.is_dir() {
            "dir".to_string()
        } else if kind.is_symlink() {
            let t = e
                .link_name()
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            format!("link {}", t.display())
        } else if kind.is_file() {
            let mut v = Vec::new();
            e.read_to_end(&mut v).map_err(|e| e.to_string())?;
            format!("file {}", String::from_utf8_lossy(&v))
        } else {
            format!("{kind:?}")
        };
        if path.is_empty() || path == "." {
            continue;
        }
        out.insert(path, format!("{what} {mode:o}"));
    }
    Ok(out)
}

/// The objects below `root` in the form of [`tar_members`].
pub fn tree_members(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let what = if md.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if md.is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_file() {
                format!(
                    "file {}",
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap())
                )
            } else {
                format!("special {:o}", md.mode())
            };
            out.insert(rel, format!("{what} {:o}", md.mode() & 0o7777));
        }
    }
    out
}
