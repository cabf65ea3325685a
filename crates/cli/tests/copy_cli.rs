//! `copy` stays inside its layers (issue 5): symlinks in the source layer
//! resolve inside that layer, as in a chroot, and symlinks in the
//! destination layer resolve inside the destination layer; a victim
//! directory beside the store is never read into a layer nor written.
//! Plus a normal copy compared with the reference, on vfs and overlay.

mod common;

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{have_reference, is_root, Env, Lookups};

/// Content of the victim's file; it must never show up in a layer.
const SECRET: &str = "host secret";
/// Content of the layer's own file at the victim's path.
const LAYER_COPY: &str = "the layer's own file";

/// Every object below `root`: path, type and mode, owner, size or target,
/// content of small files, link count and, for non-directories, mtime.
fn snapshot(root: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let what = if md.is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_file() && md.len() < 100 {
                format!("{:?}", std::fs::read_to_string(&p).unwrap_or_default())
            } else if md.is_file() {
                format!("{} bytes", md.len())
            } else {
                String::new()
            };
            let time = if md.is_file() { md.mtime() } else { 0 };
            let what = format!("{what}{}", xattrs(&p));
            v.push(format!(
                "{rel} {:o} {}:{} n{} t{time} {what}",
                md.mode(),
                md.uid(),
                md.gid(),
                if md.is_dir() { 0 } else { md.nlink() },
            ));
            if md.is_dir() {
                stack.push(p);
            }
        }
    }
    v.sort();
    v
}

/// `user.*` xattrs of `p`, as ` [name=value …]`.
fn xattrs(p: &Path) -> String {
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(p, &mut names[..]).unwrap_or(0);
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"user.") {
            let mut v = vec![0u8; 256];
            let len = rustix::fs::lgetxattr(p, name, &mut v[..]).unwrap();
            out.push(format!(
                "{}={:x?}",
                String::from_utf8_lossy(name),
                &v[..len]
            ));
        }
    }
    if out.is_empty() {
        String::new()
    } else {
        format!(" [{}]", out.join(" "))
    }
}

/// A victim directory beside the store, with a file and a subdirectory.
fn victim(e: &Env) -> PathBuf {
    let v = e.dir.path().join("victim");
    std::fs::create_dir_all(v.join("sub")).unwrap();
    std::fs::write(v.join("secret"), SECRET).unwrap();
    std::fs::write(v.join("sub/inner"), SECRET).unwrap();
    v
}

/// `path` (absolute) as it appears inside a layer mounted at `m`.
fn inside(m: &Path, path: &Path) -> PathBuf {
    m.join(path.strip_prefix("/").unwrap())
}

/// Mounts `layer`, runs `f` on the mount point, unmounts.
fn with_mount(e: &Env, layer: &str, f: impl FnOnce(&Path)) {
    let m = common::first_line(&e.ok(&["mount", layer]));
    f(Path::new(&m));
    e.ok(&["unmount", layer]);
}

/// No regular file of the layer holds the victim's content.
fn no_secret_in(e: &Env, layer: &str) {
    with_mount(e, layer, |m| {
        for l in snapshot(m) {
            assert!(!l.contains(SECRET), "host content copied into {layer}: {l}");
        }
    });
}

fn ups(n: usize) -> String {
    "../".repeat(n)
}

fn source_side(driver: &str, lookups: Lookups) {
    let e = Env::with_lookups(driver, lookups);
    let v = victim(&e);
    let before = snapshot(&v);
    let vrel = v.strip_prefix("/").unwrap().display().to_string();
    e.ok(&["create-layer", "--id", "src"]);
    e.ok(&["create-layer", "--id", "dst"]);
    with_mount(&e, "src", |m| {
        // The layer's own copy of the victim's path: chroot resolution
        // lands here.
        std::fs::create_dir_all(inside(m, &v).join("sub")).unwrap();
        std::fs::write(inside(m, &v).join("secret"), LAYER_COPY).unwrap();
        std::fs::write(inside(m, &v).join("sub/inner"), LAYER_COPY).unwrap();
        symlink(&v, m.join("abs")).unwrap();
        symlink(v.join("secret"), m.join("abs_file")).unwrap();
        std::fs::create_dir(m.join("d")).unwrap();
        symlink(format!("{}{vrel}", ups(12)), m.join("d/rel")).unwrap();
        // A chain where each link alone looks harmless.
        symlink("..", m.join("d/up")).unwrap();
        symlink(format!("up/d/up/d/up/{}{vrel}", ups(9)), m.join("d/chain")).unwrap();
        symlink("d/chain", m.join("chain2")).unwrap();
    });
    let cases: [(&str, &str, Option<&str>); 9] = [
        // Top-level symlinks are copied as symlinks.
        ("src:/abs", "dst:/t1", None),
        ("src:/abs_file", "dst:/t2", None),
        ("src:/d/rel", "dst:/t3", None),
        // Symlinks as intermediate components resolve inside the layer.
        ("src:/abs/secret", "dst:/i1", Some(LAYER_COPY)),
        ("src:/d/rel/secret", "dst:/i2", Some(LAYER_COPY)),
        ("src:/d/chain/secret", "dst:/i3", Some(LAYER_COPY)),
        ("src:/chain2/sub/inner", "dst:/i4", Some(LAYER_COPY)),
        ("src:/../../abs/sub", "dst:/i5", None),
        // A whole tree holding the links: links stay links.
        ("src:/d", "dst:/tree", None),
    ];
    for (s, d, want) in cases {
        e.ok(&["copy", s, d]);
        if let Some(want) = want {
            with_mount(&e, "dst", |m| {
                let got = std::fs::read_to_string(m.join(&d[5..])).unwrap();
                assert_eq!(got, want, "{driver}: copy {s} {d}");
            });
        }
    }
    with_mount(&e, "dst", |m| {
        for t in ["t1", "t2", "t3", "tree/rel", "tree/chain", "tree/up"] {
            assert!(
                m.join(t).symlink_metadata().unwrap().is_symlink(),
                "{driver}: {t} should be a symlink"
            );
        }
        assert_eq!(
            std::fs::read_to_string(m.join("i5/inner")).unwrap(),
            LAYER_COPY
        );
    });
    no_secret_in(&e, "dst");
    assert_eq!(snapshot(&v), before, "{driver}: victim changed");
}

fn dest_side(driver: &str, lookups: Lookups) {
    let e = Env::with_lookups(driver, lookups);
    let v = victim(&e);
    let before = snapshot(&v);
    let vrel = v.strip_prefix("/").unwrap().display().to_string();
    let host = e.dir.path().join("host");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    std::fs::write(host.join("payload"), "payload").unwrap();
    std::fs::write(host.join("sub/f"), "in sub").unwrap();
    e.ok(&["create-layer", "--id", "dst"]);
    with_mount(&e, "dst", |m| {
        std::fs::create_dir_all(inside(m, &v)).unwrap();
        std::fs::write(inside(m, &v).join("secret"), LAYER_COPY).unwrap();
        symlink(&v, m.join("etc")).unwrap();
        symlink(format!("{}{vrel}", ups(12)), m.join("up")).unwrap();
        symlink("/nonexistent-strata-copy-test", m.join("dangling")).unwrap();
        symlink(v.join("secret"), m.join("f")).unwrap();
        std::fs::create_dir(m.join("tree")).unwrap();
        symlink(&v, m.join("tree/sub")).unwrap();
    });
    let payload = host.join("payload");
    let payload = payload.to_str().unwrap();
    let hostdir = host.to_str().unwrap();
    e.ok(&["copy", payload, "dst:/etc/new"]);
    e.ok(&["copy", payload, "dst:/up/new2"]);
    e.ok(&["copy", payload, "dst:/etc/secret"]);
    e.ok(&["copy", payload, "dst:/f"]);
    e.ok(&["copy", hostdir, "dst:/tree"]);
    // A directory copied into itself stops instead of recursing forever.
    let o = e.strata(&["copy", "dst:/tree", "dst:/tree/inner/again"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("into itself"),
        "{driver}: {o:?}"
    );
    let o = e.strata(&["copy", payload, "dst:/dangling/x"]);
    assert!(
        !o.status.success(),
        "{driver}: copy through a dangling link succeeded"
    );
    assert!(!Path::new("/nonexistent-strata-copy-test").exists());
    assert_eq!(snapshot(&v), before, "{driver}: victim changed");
    with_mount(&e, "dst", |m| {
        let mine = inside(m, &v);
        for n in ["new", "new2", "secret"] {
            assert_eq!(
                std::fs::read_to_string(mine.join(n)).unwrap(),
                "payload",
                "{driver}: {n} did not land inside the layer"
            );
        }
        assert!(m.join("f").symlink_metadata().unwrap().is_file());
        assert!(m.join("tree/sub").symlink_metadata().unwrap().is_dir());
        assert_eq!(
            std::fs::read_to_string(m.join("tree/sub/f")).unwrap(),
            "in sub"
        );
    });
    let mp = e
        .run_root()
        .join(format!("{driver}-layers/mountpoints.json"));
    assert_eq!(
        std::fs::read_to_string(mp).unwrap(),
        "[]",
        "copy left mounts"
    );
}

#[test]
fn privileged_copy_source_symlinks_stay_in_the_layer() {
    if !is_root() {
        return;
    }
    for d in ["vfs", "overlay"] {
        for l in [Lookups::Fast, Lookups::Walk] {
            source_side(d, l);
        }
    }
}

#[test]
fn privileged_copy_destination_symlinks_stay_in_the_layer() {
    if !is_root() {
        return;
    }
    for d in ["vfs", "overlay"] {
        for l in [Lookups::Fast, Lookups::Walk] {
            dest_side(d, l);
        }
    }
}

/// A host tree with hard links, symlinks, odd modes, setuid and fixed
/// times.
fn host_tree(dir: &Path) -> PathBuf {
    let s = dir.join("tree");
    std::fs::create_dir_all(s.join("sub/deeper")).unwrap();
    std::fs::write(s.join("sub/a"), "a").unwrap();
    std::fs::hard_link(s.join("sub/a"), s.join("hl")).unwrap();
    std::fs::hard_link(s.join("sub/a"), s.join("sub/deeper/hl2")).unwrap();
    symlink("sub/a", s.join("sl")).unwrap();
    symlink("/etc/hostname", s.join("abs")).unwrap();
    std::fs::write(s.join("suid"), "s").unwrap();
    std::fs::write(s.join("big"), vec![7u8; 600_000]).unwrap();
    std::os::unix::fs::chown(s.join("suid"), Some(12), Some(34)).unwrap();
    std::fs::set_permissions(s.join("suid"), std::fs::Permissions::from_mode(0o6755)).unwrap();
    std::fs::set_permissions(s.join("sub"), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(s.join("sub/a"), std::fs::Permissions::from_mode(0o640)).unwrap();
    // A file capability (cap_net_raw, effective) and user xattrs.
    std::fs::write(s.join("sub/deeper/capfile"), "c").unwrap();
    let cap: Vec<u8> = [0x0200_0001u32, 1 << 13, 0, 0, 0]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let set = |p: &Path, name: &str, value: &[u8]| {
        rustix::fs::setxattr(p, name, value, rustix::fs::XattrFlags::empty()).unwrap()
    };
    set(&s.join("sub/deeper/capfile"), "security.capability", &cap);
    set(&s.join("sub/deeper/capfile"), "user.note", b"kept");
    set(&s.join("sub/deeper"), "user.dir", b"d");
    for f in ["sub/a", "suid", "big", "sub/deeper/capfile"] {
        let t = std::fs::File::options()
            .write(true)
            .open(s.join(f))
            .unwrap();
        t.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
            .unwrap();
    }
    s
}

/// The destination layers' trees after a few normal copies made by
/// `tool`, and the files of `dst` that carry a file capability (the
/// reference drops it on some copies, since it chowns after setting it).
fn normal_copies(
    driver: &str,
    tool: fn(&Env, &[&str]) -> std::process::Output,
) -> (Vec<String>, Vec<String>) {
    let e = Env::new(driver);
    let t = host_tree(e.dir.path());
    let t = t.to_str().unwrap();
    let run = |args: &[&str]| {
        let o = tool(&e, args);
        assert!(
            o.status.success(),
            "{driver} {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["create-layer", "--id", "dst"]);
    run(&["copy", t, "dst:/x"]);
    run(&["copy", "--chown", "5:6", t, "dst:/y"]);
    // Into an existing directory: contents merge.
    run(&["copy", t, "dst:/x/sub"]);
    // A file replaces a file; a trailing slash names the file itself.
    run(&["copy", &format!("{t}/suid"), "dst:/x/big"]);
    run(&["copy", &format!("{t}/suid"), "dst:/newfile/"]);
    // From a layer to a layer.
    run(&["create-layer", "--id", "dst2"]);
    run(&["copy", "dst:/y", "dst2:/from-layer"]);
    let mut out = Vec::new();
    let mut caps = Vec::new();
    for l in ["dst", "dst2"] {
        let m = common::first_line(&String::from_utf8(tool(&e, &["mount", l]).stdout).unwrap());
        out.extend(
            snapshot(Path::new(&m))
                .into_iter()
                .map(|s| format!("{l}/{s}")),
        );
        for f in ["x/sub/deeper/capfile", "y/sub/deeper/capfile", "x/suid"] {
            let mut v = [0u8; 64];
            if rustix::fs::lgetxattr(Path::new(&m).join(f), "security.capability", &mut v[..])
                .is_ok()
            {
                caps.push(format!("{l}/{f}"));
            }
        }
        tool(&e, &["unmount", l]);
    }
    // Refused as the reference refuses them.
    for (i, bad) in [
        vec!["copy", &format!("{t}/suid"), "dst:/x"],
        vec!["copy", t, "dst:/newfile"],
        vec!["copy", &format!("{t}/suid"), "dst:/"],
    ]
    .iter()
    .enumerate()
    {
        let o = tool(&e, bad);
        out.push(format!("refused case {i} ok={}", o.status.success()));
    }
    (out, caps)
}

#[test]
fn privileged_copy_normal_tree_matches_reference() {
    if !is_root() {
        return;
    }
    for driver in ["vfs", "overlay"] {
        let (ours, caps) = normal_copies(driver, |e, a| e.strata(a));
        assert_eq!(
            caps,
            ["dst/x/sub/deeper/capfile", "dst/y/sub/deeper/capfile"],
            "{driver}: file capabilities"
        );
        for want in [
            "dst/x/sub/a 100640 0:0 n3 t1000000 \"a\"",
            "dst/x/suid 106755 12:34 n1 t1000000 \"s\"",
            "dst/y/suid 106755 5:6 n1 t1000000 \"s\"",
            "dst/y/sub 40711 5:6 n0 t0 ",
            "dst/x/sl 120777 0:0 n1",
            "dst/x/abs 120777 0:0 n1",
            "dst2/from-layer/hl 100640 5:6 n3 t1000000 \"a\"",
            "dst/y/sub/deeper/capfile 100644 5:6 n1 t1000000 \"c\" [user.note=",
            "dst/x/sub/deeper 40755 0:0 n0 t0  [user.dir=",
        ] {
            assert!(
                ours.iter().any(|l| l.starts_with(want)),
                "{driver}: {want} missing: {ours:#?}"
            );
        }
        if have_reference() {
            let (theirs, _) = normal_copies(driver, |e, a| e.reference_in(a, b""));
            assert_eq!(ours, theirs, "{driver}: strata and the reference differ");
        }
    }
}
