//! Native diff of the overlay driver: changes, diff tar and diff size read
//! straight from a layer's upper directory (privileged_*).

use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use strata_driver::overlay::Overlay;
use strata_driver::{ChangeKind, CreateRequest, DiffRequest, Driver, InitOptions};
use strata_testsupport::{need, need_root as privileged, need_tool, Scratch};

/// A scratch dir (mounts detached on drop) and the driver in it, which
/// is cleaned up first.
struct Tmp(Scratch, Option<Overlay>);

impl Drop for Tmp {
    fn drop(&mut self) {
        if let Some(d) = self.1.take() {
            let _ = d.cleanup();
        }
    }
}

fn diff_dir(t: &Tmp, id: &str) -> PathBuf {
    t.0.path().join("root/overlay").join(id).join("diff")
}

fn tar_list(mut r: impl Read) -> Vec<String> {
    let mut child = Command::new("tar")
        .args(["-tf", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::copy(&mut r, &mut stdin).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let mut v: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .filter(|l| !l.is_empty() && l != ".")
        .collect();
    v.sort();
    v
}

#[test]
fn privileged_overlay_native_diff_from_upper() {
    if !privileged("privileged_overlay_native_diff_from_upper") {
        return;
    }
    let dir = Scratch::new("strata-ovld-");
    let d = Overlay::new(&InitOptions {
        home: dir.path().join("root/overlay"),
        run_root: dir.path().join("run/overlay"),
        ..Default::default()
    })
    .unwrap();
    let mut t = Tmp(dir, None);
    if !need(
        "privileged_overlay_native_diff_from_upper",
        d.features().native_diff,
        "native diff is unavailable here",
    ) {
        return;
    }
    for (id, parent) in [("base", None), ("child", Some("base"))] {
        d.create(&CreateRequest {
            id: id.into(),
            parent: parent.map(str::to_string),
            ..Default::default()
        })
        .unwrap();
    }
    let base = diff_dir(&t, "base");
    fs::write(base.join("keep"), "k").unwrap();
    fs::write(base.join("gone"), "g").unwrap();
    fs::create_dir(base.join("od")).unwrap();
    fs::write(base.join("od/old"), "o").unwrap();
    let child = diff_dir(&t, "child");
    fs::write(child.join("added"), "12345").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        child.join("gone"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    fs::create_dir(child.join("od")).unwrap();
    rustix::fs::setxattr(
        child.join("od"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let req = DiffRequest {
        id: "child".into(),
        parent: Some("base".into()),
        ..Default::default()
    };
    let changes = d.changes(&req).unwrap();
    let find = |p: &str| {
        changes
            .iter()
            .find(|c| c.path == p.as_bytes())
            .map(|c| c.kind)
    };
    assert_eq!(find("/added"), Some(ChangeKind::Add), "{changes:?}");
    assert_eq!(find("/gone"), Some(ChangeKind::Delete), "{changes:?}");
    assert!(find("/keep").is_none());
    let names = tar_list(d.diff(&req).unwrap());
    assert!(names.contains(&"added".to_string()), "{names:?}");
    assert!(names.contains(&".wh.gone".to_string()), "{names:?}");
    assert!(names.contains(&"od/.wh..wh..opq".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n == "keep"), "{names:?}");
    assert_eq!(d.diff_size(&req).unwrap(), 5);
    // The base layer's diff is everything in it.
    let base_req = DiffRequest {
        id: "base".into(),
        ..Default::default()
    };
    let names = tar_list(d.diff(&base_req).unwrap());
    assert_eq!(names, ["gone", "keep", "od", "od/old"]);
    t.1 = Some(d);
}

#[test]
fn privileged_overlay_apply_overlay_form_with_force_mask() {
    let test = "privileged_overlay_apply_overlay_form_with_force_mask";
    if !privileged(test) || !need_tool(test, "/usr/bin/fuse-overlayfs") {
        return;
    }
    let dir = Scratch::new("strata-ovla-");
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/f"), "data").unwrap();
    fs::write(src.join(".wh.gone"), "").unwrap();
    let tar = dir.path().join("l.tar");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&src)
        .args(["--owner=1000", "--group=1000", "-cf"])
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    let d = Overlay::new(&InitOptions {
        home: dir.path().join("root/overlay"),
        run_root: dir.path().join("run/overlay"),
        // force_mask needs a mount program (which reads the real owner and
        // mode back from the xattr).
        driver_options: vec![
            "overlay.force_mask=700".into(),
            "overlay.mount_program=/usr/bin/fuse-overlayfs".into(),
        ],
        ..Default::default()
    })
    .unwrap();
    let mut t = Tmp(dir, None);
    d.create(&CreateRequest {
        id: "layer".into(),
        ..Default::default()
    })
    .unwrap();
    let mut input = fs::File::open(&tar).unwrap();
    let report = d
        .apply_diff(
            strata_driver::LayerRef {
                id: "layer",
                parent: None,
            },
            &strata_driver::ApplyDiffOptions::default(),
            &mut input,
            None,
        )
        .unwrap();
    assert_eq!(report.uids, vec![1000]);
    let diff = diff_dir(&t, "layer");
    use std::os::unix::fs::MetadataExt;
    let md = fs::metadata(diff.join("d/f")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o700, "force_mask applied");
    let mut buf = [0u8; 64];
    let n = rustix::fs::lgetxattr(diff.join("d/f"), "user.containers.override_stat", &mut buf)
        .expect("real owner and mode kept in override_stat");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("1000:1000:"));
    // With a mount program the whiteout is stored in AUFS form.
    assert!(fs::symlink_metadata(diff.join(".wh.gone"))
        .unwrap()
        .is_file());
    assert!(fs::symlink_metadata(diff.join("gone")).is_err());
    t.1 = Some(d);
}
