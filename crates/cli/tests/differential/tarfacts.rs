//! The members of a `diff` tar as facts to compare: name, type, mode,
//! owners, size, content digest, link target, xattrs, time; whiteouts and
//! opaque markers named as such.

use sha2::Digest;

use super::snapshot::Time;

/// One member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Path without a leading `./` or a trailing `/`.
    pub name: String,
    /// `dir`, `file`, `symlink -> T`, `hardlink -> T`, `fifo`, `char M:m`,
    /// `block M:m`, `whiteout`, `opaque`.
    pub kind: String,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: String,
    pub gname: String,
    pub size: u64,
    /// sha256 of the content (files).
    pub content: String,
    pub mtime: Time,
    /// `SCHILY.xattr.*` records, name=hex, sorted.
    pub xattrs: Vec<String>,
}

/// The members of `tar`, in order; an error when it does not parse.
///
/// The tar is read here, block by block, rather than with the `tar` crate,
/// which splits PAX records at newlines and so cannot read an xattr value
/// holding one (both tools write such values correctly).
pub fn members(tar: &[u8], fresh_after: i64) -> Result<Vec<Member>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    loop {
        let h = tar
            .get(pos..pos + 512)
            .ok_or_else(|| format!("truncated at {pos}: no end-of-archive blocks"))?;
        if h.iter().all(|&b| b == 0) {
            return Ok(out);
        }
        let field = |a: usize, b: usize| -> &[u8] {
            let f = &h[a..b];
            &f[..f.iter().position(|&c| c == 0).unwrap_or(f.len())]
        };
        let size = number(&h[124..136])? as usize;
        let data = tar
            .get(pos + 512..pos + 512 + size)
            .ok_or_else(|| format!("truncated member at {pos}"))?;
        pos += 512 + size.div_ceil(512) * 512;
        let flag = h[156];
        match flag {
            b'x' => {
                pax = pax_records(data)?;
                continue;
            }
            b'g' => continue,
            b'L' => {
                long_name = Some(data.split(|&c| c == 0).next().unwrap_or(&[]).to_vec());
                continue;
            }
            b'K' => {
                long_link = Some(data.split(|&c| c == 0).next().unwrap_or(&[]).to_vec());
                continue;
            }
            _ => {}
        }
        let get = |k: &str| pax.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let mut name = field(0, 100).to_vec();
        if &h[257..262] == b"ustar" && !field(345, 500).is_empty() {
            name = [field(345, 500), b"/", &name].concat();
        }
        let name = get("path").or(long_name.take()).unwrap_or(name);
        let link = get("linkpath")
            .or(long_link.take())
            .unwrap_or_else(|| field(157, 257).to_vec());
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let name = text(&name)
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        let pax_num = |k: &str, dflt: u64| -> u64 {
            get(k).and_then(|v| text(&v).parse().ok()).unwrap_or(dflt)
        };
        let (sec, nsec) = match get("mtime") {
            Some(v) => parse_pax_time(&text(&v)),
            None => (number(&h[136..148])? as i64, 0),
        };
        let mut xattrs: Vec<String> = pax
            .iter()
            .filter_map(|(k, v)| {
                Some(format!(
                    "{}={}",
                    k.strip_prefix("SCHILY.xattr.")?,
                    hex::encode(v)
                ))
            })
            .collect();
        xattrs.sort();
        let base = name.rsplit('/').next().unwrap_or("");
        let dev = format!("{}:{}", number(&h[329..337])?, number(&h[337..345])?);
        let kind = if base == ".wh..wh..opq" {
            "opaque".to_string()
        } else if base.starts_with(".wh.") {
            "whiteout".to_string()
        } else {
            match flag {
                b'5' => "dir".to_string(),
                b'2' => format!("symlink -> {}", text(&link)),
                b'1' => format!("hardlink -> {}", text(&link)),
                b'6' => "fifo".to_string(),
                b'3' => format!("char {dev}"),
                b'4' => format!("block {dev}"),
                b'0' | 0 | b'7' => "file".to_string(),
                other => format!("type {:?}", other as char),
            }
        };
        out.push(Member {
            kind,
            mode: number(&h[100..108])? as u32 & 0o7777,
            uid: pax_num("uid", number(&h[108..116])?),
            gid: pax_num("gid", number(&h[116..124])?),
            uname: get("uname")
                .map(|v| text(&v))
                .unwrap_or_else(|| text(field(265, 297))),
            gname: get("gname")
                .map(|v| text(&v))
                .unwrap_or_else(|| text(field(297, 329))),
            size: data.len() as u64,
            content: if matches!(flag, b'0' | 0 | b'7') {
                hex::encode(sha2::Sha256::digest(data))
            } else {
                String::new()
            },
            mtime: Time::new(sec, nsec, fresh_after),
            xattrs,
            name,
        });
        pax.clear();
    }
}

/// A numeric header field: octal text, or base-256 when the high bit of
/// its first byte is set.
fn number(f: &[u8]) -> Result<u64, String> {
    if f.first().is_some_and(|&b| b & 0x80 != 0) {
        return Ok(f[1..]
            .iter()
            .fold(u64::from(f[0] & 0x7f), |n, &b| n << 8 | u64::from(b)));
    }
    let t: String = f
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let t = t.trim();
    if t.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(t, 8).map_err(|_| format!("bad number field {t:?}"))
}

/// PAX records (`LEN key=value\n`, LEN counting the whole record, so
/// values may hold newlines).
fn pax_records(mut d: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    while !d.is_empty() {
        let sp = d
            .iter()
            .position(|&c| c == b' ')
            .ok_or("PAX record without a length")?;
        let len: usize = std::str::from_utf8(&d[..sp])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or("bad PAX record length")?;
        let rec = d.get(sp + 1..len).ok_or("PAX record past its header")?;
        let rec = rec
            .strip_suffix(b"\n")
            .ok_or("PAX record without a newline")?;
        let eq = rec
            .iter()
            .position(|&c| c == b'=')
            .ok_or("PAX record without =")?;
        out.push((
            String::from_utf8_lossy(&rec[..eq]).into_owned(),
            rec[eq + 1..].to_vec(),
        ));
        d = &d[len..];
    }
    Ok(out)
}

/// `1234.5678` → (1234, 567800000).
fn parse_pax_time(s: &str) -> (i64, u32) {
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    (sec.parse().unwrap_or(0), digits.parse().unwrap_or(0))
}

/// Differences between two member lists, one line each: members only in
/// one, members that differ, and a different order.
pub fn compare(a: &[Member], b: &[Member], names: (&str, &str)) -> Vec<String> {
    let mut out = Vec::new();
    let find = |list: &[Member], n: &str| list.iter().position(|m| m.name == n);
    for m in a {
        match find(b, &m.name) {
            None => out.push(format!("{}: only in {}: {m:?}", m.name, names.0)),
            Some(i) if b[i] != *m => out.push(format!(
                "{}: {}: {m:?}\n      {}: {:?}",
                m.name, names.0, names.1, b[i]
            )),
            Some(_) => {}
        }
    }
    for m in b {
        if find(a, &m.name).is_none() {
            out.push(format!("{}: only in {}: {m:?}", m.name, names.1));
        }
    }
    if out.is_empty() {
        let order = |l: &[Member]| l.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
        if order(a) != order(b) {
            out.push(format!(
                "member order: {}: {:?}\n      {}: {:?}",
                names.0,
                order(a),
                names.1,
                order(b)
            ));
        }
    }
    out
}

#[test]
fn pax_records_hold_newlines() {
    let v = pax_records(b"26 SCHILY.xattr.user.a=\n\n\n12 path=a/b\n").unwrap();
    assert_eq!(v[0], ("SCHILY.xattr.user.a".into(), b"\n\n".to_vec()));
    assert_eq!(v[1], ("path".into(), b"a/b".to_vec()));
}

#[test]
fn pax_times() {
    assert_eq!(parse_pax_time("12.5"), (12, 500_000_000));
    assert_eq!(parse_pax_time("12"), (12, 0));
    assert_eq!(parse_pax_time("12.000000001"), (12, 1));
}
