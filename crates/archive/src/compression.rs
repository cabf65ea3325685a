//! Compression detection by magic bytes, and decompression.

use std::io::{self, BufRead, Read, Write};

use crate::{Error, ParallelGzip, Result};

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

/// Wraps `input` in the decoder for `kind` (concatenated gzip members,
/// zstd frames, bzip2 and xz streams are all read through).
///
/// Errors from the returned reader are `io::Error`s carrying a crate
/// [`Error`]: [`unwrap_error`] recovers it. A decoder error becomes
/// [`Error::Decompress`]; a stream that ends too early gets a message with
/// `unexpected EOF`, a corrupt one a message with `invalid tar header`, the
/// wording scripts written for containers-storage match on. Errors of
/// `input` itself pass through as [`Error::Io`].
pub fn decoder<'a>(
    kind: Compression,
    input: Box<dyn Read + Send + 'a>,
) -> Result<Box<dyn Read + Send + 'a>> {
    if kind == Compression::None {
        return Ok(Box::new(InputErrors(input)));
    }
    buf_decoder(
        kind,
        Box::new(io::BufReader::with_capacity(INPUT_BUFFER, input)),
    )
}

/// Bytes of compressed input a [`decoder`] reads at a time.
const INPUT_BUFFER: usize = 128 * 1024;

/// [`decoder`] for an input that lends out its own buffers: the decoder
/// reads them where they are instead of copying them into one of its own.
pub fn buf_decoder<'a>(
    kind: Compression,
    input: Box<dyn BufRead + Send + 'a>,
) -> Result<Box<dyn Read + Send + 'a>> {
    let input = InputErrors(input);
    let inner: Box<dyn Read + Send + 'a> = match kind {
        Compression::None => return Ok(Box::new(input)),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(input)
                .map_err(|e| Error::io("starting zstd decoder", e))?,
        ),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(input)),
    };
    Ok(Box::new(DecodeErrors { inner, kind }))
}

/// zstd's level for what strata writes (the zstd tool's default).
pub const ZSTD_LEVEL: i32 = 3;

/// A writer that compresses what it is given into `W`, in one of the
/// compressions strata writes: gzip (one member, deflated on every core by
/// [`ParallelGzip`]), zstd at [`ZSTD_LEVEL`], or none.
pub enum Encoder<W: Write> {
    /// No compression: bytes go to `W` as they come.
    Plain(W),
    /// gzip.
    Gzip(Box<ParallelGzip<W>>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Starts `kind` compression into `out`, gzip at `gzip_level` (0-9).
    /// bzip2 and xz are read, never written: [`Error::Unsupported`].
    pub fn new(kind: Compression, out: W, gzip_level: u32) -> Result<Self> {
        Ok(match kind {
            Compression::None => Encoder::Plain(out),
            Compression::Gzip => Encoder::Gzip(Box::new(
                ParallelGzip::new(out, flate2::Compression::new(gzip_level))
                    .map_err(|e| Error::io("starting gzip compression", e))?,
            )),
            Compression::Zstd => Encoder::Zstd(
                zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)
                    .map_err(|e| Error::io("starting zstd compression", e))?,
            ),
            other => {
                return Err(Error::Unsupported(format!(
                    "writing {} compression",
                    other.name()
                )))
            }
        })
    }

    /// Ends the compressed stream and flushes it; hands back the writer.
    pub fn finish(self) -> io::Result<W> {
        let mut out = match self {
            Encoder::Plain(w) => w,
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Zstd(e) => e.finish()?,
        };
        out.flush()?;
        Ok(out)
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// Turns an `io::Error` back into the crate error it carries, or wraps it
/// with `context`.
pub fn unwrap_error(e: io::Error, context: &str) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        if let Some(inner) = e.into_inner() {
            if let Ok(ours) = inner.downcast::<Error>() {
                return *ours;
            }
        }
        return Error::Io {
            context: context.to_string(),
            source: io::Error::other("lost error"),
        };
    }
    Error::io(context, e)
}

/// Carries a crate error through `io::Read`.
pub fn smuggle(e: Error) -> io::Error {
    io::Error::other(e)
}

/// The input of a decoder: its errors become crate errors.
struct InputErrors<R>(R);

fn input_error(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::Interrupted => e,
        _ => smuggle(unwrap_error(e, "reading layer input")),
    }
}

impl<R: Read> Read for InputErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(input_error)
    }
}

impl<R: BufRead> BufRead for InputErrors<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.0.fill_buf().map_err(input_error)
    }

    fn consume(&mut self, n: usize) {
        self.0.consume(n)
    }
}

struct DecodeErrors<'a> {
    inner: Box<dyn Read + Send + 'a>,
    kind: Compression,
}

impl Read for DecodeErrors<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::Interrupted
                || e.get_ref().is_some_and(|i| i.is::<Error>())
            {
                return e;
            }
            let format = self.kind.name();
            let source = if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("unexpected EOF: truncated {format} stream ({e})"),
                )
            } else {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("corrupt {format} data, invalid tar header ({e})"),
                )
            };
            smuggle(Error::Decompress { format, source })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoders_write_what_decoders_read() {
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        for kind in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let mut enc = Encoder::new(kind, Vec::new(), 6).unwrap();
            for piece in data.chunks(70_001) {
                enc.write_all(piece).unwrap();
            }
            let out = enc.finish().unwrap();
            assert_eq!(Compression::detect(&out), kind);
            if kind != Compression::None {
                assert!(out.len() < data.len() / 10, "{kind:?}: {}", out.len());
            }
            let mut back = Vec::new();
            decoder(kind, Box::new(&out[..]))
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "{kind:?}");
        }
        for kind in [Compression::Bzip2, Compression::Xz] {
            let e = Encoder::new(kind, Vec::new(), 6).err().unwrap();
            assert!(matches!(e, Error::Unsupported(_)), "{e}");
            assert!(e.to_string().contains(kind.name()), "{e}");
        }
    }

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
