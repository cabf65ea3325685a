//! Concurrency: 8 workers run 50 random operations each (one `strata`
//! process per operation) on one store: import, create, mount, write into
//! the mount, unmount, delete, set-names, set-metadata. Each worker works
//! on its own layers (children of a shared base) so the effect of every
//! successful operation is known; contention is on the store's files and
//! locks. Afterwards layers.json parses, every listed layer mounts and
//! diffs, each worker's successful operations are still in effect, mount
//! counts match the kernel's table and nothing stays mounted after
//! `shutdown`. A second run mixes 4 strata and 4 `containers-storage`
//! workers on one store.

mod common;
mod robust_support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{have_reference, is_root, Env, REFERENCE};
use robust_support::*;

const WORKERS: usize = 8;
const OPS: usize = 50;

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

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
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
        let pick = |rng: &mut Rng| own.get(rng.below(own.len())).cloned();
        let op = if own.is_empty() {
            rng.below(2)
        } else {
            rng.below(8)
        };
        let id = format!("w{w}n{n}");
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
                if let Some(l) = mounted.get(rng.below(mounted.len())) {
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
