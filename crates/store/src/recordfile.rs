//! One record file: a JSON array of records (`layers.json`, `images.json`,
//! `containers.json`, `mountpoints.json`), the lock file that guards it,
//! and what this process last loaded from it.
//!
//! ```text
//! <dir>/<kind>s.json            records, compact JSON (0600)
//!       volatile-<kind>s.json   records of volatile containers and their
//!                               layers (written by containers/storage 1.45+)
//!       <kind>s.lock            fcntl lock + 64-byte last-writer token
//! ```
//!
//! Every access holds the lock (shared to read, exclusive to write) and
//! first reloads the files when the lock's last-writer token or a file's
//! mtime differs from what was last loaded. A save replaces each file
//! through a temporary file and a rename and then records a new token.
//! Records loaded from the volatile file are written back there; new
//! records go to the main file, which is the one containers/storage 1.43
//! reads. A file that does not parse is an error naming the file and the
//! byte offset, and is never written over.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::files::{write_replacing, Persist};
use crate::lockfile::{LockFile, LockGuard, LockMode, Token};
use crate::record::{to_json, Kind, Record};
use crate::{Error, Result};

/// What the files looked like when they were last read, to notice other
/// writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    token: Token,
    mtimes: [Option<SystemTime>; 2],
}

#[derive(Debug)]
struct Cache<R> {
    records: Option<Arc<Records<R>>>,
    seen: Option<Seen>,
}

/// Whether a record file may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The store's own files.
    ReadWrite,
    /// An additional (read-only) store's files.
    ReadOnly,
}

/// Where a record file lives and how it is written.
#[derive(Debug, Clone)]
pub struct Location {
    /// The JSON file.
    pub path: PathBuf,
    /// The volatile JSON file read (and written back) beside it, if any.
    pub volatile: Option<PathBuf>,
    /// The lock file.
    pub lock: PathBuf,
    /// How the JSON file is replaced.
    pub persist: Persist,
    /// Read-write or read-only.
    pub mode: Mode,
}

/// A JSON array of records behind a lock file.
#[derive(Debug)]
pub struct RecordFile<R> {
    loc: Location,
    lock: LockFile,
    cache: Mutex<Cache<R>>,
}

/// Records as loaded, with their indexes.
#[derive(Debug, Clone)]
pub struct Records<R> {
    list: Vec<R>,
    /// IDs of the records that came from the volatile file.
    volatile: HashSet<String>,
    /// Whether the volatile file exists (so it is rewritten even when its
    /// last record goes).
    volatile_file: bool,
    by_id: HashMap<String, usize>,
    by_name: HashMap<String, usize>,
    by_alt: HashMap<String, usize>,
    /// Indexes of `list` sorted by ID, for prefix lookups.
    sorted: Vec<usize>,
}

impl<R: Record> Default for Records<R> {
    fn default() -> Self {
        Self::new(Vec::new(), HashSet::new(), false)
    }
}

impl<R: Record> Records<R> {
    fn new(list: Vec<R>, volatile: HashSet<String>, volatile_file: bool) -> Self {
        let mut r = Self {
            list,
            volatile,
            volatile_file,
            by_id: HashMap::new(),
            by_name: HashMap::new(),
            by_alt: HashMap::new(),
            sorted: Vec::new(),
        };
        r.reindex();
        r
    }

    fn reindex(&mut self) {
        self.by_id.clear();
        self.by_name.clear();
        self.by_alt.clear();
        for (i, r) in self.list.iter().enumerate() {
            self.by_id.entry(r.id().to_string()).or_insert(i);
            for n in r.names() {
                self.by_name.insert(n.clone(), i);
            }
            if let Some(k) = r.alt_key().filter(|k| !k.is_empty()) {
                self.by_alt.entry(k.to_string()).or_insert(i);
            }
        }
        let mut sorted: Vec<usize> = (0..self.list.len()).collect();
        sorted.sort_by(|a, b| self.list[*a].id().cmp(self.list[*b].id()));
        self.sorted = sorted;
    }

    /// All records, in file order (main file first, then volatile ones).
    pub fn list(&self) -> &[R] {
        &self.list
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Finds a record by exact ID, then name, then its other key, then a
    /// unique ID prefix (an ambiguous prefix finds nothing).
    pub fn lookup(&self, key: &str) -> Option<&R> {
        self.position(key).map(|i| &self.list[i])
    }

    fn position(&self, key: &str) -> Option<usize> {
        if let Some(i) = self.by_id.get(key) {
            return Some(*i);
        }
        if let Some(i) = self.by_name.get(key) {
            return Some(*i);
        }
        if let Some(i) = self.by_alt.get(key) {
            return Some(*i);
        }
        // An ID with a space cannot be found by prefix (the reference's
        // truncindex refuses such IDs), nor can the empty key.
        if key.is_empty() || key.contains(' ') {
            return None;
        }
        let start = self.sorted.partition_point(|i| self.list[*i].id() < key);
        let mut hits = self.sorted[start..]
            .iter()
            .take_while(|i| self.list[**i].id().starts_with(key))
            .filter(|i| !self.list[**i].id().contains(' '));
        match (hits.next(), hits.next()) {
            (Some(i), None) => Some(*i),
            _ => None,
        }
    }

    /// Like [`Records::lookup`], but an unknown key is an error naming it.
    pub fn get(&self, key: &str) -> Result<&R> {
        self.lookup(key).ok_or_else(|| Error::Unknown {
            kind: R::KIND,
            key: key.to_string(),
        })
    }

    /// The record with exactly this ID.
    pub fn by_id(&self, id: &str) -> Option<&R> {
        self.by_id.get(id).map(|i| &self.list[*i])
    }

    /// The record that holds `name`.
    pub fn name_owner(&self, name: &str) -> Option<&R> {
        self.by_name.get(name).map(|i| &self.list[*i])
    }

    /// The ID of a new record: `wanted` when given and not empty (a valid
    /// ID that no record here has), else a fresh random one.
    pub fn new_id(&self, wanted: Option<&str>) -> Result<String> {
        match wanted.filter(|i| !i.is_empty()) {
            Some(id) => {
                crate::record::validate_id(R::KIND, id)?;
                if self.by_id(id).is_some() {
                    return Err(Error::DuplicateId {
                        kind: R::KIND,
                        id: id.to_string(),
                    });
                }
                Ok(id.to_string())
            }
            None => loop {
                let id = crate::record::random_id();
                if self.by_id(&id).is_none() {
                    break Ok(id);
                }
            },
        }
    }

    /// Refuses the first of `names` that a record here already holds.
    pub fn check_free_names(&self, names: &[String]) -> Result<()> {
        match names.iter().find_map(|n| Some((n, self.name_owner(n)?))) {
            Some((name, owner)) => Err(Error::DuplicateName {
                kind: R::KIND,
                name: name.clone(),
                owner: owner.id().to_string(),
            }),
            None => Ok(()),
        }
    }

    /// The record whose other key (a container's layer) is `key`.
    pub fn by_alt_key(&self, key: &str) -> Option<&R> {
        self.by_alt.get(key).map(|i| &self.list[*i])
    }

    /// Whether the record came from the volatile file.
    pub fn is_volatile(&self, id: &str) -> bool {
        self.volatile.contains(id)
    }

    /// Appends a record (to the main file).
    pub fn push(&mut self, r: R) {
        self.list.push(r);
        self.reindex();
    }

    /// Removes the record with this ID, returning it.
    pub fn remove(&mut self, id: &str) -> Option<R> {
        let i = *self.by_id.get(id)?;
        let r = self.list.remove(i);
        self.volatile.remove(id);
        self.reindex();
        Some(r)
    }

    /// Keeps only the records `keep` approves of.
    pub fn retain(&mut self, mut keep: impl FnMut(&R) -> bool) {
        let before = self.list.len();
        self.list.retain(|r| keep(r));
        if self.list.len() != before {
            let ids: HashSet<&str> = self.list.iter().map(|r| r.id()).collect();
            self.volatile.retain(|v| ids.contains(v.as_str()));
            self.reindex();
        }
    }

    /// Changes the record with this ID (not its ID).
    pub fn update<T>(&mut self, id: &str, change: impl FnOnce(&mut R) -> T) -> Option<T> {
        let i = *self.by_id.get(id)?;
        let out = change(&mut self.list[i]);
        debug_assert_eq!(self.list[i].id(), id, "update changed an ID");
        self.reindex();
        Some(out)
    }

    /// Gives the record with ID `id` exactly `names`, taking each from any
    /// other record that has it (names move, as in the reference). Returns
    /// the IDs of the records that lost a name.
    pub fn assign_names(&mut self, id: &str, names: &[String]) -> Result<Vec<String>> {
        let Some(&i) = self.by_id.get(id) else {
            return Err(Error::Unknown {
                kind: R::KIND,
                key: id.to_string(),
            });
        };
        let mut losers = Vec::new();
        for (j, r) in self.list.iter_mut().enumerate() {
            if j == i {
                continue;
            }
            if let Some(ns) = r.names_mut() {
                let before = ns.len();
                ns.retain(|n| !names.contains(n));
                if ns.len() != before {
                    losers.push(r.id().to_string());
                }
            }
        }
        if let Some(ns) = self.list[i].names_mut() {
            *ns = names.to_vec();
        }
        self.reindex();
        Ok(losers)
    }

    /// Changes every record (not their IDs).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut R)) {
        for r in &mut self.list {
            f(r);
        }
        self.reindex();
    }

    /// Earlier records lose names that later records also have (the later
    /// one wins, as in the reference's load).
    fn drop_duplicate_names(&mut self) -> bool {
        let mut seen: HashSet<String> = HashSet::new();
        let mut changed = false;
        for r in self.list.iter_mut().rev() {
            if let Some(ns) = r.names_mut() {
                let before = ns.len();
                ns.retain(|n| seen.insert(n.clone()));
                changed |= ns.len() != before;
            }
        }
        changed
    }
}

/// Whether `hay` contains `needle` (a plain scan for its first byte).
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    let mut at = 0;
    while let Some(i) = hay[at..].iter().position(|&c| c == first) {
        let start = at + i;
        if hay[start..].starts_with(needle) {
            return true;
        }
        at = start + 1;
    }
    false
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The byte offset of a serde_json error's line and column in `bytes`.
fn offset_of(bytes: &[u8], line: usize, column: usize) -> u64 {
    let mut off = 0usize;
    for (n, l) in bytes.split(|b| *b == b'\n').enumerate() {
        if n + 1 == line {
            return (off + column.saturating_sub(1)).min(bytes.len()) as u64;
        }
        off += l.len() + 1;
    }
    bytes.len() as u64
}

/// Parses a record file's bytes; a missing or blank file has no records.
/// An error names the file and the byte offset where parsing stopped.
pub fn parse<R: Record>(path: &Path, bytes: &[u8]) -> Result<Vec<R>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let mut list: Vec<R> = serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        offset: Some(if e.is_eof() {
            bytes.len() as u64
        } else {
            offset_of(bytes, e.line(), e.column())
        }),
        reason: e.to_string(),
    })?;
    for r in &mut list {
        r.loaded().map_err(|reason| Error::Corrupt {
            path: path.to_path_buf(),
            offset: None,
            reason,
        })?;
    }
    Ok(list)
}

fn read_file<R: Record>(path: &Path) -> Result<Option<Vec<R>>> {
    match std::fs::read(path) {
        Ok(b) => parse(path, &b).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

impl<R: Record> RecordFile<R> {
    /// Opens the lock file of a record file (creating it, and its
    /// directory, when missing). Nothing is read yet.
    pub fn open(loc: Location) -> Result<Self> {
        let access = match loc.mode {
            Mode::ReadWrite => crate::lockfile::Access::ReadWrite,
            Mode::ReadOnly => crate::lockfile::Access::ReadOnly,
        };
        let lock = LockFile::open_with(&loc.lock, access)?;
        Ok(Self {
            loc,
            lock,
            cache: Mutex::new(Cache {
                records: None,
                seen: None,
            }),
        })
    }

    /// The JSON file.
    pub fn path(&self) -> &Path {
        &self.loc.path
    }

    /// The directory holding the JSON file (and per-record data).
    pub fn dir(&self) -> &Path {
        self.loc.path.parent().unwrap_or(Path::new("/"))
    }

    /// The lock file.
    pub fn lock_file(&self) -> &LockFile {
        &self.lock
    }

    /// Whether this file can be written.
    pub fn is_read_only(&self) -> bool {
        self.loc.mode == Mode::ReadOnly || !self.lock.is_writable()
    }

    /// Whether the files' bytes contain `needle`, read under a shared lock
    /// without parsing them: a cheap test before a full load (is any layer
    /// flagged incomplete?).
    pub fn mentions(&self, needle: &[u8]) -> Result<bool> {
        let _guard = self.lock.lock(LockMode::Shared)?;
        let files = std::iter::once(&self.loc.path).chain(self.loc.volatile.as_ref());
        for f in files {
            match std::fs::read(f) {
                Ok(b) if contains(&b, needle) => return Ok(true),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("read", f, e)),
            }
        }
        Ok(false)
    }

    /// Removes the temporary files a killed writer left beside the JSON
    /// file (`.tmp-*`, of its atomic writes). Writers hold the exclusive
    /// lock while such files exist, so under that lock every one is stale;
    /// the lock is taken only when there is something to remove.
    pub fn remove_stale_temporaries(&self) -> Result<()> {
        let stale = || -> Vec<PathBuf> {
            std::fs::read_dir(self.dir())
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .collect()
        };
        if self.is_read_only() || stale().is_empty() {
            return Ok(());
        }
        let _guard = self.lock.lock(LockMode::Exclusive)?;
        for p in stale() {
            tracing::info!("removing stale temporary file {}", p.display());
            crate::files::remove_file_if_exists(&p)?;
        }
        Ok(())
    }

    fn cache(&self) -> MutexGuard<'_, Cache<R>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn seen_now(&self) -> Result<Seen> {
        let volatile = self.loc.volatile.as_deref().and_then(mtime);
        Ok(Seen {
            token: self.lock.token()?,
            mtimes: [mtime(&self.loc.path), volatile],
        })
    }

    /// The records, from the cache when nobody wrote since, else from disk.
    /// Call with the lock held.
    fn current(&self) -> Result<(Arc<Records<R>>, Seen)> {
        let seen = self.seen_now()?;
        let mut c = self.cache();
        if let (Some(r), Some(s)) = (&c.records, c.seen) {
            if s == seen {
                return Ok((r.clone(), seen));
            }
        }
        let mut list = read_file::<R>(&self.loc.path)?.unwrap_or_default();
        let mut volatile = HashSet::new();
        let mut volatile_file = false;
        if let Some(vp) = &self.loc.volatile {
            if let Some(vl) = read_file::<R>(vp)? {
                volatile_file = true;
                for r in vl {
                    if list.iter().any(|x| x.id() == r.id()) {
                        continue;
                    }
                    volatile.insert(r.id().to_string());
                    list.push(r);
                }
            }
        }
        let mut records = Records::new(list, volatile, volatile_file);
        if records.drop_duplicate_names() {
            records.reindex();
        }
        let records = Arc::new(records);
        c.records = Some(records.clone());
        c.seen = Some(seen);
        Ok((records, seen))
    }

    /// Takes the lock shared and returns the current records.
    pub fn read(&self) -> Result<Reader<R>> {
        let guard = self.lock.lock(LockMode::Shared)?;
        let (records, _) = self.current()?;
        Ok(Reader {
            _guard: guard,
            records,
        })
    }

    /// Takes the lock exclusively and returns the current records to
    /// change; changes reach the files only through [`Writer::save`].
    pub fn write(&self) -> Result<Writer<'_, R>> {
        if self.loc.mode == Mode::ReadOnly {
            return Err(Error::ReadOnly {
                kind: R::KIND,
                path: self.loc.path.clone(),
            });
        }
        let guard = self.lock.lock(LockMode::Exclusive)?;
        let (records, seen) = self.current()?;
        // Take the cache's copy: under the exclusive lock nobody else in
        // this process reads it, so this rarely clones.
        self.cache().records = None;
        let records = Arc::try_unwrap(records).unwrap_or_else(|a| (*a).clone());
        Ok(Writer {
            file: self,
            _guard: guard,
            records: Some(records),
            seen,
            changed: false,
        })
    }

    fn save(&self, records: &Records<R>) -> Result<Seen> {
        let (volatile, main): (Vec<&R>, Vec<&R>) = records
            .list
            .iter()
            .partition(|r| records.volatile.contains(r.id()));
        let encode = |v: &Vec<&R>, path: &Path| {
            to_json(v).map_err(|e| Error::Corrupt {
                path: path.to_path_buf(),
                offset: None,
                reason: format!("encoding: {e}"),
            })
        };
        write_replacing(
            &self.loc.path,
            &encode(&main, &self.loc.path)?,
            0o600,
            self.loc.persist,
        )?;
        if let Some(vp) = &self.loc.volatile {
            if records.volatile_file || !volatile.is_empty() {
                // Later releases write this file without syncing it.
                write_replacing(vp, &encode(&volatile, vp)?, 0o600, Persist::Volatile)?;
            }
        }
        let token = self.lock.record_write()?;
        Ok(Seen {
            token,
            mtimes: [
                mtime(&self.loc.path),
                self.loc.volatile.as_deref().and_then(mtime),
            ],
        })
    }
}

/// Records read under a shared lock, which is held as long as this lives.
#[derive(Debug)]
pub struct Reader<R> {
    _guard: LockGuard,
    records: Arc<Records<R>>,
}

impl<R> std::ops::Deref for Reader<R> {
    type Target = Records<R>;
    fn deref(&self) -> &Records<R> {
        &self.records
    }
}

/// Records under an exclusive lock, to change and save.
#[derive(Debug)]
pub struct Writer<'a, R: Record> {
    file: &'a RecordFile<R>,
    _guard: LockGuard,
    records: Option<Records<R>>,
    seen: Seen,
    changed: bool,
}

impl<R: Record> std::ops::Deref for Writer<'_, R> {
    type Target = Records<R>;
    fn deref(&self) -> &Records<R> {
        self.records.as_ref().expect("records present until drop")
    }
}

impl<R: Record> Writer<'_, R> {
    /// The records, to change; call [`Writer::save`] to keep the changes.
    pub fn records_mut(&mut self) -> &mut Records<R> {
        self.changed = true;
        self.records.as_mut().expect("records present until drop")
    }

    /// Writes the records and records a new last-writer token.
    pub fn save(&mut self) -> Result<()> {
        let seen = self.file.save(self)?;
        self.seen = seen;
        self.changed = false;
        Ok(())
    }

    /// The kind of record this file keeps.
    pub fn kind(&self) -> Kind {
        R::KIND
    }
}

impl<R: Record> Drop for Writer<'_, R> {
    fn drop(&mut self) {
        // Unsaved changes are dropped: the next access reloads the file.
        if self.changed {
            return;
        }
        if let Some(r) = self.records.take() {
            let mut c = self.file.cache();
            c.records = Some(Arc::new(r));
            c.seen = Some(self.seen);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Layer;

    fn layer(id: &str, names: &[&str], parent: &str) -> Layer {
        Layer {
            id: id.into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            parent: parent.into(),
            created: crate::record::now(),
            ..Default::default()
        }
    }

    fn loc(dir: &Path) -> Location {
        Location {
            path: dir.join("layers.json"),
            volatile: Some(dir.join("volatile-layers.json")),
            lock: dir.join("layers.lock"),
            persist: Persist::Ordered,
            mode: Mode::ReadWrite,
        }
    }

    #[test]
    fn lookup_by_id_name_prefix() {
        let r = Records::new(
            vec![
                layer("abc123", &["base"], ""),
                layer("abd456", &[], "abc123"),
                layer("has space", &[], ""),
            ],
            HashSet::new(),
            false,
        );
        assert_eq!(r.lookup("abc123").unwrap().id, "abc123");
        assert_eq!(r.lookup("base").unwrap().id, "abc123");
        assert_eq!(r.lookup("abd").unwrap().id, "abd456");
        assert!(r.lookup("ab").is_none(), "ambiguous prefix");
        assert!(r.lookup("").is_none());
        assert_eq!(r.lookup("has space").unwrap().id, "has space");
        assert!(
            r.lookup("has").is_none(),
            "IDs with spaces have no prefixes"
        );
        assert_eq!(
            r.get("nope").unwrap_err().kind(),
            crate::ErrorKind::NotFound
        );
    }

    #[test]
    fn save_then_another_file_object_sees_it() {
        let d = tempfile::tempdir().unwrap();
        let a = RecordFile::<Layer>::open(loc(d.path())).unwrap();
        let b = RecordFile::<Layer>::open(loc(d.path())).unwrap();
        assert!(a.read().unwrap().is_empty());
        {
            let mut w = a.write().unwrap();
            w.records_mut().push(layer("one", &["n"], ""));
            w.save().unwrap();
        }
        assert_eq!(b.read().unwrap().len(), 1);
        {
            let mut w = b.write().unwrap();
            w.records_mut().push(layer("two", &[], "one"));
            let lost = w.records_mut().assign_names("two", &["n".into()]).unwrap();
            assert_eq!(lost, ["one"]);
            w.save().unwrap();
        }
        let r = a.read().unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.name_owner("n").unwrap().id, "two");
        assert!(!d.path().join("volatile-layers.json").exists());
    }

    #[test]
    fn unsaved_changes_are_forgotten() {
        let d = tempfile::tempdir().unwrap();
        let a = RecordFile::<Layer>::open(loc(d.path())).unwrap();
        {
            let mut w = a.write().unwrap();
            w.records_mut().push(layer("gone", &[], ""));
        }
        assert!(a.read().unwrap().is_empty());
    }

    #[test]
    fn volatile_records_stay_in_their_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("volatile-layers.json"),
            r#"[{"id":"v","created":"2024-01-01T00:00:00Z","toc-digest":"sha256:1"},{"id":"m","created":"2024-01-01T00:00:00Z"}]"#,
        )
        .unwrap();
        std::fs::write(
            d.path().join("layers.json"),
            r#"[{"id":"m","created":"2024-01-01T00:00:00Z"}]"#,
        )
        .unwrap();
        let a = RecordFile::<Layer>::open(loc(d.path())).unwrap();
        {
            let mut w = a.write().unwrap();
            assert_eq!(w.len(), 2, "duplicate IDs in the volatile file are skipped");
            assert!(w.is_volatile("v"));
            w.records_mut().push(layer("new", &[], ""));
            w.save().unwrap();
        }
        let main = std::fs::read_to_string(d.path().join("layers.json")).unwrap();
        let vol = std::fs::read_to_string(d.path().join("volatile-layers.json")).unwrap();
        assert!(
            main.contains("\"new\"") && !main.contains("\"v\""),
            "{main}"
        );
        assert_eq!(
            vol,
            r#"[{"id":"v","created":"2024-01-01T00:00:00Z","toc-digest":"sha256:1"}]"#
        );
    }

    #[test]
    fn a_damaged_file_is_an_error_with_its_offset_and_stays() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("layers.json");
        let bad = br#"[{"id":"a","created":"2024-01-01T00:00:00Z"},{"id":"bbbb"#;
        std::fs::write(&p, bad).unwrap();
        let a = RecordFile::<Layer>::open(loc(d.path())).unwrap();
        let e = a.write().unwrap_err();
        match &e {
            Error::Corrupt { path, offset, .. } => {
                assert_eq!(path, &p);
                assert_eq!(*offset, Some(bad.len() as u64));
            }
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("layers.json"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), bad);
    }

    #[test]
    fn duplicate_names_go_to_the_later_record() {
        let r = {
            let mut r = Records::new(
                vec![layer("a", &["x", "y"], ""), layer("b", &["x"], "")],
                HashSet::new(),
                false,
            );
            assert!(r.drop_duplicate_names());
            r.reindex();
            r
        };
        assert_eq!(r.by_id("a").unwrap().names, ["y"]);
        assert_eq!(r.name_owner("x").unwrap().id, "b");
    }

    #[test]
    fn byte_search() {
        assert!(contains(b"ab\"incomplete\":true", b"\"incomplete\""));
        assert!(!contains(b"\"incomplet", b"\"incomplete\""));
        assert!(contains(b"x", b""));
    }

    #[test]
    fn offsets_count_lines() {
        assert_eq!(offset_of(b"ab\ncd", 2, 2), 4);
        assert_eq!(offset_of(b"abc", 1, 3), 2);
    }
}
