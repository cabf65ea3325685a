//! The additional layer store protocol (experimental, as in
//! containers/storage): a directory, usually a FUSE filesystem such as
//! stargz-store, that offers ready layers:
//!
//! ```text
//! <store>/[<base64(image ref)>/]<digest>/
//! ├── diff/     the layer's files (read-only)
//! ├── info      JSON description of the layer
//! ├── blob      the compressed layer blob
//! └── use       created and removed to tell the store a layer is in use
//! ```
//!
//! A layer made from it has the usual directory in the home, with `diff` a
//! symlink to the store's `diff` and an `additionallayer` file naming the
//! store directory; it is mounted read-only.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::layout::Layout;
use super::layout::ParentLinks;
use crate::{AdditionalLayer, AdditionalLayerStore, Error, Result};

/// One configured store: its path and whether layers sit under a
/// base64-encoded image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStoreDir {
    /// The store directory.
    pub path: PathBuf,
    /// Layers are under `<base64(ref)>/`.
    pub with_reference: bool,
}

impl LayerStoreDir {
    /// Parses `/path` or `/path:ref`.
    pub fn parse(v: &str) -> Self {
        match v.strip_suffix(":ref") {
            Some(p) => Self {
                path: p.into(),
                with_reference: true,
            },
            None => Self {
                path: v.into(),
                with_reference: false,
            },
        }
    }
}

/// Standard base64 with padding (RFC 4648), as the stores name references.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Tells the store a layer is in use (create and remove `use`).
fn notify_use(dir: &Path) {
    let u = dir.join("use");
    match fs::File::create(&u) {
        Ok(_) => {
            let _ = fs::remove_file(&u);
        }
        Err(e) => {
            tracing::debug!(path = %u.display(), error = %e, "additional layer store not notified")
        }
    }
}

/// The additional layer stores of one overlay driver.
pub struct Stores {
    pub(super) dirs: Vec<LayerStoreDir>,
    pub(super) layout: Layout,
}

/// A layer found in a store.
struct Found {
    dir: PathBuf,
    layout: Layout,
}

fn unknown(what: String) -> Error {
    Error::LayerUnknown(what)
}

impl Stores {
    fn find(&self, digest: &str, image_ref: &str) -> Option<PathBuf> {
        let enc = base64(image_ref.as_bytes());
        self.dirs.iter().find_map(|s| {
            let mut t = s.path.clone();
            if s.with_reference {
                t.push(&enc);
            }
            t.push(digest);
            ["diff", "info", "blob"]
                .iter()
                .all(|f| t.join(f).exists())
                .then_some(t)
        })
    }
}

impl AdditionalLayerStore for Stores {
    fn lookup(&self, digest: &str, image_ref: &str) -> Result<Box<dyn AdditionalLayer>> {
        if digest.contains('/') || digest.starts_with('.') {
            return Err(unknown(format!("additional layer {digest:?}")));
        }
        let dir = self
            .find(digest, image_ref)
            .ok_or_else(|| unknown(format!("additional layer ({digest}, {image_ref})")))?;
        notify_use(&dir);
        Ok(Box::new(Found {
            dir,
            layout: self.layout.clone(),
        }))
    }

    fn lookup_by_id(&self, id: &str) -> Result<Box<dyn AdditionalLayer>> {
        super::layout::check_id(id)?;
        let f = self.layout.dir(id).join("additionallayer");
        let dir = fs::read_to_string(&f)
            .map_err(|_| unknown(format!("{id} is not from an additional layer store")))?;
        Ok(Box::new(Found {
            dir: PathBuf::from(dir.trim()),
            layout: self.layout.clone(),
        }))
    }
}

impl AdditionalLayer for Found {
    fn create_as(&self, id: &str, parent: Option<&str>) -> Result<()> {
        super::layout::check_id(id)?;
        let links = match parent {
            Some(p) => {
                Some(ParentLinks::read(&self.layout.dir(p)).map_err(|_| unknown(p.to_string()))?)
            }
            None => None,
        };
        self.layout.create(id, links.as_ref(), (0, 0), 0o555)?;
        let layer = self.layout.dir(id);
        let diff = layer.join("diff");
        let res = (|| {
            fs::remove_dir(&diff).map_err(|e| Error::path("remove", &diff, e))?;
            super::layout::write_file(
                &layer.join("additionallayer"),
                self.dir.as_os_str().as_encoded_bytes(),
            )?;
            notify_use(&self.dir);
            std::os::unix::fs::symlink(self.dir.join("diff"), &diff)
                .map_err(|e| Error::path("symlink", &diff, e))
        })();
        if res.is_err() {
            if let Ok(Some(link)) = self.layout.read_link(id) {
                let _ = fs::remove_file(self.layout.links().join(link));
            }
            let _ = fs::remove_dir_all(&layer);
        }
        res
    }

    fn info(&self) -> Result<Box<dyn Read + Send>> {
        let p = self.dir.join("info");
        Ok(Box::new(
            fs::File::open(&p).map_err(|e| Error::path("open", p, e))?,
        ))
    }

    fn blob(&self) -> Result<Box<dyn Read + Send>> {
        let p = self.dir.join("blob");
        Ok(Box::new(
            fs::File::open(&p).map_err(|e| Error::path("open", p, e))?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(
            base64(b"docker.io/library/alpine:latest"),
            "ZG9ja2VyLmlvL2xpYnJhcnkvYWxwaW5lOmxhdGVzdA=="
        );
    }

    #[test]
    fn store_option_forms() {
        assert!(LayerStoreDir::parse("/s:ref").with_reference);
        assert_eq!(LayerStoreDir::parse("/s").path, PathBuf::from("/s"));
    }
}
