//! Parser of `/proc/<pid>/mountinfo`
//! ([proc_pid_mountinfo(5)](https://man7.org/linux/man-pages/man5/proc_pid_mountinfo.5.html)).
//!
//! One line per mount:
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)    (10)         (11)
//! ```
//!
//! Paths and sources escape space, tab, newline and backslash as octal
//! (`\040`, `\011`, `\012`, `\134`); [`parse`] decodes them. The parser takes
//! bytes; [`read_self`] is the only function doing I/O.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Mount ID (field 1).
    pub mount_id: u32,
    /// Parent mount ID (field 2).
    pub parent_id: u32,
    /// Device major number (field 3).
    pub major: u32,
    /// Device minor number (field 3).
    pub minor: u32,
    /// Root of the mount inside its filesystem (field 4), decoded.
    pub root: PathBuf,
    /// Mount point (field 5), decoded.
    pub mount_point: PathBuf,
    /// Per-mount options (field 6), e.g. `rw,noatime`.
    pub mount_options: String,
    /// Optional fields (field 7), e.g. `shared:1`, `master:2`.
    pub optional: Vec<String>,
    /// Filesystem type (field 9), e.g. `overlay`, `fuse.fuse-overlayfs`.
    pub fs_type: String,
    /// Mount source (field 10), decoded.
    pub source: String,
    /// Per-superblock options (field 11).
    pub super_options: String,
}

/// Why a mountinfo line was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("mountinfo line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub reason: &'static str,
}

/// Parses a whole mountinfo file. Empty lines are skipped.
pub fn parse(data: &[u8]) -> Result<Vec<MountInfo>, ParseError> {
    data.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| {
            parse_line(l).map_err(|reason| ParseError {
                line: i + 1,
                reason,
            })
        })
        .collect()
}

/// Parses one line (without the newline).
pub fn parse_line(line: &[u8]) -> Result<MountInfo, &'static str> {
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let mut next = |what: &'static str| fields.next().ok_or(what);
    let mount_id = number(next("missing mount ID")?)?;
    let parent_id = number(next("missing parent ID")?)?;
    let dev = next("missing major:minor")?;
    let colon = dev
        .iter()
        .position(|&b| b == b':')
        .ok_or("major:minor without ':'")?;
    let major = number(&dev[..colon])?;
    let minor = number(&dev[colon + 1..])?;
    let root = PathBuf::from(OsString::from_vec(unescape(next("missing root")?)));
    let mount_point = PathBuf::from(OsString::from_vec(unescape(next("missing mount point")?)));
    let mount_options = text(next("missing mount options")?);
    let mut optional = Vec::new();
    loop {
        let f = next("missing '-' separator")?;
        if f == b"-" {
            break;
        }
        optional.push(text(f));
    }
    let fs_type = text(&unescape(next("missing filesystem type")?));
    let source = text(&unescape(next("missing source")?));
    // Super options may be absent on some old kernels; treat as empty.
    let super_options = fields.next().map(text).unwrap_or_default();
    Ok(MountInfo {
        mount_id,
        parent_id,
        major,
        minor,
        root,
        mount_point,
        mount_options,
        optional,
        fs_type,
        source,
        super_options,
    })
}

/// Reads and parses `/proc/self/mountinfo`.
pub fn read_self() -> std::io::Result<Vec<MountInfo>> {
    read(Path::new("/proc/self/mountinfo"))
}

/// Reads and parses a mountinfo file.
pub fn read(path: &Path) -> std::io::Result<Vec<MountInfo>> {
    let data = std::fs::read(path)?;
    parse(&data).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn number(b: &[u8]) -> Result<u32, &'static str> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("not a number")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Decodes `\ooo` octal escapes; anything else is kept as is.
pub fn unescape(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = u32::from(oct[0] - b'0') * 64
                    + u32::from(oct[1] - b'0') * 8
                    + u32::from(oct[2] - b'0');
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"plain", b"plain"),
            (b"a\\040b", b"a b"),
            (b"tab\\011x", b"tab\tx"),
            (b"nl\\012", b"nl\n"),
            (b"back\\134slash", b"back\\slash"),
            (b"\\04", b"\\04"),
            (b"\\x41", b"\\x41"),
            (b"\\777", b"\\777"),
            (b"end\\", b"end\\"),
        ];
        for (input, want) in cases {
            assert_eq!(
                unescape(input),
                *want,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn parse_lines() {
        let data = b"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
            \n\
            100 1 0:52 / /var/tmp/a\\040b rw,relatime shared:5 master:3 - overlay overlay rw,lowerdir=l/A:l/B\n\
            7 1 0:5 / /dev rw - devtmpfs udev rw\n";
        let got = parse(data).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].mount_id, 36);
        assert_eq!(got[0].parent_id, 35);
        assert_eq!((got[0].major, got[0].minor), (98, 0));
        assert_eq!(got[0].root, Path::new("/mnt1"));
        assert_eq!(got[0].mount_point, Path::new("/mnt2"));
        assert_eq!(got[0].mount_options, "rw,noatime");
        assert_eq!(got[0].optional, vec!["master:1".to_string()]);
        assert_eq!(got[0].fs_type, "ext3");
        assert_eq!(got[0].source, "/dev/root");
        assert_eq!(got[0].super_options, "rw,errors=continue");
        assert_eq!(got[1].mount_point, Path::new("/var/tmp/a b"));
        assert_eq!(got[1].optional.len(), 2);
        assert_eq!(got[1].fs_type, "overlay");
        assert!(got[2].optional.is_empty());
        assert_eq!(got[2].fs_type, "devtmpfs");
    }

    #[test]
    fn bad_lines() {
        let cases: &[(&[u8], &str)] = &[
            (b"x 1 0:1 / / rw - t s o", "not a number"),
            (b"1 1 01 / / rw - t s o", "major:minor without ':'"),
            (b"1 1 0:1 / / rw shared:1 t s o", "missing '-' separator"),
            (b"1 1 0:1 / / rw -", "missing filesystem type"),
            (b"1 1", "missing major:minor"),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line).unwrap_err(), *want);
        }
        let e = parse(b"1 1 0:1 / / rw - t s o\n2 2\n").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn self_has_root() {
        let all = read_self().unwrap();
        assert!(all.iter().any(|m| m.mount_point == Path::new("/")));
    }
}
