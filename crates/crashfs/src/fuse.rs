//! The FUSE side: each request becomes a change of the current tree (and
//! an entry of the pending log), a sync, or a read.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};

use crate::state::{Gate, Machine};
use crate::tree::{Content, Node, NsOp};

const TTL: Duration = Duration::from_secs(1);
const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// The machine plus open handles; one lock for both.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) m: Machine,
    handles: HashMap<u64, Handle>,
    open_count: HashMap<u64, u32>,
    next_fh: u64,
}

#[derive(Debug)]
struct Handle {
    ino: u64,
    /// A directory's entries as they were at `opendir`.
    listing: Option<Vec<(u64, FileType, std::ffi::OsString)>>,
}

impl Inner {
    pub(crate) fn new(m: Machine) -> Self {
        Inner {
            m,
            handles: HashMap::new(),
            open_count: HashMap::new(),
            next_fh: 1,
        }
    }

    fn open_handle(
        &mut self,
        ino: u64,
        listing: Option<Vec<(u64, FileType, std::ffi::OsString)>>,
    ) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, Handle { ino, listing });
        *self.open_count.entry(ino).or_default() += 1;
        self.m.open.insert(ino);
        fh
    }

    fn close_handle(&mut self, fh: u64) {
        let Some(h) = self.handles.remove(&fh) else {
            return;
        };
        let left = self.open_count.get_mut(&h.ino).map(|c| {
            *c -= 1;
            *c
        });
        if left == Some(0) {
            self.open_count.remove(&h.ino);
            self.m.open.remove(&h.ino);
            if self
                .m
                .current
                .nodes
                .get(&h.ino)
                .is_some_and(|n| n.links == 0)
            {
                self.m.current.remove_tree(h.ino);
            }
        }
    }

    fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.m.current.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        self.m.current.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let n = self.node(ino)?;
        let (size, nlink) = match &n.content {
            Content::File(d) => (d.len() as u64, n.links),
            Content::Symlink(t) => (t.len() as u64, n.links),
            Content::Special { .. } => (0, n.links),
            Content::Dir(e) => {
                let subdirs = e
                    .values()
                    .filter(|c| self.m.current.nodes.get(c).is_some_and(Node::is_dir))
                    .count();
                (4096, 2 + subdirs as u32)
            }
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: n.atime,
            mtime: n.mtime,
            ctime: n.ctime,
            crtime: n.ctime,
            kind: kind(n.mode),
            perm: (n.mode & 0o7777) as u16,
            nlink,
            uid: n.uid,
            gid: n.gid,
            rdev: match n.content {
                Content::Special { rdev } => rdev,
                _ => 0,
            },
            blksize: 4096,
            flags: 0,
        })
    }

    /// Counts a change; fails with EIO once the power is off.
    fn begin(&mut self) -> Result<(), Errno> {
        match self.m.before_op() {
            Gate::Go => Ok(()),
            Gate::Dead => Err(Errno::EIO),
        }
    }

    fn alive(&self) -> Result<(), Errno> {
        if self.m.is_dead() {
            Err(Errno::EIO)
        } else {
            Ok(())
        }
    }

    /// Applies a name change to the current tree and logs it.
    fn change(&mut self, op: NsOp, dirs: &[u64]) -> Result<(), Errno> {
        let open = self.m.open.clone();
        if !self.m.current.apply(&op, &open) {
            return Err(Errno::ENOENT);
        }
        let now = SystemTime::now();
        for d in dirs {
            if let Some(n) = self.m.current.nodes.get_mut(d) {
                n.mtime = now;
                n.ctime = now;
            }
        }
        self.m.log(op);
        Ok(())
    }

    fn make(
        &mut self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        node: Node,
    ) -> Result<FileAttr, Errno> {
        self.begin()?;
        let p = self.node(parent)?;
        let Some(e) = p.entries() else {
            return Err(Errno::ENOTDIR);
        };
        if e.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        // New inodes take the group of a set-group-ID directory.
        let gid = if p.mode & 0o2000 != 0 {
            p.gid
        } else {
            req.gid()
        };
        let mut node = node;
        node.uid = req.uid();
        node.gid = gid;
        if node.is_dir() && p.mode & 0o2000 != 0 {
            node.mode |= 0o2000;
        }
        let ino = self.m.alloc_ino();
        let op = NsOp::Link {
            parent,
            name: name.to_owned(),
            ino,
            fresh: Some(node),
        };
        self.change(op, &[parent])?;
        self.attr(ino)
    }

    fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        self.begin()?;
        let ino = self.m.current.child(parent, name).ok_or(Errno::ENOENT)?;
        let n = self.node(ino)?;
        match (dir, n.entries()) {
            (true, None) => return Err(Errno::ENOTDIR),
            (false, Some(_)) => return Err(Errno::EISDIR),
            (true, Some(e)) if !e.is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        self.node_mut(ino)?.ctime = SystemTime::now();
        let op = NsOp::Unlink {
            parent,
            name: name.to_owned(),
        };
        self.change(op, &[parent])
    }

    fn rename(
        &mut self,
        from: (u64, &OsStr),
        to: (u64, &OsStr),
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        self.begin()?;
        let src = self.m.current.child(from.0, from.1).ok_or(Errno::ENOENT)?;
        let dst = self.m.current.child(to.0, to.1);
        let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
        if flags.contains(RenameFlags::RENAME_NOREPLACE) && dst.is_some() {
            return Err(Errno::EEXIST);
        }
        if exchange && dst.is_none() {
            return Err(Errno::ENOENT);
        }
        if let (Some(d), false) = (dst, exchange) {
            let (sd, dd) = (self.node(src)?.is_dir(), self.node(d)?);
            match (sd, dd.entries()) {
                (true, None) => return Err(Errno::ENOTDIR),
                (false, Some(_)) => return Err(Errno::EISDIR),
                (true, Some(e)) if !e.is_empty() && d != src => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        let op = NsOp::Rename {
            from: (from.0, from.1.to_owned()),
            to: (to.0, to.1.to_owned()),
            exchange,
        };
        self.change(op, &[from.0, to.0])
    }

    fn set_attr(&mut self, ino: u64, a: &SetAttr) -> Result<FileAttr, Errno> {
        self.begin()?;
        let now = SystemTime::now();
        let n = self.node_mut(ino)?;
        if let Some(mode) = a.mode {
            n.mode = (n.mode & S_IFMT) | (mode & 0o7777);
        }
        if let Some(uid) = a.uid {
            n.uid = uid;
        }
        if let Some(gid) = a.gid {
            n.gid = gid;
        }
        if let Some(size) = a.size {
            match &mut n.content {
                Content::File(d) => d.resize(size as usize, 0),
                _ => return Err(Errno::EINVAL),
            }
            n.mtime = now;
        }
        let at = |t: TimeOrNow| match t {
            TimeOrNow::SpecificTime(t) => t,
            TimeOrNow::Now => now,
        };
        if let Some(t) = a.atime {
            n.atime = at(t);
        }
        if let Some(t) = a.mtime {
            n.mtime = at(t);
        }
        n.ctime = now;
        self.m.touch(ino);
        self.attr(ino)
    }

    fn write_at(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        self.begin()?;
        let n = self.node_mut(ino)?;
        let Content::File(d) = &mut n.content else {
            return Err(Errno::EISDIR);
        };
        let end = offset as usize + data.len();
        if d.len() < end {
            d.resize(end, 0);
        }
        d[offset as usize..end].copy_from_slice(data);
        let now = SystemTime::now();
        n.mtime = now;
        n.ctime = now;
        self.m.touch(ino);
        Ok(data.len() as u32)
    }

    fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        match self.m.fsync(ino) {
            Gate::Go => Ok(()),
            Gate::Dead => Err(Errno::EIO),
        }
    }
}

struct SetAttr {
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
}

fn kind(mode: u32) -> FileType {
    match mode & S_IFMT {
        S_IFDIR => FileType::Directory,
        S_IFREG => FileType::RegularFile,
        S_IFLNK => FileType::Symlink,
        0o020000 => FileType::CharDevice,
        0o060000 => FileType::BlockDevice,
        0o010000 => FileType::NamedPipe,
        _ => FileType::Socket,
    }
}

/// The filesystem fuser drives.
pub(crate) struct Fs {
    pub(crate) inner: Arc<Mutex<Inner>>,
}

impl Fs {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while locked would already have failed the test; keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn entry(reply: ReplyEntry, r: Result<FileAttr, Errno>) {
    match r {
        Ok(a) => reply.entry(&TTL, &a, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn empty(reply: ReplyEmpty, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn xattr_reply(reply: ReplyXattr, size: u32, data: &[u8]) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if data.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(data);
    }
}

impl Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let g = self.lock();
        let r = g.alive().and_then(|()| {
            let ino = g.m.current.child(parent.0, name).ok_or(Errno::ENOENT)?;
            g.attr(ino)
        });
        entry(reply, r);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let g = self.lock();
        match g.alive().and_then(|()| g.attr(ino.0)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let a = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        };
        match self.lock().set_attr(ino.0, &a) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let g = self.lock();
        match g.alive().and_then(|()| g.node(ino.0)).map(|n| &n.content) {
            Ok(Content::Symlink(t)) => {
                reply.data(std::os::unix::ffi::OsStrExt::as_bytes(t.as_os_str()))
            }
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let content = if mode & S_IFMT == S_IFREG {
            Content::File(Vec::new())
        } else {
            Content::Special { rdev }
        };
        let node = Node::new(mode, 0, 0, content);
        entry(reply, self.lock().make(req, parent.0, name, node));
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let node = Node::new(
            S_IFDIR | (mode & 0o7777),
            0,
            0,
            Content::Dir(Default::default()),
        );
        entry(reply, self.lock().make(req, parent.0, name, node));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.lock().remove(parent.0, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.lock().remove(parent.0, name, true));
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let node = Node::new(
            S_IFLNK | 0o777,
            0,
            0,
            Content::Symlink(target.as_os_str().to_owned()),
        );
        entry(reply, self.lock().make(req, parent.0, link_name, node));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = self
            .lock()
            .rename((parent.0, name), (newparent.0, newname), flags);
        empty(reply, r);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let mut g = self.lock();
        let r = g.begin().and_then(|()| {
            if g.node(ino.0)?.is_dir() {
                return Err(Errno::EPERM);
            }
            if g.m.current.child(newparent.0, newname).is_some() {
                return Err(Errno::EEXIST);
            }
            g.node_mut(ino.0)?.ctime = SystemTime::now();
            let op = NsOp::Link {
                parent: newparent.0,
                name: newname.to_owned(),
                ino: ino.0,
                fresh: None,
            };
            g.change(op, &[newparent.0])?;
            g.attr(ino.0)
        });
        entry(reply, r);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut g = self.lock();
        match g.alive().and_then(|()| g.node(ino.0).map(drop)) {
            Ok(()) => reply.opened(FileHandle(g.open_handle(ino.0, None)), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let g = self.lock();
        match g.alive().and_then(|()| g.node(ino.0)).map(|n| &n.content) {
            Ok(Content::File(d)) => {
                let start = (offset as usize).min(d.len());
                let end = (start + size as usize).min(d.len());
                reply.data(&d[start..end]);
            }
            Ok(_) => reply.error(Errno::EISDIR),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.lock().write_at(ino.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.lock().close_handle(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(reply, self.lock().sync(ino.0));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut g = self.lock();
        let listing = g.alive().and_then(|()| {
            let e = g.node(ino.0)?.entries().ok_or(Errno::ENOTDIR)?;
            Ok(e.iter()
                .map(|(name, c)| {
                    let k =
                        g.m.current
                            .nodes
                            .get(c)
                            .map_or(FileType::RegularFile, |n| kind(n.mode));
                    (*c, k, name.clone())
                })
                .collect::<Vec<_>>())
        });
        match listing {
            Ok(l) => reply.opened(
                FileHandle(g.open_handle(ino.0, Some(l))),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let g = self.lock();
        if let Err(e) = g.alive() {
            return reply.error(e);
        }
        let Some(listing) = g.handles.get(&fh.0).and_then(|h| h.listing.as_ref()) else {
            return reply.error(Errno::EBADF);
        };
        let dots = [
            (ino.0, FileType::Directory, OsStr::new(".")),
            (ino.0, FileType::Directory, OsStr::new("..")),
        ];
        let all = dots
            .into_iter()
            .chain(listing.iter().map(|(i, k, n)| (*i, *k, n.as_os_str())));
        for (idx, (i, k, n)) in all.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(i), idx as u64 + 1, k, n) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.lock().close_handle(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(reply, self.lock().sync(ino.0));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let mut g = self.lock();
        let r = g.begin().and_then(|()| {
            let n = g.node_mut(ino.0)?;
            let exists = n.xattrs.contains_key(name);
            if flags & libc::XATTR_CREATE != 0 && exists {
                return Err(Errno::EEXIST);
            }
            if flags & libc::XATTR_REPLACE != 0 && !exists {
                return Err(Errno::NO_XATTR);
            }
            n.xattrs.insert(name.to_owned(), value.to_vec());
            n.ctime = SystemTime::now();
            g.m.touch(ino.0);
            Ok(())
        });
        empty(reply, r);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let g = self.lock();
        match g
            .alive()
            .and_then(|()| g.node(ino.0))
            .map(|n| n.xattrs.get(name))
        {
            Ok(Some(v)) => xattr_reply(reply, size, v),
            Ok(None) => reply.error(Errno::NO_XATTR),
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let g = self.lock();
        match g.alive().and_then(|()| g.node(ino.0)) {
            Ok(n) => {
                let mut list = Vec::new();
                for k in n.xattrs.keys() {
                    list.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(k.as_os_str()));
                    list.push(0);
                }
                xattr_reply(reply, size, &list);
            }
            Err(e) => reply.error(e),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut g = self.lock();
        let r = g.begin().and_then(|()| {
            let n = g.node_mut(ino.0)?;
            n.xattrs.remove(name).ok_or(Errno::NO_XATTR)?;
            n.ctime = SystemTime::now();
            g.m.touch(ino.0);
            Ok(())
        });
        empty(reply, r);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut g = self.lock();
        let node = Node::new(S_IFREG | (mode & 0o7777), 0, 0, Content::File(Vec::new()));
        match g.make(req, parent.0, name, node) {
            Ok(a) => {
                let fh = g.open_handle(a.ino.0, None);
                reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let mut g = self.lock();
        let r = g
            .begin()
            .and_then(|()| match &mut g.node_mut(ino.0)?.content {
                Content::File(d) => {
                    let end = (offset + length) as usize;
                    if d.len() < end {
                        d.resize(end, 0);
                    }
                    g.m.touch(ino.0);
                    Ok(())
                }
                _ => Err(Errno::EISDIR),
            });
        empty(reply, r);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        ino_in: INodeNo,
        _fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        _fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let mut g = self.lock();
        let data = match g
            .alive()
            .and_then(|()| g.node(ino_in.0))
            .map(|n| &n.content)
        {
            Ok(Content::File(d)) => {
                let start = (offset_in as usize).min(d.len());
                let end = (start + len.min(u32::MAX as u64) as usize).min(d.len());
                d[start..end].to_vec()
            }
            Ok(_) => return reply.error(Errno::EISDIR),
            Err(e) => return reply.error(e),
        };
        match g.write_at(ino_out.0, offset_out, &data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }
}
