//! Re-owning a layer's files from one ID mapping to another (the seed's
//! `ChownPathByMaps`).
//!
//! Each entry's on-disk owner is a host ID under the old maps
//! (`to_container`); it is translated to the container ID, then to the host
//! ID under the new maps (`to_host`). The walk is in-process and parallel
//! (one rayon task per directory). `chown(2)` clears `security.capability`
//! and, on regular files, the setuid/setgid bits; both are put back.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{AtFlags, Gid, Mode, Uid, CWD};
use strata_idmap::{IdMappings, IdPair};

use crate::{Error, Result};

const CAPABILITY: &str = "security.capability";

/// Re-owns every entry under `path` (including `path`) from `to_container`'s
/// host IDs to `to_host`'s host IDs for the same container IDs.
pub fn chown_path_by_maps(
    path: &Path,
    to_container: &IdMappings,
    to_host: &IdMappings,
) -> Result<()> {
    if to_container == to_host {
        return Ok(());
    }
    let ctx = Ctx {
        maps: (to_container, to_host),
        err: Mutex::new(None),
        seen: Mutex::new(HashSet::new()),
    };
    chown_one(path, &ctx)?;
    rayon::scope(|s| walk(s, path.to_path_buf(), &ctx));
    let first_err = ctx.err;
    match first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

struct Ctx<'m> {
    maps: (&'m IdMappings, &'m IdMappings),
    err: Mutex<Option<Error>>,
    /// Inodes with several names already re-owned: a second visit would
    /// see the new owner and translate it again.
    seen: Mutex<HashSet<(u64, u64)>>,
}

fn record(slot: &Mutex<Option<Error>>, e: Error) {
    let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
    if g.is_none() {
        *g = Some(e);
    }
}

fn walk<'s>(s: &rayon::Scope<'s>, dir: PathBuf, ctx: &'s Ctx<'s>) {
    let err = &ctx.err;
    let rd = match std::fs::read_dir(&dir) {
        Ok(r) => r,
        Err(e) => return record(err, Error::path("read directory", &dir, e)),
    };
    for ent in rd {
        let ent = match ent {
            Ok(e) => e,
            Err(e) => return record(err, Error::path("read directory", &dir, e)),
        };
        let p = ent.path();
        if let Err(e) = chown_one(&p, ctx) {
            return record(err, e);
        }
        if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            s.spawn(move |s| walk(s, p, ctx));
        }
    }
}

fn chown_one(p: &Path, ctx: &Ctx<'_>) -> Result<()> {
    let (to_container, to_host) = ctx.maps;
    let st = rustix::fs::statat(CWD, p, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| Error::path("lstat", p, e.into()))?;
    if st.st_nlink > 1 && st.st_mode & libc_s_ifmt() != 0o040000 {
        let mut seen = ctx.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.insert((st.st_dev, st.st_ino)) {
            return Ok(());
        }
    }
    let old = IdPair {
        uid: st.st_uid,
        gid: st.st_gid,
    };
    let new = to_host.to_host(to_container.to_container(old)?)?;
    if new == old {
        return Ok(());
    }
    let mode = st.st_mode;
    let is_link = mode & libc_s_ifmt() == 0o120000;
    let is_reg = mode & libc_s_ifmt() == 0o100000;
    let cap = if is_reg {
        read_xattr(p, CAPABILITY)?
    } else {
        None
    };
    rustix::fs::chownat(
        CWD,
        p,
        Some(Uid::from_raw(new.uid)),
        Some(Gid::from_raw(new.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| Error::path("lchown", p, e.into()))?;
    if let Some(v) = cap {
        rustix::fs::lsetxattr(p, CAPABILITY, &v, rustix::fs::XattrFlags::empty())
            .map_err(|e| Error::path("restore security.capability", p, e.into()))?;
    }
    if !is_link && mode & 0o6000 != 0 {
        rustix::fs::chmod(p, Mode::from_raw_mode(mode & 0o7777))
            .map_err(|e| Error::path("restore setuid/setgid", p, e.into()))?;
    }
    Ok(())
}

const fn libc_s_ifmt() -> u32 {
    0o170000
}

/// Reads an xattr of `p` (not following symlinks); `None` when absent or
/// when the filesystem has no xattrs.
pub(crate) fn read_xattr(p: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(p, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::OPNOTSUPP) => return Ok(None),
            Err(rustix::io::Errno::RANGE) => {
                let n = rustix::fs::lgetxattr_query(p, name)
                    .map_err(|e| Error::path("getxattr", p, e.into()))?;
                buf = vec![0u8; n.max(buf.len() * 2)];
            }
            Err(e) => return Err(Error::path("getxattr", p, e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use strata_idmap::IdMap;

    fn maps(host: u32) -> IdMappings {
        IdMappings::new(
            vec![IdMap::new(0, host, 65536)],
            vec![IdMap::new(0, host, 65536)],
        )
    }

    #[test]
    fn privileged_chown_keeps_caps_and_setuid() {
        if !strata_testsupport::need_root("privileged_chown_keeps_caps_and_setuid") {
            return;
        }
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let root = dir.path().join("layer");
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        std::fs::write(root.join("a/b/c/f"), b"x").unwrap();
        std::fs::write(root.join("suid"), b"x").unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("a/link")).unwrap();
        let old = maps(100000);
        // Lay the tree out as host IDs under the old maps: container 0 and 5.
        for p in ["", "a", "a/b", "a/b/c", "a/b/c/f", "a/link"] {
            std::os::unix::fs::lchown(root.join(p), Some(100000), Some(100000)).unwrap();
        }
        std::os::unix::fs::lchown(root.join("suid"), Some(100005), Some(100007)).unwrap();
        std::fs::set_permissions(root.join("suid"), std::fs::Permissions::from_mode(0o6755))
            .unwrap();
        // A file capability (cap_net_raw, v2 format).
        let cap: [u8; 20] = [
            0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let have_caps = rustix::fs::lsetxattr(
            root.join("suid").as_path(),
            CAPABILITY,
            &cap,
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok();
        chown_path_by_maps(&root, &old, &maps(200000)).unwrap();
        for p in ["", "a", "a/b", "a/b/c", "a/b/c/f", "a/link"] {
            let m = std::fs::symlink_metadata(root.join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (200000, 200000), "{p}");
        }
        let m = std::fs::symlink_metadata(root.join("suid")).unwrap();
        assert_eq!((m.uid(), m.gid()), (200005, 200007));
        assert_eq!(m.mode() & 0o7777, 0o6755);
        if have_caps {
            assert_eq!(
                read_xattr(&root.join("suid"), CAPABILITY)
                    .unwrap()
                    .as_deref(),
                Some(&cap[..])
            );
        }
        // Back to identity (maps → container IDs as host IDs).
        chown_path_by_maps(&root, &maps(200000), &IdMappings::identity()).unwrap();
        let m = std::fs::symlink_metadata(root.join("suid")).unwrap();
        assert_eq!((m.uid(), m.gid()), (5, 7));
        // An ID outside the old maps is an error naming it.
        std::os::unix::fs::lchown(root.join("a/b/c/f"), Some(7), Some(7)).unwrap();
        let e = chown_path_by_maps(&root, &maps(300000), &IdMappings::identity()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{e}");
    }
}
