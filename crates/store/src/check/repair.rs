//! Repair: what a check found, removed or rebuilt.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::layers::Loaded;
use super::ItemKind;
use super::{CheckMode, Problem, RepairScope, Repaired, Report};
use crate::containers::Container;
use crate::files::{remove_dir_if_exists, remove_file_if_exists, write_replacing, Persist};
use crate::images::Image;
use crate::layers::{Layer, LayersTx};
use crate::lockfile::LockMode;
use crate::record::to_json;
use crate::recordfile::Writer;
use crate::{Error, Result, Store};

/// What [`Store::repair`] returns.
#[derive(Debug, Clone, Default)]
pub struct RepairOutcome {
    /// The findings repair acted on.
    pub found: Report,
    /// What it did.
    pub repaired: Repaired,
    /// A check of the store afterwards (clean unless something could not
    /// be repaired).
    pub after: Report,
}

impl Store {
    /// Checks the store and repairs what it finds (see the module docs).
    /// Record files that do not parse are set right first, under the layer
    /// locks taken exclusively; the rest is done in one layer transaction.
    pub fn repair(&self, mode: CheckMode, scope: RepairScope) -> Result<RepairOutcome> {
        let mut done = Repaired::default();
        let found = self.rewrite_damaged_files(mode, &mut done)?;
        // The reference's lock order: layers, images, containers.
        let mut tx = self.layers_tx()?;
        let mut images = self.image_store.write()?;
        let mut containers = self.container_store.write()?;
        self.remove_items(
            &mut tx,
            &mut images,
            &mut containers,
            (&found, scope),
            &mut done,
        )?;
        let keep = protected(&tx, &containers);
        let mut after = self.repair_pass(&mut tx, mode, &mut done, &keep)?;
        // Removing a layer can leave what only a second look sees (an l/
        // entry of a layer whose directory was already gone): a few more
        // passes, while each still changes something.
        for _ in 0..3 {
            if after.is_clean() {
                break;
            }
            let keep = protected(&tx, &containers);
            let next = self.repair_pass(&mut tx, mode, &mut done, &keep)?;
            let progressed = next != after;
            after = next;
            if !progressed {
                break;
            }
        }
        Ok(RepairOutcome {
            found,
            repaired: done,
            after,
        })
    }

    /// One round: check, remove, rebuild; returns the check afterwards.
    fn repair_pass(
        &self,
        tx: &mut LayersTx<'_>,
        mode: CheckMode,
        done: &mut Repaired,
        keep: &BTreeSet<String>,
    ) -> Result<Report> {
        let (found, _) = self.check_locked(mode)?;
        let damaged: BTreeSet<String> = found
            .damaged_layers()
            .into_iter()
            .filter(|id| !keep.contains(id))
            .collect();
        let layers = tx.layers.list().to_vec();
        for id in removal_order(&layers, &damaged) {
            tracing::info!("removing damaged layer {id}");
            self.remove_layer_locked(tx, &id)?;
            done.removed_layers.push(id);
        }
        self.rebuild_links(tx, &found, done)?;
        let mut mounts_dropped = false;
        for f in &found.findings {
            match &f.problem {
                Problem::Unnamed(path) => {
                    self.remove_unnamed(&f.id, path)?;
                    done.removed_unnamed.push(path.clone());
                }
                Problem::ContainerLayerIncomplete(_) if !damaged.contains(&f.id) => {
                    tracing::info!("completing the layer {} of a container", f.id);
                    self.complete_layer(tx, &f.id)?;
                    done.completed.push(f.id.clone());
                }
                Problem::StaleMount { .. } if !damaged.contains(&f.id) => {
                    tx.mounts.records_mut().remove(&f.id);
                    done.mounts_dropped.push(f.id.clone());
                    mounts_dropped = true;
                }
                _ => {}
            }
        }
        if mounts_dropped {
            tx.save()?;
        }
        Ok(self.check_locked(mode)?.0)
    }

    /// Removes damaged images and, with [`RepairScope::WithContainers`],
    /// damaged containers with their layers. An image a remaining container
    /// uses stays (the reference leaves those alone without `--force`).
    fn remove_items(
        &self,
        tx: &mut LayersTx<'_>,
        images: &mut Writer<'_, Image>,
        containers: &mut Writer<'_, Container>,
        (found, scope): (&Report, RepairScope),
        done: &mut Repaired,
    ) -> Result<()> {
        if scope == RepairScope::WithContainers {
            for id in found.damaged_items(ItemKind::Container) {
                let Some(c) = containers.by_id(&id).cloned() else {
                    continue;
                };
                tracing::info!("removing damaged container {id}");
                self.container_store.delete(containers, &id)?;
                if tx.layers.by_id(&c.layer).is_some() {
                    self.remove_layer_locked(tx, &c.layer)?;
                }
                done.removed_containers.push(id);
            }
        }
        let used: BTreeSet<String> = containers.list().iter().map(|c| c.image.clone()).collect();
        for id in found.damaged_items(ItemKind::Image) {
            if used.contains(&id) || images.by_id(&id).is_none() {
                continue;
            }
            tracing::info!("removing damaged image {id}");
            self.image_store.delete(images, &id)?;
            done.removed_images.push(id);
        }
        Ok(())
    }

    /// Moves a record file that does not parse aside and writes back the
    /// records that did; returns the first check's findings.
    fn rewrite_damaged_files(&self, mode: CheckMode, done: &mut Repaired) -> Result<Report> {
        let ls = &self.layer_store;
        let _l = ls.records().lock_file().lock(LockMode::Exclusive)?;
        let _m = match ls.mount_records() {
            Some(m) => Some(m.lock_file().lock(LockMode::Exclusive)?),
            None => None,
        };
        let (found, loaded): (Report, Loaded) = self.check_locked(mode)?;
        let items = self.load_items()?;
        if loaded.layers_damage.is_some() || loaded.volatile_damage.is_some() {
            // Every record that parsed goes back into layers.json (the
            // volatile ones too: they are not volatile any more).
            let data = to_json(&loaded.layers).map_err(|e| Error::Invalid(e.to_string()))?;
            for p in [self.layers_json(), self.volatile_json()] {
                if p.exists() {
                    done.moved_aside.push((p.clone(), move_aside(&p)?));
                }
            }
            write_replacing(&self.layers_json(), &data, 0o600, self.sync.persist())?;
            ls.records().lock_file().record_write()?;
        }
        if let (Some(_), Some(p), Some(m)) = (
            &loaded.mounts_damage,
            self.mounts_json(),
            ls.mount_records(),
        ) {
            let data = to_json(&loaded.mounts).map_err(|e| Error::Invalid(e.to_string()))?;
            done.moved_aside.push((p.clone(), move_aside(&p)?));
            write_replacing(&p, &data, 0o600, Persist::Volatile)?;
            m.lock_file().record_write()?;
        }
        for (damage, rf_path, lock) in [
            (
                &items.images_damage,
                self.image_store.records().path(),
                self.image_store.records().lock_file(),
            ),
            (
                &items.containers_damage,
                self.container_store.records().path(),
                self.container_store.records().lock_file(),
            ),
        ] {
            if damage.is_none() {
                continue;
            }
            let _g = lock.lock(LockMode::Exclusive)?;
            let data = if rf_path == self.image_store.records().path() {
                to_json(&items.images)
            } else {
                to_json(&items.containers)
            }
            .map_err(|e| Error::Invalid(e.to_string()))?;
            done.moved_aside
                .push((rf_path.to_path_buf(), move_aside(rf_path)?));
            write_replacing(rf_path, &data, 0o600, self.sync.persist())?;
            lock.record_write()?;
        }
        Ok(found)
    }

    /// Rebuilds overlay links and lower files of layers that stay, parents
    /// before children.
    fn rebuild_links(&self, tx: &LayersTx<'_>, found: &Report, done: &mut Repaired) -> Result<()> {
        let want: BTreeSet<&str> = found
            .findings
            .iter()
            .filter(|f| matches!(f.problem, Problem::Links(_)))
            .map(|f| f.id.as_str())
            .collect();
        if want.is_empty() {
            return Ok(());
        }
        let layers = tx.layers.list().to_vec();
        let layout = self.overlay_layout();
        for id in parents_first(&layers) {
            if !want.contains(id.as_str()) {
                continue;
            }
            let Some(l) = layers.iter().find(|l| l.id == id) else {
                continue;
            };
            layout
                .repair(&id)
                .map_err(|e| Error::driver("repairing links of", &id, e))?;
            let lower = layout.dir(&id).join("lower");
            match self.expected_lower(l, &layers) {
                Some(exp) if l.parent().is_some() => {
                    strata_driver::overlay::layout::write_file(&lower, exp.as_bytes())
                        .map_err(|e| Error::driver("writing lower file of", &id, e))?;
                }
                Some(_) => remove_file_if_exists(&lower)?,
                None => {}
            }
            done.rebuilt.push(id);
        }
        Ok(())
    }

    fn remove_unnamed(&self, name: &str, path: &Path) -> Result<()> {
        tracing::info!("removing {}, which no record names", path.display());
        let in_driver_home = !path.starts_with(self.layer_store.dir()) && !name.starts_with("l/");
        if in_driver_home {
            // The driver knows what else belongs to the layer (its l/ link).
            if let Err(e) = self.driver.remove(name) {
                tracing::debug!("driver could not remove {name}: {e}; removing the directory");
            }
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => remove_dir_if_exists(path),
            Ok(_) => remove_file_if_exists(path),
            Err(_) => Ok(()),
        }
    }
}

/// Layers that repair must keep: those of the remaining containers and of
/// their images, with all their parents.
fn protected(tx: &LayersTx<'_>, containers: &Writer<'_, Container>) -> BTreeSet<String> {
    let layers = tx.layers.list();
    let mut keep = BTreeSet::new();
    for c in containers.list() {
        let mut next = Some(c.layer.clone());
        while let Some(id) = next.filter(|id| keep.insert(id.clone())) {
            next = layers
                .iter()
                .find(|l| l.id == id)
                .and_then(|l| l.parent().map(str::to_string));
        }
    }
    keep
}

/// Renames `p` to `<p>.damaged-<ns>`, a name not in use.
fn move_aside(p: &Path) -> Result<PathBuf> {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut name = p.as_os_str().to_owned();
    name.push(format!(".damaged-{ns}"));
    let to = PathBuf::from(name);
    if to.exists() {
        return Err(Error::Invalid(format!("{} exists already", to.display())));
    }
    tracing::warn!("moving damaged {} to {}", p.display(), to.display());
    std::fs::rename(p, &to).map_err(|e| Error::io("rename", p, e))?;
    Ok(to)
}

/// Layer IDs ordered so that every parent comes before its children.
fn parents_first(layers: &[Layer]) -> Vec<String> {
    let depth = |l: &Layer| {
        let mut d = 0usize;
        let mut next = l.parent();
        while let Some(p) = next {
            d += 1;
            next = layers.iter().find(|o| o.id == p).and_then(Layer::parent);
            if d > layers.len() {
                break;
            }
        }
        d
    };
    let mut v: Vec<(usize, String)> = layers.iter().map(|l| (depth(l), l.id.clone())).collect();
    v.sort();
    v.into_iter().map(|(_, id)| id).collect()
}

/// The damaged layers that are listed, children before parents.
fn removal_order(layers: &[Layer], damaged: &BTreeSet<String>) -> Vec<String> {
    let mut v: Vec<String> = parents_first(layers)
        .into_iter()
        .filter(|id| damaged.contains(id))
        .collect();
    v.reverse();
    v
}
