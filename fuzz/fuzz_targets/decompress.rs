//! Decompression, tar reading and tar-split recording of arbitrary bytes
//! must never panic; a record that was written must replay to the stream.

#![no_main]

use std::io::{Cursor, Read};

use strata_archive::compression::{decoder, Compression};
use strata_archive::reader::{Reader, Record};
use strata_archive::tarsplit::Recorder;
use libfuzzer_sys::fuzz_target;

/// Decompressed bytes beyond this are not read (compression bombs).
const LIMIT: u64 = 8 << 20;

fuzz_target!(|data: &[u8]| {
    let kind = Compression::detect(data);
    let Ok(dec) = decoder(kind, Box::new(Cursor::new(data.to_vec()))) else {
        return;
    };
    let mut tar = Vec::new();
    if dec.take(LIMIT).read_to_end(&mut tar).is_err() {
        return;
    }
    let mut rec = Vec::new();
    let mut reader = Reader::with_sink(Cursor::new(&tar[..]), Recorder::new(&mut rec), Record::Yes);
    let mut contents: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    loop {
        match reader.next_item() {
            Ok(Some(strata_archive::entry::Item::Header(h))) => {
                contents.push((h.raw_path.clone(), Vec::new()))
            }
            Ok(Some(strata_archive::entry::Item::Data { offset, bytes })) => {
                let c = &mut contents.last_mut().unwrap().1;
                let end = offset as usize + bytes.len();
                if c.len() < end {
                    c.resize(end, 0);
                }
                c[offset as usize..end].copy_from_slice(&bytes);
            }
            Ok(Some(strata_archive::entry::Item::End)) => {}
            Ok(None) => break,
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.is_empty());
                return;
            }
        }
    }
    drop(reader);
    // Replay with the contents as read: identical bytes unless a sparse
    // member or a duplicate name makes the source ambiguous.
    let sparse_or_dup = {
        let mut seen = std::collections::HashSet::new();
        contents.iter().any(|(n, _)| !seen.insert(strata_archive::reader::fields::normalize(n)))
            || tar.len() >= 512 && tar.chunks(512).any(|b| b.len() == 512 && (b[156] == b'S' || b[156] == b'x'))
    };
    if sparse_or_dup {
        return;
    }
    struct Src(Vec<(Vec<u8>, Vec<u8>)>);
    impl strata_archive::tarsplit::FileSource for Src {
        fn open(&self, name: &[u8]) -> std::io::Result<Box<dyn Read + '_>> {
            let key = strata_archive::reader::fields::normalize(name);
            self.0
                .iter()
                .rev()
                .find(|(n, _)| strata_archive::reader::fields::normalize(n) == key)
                .map(|(_, c)| Box::new(Cursor::new(c.clone())) as Box<dyn Read>)
                .ok_or_else(|| std::io::ErrorKind::NotFound.into())
        }
    }
    let mut out = Vec::new();
    strata_archive::tarsplit::replay(Cursor::new(&rec), &Src(contents), &mut out).unwrap();
    assert!(out == tar, "replay differs");
});
