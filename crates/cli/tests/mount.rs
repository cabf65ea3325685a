//! mount, unmount/umount, mounted, shutdown, wipe: counts persisted in
//! mountpoints.json across processes.

mod common;

use common::{have_reference, is_root, Env};

fn mount_json(e: &Env) -> serde_json::Value {
    let p = e
        .run_root()
        .join(format!("{}-layers/mountpoints.json", e.driver));
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn counts(driver: &str) {
    let e = Env::new(driver);
    e.ok(&["create-layer", "--id", "base"]);
    e.ok(&["create-layer", "--id", "ctr", "base"]);
    let m1 = e.ok(&["mount", "ctr"]);
    let m2 = e.ok(&["mount", "ctr"]);
    assert_eq!(m1, m2);
    let path = m1.trim_end().to_string();
    assert!(std::path::Path::new(&path).is_dir());
    let mj = mount_json(&e);
    assert_eq!(
        mj,
        serde_json::json!([{"id": "ctr", "path": path, "count": 2}])
    );
    assert_eq!(e.ok(&["mounted", "ctr"]), "ctr mounted\n");
    assert_eq!(
        e.ok(&["mounted", "-j", "ctr"]),
        "ctr mounted\n[{\"id\":\"ctr\",\"error\":\"\"}]\n"
    );
    // Two mounts need two unmounts; only the last one says so.
    assert_eq!(e.ok(&["unmount", "ctr"]), "");
    assert_eq!(mount_json(&e)[0]["count"], 1);
    assert_eq!(e.ok(&["umount", "ctr"]), "ctr mountpoint unmounted\n");
    assert_eq!(mount_json(&e), serde_json::json!([]));
    assert_eq!(e.ok(&["mounted", "ctr"]), "");
    // --force drops all mounts at once.
    e.ok(&["mount", "ctr"]);
    e.ok(&["mount", "ctr"]);
    e.ok(&["mount", "ctr"]);
    assert_eq!(
        e.ok(&["unmount", "--force", "ctr"]),
        "ctr mountpoint unmounted\n"
    );
    assert_eq!(mount_json(&e), serde_json::json!([]));
    let j = e.ok(&["mount", "-j", "ctr"]);
    assert_eq!(
        j,
        format!("[{{\"id\":\"ctr\",\"mountpoint\":\"{path}\",\"error\":\"\"}}]\n")
    );
    // shutdown refuses while mounted, unless forced.
    let o = e.strata(&["shutdown"]);
    assert!(!o.status.success());
    e.ok(&["shutdown", "-f"]);
    assert_eq!(mount_json(&e), serde_json::json!([]));
    // Errors: unknown layers.
    let o = e.strata(&["mount", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
}

#[test]
fn vfs_counts() {
    counts("vfs");
}

#[test]
fn privileged_overlay_counts() {
    if is_root() {
        counts("overlay");
    }
}

#[test]
fn privileged_overlay_wipe_unmounts_and_delete_unmounts() {
    if !is_root() {
        return;
    }
    let e = Env::new("overlay");
    e.ok(&["create-layer", "--id", "base"]);
    e.ok(&["create-layer", "--id", "a", "base"]);
    e.ok(&["create-layer", "--id", "b", "base"]);
    let pa = e.ok(&["mount", "a"]).trim_end().to_string();
    e.ok(&["mount", "a"]);
    let pb = e.ok(&["mount", "b"]).trim_end().to_string();
    assert!(strata_store::is_mount_root(pa.as_ref()));
    e.ok(&["delete-layer", "a"]);
    assert!(
        !std::path::Path::new(&pa).exists(),
        "deleted layer still there"
    );
    e.ok(&["wipe"]);
    assert!(
        !strata_store::is_mount_root(pb.as_ref()),
        "wipe left {pb} mounted"
    );
    assert_eq!(e.ok(&["layers"]), "");
}

#[test]
fn privileged_overlay_mount_counts_shared_with_reference() {
    if !is_root() || !have_reference() {
        return;
    }
    let e = Env::new("overlay");
    e.ok(&["create-layer", "--id", "base"]);
    e.ok(&["create-layer", "--id", "ctr", "base"]);
    let p = e.ok(&["mount", "ctr"]);
    assert_eq!(e.ref_ok(&["mount", "ctr"]), p);
    assert_eq!(mount_json(&e)[0]["count"], 2);
    assert_eq!(e.ok(&["unmount", "ctr"]), "");
    assert_eq!(e.ref_ok(&["unmount", "ctr"]), "ctr mountpoint unmounted\n");
    assert!(!strata_store::is_mount_root(p.trim_end().as_ref()));
    e.ref_ok(&["mount", "ctr"]);
    assert_eq!(e.ok(&["mounted", "ctr"]), "ctr mounted\n");
    assert_eq!(e.ok(&["unmount", "ctr"]), "ctr mountpoint unmounted\n");
    assert_eq!(e.ref_ok(&["mounted", "ctr"]), "");
}
