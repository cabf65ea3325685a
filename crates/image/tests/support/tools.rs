//! skopeo and podman with all their state under a test's directory, each
//! run in a private mount namespace with tmpfs over the places they write
//! outside it (/var/lib/containers/cache, /etc/cni/net.d).

use std::path::Path;
use std::process::{Command, Output};

/// Whether the interop tools can run here; under CI their absence fails.
pub fn available() -> bool {
    let root = rustix_like_is_root();
    let tools = ["skopeo", "podman", "unshare"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if root && tools {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs root, skopeo, podman and unshare (root: {root}, tools: {tools})"
    );
    eprintln!("skipping: needs root, skopeo, podman and unshare");
    false
}

fn rustix_like_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

const WRAP: &str = "mount -t tmpfs tmpfs /var/lib && \
    mount -t tmpfs tmpfs /etc/cni/net.d 2>/dev/null; exec \"$@\"";

/// Runs `program args…` in a private mount namespace.
pub fn isolated(program: &str, args: &[&str]) -> Output {
    let mut c = Command::new("unshare");
    c.args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        WRAP,
        "sh",
        program,
    ]);
    c.args(args);
    c.output().expect("running unshare")
}

/// Like [`isolated`], but the run must succeed; returns stdout.
pub fn ok(program: &str, args: &[&str]) -> String {
    let o = isolated(program, args);
    assert!(
        o.status.success(),
        "{program} {args:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// podman's global options for state under `dir` on `driver`.
pub fn podman_args(dir: &Path, driver: &str) -> Vec<String> {
    let p = |s: &str| dir.join(s).display().to_string();
    // The same layout strata's stores use in these tests.
    vec![
        "--root".into(),
        p("root"),
        "--runroot".into(),
        p("run"),
        "--tmpdir".into(),
        p("tmp"),
        "--storage-driver".into(),
        driver.into(),
        "--events-backend".into(),
        "file".into(),
        "--cgroup-manager".into(),
        "cgroupfs".into(),
    ]
}

/// Runs podman with state under `dir`.
pub fn podman(dir: &Path, driver: &str, args: &[&str]) -> String {
    let mut all = podman_args(dir, driver);
    all.extend(args.iter().map(|s| s.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    ok("podman", &all)
}
