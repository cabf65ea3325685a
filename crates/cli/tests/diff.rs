//! import-layer, applydiff, diff, changes, diffsize: the records they
//! leave and the bytes they return.

mod common;

use common::{first_line, gzip, have_reference, is_root, small_tar, tar_listing, top_tar, Env};
use sha2::Digest;

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

fn import_and_diff_round_trip(driver: &str) {
    let e = Env::new(driver);
    let tar = small_tar();
    let base = first_line(&e.ok_in(&["import-layer", "-n", "base"], &tar));
    let v = e.layers_json();
    let rec = &v[0];
    assert_eq!(rec["id"], base.as_str());
    assert_eq!(rec["diff-digest"], sha(&tar));
    assert_eq!(rec["compressed-diff-digest"], sha(&tar));
    assert_eq!(rec["diff-size"], tar.len());
    assert_eq!(rec["compressed-size"], tar.len());
    assert!(rec.get("compression").is_none());
    assert_eq!(rec["uidset"], serde_json::json!([0]));
    assert_eq!(rec["gidset"], serde_json::json!([0]));
    let ts = e
        .graph()
        .join(format!("{driver}-layers/{base}.tar-split.gz"));
    assert_eq!(common::mode_of(&ts), 0o600);

    // diff replays the tar-split: the same bytes as imported.
    let out = e.strata(&["diff", "base"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == tar, "diff differs from the imported tar");
    let f = e.dir.path().join("out.tar");
    e.ok(&["diff", "-f", f.to_str().unwrap(), base.as_str()]);
    assert!(std::fs::read(&f).unwrap() == tar);

    // A gzip import: default diff is gzip, -u is the plain tar.
    let gz = gzip(&tar);
    let g = first_line(&e.ok_in(&["import-layer"], &gz));
    let v = e.layers_json();
    assert_eq!(v[1]["compression"], 2);
    assert_eq!(v[1]["compressed-diff-digest"], sha(&gz));
    assert_eq!(v[1]["diff-digest"], sha(&tar));
    let d = e.strata(&["diff", g.as_str()]).stdout;
    assert_eq!(&d[..2], &[0x1f, 0x8b]);
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&d[..]), &mut plain).unwrap();
    assert!(plain == tar);
    assert!(e.strata(&["diff", "-u", g.as_str()]).stdout == tar);
    for flag in ["-b", "--xz"] {
        let o = e.strata(&["diff", flag, "base"]);
        assert!(!o.status.success(), "{flag} is not supported");
        assert!(o.stdout.is_empty());
    }
    let c = e.strata(&["diff", "-c", "base"]).stdout;
    assert_eq!(&c[..2], &[0x1f, 0x8b]);
    // --file for import.
    let tf = e.dir.path().join("in.tar");
    std::fs::write(&tf, &tar).unwrap();
    let h = first_line(&e.ok(&["import-layer", "-f", tf.to_str().unwrap()]));
    assert!(e.strata(&["diff", h.as_str()]).stdout == tar);

    if have_reference() {
        let r = e.reference(&["diff", "-u", "base"]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert!(r.stdout == tar, "reference diff of strata's import differs");
    }
}

#[test]
fn vfs_import_and_diff_round_trip() {
    import_and_diff_round_trip("vfs");
}

#[test]
fn privileged_overlay_import_and_diff_round_trip() {
    if is_root() {
        import_and_diff_round_trip("overlay");
    }
}

fn sorted(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(str::to_string).collect();
    v.sort();
    v
}

fn sorted_list(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn changes_of_layers(driver: &str) {
    let e = Env::new(driver);
    e.ok_in(&["import-layer", "--id", "base"], &small_tar());
    e.ok_in(&["import-layer", "--id", "top", "base"], &top_tar());
    let want = [
        "Delete \"/etc/empty\"",
        "Modify \"/etc\"",
        "Modify \"/etc/motd\"",
        "Add \"/etc/new\"",
    ];
    assert_eq!(sorted(&e.ok(&["changes", "top"])), sorted_list(&want));
    e.ok(&["create-layer", "--id", "ctr", "top"]);
    let m = e.ok(&["mount", "ctr"]);
    let m = std::path::Path::new(m.trim_end());
    assert_eq!(
        std::fs::read_to_string(m.join("etc/motd")).unwrap(),
        "version 2\n"
    );
    assert!(!m.join("etc/empty").exists());
    std::fs::write(m.join("etc/added"), "added\n").unwrap();
    std::fs::remove_file(m.join("usr/bin/tool")).unwrap();
    std::fs::create_dir(m.join("newdir")).unwrap();
    e.ok(&["unmount", "ctr"]);
    let ch = sorted(&e.ok(&["changes", "ctr"]));
    for line in [
        "Modify \"/etc\"",
        "Add \"/etc/added\"",
        "Add \"/newdir\"",
        "Modify \"/usr/bin\"",
        "Delete \"/usr/bin/tool\"",
    ] {
        assert!(ch.iter().any(|c| c == line), "{line} missing from {ch:?}");
    }
    let j: serde_json::Value = serde_json::from_str(&e.ok(&["changes", "-j", "ctr"])).unwrap();
    assert!(
        j.as_array()
            .unwrap()
            .contains(&serde_json::json!({"Path": "/etc/added", "Kind": 1})),
        "{j}"
    );
    assert_eq!(e.ok(&["diffsize", "ctr"]), "6\n");
    assert_eq!(e.ok(&["diff-size", "ctr"]), "6\n");
    let d = e.strata(&["diff", "ctr"]).stdout;
    let names = tar_listing(&d);
    assert!(
        names.iter().any(|n| n.starts_with("etc/added ")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("usr/bin/.wh.tool ")),
        "{names:?}"
    );
    // Against another layer than the parent.
    let vs_base = e.ok(&["changes", "ctr", "base"]);
    assert!(vs_base.contains("Add \"/etc/new\"\n"), "{vs_base}");
    assert!(tar_listing(&e.strata(&["diff", "ctr", "base"]).stdout)
        .iter()
        .any(|n| n.starts_with("etc/new ")));

    if have_reference() {
        // The reference lists changes in directory order; compare as sets.
        for args in [
            &["changes", "ctr"][..],
            &["changes", "top"],
            &["changes", "ctr", "base"],
        ] {
            assert_eq!(sorted(&e.ref_ok(args)), sorted(&e.ok(args)), "{args:?}");
        }
        assert_eq!(e.ref_ok(&["diffsize", "ctr"]), e.ok(&["diffsize", "ctr"]));
        let r = e.reference(&["diff", "ctr"]);
        assert_eq!(tar_listing(&r.stdout), names);
    }
}

#[test]
fn vfs_changes_of_layers() {
    changes_of_layers("vfs");
}

/// On overlay the container layer's changes include the directories
/// copied up for a change below them, as the reference lists them.
#[test]
fn privileged_overlay_changes_of_layers() {
    if is_root() {
        changes_of_layers("overlay");
    }
}

fn apply_diff_and_failures(driver: &str) {
    let e = Env::new(driver);
    e.ok(&["create-layer", "--id", "empty"]);
    e.ok_in(&["applydiff", "empty"], &small_tar());
    let v = e.layers_json();
    assert_eq!(v[0]["diff-digest"], sha(&small_tar()));
    let m = e.ok(&["mount", "empty"]);
    assert!(std::path::Path::new(m.trim_end())
        .join("etc/motd")
        .is_file());
    e.ok(&["unmount", "empty"]);
    e.ok_in(&["apply-diff", "empty"], &top_tar());

    // A broken stream leaves no layer behind.
    let mut bad = small_tar();
    bad.truncate(700);
    let o = e.strata_in(&["import-layer", "--id", "broken"], &bad);
    assert!(!o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
    assert_eq!(e.ok(&["layers"]), "empty\n");
    let ts = e
        .graph()
        .join(format!("{driver}-layers/broken.tar-split.gz"));
    assert!(!ts.exists());
    let leftovers: Vec<_> = std::fs::read_dir(e.graph().join(format!("{driver}-layers")))
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("broken"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn vfs_apply_diff_and_failures() {
    apply_diff_and_failures("vfs");
}

#[test]
fn privileged_overlay_apply_diff_and_failures() {
    if is_root() {
        apply_diff_and_failures("overlay");
    }
}

/// A diff whose export stops half way (a file of the layer shrinks while it
/// is being read) fails: `strata diff` exits non-zero and says why instead
/// of writing a shorter tar that looks complete.
#[test]
fn privileged_overlay_diff_fails_when_the_export_stops_mid_stream() {
    use std::io::Read;
    if !is_root() {
        return;
    }
    let e = Env::new("overlay");
    let id = first_line(&e.ok(&["create-layer"]));
    let m = e.ok(&["mount", &id]);
    let m = std::path::Path::new(m.trim_end());
    let big = 32usize << 20;
    std::fs::write(m.join("big"), vec![7u8; big]).unwrap();
    std::fs::write(m.join("small"), b"after big").unwrap();
    e.ok(&["unmount", &id]);
    let upper = e.graph().join("overlay").join(&id).join("diff/big");

    let mut child = e
        .strata_under("env", &[], &["diff", "-u", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    // Once the export is under way and blocked on the unread pipe (a few
    // MiB in), the file it is reading shrinks.
    let mut head = vec![0u8; 1 << 16];
    out.read_exact(&mut head).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&upper)
        .unwrap()
        .set_len(0)
        .unwrap();
    let mut rest = Vec::new();
    out.read_to_end(&mut rest).unwrap();
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "diff succeeded with a short export");
    assert!(stderr.contains("ended after"), "{stderr}");
    assert!(head.len() + rest.len() < big, "a whole tar was written");
}
