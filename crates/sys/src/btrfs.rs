//! btrfs wrappers.
