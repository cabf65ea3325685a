//! The walk held to the fast path's answers, and the fallback's triggers.

use std::os::fd::AsFd;
use std::os::unix::fs::symlink;

use super::*;

/// A hostile fixture tree in `<tmp>/root`, a victim directory beside it;
/// returns the temp dir and a handle of the root.
pub(crate) fn fixture() -> (tempfile::TempDir, std::fs::File) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let victim = t.path().join("victim");
    std::fs::create_dir_all(victim.join("x")).unwrap();
    std::fs::write(victim.join("secret"), b"outside").unwrap();
    for d in ["a/b/c", "run", "var", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("file"), b"inside").unwrap();
    std::fs::write(root.join("etc/secret"), b"inside etc").unwrap();
    let links = [
        ("/run", "var/run"),
        ("../..", "a/b/up2"),
        ("../../../../..", "a/b/c/up5"),
        (victim.to_str().unwrap(), "abs_victim"),
        ("../victim", "rel_victim"),
        ("/", "slash"),
        ("loop2", "loop1"),
        ("loop1", "loop2"),
        ("file", "to_file"),
        ("a/b/up2/a", "chain1"),
        ("chain1/b/c/up5/etc", "chain2"),
        ("/proc/self/root", "magic"),
        ("nowhere/deeper", "dangling"),
        ("../../victim/secret", "a/up_secret"),
        ("/etc/secret", "abs_secret"),
    ];
    for (target, name) in links {
        symlink(target, root.join(name)).unwrap();
    }
    let dir = std::fs::File::open(&root).unwrap();
    (t, dir)
}

/// Every path of the fixture worth asking about.
const PATHS: &[&str] = &[
    "",
    ".",
    "..",
    "/",
    "a/b/c",
    "a/b/c/",
    "a/b/c/.",
    "a/./b/../b/c",
    "var/run",
    "a/b/up2",
    "a/b/up2/etc",
    "a/b/c/up5",
    "a/b/c/up5/a/b",
    "../../etc",
    "/../etc/secret",
    "slash",
    "slash/etc",
    "slash/etc/secret",
    "chain1",
    "chain2",
    "chain2/secret",
    "abs_victim",
    "abs_victim/secret",
    "rel_victim",
    "rel_victim/x",
    "loop1",
    "loop1/x",
    "to_file",
    "to_file/",
    "file",
    "file/",
    "file/x",
    "magic",
    "magic/etc",
    "dangling",
    "dangling/x",
    "missing/dir",
    "a/up_secret",
    "abs_secret",
];

fn ident(fd: &OwnedFd) -> (u64, u64) {
    let st = fs::fstat(fd).unwrap();
    (st.st_dev, st.st_ino)
}

fn answer(root: BorrowedFd<'_>, path: &str, how: &How) -> Result<(u64, u64), Errno> {
    open(root, path.as_bytes(), how).map(|fd| ident(&fd))
}

fn variants() -> Vec<(&'static str, How)> {
    let refuse = |flags| How {
        symlinks: Symlinks::Refuse,
        ..How::new(flags)
    };
    vec![
        ("dir", How::dir()),
        ("read", How::new(OFlags::RDONLY)),
        ("read nofollow", How::new(OFlags::RDONLY | OFlags::NOFOLLOW)),
        ("path nofollow", How::new(OFlags::PATH | OFlags::NOFOLLOW)),
        ("path", How::new(OFlags::PATH)),
        ("refuse dir", refuse(OFlags::PATH | OFlags::DIRECTORY)),
        ("refuse read", refuse(OFlags::RDONLY)),
        (
            "refuse path nofollow",
            refuse(OFlags::PATH | OFlags::NOFOLLOW),
        ),
    ]
}

#[test]
fn walk_agrees_with_openat2() {
    let (_t, dir) = fixture();
    let mut compared = 0;
    for (what, base) in variants() {
        for p in PATHS {
            let fast = How {
                resolution: Resolution::Openat2,
                ..base
            };
            let slow = How {
                resolution: Resolution::ManualWalk,
                ..base
            };
            let a = answer(dir.as_fd(), p, &fast);
            let b = answer(dir.as_fd(), p, &slow);
            assert_eq!(a, b, "{p:?} ({what}): openat2 vs walk");
            compared += 1;
        }
    }
    assert_eq!(compared, PATHS.len() * variants().len());
}

#[test]
fn lookups_stay_inside() {
    let (t, dir) = fixture();
    let root = t.path().join("root");
    let inside = |rel: &str| ident(&std::fs::File::open(root.join(rel)).unwrap().into());
    for r in [Resolution::Openat2, Resolution::ManualWalk] {
        let how = |flags| How {
            resolution: r,
            ..How::new(flags)
        };
        let dir_how = How {
            resolution: r,
            ..How::dir()
        };
        let got = |p: &str, h: &How| answer(dir.as_fd(), p, h);
        assert_eq!(got("a/b/c/up5", &dir_how), Ok(inside("")), "{r:?}");
        assert_eq!(got("var/run", &dir_how), Ok(inside("run")), "{r:?}");
        assert_eq!(got("chain2", &dir_how), Ok(inside("etc")), "{r:?}");
        let read = how(OFlags::RDONLY);
        assert_eq!(got("abs_secret", &read), Ok(inside("etc/secret")), "{r:?}");
        assert_eq!(got("a/up_secret", &read), Err(Errno::NOENT), "{r:?}");
        assert_eq!(got("abs_victim/secret", &read), Err(Errno::NOENT), "{r:?}");
        assert_eq!(got("loop1", &read), Err(Errno::LOOP), "{r:?}");
        assert!(got("magic/etc", &dir_how).is_err(), "{r:?}");
        let refuse = How {
            symlinks: Symlinks::Refuse,
            ..read
        };
        assert_eq!(got("var/run/x", &refuse), Err(Errno::LOOP), "{r:?}");
        assert_eq!(
            got("etc/secret", &refuse),
            Ok(inside("etc/secret")),
            "{r:?}"
        );
    }
}

#[test]
fn long_paths_take_the_walk() {
    let (t, dir) = fixture();
    let long = format!("{}etc/secret", "./".repeat(PATH_MAX));
    let (fd, route) = open_routed(dir.as_fd(), long.as_bytes(), &How::new(OFlags::RDONLY)).unwrap();
    assert_eq!(route, Route::Walk);
    let want = std::fs::File::open(t.path().join("root/etc/secret")).unwrap();
    assert_eq!(ident(&fd), ident(&want.into()));
}

#[test]
fn forced_and_remembered_walks() {
    let (_t, dir) = fixture();
    let how = How::new(OFlags::RDONLY);
    let route = || open_routed(dir.as_fd(), b"etc/secret", &how).unwrap().1;
    assert!(openat2_available(), "this kernel has openat2 (5.6+)");
    {
        let _walk = force_walk();
        assert_eq!(route(), Route::Walk, "forced");
    }
    // Other tests may hold a guard at the same time; only check the fast
    // path when none does.
    if FORCED.load(Ordering::SeqCst) == 0 && !walk_forced() {
        assert_eq!(route(), Route::Openat2, "after the guard");
    }
    // ENOSYS seen once is remembered: Auto goes straight to the walk.
    OPENAT2.store(MISSING, Ordering::Relaxed);
    let remembered = route();
    OPENAT2.store(PRESENT, Ordering::Relaxed);
    assert_eq!(remembered, Route::Walk, "remembered ENOSYS");
    let strict = How {
        resolution: Resolution::Openat2,
        ..how
    };
    let (_, r) = open_routed(dir.as_fd(), b"etc/secret", &strict).unwrap();
    assert_eq!(r, Route::Openat2, "Openat2 is never forced to walk");
}
