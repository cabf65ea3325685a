//! The layer record as `layers.json` stores it, and the mount counts of
//! `mountpoints.json`.
//!
//! Field names and order follow containers/storage 1.43; empty values are
//! omitted as Go's `omitempty` omits them; fields this version does not
//! know (`toc-digest` of later releases, …) are kept and written back
//! unchanged (after the known ones).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strata_idmap::IdMap;

use crate::record::{omit, zero_time, Kind, Record};

/// Flag set while a layer is being made.
pub const FLAG_INCOMPLETE: &str = "incomplete";

/// Flag strata sets on an imported layer for which it deliberately keeps
/// no tar-split record (the tar replaced one of its own members), so that
/// `check` tells that from a record lost to damage.
pub const FLAG_NO_TAR_SPLIT: &str = "strata-no-tar-split";

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
    #[serde(
        default,
        rename = "compressed-size",
        skip_serializing_if = "omit::zero_i64"
    )]
    pub compressed_size: i64,
    /// `sha256:…` of the uncompressed tar.
    #[serde(
        default,
        rename = "diff-digest",
        skip_serializing_if = "String::is_empty"
    )]
    pub uncompressed_digest: String,
    /// Size of the uncompressed tar.
    #[serde(default, rename = "diff-size", skip_serializing_if = "omit::zero_i64")]
    pub uncompressed_size: i64,
    /// Compression of the blob: 0 none, 1 bzip2, 2 gzip, 3 xz, 4 zstd.
    #[serde(default, skip_serializing_if = "omit::zero_u8")]
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
    /// Whether strata imported the layer without a tar-split record on
    /// purpose ([`FLAG_NO_TAR_SPLIT`]).
    pub fn has_no_tar_split(&self) -> bool {
        matches!(self.flags.get(FLAG_NO_TAR_SPLIT), Some(Value::Bool(true)))
    }

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

impl Record for Layer {
    const KIND: Kind = Kind::Layer;
    fn id(&self) -> &str {
        &self.id
    }
    fn names(&self) -> &[String] {
        &self.names
    }
    fn names_mut(&mut self) -> Option<&mut Vec<String>> {
        Some(&mut self.names)
    }
}

/// One entry of `mountpoints.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MountRecord {
    /// The layer.
    pub id: String,
    /// Where it is mounted.
    #[serde(default)]
    pub path: String,
    /// How many mounts are outstanding.
    #[serde(default)]
    pub count: u64,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Record for MountRecord {
    const KIND: Kind = Kind::Layer;
    fn id(&self) -> &str {
        &self.id
    }
    fn names(&self) -> &[String] {
        &[]
    }
    fn names_mut(&mut self) -> Option<&mut Vec<String>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::to_json;

    #[test]
    fn reference_record_round_trips_byte_for_byte() {
        // Records as containers-storage 1.43 wrote them, and one with the
        // `toc-digest` of later releases and a field nobody knows.
        let cases = [
            r#"{"id":"684cfb33d663856077267fa98e80fb6c1dd567927a85a1516fa1377bf7ff0c6a","created":"2026-11-28T00:37:31.153462067Z","compressed-diff-digest":"sha256:b1e4","compressed-size":10240,"diff-digest":"sha256:b1e4","diff-size":10240,"uidset":[0],"gidset":[0]}"#,
            r#"{"id":"9ac4","names":["base","base2"],"created":"2026-11-28T00:37:34.227299585Z","compressed-diff-digest":"sha256:5445","compressed-size":209,"diff-digest":"sha256:b1e4","diff-size":10240,"compression":2,"uidset":[0],"gidset":[0]}"#,
            r#"{"id":"787c","names":["mapped"],"created":"2026-11-28T00:37:34.28876006Z","uidmap":[{"container_id":0,"host_id":1000,"size":100}],"gidmap":[{"container_id":0,"host_id":2000,"size":100}]}"#,
            r#"{"id":"mychild","names":["kid"],"parent":"9ac4","metadata":"some meta","mountlabel":"system_u:object_r:foo","created":"2026-11-28T00:37:36.50129701Z","big-data-names":["blob1"]}"#,
            r#"{"id":"x","created":"2026-11-28T00:37:36Z","flags":{"incomplete":true},"future-field":{"b":1,"a":[2]}}"#,
            r#"{"id":"y","created":"2026-11-28T00:37:36Z","diff-size":-1,"compression":4,"toc-digest":"sha256:abcd"}"#,
        ];
        for c in cases {
            let l: Layer = serde_json::from_str(c).unwrap();
            assert_eq!(String::from_utf8(to_json(&l).unwrap()).unwrap(), c);
        }
    }
}
