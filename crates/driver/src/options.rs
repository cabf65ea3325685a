//! Driver options: `key=value` strings parsed once, at the edge, into typed
//! per-driver structs.
//!
//! A key may carry its driver's prefix (`vfs.ignore_chown_errors=true`,
//! `overlay.mount_program=/usr/bin/fuse-overlayfs`), a bare leading dot
//! (`.mountopt=nodev`), or none (`mountopt=nodev`). Keys are compared
//! lowercase. An option prefixed with the name of *another* built-in driver
//! is not for us and is skipped (a store passes one option list to whichever
//! driver it ends up with); any other unknown key is an
//! [`Error::InvalidOption`] naming the key as given.
//!
//! Drivers use [`parse`] to split and filter, then match on
//! [`DriverOption::key`] and convert values with [`DriverOption::bool`],
//! [`DriverOption::size`] or [`DriverOption::paths`].

use std::path::PathBuf;

use crate::{Error, Result};

/// Names of the built-in drivers; an option prefixed with one of them that
/// is not the current driver is meant for that driver and skipped.
pub const DRIVER_NAMES: &[&str] = &["overlay", "overlay2", "btrfs", "zfs", "vfs", "aufs"];

/// One option meant for the current driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverOption {
    /// Key without prefix, lowercase (`mount_program`).
    pub key: String,
    /// Value as given (may be empty).
    pub value: String,
    /// The option exactly as given, for messages.
    pub given: String,
}

impl DriverOption {
    /// The "unknown key" error for this option.
    pub fn unknown(&self, driver: &str) -> Error {
        Error::InvalidOption {
            key: self.given_key(),
            reason: format!("{driver} driver does not support this option"),
        }
    }

    /// An "invalid value" error for this option.
    pub fn invalid(&self, reason: impl Into<String>) -> Error {
        Error::InvalidOption {
            key: self.given_key(),
            reason: reason.into(),
        }
    }

    fn given_key(&self) -> String {
        self.given
            .split_once('=')
            .map_or(self.given.as_str(), |(k, _)| k)
            .to_string()
    }

    /// The value as a boolean (`1 t true yes` / `0 f false no`, any case).
    pub fn bool(&self) -> Result<bool> {
        parse_bool(&self.value)
            .ok_or_else(|| self.invalid(format!("{:?} is not a boolean", self.value)))
    }

    /// The value as a byte size (`1024`, `10k`, `1.5G`, `2GiB`; binary units).
    pub fn size(&self) -> Result<u64> {
        parse_size(&self.value)
            .ok_or_else(|| self.invalid(format!("{:?} is not a size", self.value)))
    }

    /// The value as a comma-separated list of absolute paths.
    pub fn paths(&self) -> Result<Vec<PathBuf>> {
        self.value
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                let p = PathBuf::from(s);
                if p.is_absolute() {
                    Ok(p)
                } else {
                    Err(self.invalid(format!("{s:?} is not an absolute path")))
                }
            })
            .collect()
    }
}

/// Splits `raw` into the options meant for `driver`. Options without `=`
/// are malformed; options prefixed with another built-in driver are skipped.
pub fn parse(driver: &str, raw: &[String]) -> Result<Vec<DriverOption>> {
    let mut out = Vec::new();
    for given in raw {
        let (k, v) = given.split_once('=').ok_or_else(|| Error::InvalidOption {
            key: given.clone(),
            reason: "expected key=value".into(),
        })?;
        let k = k.trim().to_ascii_lowercase();
        let key = match k.split_once('.') {
            Some((prefix, rest)) if prefix.is_empty() || prefix == driver => rest.to_string(),
            Some((prefix, _)) if DRIVER_NAMES.contains(&prefix) => continue,
            Some(_) => {
                return Err(Error::InvalidOption {
                    key: given
                        .split_once('=')
                        .map_or(given.as_str(), |(k, _)| k)
                        .into(),
                    reason: format!("unknown driver prefix (this is the {driver} driver)"),
                })
            }
            None => k,
        };
        if key.is_empty() {
            return Err(Error::InvalidOption {
                key: given.clone(),
                reason: "empty key".into(),
            });
        }
        out.push(DriverOption {
            key,
            value: v.trim().to_string(),
            given: given.clone(),
        });
    }
    Ok(out)
}

/// Parses a boolean the way Go's `strconv.ParseBool` and config files spell it.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "yes" | "y" | "on" => Some(true),
        "0" | "f" | "false" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// Parses a size with an optional binary unit (`k`, `m`, `g`, `t`, `p`,
/// optionally followed by `b` or `ib`), fractional values allowed.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        "p" | "pb" | "pib" => 50,
        _ => return None,
    };
    let v = num * (1u64 << shift) as f64;
    if !v.is_finite() || v < 0.0 || v >= u64::MAX as f64 {
        return None;
    }
    Some(v as u64)
}

/// Typed options of the vfs driver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VfsOptions {
    /// Turn chown failures during apply into warnings (`ignore_chown_errors`).
    pub ignore_chown_errors: bool,
    /// Read-only stores whose layers may be used (`imagestore`,
    /// `additionalimagestore`).
    pub image_stores: Vec<PathBuf>,
}

impl VfsOptions {
    /// Parses vfs options. `mountopt` is refused: vfs mounts nothing.
    pub fn parse(raw: &[String]) -> Result<Self> {
        let mut o = VfsOptions::default();
        for opt in parse("vfs", raw)? {
            match opt.key.as_str() {
                "ignore_chown_errors" => o.ignore_chown_errors = opt.bool()?,
                "imagestore" | "additionalimagestore" => o.image_stores.extend(opt.paths()?),
                "mountopt" => return Err(opt.invalid("vfs driver does not support mount options")),
                _ => return Err(opt.unknown("vfs")),
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn prefixes_and_filtering() {
        let got = parse(
            "overlay",
            &v(&[
                "overlay.mount_program=/usr/bin/fuse-overlayfs",
                ".mountopt=nodev",
                "MountOpt=metacopy=on",
                "vfs.ignore_chown_errors=true",
                "btrfs.min_space=10G",
            ]),
        )
        .unwrap();
        let keys: Vec<(&str, &str)> = got
            .iter()
            .map(|o| (o.key.as_str(), o.value.as_str()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("mount_program", "/usr/bin/fuse-overlayfs"),
                ("mountopt", "nodev"),
                ("mountopt", "metacopy=on"),
            ]
        );
    }

    #[test]
    fn malformed() {
        let cases: &[(&str, &str)] = &[
            ("novalue", "novalue"),
            ("foo.bar=1", "foo.bar"),
            ("=x", "=x"),
            ("vfs.=x", "vfs.=x"),
        ];
        for (given, key) in cases {
            match parse("vfs", &v(&[given])).unwrap_err() {
                Error::InvalidOption { key: k, .. } => assert_eq!(k, *key, "{given}"),
                e => panic!("{given}: {e}"),
            }
        }
    }

    #[test]
    fn vfs_options() {
        let o = VfsOptions::parse(&v(&[
            "vfs.ignore_chown_errors=true",
            "vfs.imagestore=/a,/b",
            "overlay.mountopt=nodev",
        ]))
        .unwrap();
        assert!(o.ignore_chown_errors);
        assert_eq!(
            o.image_stores,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        for (bad, key) in [
            ("vfs.mountopt=nodev", "vfs.mountopt"),
            ("mountopt=nodev", "mountopt"),
            ("vfs.size=10G", "vfs.size"),
            ("ignore_chown_errors=maybe", "ignore_chown_errors"),
            ("vfs.imagestore=relative", "vfs.imagestore"),
        ] {
            let e = VfsOptions::parse(&v(&[bad])).unwrap_err();
            assert!(e.to_string().contains(key), "{bad}: {e}");
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn sizes_and_bools() {
        let cases: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("1024", Some(1024)),
            ("10k", Some(10240)),
            ("1.5G", Some(3 << 29)),
            ("2GiB", Some(2 << 30)),
            ("3mb", Some(3 << 20)),
            ("x", None),
            ("10q", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_size(s), *want, "{s}");
        }
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("2"), None);
    }
}
