//! The layer store: layer records, names, metadata, big data and mount
//! counts kept in the same files, formats and locks as containers/storage
//! 1.43, so that both can take turns on one store.
//!
//! ```text
//! <graph root>/                      (0700)
//!   storage.lock  userns.lock  mounts/  tmp/
//!   <driver>-layers/layers.json      records (compact JSON, 0600)
//!                   layers.lock      fcntl lock + 64-byte last-writer token
//!                   <id>.tar-split.gz  how to rebuild the imported tar
//!                   <id>/<item>      big data of a layer
//!   <driver>-images/images.lock  <driver>-containers/containers.lock
//!   <driver>/…                       the driver's own tree
//! <run root>/                        (0700)
//!   <driver>-layers/mountpoints.json  [{"id","path","count"}]
//!                   mountpoints.lock
//!   <driver>-containers/  <driver>-locks/
//! ```
//!
//! Every operation takes the lock files (shared to read, exclusive to
//! write), reloads a file when another writer's token or its mtime
//! changed, and writes JSON atomically. A layer being made carries
//! `"flags":{"incomplete":true}` until its data is synced; the next
//! process that opens the store read-write removes such leftovers.
//!
//! ```no_run
//! use strata_store::{NewLayer, Store, StoreOptions};
//! let mut opts = StoreOptions::default();
//! opts.graph_root = "/var/tmp/demo/root".into();
//! opts.run_root = "/var/tmp/demo/run".into();
//! opts.driver = Some("vfs".into());
//! let mut s = Store::open(&opts)?;
//! let base = s.import_layer(&NewLayer::default(), &mut std::io::stdin())?;
//! let child = s.create_layer(&NewLayer { parent: Some(base.id), ..Default::default() })?;
//! # Ok::<(), strata_store::Error>(())
//! ```

pub mod check;
mod config;
mod diff;
mod error;
pub mod files;
mod flush;
mod layer_ops;
pub mod lockfile;
mod mount;
pub mod record;
mod state;
mod store;

pub use check::{CheckMode, RepairScope, Report};
pub use config::{config_file, StoreOptions, DEFAULT_GRAPH_ROOT, DEFAULT_RUN_ROOT};
pub use error::{Error, ErrorKind, Result};
pub use flush::{SyncMode, FLUSH_PERIOD};
pub use layer_ops::{LayerMaps, MapChoice, NewLayer, Safety};
pub use mount::{is_mount_root, Force, MountRequest};
pub use record::Layer;
pub use state::MountRecord;
pub use store::Store;
pub use strata_archive::{Change, ChangeKind, Compression};

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
