//! Real data (gated by `STRATA_CORPUS`): debian-minbase with layer2 on top,
//! both imported by the reference into a vfs store; strata's changes and
//! size of the two trees against the reference's `changes` and `diffsize`.

mod changes_util;

use std::time::Instant;

use archive::changes::{changes_between, changes_size, export_changes, Change, ExportOptions};
use changes_util::*;

#[test]
fn privileged_corpus_layer2_changes_match_reference() {
    let test = "privileged_corpus_layer2_changes_match_reference";
    let Some(corpus) = corpus(test, &["debian-minbase.tar", "layer2.tar"]) else {
        return;
    };
    if !can_run_reference(test) {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("strata-changes-corpus-")
        .tempdir_in("/var/tmp")
        .expect("tempdir");
    let cs = Reference::new(tmp.path(), "vfs");
    let base = cs.import_file(&corpus.join("debian-minbase.tar"), None);
    let layer = cs.import_file(&corpus.join("layer2.tar"), Some(&base));
    let dir = |id: &str| cs.graph.join("vfs/dir").join(id);

    let t = Instant::now();
    let theirs = String::from_utf8(cs.run(&["changes", &layer])).expect("utf-8");
    let t_ref = t.elapsed();
    let t = Instant::now();
    let ours = changes_between(&dir(&layer), Some(&dir(&base))).expect("changes");
    let t_ours = t.elapsed();
    eprintln!(
        "layer2 changes: {} entries; strata {:?}, containers-storage {:?}",
        ours.len(),
        t_ours,
        t_ref
    );
    let mut theirs: Vec<Change> = parse_lines(&theirs);
    theirs.sort_by_key(canonical_key);
    let text = |v: &[Change]| v.iter().map(|c| c.to_line() + "\n").collect::<String>();
    assert_eq!(text(&ours), text(&theirs));

    let size: u64 = cs.run_line(&["diffsize", &layer]).parse().expect("number");
    assert_eq!(changes_size(&dir(&layer), &ours).expect("size"), size);

    // diff: the same members, byte for byte (whiteout times masked).
    let (ours_tar, theirs_tar) = (tmp.path().join("ours.tar"), tmp.path().join("theirs.tar"));
    let t = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&ours_tar).expect("create"));
    export_changes(&dir(&layer), &ours, &ExportOptions::default(), &mut out).expect("export");
    drop(out);
    let t_ours = t.elapsed();
    let t = Instant::now();
    cs.run_to_file(&["diff", &layer], &theirs_tar);
    eprintln!(
        "layer2 diff: strata {t_ours:?}, containers-storage {:?}",
        t.elapsed()
    );
    let mut a = std::io::BufReader::new(std::fs::File::open(&ours_tar).expect("open"));
    let mut b = std::io::BufReader::new(std::fs::File::open(&theirs_tar).expect("open"));
    let mut count = 0;
    loop {
        match (next_member(&mut a), next_member(&mut b)) {
            (None, None) => break,
            (Some(mut x), Some(mut y)) => {
                mask_whiteout(&mut x);
                mask_whiteout(&mut y);
                assert_eq!(
                    String::from_utf8_lossy(&x.name),
                    String::from_utf8_lossy(&y.name)
                );
                assert!(
                    x.raw == y.raw,
                    "member {} differs",
                    String::from_utf8_lossy(&x.name)
                );
                count += 1;
            }
            (x, y) => panic!(
                "one archive ends first: {:?} {:?}",
                x.map(|m| m.name),
                y.map(|m| m.name)
            ),
        }
    }
    eprintln!("layer2 diff: {count} members identical");

    // Our export applied by the reference onto a fresh child is layer2.
    let again = cs.create_child(&base);
    cs.applydiff_file(&again, &ours_tar);
    assert_same_tree(
        &snapshot(&dir(&layer), false),
        &snapshot(&dir(&again), false),
    );
}
