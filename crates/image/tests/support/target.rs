//! An import target: a real strata store for the layers, image records
//! kept in memory (the store's image half is tested where it lives).

use std::io::Read;
use std::path::Path;

use strata_image::import::NewImageLayer;
use strata_image::{ImageRecord, ImageTarget};
use strata_store::{LayerCheck, Store, StoreOptions};

/// A real store for the layers; image records are kept here (the
/// store's image half is tested where it lives).
pub struct Target {
    pub store: Store,
    records: std::sync::Mutex<Vec<ImageRecord>>,
}

impl Target {
    pub fn new(dir: &Path, driver: &str) -> Self {
        let opts = StoreOptions {
            graph_root: dir.join("root"),
            run_root: dir.join("run"),
            driver: Some(driver.into()),
            ..Default::default()
        };
        Target {
            store: Store::open(&opts).unwrap(),
            records: Default::default(),
        }
    }

    /// The image records written so far.
    pub fn images(&self) -> Vec<ImageRecord> {
        self.records.lock().unwrap().clone()
    }

    pub fn layer_ids(&mut self) -> Vec<String> {
        self.store
            .layers()
            .unwrap()
            .into_iter()
            .map(|l| l.id)
            .collect()
    }

    pub fn no_incomplete(&mut self) {
        assert!(self
            .store
            .layers()
            .unwrap()
            .iter()
            .all(|l| !l.is_incomplete()));
        let tmp: Vec<_> = std::fs::read_dir(self.store.graph_root().join("vfs-layers"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(tmp.is_empty(), "{tmp:?}");
    }
}

impl ImageTarget for Target {
    fn has_layer(&self, id: &str) -> strata_image::Result<bool> {
        self.store.has_layer(id)
    }
    fn put_layer(
        &self,
        layer: &NewImageLayer,
        diff: &mut (dyn Read + Send),
        check: &LayerCheck<'_>,
    ) -> strata_image::Result<()> {
        self.store.put_layer(layer, diff, check)
    }
    fn image_top_layer(&self, id: &str) -> strata_image::Result<Option<String>> {
        Ok(self
            .images()
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.top_layer.clone().unwrap_or_default()))
    }
    fn write_image(&self, record: &ImageRecord, _exists: bool) -> strata_image::Result<()> {
        self.records.lock().unwrap().push(record.clone());
        Ok(())
    }
}
