//! `size`/`inodes` on overlay layers through XFS project quotas, on a
//! loop-backed XFS mounted with `prjquota` (privileged_*).

use std::fs;

use strata_driver::overlay::Overlay;
use strata_driver::{CreateRequest, Driver, InitOptions, MountOptions};
use strata_testsupport::{unmet, LoopFs, LoopOptions};

/// A plain XFS on a loop device, and the driver's options with a size.
fn xfs(test: &str) -> Option<(LoopFs, InitOptions)> {
    let x = LoopFs::new(test, &LoopOptions::new("xfs", 400))?;
    let init = InitOptions {
        home: x.mnt().join("root/overlay"),
        run_root: x.dir().join("run/overlay"),
        driver_options: vec!["overlay.size=2M".into()],
        ..Default::default()
    };
    Some((x, init))
}

/// Without `prjquota`, a size is refused naming project quota and xfs.
#[test]
fn privileged_overlay_xfs_size_needs_project_quota() {
    let Some((_x, init)) = xfs("privileged_overlay_xfs_size_needs_project_quota") else {
        return;
    };
    let err = Overlay::new(&init)
        .err()
        .expect("no project quota without prjquota");
    let msg = err.to_string();
    assert!(
        msg.contains("project quota") && msg.contains("xfs"),
        "{msg}"
    );
}

/// With `prjquota`, sizes and inode counts are enforced. A kernel without
/// XFS quota support (`CONFIG_XFS_QUOTA`) refuses the mount option: that is
/// an unmet need, a failure when run. The CI machine's kernel (6.18, built
/// without `CONFIG_XFS_QUOTA`; ext4 refuses `prjquota` too, wanting
/// `CONFIG_QFMT_V2`) cannot enforce a project quota at all, so this test is ignored by
/// default, listed as such in every run, and run with `--ignored` on a
/// kernel that has quotas (README, "Tests that need what CI lacks").
#[test]
#[ignore = "needs a kernel with CONFIG_XFS_QUOTA (the CI kernel has no quota support); run with --ignored"]
fn privileged_overlay_xfs_project_quota_limits() {
    let test = "privileged_overlay_xfs_project_quota_limits";
    let Some((x, init)) = xfs(test) else {
        return;
    };
    if let Err(e) = x.remount("prjquota") {
        unmet(test, &format!("the kernel refuses XFS prjquota: {e}"));
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
