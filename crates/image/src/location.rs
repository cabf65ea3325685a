//! Where an image is read from or written to: `oci:DIR[:REF]`,
//! `oci-archive:FILE[:REF]`, `docker-archive:FILE[:REF]` (the forms skopeo
//! takes; the path ends at the first `:` after the transport, as there).

use std::path::PathBuf;

use crate::reference::Reference;
use crate::{Error, Result};

/// Which image of a docker-archive is meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveRef {
    /// The item whose `RepoTags` has this (normalised, tagged) name.
    Name(String),
    /// The item at this position of `manifest.json` (`@N`).
    Index(usize),
}

/// An image location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An OCI image layout directory; the reference is the
    /// `org.opencontainers.image.ref.name` annotation in `index.json`.
    Oci {
        /// The layout directory.
        dir: PathBuf,
        /// The reference, if any.
        reference: Option<String>,
    },
    /// A tar archive of an OCI image layout.
    OciArchive {
        /// The archive.
        file: PathBuf,
        /// The reference, if any.
        reference: Option<String>,
    },
    /// A `docker save` archive.
    DockerArchive {
        /// The archive.
        file: PathBuf,
        /// The image in it, if any.
        reference: Option<ArchiveRef>,
    },
}

impl Location {
    /// Parses `TRANSPORT:PATH[:REF]`.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |reason: &str| Error::Location {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let (transport, rest) = input.split_once(':').ok_or_else(|| {
            bad("expected oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REF]")
        })?;
        let (path, reference) = match rest.split_once(':') {
            Some((p, r)) => (p, (!r.is_empty()).then_some(r)),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(bad("the path is empty"));
        }
        let path = PathBuf::from(path);
        let oci_ref = |r: Option<&str>| -> Result<Option<String>> {
            match r {
                Some(r) if !r.bytes().all(|b| b.is_ascii_graphic()) => Err(bad(
                    "the reference has characters an OCI ref name cannot have",
                )),
                r => Ok(r.map(str::to_string)),
            }
        };
        Ok(match transport {
            "oci" => Location::Oci {
                dir: path,
                reference: oci_ref(reference)?,
            },
            "oci-archive" => Location::OciArchive {
                file: path,
                reference: oci_ref(reference)?,
            },
            "docker-archive" => Location::DockerArchive {
                file: path,
                reference: match reference {
                    None => None,
                    Some(r) => Some(match r.strip_prefix('@') {
                        Some(n) => {
                            ArchiveRef::Index(n.parse().map_err(|_| bad("@N needs a number"))?)
                        }
                        None => {
                            let parsed = Reference::parse_normalized(r)?.with_default_tag();
                            if parsed.digest.is_some() {
                                return Err(bad(
                                    "docker-archive does not support digest references",
                                ));
                            }
                            ArchiveRef::Name(parsed.to_string())
                        }
                    }),
                },
            },
            other => {
                return Err(bad(&format!(
                    "unknown transport {other:?} (strata knows oci, oci-archive, docker-archive)"
                )))
            }
        })
    }

    /// The file or directory.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Location::Oci { dir, .. } => dir,
            Location::OciArchive { file, .. } | Location::DockerArchive { file, .. } => file,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            Location::parse("oci:/a/b:v1").unwrap(),
            Location::Oci {
                dir: "/a/b".into(),
                reference: Some("v1".into())
            }
        );
        assert_eq!(
            Location::parse("oci-archive:x.tar").unwrap(),
            Location::OciArchive {
                file: "x.tar".into(),
                reference: None
            }
        );
        assert_eq!(
            Location::parse("oci:d:a:b").unwrap(),
            Location::Oci {
                dir: "d".into(),
                reference: Some("a:b".into())
            }
        );
        assert_eq!(
            Location::parse("docker-archive:f.tar:t/i").unwrap(),
            Location::DockerArchive {
                file: "f.tar".into(),
                reference: Some(ArchiveRef::Name("docker.io/t/i:latest".into()))
            }
        );
        assert_eq!(
            Location::parse("docker-archive:f.tar:@2").unwrap(),
            Location::DockerArchive {
                file: "f.tar".into(),
                reference: Some(ArchiveRef::Index(2))
            }
        );
        for bad in [
            "docker://x",
            "oci:",
            "nothing",
            "docker-archive:f:@x",
            "docker-archive:f:UP",
            "oci:d:a b",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }
}
