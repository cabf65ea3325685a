//! `Store::import_chain` (an image's layers at once; concurrent applies on
//! overlay) leaves what importing the same layers one by one leaves, and a
//! failing layer takes itself and its descendants out, nothing else.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use strata_store::{ApplyReport, BoxError, ChainLayer, LayerCheck, NewLayer, Store, StoreOptions};

struct T {
    dir: tempfile::TempDir,
}

impl T {
    fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("strata-chain-")
                .tempdir_in("/var/tmp")
                .unwrap(),
        }
    }
    fn open(&self, name: &str, driver: &str) -> Store {
        Store::open(&StoreOptions {
            graph_root: self.dir.path().join(name).join("g"),
            run_root: self.dir.path().join(name).join("r"),
            driver: Some(driver.into()),
            ..Default::default()
        })
        .unwrap()
    }
}

impl Drop for T {
    fn drop(&mut self) {
        strata_testsupport::detach_mounts_under(self.dir.path());
    }
}

/// A tar with an optional `./` entry (mode, owner) and one file.
fn tar_with(root: Option<(u32, u64)>, file: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    if let Some((mode, owner)) = root {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_uid(owner);
        h.set_gid(owner + 1);
        h.set_size(0);
        b.append_data(&mut h, "./", std::io::empty()).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(file.len() as u64);
    b.append_data(&mut h, file, file.as_bytes()).unwrap();
    b.into_inner().unwrap()
}

/// Base sets its root, the middle layer does not (its root must follow the
/// base's as a child created after the base's apply would), the top sets
/// its own.
fn streams() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("kbase", tar_with(Some((0o750, 7)), "one")),
        ("kmid", tar_with(None, "two")),
        ("ktop", tar_with(Some((0o711, 9)), "three")),
    ]
}

/// A layer check's verdict.
type Verify = dyn Fn(&ApplyReport) -> Result<(), BoxError> + Sync;

fn accept(_: &ApplyReport) -> Result<(), BoxError> {
    Ok(())
}

fn reject(_: &ApplyReport) -> Result<(), BoxError> {
    Err("not the layer the image names".into())
}

fn chain<'a>(
    layers: &'a [(&'static str, Vec<u8>)],
    checks: &'a [LayerCheck<'a>],
) -> Vec<ChainLayer<'a>> {
    layers
        .iter()
        .zip(checks)
        .enumerate()
        .map(|(i, ((id, data), check))| ChainLayer {
            req: NewLayer {
                id: Some(id.to_string()),
                parent: i.checked_sub(1).map(|p| layers[p].0.to_string()),
                ..Default::default()
            },
            diff: Box::new(std::io::Cursor::new(data.clone())),
            check,
        })
        .collect()
}

fn checks<'a>(verify: &'a [&'a Verify]) -> Vec<LayerCheck<'a>> {
    verify
        .iter()
        .map(|v| LayerCheck {
            verify: *v,
            record: Default::default(),
        })
        .collect()
}

/// What a layer is: its record's digests, sizes and flags, and its
/// directory's mode and owner as the driver keeps it.
fn describe(s: &Store, graph: &Path, driver: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in s.layers().unwrap() {
        let dir: PathBuf = match driver {
            "overlay" => graph.join("overlay").join(&l.id).join("diff"),
            _ => graph.join("vfs/dir").join(&l.id),
        };
        let md = std::fs::metadata(&dir).unwrap();
        out.push(format!(
            "{} parent={} {} {} {} {} incomplete={} root={:o} {}:{} files={:?}",
            l.id,
            l.parent,
            l.compressed_digest,
            l.compressed_size,
            l.uncompressed_digest,
            l.uncompressed_size,
            l.is_incomplete(),
            md.mode() & 0o7777,
            md.uid(),
            md.gid(),
            names(&dir),
        ));
    }
    out.sort();
    out
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn privileged_a_chain_is_recorded_as_layers_imported_one_by_one() {
    let test = "privileged_a_chain_is_recorded_as_layers_imported_one_by_one";
    if !strata_testsupport::need_root(test) {
        return;
    }
    for driver in ["overlay", "vfs"] {
        let t = T::new();
        let layers = streams();
        let verify: Vec<&Verify> = vec![&accept; layers.len()];
        let checks = checks(&verify);

        let one = t.open("one", driver);
        for (i, (id, data)) in layers.iter().enumerate() {
            let req = NewLayer {
                id: Some(id.to_string()),
                parent: i.checked_sub(1).map(|p| layers[p].0.to_string()),
                ..Default::default()
            };
            one.import_layer_checked(&req, &mut std::io::Cursor::new(data.clone()), &checks[i])
                .unwrap();
        }
        let all = t.open("all", driver);
        let out = all.import_chain(chain(&layers, &checks)).unwrap();
        assert!(out.failed.is_none(), "{driver}: {:?}", out.failed);
        let ids: Vec<_> = out.done.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["kbase", "kmid", "ktop"], "{driver}");
        let want = describe(&one, &t.dir.path().join("one/g"), driver);
        let got = describe(&all, &t.dir.path().join("all/g"), driver);
        assert_eq!(got, want, "{driver}");
        // The middle layer's root mode is the base's stream's, not the 0555
        // a base starts with.
        assert!(
            got.iter()
                .any(|l| l.starts_with("kmid ") && l.contains("root=750 ")),
            "{got:?}"
        );
    }
}

#[test]
fn privileged_a_failing_layer_takes_itself_and_later_ones_out() {
    let test = "privileged_a_failing_layer_takes_itself_and_later_ones_out";
    if !strata_testsupport::need_root(test) {
        return;
    }
    for driver in ["overlay", "vfs"] {
        let t = T::new();
        let mut layers = streams();
        for bad in [1, 2] {
            let mut verify: Vec<&Verify> = vec![&accept; layers.len()];
            verify[bad] = &reject;
            let checks = checks(&verify);
            let s = t.open(&format!("s{bad}"), driver);
            let out = s.import_chain(chain(&layers, &checks)).unwrap();
            let (at, e) = out.failed.expect("a failure");
            assert_eq!(at, bad, "{driver}");
            assert!(
                matches!(e, strata_store::Error::Rejected { .. }),
                "{driver}: {e}"
            );
            let done: Vec<_> = out.done.iter().map(|l| l.id.clone()).collect();
            let mut listed: Vec<_> = s.layers().unwrap().into_iter().map(|l| l.id).collect();
            listed.sort();
            let mut want: Vec<_> = layers[..bad].iter().map(|l| l.0.to_string()).collect();
            assert_eq!(done, want, "{driver}");
            want.sort();
            assert_eq!(listed, want, "{driver}");
            assert!(s.layers().unwrap().iter().all(|l| !l.is_incomplete()));
        }
        // A stream that is no tar fails in the driver; nothing of it stays.
        layers[0].1 = b"not a tar at all, and too short".to_vec();
        let verify: Vec<&Verify> = vec![&accept; layers.len()];
        let checks = checks(&verify);
        let s = t.open("broken", driver);
        let out = s.import_chain(chain(&layers, &checks)).unwrap();
        assert_eq!(out.failed.map(|f| f.0), Some(0), "{driver}");
        assert!(s.layers().unwrap().is_empty(), "{driver}");
    }
}
