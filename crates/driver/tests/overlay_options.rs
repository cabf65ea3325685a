//! Overlay mount options and smaller behaviours (privileged_*): volatile,
//! metacopy detection, rotated diffN lowers, the diff getter.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use strata_driver::overlay::Overlay;
use strata_driver::{CreateRequest, Driver, InitOptions, MountOptions};
use strata_testsupport::{mountinfo_line, need_root as privileged, need_tool};

struct Scratch(strata_testsupport::Scratch);

impl Scratch {
    fn new() -> Self {
        Self(strata_testsupport::Scratch::new("strata-ovlo-"))
    }
    fn init(&self, opts: &[&str]) -> Overlay {
        Overlay::new(&InitOptions {
            home: self.0.path().join("root/overlay"),
            run_root: self.0.path().join("run/overlay"),
            driver_options: opts.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .unwrap()
    }
    fn layer(&self, id: &str) -> PathBuf {
        self.0.path().join("root/overlay").join(id)
    }
}

fn create(d: &dyn Driver, id: &str, parent: Option<&str>) {
    d.create(&CreateRequest {
        id: id.into(),
        parent: parent.map(str::to_string),
        ..Default::default()
    })
    .unwrap();
}

#[test]
fn privileged_overlay_volatile_and_mountopt() {
    if !privileged("privileged_overlay_volatile_and_mountopt") {
        return;
    }
    let s = Scratch::new();
    let d = s.init(&["overlay.mountopt=nodev"]);
    create(&d, "base", None);
    let m = d
        .get(
            "base",
            &MountOptions {
                volatile: true,
                ..Default::default()
            },
        )
        .unwrap();
    let line = mountinfo_line(&m);
    assert!(line.contains("volatile"), "{line}");
    assert!(line.contains("nodev"), "{line}");
    d.put("base").unwrap();
    // Options given at mount time replace the driver's mountopt.
    let m = d
        .get(
            "base",
            &MountOptions {
                options: vec!["nosuid".into()],
                ..Default::default()
            },
        )
        .unwrap();
    let line = mountinfo_line(&m);
    assert!(line.contains("nosuid") && !line.contains("nodev"), "{line}");
    d.put("base").unwrap();
    assert!(d
        .get(
            "base",
            &MountOptions {
                options: vec!["bogus".into()],
                ..Default::default()
            }
        )
        .is_err());
    d.cleanup().unwrap();
}

#[test]
fn privileged_overlay_metacopy_disables_native_diff() {
    if !privileged("privileged_overlay_metacopy_disables_native_diff") {
        return;
    }
    let s = Scratch::new();
    let d = s.init(&["overlay.mountopt=metacopy=on"]);
    let f = d.features();
    assert!(f.metacopy, "metacopy=on must be detected");
    assert!(!f.native_diff);
    let st: std::collections::HashMap<_, _> = d.status().into_iter().collect();
    assert_eq!(st["Using metacopy"], "true");
    assert_eq!(st["Native Overlay Diff"], "false");
    assert!(s
        .0
        .path()
        .join("run/overlay/metacopy(metacopy=on)-true")
        .exists());
    d.cleanup().unwrap();
    let plain = Scratch::new();
    let d = plain.init(&[]);
    assert!(!d.features().metacopy);
    d.cleanup().unwrap();
}

#[test]
fn privileged_overlay_rotated_diffs_and_diff_getter() {
    if !privileged("privileged_overlay_rotated_diffs_and_diff_getter") {
        return;
    }
    let s = Scratch::new();
    let d = s.init(&[]);
    create(&d, "base", None);
    create(&d, "child", Some("base"));
    fs::write(s.layer("base").join("diff/b"), "B").unwrap();
    fs::write(s.layer("child").join("diff/own"), "own data").unwrap();
    let r = d.diff_getter("child").unwrap();
    let mut buf = String::new();
    r.open(b"own").unwrap().read_to_string(&mut buf).unwrap();
    assert_eq!(buf, "own data");
    // Confined to the layer: `..` stops at its root.
    assert!(r.open(b"../../base/diff/b").is_err());
    assert!(r.open(b"b").is_err(), "only the layer's own files");
    drop(r);
    // A layer the reference re-owned has its old content in diff1.
    fs::create_dir(s.layer("child").join("diff1")).unwrap();
    fs::write(s.layer("child").join("diff1/rotated"), "R").unwrap();
    let m = d.get("child", &MountOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(m.join("rotated")).unwrap(), "R");
    assert_eq!(fs::read_to_string(m.join("b")).unwrap(), "B");
    d.put("child").unwrap();
    let md = d.metadata("child").unwrap();
    assert!(md["LowerDir"].contains("child/diff1"), "{md:?}");
    d.cleanup().unwrap();
}

#[test]
fn privileged_overlay_additional_layer_store() {
    if !privileged("privileged_overlay_additional_layer_store") {
        return;
    }
    let s = Scratch::new();
    let store = s.0.path().join("als");
    let reference = "docker.io/library/alpine:latest";
    let digest = "sha256:0123";
    let l = store
        .join(strata_driver::overlay::als::base64(reference.as_bytes()))
        .join(digest);
    fs::create_dir_all(l.join("diff")).unwrap();
    fs::write(l.join("diff/from-store"), "S").unwrap();
    fs::write(l.join("info"), r#"{"digest":"sha256:0123"}"#).unwrap();
    fs::write(l.join("blob"), "blob-bytes").unwrap();
    let d = s.init(&[&format!(
        "overlay.additionallayerstore={}:ref",
        store.display()
    )]);
    let als = d.additional_layer_store().expect("configured");
    assert!(als.lookup("sha256:none", reference).is_err());
    let layer = als.lookup(digest, reference).unwrap();
    let mut info = String::new();
    layer.info().unwrap().read_to_string(&mut info).unwrap();
    assert!(info.contains("0123"));
    layer.create_as("from-als", None).unwrap();
    assert!(d.exists("from-als").unwrap());
    let mut blob = String::new();
    als.lookup_by_id("from-als")
        .unwrap()
        .blob()
        .unwrap()
        .read_to_string(&mut blob)
        .unwrap();
    assert_eq!(blob, "blob-bytes");
    let m = d.get("from-als", &MountOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(m.join("from-store")).unwrap(), "S");
    assert!(
        fs::write(m.join("x"), "x").is_err(),
        "store layers are read-only"
    );
    d.put("from-als").unwrap();
    create(&d, "child", Some("from-als"));
    let m = d.get("child", &MountOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(m.join("from-store")).unwrap(), "S");
    fs::write(m.join("mine"), "m").unwrap();
    d.put("child").unwrap();
    d.remove("from-als").unwrap();
    assert!(l.join("diff/from-store").exists(), "the store's files stay");
    d.cleanup().unwrap();
}

struct WriteFile;

impl strata_driver::Differ for WriteFile {
    fn apply_diff(
        &self,
        dest: &Path,
        _: &strata_driver::ApplyDiffOptions,
    ) -> strata_driver::Result<strata_driver::DifferOutput> {
        fs::write(dest.join("staged"), "from differ").unwrap();
        Ok(strata_driver::DifferOutput {
            size: 11,
            ..Default::default()
        })
    }
}

#[test]
fn privileged_overlay_differ_staging() {
    if !privileged("privileged_overlay_differ_staging") {
        return;
    }
    let s = Scratch::new();
    let d = s.init(&[]);
    create(&d, "base", None);
    create(&d, "child", Some("base"));
    let dif = d.differ().expect("overlay supports differs");
    let opts = strata_driver::ApplyDiffOptions::default();
    let out = dif
        .apply_with_differ(Some("base"), &opts, &WriteFile)
        .unwrap();
    assert!(out
        .target
        .starts_with(s.0.path().join("root/overlay/staging")));
    assert!(
        dif.apply_from_staging("child", None, &out).is_err(),
        "wrong parent"
    );
    dif.apply_from_staging("child", Some("base"), &out).unwrap();
    assert!(!out.target.exists());
    assert_eq!(
        dif.differ_target("child").unwrap(),
        s.layer("child").join("diff")
    );
    let m = d.get("child", &MountOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(m.join("staged")).unwrap(), "from differ");
    d.put("child").unwrap();
    // Abandoned staging directories are removed; paths elsewhere refused.
    let out = dif.apply_with_differ(None, &opts, &WriteFile).unwrap();
    dif.cleanup_staging(&out.target).unwrap();
    assert!(!out.target.exists());
    assert!(dif.cleanup_staging(&s.layer("base")).is_err());
    assert!(s.layer("base").exists());
    d.cleanup().unwrap();
}

#[test]
fn privileged_overlay_falls_back_to_fuse_when_kernel_overlay_unusable() {
    if !privileged("privileged_overlay_falls_back_to_fuse_when_kernel_overlay_unusable") {
        return;
    }
    if !need_tool(
        "privileged_overlay_falls_back_to_fuse_when_kernel_overlay_unusable",
        "/usr/bin/fuse-overlayfs",
    ) {
        return;
    }
    let s = Scratch::new();
    // A cached failed probe, as a kernel without overlay would leave.
    let run = s.0.path().join("run/overlay");
    fs::create_dir_all(&run).unwrap();
    fs::write(run.join("overlay-false"), "no overlay here").unwrap();
    let d = s.init(&[]);
    assert_eq!(
        d.mount_program(),
        Some(Path::new("/usr/bin/fuse-overlayfs"))
    );
    assert_eq!(
        fs::read_to_string(s.0.path().join("root/overlay/.has-mount-program")).unwrap(),
        "true"
    );
    create(&d, "base", None);
    fs::write(s.layer("base").join("diff/f"), "F").unwrap();
    let m = d.get("base", &MountOptions::default()).unwrap();
    assert!(mountinfo_line(&m).contains("fuse"));
    assert_eq!(fs::read_to_string(m.join("f")).unwrap(), "F");
    d.put("base").unwrap();
    d.cleanup().unwrap();
}
