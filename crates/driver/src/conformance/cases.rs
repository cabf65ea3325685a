//! The cases. Each is `fn(&Suite)` and runs in its own [`Env`].

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use strata_idmap::{IdMap, IdMappings};

use super::tree::{names, Fixture};
use super::{run_case, Env, Suite};
use crate::{
    Access, ApplyDiffOptions, ChangeKind, CreateRequest, DiffRequest, Driver, ErrorKind, LayerRef,
    MountOptions, Result,
};

pub(super) fn req(id: &str, parent: Option<&str>, access: Access) -> CreateRequest {
    CreateRequest {
        id: id.into(),
        parent: parent.map(str::to_string),
        access,
        ..Default::default()
    }
}

pub(super) fn create(d: &dyn Driver, id: &str, parent: Option<&str>) {
    d.create(&req(id, parent, Access::ReadOnly))
        .unwrap_or_else(|e| panic!("create {id} (parent {parent:?}): {e}"));
}

pub(super) fn mount(d: &dyn Driver, id: &str) -> PathBuf {
    d.get(id, &MountOptions::default())
        .unwrap_or_else(|e| panic!("get {id}: {e}"))
}

pub(super) fn put(d: &dyn Driver, id: &str) {
    d.put(id).unwrap_or_else(|e| panic!("put {id}: {e}"));
}

/// Mounts `id`, runs `f` on its root, unmounts.
pub(super) fn with_mounted<T>(d: &dyn Driver, id: &str, f: impl FnOnce(&Path) -> T) -> T {
    let p = mount(d, id);
    let r = f(&p);
    put(d, id);
    r
}

/// Unwraps a step's result, failing the case with the step's name.
pub(super) fn step<T>(r: Result<T>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

pub(super) fn diff_req(id: &str, parent: Option<&str>) -> DiffRequest {
    DiffRequest {
        id: id.into(),
        parent: parent.map(str::to_string),
        ..Default::default()
    }
}

fn changes_of(d: &dyn Driver, id: &str, parent: Option<&str>) -> Vec<(String, ChangeKind)> {
    let c = step(d.changes(&diff_req(id, parent)), "changes");
    let mut v: Vec<(String, ChangeKind)> = c
        .into_iter()
        .map(|c| (String::from_utf8_lossy(&c.path).into_owned(), c.kind))
        .collect();
    v.sort();
    v
}

/// Whether `d` reads changes from an overlay upper directory (its status
/// says `Native Overlay Diff: true`, as the reference's does) rather than
/// comparing full trees.
fn native_overlay_diff(d: &dyn Driver) -> bool {
    d.status()
        .iter()
        .any(|(k, v)| k == "Native Overlay Diff" && v == "true")
}

fn sorted(mut v: Vec<(String, ChangeKind)>) -> Vec<(String, ChangeKind)> {
    v.sort();
    v
}

pub(super) fn base_with_fixture(d: &dyn Driver, id: &str) {
    create(d, id, None);
    with_mounted(d, id, |root| Fixture::base().create(root));
}

/// An empty base layer: root directory 0555, owned 0:0, empty.
pub fn create_empty(s: &Suite) {
    run_case(s, "create_empty", |env| {
        let d = env.driver.as_ref();
        assert!(!d.exists("empty").unwrap());
        create(d, "empty", None);
        assert!(d.exists("empty").unwrap());
        let e = d.create(&req("empty", None, Access::ReadOnly)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        with_mounted(d, "empty", |root| {
            let m = std::fs::metadata(root).unwrap();
            assert!(m.is_dir());
            // Every driver of the reference makes a base layer's root 0555.
            assert_eq!(
                m.mode() & 0o7777,
                0o555,
                "root mode {:o}",
                m.mode() & 0o7777
            );
            assert_eq!((m.uid(), m.gid()), (0, 0));
            assert!(names(root).is_empty(), "not empty: {:?}", names(root));
        });
        d.remove("empty").unwrap();
        assert!(!d.exists("empty").unwrap());
        d.remove("empty")
            .expect("removing a missing layer is not an error");
        let e = d.get("empty", &MountOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    });
}

/// A base layer with a setuid file and a sticky directory of a non-root
/// user keeps all of it across unmount and mount.
pub fn base_layer(s: &Suite) {
    run_case(s, "base_layer", |env| {
        let d = env.driver.as_ref();
        base_with_fixture(d, "base");
        with_mounted(d, "base", |root| Fixture::base().verify(root, 0));
    });
}

/// A child shows its parent's tree (modes, owners, times, xattrs, links);
/// a chmod of a layer's root carries to children and grandchildren.
pub fn child_inherits(s: &Suite) {
    run_case(s, "child_inherits", |env| {
        let d = env.driver.as_ref();
        base_with_fixture(d, "base");
        let (mtime, have_xattr) = with_mounted(d, "base", |root| {
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711)).unwrap();
            let have = rustix::fs::lsetxattr(
                root.join("a").as_path(),
                "user.strata",
                b"v",
                rustix::fs::XattrFlags::empty(),
            )
            .is_ok();
            let m = std::fs::symlink_metadata(root.join("a")).unwrap();
            ((m.mtime(), m.mtime_nsec()), have)
        });
        create(d, "child", Some("base"));
        create(d, "grandchild", Some("child"));
        for id in ["child", "grandchild"] {
            with_mounted(d, id, |root| {
                Fixture::base().verify(root, 0);
                let m = std::fs::metadata(root).unwrap();
                assert_eq!(m.mode() & 0o7777, 0o711, "{id}: root mode");
                let a = std::fs::symlink_metadata(root.join("a")).unwrap();
                assert_eq!((a.mtime(), a.mtime_nsec()), mtime, "{id}: mtime of /a");
                if have_xattr {
                    let mut buf = [0u8; 8];
                    let n = rustix::fs::lgetxattr(
                        root.join("a").as_path(),
                        "user.strata",
                        &mut buf[..],
                    )
                    .unwrap_or_else(|e| panic!("{id}: xattr of /a: {e}"));
                    assert_eq!(&buf[..n], b"v");
                }
            });
        }
        // Changing the child leaves the parent alone.
        with_mounted(d, "child", |root| {
            std::fs::write(root.join("a"), b"changed").unwrap()
        });
        with_mounted(d, "base", |root| {
            assert_eq!(std::fs::read(root.join("a")).unwrap(), b"content of a\n")
        });
    });
}

/// Layers created from a template (read-only and read-write) show no
/// changes against the template.
pub fn template_copies(s: &Suite) {
    run_case(s, "template_copies", |env| {
        let d = env.driver.as_ref();
        base_with_fixture(d, "base");
        create(d, "tmpl", Some("base"));
        with_mounted(d, "tmpl", |root| {
            std::fs::write(root.join("added"), b"added in template\n").unwrap();
            std::fs::remove_file(root.join("b")).unwrap();
        });
        for (id, access) in [
            ("copy-ro", Access::ReadOnly),
            ("copy-rw", Access::ReadWrite),
        ] {
            let r = d.create_from_template(
                &req(id, Some("base"), access),
                "tmpl",
                &IdMappings::identity(),
            );
            step(r, "create_from_template");
            let c = changes_of(d, id, Some("tmpl"));
            assert!(c.is_empty(), "{id} differs from its template: {c:?}");
            with_mounted(d, id, |root| {
                assert_eq!(
                    std::fs::read(root.join("added")).unwrap(),
                    b"added in template\n"
                );
                assert!(!root.join("b").exists());
            });
        }
    });
}

fn chain_read(s: &Suite, case: &str, depth: usize) {
    run_case(s, case, |env| {
        let d = env.driver.as_ref();
        let mut parent: Option<String> = None;
        for i in 0..depth {
            let id = format!("l{i}");
            create(d, &id, parent.as_deref());
            with_mounted(d, &id, |root| {
                std::fs::write(root.join(format!("file-{i}")), format!("layer {i}\n")).unwrap();
            });
            parent = Some(id);
        }
        let top = parent.expect("depth > 0");
        with_mounted(d, &top, |root| {
            for i in 0..depth {
                let got = std::fs::read_to_string(root.join(format!("file-{i}")))
                    .unwrap_or_else(|e| panic!("file-{i} through {depth} layers: {e}"));
                assert_eq!(got, format!("layer {i}\n"));
            }
            assert_eq!(names(root).len(), depth);
        });
    });
}

/// Files of every layer are readable through 50 stacked layers.
pub fn deep_read_50(s: &Suite) {
    chain_read(s, "deep_read_50", 50);
}

/// Files of every layer are readable through 128 stacked layers.
pub fn read_128_layers(s: &Suite) {
    chain_read(s, "read_128_layers", 128);
}

/// diff then apply onto a new child of the same parent reproduces the
/// changes, deletions included, and the applied layer's diff-size equals
/// the original's.
pub fn diff_apply_round_trip(s: &Suite) {
    run_case(s, "diff_apply_round_trip", |env| {
        let d = env.driver.as_ref();
        base_with_fixture(d, "base");
        create(d, "upper", Some("base"));
        with_mounted(d, "upper", |root| {
            std::fs::write(root.join("a"), b"rewritten a\n").unwrap();
            std::fs::remove_file(root.join("b")).unwrap();
            std::fs::remove_dir_all(root.join("dir")).unwrap();
            std::fs::create_dir_all(root.join("new/deeper")).unwrap();
            std::fs::write(root.join("new/deeper/file"), vec![7u8; 100_000]).unwrap();
        });
        let want = changes_of(d, "upper", Some("base"));
        let size = step(d.diff_size(&diff_req("upper", Some("base"))), "diff_size");
        let mut tar = step(d.diff(&diff_req("upper", Some("base"))), "diff");
        create(d, "applied", Some("base"));
        let r = d.apply_diff(
            LayerRef {
                id: "applied",
                parent: Some("base"),
            },
            &ApplyDiffOptions::default(),
            &mut tar,
            None,
        );
        let report = step(r, "apply_diff");
        assert!(report.uncompressed_size > 0);
        assert_eq!(changes_of(d, "applied", Some("base")), want);
        let applied = d.diff_size(&diff_req("applied", Some("base"))).unwrap();
        assert_eq!(applied, size, "diff-size after apply");
        with_mounted(d, "applied", |root| {
            assert_eq!(std::fs::read(root.join("a")).unwrap(), b"rewritten a\n");
            assert!(!root.join("b").exists());
            assert!(!root.join("dir").exists());
            assert_eq!(
                std::fs::read(root.join("new/deeper/file")).unwrap().len(),
                100_000
            );
        });
    });
}

/// Changes list additions, modifications (content and metadata) and
/// deletions, and the directory whose content changed; nothing else. The
/// expected lists are the reference's answers for the same edits.
pub fn changes_after_edits(s: &Suite) {
    run_case(s, "changes_after_edits", |env| {
        let d = env.driver.as_ref();
        base_with_fixture(d, "base");
        let all = changes_of(d, "base", None);
        assert!(all.iter().all(|(_, k)| *k == ChangeKind::Add), "{all:?}");
        assert!(all.iter().any(|(p, _)| p == "/sticky/own"), "{all:?}");
        create(d, "child", Some("base"));
        let hard_changed = with_mounted(d, "child", |root| {
            std::fs::write(root.join("a"), b"edited").unwrap();
            std::fs::remove_file(root.join("b")).unwrap();
            std::fs::set_permissions(root.join("c"), std::fs::Permissions::from_mode(0o700))
                .unwrap();
            std::fs::write(root.join("new"), b"new").unwrap();
            std::fs::write(root.join("dir/g"), b"g").unwrap();
            // `/hard` shares `/c`'s inode unless the chmod copied `/c` up
            // alone (kernel overlay without index): then it kept its mode.
            std::fs::symlink_metadata(root.join("hard")).unwrap().mode() & 0o7777 == 0o700
        });
        let m = ChangeKind::Modify;
        let mut want = vec![
            ("/a".to_string(), m),
            ("/b".to_string(), ChangeKind::Delete),
            ("/c".to_string(), m),
            ("/dir".to_string(), m),
            ("/dir/g".to_string(), ChangeKind::Add),
            ("/new".to_string(), ChangeKind::Add),
        ];
        // The reference lists `/hard` exactly when it changed with `/c`
        // (vfs, btrfs, fuse-overlayfs), not on kernel overlay.
        if hard_changed {
            want.push(("/hard".to_string(), m));
        }
        assert_eq!(changes_of(d, "child", Some("base")), sorted(want));
    });
}

/// Deleting and re-creating a file at depths 0 to 9 is a modification of
/// the file and of the directory holding it; the directories above are
/// modifications too when the driver compares full trees, and not when it
/// reads an overlay upper directory (their mode, size and time did not
/// change), as the reference answers.
pub fn recreate_at_depths(s: &Suite) {
    run_case(s, "recreate_at_depths", |env| {
        let d = env.driver.as_ref();
        create(d, "base", None);
        let path_at = |depth: usize| -> String {
            let mut p = String::new();
            for i in 0..depth {
                p.push_str(&format!("/d{i}"));
            }
            p.push_str("/file");
            p
        };
        with_mounted(d, "base", |root| {
            for depth in 0..10 {
                let p = root.join(path_at(depth).trim_start_matches('/'));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, format!("old {depth}")).unwrap();
            }
        });
        let native = native_overlay_diff(d);
        for depth in 0..10 {
            let id = format!("re{depth}");
            create(d, &id, Some("base"));
            let rel = path_at(depth);
            with_mounted(d, &id, |root| {
                let p = root.join(rel.trim_start_matches('/'));
                std::fs::remove_file(&p).unwrap();
                std::fs::write(&p, format!("new {depth}")).unwrap();
            });
            let first = if native { depth.max(1) } else { 1 };
            let mut want: Vec<(String, ChangeKind)> = (first..=depth)
                .map(|k| {
                    let dir = path_at(k).trim_end_matches("/file").to_string();
                    (dir, ChangeKind::Modify)
                })
                .collect();
            want.push((rel.clone(), ChangeKind::Modify));
            assert_eq!(
                changes_of(d, &id, Some("base")),
                sorted(want),
                "depth {depth}"
            );
        }
    });
}

/// Layers exist after create and not after remove, in chains and siblings.
pub fn list_layers(s: &Suite) {
    run_case(s, "list_layers", |env| {
        let d = env.driver.as_ref();
        create(d, "root", None);
        for i in 0..4 {
            create(d, &format!("sib{i}"), Some("root"));
        }
        create(d, "deep", Some("sib0"));
        let all = ["root", "sib0", "sib1", "sib2", "sib3", "deep"];
        for id in all {
            assert!(d.exists(id).unwrap(), "{id} missing");
        }
        assert!(!d.exists("nosuch").unwrap());
        for id in ["sib1", "sib3", "deep"] {
            d.remove(id).unwrap();
        }
        for id in all {
            let want = !["sib1", "sib3", "deep"].contains(&id);
            assert_eq!(d.exists(id).unwrap(), want, "{id}");
        }
        assert!(d.metadata("root").is_ok());
        assert_eq!(
            d.metadata("nosuch").unwrap_err().kind(),
            ErrorKind::NotFound
        );
    });
}

fn shifted(host: u32) -> IdMappings {
    IdMappings::new(
        vec![IdMap::new(0, host, 65536)],
        vec![IdMap::new(0, host, 65536)],
    )
}

/// A layer created with ID maps has its root owned by the mapped root;
/// update_layer_id_map re-owns every file to the new maps; children keep
/// the owners.
pub fn id_mapped_layer(s: &Suite) {
    run_case(s, "id_mapped_layer", |env| {
        let d = env.driver.as_ref();
        let maps = shifted(100_000);
        d.create(&CreateRequest {
            id_mappings: maps.clone(),
            ..req("mapped", None, Access::ReadOnly)
        })
        .unwrap();
        with_mounted(d, "mapped", |root| {
            let m = std::fs::metadata(root).unwrap();
            assert_eq!(
                (m.uid(), m.gid()),
                (100_000, 100_000),
                "root of a mapped layer"
            );
            // Lay the fixture out as host IDs under the maps.
            let mut f = Fixture::base();
            for e in &mut f.0 {
                e.3 += 100_000;
                e.4 += 100_000;
            }
            f.create(root);
        });
        d.update_layer_id_map("mapped", &maps, &shifted(200_000), None)
            .unwrap();
        with_mounted(d, "mapped", |root| {
            Fixture::base().verify(root, 200_000);
            let m = std::fs::metadata(root).unwrap();
            assert_eq!((m.uid(), m.gid()), (200_000, 200_000));
        });
        // A child made with its parent's maps (a store gives a container of
        // a mapped image the image's maps) sees the parent's owners, its
        // root owned by the maps' root as the reference makes it.
        d.create(&CreateRequest {
            id_mappings: shifted(200_000),
            ..req("child", Some("mapped"), Access::ReadOnly)
        })
        .unwrap();
        with_mounted(d, "child", |root| {
            Fixture::base().verify(root, 200_000);
            let m = std::fs::metadata(root).unwrap();
            assert_eq!((m.uid(), m.gid()), (200_000, 200_000), "root of the child");
        });
        // A diff applied with the maps lands with mapped owners.
        base_with_fixture(d, "plain");
        let mut tar = step(d.diff(&diff_req("plain", None)), "diff");
        d.create(&CreateRequest {
            id_mappings: maps.clone(),
            ..req("applied", None, Access::ReadOnly)
        })
        .unwrap();
        let opts = ApplyDiffOptions {
            id_mappings: maps.clone(),
            ..Default::default()
        };
        let target = LayerRef {
            id: "applied",
            parent: None,
        };
        step(
            d.apply_diff(target, &opts, &mut tar, None),
            "apply_diff with maps",
        );
        with_mounted(d, "applied", |root| Fixture::base().verify(root, 100_000));
        // Back to identity: container IDs on disk.
        d.update_layer_id_map("child", &shifted(200_000), &IdMappings::identity(), None)
            .unwrap();
        with_mounted(d, "child", |root| Fixture::base().verify(root, 0));
    });
}

/// A layer of another (read-only) store serves as the parent of a layer in
/// this one; removing it through this store leaves the other store alone.
pub fn additional_image_store(s: &Suite) {
    run_case(s, "additional_image_store", |env| {
        let Some(key) = s.image_store_key else {
            // Not supported: asking for one must be refused, naming the key.
            assert!(env.driver.additional_image_stores().is_empty());
            let given = format!("{}.imagestore={}", s.name, env.tmp().display());
            let mut options = s.options.clone();
            options.push(given);
            let r = (s.init)(&crate::InitOptions {
                home: env.graph.join("refused").join(s.name),
                run_root: env.run.join("refused").join(s.name),
                driver_options: options,
                ..Default::default()
            });
            let e = r.err().expect("an image store option must be refused");
            assert!(
                matches!(e.kind(), ErrorKind::Unsupported | ErrorKind::InvalidInput),
                "{e}"
            );
            assert!(e.to_string().contains("imagestore"), "unclear refusal: {e}");
            eprintln!("{}: additional image stores refused: {e}", s.name);
            return;
        };
        let (other, other_graph) = env.another_store("other", &[]);
        {
            let o = env.store(other);
            base_with_fixture(o, "shared");
        }
        let opt = format!("{}.{key}={}", s.name, other_graph.display());
        let (mine, _) = env.another_store("mine", &[opt]);
        let me = env.store(mine);
        assert_eq!(me.additional_image_stores(), vec![other_graph.clone()]);
        assert!(
            me.exists("shared").unwrap(),
            "layer of the image store not found"
        );
        create(me, "child", Some("shared"));
        with_mounted(me, "child", |root| Fixture::base().verify(root, 0));
        me.remove("shared").unwrap();
        assert!(
            env.store(other).exists("shared").unwrap(),
            "image store layer was removed"
        );
        let _ = Env::tmp(env);
    });
}
