//! Differential tests against Debian's `containers-storage` (root only):
//! the same edits made through the reference's own mounts, then `changes`,
//! `diffsize` and `diff` compared with strata's.

mod changes_util;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use changes_util::*;
use strata_archive::changes::{
    changes_between, changes_size, export_changes, export_overlay_upper, overlay_changes, Change,
    ExportOptions,
};
use strata_archive::entry::{EntryKind, Header, Timestamp};
use strata_archive::writer::TarWriter;
use strata_archive::OpaqueXattr;
use strata_testsupport::ReferenceStore as Reference;

fn file(path: &str, data: &[u8]) -> (Header, Vec<u8>) {
    let mut h = Header::new(path, EntryKind::File);
    h.size = data.len() as u64;
    h.mtime = Timestamp {
        sec: 1_600_000_000,
        nsec: 0,
    };
    (h, data.to_vec())
}

fn node(path: &str, kind: EntryKind) -> (Header, Vec<u8>) {
    let mut h = Header::new(path, kind);
    h.mtime = Timestamp {
        sec: 1_600_000_000,
        nsec: 0,
    };
    (h, Vec::new())
}

/// The parent layer of every differential test.
fn base_tar() -> Vec<u8> {
    let mut t = TarWriter::new(Vec::new());
    let entries = [
        node("etc", EntryKind::Directory),
        file("etc/passwd", b"root:x:0:0\n"),
        file("etc/group", b"a\n"),
        file("etc/hl", b"h1\n"),
        node(
            "etc/hl2",
            EntryKind::HardLink {
                target: b"etc/hl".to_vec(),
            },
        ),
        node(
            "etc/link",
            EntryKind::Symlink {
                target: b"passwd".to_vec(),
            },
        ),
        node("usr", EntryKind::Directory),
        node("usr/bin", EntryKind::Directory),
        file("usr/bin/tool", b"#!/bin/sh\n"),
        file("usr/bin/same", b"same\n"),
        node("var", EntryKind::Directory),
        node("var/lib", EntryKind::Directory),
        node("var/lib/x", EntryKind::Directory),
        node("del", EntryKind::Directory),
        node("del/sub", EntryKind::Directory),
        file("del/sub/f", b"f\n"),
        file("del/g", b"g\n"),
        node("opq", EntryKind::Directory),
        file("opq/old", b"old\n"),
        node("fifo", EntryKind::Fifo),
        node("dev", EntryKind::Directory),
        node("dev/null", EntryKind::CharDevice { major: 1, minor: 3 }),
        file("tochange", b"file\n"),
        node("todir", EntryKind::Directory),
        file("todir/inside", b"i\n"),
    ];
    for (h, data) in entries {
        t.append(&h, &data[..]).expect("append");
    }
    t.finish().expect("finish")
}

fn setx(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).expect("setxattr");
}

/// Edits of every kind, made in a mounted child layer.
fn edit(m: &Path) {
    std::fs::write(m.join("etc/passwd"), b"changed\n").expect("write");
    std::fs::set_permissions(m.join("etc/group"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    std::fs::remove_dir_all(m.join("del/sub")).expect("rm");
    std::fs::remove_file(m.join("etc/link")).expect("rm");
    symlink("group", m.join("etc/link")).expect("symlink");
    std::fs::create_dir_all(m.join("new/deep")).expect("mkdir");
    std::fs::write(m.join("new/deep/file"), b"n\n").expect("write");
    std::os::unix::fs::lchown(m.join("usr/bin/tool"), Some(5), Some(6)).expect("chown");
    setx(&m.join("var/lib/x"), "user.foo", b"bar");
    setx(
        &m.join("etc/hl"),
        "security.capability",
        &[1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    std::fs::write(m.join("etc/newhl"), b"ff\n").expect("write");
    std::fs::hard_link(m.join("etc/newhl"), m.join("etc/newhl2")).expect("link");
    std::fs::hard_link(m.join("etc/newhl"), m.join("usr/newhl3")).expect("link");
    std::fs::remove_file(m.join("fifo")).expect("rm");
    std::fs::remove_file(m.join("tochange")).expect("rm");
    std::fs::create_dir(m.join("tochange")).expect("mkdir");
    std::fs::remove_dir_all(m.join("todir")).expect("rm");
    std::fs::write(m.join("todir"), b"now a file\n").expect("write");
    std::fs::remove_dir_all(m.join("opq")).expect("rm");
    std::fs::create_dir(m.join("opq")).expect("mkdir");
    std::fs::write(m.join("opq/new"), b"new\n").expect("write");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        m.join("dev/zero"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 5),
    )
    .expect("mknod");
    std::fs::write(m.join("n".repeat(120)), b"long\n").expect("write");
    symlink("t".repeat(150), m.join("longlink")).expect("symlink");
    std::os::unix::fs::lchown(m.join("etc/group"), Some(3_000_000), Some(3_000_001))
        .expect("chown");
}

fn sorted(mut v: Vec<Change>) -> Vec<Change> {
    v.sort_by_key(canonical_key);
    v
}

fn lines(v: &[Change]) -> String {
    v.iter().map(|c| c.to_line() + "\n").collect()
}

fn tempdir() -> strata_testsupport::Scratch {
    strata_testsupport::Scratch::new("strata-changes-")
}

/// Compares two archives member by member, byte for byte, after blanking
/// what the reference stamps with the current time.
fn assert_same_archive(ours: &[u8], theirs: &[u8]) {
    let mut a = members(ours);
    let mut b = members(theirs);
    a.iter_mut().for_each(mask_whiteout);
    b.iter_mut().for_each(mask_whiteout);
    let names = |v: &[Member]| {
        v.iter()
            .map(|m| String::from_utf8_lossy(&m.name).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&a), names(&b), "member lists differ");
    for (x, y) in a.iter().zip(&b) {
        assert!(
            x.raw == y.raw,
            "member {} differs:\nours   {:?}\ntheirs {:?}",
            String::from_utf8_lossy(&x.name),
            String::from_utf8_lossy(&x.raw),
            String::from_utf8_lossy(&y.raw)
        );
    }
}

#[test]
fn privileged_vfs_changes_size_and_diff_match_reference() {
    if !can_run_reference("privileged_vfs_changes_size_and_diff_match_reference") {
        return;
    }
    let tmp = tempdir();
    let cs = Reference::new(tmp.path(), "vfs");
    let parent = cs.import(&base_tar());
    let child = cs.create_child(&parent);
    let m = cs.mount(&child);
    edit(&m);
    // (The reference's overlay `changes` fails on this one: it stats
    // lower/tochange/child through the old file.)
    std::fs::write(m.join("tochange/child"), b"c\n").expect("write");
    cs.unmount(&child);
    let dir = |id: &str| cs.graph.join("vfs/dir").join(id);

    // changes: same set; ours is the reference's order with siblings by name.
    let theirs = parse_lines(&String::from_utf8(cs.run(&["changes", &child])).expect("utf-8"));
    let ours = changes_between(&dir(&child), Some(&dir(&parent))).expect("changes");
    assert_eq!(
        lines(&ours),
        lines(&sorted(theirs.clone())),
        "ours vs reference (reordered)"
    );
    assert_eq!(ours, sorted(ours.clone()), "ours is in canonical order");

    // diffsize.
    let size: u64 = cs.run_line(&["diffsize", &child]).parse().expect("number");
    assert_eq!(changes_size(&dir(&child), &ours).expect("size"), size);

    // diff: same members, same bytes.
    let mut tar = Vec::new();
    export_changes(&dir(&child), &ours, &ExportOptions::default(), &mut tar).expect("export");
    let reference = cs.run(&["diff", &child]);
    assert_same_archive(&tar, &reference);

    // Our export applied by the reference onto a fresh child is the child.
    let again = cs.create_child(&parent);
    cs.run_input(&["applydiff", &again], &tar);
    assert_same_tree(
        &snapshot(&dir(&child), false),
        &snapshot(&dir(&again), false),
    );
}

fn lowers_of(graph: &Path, id: &str) -> Vec<PathBuf> {
    let overlay = graph.join("overlay");
    match std::fs::read_to_string(overlay.join(id).join("lower")) {
        Ok(text) => text
            .trim()
            .split(':')
            .map(|l| std::fs::canonicalize(overlay.join(l)).expect("lower link"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn privileged_overlay_changes_size_and_diff_match_reference() {
    if !can_run_reference("privileged_overlay_changes_size_and_diff_match_reference") {
        return;
    }
    let tmp = tempdir();
    let cs = Reference::new(tmp.path(), "overlay");
    let base = cs.import(&base_tar());
    // A middle layer, so that lowers have two entries.
    let mid = cs.create_child(&base);
    let m = cs.mount(&mid);
    std::fs::write(m.join("etc/mid"), b"mid\n").expect("write");
    std::fs::remove_file(m.join("del/g")).expect("rm");
    cs.unmount(&mid);
    let child = cs.create_child(&mid);
    let m = cs.mount(&child);
    edit(&m);
    std::fs::remove_file(m.join("etc/mid")).expect("rm");
    std::fs::write(m.join("del/g"), b"back\n").expect("write");
    let keep = std::fs::metadata(m.join("usr/bin"))
        .expect("stat")
        .modified()
        .expect("mtime");
    std::fs::write(m.join("usr/bin/added"), b"a\n").expect("write");
    std::fs::File::options()
        .write(true)
        .open(m.join("usr/bin"))
        .ok();
    filetime_set(&m.join("usr/bin"), keep);
    cs.unmount(&child);
    let upper = cs.graph.join("overlay").join(&child).join("diff");
    // A new directory marked opaque by hand: not in any lower, so no marker.
    std::fs::create_dir(upper.join("newopq")).expect("mkdir");
    setx(&upper.join("newopq"), "trusted.overlay.opaque", b"y");
    let lowers = lowers_of(&cs.graph, &child);
    assert_eq!(lowers.len(), 2);

    let theirs = String::from_utf8(cs.run(&["changes", &child])).expect("utf-8");
    let ours = overlay_changes(&upper, &lowers, OpaqueXattr::Trusted).expect("changes");
    assert_eq!(lines(&ours), theirs, "overlay changes, in order");

    let size: u64 = cs.run_line(&["diffsize", &child]).parse().expect("number");
    assert_eq!(changes_size(&upper, &ours).expect("size"), size);

    let mut tar = Vec::new();
    export_overlay_upper(&upper, &lowers, &ExportOptions::default(), &mut tar).expect("export");
    let reference = cs.run(&["diff", &child]);
    assert_same_archive(&tar, &reference);
}

fn filetime_set(path: &Path, t: std::time::SystemTime) {
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch");
    let ts = rustix::fs::Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: d.subsec_nanos() as _,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .expect("utimensat");
}
