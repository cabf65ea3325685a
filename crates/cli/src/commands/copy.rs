//! `copy [LAYER:]/src … LAYER:/dest`: copies host files or another layer's
//! files into a layer, through the layers' mounts.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use store::{Force, MountRequest, Store};

/// Splits `LAYER:/path`; a plain path has no layer.
fn split(arg: &str) -> (Option<&str>, &str) {
    match arg.split_once(':') {
        Some((l, p)) if !l.is_empty() && !l.contains('/') => (Some(l), p),
        _ => (None, arg),
    }
}

/// Joins `rel` under `root` without letting `..` climb out.
fn under(root: &Path, rel: &str) -> PathBuf {
    let mut out = root.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if out != root => {
                out.pop();
            }
            _ => {}
        }
    }
    out
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

/// Runs the command.
pub fn run(s: &mut Store, chown: Option<&str>, paths: &[String]) -> Result<ExitCode> {
    let owner = chown.map(parse_chown).transpose()?;
    let (dest, sources) = paths
        .split_last()
        .context("copy: need a source and a destination")?;
    let (dlayer, dpath) = split(dest);
    let Some(dlayer) = dlayer else {
        bail!("copy: destination must be LAYER:/path");
    };
    let mut mounted: Vec<String> = Vec::new();
    let res = (|| -> Result<()> {
        let droot = s.mount(dlayer, &MountRequest::default())?;
        mounted.push(dlayer.to_string());
        let dtarget = under(&droot, dpath);
        for src in sources {
            let (slayer, spath) = split(src);
            let sfull = match slayer {
                Some(l) => {
                    let r = s.mount(l, &MountRequest::default())?;
                    mounted.push(l.to_string());
                    under(&r, spath)
                }
                None => PathBuf::from(spath),
            };
            // As the reference: the source lands exactly at the destination
            // path; a directory's contents merge into it.
            if let Some(parent) = dtarget.parent() {
                no_symlink_between(&droot, parent)?;
                std::fs::create_dir_all(parent)?;
            }
            let mut links = Links::new();
            copy_tree(&sfull, &dtarget, owner, &mut links)
                .with_context(|| format!("copying {} to {}", sfull.display(), dest))?;
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

/// Refuses a destination whose existing path inside the layer goes through
/// a symlink: the layer's own links (`etc -> /etc`) must never redirect a
/// copy onto the host. Components that do not exist yet are made by us.
fn no_symlink_between(root: &Path, dst: &Path) -> Result<()> {
    let rel = dst.strip_prefix(root).unwrap_or(Path::new(""));
    let mut p = root.to_path_buf();
    for c in rel.components() {
        p.push(c);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                bail!(
                    "refusing to copy through symlink {} in the layer",
                    p.display()
                )
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(e).with_context(|| format!("stat {}", p.display())),
        }
    }
    Ok(())
}

/// Files with several links already copied, by (device, inode).
type Links = std::collections::HashMap<(u64, u64), PathBuf>;

fn copy_tree(src: &Path, dst: &Path, owner: Option<(u32, u32)>, links: &mut Links) -> Result<()> {
    let md = std::fs::symlink_metadata(src).with_context(|| format!("stat {}", src.display()))?;
    let ft = md.file_type();
    // A symlink already at the destination is replaced, never followed (as
    // tar replaces it), so nothing below writes through the layer's links.
    if std::fs::symlink_metadata(dst).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(dst).with_context(|| format!("remove {}", dst.display()))?;
    }
    if !ft.is_dir() && dst.is_dir() {
        bail!(
            "cannot overwrite directory {} with non-directory",
            dst.display()
        );
    }
    if ft.is_file() && md.nlink() > 1 {
        if let Some(first) = links.get(&(md.dev(), md.ino())) {
            let _ = std::fs::remove_file(dst);
            std::fs::hard_link(first, dst)?;
            return Ok(());
        }
        links.insert((md.dev(), md.ino()), dst.to_path_buf());
    }
    if ft.is_symlink() {
        let t = std::fs::read_link(src)?;
        let _ = std::fs::remove_file(dst);
        std::os::unix::fs::symlink(t, dst)?;
    } else if ft.is_dir() {
        if !dst.is_dir() {
            std::fs::create_dir(dst).with_context(|| format!("mkdir {}", dst.display()))?;
        }
        for e in std::fs::read_dir(src)? {
            let e = e?;
            copy_tree(&e.path(), &dst.join(e.file_name()), owner, links)?;
        }
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
    } else if ft.is_file() {
        std::fs::copy(src, dst).with_context(|| format!("copy to {}", dst.display()))?;
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
    } else {
        bail!(
            "{}: only files, directories and symlinks can be copied",
            src.display()
        );
    }
    let (uid, gid) = owner.unwrap_or((md.uid(), md.gid()));
    std::os::unix::fs::lchown(dst, Some(uid), Some(gid))?;
    if !ft.is_symlink() && owner.is_none() {
        // chown clears set-id bits; restore the mode.
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_confine() {
        assert_eq!(split("abc:/etc/x"), (Some("abc"), "/etc/x"));
        assert_eq!(split("/etc/x"), (None, "/etc/x"));
        assert_eq!(split("./a:b"), (None, "./a:b"));
        assert_eq!(
            under(Path::new("/m"), "/../../etc"),
            PathBuf::from("/m/etc")
        );
        assert_eq!(parse_chown("1:2").unwrap(), (1, 2));
        assert_eq!(parse_chown("7").unwrap(), (7, 7));
    }
}
