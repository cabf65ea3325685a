//! Repair: what a check found, removed or rebuilt.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::layers::Loaded;
use super::{CheckMode, Problem, RepairScope, Repaired, Report};
use crate::files::{remove_dir_if_exists, remove_file_if_exists, write_replacing, Persist};
use crate::lockfile::LockMode;
use crate::record::{to_json, Layer};
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
    /// Checks the store and repairs what it finds (see the module docs),
    /// with the layer locks held exclusively throughout.
    pub fn repair(&mut self, mode: CheckMode, scope: RepairScope) -> Result<RepairOutcome> {
        // No containers are kept yet: with or without them the same layers go.
        let _ = scope;
        let locks = self.locks.clone();
        let _l = locks.layers.lock(LockMode::Exclusive)?;
        let _m = locks.mounts.lock(LockMode::Exclusive)?;
        let mut outcome = self.repair_pass(mode)?;
        // Removing a layer can leave what only a second look sees (an l/
        // entry of a layer whose directory was already gone): a few more
        // passes, while each still changes something.
        for _ in 0..3 {
            if outcome.after.is_clean() {
                break;
            }
            let next = self.repair_pass(mode)?;
            let progressed = next.after != outcome.after;
            merge(&mut outcome.repaired, next.repaired);
            outcome.after = next.after;
            if !progressed {
                break;
            }
        }
        Ok(outcome)
    }

    fn repair_pass(&mut self, mode: CheckMode) -> Result<RepairOutcome> {
        let locks = self.locks.clone();
        let (found, loaded) = self.check_locked(mode)?;
        let mut done = Repaired::default();
        self.rewrite_damaged_files(&loaded, &mut done)?;
        self.state
            .refresh(&self.paths, &locks.layers, &locks.mounts)?;

        let damaged: BTreeSet<String> = found.damaged_layers().into_iter().collect();
        for id in removal_order(&self.state.layers, &damaged) {
            tracing::info!("removing damaged layer {id}");
            self.remove_layer_locked(&id)?;
            done.removed_layers.push(id);
        }
        self.rebuild_links(&found, &mut done)?;
        for f in &found.findings {
            match &f.problem {
                Problem::Unnamed(path) => {
                    self.remove_unnamed(&f.id, path)?;
                    done.removed_unnamed.push(path.clone());
                }
                Problem::StaleMount { .. } if !damaged.contains(&f.id) => {
                    self.state.mounts.retain(|m| m.id != f.id);
                    done.mounts_dropped.push(f.id.clone());
                }
                _ => {}
            }
        }
        if !done.mounts_dropped.is_empty() {
            self.save()?;
        }
        let (after, _) = self.check_locked(mode)?;
        Ok(RepairOutcome {
            found,
            repaired: done,
            after,
        })
    }

    /// Moves a record file that does not parse aside and writes back the
    /// records that did.
    fn rewrite_damaged_files(&mut self, loaded: &Loaded, done: &mut Repaired) -> Result<()> {
        if loaded.layers_damage.is_some() {
            let p = self.paths.layers_json();
            let data = to_json(&loaded.layers).map_err(|e| Error::Invalid(e.to_string()))?;
            done.moved_aside.push((p.clone(), move_aside(&p)?));
            write_replacing(&p, &data, 0o600, self.sync.persist())?;
            self.locks.layers.record_write()?;
        }
        if loaded.mounts_damage.is_some() {
            let p = self.paths.mounts_json();
            let data = to_json(&loaded.mounts).map_err(|e| Error::Invalid(e.to_string()))?;
            done.moved_aside.push((p.clone(), move_aside(&p)?));
            write_replacing(&p, &data, 0o600, Persist::Volatile)?;
            self.locks.mounts.record_write()?;
        }
        Ok(())
    }

    /// Rebuilds overlay links and lower files of layers that stay, parents
    /// before children.
    fn rebuild_links(&mut self, found: &Report, done: &mut Repaired) -> Result<()> {
        let want: BTreeSet<&str> = found
            .findings
            .iter()
            .filter(|f| matches!(f.problem, Problem::Links(_)))
            .map(|f| f.id.as_str())
            .collect();
        if want.is_empty() {
            return Ok(());
        }
        let layers = self.state.layers.clone();
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

    fn remove_unnamed(&mut self, name: &str, path: &Path) -> Result<()> {
        tracing::info!("removing {}, which no record names", path.display());
        let in_driver_home = !path.starts_with(&self.paths.layers_dir) && !name.starts_with("l/");
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

fn merge(into: &mut Repaired, more: Repaired) {
    into.removed_layers.extend(more.removed_layers);
    into.rebuilt.extend(more.rebuilt);
    into.removed_unnamed.extend(more.removed_unnamed);
    into.moved_aside.extend(more.moved_aside);
    into.mounts_dropped.extend(more.mounts_dropped);
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
