//! Typed options of the overlay driver, parsed once from `key=value`
//! strings (with or without the `overlay.` prefix, keys case-insensitive).

use std::path::PathBuf;

use crate::{Error, Result};

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
    /// Mode forced onto files (real one kept in an xattr).
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

/// Parses a size like `10G`, `512m`, `1000` (bytes; binary multiples).
pub fn parse_size(key: &str, v: &str) -> Result<u64> {
    let bad = || Error::InvalidOption {
        key: key.to_string(),
        reason: format!("{v:?} is not a size"),
    };
    let t = v.trim();
    let lower = t.to_ascii_lowercase();
    let lower = lower.trim_end_matches('b').trim_end_matches('i');
    let (num, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    if n.is_nan() || n < 0.0 || n.is_infinite() {
        return Err(bad());
    }
    Ok((n * mult as f64) as u64)
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "yes" | "y" => Ok(true),
        "0" | "f" | "false" | "no" | "n" => Ok(false),
        _ => Err(Error::InvalidOption {
            key: key.to_string(),
            reason: format!("{v:?} is not a boolean"),
        }),
    }
}

fn parse_mask(key: &str, v: &str) -> Result<u32> {
    match v {
        "shared" => Ok(0o755),
        "private" => Ok(0o700),
        _ => u32::from_str_radix(v, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| Error::InvalidOption {
                key: key.to_string(),
                reason: format!("{v:?} is not an octal mode, \"shared\" or \"private\""),
            }),
    }
}

impl OverlayOptions {
    /// Parses the driver options. Options of other drivers (`btrfs.…`,
    /// `vfs.…`) are ignored; an unknown key is an error naming it.
    pub fn parse(opts: &[String]) -> Result<Self> {
        let mut o = OverlayOptions::default();
        for raw in opts {
            let (k, v) = raw.split_once('=').ok_or_else(|| Error::InvalidOption {
                key: raw.clone(),
                reason: "expected key=value".into(),
            })?;
            let key = k.trim().to_ascii_lowercase();
            let key = match key.split_once('.') {
                Some(("overlay" | "overlay2", rest)) => rest.to_string(),
                Some((_, _)) => continue,
                None => key,
            };
            let v = v.trim();
            match key.as_str() {
                "mountopt" => {
                    o.mount_options = v
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                }
                "mount_program" => {
                    o.mount_program = (!v.is_empty()).then(|| PathBuf::from(v));
                }
                "skip_mount_home" => o.skip_mount_home = parse_bool(k, v)?,
                "ignore_chown_errors" => o.ignore_chown_errors = parse_bool(k, v)?,
                "force_mask" => o.force_mask = Some(parse_mask(k, v)?),
                "size" => o.size = Some(parse_size(k, v)?),
                "inodes" => {
                    o.inodes = Some(v.parse().map_err(|_| Error::InvalidOption {
                        key: k.to_string(),
                        reason: format!("{v:?} is not a number"),
                    })?)
                }
                "additionallayerstore" => o.layer_stores.extend(
                    v.split(',')
                        .filter(|s| !s.is_empty())
                        .map(super::als::LayerStoreDir::parse),
                ),
                "imagestore" | "additionalimagestore" => o
                    .image_stores
                    .extend(v.split(',').filter(|s| !s.is_empty()).map(PathBuf::from)),
                _ => {
                    return Err(Error::InvalidOption {
                        key: k.to_string(),
                        reason: "unknown overlay option".into(),
                    })
                }
            }
        }
        Ok(o)
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
            "Overlay.Skip_Mount_Home=true",
            "overlay.force_mask=shared",
            "overlay.size=1G",
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
        let e = p(&["overlay.bogus=1"]).unwrap_err().to_string();
        assert!(e.contains("overlay.bogus"), "{e}");
        assert!(p(&["force_mask=999"]).is_err());
        assert!(p(&["size=lots"]).is_err());
        assert!(p(&["skip_mount_home=maybe"]).is_err());
        assert!(p(&["novalue"]).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("s", "1000").unwrap(), 1000);
        assert_eq!(parse_size("s", "10k").unwrap(), 10240);
        assert_eq!(parse_size("s", "2MB").unwrap(), 2 << 20);
        assert_eq!(parse_size("s", "1.5GiB").unwrap(), 3 << 29);
    }
}
