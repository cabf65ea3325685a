//! Image names as docker references, normalised as skopeo and podman store
//! them: `t/i:1` → `docker.io/t/i:1`, `i` → `docker.io/library/i:latest`,
//! `localhost/i` → `localhost/i:latest`.
//!
//! The grammar is the distribution project's: a name is an optional domain
//! (it has a `.` or a `:`, or is `localhost`) and lower-case path components
//! joined by `/`, then an optional `:tag` and an optional `@algo:hex` digest.

use std::fmt;

use crate::{Error, Result};

/// Longest name (domain and path) a reference may have.
const NAME_MAX: usize = 255;
/// The registry a name without a domain belongs to.
const DEFAULT_DOMAIN: &str = "docker.io";
/// The namespace of single-component names on the default registry.
const OFFICIAL_PREFIX: &str = "library/";

/// A parsed, normalised docker reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host (and port): `docker.io`, `localhost`, `quay.io:443`.
    pub domain: String,
    /// Repository path below the domain: `library/debian`.
    pub path: String,
    /// Tag, when given.
    pub tag: Option<String>,
    /// Digest (`sha256:…`), when given.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `input` and normalises it (default domain, `library/`), as
    /// containers/image's `ParseNormalizedNamed` does.
    pub fn parse_normalized(input: &str) -> Result<Self> {
        let bad = |reason: &str| Error::Reference {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.len() == 64
            && input
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(bad("cannot specify 64-byte hexadecimal strings"));
        }
        let (name_tag, digest) = match input.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (input, None),
        };
        let (name, tag) = match name_tag.rfind(':') {
            Some(i) if !name_tag[i..].contains('/') => (&name_tag[..i], Some(&name_tag[i + 1..])),
            _ => (name_tag, None),
        };
        let (domain, path) = split_domain(name);
        if path.to_ascii_lowercase() != path {
            return Err(bad("repository name must be lowercase"));
        }
        if !domain_ok(&domain) || path.is_empty() || !path.split('/').all(component_ok) {
            return Err(bad("invalid reference format"));
        }
        if domain.len() + 1 + path.len() > NAME_MAX {
            return Err(bad("repository name must not be more than 255 characters"));
        }
        if let Some(t) = tag {
            if !tag_ok(t) {
                return Err(bad("invalid tag format"));
            }
        }
        if let Some(d) = digest {
            if !digest_ok(d) {
                return Err(bad("invalid digest format"));
            }
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// The repository: `domain/path`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// Adds the tag `latest` when neither a tag nor a digest was given
    /// (containers/image's `TagNameOnly`).
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".to_string());
        }
        self
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// The name an image is stored under when a user gives `input` (what
/// `skopeo copy … containers-storage:NAME` records): normalised, with the
/// tag `latest` when none is given. A name with both a tag and a digest is
/// refused (which of the two a later lookup means would be ambiguous).
pub fn normalize_name(input: &str) -> Result<String> {
    let r = Reference::parse_normalized(input)?.with_default_tag();
    if r.tag.is_some() && r.digest.is_some() {
        return Err(Error::Unsupported(format!(
            "image name {input:?} has both a tag and a digest"
        )));
    }
    Ok(r.to_string())
}

fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == "index.docker.io" {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !path.contains('/') {
        path = format!("{OFFICIAL_PREFIX}{path}");
    }
    (domain, path)
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let dashes = sep.bytes().all(|x| x == b'-');
        if !(sep == "." || sep == "_" || sep == "__" || dashes) {
            return false;
        }
    }
    true
}

fn domain_ok(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// `[\w][\w.-]{0,127}`.
fn tag_ok(t: &str) -> bool {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// `algo:hex` with at least 32 hex digits.
fn digest_ok(d: &str) -> bool {
    match d.split_once(':') {
        Some((algo, hex)) => {
            let a = algo.as_bytes();
            !a.is_empty()
                && a[0].is_ascii_alphabetic()
                && a.iter()
                    .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'-' | b'_' | b'+' | b'.'))
                && hex.len() >= 32
                && hex.bytes().all(|x| x.is_ascii_hexdigit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_as_skopeo_stores_them() {
        for (input, want) in [
            ("t/i:1", "docker.io/t/i:1"),
            ("i", "docker.io/library/i:latest"),
            ("x", "docker.io/library/x:latest"),
            ("localhost/m", "localhost/m:latest"),
            ("localhost/hand:v1", "localhost/hand:v1"),
            ("quay.io/a/b/c:2.0-rc_1", "quay.io/a/b/c:2.0-rc_1"),
            ("index.docker.io/debian", "docker.io/library/debian:latest"),
            ("registry:5000/x", "registry:5000/x:latest"),
            ("a.b/x.y__z--w", "a.b/x.y__z--w:latest"),
            (
                "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "docker.io/library/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
        ] {
            assert_eq!(normalize_name(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn bad_names_refused() {
        for (input, why) in [
            ("Upper/x", "lowercase"),
            ("x:", "tag"),
            ("x:-a", "tag"),
            ("a//b", "format"),
            ("a/-b", "format"),
            ("a/b.", "format"),
            ("a/b...c", "format"),
            ("", "format"),
            ("x@sha256:12", "digest"),
            (
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "hexadecimal",
            ),
            ("has space", "format"),
        ] {
            let e = normalize_name(input).unwrap_err().to_string();
            assert!(e.contains(why), "{input}: {e}");
        }
        let long = format!("a/{}", "b".repeat(300));
        assert!(normalize_name(&long)
            .unwrap_err()
            .to_string()
            .contains("255"));
        assert!(matches!(
            normalize_name(
                "x:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            ),
            Err(Error::Unsupported(_))
        ));
    }
}
