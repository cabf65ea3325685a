//! Staged applies by an external differ: the differ fills a fresh directory
//! under `<home>/staging/`, which then becomes a layer's `diff` by one
//! rename, or is removed after a failure.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::Overlay;
use crate::{ApplyDiffOptions, Differ, DifferOutput, DifferSupport, Error, Result};

impl Overlay {
    fn staging_root(&self) -> PathBuf {
        self.layout.home.join("staging")
    }

    /// `p` if it is a direct child of the staging root (never anything else).
    fn checked_staging(&self, p: &Path) -> Result<PathBuf> {
        let root = self.staging_root();
        if p.parent() != Some(root.as_path()) || p.file_name().is_none_or(|n| n == ".." || n == ".")
        {
            return Err(Error::InvalidOption {
                key: "staging directory".into(),
                reason: format!("{} is not under {}", p.display(), root.display()),
            });
        }
        Ok(p.to_path_buf())
    }
}

impl DifferSupport for Overlay {
    fn apply_with_differ(
        &self,
        parent: Option<&str>,
        opts: &ApplyDiffOptions,
        differ: &dyn Differ,
    ) -> Result<DifferOutput> {
        if let Some(p) = parent {
            if self.find_layer(p)?.is_none() {
                return Err(Error::LayerUnknown(p.to_string()));
            }
        }
        let root = self.staging_root();
        fs::DirBuilder::new()
            .recursive(true)
            .create(&root)
            .map_err(|e| Error::path("mkdir", &root, e))?;
        let dir = root.join(super::layout::new_link_id());
        super::layout::mkdir_mode(&dir, 0o555)?;
        match differ.apply_diff(&dir, opts) {
            Ok(mut out) => {
                out.target = dir;
                Ok(out)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    fn apply_from_staging(
        &self,
        id: &str,
        parent: Option<&str>,
        output: &DifferOutput,
    ) -> Result<()> {
        let staged = self.checked_staging(&output.target)?;
        if self.parent_of(id)?.as_deref() != parent {
            return Err(Error::InvalidOption {
                key: "parent".into(),
                reason: format!("layer {id} does not have parent {parent:?}"),
            });
        }
        let diff = self.layout.diff(id);
        // The layer's own diff must still be empty: the staged tree replaces it.
        fs::remove_dir(&diff).map_err(|e| match e.kind() {
            io::ErrorKind::DirectoryNotEmpty => {
                Error::LayerExists(format!("{id} (diff not empty)"))
            }
            _ => Error::path("remove", &diff, e),
        })?;
        fs::rename(&staged, &diff).map_err(|e| Error::path("rename", &staged, e))
    }

    fn cleanup_staging(&self, staging: &Path) -> Result<()> {
        let p = self.checked_staging(staging)?;
        match fs::remove_dir_all(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::path("remove", p, e)),
            _ => Ok(()),
        }
    }

    fn differ_target(&self, id: &str) -> Result<PathBuf> {
        let (dir, _) = self
            .find_layer(id)?
            .ok_or_else(|| Error::LayerUnknown(id.to_string()))?;
        Ok(dir.join("diff"))
    }
}
