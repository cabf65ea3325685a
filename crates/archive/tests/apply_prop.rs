//! Property: for random layers made of hostile-looking names, symlinks,
//! hard links and whiteouts, nothing outside the root ever changes, and the
//! openat2 resolver and the component walk end the same way with the same
//! tree inside.

mod apply_support;

use apply_support::*;
use proptest::prelude::*;
use strata_archive::apply::Resolution;
use strata_archive::entry::EntryKind;
use strata_archive::{ApplierOptions, ApplyMode};

const COMPONENTS: &[&str] = &[
    "a",
    "b",
    "..",
    ".",
    "victim",
    "dest-evil",
    "file",
    "sub",
    ".wh.a",
    ".wh.b",
    ".wh..wh..opq",
    "..gitme",
];

const TARGETS: &[&str] = &[
    "..",
    "../..",
    "/",
    "VICTIM",
    "VICTIM/sub",
    "VICTIM/file",
    "../victim",
    "../victim/file",
    "a/../..",
    "a",
    "/a/b",
    "file",
    "b/../../dest-evil",
    "/proc/self/root",
];

#[derive(Debug, Clone)]
enum E {
    File(String, u32),
    Dir(String, u32),
    Symlink(String, &'static str),
    Link(String, String),
    Fifo(String),
}

/// Mostly `a` and `b`, so that later entries often go through earlier links.
fn component() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        6 => Just("a"),
        4 => Just("b"),
        3 => prop::sample::select(COMPONENTS),
    ]
}

fn path() -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.2),
        prop::collection::vec(component(), 1..4),
    )
        .prop_map(|(abs, c)| format!("{}{}", if abs { "/" } else { "" }, c.join("/")))
}

fn entry() -> impl Strategy<Value = E> {
    let mode = prop::sample::select(&[0o644u32, 0o4755, 0o777, 0o000, 0o1777][..]);
    prop_oneof![
        3 => (path(), mode.clone()).prop_map(|(p, m)| E::File(p, m)),
        1 => (path(), mode).prop_map(|(p, m)| E::Dir(p, m)),
        2 => (path(), prop::sample::select(TARGETS)).prop_map(|(p, t)| E::Symlink(p, t)),
        1 => (path(), prop_oneof![path(), Just("VICTIM/file".to_string())])
            .prop_map(|(p, t)| E::Link(p, t)),
        1 => path().prop_map(E::Fifo),
    ]
}

fn layer(entries: &[E], victim: &str) -> L {
    let v = |s: &str| s.replace("VICTIM", victim);
    let mut l = L::new();
    for e in entries {
        l = match e {
            E::File(p, m) => l.file(p, b"pwned\n").mode(*m),
            E::Dir(p, m) => l.dir(p).mode(*m),
            E::Symlink(p, t) => l.symlink(p, &v(t)),
            E::Link(p, t) => l.link(p, &v(t)),
            E::Fifo(p) => l.kind(p, EntryKind::Fifo),
        };
    }
    l
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_layers_stay_inside(
        entries in prop::collection::vec(entry(), 1..12),
        full in any::<bool>(),
    ) {
        let opts = ApplierOptions {
            mode: if full { ApplyMode::FullTree } else { ApplyMode::default() },
            ..Default::default()
        };
        let outcome = std::cell::RefCell::new(Vec::new());
        run_case_any(
            "random",
            [Resolution::Openat2, Resolution::ManualWalk],
            |root, victim, r| {
                let got = apply(root, &layer(&entries, victim), opts.clone(), r);
                outcome.borrow_mut().push(got.as_ref().map_err(|e| e.kind()).copied());
                got
            },
        );
        let o = outcome.borrow();
        prop_assert_eq!(o[0], o[1], "openat2 and walk ended differently");
    }
}
