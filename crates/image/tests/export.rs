//! Export to the three formats: read back by strata's own reader, and
//! accepted by skopeo inspect and podman load.

mod support;

use std::path::Path;

use strata_image::export::{export, Compress, ExportImage};
use strata_image::{Choice, Image, Location, Source};
use support::*;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("strata-export-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

fn spec() -> Spec {
    Spec::new(vec![
        Layer::new(
            &[("etc/hello", b"hello\n"), ("bin/x", &[b'x'; 70000])],
            Comp::Gzip,
        ),
        Layer::new(&[("etc/second", b"two\n")], Comp::Zstd),
        Layer::new(&[("etc/third", b"3\n")], Comp::None),
    ])
}

fn open(loc: &str) -> (Source, Image) {
    Source::open(&Location::parse(loc).unwrap(), &Choice::default()).unwrap()
}

/// Exports the image at `from` to `to`.
fn convert(
    from: &str,
    to: &str,
    compress: Option<Compress>,
) -> strata_image::Result<strata_image::export::Exported> {
    let (src, img) = open(from);
    let mut layers =
        |i: usize, out: &mut dyn std::io::Write| src.write_layer_tar(&img.layers[i], out);
    export(
        &ExportImage {
            config: img.config.bytes.clone(),
        },
        &mut layers,
        &Location::parse(to).unwrap(),
        compress,
    )
}

fn dests(d: &Path) -> Vec<(String, Option<Compress>)> {
    vec![
        (format!("oci:{}:v1", d.join("oci-gz").display()), None),
        (
            format!("oci:{}:v1", d.join("oci-zst").display()),
            Some(Compress::Zstd),
        ),
        (
            format!("oci:{}:v1", d.join("oci-none").display()),
            Some(Compress::None),
        ),
        (
            format!("oci-archive:{}:v1", d.join("o.tar").display()),
            Some(Compress::Gzip),
        ),
        (
            format!("docker-archive:{}:t/e:1", d.join("d.tar").display()),
            None,
        ),
    ]
}

#[test]
fn exports_read_back_as_the_same_image() {
    let d = tmp();
    let s = spec();
    Layout::single(&d.path().join("src"), &s, "v1");
    let from = format!("oci:{}:v1", d.path().join("src").display());
    let (_, orig) = open(&from);
    for (to, compress) in dests(d.path()) {
        convert(&from, &to, compress).unwrap();
        let (src, img) = open(&to);
        assert_eq!(img.id(), orig.id(), "{to}");
        assert_eq!(img.config.bytes, orig.config.bytes, "{to}");
        assert_eq!(img.layer_ids(), orig.layer_ids(), "{to}");
        for (i, l) in img.layers.iter().enumerate() {
            let mut tar = Vec::new();
            src.write_layer_tar(l, &mut tar).unwrap();
            assert_eq!(tar, s.layers[i].raw, "{to} layer {i}");
        }
    }
    // An OCI export into an existing layout replaces the entry of its ref
    // and keeps the others.
    let to = format!("oci:{}:v2", d.path().join("oci-gz").display());
    convert(&from, &to, None).unwrap();
    convert(&from, &to, None).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("oci-gz/index.json")).unwrap())
            .unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    let e = convert(
        &from,
        &format!("docker-archive:{}", d.path().join("x.tar").display()),
        Some(Compress::Gzip),
    )
    .unwrap_err();
    assert!(matches!(e, strata_image::Error::Unsupported(_)), "{e}");
}

/// A layer of many chunks goes through the compressing thread whole, in
/// both compressions; a layer whose tar fails half way is an error with
/// that cause and leaves no blob.
#[test]
fn big_layers_and_a_layer_that_fails_half_way() {
    let d = tmp();
    let big: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> (i % 29)) as u8)
        .collect();
    let s = Spec::new(vec![Layer::new(&[("big", &big[..])], Comp::None)]);
    Layout::single(&d.path().join("src"), &s, "v1");
    let from = format!("oci:{}:v1", d.path().join("src").display());
    for (name, c) in [("gz", Compress::Gzip), ("zst", Compress::Zstd)] {
        let to = format!("oci:{}:v1", d.path().join(name).display());
        convert(&from, &to, Some(c)).unwrap();
        let (src, img) = open(&to);
        let mut tar = Vec::new();
        src.write_layer_tar(&img.layers[0], &mut tar).unwrap();
        assert!(
            tar == s.layers[0].raw,
            "{name}: the layer read back differs"
        );
    }
    let (src, img) = open(&from);
    let mut layers = |i: usize, out: &mut dyn std::io::Write| {
        let mut tar = Vec::new();
        src.write_layer_tar(&img.layers[i], &mut tar)?;
        out.write_all(&tar[..3_000_000])
            .map_err(|e| strata_image::Error::io("test", e))?;
        Err(strata_image::Error::io(
            "test",
            std::io::Error::other("disk on fire"),
        ))
    };
    for c in [Compress::Gzip, Compress::Zstd] {
        let out = d.path().join(format!("failed-{c:?}"));
        let e = export(
            &ExportImage {
                config: img.config.bytes.clone(),
            },
            &mut layers,
            &Location::parse(&format!("oci:{}", out.display())).unwrap(),
            Some(c),
        )
        .unwrap_err();
        assert!(e.to_string().contains("disk on fire"), "{c:?}: {e}");
        let left: Vec<_> = std::fs::read_dir(out.join("blobs/sha256"))
            .unwrap()
            .flatten()
            .collect();
        assert!(left.is_empty(), "{c:?}: {left:?}");
    }
}

#[test]
fn export_refuses_a_layer_that_is_not_its_diff_id() {
    let d = tmp();
    let s = spec();
    Layout::single(&d.path().join("src"), &s, "v1");
    let (src, img) = open(&format!("oci:{}:v1", d.path().join("src").display()));
    let mut layers = |i: usize, out: &mut dyn std::io::Write| {
        src.write_layer_tar(&img.layers[i], out)?;
        out.write_all(b"extra")
            .map_err(|e| strata_image::Error::io("test", e))
    };
    let e = export(
        &ExportImage {
            config: img.config.bytes.clone(),
        },
        &mut layers,
        &Location::parse(&format!("oci:{}", d.path().join("out").display())).unwrap(),
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains(&s.layers[0].diff_id), "{e}");
    // No blob or temporary file was left under a name.
    let left: Vec<_> = std::fs::read_dir(d.path().join("out/blobs/sha256"))
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn privileged_exports_are_accepted_by_skopeo_inspect_and_podman_load() {
    if !tools::available() {
        return;
    }
    let d = tmp();
    let s = spec();
    Layout::single(&d.path().join("src"), &s, "v1");
    let from = format!("oci:{}:v1", d.path().join("src").display());
    let (_, orig) = open(&from);
    for (to, compress) in dests(d.path()) {
        convert(&from, &to, compress).unwrap();
        let out = tools::ok("skopeo", &["inspect", &to]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["Layers"].as_array().unwrap().len(), 3, "{to}: {out}");
        let raw = tools::ok("skopeo", &["inspect", "--config", "--raw", &to]);
        assert_eq!(raw.as_bytes(), orig.config.bytes, "{to}");
    }
    for file in ["o.tar", "d.tar"] {
        let p = d.path().join(format!("podman-{file}"));
        let archive = d.path().join(file).display().to_string();
        let out = tools::podman(&p, "vfs", &["load", "-i", &archive]);
        assert!(out.contains("Loaded image"), "{out}");
        let ids = tools::podman(&p, "vfs", &["images", "-q", "--no-trunc"]);
        assert!(ids.contains(orig.id()), "{file}: {ids}");
    }
}

#[test]
fn store_round_trip_import_then_export() {
    let d = tmp();
    let s = spec();
    Layout::single(&d.path().join("src"), &s, "v1");
    let store = strata_store::Store::open(&strata_store::StoreOptions {
        graph_root: d.path().join("root"),
        run_root: d.path().join("run"),
        driver: Some("vfs".into()),
        ..Default::default()
    })
    .unwrap();
    let from = format!("oci:{}:v1", d.path().join("src").display());
    let opts = strata_image::ImportOptions {
        names: vec!["t/i:1".into()],
        ..Default::default()
    };
    let got =
        strata_image::import(&store, &Location::parse(&from).unwrap(), &opts, &|_| {}).unwrap();
    for (i, to) in [
        format!("oci:{}:v1", d.path().join("out-oci").display()),
        format!(
            "docker-archive:{}:t/i:1",
            d.path().join("out.tar").display()
        ),
    ]
    .iter()
    .enumerate()
    {
        // By the short name the user gave, as skopeo would find it.
        let key = if i == 0 { "t/i:1" } else { got.id.as_str() };
        strata_image::export::export_from_store(&store, key, &Location::parse(to).unwrap(), None)
            .unwrap();
        let (src, img) = open(to);
        assert_eq!(img.id(), got.id, "{to}");
        for (j, l) in img.layers.iter().enumerate() {
            let mut tar = Vec::new();
            src.write_layer_tar(l, &mut tar).unwrap();
            assert_eq!(tar, s.layers[j].raw, "{to} layer {j}");
        }
    }
}
