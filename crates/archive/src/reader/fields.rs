//! Pure parsers for the pieces of a tar header: numeric fields (octal and
//! base-256), PAX records, PAX times, sparse maps and path normalisation.
//!
//! They take bytes and return values or an `invalid tar header` error; no
//! I/O happens here, so each is tested table-driven.

use crate::entry::{SparseRegion, Timestamp};
use crate::{Error, Result};

/// Bytes of `field` up to the first NUL (C string semantics of tar fields).
pub fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(n) => &field[..n],
        None => field,
    }
}

/// Parses a numeric header field: octal ASCII (leading/trailing spaces and
/// NULs allowed, empty = 0) or GNU base-256 (high bit of the first byte set;
/// `0xff` first byte = negative two's complement).
pub fn numeric(field: &[u8], what: &str) -> Result<i64> {
    if let Some(&first) = field.first() {
        if first & 0x80 != 0 {
            return base256(field, what);
        }
    }
    let text = cstr(field);
    let trimmed = trim(text);
    if trimmed.is_empty() {
        return Ok(0);
    }
    let mut v: i64 = 0;
    for &b in trimmed {
        if !(b'0'..=b'7').contains(&b) {
            return Err(Error::InvalidHeader(format!(
                "{what} field is not octal: {:?}",
                String::from_utf8_lossy(text)
            )));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or_else(|| Error::InvalidHeader(format!("{what} field overflows")))?;
    }
    Ok(v)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | 0, rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | 0] = s {
        s = rest;
    }
    s
}

fn base256(field: &[u8], what: &str) -> Result<i64> {
    let negative = field[0] & 0x40 != 0;
    // First byte: drop the marker bit; for negatives keep sign extension.
    let first = if negative { field[0] } else { field[0] & 0x7f };
    let mut v: i64 = if negative { -1 } else { 0 };
    for (i, &b) in std::iter::once(&first).chain(&field[1..]).enumerate() {
        let fits = if negative {
            v >= i64::MIN >> 8
        } else {
            v <= i64::MAX >> 8
        };
        if !fits {
            return Err(Error::InvalidHeader(format!(
                "{what} base-256 field overflows"
            )));
        }
        v = if i == 0 && !negative {
            i64::from(b)
        } else {
            (v << 8) | i64::from(b)
        };
    }
    Ok(v)
}

/// A numeric field that must be a non-negative value fitting in `u64`.
pub fn unsigned(field: &[u8], what: &str) -> Result<u64> {
    let v = numeric(field, what)?;
    u64::try_from(v).map_err(|_| Error::InvalidHeader(format!("{what} is negative: {v}")))
}

/// A numeric field that must fit in `u32` (uid, gid, device numbers).
pub fn small(field: &[u8], what: &str) -> Result<u32> {
    let v = numeric(field, what)?;
    u32::try_from(v).map_err(|_| Error::InvalidHeader(format!("{what} out of range: {v}")))
}

/// Parses a PAX extended header body into `(key, value)` records.
///
/// Each record is `"<len> <key>=<value>\n"` where `len` counts the whole
/// record. The length is honoured, so values may contain newlines (binary
/// xattr values do) — the `tar` crate splits on `\n` instead, which is why
/// this parser is our own.
pub fn pax_records(mut data: &[u8]) -> Result<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    // A body may be followed by NUL padding inside the declared size.
    while !data.is_empty() && data[0] != 0 {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad_pax("missing length"))?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad_pax("bad length"))?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad_pax("length does not match record"));
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad_pax("missing '='"))?;
        if eq == 0 {
            return Err(bad_pax("empty key"));
        }
        out.push((&rec[..eq], &rec[eq + 1..]));
        data = &data[len..];
    }
    Ok(out)
}

fn bad_pax(why: &str) -> Error {
    Error::InvalidHeader(format!("malformed PAX record: {why}"))
}

/// Parses a PAX decimal integer (`size`, `uid`, …).
pub fn pax_decimal(value: &[u8], key: &str) -> Result<u64> {
    std::str::from_utf8(value)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            Error::InvalidHeader(format!(
                "PAX {key} is not a number: {:?}",
                String::from_utf8_lossy(value)
            ))
        })
}

/// Parses a PAX time `[-]SECONDS[.FRACTION]` with up to nanosecond precision
/// (extra digits are truncated).
pub fn pax_time(value: &[u8], key: &str) -> Result<Timestamp> {
    let bad = || {
        Error::InvalidHeader(format!(
            "PAX {key} is not a time: {:?}",
            String::from_utf8_lossy(value)
        ))
    };
    let (negative, rest) = match value {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, value),
    };
    let (int, frac) = match rest.iter().position(|&b| b == b'.') {
        Some(dot) => (&rest[..dot], &rest[dot + 1..]),
        None => (rest, &b""[..]),
    };
    if int.is_empty() || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let secs: i64 = std::str::from_utf8(int)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let mut nsec: u32 = 0;
    for i in 0..9 {
        nsec = nsec * 10 + frac.get(i).map_or(0, |d| u32::from(d - b'0'));
    }
    if !negative {
        return Ok(Timestamp { sec: secs, nsec });
    }
    // -1.25 is 1.25 s before the epoch: sec -2, nsec 0.75e9.
    if nsec == 0 {
        Ok(Timestamp { sec: -secs, nsec })
    } else {
        Ok(Timestamp {
            sec: -secs - 1,
            nsec: 1_000_000_000 - nsec,
        })
    }
}

/// Parses the GNU sparse 0.1 map `off,len,off,len,…`.
pub fn sparse_map_01(value: &[u8]) -> Result<Vec<SparseRegion>> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    let nums = value
        .split(|&b| b == b',')
        .map(|n| pax_decimal(n, "GNU.sparse.map"))
        .collect::<Result<Vec<u64>>>()?;
    if nums.len() % 2 != 0 {
        return Err(Error::InvalidHeader(
            "GNU.sparse.map has an odd number of values".into(),
        ));
    }
    Ok(nums
        .chunks(2)
        .map(|p| SparseRegion {
            offset: p[0],
            length: p[1],
        })
        .collect())
}

/// Parses the GNU sparse 1.0 map that opens the data section: decimal numbers
/// each ended by `\n` (count, then offset/length pairs). Returns the map and
/// the number of bytes it used, or `None` when `data` does not hold all of it
/// yet.
pub fn sparse_map_10(data: &[u8]) -> Result<Option<(Vec<SparseRegion>, usize)>> {
    let mut pos = 0;
    let next = |pos: &mut usize| -> Result<Option<u64>> {
        let Some(nl) = data[*pos..].iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let v = pax_decimal(&data[*pos..*pos + nl], "sparse map")?;
        *pos += nl + 1;
        Ok(Some(v))
    };
    let Some(count) = next(&mut pos)? else {
        return Ok(None);
    };
    let mut map = Vec::new();
    for _ in 0..count {
        let Some(offset) = next(&mut pos)? else {
            return Ok(None);
        };
        let Some(length) = next(&mut pos)? else {
            return Ok(None);
        };
        map.push(SparseRegion { offset, length });
    }
    Ok(Some((map, pos)))
}

/// Checks a sparse map against the logical size: regions in order, not
/// overlapping, inside the file. Returns the sum of the region lengths (the
/// number of content bytes stored in the archive).
pub fn check_sparse(map: &[SparseRegion], logical_size: u64) -> Result<u64> {
    let mut end = 0u64;
    let mut stored = 0u64;
    for r in map {
        let r_end = r.offset.checked_add(r.length);
        match r_end {
            Some(e) if r.offset >= end && e <= logical_size => {
                end = e;
                stored += r.length;
            }
            _ => {
                return Err(Error::InvalidHeader(format!(
                    "sparse region {}+{} out of order or beyond size {logical_size}",
                    r.offset, r.length
                )))
            }
        }
    }
    Ok(stored)
}

/// Normalises an archive path: no leading `/` or `./`, no trailing `/`, `.`
/// and empty components dropped, `..` kept; the root is the empty path.
pub fn normalize(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for comp in raw.split(|&b| b == b'/') {
        if comp.is_empty() || comp == b"." {
            continue;
        }
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(comp);
    }
    out
}

/// Verifies a header block's checksum (unsigned sum, or the signed sum some
/// old writers used, with the checksum field counted as spaces).
pub fn checksum_ok(block: &[u8; 512]) -> bool {
    let field = &block[148..156];
    let Ok(stored) = numeric(field, "checksum") else {
        return false;
    };
    let mut unsigned: i64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || stored == signed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_table() {
        let cases: &[(&[u8], Option<i64>)] = &[
            (b"0000644\0", Some(0o644)),
            (b" 644 \0\0", Some(0o644)),
            (b"\0\0\0\0\0\0\0\0", Some(0)),
            (b"        ", Some(0)),
            (b"00000001750\0", Some(1000)),
            (b"0008\0", None),
            (b"12x4\0", None),
            (&[0x80, 0, 0, 0, 0, 0, 0x01, 0x00], Some(256)),
            (&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x2a], Some(42)),
            (&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe], Some(-2)),
            (
                &[
                    0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0,
                ],
                None,
            ),
        ];
        for (field, want) in cases {
            let got = numeric(field, "t").ok();
            assert_eq!(got, *want, "{field:?}");
        }
        assert!(unsigned(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe], "t").is_err());
        assert!(small(b"77777777777\0", "t").is_err());
        assert_eq!(small(b"0001750\0", "t").unwrap(), 1000);
    }

    #[test]
    fn pax_records_table() {
        let ok = b"30 mtime=1432668921.098285006\n18 path=dir/x\ny z\n12 uid=1000\n";
        let recs = pax_records(ok).unwrap();
        assert_eq!(
            recs,
            vec![
                (&b"mtime"[..], &b"1432668921.098285006"[..]),
                (&b"path"[..], &b"dir/x\ny z"[..]),
                (&b"uid"[..], &b"1000"[..]),
            ]
        );
        // NUL padding after the records is tolerated.
        assert_eq!(pax_records(b"12 uid=1000\n\0\0\0").unwrap().len(), 1);
        for bad in [
            &b"13 uid=1000\n"[..],
            b"11 uid=1000\n",
            b"x uid=1\n",
            b"8 =abc\n\n",
            b"9 uidabc\n",
            b"12uid=1000\n",
            b"99999999999999999999999 a=b\n",
        ] {
            assert!(
                pax_records(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn pax_time_table() {
        type Case<'a> = (&'a [u8], Option<(i64, u32)>);
        let cases: &[Case] = &[
            (b"1432668921", Some((1432668921, 0))),
            (b"1432668921.5", Some((1432668921, 500_000_000))),
            (b"1.098285006123", Some((1, 98_285_006))),
            (b"-1.25", Some((-2, 750_000_000))),
            (b"-3", Some((-3, 0))),
            (b"", None),
            (b"1.2.3", None),
            (b"abc", None),
            (b".5", None),
        ];
        for (v, want) in cases {
            let got = pax_time(v, "mtime").ok().map(|t| (t.sec, t.nsec));
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn sparse_maps() {
        let m = sparse_map_01(b"0,10,4096,20").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[1],
            SparseRegion {
                offset: 4096,
                length: 20
            }
        );
        assert!(sparse_map_01(b"1,2,3").is_err());
        let (m, used) = sparse_map_10(b"2\n0\n5\n100\n7\nXYZ").unwrap().unwrap();
        assert_eq!(used, 12);
        assert_eq!(
            m,
            vec![
                SparseRegion {
                    offset: 0,
                    length: 5
                },
                SparseRegion {
                    offset: 100,
                    length: 7
                },
            ]
        );
        assert!(sparse_map_10(b"2\n0\n5\n10").unwrap().is_none());
        assert_eq!(check_sparse(&m, 107).unwrap(), 12);
        assert!(check_sparse(&m, 106).is_err());
        let overlap = [
            SparseRegion {
                offset: 0,
                length: 10,
            },
            SparseRegion {
                offset: 5,
                length: 1,
            },
        ];
        assert!(check_sparse(&overlap, 100).is_err());
        let overflow = [SparseRegion {
            offset: u64::MAX,
            length: 2,
        }];
        assert!(check_sparse(&overflow, u64::MAX).is_err());
    }

    #[test]
    fn normalize_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"./", b""),
            (b".", b""),
            (b"/", b""),
            (b"./etc/passwd", b"etc/passwd"),
            (b"/abs/x/", b"abs/x"),
            (b"a//b/./c", b"a/b/c"),
            (b"../x", b"../x"),
            (b"a/../../b", b"a/../../b"),
            (b"dir/", b"dir"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw), *want, "{:?}", String::from_utf8_lossy(raw));
        }
    }
}
