//! Export of changes as a layer tar, shaped like the reference's `diff`.
//!
//! - members are written in path order (bytes; or in walk order for a
//!   layer with no parent, see [`ExportOrder`]), deletions as AUFS
//!   whiteouts (`dir/.wh.NAME`, an empty regular file, mode 0, owned 0:0,
//!   stamped with the export time) at the place of the deleted path;
//! - the first member of a hard-linked inode carries the data, later ones
//!   are link entries naming it;
//! - owners are translated host→container; `uname`/`gname` are the host's
//!   names of the host IDs, as the reference fills them;
//! - xattrs that belong to a layer (`security.capability`, `user.*` except
//!   overlay's own) become `SCHILY.xattr.*` records;
//! - sockets are skipped (tar cannot carry them).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use strata_idmap::{IdMappings, IdPair};

use super::meta::{
    self, get_xattr, layer_xattrs, lstat, parse_override_stat, Meta, Names, XattrSet,
};
use super::{Change, ChangeKind, ExportOptions, ExportOrder, OverrideStat};
use crate::confined::{self, How, Symlinks};
use crate::entry::{EntryKind, Header, Timestamp};
use crate::writer::{ModeField, TarWriter};
use crate::{Error, Result};

/// Builds member headers from files, remembering hard-linked inodes.
pub(crate) struct Exporter<'a, W: Write> {
    pub tar: TarWriter<W>,
    maps: &'a IdMappings,
    override_stat: OverrideStat,
    links: HashMap<(u64, u64), Vec<u8>>,
    /// File content passes through this one buffer.
    buf: Vec<u8>,
}

impl<'a, W: Write> Exporter<'a, W> {
    pub fn new(out: W, opts: &'a ExportOptions) -> Self {
        Self {
            tar: TarWriter::new(out),
            maps: &opts.id_mappings,
            override_stat: opts.override_stat,
            links: HashMap::new(),
            buf: Vec::new(),
        }
    }

    /// Header of the file at `path` (already `lstat`ed as `m`) named `name`
    /// in the archive; `None` for sockets. Registers hard links.
    pub fn header(&mut self, path: &Path, m: &Meta, name: &[u8]) -> Result<Option<Header>> {
        let kind = match m.file_type() {
            meta::S_IFREG => EntryKind::File,
            meta::S_IFDIR => EntryKind::Directory,
            meta::S_IFLNK => {
                let t = std::fs::read_link(path)
                    .map_err(|e| Error::io(format!("readlink {}", path.display()), e))?;
                EntryKind::Symlink {
                    target: t.as_os_str().as_bytes().to_vec(),
                }
            }
            meta::S_IFCHR => EntryKind::CharDevice {
                major: rustix::fs::major(m.rdev),
                minor: rustix::fs::minor(m.rdev),
            },
            meta::S_IFBLK => EntryKind::BlockDevice {
                major: rustix::fs::major(m.rdev),
                minor: rustix::fs::minor(m.rdev),
            },
            meta::S_IFIFO => EntryKind::Fifo,
            _ => return Ok(None),
        };
        let mut h = Header::new(name.to_vec(), kind);
        h.mode = m.mode & 0o7777;
        let mut host = IdPair {
            uid: m.uid,
            gid: m.gid,
        };
        if self.override_stat == OverrideStat::Use && m.file_type() != meta::S_IFLNK {
            if let Some(v) = get_xattr(path, meta::OVERRIDE_STAT)? {
                let (uid, gid, mode) = parse_override_stat(&v).ok_or_else(|| Error::Corrupt {
                    path: String::from_utf8_lossy(name).into_owned(),
                    reason: format!("unreadable override_stat {:?}", String::from_utf8_lossy(&v)),
                })?;
                host = IdPair { uid, gid };
                h.mode = mode;
            }
        }
        // Overlay whiteouts are made by the kernel with the mounter's owner,
        // which may lie outside the layer's maps; a whiteout's owner does
        // not matter, so an unmapped one becomes the container's root
        // instead of failing the export.
        let ids = if m.is_whiteout() {
            self.maps.to_container(host).unwrap_or_default()
        } else {
            self.maps.to_container(host).map_err(|e| Error::Refused {
                path: String::from_utf8_lossy(name).into_owned(),
                reason: format!("owner {}:{} has no container ID: {e}", m.uid, m.gid),
            })?
        };
        h.uid = ids.uid;
        h.gid = ids.gid;
        h.uname = Names::host().user(host.uid);
        h.gname = Names::host().group(host.gid);
        h.mtime = m.mtime;
        h.atime = Some(m.atime);
        h.xattrs = layer_xattrs(path, XattrSet::Exported)?;
        if h.kind == EntryKind::File {
            h.size = m.size;
        }
        if m.nlink > 1 && !m.is_dir() {
            match self.links.get(&(m.dev, m.ino)) {
                Some(first) => {
                    h.kind = EntryKind::HardLink {
                        target: first.clone(),
                    };
                    h.size = 0;
                }
                None => {
                    self.links.insert((m.dev, m.ino), name.to_vec());
                }
            }
        }
        Ok(Some(h))
    }

    /// Writes the file at `path` as member `name`.
    pub fn add_file(&mut self, path: &Path, m: &Meta, name: &[u8]) -> Result<()> {
        let Some(h) = self.header(path, m, name)? else {
            tracing::debug!(path = %path.display(), "skipping socket in export");
            return Ok(());
        };
        if h.kind == EntryKind::File && h.size > 0 {
            let f = File::options()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(path)
                .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
            if self.buf.is_empty() {
                self.buf = vec![0; 256 * 1024];
            }
            self.tar.append_using(&h, f, &mut self.buf)
        } else {
            self.tar.append_header(&h)
        }
    }
}

/// An AUFS whiteout member for `name` (`dir/.wh.base`).
pub(crate) fn whiteout_name(path: &[u8]) -> Vec<u8> {
    let (dir, base) = match path.iter().rposition(|&c| c == b'/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => (&b""[..], path),
    };
    [dir, b".wh.", base].concat()
}

/// Resolves changed paths under the root without following symlinks on
/// the way (the confined open, [`Symlinks::Refuse`]), so that a tree
/// changing under the export (a running container swapping a directory
/// for a symlink) cannot make it read files outside the root, nor a file
/// of the root under another name. A path is handed out as
/// `/proc/self/fd/<parent>/<name>`, which names the entry itself (a final
/// symlink is never followed by the calls made on it).
struct Beneath {
    root: OwnedFd,
    plain: PathBuf,
}

impl Beneath {
    fn new(root: &Path) -> Result<Self> {
        let fd = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(format!("opening {}", root.display()), e.into()))?;
        if !Path::new("/proc/self/fd").is_dir() {
            return Err(Error::Unsupported(
                "exporting changes needs /proc mounted (paths are read through /proc/self/fd)"
                    .into(),
            ));
        }
        Ok(Self {
            root: fd,
            plain: root.to_path_buf(),
        })
    }

    /// The entry `rel` as a path plus the descriptor that keeps it valid;
    /// `None` when a parent is missing or no longer a plain directory.
    fn resolve(&self, rel: &[u8]) -> Result<Option<(OwnedFd, PathBuf)>> {
        let (dir, base) = match rel.iter().rposition(|&c| c == b'/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => (&b""[..], rel),
        };
        let how = How {
            symlinks: Symlinks::Refuse,
            ..How::dir()
        };
        match confined::open(self.root.as_fd(), dir, &how) {
            Ok(fd) => {
                let p = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                let p = meta::join(&p, base);
                Ok(Some((fd, p)))
            }
            Err(e)
                if [
                    rustix::io::Errno::NOENT,
                    rustix::io::Errno::NOTDIR,
                    rustix::io::Errno::LOOP,
                    rustix::io::Errno::XDEV,
                ]
                .contains(&e) =>
            {
                tracing::warn!(
                    path = %String::from_utf8_lossy(rel),
                    error = %e,
                    "changed path is no longer under a plain directory; skipped"
                );
                Ok(None)
            }
            Err(e) => Err(Error::io(
                format!(
                    "resolving {} under {}",
                    String::from_utf8_lossy(rel),
                    self.plain.display()
                ),
                e.into(),
            )),
        }
    }
}

/// See [`super::export_changes`].
pub(crate) fn export_changes(
    root: &Path,
    changes: &[Change],
    opts: &ExportOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let mut sorted: Vec<&Change> = changes.iter().collect();
    match opts.order {
        ExportOrder::ByPath => sorted.sort_by(|a, b| a.path.cmp(&b.path)),
        ExportOrder::Walk => sorted.sort_by(|a, b| {
            a.path
                .split(|&c| c == b'/')
                .cmp(b.path.split(|&c| c == b'/'))
        }),
    }
    let beneath = Beneath::new(root)?;
    let mut ex = Exporter::new(out, opts);
    let stamp = Timestamp::now();
    for c in sorted {
        let rel = c.path.strip_prefix(b"/").unwrap_or(&c.path);
        if rel.is_empty() {
            continue;
        }
        if c.kind == ChangeKind::Delete {
            let mut h = Header::new(whiteout_name(rel), EntryKind::File);
            h.mode = 0;
            h.mtime = stamp;
            ex.tar.append_header_with(&h, ModeField::PermissionsOnly)?;
            continue;
        }
        let Some((_parent, path)) = beneath.resolve(rel)? else {
            continue;
        };
        let m = match lstat(&path) {
            Ok(m) => m,
            // A running container may delete files while it is diffed; the
            // reference skips them too.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), "changed file vanished during export");
                continue;
            }
            Err(e) => {
                let shown = meta::join(root, rel);
                return Err(Error::io(format!("lstat {}", shown.display()), e));
            }
        };
        ex.add_file(&path, &m, rel)?;
    }
    ex.tar.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteout_names() {
        assert_eq!(whiteout_name(b"etc/passwd"), b"etc/.wh.passwd");
        assert_eq!(whiteout_name(b"fifo"), b".wh.fifo");
        assert_eq!(whiteout_name(b"a/b/c"), b"a/b/.wh.c");
    }
}
