//! Hostile layers built in code. Every case runs with the openat2 resolver
//! and with the component walk, in a sandbox where a victim directory and a
//! sibling-prefix directory (`dest-evil`) sit beside the root (`dest`). Each
//! proves that nothing outside the root changed (names, content, modes,
//! owners, mtimes, xattrs of everything in the sandbox but the root, and no
//! new names), that both resolvers agree on the outcome and on the tree
//! inside the root, and then checks what landed inside.

mod apply_support;

use apply_support::hostile::*;
use apply_support::*;
use strata_archive::entry::EntryKind;
use strata_archive::ErrorKind;

// ---- traversal by `..` and absolute names ----

#[test]
fn dotdot_leading() {
    case(
        "dotdot_leading",
        overlay(),
        |_| L::new().file("../victim/file", PWNED),
        Expect::Ok,
        |root, _| assert_eq!(content(root, "victim/file"), PWNED),
    );
}

#[test]
fn dotdot_inner() {
    case(
        "dotdot_inner",
        overlay(),
        |_| L::new().file("a/../../../victim/file", PWNED),
        Expect::Ok,
        |root, t| {
            assert_eq!(content(root, "victim/file"), PWNED);
            assert!(!has(t, "a"));
        },
    );
}

#[test]
fn dotdot_after_absolute_prefix() {
    case(
        "dotdot_after_absolute_prefix",
        full(),
        |_| L::new().file("/../../victim/sub/inner", PWNED),
        Expect::Ok,
        |root, _| assert_eq!(content(root, "victim/sub/inner"), PWNED),
    );
}

#[test]
fn bare_dotdot_is_the_root() {
    case(
        "bare_dotdot_is_the_root",
        overlay(),
        |_| L::new().dir("..").mode(0o777).owner(1234, 1234),
        Expect::Ok,
        |_, t| {
            let r = &t[&Vec::new()];
            assert_eq!((r.mode, r.uid), (0o777, 1234), "metadata goes to the root");
        },
    );
}

#[test]
fn dotdot_like_names_are_fine() {
    case(
        "dotdot_like_names_are_fine",
        overlay(),
        |_| {
            L::new()
                .file("..gitme", b"a")
                .file("...", b"b")
                .file("..a/..b", b"c")
                .file("x..", b"d")
        },
        Expect::Ok,
        |root, _| {
            for (p, c) in [
                ("..gitme", "a"),
                ("...", "b"),
                ("..a/..b", "c"),
                ("x..", "d"),
            ] {
                assert_eq!(content(root, p), c.as_bytes(), "{p}");
            }
        },
    );
}

#[test]
fn absolute_names_stay_inside() {
    case(
        "absolute_names_stay_inside",
        full(),
        |v| L::new().file(&format!("{v}/file"), PWNED),
        Expect::Ok,
        |root, t| {
            let n = t.keys().filter(|k| k.ends_with(b"victim/file")).count();
            assert_eq!(n, 1);
            assert!(root.join("var/tmp").is_dir() || root.join("tmp").is_dir());
        },
    );
}

#[test]
fn sibling_prefix_by_dotdot() {
    case(
        "sibling_prefix_by_dotdot",
        overlay(),
        |_| L::new().file("../dest-evil/file", PWNED),
        Expect::Ok,
        |root, _| assert_eq!(content(root, "dest-evil/file"), PWNED),
    );
}

// ---- symlink then write ----

#[test]
fn symlink_relative_up_and_out() {
    // The link resolves to <root>/victim, which does not exist: a component
    // named by a link target is never created.
    case(
        "symlink_relative_up_and_out",
        overlay(),
        |_| L::new().symlink("l", "../victim").file("l/file", PWNED),
        Expect::Err(ErrorKind::NotFound),
        |_, _| {},
    );
    case(
        "symlink_relative_up_and_out_existing",
        overlay(),
        |_| {
            L::new()
                .dir("victim")
                .symlink("l", "../../victim")
                .file("l/file", PWNED)
        },
        Expect::Ok,
        |root, _| assert_eq!(content(root, "victim/file"), PWNED),
    );
}

#[test]
fn symlink_absolute_host_path() {
    case(
        "symlink_absolute_host_path",
        overlay(),
        |v| L::new().symlink("l", v).file("l/file", PWNED),
        Expect::Err(ErrorKind::NotFound),
        |_, _| {},
    );
    case(
        "symlink_absolute_host_path_existing",
        overlay(),
        |v| L::new().dir(v).symlink("l", v).file("l/file", PWNED),
        Expect::Ok,
        |_, t| {
            // Reading root/l/file from the host would follow the link out;
            // look at the tree taken through descriptors instead.
            let (_, n) = t
                .iter()
                .find(|(k, _)| k.ends_with(b"victim/file"))
                .expect("victim/file inside the root");
            assert_eq!(n.sha256, Some(sha(PWNED)));
            assert_eq!(kind(t, "l"), "symlink");
        },
    );
}

#[test]
fn symlink_chain_of_harmless_links() {
    case(
        "symlink_chain_of_harmless_links",
        full(),
        |_| {
            L::new()
                .dir("victim")
                .symlink("a", ".")
                .symlink("b", "a/..")
                .symlink("c", "b/../a/..")
                .symlink("d", "c/../victim")
                .file("d/file", PWNED)
                .dir("deep/er")
                .symlink("deep/er/up", "../../../..")
                .file("deep/er/up/victim/second", PWNED)
        },
        Expect::Ok,
        |root, _| {
            assert_eq!(content(root, "victim/file"), PWNED);
            assert_eq!(content(root, "victim/second"), PWNED);
        },
    );
}

#[test]
fn symlink_to_slash_then_dotdots() {
    case(
        "symlink_to_slash_then_dotdots",
        overlay(),
        |_| {
            L::new()
                .symlink("r", "/")
                .symlink("up", "r/../../..")
                .dir("up/victim")
                .file("up/victim/file", PWNED)
        },
        Expect::Ok,
        |root, t| {
            assert_eq!(kind(t, "victim"), "dir");
            assert_eq!(content(root, "victim/file"), PWNED);
        },
    );
}

#[test]
fn write_over_symlink_replaces_it() {
    case(
        "write_over_symlink_replaces_it",
        full(),
        |v| {
            L::new()
                .symlink("f", &format!("{v}/file"))
                .file("f", PWNED)
                .mode(0o777)
                .symlink("d", v)
                .dir("d")
                .mode(0o777)
                .symlink("rel", "../victim/file")
                .kind("rel", EntryKind::Fifo)
        },
        Expect::Ok,
        |root, t| {
            assert_eq!(kind(t, "f"), "file");
            assert_eq!(content(root, "f"), PWNED);
            assert_eq!(kind(t, "d"), "dir");
            assert_eq!(kind(t, "rel"), "fifo");
        },
    );
}

#[test]
fn symlink_loop() {
    case(
        "symlink_loop",
        overlay(),
        |_| {
            L::new()
                .symlink("a", "b")
                .symlink("b", "a")
                .file("a/x", PWNED)
        },
        Expect::Err(ErrorKind::Io),
        |_, _| {},
    );
}

#[test]
fn magic_links_are_not_followed() {
    for target in ["/proc/self/root", "/proc/self/cwd", "/proc/1/root"] {
        case(
            "magic_links_are_not_followed",
            overlay(),
            |v| {
                L::new()
                    .symlink("p", target)
                    .file(&format!("p{v}/file"), PWNED)
            },
            Expect::Err(ErrorKind::NotFound),
            |_, _| {},
        );
    }
}

#[test]
fn sibling_prefix_by_symlink() {
    case(
        "sibling_prefix_by_symlink",
        overlay(),
        |_| L::new().symlink("e", "../dest-evil").file("e/file", PWNED),
        Expect::Err(ErrorKind::NotFound),
        |_, _| {},
    );
}

// ---- hard links ----

#[test]
fn hardlink_relative_outside() {
    case(
        "hardlink_relative_outside",
        overlay(),
        |_| L::new().link("h", "../victim/file"),
        Expect::Err(ErrorKind::NotFound),
        |_, _| {},
    );
}

#[test]
fn hardlink_absolute_outside() {
    case(
        "hardlink_absolute_outside",
        full(),
        |v| L::new().link("h", &format!("{v}/file")),
        Expect::Err(ErrorKind::NotFound),
        |_, _| {},
    );
}

#[test]
fn hardlink_through_symlinked_dir() {
    case(
        "hardlink_through_symlinked_dir_abs",
        overlay(),
        |v| L::new().symlink("s", v).link("h", "s/file"),
        Expect::Err(ErrorKind::NotFound),
        |_, _| {},
    );
    case(
        "hardlink_through_symlinked_dir_rel",
        overlay(),
        |_| {
            L::new()
                .symlink("s", "../../victim")
                .link("h", "s/sub/inner")
        },
        Expect::Err(ErrorKind::NotFound),
        |_, _| {},
    );
    case(
        "hardlink_through_symlinked_dir_inside",
        overlay(),
        |_| {
            L::new()
                .file("victim/file", b"mine")
                .symlink("s", "../../victim")
                .link("h", "s/file")
        },
        Expect::Ok,
        |_, t| assert_eq!(t[&s("h")].link_group, Some(s("h"))),
    );
}

#[test]
fn chmod_chown_through_hardlinked_symlink() {
    case(
        "chmod_chown_through_hardlinked_symlink",
        overlay(),
        |v| {
            L::new()
                .symlink("l", &format!("{v}/file"))
                .link("h", "l")
                .mode(0o4777)
                .owner(4321, 4321)
                .symlink("dl", v)
                .link("dh", "dl")
                .mode(0o777)
                .owner(4321, 4321)
        },
        Expect::Ok,
        |_, t| {
            assert_eq!(kind(t, "h"), "symlink");
            assert_eq!(kind(t, "dh"), "symlink");
            if strata_testsupport::is_root() {
                assert_eq!(t[&s("h")].uid, 4321, "lchown on the link itself");
            }
        },
    );
}

#[test]
fn hardlink_to_symlinked_dir_then_write() {
    case(
        "hardlink_to_symlinked_dir_then_write",
        overlay(),
        |v| {
            L::new()
                .symlink("l", v)
                .link("h", "l")
                .file("h/file", PWNED)
        },
        Expect::Err(ErrorKind::NotFound),
        |_, _| {},
    );
}

#[test]
fn chown_of_symlink_does_not_follow() {
    case(
        "chown_of_symlink_does_not_follow",
        full(),
        |v| {
            L::new()
                .symlink("l", &format!("{v}/file"))
                .owner(4321, 4321)
                .xattr("trusted.evil", b"1")
                .with(|h| h.mtime.sec = 1)
        },
        Expect::Ok,
        |_, t| assert_eq!(kind(t, "l"), "symlink"),
    );
}

// ---- whiteouts ----

#[test]
fn whiteout_names_refused() {
    for (n, p) in [
        ("dotdot", ".wh.."),
        ("dotdot_sub", "sub/.wh.."),
        ("dotdotdot", "sub/.wh..."),
        ("bare", ".wh."),
        ("bare_sub", "x/y/.wh."),
    ] {
        for opts in [overlay(), full()] {
            case(
                &format!("whiteout_names_refused_{n}"),
                opts,
                |_| L::new().file(p, b""),
                Expect::Err(ErrorKind::InvalidInput),
                |_, _| {},
            );
        }
    }
}

#[test]
fn whiteout_through_symlink() {
    case(
        "whiteout_through_symlink_full_abs",
        full(),
        |v| L::new().symlink("l", v).file("l/.wh.file", b""),
        Expect::Err(ErrorKind::NotFound),
        |_, _| {},
    );
    case(
        "whiteout_through_symlink_full_rel",
        full(),
        |_| {
            L::new()
                .file("victim/file", b"mine")
                .symlink("l", "../victim")
                .file("l/.wh.file", b"")
                .file("l/.wh.sub", b"")
        },
        Expect::Ok,
        |_, t| {
            assert!(!has(t, "victim/file"));
            assert_eq!(kind(t, "victim"), "dir");
        },
    );
    case(
        "whiteout_through_symlink_overlay",
        overlay(),
        |_| L::new().symlink("l", "..").file("l/.wh.x", b""),
        Expect::Ok,
        |_, t| assert_eq!(kind(t, "x"), "char"),
    );
    case(
        "whiteout_of_symlink_removes_only_link",
        full(),
        |v| L::new().symlink("l", v).file(".wh.l", b""),
        Expect::Ok,
        |_, t| assert!(!has(t, "l")),
    );
}

#[test]
fn opaque_through_symlink() {
    case(
        "opaque_through_symlink_full",
        full(),
        |_| {
            L::new()
                .file("victim/new", b"mine")
                .symlink("l", "../victim")
                .file("l/.wh..wh..opq", b"")
        },
        Expect::Ok,
        |_, t| assert!(has(t, "victim/new"), "made by this layer: kept"),
    );
    case(
        "opaque_through_abs_symlink_full",
        full(),
        |v| L::new().symlink("l", v).file("l/.wh..wh..opq", b""),
        Expect::Err(ErrorKind::NotFound),
        |_, _| {},
    );
    case(
        "opaque_through_symlink_overlay",
        overlay(),
        |_| L::new().symlink("l", "/..").file("l/.wh..wh..opq", b""),
        Expect::Ok,
        |_, t| {
            assert_eq!(
                t[&Vec::new()].xattrs.get(&s("trusted.overlay.opaque")),
                Some(&s("y"))
            )
        },
    );
}

#[test]
fn whiteouts_of_the_root_and_siblings() {
    for p in [
        "../.wh.victim",
        "../.wh.dest",
        ".wh.dest-evil",
        "/../.wh.dest",
    ] {
        for opts in [overlay(), full()] {
            case(
                "whiteouts_of_the_root_and_siblings",
                opts,
                |_| L::new().file(p, b""),
                Expect::Ok,
                |_, _| {},
            );
        }
    }
}

// ---- the root entry ----

#[test]
fn root_as_symlink_or_file() {
    type Layer = Box<dyn Fn(&str) -> L>;
    let layers: Vec<(&str, Layer)> = vec![
        ("dot_symlink", Box::new(|v: &str| L::new().symlink(".", v))),
        (
            "dotslash_symlink",
            Box::new(|v: &str| L::new().symlink("./", v)),
        ),
        (
            "dotdot_symlink",
            Box::new(|_: &str| L::new().symlink("..", "/")),
        ),
        ("dot_file", Box::new(|_: &str| L::new().file(".", PWNED))),
        ("empty_file", Box::new(|_: &str| L::new().file("", PWNED))),
        (
            "dot_hardlink",
            Box::new(|_: &str| L::new().file("x", b"x").link("./", "x")),
        ),
        (
            "dot_fifo",
            Box::new(|_: &str| L::new().kind(".", EntryKind::Fifo)),
        ),
    ];
    for (n, l) in &layers {
        for opts in [overlay(), full()] {
            case(
                &format!("root_as_{n}"),
                opts,
                l,
                Expect::Err(ErrorKind::InvalidInput),
                |_, _| {},
            );
        }
    }
}

// ---- xattrs, devices, setuid, sockets ----

#[test]
fn overlay_xattr_injection() {
    case(
        "overlay_xattr_injection",
        overlay(),
        |_| {
            L::new()
                .dir("d")
                .xattr("trusted.overlay.opaque", b"y")
                .xattr("user.overlay.opaque", b"y")
                .file("f", b"x")
                .xattr("trusted.overlay.redirect", b"/etc")
                .xattr("trusted.overlay.metacopy", b"")
                .xattr("trusted.overlay.origin", b"x")
                .xattr("user.overlay.whiteout", b"y")
                .xattr("user.containers.override_stat", b"0:0:04755")
                .file("ok", b"x")
                .xattr("user.fine", b"1")
        },
        Expect::Ok,
        |_, t| {
            for (k, n) in t {
                for x in n.xattrs.keys() {
                    let x = String::from_utf8_lossy(x);
                    assert!(
                        !x.contains("overlay") && !x.contains("override_stat"),
                        "{x} set on {}",
                        String::from_utf8_lossy(k)
                    );
                }
            }
            assert_eq!(t[&s("ok")].xattrs.get(&s("user.fine")), Some(&s("1")));
        },
    );
}

#[test]
fn absurd_device_numbers() {
    for (major, minor) in [
        (4104, 0),
        (0, 1 << 20),
        (u32::MAX, u32::MAX),
        (8 + (1 << 12), 0),
    ] {
        case(
            "absurd_device_numbers",
            overlay(),
            |_| {
                L::new()
                    .kind("dev", EntryKind::BlockDevice { major, minor })
                    .kind("cdev", EntryKind::CharDevice { major, minor })
            },
            Expect::Err(ErrorKind::InvalidInput),
            |_, _| {},
        );
    }
    case(
        "largest_device_numbers",
        overlay(),
        |_| {
            L::new().kind(
                "dev",
                EntryKind::CharDevice {
                    major: 4095,
                    minor: (1 << 20) - 1,
                },
            )
        },
        Expect::Ok,
        |_, t| assert_eq!(t[&s("dev")].rdev, rustix::fs::makedev(4095, (1 << 20) - 1)),
    );
}

#[test]
fn setuid_kept_after_chown() {
    case(
        "setuid_kept_after_chown",
        full(),
        |_| {
            L::new()
                .file("su", b"x")
                .owner(1000, 1000)
                .mode(0o6755)
                .dir("sg")
                .owner(1000, 1000)
                .mode(0o3775)
        },
        Expect::Ok,
        |_, t| {
            assert_eq!(t[&s("su")].mode, 0o6755);
            assert_eq!(t[&s("sg")].mode, 0o3775);
        },
    );
}

#[test]
fn sockets_not_created() {
    case(
        "sockets_not_created",
        overlay(),
        |v| {
            L::new()
                .kind("sock", EntryKind::Socket)
                .kind(&format!("../{v}/sock"), EntryKind::Socket)
        },
        Expect::Ok,
        |_, t| assert_eq!(t.len(), 1, "only the root: {:?}", t.keys()),
    );
}
