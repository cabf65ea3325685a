//! The tar writer read back by GNU tar and the `tar` crate; export details
//! (whiteouts, hard links, owners through ID maps); overlay uppers.

mod changes_util;

use std::io::Read;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;
use std::process::Command;

use changes_util::*;
use strata_archive::changes::{
    export_changes, export_overlay_upper, overlay_changes, Change, ChangeKind, ExportOptions,
    OverrideStat,
};
use strata_archive::entry::{EntryKind, Header, Timestamp, Xattr};
use strata_archive::writer::{TarWriter, TimePrecision, WriterOptions};
use strata_archive::OpaqueXattr;
use strata_testsupport::need_root;

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("strata-export-")
        .tempdir_in("/var/tmp")
        .expect("tempdir")
}

fn header(path: &str, kind: EntryKind) -> Header {
    let mut h = Header::new(path, kind);
    h.mtime = Timestamp {
        sec: 1_700_000_000,
        nsec: 0,
    };
    h
}

/// An archive with every member kind and every PAX reason.
fn sample(opts: WriterOptions) -> Vec<u8> {
    let mut t = TarWriter::with_options(Vec::new(), opts);
    let long_dir = format!("{}/{}", "d".repeat(80), "e".repeat(60));
    let mut entries = vec![
        (header("dir", EntryKind::Directory), Vec::new()),
        (header(&long_dir, EntryKind::Directory), Vec::new()),
        (
            header(&format!("{long_dir}/f"), EntryKind::File),
            b"split".to_vec(),
        ),
        (
            header(&"n".repeat(130), EntryKind::File),
            b"pax path".to_vec(),
        ),
        (header("dir/é", EntryKind::File), b"utf-8".to_vec()),
        (
            header(
                "ln",
                EntryKind::Symlink {
                    target: "t".repeat(150).into_bytes(),
                },
            ),
            Vec::new(),
        ),
        (
            header(
                "hard",
                EntryKind::HardLink {
                    target: "dir/é".as_bytes().to_vec(),
                },
            ),
            Vec::new(),
        ),
        (header("fifo", EntryKind::Fifo), Vec::new()),
        (
            header("dev", EntryKind::CharDevice { major: 1, minor: 3 }),
            Vec::new(),
        ),
        (
            header(
                "blk",
                EntryKind::BlockDevice {
                    major: 7,
                    minor: 300,
                },
            ),
            Vec::new(),
        ),
    ];
    let mut big = header("big-ids", EntryKind::File);
    big.uid = 3_000_000;
    big.gid = 4_000_000;
    big.mode = 0o4755;
    big.mtime = Timestamp {
        sec: 1_700_000_000,
        nsec: 250_000_000,
    };
    big.xattrs = vec![
        Xattr {
            name: b"user.k".to_vec(),
            value: b"v".to_vec(),
        },
        Xattr {
            name: b"security.capability".to_vec(),
            value: vec![1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        },
    ];
    entries.push((big, b"ids".to_vec()));
    for (mut h, data) in entries {
        h.size = data.len() as u64;
        t.append(&h, &data[..]).expect("append");
    }
    t.finish().expect("finish")
}

#[test]
fn tar_crate_reads_every_field_back() {
    let bytes = sample(WriterOptions {
        time_precision: TimePrecision::Nanoseconds,
    });
    let mut a = tar::Archive::new(&bytes[..]);
    let mut seen = Vec::new();
    for e in a.entries().expect("entries") {
        let mut e = e.expect("entry");
        let path = String::from_utf8(e.path_bytes().into_owned()).expect("utf-8");
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8(l.into_owned()).expect("utf-8"));
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("read");
        let mut pax = Vec::new();
        if let Ok(Some(exts)) = e.pax_extensions() {
            for x in exts {
                let x = x.expect("record");
                pax.push((x.key().expect("key").to_string(), x.value_bytes().to_vec()));
            }
        }
        seen.push((path, link, h, data, pax));
    }
    let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    let long_dir = format!("{}/{}", "d".repeat(80), "e".repeat(60));
    let n130 = "n".repeat(130);
    assert_eq!(
        names,
        [
            "dir/",
            &format!("{long_dir}/"),
            &format!("{long_dir}/f"),
            &n130,
            "dir/é",
            "ln",
            "hard",
            "fifo",
            "dev",
            "blk",
            "big-ids"
        ]
    );
    assert_eq!(seen[2].3, b"split");
    assert_eq!(seen[3].3, b"pax path");
    assert_eq!(seen[5].1.as_deref(), Some("t".repeat(150).as_str()));
    assert_eq!(seen[6].1.as_deref(), Some("dir/é"));
    assert_eq!(seen[6].2.entry_type(), tar::EntryType::Link);
    assert_eq!(seen[8].2.device_major().expect("major"), Some(1));
    assert_eq!(seen[9].2.device_minor().expect("minor"), Some(300));
    let (_, _, h, data, pax) = &seen[10];
    assert_eq!(data, b"ids");
    assert_eq!(h.mode().expect("mode"), 0o104755);
    let keys: Vec<&str> = pax.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        keys,
        [
            "SCHILY.xattr.security.capability",
            "SCHILY.xattr.user.k",
            "gid",
            "mtime",
            "uid"
        ]
    );
    assert_eq!(pax[2].1, b"4000000");
    assert_eq!(pax[3].1, b"1700000000.25");
}

#[test]
fn gnu_tar_lists_and_extracts_the_sample() {
    let tmp = tempdir();
    let tar_path = tmp.path().join("s.tar");
    std::fs::write(&tar_path, sample(WriterOptions::default())).expect("write");
    let out = Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(&tar_path)
        .output()
        .expect("tar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    let words: Vec<Vec<&str>> = listing
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        words
            .iter()
            .any(|w| w[..3] == ["brw-r--r--", "0/0", "7,300"]),
        "{listing}"
    );
    assert!(
        words
            .iter()
            .any(|w| w[..2] == ["-rwsr-xr-x", "3000000/4000000"]),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("ln -> {}", "t".repeat(150))),
        "{listing}"
    );
    assert!(listing.contains("hard link to dir/é"), "{listing}");
    assert_eq!(listing.lines().count(), 11, "{listing}");
    // Extraction of the regular content (devices need root, skip them).
    let dest = tmp.path().join("x");
    std::fs::create_dir(&dest).expect("mkdir");
    let st = Command::new("tar")
        .args(["--exclude=dev", "--exclude=blk", "--no-same-owner", "-xf"])
        .arg(&tar_path)
        .arg("-C")
        .arg(&dest)
        .status()
        .expect("tar");
    assert!(st.success());
    assert_eq!(
        std::fs::read(dest.join("n".repeat(130))).expect("read"),
        b"pax path"
    );
    let a = std::fs::metadata(dest.join("hard")).expect("stat");
    let b = std::fs::metadata(dest.join("dir/é")).expect("stat");
    assert_eq!(a.ino(), b.ino());
    assert_eq!(b.mtime(), 1_700_000_000);
}

#[test]
fn export_writes_whiteouts_links_and_mapped_owners() {
    let tmp = tempdir();
    let root = tmp.path();
    std::fs::create_dir(root.join("etc")).expect("mkdir");
    std::fs::write(root.join("etc/a"), b"aaa").expect("write");
    std::fs::hard_link(root.join("etc/a"), root.join("b")).expect("link");
    symlink("etc/a", root.join("s")).expect("symlink");
    let changes = vec![
        Change {
            path: b"/etc/a".to_vec(),
            kind: ChangeKind::Add,
        },
        Change {
            path: b"/b".to_vec(),
            kind: ChangeKind::Add,
        },
        Change {
            path: b"/etc".to_vec(),
            kind: ChangeKind::Modify,
        },
        Change {
            path: b"/etc/old".to_vec(),
            kind: ChangeKind::Delete,
        },
        Change {
            path: b"/s".to_vec(),
            kind: ChangeKind::Add,
        },
    ];
    let me = std::fs::metadata(root).expect("stat");
    let maps = strata_idmap::parse_maps(&format!("0:{}:1", me.uid())).expect("maps");
    let gmaps = strata_idmap::parse_maps(&format!("0:{}:1", me.gid())).expect("maps");
    let opts = ExportOptions {
        id_mappings: strata_idmap::IdMappings::new(maps, gmaps),
        ..Default::default()
    };
    let mut out = Vec::new();
    export_changes(root, &changes, &opts, &mut out).expect("export");
    let mut a = tar::Archive::new(&out[..]);
    let mut got = Vec::new();
    for e in a.entries().expect("entries") {
        let e = e.expect("entry");
        let h = e.header();
        got.push((
            String::from_utf8(e.path_bytes().into_owned()).expect("utf-8"),
            h.entry_type(),
            h.uid().expect("uid"),
            e.link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).expect("utf-8")),
            h.size().expect("size"),
        ));
    }
    use tar::EntryType::*;
    assert_eq!(
        got,
        vec![
            ("b".into(), Regular, 0, None, 3),
            ("etc/".into(), Directory, 0, None, 0),
            ("etc/a".into(), Link, 0, Some("b".into()), 0),
            ("etc/.wh.old".into(), Regular, 0, None, 0),
            ("s".into(), Symlink, 0, Some("etc/a".into()), 0),
        ]
    );
    // An owner outside the maps is refused, not exported as garbage.
    let none = strata_idmap::parse_maps("0:4000000000:1").expect("maps");
    let opts = ExportOptions {
        id_mappings: strata_idmap::IdMappings::new(none.clone(), none),
        ..Default::default()
    };
    assert!(export_changes(root, &changes, &opts, &mut Vec::new()).is_err());
}

fn mknod_whiteout(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .expect("mknod");
}

#[test]
fn privileged_overlay_upper_changes_and_export() {
    if !need_root("privileged_overlay_upper_changes_and_export") {
        return;
    }
    let tmp = tempdir();
    let (upper, l1, l2) = (
        tmp.path().join("u"),
        tmp.path().join("l1"),
        tmp.path().join("l2"),
    );
    for d in [&upper, &l1, &l2] {
        std::fs::create_dir(d).expect("mkdir");
    }
    // l2 (bottom): d/{x,y}, f, w; l1: whiteout of w.
    std::fs::create_dir(l2.join("d")).expect("mkdir");
    std::fs::write(l2.join("d/x"), b"x").expect("write");
    std::fs::write(l2.join("d/y"), b"y").expect("write");
    std::fs::write(l2.join("f"), b"f").expect("write");
    std::fs::write(l2.join("w"), b"w").expect("write");
    mknod_whiteout(&l1.join("w"));
    // upper: d opaque with a new child, f deleted, w re-added, n new and
    // opaque (no lower: no marker), user.overlay.* and trusted.* not exported.
    std::fs::create_dir(upper.join("d")).expect("mkdir");
    rustix::fs::lsetxattr(
        upper.join("d"),
        "user.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr");
    std::fs::write(upper.join("d/new"), b"new").expect("write");
    mknod_whiteout(&upper.join("f"));
    std::fs::write(upper.join("w"), b"again").expect("write");
    std::fs::create_dir(upper.join("n")).expect("mkdir");
    rustix::fs::lsetxattr(
        upper.join("n"),
        "user.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr");
    rustix::fs::lsetxattr(
        upper.join("w"),
        "trusted.overlay.origin",
        b"o",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr");
    // a/b unchanged (copied up for a new child): both listed, outermost first.
    for root in [&l2, &upper] {
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
    }
    std::fs::write(upper.join("a/b/new"), b"n").expect("write");
    for root in [&l2, &upper] {
        for d in ["a/b", "a"] {
            let ts = rustix::fs::Timespec {
                tv_sec: 1000,
                tv_nsec: 0,
            };
            let times = rustix::fs::Timestamps {
                last_access: ts,
                last_modification: ts,
            };
            rustix::fs::utimensat(
                rustix::fs::CWD,
                root.join(d),
                &times,
                rustix::fs::AtFlags::empty(),
            )
            .expect("utimensat");
        }
    }
    let lowers = vec![l1.clone(), l2.clone()];
    let got = overlay_changes(&upper, &lowers, OpaqueXattr::User).expect("changes");
    let lines: Vec<String> = got.iter().map(Change::to_line).collect();
    assert_eq!(
        lines,
        [
            r#"Modify "/a""#,
            r#"Modify "/a/b""#,
            r#"Add "/a/b/new""#,
            r#"Delete "/d""#,
            r#"Add "/d/new""#,
            r#"Delete "/f""#,
            r#"Add "/n""#,
            r#"Add "/w""#,
        ]
    );
    // With the trusted namespace, d is an ordinary directory (Modify).
    let got = overlay_changes(&upper, &lowers, OpaqueXattr::Trusted).expect("changes");
    assert_eq!(got[3].to_line(), r#"Modify "/d""#);

    let opts = ExportOptions {
        opaque: OpaqueXattr::User,
        ..Default::default()
    };
    let mut out = Vec::new();
    export_overlay_upper(&upper, &lowers, &opts, &mut out).expect("export");
    let names: Vec<String> = members(&out)
        .iter()
        .map(|m| String::from_utf8_lossy(&m.name).into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "a/",
            "a/b/",
            "a/b/new",
            "d/",
            "d/.wh..wh..opq",
            "d/new",
            ".wh.f",
            "n/",
            "w"
        ]
    );
    let mut a = tar::Archive::new(&out[..]);
    for e in a.entries().expect("entries") {
        let mut e = e.expect("entry");
        if let Ok(Some(exts)) = e.pax_extensions() {
            for x in exts {
                let key = x.expect("record").key().expect("key").to_string();
                assert!(!key.contains("overlay"), "exported {key}");
            }
        }
    }

    // Applied back in overlay form, the export is the upper directory again
    // (less the marker of `n`, which hid nothing).
    let back = tmp.path().join("back");
    std::fs::create_dir(&back).expect("mkdir");
    let dir = std::fs::File::open(&back).expect("open");
    let mode = strata_archive::ApplyMode::Overlay {
        whiteouts: strata_archive::WhiteoutStyle::CharDevice,
        opaque: OpaqueXattr::User,
    };
    let opts = strata_archive::ApplyOptions {
        mode,
        ..Default::default()
    };
    strata_archive::apply_layer(std::os::fd::AsFd::as_fd(&dir), &out[..], opts).expect("apply");
    let mut want = snapshot(&upper, false);
    let mut got = snapshot(&back, false);
    for snap in [&mut want, &mut got] {
        for e in snap.values_mut() {
            e.xattrs.retain(|(k, _)| !k.starts_with(b"user.overlay."));
        }
    }
    assert_same_tree(&want, &got);
    let opaque = |p: &Path| {
        let mut v = [0u8; 8];
        rustix::fs::lgetxattr(p, "user.overlay.opaque", &mut v[..]).ok()
    };
    assert_eq!(opaque(&back.join("d")), Some(1));
    assert_eq!(opaque(&back.join("n")), None);
}

#[test]
fn privileged_overlay_export_maps_owners_and_tolerates_unmapped_whiteouts() {
    if !need_root("privileged_overlay_export_maps_owners_and_tolerates_unmapped_whiteouts") {
        return;
    }
    let tmp = tempdir();
    let upper = tmp.path().join("u");
    std::fs::create_dir(&upper).expect("mkdir");
    std::fs::write(upper.join("f"), b"f").expect("write");
    std::os::unix::fs::lchown(upper.join("f"), Some(100_005), Some(100_006)).expect("chown");
    std::os::unix::fs::lchown(&upper, Some(100_000), Some(100_000)).expect("chown");
    mknod_whiteout(&upper.join("gone"));
    let m = strata_idmap::parse_maps("0:100000:65536").expect("maps");
    let opts = ExportOptions {
        id_mappings: strata_idmap::IdMappings::new(m.clone(), m),
        ..Default::default()
    };
    let mut out = Vec::new();
    export_overlay_upper(&upper, &[], &opts, &mut out).expect("export");
    let mut a = tar::Archive::new(&out[..]);
    let owners: Vec<(String, u64, u64)> = a
        .entries()
        .expect("entries")
        .map(|e| {
            let e = e.expect("entry");
            let h = e.header();
            (
                String::from_utf8(e.path_bytes().into_owned()).expect("utf-8"),
                h.uid().expect("uid"),
                h.gid().expect("gid"),
            )
        })
        .collect();
    assert_eq!(
        owners,
        [("f".to_string(), 5, 6), (".wh.gone".to_string(), 0, 0)]
    );
}

#[test]
fn export_takes_owner_and_mode_from_override_stat_when_asked() {
    let tmp = tempdir();
    let root = tmp.path();
    std::fs::write(root.join("f"), b"f").expect("write");
    std::fs::set_permissions(
        root.join("f"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    rustix::fs::lsetxattr(
        root.join("f"),
        "user.containers.override_stat",
        b"5:6:04640",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr");
    let changes = [Change {
        path: b"/f".to_vec(),
        kind: ChangeKind::Add,
    }];
    let header_of = |override_stat| {
        let opts = ExportOptions {
            override_stat,
            ..Default::default()
        };
        let mut out = Vec::new();
        export_changes(root, &changes, &opts, &mut out).expect("export");
        let mut a = tar::Archive::new(&out[..]);
        let mut e = a
            .entries()
            .expect("entries")
            .next()
            .expect("one")
            .expect("entry");
        let h = e.header().clone();
        let keys: Vec<String> = match e.pax_extensions() {
            Ok(Some(exts)) => exts
                .map(|x| x.expect("record").key().expect("key").to_string())
                .collect(),
            _ => Vec::new(),
        };
        (
            h.uid().expect("uid"),
            h.gid().expect("gid"),
            h.mode().expect("mode"),
            keys,
        )
    };
    let me = std::fs::metadata(root.join("f")).expect("stat");
    assert_eq!(
        header_of(OverrideStat::Use),
        (5, 6, 0o104640, Vec::<String>::new())
    );
    assert_eq!(
        header_of(OverrideStat::Ignore),
        (
            u64::from(me.uid()),
            u64::from(me.gid()),
            0o100755,
            Vec::<String>::new()
        )
    );
}

#[test]
fn export_never_reads_through_a_symlinked_parent() {
    let tmp = tempdir();
    let (root, outside) = (tmp.path().join("root"), tmp.path().join("outside"));
    std::fs::create_dir(&root).expect("mkdir");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::write(outside.join("secret"), b"host data").expect("write");
    // The tree changed after its changes were listed: etc is now a symlink
    // out of the root.
    symlink(&outside, root.join("etc")).expect("symlink");
    std::fs::write(root.join("ok"), b"ok").expect("write");
    let changes = [
        Change {
            path: b"/etc".to_vec(),
            kind: ChangeKind::Modify,
        },
        Change {
            path: b"/etc/secret".to_vec(),
            kind: ChangeKind::Add,
        },
        Change {
            path: b"/ok".to_vec(),
            kind: ChangeKind::Add,
        },
    ];
    // The fast path, then the fallback walk forced: the same answer.
    for forced in [false, true] {
        let _walk = forced.then(strata_archive::confined::force_walk);
        let how = if forced { "walk" } else { "openat2" };
        let mut out = Vec::new();
        export_changes(&root, &changes, &ExportOptions::default(), &mut out).expect("export");
        let names: Vec<String> = members(&out)
            .iter()
            .map(|m| String::from_utf8_lossy(&m.name).into_owned())
            .collect();
        assert_eq!(names, ["etc", "ok"], "{how}");
        assert!(
            !out.windows(9).any(|w| w == b"host data"),
            "read outside the root ({how})"
        );
    }
}
