//! Crash safety of images and containers: `strata` killed with SIGKILL at
//! random moments of create-image, create-container and delete-image.
//! After each kill both tools open the store and list the same, no layer is
//! left incomplete, no temporary file of an atomic write is left, every
//! listed image's layers and every listed container's image and layer
//! exist, and an image or container whose command was killed is either
//! whole or not listed.
//!
//! Trials: a third of `STRATA_CRASH_TRIALS` (default 30), at least 10.

mod common;
mod robust_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{have_reference, is_root, Env};
use robust_support::{kill_after, Rng};

fn trials() -> usize {
    let n: usize = std::env::var("STRATA_CRASH_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    (n / 3).max(10)
}

fn by_id(e: &Env, args: &[&str]) -> BTreeMap<String, serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&e.ok(args)).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

/// Checks the store after a kill; returns the images and containers listed.
fn check(e: &Env, when: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let layers = by_id(e, &["layers", "-j"]);
    let images = by_id(e, &["images", "-j"]);
    let containers = by_id(e, &["containers", "-j"]);
    let mut problems = Vec::new();
    for (id, l) in &layers {
        if l.get("flags").and_then(|f| f.get("incomplete")).is_some() {
            problems.push(format!("layer {id} incomplete"));
        }
    }
    for (id, i) in &images {
        let mut next = i["layer"].as_str().unwrap_or("").to_string();
        while !next.is_empty() {
            match layers.get(&next) {
                Some(l) => next = l["parent"].as_str().unwrap_or("").to_string(),
                None => {
                    problems.push(format!("image {id}: layer {next} missing"));
                    break;
                }
            }
        }
    }
    for (id, c) in &containers {
        let img = c["image"].as_str().unwrap_or("");
        if !img.is_empty() && !images.contains_key(img) {
            problems.push(format!("container {id}: image {img} missing"));
        }
        if !layers.contains_key(c["layer"].as_str().unwrap_or("")) {
            problems.push(format!("container {id}: layer {} missing", c["layer"]));
        }
    }
    for dir in ["images", "containers", "layers"] {
        let d = e.graph().join(format!("{}-{dir}", e.driver));
        for ent in std::fs::read_dir(&d).unwrap().flatten() {
            let n = ent.file_name().to_string_lossy().into_owned();
            if n.starts_with(".tmp-") {
                problems.push(format!("{}/{n} left", d.display()));
            }
        }
    }
    // The reference opens it too and lists the same.
    for args in [&["images"][..], &["containers"], &["layers"]] {
        let mine = e.ok(args);
        let o = e.reference(args);
        if !o.status.success() {
            problems.push(format!(
                "reference {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        } else if o.stdout != mine.as_bytes() {
            problems.push(format!(
                "{args:?}: strata {mine:?}, reference {:?}",
                String::from_utf8_lossy(&o.stdout)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "after {when}:\n{}",
        problems.join("\n")
    );
    (
        images.into_keys().collect(),
        containers.into_keys().collect(),
    )
}

fn records_crash(driver: &str) {
    let e = Env::new(driver);
    e.ok_in(&["import-layer", "--id", "base"], &common::small_tar());
    // An image on the base layer keeps it when the others go.
    e.ok(&["create-image", "-i", "keep", "base"]);
    let time = |args: &[&str]| {
        let t = Instant::now();
        e.ok(args);
        t.elapsed()
    };
    time(&["create-layer", "--id", "probe-l", "base"]);
    let create_image = time(&["create-image", "-i", "probe", "-n", "p", "probe-l"]);
    let create_container = time(&["create-container", "-i", "probe-c", "probe"]);
    e.ok(&["delete-container", "probe-c"]);
    let delete_image = time(&["delete-image", "-j", "probe"]);
    let mut rng = Rng::from_env("STRATA_CRASH_SEED");
    let mut delay = |t: Duration| Duration::from_micros(rng.below(t.as_micros() as u64 * 12 / 10));
    let mut killed = 0;
    let n = trials();
    for i in 0..n {
        let (layer, image, ctr, name) = (
            format!("l{i}"),
            format!("i{i}"),
            format!("c{i}"),
            format!("localhost/crash:{i}"),
        );
        e.ok(&["create-layer", "--id", &layer, "base"]);
        let args = ["create-image", "-i", &image, "-n", &name, &layer];
        killed += usize::from(kill_after(&e, &args, delay(create_image)));
        let (images, _) = check(&e, &format!("create-image {i}"));
        if images.contains(&image) {
            assert_eq!(
                e.ok(&["get-names", &image]),
                format!("{name}\n"),
                "image {image} half made"
            );
        } else {
            e.ok(&args);
        }
        let args = ["create-container", "-i", &ctr, &image];
        killed += usize::from(kill_after(&e, &args, delay(create_container)));
        let (_, containers) = check(&e, &format!("create-container {i}"));
        if containers.contains(&ctr) {
            let m = e.ok(&["mount", &ctr]);
            assert!(std::path::Path::new(m.trim_end()).join("etc/motd").exists());
            e.ok(&["unmount", &ctr]);
            e.ok(&["delete-container", &ctr]);
        }
        killed += usize::from(kill_after(
            &e,
            &["delete-image", &image],
            delay(delete_image),
        ));
        let (images, _) = check(&e, &format!("delete-image {i}"));
        if images.contains(&image) {
            e.ok(&["delete-image", "-j", &image]);
        }
        // Whatever the kill left of the image's own layer goes now.
        if e.strata(&["layer", &layer]).status.success() {
            e.ok(&["delete-layer", &layer]);
        }
        check(&e, &format!("cleanup {i}"));
    }
    let rest = e.ok(&["layers"]);
    assert!(rest.starts_with("base\n"), "{rest}");
    eprintln!("{driver}: {} trials, {killed} killed mid-run", n * 3);
}

#[test]
fn privileged_crash_records_vfs() {
    if is_root() && have_reference() {
        records_crash("vfs");
    }
}

#[test]
fn privileged_crash_records_overlay() {
    if is_root() && have_reference() {
        records_crash("overlay");
    }
}
