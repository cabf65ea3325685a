//! Differential tests against skopeo 1.9: the same source imported by
//! skopeo into one store and by strata into another gives the same layer
//! records (all fields but `created`) and the same image record (ID,
//! digest, names, metadata, big-data keys in order and their bytes,
//! created); and each tool reuses the layers the other made.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use strata_image::{import, ImageRecord, ImportOptions, Location};
use support::target::Target;
use support::*;

fn storage_ref(root: &Path, driver: &str, name: &str) -> String {
    format!(
        "containers-storage:[{driver}@{}+{}]{name}",
        root.join("root").display(),
        root.join("run").display()
    )
}

/// layers.json records by ID, without `created`.
fn layer_records(root: &Path, driver: &str) -> Vec<Value> {
    let p = root.join(format!("root/{driver}-layers/layers.json"));
    let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    let mut out: Vec<Value> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.as_object_mut().unwrap().remove("created");
            l
        })
        .collect();
    out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    out
}

fn created_times(root: &Path, driver: &str) -> Vec<(String, String)> {
    let p = root.join(format!("root/{driver}-layers/layers.json"));
    let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["id"].as_str().unwrap().to_string(),
                l["created"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The big-data file name containers/storage uses for `key`.
fn big_data_file(key: &str) -> String {
    strata_store::bigdata::file_name(key).unwrap()
}

fn compare_image(sk: &Path, driver: &str, rec: &ImageRecord) {
    let v: Value = serde_json::from_slice(
        &std::fs::read(sk.join(format!("root/{driver}-images/images.json"))).unwrap(),
    )
    .unwrap();
    let img = &v.as_array().unwrap()[0];
    assert_eq!(img["id"], rec.id);
    assert_eq!(img["digest"], rec.digest.as_str());
    assert_eq!(img["names"], serde_json::json!(rec.names));
    assert_eq!(img["layer"].as_str(), rec.top_layer.as_deref());
    assert_eq!(img["metadata"], rec.metadata);
    assert_eq!(img["created"].as_str(), rec.created.as_deref());
    let keys: Vec<&str> = rec.big_data.iter().map(|b| b.key.as_str()).collect();
    let sk_keys: Vec<&str> = img["big-data-names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(sk_keys, keys);
    let dir: PathBuf = sk.join(format!("root/{driver}-images/{}", rec.id));
    for b in &rec.big_data {
        let theirs = std::fs::read(dir.join(big_data_file(&b.key))).unwrap();
        assert_eq!(theirs, b.data, "big data {}", b.key);
        assert_eq!(img["big-data-sizes"][&b.key], b.data.len());
    }
}

fn differential(driver: &str, source: &str, name: &str) {
    // The overlay stores' bind mounts (`root/overlay` on itself, made by
    // skopeo and by strata) are detached when `d` goes.
    let d = strata_testsupport::Scratch::new("strata-interop-");
    let sk = d.path().join("skopeo");
    let st = d.path().join("strata");
    tools::ok(
        "skopeo",
        &["copy", "-q", source, &storage_ref(&sk, driver, name)],
    );

    let t = Target::new(&st, driver);
    let opts = ImportOptions {
        names: vec![name.into()],
        ..Default::default()
    };
    let got = import(&t, &Location::parse(source).unwrap(), &opts, &|_| {}).unwrap();
    let theirs = layer_records(&sk, driver);
    assert_eq!(theirs.len(), got.layers.len(), "{source}");
    assert_eq!(theirs, layer_records(&st, driver), "{source}");
    compare_image(&sk, driver, &t.images()[0]);

    // Through strata's own image store: images.json records equal whole.
    let real = d.path().join("real");
    let store = open_real(&real, driver);
    let done = import(&store, &Location::parse(source).unwrap(), &opts, &|_| {}).unwrap();
    drop(store);
    assert_eq!(
        image_records(&sk, driver),
        image_records(&real, driver),
        "{source}"
    );
    assert_eq!(
        layer_records(&sk, driver),
        layer_records(&real, driver),
        "{source}"
    );
    podman_uses(&real, driver, &done.id, source);
    if driver == "vfs" {
        reference_uses_linked_layers(&real, &done.layers);
    }

    // skopeo into strata's store reuses strata's layers (their records,
    // creation times included, stay as strata wrote them) …
    let before = created_times(&st, driver);
    drop(t);
    tools::ok(
        "skopeo",
        &["copy", "-q", source, &storage_ref(&st, driver, name)],
    );
    assert_eq!(created_times(&st, driver), before);
    // … and strata into skopeo's store reuses skopeo's.
    let t = Target::new(&sk, driver);
    let again = import(&t, &Location::parse(source).unwrap(), &opts, &|_| {}).unwrap();
    assert_eq!(again.reused, got.layers.len());
}

fn open_real(root: &Path, driver: &str) -> strata_store::Store {
    strata_store::Store::open(&strata_store::StoreOptions {
        graph_root: root.join("root"),
        run_root: root.join("run"),
        driver: Some(driver.into()),
        ..Default::default()
    })
    .unwrap()
}

fn image_records(root: &Path, driver: &str) -> Value {
    let p = root.join(format!("root/{driver}-images/images.json"));
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// podman lists, inspects, creates from and mounts the image strata
/// imported; skopeo copies it out of the store.
fn podman_uses(root: &Path, driver: &str, id: &str, source: &str) {
    let args = tools::podman_args(root, driver);
    let run = |extra: &[&str]| {
        let mut a = args.clone();
        a.extend(extra.iter().map(|s| s.to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        tools::ok("podman", &a)
    };
    let listed = run(&["images", "-q", "--no-trunc"]);
    assert!(listed.contains(id), "{source}: {listed}");
    let inspected = run(&["image", "inspect", id]);
    assert!(inspected.contains(id), "{source}");
    let ctr = run(&[
        "create",
        "--network",
        "none",
        "--name",
        "c1",
        id,
        "/bin/true",
    ]);
    // The mount lives in podman's private mount namespace: look inside it
    // from the same namespace.
    let podman = format!("podman {}", args.join(" "));
    let ctr = ctr.trim();
    let script =
        format!("m=$({podman} mount {ctr}) && test -s \"$m/etc/hello\" && {podman} umount {ctr}");
    tools::ok("sh", &["-c", &script]);
    run(&["rm", ctr]);
    let out = root.join("copied");
    let from = format!(
        "containers-storage:[{driver}@{}+{}]{id}",
        root.join("root").display(),
        root.join("run").display()
    );
    tools::ok(
        "skopeo",
        &["copy", "-q", &from, &format!("oci:{}:x", out.display())],
    );
    assert!(out.join("index.json").exists());
}

/// On vfs, each layer of a strata-imported image holds hard links to its
/// parent's files; the reference reads such a layer's changes and deletes
/// the image as it deletes its own.
fn reference_uses_linked_layers(root: &Path, layers: &[String]) {
    use std::os::unix::fs::MetadataExt;
    let dir = |id: &str| root.join("root/vfs/dir").join(id);
    let ino = |id: &str| std::fs::metadata(dir(id).join("etc/hello")).unwrap().ino();
    for id in &layers[1..] {
        assert_eq!(ino(id), ino(&layers[0]), "{id} links etc/hello");
    }
    let reference =
        strata_testsupport::ReferenceStore::with_roots(root.join("root"), root.join("run"), "vfs");
    let cs = |args: &[&str]| String::from_utf8(reference.run(args)).unwrap();
    let top = layers.last().unwrap();
    let changes = cs(&["changes", top]);
    assert!(changes.contains("/etc/third"), "{changes}");
    assert!(!changes.contains("/etc/hello"), "{changes}");
    let images = cs(&["images", "-q"]);
    for id in images.split_whitespace() {
        cs(&["delete-image", id]);
    }
    let left: Vec<_> = std::fs::read_dir(root.join("root/vfs/dir"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the reference left {left:?}");
}

fn sources(d: &Path) -> Vec<String> {
    let spec = Spec::new(vec![
        Layer::new(
            &[("etc/hello", b"hello\n"), ("bin/x", &[b'x'; 70000])],
            Comp::Gzip,
        ),
        Layer::new(&[("etc/second", b"two\n")], Comp::Zstd),
        Layer::new(&[("etc/third", b"3\n")], Comp::None),
    ]);
    Layout::single(&d.join("oci"), &spec, "v1");
    tar_dir(&d.join("oci"), &d.join("o.tar"));
    let plain = Spec::new(
        spec.layers
            .iter()
            .map(|l| Layer {
                blob: l.raw.clone(),
                ..l.clone()
            })
            .collect(),
    );
    docker_archive(&d.join("d.tar"), &plain, &["docker.io/t/i:1"]);
    vec![
        format!("oci:{}:v1", d.join("oci").display()),
        format!("oci-archive:{}:v1", d.join("o.tar").display()),
        format!("docker-archive:{}", d.join("d.tar").display()),
    ]
}

fn run_all(driver: &str) {
    if !tools::available() {
        return;
    }
    let d = tempfile::Builder::new()
        .prefix("strata-interop-src-")
        .tempdir_in("/var/tmp")
        .unwrap();
    for (src, name) in sources(d.path())
        .iter()
        .zip(["t/i:1", "localhost/hand:v1", "x"])
    {
        differential(driver, src, name);
    }
}

#[test]
fn privileged_import_matches_skopeo_on_vfs() {
    run_all("vfs");
}

#[test]
fn privileged_import_matches_skopeo_on_overlay() {
    run_all("overlay");
}
