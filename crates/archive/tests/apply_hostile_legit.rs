//! Tricky but legitimate layers that the confinement must not break:
//! absolute symlinks written through (`var/run -> /run`), directories
//! replaced by files and back, duplicates, very long paths and targets.
//! Run like the hostile cases: both resolvers, sandbox unchanged.

mod apply_support;

use apply_support::hostile::*;
use apply_support::*;
use strata_archive::ErrorKind;

#[test]
fn absolute_symlink_var_run() {
    case(
        "absolute_symlink_var_run",
        full(),
        |_| {
            L::new()
                .dir("run")
                .dir("var")
                .symlink("var/run", "/run")
                .file("var/run/x", b"pid")
                .dir("var/run/sub")
                .file("var/run/sub/y", b"y")
        },
        Expect::Ok,
        |root, t| {
            assert_eq!(content(root, "run/x"), b"pid");
            assert_eq!(kind(t, "run/sub/y"), "file");
            assert_eq!(kind(t, "var/run"), "symlink");
        },
    );
}

#[test]
fn dir_replaced_by_file_and_back() {
    case(
        "dir_replaced_by_file_and_back",
        overlay(),
        |_| {
            L::new()
                .dir("d")
                .file("d/x", b"1")
                .file("d/sub/y", b"2")
                .file("d", b"file now")
                .dir("d")
                .file("d/z", b"3")
                .symlink("d2", "d")
                .file("d2/w", b"4")
                .dir("d2")
                .file("d2/v", b"5")
        },
        Expect::Ok,
        |_, t| {
            assert!(!has(t, "d/x") && !has(t, "d/sub"));
            assert_eq!(kind(t, "d/z"), "file");
            assert_eq!(kind(t, "d/w"), "file");
            assert_eq!(kind(t, "d2"), "dir");
            assert_eq!(kind(t, "d2/v"), "file");
        },
    );
}

#[test]
fn duplicate_entries_last_wins() {
    case(
        "duplicate_entries_last_wins",
        full(),
        |_| {
            L::new()
                .file("f", b"one")
                .mode(0o600)
                .file("f", b"two")
                .mode(0o644)
                .symlink("l", "a")
                .symlink("l", "b")
        },
        Expect::Ok,
        |root, t| {
            assert_eq!(content(root, "f"), b"two");
            assert_eq!(t[&s("f")].mode, 0o644);
            assert_eq!(t[&s("l")].target, Some(s("b")));
        },
    );
}

#[test]
fn very_long_paths_and_targets() {
    let comp = "c123456789";
    let deep: Vec<&str> = std::iter::repeat_n(comp, 450).collect();
    let deep = deep.join("/");
    assert!(deep.len() > 4096);
    let long_target = "t".repeat(200) + &"/x".repeat(1940);
    assert!(long_target.len() < 4096 && long_target.len() > 4000);
    let deep2 = deep.clone();
    let part = deep[..comp.len() * 300 + 299].to_string();
    case(
        "very_long_paths_and_targets",
        full(),
        move |_| {
            L::new()
                .file(&format!("{deep2}/leaf"), b"deep")
                .symlink(&format!("{deep2}/sym"), &long_target)
                .link("short", &format!("{deep2}/leaf"))
                .link(&format!("{deep2}/again"), "short")
                .symlink("jump", &format!("/{part}"))
                .file("jump/via", b"via")
        },
        Expect::Ok,
        |_, t| {
            let leaf = format!("{deep}/leaf");
            assert_eq!(t[leaf.as_bytes()].kind, "file");
            assert_eq!(t[&s("short")].link_group, t[leaf.as_bytes()].link_group);
            assert!(t[&s("short")].link_group.is_some());
            let via = format!("{}/via", &deep[..comp.len() * 300 + 299]);
            assert_eq!(t[via.as_bytes()].kind, "file");
        },
    );
    case(
        "too_long_link_target",
        overlay(),
        |_| L::new().symlink("l", &"x".repeat(5000)),
        Expect::Err(ErrorKind::Io),
        |_, _| {},
    );
}
