//! The image and container half of a check: images whose layers or big
//! data are missing or fail their digests, containers whose layer or image
//! is missing, data directories no record names.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::layers::read_salvaged;
use super::{CheckMode, ItemKind, Problem, Report};
use crate::containers::Container;
use crate::images::Image;
use crate::{bigdata, Result, Store};

/// Image and container records as read for a check.
#[derive(Debug, Default)]
pub(crate) struct Items {
    pub(crate) images: Vec<Image>,
    pub(crate) images_damage: Option<String>,
    pub(crate) containers: Vec<Container>,
    pub(crate) containers_damage: Option<String>,
}

/// Whether a big-data item `file` (under `dir`) is there and, in a full
/// check, has the recorded digest; in a quick one, the recorded size.
fn item_problem(
    dir: &Path,
    name: &str,
    size: Option<i64>,
    digest: Option<&String>,
    mode: CheckMode,
) -> Option<Problem> {
    let path = bigdata::file_name(name).ok().map(|f| dir.join(f))?;
    let meta = match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => m,
        _ => return Some(Problem::BigDataMissing(name.to_string())),
    };
    match mode {
        CheckMode::Quick => match size {
            Some(s) if s >= 0 && s as u64 != meta.len() => Some(Problem::FileSize {
                name: name.to_string(),
                expected: s as u64,
                found: meta.len(),
            }),
            _ => None,
        },
        CheckMode::Full => {
            let want = digest?;
            let data = std::fs::read(&path).ok()?;
            let found = bigdata::sha256(&data);
            (&found != want && want.starts_with("sha256:")).then(|| Problem::DigestMismatch {
                expected: want.clone(),
                found,
            })
        }
    }
}

impl Store {
    /// Reads image and container records (salvaging what parses).
    pub(crate) fn load_items(&self) -> Result<Items> {
        let (images, images_damage) = read_salvaged::<Image>(self.image_store.records().path())?;
        let (containers, containers_damage) =
            read_salvaged::<Container>(self.container_store.records().path())?;
        Ok(Items {
            images,
            images_damage,
            containers,
            containers_damage,
        })
    }

    /// Adds the findings about images and containers to `report`, given
    /// the layer IDs listed and those found damaged.
    pub(crate) fn check_items(
        &self,
        items: &Items,
        layer_ids: &BTreeSet<String>,
        mode: CheckMode,
        report: &mut Report,
    ) {
        let damaged: BTreeSet<String> = report.damaged_layers().into_iter().collect();
        let layer_problem = |id: &str| {
            if !layer_ids.contains(id) {
                Some(Problem::LayerMissing(id.to_string()))
            } else if damaged.contains(id) {
                Some(Problem::LayerDamaged(id.to_string()))
            } else {
                None
            }
        };
        if let Some(d) = &items.images_damage {
            let p = self.image_store.records().path().display().to_string();
            report.push_kind(ItemKind::Image, p, Problem::RecordsDamaged(d.clone()));
        }
        if let Some(d) = &items.containers_damage {
            let p = self.container_store.records().path().display().to_string();
            report.push_kind(ItemKind::Container, p, Problem::RecordsDamaged(d.clone()));
        }
        for i in &items.images {
            for l in i
                .top_layer()
                .into_iter()
                .chain(i.mapped_layers.iter().map(String::as_str))
            {
                if let Some(p) = layer_problem(l) {
                    report.push_kind(ItemKind::Image, i.id.clone(), p);
                }
            }
            let Ok(dir) = self.image_store.data_dir(&i.id) else {
                continue;
            };
            for name in &i.big_data_names {
                let size = i.big_data_sizes.get(name).copied();
                let digest = i.big_data_digests.get(name);
                if let Some(p) = item_problem(&dir, name, size, digest, mode) {
                    report.push_kind(ItemKind::Image, i.id.clone(), p);
                }
            }
        }
        let image_ids: BTreeSet<&str> = items.images.iter().map(|i| i.id.as_str()).collect();
        for c in &items.containers {
            if let Some(p) = layer_problem(&c.layer) {
                report.push_kind(ItemKind::Container, c.id.clone(), p);
            }
            if !c.image.is_empty() && !image_ids.contains(c.image.as_str()) {
                report.push_kind(
                    ItemKind::Container,
                    c.id.clone(),
                    Problem::ImageMissing(c.image.clone()),
                );
            }
        }
        let unnamed = |kind: ItemKind, dir: &Path, names: Vec<String>, ids: &BTreeSet<&str>| {
            names
                .into_iter()
                .filter(|n| !ids.contains(n.as_str()))
                .map(|n| (kind, n.clone(), dir.join(n)))
                .collect::<Vec<(ItemKind, String, PathBuf)>>()
        };
        let container_ids: BTreeSet<&str> =
            items.containers.iter().map(|c| c.id.as_str()).collect();
        let mut stray = unnamed(
            ItemKind::Image,
            self.image_store.dir(),
            self.image_store.data_dirs().unwrap_or_default(),
            &image_ids,
        );
        stray.extend(unnamed(
            ItemKind::Container,
            self.container_store.dir(),
            self.container_store.data_dirs().unwrap_or_default(),
            &container_ids,
        ));
        for (kind, name, path) in stray {
            report.push_kind(kind, name, Problem::Unnamed(path));
        }
    }
}
