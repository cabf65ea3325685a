//! File metadata as the change detection and the exporter see it: `lstat`
//! fields, the xattrs that count, host user and group names.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::OnceLock;

use crate::entry::{Timestamp, Xattr};
use crate::{Error, Result};

pub(crate) const S_IFMT: u32 = 0o170000;
pub(crate) const S_IFDIR: u32 = 0o040000;
pub(crate) const S_IFREG: u32 = 0o100000;
pub(crate) const S_IFLNK: u32 = 0o120000;
pub(crate) const S_IFCHR: u32 = 0o020000;
pub(crate) const S_IFBLK: u32 = 0o060000;
pub(crate) const S_IFIFO: u32 = 0o010000;

/// The `lstat` fields that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub mtime: Timestamp,
    pub atime: Timestamp,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
}

impl Meta {
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == S_IFDIR
    }
    /// A character device 0/0: an overlay whiteout.
    pub fn is_whiteout(&self) -> bool {
        self.file_type() == S_IFCHR && self.rdev == 0
    }
}

/// `lstat(path)`.
pub(crate) fn lstat(path: &Path) -> std::io::Result<Meta> {
    let m = std::fs::symlink_metadata(path)?;
    Ok(Meta {
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev(),
        size: m.size(),
        mtime: Timestamp {
            sec: m.mtime(),
            nsec: m.mtime_nsec() as u32,
        },
        atime: Timestamp {
            sec: m.atime(),
            nsec: m.atime_nsec() as u32,
        },
        dev: m.dev(),
        ino: m.ino(),
        nlink: m.nlink(),
    })
}

/// `lstat` that maps "missing" to `None`.
pub(crate) fn lstat_opt(path: &Path) -> Result<Option<Meta>> {
    match lstat(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        // A path through a non-directory in a lower layer does not exist.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => Ok(None),
        Err(e) => Err(Error::io(format!("lstat {}", path.display()), e)),
    }
}

/// Times are the same when seconds match and nanoseconds match or either
/// side has none (a file copied by a tool that drops sub-second times is
/// not a change). This is the reference's rule.
pub(crate) fn same_time(a: Timestamp, b: Timestamp) -> bool {
    a.sec == b.sec && (a.nsec == b.nsec || a.nsec == 0 || b.nsec == 0)
}

/// Directory entries of `dir`, sorted by name bytes.
pub(crate) fn read_dir_sorted(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        names.push(entry.file_name().as_bytes().to_vec());
    }
    names.sort_unstable();
    Ok(names)
}

/// Joins a name (bytes) to a path.
pub(crate) fn join(dir: &Path, name: &[u8]) -> std::path::PathBuf {
    dir.join(OsStr::from_bytes(name))
}

fn errno_is(e: &rustix::io::Errno, what: &[rustix::io::Errno]) -> bool {
    what.contains(e)
}

/// Names of the xattrs of `path` (not following a final symlink).
fn list_xattrs(path: &Path) -> Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => {
                return Ok(buf[..n]
                    .split(|&c| c == 0)
                    .filter(|s| !s.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect())
            }
            Err(rustix::io::Errno::RANGE) => {
                let need = rustix::fs::llistxattr_query(path)
                    .map_err(|e| Error::io(format!("listxattr {}", path.display()), e.into()))?;
                buf.resize(need.max(buf.len() * 2), 0);
            }
            Err(e) if errno_is(&e, &[rustix::io::Errno::NOTSUP, rustix::io::Errno::PERM]) => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(Error::io(format!("listxattr {}", path.display()), e.into())),
        }
    }
}

/// Value of one xattr, `None` when absent.
pub(crate) fn get_xattr(path: &Path, name: &[u8]) -> Result<Option<Vec<u8>>> {
    let name = OsStr::from_bytes(name);
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(rustix::io::Errno::RANGE) => {
                let need = rustix::fs::lgetxattr_query(path, name)
                    .map_err(|e| Error::io(format!("getxattr {}", path.display()), e.into()))?;
                buf.resize(need.max(buf.len() * 2), 0);
            }
            Err(e)
                if errno_is(
                    &e,
                    &[
                        rustix::io::Errno::NODATA,
                        rustix::io::Errno::NOTSUP,
                        rustix::io::Errno::PERM,
                    ],
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(Error::io(format!("getxattr {}", path.display()), e.into())),
        }
    }
}

/// Which xattrs a purpose looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XattrSet {
    /// Change detection: `security.capability` and every `user.*`, as the
    /// reference compares them.
    Compared,
    /// Export: the same less overlay's own (`user.overlay.*`) and strata's
    /// `user.containers.override_stat` record, which an incoming layer may
    /// never set.
    Exported,
}

impl XattrSet {
    /// `trusted.*` and other `security.*` attributes are host state; the
    /// reference neither compares nor exports them.
    pub fn contains(self, name: &[u8]) -> bool {
        let base = name == b"security.capability" || name.starts_with(b"user.");
        match self {
            XattrSet::Compared => base,
            XattrSet::Exported => {
                base && !name.starts_with(b"user.overlay.") && name != OVERRIDE_STAT
            }
        }
    }
}

/// The xattr where a layer written with `force_mask` keeps the real owner
/// and mode (`uid:gid:0mode`, host IDs).
pub(crate) const OVERRIDE_STAT: &[u8] = b"user.containers.override_stat";

/// The xattrs of `path` in `set`, sorted by name.
pub(crate) fn layer_xattrs(path: &Path, set: XattrSet) -> Result<Vec<Xattr>> {
    let mut out = Vec::new();
    let mut names = list_xattrs(path)?;
    names.sort_unstable();
    for name in names.into_iter().filter(|n| set.contains(n)) {
        if let Some(value) = get_xattr(path, &name)? {
            out.push(Xattr { name, value });
        }
    }
    Ok(out)
}

/// Parses an override_stat value `uid:gid:mode` (mode in octal).
pub(crate) fn parse_override_stat(value: &[u8]) -> Option<(u32, u32, u32)> {
    let text = std::str::from_utf8(value).ok()?;
    let mut it = text.trim_end_matches('\0').split(':');
    let uid = it.next()?.parse().ok()?;
    let gid = it.next()?.parse().ok()?;
    let mode = u32::from_str_radix(it.next()?, 8).ok()?;
    Some((uid, gid, mode & 0o7777))
}

/// Host user and group names by ID, from `/etc/passwd` and `/etc/group`, as
/// the reference fills `uname`/`gname` (looked up with the host IDs).
pub(crate) struct Names {
    users: HashMap<u32, Vec<u8>>,
    groups: HashMap<u32, Vec<u8>>,
}

impl Names {
    pub fn host() -> &'static Names {
        static NAMES: OnceLock<Names> = OnceLock::new();
        NAMES.get_or_init(|| Names {
            users: parse_id_file(&std::fs::read("/etc/passwd").unwrap_or_default()),
            groups: parse_id_file(&std::fs::read("/etc/group").unwrap_or_default()),
        })
    }
    pub fn user(&self, uid: u32) -> Option<Vec<u8>> {
        self.users.get(&uid).cloned()
    }
    pub fn group(&self, gid: u32) -> Option<Vec<u8>> {
        self.groups.get(&gid).cloned()
    }
}

/// `name:x:ID:…` lines; the first name of an ID wins.
fn parse_id_file(text: &[u8]) -> HashMap<u32, Vec<u8>> {
    let mut map = HashMap::new();
    for line in text.split(|&c| c == b'\n') {
        let mut fields = line.split(|&c| c == b':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let Some(id) = std::str::from_utf8(id).ok().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if !name.is_empty() && !name.starts_with(b"#") {
            map.entry(id).or_insert_with(|| name.to_vec());
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_files_parse() {
        let m = parse_id_file(
            b"root:x:0:0:root:/root:/bin/bash\nbad\n#c:x:9\ngames:x:5:60::/:/x\nroot2:x:0:0\n",
        );
        assert_eq!(m.get(&0).map(Vec::as_slice), Some(&b"root"[..]));
        assert_eq!(m.get(&5).map(Vec::as_slice), Some(&b"games"[..]));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn xattrs_that_count() {
        for (name, compared, exported) in [
            ("security.capability", true, true),
            ("user.foo", true, true),
            ("user.overlay.opaque", true, false),
            ("user.containers.override_stat", true, false),
            ("trusted.overlay.opaque", false, false),
            ("trusted.x", false, false),
            ("security.selinux", false, false),
        ] {
            assert_eq!(
                XattrSet::Compared.contains(name.as_bytes()),
                compared,
                "{name}"
            );
            assert_eq!(
                XattrSet::Exported.contains(name.as_bytes()),
                exported,
                "{name}"
            );
        }
    }

    #[test]
    fn override_stat_values() {
        assert_eq!(
            parse_override_stat(b"1000:1001:0751"),
            Some((1000, 1001, 0o751))
        );
        assert_eq!(parse_override_stat(b"0:0:00"), Some((0, 0, 0)));
        assert_eq!(parse_override_stat(b"0:0:04755"), Some((0, 0, 0o4755)));
        assert_eq!(parse_override_stat(b"x:0:0"), None);
        assert_eq!(parse_override_stat(b"1:2"), None);
    }

    #[test]
    fn time_equality_ignores_missing_nanoseconds() {
        let t = |sec, nsec| Timestamp { sec, nsec };
        assert!(same_time(t(5, 0), t(5, 7)));
        assert!(same_time(t(5, 7), t(5, 7)));
        assert!(!same_time(t(5, 7), t(5, 8)));
        assert!(!same_time(t(5, 0), t(6, 0)));
    }
}
