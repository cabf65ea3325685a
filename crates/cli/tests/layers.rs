//! create-layer, layers, layer, exists, names, metadata, layer data,
//! delete-layer, delete, status: outputs and on-disk records.

mod common;

use common::{first_line, have_reference, is_root, mode_of, Env};

/// Runs `body` on vfs, and on overlay when root.
macro_rules! on_drivers {
    ($vfs:ident, $overlay:ident, $body:ident) => {
        #[test]
        fn $vfs() {
            $body("vfs");
        }
        #[test]
        fn $overlay() {
            if is_root() {
                $body("overlay");
            }
        }
    };
}

fn create_layer_output_and_record(driver: &str) {
    let e = Env::new(driver);
    let out = e.ok(&["create-layer", "-n", "one", "-n", "two"]);
    let id = first_line(&out);
    assert_eq!(id.len(), 64, "{out:?}");
    assert_eq!(out, format!("{id}\n\tone\n\ttwo\n"));
    let child = e.ok(&[
        "create-layer",
        "--id",
        "kid",
        "-l",
        "system_u:object_r:x",
        "one",
    ]);
    assert_eq!(child, "kid\n");

    // layers.json: compact, reference field order, empty fields omitted.
    let path = e.graph().join(format!("{driver}-layers/layers.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains('\n') && !text.contains(": "),
        "not compact: {text}"
    );
    let v = e.layers_json();
    let kid = &v[1];
    let keys: Vec<&str> = kid
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["id", "parent", "mountlabel", "created"]);
    assert_eq!(kid["parent"], serde_json::Value::String(id.clone()));
    assert!(kid.get("flags").is_none(), "incomplete flag left behind");
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(mode_of(&e.graph()), 0o700);
    assert_eq!(mode_of(&e.run_root()), 0o700);
    // The lock file carries a 64-byte last-writer token with our pid.
    let lock = std::fs::read(e.graph().join(format!("{driver}-layers/layers.lock"))).unwrap();
    assert_eq!(lock.len(), 64);
    assert_ne!(&lock[16..20], &[0, 0, 0, 0]);
    let mp = e
        .run_root()
        .join(format!("{driver}-layers/mountpoints.json"));
    assert_eq!(std::fs::read_to_string(mp).unwrap(), "[]");

    let j = e.ok(&["create-layer", "-j", "--id", "jj"]);
    let rec: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(rec["id"], "jj");
    assert!(j.ends_with("}\n"));
}
on_drivers!(
    vfs_create_layer_output_and_record,
    privileged_overlay_create_layer_output_and_record,
    create_layer_output_and_record
);

fn names_metadata_and_data(driver: &str) {
    let e = Env::new(driver);
    e.ok(&["create-layer", "--id", "a", "-n", "first"]);
    e.ok(&["create-layer", "--id", "b"]);
    // Names are unique: creating with a used name fails, add-names moves it.
    let o = e.strata(&["create-layer", "-n", "first"]);
    assert!(!o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
    e.ok(&["add-names", "-n", "first", "-n", "extra", "b"]);
    assert_eq!(e.ok(&["get-names", "a"]), "");
    assert_eq!(e.ok(&["get-names", "b"]), "first\nextra\n");
    assert_eq!(e.ok(&["get-names", "-j", "b"]), "[\"first\",\"extra\"]\n");
    e.ok(&["set-names", "-n", "only", "b"]);
    assert_eq!(e.ok(&["get-names", "only"]), "only\n");

    e.ok(&["set-metadata", "-m", "some <meta>", "a"]);
    assert_eq!(e.ok(&["metadata", "a"]), "a: some <meta>\n");
    assert_eq!(e.ok(&["metadata", "-q", "a"]), "some <meta>\n");
    assert_eq!(
        e.ok(&["metadata", "-j", "a"]),
        "{\"a\":\"some \\u003cmeta\\u003e\"}\n"
    );

    e.ok_in(&["set-layer-data", "a", "blob1"], b"bigdata\n");
    e.ok_in(&["set-layer-data", "a", "Odd/Name"], b"x");
    assert_eq!(e.ok(&["get-layer-data", "a", "blob1"]), "bigdata\n");
    assert_eq!(e.ok(&["get-layer-data", "a", "Odd/Name"]), "x");
    assert_eq!(e.ok(&["list-layer-data", "a"]), "blob1\nOdd/Name\n");
    assert_eq!(
        e.ok(&["list-layer-data", "-j", "a"]),
        "[\"blob1\",\"Odd/Name\"]\n"
    );
    let dd = e.graph().join(format!("{driver}-layers/a"));
    assert!(dd.join("blob1").is_file());
    assert!(dd.join("=T2RkL05hbWU=").is_file());
    // The --file forms.
    let f = e.dir.path().join("data.in");
    std::fs::write(&f, b"from file").unwrap();
    let fs = f.to_str().unwrap();
    e.ok(&["set-layer-data", "-f", fs, "a", "fromfile"]);
    let g = e.dir.path().join("data.out");
    e.ok(&[
        "get-layer-data",
        "--file",
        g.to_str().unwrap(),
        "a",
        "fromfile",
    ]);
    assert_eq!(std::fs::read(&g).unwrap(), b"from file");
    e.ok(&["set-metadata", "--metadata-file", fs, "b"]);
    assert_eq!(e.ok(&["metadata", "-q", "b"]), "from file\n");
    let o = e.strata(&["get-layer-data", "a", "nope"]);
    assert!(!o.status.success());
    e.ok(&["delete-layer", "a"]);
    assert!(!dd.exists(), "big data left after delete");
}
on_drivers!(
    vfs_names_metadata_and_data,
    privileged_overlay_names_metadata_and_data,
    names_metadata_and_data
);

fn listing_formats(driver: &str) {
    let e = Env::new(driver);
    e.ok(&["create-layer", "--id", "base", "-n", "b1", "-n", "b2"]);
    e.ok(&["create-layer", "--id", "other"]);
    e.ok(&[
        "create-layer",
        "--id",
        "kid",
        "-n",
        "k",
        "--uidmap",
        "0:1000:10",
        "--gidmap",
        "0:2000:10",
        "base",
    ]);
    assert_eq!(
        e.ok(&["layers"]),
        "base\n\tname: b1\n\tname: b2\nother\nkid\n\tname: k\n"
    );
    assert_eq!(
        e.ok(&["layers", "-t"]),
        "(base)\n├─base\n│ name: b1\n│ name: b2\n│ └─kid\n│   name: k\n└─other\n"
    );
    let j: serde_json::Value = serde_json::from_str(&e.ok(&["layers", "-j"])).unwrap();
    assert_eq!(j.as_array().unwrap().len(), 3);
    assert_eq!(
        e.ok(&["layer", "kid"]),
        "ID: kid\nUID mapping: (container=0, host=1000, size=10)\nGID mapping: (container=0, host=2000, size=10)\nParent: base\nName: k\n"
    );
    assert_eq!(e.ok(&["exists", "kid", "b1"]), "kid: true\nb1: true\n");
    assert_eq!(e.ok(&["exists", "-q", "kid"]), "");
    assert_eq!(
        e.ok(&["exists", "-j", "kid", "base"]),
        "{\"base\":true,\"kid\":true}\n"
    );
    let o = e.strata(&["exists", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "nope: false\n");
    let st = e.ok(&["status"]);
    assert!(
        st.starts_with(&format!(
            "Root: {}\nRun Root: {}\nDriver Name: {driver}\nDriver Options: []\n",
            e.graph().display(),
            e.run_root().display()
        )),
        "{st}"
    );

    if have_reference() {
        // The reference reads the same store and prints the same.
        for args in [
            &["layers"][..],
            &["layers", "-t"],
            &["layer", "kid"],
            &["get-names", "base"],
        ] {
            assert_eq!(e.ref_ok(args), e.ok(args), "{args:?}");
        }
        // The reference prints `exists` in Go map order: compare as sets.
        let mut a: Vec<String> = e
            .ref_ok(&["exists", "kid", "b1"])
            .lines()
            .map(String::from)
            .collect();
        let mut b: Vec<String> = e
            .ok(&["exists", "kid", "b1"])
            .lines()
            .map(String::from)
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        let r: serde_json::Value = serde_json::from_str(&e.ref_ok(&["layers", "-j"])).unwrap();
        assert_eq!(r, j);
    }
}
on_drivers!(
    vfs_listing_formats,
    privileged_overlay_listing_formats,
    listing_formats
);

fn delete_rules(driver: &str) {
    let e = Env::new(driver);
    e.ok(&["create-layer", "--id", "p"]);
    e.ok(&["create-layer", "--id", "c", "p"]);
    // delete-layer checks for children; delete does not.
    let o = e.strata(&["delete-layer", "p"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("child"));
    let o = e.strata(&["delete-layer", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "nope: identifier is not a layer\n"
    );
    e.ok(&["delete-layer", "c"]);
    e.ok(&["create-layer", "--id", "c2", "p"]);
    e.ok(&["delete", "p"]);
    assert_eq!(e.ok(&["layers"]), "c2\n");
    e.ok(&["wipe"]);
    assert_eq!(e.ok(&["layers"]), "");
    assert_eq!(
        std::fs::read_to_string(e.graph().join(format!("{driver}-layers/layers.json"))).unwrap(),
        "[]"
    );
}
on_drivers!(
    vfs_delete_rules,
    privileged_overlay_delete_rules,
    delete_rules
);

fn incomplete_layers_are_removed_on_open(driver: &str) {
    let e = Env::new(driver);
    e.ok(&["create-layer", "--id", "good"]);
    e.ok(&["create-layer", "--id", "half"]);
    // Simulate a writer that died mid-way: set the flag by hand.
    let p = e.graph().join(format!("{driver}-layers/layers.json"));
    let mut v = e.layers_json();
    v[1]["flags"] = serde_json::json!({"incomplete": true});
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(e.ok(&["layers"]), "good\n");
    let v = e.layers_json();
    assert_eq!(v.as_array().unwrap().len(), 1);
}
on_drivers!(
    vfs_incomplete_layers_are_removed_on_open,
    privileged_overlay_incomplete_layers_are_removed_on_open,
    incomplete_layers_are_removed_on_open
);

#[test]
fn unknown_fields_survive_a_rewrite() {
    let e = Env::new("vfs");
    e.ok(&["create-layer", "--id", "a"]);
    let p = e.graph().join("vfs-layers/layers.json");
    let text = std::fs::read_to_string(&p).unwrap();
    let text = text.replacen(
        "\"id\":\"a\",",
        "\"id\":\"a\",\"future\":{\"z\":1,\"a\":2},",
        1,
    );
    std::fs::write(&p, &text).unwrap();
    e.ok(&["set-metadata", "-m", "m", "a"]);
    let after = std::fs::read_to_string(&p).unwrap();
    assert!(after.contains("\"future\":{\"z\":1,\"a\":2}"), "{after}");
    assert!(after.contains("\"metadata\":\"m\""), "{after}");
}

#[test]
fn id_map_flags_like_reference() {
    let e = Env::new("vfs");
    let steps: &[&[&str]] = &[
        &[
            "create-layer",
            "--id",
            "m",
            "--uidmap",
            "0:1000:100",
            "--gidmap",
            "0:2000:100",
        ],
        &["create-layer", "--id", "inherits", "m"],
        &[
            "create-layer",
            "--id",
            "host",
            "--hostuidmap",
            "--hostgidmap",
            "m",
        ],
        &["create-layer", "--id", "half", "--hostuidmap", "m"],
    ];
    for s in steps {
        e.ok(s);
    }
    let ours = e.layers_json();
    let pick = |v: &serde_json::Value| -> Vec<(serde_json::Value, serde_json::Value)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| (l["uidmap"].clone(), l["gidmap"].clone()))
            .collect()
    };
    assert_eq!(
        ours[1]["uidmap"], ours[0]["uidmap"],
        "child inherits the parent's maps"
    );
    assert!(ours[2].get("uidmap").is_none() && ours[2].get("gidmap").is_none());
    if have_reference() {
        let r = Env::new("vfs");
        for s in steps {
            let o = r.reference(s);
            assert!(
                o.status.success(),
                "{s:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert_eq!(pick(&ours), pick(&r.layers_json()));
    }
}
