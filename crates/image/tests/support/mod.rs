//! Builds images in code: OCI layouts, oci-archives and docker-archives.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

pub fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The test process's uid and gid.
pub fn me() -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(std::env::temp_dir()).unwrap();
    let probe = tempfile::tempfile().unwrap().metadata().unwrap_or(m);
    (probe.uid().into(), probe.gid().into())
}

/// A layer tar with these regular files.
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        // Owned by whoever runs the test, so vfs can apply it unprivileged.
        let (uid, gid) = me();
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

impl Comp {
    pub fn apply(self, raw: &[u8]) -> Vec<u8> {
        match self {
            Comp::None => raw.to_vec(),
            Comp::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(raw).unwrap();
                e.finish().unwrap()
            }
            Comp::Zstd => zstd::encode_all(raw, 1).unwrap(),
        }
    }
    pub fn oci_type(self) -> &'static str {
        match self {
            Comp::None => "application/vnd.oci.image.layer.v1.tar",
            Comp::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Comp::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// One layer as it goes into an image.
#[derive(Clone)]
pub struct Layer {
    pub raw: Vec<u8>,
    pub blob: Vec<u8>,
    pub media_type: String,
    /// The diff ID the config gives (normally sha of `raw`).
    pub diff_id: String,
    /// The size the descriptor gives (normally the blob's).
    pub size: u64,
    /// The digest the descriptor gives (normally the blob's).
    pub digest: String,
}

impl Layer {
    pub fn new(files: &[(&str, &[u8])], comp: Comp) -> Self {
        let raw = layer_tar(files);
        let blob = comp.apply(&raw);
        Layer {
            diff_id: sha(&raw),
            size: blob.len() as u64,
            digest: sha(&blob),
            media_type: comp.oci_type().into(),
            raw,
            blob,
        }
    }
}

/// An image to write.
#[derive(Clone)]
pub struct Spec {
    pub layers: Vec<Layer>,
    pub arch: String,
    pub created: String,
    /// Replaces the config bytes when set.
    pub config_override: Option<Vec<u8>>,
    /// Replaces the manifest bytes when set.
    pub manifest_override: Option<Vec<u8>>,
}

impl Spec {
    pub fn new(layers: Vec<Layer>) -> Self {
        Spec {
            layers,
            arch: "amd64".into(),
            created: "2024-01-01T12:00:00.50+02:00".into(),
            config_override: None,
            manifest_override: None,
        }
    }

    pub fn config(&self) -> Vec<u8> {
        if let Some(c) = &self.config_override {
            return c.clone();
        }
        let diff_ids: Vec<&str> = self.layers.iter().map(|l| l.diff_id.as_str()).collect();
        serde_json::to_vec(&serde_json::json!({
            "created": self.created,
            "architecture": self.arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    }
}

/// Writes blobs of an OCI layout.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    pub fn blob(&self, data: &[u8]) -> String {
        let d = sha(data);
        std::fs::write(self.dir.join("blobs/sha256").join(&d[7..]), data).unwrap();
        d
    }

    /// Writes the image; returns its manifest descriptor (JSON).
    pub fn image(&self, spec: &Spec) -> serde_json::Value {
        let config = spec.config();
        let cd = self.blob(&config);
        let layers: Vec<serde_json::Value> = spec
            .layers
            .iter()
            .map(|l| {
                self.blob(&l.blob);
                serde_json::json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size})
            })
            .collect();
        let manifest = spec.manifest_override.clone().unwrap_or_else(|| {
            serde_json::to_vec_pretty(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
                "layers": layers,
            }))
            .unwrap()
        });
        let md = self.blob(&manifest);
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md,
            "size": manifest.len(),
            "platform": {"architecture": spec.arch, "os": "linux"},
        })
    }

    pub fn index(&self, entries: &[serde_json::Value]) {
        let idx = serde_json::json!({"schemaVersion": 2, "manifests": entries});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&idx).unwrap(),
        )
        .unwrap();
    }

    /// An index blob listing `entries`; returns its descriptor.
    pub fn nested_index(&self, entries: &[serde_json::Value]) -> serde_json::Value {
        let idx = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        }))
        .unwrap();
        let d = self.blob(&idx);
        serde_json::json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": idx.len()})
    }

    /// A layout holding one image, referenced as `tag`.
    pub fn single(dir: &Path, spec: &Spec, tag: &str) -> Layout {
        let l = Layout::new(dir);
        let mut d = l.image(spec);
        d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
        l.index(&[d]);
        l
    }
}

/// Tars a directory tree (for oci-archive).
pub fn tar_dir(dir: &Path, out: &Path) {
    let f = std::fs::File::create(out).unwrap();
    let mut b = tar::Builder::new(f);
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

/// A member of a hand-made archive.
pub enum Member<'a> {
    File(&'a str, Vec<u8>),
    Symlink(&'a str, &'a str),
}

/// Writes an archive from members, names taken verbatim (even hostile).
pub fn archive(out: &Path, members: &[Member<'_>]) {
    let f = std::fs::File::create(out).unwrap();
    let mut b = tar::Builder::new(f);
    for m in members {
        let mut h = tar::Header::new_gnu();
        match m {
            Member::File(name, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                set_raw_name(&mut h, name);
                h.set_cksum();
                b.append(&h, &data[..]).unwrap();
            }
            Member::Symlink(name, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mode(0o777);
                set_raw_name(&mut h, name);
                h.set_link_name(target).unwrap();
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
        }
    }
    b.finish().unwrap();
}

fn set_raw_name(h: &mut tar::Header, name: &str) {
    // set_path refuses `..`; hostile names are written into the field.
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name.as_bytes());
}

/// A docker-archive of `spec` with `tags`; layers as `<diffid>.tar`.
pub fn docker_archive(out: &Path, spec: &Spec, tags: &[&str]) {
    let config = spec.config();
    let cfg_name = format!("{}.json", &sha(&config)[7..]);
    let names: Vec<String> = spec
        .layers
        .iter()
        .map(|l| format!("{}.tar", &l.diff_id[7..]))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": cfg_name, "RepoTags": tags, "Layers": names,
    }]))
    .unwrap();
    let mut owned: Vec<(String, Vec<u8>)> = vec![(cfg_name.clone(), config)];
    for (l, n) in spec.layers.iter().zip(&names) {
        owned.push((n.clone(), l.blob.clone()));
    }
    owned.push(("manifest.json".into(), manifest));
    let members: Vec<Member<'_>> = owned
        .iter()
        .map(|(n, d)| Member::File(n.as_str(), d.clone()))
        .collect();
    archive(out, &members);
}

pub mod target;
pub mod tools;
