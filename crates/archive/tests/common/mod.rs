//! Helpers shared by the reader, tar-split and pipeline tests: archives
//! built in code, raw header blocks, and a collector of reader items.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Cursor, Read, Write};

use strata_archive::entry::{Header, Item};
use strata_archive::reader::Reader;
use strata_archive::tarsplit::FileSource;

/// One member as collected from the item stream: header and dense content
/// (holes as zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub header: Header,
    pub content: Vec<u8>,
}

/// Reads all members of an uncompressed tar.
pub fn members(tar: &[u8]) -> strata_archive::Result<Vec<Member>> {
    let mut reader = Reader::new(Cursor::new(tar));
    collect(|| reader.next_item())
}

/// Collects members from an item source, checking the item protocol.
pub fn collect(
    mut next: impl FnMut() -> strata_archive::Result<Option<Item>>,
) -> strata_archive::Result<Vec<Member>> {
    let mut out = Vec::new();
    let mut cur: Option<Member> = None;
    while let Some(item) = next()? {
        match item {
            Item::Header(h) => {
                assert!(cur.is_none(), "header inside a member");
                let size = h.size as usize;
                cur = Some(Member {
                    header: *h,
                    content: vec![0; size],
                });
            }
            Item::Data { offset, bytes } => {
                assert!(bytes.len() <= strata_archive::entry::CHUNK);
                let m = cur.as_mut().expect("data outside a member");
                let o = offset as usize;
                m.content[o..o + bytes.len()].copy_from_slice(&bytes);
            }
            Item::End => out.push(cur.take().expect("end outside a member")),
        }
    }
    assert!(cur.is_none(), "unterminated member");
    Ok(out)
}

/// A file source over contents by normalised name.
pub struct MapSource(pub HashMap<Vec<u8>, Vec<u8>>);

impl MapSource {
    pub fn of(members: &[Member]) -> Self {
        MapSource(
            members
                .iter()
                .map(|m| (m.header.path.clone(), m.content.clone()))
                .collect(),
        )
    }
}

impl FileSource for MapSource {
    fn open(&self, name: &[u8]) -> std::io::Result<Box<dyn Read + '_>> {
        let key = strata_archive::reader::fields::normalize(name);
        match self.0.get(&key) {
            Some(v) => Ok(Box::new(Cursor::new(v.clone()))),
            None => Err(std::io::ErrorKind::NotFound.into()),
        }
    }
}

/// A `Write` whose bytes can be read after it was boxed away.
#[derive(Clone, Default)]
pub struct SharedBuf(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// Records `tar` (possibly compressed) through the pipeline.
pub fn record(input: &[u8]) -> strata_archive::Result<(strata_archive::ApplyReport, Vec<u8>)> {
    let buf = SharedBuf::default();
    let report =
        strata_archive::digest_layer(Cursor::new(input.to_vec()), Some(Box::new(buf.clone())))?;
    Ok((report, buf.take()))
}

/// A tar builder with GNU headers (long names become 'L'/'K' records).
pub fn gnu() -> tar::Builder<Vec<u8>> {
    tar::Builder::new(Vec::new())
}

pub fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

pub fn ustar_header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h
}

/// Appends a file member.
pub fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, data.len() as u64);
    b.append_data(&mut h, path, data).unwrap();
}

/// Appends a raw member: one header block (checksum fixed up) and content.
pub fn raw_member(out: &mut Vec<u8>, mut h: tar::Header, content: &[u8]) {
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(content);
    pad(out);
}

/// Pads to a block boundary.
pub fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(512) {
        out.push(0);
    }
}

/// Sets the raw name field (up to 100 bytes).
pub fn set_name(h: &mut tar::Header, name: &[u8]) {
    let f = &mut h.as_old_mut().name;
    f.fill(0);
    f[..name.len()].copy_from_slice(name);
}

/// A PAX body from records.
pub fn pax_body(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let base = k.len() + v.len() + 3;
        let mut len = base + base.to_string().len();
        if len.to_string().len() + base != len {
            len = base + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {k}=").as_bytes());
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

/// Appends a PAX 'x' (or 'g') member carrying `records`.
pub fn pax_member(out: &mut Vec<u8>, kind: u8, records: &[(&str, &[u8])]) {
    let body = pax_body(records);
    let mut h = ustar_header(tar::EntryType::new(kind), body.len() as u64);
    set_name(&mut h, b"PaxHeaders/x");
    raw_member(out, h, &body);
}

/// End-of-archive marker.
pub fn finish(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0; 1024]);
}

pub fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}
