//! Hostile layers as real tar bytes, through the crate's reader and
//! pipeline: `apply_layer` (openat2) and `read_layer` feeding an applier that
//! uses the component walk. Each case proves that nothing outside the root
//! changed and that both runs leave the same tree.

mod apply_support;

use std::path::Path;

use apply_support::*;
use strata_archive::apply::Resolution;
use strata_archive::{ApplierOptions, ApplyMode, ErrorKind};
use tar::EntryType as T;

const RUNS: [Resolution; 2] = [Resolution::Auto, Resolution::ManualWalk];
const PWNED: &[u8] = b"pwned\n";

fn overlay() -> ApplierOptions {
    ApplierOptions::default()
}

fn full() -> ApplierOptions {
    ApplierOptions {
        mode: ApplyMode::FullTree,
        ..Default::default()
    }
}

fn case(
    name: &str,
    opts: ApplierOptions,
    tar: impl Fn(&str) -> Vec<u8>,
    expect: Expect,
    check: impl Fn(&Path, &Tree),
) {
    run_case(
        name,
        RUNS,
        |root, victim, r| apply_tar(root, &tar(victim), opts.clone(), r),
        expect,
        check,
    );
}

fn file_is(t: &Tree, p: &str, content: &[u8]) {
    use sha2::Digest;
    let n = t
        .get(p.as_bytes())
        .unwrap_or_else(|| panic!("{p} missing: {:?}", t.keys().collect::<Vec<_>>()));
    assert_eq!(n.kind, "file", "{p}");
    assert_eq!(
        n.sha256,
        Some(hex::encode(sha2::Sha256::digest(content))),
        "{p}"
    );
}

#[test]
fn tar_traversal_names() {
    for name in [
        "../victim/file",
        "/../victim/file",
        "a/../../victim/file",
        "./../../../victim/file",
        "victim/./../../victim/file",
    ] {
        case(
            name,
            overlay(),
            |_| TarB::new().add(M::file(name, PWNED)).finish(),
            Expect::Ok,
            |_, t| file_is(t, "victim/file", PWNED),
        );
    }
}

#[test]
fn tar_bare_dotdot_and_fine_names() {
    case(
        "bare_dotdot",
        overlay(),
        |_| {
            TarB::new()
                .add(M {
                    mode: 0o711,
                    ..M::new("..", T::Directory)
                })
                .add(M::file("..gitme", b"ok"))
                .add(M::file("...", b"ok"))
                .finish()
        },
        Expect::Ok,
        |_, t| {
            assert_eq!(t[&Vec::new()].mode, 0o711);
            file_is(t, "..gitme", b"ok");
            file_is(t, "...", b"ok");
        },
    );
}

#[test]
fn tar_absolute_name() {
    case(
        "absolute_name",
        full(),
        |v| {
            let n = format!("{v}/file");
            TarB::new().add(M::file(&n, PWNED)).finish()
        },
        Expect::Ok,
        |_, t| {
            let hits: Vec<_> = t.keys().filter(|k| k.ends_with(b"victim/file")).collect();
            assert_eq!(hits.len(), 1);
        },
    );
}

#[test]
fn tar_symlink_then_write() {
    case(
        "symlink_abs_then_write",
        overlay(),
        |v| {
            TarB::new()
                .add(M::link("l", T::Symlink, v))
                .add(M::file("l/file", PWNED))
                .finish()
        },
        Expect::Err(ErrorKind::NotFound),
        |_, _| {},
    );
    case(
        "symlink_chain_then_write",
        overlay(),
        |_| {
            TarB::new()
                .add(M::new("victim", T::Directory))
                .add(M::link("a", T::Symlink, "."))
                .add(M::link("b", T::Symlink, "a/../.."))
                .add(M::link("c", T::Symlink, "b/../victim"))
                .add(M::file("c/file", PWNED))
                .finish()
        },
        Expect::Ok,
        |_, t| file_is(t, "victim/file", PWNED),
    );
}

#[test]
fn tar_hardlinks_outside() {
    for target in ["../victim/file", "../../victim/file"] {
        case(
            "hardlink_relative_outside",
            overlay(),
            |_| TarB::new().add(M::link("h", T::Link, target)).finish(),
            Expect::Err(ErrorKind::NotFound),
            |_, _| {},
        );
    }
    case(
        "hardlink_absolute_outside",
        full(),
        |v| {
            let target = format!("{v}/file");
            TarB::new().add(M::link("h", T::Link, &target)).finish()
        },
        Expect::Err(ErrorKind::NotFound),
        |_, _| {},
    );
    case(
        "hardlink_through_symlinked_dir",
        full(),
        |v| {
            TarB::new()
                .add(M::link("s", T::Symlink, v))
                .add(M::link("h", T::Link, "s/file"))
                .finish()
        },
        Expect::Err(ErrorKind::NotFound),
        |_, _| {},
    );
}

#[test]
fn tar_chmod_through_hardlinked_symlink() {
    case(
        "chmod_through_hardlinked_symlink",
        overlay(),
        |v| {
            let target = format!("{v}/file");
            TarB::new()
                .add(M::link("l", T::Symlink, &target))
                .add(M {
                    mode: 0o4777,
                    uid: 4321,
                    ..M::link("h", T::Link, "l")
                })
                .finish()
        },
        Expect::Ok,
        |_, t| assert_eq!(t[&s("h")].kind, "symlink"),
    );
}

#[test]
fn tar_whiteout_names_refused() {
    for name in [".wh..", "sub/.wh...", ".wh.", "a/b/.wh."] {
        for opts in [overlay(), full()] {
            case(
                name,
                opts,
                |_| TarB::new().add(M::file(name, b"")).finish(),
                Expect::Err(ErrorKind::InvalidInput),
                |_, _| {},
            );
        }
    }
}

#[test]
fn tar_opaque_and_whiteout_through_symlink() {
    case(
        "opaque_through_symlink",
        full(),
        |_| {
            TarB::new()
                .add(M::file("victim/mine", b"m"))
                .add(M::link("l", T::Symlink, "../victim"))
                .add(M::file("l/.wh..wh..opq", b""))
                .add(M::file("l/.wh.nothing", b""))
                .finish()
        },
        Expect::Ok,
        |_, t| file_is(t, "victim/mine", b"m"),
    );
    case(
        "whiteout_through_abs_symlink",
        full(),
        |v| {
            TarB::new()
                .add(M::link("l", T::Symlink, v))
                .add(M::file("l/.wh.file", b""))
                .finish()
        },
        Expect::Err(ErrorKind::NotFound),
        |_, _| {},
    );
}

#[test]
fn tar_root_as_symlink_or_file() {
    for (n, m) in [
        ("dot_symlink", M::link(".", T::Symlink, "/")),
        ("dotslash_symlink", M::link("./", T::Symlink, "..")),
        ("dot_file", M::file(".", PWNED)),
    ] {
        let bytes = TarB::new().add(m).finish();
        case(
            n,
            overlay(),
            |_| bytes.clone(),
            Expect::Err(ErrorKind::InvalidInput),
            |_, _| {},
        );
    }
}

#[test]
fn tar_overlay_xattr_injection() {
    let mut m = M::file("f", b"x");
    for (k, v) in [
        ("SCHILY.xattr.trusted.overlay.opaque", "y"),
        ("SCHILY.xattr.trusted.overlay.redirect", "/etc"),
        ("SCHILY.xattr.user.overlay.opaque", "y"),
        ("SCHILY.xattr.user.containers.override_stat", "0:0:04755"),
        ("SCHILY.xattr.user.fine", "1"),
    ] {
        m.pax.push((k.into(), v.as_bytes().to_vec()));
    }
    let bytes = TarB::new().add(m).finish();
    case(
        "overlay_xattr_injection",
        overlay(),
        |_| bytes.clone(),
        Expect::Ok,
        |_, t| {
            let x = &t[&s("f")].xattrs;
            assert_eq!(x.keys().cloned().collect::<Vec<_>>(), vec![s("user.fine")]);
        },
    );
}

#[test]
fn tar_absurd_devices_and_setuid() {
    case(
        "absurd_device",
        overlay(),
        |_| {
            TarB::new()
                .add(M {
                    dev: (2_097_151, 2_097_151),
                    ..M::new("dev", T::Block)
                })
                .finish()
        },
        Expect::Err(ErrorKind::InvalidInput),
        |_, _| {},
    );
    case(
        "setuid_kept",
        full(),
        |_| {
            TarB::new()
                .add(M {
                    mode: 0o4755,
                    uid: 1000,
                    gid: 1000,
                    ..M::file("su", b"x")
                })
                .finish()
        },
        Expect::Ok,
        |_, t| assert_eq!((t[&s("su")].mode, t[&s("su")].uid), (0o4755, 1000)),
    );
}

#[test]
fn tar_pax_path_overrides_innocent_name() {
    let mut m = M::file("innocent", PWNED);
    m.pax.push(("path".into(), b"../../victim/file".to_vec()));
    let bytes = TarB::new().add(m).finish();
    case(
        "pax_path_traversal",
        overlay(),
        |_| bytes.clone(),
        Expect::Ok,
        |_, t| {
            file_is(t, "victim/file", PWNED);
            assert!(!t.contains_key(&s("innocent")));
        },
    );
}

#[test]
fn tar_var_run_and_long_paths() {
    let deep = ["d123456789"; 430].join("/");
    let leaf = format!("{deep}/leaf");
    case(
        "var_run_and_long_paths",
        full(),
        |_| {
            TarB::new()
                .add(M::new("run", T::Directory))
                .add(M::new("var", T::Directory))
                .add(M::link("var/run", T::Symlink, "/run"))
                .add(M::file("var/run/pid", b"1"))
                .add(M::file(&leaf, b"deep"))
                .add(M::link("short", T::Link, &leaf))
                .finish()
        },
        Expect::Ok,
        |_, t| {
            file_is(t, "run/pid", b"1");
            file_is(t, &leaf, b"deep");
            assert_eq!(t[&s("short")].link_group, t[leaf.as_bytes()].link_group);
        },
    );
}

#[test]
fn tar_junk_and_truncated_streams() {
    let good = TarB::new().add(M::file("f", &[7u8; 5000])).finish();
    let mut junk = vec![0x5au8; 4096];
    junk[..5].copy_from_slice(b"junk!");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("junk", junk, "invalid tar header"),
        ("truncated_header", good[..300].to_vec(), "unexpected EOF"),
        (
            "truncated_content",
            good[..512 + 1000].to_vec(),
            "unexpected EOF",
        ),
    ];
    // A partial layer may remain inside the root (the caller removes it), so
    // each run is its own case.
    for ((n, bytes, msg), r) in cases.iter().flat_map(|c| RUNS.map(|r| (c, r))) {
        run_case(
            n,
            [r],
            |root, _, r| {
                let e = apply_tar(root, bytes, overlay(), r).unwrap_err();
                assert!(e.to_string().contains(msg), "{n}: {e}");
                Err(e)
            },
            Expect::Err(ErrorKind::InvalidInput),
            |_, _| {},
        );
    }
}

#[test]
fn tar_compressed_junk_and_huge_pax_header() {
    let mut gz = vec![0x1f, 0x8b, 0x08, 0x00];
    gz.extend(std::iter::repeat_n(0xa5u8, 4000));
    let mut zst = vec![0x28, 0xb5, 0x2f, 0xfd];
    zst.extend(std::iter::repeat_n(0x11u8, 4000));
    let mut bz = b"BZh9".to_vec();
    bz.extend(std::iter::repeat_n(0x31u8, 4000));
    let mut xz = vec![0xfd, b'7', b'z', b'X', b'Z', 0x00];
    xz.extend(std::iter::repeat_n(0x42u8, 4000));
    // A PAX record of 20 MiB: refused before it is buffered.
    let mut big = M::file("f", b"x");
    big.pax.push(("comment".into(), vec![b'a'; 20 << 20]));
    let huge = TarB::new().add(big).finish();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("gzip_junk", gz),
        ("zstd_junk", zst),
        ("bzip2_junk", bz),
        ("xz_junk", xz),
        ("huge_pax_header", huge),
    ];
    for ((n, bytes), r) in cases.iter().flat_map(|c| RUNS.map(|r| (c, r))) {
        run_case(
            n,
            [r],
            |root, _, r| {
                let e = apply_tar(root, bytes, overlay(), r).unwrap_err();
                let msg = e.to_string();
                assert!(
                    msg.contains("invalid tar header") || msg.contains("unexpected EOF"),
                    "{n}: message scripts cannot match: {msg}"
                );
                Err(e)
            },
            Expect::Err(ErrorKind::InvalidInput),
            |_, _| {},
        );
    }
}
