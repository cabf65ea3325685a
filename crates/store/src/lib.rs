//! The store: layers, images and containers kept in the same files,
//! formats and locks as containers/storage 1.43, so that it, podman,
//! buildah, skopeo and strata take turns on one store.
//!
//! ```text
//! <graph root>/                      (0700)
//!   storage.lock  userns.lock  mounts/  tmp/
//!   <driver>-layers/layers.json      layer records (compact JSON, 0600)
//!                   layers.lock      fcntl lock + 64-byte last-writer token
//!                   <id>.tar-split.gz  how to rebuild the imported tar
//!                   <id>/<item>      big data of a layer
//!   <driver>-images/images.json  images.lock
//!                   <id>/<item>      big data of an image (manifest, config, …)
//!   <driver>-containers/containers.json  containers.lock
//!                   <id>/<item>      big data of a container
//!                   <id>/userdata/   the container's directory
//!   <driver>/…                       the driver's own tree
//! <run root>/                        (0700)
//!   <driver>-layers/mountpoints.json  [{"id","path","count"}]
//!                   mountpoints.lock
//!   <driver>-containers/<id>/userdata/   the container's run directory
//!   <driver>-locks/
//! ```
//!
//! Each JSON file is a [`RecordFile`](recordfile::RecordFile): every access
//! takes its lock file (shared to read, exclusive to write), reloads the
//! file when another writer's token or its mtime changed, and writes JSON
//! atomically. A [`Store`] composes the layer, image and container stores,
//! takes their locks in the reference's order (layers, images, containers)
//! and keeps the rules that cross kinds: a layer an image or a container
//! uses cannot go, deleting an image deletes the layers only it used, a
//! container owns its read-write layer. A layer being made carries
//! `"flags":{"incomplete":true}` until its data is synced; the next
//! process that opens the store read-write removes such leftovers.
//!
//! ```no_run
//! use strata_store::{NewContainer, NewImage, NewLayer, Store, StoreOptions};
//! let mut opts = StoreOptions::default();
//! opts.graph_root = "/var/tmp/demo/root".into();
//! opts.run_root = "/var/tmp/demo/run".into();
//! opts.driver = Some("vfs".into());
//! let s = Store::open(&opts)?;
//! let base = s.import_layer(&NewLayer::default(), &mut std::io::stdin())?;
//! let image = s.images().create(&NewImage {
//!     top_layer: Some(base.id),
//!     names: vec!["localhost/demo:latest".into()],
//!     ..Default::default()
//! })?;
//! let ctr = s.containers().create(&NewContainer {
//!     image: Some(image.id),
//!     ..Default::default()
//! })?;
//! let root = s.mount(&ctr.id, &Default::default())?;
//! # Ok::<(), strata_store::Error>(())
//! ```

mod any;
pub mod bigdata;
pub mod check;
mod config;
pub mod containers;
mod copy;
mod error;
pub mod files;
mod flush;
pub mod images;
pub mod layers;
pub mod lockfile;
pub mod record;
pub mod recordfile;
mod store;

pub use any::Found;
pub use check::{CheckMode, RepairScope, Report};
pub use config::{config_file, StoreOptions, DEFAULT_GRAPH_ROOT, DEFAULT_RUN_ROOT};
pub use containers::ops::Containers;
pub use containers::{Container, Durability, NewContainer};
pub use copy::{CopyPath, CopyRequest};
pub use error::{Error, ErrorKind, Result};
pub use flush::{SyncMode, SyncOptions, FLUSH_PERIOD};
pub use images::ops::{DeleteMode, Images};
pub use images::{BigDataItem, Image, NameOp, NewImage};
pub use layers::chain::{ChainImport, ChainLayer};
pub use layers::mount::{is_mount_root, Force, MountRequest};
pub use layers::ops::{BoxError, LayerCheck, LayerMaps, MapChoice, NewLayer, RecordInput, Safety};
pub use layers::{Layer, MountRecord};
pub use record::Kind;
pub use store::Store;
pub use strata_archive::{ApplyReport, Change, ChangeKind, Compression};
// What a front end needs to build requests, so that it can depend on this
// crate alone.
pub use strata_driver::Access;
pub use strata_idmap::{parse_maps, read_subid_maps, IdMap};

impl Store {
    /// Diagnostic key/value pairs: roots, driver name and options, then
    /// whatever the driver reports.
    pub fn status(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("Root".to_string(), self.graph_root.display().to_string()),
            ("Run Root".to_string(), self.run_root.display().to_string()),
            ("Driver Name".to_string(), self.driver.name().to_string()),
            (
                "Driver Options".to_string(),
                format!("[{}]", self.driver_options.join(" ")),
            ),
        ];
        v.extend(self.driver.status());
        v
    }
}
