//! Thin wrappers for the system calls strata needs and rustix lacks.
//!
//! This is the only crate in the workspace that may contain `unsafe` code.
//! Each module that needs it allows it locally and documents why every block
//! is sound. No policy lives here: callers decide what to mount and where.
//!
//! ```
//! // A line of /proc/self/mountinfo, with an escaped space in the mount point.
//! let line = b"36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw";
//! let m = strata_sys::mountinfo::parse_line(line).map_err(std::io::Error::other)?;
//! assert_eq!(m.mount_point, std::path::Path::new("/mnt two"));
//! assert_eq!((m.major, m.minor), (98, 0));
//! // What filesystem a directory is on (statfs(2)'s f_type).
//! let magic = strata_sys::statfs::fs_type(std::path::Path::new("/"))?;
//! assert_ne!(magic, 0);
//! # Ok::<(), std::io::Error>(())
//! ```

#![deny(unsafe_code)]

mod ioc;

pub mod btrfs;
pub mod clone;
pub mod mount;
pub mod mountinfo;
pub mod quota;
pub mod statfs;
