//! The conformance suite on the vfs driver, plus vfs specifics: on-disk
//! layout, copy fidelity (sparse files, hard links, xattrs, devices), mount
//! options, staging leftovers.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use strata_driver::conformance::Suite;
use strata_driver::{Access, CreateRequest, Driver, ErrorKind, InitOptions, MountOptions};
use strata_testsupport::{need_root, LoopFs, LoopOptions, Scratch};

fn suite() -> Suite {
    Suite::new("vfs", strata_driver::vfs::init)
}

mod conformance {
    use super::suite;
    strata_driver::conformance_tests!(suite());
}

fn init_in(home: &Path, options: &[&str]) -> strata_driver::Result<Box<dyn Driver>> {
    strata_driver::vfs::init(&InitOptions {
        home: home.to_path_buf(),
        run_root: home.with_extension("run"),
        driver_options: options.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
}

fn req(id: &str, parent: Option<&str>) -> CreateRequest {
    CreateRequest {
        id: id.into(),
        parent: parent.map(str::to_string),
        ..Default::default()
    }
}

#[test]
fn privileged_layout_matches_reference() {
    if !need_root("privileged_layout_matches_reference") {
        return;
    }
    let tmp = Scratch::new("strata-vfs-");
    let home = tmp.path().join("graph/vfs");
    let d = init_in(&home, &[]).unwrap();
    d.create(&req("base", None)).unwrap();
    for (p, mode) in [
        (home.clone(), 0o700),
        (home.join("dir"), 0o700),
        (home.join("dir/base"), 0o555),
    ] {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.mode() & 0o7777, mode, "{}", p.display());
    }
    assert_eq!(
        d.get("base", &MountOptions::default()).unwrap(),
        home.join("dir/base")
    );
    let ro = MountOptions {
        options: vec!["ro".into()],
        ..Default::default()
    };
    assert!(d.get("base", &ro).is_ok());
    let e = d
        .get(
            "base",
            &MountOptions {
                options: vec!["nodev".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("does not support mount options"),
        "{e}"
    );
    assert!(
        d.status().is_empty(),
        "the reference shows no vfs status lines"
    );
    assert!(
        !tmp.path().join("graph/vfs.run").exists(),
        "vfs uses no run dir"
    );
    let e = d
        .create(&CreateRequest {
            storage_opt: [("size".to_string(), "1G".to_string())].into(),
            ..req("sized", None)
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(!d.exists("sized").unwrap());
    // A read-write (container) layer is laid out the same way.
    d.create(&CreateRequest {
        access: Access::ReadWrite,
        ..req("rw", Some("base"))
    })
    .unwrap();
    assert!(home.join("dir/rw").is_dir());
}

#[test]
fn options_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    for (opt, key) in [
        ("vfs.mountopt=nodev", "vfs.mountopt"),
        ("vfs.foo=1", "vfs.foo"),
        (".ignore_chown_errors=perhaps", ".ignore_chown_errors"),
    ] {
        let e = init_in(&tmp.path().join("vfs"), &[opt]).err().expect(opt);
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{opt}");
        assert!(e.to_string().contains(key), "{opt}: {e}");
    }
    init_in(
        &tmp.path().join("vfs"),
        &["vfs.ignore_chown_errors=true", "overlay.mountopt=nodev"],
    )
    .unwrap();
    let d = init_in(&tmp.path().join("vfs"), &[]).unwrap();
    for bad in ["", "../x", ".hidden", "a/b"] {
        assert_eq!(
            d.create(&req(bad, None)).unwrap_err().kind(),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
    }
    let e = d.create(&req("orphan", Some("nosuch"))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        !d.exists("orphan").unwrap(),
        "a failed create leaves nothing"
    );
}

#[test]
fn privileged_copy_keeps_everything() {
    if !need_root("privileged_copy_keeps_everything") {
        return;
    }
    let tmp = Scratch::new("strata-vfs-");
    let d = init_in(&tmp.path().join("vfs"), &[]).unwrap();
    d.create(&req("base", None)).unwrap();
    let b = d.get("base", &MountOptions::default()).unwrap();
    // A sparse file: 8 MiB with two small data islands.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(b.join("sparse")).unwrap();
        f.write_all(b"start").unwrap();
        f.seek(SeekFrom::Start(5 << 20)).unwrap();
        f.write_all(b"island").unwrap();
        f.set_len(8 << 20).unwrap();
    }
    std::fs::write(b.join("big"), vec![0xa5u8; 3 << 20]).unwrap();
    std::fs::write(b.join("h1"), b"linked").unwrap();
    for (name, mode) in [("wide", 0o666), ("readonly", 0o444), ("odd", 0o507)] {
        std::fs::write(b.join(name), name).unwrap();
        std::fs::set_permissions(b.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::create_dir(b.join("sub")).unwrap();
    std::fs::hard_link(b.join("h1"), b.join("sub/h2")).unwrap();
    std::fs::hard_link(b.join("h1"), b.join("h3")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        b.join("null").as_path(),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o640),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        b.join("fifo").as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let cap: [u8; 20] = [
        0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    rustix::fs::lsetxattr(
        b.join("big").as_path(),
        "security.capability",
        &cap,
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::lsetxattr(
        b.join("sub").as_path(),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    std::os::unix::fs::symlink("/absolute/target", b.join("abs")).unwrap();
    std::os::unix::fs::lchown(b.join("abs"), Some(7), Some(8)).unwrap();
    std::fs::set_permissions(b.join("sub"), std::fs::Permissions::from_mode(0o500)).unwrap();
    d.put("base").unwrap();

    d.create(&req("child", Some("base"))).unwrap();
    let c = d.get("child", &MountOptions::default()).unwrap();
    let sm = std::fs::metadata(c.join("sparse")).unwrap();
    assert_eq!(sm.len(), 8 << 20);
    assert!(
        sm.blocks() * 512 < 1 << 20,
        "holes were filled: {} blocks",
        sm.blocks()
    );
    assert_eq!(
        std::fs::read(c.join("sparse")).unwrap(),
        std::fs::read(b.join("sparse")).unwrap()
    );
    assert_eq!(std::fs::read(c.join("big")).unwrap(), vec![0xa5u8; 3 << 20]);
    let h1 = std::fs::metadata(c.join("h1")).unwrap();
    assert_eq!(h1.nlink(), 3);
    for other in ["sub/h2", "h3"] {
        assert_eq!(
            std::fs::metadata(c.join(other)).unwrap().ino(),
            h1.ino(),
            "{other}"
        );
    }
    assert_ne!(
        h1.ino(),
        std::fs::metadata(b.join("h1")).unwrap().ino(),
        "child shares an inode with its parent"
    );
    let n = std::fs::symlink_metadata(c.join("null")).unwrap();
    assert!(n.file_type().is_char_device());
    assert_eq!(n.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(n.mode() & 0o7777, 0o640);
    assert!(std::fs::symlink_metadata(c.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let mut buf = [0u8; 64];
    let k = rustix::fs::lgetxattr(c.join("big").as_path(), "security.capability", &mut buf[..])
        .unwrap();
    assert_eq!(&buf[..k], &cap);
    let k = rustix::fs::lgetxattr(
        c.join("sub").as_path(),
        "trusted.overlay.opaque",
        &mut buf[..],
    )
    .unwrap();
    assert_eq!(&buf[..k], b"y");
    let a = std::fs::symlink_metadata(c.join("abs")).unwrap();
    assert_eq!((a.uid(), a.gid()), (7, 8));
    assert_eq!(
        std::fs::read_link(c.join("abs")).unwrap(),
        Path::new("/absolute/target")
    );
    // Every entry has the parent's ns mtime, mode and owner.
    for rel in [
        "sparse", "big", "h1", "sub", "sub/h2", "null", "fifo", "abs", ".",
    ] {
        let x = std::fs::symlink_metadata(b.join(rel)).unwrap();
        let y = std::fs::symlink_metadata(c.join(rel)).unwrap();
        assert_eq!(
            (x.mtime(), x.mtime_nsec()),
            (y.mtime(), y.mtime_nsec()),
            "{rel}: mtime"
        );
        assert_eq!(
            (x.mode(), x.uid(), x.gid()),
            (y.mode(), y.uid(), y.gid()),
            "{rel}"
        );
    }
    d.put("child").unwrap();
    // A tree with a read-only directory is removed completely.
    d.remove("child").unwrap();
    d.remove("base").unwrap();
    assert!(std::fs::read_dir(tmp.path().join("vfs/dir"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn privileged_leftovers_are_removed_at_init() {
    if !need_root("privileged_leftovers_are_removed_at_init") {
        return;
    }
    let tmp = Scratch::new("strata-vfs-");
    let home = tmp.path().join("vfs");
    let d = init_in(&home, &[]).unwrap();
    d.create(&req("kept", None)).unwrap();
    let stale = home.join("tmp/half-0000000000000000");
    std::fs::create_dir_all(stale.join("x/y")).unwrap();
    drop(d);
    let d = init_in(&home, &[]).unwrap();
    assert!(!stale.exists());
    assert!(d.exists("kept").unwrap());
}

fn used_bytes(p: &Path) -> u64 {
    let s = strata_sys::statfs::space(p).unwrap();
    (s.blocks - s.blocks_available) * s.block_size
}

/// On a filesystem with reflinks a child shares its parent's data extents:
/// copying 64 MiB costs next to no space.
#[test]
fn privileged_child_is_reflinked_on_xfs() {
    let mut xfs = LoopOptions::new("xfs", 512);
    xfs.mkfs_args = vec!["-m".into(), "reflink=1".into()];
    let Some(fs) = LoopFs::new("privileged_child_is_reflinked_on_xfs", &xfs) else {
        return;
    };
    let d = init_in(&fs.mnt().join("vfs"), &[]).unwrap();
    d.create(&req("base", None)).unwrap();
    let b = d.get("base", &MountOptions::default()).unwrap();
    let data: Vec<u8> = (0..64u32 << 20).map(|i| (i % 253) as u8).collect();
    std::fs::write(b.join("big"), &data).unwrap();
    rustix::fs::sync();
    let before = used_bytes(fs.mnt());
    d.create(&req("child", Some("base"))).unwrap();
    rustix::fs::sync();
    let grown = used_bytes(fs.mnt()).saturating_sub(before);
    let c = d.get("child", &MountOptions::default()).unwrap();
    assert!(
        std::fs::read(c.join("big")).unwrap() == data,
        "content differs"
    );
    assert!(
        grown < 8 << 20,
        "child used {grown} bytes: data was copied, not reflinked"
    );
    // Writing to the child leaves the parent's shared extents alone.
    std::fs::write(c.join("big"), b"changed").unwrap();
    assert!(std::fs::read(b.join("big")).unwrap() == data);
    drop(d);
}

/// A staging dir still locked by a running create is not a leftover.
#[test]
fn privileged_locked_staging_survives_init() {
    if !need_root("privileged_locked_staging_survives_init") {
        return;
    }
    let tmp = Scratch::new("strata-vfs-");
    let home = tmp.path().join("vfs");
    drop(init_in(&home, &[]).unwrap());
    let busy = home.join("tmp/busy-0000000000000001");
    std::fs::create_dir_all(busy.join("x")).unwrap();
    let f = std::fs::File::open(&busy).unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).unwrap();
    drop(init_in(&home, &[]).unwrap());
    assert!(busy.join("x").is_dir(), "a locked staging dir was removed");
    drop(f);
    drop(init_in(&home, &[]).unwrap());
    assert!(!busy.exists(), "an unlocked staging dir was kept");
}

/// The diff getter reads a layer's files by archive name and cannot be led
/// out of the layer by `..` or symlinks; disk usage counts the layer's own
/// blocks and inodes.
#[test]
fn privileged_diff_getter_and_disk_usage() {
    if !need_root("privileged_diff_getter_and_disk_usage") {
        return;
    }
    let tmp = Scratch::new("strata-vfs-");
    let d = init_in(&tmp.path().join("vfs"), &[]).unwrap();
    d.create(&req("l", None)).unwrap();
    let root = d.get("l", &MountOptions::default()).unwrap();
    std::fs::create_dir(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hostname"), b"inside\n").unwrap();
    std::fs::write(root.join("big"), vec![1u8; 1 << 20]).unwrap();
    std::fs::write(tmp.path().join("secret"), b"outside\n").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret"), root.join("esc")).unwrap();
    std::os::unix::fs::symlink("../../../../../secret", root.join("etc/rel")).unwrap();
    let src = d.diff_getter("l").unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut src.open(b"etc/hostname").unwrap(), &mut got).unwrap();
    assert_eq!(got, "inside\n");
    for name in [
        &b"esc"[..],
        b"etc/rel",
        b"../secret",
        b"../../../../secret",
        b"missing",
    ] {
        let r = src.open(name);
        let mut buf = String::new();
        if let Ok(mut f) = r {
            let _ = std::io::Read::read_to_string(&mut f, &mut buf);
            assert_ne!(
                buf,
                "outside\n",
                "{} escaped the layer",
                String::from_utf8_lossy(name)
            );
            panic!("{} opened: {buf:?}", String::from_utf8_lossy(name));
        }
    }
    let u = d.read_write_disk_usage("l").unwrap();
    assert!(u.size >= 1 << 20, "{u:?}");
    assert_eq!(u.inodes, 6, "root, etc, hostname, big, esc, rel: {u:?}");
    assert_eq!(
        d.read_write_disk_usage("nosuch").unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// A ustar member: a regular file (`data`) or, with `link`, a hard link.
struct Member<'a> {
    name: &'a str,
    link: Option<&'a str>,
    mode: u32,
    owner: (u32, u32),
    data: &'a [u8],
}

fn ustar(members: &[Member<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        let mut h = tar::Header::new_ustar();
        h.set_mode(m.mode);
        h.set_uid(m.owner.0.into());
        h.set_gid(m.owner.1.into());
        h.set_mtime(1_600_000_000);
        h.set_size(m.data.len() as u64);
        match m.link {
            Some(to) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_link_name(to).unwrap();
            }
            None => h.set_entry_type(tar::EntryType::Regular),
        }
        b.append_data(&mut h, m.name, m.data).unwrap();
    }
    b.into_inner().unwrap()
}

fn file<'a>(name: &'a str, mode: u32, data: &'a [u8]) -> Member<'a> {
    Member {
        name,
        link: None,
        mode,
        owner: (0, 0),
        data,
    }
}

fn link<'a>(name: &'a str, to: &'a str, mode: u32, owner: (u32, u32)) -> Member<'a> {
    Member {
        name,
        link: Some(to),
        mode,
        owner,
        data: b"",
    }
}

fn ino(p: &Path) -> u64 {
    std::fs::symlink_metadata(p).unwrap().ino()
}

fn shared_req(id: &str, parent: &str) -> CreateRequest {
    CreateRequest {
        share_parent_files: true,
        ..req(id, Some(parent))
    }
}

/// A read-only child asked to share its parent's files holds hard links
/// to them (directories are its own); what a later apply or re-owning
/// changes through such a link reaches no other layer, and the child's
/// own hard link groups stay whole, as in a copied child.
#[test]
fn privileged_shared_child_links_and_unshares_before_a_change() {
    if !need_root("privileged_shared_child_links_and_unshares_before_a_change") {
        return;
    }
    let tmp = Scratch::new("strata-vfs-");
    let home = tmp.path().join("vfs");
    let d = init_in(&home, &[]).unwrap();
    d.create(&req("base", None)).unwrap();
    let b = d.get("base", &MountOptions::default()).unwrap();
    std::fs::write(b.join("a"), b"A").unwrap();
    std::fs::write(b.join("g1"), b"G").unwrap();
    std::fs::create_dir(b.join("sub")).unwrap();
    std::fs::hard_link(b.join("g1"), b.join("sub/g2")).unwrap();
    std::os::unix::fs::symlink("a", b.join("s")).unwrap();
    for p in ["a", "g1"] {
        std::fs::set_permissions(b.join(p), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let before: Vec<_> = ["a", "g1", "sub/g2", "s"]
        .iter()
        .map(|p| std::fs::symlink_metadata(b.join(p)).unwrap())
        .collect();

    d.create(&shared_req("child", "base")).unwrap();
    let c = d.get("child", &MountOptions::default()).unwrap();
    for p in ["a", "g1", "sub/g2", "s"] {
        assert_eq!(ino(&c.join(p)), ino(&b.join(p)), "{p} is linked");
    }
    assert_ne!(
        ino(&c.join("sub")),
        ino(&b.join("sub")),
        "directories are new"
    );
    // A second child, to watch what changes to the parent do to it.
    d.create(&shared_req("kid", "base")).unwrap();
    let k = d.get("kid", &MountOptions::default()).unwrap();
    assert_eq!(ino(&k.join("s")), ino(&b.join("s")));

    // Read-write, or not asked: copies.
    let rw = CreateRequest {
        access: Access::ReadWrite,
        ..shared_req("rw", "base")
    };
    d.create(&rw).unwrap();
    d.create(&req("plain", Some("base"))).unwrap();
    for id in ["rw", "plain"] {
        let r = d.get(id, &MountOptions::default()).unwrap();
        assert_ne!(ino(&r.join("a")), ino(&b.join("a")), "{id} copies");
        assert_eq!(
            ino(&r.join("g1")),
            ino(&r.join("sub/g2")),
            "{id} keeps links"
        );
    }

    let tar = ustar(&[
        link("b", "a", 0o700, (123, 45)),
        file("n", 0o644, b"N"),
        link("m", "n", 0o600, (0, 0)),
        link("k", "n", 0o640, (0, 0)),
        link("h", "g1", 0o711, (0, 0)),
    ]);
    let target = strata_driver::LayerRef {
        id: "child",
        parent: Some("base"),
    };
    d.apply_diff(target, &Default::default(), &mut &tar[..], None)
        .unwrap();

    // The parent is as it was: same inodes, modes, owners, content.
    for (p, m) in ["a", "g1", "sub/g2", "s"].iter().zip(&before) {
        let now = std::fs::symlink_metadata(b.join(p)).unwrap();
        assert_eq!(
            (now.ino(), now.mode(), now.uid(), now.gid()),
            (m.ino(), m.mode(), m.uid(), m.gid()),
            "base/{p}"
        );
    }
    assert_eq!(std::fs::read(b.join("a")).unwrap(), b"A");
    // The child's `a` is private now, and carries the link's header.
    let (ca, cb) = (
        std::fs::metadata(c.join("a")).unwrap(),
        std::fs::metadata(c.join("b")).unwrap(),
    );
    assert_ne!(ca.ino(), before[0].ino());
    assert_eq!(ca.ino(), cb.ino());
    assert_eq!((ca.mode() & 0o7777, ca.uid(), ca.gid()), (0o700, 123, 45));
    assert_eq!(std::fs::read(c.join("b")).unwrap(), b"A");
    // A group the stream made is not split.
    let n = std::fs::metadata(c.join("n")).unwrap();
    for p in ["m", "k"] {
        assert_eq!(ino(&c.join(p)), n.ino(), "{p}");
    }
    assert_eq!(n.mode() & 0o7777, 0o640);
    // Every name the child had for g1's inode moved to the private copy.
    let g = std::fs::metadata(c.join("g1")).unwrap();
    assert_ne!(g.ino(), before[1].ino());
    assert_eq!(ino(&c.join("sub/g2")), g.ino());
    assert_eq!(ino(&c.join("h")), g.ino());
    assert_eq!(g.mode() & 0o7777, 0o711);
    assert_eq!(ino(&c.join("s")), before[3].ino(), "untouched links stay");
    let leftovers: Vec<_> = std::fs::read_dir(&c)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".strata"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Re-owning the child re-owns a private copy of it.
    let maps = |host: u32| {
        strata_idmap::IdMappings::new(
            vec![strata_idmap::IdMap {
                container_id: 0,
                host_id: host,
                size: 65536,
            }],
            vec![strata_idmap::IdMap {
                container_id: 0,
                host_id: host,
                size: 65536,
            }],
        )
    };
    d.update_layer_id_map("child", &maps(0), &maps(100_000), None)
        .unwrap();
    let s = std::fs::symlink_metadata(c.join("s")).unwrap();
    assert_ne!(s.ino(), before[3].ino());
    assert_eq!(s.uid(), 100_000);
    assert_eq!(std::fs::symlink_metadata(b.join("s")).unwrap().uid(), 0);
    assert_eq!(std::fs::metadata(c.join("a")).unwrap().uid(), 100_123);
    assert_eq!(ino(&c.join("g1")), ino(&c.join("sub/g2")));

    // The parent's files are its children's too: a link member applied to
    // the parent, and re-owning the parent, leave the other child as it was.
    let tar = ustar(&[link("t", "s", 0o777, (77, 78))]);
    let target = strata_driver::LayerRef {
        id: "base",
        parent: None,
    };
    d.apply_diff(target, &Default::default(), &mut &tar[..], None)
        .unwrap();
    let bs = std::fs::symlink_metadata(b.join("s")).unwrap();
    assert_eq!((bs.uid(), bs.gid()), (77, 78));
    assert_eq!(ino(&b.join("t")), bs.ino());
    d.update_layer_id_map("base", &maps(0), &maps(100_000), None)
        .unwrap();
    assert_eq!(std::fs::metadata(b.join("a")).unwrap().uid(), 100_000);
    let ks = std::fs::symlink_metadata(k.join("s")).unwrap();
    assert_eq!((ks.ino(), ks.uid(), ks.gid()), (before[3].ino(), 0, 0));
    let ka = std::fs::metadata(k.join("a")).unwrap();
    assert_eq!((ka.ino(), ka.uid()), (before[0].ino(), 0));
    assert_eq!(std::fs::read(k.join("a")).unwrap(), b"A");
    // Owners moved to other maps: a copy, whatever was asked.
    let shifted = CreateRequest {
        id_mappings: maps(200_000),
        parent_mappings: Some(maps(0)),
        ..shared_req("mapped", "kid")
    };
    d.create(&shifted).unwrap();
    let m = d.get("mapped", &MountOptions::default()).unwrap();
    let ma = std::fs::metadata(m.join("a")).unwrap();
    assert_ne!(ma.ino(), before[0].ino());
    assert_eq!(ma.uid(), 200_000);
    let mut entries: Vec<_> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["dir", "tmp"], "nothing else in the driver's home");
}
