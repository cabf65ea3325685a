//! Import from the three source formats into a vfs store, and every kind of
//! bad input: a clear error naming the blob or field, no image record, no
//! incomplete layer.

mod support;

use std::sync::Mutex;

use strata_image::{import, Choice, Error, ImportOptions, Location, Platform, Progress};
use support::target::Target;
use support::*;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("strata-image-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

fn two_layers(comp: Comp) -> Spec {
    Spec::new(vec![
        Layer::new(&[("etc/hello", b"hello\n"), ("bin/x", &[b'x'; 5000])], comp),
        Layer::new(&[("etc/second", b"two\n")], comp),
    ])
}

fn run(t: &mut Target, loc: &str, names: &[&str]) -> strata_image::Result<strata_image::Imported> {
    let opts = ImportOptions {
        names: names.iter().map(|s| s.to_string()).collect(),
        choice: Choice::default(),
    };
    import(t, &Location::parse(loc).unwrap(), &opts, &|_| {})
}

#[test]
fn oci_import_records_what_skopeo_records() {
    for comp in [Comp::Gzip, Comp::Zstd, Comp::None] {
        let d = tmp();
        let spec = two_layers(comp);
        Layout::single(&d.path().join("oci"), &spec, "v1");
        let mut t = Target::new(d.path(), "vfs");
        let loc = format!("oci:{}:v1", d.path().join("oci").display());
        let events = Mutex::new(Vec::new());
        let got = import(
            &t,
            &Location::parse(&loc).unwrap(),
            &ImportOptions {
                names: vec!["t/i:1".into()],
                ..Default::default()
            },
            &|p| events.lock().unwrap().push(p),
        )
        .unwrap();
        let config = spec.config();
        assert_eq!(got.id, sha(&config)[7..]);
        assert_eq!(got.names, ["docker.io/t/i:1"]);
        let first = spec.layers[0].diff_id[7..].to_string();
        let second =
            sha(format!("{first}+{}", &spec.layers[1].diff_id[7..]).as_bytes())[7..].to_string();
        assert_eq!(got.layers, [first.clone(), second.clone()]);
        assert_eq!(t.layer_ids(), [first.clone(), second.clone()]);
        for (rec, l) in t.store.layers().unwrap().iter().zip(&spec.layers) {
            assert_eq!(rec.compressed_digest, l.digest);
            assert_eq!(rec.compressed_size as u64, l.size);
            assert_eq!(rec.uncompressed_digest, l.diff_id);
            assert_eq!(rec.uncompressed_size as usize, l.raw.len());
            let want = match comp {
                Comp::None => 0,
                Comp::Gzip => 2,
                Comp::Zstd => 4,
            };
            assert_eq!(rec.compression, want);
        }
        let rec = &t.images()[0];
        let manifest = std::fs::read(
            d.path()
                .join("oci/blobs/sha256")
                .join(&rec.digest.to_string()[7..]),
        )
        .unwrap();
        let md = sha(&manifest);
        let keys: Vec<&str> = rec.big_data.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                sha(&config),
                format!("manifest-{md}"),
                "manifest".to_string(),
                format!("signature-{}", &md[7..])
            ]
        );
        assert_eq!(rec.big_data[0].data, config);
        assert_eq!(rec.big_data[1].data, manifest);
        assert_eq!(rec.big_data[2].data, manifest);
        assert!(rec.big_data[3].data.is_empty());
        assert_eq!(
            rec.metadata,
            format!(r#"{{"signatures-sizes":{{"{md}":[]}}}}"#)
        );
        assert_eq!(rec.created.as_deref(), Some("2024-01-01T12:00:00.5+02:00"));
        assert_eq!(rec.top_layer.as_deref(), Some(second.as_str()));
        let events = events.into_inner().unwrap();
        assert!(matches!(events.last(), Some(Progress::ImageDone { .. })));
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, Progress::LayerDone { reused: false, .. }))
                .count(),
            2
        );

        // Again: both layers are reused, not applied again.
        let again = run(&mut t, &loc, &[]).unwrap();
        assert_eq!(again.reused, 2);
        assert_eq!(t.layer_ids().len(), 2);
    }
}

#[test]
fn docker_archive_layers_are_recorded_uncompressed_with_the_synthesised_manifest() {
    for comp in [Comp::None, Comp::Gzip] {
        let d = tmp();
        let spec = two_layers(comp);
        let file = d.path().join("d.tar");
        docker_archive(&file, &spec, &["docker.io/t/i:1"]);
        let mut t = Target::new(d.path(), "vfs");
        let got = run(
            &mut t,
            &format!("docker-archive:{}", file.display()),
            &["x"],
        )
        .unwrap();
        assert_eq!(got.names, ["docker.io/library/x:latest"]);
        for (rec, l) in t.store.layers().unwrap().iter().zip(&spec.layers) {
            assert_eq!(rec.compressed_digest, l.diff_id);
            assert_eq!(rec.compressed_size as usize, l.raw.len());
            assert_eq!(rec.compression, 0);
        }
        let config = spec.config();
        let want = format!(
            concat!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","#,
                r#""config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{}"}},"#,
                r#""layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{},"digest":"{}"}},"#,
                r#"{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{},"digest":"{}"}}]}}"#
            ),
            config.len(),
            sha(&config),
            spec.layers[0].raw.len(),
            spec.layers[0].diff_id,
            spec.layers[1].raw.len(),
            spec.layers[1].diff_id
        );
        let rec = &t.images()[0];
        assert_eq!(String::from_utf8_lossy(&rec.big_data[2].data), want);
        // Selecting by tag and by index finds the same image.
        for r in ["t/i:1", "@0"] {
            let loc = format!("docker-archive:{}:{r}", file.display());
            assert_eq!(run(&mut t, &loc, &[]).unwrap().id, got.id);
        }
        let e = run(
            &mut t,
            &format!("docker-archive:{}:t/i:2", file.display()),
            &[],
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("no image tagged docker.io/t/i:2"),
            "{e}"
        );
    }
}

#[test]
fn oci_archive_and_index_platforms() {
    let d = tmp();
    let l = Layout::new(&d.path().join("oci"));
    let mut amd = two_layers(Comp::Gzip);
    amd.arch = "amd64".into();
    let mut arm = Spec::new(vec![Layer::new(&[("etc/arch", b"arm64")], Comp::Zstd)]);
    arm.arch = "arm64".into();
    let entries = [l.image(&amd), l.image(&arm)];
    let mut nested = l.nested_index(&entries);
    nested["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "multi"});
    l.index(&[nested.clone()]);
    let file = d.path().join("o.tar");
    tar_dir(&l.dir, &file);
    let mut t = Target::new(d.path(), "vfs");
    for loc in [
        format!("oci:{}:multi", l.dir.display()),
        format!("oci-archive:{}:multi", file.display()),
    ] {
        let e = run(&mut t, &loc, &[]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("linux/amd64, linux/arm64") && msg.contains("--platform"),
            "{msg}"
        );
        let opts = ImportOptions {
            names: vec!["localhost/m".into()],
            choice: Choice {
                platform: Some(Platform::parse("linux/arm64").unwrap()),
            },
        };
        let got = import(&t, &Location::parse(&loc).unwrap(), &opts, &|_| {}).unwrap();
        assert_eq!(got.names, ["localhost/m:latest"]);
        let rec = t.images().last().unwrap().clone();
        assert_eq!(rec.digest.as_str(), nested["digest"].as_str().unwrap());
        assert_eq!(
            rec.big_data[1].key,
            format!("manifest-{}", nested["digest"].as_str().unwrap())
        );
        assert_eq!(
            rec.big_data[2].key,
            format!("manifest-{}", entries[1]["digest"].as_str().unwrap())
        );
        assert_eq!(rec.big_data.len(), 5);
    }
    // No image record was written for the refused attempts.
    assert_eq!(t.images().len(), 2);
}

/// Imports `loc` expecting an error with every word of `want`; nothing
/// of the image may be recorded, and no incomplete layer may stay.
fn refused(t: &mut Target, loc: &str, want: &[&str]) -> Error {
    let before = t.images().len();
    let e = run(t, loc, &["bad"]).unwrap_err();
    let msg = e.to_string();
    for w in want {
        assert!(msg.contains(w), "{loc}: {msg:?} lacks {w:?}");
    }
    assert_eq!(
        t.images().len(),
        before,
        "{loc}: an image record was written"
    );
    t.no_incomplete();
    e
}

#[test]
fn bad_blobs_leave_no_image_and_no_incomplete_layer() {
    let d = tmp();
    let mut t = Target::new(d.path(), "vfs");
    let good = two_layers(Comp::Gzip);
    let first_id = good.layers[0].diff_id[7..].to_string();

    // Second layer's blob is corrupted on disk: the first layer stays (it
    // was complete and verified), the second is removed.
    // A plain tar whose content changed still parses: only the digest
    // tells. A gzip blob's change is caught by its decoder first; the error
    // names the blob either way.
    for comp in [Comp::None, Comp::Gzip] {
        let spec = two_layers(comp);
        let dir = d.path().join(format!("digest-{comp:?}"));
        Layout::single(&dir, &spec, "v1");
        let blob = dir.join("blobs/sha256").join(&spec.layers[1].digest[7..]);
        let mut bytes = std::fs::read(&blob).unwrap();
        let at = if comp == Comp::None {
            512
        } else {
            bytes.len() - 5
        };
        bytes[at] ^= 0xff;
        std::fs::write(&blob, &bytes).unwrap();
        let want: &[&str] = if comp == Comp::None {
            &[&spec.layers[1].digest, "content has digest"]
        } else {
            &[&spec.layers[1].digest]
        };
        let e = refused(&mut t, &format!("oci:{}:v1", dir.display()), want);
        use strata_image::ErrorKind::{Corrupt, InvalidInput};
        assert!(matches!(e.kind(), Corrupt | InvalidInput), "{e:?}");
        let base = spec.layers[0].diff_id[7..].to_string();
        assert!(t.layer_ids().contains(&base));
        // Same tars in both: the base layer is reused the second time.
        assert_eq!(t.layer_ids().len(), 1);
    }
    for id in t.layer_ids() {
        t.store
            .delete_layer(&id, strata_store::Safety::Unchecked)
            .unwrap();
    }
    let mut spec;

    // Descriptor sizes one byte short and one byte long.
    for delta in [-1i64, 1] {
        spec = good.clone();
        spec.layers[1].size = (spec.layers[1].size as i64 + delta) as u64;
        let dir = d.path().join(format!("size{delta}"));
        Layout::single(&dir, &spec, "v1");
        refused(
            &mut t,
            &format!("oci:{}:v1", dir.display()),
            &[&spec.layers[1].digest, "bytes"],
        );
    }

    // The config's diff ID is not the uncompressed layer's.
    spec = good.clone();
    spec.layers[1].diff_id = sha(b"something else");
    let dir = d.path().join("diffid");
    Layout::single(&dir, &spec, "v1");
    refused(
        &mut t,
        &format!("oci:{}:v1", dir.display()),
        &["diff ID", &spec.layers[1].diff_id],
    );
    assert_eq!(t.layer_ids(), [first_id]);
}

#[test]
fn bad_documents_are_refused_by_name() {
    let d = tmp();
    let mut t = Target::new(d.path(), "vfs");
    let good = two_layers(Comp::Gzip);

    let mut spec = good.clone();
    spec.manifest_override = Some(b"{\"schemaVersion\":2,".to_vec());
    let dir = d.path().join("manifest");
    Layout::single(&dir, &spec, "v1");
    let md = sha(b"{\"schemaVersion\":2,");
    refused(
        &mut t,
        &format!("oci:{}:v1", dir.display()),
        &["manifest", &md],
    );

    spec = good.clone();
    spec.config_override = Some(b"[not a config".to_vec());
    let dir = d.path().join("config");
    Layout::single(&dir, &spec, "v1");
    refused(
        &mut t,
        &format!("oci:{}:v1", dir.display()),
        &["config", &sha(b"[not a config")],
    );

    spec = good.clone();
    spec.layers[0].media_type = "application/x-unknown-layer".into();
    let dir = d.path().join("mediatype");
    Layout::single(&dir, &spec, "v1");
    refused(
        &mut t,
        &format!("oci:{}:v1", dir.display()),
        &["application/x-unknown-layer", &spec.layers[0].digest],
    );

    // A manifest descriptor claiming more than strata reads, and an
    // index.json that never ends (a sparse 1 GiB file): both refused
    // after reading at most the limit.
    let dir = d.path().join("huge");
    let l = Layout::new(&dir);
    let mut desc = l.image(&good);
    desc["size"] = serde_json::json!(1u64 << 40);
    l.index(&[desc]);
    refused(
        &mut t,
        &format!("oci:{}", dir.display()),
        &["manifest", "larger than 4194304"],
    );
    let f = std::fs::File::create(dir.join("index.json")).unwrap();
    f.set_len(1 << 30).unwrap();
    refused(
        &mut t,
        &format!("oci:{}", dir.display()),
        &["index.json", "larger than"],
    );

    // Several images, no reference.
    let dir = d.path().join("several");
    let l = Layout::new(&dir);
    let mut a = l.image(&good);
    let mut b = l.image(&Spec::new(vec![Layer::new(&[("x", b"x")], Comp::None)]));
    a["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "a"});
    b["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "b"});
    a.as_object_mut().unwrap().remove("platform");
    l.index(&[a, b]);
    refused(
        &mut t,
        &format!("oci:{}", dir.display()),
        &["several images (a, b)"],
    );
    refused(
        &mut t,
        &format!("oci:{}:c", dir.display()),
        &["no image with reference \"c\""],
    );
    assert!(t.layer_ids().is_empty());
}

#[test]
fn archive_members_may_not_leave_the_archive() {
    let d = tmp();
    let mut t = Target::new(d.path(), "vfs");
    let spec = two_layers(Comp::None);
    let config = spec.config();
    let cfg = format!("{}.json", &sha(&config)[7..]);
    let manifest = |layers: &[&str]| {
        serde_json::to_vec(&serde_json::json!([{"Config": cfg, "RepoTags": [], "Layers": layers}]))
            .unwrap()
    };
    let cases: Vec<(&str, Vec<Member<'_>>, &str)> = vec![
        (
            "dotdot-name",
            vec![
                Member::File(&cfg, config.clone()),
                Member::File("../evil.tar", spec.layers[0].blob.clone()),
                Member::File("manifest.json", manifest(&["a.tar", "b.tar"])),
            ],
            "../evil.tar",
        ),
        (
            "symlink-out",
            vec![
                Member::File(&cfg, config.clone()),
                Member::Symlink("a.tar", "../../etc/passwd"),
                Member::File("manifest.json", manifest(&["a.tar", "b.tar"])),
            ],
            "a.tar -> ../../etc/passwd",
        ),
        (
            "absolute-symlink",
            vec![
                Member::File(&cfg, config.clone()),
                Member::Symlink("a.tar", "/etc/passwd"),
                Member::File("manifest.json", manifest(&["a.tar", "b.tar"])),
            ],
            "a.tar -> /etc/passwd",
        ),
    ];
    for (name, members, want) in cases {
        let file = d.path().join(format!("{name}.tar"));
        archive(&file, &members);
        let e = refused(
            &mut t,
            &format!("docker-archive:{}", file.display()),
            &["leaves the archive", want],
        );
        assert!(matches!(e, Error::Escape { .. }), "{e:?}");
    }
    // A layer path in manifest.json that leaves the archive.
    let file = d.path().join("manifest-out.tar");
    archive(
        &file,
        &[
            Member::File(&cfg, config.clone()),
            Member::File("manifest.json", manifest(&["../../x.tar", "b.tar"])),
        ],
    );
    refused(
        &mut t,
        &format!("docker-archive:{}", file.display()),
        &["leaves the archive", "../../x.tar"],
    );
    assert!(t.layer_ids().is_empty());
}
