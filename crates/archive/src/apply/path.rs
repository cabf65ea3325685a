//! Entry names: normalisation and whiteout classification (pure logic).

/// Prefix of a whiteout name (`.wh.NAME` deletes `NAME`).
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Prefix of AUFS metadata names (`.wh..wh.*`).
pub(crate) const META_PREFIX: &[u8] = b".wh..wh.";
/// Opaque-directory marker.
pub(crate) const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// AUFS hard-link directory at the layer root.
pub(crate) const PLNK_DIR: &[u8] = b".wh..wh.plnk";

/// A name normalised to a path relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Normalized {
    /// Components joined by `/`; empty for the root.
    pub path: Vec<u8>,
    /// True when a `..` component had to be resolved (or clamped at the root).
    pub had_dotdot: bool,
}

/// Normalises a tar name lexically, the way a chrooted extractor sees it:
/// empty and `.` components vanish, `..` removes the previous component and
/// stops at the root (`../x`, `/../x` and `a/../../x` all name `x`; a bare
/// `..` names the root). This is what containers-storage 1.43 does on disk
/// (it extracts inside a chroot), so a layer that relies on it still applies,
/// and nothing can climb above the root.
pub(crate) fn normalize(raw: &[u8]) -> Normalized {
    let mut comps: Vec<&[u8]> = Vec::new();
    let mut had_dotdot = false;
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                had_dotdot = true;
                comps.pop();
            }
            c => comps.push(c),
        }
    }
    Normalized {
        path: comps.join(&b'/'),
        had_dotdot,
    }
}

/// Splits a normalised path into (parent, name). The root has no name.
pub(crate) fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// What an entry means besides being a file system object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role<'a> {
    /// An ordinary entry.
    Normal,
    /// `.wh..wh..opq`: the parent directory is opaque.
    Opaque,
    /// `.wh.NAME`: `NAME` (in the same directory) is deleted.
    Whiteout(&'a [u8]),
    /// `.wh..wh.plnk` or something inside it: AUFS hard-link targets.
    LinkDir,
    /// Any other `.wh..wh.*` name or something inside one: skipped.
    Meta,
}

/// Classifies a normalised path. Whiteouts of `.`, `..` or of nothing
/// (`.wh.`, `.wh..`, `.wh...`) are refused: they would delete the directory
/// itself or its parent.
pub(crate) fn classify(path: &[u8]) -> Result<Role<'_>, &'static str> {
    let (parent, base) = split_parent(path);
    if parent.split(|&b| b == b'/').next() == Some(PLNK_DIR)
        || base == PLNK_DIR && parent.is_empty()
    {
        return Ok(Role::LinkDir);
    }
    if parent
        .split(|&b| b == b'/')
        .any(|c| c.starts_with(META_PREFIX))
    {
        return Ok(Role::Meta);
    }
    if base == OPAQUE_MARKER {
        return Ok(Role::Opaque);
    }
    if base.starts_with(META_PREFIX) {
        return Ok(Role::Meta);
    }
    if let Some(name) = base.strip_prefix(WHITEOUT_PREFIX) {
        return match name {
            b"" => Err("a whiteout without a name (`.wh.`) would delete its own directory"),
            b"." => Err("a whiteout of `.` would delete its own directory"),
            b".." => Err("a whiteout of `..` would delete the parent directory"),
            name => Ok(Role::Whiteout(name)),
        };
    }
    Ok(Role::Normal)
}

/// True when `path` is `dir` or lies below it (component-wise: `dest-evil`
/// is not below `dest`).
pub(crate) fn is_within(path: &[u8], dir: &[u8]) -> bool {
    if dir.is_empty() {
        return true;
    }
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("a/b", "a/b", false),
            ("./a/b/", "a/b", false),
            ("/a//b/.", "a/b", false),
            ("..gitme", "..gitme", false),
            ("a/..b/c", "a/..b/c", false),
            ("...", "...", false),
            ("../evil", "evil", true),
            ("/../evil", "evil", true),
            ("a/../../evil", "evil", true),
            ("a/../b", "b", true),
            ("..", "", true),
            ("./", "", false),
            (".", "", false),
            ("", "", false),
            ("a/b/../../..", "", true),
        ];
        for (raw, want, dd) in cases {
            let n = normalize(raw.as_bytes());
            assert_eq!(n.path, want.as_bytes(), "normalize({raw:?})");
            assert_eq!(n.had_dotdot, *dd, "had_dotdot({raw:?})");
        }
    }

    #[test]
    fn split_parent_table() {
        assert_eq!(split_parent(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_parent(b"c"), (&b""[..], &b"c"[..]));
        assert_eq!(split_parent(b""), (&b""[..], &b""[..]));
    }

    #[test]
    fn classify_table() {
        use Role::*;
        let ok: &[(&str, Role<'_>)] = &[
            ("a/b", Normal),
            ("a/.wh.b", Whiteout(b"b")),
            (".wh.x", Whiteout(b"x")),
            ("a/.wh....", Whiteout(b"...")),
            ("a/.wh..wh..opq", Opaque),
            (".wh..wh..opq", Opaque),
            (".wh..wh.plnk", LinkDir),
            (".wh..wh.plnk/123.456", LinkDir),
            ("d/.wh..wh.plnk", Meta),
            (".wh..wh.orph", Meta),
            (".wh..wh.orph/x", Meta),
            ("d/.wh..wh.foo", Meta),
            ("d/.wh..wh.foo/.wh.x", Meta),
            (".wh.dir/child", Normal),
            ("..gitme", Normal),
        ];
        for (p, want) in ok {
            assert_eq!(classify(p.as_bytes()), Ok(*want), "classify({p:?})");
        }
        for bad in ["a/.wh.", ".wh..", "x/.wh..", ".wh...", "a/b/.wh..."] {
            assert!(classify(bad.as_bytes()).is_err(), "classify({bad:?})");
        }
    }

    #[test]
    fn within_is_component_wise() {
        assert!(is_within(b"dest/x", b"dest"));
        assert!(is_within(b"dest", b"dest"));
        assert!(!is_within(b"dest-evil/x", b"dest"));
        assert!(!is_within(b"destx", b"dest"));
        assert!(is_within(b"anything", b""));
    }
}
