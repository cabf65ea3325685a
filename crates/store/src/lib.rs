//! The layer store: layer records, names, metadata, big data and mount
//! counts kept in the same files, formats and locks as containers/storage, so
//! that both can take turns on one store.
//!
//! ```text
//! <graph root>/
//!   storage.lock  userns.lock  mounts/  tmp/
//!   <driver>-layers/layers.json  layers.lock  <id>.tar-split.gz  <id>/<big data>
//!   <driver>/…                    (the driver's own tree)
//! <run root>/
//!   <driver>-layers/mountpoints.json  mountpoints.lock
//! ```
