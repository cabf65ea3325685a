//! Per-layer `size`/`inodes` limits through project quotas (XFS mounted
//! with `prjquota`, or any filesystem whose `quotactl_fd` accepts project
//! limits). Each limited layer gets its own project ID, above the home's
//! and above every ID already used by a layer directory.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Mutex;

use strata_sys::quota::{project_id, set_project_id, set_project_limits, ProjectLimits};

use crate::{Error, Result};

/// Project-quota bookkeeping for one home.
pub struct ProjectQuota {
    home: OwnedFd,
    next: Mutex<u32>,
}

fn open_dir(p: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        p,
        rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::path("open", p, e.into()))
}

impl ProjectQuota {
    /// Sets up quotas for `home`, or says why they are unavailable.
    pub fn new(home: &Path, fs_name: &str) -> Result<Self> {
        let unsupported = |e: std::io::Error| {
            Error::Unsupported(format!(
                "size/inodes quotas need project quota support, which the {fs_name} backing filesystem at {} lacks ({e})",
                home.display()
            ))
        };
        let fd = open_dir(home)?;
        let base = project_id(fd.as_fd()).map_err(unsupported)?;
        // Read-only check first, so homes without project quotas (the
        // common case) cost no directory scan at every start.
        strata_sys::quota::project_quota_enabled(fd.as_fd(), base).map_err(unsupported)?;
        let mut next = base + 1;
        if let Ok(rd) = fs::read_dir(home) {
            for ent in rd.flatten() {
                if ent.file_type().is_ok_and(|t| t.is_dir()) {
                    if let Ok(f) = open_dir(&ent.path()) {
                        if let Ok(id) = project_id(f.as_fd()) {
                            next = next.max(id + 1);
                        }
                    }
                }
            }
        }
        Ok(Self {
            home: fd,
            next: Mutex::new(next),
        })
    }

    /// Gives `dir` and its subdirectories a fresh project ID with `lim`.
    pub fn apply(&self, dir: &Path, lim: ProjectLimits) -> Result<()> {
        let id = {
            let mut n = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let id = *n;
            *n += 1;
            id
        };
        let mut dirs = vec![dir.to_path_buf()];
        for ent in fs::read_dir(dir).map_err(|e| Error::path("readdir", dir, e))? {
            let ent = ent.map_err(|e| Error::path("readdir", dir, e))?;
            if ent.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(ent.path());
            }
        }
        for d in dirs {
            let f = open_dir(&d)?;
            set_project_id(f.as_fd(), id).map_err(|e| Error::path("set project id", &d, e))?;
        }
        set_project_limits(self.home.as_fd(), id, lim)
            .map_err(|e| Error::path("set project quota", dir, e))
    }
}
