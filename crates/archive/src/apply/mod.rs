//! Confined application of a layer stream into a directory.
//!
//! [`Applier`] consumes the [`Item`] stream of a layer and writes it under a
//! directory handle, in one of two [`ApplyMode`]s: overlay form (whiteouts are
//! stored as character devices or `.wh.` files, opaque directories get an
//! xattr) or onto a full tree (whiteouts delete).
//!
//! # Confinement
//!
//! Every directory is resolved inside the root with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, or by a
//! component-by-component walk where openat2 is missing (see
//! [`Resolution`]); `..` stops at the root and absolute symlinks resolve
//! inside it. The entry's own name is never followed: objects are created
//! with `*at` calls relative to the parent's descriptor (`O_EXCL`,
//! `O_NOFOLLOW`), metadata goes through the new object's descriptor or
//! `*at(…, AT_SYMLINK_NOFOLLOW)`. Hard-link targets are resolved the same
//! way and linked without following a final symlink (a link to a symlink
//! links the symlink itself; it is then never chmodded).
//!
//! # Decisions
//!
//! - Names with `..` are resolved lexically and clamped at the root
//!   (`../x`, `/../x` and `a/../../x` all land at `x`; a bare `..` is the
//!   root). That is what containers-storage 1.43 leaves on disk (it extracts
//!   inside a chroot); a warning is logged.
//! - Duplicate entries: the last one wins (an existing object is replaced,
//!   except that a directory over a directory only updates its metadata).
//! - Missing parent directories are created with mode 0755, owned by the
//!   container root, as the reference does.
//! - Sockets are skipped with a warning. Device numbers that do not fit the
//!   kernel's 12-bit major / 20-bit minor are refused: passed on, they would
//!   be truncated into a different, real device.
//! - Whiteout devices get the entry's owner and times (the reference leaves
//!   times at "now"; fixed times keep diff→apply→diff reproducible).
//! - `.wh..wh.*` names other than `.wh..wh..opq` are AUFS metadata and are
//!   skipped, at any depth; `.wh..wh.plnk/` at the root is extracted so that
//!   hard links into it work, then removed at [`Applier::finish`].
//! - Directory times (and, without root, modes lacking owner write/search)
//!   are set by [`Applier::finish`], children before parents, so that
//!   entries can still be added and later deletions do not move them.
//! - Under `force_mask`, devices and FIFOs are refused: the real owner and
//!   mode cannot be stored in a user xattr on them (the reference fails too).

mod entries;
mod meta;
mod ops;
pub(crate) mod path;
mod resolve;
mod whiteout;
mod writer;

use std::collections::HashSet;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use rustix::fs::{self, AtFlags, FileType, Timestamps};
use strata_idmap::IdMappings;

use crate::entry::{Header, Item};
use crate::{Error, Result};

pub use resolve::{Resolution, ResolveStats};

use meta::Meta;
use resolve::{lossy, Missing, Resolver};

/// The most descriptors an applier holds at once: its cache of open
/// directories, the files its writer has in flight, and room for the
/// caller's own.
const PEAK_FDS: usize = resolve::CACHE_CAP + writer::FILES_IN_FLIGHT + 128;

/// How whiteouts are stored in an overlay-form layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhiteoutStyle {
    /// Character device 0/0 named after the deleted entry (kernel overlay).
    #[default]
    CharDevice,
    /// Keep `.wh.NAME` as empty regular files (fuse-overlayfs without
    /// `CAP_MKNOD`, AUFS).
    AufsFiles,
}

/// Which xattr namespace marks opaque directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpaqueXattr {
    /// `trusted.overlay.opaque` (root).
    #[default]
    Trusted,
    /// `user.overlay.opaque` (rootless overlay with `userxattr`).
    User,
}

impl OpaqueXattr {
    /// The xattr name.
    pub fn name(self) -> &'static str {
        match self {
            OpaqueXattr::Trusted => "trusted.overlay.opaque",
            OpaqueXattr::User => "user.overlay.opaque",
        }
    }
}

/// Where and how entries land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// Into an empty directory that becomes an overlay upper/lower layer:
    /// whiteouts are stored, not executed.
    Overlay {
        /// How deletions are stored.
        whiteouts: WhiteoutStyle,
        /// Which xattr marks opaque directories.
        opaque: OpaqueXattr,
    },
    /// Onto a full copy of the parent tree (vfs, btrfs): whiteouts delete.
    FullTree,
}

impl Default for ApplyMode {
    fn default() -> Self {
        ApplyMode::Overlay {
            whiteouts: WhiteoutStyle::CharDevice,
            opaque: OpaqueXattr::Trusted,
        }
    }
}

/// Options of an [`Applier`].
#[derive(Debug, Clone, Default)]
pub struct ApplierOptions {
    /// Overlay form or full tree.
    pub mode: ApplyMode,
    /// Container→host ID maps for owners.
    pub id_mappings: IdMappings,
    /// Turn chown failures into one warning instead of an error.
    pub ignore_chown_errors: bool,
    /// When set, every file gets this mode and its real `uid:gid:mode` is
    /// stored in the `user.containers.override_stat` xattr.
    pub force_mask: Option<u32>,
    /// The tree's non-directories may share their inodes with another
    /// tree (a vfs layer linked to its parent's files): before a hard link
    /// member's metadata is applied to an inode the stream did not make,
    /// this replaces it with a private copy.
    pub unshare: Option<Unshare>,
}

/// Replaces the non-directory `name` in the directory `dir` with a private
/// copy of it: the same content, owner, mode, xattrs and times in a new
/// inode, so that changing it changes no other tree.
#[derive(Clone)]
pub struct Unshare(pub Arc<UnshareFn>);

/// What an [`Unshare`] calls: the directory and the entry's name in it.
pub type UnshareFn = dyn Fn(BorrowedFd<'_>, &[u8]) -> std::io::Result<()> + Send + Sync;

impl std::fmt::Debug for Unshare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Unshare")
    }
}

/// A regular file being written.
struct OpenFile {
    file: std::fs::File,
    path: Vec<u8>,
    header: Box<Header>,
    end: u64,
    /// Owner the file was created with, if known.
    owner_now: Option<strata_idmap::IdPair>,
    /// Created with the header's mode ([`meta::Meta::final_create_mode`]): it may
    /// need no chmod.
    maybe_final_mode: bool,
}

/// A directory whose times are set at the end.
struct DeferredDir {
    path: Vec<u8>,
    ident: (u64, u64),
    times: Timestamps,
    /// The directory's mode when it had to stay writable until the end
    /// (an unprivileged caller cannot write into a 0555 directory).
    mode: Option<u32>,
}

/// Where the stream is between items.
enum State {
    /// Between members.
    Idle,
    /// Inside a member whose data (if any) is discarded.
    Skipping,
    /// Inside a regular file, which the writer thread fills.
    File,
}

/// Writes a stream of [`Item`]s into a directory handle, confined to it.
pub struct Applier<'fd> {
    _root: PhantomData<BorrowedFd<'fd>>,
    mode: ApplyMode,
    res: Resolver,
    meta: Meta,
    state: State,
    /// Finishes regular files on a second thread (started at the first).
    writer: Option<writer::FileWriter>,
    deferred: Vec<DeferredDir>,
    /// Full-tree mode: `(dev, parent inode, name)` of every object this
    /// layer made, which an opaque marker must keep.
    unpacked: HashSet<(u64, u64, Vec<u8>)>,
    /// Overlay mode: directories this layer made opaque.
    opaque_dirs: Vec<Vec<u8>>,
    /// Overlay mode: whiteouts this layer made (normalised paths).
    made_whiteouts: Vec<Vec<u8>>,
    /// `.wh..wh.plnk` was extracted and must go at the end.
    plnk: bool,
    /// An entry of the stream set the root directory's metadata.
    root_entry: bool,
    /// See [`ApplierOptions::unshare`].
    unshare: Option<Unshare>,
    /// With `unshare`: `(dev, inode)` of every inode a hard link member of
    /// this stream linked to (made by the stream, or unshared first).
    linked_here: HashSet<(u64, u64)>,
}

impl<'fd> Applier<'fd> {
    /// An applier writing under `root`.
    pub fn new(root: BorrowedFd<'fd>, opts: ApplierOptions) -> Result<Self> {
        Self::with_resolution(root, opts, Resolution::Auto)
    }

    /// An applier writing under `root` that resolves paths as `resolution`
    /// says (tests use it to run the fallback walk next to openat2).
    pub fn with_resolution(
        root: BorrowedFd<'fd>,
        opts: ApplierOptions,
        resolution: Resolution,
    ) -> Result<Self> {
        let st = fs::fstat(root).map_err(|e| Error::io("stat of the layer root", e.into()))?;
        // Before the writer thread and the pipeline's threads exist: the
        // table then grows without waiting for the other threads.
        crate::fdtable::reserve(PEAK_FDS as u32);
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(Error::io(
                "layer root",
                std::io::Error::from(rustix::io::Errno::NOTDIR),
            ));
        }
        Ok(Self {
            _root: PhantomData,
            mode: opts.mode,
            res: Resolver::new(root, resolution)?,
            meta: Meta::new(opts.id_mappings, opts.ignore_chown_errors, opts.force_mask),
            state: State::Idle,
            writer: None,
            deferred: Vec::new(),
            unpacked: HashSet::new(),
            opaque_dirs: Vec::new(),
            made_whiteouts: Vec::new(),
            plnk: false,
            root_entry: false,
            unshare: opts.unshare,
            linked_here: HashSet::new(),
        })
    }

    /// Whether an entry of the stream was applied to the root directory
    /// (its owner, mode, xattrs and times then come from the stream).
    pub fn root_entry_applied(&self) -> bool {
        self.root_entry
    }

    /// How directories were resolved so far.
    pub fn resolve_stats(&self) -> ResolveStats {
        self.res.stats
    }

    /// Consumes one item of the entry stream.
    pub fn push(&mut self, item: Item) -> Result<()> {
        match item {
            Item::Header(h) => {
                if !matches!(self.state, State::Idle) {
                    return Err(Error::InvalidHeader(format!(
                        "entry stream: header of {:?} inside another member",
                        lossy(&h.raw_path)
                    )));
                }
                self.state = State::Skipping;
                self.begin(h)
            }
            Item::Data { offset, bytes } => match &mut self.state {
                State::File => self.file_job(writer::Job::Data { offset, bytes }),
                State::Skipping => Ok(()),
                State::Idle => Err(Error::InvalidHeader(
                    "entry stream: data outside a member".into(),
                )),
            },
            Item::End => match std::mem::replace(&mut self.state, State::Idle) {
                State::File => self.file_job(writer::Job::End),
                State::Skipping => Ok(()),
                State::Idle => Err(Error::InvalidHeader(
                    "entry stream: end outside a member".into(),
                )),
            },
        }
    }

    /// Finishes: removes AUFS link stashes and sets deferred directory times.
    pub fn finish(mut self) -> Result<()> {
        if !matches!(self.state, State::Idle) {
            return Err(Error::UnexpectedEof(
                "entry stream ended inside a member".into(),
            ));
        }
        if let Some(w) = self.writer.take() {
            let m = w.finish()?;
            self.meta.absorb(m);
        }
        if self.plnk {
            let root = self.res.root().clone();
            ops::remove_any(root.fd.as_fd(), path::PLNK_DIR).map_err(|e| Error::Path {
                op: "remove",
                path: lossy(path::PLNK_DIR),
                source: e.into(),
            })?;
            self.res.invalidate();
        }
        // Children before parents: a parent's final mode may forbid
        // reaching its children.
        let deferred = std::mem::take(&mut self.deferred);
        for d in deferred.iter().rev() {
            self.set_dir_times(d)?;
        }
        self.meta.summarize();
        Ok(())
    }

    /// Hands a step of the current regular file to the writer thread.
    fn file_job(&mut self, job: writer::Job) -> Result<()> {
        let w = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(writer::FileWriter::start(&self.meta)?),
        };
        w.push(job)
    }

    /// Waits until the writer thread has finished every file handed to it.
    fn sync_files(&mut self) -> Result<()> {
        match &mut self.writer {
            Some(w) => w.sync(),
            None => Ok(()),
        }
    }

    fn set_dir_times(&mut self, d: &DeferredDir) -> Result<()> {
        if d.path.is_empty() {
            let fd = resolve::reopen_dir(self.res.root().fd.as_fd())
                .map_err(|e| Error::io("open layer root", e))?;
            let t = meta::Target::Fd(fd.as_fd());
            self.meta.times(t, &d.times, b".")?;
            if let Some(mode) = d.mode {
                self.meta.chmod(t, mode, b".")?;
            }
            return Ok(());
        }
        let (parent, name) = path::split_parent(&d.path);
        // The directory may have been deleted or replaced since: then its
        // times are not ours to set.
        let Ok(dir) = self.res.dir(parent, Missing::Fail) else {
            return Ok(());
        };
        let st = resolve::lstat_at(dir.fd.as_fd(), name).map_err(|e| Error::Path {
            op: "stat",
            path: lossy(&d.path),
            source: e,
        })?;
        match st {
            Some(st)
                if (st.st_dev, st.st_ino) == d.ident
                    && FileType::from_raw_mode(st.st_mode) == FileType::Directory =>
            {
                if let Some(mode) = d.mode {
                    let t = meta::Target::At {
                        dir: dir.fd.as_fd(),
                        name,
                        symlink: false,
                    };
                    self.meta.chmod(t, mode, &d.path)?;
                }
                fs::utimensat(dir.fd.as_fd(), name, &d.times, AtFlags::SYMLINK_NOFOLLOW).map_err(
                    |e| Error::Path {
                        op: "set times of",
                        path: lossy(&d.path),
                        source: e.into(),
                    },
                )
            }
            _ => Ok(()),
        }
    }
}

impl OpenFile {
    fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.file
            .write_all_at(bytes, offset)
            .map_err(|e| Error::Path {
                op: "write",
                path: lossy(&self.path),
                source: e,
            })?;
        self.end = self.end.max(offset + bytes.len() as u64);
        Ok(())
    }
}
