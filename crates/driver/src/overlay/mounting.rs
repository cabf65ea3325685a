//! Making and removing the overlay mount of a layer.
//!
//! Kernel overlay: the new mount API first (one `lowerdir+` per layer, no
//! page-size limit), then classic `mount(2)` with absolute paths, then with
//! paths relative to the home (short `l/LINK` names) when the absolute list
//! does not fit one page. Stacks deeper than the kernel's 500 lowers are
//! mounted as nested read-only overlays of at most 500 layers each, used as
//! the lowers of the final mount. Helper mounts (nested stacks, idmapped
//! lowers) are attached in a staging directory only long enough for the
//! final mount to take its private references, then detached.
//!
//! FUSE: the mount program gets the whole list in one `-o lowerdir=`.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::mount::UnmountFlags;
use strata_sys::mount::{
    mount_overlay_classic, mount_overlay_fsopen, mount_overlay_relative, unmount, OverlayMount,
};

use crate::{Error, IdMap, Result};

/// The kernel's limit on lower layers in one overlay (`OVL_MAX_STACK`).
pub const MAX_STACK: usize = 500;

/// The user and group map lines of an idmapped mount.
pub type IdmapLines = (Vec<IdMap>, Vec<IdMap>);

/// Helper mounts made for one final mount; detached and removed on drop.
pub struct Staging {
    dir: PathBuf,
    mounts: Vec<PathBuf>,
}

impl Staging {
    /// A staging area at `dir` (created lazily).
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            mounts: Vec::new(),
        }
    }

    /// A fresh empty directory in the staging area for a helper mount,
    /// detached and removed with the staging area.
    pub fn next_dir(&mut self) -> Result<PathBuf> {
        self.next()
    }

    fn next(&mut self) -> Result<PathBuf> {
        if self.mounts.is_empty() {
            fs::create_dir_all(&self.dir).map_err(|e| Error::path("mkdir", &self.dir, e))?;
        }
        let p = self.dir.join(self.mounts.len().to_string());
        match fs::create_dir(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::path("mkdir", p, e)),
        }
        self.mounts.push(p.clone());
        Ok(p)
    }

    /// Attaches idmapped clones of `lowers` (through a user namespace made
    /// from the maps) and returns their staging paths.
    pub fn idmap(
        &mut self,
        lowers: &[PathBuf],
        uids: &[IdMap],
        gids: &[IdMap],
    ) -> Result<Vec<PathBuf>> {
        let ns = user_ns(uids, gids)?;
        lowers
            .iter()
            .map(|l| self.attach_idmapped(l, &ns))
            .collect()
    }

    /// `lowers` with each one that `idmaps` names replaced by an idmapped
    /// clone through its maps (one user namespace per distinct maps).
    pub fn idmap_each(
        &mut self,
        lowers: &[PathBuf],
        idmaps: &HashMap<PathBuf, IdmapLines>,
    ) -> Result<Vec<PathBuf>> {
        let mut spaces: Vec<(&IdmapLines, strata_sys::mount::UserNs)> = Vec::new();
        let mut out = Vec::with_capacity(lowers.len());
        for l in lowers {
            let Some(maps) = idmaps.get(l) else {
                out.push(l.clone());
                continue;
            };
            let i = match spaces.iter().position(|(m, _)| *m == maps) {
                Some(i) => i,
                None => {
                    spaces.push((maps, user_ns(&maps.0, &maps.1)?));
                    spaces.len() - 1
                }
            };
            out.push(self.attach_idmapped(l, &spaces[i].1)?);
        }
        Ok(out)
    }

    fn attach_idmapped(&mut self, l: &Path, ns: &strata_sys::mount::UserNs) -> Result<PathBuf> {
        let fd = strata_sys::mount::idmapped_clone(l, ns.fd()).map_err(|e| Error::Mount {
            op: "idmapped mount",
            path: l.to_path_buf(),
            source: e,
        })?;
        let at = self.next()?;
        strata_sys::mount::attach(std::os::fd::AsFd::as_fd(&fd), &at).map_err(|e| {
            Error::Mount {
                op: "move_mount",
                path: at.clone(),
                source: e,
            }
        })?;
        Ok(at)
    }
}

/// A user namespace whose maps are `uids` and `gids` (for idmapped mounts).
fn user_ns(uids: &[IdMap], gids: &[IdMap]) -> Result<strata_sys::mount::UserNs> {
    let fmt = |maps: &[IdMap]| {
        maps.iter()
            .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
            .collect::<String>()
    };
    strata_sys::mount::UserNs::new(&fmt(uids), &fmt(gids)).map_err(|e| Error::Mount {
        op: "create user namespace",
        path: PathBuf::new(),
        source: e,
    })
}

impl Drop for Staging {
    fn drop(&mut self) {
        for m in self.mounts.drain(..).rev() {
            if let Err(e) = unmount(&m, UnmountFlags::DETACH) {
                if e.raw_os_error() != Some(libc_einval()) {
                    tracing::warn!(path = %m.display(), error = %e, "staging unmount failed");
                }
            }
            let _ = fs::remove_dir(&m);
        }
        let _ = fs::remove_dir(&self.dir);
    }
}

fn libc_einval() -> i32 {
    rustix::io::Errno::INVAL.raw_os_error()
}

/// Mounts `m` with the kernel overlay at `target`; `home` is the base for
/// relative lower paths in the classic fallback.
pub fn mount_kernel(
    m: &OverlayMount,
    home: &Path,
    target: &Path,
    staging: &mut Staging,
) -> Result<()> {
    if m.lowers.len() > MAX_STACK {
        return mount_nested(m, home, target, staging);
    }
    let err = |op, e| Error::Mount {
        op,
        path: target.to_path_buf(),
        source: e,
    };
    match mount_overlay_fsopen(m, target) {
        Ok(()) => return Ok(()),
        Err(e) => tracing::debug!(error = %e, "fsopen overlay mount failed, trying mount(2)"),
    }
    match mount_overlay_classic(m, target) {
        Err(e) if e.kind() == io::ErrorKind::ArgumentListTooLong => {
            let rel = OverlayMount {
                lowers: m
                    .lowers
                    .iter()
                    .map(|l| {
                        l.strip_prefix(home)
                            .map(Path::to_path_buf)
                            .unwrap_or(l.clone())
                    })
                    .collect(),
                ..m.clone()
            };
            mount_overlay_relative(&rel, home, target).map_err(|e| err("mount overlay", e))
        }
        r => r.map_err(|e| err("mount overlay", e)),
    }
}

/// Deep stacks: groups of at most [`MAX_STACK`] lowers become read-only
/// overlays in the staging area, which are the lowers of the final mount.
fn mount_nested(m: &OverlayMount, home: &Path, target: &Path, staging: &mut Staging) -> Result<()> {
    // Only options that describe the layers' format carry over to the
    // inner mounts (xattr namespace); the rest apply to the final mount.
    let inner_opts: Vec<String> = m
        .options
        .iter()
        .filter(|o| *o == "userxattr")
        .cloned()
        .collect();
    let mut outer = Vec::new();
    for chunk in m.lowers.chunks(MAX_STACK) {
        if chunk.len() == 1 {
            outer.push(chunk[0].clone());
            continue;
        }
        let at = staging.next()?;
        let inner = OverlayMount {
            lowers: chunk.to_vec(),
            upper: None,
            work: None,
            options: inner_opts.clone(),
        };
        mount_kernel(&inner, home, &at, staging)?;
        outer.push(at);
    }
    let top = OverlayMount {
        lowers: outer,
        ..m.clone()
    };
    mount_kernel(&top, home, target, staging)
}

/// Mounts with a FUSE overlay program.
pub fn mount_fuse(
    program: &Path,
    m: &OverlayMount,
    target: &Path,
    id_maps: (&[IdMap], &[IdMap]),
) -> Result<()> {
    let mut data = String::from_utf8_lossy(&strata_sys::mount::overlay_data_all(m)).into_owned();
    let fmt = |maps: &[IdMap]| {
        maps.iter()
            .map(|x| format!("{}:{}:{}", x.container_id, x.host_id, x.size))
            .collect::<Vec<_>>()
            .join(":")
    };
    if !id_maps.0.is_empty() {
        data.push_str(&format!(",uidmapping={}", fmt(id_maps.0)));
    }
    if !id_maps.1.is_empty() {
        data.push_str(&format!(",gidmapping={}", fmt(id_maps.1)));
    }
    let out = Command::new(program)
        .arg("-o")
        .arg(&data)
        .arg(target)
        .output()
        .map_err(|e| Error::Command {
            program: program.display().to_string(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            program: program.display().to_string(),
            message: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Unmounts a FUSE mount: `fusermount3 -u`, `fusermount -u`, then umount.
pub fn unmount_fuse(target: &Path) -> Result<()> {
    for prog in ["fusermount3", "fusermount"] {
        if let Ok(st) = Command::new(prog)
            .arg("-u")
            .arg(target)
            .stderr(std::process::Stdio::null())
            .status()
        {
            if st.success() {
                return Ok(());
            }
        }
    }
    unmount_kernel(target)
}

/// Unmounts a kernel mount (lazily, as the reference does).
pub fn unmount_kernel(target: &Path) -> Result<()> {
    match unmount(target, UnmountFlags::DETACH) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc_einval()) => Ok(()), // not mounted
        Err(e) => Err(Error::Mount {
            op: "umount",
            path: target.to_path_buf(),
            source: e,
        }),
    }
}

/// Whether `p` is the root of a mount.
pub fn is_mounted(p: &Path) -> bool {
    strata_sys::mount::is_mount_root(p).unwrap_or(false)
}

/// Whether `p` is on a FUSE filesystem.
pub fn is_fuse(p: &Path) -> bool {
    const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::statfs(p).is_ok_and(|st| st.f_type as i64 == FUSE_SUPER_MAGIC)
}

/// Refuses mount options a FUSE overlay would silently ignore (the kernel
/// refuses unknown ones itself).
pub fn check_fuse_options(opts: &[String]) -> Result<()> {
    const FLAGS: &[&str] = &[
        "ro",
        "rw",
        "nodev",
        "dev",
        "nosuid",
        "suid",
        "noexec",
        "exec",
        "noatime",
        "atime",
        "relatime",
        "norelatime",
        "strictatime",
        "lazytime",
        "nolazytime",
        "sync",
        "async",
        "dirsync",
        "nodiratime",
        "diratime",
        "volatile",
        "userxattr",
        "static_nlink",
        "noacl",
        "squash_to_root",
        "debug",
        "allow_other",
        "allow_root",
        "default_permissions",
    ];
    const KEYS: &[&str] = &[
        "context",
        "fscontext",
        "defcontext",
        "rootcontext",
        "fsync",
        "squash_to_uid",
        "squash_to_gid",
        "threaded",
        "xattr_permissions",
        "uidmapping",
        "gidmapping",
        "timeout",
        "redirect_dir",
        "index",
        "metacopy",
        "max_idle_threads",
    ];
    for o in opts {
        let known = match o.split_once('=') {
            Some((k, _)) => KEYS.contains(&k),
            None => FLAGS.contains(&o.as_str()),
        };
        if !known {
            return Err(Error::InvalidOption {
                key: o.clone(),
                reason: "unknown mount option for the overlay mount program".into(),
            });
        }
    }
    Ok(())
}
