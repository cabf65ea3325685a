//! Differential tests on the real corpus (`STRATA_CORPUS`, required under
//! CI): applying a layer gives the same tree as GNU tar extracting it (with
//! a rough timing of the applier next to `tar -xpf`) and as the reference
//! importing it.
//!

mod apply_support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use apply_support::*;
use strata_archive::apply::Resolution;
use strata_archive::{Applier, ApplierOptions, ApplyMode};
use strata_testsupport::{need_root, reference, Corpus, ReferenceStore, Scratch};

/// User+system CPU seconds of this process and of its waited-for children
/// (from /proc/self/stat, in clock ticks of 1/100 s).
fn cpu() -> (f64, f64) {
    let st = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &st[st.rfind(')').unwrap() + 2..];
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // After the command name: state is field 3; utime..cstime are 14..17.
    ((f[11] + f[12]) / 100.0, (f[13] + f[14]) / 100.0)
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

/// Applies the file at `tar_path` with the crate's pipeline; returns seconds.
fn ours(tar_path: &Path, into: &Path, opts: ApplierOptions, r: Resolution) -> f64 {
    let f = std::fs::File::open(tar_path).unwrap();
    let t = Instant::now();
    apply_tar_file(into, f, opts, r);
    t.elapsed().as_secs_f64()
}

fn apply_tar_file(into: &Path, f: std::fs::File, opts: ApplierOptions, r: Resolution) {
    let dir = std::fs::File::open(into).unwrap();
    use std::os::fd::AsFd;
    if r == Resolution::Auto {
        let o = strata_archive::ApplyOptions {
            mode: opts.mode,
            ..Default::default()
        };
        strata_archive::apply_layer(dir.as_fd(), f, o).unwrap();
        return;
    }
    let mut a = Applier::with_resolution(dir.as_fd(), opts, r).unwrap();
    strata_archive::read_layer(f, None, |item| a.push(item)).unwrap();
    eprintln!("resolution: {:?}", a.resolve_stats());
    a.finish().unwrap();
}

fn sync() {
    let _ = Command::new("sync").status();
}

fn differential(name: &str) {
    let Some(corpus) = Corpus::find(&format!("corpus differential of {name}"), &[name]) else {
        return;
    };
    let tar_path = corpus.file(name);
    for (mode, r) in [
        (ApplyMode::default(), Resolution::Auto),
        (ApplyMode::FullTree, Resolution::ManualWalk),
    ] {
        let bytes = std::fs::metadata(&tar_path).unwrap().len();
        let t = Scratch::new("strata-corpus-");
        let a = t.path().join("ours");
        let b = t.path().join("tar");
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        sync();
        let c0 = cpu();
        let mine = ours(
            &tar_path,
            &a,
            ApplierOptions {
                mode,
                ..Default::default()
            },
            r,
        );
        sync();
        let c1 = cpu();
        let theirs = gnu_tar(&tar_path, &b);
        let c2 = cpu();
        eprintln!(
            "{name} {mode:?} {r:?}: apply {mine:.2}s wall ({:.0} MB/s), {:.2}s CPU; tar -xpf {theirs:.2}s wall, {:.2}s CPU; wall ratio {:.2}",
            bytes as f64 / mine / 1e6,
            c1.0 - c0.0,
            c2.1 - c1.1,
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

/// Full-tree mode against the reference: containers-storage's vfs driver
/// imports debian-minbase.tar and then layer2.tar (99 whiteouts) on top;
/// applying both in FullTree mode must give the same tree. Directory mtimes
/// are not compared: a whiteout after a directory's entry leaves "now" in
/// the reference, while strata sets the entry's time at the end.
#[test]
fn privileged_corpus_layer2_full_tree_matches_containers_storage_vfs() {
    let test = "privileged_corpus_layer2_full_tree_matches_containers_storage_vfs";
    let Some(corpus) = Corpus::find(test, &["debian-minbase.tar", "layer2.tar"]) else {
        return;
    };
    if !need_root(test) || reference(test).is_none() {
        return;
    }
    let (base, layer2) = (corpus.file("debian-minbase.tar"), corpus.file("layer2.tar"));
    let t = Scratch::new("strata-corpus-");
    let cs = ReferenceStore::new(t.path(), "vfs");
    let id1 = cs.import_file(&base, None);
    let t0 = Instant::now();
    let id2 = cs.import_file(&layer2, Some(&id1));
    let theirs = t0.elapsed().as_secs_f64();
    cs.shutdown();
    let reference = cs.graph.join("vfs/dir").join(&id2);
    assert!(reference.is_dir());

    let mine_dir = t.path().join("ours");
    std::fs::create_dir(&mine_dir).unwrap();
    ours(&base, &mine_dir, full_opts(), Resolution::Auto);
    let mine = ours(&layer2, &mine_dir, full_opts(), Resolution::Auto);
    eprintln!(
        "layer2.tar FullTree: apply {mine:.2}s; containers-storage import-layer (vfs, incl. copy of the parent) {theirs:.2}s"
    );
    let o = SnapOpts {
        dir_times: false,
        skip_xattr_prefix: &["security.selinux"],
    };
    let mut ta = snapshot_with(&mine_dir, &[], o);
    let mut tb = snapshot_with(&reference, &[], o);
    ta.remove(&Vec::new());
    tb.remove(&Vec::new());
    let d = diff_trees(&ta, &tb);
    assert!(
        d.is_empty(),
        "{} differences, first:\n{}",
        d.len(),
        d.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(!ta.contains_key(b"etc/motd".as_slice()), "whiteout applied");
}

fn full_opts() -> ApplierOptions {
    ApplierOptions {
        mode: ApplyMode::FullTree,
        ..Default::default()
    }
}

/// Not a test: applies `STRATA_BENCH_TAR` (a path) N times
/// (`STRATA_BENCH_RUNS`, default 3) with the pipeline and prints the
/// times, for profiling; trees go under `STRATA_BENCH_DIR` (default
/// /var/tmp). `cargo test --release --test apply_corpus bench --
/// --ignored --nocapture`.
#[test]
#[ignore = "not a test: a profiling harness, run by hand with STRATA_BENCH_TAR set"]
fn bench_apply_only() {
    let Some(p) = std::env::var_os("STRATA_BENCH_TAR") else {
        eprintln!("set STRATA_BENCH_TAR");
        return;
    };
    let runs: usize = std::env::var("STRATA_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let base = std::env::var_os("STRATA_BENCH_DIR").unwrap_or("/var/tmp".into());
    for _ in 0..runs {
        let t = tempfile::Builder::new()
            .prefix("strata-bench-")
            .tempdir_in(&base)
            .unwrap();
        if std::env::var_os("STRATA_BENCH_APPLIER_ONLY").is_some() {
            // The applier alone: items read into memory first.
            let mut items = Vec::new();
            let f = std::fs::File::open(&p).unwrap();
            strata_archive::read_layer(f, None, |i| {
                items.push(i);
                Ok(())
            })
            .unwrap();
            let dir = std::fs::File::open(t.path()).unwrap();
            sync();
            let c0 = cpu();
            let w = Instant::now();
            use std::os::fd::AsFd;
            let mut a = Applier::new(dir.as_fd(), ApplierOptions::default()).unwrap();
            for i in items {
                a.push(i).unwrap();
            }
            a.finish().unwrap();
            let wall = w.elapsed().as_secs_f64();
            let c1 = cpu();
            eprintln!(
                "apply {wall:.2}s wall, {:.2}s CPU (applier only)",
                c1.0 - c0.0
            );
            continue;
        }
        sync();
        let c0 = cpu();
        let wall = ours(
            Path::new(&p),
            t.path(),
            ApplierOptions::default(),
            Resolution::Auto,
        );
        let c1 = cpu();
        eprintln!("apply {wall:.2}s wall, {:.2}s CPU", c1.0 - c0.0);
    }
}

/// Overlay form against the reference: containers-storage's overlay driver
/// imports layer2.tar (99 whiteouts) into its `diff` directory; applying it
/// in overlay mode into an empty directory must give the same tree.
/// Directory times are not compared (see above), nor the times of whiteout
/// devices, which the reference leaves at "now".
#[test]
fn privileged_corpus_layer2_overlay_matches_containers_storage_overlay() {
    let test = "privileged_corpus_layer2_overlay_matches_containers_storage_overlay";
    let Some(corpus) = Corpus::find(test, &["layer2.tar"]) else {
        return;
    };
    if !need_root(test) || reference(test).is_none() {
        return;
    }
    let layer2 = corpus.file("layer2.tar");
    let t = Scratch::new("strata-corpus-");
    let cs = ReferenceStore::new(t.path(), "overlay");
    let id = cs.import_file(&layer2, None);
    cs.shutdown();
    let reference = cs.graph.join("overlay").join(&id).join("diff");
    assert!(reference.is_dir());
    let mine = t.path().join("ours");
    std::fs::create_dir(&mine).unwrap();
    ours(&layer2, &mine, ApplierOptions::default(), Resolution::Auto);
    let o = SnapOpts {
        dir_times: false,
        skip_xattr_prefix: &["security.selinux"],
    };
    let strip = |mut tr: Tree| {
        tr.remove(&Vec::new());
        for n in tr.values_mut() {
            if n.kind == "char" && n.rdev == 0 {
                n.mtime = None;
            }
        }
        tr
    };
    let ta = strip(snapshot_with(&mine, &[], o));
    let tb = strip(snapshot_with(&reference, &[], o));
    let d = diff_trees(&ta, &tb);
    assert!(
        d.is_empty(),
        "{} differences, first:\n{}",
        d.len(),
        d.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    let whiteouts = ta
        .values()
        .filter(|n| n.kind == "char" && n.rdev == 0)
        .count();
    assert_eq!(whiteouts, 99);
}
