//! Shared helpers of the ID-map tests (issue 12): a layer tar whose owners
//! lie inside and outside the maps used, a tree listing with owners, and
//! strata stores on every way a driver can show a mapped layer (vfs,
//! overlay with idmapped lowers, overlay with a re-owned copy,
//! fuse-overlayfs, btrfs on a loop device).
#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::{self, Env};
use crate::robust_support::loop_fs;
use strata_testsupport::LoopFs;

/// Maps of a mapped layer in most tests.
pub const MAPS: [&str; 4] = ["--uidmap", "0:100000:6", "--gidmap", "0:200000:6"];

/// Every store kind that shows mapped layers its own way.
pub const KINDS: [&str; 5] = ["vfs", "overlay", "overlay-copy", "fuse-overlayfs", "btrfs"];

/// Appends one member to a test tar: `path` is `name->target` for links;
/// a regular file holds `data\n`; `xattrs` go first as PAX
/// `SCHILY.xattr.*` records.
fn member(
    b: &mut tar::Builder<Vec<u8>>,
    mut h: tar::Header,
    (path, kind): (&str, tar::EntryType),
    (uid, gid): (u64, u64),
    mode: u32,
    xattrs: &[(&str, Vec<u8>)],
) {
    if !xattrs.is_empty() {
        let recs: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), &v[..]))
            .collect();
        b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
    }
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(1_600_000_000);
    let data: &[u8] = if kind == tar::EntryType::Regular {
        b"data\n"
    } else {
        b""
    };
    h.set_size(data.len() as u64);
    match kind {
        tar::EntryType::Symlink | tar::EntryType::Link => {
            let (name, target) = path.split_once("->").unwrap();
            b.append_link(&mut h, name, target).unwrap();
        }
        _ => b.append_data(&mut h, path, data).unwrap(),
    }
}

/// A layer tar whose members have owners inside and outside the maps the
/// tests use (0:100000:6 / 0:200000:6), set-ID bits, a hard link and
/// symlinks.
pub fn owners_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, owner: (u64, u64), mode: u32| {
        member(
            &mut b,
            tar::Header::new_gnu(),
            (path, kind),
            owner,
            mode,
            &[],
        );
    };
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    add("d/", Directory, (2, 3), 0o755);
    add("d/h", Regular, (4, 4), 0o644);
    add("d/h2->d/h", Link, (4, 4), 0o644);
    add("f0", Regular, (0, 0), 0o644);
    add("f1", Regular, (1, 1), 0o644);
    add("f5", Regular, (5, 5), 0o640);
    add("f7", Regular, (7, 1), 0o644);
    add("big", Regular, (150000, 250000), 0o644);
    add("suid", Regular, (2, 2), 0o6755);
    add("sgid-dir/", Directory, (1, 5), 0o2775);
    add("sl->f1", Symlink, (3, 3), 0o777);
    add("abs->/etc/passwd", Symlink, (0, 0), 0o777);
    b.into_inner().unwrap()
}

/// Every entry under a mount: path, owner, mode, type and (for
/// non-directories: overlay does not keep directories' counts) link count.
pub fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let nlink = if m.is_dir() { 0 } else { m.nlink() };
        out.push(format!(
            "/{rel} {}:{} {:o} {nlink}",
            m.uid(),
            m.gid(),
            m.mode()
        ));
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out.sort();
    out
}

/// Members of a tar as `path uid:gid mode type`, in stream order.
pub fn tar_owners(data: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(data);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            format!(
                "{} {}:{} {:o} {:?}",
                e.path().unwrap().display(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mode().unwrap(),
                h.entry_type()
            )
        })
        .collect()
}

/// Lines of `s`, sorted.
pub fn sorted(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// A strata store of one [`KINDS`] kind.
pub struct Store {
    /// Which of [`KINDS`].
    pub kind: &'static str,
    // Dropped before the store's directory goes.
    _fs: Option<LoopFs>,
    pub env: Env,
    extra: Vec<&'static str>,
    var: Option<(&'static str, &'static str)>,
}

impl Store {
    /// A fresh store of `kind`; `None` (having said why) when btrfs cannot
    /// be used here and CI is unset.
    pub fn new(kind: &'static str) -> Option<Self> {
        let driver = match kind {
            "vfs" | "btrfs" => kind,
            _ => "overlay",
        };
        let env = Env::new(driver);
        let fs = if kind == "btrfs" {
            let img = env.dir.path().join("btrfs.img");
            Some(loop_fs(&img, &env.graph(), "btrfs", 300)?)
        } else {
            None
        };
        let (extra, var) = match kind {
            "overlay-copy" => (
                Vec::new(),
                Some(("_CONTAINERS_OVERLAY_DISABLE_IDMAP", "yes")),
            ),
            "fuse-overlayfs" => (
                vec![
                    "--storage-opt",
                    "overlay.mount_program=/usr/bin/fuse-overlayfs",
                ],
                None,
            ),
            _ => (Vec::new(), None),
        };
        Some(Self {
            kind,
            _fs: fs,
            env,
            extra,
            var,
        })
    }

    /// The strata command for `args` on this store.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut all = self.extra.clone();
        all.extend_from_slice(args);
        let mut c = self.env.strata_command(&all);
        if let Some((k, v)) = self.var {
            c.env(k, v);
        }
        c
    }

    /// Runs the reference on this store, with the same options and
    /// environment.
    pub fn reference(&self, args: &[&str], input: &[u8]) -> Output {
        let mut all = self.extra.clone();
        all.extend_from_slice(args);
        let mut c = self.env.reference_command(&all);
        if let Some((k, v)) = self.var {
            c.env(k, v);
        }
        common::run(c, input)
    }

    /// Runs strata with `input` on stdin.
    pub fn run(&self, args: &[&str], input: &[u8]) -> Output {
        common::run(self.command(args), input)
    }

    /// Runs strata, asserting success; returns stdout.
    pub fn ok_in(&self, args: &[&str], input: &[u8]) -> String {
        let o = self.run(args, input);
        assert!(
            o.status.success(),
            "{}: strata {args:?}: {}",
            self.kind,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// [`Store::ok_in`] with no input.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_in(args, b"")
    }

    /// The tree of layer `id` through its mount.
    pub fn tree_of(&self, id: &str) -> Vec<String> {
        let m = self.ok(&["mount", id]);
        let t = tree(Path::new(m.trim()));
        self.ok(&["unmount", id]);
        t
    }
}

/// A tool run on a store: `(args, stdin) -> output`.
pub type Run<'a> = &'a dyn Fn(&[&str], &[u8]) -> Output;

/// Runs a tool, asserting success; returns stdout.
pub fn must(run: Run<'_>, args: &[&str], input: &[u8]) -> String {
    let o = run(args, input);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The tree of layer `id` as a tool mounts it.
pub fn mounted_tree(run: Run<'_>, id: &str) -> Vec<String> {
    let m = must(run, &["mount", id], b"");
    let t = tree(Path::new(m.trim()));
    must(run, &["unmount", id], b"");
    t
}

/// A version 3 `security.capability` (`cap_net_bind_service=ep`) whose
/// root ID is `root`.
pub fn cap_v3(root: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [0x0300_0001u32, 0x400, 0, 0, 0, root] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v
}

/// A version 2 `security.capability` (`cap_net_bind_service=ep`).
pub fn cap_v2() -> Vec<u8> {
    cap_v3(0)[..20]
        .iter()
        .enumerate()
        .map(|(i, b)| if i == 3 { 0x02 } else { *b })
        .collect()
}

/// A POSIX ACL xattr value (version 2) granting named user `uid` and
/// named group `gid` read access: `u::rw-,u:UID:r--,g::r--,g:GID:r--,
/// m::rw-,o::r--`.
pub fn acl(uid: u32, gid: u32) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, uid),
        (0x04, 4, u32::MAX),
        (0x08, 4, gid),
        (0x10, 6, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// A layer tar of what a re-owning walk must not lose, its xattrs as PAX
/// `SCHILY.xattr.*` records: `cap3` (v3 capability, root ID 0), `cap3u`
/// (v3, root ID 3), `cap2` (v2 capability), `capov` (v3, root ID 3, owned
/// by 65534, which the maps leave out, so its owner does not change),
/// `acl` (access ACL naming user
/// 1 and group 2), `acld/` (the same as access and default ACL),
/// `suid`, `sgid`, the hard link pair `h1`/`h2`, and symlinks pointing
/// out of the layer: `out` to the file `victim`, `outdir` to the
/// directory `victim_dir` (absolute paths the caller owns).
pub fn xattrs_tar(victim: &Path, victim_dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    type X<'a> = &'a [(&'a str, Vec<u8>)];
    let mut add = |path: &str, kind: tar::EntryType, owner: u64, mode: u32, xattrs: X<'_>| {
        let h = tar::Header::new_ustar();
        member(&mut b, h, (path, kind), (owner, owner), mode, xattrs);
    };
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let cap = "security.capability";
    let (access, default) = ("system.posix_acl_access", "system.posix_acl_default");
    add("cap3", Regular, 0, 0o755, &[(cap, cap_v3(0))]);
    add("cap3u", Regular, 0, 0o755, &[(cap, cap_v3(3))]);
    add("cap2", Regular, 0, 0o755, &[(cap, cap_v2())]);
    add("capov", Regular, 65534, 0o755, &[(cap, cap_v3(3))]);
    add("acl", Regular, 1, 0o664, &[(access, acl(1, 2))]);
    add(
        "acld/",
        Directory,
        0,
        0o775,
        &[(access, acl(1, 2)), (default, acl(1, 2))],
    );
    add("suid", Regular, 2, 0o4755, &[]);
    add("sgid", Regular, 3, 0o2755, &[]);
    add("h1", Regular, 4, 0o644, &[]);
    add("h2->h1", Link, 4, 0o644, &[]);
    let out = format!("out->{}", victim.display());
    add(&out, Symlink, 5, 0o777, &[]);
    let outdir = format!("outdir->{}", victim_dir.display());
    add(&outdir, Symlink, 5, 0o777, &[]);
    b.into_inner().unwrap()
}
