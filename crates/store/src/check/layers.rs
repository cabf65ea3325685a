//! The layer half of a check: records, data, tar-split, overlay links,
//! unnamed data and mount counts.

use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use sha2::Digest;
use strata_driver::overlay::layout::{is_link_id, Layout};

use super::items::Items;
use super::{salvage, CheckMode, Problem, Report};
use crate::layers::{Layer, MountRecord, FLAG_INCOMPLETE};
use crate::lockfile::LockMode;
use crate::{Result, Store};

/// The layer files as they were read for a check.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) layers: Vec<Layer>,
    pub(crate) layers_damage: Option<String>,
    pub(crate) volatile_damage: Option<String>,
    pub(crate) mounts: Vec<MountRecord>,
    pub(crate) mounts_damage: Option<String>,
}

pub(crate) fn read_salvaged<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<(Vec<T>, Option<String>)> {
    match std::fs::read(path) {
        Ok(b) => {
            let s = salvage::<T>(&b);
            Ok((s.records, s.damage))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Vec::new(), None)),
        Err(e) => Err(crate::Error::io("read", path, e)),
    }
}

/// The regular files (archive name, size) a tar-split record names.
fn record_files(path: &Path) -> std::result::Result<Vec<(Vec<u8>, u64)>, String> {
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let r = BufReader::new(flate2::read::GzDecoder::new(f));
    strata_archive::tarsplit::files(r).map_err(|e| e.to_string())
}

/// Counts and hashes what a replay writes.
struct Hasher {
    sha: sha2::Sha256,
    len: u64,
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sha.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Size of a regular file named inside `root`, resolved as in a chroot;
/// None when it is missing or not a regular file.
fn confined_size(root: &Path, name: &[u8]) -> Option<u64> {
    use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
    let dir = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).ok()?;
    let mut rel: &[u8] = name;
    while let Some(r) = rel.strip_prefix(b"./").or_else(|| rel.strip_prefix(b"/")) {
        rel = r;
    }
    let rel: &std::ffi::OsStr = std::os::unix::ffi::OsStrExt::from_bytes(rel);
    let fd = rustix::fs::openat2(
        &dir,
        rel,
        OFlags::PATH | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    (FileType::from_raw_mode(st.st_mode) == FileType::RegularFile).then_some(st.st_size as u64)
}

impl Store {
    /// Checks the layer store (see the module docs); takes the layer locks
    /// shared. A store whose records do not parse is reported, not refused.
    pub fn check(&self, mode: CheckMode) -> Result<Report> {
        let ls = &self.layer_store;
        let _l = ls.records().lock_file().lock(LockMode::Shared)?;
        let _m = match ls.mount_records() {
            Some(m) => Some(m.lock_file().lock(LockMode::Shared)?),
            None => None,
        };
        Ok(self.check_locked(mode)?.0)
    }

    pub(crate) fn check_locked(&self, mode: CheckMode) -> Result<(Report, Loaded)> {
        let (mut layers, layers_damage) = read_salvaged::<Layer>(&self.layers_json())?;
        // Later releases keep some records in volatile-layers.json.
        let (volatile, volatile_damage) = read_salvaged::<Layer>(&self.volatile_json())?;
        layers.extend(volatile);
        let (mounts, mounts_damage) = match self.mounts_json() {
            Some(p) => read_salvaged::<MountRecord>(&p)?,
            None => (Vec::new(), None),
        };
        let loaded = Loaded {
            layers,
            layers_damage,
            volatile_damage,
            mounts,
            mounts_damage,
        };
        let mut report = Report::default();
        if let Some(d) = &loaded.layers_damage {
            let p = self.layers_json().display().to_string();
            report.push(p, Problem::RecordsDamaged(d.clone()));
        }
        if let Some(d) = &loaded.volatile_damage {
            let p = self.volatile_json().display().to_string();
            report.push(p, Problem::RecordsDamaged(d.clone()));
        }
        if let (Some(d), Some(p)) = (&loaded.mounts_damage, self.mounts_json()) {
            report.push(p.display().to_string(), Problem::MountsDamaged(d.clone()));
        }
        let items = self.load_items()?;
        for l in &loaded.layers {
            match self.completable(l, &items) {
                Some((container, done)) => {
                    report.push(&l.id, Problem::ContainerLayerIncomplete(container));
                    self.check_layer(&done, &loaded.layers, mode, &mut report);
                }
                None => self.check_layer(l, &loaded.layers, mode, &mut report),
            }
        }
        mark_dependents(&loaded.layers, &mut report);
        let ids: BTreeSet<&str> = loaded.layers.iter().map(|l| l.id.as_str()).collect();
        self.check_unnamed(&ids, &mut report);
        self.check_mounts(&loaded.mounts, &ids, &mut report);
        let layer_ids: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
        self.check_items(&items, &layer_ids, mode, &mut report);
        Ok((report, loaded))
    }

    /// A container's layer left flagged incomplete (strata's create-container
    /// cut after the container's record was written, or the reference's
    /// delete-container cut after it flagged the layer) whose data the
    /// driver has: opening the store completes such a layer, and so does
    /// repair (the container stays; its contents are what the disk kept).
    /// Returns the container and the layer as it is once completed.
    fn completable(&self, l: &Layer, items: &Items) -> Option<(String, Layer)> {
        if !l.is_incomplete() || !self.driver.exists(&l.id).unwrap_or(false) {
            return None;
        }
        let c = items.containers.iter().find(|c| c.layer == l.id)?;
        let mut done = l.clone();
        done.flags.remove(FLAG_INCOMPLETE);
        Some((c.id.clone(), done))
    }

    fn check_layer(&self, l: &Layer, all: &[Layer], mode: CheckMode, report: &mut Report) {
        let id = l.id.as_str();
        if l.is_incomplete() {
            report.push(id, Problem::Incomplete);
            return;
        }
        if let Some(p) = l.parent() {
            if !all.iter().any(|o| o.id == p) {
                report.push(id, Problem::ParentMissing(p.to_string()));
            }
        }
        match self.driver.exists(id) {
            Ok(true) => {}
            Ok(false) => {
                report.push(id, Problem::DataMissing);
                return;
            }
            Err(e) => report.push(id, Problem::ContentAltered(e.to_string())),
        }
        for name in &l.big_data_names {
            let present = crate::bigdata::file_name(name)
                .map(|f| self.layer_store.data_dir(id).join(f).is_file())
                .unwrap_or(false);
            if !present {
                report.push(id, Problem::BigDataMissing(name.clone()));
            }
        }
        if self.driver.name() == "overlay" {
            if let Some(why) = self.links_problem(l, all) {
                report.push(id, Problem::Links(why));
            }
        }
        self.check_content(l, mode, report);
    }

    fn check_content(&self, l: &Layer, mode: CheckMode, report: &mut Report) {
        let id = l.id.as_str();
        let ts = self.layer_store.tar_split(id);
        if !ts.exists() {
            if !l.uncompressed_digest.is_empty() && !l.has_no_tar_split() {
                report.push(id, Problem::TarSplitMissing);
            }
            return;
        }
        let files = match record_files(&ts) {
            Ok(f) => f,
            Err(e) => {
                report.push(id, Problem::TarSplitDamaged(e));
                return;
            }
        };
        match mode {
            CheckMode::Quick => {
                let Some(root) = self.files_dir(id) else {
                    return;
                };
                for (name, size) in files {
                    let shown = String::from_utf8_lossy(&name).into_owned();
                    match confined_size(&root, &name) {
                        None => report.push(id, Problem::FileMissing(shown)),
                        Some(found) if found != size => report.push(
                            id,
                            Problem::FileSize {
                                name: shown,
                                expected: size,
                                found,
                            },
                        ),
                        Some(_) => {}
                    }
                }
            }
            CheckMode::Full => self.replay_and_compare(l, &ts, report),
        }
    }

    fn replay_and_compare(&self, l: &Layer, ts: &Path, report: &mut Report) {
        let id = l.id.as_str();
        let source = match self.driver.diff_getter(id) {
            Ok(s) => s,
            Err(e) => return report.push(id, Problem::ContentAltered(e.to_string())),
        };
        let f = match std::fs::File::open(ts) {
            Ok(f) => f,
            Err(e) => return report.push(id, Problem::TarSplitDamaged(e.to_string())),
        };
        let record = BufReader::new(flate2::read::GzDecoder::new(f));
        let mut h = Hasher {
            sha: sha2::Sha256::new(),
            len: 0,
        };
        if let Err(e) = strata_archive::tarsplit::replay(record, &*source, &mut h) {
            return report.push(id, Problem::ContentAltered(e.to_string()));
        }
        if l.uncompressed_digest.is_empty() {
            return;
        }
        let found = format!("sha256:{}", hex::encode(h.sha.finalize()));
        if found != l.uncompressed_digest {
            report.push(
                id,
                Problem::DigestMismatch {
                    expected: l.uncompressed_digest.clone(),
                    found,
                },
            );
        } else if l.uncompressed_size > 0 && h.len != l.uncompressed_size as u64 {
            report.push(
                id,
                Problem::SizeMismatch {
                    expected: l.uncompressed_size as u64,
                    found: h.len,
                },
            );
        }
    }

    pub(crate) fn layers_json(&self) -> PathBuf {
        self.layer_store.records().path().to_path_buf()
    }

    pub(crate) fn volatile_json(&self) -> PathBuf {
        self.layer_store.dir().join("volatile-layers.json")
    }

    pub(crate) fn mounts_json(&self) -> Option<PathBuf> {
        self.layer_store
            .mounts_dir()
            .map(|d| d.join("mountpoints.json"))
    }

    /// Where a layer's own files are, for drivers whose layout is known.
    fn files_dir(&self, id: &str) -> Option<PathBuf> {
        let g = &self.graph_root;
        match self.driver.name() {
            "vfs" => Some(g.join("vfs").join("dir").join(id)),
            "overlay" => Some(g.join("overlay").join(id).join("diff")),
            "btrfs" => Some(g.join("btrfs").join("subvolumes").join(id)),
            _ => None,
        }
    }

    pub(crate) fn overlay_layout(&self) -> Layout {
        Layout {
            home: self.graph_root.join("overlay"),
        }
    }

    /// What the `lower` file of `l` should say, when its parents' links are
    /// all readable.
    pub(crate) fn expected_lower(&self, l: &Layer, all: &[Layer]) -> Option<String> {
        let layout = self.overlay_layout();
        let mut parts = Vec::new();
        let mut next = l.parent().map(str::to_string);
        while let Some(p) = next {
            let link = layout
                .read_link(&p)
                .ok()
                .flatten()
                .filter(|s| is_link_id(s))?;
            parts.push(format!("l/{link}"));
            next = all.iter().find(|o| o.id == p)?.parent().map(str::to_string);
            if parts.len() > all.len() {
                return None; // a parent cycle
            }
        }
        Some(parts.join(":"))
    }

    fn links_problem(&self, l: &Layer, all: &[Layer]) -> Option<String> {
        let layout = self.overlay_layout();
        let id = l.id.as_str();
        match layout.read_link(id) {
            Ok(Some(link)) if is_link_id(&link) => {
                let target = Path::new("..").join(id).join("diff");
                let lpath = layout.links().join(&link);
                if std::fs::read_link(&lpath).ok().as_deref() != Some(target.as_path()) {
                    return Some(format!("l/{link} is missing or points elsewhere"));
                }
            }
            Ok(Some(_)) => return Some("link file is empty or malformed".into()),
            Ok(None) => return Some("link file is missing".into()),
            Err(e) => return Some(e.to_string()),
        }
        let lower_path = layout.dir(id).join("lower");
        let actual = match std::fs::read_to_string(&lower_path) {
            Ok(s) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Some(format!("lower file: {e}")),
        };
        let expected = self.expected_lower(l, all)?;
        match (l.parent(), actual) {
            (None, None) => None,
            (None, Some(_)) => Some("base layer has a lower file".into()),
            (Some(_), None) => Some("lower file is missing".into()),
            (Some(_), Some(a)) if a.trim().is_empty() => Some("lower file is empty".into()),
            (Some(_), Some(a)) if a.trim() != expected => Some(format!(
                "lower file says {:?}, expected {expected:?}",
                a.trim()
            )),
            _ => None,
        }
    }

    fn check_unnamed(&self, ids: &BTreeSet<&str>, report: &mut Report) {
        let g = &self.graph_root;
        let home = match self.driver.name() {
            "vfs" => Some(g.join("vfs").join("dir")),
            "overlay" => Some(g.join("overlay")),
            "btrfs" => Some(g.join("btrfs").join("subvolumes")),
            _ => None,
        };
        for (name, path, is_dir) in home.iter().flat_map(|h| list(h)) {
            let unnamed = name != "l" && !name.starts_with('.') && !ids.contains(name.as_str());
            // Earlier strata releases staged vfs layers as `dir/.tmp-*`
            // (now `vfs/tmp/`, emptied when the driver opens).
            let old_staging = self.driver.name() == "vfs" && name.starts_with(".tmp-");
            if is_dir && (unnamed || old_staging) {
                report.push(name, Problem::Unnamed(path));
            }
        }
        if self.driver.name() == "overlay" {
            for (name, path, _) in list(&g.join("overlay").join("l")) {
                let target = std::fs::read_link(&path).ok();
                let layer = target.as_deref().and_then(link_target_layer);
                // A layer whose own link file is gone gets it back from
                // this entry on repair, so the entry is still its.
                let named = layer.as_deref().is_some_and(|id| {
                    ids.contains(id)
                        && self.overlay_layout().diff(id).is_dir()
                        && match self.overlay_layout().read_link(id).ok().flatten() {
                            Some(l) if is_link_id(&l) => l == name,
                            _ => true,
                        }
                });
                if !named {
                    report.push(format!("l/{name}"), Problem::Unnamed(path));
                }
            }
        }
        for (name, path, is_dir) in list(self.layer_store.dir()) {
            let id = if is_dir {
                Some(name.as_str())
            } else {
                name.strip_suffix(".tar-split.gz")
            };
            let stale_tmp = name.starts_with(".tmp-");
            if stale_tmp || id.is_some_and(|i| !ids.contains(i)) {
                report.push(name.clone(), Problem::Unnamed(path));
            }
        }
    }

    fn check_mounts(&self, mounts: &[MountRecord], ids: &BTreeSet<&str>, report: &mut Report) {
        // vfs hands out plain directories: nothing to compare a count with.
        if self.driver.name() == "vfs" {
            return;
        }
        for m in mounts {
            if m.count > 0
                && ids.contains(m.id.as_str())
                && !crate::is_mount_root(Path::new(&m.path))
            {
                report.push(
                    m.id.clone(),
                    Problem::StaleMount {
                        path: m.path.clone(),
                        count: m.count,
                    },
                );
            }
        }
    }
}

/// `../<id>/diff` → `<id>`.
fn link_target_layer(t: &Path) -> Option<String> {
    let mut c = t.components();
    match (c.next(), c.next(), c.next(), c.next()) {
        (
            Some(std::path::Component::ParentDir),
            Some(std::path::Component::Normal(id)),
            Some(std::path::Component::Normal(d)),
            None,
        ) if d == "diff" => Some(id.to_string_lossy().into_owned()),
        _ => None,
    }
}

/// Entries of a directory: (name, path, is a directory); none when missing.
fn list(dir: &Path) -> Vec<(String, PathBuf, bool)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            (
                e.file_name().to_string_lossy().into_owned(),
                e.path(),
                is_dir,
            )
        })
        .collect();
    v.sort();
    v
}

/// Marks every layer below a damaged or missing one as damaged.
fn mark_dependents(all: &[Layer], report: &mut Report) {
    let damaged: BTreeSet<String> = report.damaged_layers().into_iter().collect();
    let mut extra = Vec::new();
    for l in all {
        if damaged.contains(&l.id) {
            continue;
        }
        let mut next = l.parent().map(str::to_string);
        let mut steps = 0;
        while let Some(p) = next {
            if damaged.contains(&p) {
                extra.push((l.id.clone(), p));
                break;
            }
            next = all
                .iter()
                .find(|o| o.id == p)
                .and_then(|o| o.parent().map(str::to_string));
            steps += 1;
            if steps > all.len() {
                break;
            }
        }
    }
    for (id, p) in extra {
        report.push(id, Problem::ParentDamaged(p));
    }
}
