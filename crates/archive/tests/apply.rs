//! Applier behaviour per entry type, mode and metadata.

mod apply_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use apply_support::*;
use strata_archive::apply::Resolution;
use strata_archive::entry::{EntryKind, SparseRegion, Timestamp};
use strata_archive::{ApplierOptions, ApplyMode, ErrorKind, OpaqueXattr, WhiteoutStyle};
use strata_idmap::{parse_maps, IdMappings};
use strata_testsupport::{need_root, Scratch};

const BOTH: [Resolution; 2] = [Resolution::Openat2, Resolution::ManualWalk];

fn overlay() -> ApplierOptions {
    ApplierOptions::default()
}

fn full() -> ApplierOptions {
    ApplierOptions {
        mode: ApplyMode::FullTree,
        ..Default::default()
    }
}

fn aufs() -> ApplierOptions {
    ApplierOptions {
        mode: ApplyMode::Overlay {
            whiteouts: WhiteoutStyle::AufsFiles,
            opaque: OpaqueXattr::Trusted,
        },
        ..Default::default()
    }
}

fn tmp() -> Scratch {
    Scratch::new("strata-apply-")
}

fn node<'a>(t: &'a Tree, p: &str) -> &'a Node {
    t.get(p.as_bytes())
        .unwrap_or_else(|| panic!("{p} missing from {:?}", t.keys().collect::<Vec<_>>()))
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::lgetxattr(p, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Runs `f` with both resolvers and checks they leave the same tree.
fn both(layer: &L, opts: ApplierOptions, check: impl Fn(&Path)) {
    let mut trees = Vec::new();
    for r in BOTH {
        let t = tmp();
        apply(t.path(), layer, opts.clone(), r).unwrap_or_else(|e| panic!("{r:?}: {e}"));
        check(t.path());
        trees.push(snapshot_with(
            t.path(),
            &[],
            SnapOpts {
                dir_times: false,
                ..Default::default()
            },
        ));
    }
    let d = diff_trees(&trees[0], &trees[1]);
    assert!(d.is_empty(), "openat2 vs walk:\n{}", d.join("\n"));
}

#[test]
fn every_entry_type() {
    let layer = L::new()
        .dir("d")
        .mode(0o750)
        .file("d/f", b"hello")
        .mode(0o640)
        .symlink("d/l", "f")
        .link("d/h", "d/f")
        .mode(0o640)
        .kind("d/fifo", EntryKind::Fifo)
        .mode(0o600)
        .kind("d/chr", EntryKind::CharDevice { major: 1, minor: 3 })
        .kind("d/blk", EntryKind::BlockDevice { major: 7, minor: 0 })
        .kind("d/sock", EntryKind::Socket)
        .file("empty", b"");
    for opts in [overlay(), full()] {
        both(&layer, opts, |root| {
            let t = snapshot(root);
            assert_eq!(node(&t, "d").kind, "dir");
            assert_eq!(node(&t, "d").mode, 0o750);
            let f = node(&t, "d/f");
            assert_eq!((f.kind, f.mode, f.size), ("file", 0o640, 5));
            assert_eq!(std::fs::read(root.join("d/f")).unwrap(), b"hello");
            assert_eq!(node(&t, "d/l").target.as_deref(), Some(&b"f"[..]));
            assert_eq!(node(&t, "d/h").link_group, Some(s("d/f")));
            assert_eq!(node(&t, "d/fifo").kind, "fifo");
            assert_eq!(node(&t, "d/fifo").mode, 0o600);
            assert_eq!(node(&t, "d/chr").kind, "char");
            assert_eq!(node(&t, "d/chr").rdev, rustix::fs::makedev(1, 3));
            assert_eq!(node(&t, "d/blk").kind, "block");
            assert!(!t.contains_key(&s("d/sock")), "sockets are never created");
            assert_eq!(node(&t, "empty").size, 0);
            // Times with nanoseconds, on directories too (set at the end).
            for p in ["d", "d/f", "d/l", "d/fifo", "empty"] {
                assert_eq!(
                    node(&t, p).mtime,
                    Some((MTIME.sec, MTIME.nsec as i64)),
                    "mtime of {p}"
                );
            }
        });
    }
}

#[test]
fn sparse_file_has_holes() {
    let size = 8 << 20;
    let mut h = hdr(b"sparse", EntryKind::File);
    h.size = size;
    h.sparse = Some(vec![
        SparseRegion {
            offset: 1 << 20,
            length: 4096,
        },
        SparseRegion {
            offset: 6 << 20,
            length: 4096,
        },
    ]);
    let mut layer = L::new();
    layer
        .items
        .push(strata_archive::entry::Item::Header(Box::new(h)));
    for off in [1u64 << 20, 6 << 20] {
        layer.items.push(strata_archive::entry::Item::Data {
            offset: off,
            bytes: vec![b'x'; 4096].into(),
        });
    }
    layer.items.push(strata_archive::entry::Item::End);
    both(&layer, overlay(), |root| {
        let m = std::fs::metadata(root.join("sparse")).unwrap();
        assert_eq!(m.len(), size);
        assert!(
            m.blocks() * 512 < 1 << 20,
            "holes are not written: {} blocks",
            m.blocks()
        );
        let data = std::fs::read(root.join("sparse")).unwrap();
        assert_eq!(data[(1 << 20) - 1], 0);
        assert_eq!(&data[1 << 20..(1 << 20) + 4096], &[b'x'; 4096][..]);
        assert_eq!(data[(6 << 20) + 4096], 0);
    });
}

#[test]
fn big_file_in_chunks() {
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let layer = L::new().file("big", &content);
    both(&layer, overlay(), |root| {
        assert_eq!(std::fs::read(root.join("big")).unwrap(), content);
    });
}

#[test]
fn privileged_owners_are_mapped_and_setuid_survives_chown() {
    if !need_root("privileged_owners_are_mapped_and_setuid_survives_chown") {
        return;
    }
    let maps = IdMappings::new(
        parse_maps("0:100000:65536").unwrap(),
        parse_maps("0:200000:65536").unwrap(),
    );
    let opts = ApplierOptions {
        id_mappings: maps,
        ..Default::default()
    };
    let layer = L::new()
        .dir("d")
        .owner(5, 6)
        .mode(0o2775)
        .file("d/suid", b"#!")
        .owner(1000, 1001)
        .mode(0o4755)
        .symlink("d/l", "suid")
        .owner(7, 8)
        .dir("tmp")
        .mode(0o1777)
        .kind("d/p", EntryKind::Fifo)
        .owner(9, 9)
        .mode(0o2640);
    both(&layer, opts, |root| {
        let t = snapshot(root);
        let n = node(&t, "d/suid");
        assert_eq!((n.uid, n.gid, n.mode), (101000, 201001, 0o4755));
        let n = node(&t, "d");
        assert_eq!((n.uid, n.gid, n.mode), (100005, 200006, 0o2775));
        let n = node(&t, "d/l");
        assert_eq!((n.uid, n.gid), (100007, 200008));
        assert_eq!(node(&t, "tmp").mode, 0o1777);
        let n = node(&t, "d/p");
        assert_eq!((n.uid, n.mode), (100009, 0o2640));
        // The root was not in the layer: untouched.
        assert_eq!(node(&t, "").uid, 0);
    });
}

#[test]
fn unmapped_owner_is_an_error() {
    let opts = ApplierOptions {
        id_mappings: IdMappings::new(
            parse_maps("0:100000:1000").unwrap(),
            parse_maps("0:100000:1000").unwrap(),
        ),
        ..Default::default()
    };
    let t = tmp();
    let e = apply(
        t.path(),
        &L::new().file("f", b"x").owner(5000, 0),
        opts,
        Resolution::Auto,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[test]
fn privileged_xattrs_written_and_filtered() {
    if !need_root("privileged_xattrs_written_and_filtered") {
        return;
    }
    let layer = L::new()
        .file("f", b"x")
        .xattr("user.keep", b"1")
        .xattr("trusted.keep", b"2")
        .xattr("security.selinux", b"system_u:object_r:etc_t:s0")
        .xattr("trusted.overlay.opaque", b"y")
        .xattr("user.overlay.redirect", b"/x")
        .xattr("user.containers.override_stat", b"0:0:04755")
        .dir("d")
        .xattr("trusted.overlay.opaque", b"y")
        .xattr("user.d", b"dir")
        .symlink("l", "f")
        .xattr("trusted.sym", b"3");
    both(&layer, overlay(), |root| {
        let f = root.join("f");
        assert_eq!(xattr(&f, "user.keep").as_deref(), Some(&b"1"[..]));
        assert_eq!(xattr(&f, "trusted.keep").as_deref(), Some(&b"2"[..]));
        assert_ne!(
            xattr(&f, "security.selinux").as_deref(),
            Some(&b"system_u:object_r:etc_t:s0"[..])
        );
        for forbidden in [
            "trusted.overlay.opaque",
            "user.overlay.redirect",
            "user.containers.override_stat",
        ] {
            assert_eq!(xattr(&f, forbidden), None, "{forbidden}");
            assert_eq!(xattr(&root.join("d"), forbidden), None, "{forbidden} on d");
        }
        assert_eq!(
            xattr(&root.join("d"), "user.d").as_deref(),
            Some(&b"dir"[..])
        );
        assert_eq!(
            xattr(&root.join("l"), "trusted.sym").as_deref(),
            Some(&b"3"[..])
        );
    });
}

#[test]
fn privileged_security_capability_survives_chown() {
    if !need_root("privileged_security_capability_survives_chown") {
        return;
    }
    // A v2 file capability (cap_net_raw, effective).
    let cap: Vec<u8> = vec![
        0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let layer = L::new()
        .file("ping", b"\x7fELF")
        .owner(3, 3)
        .mode(0o755)
        .xattr("security.capability", &cap);
    both(&layer, overlay(), |root| {
        assert_eq!(
            xattr(&root.join("ping"), "security.capability").as_deref(),
            Some(&cap[..])
        );
    });
}

#[test]
fn privileged_force_mask_stores_real_owner_and_mode() {
    if !need_root("privileged_force_mask_stores_real_owner_and_mode") {
        return;
    }
    let opts = ApplierOptions {
        force_mask: Some(0o700),
        ..Default::default()
    };
    let layer = L::new()
        .dir("d")
        .owner(1000, 1001)
        .mode(0o1755)
        .file("d/f", b"hi")
        .owner(1000, 1001)
        .mode(0o4751)
        .file("d/g", b"hi")
        .owner(1000, 1001)
        .mode(0o640)
        .symlink("d/l", "f")
        .owner(1000, 1001)
        .link("d/h", "d/f")
        .owner(1000, 1001)
        .mode(0o4751);
    both(&layer, opts.clone(), |root| {
        let t = snapshot(root);
        // As containers-storage 1.43 leaves it (observed with
        // overlay.force_mask=0700).
        for (p, want) in [
            ("d", "1000:1001:0755"),
            ("d/f", "1000:1001:0751"),
            ("d/h", "1000:1001:0751"),
            ("d/g", "1000:1001:0640"),
        ] {
            let n = node(&t, p);
            assert_eq!((n.uid, n.gid, n.mode), (0, 0, 0o700), "{p}");
            assert_eq!(
                n.xattrs.get(&s("user.containers.override_stat")),
                Some(&s(want)),
                "{p}"
            );
        }
        let l = node(&t, "d/l");
        assert_eq!((l.uid, l.gid), (0, 0));
        assert!(l.xattrs.is_empty());
    });
    let t = tmp();
    let e = apply(
        t.path(),
        &L::new().kind("p", EntryKind::Fifo),
        opts,
        Resolution::Auto,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn ignore_chown_errors_when_asked() {
    // Owners outside the user namespace's range fail to chown; as root in the
    // initial namespace, uid 4294967294 works, so only the flag path is
    // checked there: the apply must succeed either way.
    let opts = ApplierOptions {
        ignore_chown_errors: true,
        ..Default::default()
    };
    let t = tmp();
    apply(
        t.path(),
        &L::new().file("f", b"x").owner(4_294_967_294, 0),
        opts,
        Resolution::Auto,
    )
    .unwrap();
    assert!(t.path().join("f").exists());
}

#[test]
fn privileged_overlay_whiteouts_and_opaque() {
    if !need_root("privileged_overlay_whiteouts_and_opaque") {
        return;
    }
    let layer = L::new()
        .dir("a")
        .file("a/.wh.gone", b"")
        .owner(7, 8)
        .file("x/y/.wh.deep", b"")
        .dir("o")
        .file("o/.wh.before", b"")
        .file("o/.wh..wh..opq", b"")
        .file("o/f", b"kept")
        .file("o/.wh.after", b"")
        .file("o/sub/.wh.nested", b"")
        .file(".wh..wh.plnk/123", b"linked")
        .link("p", ".wh..wh.plnk/123")
        .file(".wh..wh.orph/zz", b"")
        .file("a/.wh..wh.aufsmeta", b"");
    both(&layer, overlay(), |root| {
        let t = snapshot(root);
        let g = node(&t, "a/gone");
        assert_eq!((g.kind, g.rdev, g.uid, g.gid), ("char", 0, 7, 8));
        assert_eq!(node(&t, "x/y/deep").kind, "char");
        assert_eq!(node(&t, "x").mode, 0o755, "implicit parent");
        assert_eq!(
            xattr(&root.join("o"), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(node(&t, "o/f").kind, "file");
        for dropped in ["o/before", "o/after", "o/sub/nested"] {
            assert!(!t.contains_key(&s(dropped)), "{dropped} must be dropped");
        }
        assert!(!t.contains_key(&s(".wh..wh.plnk")));
        assert!(!t.contains_key(&s(".wh..wh.orph")));
        assert!(
            !t.keys().any(|k| k.windows(4).any(|w| w == b".wh.")),
            "{t:?}"
        );
        assert_eq!(std::fs::read(root.join("p")).unwrap(), b"linked");
    });
    // user.overlay.opaque for rootless overlay.
    let opts = ApplierOptions {
        mode: ApplyMode::Overlay {
            whiteouts: WhiteoutStyle::CharDevice,
            opaque: OpaqueXattr::User,
        },
        ..Default::default()
    };
    both(&L::new().file("o/.wh..wh..opq", b""), opts, |root| {
        assert_eq!(
            xattr(&root.join("o"), "user.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
    });
}

#[test]
fn aufs_files_keep_markers() {
    let layer = L::new()
        .file("a/.wh.gone", b"")
        .file("o/.wh..wh..opq", b"")
        .file("o/.wh.dropped", b"");
    both(&layer, aufs(), |root| {
        let t = snapshot(root);
        assert_eq!(node(&t, "a/.wh.gone").kind, "file");
        assert_eq!(node(&t, "o/.wh..wh..opq").kind, "file");
        assert!(!t.contains_key(&s("o/.wh.dropped")));
        assert!(xattr(&root.join("o"), "trusted.overlay.opaque").is_none());
    });
}

/// A lower tree for full-tree tests.
fn lower(root: &Path) {
    for d in ["etc", "opq/old/deeper", "keep"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in [
        "etc/passwd",
        "etc/group",
        "opq/old/deeper/x",
        "opq/file",
        "keep/k",
    ] {
        std::fs::write(root.join(f), b"lower").unwrap();
    }
    std::os::unix::fs::symlink("/etc", root.join("etclink")).unwrap();
    let ts = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 5,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 5,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        root.join("etclink").as_path(),
        &ts,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

#[test]
fn full_tree_whiteouts_delete() {
    let layer = L::new()
        .file("etc/.wh.passwd", b"")
        .file(".wh.keep", b"")
        .dir("opq")
        .file("opq/new", b"new")
        .dir("opq/old")
        .file("opq/old/fresh", b"fresh")
        .file("opq/.wh..wh..opq", b"")
        .file("opq/after", b"after")
        .file("etclink/.wh.group", b"")
        .file(".wh..wh.plnk/77", b"plnk")
        .link("linked", ".wh..wh.plnk/77")
        .file(".wh..wh.orph/x", b"")
        .file("nothere/.wh.x", b"");
    let mut trees = Vec::new();
    for r in BOTH {
        let t = tmp();
        lower(t.path());
        apply(t.path(), &layer, full(), r).unwrap();
        let tr = snapshot_with(
            t.path(),
            &[],
            SnapOpts {
                dir_times: false,
                ..Default::default()
            },
        );
        let keys: Vec<String> = tr
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        assert_eq!(
            keys,
            [
                "",
                "etc",
                "etclink",
                "linked",
                "nothere",
                "opq",
                "opq/after",
                "opq/new",
                "opq/old",
                "opq/old/fresh"
            ],
            "{r:?}"
        );
        assert_eq!(std::fs::read(t.path().join("linked")).unwrap(), b"plnk");
        trees.push(tr);
    }
    let d = diff_trees(&trees[0], &trees[1]);
    assert!(d.is_empty(), "{}", d.join("\n"));
}

#[test]
fn replace_rules() {
    let layer = L::new()
        .dir("d")
        .mode(0o700)
        .file("d/x", b"1")
        .file("d", b"now a file")
        .dir("d")
        .mode(0o711)
        .file("d/y", b"2")
        .file("dup", b"first")
        .file("dup", b"second")
        .mode(0o600)
        .symlink("s", "somewhere")
        .dir("s")
        .dir("keep")
        .mode(0o700)
        .file("keep/child", b"c")
        .dir("keep")
        .mode(0o755)
        .file("f", b"a")
        .symlink("f", "target");
    both(&layer, overlay(), |root| {
        let t = snapshot(root);
        assert_eq!(node(&t, "d").kind, "dir");
        assert_eq!(node(&t, "d").mode, 0o711);
        assert!(!t.contains_key(&s("d/x")));
        assert_eq!(node(&t, "d/y").kind, "file");
        assert_eq!(std::fs::read(root.join("dup")).unwrap(), b"second");
        assert_eq!(node(&t, "dup").mode, 0o600);
        assert_eq!(node(&t, "s").kind, "dir");
        assert_eq!(node(&t, "keep").mode, 0o755);
        assert!(
            t.contains_key(&s("keep/child")),
            "dir over dir keeps children"
        );
        assert_eq!(node(&t, "f").kind, "symlink");
    });
}

#[test]
fn hard_link_to_symlink_links_the_symlink() {
    let layer = L::new()
        .file("target", b"t")
        .mode(0o600)
        .symlink("l", "target")
        .link("h", "l")
        .mode(0o777);
    both(&layer, overlay(), |root| {
        let t = snapshot(root);
        assert_eq!(node(&t, "h").kind, "symlink");
        assert_eq!(node(&t, "h").link_group, Some(s("h")));
        assert_eq!(node(&t, "l").link_group, Some(s("h")));
        assert_eq!(node(&t, "target").mode, 0o600, "never chmod through");
    });
}

/// A hard link's header applies to its target's inode after the target's
/// own header, even when the target was finished on the writer thread and
/// many files are queued there: the link waits for them.
#[test]
fn hard_link_header_applies_after_queued_files() {
    let mut layer = L::new();
    for i in 0..200 {
        layer = layer.file(&format!("f{i}"), b"x").mode(0o640);
    }
    let layer = layer
        .file("target", &[7u8; 100_000])
        .mode(0o600)
        .with(|h| {
            h.mtime = Timestamp {
                sec: 1_000,
                nsec: 0,
            }
        })
        .link("h", "target")
        .mode(0o751)
        .with(|h| {
            h.mtime = Timestamp {
                sec: 2_000,
                nsec: 0,
            }
        })
        .file("last", b"y")
        .mode(0o604);
    both(&layer, overlay(), |root| {
        let t = snapshot(root);
        assert_eq!(node(&t, "target").mode, 0o751);
        assert_eq!(node(&t, "h").mode, 0o751);
        assert_eq!(node(&t, "target").mtime.map(|m| m.0), Some(2_000));
        assert_eq!(node(&t, "f199").mode, 0o640);
        assert_eq!(node(&t, "last").mode, 0o604);
        assert_eq!(std::fs::read(root.join("h")).unwrap(), vec![7u8; 100_000]);
    });
}

/// A file that cannot be written fails the apply, although its content is
/// written on the writer thread: the error comes back from a later push or
/// from finish, and names the file.
#[test]
fn write_error_of_a_queued_file_fails_the_apply() {
    let mut layer = L::new().file("ok", b"fine");
    layer
        .items
        .push(strata_archive::entry::Item::Header(Box::new(hdr(
            b"too-far",
            EntryKind::File,
        ))));
    // Past the largest file size of any Linux filesystem.
    layer.items.push(strata_archive::entry::Item::Data {
        offset: i64::MAX as u64 - 2,
        bytes: vec![b'x'; 64].into(),
    });
    layer.items.push(strata_archive::entry::Item::End);
    let layer = layer.file("after", b"more");
    for r in BOTH {
        let d = tmp();
        let e = apply(d.path(), &layer, overlay(), r).expect_err("the write must fail");
        assert!(e.to_string().contains("too-far"), "{e}");
        assert_eq!(std::fs::read(d.path().join("ok")).unwrap(), b"fine");
    }
}

#[test]
fn directory_times_set_after_contents() {
    let layer = L::new()
        .dir("d")
        .with(|h| {
            h.mtime = Timestamp {
                sec: 1_000_000,
                nsec: 5,
            };
            h.atime = Some(Timestamp {
                sec: 2_000_000,
                nsec: 7,
            });
        })
        .file("d/a", b"a")
        .dir("d/sub")
        .file("d/sub/b", b"b")
        .file("d/.wh.nothing", b"")
        .dir(".")
        .with(|h| h.mtime = Timestamp { sec: 42, nsec: 1 });
    both(&layer, full(), |root| {
        let m = std::fs::symlink_metadata(root.join("d")).unwrap();
        assert_eq!((m.mtime(), m.mtime_nsec()), (1_000_000, 5));
        assert_eq!((m.atime(), m.atime_nsec()), (2_000_000, 7));
        let m = std::fs::symlink_metadata(root).unwrap();
        assert_eq!((m.mtime(), m.mtime_nsec()), (42, 1));
    });
}

#[test]
fn root_entry_updates_root_metadata() {
    both(&L::new().dir("./").mode(0o711), overlay(), |root| {
        let m = std::fs::symlink_metadata(root).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o711);
    });
}

#[test]
fn stream_protocol_errors() {
    let t = tmp();
    let dir = std::fs::File::open(t.path()).unwrap();
    use std::os::fd::AsFd;
    let mut a = strata_archive::Applier::new(dir.as_fd(), overlay()).unwrap();
    assert!(a.push(strata_archive::entry::Item::End).is_err());
    a.push(strata_archive::entry::Item::Header(Box::new(hdr(
        b"f",
        EntryKind::File,
    ))))
    .unwrap();
    assert!(a
        .push(strata_archive::entry::Item::Header(Box::new(hdr(
            b"g",
            EntryKind::File
        ))))
        .is_err());
    assert!(a.finish().is_err(), "stream ended inside a member");
}

#[test]
fn resolution_paths_are_exercised() {
    // A symlinked parent needs a full resolution; the walk must be used when
    // asked, openat2 otherwise.
    let layer = L::new()
        .dir("real")
        .symlink("via", "/real")
        .file("via/x", b"x")
        .file("via/y", b"y");
    for r in BOTH {
        let t = tmp();
        let dir = std::fs::File::open(t.path()).unwrap();
        use std::os::fd::AsFd;
        let mut a = strata_archive::Applier::with_resolution(dir.as_fd(), overlay(), r).unwrap();
        for i in layer.items() {
            a.push(i).unwrap();
        }
        let st = a.resolve_stats();
        a.finish().unwrap();
        match r {
            Resolution::Openat2 => assert!(st.openat2 >= 1 && st.walked == 0, "{st:?}"),
            _ => assert!(st.walked >= 1 && st.openat2 == 0, "{st:?}"),
        }
        assert!(st.cached >= 1, "{st:?}");
        assert_eq!(std::fs::read(t.path().join("real/y")).unwrap(), b"y");
    }
}

#[test]
fn privileged_setgid_parent_group_is_not_kept_by_mistake() {
    if !need_root("privileged_setgid_parent_group_is_not_kept_by_mistake") {
        return;
    }
    // New objects in a setgid directory inherit its group; the applier must
    // still chown them to the header's group.
    let layer = L::new()
        .dir("g")
        .owner(0, 5000)
        .mode(0o2775)
        .file("g/f", b"x")
        .dir("g/sub")
        .symlink("g/l", "f")
        .dir("g2")
        .symlink("alias", "g2")
        .file("alias/a", b"a")
        .dir("g2")
        .owner(0, 6000)
        .mode(0o2755)
        .file("alias/b", b"b")
        .kind("alias/p", EntryKind::Fifo);
    both(&layer, overlay(), |root| {
        let t = snapshot(root);
        for p in ["g/f", "g/sub", "g/l", "g2/a", "g2/b", "g2/p"] {
            assert_eq!(node(&t, p).gid, 0, "{p}");
        }
        assert_eq!(node(&t, "g/sub").mode, 0o755, "setgid not inherited");
        assert_eq!(node(&t, "g2").gid, 6000);
    });
}
