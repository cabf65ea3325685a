//! `copy [LAYER:]/src … LAYER:/dest`: copies host files or another layer's
//! files into a layer, through the layers' mounts.
//!
//! Neither side can escape its layer. The source is resolved inside its
//! root and walked by descriptors only ([`source`]); the destination is
//! written by the archive crate's confined [`Applier`] (full-tree mode)
//! rooted at the destination layer's mount, fed entries named
//! `<dest>/<relative path>`, so symlinks already in the destination layer
//! resolve inside it, as in a chroot, never on the host.
//!
//! As the reference: a directory's contents merge into the destination
//! (which takes the source directory's mode and owner, except the layer
//! root, which keeps its own); a non-directory replaces what is at the
//! destination unless that is a directory; `--chown UID:GID` owns
//! everything copied; modes with set-id bits, hard links among the copied
//! files, modification times, `user.*` xattrs and file capabilities are
//! kept. Unlike the reference, a source
//! that is itself a symlink is copied as a symlink, not as its target.

mod source;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use strata_archive::entry::Item;
use strata_archive::{Applier, ApplierOptions, ApplyMode};
use strata_store::{Force, MountRequest, Store};

/// Splits `LAYER:/path`; a plain path has no layer.
fn split(arg: &str) -> (Option<&str>, &str) {
    match arg.split_once(':') {
        Some((l, p)) if !l.is_empty() && !l.contains('/') => (Some(l), p),
        _ => (None, arg),
    }
}

/// The entry name of a destination path inside its layer: no leading `/`,
/// no `.` components, `..` resolved lexically and stopped at the root.
fn entry_name(path: &str) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.as_bytes().split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            n => parts.push(n),
        }
    }
    parts.join(&b'/')
}

fn parse_chown(s: &str) -> Result<(u32, u32)> {
    let (u, g) = s.split_once(':').unwrap_or((s, s));
    Ok((
        u.parse()
            .with_context(|| format!("bad --chown uid {u:?}"))?,
        g.parse()
            .with_context(|| format!("bad --chown gid {g:?}"))?,
    ))
}

/// Opens a directory to use as a root for confined lookups.
fn open_root(p: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .with_context(|| format!("open {}", p.display()))
}

/// Runs the command.
pub fn run(s: &Store, chown: Option<&str>, paths: &[String]) -> Result<ExitCode> {
    let owner = chown.map(parse_chown).transpose()?;
    let (dest, sources) = paths
        .split_last()
        .context("copy: need a source and a destination")?;
    let (dlayer, dpath) = split(dest);
    let Some(dlayer) = dlayer else {
        bail!("copy: destination must be LAYER:/path");
    };
    let dname = entry_name(dpath);
    let mut mounted: Vec<String> = Vec::new();
    let res = (|| -> Result<()> {
        let droot = open_root(&s.mount(dlayer, &MountRequest::default())?)?;
        mounted.push(dlayer.to_string());
        for src in sources {
            let (slayer, spath) = split(src);
            let sroot = match slayer {
                Some(l) => {
                    let r = s.mount(l, &MountRequest::default())?;
                    mounted.push(l.to_string());
                    open_root(&r)?
                }
                None => open_root(Path::new("/"))?,
            };
            // Host paths are relative to the working directory; layer
            // paths to the layer root.
            let spath = match slayer {
                None if !spath.starts_with('/') => std::env::current_dir()
                    .context("working directory")?
                    .join(spath)
                    .into_os_string(),
                _ => spath.into(),
            };
            copy_one(
                sroot.as_fd(),
                spath.as_bytes(),
                droot.as_fd(),
                &dname,
                owner,
            )
            .with_context(|| format!("copying {src} to {dest}"))?;
        }
        Ok(())
    })();
    for l in mounted.iter().rev() {
        if let Err(e) = s.unmount(l, Force::No) {
            tracing::warn!("unmounting {l}: {e}");
        }
    }
    res.map(|_| ExitCode::SUCCESS)
}

/// Copies the object at `spath` inside `sroot` to the entry `dname` of the
/// layer rooted at `droot`.
fn copy_one(
    sroot: BorrowedFd<'_>,
    spath: &[u8],
    droot: BorrowedFd<'_>,
    dname: &[u8],
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let node = source::lookup(sroot, spath)?;
    let top = check_destination(droot, dname, node.is_dir())?;
    let mut applier = Applier::new(
        droot,
        ApplierOptions {
            mode: ApplyMode::FullTree,
            ..Default::default()
        },
    )?;
    let mut emit = |item: Item| -> Result<()> { Ok(applier.push(item)?) };
    let mut walk = source::Walk {
        emit: &mut emit,
        owner,
        dest: dname.to_vec(),
        top,
        links: HashMap::new(),
        dest_root: droot,
        dest_ident: None,
    };
    walk.run(&node)?;
    applier.finish()?;
    Ok(())
}

/// Refuses what the reference refuses: a non-directory over a directory,
/// a directory over a non-directory (a symlink there is replaced, never
/// followed); says whether a directory source merges into an existing
/// directory. The lookup is confined to the layer; the check only shapes
/// errors and metadata, confinement does not depend on it.
fn check_destination(
    droot: BorrowedFd<'_>,
    dname: &[u8],
    src_is_dir: bool,
) -> Result<source::TopDir> {
    let shown = format!("/{}", String::from_utf8_lossy(dname));
    let existing = if dname.is_empty() {
        Some(FileType::Directory)
    } else {
        let (parent, name) = source::split_last(dname);
        // Missing parents are created by the applier, which reports any
        // other problem with the path.
        source::open_dir_in(droot, parent).ok().and_then(|dir| {
            rustix::fs::statat(&dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW)
                .ok()
                .map(|st| FileType::from_raw_mode(st.st_mode))
        })
    };
    match existing {
        Some(FileType::Directory) if !src_is_dir => {
            bail!("cannot overwrite directory {shown:?} with non-directory")
        }
        Some(FileType::Directory) => Ok(source::TopDir::Merge),
        None | Some(FileType::Symlink) => Ok(source::TopDir::Make),
        Some(_) if src_is_dir => bail!("cannot copy a directory onto {shown:?}: not a directory"),
        Some(_) => Ok(source::TopDir::Make),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_names() {
        assert_eq!(split("abc:/etc/x"), (Some("abc"), "/etc/x"));
        assert_eq!(split("/etc/x"), (None, "/etc/x"));
        assert_eq!(split("./a:b"), (None, "./a:b"));
        for (path, want) in [
            ("/../../etc", "etc"),
            ("/", ""),
            ("", ""),
            ("/a/./b/", "a/b"),
            ("a/../../b/c", "b/c"),
            ("//x//y", "x/y"),
        ] {
            assert_eq!(entry_name(path), want.as_bytes(), "{path}");
        }
        assert_eq!(source::split_last(b"a/b/c/"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(source::split_last(b"c"), (&b""[..], &b"c"[..]));
        assert_eq!(parse_chown("1:2").unwrap(), (1, 2));
        assert_eq!(parse_chown("7").unwrap(), (7, 7));
    }
}
