//! Manifests, indexes and configs: media types strata knows, parsing with
//! errors that name the blob, and what the import needs from a config.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::digest::Digest;
use crate::platform::Platform;
use crate::{Error, Result};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer (the name says gzip; docker-archive manifests use it for
/// plain tars too).
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

const SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

const LAYER_TYPES: [&str; 10] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    DOCKER_LAYER,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
];

/// What a manifest-ish document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One image.
    Manifest,
    /// A list of images (per platform).
    Index,
}

/// The kind of document a media type names; unknown types and Docker
/// schema 1 are refused.
pub fn kind_of(media_type: &str, what: &'static str, name: &str) -> Result<Kind> {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Ok(Kind::Manifest),
        OCI_INDEX | DOCKER_LIST => Ok(Kind::Index),
        t if SCHEMA1.contains(&t) => Err(Error::Unsupported(format!(
            "{what} {name} is a Docker schema 1 manifest"
        ))),
        t => Err(Error::MediaType {
            what,
            name: name.to_string(),
            media_type: t.to_string(),
        }),
    }
}

/// The media type a document declares, or the one its shape implies (for
/// descriptors without one): `manifests` → index, `config` → manifest.
pub fn declared_media_type(bytes: &[u8], what: &'static str, name: &str) -> Result<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        schema_version: Option<u32>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(bytes).map_err(|e| Error::document(what, name, e))?;
    Ok(match p {
        Probe {
            media_type: Some(t),
            ..
        } => t,
        Probe {
            schema_version: Some(1),
            ..
        } => SCHEMA1[0].to_string(),
        Probe {
            manifests: Some(_), ..
        } => OCI_INDEX.to_string(),
        Probe {
            config: Some(_), ..
        } => OCI_MANIFEST.to_string(),
        _ => {
            return Err(Error::document(
                what,
                name,
                "neither a manifest nor an index",
            ))
        }
    })
}

/// Checks that the document's own `mediaType`, when it has one, is the one
/// its descriptor gave.
fn check_declared(bytes: &[u8], expected: &str, what: &'static str, name: &str) -> Result<()> {
    let declared = declared_media_type(bytes, what, name)?;
    let explicit = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .is_some_and(|v| v.get("mediaType").is_some());
    if explicit && declared != expected {
        return Err(Error::document(
            what,
            name,
            format!("its mediaType is {declared:?}, its descriptor says {expected:?}"),
        ));
    }
    Ok(())
}

/// Parses an image index (or Docker manifest list) of media type `media_type`.
pub fn parse_index(bytes: &[u8], media_type: &str, name: &str) -> Result<ImageIndex> {
    check_declared(bytes, media_type, "index", name)?;
    serde_json::from_slice(bytes).map_err(|e| Error::document("index", name, e))
}

/// Parses an image manifest of media type `media_type` and checks the
/// media types it names.
pub fn parse_manifest(bytes: &[u8], media_type: &str, name: &str) -> Result<ImageManifest> {
    check_declared(bytes, media_type, "manifest", name)?;
    let m: ImageManifest =
        serde_json::from_slice(bytes).map_err(|e| Error::document("manifest", name, e))?;
    if m.schema_version() != 2 {
        return Err(Error::document(
            "manifest",
            name,
            format!("schemaVersion is {}, not 2", m.schema_version()),
        ));
    }
    let config_type = m.config().media_type().to_string();
    if config_type != OCI_CONFIG && config_type != DOCKER_CONFIG {
        return Err(Error::MediaType {
            what: "config",
            name: m.config().digest().to_string(),
            media_type: config_type,
        });
    }
    for l in m.layers() {
        let t = l.media_type().to_string();
        if !LAYER_TYPES.contains(&t.as_str()) {
            return Err(Error::MediaType {
                what: "layer",
                name: l.digest().to_string(),
                media_type: t,
            });
        }
    }
    Ok(m)
}

/// A descriptor's digest in strata's form.
pub fn descriptor_digest(d: &Descriptor) -> Result<Digest> {
    Digest::parse(d.digest().as_ref())
}

/// A descriptor's platform, when it has one.
pub fn descriptor_platform(d: &Descriptor) -> Option<Platform> {
    d.platform().as_ref().map(|p| {
        Platform::new(
            &p.os().to_string(),
            &p.architecture().to_string(),
            p.variant().as_deref(),
        )
    })
}

/// What the import needs from an image config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigInfo {
    /// Digests of the uncompressed layers, base first.
    pub diff_ids: Vec<Digest>,
    /// `created`, formatted as containers/storage stores it (RFC 3339 with
    /// nanoseconds, trailing zeros trimmed, the original offset kept).
    pub created: Option<String>,
    /// The platform the config declares.
    pub platform: Option<Platform>,
}

/// Parses the parts of an image config the import uses.
pub fn parse_config(bytes: &[u8], name: &str) -> Result<ConfigInfo> {
    #[derive(Deserialize)]
    struct RootFs {
        diff_ids: Option<Vec<String>>,
    }
    #[derive(Deserialize)]
    struct Doc {
        created: Option<String>,
        architecture: Option<String>,
        os: Option<String>,
        variant: Option<String>,
        rootfs: Option<RootFs>,
    }
    let doc: Doc = serde_json::from_slice(bytes).map_err(|e| Error::document("config", name, e))?;
    let rootfs = doc
        .rootfs
        .ok_or_else(|| Error::document("config", name, "rootfs is not set"))?;
    let diff_ids = rootfs
        .diff_ids
        .unwrap_or_default()
        .iter()
        .map(|d| {
            Digest::parse(d).map_err(|_| {
                Error::document(
                    "config",
                    name,
                    format!("rootfs.diff_ids has {d:?}, not a sha256 digest"),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let created = match doc.created.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            go_time(c)
                .map_err(|e| Error::document("config", name, format!("created {c:?}: {e}")))?,
        ),
    };
    let platform = match (doc.os.as_deref(), doc.architecture.as_deref()) {
        (Some(os), Some(arch)) => Some(Platform::new(os, arch, doc.variant.as_deref())),
        _ => None,
    };
    Ok(ConfigInfo {
        diff_ids,
        created,
        platform,
    })
}

/// Formats an RFC 3339 time as Go's `time.RFC3339Nano` writes it: the
/// fraction without trailing zeros, `Z` for a zero offset, else the offset
/// as given (what containers/storage stores for a config's `created`).
pub fn go_time(s: &str) -> std::result::Result<String, String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())?;
    Ok(strata_store::record::format_time_keeping_offset(t))
}

/// Layer IDs as containers/image 5.23 derives them: the first layer's ID is
/// its diff ID's hex, every other one sha256 of `"<parent ID>+<diff ID hex>"`.
pub fn layer_ids(diff_ids: &[Digest]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let id = match out.last() {
            None => d.hex().to_string(),
            Some(parent) => Digest::of(format!("{parent}+{}", d.hex()).as_bytes())
                .hex()
                .to_string(),
        };
        out.push(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_go_writes_them() {
        for (input, want) in [
            (
                "2024-01-01T12:00:00.50+02:00",
                "2024-01-01T12:00:00.5+02:00",
            ),
            ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"),
            ("2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00Z"),
            (
                "2023-05-06T07:08:09.123456789-05:30",
                "2023-05-06T07:08:09.123456789-05:30",
            ),
        ] {
            assert_eq!(go_time(input).unwrap(), want);
        }
        assert!(go_time("yesterday").is_err());
    }

    #[test]
    fn layer_ids_chain_like_containers_image() {
        // Observed with skopeo 1.9 (shared notes, section 1.7 and this
        // branch's runs): the second ID hashes "<first>+<diff ID hex>".
        let d1 = Digest::parse(
            "sha256:a23b4da324a1fb3b64078a704c71951c4797843987e5d53386fa652b06f5bad8",
        )
        .unwrap();
        let d2 = Digest::parse(
            "sha256:a595bbdf3143f08fb2361d339916ebebd347cd75b7f2b9b744aa2abcb9e8ae0e",
        )
        .unwrap();
        assert_eq!(
            layer_ids(&[d1, d2]),
            [
                "a23b4da324a1fb3b64078a704c71951c4797843987e5d53386fa652b06f5bad8",
                "c00d4252e1ade2bdd4595f5ae357bd98b30e5173c7fc413cb0d703416ba0cb13"
            ]
        );
    }

    #[test]
    fn unknown_media_types_are_named() {
        let cfg = format!("sha256:{}", "1".repeat(64));
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{cfg}","size":2}},"layers":[{{"mediaType":"application/x-weird","digest":"{cfg}","size":3}}]}}"#
        );
        let e = parse_manifest(m.as_bytes(), OCI_MANIFEST, "m").unwrap_err();
        assert!(e.to_string().contains("application/x-weird"), "{e}");
        let e = kind_of("text/plain", "manifest", "m").unwrap_err();
        assert!(matches!(e, Error::MediaType { .. }), "{e}");
        let e = parse_manifest(b"{not json", OCI_MANIFEST, "sha256:x").unwrap_err();
        assert!(e.to_string().starts_with("manifest sha256:x:"), "{e}");
    }

    #[test]
    fn config_needs_rootfs() {
        let e = parse_config(br#"{"os":"linux"}"#, "c").unwrap_err();
        assert!(e.to_string().contains("rootfs"), "{e}");
        let c = parse_config(
            br#"{"os":"linux","architecture":"arm64","created":"2024-01-01T00:00:00.000Z","rootfs":{"type":"layers","diff_ids":[]}}"#,
            "c",
        )
        .unwrap();
        assert_eq!(c.created.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(c.platform.unwrap().to_string(), "linux/arm64");
    }
}
