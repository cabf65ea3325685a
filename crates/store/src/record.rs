//! What every record kind has in common, and the JSON the files are
//! written in.
//!
//! Records are written as Go's `encoding/json` (through jsoniter's
//! standard-library mode) writes them in containers/storage 1.43: compact,
//! no trailing newline, fields in struct order, `omitempty` fields left out
//! when empty, map keys sorted, `<`, `>` and `&` escaped. Fields this
//! version does not know are kept and written back after the known ones
//! (1.43 drops them).

use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The kinds of records a store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A layer (`layers.json`, and the mount counts of `mountpoints.json`).
    Layer,
    /// An image (`images.json`).
    Image,
    /// A container (`containers.json`).
    Container,
}

impl Kind {
    /// `layer`, `image` or `container`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Layer => "layer",
            Kind::Image => "image",
            Kind::Container => "container",
        }
    }
}

impl Kind {
    /// `a` or `an`, as English puts it before the kind's name.
    pub fn article(self) -> &'static str {
        match self {
            Kind::Image => "an",
            Kind::Layer | Kind::Container => "a",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A record kept in a record file: identified by an ID, optionally named.
pub trait Record: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// What kind of record this is (for errors).
    const KIND: Kind;

    /// The record's ID.
    fn id(&self) -> &str;

    /// Its names (unique among records of one file).
    fn names(&self) -> &[String];

    /// Its names, to change; `None` for records that have none.
    fn names_mut(&mut self) -> Option<&mut Vec<String>>;

    /// Another key the record is found by after its names (a container by
    /// its layer).
    fn alt_key(&self) -> Option<&str> {
        None
    }

    /// Fills in what is derived rather than stored, after loading; an error
    /// makes the whole file fail to load.
    fn loaded(&mut self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// Serialises records as compact JSON, as Go's `json.Marshal` does
/// (including its escaping of `<`, `>` and `&`).
pub fn to_json<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<Vec<u8>> {
    let plain = serde_json::to_vec(v)?;
    Ok(go_escape(plain))
}

/// Go escapes `<`, `>`, `&`, U+2028 and U+2029 inside strings; outside
/// strings they cannot occur in JSON, so a byte-level rewrite is exact.
fn go_escape(json: Vec<u8>) -> Vec<u8> {
    if !json.iter().any(|b| matches!(b, b'<' | b'>' | b'&' | 0xe2)) {
        return json;
    }
    let s = String::from_utf8_lossy(&json);
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// Formats a time as Go's `time.RFC3339Nano` in UTC (trailing zeros of the
/// fraction dropped).
pub fn format_time(t: time::OffsetDateTime) -> String {
    format_time_keeping_offset(t.to_offset(time::UtcOffset::UTC))
}

/// Formats a time as Go's `time.RFC3339Nano` with its own UTC offset (`Z`
/// for UTC), as the reference keeps the offset of an image's config time.
pub fn format_time_keeping_offset(t: time::OffsetDateTime) -> String {
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let ns = t.nanosecond();
    let frac = if ns == 0 {
        String::new()
    } else {
        format!(".{}", format!("{ns:09}").trim_end_matches('0'))
    };
    let off = t.offset();
    let zone = if off.is_utc() {
        "Z".to_string()
    } else {
        let (h, m, _) = off.as_hms();
        let sign = if off.is_negative() { '-' } else { '+' };
        format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
    };
    format!("{base}{frac}{zone}")
}

/// Parses an RFC 3339 time (as found in image configs).
pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Now, as [`format_time`] formats it.
pub fn now() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

/// The zero time as Go writes it (`time.Time{}`), for records without one.
pub fn zero_time() -> String {
    "0001-01-01T00:00:00Z".to_string()
}

/// A new random ID: 64 hex digits whose first 12 are not all decimal
/// digits (so a short ID never reads as a number).
pub fn random_id() -> String {
    loop {
        let mut b = [0u8; 32];
        rand::rng().fill_bytes(&mut b);
        let id = hex::encode(b);
        if !id[..12].bytes().all(|c| c.is_ascii_digit()) {
            return id;
        }
    }
}

/// Refuses IDs that cannot name a directory of their own: the reference
/// takes any string, but an ID is also a file name (the record's data
/// directory), so `/`, NUL, `.`, `..` and the empty string are refused.
pub fn validate_id(kind: Kind, id: &str) -> crate::Result<()> {
    if id.is_empty() || id.contains('/') || id == "." || id == ".." || id.contains('\0') {
        return Err(crate::Error::Invalid(format!("invalid {kind} ID {id:?}")));
    }
    Ok(())
}

/// `names` without repeats, first occurrence kept.
pub fn dedup_names(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    out
}

/// Serde helpers for `omitempty` fields.
pub(crate) mod omit {
    /// Zero integers are omitted.
    pub fn zero_i64(n: &i64) -> bool {
        *n == 0
    }
    /// Zero enums are omitted.
    pub fn zero_u8(n: &u8) -> bool {
        *n == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format_like_go() {
        let t = time::macros::datetime!(2026-11-28 00:37:36.501297010 UTC);
        assert_eq!(format_time(t), "2026-11-28T00:37:36.50129701Z");
        let t = time::macros::datetime!(2026-11-28 00:37:36 UTC);
        assert_eq!(format_time(t), "2026-11-28T00:37:36Z");
        // An offset is kept (observed: config `…12:00:00.50+02:00`).
        let t = parse_time("2024-01-01T12:00:00.50+02:00").unwrap();
        assert_eq!(format_time_keeping_offset(t), "2024-01-01T12:00:00.5+02:00");
        let t = parse_time("2024-01-01T12:00:00-05:30").unwrap();
        assert_eq!(format_time_keeping_offset(t), "2024-01-01T12:00:00-05:30");
    }

    #[test]
    fn go_escapes_html_characters() {
        let s = String::from_utf8(to_json(&serde_json::json!({"m": "<x>&"})).unwrap()).unwrap();
        assert_eq!(s, r#"{"m":"\u003cx\u003e\u0026"}"#);
    }

    #[test]
    fn random_ids_are_hex() {
        let id = random_id();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn ids_that_are_not_file_names_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\0"] {
            assert!(validate_id(Kind::Image, bad).is_err(), "{bad:?}");
        }
        for good in ["foo", "has space", "abc123"] {
            validate_id(Kind::Image, good).unwrap();
        }
    }
}
