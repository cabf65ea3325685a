//! Mount helpers: overlay mounts through the new mount API
//! ([fsopen(2)](https://man7.org/linux/man-pages/man2/fsopen.2.html) with one
//! `lowerdir+` per layer) or classic
//! [mount(2)](https://man7.org/linux/man-pages/man2/mount.2.html), idmapped
//! mounts ([open_tree(2)](https://man7.org/linux/man-pages/man2/open_tree.2.html)
//! `OPEN_TREE_CLONE` +
//! [mount_setattr(2)](https://man7.org/linux/man-pages/man2/mount_setattr.2.html)
//! `MOUNT_ATTR_IDMAP`), and user namespaces
//! ([unshare(2)](https://man7.org/linux/man-pages/man2/unshare.2.html)) to
//! carry ID maps.
//!
//! rustix 1.1 wraps `fsopen`, `fsconfig_*`, `fsmount`, `move_mount` and
//! `open_tree`; it lacks `mount_setattr(2)`, which is wrapped here.
//!
//! # Safety
//!
//! Three blocks are unsafe: the raw `mount_setattr` system call, whose
//! argument struct is a local `#[repr(C)]` copy of the kernel's `struct
//! mount_attr` passed with its exact size; `unshare(CLONE_FS)`, called only
//! on a thread spawned for that purpose, so the changed working directory is
//! private to that thread and never observed by other code; and
//! `unshare(CLONE_NEWUSER)` in a forked child before `exec` (`pre_exec`),
//! which makes only that async-signal-safe system call.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    open_tree, FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags,
    OpenTreeFlags, UnmountFlags,
};

/// Bytes of mount data the classic `mount(2)` accepts (one page, with the
/// terminating NUL).
pub const MOUNT_DATA_MAX: usize = 4095;

/// An overlay mount to make.
#[derive(Debug, Clone, Default)]
pub struct OverlayMount {
    /// Lower directories, nearest (topmost) first.
    pub lowers: Vec<PathBuf>,
    /// Upper directory (absent for a read-only mount).
    pub upper: Option<PathBuf>,
    /// Work directory (required with `upper`).
    pub work: Option<PathBuf>,
    /// Other options: `key=value` or bare flags (`userxattr`, `volatile`).
    pub options: Vec<String>,
}

/// Generic mount options split from filesystem options: what `mount(2)`
/// takes as flags, what `fsmount(2)` takes as mount attributes, superblock
/// flags `fsconfig` accepts by name, and the overlay's own options.
#[derive(Debug)]
struct SplitOptions {
    flags: MountFlags,
    attrs: MountAttrFlags,
    sb_flags: Vec<&'static str>,
    data: Vec<String>,
}

fn split_options(opts: &[String]) -> SplitOptions {
    let mut s = SplitOptions {
        flags: MountFlags::empty(),
        attrs: MountAttrFlags::empty(),
        sb_flags: Vec::new(),
        data: Vec::new(),
    };
    for o in opts.iter().filter(|o| !o.is_empty()) {
        match o.as_str() {
            "rw" | "dev" | "suid" | "exec" | "atime" | "diratime" | "async" => {}
            "ro" => {
                s.flags |= MountFlags::RDONLY;
                s.sb_flags.push("ro");
            }
            "nodev" => {
                s.flags |= MountFlags::NODEV;
                s.attrs |= MountAttrFlags::MOUNT_ATTR_NODEV;
            }
            "nosuid" => {
                s.flags |= MountFlags::NOSUID;
                s.attrs |= MountAttrFlags::MOUNT_ATTR_NOSUID;
            }
            "noexec" => {
                s.flags |= MountFlags::NOEXEC;
                s.attrs |= MountAttrFlags::MOUNT_ATTR_NOEXEC;
            }
            "noatime" => {
                s.flags |= MountFlags::NOATIME;
                s.attrs |= MountAttrFlags::MOUNT_ATTR_NOATIME;
            }
            "nodiratime" => {
                s.flags |= MountFlags::NODIRATIME;
                s.attrs |= MountAttrFlags::MOUNT_ATTR_NODIRATIME;
            }
            "relatime" => {
                s.flags |= MountFlags::RELATIME;
                s.attrs |= MountAttrFlags::MOUNT_ATTR_RELATIME;
            }
            "strictatime" => {
                s.flags |= MountFlags::STRICTATIME;
                s.attrs |= MountAttrFlags::MOUNT_ATTR_STRICTATIME;
            }
            "sync" => {
                s.flags |= MountFlags::SYNCHRONOUS;
                s.sb_flags.push("sync");
            }
            "dirsync" => {
                s.flags |= MountFlags::DIRSYNC;
                s.sb_flags.push("dirsync");
            }
            "lazytime" => {
                s.flags |= MountFlags::LAZYTIME;
                s.sb_flags.push("lazytime");
            }
            _ => s.data.push(o.clone()),
        }
    }
    s
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

fn with_context(op: &str, what: &str, e: rustix::io::Errno) -> io::Error {
    let inner = errno(e);
    io::Error::new(inner.kind(), format!("{op} {what}: {inner}"))
}

/// Mounts an overlay at `target` with `fsopen("overlay")`, one
/// `fsconfig(lowerdir+)` per lower (kernel 6.8+), then `fsmount` and
/// `move_mount`. There is no page-size limit on the lower list this way
/// (the kernel still caps the stack at 500 lowers).
///
/// Errors: `ENOSYS` when the new mount API is missing, `EINVAL` from the
/// `lowerdir+` key on kernels before 6.8.
pub fn mount_overlay_fsopen(m: &OverlayMount, target: &Path) -> io::Result<()> {
    let split = split_options(&m.options);
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(errno)?;
    for f in &split.sb_flags {
        fsconfig_set_flag(&fs, *f).map_err(|e| with_context("fsconfig", f, e))?;
    }
    for opt in &split.data {
        match opt.split_once('=') {
            Some((k, v)) => fsconfig_set_string(&fs, k, v),
            None => fsconfig_set_flag(&fs, opt.as_str()),
        }
        .map_err(|e| with_context("fsconfig", opt, e))?;
    }
    for l in &m.lowers {
        fsconfig_set_string(&fs, "lowerdir+", l.as_path())
            .map_err(|e| with_context("fsconfig lowerdir+", &l.to_string_lossy(), e))?;
    }
    if let Some(u) = &m.upper {
        fsconfig_set_string(&fs, "upperdir", u.as_path())
            .map_err(|e| with_context("fsconfig upperdir", &u.to_string_lossy(), e))?;
    }
    if let Some(w) = &m.work {
        fsconfig_set_string(&fs, "workdir", w.as_path())
            .map_err(|e| with_context("fsconfig workdir", &w.to_string_lossy(), e))?;
    }
    fsconfig_create(&fs).map_err(|e| with_context("fsconfig", "create", e))?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, split.attrs)
        .map_err(|e| with_context("fsmount", "overlay", e))?;
    attach(mnt.as_fd(), target)
}

/// Attaches a detached mount (from `fsmount` or `open_tree`) at `target`.
pub fn attach(mnt: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
    move_mount(
        mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| with_context("move_mount", &target.to_string_lossy(), e))
}

/// The classic mount data string: `lowerdir=a:b,upperdir=…,workdir=…,opts`
/// (generic flags such as `nodev` are left out: they are `mount(2)` flags).
/// Lower paths are used as given (absolute or relative).
pub fn overlay_data(m: &OverlayMount) -> Vec<u8> {
    overlay_data_with(m, &split_options(&m.options).data)
}

/// The data string with all options as given, for a FUSE mount program.
pub fn overlay_data_all(m: &OverlayMount) -> Vec<u8> {
    overlay_data_with(m, &m.options)
}

fn overlay_data_with(m: &OverlayMount, options: &[String]) -> Vec<u8> {
    let mut d = b"lowerdir=".to_vec();
    for (i, l) in m.lowers.iter().enumerate() {
        if i > 0 {
            d.push(b':');
        }
        d.extend_from_slice(l.as_os_str().as_bytes());
    }
    if let Some(u) = &m.upper {
        d.extend_from_slice(b",upperdir=");
        d.extend_from_slice(u.as_os_str().as_bytes());
    }
    if let Some(w) = &m.work {
        d.extend_from_slice(b",workdir=");
        d.extend_from_slice(w.as_os_str().as_bytes());
    }
    for o in options.iter().filter(|o| !o.is_empty()) {
        d.push(b',');
        d.extend_from_slice(o.as_bytes());
    }
    d
}

/// Mounts an overlay with classic `mount(2)` and a `lowerdir=` string.
/// Fails with `E2BIG` when the data does not fit one page.
pub fn mount_overlay_classic(m: &OverlayMount, target: &Path) -> io::Result<()> {
    let data = overlay_data(m);
    if data.len() > MOUNT_DATA_MAX {
        return Err(io::Error::new(
            io::ErrorKind::ArgumentListTooLong,
            format!(
                "overlay mount data is {} bytes, more than one page",
                data.len()
            ),
        ));
    }
    let data = std::ffi::CString::new(data)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in mount data"))?;
    let flags = split_options(&m.options).flags;
    rustix::mount::mount("overlay", target, "overlay", flags, &*data)
        .map_err(|e| with_context("mount overlay", &target.to_string_lossy(), e))
}

/// Mounts an overlay with classic `mount(2)` whose paths are relative to
/// `base` (shorter mount data): runs on a helper thread that unshares its
/// filesystem context (`unshare(CLONE_FS)`) and changes directory to `base`,
/// so the process's working directory never changes.
pub fn mount_overlay_relative(m: &OverlayMount, base: &Path, target: &Path) -> io::Result<()> {
    let m = m.clone();
    let base = base.to_path_buf();
    let target = std::path::absolute(target)?;
    std::thread::scope(|s| {
        s.spawn(move || -> io::Result<()> {
            // SAFETY: CLONE_FS only detaches this thread's cwd/root/umask from
            // the rest of the process; this thread runs nothing but the mount
            // below and then exits, so no other code sees the new cwd.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }
                .map_err(errno)?;
            rustix::process::chdir(&base).map_err(errno)?;
            mount_overlay_classic(&m, &target)
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("mount thread panicked")))
    })
}

/// Unmounts `target` with
/// [umount2(2)](https://man7.org/linux/man-pages/man2/umount2.2.html);
/// `flags` may ask for a lazy unmount (`MNT_DETACH`).
pub fn unmount(target: &Path, flags: UnmountFlags) -> io::Result<()> {
    rustix::mount::unmount(target, flags)
        .map_err(|e| with_context("umount", &target.to_string_lossy(), e))
}

/// Bind-mounts `path` onto itself and makes it a private mount, unless it is
/// already a mount point, in which case only its propagation is changed.
/// Returns whether a new bind mount was made.
pub fn make_private(path: &Path) -> io::Result<bool> {
    let made = if is_mount_root(path)? {
        false
    } else {
        rustix::mount::mount_bind(path, path)
            .map_err(|e| with_context("bind mount", &path.to_string_lossy(), e))?;
        true
    };
    rustix::mount::mount_change(path, rustix::mount::MountPropagationFlags::PRIVATE)
        .map_err(|e| with_context("make private", &path.to_string_lossy(), e))?;
    Ok(made)
}

/// Whether the mount at `path` is a bind mount of that same directory onto
/// itself (as [`make_private`] makes): its root inside the filesystem is not
/// `/` and it sits on the same device as its parent mount. A filesystem
/// mounted there in its own right is not.
pub fn is_self_bind(path: &Path) -> io::Result<bool> {
    let all = crate::mountinfo::read_self()?;
    let Some(m) = all.iter().rev().find(|m| m.mount_point == path) else {
        return Ok(false);
    };
    let parent = all.iter().find(|p| p.mount_id == m.parent_id);
    Ok(
        m.root != Path::new("/")
            && parent.is_some_and(|p| (p.major, p.minor) == (m.major, m.minor)),
    )
}

/// Whether `path` is the root of a mount (its mount ID differs from its
/// parent's, or it is `/`).
pub fn is_mount_root(path: &Path) -> io::Result<bool> {
    let parent = path.join("..");
    let a = mnt_id(path)?;
    let b = mnt_id(&parent)?;
    Ok(a != b || path == Path::new("/"))
}

fn mnt_id(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statx(
        CWD,
        path,
        rustix::fs::AtFlags::empty(),
        rustix::fs::StatxFlags::MNT_ID,
    )
    .map_err(errno)?;
    Ok(st.stx_mnt_id)
}

/// `MOUNT_ATTR_IDMAP` of `mount_setattr(2)` (`linux/mount.h`).
const MOUNT_ATTR_IDMAP: u64 = MountAttrFlags::MOUNT_ATTR_IDMAP.bits() as u64;
/// `AT_RECURSIVE` (`linux/fcntl.h`).
const AT_RECURSIVE: u32 = libc::AT_RECURSIVE as u32;

/// The kernel's `struct mount_attr` (first version, 32 bytes).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, {MOUNT_ATTR_IDMAP, userns})`:
/// makes the detached mount `mnt` show IDs through the user namespace `userns`.
pub fn set_idmap(mnt: BorrowedFd<'_>, userns: BorrowedFd<'_>) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let empty = c"";
    // SAFETY: all pointers are valid for the call: `empty` is a NUL-terminated
    // static string, `attr` lives on the stack for the duration of the call and
    // its size is passed exactly; the fds are borrowed and stay open.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as u32 | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A detached copy of the tree at `path` whose IDs show through `userns`
/// (`open_tree(OPEN_TREE_CLONE)` then [`set_idmap`]). Attach it with [`attach`].
pub fn idmapped_clone(path: &Path, userns: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let fd = open_tree(
        CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| with_context("open_tree", &path.to_string_lossy(), e))?;
    set_idmap(fd.as_fd(), userns)?;
    Ok(fd)
}

/// A user namespace held open by a parked child process, for idmapped mounts.
/// Dropping it kills and reaps the child; the namespace fd stays valid.
pub struct UserNs {
    child: std::process::Child,
    fd: OwnedFd,
}

impl UserNs {
    /// Creates a user namespace whose `uid_map` and `gid_map` are the given
    /// lines (`"<inside> <outside> <count>\n"`…, as written to
    /// `/proc/<pid>/uid_map`).
    pub fn new(uid_map: &str, gid_map: &str) -> io::Result<Self> {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new("/bin/sleep");
        cmd.arg("3600")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // SAFETY: the closure runs in the forked child before exec and only
        // makes the async-signal-safe unshare system call.
        unsafe {
            cmd.pre_exec(|| {
                rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWUSER).map_err(errno)
            });
        }
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let setup = || -> io::Result<OwnedFd> {
            std::fs::write(format!("/proc/{pid}/uid_map"), uid_map)?;
            std::fs::write(format!("/proc/{pid}/setgroups"), "deny").or_else(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
            std::fs::write(format!("/proc/{pid}/gid_map"), gid_map)?;
            Ok(std::fs::File::open(format!("/proc/{pid}/ns/user"))?.into())
        };
        match setup() {
            Ok(fd) => Ok(Self { child, fd }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// PID of the process that holds the namespace (for `nsenter`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The namespace fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for UserNs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_string_joins_lowers_nearest_first() {
        let m = OverlayMount {
            lowers: vec!["l/A".into(), "l/B".into()],
            upper: Some("u".into()),
            work: Some("w".into()),
            options: vec!["userxattr".into(), String::new(), "nodev".into()],
        };
        assert_eq!(
            overlay_data(&m),
            b"lowerdir=l/A:l/B,upperdir=u,workdir=w,userxattr".to_vec()
        );
        let s = split_options(&m.options);
        assert_eq!(s.flags, MountFlags::NODEV);
        assert_eq!(s.attrs, MountAttrFlags::MOUNT_ATTR_NODEV);
    }

    #[test]
    fn classic_refuses_oversized_data() {
        let m = OverlayMount {
            lowers: (0..400)
                .map(|i| PathBuf::from(format!("/x/l/{i:026}")))
                .collect(),
            ..Default::default()
        };
        let err = mount_overlay_classic(&m, Path::new("/nonexistent")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ArgumentListTooLong);
    }
}
