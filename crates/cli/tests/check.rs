//! `strata check [-q] [-r [-f]] [-j]`: each kind of damage is found, named,
//! and repaired into a store that `check` finds clean, whose layers mount,
//! that keeps every intact layer, and that the reference reads.

mod common;

use std::path::PathBuf;

use common::{first_line, have_reference, is_root, small_tar, top_tar, Env};

/// A store with base ← child (imported) and a second, unrelated base.
struct Stack {
    e: Env,
    base: String,
    child: String,
    other: String,
}

fn stack(driver: &str) -> Stack {
    let e = Env::new(driver);
    let base = first_line(&e.ok_in(&["import-layer"], &small_tar()));
    let child = first_line(&e.ok_in(&["import-layer", &base], &top_tar()));
    let other = first_line(&e.ok_in(&["import-layer"], &top_tar()));
    Stack {
        e,
        base,
        child,
        other,
    }
}

fn layers_dir(e: &Env) -> PathBuf {
    e.graph().join(format!("{}-layers", e.driver))
}

/// A directory holding a layer's own files.
fn files(e: &Env, id: &str) -> PathBuf {
    match e.driver.as_str() {
        "overlay" => e.graph().join("overlay").join(id).join("diff"),
        _ => e.graph().join("vfs").join("dir").join(id),
    }
}

/// Runs `check` with `args`; returns (exit ok, stdout, stderr).
fn check(e: &Env, args: &[&str]) -> (bool, String, String) {
    let mut a = vec!["check"];
    a.extend_from_slice(args);
    let o = e.strata(&a);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn assert_clean(e: &Env) {
    let (ok, out, err) = check(e, &[]);
    assert!(ok && out.is_empty(), "not clean: {out}{err}");
}

/// Repairs, then: clean, the survivors are listed, each mounts (vfs: its
/// directory), and the reference reads the store when installed.
fn repair_and_verify(e: &Env, survivors: &[&str], gone: &[&str]) -> String {
    let (ok, out, err) = check(e, &["-r"]);
    assert!(ok, "repair failed: {out}{err}");
    assert_clean(e);
    let listed = e.ok(&["layers"]);
    for id in survivors {
        assert!(
            listed.contains(id),
            "intact layer {id} removed: {listed}\n{err}"
        );
        e.ok(&["mount", id]);
        e.ok(&["unmount", id]);
    }
    for id in gone {
        assert!(!listed.contains(id), "damaged layer {id} kept: {listed}");
    }
    if have_reference() {
        let r = e.reference(&["layers"]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    out
}

fn altered_content(driver: &str) {
    let s = stack(driver);
    assert_clean(&s.e);
    assert_eq!(check(&s.e, &["-j"]).1, "{}\n");
    // Same size, other bytes: only a full check sees it.
    let f = files(&s.e, &s.base).join("etc/motd");
    let len = std::fs::metadata(&f).unwrap().len() as usize;
    std::fs::write(&f, vec![b'x'; len]).unwrap();
    let (ok, out, err) = check(&s.e, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("layer {}:\n", s.base)), "{out}");
    assert!(
        out.contains("CRC-64 mismatch") && out.contains("etc/motd"),
        "{out}"
    );
    assert!(
        out.contains(&format!("depends on damaged layer {}", s.base)),
        "{out}"
    );
    assert!(
        err.contains("2 layer errors, 0 read-only layer errors"),
        "{err}"
    );
    assert!(check(&s.e, &["-q"]).0, "quick reads no content");
    // Another size: quick sees it too, and says so in JSON.
    std::fs::write(&f, b"longer than before\n").unwrap();
    let (ok, out, _) = check(&s.e, &["-q", "-j"]);
    assert!(!ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let msgs = v["layers"][&s.base].as_array().unwrap();
    assert!(msgs[0].as_str().unwrap().contains("etc/motd"), "{v}");
    repair_and_verify(&s.e, &[&s.other], &[&s.base, &s.child]);
}

#[test]
fn altered_content_vfs() {
    altered_content("vfs");
}

#[test]
fn privileged_altered_content_overlay() {
    if is_root() {
        altered_content("overlay");
    }
}

fn missing_pieces(driver: &str) {
    let s = stack(driver);
    // The child's data, the other's tar-split record.
    let child_home = match driver {
        "overlay" => s.e.graph().join("overlay").join(&s.child),
        _ => files(&s.e, &s.child),
    };
    std::fs::remove_dir_all(&child_home).unwrap();
    std::fs::remove_file(layers_dir(&s.e).join(format!("{}.tar-split.gz", s.other))).unwrap();
    let (ok, out, _) = check(&s.e, &["-q"]);
    assert!(!ok);
    assert!(
        out.contains(&format!("layer {}:\n layer data is missing", s.child)),
        "{out}"
    );
    assert!(
        out.contains(&format!("layer {}:\n tar-split record is missing", s.other)),
        "{out}"
    );
    repair_and_verify(&s.e, &[&s.base], &[&s.child, &s.other]);
}

#[test]
fn missing_pieces_vfs() {
    missing_pieces("vfs");
}

#[test]
fn privileged_missing_pieces_overlay() {
    if is_root() {
        missing_pieces("overlay");
    }
}

#[test]
fn truncated_tar_split_and_unnamed_data() {
    let s = stack("vfs");
    let ts = layers_dir(&s.e).join(format!("{}.tar-split.gz", s.other));
    let bytes = std::fs::read(&ts).unwrap();
    std::fs::write(&ts, &bytes[..bytes.len() / 2]).unwrap();
    let stray = files(&s.e, "stray");
    std::fs::create_dir(&stray).unwrap();
    // Where strata releases before vfs/tmp/ staged a layer.
    let old_staging = files(&s.e, ".tmp-half-0123456789abcdef");
    std::fs::create_dir_all(old_staging.join("etc")).unwrap();
    std::fs::write(layers_dir(&s.e).join("gone.tar-split.gz"), b"x").unwrap();
    let (ok, out, _) = check(&s.e, &["-q"]);
    assert!(!ok);
    assert!(out.contains("tar-split record is damaged"), "{out}");
    assert!(
        out.contains("layer stray:\n") && out.contains("named by no record"),
        "{out}"
    );
    assert!(out.contains("layer .tmp-half-0123456789abcdef:\n"), "{out}");
    assert!(out.contains("layer gone.tar-split.gz:\n"), "{out}");
    repair_and_verify(&s.e, &[&s.base, &s.child], &[&s.other]);
    assert!(!stray.exists());
    assert!(!old_staging.exists());
}

#[test]
fn damaged_records_are_moved_aside_and_intact_ones_kept() {
    let s = stack("vfs");
    let lj = layers_dir(&s.e).join("layers.json");
    let text = std::fs::read_to_string(&lj).unwrap();
    // Cut inside the third record: the first two still parse.
    let third = text.match_indices("{\"id\"").nth(2).unwrap().0;
    std::fs::write(&lj, &text[..third + 20]).unwrap();
    // A normal open refuses such a store; check reports it.
    assert!(!s.e.strata(&["layers"]).status.success());
    let (ok, out, _) = check(&s.e, &[]);
    assert!(!ok);
    assert!(
        out.contains("records damaged: unreadable after record 2"),
        "{out}"
    );
    assert!(out.contains("named by no record"), "{out}");
    let kept: Vec<String> =
        serde_json::from_str::<serde_json::Value>(&format!("{}]", &text[..third - 1]))
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_string())
            .collect();
    let lost = [&s.base, &s.child, &s.other]
        .into_iter()
        .find(|id| !kept.contains(id))
        .unwrap();
    let kept: Vec<&str> = kept.iter().map(String::as_str).collect();
    repair_and_verify(&s.e, &kept, &[lost]);
    let aside: Vec<_> = std::fs::read_dir(layers_dir(&s.e))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("layers.json.damaged-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        std::fs::read_to_string(aside[0].path()).unwrap(),
        &text[..third + 20]
    );
}

#[test]
fn incomplete_layer_is_reported_then_removed() {
    let s = stack("vfs");
    let lj = layers_dir(&s.e).join("layers.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&lj).unwrap()).unwrap();
    for l in v.as_array_mut().unwrap() {
        if l["id"] == s.other.as_str() {
            l["flags"] = serde_json::json!({"incomplete": true});
        }
    }
    std::fs::write(&lj, serde_json::to_vec(&v).unwrap()).unwrap();
    let (ok, out, _) = check(&s.e, &["-q"]);
    assert!(!ok && out.contains("layer is incomplete"), "{out}");
    repair_and_verify(&s.e, &[&s.base, &s.child], &[&s.other]);
}

#[test]
fn privileged_overlay_links_are_rebuilt() {
    if !is_root() {
        return;
    }
    let s = stack("overlay");
    let home = s.e.graph().join("overlay");
    let link = std::fs::read_to_string(home.join(&s.base).join("link")).unwrap();
    std::fs::remove_file(home.join("l").join(&link)).unwrap();
    std::fs::write(home.join(&s.child).join("lower"), b"").unwrap();
    std::fs::remove_file(home.join(&s.other).join("link")).unwrap();
    let (ok, out, _) = check(&s.e, &["-q"]);
    assert!(!ok);
    assert!(
        out.contains(&format!("l/{link} is missing or points elsewhere")),
        "{out}"
    );
    assert!(out.contains("lower file is empty"), "{out}");
    assert!(out.contains("link file is missing"), "{out}");
    let out = repair_and_verify(&s.e, &[&s.base, &s.child, &s.other], &[]);
    assert!(!out.is_empty());
    // The rebuilt lower names the base's link again.
    let lower = std::fs::read_to_string(home.join(&s.child).join("lower")).unwrap();
    let link = std::fs::read_to_string(home.join(&s.base).join("link")).unwrap();
    assert_eq!(lower, format!("l/{link}"));
}

#[test]
fn privileged_stale_mount_count_is_dropped() {
    if !is_root() {
        return;
    }
    let s = stack("overlay");
    let mj = s.e.run_root().join("overlay-layers/mountpoints.json");
    let path = s.e.graph().join("overlay").join(&s.base).join("merged");
    let rec = serde_json::json!([{"id": s.base, "path": path, "count": 2}]);
    std::fs::write(&mj, rec.to_string()).unwrap();
    let (ok, out, _) = check(&s.e, &["-q"]);
    assert!(!ok && out.contains("mount count 2 for"), "{out}");
    repair_and_verify(&s.e, &[&s.base, &s.child, &s.other], &[]);
    let left: serde_json::Value = serde_json::from_slice(&std::fs::read(&mj).unwrap()).unwrap();
    assert!(
        left.as_array()
            .unwrap()
            .iter()
            .all(|m| m["id"] != s.base.as_str()),
        "{left}"
    );
}

#[test]
fn reference_store_is_checked_and_repaired() {
    if !have_reference() {
        return;
    }
    let e = Env::new("vfs");
    let base = first_line(
        &String::from_utf8(e.reference_in(&["import-layer"], &small_tar()).stdout).unwrap(),
    );
    let child = first_line(
        &String::from_utf8(e.reference_in(&["import-layer", &base], &top_tar()).stdout).unwrap(),
    );
    let empty = first_line(&e.ref_ok(&["create-layer", &base]));
    assert_clean(&e);
    std::fs::remove_file(files(&e, &child).join("etc/new")).ok();
    std::fs::write(files(&e, &child).join("etc/new"), b"changed").unwrap();
    let (ok, out, _) = check(&e, &["-q"]);
    assert!(!ok && out.contains(&format!("layer {child}:")), "{out}");
    repair_and_verify(&e, &[&base, &empty], &[&child]);
}

#[test]
fn layer_kept_without_a_record_on_purpose_is_clean() {
    let e = Env::new("vfs");
    // A tar that names a file twice: strata keeps no tar-split for it.
    let mut b = tar::Builder::new(Vec::new());
    for data in [&b"one"[..], b"two"] {
        let mut h = tar::Header::new_ustar();
        h.set_path("f").unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    let id = first_line(&e.ok_in(&["import-layer"], &b.into_inner().unwrap()));
    assert!(!layers_dir(&e).join(format!("{id}.tar-split.gz")).exists());
    assert_clean(&e);
}

#[test]
fn images_and_containers_on_damaged_layers() {
    if !have_reference() {
        return;
    }
    // strata's CLI has no image commands yet: the reference makes them.
    let s = stack("vfs");
    let img = first_line(&s.e.ref_ok(&["create-image", &s.child]));
    let ctr = first_line(&s.e.ref_ok(&["create-container", &img]));
    let other_img = first_line(&s.e.ref_ok(&["create-image", &s.other]));
    std::fs::remove_dir_all(files(&s.e, &s.base)).unwrap();
    let (ok, out, err) = check(&s.e, &["-q"]);
    assert!(!ok);
    assert!(
        out.contains(&format!("image {img}:\n layer {} is damaged", s.child)),
        "{out}"
    );
    assert!(out.contains(&format!("container {ctr}:\n")), "{out}");
    assert!(
        err.contains("1 image errors") && err.contains("1 container errors"),
        "{err}"
    );
    // Without --force the container, its image and their layers stay.
    let (ok, _, err) = check(&s.e, &["-r"]);
    assert!(!ok, "{err}");
    assert!(s.e.reference(&["exists", "-c", &ctr]).status.success());
    // With --force they go; the unrelated image and its layer stay.
    let (ok, _, err) = check(&s.e, &["-r", "-f"]);
    assert!(ok, "{err}");
    assert_clean(&s.e);
    assert!(!s.e.reference(&["exists", "-c", &ctr]).status.success());
    assert!(!s.e.reference(&["exists", "-i", &img]).status.success());
    assert!(s
        .e
        .reference(&["exists", "-i", &other_img])
        .status
        .success());
    assert!(s.e.strata(&["exists", &s.other]).status.success());
}

/// A store the reference wrote (layers, images, a container), damaged as a
/// cut or a bad disk leaves it: `images.json` cut inside a record and the
/// container's layer gone. strata reads it, repairs it keeping every
/// intact item, and the reference reads the result.
#[test]
fn reference_store_with_images_and_containers_is_repaired() {
    if !have_reference() {
        return;
    }
    let s = stack("vfs");
    let e = &s.e;
    let img = first_line(&e.ref_ok(&["create-image", "-n", "kimg", &s.child]));
    let lost_img = first_line(&e.ref_ok(&["create-image", "-n", "kgone", &s.other]));
    let ctr = first_line(&e.ref_ok(&["create-container", "-n", "kctr", &img]));
    let ij = e.graph().join("vfs-images/images.json");
    let text = std::fs::read_to_string(&ij).unwrap();
    let at = text.find(&format!("{{\"id\":\"{lost_img}\"")).unwrap();
    assert!(text[..at].contains(&img), "records out of order: {text}");
    std::fs::write(&ij, &text[..at + 20]).unwrap();
    let cj = e.graph().join("vfs-containers/containers.json");
    let cjson: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cj).unwrap()).unwrap();
    let layer = cjson[0]["layer"].as_str().unwrap().to_string();
    std::fs::remove_dir_all(files(e, &layer)).unwrap();

    let (ok, out, err) = check(e, &[]);
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "image {}:\n records damaged: unreadable after record 1",
            ij.display()
        )),
        "{out}"
    );
    assert!(out.contains(&format!("container {ctr}:")), "{out}");
    assert!(err.contains("1 container errors"), "{err}");
    // Without --force the container stays, and check still fails.
    assert!(!check(e, &["-r"]).0);
    let (ok, out, err) = check(e, &["-r", "-f"]);
    assert!(ok, "repair failed: {out}{err}");
    assert_clean(e);
    let aside = std::fs::read_dir(e.graph().join("vfs-images"))
        .unwrap()
        .flatten()
        .filter(|f| {
            f.file_name()
                .to_string_lossy()
                .starts_with("images.json.damaged-")
        })
        .count();
    assert_eq!(aside, 1);
    // The reference reads the repaired store: what was intact is there.
    let images = e.ref_ok(&["images", "-q"]);
    assert_eq!(
        images.lines().collect::<Vec<_>>(),
        [img.as_str()],
        "{images}"
    );
    let containers = e.ref_ok(&["containers", "-j"]);
    assert!(!containers.contains(&ctr), "{containers}");
    let layers = e.ref_ok(&["layers", "-j"]);
    for id in [&s.base, &s.child, &s.other] {
        assert!(
            layers.contains(id.as_str()),
            "intact layer {id} lost: {layers}"
        );
    }
    assert!(!layers.contains(&layer), "{layers}");
    e.ref_ok(&["mount", &s.child]);
    e.ref_ok(&["unmount", &s.child]);
}

/// create-container cut after the container's record was written: its
/// layer is still flagged incomplete. Opening the store completes such a
/// layer; check names it and repair completes it too (no `--force`), so
/// the container stays.
#[test]
fn container_layer_left_incomplete_is_completed() {
    let e = Env::new("vfs");
    let base = first_line(&e.ok_in(&["import-layer"], &small_tar()));
    let img = first_line(&e.ok(&["create-image", "-n", "kimg", &base]));
    let ctr = first_line(&e.ok(&["create-container", "-n", "kctr", &img]));
    let cj = e.graph().join("vfs-containers/containers.json");
    let cjson: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cj).unwrap()).unwrap();
    let layer = cjson[0]["layer"].as_str().unwrap().to_string();
    let lj = layers_dir(&e).join("layers.json");
    let mut layers: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lj).unwrap()).unwrap();
    for l in layers.as_array_mut().unwrap() {
        if l["id"] == layer.as_str() {
            l["flags"] = serde_json::json!({"incomplete": true});
        }
    }
    std::fs::write(&lj, serde_json::to_vec(&layers).unwrap()).unwrap();
    let (ok, out, _) = check(&e, &[]);
    assert!(!ok);
    assert_eq!(
        out,
        format!(
            "layer {layer}:\n layer of container {ctr} is flagged incomplete (interrupted create or delete)\n"
        )
    );
    let (ok, _, err) = check(&e, &["-r"]);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("completed layer {layer} of a container")),
        "{err}"
    );
    assert_clean(&e);
    assert!(e.strata(&["exists", "-c", &ctr]).status.success());
    assert!(e.strata(&["exists", "-l", &layer]).status.success());
    if have_reference() {
        let r = e.ref_ok(&["containers", "-j"]);
        assert!(r.contains(&ctr), "{r}");
    }
}
