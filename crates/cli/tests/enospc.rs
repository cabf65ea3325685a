//! Resource exhaustion: a PAX header of tens of MiB is refused with bounded
//! memory (peak RSS of the `strata` process measured with `/usr/bin/time`),
//! and a layer larger than the free space of a small loop-mounted ext4
//! fails cleanly with ENOSPC, leaves no partial layer and keeps the store
//! usable.

mod common;
mod robust_support;

use std::io::Write;
use std::process::Stdio;

use common::{is_root, Env};
use robust_support::*;

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// Runs strata under `/usr/bin/time -f %M`; returns (success, stderr
/// without the last line, peak RSS in KiB).
fn timed(e: &Env, args: &[&str], input: &[u8]) -> (bool, String, u64) {
    let mut c = e
        .strata_under("/usr/bin/time", &["-f", "%M"], args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut i = c.stdin.take().unwrap();
    let d = input.to_vec();
    let h = std::thread::spawn(move || {
        let _ = i.write_all(&d);
    });
    let o = c.wait_with_output().unwrap();
    let _ = h.join();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let mut lines: Vec<&str> = err.lines().collect();
    let rss = lines.pop().and_then(|l| l.trim().parse().ok()).unwrap_or(0);
    (o.status.success(), lines.join("\n"), rss)
}

fn huge_pax(driver: &str) {
    if !strata_testsupport::need_tool(&strata_testsupport::current_test(), "/usr/bin/time") {
        return;
    }
    let e = Env::new(driver);
    e.ok(&["layers"]);
    let before = e.ok(&["layers"]);
    // Baseline: a small import.
    let (ok, err, base_rss) = timed(&e, &["import-layer", "--id", "small"], &common::small_tar());
    assert!(ok, "{err}");
    e.ok(&["delete-layer", "small"]);
    let value = vec![b'a'; 64 << 20];
    let mut b = RawTar::new();
    b.pax(&[("comment", &value)]).file("f", b"x", 0o644);
    let (ok, err, rss) = timed(&e, &["import-layer", "--id", "pax"], &b.finish());
    eprintln!("{driver}: 64 MiB PAX header: ok={ok} peak RSS {rss} KiB (small import {base_rss} KiB): {err}");
    assert!(!ok, "a 64 MiB PAX header was accepted");
    assert!(
        rss < base_rss + 32 * 1024,
        "peak RSS {rss} KiB for a 64 MiB PAX header"
    );
    assert_eq!(e.ok(&["layers"]), before, "layer left behind");
    assert!(!layer_home(&e.graph(), driver, "pax").exists());
}

#[test]
fn privileged_huge_pax_header_vfs() {
    if is_root() {
        huge_pax("vfs");
    }
}

#[test]
fn privileged_huge_pax_header_overlay() {
    if is_root() {
        huge_pax("overlay");
    }
}

fn enospc(driver: &str) {
    let e = Env::new(driver);
    let Some(_fs) = loop_fs(&e.dir.path().join("fs.img"), &e.graph(), "ext4", 64) else {
        return;
    };
    e.ok_in(&["import-layer", "--id", "base"], &common::small_tar());
    let before = e.ok(&["layers"]);
    let mut b = RawTar::new();
    b.dir("big/", 0o755);
    for i in 0..10 {
        b.file(&format!("big/f{i}"), &noise(10 << 20, i + 1), 0o644);
    }
    let o = e.strata_in(&["import-layer", "--id", "big", "base"], &b.finish());
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("{driver}: 100 MiB layer on a 64 MiB fs: {}", err.trim());
    assert!(!o.status.success(), "100 MiB fit in 64 MiB?");
    assert!(
        err.contains("No space left") || err.contains("ENOSPC"),
        "unclear error: {err}"
    );
    assert_eq!(e.ok(&["layers"]), before, "partial layer listed");
    assert!(
        !layer_home(&e.graph(), driver, "big").exists(),
        "partial layer left"
    );
    let ts = e.graph().join(format!("{driver}-layers"));
    for ent in std::fs::read_dir(&ts).unwrap().flatten() {
        let n = ent.file_name().to_string_lossy().into_owned();
        assert!(!n.contains("big"), "leftover {n}");
    }
    // Still usable.
    e.ok_in(
        &["import-layer", "--id", "after", "base"],
        &common::top_tar(),
    );
    let mnt = e.ok(&["mount", "after"]);
    assert!(std::path::Path::new(mnt.trim()).join("etc/new").exists());
    e.ok(&["unmount", "after"]);
    e.ok(&["shutdown"]);
}

#[test]
fn privileged_enospc_vfs() {
    if is_root() {
        enospc("vfs");
    }
}

#[test]
fn privileged_enospc_overlay() {
    if is_root() {
        enospc("overlay");
    }
}
