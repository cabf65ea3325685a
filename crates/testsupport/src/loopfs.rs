//! Filesystems on loop devices: a fresh btrfs, XFS or ext4 for a test,
//! unmounted and detached from its loop device on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::mount::{unmount, UnmountFlags};

use crate::{detach_mounts_under, mounts_under, need_root_and_tools, unmet, Scratch};

/// What [`LoopFs`] makes.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Filesystem type: `btrfs`, `xfs`, `ext4`, … (`/usr/sbin/mkfs.<fs>`
    /// makes it).
    pub fs: &'static str,
    /// Size of the image.
    pub size_mib: u64,
    /// Extra arguments of mkfs (`-m reflink=1`).
    pub mkfs_args: Vec<String>,
    /// Mount options (`-o`), if any.
    pub mount_options: Option<String>,
}

impl LoopOptions {
    /// A `size_mib` filesystem of type `fs`, mounted with defaults.
    pub fn new(fs: &'static str, size_mib: u64) -> Self {
        Self {
            fs,
            size_mib,
            mkfs_args: Vec::new(),
            mount_options: None,
        }
    }

    fn mkfs(&self) -> String {
        format!("/usr/sbin/mkfs.{}", self.fs)
    }

    fn mkfs_flags(&self) -> &'static [&'static str] {
        match self.fs {
            "ext2" | "ext3" | "ext4" => &["-q", "-F"],
            _ => &["-q", "-f"],
        }
    }
}

/// A filesystem image on a loop device, mounted. Dropping it detaches
/// every mount below the mount point (a driver may have left some), the
/// filesystem itself, and the loop device.
#[derive(Debug)]
pub struct LoopFs {
    mnt: PathBuf,
    dev: String,
    /// The directory holding image and mount point, when ours.
    _scratch: Option<Scratch>,
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl LoopFs {
    /// A fresh filesystem in a scratch directory of its own, mounted at
    /// `<dir>/mnt`; `None` when `test` cannot have it here (root, mkfs,
    /// losetup, the kernel's support of the filesystem), after saying why.
    /// Under `CI` an unmet need fails.
    pub fn new(test: &str, opts: &LoopOptions) -> Option<Self> {
        if !Self::tools(test, opts) {
            return None;
        }
        let scratch = Scratch::new(&format!("strata-{}-", opts.fs));
        let image = scratch.path().join("img");
        let mnt = scratch.path().join("mnt");
        let mut fs = Self::make(test, &image, &mnt, opts)?;
        fs._scratch = Some(scratch);
        Some(fs)
    }

    /// A fresh filesystem whose image is the file `image` (made here),
    /// mounted at `mnt` (made if missing); both belong to the caller's
    /// own temporary directory.
    pub fn at(test: &str, image: &Path, mnt: &Path, opts: &LoopOptions) -> Option<Self> {
        if !Self::tools(test, opts) {
            return None;
        }
        Self::make(test, image, mnt, opts)
    }

    fn tools(test: &str, opts: &LoopOptions) -> bool {
        need_root_and_tools(test, &[&opts.mkfs(), "/usr/sbin/losetup", "/usr/bin/mount"])
    }

    fn make(test: &str, image: &Path, mnt: &Path, opts: &LoopOptions) -> Option<Self> {
        let made = (|| {
            let f = std::fs::File::create(image).map_err(|e| e.to_string())?;
            f.set_len(opts.size_mib << 20).map_err(|e| e.to_string())?;
            drop(f);
            run(Command::new(opts.mkfs())
                .args(opts.mkfs_flags())
                .args(&opts.mkfs_args)
                .arg(image))?;
            std::fs::create_dir_all(mnt).map_err(|e| e.to_string())?;
            run(Command::new("losetup").args(["-f", "--show"]).arg(image))
        })();
        let dev = match made {
            Ok(dev) => dev,
            // Root and the tools are here: this is a real failure.
            Err(e) => panic!("{test}: making a loop {}: {e}", opts.fs),
        };
        let fs = LoopFs {
            mnt: mnt.to_path_buf(),
            dev,
            _scratch: None,
        };
        if let Err(e) = fs.mount(opts.mount_options.as_deref()) {
            // Most likely the kernel lacks the filesystem.
            unmet(test, &format!("cannot mount {}: {e}", opts.fs));
            return None;
        }
        Some(fs)
    }

    fn mount(&self, options: Option<&str>) -> Result<String, String> {
        let mut c = Command::new("mount");
        if let Some(o) = options {
            c.args(["-o", o]);
        }
        run(c.arg(&self.dev).arg(&self.mnt))
    }

    /// Mounts the filesystem again with `options` (e.g. `prjquota`, which
    /// XFS takes only at mount time); on failure it is mounted as before
    /// and the error is returned.
    pub fn remount(&self, options: &str) -> Result<(), String> {
        // A plain unmount, not a lazy one: a superblock kept alive would
        // be mounted again with its old options.
        for m in mounts_under(&self.mnt) {
            if m != self.mnt {
                let _ = unmount(&m, UnmountFlags::DETACH);
            }
        }
        unmount(&self.mnt, UnmountFlags::empty())
            .map_err(|e| format!("unmounting {}: {e}", self.mnt.display()))?;
        match self.mount(Some(options)) {
            Ok(_) => Ok(()),
            Err(e) => {
                self.mount(None)
                    .unwrap_or_else(|e2| panic!("mounting {} again: {e2}", self.dev));
                Err(e)
            }
        }
    }

    /// The directory holding the mount point, for a test's other files.
    pub fn dir(&self) -> &Path {
        self.mnt.parent().unwrap_or(&self.mnt)
    }

    /// The mount point.
    pub fn mnt(&self) -> &Path {
        &self.mnt
    }

    /// The loop device.
    pub fn dev(&self) -> &str {
        &self.dev
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        detach_mounts_under(&self.mnt);
        if let Err(e) = run(Command::new("losetup").args(["-d", &self.dev])) {
            eprintln!("detaching {}: {e}", self.dev);
        }
    }
}
