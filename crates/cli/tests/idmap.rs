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

/// Everything two levels under the driver's home and its run root, but
/// the feature probes' cached answers (`idmapped-lower-dir-true`, …): the
/// first mount with ID maps probes idmapped lowers and records the answer.
fn home_entries(s: &Store) -> Vec<String> {
    let driver = s.env.driver.clone();
    let mut out = Vec::new();
    for top in [s.env.graph().join(&driver), s.env.run_root().join(&driver)] {
        for e in std::fs::read_dir(&top).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if top == s.env.run_root().join(&driver)
                && (name.ends_with("-true") || name.ends_with("-false"))
            {
                continue;
            }
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

/// A `security.capability` value as `v2|v3 permitted=… effective=…` (and
/// the root ID of a v3 one); `none` when absent.
fn capability_text(v: Option<Vec<u8>>) -> String {
    let Some(v) = v else {
        return "none".into();
    };
    let le = |at: usize| u32::from_le_bytes([v[at], v[at + 1], v[at + 2], v[at + 3]]);
    match (v.len(), v.get(3)) {
        (20, Some(&2)) => format!("v2 permitted={:#x} effective={}", le(4), le(0) & 1),
        (24, Some(&3)) => format!(
            "v3 permitted={:#x} effective={} rootid={}",
            le(4),
            le(0) & 1,
            le(20)
        ),
        _ => format!("malformed {v:02x?}"),
    }
}

/// A POSIX ACL xattr value as `getfacl -n` would list it, on one line
/// (`u::rw-,u:100001:r--,…`); `none` when absent.
fn acl_text(v: Option<Vec<u8>>) -> String {
    let Some(v) = v else {
        return "none".into();
    };
    assert!(
        v.len() >= 4 && (v.len() - 4).is_multiple_of(8),
        "ACL {v:02x?}"
    );
    assert_eq!(v[..4], 2u32.to_le_bytes(), "ACL version");
    let mut out = Vec::new();
    for e in v[4..].chunks(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let (t, named) = match tag {
            0x01 => ("u", false),
            0x02 => ("u", true),
            0x04 => ("g", false),
            0x08 => ("g", true),
            0x10 => ("m", false),
            0x20 => ("o", false),
            _ => ("?", true),
        };
        let rwx: String = [(4, 'r'), (2, 'w'), (1, 'x')]
            .iter()
            .map(|&(b, c)| if perm & b != 0 { c } else { '-' })
            .collect();
        let id = if named { id.to_string() } else { String::new() };
        out.push(format!("{t}:{id}:{rwx}"));
    }
    out.join(",")
}

/// An xattr of `p` (not following a symlink), as a root reader in the
/// initial user namespace gets it.
fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut v = vec![0u8; 256];
    match rustix::fs::lgetxattr(p, name, &mut v[..]) {
        Ok(n) => {
            v.truncate(n);
            Some(v)
        }
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("{}: {name}: {e}", p.display()),
    }
}

/// What a shift must keep of [`idmap_support::xattrs_tar`]'s entries under
/// `root`, as root on the host reads them: capabilities, ACLs, and
/// whether the hard link pair is one inode with two names.
fn shift_facts(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in ["cap2", "cap3", "cap3u", "capov"] {
        let v = xattr(&root.join(f), "security.capability");
        out.push(format!("/{f} {}", capability_text(v)));
    }
    for (f, which) in [("acl", "access"), ("acld", "access"), ("acld", "default")] {
        let v = xattr(&root.join(f), &format!("system.posix_acl_{which}"));
        out.push(format!("/{f} {which} {}", acl_text(v)));
    }
    let (h1, h2) = (
        std::fs::symlink_metadata(root.join("h1")).unwrap(),
        std::fs::symlink_metadata(root.join("h2")).unwrap(),
    );
    out.push(format!(
        "/h1 /h2 one inode: {}, links {}",
        (h1.dev(), h1.ino()) == (h2.dev(), h2.ino()),
        h1.nlink()
    ));
    out
}

/// [`shift_facts`] as they must read: `cap0` for the capabilities whose
/// root is container root (v2, and v3 with root ID 0), `rootid` for the v3
/// capabilities whose root ID was 3, `acl` the ACLs' named user and group
/// (`None`: no ACL).
fn expected_facts(cap0: &str, rootid: u32, acl: Option<(u32, u32)>) -> Vec<String> {
    let acl = match acl {
        Some((u, g)) => format!("u::rw-,u:{u}:r--,g::r--,g:{g}:r--,m::rw-,o::r--"),
        None => "none".into(),
    };
    vec![
        format!("/cap2 {cap0}"),
        format!("/cap3 {cap0}"),
        format!("/cap3u v3 permitted=0x400 effective=1 rootid={rootid}"),
        format!("/capov v3 permitted=0x400 effective=1 rootid={rootid}"),
        format!("/acl access {acl}"),
        format!("/acld access {acl}"),
        format!("/acld default {acl}"),
        "/h1 /h2 one inode: true, links 2".into(),
    ]
}

const V2: &str = "v2 permitted=0x400 effective=1";

/// [`tree`](idmap_support::tree) without the root's line (a copy's root
/// on disk is not the mount's root).
fn tree_below_root(root: &Path) -> Vec<String> {
    let mut t = idmap_support::tree(root);
    t.retain(|l| !l.starts_with("/ "));
    t
}

/// Issue 12: a child with other maps over a host-mapped layer keeps hard
/// links (one inode, one chown), set-uid/set-gid bits, file capabilities
/// (the root ID of a v3 one moved to the new maps), ACLs (their user and
/// group IDs moved) and never follows a symlink, on every driver, both
/// through the mount and in what the driver writes to disk.
///
/// How the kernel shows capabilities to a reader who is root on the host
/// (`cap_inode_getsecurity`): a v3 capability whose root ID is 0 is the
/// same capability as a v2 one (root of the initial namespace) and is read
/// as v2 — so a walk that reads it gets v2 and keeps v2 (as written by
/// the import, it is 24 bytes on disk, and 20 once re-owned; either means
/// the same), and `cap3` reads as `cap2` does. A v3 capability whose root
/// ID is 3 reads as v3 with root ID 3 in the base, and the walk moves it to
/// 100003. Through an idmapped lower mount the kernel shifts the root of
/// every capability with the mount's map (container root 0 → 100000), so
/// through kernel overlay a v2 capability, and the v3 one rooted at 0,
/// read as v3 rooted at 100000 (README, "Differences"); nothing is
/// rewritten on disk there.
#[test]
fn privileged_shift_keeps_links_set_ids_capabilities_and_acls() {
    if !is_root() || !have_reference() {
        return;
    }
    let shifted_tree = |r: &Store, tool: &str, tar: &[u8]| -> (Vec<String>, Vec<String>) {
        let run = |a: &[&str], i: &[u8]| match tool {
            "strata" => r.run(a, i),
            _ => r.reference(a, i),
        };
        let base = first_line(&must(
            &run,
            &["import-layer", "--hostuidmap", "--hostgidmap"],
            tar,
        ));
        let mut a = vec!["create-layer"];
        a.extend_from_slice(&MAPS);
        a.push(&base);
        let child = first_line(&must(&run, &a, b""));
        let m = must(&run, &["mount", &child], b"");
        let m = Path::new(m.trim());
        let got = (idmap_support::tree(m), shift_facts(m));
        must(&run, &["unmount", &child], b"");
        got
    };
    // The reference, on the oracle stores (see `oracle`): the same owners,
    // modes and links; its vfs copy drops ACLs, its btrfs walk keeps them
    // with their IDs unmoved, and neither moves a v3 capability's root ID
    // (README, "Differences").
    let mut reference = std::collections::HashMap::new();
    for kind in ["vfs", "btrfs"] {
        let Some(r) = oracle(kind) else { continue };
        let victim = r.env.dir.path().join("victim");
        let tar = idmap_support::xattrs_tar(&victim, &victim);
        let (tree, facts) = shifted_tree(&r, "reference", &tar);
        let acl = (kind == "btrfs").then_some((1, 2));
        assert_eq!(facts, expected_facts(V2, 3, acl), "reference {kind}");
        reference.insert(kind, tree);
    }
    for kind in KINDS {
        let Some(s) = Store::new(kind) else { continue };
        // Symlinks out of the layer, to a file and a directory owned by
        // IDs the maps cover.
        let victim = s.env.dir.path().join("victim");
        let victim_dir = s.env.dir.path().join("victim_dir");
        std::fs::write(&victim, b"host\n").unwrap();
        std::fs::create_dir(&victim_dir).unwrap();
        std::fs::write(victim_dir.join("inner"), b"host\n").unwrap();
        std::os::unix::fs::chown(&victim, Some(1), Some(1)).unwrap();
        std::os::unix::fs::chown(&victim_dir, Some(3), Some(3)).unwrap();
        std::os::unix::fs::chown(victim_dir.join("inner"), Some(2), Some(2)).unwrap();
        let tar = idmap_support::xattrs_tar(&victim, &victim_dir);

        let base = first_line(&s.ok_in(&["import-layer", "--hostuidmap", "--hostgidmap"], &tar));
        let mut a = vec!["create-layer"];
        a.extend_from_slice(&MAPS);
        a.push(&base);
        let child = first_line(&s.ok(&a));
        let m = s.ok(&["mount", &child]);
        let m = Path::new(m.trim());
        let tree = idmap_support::tree(m);
        let facts = shift_facts(m);

        // Owners moved (0:100000:6 / 0:200000:6), set-ID bits kept, the
        // hard link one inode with two names, the symlinks re-owned.
        for line in [
            "/cap3 100000:200000 100755 1",
            "/capov 65534:65534 100755 1",
            "/acl 100001:200001 100664 1",
            "/suid 100002:200002 104755 1",
            "/sgid 100003:200003 102755 1",
            "/h1 100004:200004 100644 2",
            "/h2 100004:200004 100644 2",
            "/out 100005:200005 120777 1",
            "/outdir 100005:200005 120777 1",
        ] {
            assert!(
                tree.contains(&line.to_string()),
                "{kind}: {line}: {tree:#?}"
            );
        }
        let want_tree = if kind == "btrfs" {
            &reference["btrfs"]
        } else {
            &reference["vfs"]
        };
        assert_eq!(&tree, want_tree, "{kind}: owners, modes, links");
        let cap0 = if kind == "overlay" {
            "v3 permitted=0x400 effective=1 rootid=100000"
        } else {
            V2
        };
        assert_eq!(
            facts,
            expected_facts(cap0, 100003, Some((100001, 200002))),
            "{kind}: through the mount"
        );

        // What is on disk: the shifted copy where the driver makes one,
        // and the parent untouched.
        let graph = s.env.graph();
        let (child_disk, base_disk) = match kind {
            "vfs" => (
                graph.join("vfs/dir").join(&child),
                graph.join("vfs/dir").join(&base),
            ),
            "btrfs" => (
                graph.join("btrfs/subvolumes").join(&child),
                graph.join("btrfs/subvolumes").join(&base),
            ),
            _ => (
                graph.join("overlay").join(&child).join("diff1"),
                graph.join("overlay").join(&base).join("diff"),
            ),
        };
        if kind == "overlay" {
            // Idmapped lowers: no copy, an empty upper, and the parent's
            // files shifted only as the mount shows them.
            let layer = graph.join("overlay").join(&child);
            assert!(layer.join("idmapped-lowers").exists(), "{kind}");
            assert!(!child_disk.exists(), "{kind}: no copy");
            assert_eq!(std::fs::read_dir(layer.join("diff")).unwrap().count(), 0);
        } else {
            assert_eq!(
                tree_below_root(&child_disk),
                tree_below_root(m),
                "{kind}: on disk"
            );
            assert_eq!(shift_facts(&child_disk), facts, "{kind}: on disk");
        }
        assert_eq!(
            shift_facts(&base_disk),
            expected_facts(V2, 3, Some((1, 2))),
            "{kind}: the parent"
        );
        assert!(
            tree_below_root(&base_disk).contains(&"/suid 2:2 104755 1".to_string()),
            "{kind}: the parent"
        );
        s.ok(&["unmount", &child]);

        // The symlinks' targets were not touched.
        for (p, owner) in [
            (&victim, 1),
            (&victim_dir, 3),
            (&victim_dir.join("inner"), 2),
        ] {
            let md = std::fs::symlink_metadata(p).unwrap();
            assert_eq!((md.uid(), md.gid()), (owner, owner), "{kind}: {p:?}");
        }
    }
}
