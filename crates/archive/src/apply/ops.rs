//! Confined removal and listing of directory entries.
//!
//! Everything works on a directory descriptor and a plain name; symlinks are
//! removed, never followed, and subdirectories are opened with `O_NOFOLLOW`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{self, AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Opens the real directory `name` in `dir` for reading, refusing symlinks.
pub(crate) fn open_subdir(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Names in a directory (without `.` and `..`) and whether each is a
/// directory.
pub(crate) fn list(dir: BorrowedFd<'_>) -> rustix::io::Result<Vec<(Vec<u8>, bool)>> {
    let mut out = Vec::new();
    for e in Dir::read_from(dir)? {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let is_dir = match e.file_type() {
            FileType::Directory => true,
            FileType::Unknown => match fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode) == FileType::Directory,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e),
            },
            _ => false,
        };
        out.push((name.to_vec(), is_dir));
    }
    Ok(out)
}

/// What [`remove_any`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removed {
    /// Nothing was there.
    Nothing,
    /// A directory (with its contents) or a symlink: names below or through
    /// it may now resolve differently.
    DirOrLink,
    /// Anything else.
    Other,
}

/// Removes `name` in `dir` whatever it is: directories with their contents.
pub(crate) fn remove_any(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<Removed> {
    let st = match fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(Removed::Nothing),
        Err(e) => return Err(e),
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            remove_tree(dir, name)?;
            Ok(Removed::DirOrLink)
        }
        t => {
            match fs::unlinkat(dir, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e),
            }
            Ok(if t == FileType::Symlink {
                Removed::DirOrLink
            } else {
                Removed::Other
            })
        }
    }
}

struct Frame {
    fd: OwnedFd,
    name: Vec<u8>,
    todo: Vec<(Vec<u8>, bool)>,
    relisted: u8,
}

/// Removes the directory `name` in `dir` and everything below it, without
/// recursion (deep hostile trees must not overflow the stack).
pub(crate) fn remove_tree(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<()> {
    let fd = open_subdir(dir, name)?;
    let todo = list(fd.as_fd())?;
    let mut stack = vec![Frame {
        fd,
        name: name.to_vec(),
        todo,
        relisted: 0,
    }];
    while let Some(top) = stack.last_mut() {
        if let Some((n, is_dir)) = top.todo.pop() {
            if is_dir {
                match open_subdir(top.fd.as_fd(), &n) {
                    Ok(fd) => {
                        let todo = list(fd.as_fd())?;
                        stack.push(Frame {
                            fd,
                            name: n,
                            todo,
                            relisted: 0,
                        });
                    }
                    Err(Errno::NOENT) => {}
                    // Replaced by a non-directory since it was listed.
                    Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
                        match fs::unlinkat(top.fd.as_fd(), n.as_slice(), AtFlags::empty()) {
                            Ok(()) | Err(Errno::NOENT) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Err(e) => return Err(e),
                }
            } else {
                match fs::unlinkat(top.fd.as_fd(), n.as_slice(), AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(Errno::ISDIR) => top.todo.push((n, true)),
                    Err(e) => return Err(e),
                }
            }
            continue;
        }
        let parent_index = stack.len() - 1;
        let frame_name = stack[parent_index].name.clone();
        let r = {
            let parent = if parent_index == 0 {
                dir
            } else {
                stack[parent_index - 1].fd.as_fd()
            };
            fs::unlinkat(parent, frame_name.as_slice(), AtFlags::REMOVEDIR)
        };
        match r {
            Ok(()) | Err(Errno::NOENT) => {
                stack.pop();
            }
            // Entries removed while listing can hide others from getdents:
            // list again a few times.
            Err(Errno::NOTEMPTY) if stack[parent_index].relisted < 3 => {
                let f = &mut stack[parent_index];
                f.relisted += 1;
                f.todo = list(f.fd.as_fd())?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn remove_tree_does_not_follow_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        std::fs::write(root.join("a/b/c/f"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a/b/link")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("a/b/c/up")).unwrap();
        let dir = std::fs::File::open(&root).unwrap();
        assert_eq!(remove_any(dir.as_fd(), b"a").unwrap(), Removed::DirOrLink);
        assert!(!root.join("a").exists());
        assert!(outside.join("keep").exists());
        assert_eq!(remove_any(dir.as_fd(), b"a").unwrap(), Removed::Nothing);
    }

    #[test]
    fn remove_deep_tree() {
        let t = tempfile::tempdir().unwrap();
        let mut p = t.path().join("deep");
        std::fs::create_dir(&p).unwrap();
        let d = std::fs::File::open(&p).unwrap();
        let mut cur = d.try_clone().unwrap();
        for _ in 0..300 {
            fs::mkdirat(cur.as_fd(), "d", Mode::from_raw_mode(0o755)).unwrap();
            cur = std::fs::File::from(open_subdir(cur.as_fd(), b"d").unwrap());
        }
        p.push("d");
        let top = std::fs::File::open(t.path()).unwrap();
        remove_tree(top.as_fd(), b"deep").unwrap();
        assert!(!t.path().join("deep").exists());
    }
}
