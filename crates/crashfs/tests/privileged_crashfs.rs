//! The filesystem through the kernel: what survives a cut, what a traced
//! `syncfs` makes durable. FUSE mounts need root: these tests fail under
//! `CI` without it and skip (saying why) otherwise.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use strata_crashfs::{Content, CrashFs, Cut, Ended, Model, Tree};

fn can_mount() -> bool {
    let root = rustix_is_root();
    let fuse = Path::new("/dev/fuse").exists();
    if root && fuse {
        return true;
    }
    let why = format!("needs root and /dev/fuse (root: {root}, /dev/fuse: {fuse})");
    if std::env::var_os("CI").is_some() {
        panic!("{why}");
    }
    eprintln!("skipping: {why}");
    false
}

fn rustix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn file(t: &Tree, p: &str) -> Option<Vec<u8>> {
    match &t.nodes.get(&t.resolve(p.as_ref())?)?.content {
        Content::File(d) => Some(d.clone()),
        _ => None,
    }
}

#[test]
fn privileged_unsynced_writes_are_lost_synced_ones_kept() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fs = CrashFs::mount(dir.path(), Tree::default(), Model::Journal).unwrap();
    let m = dir.path();
    std::fs::create_dir(m.join("d")).unwrap();
    let mut a = std::fs::File::create(m.join("d/a")).unwrap();
    a.write_all(b"synced").unwrap();
    a.sync_all().unwrap();
    std::fs::write(m.join("d/b"), b"lost").unwrap();
    // Atomic replace without a directory sync: the rename is not durable
    // until something is synced after it.
    std::fs::write(m.join("d/.tmp"), b"new").unwrap();
    std::fs::File::open(m.join("d/.tmp"))
        .unwrap()
        .sync_all()
        .unwrap();
    std::fs::rename(m.join("d/.tmp"), m.join("d/a")).unwrap();
    std::os::unix::fs::symlink("a", m.join("d/l")).unwrap();
    assert_eq!(std::fs::read(m.join("d/a")).unwrap(), b"new");
    assert_eq!(fs.counts().syncs, 2);
    drop(a);
    let t = fs.power_cut().unwrap();
    assert_eq!(file(&t, "d/a").as_deref(), Some(&b"synced"[..]));
    assert_eq!(
        file(&t, "d/b").as_deref(),
        Some(&b""[..]),
        "name durable, data not"
    );
    assert_eq!(
        file(&t, "d/.tmp").as_deref(),
        Some(&b"new"[..]),
        "rename lost"
    );
    assert!(t.resolve("d/l".as_ref()).is_none());

    // The survivor mounts again and reads back.
    let fs = CrashFs::mount(dir.path(), t, Model::Journal).unwrap();
    assert_eq!(std::fs::read(m.join("d/a")).unwrap(), b"synced");
    let names: Vec<_> = std::fs::read_dir(m.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    fs.shut_down().unwrap();
}

#[test]
fn privileged_traced_syncfs_makes_everything_durable_and_cuts_kill() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fs = CrashFs::mount(dir.path(), Tree::default(), Model::Directory).unwrap();
    let script = "echo one > f1; sync -f .; echo two > f2; sync -f .; echo three > f3";
    let sh = OsStr::new("/bin/sh");
    let args = [OsStr::new("-c"), OsStr::new(script)];
    let cwd = dir.path().to_path_buf();
    let ended = fs.run(sh, &args, |c| {
        c.current_dir(&cwd);
    });
    assert_eq!(ended.unwrap(), Ended::Exited(0));
    let counts = fs.counts();
    assert_eq!(counts.syncs, 2, "{counts:?}");
    let t = fs.power_cut().unwrap();
    assert_eq!(file(&t, "f1").as_deref(), Some(&b"one\n"[..]));
    assert_eq!(file(&t, "f2").as_deref(), Some(&b"two\n"[..]));
    assert!(t.resolve("f3".as_ref()).is_none());

    // Cut at the second sync: the program dies there, f2 is not durable.
    let fs = CrashFs::mount(dir.path(), Tree::default(), Model::Directory).unwrap();
    fs.set_cut(Cut::BeforeSync(2));
    let ended = fs.run(sh, &args, |c| {
        c.current_dir(&cwd);
    });
    assert_eq!(ended.unwrap(), Ended::Killed);
    let t = fs.power_cut().unwrap();
    assert_eq!(file(&t, "f1").as_deref(), Some(&b"one\n"[..]));
    assert!(t.resolve("f2".as_ref()).is_none());
}
