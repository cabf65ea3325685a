//! The layer record as `layers.json` stores it.
//!
//! Field names and order follow containers/storage 1.43; empty values are
//! omitted as Go's `omitempty` omits them; fields this version does not
//! know are kept and written back unchanged (after the known ones).

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strata_idmap::IdMap;

/// Flag set while a layer is being made.
pub const FLAG_INCOMPLETE: &str = "incomplete";

/// Flag strata sets on an imported layer for which it deliberately keeps
/// no tar-split record (the tar replaced one of its own members), so that
/// `check` tells that from a record lost to damage.
pub const FLAG_NO_TAR_SPLIT: &str = "strata-no-tar-split";

/// Whether the layer was imported without a tar-split record on purpose.
pub fn has_no_tar_split(l: &Layer) -> bool {
    matches!(l.flags.get(FLAG_NO_TAR_SPLIT), Some(Value::Bool(true)))
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u8(n: &u8) -> bool {
    *n == 0
}

fn zero_time() -> String {
    "0001-01-01T00:00:00Z".to_string()
}

/// One layer's record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// The layer's ID.
    pub id: String,
    /// Names, unique across the store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// ID of the parent layer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent: String,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    /// SELinux label for mounts.
    #[serde(
        default,
        rename = "mountlabel",
        skip_serializing_if = "String::is_empty"
    )]
    pub mount_label: String,
    /// Creation time, RFC 3339 with nanoseconds (Go's `RFC3339Nano`).
    #[serde(default = "zero_time")]
    pub created: String,
    /// `sha256:…` of the layer blob as it was given.
    #[serde(
        default,
        rename = "compressed-diff-digest",
        skip_serializing_if = "String::is_empty"
    )]
    pub compressed_digest: String,
    /// Size of the layer blob as it was given.
    #[serde(default, rename = "compressed-size", skip_serializing_if = "is_zero")]
    pub compressed_size: i64,
    /// `sha256:…` of the uncompressed tar.
    #[serde(
        default,
        rename = "diff-digest",
        skip_serializing_if = "String::is_empty"
    )]
    pub uncompressed_digest: String,
    /// Size of the uncompressed tar.
    #[serde(default, rename = "diff-size", skip_serializing_if = "is_zero")]
    pub uncompressed_size: i64,
    /// Compression of the blob: 0 none, 1 bzip2, 2 gzip, 3 xz, 4 zstd.
    #[serde(default, skip_serializing_if = "is_zero_u8")]
    pub compression: u8,
    /// Container uids that own files in the layer.
    #[serde(default, rename = "uidset", skip_serializing_if = "Vec::is_empty")]
    pub uids: Vec<u32>,
    /// Container gids that own files in the layer.
    #[serde(default, rename = "gidset", skip_serializing_if = "Vec::is_empty")]
    pub gids: Vec<u32>,
    /// Flags (`incomplete`, …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub flags: Map<String, Value>,
    /// UID map of the layer.
    #[serde(default, rename = "uidmap", skip_serializing_if = "Vec::is_empty")]
    pub uid_map: Vec<IdMap>,
    /// GID map of the layer.
    #[serde(default, rename = "gidmap", skip_serializing_if = "Vec::is_empty")]
    pub gid_map: Vec<IdMap>,
    /// Names of the big-data items stored with the layer.
    #[serde(
        default,
        rename = "big-data-names",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub big_data_names: Vec<String>,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Layer {
    /// Whether the incomplete flag is set.
    pub fn is_incomplete(&self) -> bool {
        matches!(self.flags.get(FLAG_INCOMPLETE), Some(Value::Bool(true)))
    }

    /// The parent, if any.
    pub fn parent(&self) -> Option<&str> {
        (!self.parent.is_empty()).then_some(self.parent.as_str())
    }

    /// The layer's ID maps.
    pub fn id_mappings(&self) -> strata_idmap::IdMappings {
        strata_idmap::IdMappings::new(self.uid_map.clone(), self.gid_map.clone())
    }
}

/// Parses the content of `layers.json`.
pub fn parse_layers(bytes: &[u8]) -> serde_json::Result<Vec<Layer>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    serde_json::from_slice(bytes)
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
    let t = t.to_offset(time::UtcOffset::UTC);
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
    if ns == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{ns:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

/// Now, as [`format_time`] formats it.
pub fn now() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

/// A new random layer ID: 64 hex digits whose first 12 are not all
/// decimal digits (so a short ID never reads as a number).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_record_round_trips_byte_for_byte() {
        // Records as containers-storage 1.43 wrote them.
        let cases = [
            r#"{"id":"684cfb33d663856077267fa98e80fb6c1dd567927a85a1516fa1377bf7ff0c6a","created":"2026-11-28T00:37:31.153462067Z","compressed-diff-digest":"sha256:b1e4","compressed-size":10240,"diff-digest":"sha256:b1e4","diff-size":10240,"uidset":[0],"gidset":[0]}"#,
            r#"{"id":"9ac4","names":["base","base2"],"created":"2026-11-28T00:37:34.227299585Z","compressed-diff-digest":"sha256:5445","compressed-size":209,"diff-digest":"sha256:b1e4","diff-size":10240,"compression":2,"uidset":[0],"gidset":[0]}"#,
            r#"{"id":"787c","names":["mapped"],"created":"2026-11-28T00:37:34.28876006Z","uidmap":[{"container_id":0,"host_id":1000,"size":100}],"gidmap":[{"container_id":0,"host_id":2000,"size":100}]}"#,
            r#"{"id":"mychild","names":["kid"],"parent":"9ac4","metadata":"some meta","mountlabel":"system_u:object_r:foo","created":"2026-11-28T00:37:36.50129701Z","big-data-names":["blob1"]}"#,
            r#"{"id":"x","created":"2026-11-28T00:37:36Z","flags":{"incomplete":true},"future-field":{"b":1,"a":[2]}}"#,
        ];
        for c in cases {
            let l: Layer = serde_json::from_str(c).unwrap();
            assert_eq!(String::from_utf8(to_json(&l).unwrap()).unwrap(), c);
        }
    }

    #[test]
    fn time_format_like_go() {
        let t = time::macros::datetime!(2026-11-28 00:37:36.501297010 UTC);
        assert_eq!(format_time(t), "2026-11-28T00:37:36.50129701Z");
        let t = time::macros::datetime!(2026-11-28 00:37:36 UTC);
        assert_eq!(format_time(t), "2026-11-28T00:37:36Z");
    }

    #[test]
    fn go_escapes_html_characters() {
        let l = Layer {
            id: "a".into(),
            metadata: "<x>&".into(),
            created: "t".into(),
            ..Default::default()
        };
        let s = String::from_utf8(to_json(&l).unwrap()).unwrap();
        assert!(s.contains(r#""metadata":"\u003cx\u003e\u0026""#), "{s}");
    }

    #[test]
    fn random_ids_are_hex() {
        let id = random_id();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
