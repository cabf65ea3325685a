//! Read + apply of arbitrary (uncompressed) tar streams, in both apply
//! modes, into a fresh directory: no panic, and nothing outside the layer
//! root changes.

#![no_main]

use std::io::Cursor;
use std::os::fd::AsFd;
use std::path::Path;

use strata_archive::{apply_layer, ApplyMode, ApplyOptions, Compression};
use libfuzzer_sys::fuzz_target;

fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            // Directory sizes change as entries are added; file sizes don't.
            (e.path(), if m.is_file() { m.len() } else { 0 })
        })
        .collect();
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    // Decoders have their own target; here bombs would only cost time.
    if data.is_empty() || Compression::detect(&data[1..]) != Compression::None {
        return;
    }
    let mode = if data[0] & 1 == 0 {
        ApplyMode::FullTree
    } else {
        ApplyMode::default()
    };
    let outer = tempfile::Builder::new()
        .prefix("strata-fuzz-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::write(outer.path().join("sentinel"), b"keep").unwrap();
    let root_path = outer.path().join("root");
    std::fs::create_dir(&root_path).unwrap();
    let before = snapshot(outer.path());
    let root = std::fs::File::open(&root_path).unwrap();
    let _ = apply_layer(
        root.as_fd(),
        Cursor::new(data[1..].to_vec()),
        ApplyOptions {
            mode,
            ignore_chown_errors: true,
            tar_split: Some(Box::new(std::io::sink())),
            ..Default::default()
        },
    );
    assert_eq!(snapshot(outer.path()), before, "something changed outside the root");
    assert_eq!(std::fs::read(outer.path().join("sentinel")).unwrap(), b"keep");
});
