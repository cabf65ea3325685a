//! The conformance suite on the overlay driver run rootless: the test binary
//! re-runs itself inside a user namespace whose root is host uid/gid 100000
//! (65536 IDs) and a private mount namespace, where the driver must mount
//! with `userxattr` and keep `user.overlay.*` markers. Kernel overlay and
//! fuse-overlayfs.
//!
//! Left out: `id_mapped_layer` (host IDs 100000+ cannot be represented
//! inside a 65536-ID namespace), and for kernel overlay the two cases that
//! expect full-tree diff semantics (see overlay_conformance.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

use strata_driver::conformance::{Suite, CASES};

const CHILD_ENV: &str = "STRATA_OVERLAY_ROOTLESS_SUITE";

fn suite(fuse: bool) -> Suite {
    let mut s = Suite::new("overlay", strata_driver::overlay::init);
    if fuse {
        s.options = vec!["overlay.mount_program=/usr/bin/fuse-overlayfs".into()];
    }
    s.left_out = vec![(
        "id_mapped_layer",
        "host IDs 100000+ cannot be represented inside a 65536-ID namespace",
    )];
    if !fuse {
        for case in ["changes_after_edits", "recreate_at_depths"] {
            s.left_out.push((
                case,
                "full-tree diff semantics; the native diff reads the upper directory",
            ));
        }
    }
    s
}

/// Runs every case in this process; returns the failed ones.
fn run_cases(fuse: bool) -> Vec<&'static str> {
    let s = suite(fuse);
    let mut failed = Vec::new();
    for (name, case) in CASES {
        if std::panic::catch_unwind(|| case(&s)).is_err() {
            failed.push(*name);
        }
    }
    failed
}

/// A character device 10:229 (the FUSE device) with mode 0666 in `dir`.
fn world_usable_fuse(dir: &Path) -> PathBuf {
    use rustix::fs::{makedev, mknodat, FileType, Mode, CWD};
    let node = dir.join("fuse");
    mknodat(
        CWD,
        &node,
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        makedev(10, 229),
    )
    .unwrap();
    rustix::fs::chmod(&node, Mode::from_raw_mode(0o666)).unwrap();
    node
}

fn in_userns(test: &str, fuse: bool) {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        assert_ne!(
            std::fs::read_to_string("/proc/self/uid_map")
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["0", "0", "4294967295"],
            "child must run in a user namespace"
        );
        if mode == test {
            let failed = run_cases(fuse);
            assert!(failed.is_empty(), "rootless cases failed: {failed:?}");
            println!("ROOTLESS-SUITE-OK");
        }
        return;
    }
    if !strata_testsupport::need_root(test) {
        return;
    }
    let scratch = strata_testsupport::Scratch::new("strata-rootless-");
    let ns = strata_sys::mount::UserNs::new("0 100000 65536\n", "0 100000 65536\n").unwrap();
    let userns = format!("--user=/proc/{}/ns/user", ns.pid());
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "--"]);
    if fuse {
        // Rootless FUSE needs a /dev/fuse the mapped user may open (as on
        // desktop systems); where the machine keeps it root-only, a node of
        // our own is bound over it in a mount namespace of this test only.
        let node = world_usable_fuse(scratch.path());
        cmd.args(["sh", "-c", r#"mount --bind "$0" /dev/fuse && exec "$@""#])
            .arg(node);
    }
    let out = cmd
        .args([
            "nsenter",
            &userns,
            "--",
            "unshare",
            "-m",
            "--propagation",
            "private",
        ])
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ROOTLESS-SUITE-OK"),
        "rootless child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn privileged_overlay_rootless_conformance_kernel() {
    in_userns("privileged_overlay_rootless_conformance_kernel", false);
}

#[test]
fn privileged_overlay_rootless_conformance_fuse() {
    in_userns("privileged_overlay_rootless_conformance_fuse", true);
}
