//! btrfs driver tests on a loop-backed btrfs made per test (privileged_*).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use strata_driver::btrfs::Btrfs;
use strata_driver::conformance::Suite;
use strata_driver::{CreateRequest, Driver, ErrorKind, InitOptions, MountOptions};
use strata_testsupport::{need_root, reference, LoopFs, LoopOptions};

/// A loop-backed btrfs mounted in a temp dir; detached on drop.
struct LoopBtrfs(LoopFs);

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl LoopBtrfs {
    /// `None` (after saying why) when the test cannot run here.
    fn new(test: &str) -> Option<Self> {
        LoopFs::new(test, &LoopOptions::new("btrfs", 256)).map(Self)
    }
    fn mnt(&self) -> &Path {
        self.0.mnt()
    }
    fn dir(&self) -> &Path {
        self.0.dir()
    }
    fn init(&self, extra: &[&str]) -> strata_driver::Result<Btrfs> {
        Btrfs::new(&InitOptions {
            home: self.mnt().join("root/btrfs"),
            run_root: self.dir().join("run/btrfs"),
            driver_options: extra.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }
}

/// Mounts a fresh loop-backed btrfs on a conformance case's graph root.
fn prepare(case: &str, graph: &Path) -> Option<Box<dyn std::any::Any>> {
    let img = graph.with_file_name("btrfs.img");
    let fs = LoopFs::at(case, &img, graph, &LoopOptions::new("btrfs", 512))?;
    Some(Box::new(fs))
}

fn suite() -> Suite {
    let mut s = Suite::new("btrfs", strata_driver::btrfs::init);
    s.image_store_key = None;
    s.prepare = Some(prepare);
    s
}

mod conformance {
    use super::suite;
    strata_driver::conformance_tests!(suite());
}

fn create(d: &dyn Driver, id: &str, parent: Option<&str>) {
    d.create(&CreateRequest {
        id: id.into(),
        parent: parent.map(str::to_string),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("create {id}: {e}"));
}

#[test]
fn privileged_btrfs_layers_are_snapshots() {
    let Some(fsys) = LoopBtrfs::new("privileged_btrfs_layers_are_snapshots") else {
        return;
    };
    let d = fsys.init(&[]).unwrap();
    create(&d, "base", None);
    let b = d.get("base", &MountOptions::default()).unwrap();
    assert_eq!(b, fsys.mnt().join("root/btrfs/subvolumes/base"));
    // A subvolume root: inode 256.
    assert_eq!(fs::metadata(&b).unwrap().ino(), 256);
    fs::write(b.join("a"), "A").unwrap();
    d.put("base").unwrap();
    create(&d, "child", Some("base"));
    let c = d.get("child", &MountOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(c.join("a")).unwrap(), "A");
    fs::write(c.join("a"), "changed").unwrap();
    fs::write(c.join("c"), "C").unwrap();
    assert_eq!(
        fs::read_to_string(b.join("a")).unwrap(),
        "A",
        "parent unchanged"
    );
    assert!(!b.join("c").exists());
    let list = run(Command::new("btrfs")
        .args(["subvolume", "list"])
        .arg(fsys.mnt()));
    assert!(list.contains("root/btrfs/subvolumes/child"), "{list}");
    assert_eq!(
        d.create(&CreateRequest {
            id: "child".into(),
            ..Default::default()
        })
        .unwrap_err()
        .kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        d.get("nope", &MountOptions::default()).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(d
        .get(
            "child",
            &MountOptions {
                options: vec!["nodev".into()],
                ..Default::default()
            }
        )
        .is_err());

    // A subvolume nested inside a layer goes away with it.
    run(Command::new("btrfs")
        .args(["subvolume", "create"])
        .arg(c.join("nested")));
    fs::write(c.join("nested/f"), "n").unwrap();
    d.remove("child").unwrap();
    assert!(!d.exists("child").unwrap());
    let list = run(Command::new("btrfs")
        .args(["subvolume", "list"])
        .arg(fsys.mnt()));
    assert!(!list.contains("child"), "{list}");
    d.remove("child").unwrap();
    d.cleanup().unwrap();
}

#[test]
fn privileged_btrfs_size_quota() {
    let Some(fsys) = LoopBtrfs::new("privileged_btrfs_size_quota") else {
        return;
    };
    let d = fsys.init(&["btrfs.min_space=1M"]).unwrap();
    let small = d.create(&CreateRequest {
        id: "tiny".into(),
        storage_opt: [("size".to_string(), "512k".to_string())].into(),
        ..Default::default()
    });
    assert!(small.unwrap_err().to_string().contains("min_space"));
    assert!(!d.exists("tiny").unwrap());
    d.create(&CreateRequest {
        id: "q".into(),
        storage_opt: [("size".to_string(), "4M".to_string())].into(),
        ..Default::default()
    })
    .unwrap();
    let p = d.get("q", &MountOptions::default()).unwrap();
    let show = run(Command::new("btrfs")
        .args(["qgroup", "show", "-r", "--raw"])
        .arg(fsys.mnt()));
    assert!(show.contains("4194304"), "{show}");
    // Writing past the limit fails with EDQUOT.
    let data = vec![1u8; 1 << 20];
    let mut failed = false;
    for i in 0..16 {
        let r = fs::write(p.join(format!("f{i}")), &data).map(|_| rustix::fs::sync());
        if r.is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "quota not enforced");
    d.remove("q").unwrap();
    d.cleanup().unwrap();
}

#[test]
fn privileged_btrfs_refuses_other_filesystems() {
    if !need_root("privileged_btrfs_refuses_other_filesystems") {
        return;
    }
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    // /var/tmp is not btrfs on the machines this runs on; make sure.
    let st = rustix::fs::statfs(dir.path()).unwrap();
    #[allow(clippy::unnecessary_cast)]
    if st.f_type as i64 == 0x9123_683e {
        eprintln!("skipping: /var/tmp is btrfs");
        return;
    }
    let err = Btrfs::new(&InitOptions {
        home: dir.path().join("btrfs"),
        run_root: dir.path().join("run"),
        ..Default::default()
    })
    .err()
    .expect("not btrfs");
    assert_eq!(err.kind(), ErrorKind::Prerequisites);
}

#[test]
fn privileged_btrfs_reads_reference_layers() {
    let test = "privileged_btrfs_reads_reference_layers";
    let Some(cs_bin) = reference(test) else {
        return;
    };
    let Some(fsys) = LoopBtrfs::new(test) else {
        return;
    };
    let src = fsys.dir().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "ref").unwrap();
    let tar = fsys.dir().join("l.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    let cs = |args: &[&str], stdin: Option<&Path>| {
        let mut c = Command::new(cs_bin);
        c.arg("-g")
            .arg(fsys.mnt().join("root"))
            .arg("-R")
            .arg(fsys.dir().join("run"))
            .args(["-s", "btrfs"])
            .args(args);
        if let Some(f) = stdin {
            c.stdin(fs::File::open(f).unwrap());
        }
        run(&mut c).lines().last().unwrap_or("").to_string()
    };
    let l1 = cs(&["import-layer"], Some(&tar));
    let l2 = cs(&["create-layer", &l1], None);
    cs(&["shutdown"], None);
    let d = fsys.init(&[]).unwrap();
    let p = d.get(&l2, &MountOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(p.join("f")).unwrap(), "ref");
    create(&d, "ours", Some(&l2));
    assert_eq!(
        fs::read_to_string(d.get("ours", &MountOptions::default()).unwrap().join("f")).unwrap(),
        "ref"
    );
    d.remove("ours").unwrap();
    d.cleanup().unwrap();
}
