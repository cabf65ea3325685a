//! mounts.
