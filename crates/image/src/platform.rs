//! Platforms (`OS/ARCH[/VARIANT]`) and the choice of one manifest from an
//! index.

use std::fmt;

use crate::{Error, Result};

/// An operating system, architecture and optional variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// `amd64`, `arm64`, …
    pub arch: String,
    /// `v7`, `v8`, … when given.
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `OS/ARCH[/VARIANT]`.
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || Error::Location {
            input: s.to_string(),
            reason: "a platform is OS/ARCH[/VARIANT]".into(),
        };
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Self::new(os, arch, None)),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
                Ok(Self::new(os, arch, Some(v)))
            }
            _ => Err(bad()),
        }
    }

    /// A platform with its architecture written the way OCI writes it
    /// (`x86_64` → `amd64`, `aarch64` → `arm64`).
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Self {
        let arch = match arch {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        Platform {
            os: os.to_string(),
            arch: arch.to_string(),
            variant: variant.filter(|v| !v.is_empty()).map(str::to_string),
        }
    }

    /// Whether `self` (what the user asked for) accepts `candidate`: same
    /// OS and architecture, and the same variant when one was asked for
    /// (`arm64` with no variant and `arm64/v8` are the same).
    pub fn accepts(&self, candidate: &Platform) -> bool {
        let norm = |p: &Platform| match (p.arch.as_str(), p.variant.as_deref()) {
            ("arm64", Some("v8")) => None,
            (_, v) => v.map(str::to_string),
        };
        self.os == candidate.os
            && self.arch == candidate.arch
            && (self.variant.is_none() || norm(self) == norm(candidate))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Picks the one entry of `candidates` that `wanted` accepts; with no
/// `wanted`, the only entry. The errors list what there is.
pub fn choose<T>(
    candidates: Vec<(Option<Platform>, T)>,
    wanted: Option<&Platform>,
    what: &str,
) -> Result<T> {
    let listing = |c: &[(Option<Platform>, T)]| {
        c.iter()
            .map(|(p, _)| {
                p.as_ref()
                    .map_or("(no platform)".to_string(), |p| p.to_string())
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let all = listing(&candidates);
    match wanted {
        None => {
            let mut it = candidates.into_iter();
            match (it.next(), it.next()) {
                (Some((_, only)), None) => Ok(only),
                (None, _) => Err(Error::Select(format!("{what} lists no images"))),
                _ => Err(Error::Select(format!(
                    "{what} has images for several platforms ({all}); choose one with --platform"
                ))),
            }
        }
        Some(w) => {
            let mut hits: Vec<(Option<Platform>, T)> = candidates
                .into_iter()
                .filter(|(p, _)| p.as_ref().is_some_and(|p| w.accepts(p)))
                .collect();
            match hits.len() {
                1 => Ok(hits.remove(0).1),
                0 => Err(Error::Select(format!(
                    "{what} has no image for platform {w} (it has {all})"
                ))),
                _ => Err(Error::Select(format!(
                    "{what} has several images for platform {w} ({}); give a variant",
                    listing(&hits)
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<Platform> {
        Some(Platform::parse(s).unwrap())
    }

    #[test]
    fn platforms_parse_and_match() {
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//v7").is_err());
        assert!(Platform::parse("linux/arm64")
            .unwrap()
            .accepts(&Platform::parse("linux/arm64/v8").unwrap()));
        assert!(Platform::parse("linux/arm64/v8")
            .unwrap()
            .accepts(&Platform::parse("linux/arm64").unwrap()));
        assert!(!Platform::parse("linux/arm/v6")
            .unwrap()
            .accepts(&Platform::parse("linux/arm/v7").unwrap()));
    }

    #[test]
    fn choice_lists_what_there_is() {
        let c = || {
            vec![
                (p("linux/amd64"), 1),
                (p("linux/arm/v7"), 2),
                (p("linux/arm/v6"), 3),
            ]
        };
        let e = choose(c(), None, "index").unwrap_err().to_string();
        assert!(e.contains("linux/amd64, linux/arm/v7, linux/arm/v6"), "{e}");
        assert_eq!(choose(c(), p("linux/amd64").as_ref(), "index").unwrap(), 1);
        assert_eq!(choose(c(), p("linux/arm/v6").as_ref(), "index").unwrap(), 3);
        let e = choose(c(), p("linux/arm").as_ref(), "index")
            .unwrap_err()
            .to_string();
        assert!(e.contains("several"), "{e}");
        let e = choose(c(), p("linux/s390x").as_ref(), "index")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no image for platform linux/s390x"), "{e}");
        assert_eq!(choose(vec![(None, 7)], None, "index").unwrap(), 7);
    }
}
