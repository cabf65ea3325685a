//! The btrfs driver: a subvolume per layer, children are snapshots.

use crate::{Driver, Error, InitOptions, Result};

/// Initialises the driver in `opts.home`.
pub fn init(opts: &InitOptions) -> Result<Box<dyn Driver>> {
    let _ = opts;
    Err(Error::NotSupported("btrfs (not yet implemented)".into()))
}
