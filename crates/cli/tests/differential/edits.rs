//! Primitive edits of a mounted layer tree, made by the test (as root) on
//! both tools' mounts with the same system calls, so that both stacks
//! hold the same bytes, owners, modes and times.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps, XattrFlags, CWD};

/// One system call (or `rm -rf`, or a rename with `mv`'s fallback) on a
/// path relative to the layer's root (`""` is the root itself).
#[derive(Clone)]
pub enum Prim {
    /// Create or truncate and write a regular file (O_NOFOLLOW), then chmod.
    Write {
        path: String,
        data: Vec<u8>,
        mode: u32,
    },
    /// Append to a regular file.
    Append {
        path: String,
        data: Vec<u8>,
    },
    Mkdir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    Fifo {
        path: String,
        mode: u32,
    },
    Link {
        from: String,
        to: String,
    },
    Unlink {
        path: String,
    },
    /// `rm -rf`.
    RemoveTree {
        path: String,
    },
    Rmdir {
        path: String,
    },
    /// rename(2); on EXDEV (a lower directory on overlay without
    /// redirect_dir) a copy and a removal, as `mv` does.
    Rename {
        from: String,
        to: String,
    },
    Chmod {
        path: String,
        mode: u32,
    },
    Lchown {
        path: String,
        uid: u32,
        gid: u32,
    },
    SetXattr {
        path: String,
        name: String,
        value: Vec<u8>,
    },
    RemoveXattr {
        path: String,
        name: String,
    },
    /// Sets atime and mtime (not following a final symlink).
    SetTime {
        path: String,
        sec: i64,
        nsec: u32,
    },
}

impl std::fmt::Debug for Prim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Prim::Write { path, data, mode } => {
                write!(f, "write {path:?} {} bytes mode {mode:o}", data.len())
            }
            Prim::Append { path, data } => write!(f, "append {path:?} {} bytes", data.len()),
            Prim::Mkdir { path, mode } => write!(f, "mkdir {path:?} {mode:o}"),
            Prim::Symlink { path, target } => write!(f, "symlink {path:?} -> {target:?}"),
            Prim::Fifo { path, mode } => write!(f, "mkfifo {path:?} {mode:o}"),
            Prim::Link { from, to } => write!(f, "link {from:?} as {to:?}"),
            Prim::Unlink { path } => write!(f, "unlink {path:?}"),
            Prim::RemoveTree { path } => write!(f, "rm -rf {path:?}"),
            Prim::Rmdir { path } => write!(f, "rmdir {path:?}"),
            Prim::Rename { from, to } => write!(f, "rename {from:?} to {to:?}"),
            Prim::Chmod { path, mode } => write!(f, "chmod {mode:o} {path:?}"),
            Prim::Lchown { path, uid, gid } => write!(f, "lchown {uid}:{gid} {path:?}"),
            Prim::SetXattr { path, name, value } => {
                write!(f, "setxattr {path:?} {name}={}", hex::encode(value))
            }
            Prim::RemoveXattr { path, name } => write!(f, "removexattr {path:?} {name}"),
            Prim::SetTime { path, sec, nsec } => write!(f, "touch {path:?} {sec}.{nsec:09}"),
        }
    }
}

/// An errno, or a description of a failure that has none.
pub type Outcome = Result<(), String>;

fn errno(e: std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => rustix::io::Errno::from_raw_os_error(n).to_string(),
        None => e.to_string(),
    }
}

fn rx(e: rustix::io::Errno) -> String {
    e.to_string()
}

/// `root/rel` (`root` itself for `""`).
pub fn at(root: &Path, rel: &str) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

/// The directory holding `rel` (`""` for an entry of the root).
pub fn parent_of(rel: &str) -> String {
    rel.rfind('/')
        .map(|i| rel[..i].to_string())
        .unwrap_or_default()
}

/// Short forms for the given stacks of regression tests.
pub fn mkdir(path: &str) -> Prim {
    Prim::Mkdir {
        path: path.into(),
        mode: 0o755,
    }
}

pub fn write(path: &str, data: &str) -> Prim {
    Prim::Write {
        path: path.into(),
        data: data.as_bytes().to_vec(),
        mode: 0o644,
    }
}

pub fn rm(path: &str) -> Prim {
    Prim::RemoveTree { path: path.into() }
}

pub fn unlink(path: &str) -> Prim {
    Prim::Unlink { path: path.into() }
}

impl Prim {
    /// Applies the edit under `root`.
    pub fn apply(&self, root: &Path) -> Outcome {
        match self {
            Prim::Write { path, data, mode } => {
                let p = at(root, path);
                let fd = rustix::fs::open(
                    &p,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(rx)?;
                write_all(&fd, data)?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(*mode)).map_err(rx)
            }
            Prim::Append { path, data } => {
                let fd = rustix::fs::open(
                    at(root, path),
                    OFlags::WRONLY | OFlags::APPEND | OFlags::NOFOLLOW,
                    Mode::empty(),
                )
                .map_err(rx)?;
                write_all(&fd, data)
            }
            Prim::Mkdir { path, mode } => {
                let p = at(root, path);
                rustix::fs::mkdir(&p, Mode::from_raw_mode(0o700)).map_err(rx)?;
                chmod(&p, *mode)
            }
            Prim::Symlink { path, target } => {
                rustix::fs::symlink(target.as_str(), at(root, path)).map_err(rx)
            }
            Prim::Fifo { path, mode } => {
                let p = at(root, path);
                rustix::fs::mknodat(
                    CWD,
                    &p,
                    rustix::fs::FileType::Fifo,
                    Mode::from_raw_mode(0o600),
                    0,
                )
                .map_err(rx)?;
                chmod(&p, *mode)
            }
            Prim::Link { from, to } => {
                rustix::fs::linkat(CWD, at(root, from), CWD, at(root, to), AtFlags::empty())
                    .map_err(rx)
            }
            Prim::Unlink { path } => {
                rustix::fs::unlinkat(CWD, at(root, path), AtFlags::empty()).map_err(rx)
            }
            Prim::RemoveTree { path } => std::fs::remove_dir_all(at(root, path)).map_err(errno),
            Prim::Rmdir { path } => {
                rustix::fs::unlinkat(CWD, at(root, path), AtFlags::REMOVEDIR).map_err(rx)
            }
            Prim::Rename { from, to } => {
                let (a, b) = (at(root, from), at(root, to));
                match rustix::fs::rename(&a, &b) {
                    Err(rustix::io::Errno::XDEV) => {
                        copy_tree(&a, &b)?;
                        std::fs::remove_dir_all(&a).map_err(errno)
                    }
                    r => r.map_err(rx),
                }
            }
            Prim::Chmod { path, mode } => chmod(&at(root, path), *mode),
            Prim::Lchown { path, uid, gid } => {
                std::os::unix::fs::lchown(at(root, path), Some(*uid), Some(*gid)).map_err(errno)
            }
            Prim::SetXattr { path, name, value } => {
                rustix::fs::lsetxattr(at(root, path), name.as_str(), value, XattrFlags::empty())
                    .map_err(rx)
            }
            Prim::RemoveXattr { path, name } => {
                rustix::fs::lremovexattr(at(root, path), name.as_str()).map_err(rx)
            }
            Prim::SetTime { path, sec, nsec } => set_time(&at(root, path), *sec, *nsec),
        }
    }

    /// Paths whose mtime this edit changes (the entry and the directories
    /// whose entries it changes), to be stamped at the end of the batch.
    pub fn touched(&self, out: &mut BTreeSet<String>) {
        let both = |out: &mut BTreeSet<String>, p: &str| {
            out.insert(p.to_string());
            out.insert(parent_of(p));
        };
        match self {
            Prim::Write { path, .. }
            | Prim::Mkdir { path, .. }
            | Prim::Symlink { path, .. }
            | Prim::Fifo { path, .. } => both(out, path),
            Prim::Append { path, .. } => {
                out.insert(path.clone());
            }
            Prim::Link { to, .. } => both(out, to),
            Prim::Unlink { path } | Prim::RemoveTree { path } | Prim::Rmdir { path } => {
                out.insert(parent_of(path));
            }
            Prim::Rename { from, to } => {
                out.insert(parent_of(from));
                both(out, to);
            }
            // Metadata edits leave the mtime alone; changing ctime only.
            Prim::Chmod { .. }
            | Prim::Lchown { .. }
            | Prim::SetXattr { .. }
            | Prim::RemoveXattr { .. }
            | Prim::SetTime { .. } => {}
        }
    }
}

fn write_all(fd: &rustix::fd::OwnedFd, mut data: &[u8]) -> Outcome {
    while !data.is_empty() {
        let n = rustix::io::write(fd, data).map_err(rx)?;
        data = &data[n..];
    }
    Ok(())
}

fn chmod(p: &Path, mode: u32) -> Outcome {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(errno)
}

/// Sets atime and mtime of `p` itself.
pub fn set_time(p: &Path, sec: i64, nsec: u32) -> Outcome {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec.into(),
    };
    rustix::fs::utimensat(
        CWD,
        p,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(rx)
}

/// `mv`'s copy across filesystems: types, content, modes, owners, the
/// xattrs the edits set, and times (directories after their entries).
fn copy_tree(from: &Path, to: &Path) -> Outcome {
    let m = std::fs::symlink_metadata(from).map_err(errno)?;
    let ft = m.file_type();
    if ft.is_dir() {
        rustix::fs::mkdir(to, Mode::from_raw_mode(0o700)).map_err(rx)?;
        let mut names: Vec<_> = std::fs::read_dir(from)
            .map_err(errno)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(errno)?;
        names.sort();
        for n in names {
            copy_tree(&from.join(&n), &to.join(&n))?;
        }
    } else if ft.is_symlink() {
        let t = std::fs::read_link(from).map_err(errno)?;
        std::os::unix::fs::symlink(t, to).map_err(errno)?;
    } else if ft.is_file() {
        std::fs::copy(from, to).map_err(errno)?;
    } else {
        rustix::fs::mknodat(
            CWD,
            to,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .map_err(rx)?;
    }
    std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid())).map_err(errno)?;
    if !ft.is_symlink() {
        chmod(to, m.mode() & 0o7777)?;
        for name in super::snapshot::xattr_names(from) {
            if let Ok(v) = super::snapshot::get_xattr(from, &name) {
                rustix::fs::lsetxattr(to, name.as_str(), &v, XattrFlags::empty()).map_err(rx)?;
            }
        }
    }
    set_time(to, m.mtime(), m.mtime_nsec() as u32)
}
