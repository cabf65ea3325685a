//! Named files of a source: a directory (an OCI layout) or the members of
//! a tar archive, opened at random without unpacking it.
//!
//! An archive is indexed once (headers only; contents are skipped with
//! seeks), then each member is read in place with positioned reads, so a
//! blob is read exactly once and never copied to a temporary file. Member
//! names and link targets are resolved inside the archive: one that leaves
//! it (`../x`, `/x`, a link to either) is refused when the index is built.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Error, Result};

/// Most members an archive may have (an image archive has a handful per
/// layer; the cap keeps the index's memory bounded).
const MEMBERS_MAX: usize = 1 << 16;
/// Most links followed to reach a member.
const LINKS_MAX: usize = 16;

/// Where a source's files come from.
pub(crate) enum Files {
    /// A directory.
    Dir(PathBuf),
    /// Members of a tar archive.
    Archive(TarIndex),
}

/// An open file of a source and its size.
pub(crate) struct Opened {
    pub reader: Box<dyn Read + Send>,
    pub size: u64,
}

impl Files {
    /// Opens `name` (a `/`-separated path relative to the source's root).
    pub fn open(&self, name: &str) -> Result<Opened> {
        match self {
            Files::Dir(root) => {
                let path = root.join(name);
                let f = File::open(&path)
                    .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
                let size = f
                    .metadata()
                    .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
                    .len();
                Ok(Opened {
                    reader: Box::new(io::BufReader::with_capacity(256 * 1024, f)),
                    size,
                })
            }
            Files::Archive(index) => index.open(name),
        }
    }

    /// A description for error messages.
    pub fn describe(&self) -> String {
        match self {
            Files::Dir(p) => p.display().to_string(),
            Files::Archive(i) => i.path.display().to_string(),
        }
    }
}

#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Symlink(String),
    Hardlink(String),
    Other,
}

/// The members of a tar archive by cleaned name.
pub(crate) struct TarIndex {
    path: PathBuf,
    file: Arc<File>,
    members: HashMap<String, Member>,
}

impl TarIndex {
    /// Reads the archive's headers.
    pub fn build(path: &Path) -> Result<Self> {
        let ctx = || format!("reading archive {}", path.display());
        let file = File::open(path).map_err(|e| Error::io(ctx(), e))?;
        let mut prefix = [0u8; 6];
        let n = file
            .read_at(&mut prefix, 0)
            .map_err(|e| Error::io(ctx(), e))?;
        let compression = strata_archive::Compression::detect(&prefix[..n]);
        if compression != strata_archive::Compression::None {
            return Err(Error::Unsupported(format!(
                "archive {} is {}-compressed; decompress it first (strata reads archives in place)",
                path.display(),
                compression.name()
            )));
        }
        let mut archive = tar::Archive::new(&file);
        let entries = archive
            .entries_with_seek()
            .map_err(|e| Error::io(ctx(), e))?;
        let mut members = HashMap::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(ctx(), e))?;
            if members.len() >= MEMBERS_MAX {
                return Err(Error::Unsupported(format!(
                    "archive {} has more than {MEMBERS_MAX} members",
                    path.display()
                )));
            }
            let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = clean(&raw_name, "").ok_or_else(|| escape(path, &raw_name))?;
            let link = || {
                entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default()
            };
            let member = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => Member::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
                tar::EntryType::Symlink => {
                    let target = link();
                    let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                    if target.starts_with('/') {
                        return Err(escape(path, &format!("{raw_name} -> {target}")));
                    }
                    let resolved = clean(&target, dir)
                        .ok_or_else(|| escape(path, &format!("{raw_name} -> {target}")))?;
                    Member::Symlink(resolved)
                }
                tar::EntryType::Link => {
                    let target = link();
                    let resolved = clean(&target, "")
                        .ok_or_else(|| escape(path, &format!("{raw_name} => {target}")))?;
                    Member::Hardlink(resolved)
                }
                _ => Member::Other,
            };
            members.insert(name, member);
        }
        Ok(TarIndex {
            path: path.to_path_buf(),
            file: Arc::new(file),
            members,
        })
    }

    fn open(&self, name: &str) -> Result<Opened> {
        let missing = || {
            Error::io(
                format!("archive {}: member {name:?}", self.path.display()),
                io::Error::from(io::ErrorKind::NotFound),
            )
        };
        let mut key = clean(name, "").ok_or_else(|| escape(&self.path, name))?;
        for _ in 0..LINKS_MAX {
            match self.members.get(&key).ok_or_else(missing)? {
                Member::File { offset, size } => {
                    return Ok(Opened {
                        reader: Box::new(Section {
                            file: self.file.clone(),
                            pos: *offset,
                            end: offset + size,
                        }),
                        size: *size,
                    })
                }
                Member::Symlink(t) | Member::Hardlink(t) => key = t.clone(),
                Member::Other => {
                    return Err(Error::document(
                        "archive member",
                        name,
                        "is not a regular file",
                    ))
                }
            }
        }
        Err(Error::document(
            "archive member",
            name,
            "too many levels of links",
        ))
    }
}

fn escape(archive: &Path, member: &str) -> Error {
    Error::Escape {
        archive: archive.to_path_buf(),
        member: member.to_string(),
    }
}

/// `name` resolved against the directory `base` (both relative to the
/// archive's root): `.` and empty components dropped, `..` taken back.
/// `None` when it leaves the root (an absolute name, or `..` past it).
fn clean(name: &str, base: &str) -> Option<String> {
    if name.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// A member's bytes, read with positioned reads so several members can be
/// read at once through one descriptor.
struct Section {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for Section {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ends inside a member",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_inside_the_archive() {
        assert_eq!(clean("a/./b//c", "").as_deref(), Some("a/b/c"));
        assert_eq!(clean("../x.tar", "id").as_deref(), Some("x.tar"));
        assert_eq!(clean("a/../b", "").as_deref(), Some("b"));
        assert_eq!(clean("../x", ""), None);
        assert_eq!(clean("../../x", "id"), None);
        assert_eq!(clean("/etc/passwd", ""), None);
    }
}
