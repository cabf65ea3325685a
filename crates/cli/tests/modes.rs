//! File modes of a store: the same operations (import-layer, create-layer,
//! mount, unmount, set-names, layer data) done by `containers-storage` in one
//! store and by `strata` in another give the same type and permission bits
//! for every path both stores have; graph and run roots are 0700 and the
//! lock and record files are present in both.

mod common;
mod robust_support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{first_line, have_reference, is_root, Env};

/// Relative path (link names normalised) -> st_mode, for one tree.
fn modes(root: &Path) -> BTreeMap<String, u32> {
    robust_support::snapshot(root, &[])
        .into_keys()
        .filter_map(|p| {
            let rel = p.strip_prefix(root).ok()?.to_string_lossy().into_owned();
            let rel = normalise(&rel);
            // Temporary and time-dependent files are not part of the layout.
            if rel.contains(".tmp-") {
                return None;
            }
            let m = std::fs::symlink_metadata(&p).ok()?;
            Some((rel, m.mode()))
        })
        .collect()
}

fn normalise(rel: &str) -> String {
    rel.split('/')
        .map(|c| {
            let is_link = c.len() == 26
                && c.bytes()
                    .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b));
            if is_link {
                "LINK"
            } else {
                c
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn ops(e: &Env, reference: bool) {
    let run = |args: &[&str], input: &[u8]| {
        let o = if reference {
            e.reference_in(args, input)
        } else {
            e.strata_in(args, input)
        };
        assert!(
            o.status.success(),
            "{} {args:?}: {}",
            if reference { "reference" } else { "strata" },
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(
        &["import-layer", "--id", "base", "-n", "b"],
        &common::small_tar(),
    );
    run(&["import-layer", "--id", "top", "base"], &common::top_tar());
    run(&["create-layer", "--id", "ctr", "top"], b"");
    run(&["mount", "ctr"], b"");
    run(&["unmount", "ctr"], b"");
    run(&["set-names", "-n", "renamed", "top"], b"");
    run(
        &["set-layer-data", "-f", "/etc/hostname", "top", "item"],
        b"",
    );
}

fn compare(driver: &str) {
    let ours = Env::new(driver);
    let theirs = Env::new(driver);
    ops(&ours, false);
    ops(&theirs, true);
    let mut problems = Vec::new();
    for (root_ours, root_theirs) in [
        (ours.graph(), theirs.graph()),
        (ours.run_root(), theirs.run_root()),
    ] {
        let a = modes(&root_ours);
        let b = modes(&root_theirs);
        let mut compared = 0;
        for (p, mb) in &b {
            match a.get(p) {
                Some(ma) if ma != mb => {
                    problems.push(format!("{p}: ours {ma:o}, reference {mb:o}"));
                }
                Some(_) => compared += 1,
                None => eprintln!("{driver}: only the reference has {p}"),
            }
        }
        for p in a.keys().filter(|p| !b.contains_key(*p)) {
            eprintln!("{driver}: only strata has {p}");
        }
        eprintln!(
            "{driver}: {compared} paths with equal modes under {}",
            root_ours.display()
        );
    }
    for must in [
        format!("{driver}-layers/layers.json"),
        format!("{driver}-layers/layers.lock"),
        "storage.lock".to_string(),
    ] {
        if !ours.graph().join(&must).exists() {
            problems.push(format!("strata store lacks {must}"));
        }
    }
    for root in [ours.graph(), ours.run_root()] {
        let m = std::fs::metadata(&root).unwrap().mode() & 0o7777;
        if m != 0o700 {
            problems.push(format!("{} is {m:o}", root.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn privileged_modes_overlay() {
    if is_root() && have_reference() {
        compare("overlay");
    }
}

#[test]
fn privileged_modes_vfs() {
    if is_root() && have_reference() {
        compare("vfs");
    }
}

/// A child layer's root keeps its parent's set-group-ID bit (README
/// differences; its owner is the maps' root, as with the reference), so
/// once the child's root is given a group, what is made in it takes that
/// group, as in the parent layer itself. The differential run found it
/// (overlay seed 102638): the reference's overlay root has dropped the
/// bit, so a directory made there gets the maker's group instead.
fn setgid_root_is_inherited(driver: &str) {
    let e = Env::new(driver);
    let base = first_line(&e.ok(&["create-layer"]));
    let m = e.ok(&["mount", &base]).trim().to_string();
    std::os::unix::fs::chown(&m, Some(0), Some(1000)).unwrap();
    std::fs::set_permissions(&m, std::fs::Permissions::from_mode(0o2775)).unwrap();
    e.ok(&["unmount", &base]);
    let child = first_line(&e.ok(&["create-layer", &base]));
    let m = PathBuf::from(e.ok(&["mount", &child]).trim());
    let root = std::fs::metadata(&m).unwrap();
    assert_eq!(root.mode() & 0o7777, 0o2775, "{driver}: child root");
    std::os::unix::fs::chown(&m, Some(0), Some(1000)).unwrap();
    std::fs::create_dir(m.join("c")).unwrap();
    std::fs::write(m.join("f"), b"x").unwrap();
    for made in ["c", "f"] {
        let md = std::fs::metadata(m.join(made)).unwrap();
        assert_eq!(md.gid(), 1000, "{driver}: {made} made in the child's root");
    }
    let c = std::fs::metadata(m.join("c")).unwrap();
    assert_eq!(c.mode() & 0o2000, 0o2000, "{driver}: c keeps set-group-ID");
    e.ok(&["unmount", &child]);
}

#[test]
fn privileged_setgid_root_is_inherited_overlay() {
    if is_root() {
        setgid_root_is_inherited("overlay");
    }
}

#[test]
fn privileged_setgid_root_is_inherited_vfs() {
    if is_root() {
        setgid_root_is_inherited("vfs");
    }
}
