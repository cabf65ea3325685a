//! Compression detection by magic bytes, and decompression.

use std::io::Read;

use crate::Result;

/// Compression of a layer stream. The discriminants are the numbers
/// `layers.json` stores in `compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Compression {
    /// Plain tar.
    #[default]
    None = 0,
    /// bzip2.
    Bzip2 = 1,
    /// gzip.
    Gzip = 2,
    /// xz.
    Xz = 3,
    /// zstd.
    Zstd = 4,
}

impl Compression {
    /// Detects the compression from the first bytes of a stream (at least 6
    /// bytes should be given when available); anything unknown is `None`.
    pub fn detect(prefix: &[u8]) -> Self {
        if prefix.starts_with(&[0x1f, 0x8b, 0x08]) {
            Compression::Gzip
        } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if prefix.starts_with(b"BZh") {
            Compression::Bzip2
        } else if prefix.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }

    /// The number stored in `layers.json`.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The compression for a `layers.json` number.
    pub fn from_u8(n: u8) -> Option<Self> {
        Some(match n {
            0 => Compression::None,
            1 => Compression::Bzip2,
            2 => Compression::Gzip,
            3 => Compression::Xz,
            4 => Compression::Zstd,
            _ => return None,
        })
    }

    /// Lower-case name (`gzip`, `zstd`, …; `none` for plain tar).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Bzip2 => "bzip2",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }
}

/// Wraps `input` in the decoder for `kind`. Decoder errors surface from
/// `read` as `io::Error`s; callers map them with [`crate::Error::Decompress`].
pub fn decoder<'a>(
    kind: Compression,
    input: Box<dyn Read + Send + 'a>,
) -> Result<Box<dyn Read + Send + 'a>> {
    let _ = (kind, &input);
    Err(crate::Error::Unsupported(
        "decompression (not yet implemented)".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_table() {
        let cases: &[(&[u8], Compression)] = &[
            (&[0x1f, 0x8b, 0x08, 0, 0, 0], Compression::Gzip),
            (&[0x28, 0xb5, 0x2f, 0xfd, 0, 0], Compression::Zstd),
            (b"BZh91AY", Compression::Bzip2),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], Compression::Xz),
            (b"etc/passwd\0", Compression::None),
            (b"", Compression::None),
            (&[0x1f, 0x8b], Compression::None),
        ];
        for (bytes, want) in cases {
            assert_eq!(Compression::detect(bytes), *want, "{bytes:?}");
        }
        for n in 0..=4 {
            assert_eq!(Compression::from_u8(n).unwrap().as_u8(), n);
        }
        assert_eq!(Compression::from_u8(5), None);
    }
}
