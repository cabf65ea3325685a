//! `size`/`inodes` on overlay layers through XFS project quotas, on a
//! loop-backed XFS mounted with `prjquota` (privileged_*).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_driver::overlay::Overlay;
use strata_driver::{CreateRequest, Driver, InitOptions, MountOptions};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct LoopXfs {
    dir: tempfile::TempDir,
    loopdev: String,
}

impl LoopXfs {
    /// A plain XFS (see `remount_prjquota`).
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("strata-xfs-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let img = dir.path().join("img");
        fs::File::create(&img).unwrap().set_len(400 << 20).unwrap();
        run(Command::new("mkfs.xfs").arg("-q").arg(&img));
        let loopdev = run(Command::new("losetup").args(["-f", "--show"]).arg(&img));
        let me = Self { dir, loopdev };
        fs::create_dir(me.mnt()).unwrap();
        run(Command::new("mount").arg(&me.loopdev).arg(me.mnt()));
        me
    }
    fn remount_prjquota(&self) -> bool {
        let _ = rustix::mount::unmount(self.mnt(), rustix::mount::UnmountFlags::empty());
        let ok = Command::new("mount")
            .args(["-o", "prjquota"])
            .arg(&self.loopdev)
            .arg(self.mnt())
            .status()
            .unwrap()
            .success();
        if !ok {
            run(Command::new("mount").arg(&self.loopdev).arg(self.mnt()));
        }
        ok
    }
    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for LoopXfs {
    fn drop(&mut self) {
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut v: Vec<PathBuf> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|p| p.starts_with(self.dir.path()))
            .collect();
        v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for m in v {
            let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
        }
        let _ = Command::new("losetup").args(["-d", &self.loopdev]).status();
    }
}

#[test]
fn privileged_overlay_xfs_project_quota() {
    let ok = rustix::process::geteuid().is_root()
        && Path::new("/usr/sbin/mkfs.xfs").exists()
        && fs::read_to_string("/proc/filesystems").is_ok_and(|f| f.contains("xfs"));
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "needs root, mkfs.xfs and xfs"
        );
        eprintln!("skipping: needs root, mkfs.xfs and kernel xfs");
        return;
    }
    let x = LoopXfs::new();
    let init = InitOptions {
        home: x.mnt().join("root/overlay"),
        run_root: x.dir.path().join("run/overlay"),
        driver_options: vec!["overlay.size=2M".into()],
        ..Default::default()
    };
    // Without prjquota, a size is refused naming project quota and xfs.
    let err = Overlay::new(&init)
        .err()
        .expect("no project quota without prjquota");
    let msg = err.to_string();
    assert!(
        msg.contains("project quota") && msg.contains("xfs"),
        "{msg}"
    );
    if !x.remount_prjquota() {
        // This kernel lacks XFS quota support (CONFIG_XFS_QUOTA); the
        // limits themselves cannot be checked here.
        eprintln!("note: XFS prjquota mount refused by this kernel; limits not exercised");
        return;
    }
    let d = Overlay::new(&init).unwrap();
    d.create(&CreateRequest {
        id: "limited".into(),
        ..Default::default()
    })
    .unwrap();
    d.create(&CreateRequest {
        id: "few".into(),
        storage_opt: [("inodes".to_string(), "5".to_string())].into(),
        ..Default::default()
    })
    .unwrap();
    let m = d.get("limited", &MountOptions::default()).unwrap();
    let chunk = vec![7u8; 512 << 10];
    let mut written = 0;
    for i in 0..16 {
        if fs::write(m.join(format!("f{i}")), &chunk).is_err() {
            break;
        }
        written += 1;
    }
    assert!(
        (1..8).contains(&written),
        "2M limit let {written} x 512k through"
    );
    d.put("limited").unwrap();
    let m = d.get("few", &MountOptions::default()).unwrap();
    let made = (0..20)
        .take_while(|i| fs::write(m.join(format!("i{i}")), "").is_ok())
        .count();
    assert!(made < 20, "inode limit not enforced");
    d.put("few").unwrap();
    d.cleanup().unwrap();
}
