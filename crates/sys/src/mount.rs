//! mount wrappers.
