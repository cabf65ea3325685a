//! Big data: named blobs kept beside a record (an image's manifest and
//! config, a container's `config.json`, a layer's extra data), one file per
//! item in the record's own directory, and the digests that describe them.
//!
//! ```text
//! <graph>/<driver>-images/<image ID>/<file name of the key>
//! <graph>/<driver>-containers/<container ID>/<file name of the key>
//! <graph>/<driver>-layers/<layer ID>/<file name of the key>
//! ```

use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::Digest as _;

use crate::files::{mkdir_all, write_replacing, Persist};
use crate::{Error, Result};

/// The file name a big-data item is stored under, by the reference's rule:
/// the key is scanned up to its first character that is not `a-z`, `0-9`
/// or `.`; if anything follows that character, the name is `=` and the
/// standard base64 of the whole key, otherwise the key itself. So the last
/// character is never checked (`abC`, `tail:`, `abé` stay as they are) and
/// a key that ends in `/` names the file without it, as path joining does
/// in the reference.
///
/// Keys that would name something other than a file of the record's own
/// directory (empty, `.`, `..`, `/`, `./`, `../`, or with a NUL at the end)
/// are refused; the reference refuses the empty key and fails on the others
/// when it writes.
pub fn file_name(key: &str) -> Result<String> {
    let invalid = || Error::Invalid(format!("{key:?} is not a valid name for a big data item"));
    let plain_ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.';
    let stop = key.char_indices().find(|(_, c)| !plain_ok(*c));
    let encode = match stop {
        Some((i, c)) => i + c.len_utf8() < key.len(),
        None => false,
    };
    if encode {
        return Ok(format!(
            "={}",
            base64::engine::general_purpose::STANDARD.encode(key)
        ));
    }
    let name = key.strip_suffix('/').unwrap_or(key);
    if name.is_empty() || name == "." || name == ".." || name.contains('\0') {
        return Err(invalid());
    }
    Ok(name.to_string())
}

/// Where a big-data item of the record whose directory is `dir` lives.
pub fn path(dir: &Path, key: &str) -> Result<PathBuf> {
    Ok(dir.join(file_name(key)?))
}

/// Reads an item; a missing file is an `Io` error of kind `NotFound`.
pub fn read(dir: &Path, key: &str) -> Result<Vec<u8>> {
    let p = path(dir, key)?;
    std::fs::read(&p).map_err(|e| Error::io("open", p, e))
}

/// Writes an item atomically (0600), creating the record's directory
/// (0700) when missing.
pub fn write(dir: &Path, key: &str, data: &[u8], persist: Persist) -> Result<()> {
    let p = path(dir, key)?;
    mkdir_all(dir, 0o700)?;
    write_replacing(&p, data, 0o600, persist)
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Why a digest string is not valid (the reference's wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestError {
    /// Not `algorithm:encoded`, or bad characters.
    Format,
    /// The encoded part has the wrong length for its algorithm.
    Length,
    /// A well-formed digest of an algorithm nobody implements.
    Unsupported,
}

impl std::fmt::Display for DigestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DigestError::Format => "invalid checksum digest format",
            DigestError::Length => "invalid checksum digest length",
            DigestError::Unsupported => "unsupported digest algorithm",
        })
    }
}

impl std::error::Error for DigestError {}

/// Checks a digest as the OCI digest rules do: `sha256`, `sha384` or
/// `sha512`, a colon, and that many lower-case hex digits.
pub fn validate_digest(d: &str) -> std::result::Result<(), DigestError> {
    let Some((alg, enc)) = d
        .split_once(':')
        .filter(|(a, e)| !a.is_empty() && !e.is_empty())
    else {
        return Err(DigestError::Format);
    };
    let hex_len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => {
            return Err(if well_formed(alg, enc) {
                DigestError::Unsupported
            } else {
                DigestError::Format
            })
        }
    };
    if enc.len() != hex_len {
        return Err(DigestError::Length);
    }
    if !enc.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(DigestError::Format);
    }
    Ok(())
}

/// The general digest grammar: algorithm components of `[a-z0-9]+` joined
/// by one of `.+_-`, a colon, then `[a-zA-Z0-9=_-]+`.
fn well_formed(alg: &str, enc: &str) -> bool {
    let comp_ok = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    alg.split(['.', '+', '_', '-']).all(comp_ok)
        && enc
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
}

/// Lists the subdirectories of `dir` (the data directories of records),
/// skipping temporary files of interrupted writes.
pub fn data_dirs(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("read directory", dir, e)),
    };
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("read directory", dir, e))?;
        let ft = ent
            .file_type()
            .map_err(|e| Error::io("stat", ent.path(), e))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        if ft.is_dir() && !name.starts_with(".tmp-") {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_as_the_reference_makes_them() {
        // Observed with containers-storage 1.43 set-image-data.
        let cases = [
            ("manifest", "manifest"),
            ("plain.name09", "plain.name09"),
            ("config.json", "config.json"),
            ("abC", "abC"),
            ("tail:", "tail:"),
            ("A", "A"),
            ("abé", "abé"),
            ("éab", "=w6lhYg=="),
            ("a b", "=YSBi"),
            ("manifest-sha256:1234", "=bWFuaWZlc3Qtc2hhMjU2OjEyMzQ="),
            ("Weird Key/with:stuff", "=V2VpcmQgS2V5L3dpdGg6c3R1ZmY="),
            ("Some:Key", "=U29tZTpLZXk="),
            ("x/..", "=eC8uLg=="),
            ("sub/../..", "=c3ViLy4uLy4u"),
            ("a/", "a"),
            ("Odd/Name", "=T2RkL05hbWU="),
            ("../x", "=Li4veA=="),
        ];
        for (key, want) in cases {
            assert_eq!(file_name(key).unwrap(), want, "{key:?}");
        }
    }

    #[test]
    fn keys_that_leave_the_directory_are_refused() {
        for key in ["", ".", "..", "/", "./", "../", "ab\0"] {
            let e = file_name(key).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{key:?}");
        }
    }

    #[test]
    fn digests() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(validate_digest(&ok), Ok(()));
        assert_eq!(validate_digest("x"), Err(DigestError::Format));
        assert_eq!(validate_digest("sha256:"), Err(DigestError::Format));
        assert_eq!(validate_digest(":abc"), Err(DigestError::Format));
        assert_eq!(validate_digest("sha256:abc"), Err(DigestError::Length));
        let upper = format!("sha256:{}", "A".repeat(64));
        assert_eq!(validate_digest(&upper), Err(DigestError::Format));
        assert_eq!(validate_digest("md5:abcd"), Err(DigestError::Unsupported));
        assert_eq!(validate_digest("MD5:abcd"), Err(DigestError::Format));
        assert_eq!(
            sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
