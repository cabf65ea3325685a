//! The store's protocols, driven through a fake driver so that they can be
//! tested without real drivers: the incomplete-layer protocol, tar-split
//! files, mount counts, reloads, and fcntl locking against the reference.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use strata_driver::{
    ApplyDiffOptions, ApplyReport, CreateRequest, DiskUsage, Driver, LayerRef, MountOptions,
};
use strata_store::{Force, MountRequest, NewLayer, Safety, Store, StoreOptions};

/// A driver that keeps each layer as a plain directory and "applies" a
/// diff by copying the bytes into a file.
struct Fake {
    name: &'static str,
    home: PathBuf,
    /// layers.json as seen while a diff was being applied.
    seen_during_apply: Arc<Mutex<Option<String>>>,
    layers_json: PathBuf,
}

fn err(msg: &str) -> strata_driver::Error {
    strata_driver::Error::Unsupported(msg.to_string())
}

impl Driver for Fake {
    fn name(&self) -> &str {
        self.name
    }
    fn create(&self, req: &CreateRequest) -> strata_driver::Result<()> {
        if req.id == "refused" {
            return Err(err("create refused"));
        }
        std::fs::create_dir_all(self.home.join(&req.id))
            .map_err(|e| strata_driver::Error::path("mkdir", &self.home, e))
    }
    fn remove(&self, id: &str) -> strata_driver::Result<()> {
        match std::fs::remove_dir_all(self.home.join(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(strata_driver::Error::path("rm", &self.home, e))
            }
            _ => Ok(()),
        }
    }
    fn get(&self, id: &str, _: &MountOptions) -> strata_driver::Result<PathBuf> {
        Ok(self.home.join(id))
    }
    fn put(&self, _: &str) -> strata_driver::Result<()> {
        Ok(())
    }
    fn exists(&self, id: &str) -> strata_driver::Result<bool> {
        Ok(self.home.join(id).exists())
    }
    fn status(&self) -> Vec<(String, String)> {
        vec![("Fake".into(), "yes".into())]
    }
    fn metadata(&self, _: &str) -> strata_driver::Result<BTreeMap<String, String>> {
        Ok(BTreeMap::new())
    }
    fn read_write_disk_usage(&self, _: &str) -> strata_driver::Result<DiskUsage> {
        Ok(DiskUsage::default())
    }
    fn cleanup(&self) -> strata_driver::Result<()> {
        Ok(())
    }
    fn apply_diff(
        &self,
        target: LayerRef<'_>,
        _: &ApplyDiffOptions,
        diff: &mut (dyn Read + Send),
        tar_split: Option<Box<dyn Write + Send>>,
    ) -> strata_driver::Result<ApplyReport> {
        *self.seen_during_apply.lock().unwrap() = std::fs::read_to_string(&self.layers_json).ok();
        let mut data = Vec::new();
        diff.read_to_end(&mut data)
            .map_err(|e| strata_driver::Error::path("read", "-", e))?;
        let f = self.home.join(target.id).join("content");
        std::fs::write(&f, &data).map_err(|e| strata_driver::Error::path("write", &f, e))?;
        if let Some(mut ts) = tar_split {
            ts.write_all(b"{\"type\":2}\n").unwrap();
        }
        if data.starts_with(b"FAIL") {
            return Err(err("bad stream"));
        }
        Ok(ApplyReport {
            compressed_digest: "sha256:c".into(),
            compressed_size: data.len() as u64,
            uncompressed_digest: "sha256:u".into(),
            uncompressed_size: data.len() as u64 + 1,
            uids: vec![0, 7],
            gids: vec![0],
            ..Default::default()
        })
    }
}

struct T {
    dir: strata_testsupport::Scratch,
    seen: Arc<Mutex<Option<String>>>,
}

impl T {
    fn new() -> Self {
        let dir = strata_testsupport::Scratch::new("strata-store-");
        Self {
            dir,
            seen: Arc::default(),
        }
    }
    fn opts(&self) -> StoreOptions {
        StoreOptions {
            graph_root: self.dir.path().join("g"),
            run_root: self.dir.path().join("r"),
            driver: Some("vfs".into()),
            ..Default::default()
        }
    }
    fn home(&self) -> PathBuf {
        self.dir.path().join("g/vfs")
    }
    /// A store whose driver calls itself "vfs", so the reference can read it.
    fn open(&self) -> Store {
        let fake = Fake {
            name: "vfs",
            home: self.home(),
            seen_during_apply: self.seen.clone(),
            layers_json: self.dir.path().join("g/vfs-layers/layers.json"),
        };
        std::fs::create_dir_all(self.home()).unwrap();
        Store::open_with_driver(&self.opts(), Box::new(fake)).unwrap()
    }
    fn layers_dir(&self) -> PathBuf {
        self.dir.path().join("g/vfs-layers")
    }
}

fn ids(s: &Store) -> Vec<String> {
    s.layers().unwrap().into_iter().map(|l| l.id).collect()
}

#[test]
fn import_records_report_and_tar_split_while_flagged_incomplete() {
    let t = T::new();
    let s = t.open();
    let l = s
        .import_layer(
            &NewLayer {
                id: Some("a".into()),
                ..Default::default()
            },
            &mut &b"layer bytes"[..],
        )
        .unwrap();
    assert_eq!(l.uncompressed_size, 12);
    assert_eq!(l.uids, vec![0, 7]);
    assert!(l.flags.is_empty());
    // During the apply the record was on disk, flagged incomplete.
    let seen = t.seen.lock().unwrap().clone().unwrap();
    assert!(
        seen.contains("\"id\":\"a\"") && seen.contains("\"flags\":{\"incomplete\":true}"),
        "{seen}"
    );
    let on_disk = std::fs::read_to_string(t.layers_dir().join("layers.json")).unwrap();
    assert!(!on_disk.contains("incomplete"), "{on_disk}");
    let gz = std::fs::read(t.layers_dir().join("a.tar-split.gz")).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "{\"type\":2}\n");
}

#[test]
fn failures_leave_nothing_behind() {
    let t = T::new();
    let s = t.open();
    s.create_layer(&NewLayer {
        id: Some("keep".into()),
        ..Default::default()
    })
    .unwrap();
    let e = s
        .import_layer(
            &NewLayer {
                id: Some("bad".into()),
                ..Default::default()
            },
            &mut &b"FAIL now"[..],
        )
        .unwrap_err();
    assert!(e.to_string().contains("bad stream"), "{e}");
    assert!(s
        .create_layer(&NewLayer {
            id: Some("refused".into()),
            ..Default::default()
        })
        .is_err());
    assert_eq!(ids(&s), ["keep"]);
    assert!(!t.home().join("bad").exists());
    let names: Vec<String> = std::fs::read_dir(t.layers_dir())
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("bad") || n.starts_with(".tmp")),
        "{names:?}"
    );
    // Duplicate IDs and names are refused.
    assert!(s
        .create_layer(&NewLayer {
            id: Some("keep".into()),
            ..Default::default()
        })
        .is_err());
    s.set_names("keep", &["n".into()]).unwrap();
    let e = s
        .create_layer(&NewLayer {
            names: vec!["n".into()],
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.kind(), strata_store::ErrorKind::AlreadyExists);
}

#[test]
fn incomplete_layers_are_removed_by_the_next_writer() {
    let t = T::new();
    {
        let s = t.open();
        s.create_layer(&NewLayer {
            id: Some("ok".into()),
            ..Default::default()
        })
        .unwrap();
        s.create_layer(&NewLayer {
            id: Some("half".into()),
            ..Default::default()
        })
        .unwrap();
    }
    let p = t.layers_dir().join("layers.json");
    let text = std::fs::read_to_string(&p).unwrap();
    let text = text.replace(
        "{\"id\":\"half\",",
        "{\"id\":\"half\",\"flags\":{\"incomplete\":true},",
    );
    std::fs::write(&p, text).unwrap();
    assert!(t.home().join("half").exists());
    let s = t.open();
    assert_eq!(ids(&s), ["ok"]);
    assert!(
        !t.home().join("half").exists(),
        "driver data of the incomplete layer left"
    );
}

#[test]
fn mount_counts_persist_and_delete_rules() {
    let t = T::new();
    let s = t.open();
    s.create_layer(&NewLayer {
        id: Some("p".into()),
        ..Default::default()
    })
    .unwrap();
    s.create_layer(&NewLayer {
        id: Some("c".into()),
        parent: Some("p".into()),
        ..Default::default()
    })
    .unwrap();
    s.mount("c", &MountRequest::default()).unwrap();
    s.mount("c", &MountRequest::default()).unwrap();
    drop(s);
    let s = t.open();
    assert_eq!(s.mounted("c").unwrap().0, 2);
    assert!(s.unmount("c", Force::No).unwrap());
    assert!(!s.unmount("c", Force::No).unwrap());
    assert_eq!(s.mounted("c").unwrap().0, 0);
    s.mount("c", &MountRequest::default()).unwrap();
    assert_eq!(
        s.delete_layer("p", Safety::Checked).unwrap_err().kind(),
        strata_store::ErrorKind::Busy
    );
    s.delete_layer("c", Safety::Checked).unwrap();
    assert!(
        s.mounts().unwrap().is_empty(),
        "delete leaves no mount record"
    );
    s.set_big_data("p", "k", b"v").unwrap();
    assert_eq!(s.big_data("p", "k").unwrap(), b"v");
    s.wipe().unwrap();
    assert!(ids(&s).is_empty());
    assert!(!t.layers_dir().join("p").exists());
}

fn reference() -> Option<&'static Path> {
    strata_testsupport::reference(&strata_testsupport::current_test())
}

/// Waits until process `pid` holds a POSIX lock on `path` (as
/// `/proc/locks` lists it: the pid, then `major:minor:inode`).
fn wait_for_lock(pid: u32, path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(path).unwrap().ino().to_string();
    let pid = pid.to_string();
    let held = strata_testsupport::wait_until(std::time::Duration::from_secs(60), || {
        let locks = std::fs::read_to_string("/proc/locks").unwrap();
        locks.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&"POSIX")
                && f.get(4) == Some(&pid.as_str())
                && f.get(5).and_then(|d| d.rsplit(':').next()) == Some(inode.as_str())
        })
    });
    assert!(held, "process {pid} did not lock {}", path.display());
}

fn reference_cmd(t: &T, r: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(r);
    let conf = t.dir.path().join("storage.conf");
    std::fs::write(&conf, "[storage]\ndriver = \"vfs\"\n").unwrap();
    c.env("CONTAINERS_STORAGE_CONF", conf)
        .arg("-g")
        .arg(t.dir.path().join("g"))
        .arg("-R")
        .arg(t.dir.path().join("r"))
        .args(["-s", "vfs"]);
    c
}

#[test]
fn our_lock_blocks_the_reference_and_its_writes_are_seen() {
    let Some(r) = reference() else { return };
    let t = T::new();
    let s = t.open();
    s.create_layer(&NewLayer {
        id: Some("ours".into()),
        ..Default::default()
    })
    .unwrap();
    // Hold layers.lock exclusively; the reference must wait for it.
    let lock = strata_store::lockfile::LockFile::open(&t.layers_dir().join("layers.lock")).unwrap();
    let guard = lock
        .lock(strata_store::lockfile::LockMode::Exclusive)
        .unwrap();
    let mut child = reference_cmd(&t, r)
        .args(["create-layer", "--id", "theirs"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "reference did not wait for our fcntl lock"
    );
    drop(guard);
    let st = child.wait().unwrap();
    assert!(st.success());
    // Same Store object: the reference's token makes us reload.
    assert_eq!(ids(&s), ["ours", "theirs"]);
    let tok = std::fs::read(t.layers_dir().join("layers.lock")).unwrap();
    assert_eq!(tok.len(), 64);
}

#[test]
fn the_references_lock_blocks_us() {
    let Some(r) = reference() else { return };
    let t = T::new();
    let s = t.open();
    s.create_layer(&NewLayer {
        id: Some("ours".into()),
        ..Default::default()
    })
    .unwrap();
    drop(s);
    // The reference holds the layers lock while it reads the layer from
    // stdin; keep stdin open.
    let mut child = reference_cmd(&t, r)
        .args(["import-layer", "--id", "theirs"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&[0u8; 512]).unwrap();
    wait_for_lock(child.id(), &t.layers_dir().join("layers.lock"));
    let (tx, rx) = std::sync::mpsc::channel();
    let opts = t.opts();
    let home = t.home();
    let lj = t.layers_dir().join("layers.json");
    let th = std::thread::spawn(move || {
        let fake = Fake {
            name: "vfs",
            home,
            seen_during_apply: Arc::default(),
            layers_json: lj,
        };
        let s = Store::open_with_driver(&opts, Box::new(fake)).unwrap();
        let n = s.layers().unwrap().len();
        tx.send(n).unwrap();
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(1500))
            .is_err(),
        "we did not wait for the reference's lock"
    );
    stdin.write_all(&[0u8; 1024]).unwrap();
    drop(stdin);
    let _ = child.wait().unwrap();
    let n = rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
    th.join().unwrap();
    assert!(n >= 1);
}
