//! Whiteouts and opaque markers in both modes.

use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

use rustix::fs::{self, FileType, Mode, XattrFlags};

use super::entries::{err, join};
use super::meta::{timestamps, Target};
use super::ops::{self, Removed};
use super::path;
use super::resolve::{self, lossy, CachedDir, Missing};
use super::{Applier, ApplyMode, WhiteoutStyle};
use crate::entry::Header;
use crate::Result;

impl Applier<'_> {
    /// `.wh.NAME` at `p`: delete `NAME` (full tree) or record the deletion.
    pub(super) fn whiteout(&mut self, p: &[u8], name: &[u8], h: Box<Header>) -> Result<()> {
        let (parent, _) = path::split_parent(p);
        let gone = join(parent, name);
        match self.mode {
            ApplyMode::FullTree => {
                let dir = self.parent_dir(parent)?;
                let removed =
                    ops::remove_any(dir.fd.as_fd(), name).map_err(|e| err("remove", &gone, e))?;
                if removed == Removed::DirOrLink {
                    self.res.invalidate();
                }
                Ok(())
            }
            ApplyMode::Overlay { whiteouts, .. } => {
                if self.in_opaque(parent) {
                    tracing::debug!(
                        "dropping whiteout {:?} inside a directory this layer made opaque",
                        lossy(p)
                    );
                    return Ok(());
                }
                match whiteouts {
                    WhiteoutStyle::AufsFiles => {
                        self.made_whiteouts.push(p.to_vec());
                        self.entry(p, h)
                    }
                    WhiteoutStyle::CharDevice => {
                        let dir = self.parent_dir(parent)?;
                        let d = dir.fd.as_fd();
                        self.create_replacing((d, name, &gone), "mknod", || {
                            fs::mknodat(d, name, FileType::CharacterDevice, Mode::empty(), 0)
                        })?;
                        let t = Target::At {
                            dir: d,
                            name,
                            symlink: false,
                        };
                        let owner = self.meta.host_owner(&h, &gone)?;
                        self.meta.chown(t, owner, &gone)?;
                        self.meta.times(t, &timestamps(&h), &gone)?;
                        self.made_whiteouts.push(gone);
                        Ok(())
                    }
                }
            }
        }
    }

    /// `.wh..wh..opq` at `p`: the parent directory hides what lies below.
    pub(super) fn opaque(&mut self, p: &[u8], h: Box<Header>) -> Result<()> {
        let (parent, _) = path::split_parent(p);
        let dir = self.parent_dir(parent)?;
        match self.mode {
            ApplyMode::FullTree => {
                let r = self.delete_older_children(&dir);
                self.res.invalidate();
                r.map_err(|e| err("clear opaque directory", parent, e))
            }
            ApplyMode::Overlay { whiteouts, opaque } => {
                self.drop_whiteouts_below(parent);
                self.opaque_dirs.push(parent.to_vec());
                match whiteouts {
                    WhiteoutStyle::AufsFiles => self.entry(p, h),
                    WhiteoutStyle::CharDevice => {
                        let fd = resolve::reopen_dir(dir.fd.as_fd())
                            .map_err(|e| err("open", parent, e))?;
                        fs::fsetxattr(&fd, opaque.name(), b"y", XattrFlags::empty())
                            .map_err(|e| err("setxattr", parent, e))
                    }
                }
            }
        }
    }

    /// True when `dir` is, or lies below, a directory this layer made opaque.
    fn in_opaque(&self, dir: &[u8]) -> bool {
        self.opaque_dirs.iter().any(|o| path::is_within(dir, o))
    }

    /// Removes whiteouts this layer made below a directory it now makes
    /// opaque: they hide nothing there.
    fn drop_whiteouts_below(&mut self, dir: &[u8]) {
        let (drop, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.made_whiteouts)
            .into_iter()
            .partition(|w| path::is_within(path::split_parent(w).0, dir));
        self.made_whiteouts = keep;
        for w in drop {
            let (wp, wn) = path::split_parent(&w);
            let Ok(d) = self.res.dir(wp, Missing::Fail) else {
                continue;
            };
            let Ok(Some(st)) = resolve::lstat_at(d.fd.as_fd(), wn) else {
                continue;
            };
            let t = FileType::from_raw_mode(st.st_mode);
            let is_whiteout = (t == FileType::CharacterDevice && st.st_rdev == 0)
                || (t == FileType::RegularFile && wn.starts_with(path::WHITEOUT_PREFIX));
            if is_whiteout {
                if let Err(e) = fs::unlinkat(d.fd.as_fd(), wn, fs::AtFlags::empty()) {
                    tracing::warn!("cannot drop whiteout {:?}: {e}", lossy(&w));
                }
            }
        }
    }

    /// Full-tree opaque directory: deletes every child (recursively) that
    /// this layer did not make. Children are identified by the directory's
    /// inode and their name, so a name reached through a symlink counts.
    fn delete_older_children(&mut self, dir: &CachedDir) -> std::io::Result<()> {
        let top: Rc<OwnedFd> = Rc::new(resolve::reopen_dir(dir.fd.as_fd())?);
        let mut pending: Vec<(Rc<OwnedFd>, Vec<u8>)> = Vec::new();
        self.sweep(&top, &mut pending)?;
        while let Some((parent, name)) = pending.pop() {
            match ops::open_subdir(parent.as_fd(), &name) {
                Ok(fd) => self.sweep(&Rc::new(fd), &mut pending)?,
                Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn sweep(
        &self,
        dir: &Rc<OwnedFd>,
        pending: &mut Vec<(Rc<OwnedFd>, Vec<u8>)>,
    ) -> std::io::Result<()> {
        let st = fs::fstat(dir.as_fd())?;
        for (name, is_dir) in ops::list(dir.as_fd())? {
            let key = (st.st_dev, st.st_ino, name);
            if self.unpacked.contains(&key) {
                if is_dir {
                    pending.push((dir.clone(), key.2));
                }
            } else {
                ops::remove_any(dir.as_fd(), &key.2)?;
            }
        }
        Ok(())
    }
}
