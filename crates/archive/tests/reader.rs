//! The tar reader: formats (ustar, GNU, PAX, sparse), normalisation, and
//! malformed input (truncation, bad checksums, oversized records).

mod common;

use common::*;
use strata_archive::entry::{EntryKind, SparseRegion, Timestamp};
use strata_archive::reader::MAX_HEADER_RECORD;
use strata_archive::{Error, ErrorKind};
use tar::EntryType;

fn one(tar: &[u8]) -> Member {
    let ms = members(tar).unwrap();
    assert_eq!(ms.len(), 1, "{ms:?}");
    ms.into_iter().next().unwrap()
}

#[test]
fn entry_kinds_ustar_and_gnu() {
    for gnu_format in [true, false] {
        let mut out = Vec::new();
        let mk = |k, size| {
            if gnu_format {
                header(k, size)
            } else {
                ustar_header(k, size)
            }
        };
        let mut h = mk(EntryType::Regular, 5);
        set_name(&mut h, b"./etc/file");
        h.set_mode(0o104755);
        h.set_uid(1000);
        h.set_gid(2000);
        raw_member(&mut out, h, b"hello");
        let mut h = mk(EntryType::Directory, 0);
        set_name(&mut h, b"etc/dir/");
        raw_member(&mut out, h, b"");
        let mut h = mk(EntryType::Symlink, 0);
        set_name(&mut h, b"sym");
        h.set_link_name_literal("../target").unwrap();
        raw_member(&mut out, h, b"");
        let mut h = mk(EntryType::Link, 0);
        set_name(&mut h, b"hard");
        h.set_link_name_literal("./etc/file").unwrap();
        raw_member(&mut out, h, b"");
        for (k, name) in [(EntryType::Char, "c"), (EntryType::Block, "b")] {
            let mut h = mk(k, 0);
            set_name(&mut h, name.as_bytes());
            h.set_device_major(8).unwrap();
            h.set_device_minor(17).unwrap();
            raw_member(&mut out, h, b"");
        }
        let mut h = mk(EntryType::Fifo, 0);
        set_name(&mut h, b"fifo");
        raw_member(&mut out, h, b"");
        finish(&mut out);

        let ms = members(&out).unwrap();
        let got: Vec<(&[u8], &EntryKind)> = ms
            .iter()
            .map(|m| (&m.header.path[..], &m.header.kind))
            .collect();
        assert_eq!(
            got,
            vec![
                (&b"etc/file"[..], &EntryKind::File),
                (b"etc/dir", &EntryKind::Directory),
                (
                    b"sym",
                    &EntryKind::Symlink {
                        target: b"../target".to_vec()
                    }
                ),
                (
                    b"hard",
                    &EntryKind::HardLink {
                        target: b"etc/file".to_vec()
                    }
                ),
                (
                    b"c",
                    &EntryKind::CharDevice {
                        major: 8,
                        minor: 17
                    }
                ),
                (
                    b"b",
                    &EntryKind::BlockDevice {
                        major: 8,
                        minor: 17
                    }
                ),
                (b"fifo", &EntryKind::Fifo),
            ]
        );
        let f = &ms[0];
        assert_eq!(f.content, b"hello");
        assert_eq!(f.header.raw_path, b"./etc/file");
        assert_eq!(
            (f.header.mode, f.header.uid, f.header.gid),
            (0o4755, 1000, 2000)
        );
        assert_eq!(
            f.header.mtime,
            Timestamp {
                sec: 1_700_000_000,
                nsec: 0
            }
        );
        assert_eq!(f.header.size, 5);
        assert_eq!(ms[1].header.size, 0);
    }
}

#[test]
fn ustar_prefix_and_v7_directory() {
    let mut out = Vec::new();
    let mut h = ustar_header(EntryType::Regular, 1);
    set_name(&mut h, b"name");
    h.as_ustar_mut().unwrap().prefix[..6].copy_from_slice(b"a/pref");
    raw_member(&mut out, h, b"x");
    // V7: type '\0' and a trailing slash is a directory.
    let mut h = tar::Header::new_old();
    h.as_old_mut().linkflag = [0];
    set_name(&mut h, b"olddir/");
    raw_member(&mut out, h, b"");
    finish(&mut out);
    let ms = members(&out).unwrap();
    assert_eq!(ms[0].header.path, b"a/pref/name");
    assert_eq!(ms[1].header.kind, EntryKind::Directory);
    assert_eq!(ms[1].header.path, b"olddir");
}

#[test]
fn gnu_long_names_and_links() {
    let long = format!("{}/{}", "d".repeat(150), "f".repeat(120));
    let target = format!("{}/t", "t".repeat(200));
    let mut b = gnu();
    add_file(&mut b, &long, b"data");
    let mut h = header(EntryType::Symlink, 0);
    b.append_link(&mut h, &long[..120], &target).unwrap();
    let tar = b.into_inner().unwrap();
    assert!(tar.windows(13).any(|w| w == b"././@LongLink"));
    let ms = members(&tar).unwrap();
    assert_eq!(ms[0].header.path, long.as_bytes());
    assert_eq!(ms[0].content, b"data");
    assert_eq!(
        ms[1].header.kind,
        EntryKind::Symlink {
            target: target.into_bytes()
        }
    );
}

#[test]
fn pax_records_override_header_fields() {
    let mut out = Vec::new();
    let long = "p/".repeat(200) + "file";
    pax_member(
        &mut out,
        b'x',
        &[
            ("path", long.as_bytes()),
            ("uid", b"4000000000"),
            ("gid", b"77"),
            ("uname", b"someone"),
            ("gname", b"grp"),
            ("mtime", b"1432668921.098285006"),
            ("atime", b"-1.5"),
            ("size", b"3"),
            (
                "SCHILY.xattr.security.capability",
                b"\x01\x00\x00\x02\n\x00",
            ),
            ("SCHILY.xattr.user.empty", b""),
            ("comment", b"ignored"),
        ],
    );
    // The header's own size field is wrong on purpose: PAX wins.
    let mut h = ustar_header(EntryType::Regular, 999);
    set_name(&mut h, b"short");
    raw_member(&mut out, h, b"abc");
    finish(&mut out);
    let m = one(&out);
    let h = &m.header;
    assert_eq!(h.path, long.as_bytes());
    assert_eq!(h.raw_path, long.as_bytes());
    assert_eq!((h.uid, h.gid), (4_000_000_000, 77));
    assert_eq!(h.uname.as_deref(), Some(&b"someone"[..]));
    assert_eq!(h.gname.as_deref(), Some(&b"grp"[..]));
    assert_eq!(
        h.mtime,
        Timestamp {
            sec: 1432668921,
            nsec: 98_285_006
        }
    );
    assert_eq!(
        h.atime,
        Some(Timestamp {
            sec: -2,
            nsec: 500_000_000
        })
    );
    assert_eq!(m.content, b"abc");
    let names: Vec<_> = h
        .xattrs
        .iter()
        .map(|x| (&x.name[..], &x.value[..]))
        .collect();
    assert_eq!(
        names,
        vec![
            (&b"security.capability"[..], &b"\x01\x00\x00\x02\n\x00"[..]),
            (b"user.empty", b""),
        ]
    );
}

#[test]
fn pax_global_headers_create_nothing() {
    let mut out = Vec::new();
    pax_member(
        &mut out,
        b'g',
        &[("path", b"global-should-not-apply"), ("comment", b"x")],
    );
    let mut b = gnu();
    add_file(&mut b, "real", b"1");
    out.extend_from_slice(&b.into_inner().unwrap());
    let ms = members(&out).unwrap();
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0].header.path, b"real");
}

#[test]
fn base256_numbers() {
    let mut out = Vec::new();
    let mut h = header(EntryType::Regular, 2);
    set_name(&mut h, b"big");
    h.as_old_mut().uid = [0x80, 0, 0, 0, 0xee, 0x6b, 0x28, 0x00]; // 4_000_000_000
    h.as_old_mut().mtime = [0xff; 12]; // -1
    h.as_old_mut().mtime[11] = 0xfe; // -2
    raw_member(&mut out, h, b"hi");
    finish(&mut out);
    let m = one(&out);
    assert_eq!(m.header.uid, 4_000_000_000);
    assert_eq!(m.header.mtime.sec, -2);
}

/// Old GNU sparse ('S') with an extension block: 6 regions.
fn old_gnu_sparse() -> (Vec<u8>, Vec<SparseRegion>, u64) {
    let regions: Vec<SparseRegion> = (0..6)
        .map(|i| SparseRegion {
            offset: i * 10_000,
            length: 100 + i,
        })
        .collect();
    let logical = 70_000;
    let stored: u64 = regions.iter().map(|r| r.length).sum();
    let mut h = header(EntryType::GNUSparse, stored);
    set_name(&mut h, b"sparse");
    let g = h.as_gnu_mut().unwrap();
    for (slot, r) in g.sparse.iter_mut().zip(&regions) {
        slot.set_offset(r.offset);
        slot.set_length(r.length);
    }
    g.set_is_extended(true);
    g.set_real_size(logical);
    let mut out = Vec::new();
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    let mut ext = tar::GnuExtSparseHeader::new();
    for (slot, r) in ext.sparse.iter_mut().zip(&regions[4..]) {
        slot.set_offset(r.offset);
        slot.set_length(r.length);
    }
    out.extend_from_slice(ext.as_bytes());
    for (i, r) in regions.iter().enumerate() {
        out.extend(std::iter::repeat_n(b'a' + i as u8, r.length as usize));
    }
    pad(&mut out);
    finish(&mut out);
    (out, regions, logical)
}

fn expect_sparse(m: &Member, regions: &[SparseRegion], logical: u64) {
    assert_eq!(m.header.kind, EntryKind::File);
    assert_eq!(m.header.size, logical);
    assert_eq!(m.header.sparse.as_deref(), Some(regions));
    let mut want = vec![0u8; logical as usize];
    for (i, r) in regions.iter().enumerate() {
        want[r.offset as usize..(r.offset + r.length) as usize].fill(b'a' + i as u8);
    }
    assert!(m.content == want);
}

#[test]
fn sparse_old_gnu() {
    let (tar, regions, logical) = old_gnu_sparse();
    let m = one(&tar);
    assert_eq!(m.header.path, b"sparse");
    expect_sparse(&m, &regions, logical);
}

#[test]
fn sparse_pax_formats() {
    let regions = vec![
        SparseRegion {
            offset: 0,
            length: 3,
        },
        SparseRegion {
            offset: 5000,
            length: 700,
        },
        SparseRegion {
            offset: 9000,
            length: 0,
        },
    ];
    let logical = 9000u64;
    let data: Vec<u8> = regions
        .iter()
        .enumerate()
        .flat_map(|(i, r)| std::iter::repeat_n(b'a' + i as u8, r.length as usize))
        .collect();
    let map01 = "0,3,5000,700,9000,0";
    let map10 = "3\n0\n3\n5000\n700\n9000\n0\n";
    type Case<'a> = (&'a str, Vec<(&'a str, Vec<u8>)>, bool);
    let cases: Vec<Case> = vec![
        (
            "0.0",
            vec![
                ("GNU.sparse.size", b"9000".to_vec()),
                ("GNU.sparse.numblocks", b"3".to_vec()),
                ("GNU.sparse.offset", b"0".to_vec()),
                ("GNU.sparse.numbytes", b"3".to_vec()),
                ("GNU.sparse.offset", b"5000".to_vec()),
                ("GNU.sparse.numbytes", b"700".to_vec()),
                ("GNU.sparse.offset", b"9000".to_vec()),
                ("GNU.sparse.numbytes", b"0".to_vec()),
            ],
            false,
        ),
        (
            "0.1",
            vec![
                ("GNU.sparse.size", b"9000".to_vec()),
                ("GNU.sparse.numblocks", b"3".to_vec()),
                ("GNU.sparse.name", b"real/name".to_vec()),
                ("GNU.sparse.map", map01.as_bytes().to_vec()),
            ],
            false,
        ),
        (
            "1.0",
            vec![
                ("GNU.sparse.major", b"1".to_vec()),
                ("GNU.sparse.minor", b"0".to_vec()),
                ("GNU.sparse.name", b"real/name".to_vec()),
                ("GNU.sparse.realsize", b"9000".to_vec()),
            ],
            true,
        ),
    ];
    for (label, recs, map_in_data) in cases {
        let mut out = Vec::new();
        let recs: Vec<(&str, &[u8])> = recs.iter().map(|(k, v)| (*k, &v[..])).collect();
        pax_member(&mut out, b'x', &recs);
        let mut content = Vec::new();
        if map_in_data {
            content.extend_from_slice(map10.as_bytes());
            pad(&mut content);
        }
        content.extend_from_slice(&data);
        let mut h = ustar_header(EntryType::Regular, content.len() as u64);
        set_name(&mut h, b"GNUSparseFile.0/name");
        raw_member(&mut out, h, &content);
        finish(&mut out);
        let m = one(&out);
        let want_path: &[u8] = if label == "0.0" {
            b"GNUSparseFile.0/name"
        } else {
            b"real/name"
        };
        assert_eq!(m.header.path, want_path, "{label}");
        expect_sparse(&m, &regions, logical);
    }
}

#[test]
fn sparse_maps_that_lie_are_invalid() {
    // Region beyond the logical size.
    let (mut tar, _, _) = old_gnu_sparse();
    {
        let h = tar::Header::from_byte_slice(&tar[..512]).clone();
        let mut h = h;
        h.as_gnu_mut().unwrap().set_real_size(100);
        h.set_cksum();
        tar[..512].copy_from_slice(h.as_bytes());
    }
    let err = members(&tar).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("invalid tar header"), "{err}");
}

#[test]
fn oversized_header_records_are_refused() {
    for kind in [b'x', b'L', b'K', b'g'] {
        let mut out = Vec::new();
        let mut h = ustar_header(EntryType::new(kind), MAX_HEADER_RECORD + 1);
        set_name(&mut h, b"huge");
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        // No body needed: the size alone is refused before reading it.
        let err = members(&out).unwrap_err();
        assert!(matches!(err, Error::HeaderTooLarge { .. }), "{kind}: {err}");
        assert!(err.to_string().contains("invalid tar header"));
    }
    // Many records, each under the limit, are capped as a whole.
    let mut out = Vec::new();
    let body = vec![b'a'; 1000];
    let rec = pax_body(&[("comment", &body)]);
    for _ in 0..5000 {
        let mut h = ustar_header(EntryType::XHeader, rec.len() as u64);
        set_name(&mut h, b"x");
        raw_member(&mut out, h, &rec);
    }
    let err = members(&out).unwrap_err();
    assert!(matches!(err, Error::HeaderTooLarge { .. }), "{err}");
}

fn sample_tar() -> Vec<u8> {
    let mut b = gnu();
    add_file(&mut b, "a", b"hello world");
    add_file(&mut b, &"long/".repeat(40), &[7u8; 1500]);
    let mut h = header(EntryType::Directory, 0);
    b.append_data(&mut h, "dir/", std::io::empty()).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn every_truncation_is_an_eof_error_or_a_clean_member_boundary() {
    let tar = sample_tar();
    let full = members(&tar).unwrap();
    for cut in 0..tar.len() {
        match members(&tar[..cut]) {
            Ok(ms) => {
                // Accepted only where a member (and nothing partial) ends,
                // as Go's reader does: then it is a prefix of the members.
                assert!(ms.len() <= full.len());
                assert_eq!(ms[..], full[..ms.len()], "cut {cut}");
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("unexpected EOF") || msg.contains("invalid tar header"),
                    "cut {cut}: {msg}"
                );
            }
        }
    }
}

#[test]
fn garbage_is_an_invalid_header() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text", b"hello world, this is not a tar".repeat(40)),
        ("checksum", {
            let mut t = sample_tar();
            t[0] ^= 1;
            t
        }),
        ("zero then junk", {
            let mut t = vec![0u8; 512];
            t.extend_from_slice(&[1u8; 512]);
            t
        }),
        ("bad octal", {
            let mut t = sample_tar();
            t[124] = b'9';
            let mut h = tar::Header::from_byte_slice(&t[..512]).clone();
            h.set_cksum();
            t[..512].copy_from_slice(h.as_bytes());
            t
        }),
    ];
    for (label, bytes) in cases {
        let err = members(&bytes).unwrap_err();
        assert!(matches!(err, Error::InvalidHeader(_)), "{label}: {err}");
        assert!(err.to_string().contains("invalid tar header"));
    }
    // Short junk is an unexpected EOF, as with Go.
    let err = members(b"hello world").unwrap_err();
    assert!(matches!(err, Error::UnexpectedEof(_)), "{err}");
}

#[test]
fn empty_input_and_trailing_bytes() {
    assert!(members(b"").unwrap().is_empty());
    assert!(members(&[0u8; 1024]).unwrap().is_empty());
    let mut t = sample_tar();
    t.extend_from_slice(b"trailing garbage after the end marker");
    assert_eq!(members(&t).unwrap().len(), 3);
}

#[test]
fn unknown_types_are_unsupported() {
    let mut out = Vec::new();
    let mut h = header(EntryType::new(b'V'), 0);
    set_name(&mut h, b"label");
    raw_member(&mut out, h, b"");
    finish(&mut out);
    let err = members(&out).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}

#[test]
fn large_files_come_in_bounded_chunks() {
    let data: Vec<u8> = (0..3 * strata_archive::entry::CHUNK + 17)
        .map(|i| (i % 251) as u8)
        .collect();
    let mut b = gnu();
    add_file(&mut b, "big", &data);
    let tar = b.into_inner().unwrap();
    let mut reader = strata_archive::reader::Reader::new(std::io::Cursor::new(&tar));
    let mut chunks = 0;
    while let Some(item) = reader.next_item().unwrap() {
        if let strata_archive::entry::Item::Data { bytes, .. } = item {
            assert!(bytes.len() <= strata_archive::entry::CHUNK);
            chunks += 1;
        }
    }
    assert_eq!(chunks, 4);
    assert_eq!(one(&tar).content, data);
}
