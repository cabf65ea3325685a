//! statfs wrappers.
