//! Image and container commands against the reference: each scenario runs
//! the same commands with the same inputs on a store of the reference's and
//! a store of strata's, and compares every output, error and exit status,
//! then the files the commands wrote (images.json, containers.json,
//! layers.json, the data directories). Then each tool reads the other's
//! store and must print what the other prints.

mod common;

use common::records::{both_on, Pair};
use common::{have_reference, is_root};

/// Runs `body` on vfs, and on overlay when root.
macro_rules! on_drivers {
    ($vfs:ident, $overlay:ident, $body:ident) => {
        #[test]
        fn $vfs() {
            if have_reference() {
                $body("vfs");
            }
        }
        #[test]
        fn $overlay() {
            if is_root() && have_reference() {
                $body("overlay");
            }
        }
    };
}

/// Commands that only read, run by both tools on each store afterwards.
const READS: &[&[&str]] = &[
    &["images"],
    &["images", "-q"],
    &["images", "-j"],
    &["containers"],
    &["containers", "-j"],
    &["layers"],
    &["layers", "-t"],
];

/// Both tools read both stores: strata must print what the reference
/// prints on the reference's store, and the reference what strata prints
/// on strata's.
fn cross_read(p: &mut Pair, extra: &[&[&str]]) {
    for args in READS.iter().chain(extra) {
        for (who, e) in [("reference's", &p.r), ("strata's", &p.s)] {
            let (want, got) = both_on(e, args);
            if want != got {
                p.problems.push(format!(
                    "{args:?} on the {who} store\n  reference: {want:?}\n  strata:    {got:?}"
                ));
            }
        }
    }
}

fn same_files(p: &mut Pair, driver: &str) {
    for f in ["images.json", "containers.json", "layers.json"] {
        let dir = match f {
            "images.json" => "images",
            "containers.json" => "containers",
            _ => "layers",
        };
        p.same_file(&format!("root/{driver}-{dir}/{f}"));
        p.same_listing(&format!("root/{driver}-{dir}"));
    }
    p.same_listing(&format!("run/{driver}-containers"));
}

fn images_and_their_data(driver: &str) {
    let mut p = Pair::new(driver);
    let tar = common::small_tar();
    p.run_in(&["import-layer", "-i", "lower", "-n", "baselayer"], &tar);
    p.run(&["create-layer", "-i", "top", "lower"]);
    p.run(&[
        "create-image",
        "-i",
        "img1",
        "-n",
        "a:1",
        "-n",
        "b:1",
        "-m",
        "md",
        "top",
    ]);
    p.run(&["create-image", "-j", "-i", "img2", "-n", "c:1", "lower"]);
    for bad in [
        &["create-image", "-i", "img3", "-n", "a:1", "top"][..],
        &["create-image", "-i", "img1", "top"],
        &["create-image", "-d", "x", "top"],
        &["create-image", "-d", "sha256:abc", "top"],
        &["create-image", "-d", "md5:abc", "top"],
        &["create-image", "-i", "wrong", "nolayer"],
    ] {
        p.run(bad);
    }
    p.run(&["create-image", "-i", "nolayers", ""]);
    p.run(&[
        "create-image",
        "-i",
        "withdigest",
        "-d",
        &format!("sha256:{}", "0".repeat(64)),
        "-m",
        "<&>",
        "top",
    ]);
    let mdfile = p.s.dir.path().join("md");
    std::fs::write(&mdfile, "from a file\n").unwrap();
    std::fs::write(p.r.dir.path().join("md"), "from a file\n").unwrap();
    p.run(&[
        "create-image",
        "-i",
        "mdf",
        "-m",
        "ignored",
        "-f",
        "{DIR}/md",
        "lower",
    ]);
    for args in [
        &["images"][..],
        &["images", "-q"],
        &["images", "-j"],
        &["images", "extra", "args"],
        &["image", "img1", "nope"],
        &["image", "-j", "nope"],
        &["image", "-j", "img1", "nolayers"],
        &["image", "nolayers", "withdigest"],
        &["list-image-data", "img1"],
        &["list-image-data", "nope"],
        &["get-image-data", "img1", "k"],
        &["get-image-data", "nope", "k"],
        &["get-image-data-size", "img1", "k"],
        &["get-image-data-size", "nope", "k"],
        &["get-image-data-digest", "img1", "k"],
    ] {
        p.run(args);
    }
    p.run_in(
        &["set-image-data", "img1", "manifest"],
        b"{\"schemaVersion\":2}",
    );
    p.run_in(&["setimagedata", "a:1", "sha256:1234"], b"cfg");
    p.run_in(&["set-image-data", "img1", ""], b"x");
    p.run_in(&["set-image-data", "nope", "k"], b"x");
    // Keys whose file names show the naming rule and its quirk.
    for key in [
        "abC",
        "tail:",
        "A",
        "abé",
        "éab",
        "a b",
        "manifest-sha256:1234",
        "Weird Key/with:stuff",
        "a/",
    ] {
        p.run_in(&["set-image-data", "img1", key], key.as_bytes());
    }
    p.run_in(
        &["set-image-data", "img1", "manifest"],
        b"{\"schemaVersion\":2,\"x\":1}",
    );
    p.run_in(
        &["set-image-data", "img1", "manifest"],
        b"{\"schemaVersion\":2,\"x\":1}",
    );
    for args in [
        &["list-image-data", "img1"][..],
        &["list-image-data", "-j", "img1"],
        &["get-image-data", "img1", "manifest"],
        &["get-image-data", "img1", "Weird Key/with:stuff"],
        &["get-image-data-size", "img1", "manifest"],
        &["get-image-data-digest", "img1", "manifest"],
        &["get-image-data-digest", "img1", "éab"],
        &["image", "img1"],
        &["image", "-j", "img1"],
        &["images"],
        &[
            "images-by-digest",
            "sha256:ea2b6b56b0fc90b3bd3b8fc1fbba9a85e6b5b6303b1a0e4ae4c29a785f1da7da",
        ],
        &[
            "images-by-digest",
            "-q",
            &format!("sha256:{}", "0".repeat(64)),
        ],
        &[
            "images-by-digest",
            "-j",
            &format!("sha256:{}", "1".repeat(64)),
        ],
        &["images-by-digest", &format!("sha256:{}", "1".repeat(64))],
        &["images-by-digest", "x"],
        &["layers"],
        &["layers", "-t"],
    ] {
        p.run(args);
    }
    p.same_listing(&format!("root/{driver}-images/img1"));
    let out = p.s.dir.path().join("got");
    p.run(&["get-image-data", "-f", "{DIR}/got", "img1", "abé"]);
    assert_eq!(std::fs::read(out).unwrap(), "abé".as_bytes());
    same_files(&mut p, driver);
    cross_read(
        &mut p,
        &[
            &["image", "img1", "img2", "mdf"],
            &["list-image-data", "img1"],
            &["get-image-data-size", "img1", "a/"],
        ],
    );
    p.finish();
}
on_drivers!(
    vfs_images_and_their_data,
    privileged_overlay_images_and_their_data,
    images_and_their_data
);

fn containers_and_their_data(driver: &str) {
    let mut p = Pair::new(driver);
    p.run_in(&["import-layer", "-i", "lower"], &common::small_tar());
    p.run(&[
        "create-image",
        "-i",
        "img",
        "-n",
        "i:1",
        "-n",
        "i:2",
        "lower",
    ]);
    p.run(&[
        "create-container",
        "-i",
        "k1",
        "-n",
        "ctr1",
        "-n",
        "ctr1b",
        "-m",
        "cm",
        "img",
    ]);
    p.run(&["create-container", "-i", "k2", "i:1"]);
    p.run(&[
        "createcontainer",
        "-i",
        "k3",
        "-n",
        "third",
        "--volatile",
        "img",
    ]);
    p.run(&["create-container", "-j", "-i", "k4", ""]);
    for bad in [
        &["create-container", "-n", "ctr1", "img"][..],
        &["create-container", "-i", "k1", "img"],
        &["create-container", "nope"],
    ] {
        p.run(bad);
    }
    for args in [
        &["containers"][..],
        &["containers", "-j"],
        &["container", "k1", "nope"],
        &["container", "-j", "k3"],
        &["container", "-j", "nope"],
        &["container", "ctr1b", "k4"],
        &["list-container-data", "k1"],
        &["list-container-data", "nope"],
    ] {
        p.run(args);
    }
    p.run_in(&["set-container-data", "k1", "config.json"], b"{}");
    p.run_in(&["setcontainerdata", "ctr1", "Some:Key"], b"xyz");
    p.run_in(&["set-container-data", "k1", ""], b"x");
    p.run_in(&["set-container-data", "nope", "k"], b"x");
    for args in [
        &["list-container-data", "k1"][..],
        &["list-container-data", "-j", "k1"],
        &["get-container-data", "k1", "config.json"],
        &["get-container-data", "k1", "nope"],
        &["get-container-data", "nope", "k"],
        &["get-container-data-size", "k1", "Some:Key"],
        &["get-container-data-size", "k1", "nope"],
        &["get-container-data-digest", "k1", "config.json"],
        &["get-container-data-digest", "k1", "nope"],
        &["get-container-dir", "k1"],
        &["get-container-run-dir", "ctr1"],
        &["get-container-dir", "nope"],
        &["container-parent-owners", "k1"],
        &["container-parent-owners", "-j", "k1", "k2"],
        &["container-parent-owners", "nope"],
        &["container", "k1"],
        &["containers"],
        &["layers"],
        &["layers", "-t"],
        &["image", "img"],
    ] {
        p.run(args);
    }
    p.same_listing(&format!("root/{driver}-containers/k1"));
    same_files(&mut p, driver);
    cross_read(
        &mut p,
        &[&["container", "k1", "k3"], &["list-container-data", "k1"]],
    );
    for args in [
        &["delete-image", "img"][..],
        &["delete-image", "-j", "img", "nope"],
        &["delete-container", "k1", "nope"],
        &["delete-container", "-j", "k2", "nope"],
        &["deletecontainer", "third"],
        &["delete-image", "-t", "img"],
        &["delete-image", "-j", "-t", "img"],
        &["delete-image", "i:2"],
        &["containers"],
        &["images"],
        &["layers"],
    ] {
        p.run(args);
    }
    same_files(&mut p, driver);
    p.finish();
}
on_drivers!(
    vfs_containers_and_their_data,
    privileged_overlay_containers_and_their_data,
    containers_and_their_data
);

fn names_metadata_and_existence(driver: &str) {
    let mut p = Pair::new(driver);
    p.run(&["create-layer", "-i", "lay", "-n", "X"]);
    p.run(&[
        "create-image",
        "-i",
        "i",
        "-n",
        "X",
        "-n",
        "Y",
        "-m",
        "imd",
        "lay",
    ]);
    p.run(&["create-image", "-i", "j", "-n", "J", "lay"]);
    p.run(&[
        "create-container",
        "-i",
        "k",
        "-n",
        "X",
        "-n",
        "C",
        "-m",
        "cmd\n",
        "i",
    ]);
    for args in [
        &["exists", "i", "k", "lay", "nope"][..],
        &["exists", "-i", "i"],
        &["exists", "-i", "k"],
        &["exists", "-c", "k"],
        &["exists", "-l", "i"],
        &["exists", "-q", "nope"],
        &["exists", "-j", "i", "nope", "k"],
        &["metadata", "i", "k", "lay", "nope"],
        &["metadata", "-q", "i", "k", "nope"],
        &["metadata", "-j", "i", "nope", "k"],
        &["metadata", "X", "Y", "C"],
        &["set-metadata", "-m", "new", "Y"],
        &["set-metadata", "-m", "cnew", "C"],
        &["set-metadata", "-m", "x", "nope"],
        &["set-metadata", "Y"],
        &["metadata", "Y", "C"],
        &["get-names", "X"],
        &["get-names", "Y"],
        &["get-names", "-j", "C"],
        &["get-names", "nope"],
        &["add-names", "-n", "x:1", "Y"],
        &["add-names", "-j", "-n", "x:2", "-n", "J", "Y"],
        &["set-names", "-j", "-n", "only", "k"],
        &["set-names", "-n", "C", "-n", "D", "k"],
        &["add-names", "-n", "q", "nope"],
        &["get-names", "j"],
        &["get-names", "k"],
        &["images"],
        &["images", "-j"],
        &["containers", "-j"],
        &["delete", "X"],
        &["delete", "-j", "nope", "Y"],
        &["layers"],
        &["images"],
    ] {
        p.run(args);
    }
    same_files(&mut p, driver);
    p.finish();
}
on_drivers!(
    vfs_names_metadata_and_existence,
    privileged_overlay_names_metadata_and_existence,
    names_metadata_and_existence
);

fn mounts_wipe_and_shutdown(driver: &str) {
    let mut p = Pair::new(driver);
    p.run_in(&["import-layer", "-i", "lower"], &common::small_tar());
    p.run(&["create-image", "-i", "img", "-n", "im", "lower"]);
    p.run(&["create-container", "-i", "k1", "img"]);
    p.run(&["create-container", "-i", "k2", "-n", "two", "img"]);
    for args in [
        &["mount", "k1"][..],
        &["mount", "two"],
        &["mount", "-j", "k1", "nope"],
        &["mount", "nope", "k2"],
        &["mounted", "k1", "img", "nope"],
        &["mounted", "-j", "k1"],
        &["layers", "-t"],
        &["unmount", "k1"],
        &["unmount", "-j", "k1", "nope"],
        &["unmount", "nope"],
        &["mounted", "k1"],
        &["shutdown"],
        &["shutdown", "-j"],
        &["delete-container", "k2"],
        &["unmount", "k1"],
        &["shutdown"],
        &["wipe", "-j"],
        &["wipe"],
        &["layers"],
        &["images"],
        &["containers"],
    ] {
        p.run(args);
    }
    same_files(&mut p, driver);
    p.finish();
}
on_drivers!(
    vfs_mounts_wipe_and_shutdown,
    privileged_overlay_mounts_wipe_and_shutdown,
    mounts_wipe_and_shutdown
);

/// Containers with ID maps get an ID-mapped copy of the image's top layer
/// (once per map) where the driver cannot shift IDs; deleting the image
/// deletes those copies first.
fn mapped_layers(driver: &str) {
    mapped_layers_on(Pair::new(driver), driver);
}

fn mapped_layers_on(mut p: Pair, driver: &str) {
    p.run_in(&["import-layer", "-i", "lower"], &common::small_tar());
    p.run(&["create-image", "-i", "img", "lower"]);
    let maps = ["--uidmap", "0:100000:65536", "--gidmap", "0:200000:65536"];
    let mut args = vec!["create-container", "-i", "m1"];
    args.extend(maps);
    args.push("img");
    p.run(&args);
    args[2] = "m2";
    p.run(&args);
    p.run(&[
        "create-container",
        "-i",
        "h",
        "--hostuidmap",
        "--hostgidmap",
        "img",
    ]);
    for args in [
        &["image", "img"][..],
        &["images", "-j"],
        &["containers", "-j"],
        &["layers"],
        &["container-parent-owners", "m1"],
    ] {
        p.run(args);
    }
    same_files(&mut p, driver);
    check_mapped_parents(&p.s, driver);
    for args in [
        &["delete-container", "m1", "m2", "h"][..],
        &["delete-image", "-t", "img"],
        &["delete-image", "-j", "img"],
        &["layers"],
    ] {
        p.run(args);
    }
    same_files(&mut p, driver);
    p.finish();
}

/// What the comparison rests on, on strata's store: where the driver
/// cannot shift at mount, the image records one mapped layer, the parent
/// of both mapped containers' layers; elsewhere none, and every container
/// sits on the image's top layer.
fn check_mapped_parents(e: &common::Env, driver: &str) {
    let json = |f: &str| -> serde_json::Value {
        let p = e.graph().join(f);
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    };
    let images = json(&format!("{driver}-images/images.json"));
    let containers = json(&format!("{driver}-containers/containers.json"));
    let layers = e.layers_json();
    let mapped: Vec<&str> = images[0]["mapped-layers"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let parent_of = |c: &str| -> String {
        let c = containers
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == c)
            .unwrap_or_else(|| panic!("{driver}: container {c}"));
        let l = layers
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == c["layer"])
            .unwrap_or_else(|| panic!("{driver}: layer of {c}"));
        l["parent"].as_str().unwrap_or_default().to_string()
    };
    let top = images[0]["layer"].as_str().unwrap();
    if driver == "overlay" {
        assert!(mapped.is_empty(), "{driver}: {mapped:?}");
        for c in ["m1", "m2", "h"] {
            assert_eq!(parent_of(c), top, "{driver}: {c}");
        }
        return;
    }
    assert_eq!(mapped.len(), 1, "{driver}: {images}");
    assert_ne!(mapped[0], top, "{driver}");
    assert_eq!(parent_of("m1"), mapped[0], "{driver}");
    assert_eq!(parent_of("m2"), mapped[0], "{driver}: reused");
    assert_eq!(parent_of("h"), top, "{driver}: host maps use the top layer");
}

#[test]
fn privileged_vfs_mapped_layers() {
    if is_root() && have_reference() {
        mapped_layers("vfs");
    }
}

/// On overlay with idmapped mounts neither tool makes a mapped layer: the
/// container's mount shifts the image's layers.
#[test]
fn privileged_overlay_mapped_layers() {
    if is_root() && have_reference() {
        mapped_layers("overlay");
    }
}

/// btrfs cannot shift at mount either: both tools snapshot the image's
/// top layer and re-own the snapshot, once per map. Each store's graph
/// root is a btrfs of its own on a loop device.
#[test]
fn privileged_btrfs_mapped_layers() {
    if !is_root() || !have_reference() {
        return;
    }
    if let Some(p) = Pair::on_loop_btrfs() {
        mapped_layers_on(p, "btrfs");
    }
}

/// Stores written by later releases: unknown fields and volatile files are
/// read, kept when strata rewrites the record, and the reference reads
/// what strata wrote.
#[test]
fn later_generations_and_unknown_fields() {
    if !have_reference() {
        return;
    }
    let e = common::Env::new("vfs");
    e.ok(&["create-layer", "-i", "l"]);
    e.ok(&["create-image", "-i", "i", "l"]);
    let ij = e.graph().join("vfs-images/images.json");
    let text = std::fs::read_to_string(&ij).unwrap();
    std::fs::write(
        &ij,
        text.replace(
            "\"layer\":\"l\"",
            "\"layer\":\"l\",\"future-image-field\":[1,{\"b\":2}]",
        ),
    )
    .unwrap();
    std::fs::write(
        e.graph().join("vfs-containers/volatile-containers.json"),
        r#"[{"id":"vc","names":["v"],"image":"i","layer":"l","created":"2024-01-01T00:00:00Z","flags":{"MountLabel":"","ProcessLabel":"","Volatile":true}}]"#,
    )
    .unwrap();
    e.ok(&["add-names", "-n", "extra", "i"]);
    let text = std::fs::read_to_string(&ij).unwrap();
    assert!(
        text.contains("\"future-image-field\":[1,{\"b\":2}]"),
        "{text}"
    );
    assert_eq!(e.ok(&["get-names", "v"]), "v\n");
    assert_eq!(e.ok(&["containers"]), "vc\n\tname: v\n");
    // The reference reads the rewritten file (it does not see the volatile
    // container, as 1.43 does not know that file).
    let o = e.reference(&["image", "i"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Name: extra"));
    assert_eq!(e.ref_ok(&["containers"]), "");
}

/// A damaged images.json is an error naming the file and the byte offset,
/// for every command that needs images, and is never written over.
#[test]
fn damaged_records_are_errors_and_kept() {
    let e = common::Env::new("vfs");
    e.ok(&["create-layer", "-i", "l"]);
    e.ok(&["create-image", "-i", "i", "l"]);
    e.ok(&["create-container", "-i", "k", "i"]);
    for f in ["vfs-images/images.json", "vfs-containers/containers.json"] {
        let p = e.graph().join(f);
        let good = std::fs::read(&p).unwrap();
        let cut = good[..good.len() - 9].to_vec();
        std::fs::write(&p, &cut).unwrap();
        for args in [
            &["images"][..],
            &["containers"],
            &["create-image", "l"],
            &["create-container", "i"],
            &["delete-layer", "l"],
            &["add-names", "-n", "x", "i"],
            &["wipe"],
        ] {
            let o = e.strata(args);
            let err = String::from_utf8_lossy(&o.stderr);
            if o.status.success() {
                // Commands that do not read this file.
                continue;
            }
            assert!(
                err.contains(f.rsplit('/').next().unwrap())
                    && err.contains(&format!("at byte {}", cut.len())),
                "{args:?}: {err}"
            );
        }
        assert!(!e.strata(&["wipe"]).status.success());
        assert_eq!(std::fs::read(&p).unwrap(), cut, "{f} was written over");
        std::fs::write(&p, &good).unwrap();
    }
}
