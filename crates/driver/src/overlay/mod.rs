//! The overlay driver: layers are directories stacked by the kernel overlay
//! filesystem, or by a FUSE program (`fuse-overlayfs`) when configured or
//! when the kernel overlay is not usable.
//!
//! The home has the same layout as containers/storage's overlay driver (see
//! [`layout`]), so either can read the other's layers. The run root keeps
//! the feature probe results (see [`probe`]).
//!
//! Mounting a layer stacks its `diff` (upper, with `work`) on the `diff`s
//! its `lower` file names through the `l/` short links; a base layer uses
//! its `empty` directory as the lower. See [`mounting`] for deep stacks.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::fsmagic::{fs_magic, FsMagic};
use crate::options::DriverOption;
use crate::{
    naive, ApplyDiffOptions, ApplyReport, Change, CreateRequest, DiffRequest, DiskUsage, Driver,
    Error, IdMappings, InitOptions, LayerRef, MountOptions, Result,
};

pub mod als;
mod diff;
mod differ;
mod get;
mod idmap;
pub mod layout;
pub mod mounting;
pub mod options;
pub mod probe;
pub mod quota;

use layout::{check_id, Layout};
pub use options::OverlayOptions;

/// Where fuse-overlayfs is looked for when the kernel overlay is unusable.
const DEFAULT_MOUNT_PROGRAM: &str = "/usr/bin/fuse-overlayfs";

/// Name of a backing filesystem in `Backing Filesystem`: the seed's
/// `FsNames` entry, else `fuseblk` for FUSE, else the hex magic.
fn fs_name(magic: FsMagic) -> String {
    match magic.name() {
        Some(n) => n.into(),
        None if magic == FsMagic::FUSE => "fuseblk".into(),
        None => format!("<unknown 0x{:x}>", magic.0),
    }
}

/// Whether this process runs in a user namespace other than the initial one.
fn in_user_namespace() -> bool {
    match fs::read_to_string("/proc/self/uid_map") {
        Ok(s) => {
            let f: Vec<&str> = s.split_whitespace().collect();
            f != ["0", "0", "4294967295"]
        }
        Err(_) => false,
    }
}

/// The overlay driver.
pub struct Overlay {
    layout: Layout,
    run_root: PathBuf,
    opts: OverlayOptions,
    /// Probed at start, but for `idmapped_lower`: see [`Overlay::idmapped_lower`].
    features: probe::Features,
    /// The idmapped-lower probe's answer, once asked.
    idmapped_lower: OnceLock<bool>,
    rootless: bool,
    mount_program: Option<PathBuf>,
    backing: FsMagic,
    home_mounted: Mutex<bool>,
    /// Additional layer stores.
    layer_stores: als::Stores,
    /// Project quotas, or why they are unavailable.
    quota: std::result::Result<quota::ProjectQuota, String>,
    counts: Mutex<HashMap<String, u32>>,
    id_mappings: IdMappings,
}

/// Initialises the driver in `opts.home`.
pub fn init(opts: &InitOptions) -> Result<Box<dyn Driver>> {
    Ok(Box::new(Overlay::new(opts)?))
}

impl Overlay {
    /// Initialises the driver (see [`init`]).
    pub fn new(init: &InitOptions) -> Result<Self> {
        let opts = OverlayOptions::parse(&init.driver_options)?;
        let home = init.home.clone();
        for (d, mode) in [(&home, 0o700), (&init.run_root, 0o700)] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(d)
                .map_err(|e| Error::path("mkdir", d, e))?;
        }
        let links = home.join("l");
        if !links.exists() {
            layout::mkdir_mode(&links, 0o755)?;
        }
        let backing = fs_magic(&home)?;
        let rootless = in_user_namespace();
        let mut base_opts = Vec::new();
        if rootless {
            base_opts.push("userxattr".to_string());
        }
        let mut mount_program = opts.mount_program.clone();
        if mount_program.is_none()
            && [FsMagic::OVERLAY, FsMagic::AUFS, FsMagic::ECRYPTFS].contains(&backing)
        {
            return Err(Error::IncompatibleFs(format!(
                "overlay cannot stack on {} at {} without a mount program",
                fs_name(backing),
                home.display()
            )));
        }
        let mut features = probe::Features::default();
        if mount_program.is_none() {
            match probe::overlay_supported(&home, &init.run_root, &base_opts) {
                Ok(()) => {
                    let mut mo = base_opts.clone();
                    mo.extend(opts.mount_options.iter().cloned());
                    let prefix = if rootless {
                        "user.overlay."
                    } else {
                        "trusted.overlay."
                    };
                    let (metacopy, native) = probe::features(&home, &init.run_root, &mo, prefix)?;
                    features.metacopy = metacopy;
                    features.native_diff = native;
                }
                Err(e) if Path::new(DEFAULT_MOUNT_PROGRAM).exists() => {
                    tracing::info!(error = %e, "kernel overlay unusable, using fuse-overlayfs");
                    mount_program = Some(DEFAULT_MOUNT_PROGRAM.into());
                }
                Err(e) => return Err(e),
            }
        }
        // The real owner and mode that force_mask keeps in an xattr are
        // shown only by a mount program; kernel overlay would show the
        // mask (the reference refuses it alike).
        if opts.force_mask.is_some() && mount_program.is_none() {
            return Err(Error::InvalidOption {
                key: "force_mask".into(),
                reason: "'force_mask' is supported only with 'mount_program'".into(),
            });
        }
        if let Some(p) = &mount_program {
            if !p.exists() {
                return Err(Error::Prerequisites(format!(
                    "mount program {} not found",
                    p.display()
                )));
            }
        }
        let hm = home.join(".has-mount-program");
        // Mode 0600, as the reference creates it.
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let flag: &[u8] = if mount_program.is_some() {
                b"true"
            } else {
                b"false"
            };
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&hm)
                .and_then(|mut f| f.write_all(flag))
                .map_err(|e| Error::path("write", &hm, e))?;
        }
        let quota = match quota::ProjectQuota::new(&home, &fs_name(backing)) {
            Ok(q) => Ok(q),
            Err(e) if opts.size.is_some() || opts.inodes.is_some() => return Err(e),
            Err(e) => Err(e.to_string()),
        };
        let home_mounted = if opts.skip_mount_home {
            false
        } else {
            strata_sys::mount::make_private(&home).map_err(|e| Error::Mount {
                op: "make private",
                path: home.clone(),
                source: e,
            })?
        };
        let layer_stores = als::Stores {
            dirs: opts.layer_stores.clone(),
            layout: Layout { home: home.clone() },
        };
        Ok(Self {
            layout: Layout { home },
            run_root: init.run_root.clone(),
            opts,
            features,
            idmapped_lower: OnceLock::new(),
            rootless,
            mount_program,
            backing,
            home_mounted: Mutex::new(home_mounted),
            quota,
            layer_stores,
            counts: Mutex::new(HashMap::new()),
            id_mappings: init.id_mappings.clone(),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &OverlayOptions {
        &self.opts
    }

    /// The probed features.
    pub fn features(&self) -> probe::Features {
        probe::Features {
            idmapped_lower: self.idmapped_lower(),
            ..self.features
        }
    }

    /// Whether lower layers can be idmapped mounts. Probed the first time
    /// it is asked, not at start: the probe starts a process (for its user
    /// namespace) and mounts twice, and only mounts with ID maps need the
    /// answer. Only the kernel overlay, not rootless, has them.
    pub(super) fn idmapped_lower(&self) -> bool {
        !self.rootless
            && self.mount_program.is_none()
            && *self
                .idmapped_lower
                .get_or_init(|| probe::idmapped_lower(&self.layout.home, &self.run_root))
    }

    /// The FUSE program in use, if any.
    pub fn mount_program(&self) -> Option<&Path> {
        self.mount_program.as_deref()
    }

    /// The `diff` mode a child of `parent` takes.
    fn inherited_from(&self, parent: &str) -> Result<u32> {
        let (pdir, _) = self
            .find_layer(parent)?
            .ok_or_else(|| Error::LayerUnknown(parent.to_string()))?;
        inherited_mode(&pdir)
    }

    /// The layer directory of `id`: in the home, else in an additional
    /// image store (then read-only). `None` when unknown.
    fn find_layer(&self, id: &str) -> Result<Option<(PathBuf, bool)>> {
        check_id(id)?;
        let own = self.layout.dir(id);
        if exists(&own)? {
            return Ok(Some((own, false)));
        }
        for s in &self.opts.image_stores {
            let p = s.join("overlay").join(id);
            if exists(&p)? {
                return Ok(Some((p, true)));
            }
        }
        Ok(None)
    }

    fn layer_diff(&self, id: &str) -> Result<PathBuf> {
        match self.find_layer(id)? {
            Some((d, _)) => Ok(d.join("diff")),
            None => Err(Error::LayerUnknown(id.to_string())),
        }
    }

    /// An `l/LINK` entry as an absolute path: in the home, else in the
    /// first additional image store that has it.
    fn resolve_lower(&self, entry: &str) -> Result<PathBuf> {
        let own = self.layout.home.join(entry);
        if own.symlink_metadata().is_ok() {
            return Ok(own);
        }
        for s in &self.opts.image_stores {
            let p = s.join("overlay").join(entry);
            if p.symlink_metadata().is_ok() {
                // A store's `l/` links are relative to its own home; use the
                // target so the path does not depend on the symlink.
                return fs::canonicalize(&p).map_err(|e| Error::path("resolve", p, e));
            }
        }
        Err(Error::path(
            "resolve lower",
            own,
            io::Error::from(io::ErrorKind::NotFound),
        ))
    }

    /// The parent of `id` as recorded by its `lower` file.
    fn parent_of(&self, id: &str) -> Result<Option<String>> {
        let Some((dir, _)) = self.find_layer(id)? else {
            return Err(Error::LayerUnknown(id.to_string()));
        };
        let lower = match fs::read_to_string(dir.join("lower")) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::path("read", dir.join("lower"), e)),
        };
        let Some(first) = lower.trim().split(':').next().filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let link = self.resolve_lower(first)?;
        let target = fs::read_link(&link).unwrap_or(link);
        // `../<parent>/diff`, or an absolute `<home>/<parent>/diff`.
        Ok(target
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned()))
    }

    /// Lower directories of the layer at `dir`, nearest first: its rotated
    /// `diff1`, `diff2`, … (left by ID-map updates, the reference's and
    /// strata's), then each layer its `lower` file names followed by that
    /// layer's own rotated directories (as the reference stacks them).
    fn lower_dirs_of(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        Ok(self
            .lower_entries_of(dir)?
            .into_iter()
            .map(|(p, _)| p)
            .collect())
    }

    /// [`Overlay::lower_dirs_of`], each with the layer it belongs to
    /// (`None` for the layer's own rotated directories).
    fn lower_entries_of(&self, dir: &Path) -> Result<Vec<(PathBuf, Option<String>)>> {
        let mut v: Vec<(PathBuf, Option<String>)> =
            rotated_diffs(dir).into_iter().map(|p| (p, None)).collect();
        let p = dir.join("lower");
        match fs::read_to_string(&p) {
            Ok(s) => {
                for l in s.trim().split(':').filter(|s| !s.is_empty()) {
                    let path = self.resolve_lower(l)?;
                    // `l/LINK` → `../<id>/diff`: the layer's directory.
                    let target = fs::read_link(&path).unwrap_or_else(|_| path.clone());
                    let layer_dir = if target.is_relative() {
                        path.parent().unwrap_or(Path::new("/")).join(&target)
                    } else {
                        target
                    };
                    let layer_dir = layer_dir.parent().map(Path::to_path_buf);
                    let id = layer_dir
                        .as_deref()
                        .and_then(Path::file_name)
                        .map(|n| n.to_string_lossy().into_owned());
                    v.push((path, id.clone()));
                    if let Some(ld) = layer_dir {
                        v.extend(rotated_diffs(&ld).into_iter().map(|d| (d, id.clone())));
                    }
                }
                Ok(v)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(v),
            Err(e) => Err(Error::path("read", p, e)),
        }
    }
}

/// `diff1`, `diff2`, … of a layer directory, as long as they exist.
fn rotated_diffs(dir: &Path) -> Vec<PathBuf> {
    (1..)
        .map(|i| dir.join(format!("diff{i}")))
        .take_while(|p| p.is_dir())
        .collect()
}

/// The mode of `layer_dir/diff`: what a child's `diff` starts with, as in
/// the reference.
fn inherited_mode(layer_dir: &Path) -> Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    let d = layer_dir.join("diff");
    let md = fs::metadata(&d).map_err(|e| Error::path("stat", &d, e))?;
    Ok(md.permissions().mode() & 0o7777)
}

fn exists(p: &Path) -> Result<bool> {
    match p.symlink_metadata() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::path("stat", p, e)),
    }
}

use std::os::unix::fs::DirBuilderExt;

impl Driver for Overlay {
    fn name(&self) -> &str {
        "overlay"
    }

    fn create(&self, req: &CreateRequest) -> Result<()> {
        check_id(&req.id)?;
        let mut limits = strata_sys::quota::ProjectLimits {
            bytes: self.opts.size.unwrap_or(0),
            inodes: self.opts.inodes.unwrap_or(0),
        };
        for (k, v) in &req.storage_opt {
            let opt = DriverOption::from_pair(k, v);
            match opt.key.as_str() {
                "size" => limits.bytes = opt.size()?,
                "inodes" => limits.inodes = opt.count()?,
                _ => return Err(opt.unknown("overlay")),
            }
        }
        let quota = if limits == strata_sys::quota::ProjectLimits::default() {
            None
        } else {
            Some(
                self.quota
                    .as_ref()
                    .map_err(|e| Error::Unsupported(e.clone()))?,
            )
        };
        let maps = if req.id_mappings.is_identity() {
            &self.id_mappings
        } else {
            &req.id_mappings
        };
        let root = maps.root_pair()?;
        // A child's diff takes its parent's mode, and the owner of its own
        // maps' root, as the reference makes it: a root chowned in the
        // parent shows as the child's root again in the child (the
        // reference's merged root does not inherit the owner). A child
        // with other maps than its parent's keeps the parent's root owner,
        // as the reference's vfs (which re-owns all but the root) and its
        // overlay (which drops such a child's maps) show it.
        let shifted = req.shift().is_some();
        let (mode, owner, parent) = match &req.parent {
            Some(p) => {
                let (pdir, in_store) = self
                    .find_layer(p)?
                    .ok_or_else(|| Error::LayerUnknown(p.clone()))?;
                if !in_store {
                    self.layout.repair(p)?;
                }
                let owner = if shifted {
                    use std::os::unix::fs::MetadataExt;
                    let d = pdir.join("diff");
                    let md = fs::metadata(&d).map_err(|e| Error::path("stat", &d, e))?;
                    (md.uid(), md.gid())
                } else {
                    (root.uid, root.gid)
                };
                (
                    inherited_mode(&pdir)?,
                    owner,
                    Some(layout::ParentLinks::read(&pdir)?),
                )
            }
            None => (0o555, (root.uid, root.gid), None),
        };
        // Image and container layers share one layout (`req.access` only
        // matters to callers that mount them).
        self.layout.create(&req.id, parent.as_ref(), owner, mode)?;
        if let Some(p) = &req.parent {
            let pdir = self.find_layer(p)?.map(|(d, _)| d).unwrap_or_default();
            if let Err(e) = self.shift_new_layer(req, &pdir) {
                let _ = self.remove(&req.id);
                return Err(e);
            }
        }
        if let Some(q) = quota {
            if let Err(e) = q.apply(&self.layout.dir(&req.id), limits) {
                let _ = self.remove(&req.id);
                return Err(e);
            }
        }
        Ok(())
    }

    fn remove(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let dir = self.layout.dir(id);
        if !exists(&dir)? {
            return Ok(());
        }
        self.unmount_layer(id)?;
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(link) = self.layout.read_link(id)? {
            if layout::is_link_id(&link) {
                let l = self.layout.links().join(&link);
                match fs::remove_file(&l) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::path("remove", l, e)),
                }
            }
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::path("remove", dir, e)),
        }
    }

    fn get(&self, id: &str, opts: &MountOptions) -> Result<PathBuf> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let merged = self.merged_of(id)?;
        if let Some(c) = counts.get_mut(id) {
            if mounting::is_mounted(&merged) {
                *c += 1;
                return Ok(merged);
            }
        }
        let p = self.mount_layer(id, opts)?;
        counts.insert(id.to_string(), 1);
        Ok(p)
    }

    fn put(&self, id: &str) -> Result<()> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = counts.get_mut(id) {
            if *c > 1 {
                *c -= 1;
                return Ok(());
            }
        }
        counts.remove(id);
        if self.find_layer(id)?.is_none() {
            return Err(Error::LayerUnknown(id.to_string()));
        }
        self.unmount_layer(id)
    }

    fn exists(&self, id: &str) -> Result<bool> {
        Ok(self.find_layer(id)?.is_some())
    }

    fn status(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("Backing Filesystem".to_string(), fs_name(self.backing)),
            ("Supports d_type".to_string(), "true".to_string()),
            (
                "Native Overlay Diff".to_string(),
                (self.features.native_diff && self.mount_program.is_none()).to_string(),
            ),
            (
                "Using metacopy".to_string(),
                self.features.metacopy.to_string(),
            ),
        ];
        if let Some(p) = &self.mount_program {
            v.push(("Mount Program".to_string(), p.display().to_string()));
        }
        v
    }

    fn metadata(&self, id: &str) -> Result<BTreeMap<String, String>> {
        let (dir, _) = self
            .find_layer(id)?
            .ok_or_else(|| Error::LayerUnknown(id.to_string()))?;
        let mut m = BTreeMap::new();
        m.insert("WorkDir".into(), dir.join("work").display().to_string());
        m.insert("MergedDir".into(), dir.join("merged").display().to_string());
        m.insert("UpperDir".into(), dir.join("diff").display().to_string());
        let lowers = self.lower_dirs_of(&dir)?;
        if !lowers.is_empty() {
            let resolved: Vec<String> = lowers
                .iter()
                .map(|l| match fs::read_link(l) {
                    Ok(t) if t.is_relative() => {
                        let base = l.parent().and_then(Path::parent).unwrap_or(Path::new("/"));
                        let t = t.strip_prefix("..").unwrap_or(&t);
                        base.join(t).display().to_string()
                    }
                    Ok(t) => t.display().to_string(),
                    Err(_) => l.display().to_string(),
                })
                .collect();
            m.insert("LowerDir".into(), resolved.join(":"));
        }
        Ok(m)
    }

    fn read_write_disk_usage(&self, id: &str) -> Result<DiskUsage> {
        Ok(crate::usage::tree_usage(&self.layer_diff(id)?)?.into())
    }

    fn cleanup(&self) -> Result<()> {
        let ids: Vec<String> = self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(k, _)| k)
            .collect();
        let mut first_err = None;
        for id in ids {
            if let Err(e) = self.unmount_layer(&id) {
                tracing::warn!(layer = id, error = %e, "unmount at cleanup failed");
                first_err.get_or_insert(e);
            }
        }
        // The private bind mount of the home may have been made by an
        // earlier process (as the reference leaves it); remove it too, but
        // never a filesystem mounted on the home in its own right.
        let mut hm = self.home_mounted.lock().unwrap_or_else(|e| e.into_inner());
        if *hm || strata_sys::mount::is_self_bind(&self.layout.home).unwrap_or(false) {
            mounting::unmount_kernel(&self.layout.home)?;
            *hm = false;
        }
        first_err.map_or(Ok(()), Err)
    }

    fn differ(&self) -> Option<&dyn crate::DifferSupport> {
        Some(self)
    }

    fn concurrent_apply(&self) -> Option<&dyn crate::ConcurrentApply> {
        Some(self)
    }

    fn additional_layer_store(&self) -> Option<&dyn crate::AdditionalLayerStore> {
        (!self.layer_stores.dirs.is_empty()).then_some(&self.layer_stores as _)
    }

    fn additional_image_stores(&self) -> Vec<PathBuf> {
        self.opts.image_stores.clone()
    }

    fn supports_shifting(&self) -> bool {
        self.idmapped_lower()
    }

    fn diff_getter(&self, id: &str) -> Result<crate::FileSource> {
        let (dir, _) = self
            .find_layer(id)?
            .ok_or_else(|| Error::LayerUnknown(id.to_string()))?;
        if !rotated_diffs(&dir).is_empty() {
            return naive::diff_getter(self, id);
        }
        // The layer's own files are all in its upper directory.
        Ok(Box::new(naive::DirFileSource::open(&dir.join("diff"))?))
    }

    fn diff(&self, req: &DiffRequest) -> Result<Box<dyn Read + Send>> {
        if self.use_native_diff(req)? {
            return self.native_diff(req);
        }
        naive::diff(self, req)
    }

    fn changes(&self, req: &DiffRequest) -> Result<Vec<Change>> {
        if self.use_native_diff(req)? {
            return self.native_changes(&req.id);
        }
        naive::changes(self, req)
    }

    fn diff_size(&self, req: &DiffRequest) -> Result<u64> {
        if self.use_native_diff(req)? {
            return self.native_diff_size(&req.id);
        }
        naive::diff_size(self, req)
    }

    fn create_from_template(
        &self,
        req: &CreateRequest,
        template: &str,
        template_mappings: &IdMappings,
    ) -> Result<()> {
        // A child of the template (as the reference's overlay makes it),
        // shown under the new maps; diffs against the recorded parent then
        // take the generic path, since the first lower is not the parent.
        self.create(&req.child_of_template(template, template_mappings))
    }

    fn update_layer_id_map(
        &self,
        id: &str,
        to_container: &IdMappings,
        to_host: &IdMappings,
        _mount_label: Option<&str>,
    ) -> Result<()> {
        self.update_id_map(id, to_container, to_host)
    }

    fn apply_diff(
        &self,
        target: LayerRef<'_>,
        opts: &ApplyDiffOptions,
        diff: &mut (dyn Read + Send),
        tar_split: Option<Box<dyn std::io::Write + Send>>,
    ) -> Result<ApplyReport> {
        if self.parent_of(target.id)?.as_deref() != target.parent {
            return naive::apply_diff(self, target, opts, diff, tar_split);
        }
        self.apply_overlay_form(target, opts, diff, tar_split)
    }
}
