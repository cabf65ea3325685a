//! Tar-split record and replay: byte-exact round trips, Go-compatible JSON
//! (checked against containers-storage), confined file sources, corruption
//! detection.

mod common;

use std::io::{Cursor, Read};
use std::path::Path;
use std::process::Command;

use common::*;
use proptest::prelude::*;
use strata_archive::tarsplit::{replay, DirSource};
use strata_archive::ErrorKind;
use strata_testsupport::{need_root, need_tool, reference, Corpus, REFERENCE};

fn roundtrip(tar: &[u8]) -> Vec<u8> {
    let (_, rec) = record(tar).unwrap();
    let src = MapSource::of(&members(tar).unwrap());
    let mut out = Vec::new();
    let n = replay(Cursor::new(&rec), &src, &mut out).unwrap();
    assert_eq!(n as usize, out.len());
    assert!(
        out == tar,
        "replay differs from input ({} vs {} bytes)",
        out.len(),
        tar.len()
    );
    rec
}

fn lines(rec: &[u8]) -> Vec<serde_json::Value> {
    rec.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

#[test]
fn record_layout() {
    let mut b = gnu();
    add_file(&mut b, "./e/<&>", b"hi\n");
    let mut h = header(tar::EntryType::Directory, 0);
    b.append_data(&mut h, "./d/", std::io::empty()).unwrap();
    let tar = b.into_inner().unwrap();
    let rec = roundtrip(&tar);
    let text = String::from_utf8(rec.clone()).unwrap();
    let l: Vec<&str> = text.lines().collect();
    assert_eq!(l.len(), 6, "{text}");
    assert!(l[0].starts_with(r#"{"type":2,"payload":""#));
    assert_eq!(
        l[1],
        r#"{"type":1,"name":"e/\u003c\u0026\u003e","size":3,"payload":"YUmYEAAAAAA=","position":1}"#
    );
    assert_eq!(
        l[3],
        r#"{"type":1,"name":"d/","payload":null,"position":3}"#
    );
    // 509 bytes padding of the file + the directory header.
    let v = lines(&rec);
    let seg = |i: usize| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(v[i]["payload"].as_str().unwrap())
            .unwrap()
    };
    assert_eq!(seg(2).len(), 509 + 512);
    // The end: both zero blocks, then (no trailing bytes) the final empty
    // segment.
    assert_eq!(seg(4).len(), 1024);
    assert_eq!(l[5], r#"{"type":2,"payload":"","position":5}"#);
}

#[test]
fn non_utf8_names_use_name_raw() {
    let mut out = Vec::new();
    let mut h = header(tar::EntryType::Regular, 2);
    set_name(&mut h, b"bad\xffname");
    raw_member(&mut out, h, b"ok");
    finish(&mut out);
    let rec = roundtrip(&out);
    let v = lines(&rec);
    assert_eq!(v[1]["name_raw"], "YmFk/25hbWU=");
    assert!(v[1].get("name").is_none());
}

#[test]
fn replay_reproduces_formats_and_trailing_bytes() {
    let mut out = Vec::new();
    pax_member(&mut out, b'g', &[("comment", b"global")]);
    pax_member(
        &mut out,
        b'x',
        &[
            ("path", "x/".repeat(80).as_bytes()),
            ("SCHILY.xattr.user.a", b"1\n2"),
        ],
    );
    let mut h = ustar_header(tar::EntryType::Regular, 600);
    set_name(&mut h, b"ignored");
    raw_member(&mut out, h, &[9u8; 600]);
    let mut b = gnu();
    add_file(&mut b, &"long-name/".repeat(30), b"gnu");
    let mut gnu_part = b.into_inner().unwrap();
    gnu_part.extend_from_slice(&[0u8; 3000]); // builder ends with 1024 zeros
    gnu_part.extend_from_slice(b"junk after the end");
    out.extend_from_slice(&gnu_part);
    let rec = roundtrip(&out);
    let v = lines(&rec);
    // The global header is a file entry of size 0, as Go records it.
    assert_eq!(v[1]["name"], "PaxHeaders/x");
    assert!(v[1].get("size").is_none());
    // Without an end marker and without final padding, still exact.
    let mut cut = sample(3);
    cut.truncate(cut.len() - 1024);
    roundtrip(&cut);
}

#[test]
fn sparse_members_are_recorded_like_go() {
    // Go records the logical size and the CRC of the expanded content.
    let mut out = Vec::new();
    let stored = 10u64;
    let mut h = header(tar::EntryType::GNUSparse, stored);
    set_name(&mut h, b"sp");
    let g = h.as_gnu_mut().unwrap();
    g.sparse[0].set_offset(1 << 20);
    g.sparse[0].set_length(stored);
    g.set_real_size((1 << 20) + stored);
    raw_member(&mut out, h, &[1u8; 10]);
    finish(&mut out);
    let (_, rec) = record(&out).unwrap();
    let v = lines(&rec);
    assert_eq!(v[1]["size"], (1u64 << 20) + stored);
    let mut crc = strata_archive::tarsplit::Crc64::new();
    crc.update(&vec![0u8; 1 << 20]);
    crc.update(&[1u8; 10]);
    use base64::Engine;
    let want = base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes());
    assert_eq!(v[1]["payload"], want.as_str());
    // Replay writes only the stored regions back.
    roundtrip(&out);
}

/// GNU tar's sparse formats (old GNU, PAX 0.0, 0.1, 1.0) replay exactly.
#[test]
fn sparse_replay_is_exact_for_gnu_tar_formats() {
    if !need_tool("sparse_replay_is_exact_for_gnu_tar_formats", "/usr/bin/tar") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(dir.path().join("sparse")).unwrap();
    f.set_len(3 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"head", 0).unwrap();
    f.write_all_at(&[7u8; 5000], 1 << 20).unwrap();
    f.write_all_at(b"tail", (3 << 20) - 4).unwrap();
    for (format, version) in [
        ("gnu", None),
        ("pax", Some("0.0")),
        ("pax", Some("0.1")),
        ("pax", Some("1.0")),
    ] {
        let tar = dir.path().join("out.tar");
        let mut cmd = Command::new("tar");
        cmd.args(["--sparse", "--format", format]);
        if let Some(v) = version {
            cmd.arg(format!("--sparse-version={v}"));
        }
        let st = cmd
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(dir.path())
            .arg("sparse")
            .status()
            .unwrap();
        assert!(st.success());
        let bytes = std::fs::read(&tar).unwrap();
        let ms = members(&bytes).unwrap();
        assert_eq!(ms.len(), 1);
        assert!(ms[0].header.sparse.is_some(), "{format} {version:?}");
        assert_eq!(
            ms[0].content,
            std::fs::read(dir.path().join("sparse")).unwrap()
        );
        roundtrip(&bytes);
    }
}

/// A tar of `d/f0` … `d/f{n-1}`, each holding its own number.
fn numbered_files(n: usize) -> tar::Builder<Vec<u8>> {
    let mut b = gnu();
    for i in 0..n {
        add_file(&mut b, &format!("d/f{i}"), format!("file {i}\n").as_bytes());
    }
    b
}

/// A file the source opened when it was announced is the one read: replay
/// opens only those the source left for later, and the stream is the same.
#[test]
fn replay_reads_the_files_opened_on_announcement() {
    use std::cell::RefCell;
    struct Handing<'a>(MapSource, &'a RefCell<Vec<Vec<u8>>>);
    impl strata_archive::tarsplit::FileSource for Handing<'_> {
        fn open(&self, name: &[u8]) -> std::io::Result<Box<dyn Read + '_>> {
            self.1.borrow_mut().push(name.to_vec());
            self.0.open(name)
        }
        fn prefetch(&self, name: &[u8]) -> Option<Box<dyn Read + '_>> {
            // The even files are opened now, the odd ones left for `open`.
            let n = String::from_utf8_lossy(name);
            let i: usize = n.trim_start_matches("d/f").parse().unwrap();
            i.is_multiple_of(2)
                .then(|| self.0.open(name).ok())
                .flatten()
        }
    }
    let tar = numbered_files(150).into_inner().unwrap();
    let (_, rec) = record(&tar).unwrap();
    let opened = RefCell::new(Vec::new());
    let src = Handing(MapSource::of(&members(&tar).unwrap()), &opened);
    let mut out = Vec::new();
    replay(Cursor::new(&rec), &src, &mut out).unwrap();
    assert!(out == tar);
    let want: Vec<Vec<u8>> = (0..150)
        .filter(|i: &usize| !i.is_multiple_of(2))
        .map(|i| format!("d/f{i}").into_bytes())
        .collect();
    assert_eq!(opened.into_inner(), want);
}

/// Replay announces every file to its source before it opens it, and
/// some entries ahead, so a source on a cold disk can read them at once.
#[test]
fn replay_announces_files_before_opening_them() {
    use std::cell::RefCell;
    struct Recording<'a>(MapSource, &'a RefCell<Vec<(bool, Vec<u8>)>>);
    impl strata_archive::tarsplit::FileSource for Recording<'_> {
        fn open(&self, name: &[u8]) -> std::io::Result<Box<dyn Read + '_>> {
            self.1.borrow_mut().push((true, name.to_vec()));
            self.0.open(name)
        }
        fn prefetch(&self, name: &[u8]) -> Option<Box<dyn Read + '_>> {
            self.1.borrow_mut().push((false, name.to_vec()));
            None
        }
    }
    let mut b = numbered_files(200);
    add_file(&mut b, "empty", b"");
    let tar = b.into_inner().unwrap();
    let (_, rec) = record(&tar).unwrap();
    let events = RefCell::new(Vec::new());
    let src = Recording(MapSource::of(&members(&tar).unwrap()), &events);
    let mut out = Vec::new();
    replay(Cursor::new(&rec), &src, &mut out).unwrap();
    assert!(out == tar);
    let events = events.into_inner();
    let opened: Vec<_> = events.iter().filter(|e| e.0).map(|e| &e.1).collect();
    let announced: Vec<_> = events.iter().filter(|e| !e.0).map(|e| &e.1).collect();
    // Every file with content, once each, in order; an empty one is
    // neither read nor announced.
    assert_eq!(opened.len(), 200);
    assert_eq!(opened, announced);
    for (i, name) in opened.iter().enumerate() {
        let at = |open: bool| {
            events
                .iter()
                .position(|e| e.0 == open && &e.1 == *name)
                .unwrap()
        };
        assert!(at(false) < at(true), "f{i} opened before it was announced");
        // Announced before the file some entries earlier was opened.
        if i >= 20 {
            assert!(at(false) < at(true) - 20, "f{i} announced too late");
        }
    }
}

#[test]
fn replay_detects_changed_and_missing_content() {
    let tar = sample(2);
    let (_, rec) = record(&tar).unwrap();
    let mut src = MapSource::of(&members(&tar).unwrap());
    let victim = b"f1".to_vec();
    src.0.get_mut(&victim).unwrap()[0] ^= 1;
    let err = replay(Cursor::new(&rec), &src, &mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("f1"), "{err}");
    src.0.remove(&victim);
    let err = replay(Cursor::new(&rec), &src, &mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("f1"), "{err}");
    let err = replay(Cursor::new(b"{not json}\n"), &src, &mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
}

#[test]
fn dir_source_confines_hostile_names() {
    let outer = tempfile::tempdir().unwrap();
    let layer = outer.path().join("layer");
    std::fs::create_dir(&layer).unwrap();
    std::fs::write(outer.path().join("shadow"), b"secret").unwrap();
    std::os::unix::fs::symlink("/", layer.join("root")).unwrap();
    let src = DirSource::new(&[&layer]).unwrap();
    for name in [
        &b"../shadow"[..],
        b"/../../shadow",
        b"root/../shadow",
        b"root/shadow",
    ] {
        let mut v = Vec::new();
        let r = strata_archive::tarsplit::FileSource::open(&src, name)
            .and_then(|mut f| f.read_to_end(&mut v));
        assert!(
            r.is_err() && v.is_empty(),
            "{:?} escaped",
            String::from_utf8_lossy(name)
        );
    }
}

/// A tar of `n` small files, from the tar crate's builder.
fn sample(n: usize) -> Vec<u8> {
    let mut b = gnu();
    for i in 0..n {
        add_file(&mut b, &format!("f{i}"), format!("content {i}").as_bytes());
    }
    b.into_inner().unwrap()
}

#[derive(Debug, Clone)]
enum Node {
    File(String, Vec<u8>),
    Dir(String),
    Link(String, String),
}

fn node() -> impl Strategy<Value = Node> {
    let name = "[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,11}(/[a-z]{1,90}){0,2}";
    prop_oneof![
        (name, proptest::collection::vec(any::<u8>(), 0..1500)).prop_map(|(n, d)| Node::File(n, d)),
        name.prop_map(Node::Dir),
        (name, "[a-z/.]{1,150}").prop_map(|(n, t)| Node::Link(n, t)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn replay_of_record_is_the_input(nodes in proptest::collection::vec(node(), 0..12), pax in any::<bool>(), trailing in proptest::collection::vec(any::<u8>(), 0..700)) {
        let mut b = gnu();
        for n in &nodes {
            match n {
                Node::File(p, d) => {
                    let mut h = if pax { ustar_header(tar::EntryType::Regular, 0) } else { header(tar::EntryType::Regular, 0) };
                    h.set_size(d.len() as u64);
                    b.append_data(&mut h, p, &d[..]).unwrap();
                }
                Node::Dir(p) => {
                    let mut h = header(tar::EntryType::Directory, 0);
                    b.append_data(&mut h, p, std::io::empty()).unwrap();
                }
                Node::Link(p, t) => {
                    let mut h = header(tar::EntryType::Symlink, 0);
                    b.append_link(&mut h, p, t).unwrap();
                }
            }
        }
        let mut tar = b.into_inner().unwrap();
        tar.extend_from_slice(&trailing);
        // Duplicate names are legal in tar; keep the last for the source,
        // as the applied tree would.
        let (_, rec) = record(&tar).unwrap();
        let src = MapSource::of(&members(&tar).unwrap());
        let mut out = Vec::new();
        let res = replay(Cursor::new(&rec), &src, &mut out);
        let dup = {
            let mut seen = std::collections::HashSet::new();
            nodes.iter().any(|n| match n { Node::File(p, _) | Node::Dir(p) | Node::Link(p, _) => !seen.insert(strata_archive::reader::fields::normalize(p.as_bytes())) })
        };
        if !dup {
            res.unwrap();
            prop_assert!(out == tar);
        }
    }
}

/// Imports `tar` with containers-storage (vfs) into a temp store and
/// returns its decompressed tar-split record.
fn containers_storage_record(tar: &Path, store: &Path) -> Option<Vec<u8>> {
    containers_storage_import(tar, store).map(|(_, rec)| rec)
}

/// Like [`containers_storage_record`], also returning the layer directory.
fn containers_storage_import(tar: &Path, store: &Path) -> Option<(std::path::PathBuf, Vec<u8>)> {
    let root = store.join("root");
    let run = store.join("run");
    let out = Command::new(REFERENCE)
        .args([
            "-g",
            root.to_str()?,
            "-R",
            run.to_str()?,
            "-s",
            "vfs",
            "import-layer",
        ])
        .stdin(std::fs::File::open(tar).ok()?)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).ok()?.trim().to_string();
    let gz = std::fs::read(root.join(format!("vfs-layers/{id}.tar-split.gz"))).ok()?;
    let mut rec = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut rec)
        .ok()?;
    Some((root.join("vfs/dir").join(&id), rec))
}

/// Root and the reference, for comparing records with it.
fn privileged_precondition(test: &str) -> bool {
    need_root(test) && reference(test).is_some()
}

/// Our record equals containers-storage's, byte for byte, for a GNU tar of
/// assorted entry types (hard link, FIFO, non-UTF-8 and HTML-ish names).
#[test]
fn privileged_record_matches_containers_storage() {
    let test = "privileged_record_matches_containers_storage";
    if !privileged_precondition(test) || !need_tool(test, "/usr/bin/tar") {
        return;
    }
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("d/sub")).unwrap();
    std::fs::write(src.join("d/a"), b"hello").unwrap();
    std::fs::write(src.join("d/big"), vec![b'x'; 70_000]).unwrap();
    std::fs::write(src.join("d/<&>"), b"").unwrap();
    std::fs::hard_link(src.join("d/a"), src.join("d/hl")).unwrap();
    std::os::unix::fs::symlink("a", src.join("d/sym")).unwrap();
    use std::os::unix::ffi::OsStrExt;
    std::fs::write(src.join(std::ffi::OsStr::from_bytes(b"d/n\xff")), b"raw").unwrap();
    std::fs::write(src.join(format!("d/sub/{}", "long".repeat(40))), b"long").unwrap();
    for format in ["gnu", "pax"] {
        let tar = dir.path().join(format!("{format}.tar"));
        let st = Command::new("tar")
            .args(["--format", format, "-cf"])
            .arg(&tar)
            .arg("-C")
            .arg(&src)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        let theirs =
            containers_storage_record(&tar, &dir.path().join(format!("store-{format}"))).unwrap();
        let (_, ours) = record(&std::fs::read(&tar).unwrap()).unwrap();
        assert!(
            ours == theirs,
            "{format}: records differ:\nours:\n{}\ntheirs:\n{}",
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }
}

/// A writer that only hashes and counts.
#[derive(Default)]
struct HashSink {
    hash: sha2::Sha256,
    n: u64,
}

impl std::io::Write for HashSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        self.hash.update(b);
        self.n += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// On the real corpus: apply each layer (overlay form), then replay its
/// tar-split record from the applied directory: the bytes are the input's.
/// For debian-minbase.tar our record also equals containers-storage's.
/// layer2.tar (700 MB) only runs in optimised builds.
#[test]
fn corpus_replay_from_applied_tree_is_exact() {
    let mut names = vec!["debian-minbase.tar", "layer-npm.tar"];
    if !cfg!(debug_assertions) {
        names.push("layer2.tar");
    }
    for name in names {
        let Some(corpus) = Corpus::find("corpus_replay_from_applied_tree_is_exact", &[name]) else {
            return;
        };
        let path = corpus.file(name);
        let dir = tempfile::Builder::new()
            .prefix("strata-tarsplit-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let layer = dir.path().join("layer");
        std::fs::create_dir(&layer).unwrap();
        let rec_path = dir.path().join("record.json");
        let rec_file = std::fs::File::create(&rec_path).unwrap();
        let root = std::fs::File::open(&layer).unwrap();
        let input = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        let report = strata_archive::apply_layer(
            std::os::fd::AsFd::as_fd(&root),
            input,
            strata_archive::ApplyOptions {
                ignore_chown_errors: true,
                tar_split: Some(Box::new(std::io::BufWriter::new(rec_file))),
                ..Default::default()
            },
        )
        .unwrap();
        let src = DirSource::new(&[&layer]).unwrap();
        let mut sink = HashSink::default();
        let rec = std::io::BufReader::new(std::fs::File::open(&rec_path).unwrap());
        replay(rec, &src, &mut sink).unwrap();
        use sha2::Digest;
        let got = format!("sha256:{}", hex::encode(sink.hash.finalize()));
        assert_eq!(sink.n, report.uncompressed_size, "{name}");
        assert_eq!(got, report.uncompressed_digest, "{name}");
        assert_eq!(
            report.uncompressed_size,
            std::fs::metadata(&path).unwrap().len()
        );
        if name == "debian-minbase.tar"
            && privileged_precondition("corpus_replay_from_applied_tree_is_exact")
        {
            let store = dir.path().join("store");
            let theirs = containers_storage_record(&path, &store).unwrap();
            let ours = std::fs::read(&rec_path).unwrap();
            assert!(
                ours == theirs,
                "record of {name} differs from containers-storage's"
            );
        }
    }
}
