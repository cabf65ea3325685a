//! Helpers shared by the changes/export tests: tree snapshots, a tar block
//! parser, and whether the reference `containers-storage` can run.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use strata_archive::changes::{Change, ChangeKind};

/// What a test compares of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub mtime: i64,
    pub content: Option<Vec<u8>>,
    pub target: Option<Vec<u8>>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut buf = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(path, &mut buf[..]).unwrap_or(0);
    let mut names: Vec<Vec<u8>> = buf[..n]
        .split(|&c| c == 0)
        .filter(|s| !s.is_empty() && (s.starts_with(b"user.") || *s == b"security.capability"))
        .map(<[u8]>::to_vec)
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let mut v = vec![0u8; 65536];
            let n = rustix::fs::lgetxattr(path, std::ffi::OsStr::from_bytes(&name), &mut v[..])
                .expect("getxattr");
            v.truncate(n);
            (name, v)
        })
        .collect()
}

/// Snapshot of a tree: path (from the root, `/`-separated) → entry. The
/// root itself is left out. `with_dir_times`: compare directory mtimes.
pub fn snapshot(root: &Path, with_dir_times: bool) -> BTreeMap<Vec<u8>, Entry> {
    let mut out = BTreeMap::new();
    fn rec(dir: &Path, rel: &[u8], dt: bool, out: &mut BTreeMap<Vec<u8>, Entry>) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        for name in names {
            let p = dir.join(&name);
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            let relp = [rel, b"/", name.as_bytes()].concat();
            let kind = m.mode() & 0o170000;
            let content = (kind == 0o100000).then(|| {
                use sha2::Digest;
                let mut h = sha2::Sha256::new();
                let mut f = std::fs::File::open(&p).expect("open");
                std::io::copy(&mut f, &mut h).expect("read");
                h.finalize().to_vec()
            });
            let target = (kind == 0o120000).then(|| {
                std::fs::read_link(&p)
                    .expect("readlink")
                    .as_os_str()
                    .as_bytes()
                    .to_vec()
            });
            let is_dir = kind == 0o040000;
            out.insert(
                relp.clone(),
                Entry {
                    kind,
                    mode: m.mode(),
                    uid: m.uid(),
                    gid: m.gid(),
                    rdev: m.rdev(),
                    size: if is_dir { 0 } else { m.size() },
                    mtime: if is_dir && !dt { 0 } else { m.mtime() },
                    content,
                    target,
                    xattrs: xattrs(&p),
                },
            );
            if is_dir {
                rec(&p, &relp, dt, out);
            }
        }
    }
    rec(root, b"", with_dir_times, &mut out);
    out
}

/// Asserts two snapshots are equal, listing the differing paths.
pub fn assert_same_tree(a: &BTreeMap<Vec<u8>, Entry>, b: &BTreeMap<Vec<u8>, Entry>) {
    let mut diffs = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => diffs.push(format!("only in first: {}", String::from_utf8_lossy(k))),
            Some(w) if w != v => diffs.push(format!(
                "differs: {}\n  {v:?}\n  {w:?}",
                String::from_utf8_lossy(k)
            )),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        diffs.push(format!("only in second: {}", String::from_utf8_lossy(k)));
    }
    assert!(diffs.is_empty(), "trees differ:\n{}", diffs.join("\n"));
}

/// Sort key giving the order strata lists changes in: by name at each
/// level, a directory's deletions after its other entries.
pub fn canonical_key(c: &Change) -> Vec<(bool, Vec<u8>)> {
    let parts: Vec<&[u8]> = c
        .path
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    let n = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| (i + 1 == n && c.kind == ChangeKind::Delete, p.to_vec()))
        .collect()
}

/// Parses `Kind "path"` lines (paths without escapes).
pub fn parse_lines(text: &str) -> Vec<Change> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (kind, rest) = l.split_once(' ').expect("kind and path");
            let kind = match kind {
                "Modify" => ChangeKind::Modify,
                "Add" => ChangeKind::Add,
                "Delete" => ChangeKind::Delete,
                k => panic!("unknown kind {k}"),
            };
            let path = rest
                .strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .expect("quoted");
            Change {
                path: path.as_bytes().to_vec(),
                kind,
            }
        })
        .collect()
}

/// One tar member: its raw blocks (PAX header, header, content+padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: Vec<u8>,
    pub raw: Vec<u8>,
}

fn octal(field: &[u8]) -> u64 {
    let s: String = field
        .iter()
        .take_while(|&&c| c != 0 && c != b' ')
        .map(|&c| c as char)
        .collect();
    u64::from_str_radix(s.trim(), 8).unwrap_or(0)
}

/// Splits an archive into members (a PAX header belongs to the member that
/// follows it); checks the end-of-archive blocks.
pub fn members(tar: &[u8]) -> Vec<Member> {
    let mut out = Vec::new();
    let mut off = 0;
    let mut start = 0;
    while off + 512 <= tar.len() {
        let h = &tar[off..off + 512];
        if h.iter().all(|&c| c == 0) {
            assert!(tar[off..].iter().all(|&c| c == 0), "data after end blocks");
            assert!(tar.len() - off >= 1024, "missing end blocks");
            return out;
        }
        let size = octal(&h[124..136]) as usize;
        let typ = h[156];
        let blocks = 512 + size.div_ceil(512) * 512;
        off += blocks;
        if typ == b'x' || typ == b'g' {
            continue;
        }
        let name_end = h[0..100].iter().position(|&c| c == 0).unwrap_or(100);
        let pre_end = h[345..500].iter().position(|&c| c == 0).unwrap_or(155);
        let mut name = h[345..345 + pre_end].to_vec();
        if !name.is_empty() {
            name.push(b'/');
        }
        name.extend_from_slice(&h[..name_end]);
        out.push(Member {
            name,
            raw: tar[start..off].to_vec(),
        });
        start = off;
    }
    panic!("archive ends without end blocks");
}

/// Reads the next member from a stream; `None` at the end blocks.
pub fn next_member(r: &mut impl std::io::Read) -> Option<Member> {
    let mut raw = Vec::new();
    loop {
        let mut h = [0u8; 512];
        r.read_exact(&mut h)
            .expect("archive ends without end blocks");
        if h.iter().all(|&c| c == 0) {
            assert!(raw.is_empty(), "end block after a PAX header");
            return None;
        }
        let size = octal(&h[124..136]) as usize;
        let typ = h[156];
        raw.extend_from_slice(&h);
        let start = raw.len();
        raw.resize(start + size.div_ceil(512) * 512, 0);
        r.read_exact(&mut raw[start..]).expect("member content");
        if typ == b'x' || typ == b'g' {
            continue;
        }
        let name_end = h[0..100].iter().position(|&c| c == 0).unwrap_or(100);
        let pre_end = h[345..500].iter().position(|&c| c == 0).unwrap_or(155);
        let mut name = h[345..345 + pre_end].to_vec();
        if !name.is_empty() {
            name.push(b'/');
        }
        name.extend_from_slice(&h[..name_end]);
        return Some(Member { name, raw });
    }
}

/// Blanks the fields of a whiteout member that the reference fills with
/// the time of the export (mtime) and, on overlay, a bogus link name; and
/// the checksum that depends on them.
pub fn mask_whiteout(m: &mut Member) {
    let base = m.name.rsplit(|&c| c == b'/').next().unwrap_or(&m.name);
    if base.starts_with(b".wh.") && base != b".wh..wh..opq" {
        let n = m.raw.len();
        let h = &mut m.raw[n - 512..];
        h[136..148].fill(b'#');
        h[148..156].fill(b'#');
        h[157..257].fill(0);
    }
}

/// True when tests that need root and the reference binary can run; else
/// prints why (and fails under CI).
pub fn can_run_reference(test: &str) -> bool {
    strata_testsupport::need_root(test) && strata_testsupport::reference(test).is_some()
}
