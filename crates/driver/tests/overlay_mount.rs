//! The mount paths below the overlay driver, each forced on its own
//! (privileged_*): classic mount(2), home-relative short paths when the
//! absolute list exceeds a page, fsopen with `lowerdir+`, and nested
//! overlays for more than the kernel's 500 lowers.

use std::fs;
use std::path::{Path, PathBuf};

use rustix::mount::UnmountFlags;
use strata_driver::overlay::mounting::{mount_kernel, Staging, MAX_STACK};
use strata_sys::mount::{
    mount_overlay_classic, mount_overlay_fsopen, mount_overlay_relative, overlay_data, unmount,
    OverlayMount, MOUNT_DATA_MAX,
};
use strata_testsupport::{need_root as privileged, Scratch};

/// `n` lower dirs under `<tmp>/home/l/<26 chars>`; the last (bottom) one has
/// `bottom`, each has `f<i>`. Returns (home, lowers nearest first).
fn layers(t: &Scratch, n: usize) -> (PathBuf, Vec<PathBuf>) {
    let home = t.path().join("home");
    let l = home.join("l");
    fs::create_dir_all(&l).unwrap();
    let lowers: Vec<PathBuf> = (0..n)
        .map(|i| {
            let p = l.join(format!("{i:0>26}"));
            fs::create_dir(&p).unwrap();
            fs::write(p.join(format!("f{i}")), "x").unwrap();
            p
        })
        .collect();
    fs::write(lowers[n - 1].join("bottom"), "b").unwrap();
    for d in ["upper", "work", "merged"] {
        fs::create_dir(home.join(d)).unwrap();
    }
    (home, lowers)
}

fn rw(home: &Path, lowers: Vec<PathBuf>) -> OverlayMount {
    OverlayMount {
        lowers,
        upper: Some(home.join("upper")),
        work: Some(home.join("work")),
        options: vec![],
    }
}

fn check(home: &Path, n: usize) {
    let m = home.join("merged");
    assert_eq!(fs::read_to_string(m.join("bottom")).unwrap(), "b");
    assert!(m.join("f0").exists() && m.join(format!("f{}", n - 1)).exists());
    fs::write(m.join("new"), "n").unwrap();
    assert!(home.join("upper/new").exists());
    unmount(&m, UnmountFlags::empty()).unwrap();
}

fn tmp() -> Scratch {
    Scratch::new("strata-ovlm-")
}

#[test]
fn privileged_overlay_mount_classic_and_relative() {
    if !privileged("privileged_overlay_mount_classic_and_relative") {
        return;
    }
    let t = tmp();
    let (home, lowers) = layers(&t, 100);
    let m = rw(&home, lowers.clone());
    assert!(
        overlay_data(&m).len() > MOUNT_DATA_MAX,
        "absolute list must exceed a page"
    );
    let err = mount_overlay_classic(&m, &home.join("merged")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ArgumentListTooLong);
    let rel = OverlayMount {
        lowers: lowers
            .iter()
            .map(|l| l.strip_prefix(&home).unwrap().to_path_buf())
            .collect(),
        ..m.clone()
    };
    assert!(overlay_data(&rel).len() <= MOUNT_DATA_MAX);
    let cwd = std::env::current_dir().unwrap();
    mount_overlay_relative(&rel, &home, &home.join("merged")).unwrap();
    assert_eq!(
        std::env::current_dir().unwrap(),
        cwd,
        "process cwd untouched"
    );
    check(&home, 100);

    let small = rw(&home, lowers[..3].to_vec());
    mount_overlay_classic(&small, &home.join("merged")).unwrap();
    assert!(home.join("merged/f0").exists());
    unmount(&home.join("merged"), UnmountFlags::empty()).unwrap();
}

#[test]
fn privileged_overlay_mount_fsopen_lowerdir_plus() {
    if !privileged("privileged_overlay_mount_fsopen_lowerdir_plus") {
        return;
    }
    let t = tmp();
    let (home, lowers) = layers(&t, MAX_STACK);
    mount_overlay_fsopen(&rw(&home, lowers), &home.join("merged")).unwrap();
    check(&home, MAX_STACK);
}

#[test]
fn privileged_overlay_mount_nested_beyond_kernel_limit() {
    if !privileged("privileged_overlay_mount_nested_beyond_kernel_limit") {
        return;
    }
    let t = tmp();
    let n = MAX_STACK + 120;
    let (home, lowers) = layers(&t, n);
    let err = mount_overlay_fsopen(&rw(&home, lowers.clone()), &home.join("merged"));
    assert!(
        err.is_err(),
        "the kernel refuses more than {MAX_STACK} lowers"
    );
    let stage = t.path().join("stage");
    {
        let mut staging = Staging::new(stage.clone());
        mount_kernel(
            &rw(&home, lowers),
            &home,
            &home.join("merged"),
            &mut staging,
        )
        .unwrap();
    }
    // Staging mounts are gone; the final mount keeps its own references.
    assert!(!stage.exists());
    check(&home, n);
}
