//! Changes between trees built in temp dirs, their export, and the round
//! trip export → `apply_layer` (full-tree mode) → same tree.

mod changes_util;

use std::os::fd::AsFd;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use changes_util::*;
use proptest::prelude::*;
use strata_archive::changes::{
    changes_between, changes_size, export_changes, Change, ChangeKind, ExportOptions,
};
use strata_archive::{apply_layer, ApplyMode, ApplyOptions};
use strata_testsupport::{need_root, Scratch};

fn tempdir() -> Scratch {
    Scratch::new("strata-changes-")
}

fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    let ts = rustix::fs::Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
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

fn write(path: &Path, data: &[u8], sec: i64) {
    std::fs::write(path, data).expect("write");
    set_mtime(path, sec, 0);
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a failed");
}

fn lines(v: &[Change]) -> Vec<String> {
    v.iter().map(Change::to_line).collect()
}

/// A parent tree with a bit of everything.
fn parent_tree(p: &Path) {
    for d in [
        "etc", "usr", "usr/bin", "var", "var/lib", "gone", "gone/sub",
    ] {
        std::fs::create_dir(p.join(d)).expect("mkdir");
    }
    write(&p.join("etc/passwd"), b"root\n", 1_000);
    write(&p.join("etc/group"), b"grp\n", 1_000);
    write(&p.join("etc/hosts"), b"hosts\n", 1_000);
    write(&p.join("usr/bin/tool"), b"tool\n", 1_000);
    write(&p.join("usr/bin/same"), b"same\n", 1_000);
    write(&p.join("gone/sub/f"), b"f\n", 1_000);
    write(&p.join("var/lib/data"), b"data\n", 1_000);
    write(&p.join("file2dir"), b"x\n", 1_000);
    symlink("passwd", p.join("etc/link")).expect("symlink");
    set_mtime(&p.join("etc/link"), 1_000, 0);
    for d in [
        "etc", "usr", "usr/bin", "var", "var/lib", "gone", "gone/sub",
    ] {
        set_mtime(&p.join(d), 1_000, 0);
    }
}

#[test]
fn changes_between_reports_every_kind_in_order() {
    let tmp = tempdir();
    let (parent, child) = (tmp.path().join("p"), tmp.path().join("c"));
    std::fs::create_dir_all(&parent).expect("mkdir");
    std::fs::create_dir_all(&child).expect("mkdir");
    parent_tree(&parent);
    copy_tree(&parent, &child);
    assert_eq!(
        changes_between(&child, Some(&parent)).expect("changes"),
        vec![]
    );

    // content (same size, new mtime), mode, mtime only, xattr, retarget a
    // symlink keeping its size and time, type change, deletions, additions.
    write(&child.join("etc/passwd"), b"ROOT\n", 2_000);
    chmod(&child.join("etc/group"), 0o600);
    set_mtime(&child.join("etc/hosts"), 1_000, 5);
    set_mtime(&child.join("usr/bin/tool"), 3_000, 0);
    rustix::fs::lsetxattr(
        child.join("var/lib/data"),
        "user.k",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr");
    std::fs::remove_file(child.join("etc/link")).expect("rm");
    symlink("hosts_", child.join("etc/link")).expect("symlink");
    set_mtime(&child.join("etc/link"), 1_000, 0);
    std::fs::remove_file(child.join("file2dir")).expect("rm");
    std::fs::create_dir(child.join("file2dir")).expect("mkdir");
    write(&child.join("file2dir/in"), b"in\n", 1_000);
    std::fs::remove_dir_all(child.join("gone")).expect("rm");
    std::fs::create_dir_all(child.join("new/deep")).expect("mkdir");
    write(&child.join("new/deep/f"), b"new\n", 1_000);
    write(&child.join("usr/bin/added"), b"a\n", 1_000);
    std::fs::hard_link(child.join("usr/bin/added"), child.join("usr/added2")).expect("link");
    // Directory mtimes alone are not changes: put them back.
    for d in ["etc", "usr", "usr/bin", "var", "var/lib"] {
        set_mtime(&child.join(d), 1_000, 0);
    }
    // A directory whose only change is its mtime is not listed.
    std::fs::create_dir(child.join("var/touched")).ok();
    std::fs::remove_dir(child.join("var/touched")).expect("rmdir");

    let got = changes_between(&child, Some(&parent)).expect("changes");
    let want = [
        r#"Modify "/etc""#,
        r#"Modify "/etc/group""#,
        r#"Modify "/etc/link""#,
        r#"Modify "/etc/passwd""#,
        r#"Modify "/file2dir""#,
        r#"Add "/file2dir/in""#,
        r#"Add "/new""#,
        r#"Add "/new/deep""#,
        r#"Add "/new/deep/f""#,
        r#"Modify "/usr""#,
        r#"Add "/usr/added2""#,
        r#"Modify "/usr/bin""#,
        r#"Add "/usr/bin/added""#,
        r#"Modify "/usr/bin/tool""#,
        r#"Modify "/var""#,
        r#"Modify "/var/lib""#,
        r#"Modify "/var/lib/data""#,
        r#"Delete "/gone""#,
    ];
    assert_eq!(lines(&got), want);

    // Sizes: passwd 5 + group 4 + link 6 + in 3 + f 4 + added 2 (once) + tool 5 + data 5.
    assert_eq!(changes_size(&child, &got).expect("size"), 34);
}

#[test]
fn changes_without_parent_are_all_adds_and_root_is_never_listed() {
    let tmp = tempdir();
    parent_tree(tmp.path());
    let got = changes_between(tmp.path(), None).expect("changes");
    assert!(got.iter().all(|c| c.kind == ChangeKind::Add));
    assert_eq!(got.len(), 16);
    assert!(got
        .iter()
        .all(|c| c.path.starts_with(b"/") && c.path.len() > 1));
    assert_eq!(
        got.first().map(Change::to_line).as_deref(),
        Some(r#"Add "/etc""#)
    );
}

#[test]
fn nanoseconds_count_only_when_both_sides_have_them() {
    let tmp = tempdir();
    let (parent, child) = (tmp.path().join("p"), tmp.path().join("c"));
    for d in [&parent, &child] {
        std::fs::create_dir(d).expect("mkdir");
        for f in ["zero_vs_ns", "ns_vs_ns", "same_ns"] {
            write(&d.join(f), b"x", 10);
        }
    }
    set_mtime(&child.join("zero_vs_ns"), 10, 700);
    set_mtime(&parent.join("ns_vs_ns"), 10, 500);
    set_mtime(&child.join("ns_vs_ns"), 10, 700);
    set_mtime(&parent.join("same_ns"), 10, 500);
    set_mtime(&child.join("same_ns"), 10, 500);
    let got = changes_between(&child, Some(&parent)).expect("changes");
    assert_eq!(lines(&got), [r#"Modify "/ns_vs_ns""#]);
}

#[test]
fn privileged_owner_capability_and_device_changes() {
    if !need_root("privileged_owner_capability_and_device_changes") {
        return;
    }
    let tmp = tempdir();
    let (parent, child) = (tmp.path().join("p"), tmp.path().join("c"));
    std::fs::create_dir(&parent).expect("mkdir");
    parent_tree(&parent);
    copy_tree(&parent, &child);
    std::os::unix::fs::lchown(child.join("etc/passwd"), Some(7), None).expect("chown");
    rustix::fs::lsetxattr(
        child.join("usr/bin/tool"),
        "security.capability",
        &[1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setcap");
    // trusted.* is host state, not a change.
    rustix::fs::lsetxattr(
        child.join("etc/hosts"),
        "trusted.x",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        child.join("var/null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .expect("mknod");
    set_mtime(&child.join("var"), 1_000, 0);
    let got = changes_between(&child, Some(&parent)).expect("changes");
    assert_eq!(
        lines(&got),
        [
            r#"Modify "/etc""#,
            r#"Modify "/etc/passwd""#,
            r#"Modify "/usr""#,
            r#"Modify "/usr/bin""#,
            r#"Modify "/usr/bin/tool""#,
            r#"Modify "/var""#,
            r#"Add "/var/null""#,
        ]
    );
    // Owners compare in container ID space: a parent mapped at 100000 and
    // a child at 200000 with the same container owners are the same.
    let maps = |host: u32| {
        let m = strata_idmap::parse_maps(&format!("0:{host}:65536")).expect("maps");
        strata_idmap::IdMappings::new(m.clone(), m)
    };
    let (p2, c2) = (tmp.path().join("p2"), tmp.path().join("c2"));
    for (d, host) in [(&p2, 100_000), (&c2, 200_000)] {
        std::fs::create_dir(d).expect("mkdir");
        write(&d.join("f"), b"x", 10);
        std::os::unix::fs::lchown(d.join("f"), Some(host + 5), Some(host + 5)).expect("chown");
    }
    let ids = strata_archive::changes::TreeIdMaps {
        layer: maps(200_000),
        parent: maps(100_000),
    };
    let got =
        strata_archive::changes::changes_between_mapped(&c2, Some(&p2), &ids).expect("changes");
    assert_eq!(got, vec![]);
    let got = changes_between(&c2, Some(&p2)).expect("changes");
    assert_eq!(lines(&got), [r#"Modify "/f""#]);
}

/// Applies a layer tar onto `root` in full-tree mode with strata's own
/// import pipeline (reader + applier).
fn apply_full_tree(root: &Path, tar_bytes: &[u8]) {
    let dir = std::fs::File::open(root).expect("open root");
    let opts = ApplyOptions {
        mode: ApplyMode::FullTree,
        ..Default::default()
    };
    let report = apply_layer(dir.as_fd(), tar_bytes, opts).expect("apply");
    assert_eq!(report.uncompressed_size, tar_bytes.len() as u64);
}

/// export → apply onto a copy of the parent gives the child back.
fn round_trip(parent: &Path, child: &Path, scratch: &Path) {
    let changes = changes_between(child, Some(parent)).expect("changes");
    let mut tar = Vec::new();
    export_changes(child, &changes, &ExportOptions::default(), &mut tar).expect("export");
    std::fs::create_dir(scratch).expect("mkdir");
    copy_tree(parent, scratch);
    apply_full_tree(scratch, &tar);
    assert_same_tree(&snapshot(child, false), &snapshot(scratch, false));
    // Nothing left to export once applied.
    let again = changes_between(scratch, Some(child)).expect("changes");
    assert_eq!(lines(&again), Vec::<String>::new());
}

#[test]
fn export_then_apply_reproduces_the_child() {
    let tmp = tempdir();
    let (parent, child) = (tmp.path().join("p"), tmp.path().join("c"));
    std::fs::create_dir(&parent).expect("mkdir");
    parent_tree(&parent);
    copy_tree(&parent, &child);
    write(&child.join("etc/passwd"), b"changed\n", 2_000);
    chmod(&child.join("etc/group"), 0o4755);
    std::fs::remove_dir_all(child.join("gone")).expect("rm");
    std::fs::remove_file(child.join("etc/hosts")).expect("rm");
    std::fs::remove_file(child.join("file2dir")).expect("rm");
    std::fs::create_dir(child.join("file2dir")).expect("mkdir");
    write(&child.join("file2dir/in"), b"in\n", 1_000);
    std::fs::remove_dir_all(child.join("usr/bin")).expect("rm");
    write(&child.join("usr/bin"), b"now a file\n", 1_000);
    std::fs::create_dir_all(child.join("n/".repeat(60))).expect("mkdir");
    write(&child.join("n/".repeat(60)).join("deep"), b"deep\n", 1_000);
    write(&child.join("h1"), b"linked\n", 1_000);
    std::fs::hard_link(child.join("h1"), child.join("etc/h2")).expect("link");
    symlink("x".repeat(200), child.join("longlink")).expect("symlink");
    rustix::fs::lsetxattr(
        child.join("h1"),
        "user.k",
        b"v\0binary",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr");
    round_trip(&parent, &child, &tmp.path().join("s"));
}

/// One random edit of a small tree; failures (parent missing, not a
/// directory) are part of the game and ignored.
#[derive(Debug, Clone)]
enum Op {
    Write(usize, Vec<u8>, u32, i64),
    Mkdir(usize, u32),
    Remove(usize),
    Symlink(usize, String),
    Chmod(usize, u32),
    Mtime(usize, i64, i64),
    Xattr(usize, u8),
    Link(usize, usize),
}

const SLOTS: [&str; 8] = ["a", "b", "a/x", "a/y", "a/x/z", "c", "b/q", "a/x/w"];

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS.len();
    prop_oneof![
        (
            slot.clone(),
            prop::collection::vec(any::<u8>(), 0..64),
            0o400u32..0o7777,
            1i64..5
        )
            .prop_map(|(s, d, m, t)| Op::Write(s, d, m | 0o600, t)),
        (slot.clone(), 0o700u32..0o777).prop_map(|(s, m)| Op::Mkdir(s, m)),
        slot.clone().prop_map(Op::Remove),
        (slot.clone(), "[a-z]{1,4}").prop_map(|(s, t)| Op::Symlink(s, t)),
        (slot.clone(), 0o400u32..0o777).prop_map(|(s, m)| Op::Chmod(s, m | 0o700)),
        (slot.clone(), 1i64..5, 0i64..3).prop_map(|(s, t, n)| Op::Mtime(s, t, n)),
        (slot.clone(), any::<u8>()).prop_map(|(s, v)| Op::Xattr(s, v)),
        (slot.clone(), slot).prop_map(|(a, b)| Op::Link(a, b)),
    ]
}

fn run_op(root: &Path, op: &Op) {
    let p = |i: usize| root.join(SLOTS[i]);
    let _ = match op {
        Op::Write(s, d, m, t) => std::fs::remove_dir_all(p(*s))
            .or(Ok(()))
            .and_then(|()| std::fs::write(p(*s), d))
            .map(|()| {
                chmod(&p(*s), *m);
                set_mtime(&p(*s), *t * 1000, 0);
            }),
        Op::Mkdir(s, m) => std::fs::create_dir(p(*s)).map(|()| chmod(&p(*s), *m)),
        Op::Remove(s) => std::fs::remove_dir_all(p(*s)).or_else(|_| std::fs::remove_file(p(*s))),
        Op::Symlink(s, t) => symlink(t, p(*s)),
        Op::Chmod(s, m) => match std::fs::symlink_metadata(p(*s)) {
            Ok(md) if !md.file_type().is_symlink() => {
                chmod(&p(*s), *m);
                Ok(())
            }
            _ => Ok(()),
        },
        Op::Mtime(s, t, n) => {
            if std::fs::symlink_metadata(p(*s)).is_ok() {
                set_mtime(&p(*s), *t * 1000, *n * 100);
            }
            Ok(())
        }
        // Only on files: a directory's removed xattr cannot travel in a
        // layer (a directory over a directory keeps what it had).
        Op::Xattr(s, v) => match std::fs::symlink_metadata(p(*s)) {
            Ok(md) if md.is_file() => {
                rustix::fs::lsetxattr(p(*s), "user.p", &[*v], rustix::fs::XattrFlags::empty())
                    .map_err(Into::into)
            }
            _ => Ok(()),
        },
        Op::Link(a, b) => match std::fs::symlink_metadata(p(*a)) {
            Ok(md) if md.is_file() => std::fs::hard_link(p(*a), p(*b)),
            _ => Ok(()),
        },
    };
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn prop_export_apply_round_trip(
        base in prop::collection::vec(op(), 0..12),
        edits in prop::collection::vec(op(), 0..12),
    ) {
        let tmp = tempdir();
        let (parent, child) = (tmp.path().join("p"), tmp.path().join("c"));
        std::fs::create_dir(&parent).expect("mkdir");
        for o in &base {
            run_op(&parent, o);
        }
        std::fs::create_dir(&child).expect("mkdir");
        copy_tree(&parent, &child);
        for o in &edits {
            run_op(&child, o);
        }
        round_trip(&parent, &child, &tmp.path().join("s"));
    }
}
