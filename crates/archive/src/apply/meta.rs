//! Owners, modes, xattrs and times of applied entries.
//!
//! Order matters: chown first (it clears setuid/setgid and file
//! capabilities), then chmod, then xattrs (a later chown or write would drop
//! `security.capability`), then times (every other change touches ctime
//! only, but content writes and xattrs on directories can move mtime).

use std::collections::HashSet;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::fs::{self, AtFlags, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use strata_idmap::{IdMappings, IdPair};

use super::resolve::{lossy, CachedDir};
use crate::entry::{Header, Timestamp};
use crate::{Error, Result};

/// The xattr in which force_mask keeps the real owner and mode.
pub(crate) const OVERRIDE_STAT: &[u8] = b"user.containers.override_stat";

/// Where metadata goes.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    /// A real (not `O_PATH`) descriptor of the object.
    Fd(BorrowedFd<'a>),
    /// A name in a directory, never followed. `symlink` says whether the
    /// object is a symlink (no chmod then).
    At {
        dir: BorrowedFd<'a>,
        name: &'a [u8],
        symlink: bool,
    },
}

/// What an incoming xattr is allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XattrPolicy {
    /// Written.
    Write,
    /// Silently ignored (`security.selinux`: labels come from the mount).
    Ignore,
    /// Never written by a layer: overlay's own namespaces would let a layer
    /// forge whiteouts, redirects or opaque markers; override_stat would let
    /// it forge owners under force_mask.
    Forbidden,
}

/// The policy for an xattr name.
pub(crate) fn xattr_policy(name: &[u8]) -> XattrPolicy {
    if name == b"security.selinux" {
        XattrPolicy::Ignore
    } else if name.starts_with(b"trusted.overlay.")
        || name.starts_with(b"user.overlay.")
        || name == OVERRIDE_STAT
    {
        XattrPolicy::Forbidden
    } else {
        XattrPolicy::Write
    }
}

/// The override_stat value containers-storage 1.43 writes: host uid, host gid
/// and the permission bits (setuid/setgid/sticky are not kept), e.g.
/// `1000:1001:0751`.
pub(crate) fn override_stat_value(owner: IdPair, mode: u32) -> String {
    format!("{}:{}:0{:o}", owner.uid, owner.gid, mode & 0o777)
}

fn timespec(t: Timestamp) -> Timespec {
    Timespec {
        tv_sec: t.sec,
        tv_nsec: t.nsec.min(999_999_999).into(),
    }
}

/// Access and modification times of a header (atime defaults to mtime).
pub(crate) fn timestamps(h: &Header) -> Timestamps {
    Timestamps {
        last_access: timespec(h.atime.unwrap_or(h.mtime)),
        last_modification: timespec(h.mtime),
    }
}

fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"],
        Err(_) => false,
    }
}

/// Applies metadata with the applier's policies and counts what it skipped.
#[derive(Clone)]
pub(crate) struct Meta {
    maps: IdMappings,
    ignore_chown_errors: bool,
    force_mask: Option<u32>,
    in_userns: bool,
    euid: u32,
    egid: u32,
    last_map: Option<(IdPair, IdPair)>,
    chown_failures: u64,
    xattr_warned: HashSet<Vec<u8>>,
    xattr_skipped: u64,
}

impl Meta {
    pub(crate) fn new(
        maps: IdMappings,
        ignore_chown_errors: bool,
        force_mask: Option<u32>,
    ) -> Self {
        Self {
            maps,
            ignore_chown_errors,
            force_mask,
            in_userns: in_user_namespace(),
            euid: rustix::process::geteuid().as_raw(),
            egid: rustix::process::getegid().as_raw(),
            last_map: None,
            chown_failures: 0,
            xattr_warned: HashSet::new(),
            xattr_skipped: 0,
        }
    }

    /// The header's permission bits, when a regular file may be created
    /// with them: it is created with the owner it keeps and has no set-ID
    /// or sticky bit (the umask or a default ACL may still take bits away:
    /// the writer looks at the mode it got before skipping chmod). `None`:
    /// create it 0600, its mode is set at the end.
    pub(crate) fn final_create_mode(
        &mut self,
        h: &Header,
        path: &[u8],
        owner_now: Option<IdPair>,
    ) -> Result<Option<u32>> {
        let mode = h.mode & 0o7777;
        let final_now = self.force_mask.is_none()
            && mode & 0o7000 == 0
            && owner_now.is_some()
            && owner_now == Some(self.host_owner(h, path)?);
        Ok(final_now.then_some(mode))
    }

    pub(crate) fn force_mask(&self) -> Option<u32> {
        self.force_mask
    }

    /// The owner of an object this process creates now in `parent`: our
    /// effective IDs, or the directory's group when it is setgid. `None`
    /// when the directory cannot be examined.
    pub(crate) fn fresh_owner(&self, parent: &CachedDir) -> Option<IdPair> {
        let info = parent.info().ok()?;
        let gid = if info.mode & 0o2000 != 0 {
            info.gid
        } else {
            self.egid
        };
        Some(IdPair {
            uid: self.euid,
            gid,
        })
    }

    /// The mode an entry ends with (the mask's under force_mask).
    pub(crate) fn final_mode(&self, h: &Header) -> u32 {
        self.force_mask.unwrap_or(h.mode) & 0o7777
    }

    /// A directory mode this process could not write through until the end:
    /// without root, a directory needs owner write and search permission to
    /// receive its entries.
    pub(crate) fn must_defer_dir_mode(&self, mode: u32) -> bool {
        self.euid != 0 && mode & 0o300 != 0o300
    }

    /// Host owner of the container's root (owner of implicit parents).
    pub(crate) fn root_owner(&self) -> Result<IdPair> {
        Ok(self.maps.root_pair()?)
    }

    /// Host IDs of the header's container IDs.
    pub(crate) fn host_owner(&mut self, h: &Header, path: &[u8]) -> Result<IdPair> {
        let c = IdPair {
            uid: h.uid,
            gid: h.gid,
        };
        if let Some((k, v)) = self.last_map {
            if k == c {
                return Ok(v);
            }
        }
        let host = self.maps.to_host(c)?;
        if host.uid == u32::MAX || host.gid == u32::MAX {
            return Err(Error::Refused {
                path: lossy(path).display().to_string(),
                reason: "owner ID 4294967295 means \"no change\" to chown".into(),
            });
        }
        self.last_map = Some((c, host));
        Ok(host)
    }

    /// Changes the owner, honouring `ignore_chown_errors`.
    pub(crate) fn chown(&mut self, t: Target<'_>, owner: IdPair, path: &[u8]) -> Result<()> {
        let uid = Some(Uid::from_raw(owner.uid));
        let gid = Some(Gid::from_raw(owner.gid));
        let r = match t {
            Target::Fd(fd) => fs::fchown(fd, uid, gid),
            Target::At { dir, name, .. } => {
                fs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
            }
        };
        match r {
            Ok(()) => Ok(()),
            Err(e) if self.ignore_chown_errors => {
                if self.chown_failures == 0 {
                    tracing::warn!(
                        "ignoring chown errors as asked (first: {:?} to {}:{}: {e})",
                        lossy(path),
                        owner.uid,
                        owner.gid
                    );
                }
                self.chown_failures += 1;
                Ok(())
            }
            Err(e) => Err(Error::Path {
                op: "chown",
                path: lossy(path),
                source: e.into(),
            }),
        }
    }

    /// Sets permission bits (never on a symlink).
    pub(crate) fn chmod(&self, t: Target<'_>, mode: u32, path: &[u8]) -> Result<()> {
        let mode = Mode::from_raw_mode(mode & 0o7777);
        let r = match t {
            Target::Fd(fd) => fs::fchmod(fd, mode),
            Target::At { symlink: true, .. } => return Ok(()),
            // fchmodat has no working AT_SYMLINK_NOFOLLOW before fchmodat2;
            // the caller has checked that `name` is not a symlink.
            Target::At { dir, name, .. } => fs::chmodat(dir, name, mode, AtFlags::empty()),
        };
        r.map_err(|e| Error::Path {
            op: "chmod",
            path: lossy(path),
            source: e.into(),
        })
    }

    /// Sets times (never following a symlink).
    pub(crate) fn times(&self, t: Target<'_>, ts: &Timestamps, path: &[u8]) -> Result<()> {
        let r = match t {
            Target::Fd(fd) => fs::futimens(fd, ts),
            Target::At { dir, name, .. } => fs::utimensat(dir, name, ts, AtFlags::SYMLINK_NOFOLLOW),
        };
        r.map_err(|e| Error::Path {
            op: "set times of",
            path: lossy(path),
            source: e.into(),
        })
    }

    fn set_xattr(&mut self, t: Target<'_>, name: &[u8], value: &[u8], path: &[u8]) -> Result<()> {
        let r = match t {
            Target::Fd(fd) => fs::fsetxattr(fd, name, value, XattrFlags::empty()),
            Target::At { dir, name: n, .. } => {
                // There is no lsetxattrat before Linux 6.13: go through the
                // directory's /proc/self/fd link, which lands exactly in
                // `dir`; the last component is a plain name, not followed.
                let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
                p.extend_from_slice(n);
                fs::lsetxattr(p.as_slice(), name, value, XattrFlags::empty())
            }
        };
        match r {
            Ok(()) => Ok(()),
            Err(e)
                if e == Errno::NOTSUP
                    || e == Errno::OPNOTSUPP
                    || (e == Errno::PERM && self.in_userns) =>
            {
                self.xattr_skipped += 1;
                if self.xattr_warned.insert(name.to_vec()) {
                    tracing::warn!(
                        "cannot set xattr {} on {:?} ({e}); skipping it here and on later entries",
                        String::from_utf8_lossy(name),
                        lossy(path)
                    );
                }
                Ok(())
            }
            Err(e) => Err(Error::Path {
                op: "setxattr",
                path: lossy(path),
                source: e.into(),
            }),
        }
    }

    /// Writes the header's xattrs that the policy allows.
    pub(crate) fn xattrs(&mut self, t: Target<'_>, h: &Header, path: &[u8]) -> Result<()> {
        for x in &h.xattrs {
            match xattr_policy(&x.name) {
                XattrPolicy::Write => self.set_xattr(t, &x.name, &x.value, path)?,
                XattrPolicy::Ignore => {}
                XattrPolicy::Forbidden => tracing::warn!(
                    "dropping xattr {} of {:?}: a layer may not set it",
                    String::from_utf8_lossy(&x.name),
                    lossy(path)
                ),
            }
        }
        Ok(())
    }

    /// Owner, mode and xattrs of an entry (times are separate because
    /// directories defer them). Under force_mask the object gets the mask's
    /// mode and the container root's owner, and its real owner and mode go
    /// into `user.containers.override_stat` (not on symlinks).
    ///
    /// `now` is the owner the object is known to have (a fresh object's
    /// creator); chown is skipped when it already is the wanted one.
    pub(crate) fn apply(
        &mut self,
        t: Target<'_>,
        h: &Header,
        path: &[u8],
        now: Option<IdPair>,
    ) -> Result<()> {
        self.apply_created(t, h, path, now, None)
    }

    /// [`Meta::apply`] for an object whose mode is known to be `mode_now`:
    /// chmod is skipped when that is the header's and no chown happens.
    pub(crate) fn apply_created(
        &mut self,
        t: Target<'_>,
        h: &Header,
        path: &[u8],
        now: Option<IdPair>,
        mode_now: Option<u32>,
    ) -> Result<()> {
        let symlink = matches!(t, Target::At { symlink: true, .. });
        let host = self.host_owner(h, path)?;
        match self.force_mask {
            None => {
                let chowned = now != Some(host);
                if chowned {
                    self.chown(t, host, path)?;
                }
                if chowned || mode_now != Some(h.mode & 0o7777) {
                    self.chmod(t, h.mode, path)?;
                }
                self.xattrs(t, h, path)
            }
            Some(mask) => {
                let root = self.root_owner()?;
                if now != Some(root) {
                    self.chown(t, root, path)?;
                }
                self.chmod(t, mask, path)?;
                self.xattrs(t, h, path)?;
                if symlink {
                    return Ok(());
                }
                let value = override_stat_value(host, h.mode);
                self.set_xattr(t, OVERRIDE_STAT, value.as_bytes(), path)
            }
        }
    }

    /// The same policy with nothing counted yet, for work done elsewhere
    /// and added back with [`Meta::absorb`].
    pub(crate) fn fork(&self) -> Meta {
        Meta {
            chown_failures: 0,
            xattr_warned: HashSet::new(),
            xattr_skipped: 0,
            ..self.clone()
        }
    }

    /// Adds the counts of a fork that worked on another thread.
    pub(crate) fn absorb(&mut self, other: Meta) {
        self.chown_failures += other.chown_failures;
        self.xattr_skipped += other.xattr_skipped;
        self.xattr_warned.extend(other.xattr_warned);
    }

    /// Logs a summary of what was skipped.
    pub(crate) fn summarize(&self) {
        if self.chown_failures > 1 {
            tracing::warn!(
                "{} chown calls failed and were ignored",
                self.chown_failures
            );
        }
        if self.xattr_skipped > 1 {
            tracing::warn!("{} xattrs could not be set", self.xattr_skipped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_table() {
        use XattrPolicy::*;
        for (name, want) in [
            ("security.capability", Write),
            ("user.foo", Write),
            ("trusted.foo", Write),
            ("security.selinux", Ignore),
            ("trusted.overlay.opaque", Forbidden),
            ("trusted.overlay.redirect", Forbidden),
            ("trusted.overlay.overlay.opaque", Forbidden),
            ("user.overlay.opaque", Forbidden),
            ("user.overlay.origin", Forbidden),
            ("user.containers.override_stat", Forbidden),
            ("user.containers.override_statx", Write),
        ] {
            assert_eq!(xattr_policy(name.as_bytes()), want, "{name}");
        }
    }

    #[test]
    fn override_stat_format_matches_reference() {
        // Values observed from containers-storage 1.43 with force_mask.
        let o = IdPair {
            uid: 1000,
            gid: 1001,
        };
        assert_eq!(override_stat_value(o, 0o4751), "1000:1001:0751");
        assert_eq!(override_stat_value(o, 0o1755), "1000:1001:0755");
        assert_eq!(override_stat_value(o, 0o640), "1000:1001:0640");
        assert_eq!(override_stat_value(IdPair::default(), 0), "0:0:00");
    }
}
