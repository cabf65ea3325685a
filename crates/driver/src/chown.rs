//! chown.
