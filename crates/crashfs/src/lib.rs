//! crashfs: a filesystem for tests that loses, when the power is cut,
//! everything that was not yet durable — as a machine does that loses
//! power — so that a test can cut the power at every sync point of an
//! operation (and between them) and look at what is left.
//!
//! It is a FUSE filesystem held in memory in the test's process, in the
//! spirit of LazyFS: it keeps two trees, what programs see (*current*) and
//! what would survive a power cut (*durable*), and moves changes from one to
//! the other only when a program syncs them:
//!
//! ```text
//!   write, truncate, chmod, chown,      ──> current inode, marked dirty
//!   utimes, setxattr, fallocate
//!   create, mkdir, mknod, symlink,      ──> current tree + pending log of
//!   link, unlink, rmdir, rename             name changes, in order
//!   fsync/fdatasync of a file or dir,   ──> pending names and dirty data
//!   syncfs, sync                            move to the durable tree (below)
//!   power cut                           ──> current := durable; every later
//!                                           request fails with EIO
//! ```
//!
//! Which name changes a sync makes durable is the [`Model`]:
//! [`Model::Journal`] is ext4's (`data=ordered`) and XFS's behaviour — name
//! changes are journaled in order and any fsync commits all of them;
//! [`Model::Directory`] is the weakest POSIX reading — a name change is
//! durable only once its directory is synced. In both, a file's data and
//! attributes are durable only after an `fsync`/`fdatasync` of that file or
//! a `syncfs`; nothing written back "by the kernel" is assumed, so the
//! durable tree after a cut is the worst case a real disk could show, not
//! every case. A rename is always atomic.
//!
//! The kernel does not pass `syncfs(2)` to FUSE servers, so programs whose
//! syncs matter run through [`CrashFs::run`], which traces them and turns
//! their `syncfs` and `sync` calls into syncs of this filesystem.
//!
//! Mounting needs root (or a FUSE setup that lets the user mount):
//!
//! ```no_run
//! use strata_crashfs::{CrashFs, Cut, Model, Tree};
//! let fs = CrashFs::mount("/tmp/mnt".as_ref(), Tree::default(), Model::Journal)?;
//! fs.set_cut(Cut::BeforeSync(3));
//! fs.run("/bin/sh".as_ref(), &["-c".as_ref(), "echo hi > /tmp/mnt/f; sync".as_ref()], |_| {})?;
//! let left = fs.power_cut()?; // what a reboot would find
//! # Ok::<(), std::io::Error>(())
//! ```

mod fuse;
mod state;
mod trace;
mod tree;

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use state::{Counts, Cut, Model};
pub use trace::Ended;
pub use tree::{Content, Node, Tree};

use fuse::{Fs, Inner};
use state::Machine;

/// How long a traced program may run before it is killed.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(300);

/// A mounted crashfs.
pub struct CrashFs {
    inner: Arc<Mutex<Inner>>,
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
}

impl std::fmt::Debug for CrashFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrashFs")
            .field("mountpoint", &self.mountpoint)
            .finish_non_exhaustive()
    }
}

impl CrashFs {
    /// Mounts a filesystem holding `tree` (current and durable) on
    /// `mountpoint`, an empty directory.
    pub fn mount(mountpoint: &Path, tree: Tree, model: Model) -> io::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner::new(Machine::new(tree, model))));
        let fs = Fs {
            inner: inner.clone(),
        };
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("crashfs".into()),
            fuser::MountOption::DefaultPermissions,
            fuser::MountOption::Dev,
            fuser::MountOption::Suid,
        ];
        let session = fuser::spawn_mount(fs, mountpoint, &config)?;
        Ok(CrashFs {
            inner,
            session: Some(session),
            mountpoint: mountpoint.to_path_buf(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Chooses where the power is cut (counts start at the mount).
    pub fn set_cut(&self, cut: Cut) {
        self.lock().m.set_cut(cut);
    }

    /// Changes and sync points so far.
    pub fn counts(&self) -> Counts {
        self.lock().m.counts()
    }

    /// Whether the power was cut.
    pub fn is_dead(&self) -> bool {
        self.lock().m.is_dead()
    }

    /// Makes everything durable, as `syncfs` would (it counts as a sync point).
    pub fn syncfs(&self) {
        self.lock().m.syncfs();
    }

    /// Runs a program traced, so that its `syncfs` and `sync` calls count;
    /// `setup` sets its stdio, environment and working directory. It is
    /// killed as soon as the power is cut, or after [`DEFAULT_DEADLINE`].
    pub fn run(
        &self,
        program: &OsStr,
        args: &[&OsStr],
        setup: impl FnOnce(&mut Command) + Send,
    ) -> io::Result<Ended> {
        trace::run(&self.inner, program, args, DEFAULT_DEADLINE, setup)
    }

    /// Cuts the power now (unless a chosen cut already did), unmounts, and
    /// returns what survived.
    pub fn power_cut(mut self) -> io::Result<Tree> {
        let mut tree = {
            let mut g = self.lock();
            if !g.m.is_dead() {
                g.m.power_cut();
            }
            g.m.durable.clone()
        };
        self.unmount()?;
        tree.collect_garbage();
        Ok(tree)
    }

    /// Unmounts cleanly and returns the current tree (as if everything had
    /// been synced before a clean shutdown).
    pub fn shut_down(mut self) -> io::Result<Tree> {
        let tree = self.lock().m.current.clone();
        self.unmount()?;
        Ok(tree)
    }

    fn unmount(&mut self) -> io::Result<()> {
        match self.session.take() {
            Some(s) => s.umount_and_join(),
            None => Ok(()),
        }
    }
}

impl Drop for CrashFs {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            tracing::warn!("crashfs: unmounting {}: {e}", self.mountpoint.display());
        }
    }
}
