//! Concurrency: 8 workers run 50 random operations each (one `strata`
//! process per operation) on one store: import, create, mount, write into
//! the mount, unmount, delete, set-names, set-metadata. Each worker works
//! on its own layers (children of a shared base) so the effect of every
//! successful operation is known; contention is on the store's files and
//! locks. Afterwards layers.json parses, every listed layer mounts and
//! diffs, each worker's successful operations are still in effect, mount
//! counts match the kernel's table and nothing stays mounted after
//! `shutdown`. A second run mixes 4 strata and 4 `containers-storage`
//! workers on one store. A third (also mixed) creates and deletes layers,
//! images, containers, image names and big data: afterwards every record
//! whose creation succeeded is there as its worker left it, nothing deleted
//! is, no record points at a missing layer, and both tools list the same.

mod common;
mod robust_support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{have_reference, is_root, Env, REFERENCE};
use robust_support::*;

const WORKERS: usize = 8;
const OPS: usize = 50;

/// The ID of worker `w`'s `n`th object. Fixed width, so that no ID is a
/// prefix of another: both tools resolve a key by unique ID prefix, and
/// look in the layer store before the image store (`add-names w1n1` would
/// name layer `w1n10` when no layer `w1n1` exists).
fn object_id(w: usize, n: usize) -> String {
    format!("w{w}n{n:02}")
}

/// What one worker believes about one of its layers.
#[derive(Debug, Default, Clone)]
struct Model {
    names: Vec<String>,
    metadata: Option<String>,
    mounts: u64,
    mount_path: Option<PathBuf>,
    files: Vec<String>,
    container: bool,
}

fn run(e: &Env, program: &str, args: &[&str], input: &[u8]) -> Option<String> {
    let o = if program == REFERENCE {
        e.reference_in(args, input)
    } else {
        e.strata_in(args, input)
    };
    if o.status.success() {
        Some(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        None
    }
}

fn worker(e: &Env, w: usize, program: &str, seed: u64) -> (BTreeMap<String, Model>, usize) {
    let mut rng = Rng(seed | 1);
    let mut layers: BTreeMap<String, Model> = BTreeMap::new();
    let tar = common::small_tar();
    let mut ok_ops = 0;
    for n in 0..OPS {
        let own: Vec<String> = layers.keys().cloned().collect();
        let pick = |rng: &mut Rng| own.get(rng.index(own.len())).cloned();
        let op = if own.is_empty() {
            rng.index(2)
        } else {
            rng.index(8)
        };
        let id = object_id(w, n);
        match op {
            0 => {
                if run(e, program, &["import-layer", "--id", &id, "base"], &tar).is_some() {
                    layers.insert(id, Model::default());
                    ok_ops += 1;
                }
            }
            1 => {
                if run(e, program, &["create-layer", "--id", &id, "base"], b"").is_some() {
                    layers.insert(
                        id,
                        Model {
                            container: true,
                            ..Default::default()
                        },
                    );
                    ok_ops += 1;
                }
            }
            2 => {
                let l = pick(&mut rng).unwrap();
                if let Some(out) = run(e, program, &["mount", &l], b"") {
                    let m = layers.get_mut(&l).unwrap();
                    m.mounts += 1;
                    m.mount_path = Some(PathBuf::from(out.trim()));
                    ok_ops += 1;
                }
            }
            3 => {
                // Write into a mounted container layer.
                let target = layers
                    .iter()
                    .find(|(_, m)| m.mounts > 0 && m.container)
                    .map(|(k, m)| (k.clone(), m.mount_path.clone().unwrap()));
                if let Some((l, p)) = target {
                    let f = format!("file{n}");
                    if std::fs::write(p.join(&f), f.as_bytes()).is_ok() {
                        layers.get_mut(&l).unwrap().files.push(f);
                        ok_ops += 1;
                    }
                }
            }
            4 => {
                let mounted: Vec<String> = layers
                    .iter()
                    .filter(|(_, m)| m.mounts > 0)
                    .map(|(k, _)| k.clone())
                    .collect();
                if let Some(l) = mounted.get(rng.index(mounted.len())) {
                    if run(e, program, &["unmount", l], b"").is_some() {
                        layers.get_mut(l).unwrap().mounts -= 1;
                        ok_ops += 1;
                    }
                }
            }
            5 => {
                let l = pick(&mut rng).unwrap();
                if run(e, program, &["delete-layer", &l], b"").is_some() {
                    layers.remove(&l);
                    ok_ops += 1;
                }
            }
            6 => {
                let l = pick(&mut rng).unwrap();
                let name = format!("name-w{w}-{n}");
                if run(e, program, &["set-names", "-n", &name, &l], b"").is_some() {
                    layers.get_mut(&l).unwrap().names = vec![name];
                    ok_ops += 1;
                }
            }
            _ => {
                let l = pick(&mut rng).unwrap();
                let md = format!("meta-w{w}-{n}");
                if run(e, program, &["set-metadata", "-m", &md, &l], b"").is_some() {
                    layers.get_mut(&l).unwrap().metadata = Some(md);
                    ok_ops += 1;
                }
            }
        }
    }
    (layers, ok_ops)
}

fn concurrent(driver: &str, programs: &[&'static str]) {
    let e = Env::new(driver);
    e.ok_in(&["import-layer", "--id", "base"], &common::small_tar());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    let results: Vec<(BTreeMap<String, Model>, usize)> = std::thread::scope(|s| {
        let hs: Vec<_> = programs
            .iter()
            .enumerate()
            .map(|(w, p)| {
                let e = &e;
                s.spawn(move || worker(e, w, p, seed.wrapping_add(w as u64 * 7919)))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total_ok: usize = results.iter().map(|r| r.1).sum();
    let refs = programs.iter().filter(|p| **p == REFERENCE).count();
    eprintln!(
        "{driver}: {} strata + {refs} reference workers: {} operations, {total_ok} succeeded",
        programs.len() - refs,
        programs.len() * OPS
    );
    let v = e.layers_json();
    let listed: BTreeMap<String, &serde_json::Value> = v
        .as_array()
        .expect("layers.json is an array")
        .iter()
        .map(|l| (l["id"].as_str().unwrap().to_string(), l))
        .collect();
    let mp = e
        .run_root()
        .join(format!("{driver}-layers/mountpoints.json"));
    let mounts: serde_json::Value = serde_json::from_slice(&std::fs::read(&mp).unwrap()).unwrap();
    let count_of = |id: &str| {
        mounts
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .and_then(|m| m["count"].as_u64())
            .unwrap_or(0)
    };
    let mut problems = Vec::new();
    let mut expected_ids = vec!["base".to_string()];
    for (layers, _) in &results {
        for (id, m) in layers {
            expected_ids.push(id.clone());
            let Some(rec) = listed.get(id) else {
                problems.push(format!("{id} vanished"));
                continue;
            };
            let names: Vec<String> = rec["names"]
                .as_array()
                .map(|a| a.iter().map(|n| n.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            if names != m.names {
                problems.push(format!("{id}: names {names:?}, want {:?}", m.names));
            }
            if let Some(md) = &m.metadata {
                if rec["metadata"].as_str() != Some(md) {
                    problems.push(format!("{id}: metadata {}, want {md}", rec["metadata"]));
                }
            }
            if count_of(id) != m.mounts {
                problems.push(format!(
                    "{id}: mount count {}, want {}",
                    count_of(id),
                    m.mounts
                ));
            }
            let dir = layer_dir(&e.graph(), driver, id);
            for f in &m.files {
                if !dir.join(f).exists() {
                    problems.push(format!("{id}: written {f} gone"));
                }
            }
        }
    }
    for id in listed.keys() {
        if !expected_ids.contains(id) {
            problems.push(format!(
                "{id} listed but its worker deleted it (or never made it)"
            ));
        }
    }
    // Mount counts vs the kernel.
    if driver == "overlay" {
        let home = e.graph().join("overlay").to_string_lossy().into_owned();
        let real: Vec<String> = mounts_under(&e.graph())
            .into_iter()
            .filter(|p| *p != home)
            .collect();
        let recorded: Vec<String> = mounts
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["count"].as_u64().unwrap_or(0) > 0)
            .map(|m| m["path"].as_str().unwrap().to_string())
            .collect();
        for p in &real {
            if !recorded.contains(p) {
                problems.push(format!("mounted without a record: {p}"));
            }
        }
        for p in &recorded {
            if !real.contains(p) {
                problems.push(format!("recorded but not mounted: {p}"));
            }
        }
    }
    // Every listed layer mounts and diffs.
    for id in listed.keys() {
        let o = e.strata(&["mount", id]);
        if !o.status.success() {
            problems.push(format!(
                "{id}: mount: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
            continue;
        }
        e.ok(&["unmount", id]);
        let o = e.strata(&["diff", "-u", id]);
        if !o.status.success() {
            problems.push(format!(
                "{id}: diff: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    let o = e.strata(&["shutdown", "--force"]);
    if !o.status.success() {
        problems.push(format!("shutdown: {}", String::from_utf8_lossy(&o.stderr)));
    }
    let left = mounts_under(e.dir.path());
    if !left.is_empty() {
        problems.push(format!("mounts left after shutdown: {left:?}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn privileged_concurrency_overlay() {
    if is_root() {
        concurrent("overlay", &[env!("CARGO_BIN_EXE_strata"); WORKERS]);
    }
}

#[test]
fn privileged_concurrency_vfs() {
    if is_root() {
        concurrent("vfs", &[env!("CARGO_BIN_EXE_strata"); WORKERS]);
    }
}

fn mixed() -> [&'static str; WORKERS] {
    let s = env!("CARGO_BIN_EXE_strata");
    [s, REFERENCE, s, REFERENCE, s, REFERENCE, s, REFERENCE]
}

#[test]
fn privileged_concurrency_mixed_overlay() {
    if is_root() && have_reference() {
        concurrent("overlay", &mixed());
    }
}

#[test]
fn privileged_concurrency_mixed_vfs() {
    if is_root() && have_reference() {
        concurrent("vfs", &mixed());
    }
}

/// What one worker believes about its images and containers.
#[derive(Debug, Default)]
struct Records {
    /// Image ID → (its names, its big-data keys, its top layer).
    images: BTreeMap<String, (Vec<String>, Vec<String>, String)>,
    /// Container ID → its image.
    containers: BTreeMap<String, String>,
    /// Layers of the worker's own, not yet deleted.
    layers: Vec<String>,
}

/// One worker of the image/container run: layers, images on them,
/// containers on its images or the shared one, names, big data, and
/// deletes of each, every operation a process of `program`.
fn record_worker(e: &Env, w: usize, program: &str, seed: u64) -> (Records, usize) {
    let mut rng = Rng(seed | 1);
    let mut m = Records::default();
    let mut ok_ops = 0;
    for n in 0..OPS {
        let id = object_id(w, n);
        let images: Vec<String> = m.images.keys().cloned().collect();
        let free_layers: Vec<String> = m
            .layers
            .iter()
            .filter(|l| !m.images.values().any(|i| &i.2 == *l))
            .cloned()
            .collect();
        match rng.index(8) {
            0 | 1 => {
                if run(e, program, &["create-layer", "-i", &id, "base"], b"").is_some() {
                    m.layers.push(id);
                    ok_ops += 1;
                }
            }
            2 => {
                let Some(top) = free_layers.first() else {
                    continue;
                };
                let name = format!("localhost/w{w}:{n}");
                if run(
                    e,
                    program,
                    &["create-image", "-i", &id, "-n", &name, top],
                    b"",
                )
                .is_some()
                {
                    m.images.insert(id, (vec![name], Vec::new(), top.clone()));
                    ok_ops += 1;
                }
            }
            3 => {
                let image = match images.get(rng.index(images.len() + 1)) {
                    Some(i) => i.clone(),
                    None => "shared".to_string(),
                };
                if run(e, program, &["create-container", "-i", &id, &image], b"").is_some() {
                    m.containers.insert(id, image);
                    ok_ops += 1;
                }
            }
            4 => {
                let ids: Vec<String> = m.containers.keys().cloned().collect();
                let Some(c) = ids.get(rng.index(ids.len())) else {
                    continue;
                };
                if run(e, program, &["delete-container", c], b"").is_some() {
                    m.containers.remove(c);
                    ok_ops += 1;
                }
            }
            5 => {
                let Some(i) = images.get(rng.index(images.len())) else {
                    continue;
                };
                let used = m.containers.values().any(|c| c == i);
                let done = run(e, program, &["delete-image", i], b"").is_some();
                assert!(
                    !(done && used),
                    "{program} deleted image {i} a container uses"
                );
                if done {
                    let (_, _, top) = m.images.remove(i).unwrap();
                    m.layers.retain(|l| *l != top);
                    ok_ops += 1;
                }
            }
            6 => {
                let Some(i) = images.get(rng.index(images.len())) else {
                    continue;
                };
                let key = format!("k{n}");
                if run(e, program, &["set-image-data", i, &key], key.as_bytes()).is_some() {
                    m.images.get_mut(i).unwrap().1.push(key);
                    ok_ops += 1;
                }
            }
            _ => {
                let Some(i) = images.get(rng.index(images.len())) else {
                    continue;
                };
                let name = format!("localhost/w{w}-extra:{n}");
                if run(e, program, &["add-names", "-n", &name, i], b"").is_some() {
                    m.images.get_mut(i).unwrap().0.push(name);
                    ok_ops += 1;
                }
            }
        }
    }
    (m, ok_ops)
}

fn records_concurrent(driver: &str, programs: &[&'static str]) {
    let e = Env::new(driver);
    e.ok_in(&["import-layer", "--id", "base"], &common::small_tar());
    e.ok(&["create-image", "-i", "shared", "base"]);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    let results: Vec<(Records, usize)> = std::thread::scope(|s| {
        let hs: Vec<_> = programs
            .iter()
            .enumerate()
            .map(|(w, p)| {
                let e = &e;
                s.spawn(move || record_worker(e, w, p, seed.wrapping_add(w as u64 * 104729)))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total: usize = results.iter().map(|r| r.1).sum();
    eprintln!(
        "{driver}: {} operations, {total} succeeded",
        programs.len() * OPS
    );
    let read = |f: &str| -> serde_json::Value {
        let p = e.graph().join(f);
        serde_json::from_slice(&std::fs::read(&p).unwrap())
            .unwrap_or_else(|err| panic!("{}: {err}", p.display()))
    };
    let images = read(&format!("{driver}-images/images.json"));
    let containers = read(&format!("{driver}-containers/containers.json"));
    let layers = e.layers_json();
    let by_id = |v: &serde_json::Value| -> BTreeMap<String, serde_json::Value> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| (r["id"].as_str().unwrap().to_string(), r.clone()))
            .collect()
    };
    let (images, containers, layers) = (by_id(&images), by_id(&containers), by_id(&layers));
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let mut problems = Vec::new();
    let mut want_images = vec!["shared".to_string()];
    let mut want_containers = Vec::new();
    for (m, _) in &results {
        for (id, (names, data, top)) in &m.images {
            want_images.push(id.clone());
            let Some(rec) = images.get(id) else {
                problems.push(format!("image {id} vanished"));
                continue;
            };
            if strings(&rec["names"]) != *names {
                problems.push(format!(
                    "image {id}: names {}, want {names:?}",
                    rec["names"]
                ));
            }
            for k in data {
                if !strings(&rec["big-data-names"]).contains(k) {
                    problems.push(format!("image {id}: data {k} lost"));
                }
            }
            if rec["layer"] != top.as_str() || !layers.contains_key(top) {
                problems.push(format!(
                    "image {id}: top layer {} (want {top})",
                    rec["layer"]
                ));
            }
        }
        for (id, image) in &m.containers {
            want_containers.push(id.clone());
            match containers.get(id) {
                None => problems.push(format!("container {id} vanished")),
                Some(c) => {
                    if c["image"] != image.as_str() {
                        problems.push(format!("container {id}: image {}", c["image"]));
                    }
                    let l = c["layer"].as_str().unwrap_or("");
                    if !layers.contains_key(l) {
                        problems.push(format!("container {id}: layer {l} missing"));
                    }
                }
            }
        }
        for l in &m.layers {
            if !layers.contains_key(l) {
                problems.push(format!("layer {l} vanished"));
            }
        }
    }
    for id in images.keys() {
        if !want_images.contains(id) {
            problems.push(format!("image {id} listed but deleted or never made"));
        }
    }
    for id in containers.keys() {
        if !want_containers.contains(id) {
            problems.push(format!("container {id} listed but deleted or never made"));
        }
    }
    for (id, l) in &layers {
        if l.get("flags").and_then(|f| f.get("incomplete")).is_some() {
            problems.push(format!("layer {id} left incomplete"));
        }
    }
    // Both tools open the store and agree on it.
    for args in [&["images", "-q"][..], &["containers"], &["layers"]] {
        let mine = e.ok(args);
        let theirs = e.ref_ok(args);
        if mine != theirs {
            problems.push(format!("{args:?}: strata {mine:?}, reference {theirs:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn privileged_concurrency_records_mixed_vfs() {
    if is_root() && have_reference() {
        records_concurrent("vfs", &mixed());
    }
}

#[test]
fn privileged_concurrency_records_mixed_overlay() {
    if is_root() && have_reference() {
        records_concurrent("overlay", &mixed());
    }
}
