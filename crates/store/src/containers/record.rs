//! The container record as `containers.json` stores it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strata_idmap::IdMap;

use crate::record::{zero_time, Kind, Record};

/// Flag: the SELinux label of the container's mounts.
pub const FLAG_MOUNT_LABEL: &str = "MountLabel";
/// Flag: the SELinux label of the container's processes.
pub const FLAG_PROCESS_LABEL: &str = "ProcessLabel";
/// Flag: mount options for the container's layer.
pub const FLAG_MOUNT_OPTS: &str = "MountOpts";
/// Flag: the container's data need not survive a crash.
pub const FLAG_VOLATILE: &str = "Volatile";

/// One container's record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// The container's ID.
    pub id: String,
    /// Names, unique among containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// The image it was made from (`""` for none; always written).
    #[serde(default)]
    pub image: String,
    /// Its read-write layer (always written).
    #[serde(default)]
    pub layer: String,
    /// Free-form metadata (engines keep JSON here).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    /// Big-data keys, in the order they were first set.
    #[serde(
        default,
        rename = "big-data-names",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub big_data_names: Vec<String>,
    /// Size of each big-data item.
    #[serde(
        default,
        rename = "big-data-sizes",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub big_data_sizes: BTreeMap<String, i64>,
    /// Digest of each big-data item.
    #[serde(
        default,
        rename = "big-data-digests",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub big_data_digests: BTreeMap<String, String>,
    /// Creation time (RFC 3339 with nanoseconds).
    #[serde(default = "zero_time")]
    pub created: String,
    /// The UID map asked for at creation.
    #[serde(default, rename = "uidmap", skip_serializing_if = "Vec::is_empty")]
    pub uid_map: Vec<IdMap>,
    /// The GID map asked for at creation.
    #[serde(default, rename = "gidmap", skip_serializing_if = "Vec::is_empty")]
    pub gid_map: Vec<IdMap>,
    /// `MountLabel`, `ProcessLabel`, `MountOpts`, `Volatile`, ….
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flags: BTreeMap<String, Value>,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Container {
    /// A string flag (`MountLabel`, `ProcessLabel`).
    pub fn flag_str(&self, key: &str) -> Option<&str> {
        self.flags.get(key).and_then(Value::as_str)
    }

    /// The mount options recorded in `MountOpts`.
    pub fn mount_opts(&self) -> Vec<String> {
        match self.flags.get(FLAG_MOUNT_OPTS) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the `Volatile` flag is set.
    pub fn is_volatile(&self) -> bool {
        matches!(self.flags.get(FLAG_VOLATILE), Some(Value::Bool(true)))
    }

    /// The container's ID maps.
    pub fn id_mappings(&self) -> strata_idmap::IdMappings {
        strata_idmap::IdMappings::new(self.uid_map.clone(), self.gid_map.clone())
    }
}

impl Record for Container {
    const KIND: Kind = Kind::Container;
    fn id(&self) -> &str {
        &self.id
    }
    fn names(&self) -> &[String] {
        &self.names
    }
    fn names_mut(&mut self) -> Option<&mut Vec<String>> {
        Some(&mut self.names)
    }
    fn alt_key(&self) -> Option<&str> {
        Some(&self.layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::to_json;

    #[test]
    fn records_written_by_the_reference_round_trip() {
        let cases = [
            r#"{"id":"5df9","names":["ctr1"],"image":"2864","layer":"5dcb","created":"2026-12-02T16:21:50.928002154Z","flags":{"MountLabel":"","ProcessLabel":""}}"#,
            r#"{"id":"853f","names":["mc"],"image":"d106","layer":"039c","created":"2026-12-02T16:21:50Z","uidmap":[{"container_id":0,"host_id":100000,"size":65536}],"gidmap":[{"container_id":0,"host_id":200000,"size":65536}],"flags":{"MountLabel":"","ProcessLabel":"","Volatile":true}}"#,
            r#"{"id":"7824","names":["pc1"],"image":"7c64","layer":"dcdc","metadata":"{\"image-name\":\"localhost/hand:v1\"}","big-data-names":["config.json"],"big-data-sizes":{"config.json":2},"big-data-digests":{"config.json":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"created":"2026-12-02T16:21:50Z","flags":{"MountLabel":"","MountOpts":["nodev"],"ProcessLabel":""}}"#,
            r#"{"id":"none","image":"","layer":"l","created":"0001-01-01T00:00:00Z","future":{"z":1}}"#,
        ];
        for c in cases {
            let r: Container = serde_json::from_str(c).unwrap();
            assert_eq!(String::from_utf8(to_json(&r).unwrap()).unwrap(), c);
        }
        let r: Container = serde_json::from_str(cases[2]).unwrap();
        assert_eq!(r.mount_opts(), ["nodev"]);
        assert_eq!(r.flag_str(FLAG_MOUNT_LABEL), Some(""));
    }
}
