//! `copy` into and out of ID-mapped layers (issue 12): owners go from the
//! source's maps through container IDs to the destination's, as
//! containers-storage 1.43 maps them, on every driver.

mod common;
mod idmap_support;
mod robust_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::{have_reference, is_root};
use idmap_support::{mounted_tree, must, Run, Store, KINDS, MAPS};

/// Layers `h` (host maps), `m` ([`MAPS`]) and `m2` (0:300000:10 /
/// 0:400000:10) with files owned inside and outside their maps, and a
/// host directory `hs` under `tmp`.
fn setup(run: Run<'_>, tmp: &Path) {
    let chown = |p: &Path, u: u32, g: u32| std::os::unix::fs::lchown(p, Some(u), Some(g)).unwrap();
    must(
        run,
        &["create-layer", "--id", "h", "--hostuidmap", "--hostgidmap"],
        b"",
    );
    let mut a = vec!["create-layer", "--id", "m"];
    a.extend_from_slice(&MAPS);
    must(run, &a, b"");
    must(
        run,
        &[
            "create-layer",
            "--id",
            "m2",
            "--uidmap",
            "0:300000:10",
            "--gidmap",
            "0:400000:10",
        ],
        b"",
    );
    let h = must(run, &["mount", "h"], b"");
    let h = Path::new(h.trim());
    std::fs::create_dir(h.join("src")).unwrap();
    std::fs::write(h.join("src/a"), b"a\n").unwrap();
    chown(&h.join("src/a"), 1, 2);
    std::fs::set_permissions(h.join("src/a"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::write(h.join("src/b"), b"b\n").unwrap();
    chown(&h.join("src/b"), 7, 7);
    must(run, &["unmount", "h"], b"");
    let m = must(run, &["mount", "m"], b"");
    let m = Path::new(m.trim());
    std::fs::write(m.join("in"), b"in\n").unwrap();
    chown(&m.join("in"), 100002, 200003);
    std::fs::write(m.join("out"), b"out\n").unwrap();
    chown(&m.join("out"), 7, 7);
    std::fs::create_dir(m.join("dd")).unwrap();
    chown(&m.join("dd"), 100001, 200001);
    std::fs::write(m.join("dd/z"), b"z\n").unwrap();
    chown(&m.join("dd/z"), 100004, 200004);
    std::fs::hard_link(m.join("dd/z"), m.join("dd/z2")).unwrap();
    must(run, &["unmount", "m"], b"");
    let hs = tmp.join("hs");
    if !hs.exists() {
        std::fs::create_dir_all(hs.join("sub")).unwrap();
        std::fs::set_permissions(&hs, std::fs::Permissions::from_mode(0o700)).unwrap();
        chown(&hs, 5, 5);
        chown(&hs.join("sub"), 6, 6);
        std::fs::set_permissions(hs.join("sub"), std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::write(hs.join("h"), b"h\n").unwrap();
        chown(&hs.join("h"), 3, 4);
    }
}

/// The copies, as `copy` arguments (`HS` stands for the host directory).
const COPIES: &[&[&str]] = &[
    &["h:/src/a", "m:/a1"],
    &["h:/src/b", "m:/b1"],
    &["m:/in", "h:/in"],
    &["m:/out", "h:/out"],
    &["m:/in", "m2:/in"],
    &["m:/dd", "m2:/dd"],
    &["m:/dd", "h:/dd"],
    &["HS", "m2:/hs"],
    &["HS/h", "m2:/h"],
    &["--chown", "1:2", "HS/h", "m2:/hc"],
    &["--chown", "1:2", "m:/in", "m2:/inc"],
    &["--chown", "1:2", "m:/out", "m2:/outc"],
    &["--chown", "7:7", "HS/h", "m2:/h7"],
];

/// Runs [`COPIES`] with a tool; returns which succeeded and the trees of
/// the three layers.
fn copies(run: Run<'_>, tmp: &Path) -> Vec<String> {
    setup(run, tmp);
    let hs = tmp.join("hs").display().to_string();
    let mut out = Vec::new();
    for c in COPIES {
        let mut args = vec!["copy".to_string()];
        args.extend(c.iter().map(|a| a.replace("HS", &hs)));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&args, b"");
        out.push(format!("{c:?} {}", o.status.success()));
    }
    for l in ["h", "m", "m2"] {
        out.push(format!("-- {l}"));
        out.extend(mounted_tree(run, l));
    }
    out
}

#[test]
fn privileged_copy_maps_owners_as_the_reference() {
    if !is_root() || !have_reference() {
        return;
    }
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let mut want: Option<Vec<String>> = None;
    for kind in KINDS {
        let Some(s) = Store::new(kind) else { continue };
        // The reference on vfs (btrfs on btrfs, whose layer roots differ).
        let oracle = if kind == "btrfs" || want.is_none() {
            let r = Store::new(if kind == "btrfs" { "btrfs" } else { "vfs" }).unwrap();
            let w = copies(&|a, i| r.reference(a, i), tmp.path());
            if kind != "btrfs" {
                want = Some(w.clone());
            }
            w
        } else {
            want.clone().unwrap()
        };
        let got = copies(&|a, i| s.run(a, i), tmp.path());
        assert_eq!(got, oracle, "{kind}");
    }
    let want = want.unwrap();
    for line in [
        "/a1 100001:200002 104755 1",
        "/in 2:3 100644 1",
        "/dd/z2 300004:400004 100644 2",
        "/hc 300001:400002 100644 1",
        "[\"h:/src/b\", \"m:/b1\"] false",
        "[\"m:/out\", \"h:/out\"] false",
    ] {
        assert!(want.contains(&line.to_string()), "{line}: {want:#?}");
    }
}

/// Where strata differs on purpose: a `--chown` owner is mapped for the
/// destination directory too (the reference writes it there unmapped), and
/// a v3 file capability's root ID moves with the owners (the reference
/// drops capabilities when it copies).
#[test]
fn privileged_copy_maps_chown_and_capability_root() {
    if !is_root() {
        return;
    }
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    for kind in KINDS {
        let Some(s) = Store::new(kind) else { continue };
        setup(&|a, i| s.run(a, i), tmp.path());
        let sub = tmp.path().join("hs/sub");
        s.ok(&["copy", "--chown", "1:2", sub.to_str().unwrap(), "m2:/subc"]);
        // cap_net_raw+ep, namespaced (v3) with root ID 3 (the kernel
        // stores a v3 capability with root ID 0 as v2).
        let f = tmp.path().join(format!("cap-{kind}"));
        std::fs::write(&f, b"cap\n").unwrap();
        let mut cap = (0x0300_0000u32 | 1).to_le_bytes().to_vec();
        cap.extend_from_slice(&(1u32 << 13).to_le_bytes());
        cap.extend_from_slice(&[0; 12]);
        cap.extend_from_slice(&3u32.to_le_bytes());
        rustix::fs::setxattr(
            &f,
            "security.capability",
            &cap,
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        s.ok(&["copy", f.to_str().unwrap(), "m:/cap"]);
        let m = s.ok(&["mount", "m2"]);
        let md = std::fs::metadata(Path::new(m.trim()).join("subc")).unwrap();
        assert_eq!((md.uid(), md.gid()), (300001, 400002), "{kind}");
        s.ok(&["unmount", "m2"]);
        let m = s.ok(&["mount", "m"]);
        let mut v = vec![0u8; 64];
        let n = rustix::fs::getxattr(
            Path::new(m.trim()).join("cap"),
            "security.capability",
            &mut v,
        )
        .unwrap();
        assert_eq!(n, 24, "{kind}");
        assert_eq!(v[20..24], 100003u32.to_le_bytes(), "{kind}: root ID");
        assert_eq!(v[..20], cap[..20], "{kind}");
        s.ok(&["unmount", "m"]);
    }
}
