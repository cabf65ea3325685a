//! Layer streams for container storage.
//!
//! A layer travels as a tar stream, often compressed, in which deletions are
//! *whiteouts*: `.wh.NAME` removes `NAME` from the layers below, and
//! `.wh..wh..opq` makes its directory opaque (hides everything below it).
//! This crate turns such a stream into files on disk and files on disk back
//! into such a stream:
//!
//! - [`confined`]: the one confined open every lookup inside a layer goes
//!   through (`openat2(RESOLVE_IN_ROOT)`, or a component walk);
//! - [`compression`]: sniff gzip/zstd/bzip2/xz by magic bytes and decompress;
//! - [`entry`]: the parsed form of a tar member that flows between stages;
//! - [`reader`]: a streaming tar reader (ustar, GNU, PAX, sparse) that also
//!   records every non-content byte for tar-split;
//! - [`apply`]: writes entries into a directory handle, confined to it
//!   (`openat2(RESOLVE_IN_ROOT)`), in overlay form or onto a full tree;
//! - [`tarsplit`]: the `<id>.tar-split.gz` record and its byte-exact replay;
//! - [`writer`]: a tar writer shaped like the reference's `diff` output;
//! - [`changes`]: changes between trees or in an overlay upper directory,
//!   their export as a tar, and their size;
//! - [`chunks`]: byte chunks from a producer thread to a consumer, where a
//!   producer that dies is an error, never an early end;
//! - [`copy`]: a tree copied from one root into another, confined on both
//!   sides.
//!
//! The top-level [`apply_layer`] runs the whole import pipeline in one pass:
//!
//! ```text
//! input ─> sniff ─> decompress ─┬─> sha256 (compressed)
//!                               └─> tar reader ─┬─> sha256 (uncompressed), size
//!                                               ├─> tar-split recorder
//!                                               └─> apply into the root fd
//! ```
//!
//! Stages run on separate threads joined by bounded channels.
//!
//! Every lookup inside a layer is confined to it, as in a chroot:
//!
//! ```
//! use std::os::fd::AsFd;
//! use rustix::fs::OFlags;
//! use strata_archive::confined::{open, How};
//! let layer = tempfile::tempdir()?;
//! std::fs::write(layer.path().join("passwd"), "inside\n")?;
//! std::os::unix::fs::symlink("/passwd", layer.path().join("abs"))?;
//! let root = std::fs::File::open(layer.path())?;
//! // `..` stops at the root, absolute symlinks restart there.
//! let fd = open(root.as_fd(), b"../../abs", &How::new(OFlags::RDONLY))?;
//! assert_eq!(std::io::read_to_string(std::fs::File::from(fd))?, "inside\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod apply;
pub mod changes;
pub mod chunks;
pub mod compression;
pub mod confined;
pub mod copy;
pub mod entry;
mod error;
mod fdtable;
mod gzip;
mod pipeline;
pub mod reader;
pub mod tarsplit;
pub mod writer;

pub use apply::{Applier, ApplierOptions, ApplyMode, OpaqueXattr, Unshare, WhiteoutStyle};
pub use changes::{Change, ChangeKind};
pub use compression::Compression;
pub use error::{Error, ErrorKind, Result};
pub use gzip::ParallelGzip;
pub use pipeline::{apply_layer, digest_layer, read_layer, ApplyOptions, ApplyReport};
