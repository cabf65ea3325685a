//! Digests (`sha256:<hex>`) and readers that check a blob against its
//! descriptor while it streams.

use std::fmt;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

/// Largest manifest, index or config strata reads (containers/image reads
/// at most 4 MiB of each).
pub const DOCUMENT_MAX: u64 = 4 << 20;
/// Largest `manifest.json` of a docker-archive (containers/image: 1 MiB).
pub const ARCHIVE_MANIFEST_MAX: u64 = 1 << 20;

/// A `sha256:<64 hex>` content digest, the only algorithm strata handles.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `algo:hex`; only lower-case sha256 is accepted.
    pub fn parse(s: &str) -> Result<Self> {
        match s.split_once(':') {
            Some(("sha256", hex))
                if hex.len() == 64
                    && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
            {
                Ok(Digest(s.to_string()))
            }
            Some((algo, _)) if algo != "sha256" => Err(Error::Unsupported(format!(
                "digest algorithm {algo:?} in {s:?} (only sha256 is)"
            ))),
            _ => Err(Error::Reference {
                input: s.to_string(),
                reason: "not a sha256 digest".into(),
            }),
        }
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self::from_sha256(Sha256::digest(data).into())
    }

    /// The digest whose hash is `hash`.
    pub fn from_sha256(hash: [u8; 32]) -> Self {
        Digest(format!("sha256:{}", hex::encode(hash)))
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The whole `sha256:<hex>` string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where an OCI layout keeps this blob: `blobs/sha256/<hex>`.
    pub fn blob_path(&self) -> String {
        format!("blobs/sha256/{}", self.hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a blob must be: its digest and size, and what to call it in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// `manifest`, `config`, `layer`, …
    pub what: &'static str,
    /// The digest the descriptor gives.
    pub digest: Digest,
    /// The size the descriptor gives.
    pub size: u64,
}

impl Expected {
    fn error(&self, reason: String) -> Error {
        Error::Blob {
            what: self.what,
            digest: self.digest.to_string(),
            reason,
        }
    }

    /// Checks a digest and size measured elsewhere (by the layer pipeline).
    pub fn check(&self, digest: &str, size: u64) -> Result<()> {
        if size != self.size {
            return Err(self.error(format!(
                "size is {size} bytes, the descriptor says {}",
                self.size
            )));
        }
        if digest != self.digest.as_str() {
            return Err(self.error(format!("content has digest {digest}")));
        }
        Ok(())
    }
}

/// Whether a [`Checked`] reader hashes what it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hashing {
    /// Hash and compare at the end of the stream.
    Verify,
    /// Only check the size; the digest is compared by whoever consumes the
    /// stream (the layer pipeline hashes its input anyway).
    SizeOnly,
}

/// Reads a blob and fails as soon as it has more bytes than expected, and
/// at its end when it has fewer or (with [`Hashing::Verify`]) another
/// digest: the consumer never sees the end of a blob that does not match.
pub struct Checked<R> {
    inner: R,
    expected: Expected,
    hasher: Option<Sha256>,
    read: u64,
}

impl<R: Read> Checked<R> {
    /// Wraps `inner`.
    pub fn new(inner: R, expected: Expected, hashing: Hashing) -> Self {
        Self {
            inner,
            expected,
            hasher: (hashing == Hashing::Verify).then(Sha256::new),
            read: 0,
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.read != self.expected.size {
            return Err(io::Error::other(self.expected.error(format!(
                "size is {} bytes, the descriptor says {}",
                self.read, self.expected.size
            ))));
        }
        if let Some(h) = self.hasher.take() {
            let got = format!("sha256:{}", hex::encode(h.finalize()));
            if got != self.expected.digest.as_str() {
                return Err(io::Error::other(
                    self.expected.error(format!("content has digest {got}")),
                ));
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte past the expected size is enough to know it is too long.
        let room = (self.expected.size - self.read.min(self.expected.size)).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.finish()?;
            return Ok(0);
        }
        self.read += n as u64;
        if self.read > self.expected.size {
            return Err(io::Error::other(self.expected.error(format!(
                "has more than the {} bytes the descriptor says",
                self.expected.size
            ))));
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Turns an I/O error from a [`Checked`] reader back into the [`Error`] it
/// carries, or wraps it with `context`.
pub fn unwrap_io(e: io::Error, context: impl Into<String>) -> Error {
    if e.get_ref().is_some_and(|i| i.is::<Error>()) {
        if let Some(Ok(ours)) = e.into_inner().map(|i| i.downcast::<Error>()) {
            return *ours;
        }
        return Error::io(context, io::Error::other("lost error"));
    }
    Error::io(context, e)
}

/// Reads a whole small document (at most `limit` bytes; memory stays
/// bounded whatever the source holds).
pub fn read_document(
    mut r: impl Read,
    what: &'static str,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    (&mut r)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| unwrap_io(e, format!("reading {what} {name}")))?;
    if out.len() as u64 > limit {
        return Err(Error::TooLarge {
            what,
            name: name.to_string(),
            limit,
        });
    }
    Ok(out)
}

/// Reads and verifies a small blob (manifest, index, config) whose
/// descriptor gives its digest and size.
pub fn read_blob(r: impl Read, expected: &Expected) -> Result<Vec<u8>> {
    if expected.size > DOCUMENT_MAX {
        return Err(Error::TooLarge {
            what: expected.what,
            name: expected.digest.to_string(),
            limit: DOCUMENT_MAX,
        });
    }
    let name = expected.digest.to_string();
    read_document(
        Checked::new(r, expected.clone(), Hashing::Verify),
        expected.what,
        &name,
        DOCUMENT_MAX,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(data: &[u8]) -> Expected {
        Expected {
            what: "layer",
            digest: Digest::of(data),
            size: data.len() as u64,
        }
    }

    #[test]
    fn checked_reader_passes_the_right_blob() {
        let data = b"hello world".repeat(1000);
        let got = read_blob(&data[..], &expected(&data)).unwrap();
        assert_eq!(got, data);
    }

    #[test]
    fn checked_reader_names_the_blob_that_is_wrong() {
        let data = b"hello".to_vec();
        let e = expected(&data);
        let cases: [(&[u8], &str); 3] = [
            (b"hellO", "content has digest"),
            (b"hell", "size is 4 bytes"),
            (b"hello!", "more than the 5 bytes"),
        ];
        for (input, why) in cases {
            let err = read_blob(input, &e).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains(why) && msg.contains(e.digest.as_str()),
                "{msg}"
            );
            assert!(matches!(err, Error::Blob { .. }));
        }
    }

    #[test]
    fn size_only_skips_the_hash_but_not_the_size() {
        let e = expected(b"hello");
        let mut out = Vec::new();
        Checked::new(&b"hellO"[..], e.clone(), Hashing::SizeOnly)
            .read_to_end(&mut out)
            .unwrap();
        assert!(Checked::new(&b"hello!"[..], e, Hashing::SizeOnly)
            .read_to_end(&mut out)
            .is_err());
    }

    #[test]
    fn documents_are_bounded() {
        // An endless source: the read stops one byte past the limit.
        let endless = std::io::repeat(b'{');
        let e = read_document(endless, "manifest", "index.json", 1024).unwrap_err();
        assert!(matches!(e, Error::TooLarge { limit: 1024, .. }), "{e}");
    }

    #[test]
    fn digests_parse() {
        let hex = "a".repeat(64);
        assert_eq!(Digest::parse(&format!("sha256:{hex}")).unwrap().hex(), hex);
        assert!(matches!(
            Digest::parse(&format!("sha512:{hex}")),
            Err(Error::Unsupported(_))
        ));
        assert!(Digest::parse("sha256:ABC").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
    }
}
