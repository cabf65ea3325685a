//! Applier behaviour for callers without full privileges: a user namespace
//! (chown and xattr failures) and an unprivileged user (read-only
//! directories). Each test re-runs itself in the reduced context.

mod apply_support;

use std::path::Path;

use apply_support::*;
use strata_archive::apply::Resolution;
use strata_archive::{ApplierOptions, ApplyMode};
use strata_testsupport::{need_root, unmet, Scratch};

fn tmp() -> Scratch {
    Scratch::new("strata-apply-")
}

fn full() -> ApplierOptions {
    ApplierOptions {
        mode: ApplyMode::FullTree,
        ..Default::default()
    }
}

fn node<'a>(t: &'a Tree, p: &str) -> &'a Node {
    t.get(p.as_bytes()).unwrap_or_else(|| panic!("{p} missing"))
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    rustix::fs::lgetxattr(p, name, &mut buf[..])
        .ok()
        .map(|n| buf[..n].to_vec())
}

/// Runs in a user namespace where only root is mapped (via `unshare`):
/// chown to an unmapped owner fails (EINVAL) and trusted xattrs fail
/// (EPERM). With `ignore_chown_errors` the layer applies with warnings;
/// without it the chown failure is an error. The xattr failure is a warning
/// either way, because the process is in a user namespace.
#[test]
fn privileged_userns_chown_and_xattr_errors() {
    if let Some(dir) = std::env::var_os("STRATA_APPLY_USERNS_INNER") {
        let dir = Path::new(&dir);
        let layer = L::new()
            .file("f", b"x")
            .owner(1000, 1000)
            .xattr("trusted.x", b"1")
            .xattr("user.y", b"2");
        let a = dir.join("a");
        std::fs::create_dir(&a).unwrap();
        let opts = ApplierOptions {
            ignore_chown_errors: true,
            mode: ApplyMode::FullTree,
            ..Default::default()
        };
        apply(&a, &layer, opts, Resolution::Auto).expect("ignored chown errors");
        assert_eq!(std::fs::read(a.join("f")).unwrap(), b"x");
        assert_eq!(xattr(&a.join("f"), "user.y").as_deref(), Some(&b"2"[..]));
        let b = dir.join("b");
        std::fs::create_dir(&b).unwrap();
        let e = apply(&b, &layer, full(), Resolution::Auto).unwrap_err();
        assert!(e.to_string().contains("chown"), "{e}");
        return;
    }
    let t = tmp();
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user"])
        .arg(exe)
        .args([
            "--exact",
            "privileged_userns_chown_and_xattr_errors",
            "--nocapture",
        ])
        .env("STRATA_APPLY_USERNS_INNER", t.path())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            unmet(
                "privileged_userns_chown_and_xattr_errors",
                &format!("cannot run unshare: {e}"),
            );
            return;
        }
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && text.contains("unshare failed") {
        unmet(
            "privileged_userns_chown_and_xattr_errors",
            &format!("no user namespaces here: {text}"),
        );
        return;
    }
    assert!(out.status.success(), "inner run failed:\n{text}");
    assert!(text.contains("1 passed"), "inner test did not run:\n{text}");
}

/// Without root (re-run as nobody via `setpriv`), read-only directories
/// still receive their entries: their modes are set at the end, children
/// first.
#[test]
fn privileged_unprivileged_caller_fills_readonly_dirs() {
    if let Some(dir) = std::env::var_os("STRATA_APPLY_NOBODY_INNER") {
        let root = Path::new(&dir).join("root");
        std::fs::create_dir(&root).unwrap();
        let layer = L::new()
            .dir("ro")
            .mode(0o555)
            .file("ro/f", b"x")
            .mode(0o444)
            .dir("ro/sub")
            .mode(0o500)
            .file("ro/sub/g", b"y")
            .dir("none")
            .mode(0o000)
            .file("none/h", b"z");
        let opts = ApplierOptions {
            ignore_chown_errors: true,
            ..Default::default()
        };
        apply(&root, &layer, opts, Resolution::Auto).unwrap();
        return;
    }
    if !need_root("privileged_unprivileged_caller_fills_readonly_dirs") {
        return;
    }
    let t = tmp();
    rustix::fs::chmod(t.path(), rustix::fs::Mode::from_raw_mode(0o777)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(exe)
        .args([
            "--exact",
            "privileged_unprivileged_caller_fills_readonly_dirs",
            "--nocapture",
        ])
        .env("STRATA_APPLY_NOBODY_INNER", t.path())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            unmet(
                "privileged_unprivileged_caller_fills_readonly_dirs",
                &format!("cannot run setpriv: {e}"),
            );
            return;
        }
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "inner run failed:\n{text}");
    assert!(text.contains("1 passed"), "inner test did not run:\n{text}");
    let t = snapshot(&t.path().join("root"));
    assert_eq!(node(&t, "ro").mode, 0o555);
    assert_eq!(node(&t, "ro/sub").mode, 0o500);
    assert_eq!(node(&t, "none").mode, 0o000);
    assert_eq!(node(&t, "ro/sub/g").size, 1);
    assert_eq!(node(&t, "none/h").size, 1);
    assert_eq!(node(&t, "none/h").uid, 65534);
    for p in ["ro", "ro/sub", "none"] {
        assert_eq!(
            node(&t, p).mtime,
            Some((MTIME.sec, MTIME.nsec as i64)),
            "{p}"
        );
    }
}
