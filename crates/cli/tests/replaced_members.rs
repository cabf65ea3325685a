//! Layers whose tar replaces or removes one of its own members (issue 5):
//! strata imports them, keeps no tar-split record (replay would miss the
//! first member's content), and `diff` gives the driver's diff, a valid tar
//! of the layer's content. The reference reads such a store too: with no
//! record it also falls back to the driver's diff.

mod common;
mod robust_support;

use std::path::Path;

use common::{have_reference, is_root, Env};
use robust_support::{tar_members, tree_members};

/// A tar of `(name, content)` files in order (`None` = directory).
fn tar_of(members: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(1_600_000_000);
        match data {
            Some(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(d.len() as u64);
                b.append_data(&mut h, name, *d).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn check(driver: &str) {
    let e = Env::new(driver);
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "dup",
            tar_of(&[
                ("a", Some(b"first")),
                ("b", Some(b"bee")),
                ("a", Some(b"second!")),
            ]),
        ),
        (
            "dfd",
            tar_of(&[
                ("d", None),
                ("d/x", Some(b"inner")),
                ("d", Some(b"file")),
                ("d", None),
                ("d/y", Some(b"y")),
            ]),
        ),
        (
            "wh",
            tar_of(&[
                ("a", Some(b"gone")),
                ("k", Some(b"keep")),
                (".wh.a", Some(b"")),
            ]),
        ),
    ];
    // A normal layer keeps its record and diffs byte for byte.
    let plain = tar_of(&[("p", Some(b"plain")), ("q", None)]);
    e.ok_in(&["import-layer", "--id", "plain"], &plain);
    assert_eq!(e.strata(&["diff", "-u", "plain"]).stdout, plain);
    for (id, data) in &cases {
        e.ok_in(&["import-layer", "--id", id], data);
        let ts = e.graph().join(format!("{driver}-layers/{id}.tar-split.gz"));
        assert!(!ts.exists(), "{driver}/{id}: tar-split kept");
        let out = e.strata(&["diff", "-u", id]);
        assert!(
            out.status.success(),
            "{driver}/{id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut got = tar_members(&out.stdout).expect("valid tar");
        got.retain(|p, _| !p.starts_with(".wh."));
        let m = common::first_line(&e.ok(&["mount", id]));
        let tree = tree_members(Path::new(&m));
        e.ok(&["unmount", id]);
        assert_eq!(got, tree, "{driver}/{id}");
        if have_reference() {
            let theirs = e.reference(&["diff", "-u", id]);
            assert!(
                theirs.status.success(),
                "{driver}/{id}: reference diff: {}",
                String::from_utf8_lossy(&theirs.stderr)
            );
            let mut theirs = tar_members(&theirs.stdout).expect("valid tar");
            theirs.retain(|p, _| !p.starts_with(".wh."));
            assert_eq!(theirs, tree, "{driver}/{id}: reference");
        }
    }
}

#[test]
fn privileged_replaced_members_diff_from_the_driver() {
    if !is_root() {
        return;
    }
    for d in ["vfs", "overlay"] {
        check(d);
    }
}
