//! The driver table's choice of driver, and the seed's helpers used through
//! the public API (FsMagic, mount checkers, RefCounter with a real mount).

use std::path::Path;
use std::sync::Arc;

use strata_driver::fsmagic::{fs_magic, FsMagic};
use strata_driver::mounts::{is_mount_point, mounted, FsChecker, MountChecker, MountinfoChecker};
use strata_driver::refcount::{RefCounter, RefGuard};
use strata_driver::table::{Drivers, StoreOptions};
use strata_driver::{Driver, Error, ErrorKind, InitOptions, Result};

fn refuse_prereq(_: &InitOptions) -> Result<Box<dyn Driver>> {
    Err(Error::Prerequisites("not here".into()))
}

fn refuse_fs(_: &InitOptions) -> Result<Box<dyn Driver>> {
    Err(Error::IncompatibleFs("not on this filesystem".into()))
}

fn broken(_: &InitOptions) -> Result<Box<dyn Driver>> {
    Err(Error::path(
        "open",
        "/broken",
        std::io::Error::other("disk on fire"),
    ))
}

fn store(dir: &Path) -> StoreOptions {
    StoreOptions {
        graph_root: dir.join("graph"),
        run_root: dir.join("run"),
        ..Default::default()
    }
}

#[test]
fn priority_skips_drivers_that_do_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Drivers::empty();
    t.register("overlay", refuse_prereq).unwrap();
    t.register("btrfs", refuse_fs).unwrap();
    t.register("vfs", strata_driver::vfs::init).unwrap();
    let d = t.new_driver(None, &store(dir.path())).unwrap();
    assert_eq!(d.name(), "vfs");
    assert!(
        dir.path().join("graph/vfs/dir").is_dir(),
        "home is <graph root>/vfs"
    );
}

#[test]
fn other_errors_stop_the_search() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Drivers::empty();
    t.register("overlay", broken).unwrap();
    t.register("vfs", strata_driver::vfs::init).unwrap();
    let e = t.new_driver(None, &store(dir.path())).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(!dir.path().join("graph/vfs").exists());
}

#[test]
fn nothing_fits() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Drivers::empty();
    t.register("overlay", refuse_prereq).unwrap();
    let e = t.new_driver(None, &store(dir.path())).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("overlay: prerequisites"), "{e}");
}

#[test]
fn a_store_keeps_its_driver() {
    let dir = tempfile::tempdir().unwrap();
    let o = store(dir.path());
    let t = Drivers::builtin();
    // First use: named explicitly.
    let d = t.new_driver(Some("vfs"), &o).unwrap();
    assert_eq!(d.name(), "vfs");
    drop(d);
    // Later, no name: the existing home wins over the priority list.
    let d = t.new_driver(None, &o).unwrap();
    assert_eq!(d.name(), "vfs");
    // Unknown and absent drivers.
    for (name, kind) in [
        ("zfs", ErrorKind::Unsupported),
        ("aufs", ErrorKind::Unsupported),
        ("devicemapper", ErrorKind::Unsupported),
    ] {
        let e = t.new_driver(Some(name), &o).err().unwrap();
        assert_eq!(e.kind(), kind, "{name}");
        assert!(e.to_string().contains(name), "{e}");
    }
}

#[test]
fn builtin_names() {
    let t = Drivers::builtin();
    for n in ["overlay", "btrfs", "vfs", "zfs", "aufs"] {
        assert!(t.names().contains(&n), "{n}");
    }
}

#[test]
fn fs_magic_of_this_filesystem_is_named() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let m = fs_magic(dir.path()).unwrap();
    assert_ne!(m, FsMagic::UNSUPPORTED);
    // The test machines use ext4, xfs, btrfs or tmpfs; all are in the table.
    assert!(m.name().is_some(), "{m}");
    assert!(mounted(m, dir.path()).unwrap());
    assert!(FsChecker::new(m).is_mounted(dir.path()));
}

/// A tmpfs mounted on a temp dir: both checkers see it, and a RefCounter
/// created after the mount counts the existing mount as one reference.
#[test]
fn privileged_checkers_and_refcounter_on_a_real_mount() {
    if !strata_testsupport::need_root("privileged_checkers_and_refcounter_on_a_real_mount") {
        return;
    }
    let dir = strata_testsupport::Scratch::new("strata-core-");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    assert!(!MountinfoChecker.is_mounted(&mnt));
    assert!(!mounted(FsMagic::TMPFS, &mnt).unwrap());
    rustix::mount::mount(
        "strata-test",
        &mnt,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .unwrap();
    assert!(is_mount_point(&mnt).unwrap());
    assert!(MountinfoChecker.is_mounted(&mnt));
    assert!(mounted(FsMagic::TMPFS, &mnt).unwrap());
    let rc = Arc::new(RefCounter::new(Box::new(FsChecker::new(FsMagic::TMPFS))));
    {
        let g = RefGuard::new(rc.clone(), &mnt);
        assert_eq!(
            g.count_at_start(),
            2,
            "the existing mount counts as a reference"
        );
    }
    assert_eq!(rc.count(&mnt), 1);
    assert_eq!(rc.decrement(&mnt), 0, "last reference: caller unmounts");
}
