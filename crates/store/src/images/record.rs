//! The image record as `images.json` stores it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::bigdata::validate_digest;
use crate::record::{zero_time, Kind, Record};

/// Big-data keys that start with this hold manifests: their digests are
/// the image's digests.
pub const MANIFEST_PREFIX: &str = "manifest";

/// One image's record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// The image's ID.
    pub id: String,
    /// "The" digest: given at creation, or else the first manifest digest
    /// recorded; once written it stays (the reference's sticky digest).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// Every digest the image is known by: `digest`, then the digests of
    /// its `manifest*` items (computed, not stored).
    #[serde(skip)]
    pub digests: Vec<String>,
    /// Names, unique among images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Every name the image had, newest first.
    #[serde(
        default,
        rename = "names-history",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub names_history: Vec<String>,
    /// The top layer (empty for an image without layers).
    #[serde(default, rename = "layer", skip_serializing_if = "String::is_empty")]
    pub top_layer: String,
    /// ID-mapped copies of the top layer.
    #[serde(
        default,
        rename = "mapped-layers",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mapped_layers: Vec<String>,
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
    /// Loaded from an additional, read-only store (computed).
    #[serde(skip)]
    pub read_only: bool,
    /// Free-form flags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flags: BTreeMap<String, Value>,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Image {
    /// Recomputes [`Image::digests`] (and fills an empty `digest`) from
    /// the digest and the `manifest*` items; an invalid digest is an error.
    pub fn recompute_digests(&mut self) -> Result<(), String> {
        let mut list: Vec<String> = Vec::new();
        if !self.digest.is_empty() {
            validate_digest(&self.digest)
                .map_err(|e| format!("validating image digest {:?}: {e}", self.digest))?;
            list.push(self.digest.clone());
        }
        for (key, d) in &self.big_data_digests {
            if !key.starts_with(MANIFEST_PREFIX) {
                continue;
            }
            validate_digest(d)
                .map_err(|e| format!("validating digest {d:?} for big data item {key:?}: {e}"))?;
            if !list.contains(d) {
                list.push(d.clone());
            }
        }
        if self.digest.is_empty() {
            if let Some(first) = list.first() {
                self.digest = first.clone();
            }
        }
        self.digests = list;
        Ok(())
    }

    /// The top layer, if any.
    pub fn top_layer(&self) -> Option<&str> {
        (!self.top_layer.is_empty()).then_some(self.top_layer.as_str())
    }
}

impl Record for Image {
    const KIND: Kind = Kind::Image;
    fn id(&self) -> &str {
        &self.id
    }
    fn names(&self) -> &[String] {
        &self.names
    }
    fn names_mut(&mut self) -> Option<&mut Vec<String>> {
        Some(&mut self.names)
    }
    fn loaded(&mut self) -> Result<(), String> {
        self.recompute_digests().map_err(|e| {
            format!(
                "computing digests for image with ID {:?} ({:?}): {e}",
                self.id, self.names
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::to_json;

    #[test]
    fn records_written_by_the_reference_round_trip() {
        // Written by skopeo 1.9.3 (shortened digests would not validate,
        // so these are full ones) and by the 1.43 CLI.
        let d = "sha256:d8470dfaa6f2002801867709010dfd512f46b513361fc02fdfde049e79b1871e";
        let c = "sha256:7c643688ac7cec4380945c6166fc8200056e943d4145f1051e198ccc7ffe7445";
        let e = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let skopeo = format!(
            r#"{{"id":"7c64","digest":"{d}","names":["localhost/hand:v1"],"names-history":["localhost/hand:v1"],"layer":"deea","metadata":"{{\"signatures-sizes\":{{\"{d}\":[]}}}}","big-data-names":["{c}","manifest-{d}","manifest","signature-d847"],"big-data-sizes":{{"manifest":401,"manifest-{d}":401,"{c}":309,"signature-d847":0}},"big-data-digests":{{"manifest":"{d}","manifest-{d}":"{d}","{c}":"{c}","signature-d847":"{e}"}},"created":"2024-01-01T00:00:00Z"}}"#
        );
        let cli = r#"{"id":"898c","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","names":["localhost/y:2"],"layer":"b1eb","metadata":"some metadata","created":"2026-12-02T16:21:23.183708465Z"}"#;
        let later = r#"{"id":"a","mapped-layers":["m1"],"created":"0001-01-01T00:00:00Z","flags":{"a":1,"b":true},"future-image-field":[1]}"#;
        for text in [skopeo.as_str(), cli, later] {
            let mut i: Image = serde_json::from_str(text).unwrap();
            i.loaded().unwrap();
            assert_eq!(String::from_utf8(to_json(&i).unwrap()).unwrap(), text);
        }
    }

    #[test]
    fn digest_is_filled_once_and_sticks() {
        let m1 = format!("sha256:{}", "1".repeat(64));
        let m2 = format!("sha256:{}", "2".repeat(64));
        let mut i = Image {
            id: "x".into(),
            ..Default::default()
        };
        i.big_data_digests.insert("manifest".into(), m1.clone());
        i.big_data_digests.insert("config".into(), m2.clone());
        i.recompute_digests().unwrap();
        assert_eq!(i.digest, m1);
        assert_eq!(i.digests, std::slice::from_ref(&m1));
        i.big_data_digests.insert("manifest".into(), m2.clone());
        i.recompute_digests().unwrap();
        assert_eq!(i.digest, m1, "sticky");
        assert_eq!(i.digests, [m1, m2]);
        i.big_data_digests.insert("manifest-x".into(), "bad".into());
        assert!(i.recompute_digests().is_err());
    }
}
