//! The vfs driver: every layer a full copy of its parent.

use crate::{Driver, Error, InitOptions, Result};

/// Initialises the driver in `opts.home`.
pub fn init(opts: &InitOptions) -> Result<Box<dyn Driver>> {
    let _ = opts;
    Err(Error::NotSupported("vfs (not yet implemented)".into()))
}
