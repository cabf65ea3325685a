//! Differential tests on the real corpus (gated by STRATA_CORPUS): applying a
//! layer gives the same tree as GNU tar extracting it, and a rough timing of
//! the applier alone next to `tar -xpf`.
//!
//! Until the crate's own reader is used here, members are read with the
//! `tar` crate into the entry stream.

mod apply_support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use apply_support::*;
use archive::apply::Resolution;
use archive::entry::{EntryKind, Header, Item, Timestamp, Xattr, CHUNK};
use archive::{Applier, ApplierOptions, ApplyMode};

fn corpus() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("STRATA_CORPUS") else {
        eprintln!("skipping: STRATA_CORPUS is not set");
        return None;
    };
    Some(PathBuf::from(dir))
}

fn corpus_file(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    assert!(
        p.exists(),
        "STRATA_CORPUS is set but {} is missing",
        p.display()
    );
    p
}

fn pax_time(v: &[u8]) -> Option<Timestamp> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut nsec = 0u32;
    let digits: String = frac.chars().take(9).collect();
    if !digits.is_empty() {
        nsec = format!("{digits:0<9}").parse().ok()?;
    }
    Some(Timestamp {
        sec: sec.parse().ok()?,
        nsec,
    })
}

/// Reads a tar with the `tar` crate into items.
fn items_of(tar_path: &Path) -> Vec<Item> {
    let f = std::fs::File::open(tar_path).unwrap();
    let mut ar = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, f));
    let mut items = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let th = e.header().clone();
        let path = e.path_bytes().into_owned();
        let link = e.link_name_bytes().map(|l| l.into_owned());
        let kind = match th.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
            tar::EntryType::Directory => EntryKind::Directory,
            tar::EntryType::Symlink => EntryKind::Symlink {
                target: link.clone().unwrap(),
            },
            tar::EntryType::Link => EntryKind::HardLink {
                target: link.clone().unwrap(),
            },
            tar::EntryType::Char => EntryKind::CharDevice {
                major: th.device_major().unwrap().unwrap(),
                minor: th.device_minor().unwrap().unwrap(),
            },
            tar::EntryType::Block => EntryKind::BlockDevice {
                major: th.device_major().unwrap().unwrap(),
                minor: th.device_minor().unwrap().unwrap(),
            },
            tar::EntryType::Fifo => EntryKind::Fifo,
            tar::EntryType::XGlobalHeader => continue,
            t => panic!("unexpected member type {t:?}"),
        };
        let mut h = Header::new(path, kind);
        h.mode = th.mode().unwrap() & 0o7777;
        h.uid = th.uid().unwrap() as u32;
        h.gid = th.gid().unwrap() as u32;
        h.mtime = Timestamp {
            sec: th.mtime().unwrap() as i64,
            nsec: 0,
        };
        if let Some(pax) = e.pax_extensions().unwrap() {
            for x in pax {
                let x = x.unwrap();
                let k = x.key_bytes();
                if k == b"mtime" {
                    h.mtime = pax_time(x.value_bytes()).unwrap();
                } else if k == b"atime" {
                    h.atime = pax_time(x.value_bytes());
                } else if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                    h.xattrs.push(Xattr {
                        name: name.to_vec(),
                        value: x.value_bytes().to_vec(),
                    });
                }
            }
        }
        let is_file = h.kind == EntryKind::File;
        h.size = if is_file { e.size() } else { 0 };
        items.push(Item::Header(Box::new(h)));
        if is_file {
            let mut off = 0u64;
            loop {
                let mut buf = vec![0u8; CHUNK];
                let mut n = 0;
                while n < CHUNK {
                    let m = e.read(&mut buf[n..]).unwrap();
                    if m == 0 {
                        break;
                    }
                    n += m;
                }
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                items.push(Item::Data {
                    offset: off,
                    bytes: buf,
                });
                off += n as u64;
            }
        }
        items.push(Item::End);
    }
    items
}

fn gnu_tar(tar_path: &Path, into: &Path) -> f64 {
    let t = Instant::now();
    let st = Command::new("tar")
        .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf"])
        .arg(tar_path)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(st.success());
    t.elapsed().as_secs_f64()
}

fn ours(items: Vec<Item>, into: &Path, opts: ApplierOptions, r: Resolution) -> f64 {
    let dir = std::fs::File::open(into).unwrap();
    let t = Instant::now();
    use std::os::fd::AsFd;
    let mut a = Applier::with_resolution(dir.as_fd(), opts, r).unwrap();
    for i in items {
        a.push(i).unwrap();
    }
    let stats = a.resolve_stats();
    a.finish().unwrap();
    let el = t.elapsed().as_secs_f64();
    eprintln!("resolution: {stats:?}");
    el
}

fn sync() {
    let _ = Command::new("sync").status();
}

fn differential(name: &str) {
    let Some(dir) = corpus() else { return };
    let tar_path = corpus_file(&dir, name);
    for (mode, r) in [
        (ApplyMode::default(), Resolution::Auto),
        (ApplyMode::FullTree, Resolution::ManualWalk),
    ] {
        let items = items_of(&tar_path);
        let bytes: usize = items
            .iter()
            .map(|i| match i {
                Item::Data { bytes, .. } => bytes.len(),
                _ => 0,
            })
            .sum();
        let t = tempfile::Builder::new()
            .prefix("strata-corpus-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let a = t.path().join("ours");
        let b = t.path().join("tar");
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        sync();
        let mine = ours(
            items,
            &a,
            ApplierOptions {
                mode,
                ..Default::default()
            },
            r,
        );
        sync();
        let theirs = gnu_tar(&tar_path, &b);
        eprintln!(
            "{name} {mode:?} {r:?}: applier {mine:.2}s ({:.0} MB/s), tar -xpf {theirs:.2}s, ratio {:.2}",
            bytes as f64 / mine / 1e6,
            mine / theirs
        );
        let o = SnapOpts {
            dir_times: true,
            skip_xattr_prefix: &["security.selinux"],
        };
        let mut ta = snapshot_with(&a, &[], o);
        let mut tb = snapshot_with(&b, &[], o);
        // The roots themselves were made by the test.
        ta.remove(&Vec::new());
        tb.remove(&Vec::new());
        let d = diff_trees(&ta, &tb);
        assert!(
            d.is_empty(),
            "{name}: {} differences, first:\n{}",
            d.len(),
            d.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
        );
        assert!(
            ta.len() > 100,
            "{name}: the tree is too small: {}",
            ta.len()
        );
    }
}

#[test]
fn corpus_debian_minbase_matches_gnu_tar() {
    differential("debian-minbase.tar");
}

#[test]
fn corpus_layer_npm_matches_gnu_tar() {
    differential("layer-npm.tar");
}
