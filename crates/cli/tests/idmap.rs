//! ID-mapped layers (issue 12): a child created with maps other than its
//! parent's shows the parent's files re-owned, on every driver, as
//! containers-storage 1.43's vfs shows them (its overlay drops the maps of
//! such a layer when the kernel has idmapped mounts, so its vfs is the
//! oracle for the observable tree); imports into mapped layers and their
//! diffs map owners; the map flags combine as the reference combines them;
//! bad maps and failed shifts leave nothing behind; deleting mapped layers
//! leaves nothing either.

mod common;
mod idmap_support;
mod robust_support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{first_line, have_reference, is_root, Env};
use idmap_support::{mounted_tree, must, owners_tar, sorted, tar_owners, Run, Store, KINDS, MAPS};

/// What a tool shows of a child created with `maps` on a host-owned layer
/// holding [`owners_tar`], and of a grandchild with `grand_maps` when
/// given.
fn mapped_child(run: Run<'_>, maps: &[&str], grand_maps: &[&str]) -> Vec<String> {
    let base = first_line(&must(
        run,
        &["import-layer", "--hostuidmap", "--hostgidmap"],
        &owners_tar(),
    ));
    let mut args = vec!["create-layer"];
    args.extend_from_slice(maps);
    args.push(&base);
    let child = first_line(&must(run, &args, b""));
    let mut t = mounted_tree(run, &child);
    if !grand_maps.is_empty() {
        let mut args = vec!["create-layer"];
        args.extend_from_slice(grand_maps);
        args.push(&child);
        let grand = first_line(&must(run, &args, b""));
        t.push("-- grandchild".into());
        t.extend(mounted_tree(run, &grand));
    }
    t
}

/// The reference store a kind's trees are compared with: btrfs on btrfs
/// (its layer roots are subvolumes, mode 0755), else vfs (its overlay
/// drops a mapped child's maps, so its vfs shows what a mapped layer
/// holds).
fn oracle(kind: &str) -> Option<Store> {
    Store::new(if kind == "btrfs" { "btrfs" } else { "vfs" })
}

/// Checks every store kind against [`oracle`] for a child with `maps`
/// (and a grandchild with `grand_maps`); returns what the reference's vfs
/// shows.
fn check_every_kind(maps: &[&str], grand_maps: &[&str]) -> Vec<String> {
    let r = oracle("vfs").unwrap();
    let want = mapped_child(&|a, i| r.reference(a, i), maps, grand_maps);
    for kind in KINDS {
        let Some(s) = Store::new(kind) else { continue };
        let want = if kind == "btrfs" {
            let r = oracle(kind).unwrap();
            mapped_child(&|a, i| r.reference(a, i), maps, grand_maps)
        } else {
            want.clone()
        };
        let got = mapped_child(&|a, i| s.run(a, i), maps, grand_maps);
        assert_eq!(got, want, "{kind} {maps:?} {grand_maps:?}");
    }
    want
}

#[test]
fn privileged_mapped_child_matches_the_reference_on_every_driver() {
    if !is_root() || !have_reference() {
        return;
    }
    let want = check_every_kind(&MAPS, &[]);
    // Spot checks of the facts the table rests on.
    for line in [
        "/f1 100001:200001 100644 1",
        "/f7 65534:200001 100644 1",
        "/suid 100002:200002 106755 1",
        "/ 0:0 40555 0",
    ] {
        assert!(want.contains(&line.to_string()), "{line}: {want:#?}");
    }
}

#[test]
fn privileged_multi_range_maps_and_chains_match_the_reference() {
    if !is_root() || !have_reference() {
        return;
    }
    // The reference's form of several ranges (triples chained by colons);
    // the child covers every owner of the tar, so its own child can be
    // re-owned from it.
    let want = check_every_kind(
        &[
            "--uidmap",
            "0:1000000:3:3:1300000:150000",
            "--gidmap",
            "0:2000000:1:1:2100000:2:3:2400000:250000",
        ],
        &[
            "--uidmap",
            "0:3000000:2:2:3500000:200000",
            "--gidmap",
            "0:4000000:300000",
        ],
    );
    for line in [
        "/f5 1300002:2400002 100640 1",
        "/f5 3500003:4000005 100640 1",
    ] {
        assert!(want.contains(&line.to_string()), "{line}: {want:#?}");
    }
}

#[test]
fn privileged_import_into_mapped_layer_maps_owners_and_diffs_back() {
    if !is_root() || !have_reference() {
        return;
    }
    let tar = owners_tar();
    // Only IDs inside the maps: an import refuses an owner without a host ID.
    let maps = ["--uidmap", "0:100000:200000", "--gidmap", "0:300000:300000"];
    let mut args = vec!["import-layer"];
    args.extend_from_slice(&maps);
    // What the reference shows on an oracle store: the tree, changes,
    // and an edited child's changes and diff.
    let expect = |r: &Store| {
        let reference = |a: &[&str], i: &[u8]| r.reference(a, i);
        let rid = first_line(&must(&reference, &args, &tar));
        (
            mounted_tree(&reference, &rid),
            sorted(&must(&reference, &["changes", &rid], b"")),
            edit_mapped_child(&reference, &rid),
        )
    };
    let on_vfs = expect(&oracle("vfs").unwrap());
    for kind in KINDS {
        let Some(s) = Store::new(kind) else { continue };
        let on_btrfs;
        let (want, want_changes, want_edit) = if kind == "btrfs" {
            on_btrfs = expect(&oracle(kind).unwrap());
            &on_btrfs
        } else {
            &on_vfs
        };
        let id = first_line(&s.ok_in(&args, &tar));
        assert_eq!(&s.tree_of(&id), want, "{kind}");
        // The tar holds container IDs again: the same bytes as imported.
        let diff = s.run(&["diff", "-u", &id], b"");
        assert!(diff.status.success(), "{kind}");
        assert!(diff.stdout == tar, "{kind}: diff differs from the import");
        assert_eq!(&sorted(&s.ok(&["changes", &id])), want_changes, "{kind}");
        // A child with other maps, diffed against its parent: nothing
        // changed, owners compare as container IDs.
        let child = first_line(&s.ok(&[
            "create-layer",
            "--uidmap",
            "0:500000:200000",
            "--gidmap",
            "0:700000:300000",
            &id,
        ]));
        assert_eq!(s.ok(&["changes", &child]), "", "{kind}");
        assert_eq!(s.ok(&["diffsize", &child]).trim(), "0", "{kind}");
        s.ok(&["delete-layer", &child]);
        assert_eq!(
            &edit_mapped_child(&|a, i| s.run(a, i), &id),
            want_edit,
            "{kind}"
        );
    }
}

/// A child of `parent` with the parent's maps, edited through its mount
/// (a file owned by container 3:4, a new directory owned by container
/// root, a chowned parent file): its changes and the owners in its diff.
fn edit_mapped_child(run: Run<'_>, parent: &str) -> Vec<String> {
    let child = first_line(&must(run, &["create-layer", parent], b""));
    let m = must(run, &["mount", &child], b"");
    let m = Path::new(m.trim());
    std::fs::write(m.join("new"), b"new\n").unwrap();
    std::os::unix::fs::lchown(m.join("new"), Some(100003), Some(300004)).unwrap();
    std::fs::create_dir(m.join("nd")).unwrap();
    std::os::unix::fs::lchown(m.join("nd"), Some(100000), Some(300000)).unwrap();
    std::os::unix::fs::lchown(m.join("f1"), Some(100005), Some(300001)).unwrap();
    must(run, &["unmount", &child], b"");
    let mut out = sorted(&must(run, &["changes", &child], b""));
    let diff = run(&["diff", "-u", &child], b"");
    assert!(diff.status.success());
    let mut owners = tar_owners(&diff.stdout);
    owners.sort();
    out.extend(owners);
    out.push(must(run, &["diffsize", &child], b""));
    out
}

#[test]
fn bad_maps_are_refused_naming_the_range() {
    let e = Env::new("vfs");
    for (flag, maps, range) in [
        ("--uidmap", "0:100000:10,5:200000:10", "5:200000:10"),
        ("--gidmap", "0:100000:10:20:100005:10", "20:100005:10"),
        ("--uidmap", "0:4294967295:1", "0:4294967295:1"),
        ("--uidmap", "0:4294967290:10", "0:4294967290:10"),
    ] {
        let o = e.strata(&["create-layer", flag, maps]);
        assert!(!o.status.success(), "{maps}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(range), "{maps}: {err}");
    }
    for maps in ["0:1:2:3", "0:1", "x:1:2"] {
        let o = e.strata(&["create-layer", "--uidmap", maps]);
        assert!(!o.status.success(), "{maps}");
        if have_reference() {
            let r = e.reference(&["create-layer", "--uidmap", maps]);
            assert!(!r.status.success(), "reference {maps}");
        }
    }
    assert_eq!(e.ok(&["layers"]), "", "nothing was made");
}

/// The strata-test user with subordinate ranges that scripts/deps.sh
/// makes; under CI its absence fails.
fn have_test_user() -> bool {
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    strata_testsupport::need(
        &strata_testsupport::current_test(),
        subuid.lines().any(|l| l.starts_with("strata-test:")),
        "no strata-test ranges in /etc/subuid (scripts/deps.sh makes them)",
    )
}

#[test]
fn privileged_map_flags_combine_as_the_reference() {
    if !is_root() || !have_reference() || !have_test_user() {
        return;
    }
    let cases: &[&[&str]] = &[
        &["--subuidmap", "strata-test", "--subgidmap", "strata-test"],
        &["--subuidmap", "strata-test"],
        &["--subgidmap", "strata-test"],
        &["--subuidmap", "strata-test", "--uidmap", "200000:5:5"],
        &["--subgidmap", "strata-test", "--hostuidmap"],
        &["--subuidmap", "strata-test", "--hostgidmap"],
        &["--subuidmap", "strata-test", "--hostuidmap"],
        &["--subgidmap", "strata-test", "--hostgidmap"],
        &["--hostuidmap", "--uidmap", "0:5:5"],
        &["--hostgidmap", "--gidmap", "0:5:5"],
        &["--subuidmap", "no-such-user", "--subgidmap", "strata-test"],
        &["--subuidmap", "strata-test", "--subgidmap", "no-such-group"],
        &[
            "--uidmap",
            "0:100000:3:3:200000:3",
            "--gidmap",
            "0:300000:6",
        ],
    ];
    let maps_of = |e: &Env| -> Vec<String> {
        let l = e.layers_json();
        l.as_array()
            .unwrap()
            .iter()
            .map(|l| format!("{} {}", l["uidmap"], l["gidmap"]))
            .collect()
    };
    let ours = Env::new("vfs");
    let theirs = Env::new("vfs");
    for args in cases {
        let mut a = vec!["create-layer"];
        a.extend_from_slice(args);
        let o = ours.strata(&a);
        let r = theirs.reference(&a);
        assert_eq!(o.status.success(), r.status.success(), "{args:?}");
        assert_eq!(maps_of(&ours), maps_of(&theirs), "{args:?}");
    }
    // Ranges in host-ID order, whatever their order in /etc/subuid.
    let first = &maps_of(&ours)[0];
    assert!(
        first.contains("\"container_id\":65536,\"host_id\":1100000"),
        "{first}"
    );
}

#[test]
fn privileged_layer_parent_owners_of_mapped_layers() {
    if !is_root() || !have_reference() {
        return;
    }
    // The reference keeps a mapped layer's maps on these (its overlay
    // drops them, with or without idmapped mounts, so it has no parent
    // owners to show there).
    for kind in ["vfs", "btrfs"] {
        let Some(s) = Store::new(kind) else { continue };
        let Some(r) = Store::new(kind) else { continue };
        for (store, tool) in [(&s, "strata"), (&r, "reference")] {
            let run = |a: &[&str], i: &[u8]| match tool {
                "strata" => store.run(a, i),
                _ => store.reference(a, i),
            };
            must(&run, &["create-layer", "--id", "p"], b"");
            let mut a = vec!["create-layer", "--id", "c"];
            a.extend_from_slice(&MAPS);
            a.push("p");
            must(&run, &a, b"");
            must(&run, &["mount", "c"], b"");
        }
        for args in [
            &["layer-parent-owners", "c"][..],
            &["layer-parent-owners", "-j", "c"],
        ] {
            let want = must(&|a, i| r.reference(a, i), args, b"");
            assert_eq!(s.ok(args), want, "{kind} {args:?}");
            assert!(want.contains("UIDs"), "{kind}: {want}");
        }
        s.ok(&["unmount", "c"]);
    }
}

#[test]
fn privileged_failed_shift_leaves_no_layer() {
    if !is_root() {
        return;
    }
    for kind in KINDS {
        let Some(s) = Store::new(kind) else { continue };
        // A mapped parent holding a file whose owner its maps do not
        // cover: a child with other maps cannot say who owns it.
        let mut a = vec!["create-layer"];
        a.extend_from_slice(&MAPS);
        let p = first_line(&s.ok(&a));
        let m = s.ok(&["mount", &p]);
        let f = Path::new(m.trim()).join("stray");
        std::fs::write(&f, b"x").unwrap();
        std::os::unix::fs::chown(&f, Some(7), Some(7)).unwrap();
        s.ok(&["unmount", &p]);
        let before = home_entries(&s);
        let o = s.run(
            &[
                "create-layer",
                "--uidmap",
                "0:300000:6",
                "--gidmap",
                "0:400000:6",
                &p,
            ],
            b"",
        );
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        if kind == "overlay" && o.status.success() {
            // Idmapped lowers re-own nothing: the stray file shows as the
            // overflow ID, as any unmapped ID does through the mount.
            let id = first_line(&String::from_utf8_lossy(&o.stdout));
            let m = s.ok(&["mount", &id]);
            let md = std::fs::symlink_metadata(Path::new(m.trim()).join("stray")).unwrap();
            assert_eq!((md.uid(), md.gid()), (65534, 65534));
            s.ok(&["unmount", &id]);
            continue;
        }
        assert!(!o.status.success(), "{kind}");
        assert!(
            err.contains("stray") && err.contains("uid 7"),
            "{kind}: {err}"
        );
        assert_eq!(s.ok(&["layers"]).lines().count(), 1, "{kind}: the parent");
        assert_eq!(home_entries(&s), before, "{kind}: leftovers");
    }
}

/// Everything two levels under the driver's home and its run root.
fn home_entries(s: &Store) -> Vec<String> {
    let driver = s.env.driver.clone();
    let mut out = Vec::new();
    for top in [s.env.graph().join(&driver), s.env.run_root().join(&driver)] {
        for e in std::fs::read_dir(&top).into_iter().flatten().flatten() {
            // The directory overlay stages idmapped lowers in (its
            // entries, if any, are listed).
            if e.file_name() != "staging" {
                out.push(e.path().display().to_string());
            }
            for e2 in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                out.push(e2.path().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn privileged_deleting_mapped_layers_leaves_nothing() {
    if !is_root() || !have_reference() {
        return;
    }
    for kind in KINDS {
        let Some(s) = Store::new(kind) else { continue };
        let base = first_line(&s.ok_in(&["import-layer"], &common::small_tar()));
        let before = home_entries(&s);
        let mut a = vec!["create-layer"];
        a.extend_from_slice(&MAPS);
        a.push(&base);
        let child = first_line(&s.ok(&a));
        let grand = first_line(&s.ok(&[
            "create-layer",
            "--uidmap",
            "0:300000:65536",
            "--gidmap",
            "0:400000:65536",
            &child,
        ]));
        s.ok(&["mount", &grand]);
        s.ok(&["mount", &child]);
        s.ok(&["delete-layer", &grand]);
        s.ok(&["delete-layer", &child]);
        assert_eq!(home_entries(&s), before, "{kind}");
        // The reference deletes strata's mapped layers as its own.
        let child = first_line(&s.ok(&a));
        s.ok(&["mount", &child]);
        s.ok(&["unmount", &child]);
        let o = s.reference(&["delete-layer", &child], b"");
        assert!(
            o.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(home_entries(&s), before, "{kind}: after the reference");
        assert_eq!(s.ok(&["layers"]).trim(), base, "{kind}");
    }
}
