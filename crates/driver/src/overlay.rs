//! The overlay driver (kernel overlayfs or fuse-overlayfs).

use crate::{Driver, Error, InitOptions, Result};

/// Initialises the driver in `opts.home`.
pub fn init(opts: &InitOptions) -> Result<Box<dyn Driver>> {
    let _ = opts;
    Err(Error::NotSupported("overlay (not yet implemented)".into()))
}
