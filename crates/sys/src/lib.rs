//! Thin wrappers for the system calls strata needs and rustix lacks.
//!
//! This is the only crate in the workspace that may contain `unsafe` code.
//! Each module that needs it allows it locally and documents why every block
//! is sound. No policy lives here: callers decide what to mount and where.

#![deny(unsafe_code)]

mod ioc;

pub mod btrfs;
pub mod clone;
pub mod mount;
pub mod mountinfo;
pub mod quota;
pub mod statfs;
