//! Driver options: one grammar for every driver and for the store, parsed
//! once, at the edge, into typed per-driver structs.
//!
//! An option is `[<prefix>.]<key>=<value>`:
//!
//! - it is split at the first `=` (none is an error); key and value are
//!   trimmed, the key compared lowercase;
//! - the part of the key before its first `.` is a driver prefix. No prefix,
//!   or an empty one (`.mountopt=nodev`), means "whichever driver runs"; the
//!   driver's own name (or an alias, `overlay2.` for overlay) means this
//!   driver; the name of another built-in driver
//!   ([`builtin_names`](crate::table::builtin_names)) means that
//!   driver, and the option is skipped (one option list serves whichever
//!   driver a store ends up with); any other prefix is an error naming it,
//!   so that a typo (`ovelray.mount_program=…`) is never dropped silently;
//! - a key the driver does not know is an error naming the option as given.
//!
//! Values, the same for every key of every driver: booleans
//! ([`DriverOption::bool`]: `1 t true yes y on` / `0 f false no n off`, any
//! case), sizes ([`DriverOption::size`]: `1024`, `10k`, `1.5G`, `2GiB`, `10 G`;
//! binary units), counts ([`DriverOption::count`]), lists of absolute paths
//! ([`DriverOption::paths`]) and file modes ([`DriverOption::mode`]).
//!
//! Where this accepts what containers-storage 1.43 refuses, or the other
//! way round, README's "Differences" section says so.

use std::path::PathBuf;

use crate::table::{builtin_name, builtin_names};
use crate::{Error, Result};

/// One option, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverOption {
    /// Driver prefix, lowercase (`overlay`); `None` for a bare key or one
    /// with an empty prefix (`.mountopt`).
    pub prefix: Option<String>,
    /// Key without prefix, lowercase (`mount_program`).
    pub key: String,
    /// Value as given, trimmed (may be empty).
    pub value: String,
    /// The option exactly as given, for messages.
    pub given: String,
}

/// Whom an option is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// No prefix: whichever driver runs.
    Any,
    /// A built-in driver, by its canonical name (`overlay` for `overlay2.`).
    Driver(&'a str),
}

impl DriverOption {
    /// Splits one `[<prefix>.]<key>=<value>` option.
    pub fn parse(given: &str) -> Result<Self> {
        let (k, v) = given.split_once('=').ok_or_else(|| Error::InvalidOption {
            key: given.to_string(),
            reason: "expected key=value".into(),
        })?;
        let k = k.trim().to_ascii_lowercase();
        let (prefix, key) = match k.split_once('.') {
            Some(("", key)) => (None, key.to_string()),
            Some((p, key)) => (Some(p.to_string()), key.to_string()),
            None => (None, k),
        };
        if key.is_empty() {
            return Err(Error::InvalidOption {
                key: given.to_string(),
                reason: "empty key".into(),
            });
        }
        Ok(Self {
            prefix,
            key,
            value: v.trim().to_string(),
            given: given.to_string(),
        })
    }

    /// An option from a key and a value given apart (a layer's storage
    /// options, `size` → `10G`).
    pub fn from_pair(key: &str, value: &str) -> Self {
        Self {
            prefix: None,
            key: key.trim().to_ascii_lowercase(),
            value: value.trim().to_string(),
            given: format!("{key}={value}"),
        }
    }

    /// Whom the option is for; an unknown prefix is an error naming it.
    pub fn target(&self) -> Result<Target<'static>> {
        let Some(p) = &self.prefix else {
            return Ok(Target::Any);
        };
        match builtin_name(p) {
            Some(b) => Ok(Target::Driver(b)),
            None => Err(self.invalid(format!(
                "unknown driver prefix {p:?} (drivers: {})",
                builtin_names().collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Whether the option is for `driver`: unprefixed or prefixed with its
    /// name (or an alias of it). `false` for another built-in driver; an
    /// unknown prefix is an error.
    pub fn is_for(&self, driver: &str) -> Result<bool> {
        match &self.prefix {
            None => Ok(true),
            Some(p) if p == driver => Ok(true),
            Some(p) if builtin_name(p).is_some() && builtin_name(p) == builtin_name(driver) => {
                Ok(true)
            }
            Some(_) => self.target().map(|_| false),
        }
    }

    /// The "unknown key" error for this option.
    pub fn unknown(&self, driver: &str) -> Error {
        self.invalid(format!("the {driver} driver does not support this option"))
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
            .trim()
            .to_string()
    }

    /// The value as a boolean (`1 t true yes y on` / `0 f false no n off`,
    /// any case).
    pub fn bool(&self) -> Result<bool> {
        parse_bool(&self.value)
            .ok_or_else(|| self.invalid(format!("{:?} is not a boolean", self.value)))
    }

    /// The value as a byte size (`1024`, `10k`, `1.5G`, `2GiB`; binary units).
    pub fn size(&self) -> Result<u64> {
        parse_size(&self.value)
            .ok_or_else(|| self.invalid(format!("{:?} is not a size", self.value)))
    }

    /// The value as a count (a decimal number).
    pub fn count(&self) -> Result<u64> {
        self.value
            .parse()
            .map_err(|_| self.invalid(format!("{:?} is not a number", self.value)))
    }

    /// The value as a file mode: octal up to `7777`, or `shared` (0755) or
    /// `private` (0700).
    pub fn mode(&self) -> Result<u32> {
        match self.value.as_str() {
            "shared" => Ok(0o755),
            "private" => Ok(0o700),
            v => u32::from_str_radix(v, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| {
                    self.invalid(format!(
                        "{v:?} is not an octal mode, \"shared\" or \"private\""
                    ))
                }),
        }
    }

    /// The value as a comma-separated list (empty items dropped).
    pub fn list(&self) -> Vec<String> {
        self.value
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The value as a comma-separated list of absolute paths.
    pub fn paths(&self) -> Result<Vec<PathBuf>> {
        self.list()
            .into_iter()
            .map(|s| {
                let p = PathBuf::from(&s);
                if p.is_absolute() {
                    Ok(p)
                } else {
                    Err(self.invalid(format!("{s:?} is not an absolute path")))
                }
            })
            .collect()
    }
}

/// The options in `raw` meant for `driver`: every one is split (a malformed
/// option or an unknown prefix is an error), those for another built-in
/// driver are left out.
pub fn parse(driver: &str, raw: &[String]) -> Result<Vec<DriverOption>> {
    let mut out = Vec::new();
    for given in raw {
        let o = DriverOption::parse(given)?;
        if o.is_for(driver)? {
            out.push(o);
        }
    }
    Ok(out)
}

/// Parses a boolean: Go's `strconv.ParseBool` spellings and `yes`/`no`,
/// `y`/`n`, `on`/`off`, in any case.
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
    /// Read-only stores whose layers may be used (`imagestore`).
    pub image_stores: Vec<PathBuf>,
}

impl VfsOptions {
    /// Parses vfs options. `mountopt` is refused: vfs mounts nothing.
    pub fn parse(raw: &[String]) -> Result<Self> {
        let mut o = VfsOptions::default();
        for opt in parse("vfs", raw)? {
            match opt.key.as_str() {
                "ignore_chown_errors" => o.ignore_chown_errors = opt.bool()?,
                "imagestore" => o.image_stores.extend(opt.paths()?),
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
                " MountOpt = metacopy=on ",
                "overlay2.skip_mount_home=true",
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
                ("skip_mount_home", "true"),
            ]
        );
        let o = DriverOption::parse("Overlay2.X=1").unwrap();
        assert_eq!(o.target().unwrap(), Target::Driver("overlay"));
        assert!(o.is_for("overlay").unwrap() && !o.is_for("vfs").unwrap());
        assert_eq!(
            DriverOption::parse("x=1").unwrap().target().unwrap(),
            Target::Any
        );
    }

    #[test]
    fn malformed_and_unknown_prefixes() {
        let cases: &[(&str, &str)] = &[
            ("novalue", "novalue"),
            ("foo.bar=1", "foo.bar"),
            ("ovelray.mount_program=/x", "ovelray.mount_program"),
            ("=x", "=x"),
            ("vfs.=x", "vfs.=x"),
        ];
        for driver in ["vfs", "overlay", "btrfs"] {
            for (given, key) in cases {
                match parse(driver, &v(&[given])).unwrap_err() {
                    Error::InvalidOption { key: k, .. } => assert_eq!(k, *key, "{given}"),
                    e => panic!("{given}: {e}"),
                }
            }
        }
        let e = parse("overlay", &v(&["ovelray.mount_program=/x"])).unwrap_err();
        assert!(
            e.to_string().contains("unknown driver prefix \"ovelray\""),
            "{e}"
        );
    }

    #[test]
    fn vfs_options() {
        let o = VfsOptions::parse(&v(&[
            "vfs.ignore_chown_errors=on",
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
            ("vfs.additionalimagestore=/a", "vfs.additionalimagestore"),
        ] {
            let e = VfsOptions::parse(&v(&[bad])).unwrap_err();
            assert!(e.to_string().contains(key), "{bad}: {e}");
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn values() {
        let cases: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("1024", Some(1024)),
            ("10k", Some(10240)),
            ("1.5G", Some(3 << 29)),
            ("2GiB", Some(2 << 30)),
            ("3mb", Some(3 << 20)),
            ("10 G", Some(10 << 30)),
            ("x", None),
            ("10q", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_size(s), *want, "{s}");
        }
        for (s, want) in [
            ("TRUE", Some(true)),
            ("on", Some(true)),
            ("Yes", Some(true)),
            ("t", Some(true)),
            ("0", Some(false)),
            ("off", Some(false)),
            ("F", Some(false)),
            ("2", None),
            ("", None),
        ] {
            assert_eq!(parse_bool(s), want, "{s}");
        }
        let o = |v: &str| DriverOption::from_pair("k", v);
        assert_eq!(o("private").mode().unwrap(), 0o700);
        assert_eq!(o("4755").mode().unwrap(), 0o4755);
        assert!(o("999").mode().is_err() && o("17777").mode().is_err());
        assert_eq!(o("5").count().unwrap(), 5);
        assert!(o("-1").count().is_err());
        assert_eq!(o("a,,b").list(), ["a", "b"]);
    }
}
