//! Images and containers through the library, on the vfs driver: records,
//! big data, names, the delete rules, mapped layers, read-only stores,
//! damaged files, and locking between threads and `Store` values of one
//! process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strata_store::{
    BigDataItem, DeleteMode, ErrorKind, LayerMaps, MapChoice, NameOp, NewContainer, NewImage,
    NewLayer, Store, StoreOptions,
};

struct T {
    dir: tempfile::TempDir,
}

impl T {
    fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("strata-images-")
                .tempdir_in("/var/tmp")
                .unwrap(),
        }
    }
    fn opts(&self, name: &str) -> StoreOptions {
        StoreOptions {
            graph_root: self.dir.path().join(name).join("g"),
            run_root: self.dir.path().join(name).join("r"),
            driver: Some("vfs".into()),
            ..Default::default()
        }
    }
    fn open(&self) -> Store {
        Store::open(&self.opts("s")).unwrap()
    }
    fn images_json(&self) -> PathBuf {
        self.dir.path().join("s/g/vfs-images/images.json")
    }
}

fn layer(s: &Store, id: &str, parent: Option<&str>) -> String {
    s.create_layer(&NewLayer {
        id: Some(id.into()),
        parent: parent.map(str::to_string),
        ..Default::default()
    })
    .unwrap()
    .id
}

fn image(s: &Store, id: &str, top: &str, names: &[&str]) -> String {
    s.images()
        .create(&NewImage {
            id: Some(id.into()),
            top_layer: Some(top.into()),
            names: names.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        })
        .unwrap()
        .id
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn an_image_is_created_with_its_big_data_in_one_save() {
    let t = T::new();
    let s = t.open();
    layer(&s, "base", None);
    let manifest = br#"{"schemaVersion":2}"#.to_vec();
    let cfg_key = format!("sha256:{}", "c".repeat(64));
    let created = strata_store::record::parse_time("2024-01-01T12:00:00.50+02:00").unwrap();
    let img = s
        .images()
        .create(&NewImage {
            top_layer: Some("base".into()),
            names: strings(&["localhost/a:1", "localhost/a:1"]),
            metadata: "{}".into(),
            created: Some(created),
            big_data: vec![
                BigDataItem {
                    key: cfg_key.clone(),
                    data: b"{}".to_vec(),
                    digest: None,
                },
                BigDataItem {
                    key: "manifest".into(),
                    data: manifest.clone(),
                    digest: None,
                },
            ],
            ..Default::default()
        })
        .unwrap();
    let md = strata_store::bigdata::sha256(&manifest);
    assert_eq!(img.digest, md, "digest from the manifest");
    assert_eq!(img.names, ["localhost/a:1"]);
    assert_eq!(img.created, "2024-01-01T12:00:00.5+02:00");
    assert_eq!(img.big_data_names, [cfg_key.clone(), "manifest".into()]);
    let text = std::fs::read_to_string(t.images_json()).unwrap();
    assert!(
        text.starts_with(&format!("[{{\"id\":\"{}\",\"digest\":\"{md}\"", img.id)),
        "{text}"
    );
    let dir = t.dir.path().join("s/g/vfs-images").join(&img.id);
    assert_eq!(std::fs::read(dir.join("manifest")).unwrap(), manifest);
    let enc = strata_store::bigdata::file_name(&cfg_key).unwrap();
    assert!(enc.starts_with('='));
    assert_eq!(std::fs::read(dir.join(enc)).unwrap(), b"{}");
    assert_eq!(
        s.images().big_data_size(&img.id, "manifest").unwrap(),
        manifest.len() as i64
    );
    assert_eq!(s.images().big_data_digest(&img.id, "manifest").unwrap(), md);
    assert_eq!(s.images().by_digest(&md).unwrap()[0].id, img.id);
    // Replacing the manifest adds a digest; the first one sticks.
    s.images()
        .set_big_data(
            "localhost/a:1",
            &BigDataItem {
                key: "manifest".into(),
                data: b"{}".to_vec(),
                digest: None,
            },
        )
        .unwrap();
    let again = s.images().get(&img.id).unwrap();
    assert_eq!(again.digest, md);
    assert_eq!(again.digests.len(), 2);
    // Unknown keys and bad keys.
    assert_eq!(
        s.images().big_data(&img.id, "nope").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let e = s
        .images()
        .set_big_data(
            &img.id,
            &BigDataItem {
                key: "..".into(),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    // Duplicate IDs and names, bad digests.
    let dup = s.images().create(&NewImage {
        id: Some(img.id.clone()),
        ..Default::default()
    });
    assert_eq!(dup.unwrap_err().kind(), ErrorKind::AlreadyExists);
    let dup = s.images().create(&NewImage {
        names: strings(&["localhost/a:1"]),
        ..Default::default()
    });
    assert_eq!(dup.unwrap_err().kind(), ErrorKind::AlreadyExists);
    let bad = s.images().create(&NewImage {
        digest: Some("x".into()),
        ..Default::default()
    });
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains("invalid checksum digest format"));
    assert_eq!(s.images().list().unwrap().len(), 1);
}

#[test]
fn names_move_between_images_and_are_remembered() {
    let t = T::new();
    let s = t.open();
    layer(&s, "l", None);
    image(&s, "a", "l", &["x", "y"]);
    image(&s, "b", "l", &[]);
    s.images()
        .set_names("b", &strings(&["x"]), NameOp::Add)
        .unwrap();
    assert_eq!(s.images().get("a").unwrap().names, ["y"]);
    let b = s.images().get("b").unwrap();
    assert_eq!(b.names, ["x"]);
    assert_eq!(b.names_history, ["x"]);
    s.set_names("b", &strings(&["p", "q"])).unwrap();
    s.add_names("b", &strings(&["r"])).unwrap();
    let b = s.images().get("b").unwrap();
    assert_eq!(b.names, ["p", "q", "r"]);
    assert_eq!(b.names_history, ["r", "q", "p", "x"]);
    s.remove_names("b", &strings(&["q"])).unwrap();
    assert_eq!(s.names("b").unwrap(), ["p", "r"]);
    // A layer answers before an image of the same name.
    s.set_names("l", &strings(&["p"])).unwrap();
    assert_eq!(s.names("p").unwrap(), ["p"]);
    assert_eq!(s.lookup("p").unwrap().unwrap().id(), "l");
}

#[test]
fn deleting_images_takes_the_layers_only_they_use() {
    let t = T::new();
    let s = t.open();
    layer(&s, "base", None);
    layer(&s, "mid", Some("base"));
    layer(&s, "top-a", Some("mid"));
    layer(&s, "top-b", Some("mid"));
    image(&s, "a", "top-a", &["a"]);
    image(&s, "b", "top-b", &["b"]);
    assert_eq!(s.images().delete("a", DeleteMode::Test).unwrap(), ["top-a"]);
    assert!(s.images().exists("a").unwrap(), "a test changes nothing");
    let c = s
        .containers()
        .create(&NewContainer {
            image: Some("b".into()),
            names: strings(&["c1"]),
            ..Default::default()
        })
        .unwrap();
    let e = s.images().delete("b", DeleteMode::Commit).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy);
    assert!(e.to_string().contains(&c.id), "{e}");
    // Children are checked first, as the reference does.
    let e = s
        .delete_layer("top-b", strata_store::Safety::Checked)
        .unwrap_err();
    assert!(e.to_string().contains("has children"), "{e}");
    let e = s
        .delete_layer("top-a", strata_store::Safety::Checked)
        .unwrap_err();
    assert!(e.to_string().contains("in use by an image"), "{e}");
    let e = s
        .delete_layer(&c.layer, strata_store::Safety::Checked)
        .unwrap_err();
    assert!(e.to_string().contains("in use by a container"), "{e}");
    assert_eq!(
        s.images().delete("a", DeleteMode::Commit).unwrap(),
        ["top-a"]
    );
    s.containers().delete("c1").unwrap();
    assert!(
        s.layer(&c.layer).is_err(),
        "the container's layer went with it"
    );
    assert_eq!(
        s.images().delete("b", DeleteMode::Commit).unwrap(),
        ["top-b", "mid", "base"]
    );
    assert!(s.layers().unwrap().is_empty());
}

#[test]
fn containers_have_layers_directories_and_data() {
    let t = T::new();
    let s = t.open();
    layer(&s, "l", None);
    image(&s, "i", "l", &["img"]);
    let c = s
        .containers()
        .create(&NewContainer {
            image: Some("img".into()),
            names: strings(&["c"]),
            metadata: "m".into(),
            durability: strata_store::Durability::Volatile,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(s.layer(&c.layer).unwrap().parent, "l");
    assert!(c.is_volatile());
    assert_eq!(c.flag_str("MountLabel"), Some(""));
    // Found by name, ID, layer ID and prefix.
    for key in ["c", c.id.as_str(), c.layer.as_str(), &c.id[..10]] {
        assert_eq!(s.containers().get(key).unwrap().id, c.id, "{key}");
    }
    let dir = s.containers().dir("c").unwrap();
    let run = s.containers().run_dir("c").unwrap();
    assert!(dir.ends_with(format!("vfs-containers/{}/userdata", c.id)) && dir.is_dir());
    assert!(run.starts_with(t.dir.path().join("s/r")) && run.is_dir());
    s.containers()
        .set_big_data("c", "config.json", b"{}")
        .unwrap();
    assert_eq!(s.containers().big_data("c", "config.json").unwrap(), b"{}");
    assert_eq!(
        s.containers().big_data_digest("c", "config.json").unwrap(),
        strata_store::bigdata::sha256(b"{}")
    );
    let e = s
        .containers()
        .create(&NewContainer {
            image: Some("img".into()),
            names: strings(&["c"]),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        s.layers().unwrap().len(),
        2,
        "the failed container left no layer"
    );
    let e = s
        .containers()
        .create(&NewContainer {
            image: Some("nope".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let p = s.mount("c", &Default::default()).unwrap();
    assert!(p.is_dir());
    assert_eq!(s.mounted("c").unwrap().0, 1);
    s.containers().delete("c").unwrap();
    assert!(!dir.exists() && !run.exists());
    assert!(s.mounts().unwrap().is_empty());
    // A container without an image.
    let bare = s.containers().create(&NewContainer::default()).unwrap();
    assert_eq!(bare.image, "");
    assert_eq!(s.layer(&bare.layer).unwrap().parent, "");
    s.wipe().unwrap();
    assert!(s.layers().unwrap().is_empty());
    assert!(s.images().list().unwrap().is_empty());
    assert!(s.containers().list().unwrap().is_empty());
}

#[test]
fn privileged_mapped_layers_are_made_once_per_map() {
    if !rustix::process::geteuid().is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI is set but not root");
        eprintln!("skipping: needs root (chown)");
        return;
    }
    let t = T::new();
    let s = t.open();
    s.import_layer(
        &NewLayer {
            id: Some("l".into()),
            ..Default::default()
        },
        &mut &small_tar()[..],
    )
    .unwrap();
    image(&s, "i", "l", &[]);
    let maps = |host: u32| LayerMaps {
        uids: MapChoice::Explicit(strata_idmap::parse_maps(&format!("0:{host}:65536")).unwrap()),
        gids: MapChoice::Explicit(strata_idmap::parse_maps(&format!("0:{host}:65536")).unwrap()),
    };
    let mk = |host| {
        s.containers()
            .create(&NewContainer {
                image: Some("i".into()),
                maps: maps(host),
                ..Default::default()
            })
            .unwrap()
    };
    let c1 = mk(100_000);
    let c2 = mk(100_000);
    let c3 = mk(200_000);
    let img = s.images().get("i").unwrap();
    assert_eq!(img.mapped_layers.len(), 2, "{:?}", img.mapped_layers);
    let l1 = s.layer(&c1.layer).unwrap();
    let l2 = s.layer(&c2.layer).unwrap();
    assert_eq!(l1.parent, l2.parent, "the mapped layer is reused");
    assert_eq!(l1.parent, img.mapped_layers[0]);
    let mapped = s.layer(&img.mapped_layers[0]).unwrap();
    let top = s.layer("l").unwrap();
    assert_eq!(mapped.uncompressed_digest, top.uncompressed_digest);
    assert_eq!(mapped.uid_map[0].host_id, 100_000);
    assert_eq!(c1.uid_map[0].host_id, 100_000);
    assert_ne!(s.layer(&c3.layer).unwrap().parent, l1.parent);
    // The mapped copy's files belong to the mapped IDs.
    let m = s.mount(&mapped.id, &Default::default()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(m.join("etc/motd")).unwrap().uid(),
        100_000
    );
    s.unmount(&mapped.id, strata_store::Force::No).unwrap();
    for c in [&c1, &c2, &c3] {
        s.containers().delete(&c.id).unwrap();
    }
    let gone = s.images().delete("i", DeleteMode::Commit).unwrap();
    assert_eq!(gone.len(), 3);
    assert_eq!(gone[..2], img.mapped_layers[..]);
    assert!(s.layers().unwrap().is_empty());
}

fn small_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "etc/", std::io::empty()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(3);
    b.append_data(&mut h, "etc/motd", &b"hi\n"[..]).unwrap();
    b.into_inner().unwrap()
}

fn tree(p: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
                out.insert(e.path(), Vec::new());
            } else if ft.is_file() {
                out.insert(e.path(), std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

#[test]
fn read_only_stores_are_listed_used_and_never_written() {
    let t = T::new();
    let ro_root = t.dir.path().join("ro/g");
    {
        let a = Store::open(&t.opts("ro")).unwrap();
        a.import_layer(
            &NewLayer {
                id: Some("rol".into()),
                ..Default::default()
            },
            &mut &small_tar()[..],
        )
        .unwrap();
        image(&a, "roi", "rol", &["ro/img:1"]);
    }
    let before = tree(&ro_root);
    let mut o = t.opts("s");
    o.driver_options = vec![format!("vfs.imagestore={}", ro_root.display())];
    let s = Store::open(&o).unwrap();
    let list = s.images().list().unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].read_only);
    assert!(s.layer("rol").is_ok());
    let e = s.set_metadata("ro/img:1", "x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly);
    let e = s
        .images()
        .delete("ro/img:1", DeleteMode::Commit)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let c = s
        .containers()
        .create(&NewContainer {
            image: Some("ro/img:1".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(s.layer(&c.layer).unwrap().parent, "rol");
    let m = s.mount(&c.id, &Default::default()).unwrap();
    assert_eq!(std::fs::read(m.join("etc/motd")).unwrap(), b"hi\n");
    let im = s.images().mount("ro/img:1", &Default::default()).unwrap();
    assert_eq!(std::fs::read(im.join("etc/motd")).unwrap(), b"hi\n");
    assert!(!s
        .images()
        .unmount("ro/img:1", strata_store::Force::No)
        .unwrap());
    s.unmount(&c.id, strata_store::Force::No).unwrap();
    s.containers().delete(&c.id).unwrap();
    assert_eq!(tree(&ro_root), before, "the read-only store changed");
}

#[test]
fn a_damaged_images_json_is_reported_and_kept() {
    let t = T::new();
    let s = t.open();
    layer(&s, "l", None);
    image(&s, "i", "l", &[]);
    let good = std::fs::read(t.images_json()).unwrap();
    let cut = &good[..good.len() / 2];
    std::fs::write(t.images_json(), cut).unwrap();
    let e = s.images().list().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    let msg = e.to_string();
    assert!(
        msg.contains("images.json") && msg.contains(&format!("at byte {}", cut.len())),
        "{msg}"
    );
    assert!(s.images().create(&NewImage::default()).is_err());
    assert!(s.delete_layer("l", strata_store::Safety::Checked).is_err());
    assert_eq!(std::fs::read(t.images_json()).unwrap(), cut, "overwritten");
    assert!(s.layer("l").is_ok(), "layers still read");
}

#[test]
fn later_generations_files_are_read_and_kept() {
    let t = T::new();
    let s = t.open();
    layer(&s, "l", None);
    let dir = t.dir.path().join("s/g/vfs-containers");
    std::fs::write(
        dir.join("volatile-containers.json"),
        r#"[{"id":"vc","names":["v"],"image":"","layer":"l","created":"2024-01-01T00:00:00Z","flags":{"Volatile":true},"new-key":1}]"#,
    )
    .unwrap();
    let c = s.containers().get("v").unwrap();
    assert_eq!(c.extra["new-key"], 1);
    s.containers().set_metadata("v", "m").unwrap();
    let vol = std::fs::read_to_string(dir.join("volatile-containers.json")).unwrap();
    assert!(
        vol.contains("\"metadata\":\"m\"") && vol.contains("\"new-key\":1"),
        "{vol}"
    );
    let main = std::fs::read_to_string(dir.join("containers.json")).unwrap();
    assert_eq!(main, "[]");
}

#[test]
fn threads_and_store_values_in_one_process_exclude_each_other() {
    let t = T::new();
    let s1 = Arc::new(t.open());
    let s2 = t.open();
    layer(&s1, "l", None);
    // Holding the images lock through one Store blocks the other.
    let lock = s1.image_store().records().lock_file().clone();
    let held = lock
        .lock(strata_store::lockfile::LockMode::Exclusive)
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    std::thread::scope(|sc| {
        let d = done.clone();
        let s2 = &s2;
        let h = sc.spawn(move || {
            image(s2, "late", "l", &[]);
            d.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !done.load(Ordering::SeqCst),
            "the second Store did not wait"
        );
        drop(held);
        h.join().unwrap();
    });
    // Eight threads share one Store; nothing is lost.
    std::thread::scope(|sc| {
        for n in 0..8 {
            let s = s1.clone();
            sc.spawn(move || {
                for k in 0..10 {
                    image(&s, &format!("t{n}-{k}"), "l", &[&format!("n{n}-{k}")]);
                }
            });
        }
    });
    assert_eq!(s2.images().list().unwrap().len(), 81);
}
