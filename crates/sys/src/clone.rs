//! Copying file data the cheap way: a reflink
//! ([`FICLONE`](https://man7.org/linux/man-pages/man2/ioctl_ficlone.2.html))
//! where the filesystem shares extents (btrfs, xfs), else in-kernel
//! [copy_file_range(2)](https://man7.org/linux/man-pages/man2/copy_file_range.2.html),
//! else plain reads and writes. Holes of sparse files stay holes: data
//! segments are found with `SEEK_DATA`/`SEEK_HOLE` and only they are copied.
//!
//! rustix provides the system calls; this module adds the fallback chain.

use std::io;
use std::os::fd::AsFd;

use rustix::fs::SeekFrom;
use rustix::io::Errno;

/// How data was (or should first be tried to be) copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CopyMethod {
    /// Share extents with `FICLONE` (reflink).
    Clone,
    /// In-kernel `copy_file_range`.
    CopyRange,
    /// `pread`/`pwrite` through a buffer.
    ReadWrite,
}

/// Makes `dst` share all of `src`'s extents (`ioctl(FICLONE)`).
pub fn ficlone(dst: impl AsFd, src: impl AsFd) -> io::Result<()> {
    rustix::fs::ioctl_ficlone(dst, src).map_err(io::Error::from)
}

/// Size facts of a source file, as `fstat(2)` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Logical size in bytes (`st_size`).
    pub len: u64,
    /// Allocated bytes (`st_blocks * 512`); less than `len` means holes.
    pub allocated: u64,
}

/// Copies the whole content of `src` into the empty file `dst`, trying
/// `start` first and falling back to the cheaper-to-support methods when the
/// filesystem refuses. Returns the method that worked, so a caller copying
/// many files can start there next time.
pub fn copy_data(src: impl AsFd, dst: impl AsFd, start: CopyMethod) -> io::Result<CopyMethod> {
    let st = rustix::fs::fstat(src.as_fd())?;
    let extent = Extent {
        len: u64::try_from(st.st_size).unwrap_or(0),
        allocated: (st.st_blocks as u64).saturating_mul(512),
    };
    copy_extent(src, dst, extent, start)
}

/// [`copy_data`] for a caller that already has the source's `stat`.
pub fn copy_extent(
    src: impl AsFd,
    dst: impl AsFd,
    extent: Extent,
    start: CopyMethod,
) -> io::Result<CopyMethod> {
    let (src, dst) = (src.as_fd(), dst.as_fd());
    let len = extent.len;
    if len == 0 {
        return Ok(start);
    }
    let mut method = start;
    if method == CopyMethod::Clone {
        match rustix::fs::ioctl_ficlone(dst, src) {
            Ok(()) => return Ok(CopyMethod::Clone),
            Err(e) if unsupported(e) => method = CopyMethod::CopyRange,
            Err(e) => return Err(e.into()),
        }
    }
    // Fewer allocated blocks than the size means holes (or inline data);
    // then copy only the data segments.
    let segments = if extent.allocated < len {
        data_segments(src, len)?
    } else {
        vec![(0, len)]
    };
    let end = segments.last().map_or(0, |(o, l)| o + l);
    for (off, seg_len) in segments {
        method = copy_segment(src, dst, (off, seg_len), method)?;
    }
    if end < len {
        // Trailing hole: extend to the full size without writing.
        rustix::fs::ftruncate(dst, len)?;
    }
    Ok(method)
}

/// Errors meaning "this filesystem or kernel cannot do that", after which a
/// simpler method is worth trying.
fn unsupported(e: Errno) -> bool {
    e == Errno::OPNOTSUPP
        || e == Errno::NOTTY
        || e == Errno::XDEV
        || e == Errno::INVAL
        || e == Errno::NOSYS
        || e == Errno::PERM
        || e == Errno::BADF
}

/// `(offset, length)` of each data segment of a file of size `len`.
fn data_segments(fd: rustix::fd::BorrowedFd<'_>, len: u64) -> io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let data = match rustix::fs::seek(fd, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(Errno::NXIO) => break, // only a hole remains
            Err(e) if unsupported(e) => return Ok(vec![(0, len)]),
            Err(e) => return Err(e.into()),
        };
        let hole = match rustix::fs::seek(fd, SeekFrom::Hole(data)) {
            Ok(h) => h.min(len),
            Err(e) => return Err(e.into()),
        };
        if hole > data {
            out.push((data, hole - data));
        }
        pos = hole.max(data + 1);
    }
    Ok(out)
}

fn copy_segment(
    src: rustix::fd::BorrowedFd<'_>,
    dst: rustix::fd::BorrowedFd<'_>,
    (off, len): (u64, u64),
    method: CopyMethod,
) -> io::Result<CopyMethod> {
    let mut done = 0u64;
    if method <= CopyMethod::CopyRange {
        while done < len {
            let mut off_in = off + done;
            let mut off_out = off + done;
            let chunk = usize::try_from(len - done)
                .unwrap_or(usize::MAX)
                .min(1 << 30);
            match rustix::fs::copy_file_range(
                src,
                Some(&mut off_in),
                dst,
                Some(&mut off_out),
                chunk,
            ) {
                Ok(0) => break, // source shrank under us
                Ok(n) => done += n as u64,
                Err(Errno::INTR) => continue,
                Err(e) if unsupported(e) && done == 0 => {
                    return read_write(src, dst, (off, len)).map(|()| CopyMethod::ReadWrite)
                }
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(CopyMethod::CopyRange);
    }
    read_write(src, dst, (off, len))?;
    Ok(CopyMethod::ReadWrite)
}

fn read_write(
    src: rustix::fd::BorrowedFd<'_>,
    dst: rustix::fd::BorrowedFd<'_>,
    (off, len): (u64, u64),
) -> io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    while done < len {
        let want = usize::try_from(len - done)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = match rustix::io::pread(src, &mut buf[..want], off + done) {
            Ok(0) => break,
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut w = 0;
        while w < n {
            match rustix::io::pwrite(dst, &buf[w..n], off + done + w as u64) {
                Ok(m) => w += m,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};
    use std::os::unix::fs::MetadataExt;

    fn sparse_file(path: &std::path::Path) -> Vec<u8> {
        let mut f = std::fs::File::create(path).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(io::SeekFrom::Start(4 << 20)).unwrap();
        f.write_all(b"middle").unwrap();
        f.set_len(12 << 20).unwrap();
        std::fs::read(path).unwrap()
    }

    #[test]
    fn every_method_copies_content_and_keeps_holes() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let src_path = dir.path().join("src");
        let want = sparse_file(&src_path);
        for (i, start) in [
            CopyMethod::Clone,
            CopyMethod::CopyRange,
            CopyMethod::ReadWrite,
        ]
        .into_iter()
        .enumerate()
        {
            let dst_path = dir.path().join(format!("dst{i}"));
            let src = std::fs::File::open(&src_path).unwrap();
            let dst = std::fs::File::create(&dst_path).unwrap();
            let used = copy_data(&src, &dst, start).unwrap();
            assert!(used >= start, "{used:?} tried before {start:?}");
            drop(dst);
            assert_eq!(std::fs::read(&dst_path).unwrap(), want, "{start:?}");
            let m = std::fs::metadata(&dst_path).unwrap();
            assert_eq!(m.len(), 12 << 20);
            // 12 MiB logical; a copy that wrote the holes would use all of it.
            assert!(
                m.blocks() * 512 < 2 << 20,
                "{start:?}: holes filled ({} blocks)",
                m.blocks()
            );
        }
    }

    #[test]
    fn empty_and_dense_files() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let dense: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        for (name, content) in [("empty", Vec::new()), ("dense", dense)] {
            let s = dir.path().join(name);
            std::fs::write(&s, &content).unwrap();
            let d = dir.path().join(format!("{name}.copy"));
            let src = std::fs::File::open(&s).unwrap();
            let dst = std::fs::File::create(&d).unwrap();
            copy_data(&src, &dst, CopyMethod::Clone).unwrap();
            drop(dst);
            assert_eq!(std::fs::read(&d).unwrap(), content);
        }
    }

    /// A source file and an empty destination on the filesystem at `mnt`.
    fn pair(mnt: &std::path::Path) -> (std::fs::File, std::fs::File) {
        std::fs::write(mnt.join("s"), b"shared data").unwrap();
        let src = std::fs::File::open(mnt.join("s")).unwrap();
        let dst = std::fs::File::create(mnt.join("d")).unwrap();
        (src, dst)
    }

    /// ext4 has no reflinks: FICLONE fails with EOPNOTSUPP, which the copy
    /// takes as "try the next method", and the copy still succeeds.
    #[test]
    fn privileged_ficlone_on_ext4_is_refused_as_unsupported() {
        let test = "privileged_ficlone_on_ext4_is_refused_as_unsupported";
        let opts = strata_testsupport::LoopOptions::new("ext4", 64);
        let Some(fs) = strata_testsupport::LoopFs::new(test, &opts) else {
            return;
        };
        let (src, dst) = pair(fs.mnt());
        let e = ficlone(&dst, &src).expect_err("FICLONE worked on ext4");
        assert_eq!(
            e.raw_os_error(),
            Some(Errno::OPNOTSUPP.raw_os_error()),
            "{e}"
        );
        assert!(unsupported(Errno::from_io_error(&e).unwrap()));
        let used = copy_data(&src, &dst, CopyMethod::Clone).unwrap();
        assert!(used > CopyMethod::Clone, "{used:?}");
        drop(dst);
        assert_eq!(std::fs::read(fs.mnt().join("d")).unwrap(), b"shared data");
    }

    /// XFS with reflinks: FICLONE shares the data, and the copy says so.
    #[test]
    fn privileged_ficlone_on_xfs_shares_extents() {
        let test = "privileged_ficlone_on_xfs_shares_extents";
        let mut opts = strata_testsupport::LoopOptions::new("xfs", 300);
        opts.mkfs_args = vec!["-m".into(), "reflink=1".into()];
        let Some(fs) = strata_testsupport::LoopFs::new(test, &opts) else {
            return;
        };
        let (src, dst) = pair(fs.mnt());
        ficlone(&dst, &src).unwrap();
        assert_eq!(std::fs::read(fs.mnt().join("d")).unwrap(), b"shared data");
        let dst2 = std::fs::File::create(fs.mnt().join("d2")).unwrap();
        assert_eq!(
            copy_data(&src, &dst2, CopyMethod::Clone).unwrap(),
            CopyMethod::Clone
        );
        drop(dst2);
        assert_eq!(std::fs::read(fs.mnt().join("d2")).unwrap(), b"shared data");
    }
}
