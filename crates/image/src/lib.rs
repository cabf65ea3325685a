//! Container images in and out of a strata store.
//!
//! Reads an image from an OCI image layout (`oci:DIR[:REF]`), a tar of one
//! (`oci-archive:FILE[:REF]`) or a `docker save` archive
//! (`docker-archive:FILE[:REF]`), verifying every blob against its
//! descriptor as it streams, and describes it the way skopeo 1.9
//! (containers/image 5.23) records it in a containers-storage store: the
//! image ID is the config digest, layer IDs chain the diff IDs, the
//! manifest and config are kept byte for byte (for a docker-archive, the
//! schema 2 manifest skopeo synthesises).
//!
//! ```text
//! oci:DIR[:REF]            DIR/index.json ─> [index ─>] manifest ─> config, layers
//! oci-archive:FILE[:REF]   the same tree, read in place from the tar
//! docker-archive:FILE[:REF] manifest.json ─> config, layer tars (manifest synthesised)
//! ```
//!
//! - [`location`]: parsing `TRANSPORT:PATH[:REF]`;
//! - [`reference`]: docker references, normalised as skopeo stores names;
//! - [`digest`]: digests, and readers that check blobs as they stream;
//! - [`manifest`]: media types, manifests, indexes, configs, layer IDs;
//! - [`platform`]: `OS/ARCH[/VARIANT]` and the choice from an index;
//! - [`source`]: the three source formats;
//! - [`import`]: layers and image record into a store;
//! - [`export`]: an image out to any of the three formats.
//!
//! ```
//! use strata_image::{ArchiveRef, Location};
//! let l = Location::parse("docker-archive:/tmp/app.tar:@1")?;
//! assert_eq!(l.path(), std::path::Path::new("/tmp/app.tar"));
//! assert_eq!(
//!     l,
//!     Location::DockerArchive {
//!         file: "/tmp/app.tar".into(),
//!         reference: Some(ArchiveRef::Index(1)),
//!     }
//! );
//! # Ok::<(), strata_image::Error>(())
//! ```

pub mod digest;
mod error;
pub mod export;
pub mod import;
pub mod location;
pub mod manifest;
pub mod platform;
pub mod reference;
pub mod source;
mod store;

pub use error::{Error, ErrorKind, Result};
pub use import::{import, ImageRecord, ImageTarget, ImportOptions, Imported, Progress};
pub use location::{ArchiveRef, Location};
pub use platform::Platform;
pub use reference::{normalize_name, Reference};
pub use source::{Choice, Document, Image, LayerBlob, Record, Source};
