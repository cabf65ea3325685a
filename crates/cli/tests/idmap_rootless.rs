//! Rootless (issue 12): strata run as an unprivileged user inside a user
//! namespace that newuidmap/newgidmap make from the user's real
//! /etc/subuid and /etc/subgid ranges (`unshare --map-root-user
//! --map-auto`), on vfs and on overlay (which must then mount with
//! `userxattr`), and on overlay through fuse-overlayfs, does what
//! containers-storage 1.43 does there: the same trees inside the
//! namespace, the same diffs, and the same host owners on disk.
//!
//! fuse-overlayfs needs `/dev/fuse` opened by the unprivileged user. A
//! distribution's udev rule makes it 0666; this machine (and CI) leaves it
//! 0600 root. The fuse test gives the user a node of its own instead of
//! changing the host's: in a private mount namespace it makes a 0666 node
//! of the same device on a tmpfs under the test's directory and binds it
//! over `/dev/fuse`, for that namespace alone.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use strata_testsupport::{need, need_root_and_tools, Scratch, REFERENCE};

/// The unprivileged user with subordinate ranges that scripts/deps.sh makes.
const USER: &str = "strata-test";

/// What a tool does as the namespace's root: a base layer whose files it
/// chowns to IDs of the namespace, a child that adds and removes files,
/// the child's tree and diff. `$1` is the tool, `$2` the driver, `$3` the
/// store's directory, `$4` more global options (split on spaces).
const SCRIPT: &str = r#"set -eu
cs="$1 --storage-driver $2 $4 -g $3/g -R $3/r"
$cs create-layer --id lower >/dev/null
m=$($cs mount lower)
echo x > "$m/f1"; chown 1:2 "$m/f1"
echo s > "$m/suid"; chown 4:4 "$m/suid"; chmod 4755 "$m/suid"
mkdir "$m/dd"; chown 5:5 "$m/dd"
ln "$m/suid" "$m/hard"
$cs unmount lower >/dev/null
$cs create-layer --id upper lower >/dev/null
m=$($cs mount upper)
echo "fs $(stat -f -c %T "$m")"
echo y > "$m/dd/f2"; chown 3:3 "$m/dd/f2"; rm "$m/f1"
(cd "$m" && find . -printf '%p %U:%G %m %n\n' | sort)
$cs unmount upper >/dev/null
echo "-- diff"
$cs diff upper | tar -tvf - --numeric-owner | awk '{print $1, $2, $NF}'
$cs shutdown >/dev/null 2>&1 || true
"#;

/// The user's uid and gid, from `id`.
fn ids(user: &str) -> Option<(u32, u32)> {
    let get = |flag: &str| {
        let o = Command::new("id").args([flag, user]).output().ok()?;
        String::from_utf8(o.stdout).ok()?.trim().parse().ok()
    };
    Some((get("-u")?, get("-g")?))
}

/// How a test runs a tool rootless.
#[derive(Clone, Copy)]
enum Kind {
    Vfs,
    /// Kernel overlay, mounted with `userxattr`.
    Overlay,
    /// Overlay through `overlay.mount_program=/usr/bin/fuse-overlayfs`.
    Fuse,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Vfs => "vfs",
            Kind::Overlay => "overlay",
            Kind::Fuse => "fuse-overlayfs",
        }
    }

    fn driver(self) -> &'static str {
        match self {
            Kind::Vfs => "vfs",
            Kind::Overlay | Kind::Fuse => "overlay",
        }
    }

    fn options(self) -> &'static str {
        match self {
            Kind::Fuse => "--storage-opt overlay.mount_program=/usr/bin/fuse-overlayfs",
            _ => "",
        }
    }
}

/// The command that starts the user namespace: for fuse-overlayfs, from a
/// private mount namespace whose `/dev/fuse` is a 0666 node of the same
/// device on a tmpfs at `dev` (see the module docs).
fn entry(kind: Kind, dev: &Path) -> Command {
    if !matches!(kind, Kind::Fuse) {
        return Command::new("setpriv");
    }
    let rdev = std::fs::metadata("/dev/fuse").unwrap().rdev();
    let node = format!(
        "mount -t tmpfs -o mode=755 strata-test-dev \"$0\" && \
         mknod -m 666 \"$0/fuse\" c {} {} && \
         mount --bind \"$0/fuse\" /dev/fuse && exec setpriv \"$@\"",
        rustix::fs::major(rdev),
        rustix::fs::minor(rdev)
    );
    std::fs::create_dir_all(dev).unwrap();
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c", &node])
        .arg(dev);
    c
}

/// Runs [`SCRIPT`] with `tool` on `kind` as [`USER`] in a new user and
/// mount namespace; returns what it printed, then the host owners of the
/// layers' files as they are on disk.
fn rootless(dir: &Path, tool: &Path, kind: Kind, (uid, gid): (u32, u32)) -> String {
    let driver = kind.label();
    let store = dir.join(format!(
        "{driver}-{}",
        tool.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir(&store).unwrap();
    std::os::unix::fs::chown(&store, Some(uid), Some(gid)).unwrap();
    let o = entry(kind, &dir.join("dev"))
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "--reset-env",
            "unshare",
            "--map-root-user",
            "--map-auto",
            "--mount",
            "sh",
            "-c",
            SCRIPT,
            "sh",
        ])
        .arg(tool)
        .arg(kind.driver())
        .arg(&store)
        .arg(kind.options())
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{} rootless on {driver}: {}",
        tool.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    // Host owners of the files the script made, wherever the driver keeps
    // them (the layer IDs are given, so the paths agree between tools).
    let host = Command::new("find")
        .arg(store.join("g"))
        .args([
            "(",
            "-name",
            "f1",
            "-o",
            "-name",
            "f2",
            "-o",
            "-name",
            "dd",
            "-o",
            "-name",
            "suid",
            "-o",
            "-name",
            "hard",
            ")",
            "-printf",
            "%P %U:%G %m\n",
        ])
        .output()
        .unwrap();
    let mut host: Vec<String> = String::from_utf8(host.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    host.sort();
    format!(
        "{}-- host\n{}\n",
        String::from_utf8(o.stdout).unwrap(),
        host.join("\n")
    )
}

fn compare(kind: Kind) {
    let test = strata_testsupport::current_test();
    let mut tools = vec![REFERENCE, "/usr/bin/newuidmap", "/usr/bin/setpriv"];
    if matches!(kind, Kind::Fuse) {
        tools.push("/usr/bin/fuse-overlayfs");
    }
    if !need_root_and_tools(&test, &tools) {
        return;
    }
    if matches!(kind, Kind::Fuse) && !need(&test, Path::new("/dev/fuse").exists(), "no /dev/fuse") {
        return;
    }
    let driver = kind.label();
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    let Some(user) = ids(USER).filter(|_| subuid.lines().any(|l| l.starts_with("strata-test:")))
    else {
        need(
            &test,
            false,
            "no strata-test user with /etc/subuid ranges (scripts/deps.sh)",
        );
        return;
    };
    let dir = Scratch::new("strata-rootless-");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The unprivileged user may not reach the build directory: run a copy.
    let strata = dir.path().join("strata");
    std::fs::copy(env!("CARGO_BIN_EXE_strata"), &strata).unwrap();
    let got = rootless(dir.path(), &strata, kind, user);
    let want = rootless(dir.path(), Path::new(REFERENCE), kind, user);
    assert_eq!(
        got, want,
        "strata (left) and the reference rootless on {driver}"
    );
    // The mount is what the kind says it is (stat -f of the mount point).
    let fs = match kind {
        Kind::Vfs => None,
        Kind::Overlay => Some("fs overlayfs\n"),
        Kind::Fuse => Some("fs fuse"),
    };
    if let Some(fs) = fs {
        assert!(got.contains(fs), "{driver}: not mounted as {fs:?}: {got}");
    }
    // On disk, the namespace's ID 3 is one of the user's subordinate IDs
    // (not 3, not the user).
    let host = got.split("-- host\n").nth(1).unwrap_or_default();
    let f2 = host
        .lines()
        .find(|l| l.split(' ').next().is_some_and(|p| p.ends_with("dd/f2")))
        .unwrap_or_else(|| panic!("no dd/f2 on disk: {host}"));
    let uid: u32 = f2
        .split(' ')
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(uid >= 65536, "dd/f2 on disk: {f2}");
}

#[test]
fn privileged_rootless_vfs_matches_the_reference() {
    compare(Kind::Vfs);
}

#[test]
fn privileged_rootless_overlay_userxattr_matches_the_reference() {
    compare(Kind::Overlay);
}

#[test]
fn privileged_rootless_fuse_overlayfs_matches_the_reference() {
    compare(Kind::Fuse);
}
