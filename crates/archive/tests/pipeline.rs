//! The import pipeline: compression detection and decoding, digests and
//! sizes, ID sets, error propagation across stages.

mod common;

use std::io::{Cursor, Read, Write};

use common::*;
use strata_archive::entry::Item;
use strata_archive::{digest_layer, read_layer, Compression, Error, ErrorKind};
use strata_testsupport::Corpus;

fn sample() -> Vec<u8> {
    let mut b = gnu();
    for (i, (uid, gid)) in [(5u64, 7u64), (1000, 0), (5, 7), (65534, 65534)]
        .iter()
        .enumerate()
    {
        let data = vec![i as u8; 3000 * i + 1];
        let mut h = header(tar::EntryType::Regular, data.len() as u64);
        h.set_uid(*uid);
        h.set_gid(*gid);
        b.append_data(&mut h, format!("dir/f{i}"), &data[..])
            .unwrap();
    }
    // Large enough to span several pipeline chunks.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    add_file(&mut b, "big", &big);
    b.into_inner().unwrap()
}

fn compress(kind: Compression, data: &[u8]) -> Vec<u8> {
    match kind {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(data, 1).unwrap(),
        Compression::Bzip2 => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compression::Xz => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
    }
}

/// `n` incompressible bytes (xorshift from `seed`).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

const ALL: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Zstd,
    Compression::Bzip2,
    Compression::Xz,
];

#[test]
fn every_compression_digests_and_records() {
    let tar = sample();
    for kind in ALL {
        let input = compress(kind, &tar);
        let (report, rec) = record(&input).unwrap();
        assert_eq!(report.compression, kind);
        assert_eq!(report.compressed_digest, sha256(&input), "{kind:?}");
        assert_eq!(report.compressed_size, input.len() as u64);
        assert_eq!(report.uncompressed_digest, sha256(&tar));
        assert_eq!(report.uncompressed_size, tar.len() as u64);
        assert_eq!(report.uids, vec![0, 5, 1000, 65534]);
        assert_eq!(report.gids, vec![0, 7, 65534]);
        let mut out = Vec::new();
        strata_archive::tarsplit::replay(
            Cursor::new(&rec),
            &MapSource::of(&members(&tar).unwrap()),
            &mut out,
        )
        .unwrap();
        assert!(out == tar, "{kind:?}");
    }
}

#[test]
fn items_arrive_in_order_on_the_calling_thread() {
    let tar = sample();
    let want = members(&tar).unwrap();
    for kind in ALL {
        let me = std::thread::current().id();
        let mut items = Vec::new();
        let report = read_layer(Cursor::new(compress(kind, &tar)), None, |item| {
            assert_eq!(std::thread::current().id(), me);
            items.push(item);
            Ok(())
        })
        .unwrap();
        assert_eq!(report.uncompressed_digest, sha256(&tar));
        let mut it = items.into_iter();
        let got = collect(|| Ok(it.next())).unwrap();
        assert_eq!(got, want, "{kind:?}");
    }
}

#[test]
fn concatenated_streams_are_read_through() {
    let tar = sample();
    let (a, b) = tar.split_at(70_001);
    for kind in [
        Compression::Gzip,
        Compression::Zstd,
        Compression::Bzip2,
        Compression::Xz,
    ] {
        let mut input = compress(kind, a);
        input.extend_from_slice(&compress(kind, b));
        let (report, _) = record(&input).unwrap();
        assert_eq!(report.uncompressed_digest, sha256(&tar), "{kind:?}");
    }
}

fn message(input: Vec<u8>) -> String {
    digest_layer(Cursor::new(input), None)
        .unwrap_err()
        .to_string()
}

#[test]
fn junk_and_truncated_streams_say_what_scripts_match() {
    let tar = sample();
    let junk: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for kind in ALL {
        // A well-formed compressed stream of junk: invalid tar header.
        let msg = message(compress(kind, &junk));
        assert!(msg.contains("invalid tar header"), "{kind:?} junk: {msg}");
        // A truncated stream: unexpected EOF.
        let full = compress(kind, &tar);
        let msg = message(full[..full.len() / 2].to_vec());
        assert!(msg.contains("unexpected EOF"), "{kind:?} truncated: {msg}");
    }
    // A corrupted compressed stream names the format and the wording.
    for kind in [
        Compression::Gzip,
        Compression::Zstd,
        Compression::Bzip2,
        Compression::Xz,
    ] {
        // Flip bytes just after the magic: the stream's own framing breaks
        // (flipping content bytes might just change file data).
        let mut bad = compress(kind, &tar);
        for b in &mut bad[4..68] {
            *b ^= 0x5a;
        }
        let err = digest_layer(Cursor::new(bad), None).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{kind:?}: {msg}");
        assert!(
            msg.contains("invalid tar header") || msg.contains("unexpected EOF"),
            "{kind:?} corrupt: {msg}"
        );
    }
}

#[test]
fn the_first_real_cause_is_reported() {
    let tar = sample();
    // The consumer's own error wins, and stops the pipeline early.
    let mut seen = 0;
    let err = read_layer(Cursor::new(tar.clone()), None, |_| {
        seen += 1;
        if seen == 3 {
            return Err(Error::Refused {
                path: "dir/f1".into(),
                reason: "test refusal".into(),
            });
        }
        Ok(())
    })
    .unwrap_err();
    assert!(err.to_string().contains("test refusal"), "{err}");
    assert_eq!(seen, 3);

    // A parse error mid-stream reaches the consumer after the good items.
    let mut bad = tar.clone();
    let second_header = 512 + 512; // f0 has 1 byte of content
    bad[second_header] ^= 0xff;
    let mut items = 0;
    let err = read_layer(Cursor::new(bad), None, |_| {
        items += 1;
        Ok(())
    })
    .unwrap_err();
    assert!(matches!(err, Error::InvalidHeader(_)), "{err}");
    assert_eq!(items, 3, "header, data and end of the first member");

    // An input error is reported with its context.
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(0x1f);
            self.0 -= n;
            Ok(n)
        }
    }
    let err = digest_layer(Failing(100), None).unwrap_err();
    assert!(err.to_string().contains("disk on fire"), "{err}");
    assert!(err.to_string().contains("reading layer input"), "{err}");

    // An input failing half way through reaches the caller, after what was
    // read (and decoded) before it; a plain one through its reader thread.
    for kind in [Compression::None, Compression::Gzip, Compression::Zstd] {
        // Incompressible, so that half of the compressed stream is several
        // read chunks.
        let big = noise(3 << 20, 0x9e37_79b9_7f4a_7c15);
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(big.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "big", &big[..]).unwrap();
        let z = compress(kind, &tar.into_inner().unwrap());
        struct FailingAfter(Cursor<Vec<u8>>, usize);
        impl Read for FailingAfter {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.position() as usize >= self.1 {
                    return Err(std::io::Error::other("disk on fire"));
                }
                let n = buf.len().min(self.1 - self.0.position() as usize);
                self.0.read(&mut buf[..n])
            }
        }
        let cut = z.len() / 2;
        let mut data = 0;
        let err = read_layer(FailingAfter(Cursor::new(z), cut), None, |item| {
            if let Item::Data { bytes, .. } = item {
                data += bytes.len();
            }
            Ok(())
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{kind:?}: {err}");
        assert!(data > 0 && data < big.len(), "{kind:?}: {data} bytes");
    }
}

/// Bytes after a tar's end still count: the tar digest and size are the
/// whole (decompressed) stream's, here many more chunks of it than are ever
/// in flight; a plain tar's input digest is the same.
#[test]
fn trailing_bytes_are_hashed_to_the_end() {
    let mut stream = sample();
    let tar_len = stream.len();
    stream.extend((0..80 * strata_archive::entry::CHUNK + 123).map(|i| (i % 253) as u8));
    for kind in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let input = compress(kind, &stream);
        let r = digest_layer(Cursor::new(input.clone()), None).unwrap();
        assert_eq!(r.compression, kind);
        assert_eq!(r.compressed_digest, sha256(&input), "{kind:?}");
        assert_eq!(r.uncompressed_digest, sha256(&stream), "{kind:?}");
        assert_eq!(r.uncompressed_size, stream.len() as u64, "{kind:?}");
        assert!(r.uncompressed_size > tar_len as u64);
    }
}

/// An input of many more chunks than are in flight between its reader, its
/// hasher or decoder and the parser is hashed whole on both sides,
/// compressed or not.
#[test]
fn big_inputs_are_hashed_whole() {
    let mut b = gnu();
    add_file(&mut b, "noise", &noise(24 << 20, 0x2545_f491_4f6c_dd1d));
    let tar = b.into_inner().unwrap();
    for kind in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let input = compress(kind, &tar);
        assert!(input.len() > 80 * strata_archive::entry::CHUNK, "{kind:?}");
        let r = digest_layer(Cursor::new(input.clone()), None).unwrap();
        assert_eq!(r.compression, kind);
        assert_eq!(r.compressed_digest, sha256(&input), "{kind:?}");
        assert_eq!(r.compressed_size, input.len() as u64, "{kind:?}");
        assert_eq!(r.uncompressed_digest, sha256(&tar), "{kind:?}");
        assert_eq!(r.uncompressed_size, tar.len() as u64, "{kind:?}");
    }
}

/// A tar bad from its first header stops the import without the rest of
/// its input being read, compressed or not.
#[test]
fn a_bad_tar_stops_the_reading_of_its_input() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    struct Counting(Cursor<Vec<u8>>, Arc<AtomicUsize>);
    impl Read for Counting {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1.fetch_add(n, Ordering::Relaxed);
            Ok(n)
        }
    }
    let mut tar = vec![0xa5u8; 512];
    tar.extend(noise(16 << 20, 0x5851_f42d_4c95_7f2d));
    for kind in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let input = compress(kind, &tar);
        let read = Arc::new(AtomicUsize::new(0));
        let err =
            digest_layer(Counting(Cursor::new(input.clone()), read.clone()), None).unwrap_err();
        assert!(matches!(err, Error::InvalidHeader(_)), "{kind:?}: {err}");
        let n = read.load(Ordering::Relaxed);
        assert!(n < input.len() / 2, "{kind:?}: read {n} of {}", input.len());
    }
}

#[test]
fn a_failing_tar_split_writer_is_an_error() {
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space",
            ))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let err = digest_layer(Cursor::new(sample()), Some(Box::new(Full))).unwrap_err();
    assert!(err.to_string().contains("tar-split"), "{err}");
}

#[test]
fn empty_input_is_an_empty_layer() {
    let r = digest_layer(Cursor::new(Vec::new()), None).unwrap();
    assert_eq!(r.uncompressed_size, 0);
    assert_eq!(r.compression, Compression::None);
    assert!(r.uids.is_empty());
}

#[test]
fn items_hold_no_more_than_a_chunk() {
    let tar = sample();
    read_layer(Cursor::new(tar), None, |item| {
        if let Item::Data { bytes, .. } = item {
            assert!(bytes.len() <= strata_archive::entry::CHUNK);
        }
        Ok(())
    })
    .unwrap();
}

/// The real corpus through the pipeline: digests match sha256 of the files.
#[test]
fn corpus_digests() {
    for (name, plain) in [
        ("debian-minbase.tar.zst", "debian-minbase.tar"),
        ("debian-minbase.tar.gz", "debian-minbase.tar"),
    ] {
        let Some(corpus) = Corpus::find("corpus_digests", &[name, plain]) else {
            return;
        };
        let (p, t) = (corpus.file(name), corpus.file(plain));
        let input = std::fs::read(&p).unwrap();
        let tar = std::fs::read(&t).unwrap();
        let r = digest_layer(Cursor::new(input.clone()), None).unwrap();
        assert_eq!(r.compressed_digest, sha256(&input));
        assert_eq!(r.uncompressed_digest, sha256(&tar));
        assert_eq!(r.uncompressed_size, tar.len() as u64);
    }
}

/// apply_layer end to end: a gzip layer lands in a directory, the report
/// and record match, and the record replays from the applied tree.
#[test]
fn apply_layer_writes_the_tree_and_a_replayable_record() {
    let tar = sample();
    let dir = tempfile::Builder::new()
        .prefix("strata-pipeline-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let root = std::fs::File::open(dir.path()).unwrap();
    let buf = SharedBuf::default();
    let report = strata_archive::apply_layer(
        std::os::fd::AsFd::as_fd(&root),
        Cursor::new(compress(Compression::Gzip, &tar)),
        strata_archive::ApplyOptions {
            mode: strata_archive::ApplyMode::FullTree,
            ignore_chown_errors: true,
            tar_split: Some(Box::new(buf.clone())),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(report.compression, Compression::Gzip);
    assert_eq!(report.uncompressed_digest, sha256(&tar));
    for m in members(&tar).unwrap() {
        let p = dir
            .path()
            .join(std::str::from_utf8(&m.header.path).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), m.content, "{}", p.display());
    }
    let src = strata_archive::tarsplit::DirSource::new(&[dir.path()]).unwrap();
    let mut out = Vec::new();
    strata_archive::tarsplit::replay(Cursor::new(buf.take()), &src, &mut out).unwrap();
    assert!(out == tar);

    // Junk fails with the scripts' wording.
    let err = strata_archive::apply_layer(
        std::os::fd::AsFd::as_fd(&root),
        Cursor::new(b"not a tar at all, just words".repeat(100)),
        strata_archive::ApplyOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("invalid tar header"), "{err}");
}
