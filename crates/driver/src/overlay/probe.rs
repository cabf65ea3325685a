//! Feature probes, run once per run root and cached there as empty files
//! named like the reference's: `overlay-true|false`,
//! `native-diff(<mountopt>)-true|false`, `metacopy(<mountopt>)-true|false`,
//! `idmapped-lower-dir-true|false`.

use std::fs;
use std::path::{Path, PathBuf};

use rustix::mount::UnmountFlags;
use strata_sys::mount::{mount_overlay_classic, unmount, OverlayMount};

use crate::{Error, Result};

/// What the kernel overlay supports on this backing filesystem.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// Diffs may be read straight from the upper directory.
    pub native_diff: bool,
    /// Mounts use metacopy (metadata-only copy-up).
    pub metacopy: bool,
    /// Lower layers can be idmapped mounts.
    pub idmapped_lower: bool,
}

/// A scratch directory with lower/upper/work/merged for a probe mount;
/// unmounts and removes itself on drop.
struct Scratch {
    root: PathBuf,
    mounted: Vec<PathBuf>,
}

impl Scratch {
    fn new(home: &Path) -> Result<Self> {
        let root = home.join(format!(".probe-{}", super::layout::new_link_id()));
        for d in ["", "lower1", "lower2", "upper", "work", "merged"] {
            let p = root.join(d);
            fs::create_dir(&p).map_err(|e| Error::path("mkdir", &p, e))?;
        }
        Ok(Self {
            root,
            mounted: Vec::new(),
        })
    }
    fn p(&self, n: &str) -> PathBuf {
        self.root.join(n)
    }
    /// Mounts the scratch overlay, `volatile` where the kernel has it: an
    /// overlay's unmount otherwise syncs the whole backing filesystem, which
    /// can take a second on a busy disk and buys nothing for a throwaway
    /// probe. Kernels without `volatile` (before 5.10) get a plain mount.
    fn mount(&mut self, extra: &[String]) -> std::io::Result<()> {
        let mut m = OverlayMount {
            lowers: vec![self.p("lower2"), self.p("lower1")],
            upper: Some(self.p("upper")),
            work: Some(self.p("work")),
            options: extra.to_vec(),
        };
        m.options.push("volatile".into());
        if mount_overlay_classic(&m, &self.p("merged")).is_err() {
            m.options.pop();
            mount_overlay_classic(&m, &self.p("merged"))?;
        }
        self.mounted.push(self.p("merged"));
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for m in self.mounted.drain(..).rev() {
            if let Err(e) = unmount(&m, UnmountFlags::DETACH) {
                tracing::warn!(path = %m.display(), error = %e, "probe unmount failed");
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.root) {
            tracing::warn!(path = %self.root.display(), error = %e, "probe cleanup failed");
        }
    }
}

fn cached(run: &Path, name: &str) -> Option<bool> {
    if run.join(format!("{name}-true")).exists() {
        Some(true)
    } else if run.join(format!("{name}-false")).exists() {
        Some(false)
    } else {
        None
    }
}

fn record(run: &Path, name: &str, value: bool, why: &str) {
    let p = run.join(format!("{name}-{value}"));
    if let Err(e) = fs::write(&p, why) {
        tracing::warn!(path = %p.display(), error = %e, "cannot record probe result");
    }
}

/// Whether the kernel overlay mounts on `home`; `Err` carries the reason
/// when it does not. Cached as `overlay-true|false`.
pub fn overlay_supported(home: &Path, run: &Path, base_opts: &[String]) -> Result<()> {
    match cached(run, "overlay") {
        Some(true) => return Ok(()),
        Some(false) => {
            let why = fs::read_to_string(run.join("overlay-false")).unwrap_or_default();
            return Err(Error::NotSupported(format!(
                "kernel overlay not usable (cached): {why}"
            )));
        }
        None => {}
    }
    let mut s = Scratch::new(home)?;
    match s.mount(base_opts) {
        Ok(()) => {
            record(run, "overlay", true, "");
            Ok(())
        }
        Err(e) => {
            record(run, "overlay", false, &e.to_string());
            Err(Error::NotSupported(format!(
                "kernel overlay not usable: {e}"
            )))
        }
    }
}

fn has_xattr(p: &Path, names: &[&str]) -> bool {
    let mut buf = [0u8; 256];
    names
        .iter()
        .any(|n| rustix::fs::lgetxattr(p, *n, &mut buf).is_ok())
}

/// Probes metacopy and native diff (a directory rename must not leave a
/// redirect, and copy-up must copy data), with `opts` as mount options.
pub fn features(home: &Path, run: &Path, opts: &[String], prefix: &str) -> Result<(bool, bool)> {
    let tag = opts.join(",");
    let meta_key = format!("metacopy({tag})");
    let diff_key = format!("native-diff({tag})");
    if let (Some(m), Some(d)) = (cached(run, &meta_key), cached(run, &diff_key)) {
        return Ok((m, d));
    }
    let mut s = Scratch::new(home)?;
    let f = s.p("lower1").join("f");
    fs::write(&f, b"x").map_err(|e| Error::path("write", &f, e))?;
    let d = s.p("lower1").join("d");
    fs::create_dir(&d).map_err(|e| Error::path("mkdir", &d, e))?;
    fs::write(d.join("g"), b"y").map_err(|e| Error::path("write", &d, e))?;
    s.mount(opts)
        .map_err(|e| Error::NotSupported(format!("overlay probe mount: {e}")))?;
    let merged = s.p("merged");
    use std::os::unix::fs::PermissionsExt;
    let mf = merged.join("f");
    fs::set_permissions(&mf, fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::path("chmod", &mf, e))?;
    let metacopy = has_xattr(&s.p("upper").join("f"), &[&format!("{prefix}metacopy")]);
    let redirect = match fs::rename(merged.join("d"), merged.join("d2")) {
        Ok(()) => has_xattr(&s.p("upper").join("d2"), &[&format!("{prefix}redirect")]),
        // EXDEV: redirect_dir is off, renames of lower dirs are refused,
        // which is what native diff needs.
        Err(_) => false,
    };
    let native = !metacopy && !redirect;
    record(run, &meta_key, metacopy, "");
    record(run, &diff_key, native, "");
    Ok((metacopy, native))
}

/// Probes whether an idmapped mount can be an overlay lower.
pub fn idmapped_lower(home: &Path, run: &Path) -> bool {
    if std::env::var("_CONTAINERS_OVERLAY_DISABLE_IDMAP").as_deref() == Ok("yes") {
        return false;
    }
    if let Some(v) = cached(run, "idmapped-lower-dir") {
        return v;
    }
    let ok = (|| -> std::result::Result<(), String> {
        let mut s = Scratch::new(home).map_err(|e| e.to_string())?;
        let ns = strata_sys::mount::UserNs::new("0 1000 65536\n", "0 1000 65536\n")
            .map_err(|e| e.to_string())?;
        // Clone a directory that is not itself one of the lowers: overlay
        // refuses (ELOOP) layers that overlap, and an idmapped clone of
        // `lower1` mounted on `lower2` is the same directory twice.
        let src = s.p("idsrc");
        fs::create_dir(&src).map_err(|e| e.to_string())?;
        let clone = strata_sys::mount::idmapped_clone(&src, ns.fd()).map_err(|e| e.to_string())?;
        let stage = s.p("lower2");
        strata_sys::mount::attach(std::os::fd::AsFd::as_fd(&clone), &stage)
            .map_err(|e| e.to_string())?;
        s.mounted.push(stage);
        s.mount(&[]).map_err(|e| e.to_string())
    })();
    if let Err(e) = &ok {
        tracing::debug!(error = %e, "idmapped lower layers not supported");
    }
    record(run, "idmapped-lower-dir", ok.is_ok(), "");
    ok.is_ok()
}
