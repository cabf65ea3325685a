//! Helpers of the hostile-layer tests built from entry streams.

use std::path::Path;

use strata_archive::apply::Resolution;
use strata_archive::{ApplierOptions, ApplyMode};

use super::{apply, run_case, Expect, Tree, L};

pub fn overlay() -> ApplierOptions {
    ApplierOptions::default()
}

pub fn full() -> ApplierOptions {
    ApplierOptions {
        mode: ApplyMode::FullTree,
        ..Default::default()
    }
}

/// Runs one case: `layer` gets the absolute path of the victim directory.
pub fn case(
    name: &str,
    opts: ApplierOptions,
    layer: impl Fn(&str) -> L,
    expect: Expect,
    check: impl Fn(&Path, &Tree),
) {
    run_case(
        name,
        [Resolution::Openat2, Resolution::ManualWalk],
        |root, victim, r| apply(root, &layer(victim), opts.clone(), r),
        expect,
        check,
    );
}

pub fn has(t: &Tree, p: &str) -> bool {
    t.contains_key(p.as_bytes())
}

pub fn kind(t: &Tree, p: &str) -> &'static str {
    t.get(p.as_bytes()).map_or("missing", |n| n.kind)
}

pub fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

pub fn content(root: &Path, p: &str) -> Vec<u8> {
    std::fs::read(root.join(p)).unwrap_or_default()
}

pub const PWNED: &[u8] = b"pwned\n";
