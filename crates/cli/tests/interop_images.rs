//! Images and containers shared with skopeo 1.9, podman 4.3 and buildah
//! 1.28, on vfs and overlay, both ways:
//!
//! - skopeo copies an OCI image built here from real layers into the
//!   store; strata lists it, makes a container, mounts it and sees its
//!   files, and `diff` of each image layer gives back its uncompressed blob
//!   byte for byte;
//! - an image strata makes (`import-layer`, `create-image`,
//!   `set-image-data` of the manifest and config) is listed by podman,
//!   which creates a container from it (strata reads and mounts that
//!   container), mounts and removes it; strata then sees exactly what
//!   podman left; `buildah from` works on it too.
//!
//! The tools run in a private mount namespace with a tmpfs over
//! /var/lib/containers (their blob-info cache), their state in the test's
//! directory (`--tmpdir`, `--network-config-dir`, `TMPDIR`), and the store
//! given on every command line.
//!
//! Layers: `$STRATA_CORPUS/debian-minbase.tar.gz` (gzip) and
//! `layer-npm.tar` (plain) when set, else a tar of this machine's
//! /usr/share/doc and a small tar built here.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{first_line, is_root, Env};
use sha2::Digest;

fn sha(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// Whether `tool` is installed; under CI its absence fails.
fn have(tool: &str) -> bool {
    if Path::new("/usr/bin").join(tool).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but {tool} is missing"
    );
    eprintln!("skipping: {tool} not installed");
    false
}

/// One layer of the test image: its blob as stored and its tar.
struct Blob {
    media_type: &'static str,
    blob: Vec<u8>,
    tar: Vec<u8>,
}

fn layers(dir: &Path) -> Vec<Blob> {
    match std::env::var_os("STRATA_CORPUS") {
        Some(c) => {
            let c = PathBuf::from(c);
            let read = |n: &str| {
                std::fs::read(c.join(n)).unwrap_or_else(|e| panic!("STRATA_CORPUS/{n}: {e}"))
            };
            vec![
                Blob {
                    media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
                    blob: read("debian-minbase.tar.gz"),
                    tar: read("debian-minbase.tar"),
                },
                Blob {
                    media_type: "application/vnd.oci.image.layer.v1.tar",
                    blob: read("layer-npm.tar"),
                    tar: read("layer-npm.tar"),
                },
            ]
        }
        None => {
            let base = std::fs::read(common::real_tar(dir)).unwrap();
            let top = common::top_tar();
            vec![
                Blob {
                    media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
                    blob: common::gzip(&base),
                    tar: base,
                },
                Blob {
                    media_type: "application/vnd.oci.image.layer.v1.tar",
                    blob: top.clone(),
                    tar: top,
                },
            ]
        }
    }
}

/// The config of an image of `layers`, for this machine's architecture.
fn config(layers: &[Blob]) -> Vec<u8> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha(&l.tar)))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// An OCI manifest of `config` and `layers`.
fn manifest(config: &[u8], layers: &[Blob]) -> Vec<u8> {
    let descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            serde_json::json!({
                "mediaType": l.media_type,
                "digest": format!("sha256:{}", sha(&l.blob)),
                "size": l.blob.len(),
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{}", sha(config)),
            "size": config.len(),
        },
        "layers": descs,
    }))
    .unwrap()
}

/// Writes an OCI layout with one image tagged `v1`.
fn oci_layout(dir: &Path, layers: &[Blob]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| std::fs::write(blobs.join(sha(data)), data).unwrap();
    for l in layers {
        put(&l.blob);
    }
    let cfg = config(layers);
    put(&cfg);
    let man = manifest(&cfg, layers);
    put(&man);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", sha(&man)),
            "size": man.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

/// Runs a shell script in a private mount namespace with `skopeo`,
/// `podman` and `buildah` defined as functions that use this store and
/// keep their state in the test's directory.
fn in_namespace(e: &Env, script: &str) -> Output {
    let d = e.dir.path();
    for sub in ["tmp", "net", "pod"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let policy = d.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let (g, r, drv) = (e.graph(), e.run_root(), &e.driver);
    // podman wants both roots in storage.conf, whatever its flags say.
    let conf = d.join("tools-storage.conf");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"{drv}\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            g.display(),
            r.display()
        ),
    )
    .unwrap();
    // buildah takes its network settings from containers.conf only: its
    // CNI lock (and podman's) goes to the test's directory, not /etc/cni.
    let containers_conf = d.join("containers.conf");
    std::fs::write(
        &containers_conf,
        format!(
            "[network]\nnetwork_config_dir = \"{}\"\n",
            d.join("net").display()
        ),
    )
    .unwrap();
    let prelude = format!(
        r#"set -eu
if [ -d /var/lib/containers ]; then mount -t tmpfs tmpfs /var/lib/containers; else mount -t tmpfs tmpfs /var/lib; fi
skopeo() {{ command skopeo --policy {policy} "$@"; }}
podman() {{ command podman --root {g} --runroot {r} --storage-driver {drv} --tmpdir {d}/pod --events-backend file --cgroup-manager cgroupfs --network-config-dir {d}/net "$@"; }}
buildah() {{ command buildah --root {g} --runroot {r} --storage-driver {drv} "$@"; }}
"#,
        policy = policy.display(),
        g = g.display(),
        r = r.display(),
        d = d.display(),
    );
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!("{prelude}{script}"))
        .env("CONTAINERS_STORAGE_CONF", &conf)
        .env("CONTAINERS_CONF", &containers_conf)
        .env("TMPDIR", d.join("tmp"))
        .env_remove("STORAGE_DRIVER")
        .env_remove("STORAGE_OPTS")
        .output()
        .expect("run unshare");
    assert!(
        o.status.success(),
        "script failed ({:?}):\n{script}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn json(e: &Env, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&e.ok(args)).unwrap()
}

/// The layer IDs of an image, top first.
fn image_layers(e: &Env, image: &str) -> Vec<String> {
    let img = json(e, &["image", "-j", image]);
    let all = json(e, &["layers", "-j"]);
    let mut out = Vec::new();
    let mut next = img[0]["layer"].as_str().unwrap().to_string();
    while !next.is_empty() {
        let l = all
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == next.as_str())
            .unwrap_or_else(|| panic!("layer {next} of {image} not listed"));
        out.push(next.clone());
        next = l["parent"].as_str().unwrap_or("").to_string();
    }
    out
}

fn skopeo_to_strata(driver: &str) {
    let e = Env::new(driver);
    let oci = e.dir.path().join("oci");
    let blobs = layers(e.dir.path());
    oci_layout(&oci, &blobs);
    in_namespace(
        &e,
        &format!(
            "skopeo copy --quiet oci:{}:v1 'containers-storage:[{driver}@{}+{}]localhost/interop:v1'\n",
            oci.display(),
            e.graph().display(),
            e.run_root().display()
        ),
    );
    // strata lists what skopeo wrote.
    let listed = e.ok(&["images"]);
    assert!(
        listed.contains("\tname: localhost/interop:v1\n"),
        "{listed}"
    );
    let img = json(&e, &["image", "-j", "localhost/interop:v1"]);
    let cfg = config(&blobs);
    let man = manifest(&cfg, &blobs);
    assert_eq!(
        img[0]["id"],
        sha(&cfg),
        "c/image names the image by its config"
    );
    assert_eq!(img[0]["digest"], format!("sha256:{}", sha(&man)));
    assert_eq!(
        e.ok(&["get-image-data", "localhost/interop:v1", "manifest"])
            .as_bytes(),
        &man[..]
    );
    // Each layer's diff gives back its uncompressed blob, byte for byte.
    let ids = image_layers(&e, "localhost/interop:v1");
    assert_eq!(ids.len(), blobs.len());
    for (id, blob) in ids.iter().rev().zip(&blobs) {
        let o = e.strata(&["diff", "-u", id]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            o.stdout == blob.tar,
            "diff of {id}: {} bytes, sha256 {}; the blob's tar: {} bytes, sha256 {}",
            o.stdout.len(),
            sha(&o.stdout),
            blob.tar.len(),
            sha(&blob.tar)
        );
    }
    // A container from it, mounted, shows the image's files.
    let c = first_line(&e.ok(&["create-container", "-n", "ctr", "localhost/interop:v1"]));
    let m = e.ok(&["mount", "ctr"]);
    let root = Path::new(m.trim_end());
    let file = tar_first_file(&blobs[0].tar);
    assert!(
        root.join(&file).is_file(),
        "{} missing in the container",
        file.display()
    );
    std::fs::write(root.join("written-by-strata"), "x").unwrap();
    e.ok(&["unmount", "ctr"]);
    // The reference agrees with strata on what is there.
    let o = e.reference(&["container", "-j", &c]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    e.ok(&["delete-container", "ctr"]);
    let gone = e.ok(&["delete-image", "-j", "localhost/interop:v1"]);
    let v: serde_json::Value = serde_json::from_str(&gone).unwrap();
    assert_eq!(
        v["localhost/interop:v1"]["deleted-layers"]
            .as_array()
            .unwrap()
            .len(),
        blobs.len()
    );
    assert_eq!(e.ok(&["layers"]), "");
}

#[test]
fn privileged_skopeo_copies_into_a_strata_store_vfs() {
    if is_root() && have("skopeo") {
        skopeo_to_strata("vfs");
    }
}

#[test]
fn privileged_skopeo_copies_into_a_strata_store_overlay() {
    if is_root() && have("skopeo") {
        skopeo_to_strata("overlay");
    }
}

/// Makes an image with strata alone: layers, record, manifest, config.
fn strata_image(e: &Env, blobs: &[Blob]) -> String {
    let mut parent: Option<String> = None;
    for b in blobs {
        let mut args = vec!["import-layer"];
        if let Some(p) = &parent {
            args.push(p);
        }
        parent = Some(first_line(&e.ok_in(&args, &b.blob)));
    }
    let top = parent.unwrap();
    let img = first_line(&e.ok(&["create-image", "-n", "localhost/strata:v1", &top]));
    let cfg = config(blobs);
    let man = manifest(&cfg, blobs);
    e.ok_in(&["set-image-data", &img, "manifest"], &man);
    e.ok_in(
        &["set-image-data", &img, &format!("sha256:{}", sha(&cfg))],
        &cfg,
    );
    img
}

fn podman_uses_a_strata_image(driver: &str) {
    let e = Env::new(driver);
    let blobs = layers(e.dir.path());
    let img = strata_image(&e, &blobs);
    let before_layers = e.ok(&["layers"]);
    let o = in_namespace(&e, "podman images --format '{{.Repository}}:{{.Tag}} {{.ID}}'\npodman create --name pc localhost/strata:v1\n");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("localhost/strata:v1 {}", &img[..12])),
        "{out}"
    );
    // What podman made, as strata sees it.
    let c = json(&e, &["container", "-j", "pc"]);
    assert_eq!(c[0]["image"], img.as_str());
    let meta: serde_json::Value = serde_json::from_str(c[0]["metadata"].as_str().unwrap()).unwrap();
    assert_eq!(meta["image-name"], "localhost/strata:v1");
    let layer = c[0]["layer"].as_str().unwrap();
    assert_eq!(e.ok(&["get-names", layer]), "pc-layer\n");
    let m = e.ok(&["mount", "pc"]);
    let root = Path::new(m.trim_end());
    assert!(root.join(tar_first_file(&blobs[0].tar)).is_file());
    e.ok(&["unmount", "pc"]);
    // podman mounts, sees the files, unmounts and removes it.
    let check = tar_first_file(&blobs[0].tar);
    in_namespace(
        &e,
        &format!(
            "m=$(podman mount pc)\ntest -f \"$m/{}\"\npodman umount pc\npodman rm pc\n",
            check.display()
        ),
    );
    assert_eq!(e.ok(&["containers"]), "", "podman rm left a container");
    assert_eq!(e.ok(&["layers"]), before_layers, "podman rm left layers");
    let mounts = std::fs::read_to_string(
        e.run_root()
            .join(format!("{driver}-layers/mountpoints.json")),
    )
    .unwrap();
    assert_eq!(mounts, "[]");
    // buildah makes a working container on it; strata sees it and removes it.
    in_namespace(
        &e,
        "buildah from --pull=never --name bctr localhost/strata:v1 >/dev/null\n",
    );
    let b = json(&e, &["container", "-j", "bctr"]);
    assert_eq!(b[0]["flags"]["Volatile"], true);
    assert!(e
        .ok(&["get-container-dir", "bctr"])
        .trim_end()
        .ends_with("/userdata"));
    e.ok(&["delete-container", "bctr"]);
    // podman rmi removes the image and its layers; strata sees none left.
    in_namespace(&e, "podman rmi localhost/strata:v1 >/dev/null\n");
    assert_eq!(e.ok(&["images"]), "");
    assert_eq!(e.ok(&["layers"]), "");
}

fn tar_first_file(tar: &[u8]) -> PathBuf {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|en| en.unwrap())
        .find(|en| en.header().entry_type().is_file() && en.size() > 0)
        .map(|en| en.path().unwrap().into_owned())
        .expect("a regular file in the layer")
}

#[test]
fn privileged_podman_and_buildah_use_a_strata_image_vfs() {
    if is_root() && have("podman") && have("buildah") {
        podman_uses_a_strata_image("vfs");
    }
}

#[test]
fn privileged_podman_and_buildah_use_a_strata_image_overlay() {
    if is_root() && have("podman") && have("buildah") {
        podman_uses_a_strata_image("overlay");
    }
}
