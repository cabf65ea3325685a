//! Overlay driver tests with real mounts (privileged_*): layout as the
//! reference writes it, interop with `containers-storage`, mount counting,
//! deep stacks, repair, fuse-overlayfs, rootless, idmapped lowers.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_driver::overlay::Overlay;
use strata_driver::{CreateRequest, Driver, ErrorKind, IdMap, InitOptions, MountOptions};
use strata_testsupport::{mountinfo_line, mounts_under, need, need_root as privileged, reference};

/// A temp dir whose mounts are detached on drop (only mounts under it).
struct Scratch(strata_testsupport::Scratch);

impl Scratch {
    fn new() -> Self {
        Self(strata_testsupport::Scratch::new("strata-ovl-"))
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn init(&self, extra: &[&str]) -> strata_driver::Result<Overlay> {
        Overlay::new(&InitOptions {
            home: self.path().join("root/overlay"),
            run_root: self.path().join("run/overlay"),
            driver_options: extra.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }
}

fn create(d: &dyn Driver, id: &str, parent: Option<&str>) {
    d.create(&CreateRequest {
        id: id.into(),
        parent: parent.map(str::to_string),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("create {id}: {e}"));
}

fn diff_dir(s: &Scratch, id: &str) -> PathBuf {
    s.path().join("root/overlay").join(id).join("diff")
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn is_mounted(p: &Path) -> bool {
    mounts_under(p).iter().any(|m| m == p)
}

#[test]
fn privileged_overlay_layout_matches_reference() {
    if !privileged("privileged_overlay_layout_matches_reference") {
        return;
    }
    let s = Scratch::new();
    let d = s.init(&[]).unwrap();
    create(&d, "base", None);
    create(&d, "child", Some("base"));
    create(&d, "grand", Some("child"));
    let home = s.path().join("root/overlay");
    assert_eq!(
        fs::read_to_string(home.join(".has-mount-program")).unwrap(),
        "false"
    );
    assert_eq!(mode(&home.join("l")), 0o755);
    let mut links = Vec::new();
    for id in ["base", "child", "grand"] {
        let dir = home.join(id);
        assert_eq!(mode(&dir), 0o700, "{id}");
        assert_eq!(mode(&dir.join("diff")), 0o555, "{id} diff");
        assert_eq!(mode(&dir.join("work")), 0o700);
        assert_eq!(mode(&dir.join("merged")), 0o700);
        assert_eq!(mode(&dir.join("link")), 0o644);
        let link = fs::read_to_string(dir.join("link")).unwrap();
        assert_eq!(link.len(), 26, "{link:?}");
        assert!(link
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert_eq!(
            fs::read_link(home.join("l").join(&link)).unwrap(),
            PathBuf::from(format!("../{id}/diff"))
        );
        links.push(link);
    }
    assert!(home.join("base/empty").is_dir());
    assert!(!home.join("child/empty").exists());
    assert!(!home.join("base/lower").exists());
    assert_eq!(
        fs::read_to_string(home.join("child/lower")).unwrap(),
        format!("l/{}", links[0])
    );
    assert_eq!(
        fs::read_to_string(home.join("grand/lower")).unwrap(),
        format!("l/{}:l/{}", links[1], links[0])
    );
    let run = s.path().join("run/overlay");
    assert!(run.join("overlay-true").exists());
    assert!(run.join("native-diff()-true").exists() || run.join("native-diff()-false").exists());
    assert!(run.join("metacopy()-false").exists() || run.join("metacopy()-true").exists());
    // The home is bind-mounted privately until cleanup.
    assert!(is_mounted(&home));
    d.cleanup().unwrap();
    assert!(!is_mounted(&home));
}

#[test]
fn privileged_overlay_mounts_stack_and_count() {
    if !privileged("privileged_overlay_mounts_stack_and_count") {
        return;
    }
    let s = Scratch::new();
    let d = s.init(&[]).unwrap();
    create(&d, "base", None);
    create(&d, "child", Some("base"));
    fs::write(diff_dir(&s, "base").join("a"), "base-a").unwrap();
    fs::write(diff_dir(&s, "base").join("gone"), "x").unwrap();
    fs::write(diff_dir(&s, "child").join("b"), "child-b").unwrap();
    // A whiteout hides the base's file.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        diff_dir(&s, "child").join("gone"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    let m = d.get("child", &MountOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(m.join("a")).unwrap(), "base-a");
    assert_eq!(fs::read_to_string(m.join("b")).unwrap(), "child-b");
    assert!(!m.join("gone").exists());
    let line = mountinfo_line(&m);
    assert!(line.contains("upperdir="), "{line}");
    // Writes land in the child's diff.
    fs::write(m.join("new"), "n").unwrap();
    assert!(diff_dir(&s, "child").join("new").exists());

    assert_eq!(d.get("child", &MountOptions::default()).unwrap(), m);
    d.put("child").unwrap();
    assert!(is_mounted(&m), "still referenced once");
    d.put("child").unwrap();
    assert!(!is_mounted(&m));

    // A base layer mounts over its `empty` directory.
    let mb = d.get("base", &MountOptions::default()).unwrap();
    assert!(mountinfo_line(&mb).contains("/base/empty"));
    d.put("base").unwrap();

    // Read-only: no upper.
    let ro = MountOptions {
        options: vec!["ro".into()],
        ..Default::default()
    };
    let m = d.get("child", &ro).unwrap();
    assert_eq!(fs::read_to_string(m.join("b")).unwrap(), "child-b");
    assert!(fs::write(m.join("x"), "x").is_err());
    assert!(!mountinfo_line(&m).contains("upperdir="));
    d.put("child").unwrap();

    let md = d.metadata("child").unwrap();
    assert_eq!(md["UpperDir"], diff_dir(&s, "child").display().to_string());
    assert_eq!(md["LowerDir"], diff_dir(&s, "base").display().to_string());
    assert!(md.contains_key("WorkDir") && md.contains_key("MergedDir"));
    assert!(!d.metadata("base").unwrap().contains_key("LowerDir"));
    let st: Vec<String> = d.status().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        st,
        [
            "Backing Filesystem",
            "Supports d_type",
            "Native Overlay Diff",
            "Using metacopy"
        ]
    );
    assert_eq!(
        d.get("nope", &MountOptions::default()).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(d.exists("child").unwrap());
    d.remove("child").unwrap();
    assert!(!d.exists("child").unwrap());
    d.remove("child").unwrap();
    d.cleanup().unwrap();
}

#[test]
fn privileged_overlay_repairs_links() {
    if !privileged("privileged_overlay_repairs_links") {
        return;
    }
    let s = Scratch::new();
    let d = s.init(&[]).unwrap();
    create(&d, "base", None);
    create(&d, "child", Some("base"));
    fs::write(diff_dir(&s, "base").join("a"), "A").unwrap();
    let home = s.path().join("root/overlay");
    let blink = fs::read_to_string(home.join("base/link")).unwrap();
    fs::remove_file(home.join("l").join(&blink)).unwrap();
    let clink = fs::read_to_string(home.join("child/link")).unwrap();
    fs::remove_file(home.join("child/link")).unwrap();
    // Mounting the base restores its short link; the child's link file
    // comes back from l/.
    d.get("base", &MountOptions::default()).unwrap();
    d.put("base").unwrap();
    assert!(home.join("l").join(&blink).symlink_metadata().is_ok());
    let m = d.get("child", &MountOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(home.join("child/link")).unwrap(), clink);
    assert_eq!(fs::read_to_string(m.join("a")).unwrap(), "A");
    d.put("child").unwrap();
    d.cleanup().unwrap();
}

fn chain(d: &dyn Driver, s: &Scratch, n: usize) -> String {
    create(d, "l0", None);
    let bottom = diff_dir(s, "l0");
    fs::write(bottom.join("bottom"), "from-bottom").unwrap();
    fs::write(bottom.join("victim"), "deleted above").unwrap();
    fs::create_dir(bottom.join("od")).unwrap();
    fs::write(bottom.join("od/hidden"), "hidden by an opaque dir").unwrap();
    // Deletions far above the bottom (across the kernel's 500-lower limit
    // in deep chains) must still hide it.
    let upper = n * 7 / 10;
    for i in 1..n {
        let id = format!("l{i}");
        create(d, &id, Some(&format!("l{}", i - 1)));
        if i == upper {
            let dd = diff_dir(s, &id);
            rustix::fs::mknodat(
                rustix::fs::CWD,
                dd.join("victim"),
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::empty(),
                0,
            )
            .unwrap();
            fs::create_dir(dd.join("od")).unwrap();
            rustix::fs::setxattr(
                dd.join("od"),
                "trusted.overlay.opaque",
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .unwrap();
            fs::write(dd.join("od/kept"), "k").unwrap();
        }
    }
    let top = format!("l{}", n - 1);
    fs::write(diff_dir(s, &top).join("top"), "from-top").unwrap();
    top
}

fn deep(n: usize, extra: &[&str]) {
    let s = Scratch::new();
    let d = s.init(extra).unwrap();
    let t0 = std::time::Instant::now();
    let top = chain(&d, &s, n);
    let created = t0.elapsed();
    let m = d.get(&top, &MountOptions::default()).unwrap();
    let mounted = t0.elapsed() - created;
    assert_eq!(fs::read_to_string(m.join("bottom")).unwrap(), "from-bottom");
    assert_eq!(fs::read_to_string(m.join("top")).unwrap(), "from-top");
    assert!(!m.join("victim").exists(), "whiteout across the stack");
    assert!(!m.join("od/hidden").exists(), "opaque dir across the stack");
    assert!(m.join("od/kept").exists());
    fs::write(m.join("written"), "w").unwrap();
    assert!(diff_dir(&s, &top).join("written").exists());
    eprintln!("{n}-layer chain {extra:?}: create {created:?}, mount {mounted:?}");
    d.put(&top).unwrap();
    assert!(!is_mounted(&m));
    d.cleanup().unwrap();
}

#[test]
fn privileged_overlay_deep_chain_120() {
    if privileged("privileged_overlay_deep_chain_120") {
        deep(120, &[]);
    }
}

#[test]
fn privileged_overlay_deep_chain_1000() {
    if privileged("privileged_overlay_deep_chain_1000") {
        deep(1000, &[]);
    }
}

#[test]
fn privileged_overlay_fuse_mount_program() {
    if !privileged("privileged_overlay_fuse_mount_program") {
        return;
    }
    if !need(
        "privileged_overlay_fuse_mount_program",
        Path::new("/usr/bin/fuse-overlayfs").exists() && Path::new("/dev/fuse").exists(),
        "needs fuse-overlayfs and /dev/fuse",
    ) {
        return;
    }
    let s = Scratch::new();
    let d = s
        .init(&["overlay.mount_program=/usr/bin/fuse-overlayfs"])
        .unwrap();
    assert_eq!(
        fs::read_to_string(s.path().join("root/overlay/.has-mount-program")).unwrap(),
        "true"
    );
    create(&d, "base", None);
    create(&d, "child", Some("base"));
    fs::write(diff_dir(&s, "base").join("a"), "A").unwrap();
    fs::write(diff_dir(&s, "base").join("gone"), "x").unwrap();
    fs::write(diff_dir(&s, "child").join(".wh.gone"), "").unwrap();
    let m = d.get("child", &MountOptions::default()).unwrap();
    assert!(
        mountinfo_line(&m).contains("fuse"),
        "{}",
        mountinfo_line(&m)
    );
    assert_eq!(fs::read_to_string(m.join("a")).unwrap(), "A");
    assert!(!m.join("gone").exists(), "AUFS whiteout honoured");
    fs::write(m.join("w"), "W").unwrap();
    d.put("child").unwrap();
    assert!(!is_mounted(&m));
    assert_eq!(
        fs::read_to_string(diff_dir(&s, "child").join("w")).unwrap(),
        "W"
    );
    d.cleanup().unwrap();
}

#[test]
fn privileged_overlay_idmapped_lowers() {
    if !privileged("privileged_overlay_idmapped_lowers") {
        return;
    }
    let s = Scratch::new();
    let d = s.init(&[]).unwrap();
    // Probed when first asked, not at start (it costs a process and two
    // mounts that only mounts with ID maps need), then cached.
    let cached = |v: &str| {
        s.path()
            .join(format!("run/overlay/idmapped-lower-dir-{v}"))
            .exists()
    };
    assert!(!cached("true") && !cached("false"), "probed at start");
    let supported = d.supports_shifting();
    assert!(cached(&supported.to_string()));
    assert_eq!(d.features().idmapped_lower, supported);
    if !need(
        "privileged_overlay_idmapped_lowers",
        d.features().idmapped_lower,
        "the kernel lacks idmapped lowers",
    ) {
        return;
    }
    create(&d, "base", None);
    create(&d, "child", Some("base"));
    fs::write(diff_dir(&s, "base").join("owned"), "o").unwrap();
    let opts = MountOptions {
        uid_maps: vec![IdMap::new(0, 100000, 65536)],
        gid_maps: vec![IdMap::new(0, 100000, 65536)],
        ..Default::default()
    };
    let m = d.get("child", &opts).unwrap();
    let md = fs::metadata(m.join("owned")).unwrap();
    assert_eq!((md.uid(), md.gid()), (100000, 100000));
    d.put("child").unwrap();
    // No staging mounts are left behind.
    assert!(mounts_under(&s.path().join("run")).is_empty());
    let m = d.get("child", &MountOptions::default()).unwrap();
    assert_eq!(fs::metadata(m.join("owned")).unwrap().uid(), 0);
    d.put("child").unwrap();
    d.cleanup().unwrap();
}

#[test]
fn privileged_overlay_refuses_overlay_backing() {
    if !privileged("privileged_overlay_refuses_overlay_backing") {
        return;
    }
    let s = Scratch::new();
    let outer = s.init(&["overlay.skip_mount_home=true"]).unwrap();
    create(&outer, "base", None);
    let m = outer.get("base", &MountOptions::default()).unwrap();
    let err = Overlay::new(&InitOptions {
        home: m.join("home"),
        run_root: s.path().join("run2"),
        ..Default::default()
    })
    .err()
    .expect("overlay on overlay must be refused");
    assert_eq!(err.kind(), ErrorKind::IncompatibleFs, "{err}");
    outer.put("base").unwrap();
    outer.cleanup().unwrap();
}

#[test]
fn privileged_overlay_quota_needs_project_quota() {
    if !privileged("privileged_overlay_quota_needs_project_quota") {
        return;
    }
    let s = Scratch::new();
    let err = s
        .init(&["overlay.size=10M"])
        .err()
        .expect("ext4 has no project quota here");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("project quota"), "{err}");
    let d = s.init(&[]).unwrap();
    let err = d
        .create(&CreateRequest {
            id: "q".into(),
            storage_opt: [("size".to_string(), "1G".to_string())].into(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("project quota"), "{err}");
    d.cleanup().unwrap();
}

#[test]
fn privileged_overlay_additional_image_store() {
    if !privileged("privileged_overlay_additional_image_store") {
        return;
    }
    let store = Scratch::new();
    let ro = store.init(&["overlay.skip_mount_home=true"]).unwrap();
    create(&ro, "shared", None);
    fs::write(diff_dir(&store, "shared").join("s"), "S").unwrap();
    let s = Scratch::new();
    let opt = format!("overlay.imagestore={}", store.path().join("root").display());
    let d = s.init(&[&opt]).unwrap();
    assert!(d.exists("shared").unwrap());
    create(&d, "mine", Some("shared"));
    let m = d.get("mine", &MountOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(m.join("s")).unwrap(), "S");
    fs::write(m.join("mine"), "M").unwrap();
    d.put("mine").unwrap();
    assert!(!diff_dir(&store, "shared").join("mine").exists());
    // The store's own layer mounts read-only, at its place in the store.
    let m = d.get("shared", &MountOptions::default()).unwrap();
    assert!(m.starts_with(store.path()));
    assert_eq!(fs::read_to_string(m.join("s")).unwrap(), "S");
    assert!(fs::write(m.join("w"), "w").is_err());
    d.put("shared").unwrap();
    assert!(!is_mounted(&m));
    d.cleanup().unwrap();
}

fn cs(s: &Scratch, args: &[&str], stdin: Option<&Path>) -> String {
    let mut c = Command::new(strata_testsupport::REFERENCE);
    c.arg("-g")
        .arg(s.path().join("root"))
        .arg("-R")
        .arg(s.path().join("run"))
        .args(["-s", "overlay"])
        .args(args);
    if let Some(f) = stdin {
        c.stdin(fs::File::open(f).unwrap());
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap_or("")
        .to_string()
}

#[test]
fn privileged_overlay_reads_reference_layers() {
    if !privileged("privileged_overlay_reads_reference_layers") {
        return;
    }
    if reference("privileged_overlay_reads_reference_layers").is_none() {
        return;
    }
    let s = Scratch::new();
    let src = s.path().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/f"), "hello").unwrap();
    fs::write(src.join("gone"), "x").unwrap();
    let tar1 = s.path().join("l1.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg(&tar1)
        .arg(".")
        .status()
        .unwrap()
        .success());
    let src2 = s.path().join("src2");
    fs::create_dir_all(&src2).unwrap();
    fs::write(src2.join(".wh.gone"), "").unwrap();
    fs::write(src2.join("two"), "2").unwrap();
    let tar2 = s.path().join("l2.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&src2)
        .arg("-cf")
        .arg(&tar2)
        .arg(".")
        .status()
        .unwrap()
        .success());
    let l1 = cs(&s, &["import-layer"], Some(&tar1));
    let l2 = cs(&s, &["import-layer", &l1], Some(&tar2));
    let l3 = cs(&s, &["create-layer", &l2], None);
    cs(&s, &["shutdown"], None);

    let d = s.init(&[]).unwrap();
    let m = d.get(&l3, &MountOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(m.join("d/f")).unwrap(), "hello");
    assert_eq!(fs::read_to_string(m.join("two")).unwrap(), "2");
    assert!(!m.join("gone").exists());
    d.put(&l3).unwrap();
    // Our child of the reference's layer stacks the same way.
    create(&d, "ours", Some(&l3));
    let m = d.get("ours", &MountOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(m.join("two")).unwrap(), "2");
    d.put("ours").unwrap();
    let lower = fs::read_to_string(s.path().join("root/overlay/ours/lower")).unwrap();
    assert_eq!(lower.split(':').count(), 3);
    d.cleanup().unwrap();
    // The reference still mounts its own layer after we touched the home.
    let p = cs(&s, &["mount", &l3], None);
    assert_eq!(
        fs::read_to_string(Path::new(&p).join("d/f")).unwrap(),
        "hello"
    );
    cs(&s, &["unmount", &l3], None);
    cs(&s, &["shutdown"], None);
}

const CHILD_ENV: &str = "STRATA_OVERLAY_ROOTLESS_CHILD";

/// Runs inside `unshare -U -r -m`: a rootless driver with userxattr.
fn rootless_child(dir: &Path) {
    let d = Overlay::new(&InitOptions {
        home: dir.join("root/overlay"),
        run_root: dir.join("run/overlay"),
        ..Default::default()
    })
    .unwrap();
    create(&d, "base", None);
    create(&d, "child", Some("base"));
    let diff = |id: &str| dir.join("root/overlay").join(id).join("diff");
    fs::write(diff("base").join("a"), "A").unwrap();
    fs::create_dir(diff("base").join("od")).unwrap();
    fs::write(diff("base").join("od/hidden"), "h").unwrap();
    fs::create_dir(diff("child").join("od")).unwrap();
    rustix::fs::setxattr(
        diff("child").join("od"),
        "user.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let m = d.get("child", &MountOptions::default()).unwrap();
    let line = mountinfo_line(&m);
    assert!(line.contains("userxattr"), "{line}");
    assert_eq!(fs::read_to_string(m.join("a")).unwrap(), "A");
    assert!(
        !m.join("od/hidden").exists(),
        "user.overlay.opaque honoured"
    );
    d.put("child").unwrap();
    d.cleanup().unwrap();
    println!("ROOTLESS-OK");
}

#[test]
fn privileged_overlay_rootless_userxattr() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        rootless_child(Path::new(&dir));
        return;
    }
    if !privileged("privileged_overlay_rootless_userxattr") {
        return;
    }
    let s = Scratch::new();
    // The child runs as an unprivileged user's root; give it its own dir.
    let out = Command::new("unshare")
        .args(["-U", "-r", "-m", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "privileged_overlay_rootless_userxattr",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, s.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ROOTLESS-OK"),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const IDMAP_CHILD_ENV: &str = "STRATA_OVERLAY_NOIDMAP_CHILD";

#[test]
fn privileged_overlay_idmap_disabled_by_env() {
    if let Some(dir) = std::env::var_os(IDMAP_CHILD_ENV) {
        // Child: _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes is set.
        let d = Overlay::new(&InitOptions {
            home: Path::new(&dir).join("root/overlay"),
            run_root: Path::new(&dir).join("run/overlay"),
            ..Default::default()
        })
        .unwrap();
        assert!(!d.features().idmapped_lower);
        assert!(!d.supports_shifting());
        create(&d, "base", None);
        fs::write(Path::new(&dir).join("root/overlay/base/diff/f"), "f").unwrap();
        let opts = MountOptions {
            uid_maps: vec![IdMap::new(0, 100000, 65536)],
            gid_maps: vec![IdMap::new(0, 100000, 65536)],
            ..Default::default()
        };
        // Maps are not applied at mount time (the layer would have been
        // chowned when created).
        let m = d.get("base", &opts).unwrap();
        assert_eq!(fs::metadata(m.join("f")).unwrap().uid(), 0);
        d.put("base").unwrap();
        d.cleanup().unwrap();
        println!("NOIDMAP-OK");
        return;
    }
    if !privileged("privileged_overlay_idmap_disabled_by_env") {
        return;
    }
    let s = Scratch::new();
    // A probe cached as true must not override the switch.
    fs::create_dir_all(s.path().join("run/overlay")).unwrap();
    fs::write(s.path().join("run/overlay/idmapped-lower-dir-true"), "").unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "privileged_overlay_idmap_disabled_by_env",
            "--nocapture",
        ])
        .env(IDMAP_CHILD_ENV, s.path())
        .env("_CONTAINERS_OVERLAY_DISABLE_IDMAP", "yes")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("NOIDMAP-OK"),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn privileged_overlay_update_id_map_keeps_deletions() {
    if !privileged("privileged_overlay_update_id_map_keeps_deletions") {
        return;
    }
    let s = Scratch::new();
    let d = s.init(&[]).unwrap();
    create(&d, "base", None);
    create(&d, "child", Some("base"));
    let base = diff_dir(&s, "base");
    fs::write(base.join("gone"), "g").unwrap();
    fs::write(base.join("kept"), "k").unwrap();
    fs::create_dir(base.join("od")).unwrap();
    fs::write(base.join("od/hidden"), "h").unwrap();
    fs::hard_link(base.join("kept"), base.join("kept2")).unwrap();
    let child = diff_dir(&s, "child");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        child.join("gone"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    fs::create_dir(child.join("od")).unwrap();
    rustix::fs::setxattr(
        child.join("od"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let to = strata_driver::IdMappings::new(
        vec![IdMap::new(0, 300000, 65536)],
        vec![IdMap::new(0, 300000, 65536)],
    );
    d.update_layer_id_map("child", &strata_driver::IdMappings::identity(), &to, None)
        .unwrap();
    let m = d.get("child", &MountOptions::default()).unwrap();
    assert!(!m.join("gone").exists(), "whiteout kept");
    assert!(!m.join("od/hidden").exists(), "opaque dir kept");
    let k = fs::metadata(m.join("kept")).unwrap();
    assert_eq!((k.uid(), k.gid()), (300000, 300000));
    assert_eq!(
        k.ino(),
        fs::metadata(m.join("kept2")).unwrap().ino(),
        "hard link kept"
    );
    d.put("child").unwrap();
    // The base is untouched.
    assert_eq!(fs::metadata(base.join("kept")).unwrap().uid(), 0);
    let dir = s.path().join("root/overlay/child");
    assert!(!dir.join(".diff-idmap").exists() && !dir.join(".diff-old").exists());
    d.cleanup().unwrap();
}

#[test]
fn privileged_overlay_home_bind_and_merged_recreated() {
    if !privileged("privileged_overlay_home_bind_and_merged_recreated") {
        return;
    }
    let s = Scratch::new();
    let home = s.path().join("root/overlay");
    let first = s.init(&[]).unwrap();
    create(&first, "base", None);
    // A later process finds the home already bind-mounted (as the
    // reference leaves it) and still removes the bind at cleanup.
    drop(first);
    assert!(is_mounted(&home));
    let second = s.init(&[]).unwrap();
    // The reference removes `merged` when it unmounts; get recreates it.
    fs::remove_dir(home.join("base/merged")).unwrap();
    let m = second.get("base", &MountOptions::default()).unwrap();
    assert!(is_mounted(&m));
    second.put("base").unwrap();
    second.cleanup().unwrap();
    assert!(!is_mounted(&home));
}
