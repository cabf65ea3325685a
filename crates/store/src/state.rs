//! The in-memory state of the layer store and its two files:
//! `<graph>/<driver>-layers/layers.json` (records) and
//! `<run>/<driver>-layers/mountpoints.json` (mount counts).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::files::{write_replacing, Persist};
use crate::lockfile::{LockFile, Token};
use crate::record::{parse_layers, to_json, Layer};
use crate::{Error, Result};

/// One entry of `mountpoints.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MountRecord {
    /// The layer.
    pub id: String,
    /// Where it is mounted.
    #[serde(default)]
    pub path: String,
    /// How many mounts are outstanding.
    #[serde(default)]
    pub count: u64,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What a file looked like when it was last read, to notice other writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Seen {
    token: Option<Token>,
    mtime: Option<SystemTime>,
}

/// Records and mounts, as last loaded.
#[derive(Debug, Default)]
pub struct State {
    /// Layer records in file order.
    pub layers: Vec<Layer>,
    /// Mount records.
    pub mounts: Vec<MountRecord>,
    layers_seen: Seen,
    mounts_seen: Seen,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Paths of the store's layer files.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<graph>/<driver>-layers`.
    pub layers_dir: PathBuf,
    /// `<run>/<driver>-layers`.
    pub mounts_dir: PathBuf,
}

impl Paths {
    /// `layers.json`.
    pub fn layers_json(&self) -> PathBuf {
        self.layers_dir.join("layers.json")
    }
    /// `mountpoints.json`.
    pub fn mounts_json(&self) -> PathBuf {
        self.mounts_dir.join("mountpoints.json")
    }
    /// `<id>.tar-split.gz`.
    pub fn tar_split(&self, id: &str) -> PathBuf {
        self.layers_dir.join(format!("{id}.tar-split.gz"))
    }
    /// The layer's big-data directory.
    pub fn data_dir(&self, id: &str) -> PathBuf {
        self.layers_dir.join(id)
    }
}

impl State {
    /// Reloads whichever file changed since it was last read (another
    /// writer's token in the lock file, or a different mtime).
    pub fn refresh(
        &mut self,
        paths: &Paths,
        layers_lock: &LockFile,
        mounts_lock: &LockFile,
    ) -> Result<()> {
        let lp = paths.layers_json();
        let seen = Seen {
            token: Some(layers_lock.token()?),
            mtime: mtime(&lp),
        };
        if seen != self.layers_seen {
            self.layers = match std::fs::read(&lp) {
                Ok(b) => parse_layers(&b).map_err(|e| Error::Corrupt {
                    path: lp.clone(),
                    reason: e.to_string(),
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(Error::io("read", &lp, e)),
            };
            self.layers_seen = seen;
        }
        let mp = paths.mounts_json();
        let seen = Seen {
            token: Some(mounts_lock.token()?),
            mtime: mtime(&mp),
        };
        if seen != self.mounts_seen {
            self.mounts = match std::fs::read(&mp) {
                Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Vec::new(),
                Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Corrupt {
                    path: mp.clone(),
                    reason: e.to_string(),
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(Error::io("read", &mp, e)),
            };
            // Drop mounts of layers that no longer exist.
            let layers = &self.layers;
            self.mounts.retain(|m| layers.iter().any(|l| l.id == m.id));
            self.mounts_seen = seen;
        }
        Ok(())
    }

    /// Writes both files and records the writes in both lock files (as the
    /// reference does on every save). Call with both locks held exclusively.
    pub fn save(
        &mut self,
        paths: &Paths,
        layers_lock: &LockFile,
        mounts_lock: &LockFile,
        persist: Persist,
    ) -> Result<()> {
        let lp = paths.layers_json();
        let data = to_json(&self.layers).map_err(|e| Error::Invalid(e.to_string()))?;
        write_replacing(&lp, &data, 0o600, persist)?;
        let token = layers_lock.record_write()?;
        self.layers_seen = Seen {
            token: Some(token),
            mtime: mtime(&lp),
        };
        let mp = paths.mounts_json();
        let data = to_json(&self.mounts).map_err(|e| Error::Invalid(e.to_string()))?;
        // Mount counts live in the run root and mean nothing after a reboot.
        write_replacing(&mp, &data, 0o600, Persist::Volatile)?;
        let token = mounts_lock.record_write()?;
        self.mounts_seen = Seen {
            token: Some(token),
            mtime: mtime(&mp),
        };
        Ok(())
    }

    /// Finds a layer by ID, then by name, then by unique ID prefix.
    pub fn lookup(&self, key: &str) -> Option<usize> {
        if let Some(i) = self.layers.iter().position(|l| l.id == key) {
            return Some(i);
        }
        if let Some(i) = self
            .layers
            .iter()
            .position(|l| l.names.iter().any(|n| n == key))
        {
            return Some(i);
        }
        if key.is_empty() {
            return None;
        }
        let mut hits = self
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| l.id.starts_with(key));
        match (hits.next(), hits.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    }

    /// Like [`State::lookup`] but an unknown layer is an error.
    pub fn get(&self, key: &str) -> Result<usize> {
        self.lookup(key)
            .ok_or_else(|| Error::LayerUnknown(key.to_string()))
    }

    /// The mount record of a layer.
    pub fn mount_of(&self, id: &str) -> Option<&MountRecord> {
        self.mounts.iter().find(|m| m.id == id)
    }

    /// The mount count of a layer (0 when not mounted).
    pub fn mount_count(&self, id: &str) -> u64 {
        self.mount_of(id).map_or(0, |m| m.count)
    }

    /// IDs of the layers whose parent is `id`.
    pub fn children(&self, id: &str) -> Vec<String> {
        self.layers
            .iter()
            .filter(|l| l.parent == id)
            .map(|l| l.id.clone())
            .collect()
    }

    /// The layer that holds `name`, if any.
    pub fn name_owner(&self, name: &str) -> Option<usize> {
        self.layers
            .iter()
            .position(|l| l.names.iter().any(|n| n == name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(id: &str, names: &[&str], parent: &str) -> Layer {
        Layer {
            id: id.into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            parent: parent.into(),
            created: crate::record::now(),
            ..Default::default()
        }
    }

    #[test]
    fn lookup_by_id_name_prefix() {
        let st = State {
            layers: vec![
                layer("abc123", &["base"], ""),
                layer("abd456", &[], "abc123"),
            ],
            ..Default::default()
        };
        assert_eq!(st.lookup("abc123"), Some(0));
        assert_eq!(st.lookup("base"), Some(0));
        assert_eq!(st.lookup("abd"), Some(1));
        assert_eq!(st.lookup("ab"), None, "ambiguous prefix");
        assert_eq!(st.lookup(""), None);
        assert_eq!(st.children("abc123"), vec!["abd456".to_string()]);
        assert!(st.get("nope").is_err());
    }

    #[test]
    fn save_then_refresh_sees_other_writer() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths {
            layers_dir: d.path().join("l"),
            mounts_dir: d.path().join("m"),
        };
        std::fs::create_dir_all(&paths.layers_dir).unwrap();
        std::fs::create_dir_all(&paths.mounts_dir).unwrap();
        let ll = LockFile::open(&paths.layers_dir.join("layers.lock")).unwrap();
        let ml = LockFile::open(&paths.mounts_dir.join("mountpoints.lock")).unwrap();
        let mut a = State::default();
        a.refresh(&paths, &ll, &ml).unwrap();
        a.layers.push(layer("one", &[], ""));
        a.save(&paths, &ll, &ml, Persist::Durable).unwrap();
        assert_eq!(std::fs::read_to_string(paths.mounts_json()).unwrap(), "[]");
        let mut b = State::default();
        b.refresh(&paths, &ll, &ml).unwrap();
        assert_eq!(b.layers.len(), 1);
        b.layers.push(layer("two", &[], "one"));
        b.save(&paths, &ll, &ml, Persist::Ordered).unwrap();
        a.refresh(&paths, &ll, &ml).unwrap();
        assert_eq!(a.layers.len(), 2);
    }
}
