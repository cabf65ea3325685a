//! ID-mapped layers (issue 12): a child created with maps other than its
//! parent's shows the parent's files re-owned, on every driver, as
//! containers-storage 1.43's vfs shows them (its overlay drops the maps of
//! such a layer when the kernel has idmapped mounts, so its vfs is the
//! oracle for the observable tree); imports into mapped layers and their
//! diffs map owners; bad maps and failed shifts leave nothing behind.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{first_line, have_reference, is_root, Env};

/// A layer tar whose members have owners inside and outside the maps the
/// tests use (0:100000:6 / 0:200000:6), set-ID bits, a hard link and
/// symlinks.
fn owners_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, (uid, gid): (u64, u64), mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_600_000_000);
        let data: &[u8] = if kind == tar::EntryType::Regular {
            b"data\n"
        } else {
            b""
        };
        h.set_size(data.len() as u64);
        match kind {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let (name, target) = path.split_once("->").unwrap();
                b.append_link(&mut h, name, target).unwrap();
            }
            _ => b.append_data(&mut h, path, data).unwrap(),
        }
    };
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    add("d/", Directory, (2, 3), 0o755);
    add("d/h", Regular, (4, 4), 0o644);
    add("d/h2->d/h", Link, (4, 4), 0o644);
    add("f0", Regular, (0, 0), 0o644);
    add("f1", Regular, (1, 1), 0o644);
    add("f5", Regular, (5, 5), 0o640);
    add("f7", Regular, (7, 1), 0o644);
    add("big", Regular, (150000, 250000), 0o644);
    add("suid", Regular, (2, 2), 0o6755);
    add("sgid-dir/", Directory, (1, 5), 0o2775);
    add("sl->f1", Symlink, (3, 3), 0o777);
    add("abs->/etc/passwd", Symlink, (0, 0), 0o777);
    b.into_inner().unwrap()
}

/// Every entry under a mount: path, owner, mode, type and (for
/// non-directories: overlay does not keep directories' counts) link count.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let nlink = if m.is_dir() { 0 } else { m.nlink() };
        out.push(format!(
            "/{rel} {}:{} {:o} {nlink}",
            m.uid(),
            m.gid(),
            m.mode()
        ));
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out.sort();
    out
}

/// What a tool shows of a child created with `maps` on a host-owned layer
/// holding [`owners_tar`].
fn mapped_child(
    run: &dyn Fn(&[&str], &[u8]) -> std::process::Output,
    maps: &[&str],
) -> Vec<String> {
    let ok = |args: &[&str], input: &[u8]| {
        let o = run(args, input);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let base = first_line(&ok(
        &["import-layer", "--hostuidmap", "--hostgidmap"],
        &owners_tar(),
    ));
    let mut args = vec!["create-layer"];
    args.extend_from_slice(maps);
    args.push(&base);
    let child = first_line(&ok(&args, b""));
    let mnt = ok(&["mount", &child], b"");
    let t = tree(Path::new(mnt.trim()));
    ok(&["unmount", &child], b"");
    t
}

/// A driver, extra options and an environment variable to run it with.
type Case<'a> = (&'a str, &'a [&'a str], Option<(&'a str, &'a str)>);

const MAPS: [&str; 4] = ["--uidmap", "0:100000:6", "--gidmap", "0:200000:6"];

#[test]
fn privileged_mapped_child_matches_the_reference_on_every_driver() {
    if !is_root() || !have_reference() {
        return;
    }
    let r = Env::new("vfs");
    let want = mapped_child(&|a, i| r.reference_in(a, i), &MAPS);
    // Spot checks of the facts the table rests on.
    assert!(
        want.contains(&"/f1 100001:200001 100644 1".to_string()),
        "{want:#?}"
    );
    assert!(
        want.iter().any(|l| l.starts_with("/f7 65534:200001 ")),
        "{want:#?}"
    );
    assert!(
        want.iter()
            .any(|l| l.starts_with("/suid 100002:200002 106755 ")),
        "{want:#?}"
    );
    assert!(
        want.iter().any(|l| l.starts_with("/ 0:0 40555 ")),
        "{want:#?}"
    );
    // (driver, extra options, environment): overlay with idmapped lowers,
    // overlay with a shifted copy, fuse-overlayfs.
    let cases: [Case; 4] = [
        ("vfs", &[], None),
        ("overlay", &[], None),
        (
            "overlay",
            &[],
            Some(("_CONTAINERS_OVERLAY_DISABLE_IDMAP", "yes")),
        ),
        (
            "overlay",
            &[
                "--storage-opt",
                "overlay.mount_program=/usr/bin/fuse-overlayfs",
            ],
            None,
        ),
    ];
    for (driver, extra, env) in cases {
        let e = Env::new(driver);
        let run = |a: &[&str], i: &[u8]| {
            let mut args: Vec<&str> = extra.to_vec();
            args.extend_from_slice(a);
            let mut c = e.strata_command(&args);
            if let Some((k, v)) = env {
                c.env(k, v);
            }
            common::run(c, i)
        };
        let got = mapped_child(&run, &MAPS);
        assert_eq!(got, want, "{driver} {extra:?} {env:?}");
        e.ok(&["shutdown", "-f"]);
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
    let r = Env::new("vfs");
    let mut args = vec!["import-layer"];
    args.extend_from_slice(&maps);
    let rid = first_line(&String::from_utf8(r.reference_in(&args, &tar).stdout).unwrap());
    let rm = r.ref_ok(&["mount", &rid]);
    let want = tree(Path::new(rm.trim()));
    r.ref_ok(&["unmount", &rid]);
    let sorted = |t: String| {
        let mut v: Vec<String> = t.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    let want_changes = sorted(r.ref_ok(&["changes", &rid]));
    for driver in ["vfs", "overlay"] {
        let e = Env::new(driver);
        let id = first_line(&e.ok_in(&args, &tar));
        let m = e.ok(&["mount", &id]);
        assert_eq!(tree(Path::new(m.trim())), want, "{driver}");
        e.ok(&["unmount", &id]);
        // The tar holds container IDs again: the same bytes as imported.
        let diff = e.strata(&["diff", "-u", &id]);
        assert!(diff.status.success());
        assert!(diff.stdout == tar, "{driver}: diff differs from the import");
        assert_eq!(sorted(e.ok(&["changes", &id])), want_changes, "{driver}");
        // A child with other maps, diffed against its parent: nothing
        // changed, owners compare as container IDs.
        let child = first_line(&e.ok(&[
            "create-layer",
            "--uidmap",
            "0:500000:200000",
            "--gidmap",
            "0:700000:300000",
            &id,
        ]));
        assert_eq!(e.ok(&["changes", &child]), "", "{driver}");
        assert_eq!(e.ok(&["diffsize", &child]).trim(), "0", "{driver}");
        e.ok(&["delete-layer", &child]);
        e.ok(&["delete-layer", &id]);
        e.ok(&["shutdown", "-f"]);
    }
}

#[test]
fn bad_maps_are_refused_naming_the_range() {
    let e = Env::new("vfs");
    for (flag, maps, range) in [
        ("--uidmap", "0:100000:10,5:200000:10", "5:200000:10"),
        ("--gidmap", "0:100000:10,20:100005:10", "20:100005:10"),
        ("--uidmap", "0:4294967295:1", "0:4294967295:1"),
        ("--uidmap", "0:4294967290:10", "0:4294967290:10"),
    ] {
        let o = e.strata(&["create-layer", flag, maps]);
        assert!(!o.status.success(), "{maps}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(range), "{maps}: {err}");
    }
    assert_eq!(e.ok(&["layers"]), "", "nothing was made");
}

#[test]
fn privileged_failed_shift_leaves_no_layer() {
    if !is_root() {
        return;
    }
    for driver in ["vfs", "overlay"] {
        let e = Env::new(driver);
        // A mapped parent holding a file whose owner its maps do not
        // cover: a child with other maps cannot say who owns it.
        let p = first_line(&e.ok(&[
            "create-layer",
            "--uidmap",
            "0:100000:6",
            "--gidmap",
            "0:200000:6",
        ]));
        let m = e.ok(&["mount", &p]);
        let f = Path::new(m.trim()).join("stray");
        std::fs::write(&f, b"x").unwrap();
        std::os::unix::fs::chown(&f, Some(7), Some(7)).unwrap();
        e.ok(&["unmount", &p]);
        let o = e.strata_command(&[
            "create-layer",
            "--uidmap",
            "0:300000:6",
            "--gidmap",
            "0:400000:6",
            &p,
        ]);
        let o = common::run(o, b"");
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        if driver == "overlay" && o.status.success() {
            // Idmapped lowers re-own nothing: the stray file shows as the
            // overflow ID, as any unmapped ID does through the mount.
            let id = first_line(&String::from_utf8_lossy(&o.stdout));
            let m = e.ok(&["mount", &id]);
            let md = std::fs::symlink_metadata(Path::new(m.trim()).join("stray")).unwrap();
            assert_eq!((md.uid(), md.gid()), (65534, 65534));
            e.ok(&["unmount", &id]);
        } else {
            assert!(!o.status.success(), "{driver}");
            assert!(
                err.contains("stray") && err.contains("uid 7"),
                "{driver}: {err}"
            );
            assert_eq!(
                e.ok(&["layers"]).lines().count(),
                1,
                "{driver}: only the parent"
            );
            let home = e.graph().join(driver);
            let leftovers: Vec<_> = walkdir_names(&home)
                .into_iter()
                .filter(|n| n.contains(".tmp-") || n.contains(".diff-idmap"))
                .collect();
            assert!(leftovers.is_empty(), "{driver}: {leftovers:?}");
        }
        e.ok(&["shutdown", "-f"]);
    }
}

/// Names of the entries two levels under `dir`.
fn walkdir_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push(e.path().display().to_string());
        for e2 in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
            out.push(e2.path().display().to_string());
        }
    }
    out
}
