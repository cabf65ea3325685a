//! Cases for the points of the [`Driver`](crate::Driver) contract: unknown
//! layers, creates that fail, counted mounts, removal of a mounted layer,
//! cleanup.

use crate::{ApplyDiffOptions, ErrorKind, IdMappings, LayerRef, MountOptions, Result};

use super::cases::{base_with_fixture, create, diff_req, mount, put, req};
use super::{run_case, Suite};

/// Asserts that `r` failed with `kind`.
fn fails<T: std::fmt::Debug>(r: Result<T>, kind: ErrorKind, what: &str) {
    match r {
        Ok(v) => panic!("{what}: succeeded ({v:?}), expected {kind:?}"),
        Err(e) => assert_eq!(e.kind(), kind, "{what}: {e}"),
    }
}

/// Is `p` a mount point?
fn mounted(p: &std::path::Path) -> bool {
    crate::mounts::is_mount_point(p).unwrap_or(false)
}

/// An empty layer tar: two zero blocks.
fn empty_tar() -> std::io::Cursor<Vec<u8>> {
    std::io::Cursor::new(vec![0u8; 1024])
}

/// Every method given an unknown layer: `exists` says no, `remove` does
/// nothing, everything else fails with NotFound.
pub fn contract_unknown_layer(s: &Suite) {
    run_case(s, "contract_unknown_layer", |env| {
        let d = env.driver.as_ref();
        let id = "nosuch";
        assert!(!d.exists(id).unwrap());
        d.remove(id).expect("removing an unknown layer");
        let nf = ErrorKind::NotFound;
        fails(d.get(id, &MountOptions::default()), nf, "get");
        fails(d.put(id), nf, "put");
        fails(d.metadata(id), nf, "metadata");
        fails(d.read_write_disk_usage(id), nf, "read_write_disk_usage");
        fails(d.diff_getter(id).map(drop), nf, "diff_getter");
        fails(d.changes(&diff_req(id, None)), nf, "changes");
        fails(d.diff(&diff_req(id, None)).map(drop), nf, "diff");
        fails(d.diff_size(&diff_req(id, None)), nf, "diff_size");
        let target = LayerRef { id, parent: None };
        let opts = ApplyDiffOptions::default();
        fails(
            d.apply_diff(target, &opts, &mut empty_tar(), None),
            nf,
            "apply_diff",
        );
        let ids = IdMappings::identity();
        fails(
            d.update_layer_id_map(id, &ids, &ids, None),
            nf,
            "update_layer_id_map",
        );
        // A known layer against an unknown parent.
        create(d, "known", None);
        fails(
            d.changes(&diff_req("known", Some(id))),
            nf,
            "changes vs parent",
        );
        fails(
            d.diff_size(&diff_req("known", Some(id))),
            nf,
            "diff_size vs parent",
        );
        assert!(!d.exists(id).unwrap(), "an unknown layer appeared");
    });
}

/// Creates that must fail: an existing ID (the layer stays as it was), a
/// missing parent or template (no layer left behind), invalid IDs.
pub fn contract_create(s: &Suite) {
    run_case(s, "contract_create", |env| {
        let d = env.driver.as_ref();
        base_with_fixture(d, "base");
        let access = crate::Access::ReadOnly;
        fails(
            d.create(&req("base", None, access)),
            ErrorKind::AlreadyExists,
            "create base again",
        );
        let p = mount(d, "base");
        assert_eq!(std::fs::read(p.join("a")).unwrap(), b"content of a\n");
        put(d, "base");
        fails(
            d.create(&req("orphan", Some("nosuch"), access)),
            ErrorKind::NotFound,
            "create with a missing parent",
        );
        assert!(!d.exists("orphan").unwrap(), "a failed create left a layer");
        fails(
            d.create_from_template(
                &req("copy", None, access),
                "nosuch",
                &IdMappings::identity(),
            ),
            ErrorKind::NotFound,
            "create from a missing template",
        );
        assert!(!d.exists("copy").unwrap(), "a failed create left a layer");
        for bad in ["", ".", "..", "a/b", "../x", "x\0y"] {
            fails(
                d.create(&req(bad, None, access)),
                ErrorKind::InvalidInput,
                &format!("create {bad:?}"),
            );
            fails(
                d.get(bad, &MountOptions::default()),
                ErrorKind::InvalidInput,
                &format!("get {bad:?}"),
            );
        }
    });
}

/// Counted mounts: a put without a get, or more puts than gets, does
/// nothing; the tree stays until the last put of as many as there were
/// gets; an unsupported mount option mounts nothing.
pub fn contract_get_and_put(s: &Suite) {
    run_case(s, "contract_get_and_put", |env| {
        let d = env.driver.as_ref();
        base_with_fixture(d, "base");
        create(d, "child", Some("base"));
        d.put("child").expect("a put without a get");
        let p = mount(d, "child");
        let is_mount = mounted(&p);
        assert_eq!(mount(d, "child"), p, "a second get");
        assert_eq!(mount(d, "child"), p, "a third get");
        for left in [2, 1] {
            put(d, "child");
            assert_eq!(
                std::fs::read(p.join("a")).unwrap(),
                b"content of a\n",
                "released with {left} gets left"
            );
            assert_eq!(mounted(&p), is_mount, "{left} gets left");
        }
        put(d, "child");
        assert!(!mounted(&p), "still mounted after the last put");
        d.put("child").expect("more puts than gets");
        // An unsupported option mounts nothing and leaves the count alone.
        let bogus = MountOptions {
            options: vec!["bogus-option".into()],
            ..Default::default()
        };
        assert!(d.get("child", &bogus).is_err(), "an unknown mount option");
        assert!(!mounted(&p), "a refused get mounted");
        let p = mount(d, "child");
        put(d, "child");
        assert!(!mounted(&p), "a refused get was counted");
    });
}

/// Removing a layer that is mounted (got twice, never put) releases it:
/// nothing stays mounted and the layer is unknown afterwards.
pub fn contract_remove_mounted(s: &Suite) {
    run_case(s, "contract_remove_mounted", |env| {
        let d = env.driver.as_ref();
        base_with_fixture(d, "base");
        create(d, "child", Some("base"));
        let p = mount(d, "child");
        mount(d, "child");
        d.remove("child").expect("removing a mounted layer");
        assert!(!d.exists("child").unwrap());
        assert!(!mounted(&p), "the removed layer stays mounted");
        fails(d.put("child"), ErrorKind::NotFound, "put after remove");
        fails(
            d.get("child", &MountOptions::default()),
            ErrorKind::NotFound,
            "get after remove",
        );
        // The parent is unharmed.
        let b = mount(d, "base");
        assert_eq!(std::fs::read(b.join("a")).unwrap(), b"content of a\n");
        put(d, "base");
    });
}

/// Cleanup releases layers got and never put, and may be called again.
pub fn contract_cleanup(s: &Suite) {
    run_case(s, "contract_cleanup", |env| {
        let d = env.driver.as_ref();
        base_with_fixture(d, "base");
        create(d, "child", Some("base"));
        let p = mount(d, "child");
        d.cleanup().expect("cleanup");
        assert!(!mounted(&p), "cleanup left a layer mounted");
        d.cleanup().expect("a second cleanup");
    });
}
