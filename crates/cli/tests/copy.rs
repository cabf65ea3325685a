//! copy and layer-parent-owners: commands that work through a layer's
//! mount.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{have_reference, small_tar, Env};

fn layout(root: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            v.push(format!("{rel} {:o} {}:{}", md.mode(), md.uid(), md.gid()));
            if md.is_dir() {
                stack.push(p);
            }
        }
    }
    v.sort();
    v
}

/// Runs the same copies with `tool` in a fresh store and returns the tree
/// of the destination layer.
fn copies(tool: fn(&Env, &[&str], &[u8]) -> std::process::Output) -> Vec<String> {
    let e = Env::new("vfs");
    let src = e.dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/a"), "a").unwrap();
    std::fs::write(src.join("f"), "f").unwrap();
    let run = |args: &[&str]| {
        let o = tool(&e, args, b"");
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["import-layer", "--id", "src"]);
    let o = tool(&e, &["import-layer", "--id", "src2"], &small_tar());
    assert!(o.status.success());
    run(&["create-layer", "--id", "dst"]);
    let s = src.to_str().unwrap();
    let f = src.join("f");
    run(&["copy", s, "dst:/x"]);
    run(&["copy", "src2:/etc/motd", "dst:/m2"]);
    run(&["copy", "--chown", "5:6", f.to_str().unwrap(), "dst:/owned"]);
    run(&["copy", "src2:/etc", "dst:/etc2"]);
    let mp = e.run_root().join("vfs-layers/mountpoints.json");
    assert_eq!(
        std::fs::read_to_string(mp).unwrap(),
        "[]",
        "copy left mounts"
    );
    layout(&e.graph().join("vfs/dir/dst"))
}

#[test]
fn copy_into_a_layer() {
    let ours = copies(|e, a, i| e.strata_in(a, i));
    for want in [
        "x/sub/a 100644 0:0",
        "m2 100644 0:0",
        "owned 100644 5:6",
        "etc2/motd.link 120777 0:0",
    ] {
        assert!(ours.iter().any(|l| l == want), "{want} missing: {ours:#?}");
    }
    if have_reference() {
        let theirs = copies(|e, a, i| e.reference_in(a, i));
        assert_eq!(ours, theirs);
    }
}

#[test]
fn layer_parent_owners() {
    let e = Env::new("vfs");
    e.ok_in(&["import-layer", "--id", "p"], &small_tar());
    e.ok(&["create-layer", "--id", "plain", "p"]);
    e.ok(&[
        "create-layer",
        "--id",
        "c",
        "--uidmap",
        "0:100000:65536",
        "--gidmap",
        "0:200000:65536",
        "p",
    ]);
    assert_eq!(e.ok(&["layer-parent-owners", "plain"]), "ID: plain\n");
    assert_eq!(
        e.ok(&["layer-parent-owners", "-j", "plain"]),
        "{\"ID\":\"plain\",\"UIDs\":null,\"GIDs\":null}\n"
    );
    let o = e.strata(&["layer-parent-owners", "c"]);
    assert_eq!(o.status.code(), Some(1), "unmounted mapped layer must fail");
    e.ok(&["mount", "c"]);
    std::os::unix::fs::chown(e.graph().join("vfs/dir"), Some(1234), Some(4321)).unwrap();
    let got = e.ok(&["layer-parent-owners", "c"]);
    assert!(got.starts_with("ID: c\nUIDs: ["), "{got}");
    assert!(got.contains("1234") && got.contains("4321"), "{got}");
    if have_reference() {
        assert_eq!(e.ref_ok(&["layer-parent-owners", "c"]), got);
        assert_eq!(
            e.ref_ok(&["layer-parent-owners", "-j", "c"]),
            e.ok(&["layer-parent-owners", "-j", "c"])
        );
    }
    e.ok(&["unmount", "c"]);
}

/// Regression (issue 5): symlinks inside the destination layer never redirect
/// a copy onto the host (they resolve inside the layer; see copy_cli.rs), neither as a parent (`etc -> <victim>`) nor as the
/// destination itself (`f -> <victim>/file`).
#[test]
fn privileged_copy_does_not_follow_layer_symlinks() {
    if !common::is_root() {
        return;
    }
    let e = Env::new("vfs");
    let victim = e.dir.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("file"), "host").unwrap();
    e.ok(&["create-layer", "--id", "dst"]);
    let m = common::first_line(&e.ok(&["mount", "dst"]));
    let m = Path::new(&m);
    std::os::unix::fs::symlink(&victim, m.join("etc")).unwrap();
    std::os::unix::fs::symlink(victim.join("file"), m.join("f")).unwrap();
    e.ok(&["unmount", "dst"]);
    let src = e.dir.path().join("payload");
    std::fs::write(&src, "evil").unwrap();
    let s = src.to_str().unwrap();
    // `etc` resolves inside the layer, as in a chroot, where its target
    // does not exist: an error, and nothing lands on the host.
    let through_parent = e.strata(&["copy", s, "dst:/etc/new"]);
    assert!(
        !through_parent.status.success(),
        "copy through a dangling layer symlink succeeded"
    );
    let onto_link = e.strata(&["copy", s, "dst:/f"]);
    assert!(
        onto_link.status.success(),
        "{}",
        String::from_utf8_lossy(&onto_link.stderr)
    );
    // The host side is untouched: no new file, the old one keeps its content.
    let names: Vec<_> = std::fs::read_dir(&victim)
        .unwrap()
        .map(|d| d.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("file")]);
    assert_eq!(
        std::fs::read_to_string(victim.join("file")).unwrap(),
        "host"
    );
    // The layer's own /f is now the copied regular file.
    let m = common::first_line(&e.ok(&["mount", "dst"]));
    let f = Path::new(&m).join("f");
    assert!(!std::fs::symlink_metadata(&f)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(f).unwrap(), "evil");
    e.ok(&["unmount", "dst"]);
}
