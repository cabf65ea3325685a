//! Where an export writes: a directory, or a tar archive written in one
//! pass.
//!
//! A blob's name and size are known only after it is written (its name is
//! its digest). In a directory it goes to a temporary file that is renamed;
//! in an archive its header is written as a placeholder, the content
//! streams after it, and the header is rewritten in place once the digest
//! and size are known — no temporary copy either way.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::{Error, Result};

const BLOCK: u64 = 512;

/// A destination for files and blobs.
pub(crate) enum Out {
    /// A directory (an OCI layout).
    Dir(PathBuf),
    /// A tar archive being written.
    Tar(TarOut),
}

pub(crate) struct TarOut {
    path: PathBuf,
    file: BufWriter<File>,
    pos: u64,
}

/// What a blob's writer measured.
pub(crate) struct Written {
    pub digest: Digest,
    pub size: u64,
}

impl Out {
    /// A new archive at `path` (replacing any file there).
    pub fn tar(path: &Path) -> Result<Self> {
        let f =
            File::create(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        Ok(Out::Tar(TarOut {
            path: path.to_path_buf(),
            file: BufWriter::with_capacity(1 << 20, f),
            pos: 0,
        }))
    }

    /// Writes a small file under `name`.
    pub fn file(&mut self, name: &str, data: &[u8]) -> Result<()> {
        match self {
            Out::Dir(root) => {
                let p = root.join(name);
                write_atomic(&p, data)
            }
            Out::Tar(t) => {
                let at = t.placeholder()?;
                t.write_all(data)?;
                t.close_member(at, name, data.len() as u64)
            }
        }
    }

    /// Streams a blob written by `write`; it is stored under the name
    /// `name_for(digest)`.
    pub fn blob(
        &mut self,
        name_for: impl Fn(&Digest) -> String,
        write: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<Written> {
        match self {
            Out::Dir(root) => {
                let dir = root.join("blobs/sha256");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
                let tmp = dir.join(format!(".tmp-{}", std::process::id()));
                let f = File::create(&tmp)
                    .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
                let mut h = Hashing::new(BufWriter::with_capacity(1 << 20, f));
                let res = write(&mut h).and_then(|()| {
                    let (w, written) = h.finish();
                    w.into_inner().map_err(|e| {
                        Error::io(format!("writing {}", tmp.display()), e.into_error())
                    })?;
                    Ok(written)
                });
                match res {
                    Ok(written) => {
                        let dest = root.join(name_for(&written.digest));
                        std::fs::rename(&tmp, &dest)
                            .map_err(|e| Error::io(format!("renaming to {}", dest.display()), e))?;
                        Ok(written)
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        Err(e)
                    }
                }
            }
            Out::Tar(t) => {
                let at = t.placeholder()?;
                let mut h = Hashing::new(&mut *t);
                write(&mut h)?;
                let (_, written) = h.finish();
                t.close_member(at, &name_for(&written.digest), written.size)?;
                Ok(written)
            }
        }
    }

    /// Ends the archive (two zero blocks) and flushes it.
    pub fn finish(self) -> Result<()> {
        match self {
            Out::Dir(_) => Ok(()),
            Out::Tar(mut t) => {
                t.write_all(&[0u8; 2 * BLOCK as usize])?;
                let ctx = format!("writing {}", t.path.display());
                let f = t
                    .file
                    .into_inner()
                    .map_err(|e| Error::io(ctx.clone(), e.into_error()))?;
                f.sync_all().map_err(|e| Error::io(ctx, e))
            }
        }
    }
}

impl TarOut {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.file
            .write_all(data)
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))?;
        self.pos += data.len() as u64;
        Ok(())
    }

    /// Reserves a header block; returns its offset.
    fn placeholder(&mut self) -> Result<u64> {
        let at = self.pos;
        self.write_all(&[0u8; BLOCK as usize])?;
        Ok(at)
    }

    /// Pads the member's content and writes its real header at `at`.
    fn close_member(&mut self, at: u64, name: &str, size: u64) -> Result<()> {
        let pad = (BLOCK - self.pos % BLOCK) % BLOCK;
        self.write_all(&vec![0u8; pad as usize])?;
        let mut h = tar::Header::new_ustar();
        h.set_path(name)
            .map_err(|e| Error::io(format!("archive member {name}"), e))?;
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let ctx = || format!("writing {}", self.path.display());
        self.file.flush().map_err(|e| Error::io(ctx(), e))?;
        let f = self.file.get_mut();
        f.write_all_at(h.as_bytes(), at)
            .map_err(|e| Error::io(ctx(), e))?;
        f.seek(SeekFrom::Start(self.pos))
            .map_err(|e| Error::io(ctx(), e))?;
        Ok(())
    }
}

impl Write for TarOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Hashes and counts what passes through.
pub(crate) struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Hashing<W> {
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    pub fn finish(self) -> (W, Written) {
        (
            self.inner,
            Written {
                digest: Digest::from_sha256(self.hasher.finalize().into()),
                size: self.size,
            },
        )
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".tmp-{}-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, data)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(format!("writing {}", path.display()), e)
        })
}
