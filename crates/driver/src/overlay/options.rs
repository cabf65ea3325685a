//! Typed options of the overlay driver, parsed once from `key=value`
//! strings in the grammar of [`crate::options`].

use std::path::PathBuf;

use crate::options::{parse, DriverOption};
use crate::Result;

/// Options of the overlay driver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlayOptions {
    /// Default mount options (`mountopt=`), comma-separated in the input.
    pub mount_options: Vec<String>,
    /// A FUSE overlay program (`mount_program=/usr/bin/fuse-overlayfs`).
    pub mount_program: Option<PathBuf>,
    /// Do not bind-mount the home privately.
    pub skip_mount_home: bool,
    /// Turn chown failures into warnings when applying layers.
    pub ignore_chown_errors: bool,
    /// Mode forced onto files (real one kept in an xattr); needs a mount
    /// program, which reads that xattr.
    pub force_mask: Option<u32>,
    /// Default quota size in bytes for new layers.
    pub size: Option<u64>,
    /// Default inode quota for new layers.
    pub inodes: Option<u64>,
    /// Read-only stores whose layers may be lowers (graph roots).
    pub image_stores: Vec<PathBuf>,
    /// Additional layer stores (`additionallayerstore=/path[:ref]`).
    pub layer_stores: Vec<super::als::LayerStoreDir>,
}

impl OverlayOptions {
    /// Parses the driver options.
    pub fn parse(opts: &[String]) -> Result<Self> {
        let mut o = OverlayOptions::default();
        for opt in parse("overlay", opts)? {
            o.set(&opt)?;
        }
        Ok(o)
    }

    fn set(&mut self, opt: &DriverOption) -> Result<()> {
        match opt.key.as_str() {
            "mountopt" => self.mount_options = opt.list(),
            "mount_program" => {
                self.mount_program = (!opt.value.is_empty()).then(|| PathBuf::from(&opt.value));
            }
            "skip_mount_home" => self.skip_mount_home = opt.bool()?,
            "ignore_chown_errors" => self.ignore_chown_errors = opt.bool()?,
            "force_mask" => self.force_mask = Some(opt.mode()?),
            "size" => self.size = Some(opt.size()?),
            "inodes" => self.inodes = Some(opt.count()?),
            "additionallayerstore" => self.layer_stores.extend(
                opt.list()
                    .iter()
                    .map(|s| super::als::LayerStoreDir::parse(s)),
            ),
            "imagestore" | "additionalimagestore" => self.image_stores.extend(opt.paths()?),
            _ => return Err(opt.unknown("overlay")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<OverlayOptions> {
        OverlayOptions::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_known_keys_with_and_without_prefix() {
        let o = p(&[
            "overlay.mountopt=nodev,metacopy=on",
            "mount_program=/usr/bin/fuse-overlayfs",
            "Overlay.Skip_Mount_Home=on",
            "overlay2.force_mask=shared",
            ".size=1G",
            "overlay.imagestore=/a,/b",
            "btrfs.min_space=1G",
        ])
        .unwrap();
        assert_eq!(o.mount_options, vec!["nodev", "metacopy=on"]);
        assert_eq!(
            o.mount_program.as_deref(),
            Some(std::path::Path::new("/usr/bin/fuse-overlayfs"))
        );
        assert!(o.skip_mount_home);
        assert_eq!(o.force_mask, Some(0o755));
        assert_eq!(o.size, Some(1 << 30));
        assert_eq!(o.image_stores.len(), 2);
    }

    #[test]
    fn rejects_unknown_and_malformed() {
        for (bad, named) in [
            ("overlay.bogus=1", "overlay.bogus"),
            ("ovelray.mount_program=/x", "ovelray.mount_program"),
            ("force_mask=999", "force_mask"),
            ("size=lots", "size"),
            ("inodes=-1", "inodes"),
            ("skip_mount_home=maybe", "skip_mount_home"),
            ("overlay.imagestore=relative", "overlay.imagestore"),
            ("novalue", "novalue"),
        ] {
            let e = p(&[bad]).unwrap_err();
            assert!(e.to_string().contains(named), "{bad}: {e}");
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{bad}");
        }
    }
}
