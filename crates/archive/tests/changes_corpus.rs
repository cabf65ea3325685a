//! Real data (gated by `STRATA_CORPUS`): debian-minbase with layer2 on top,
//! both imported by the reference into a vfs store; strata's changes and
//! size of the two trees against the reference's `changes` and `diffsize`.

mod changes_util;

use std::time::Instant;

use std::path::{Path, PathBuf};

use changes_util::*;
use strata_archive::changes::{
    changes_between, changes_size, export_changes, export_overlay_upper, overlay_changes, Change,
    ExportOptions,
};
use strata_archive::OpaqueXattr;
use strata_testsupport::Corpus;
use strata_testsupport::ReferenceStore as Reference;

#[test]
fn privileged_corpus_layer2_changes_match_reference() {
    let test = "privileged_corpus_layer2_changes_match_reference";
    let Some(corpus) = Corpus::find(test, &["debian-minbase.tar", "layer2.tar"]) else {
        return;
    };
    if !can_run_reference(test) {
        return;
    }
    let tmp = strata_testsupport::Scratch::new("strata-changes-corpus-");
    let cs = Reference::new(tmp.path(), "vfs");
    let base = cs.import_file(&corpus.file("debian-minbase.tar"), None);
    let layer = cs.import_file(&corpus.file("layer2.tar"), Some(&base));
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
    // Without its tar-split record the reference runs its driver's diff
    // instead of replaying the imported bytes.
    std::fs::remove_file(cs.graph.join(format!("vfs-layers/{layer}.tar-split.gz")))
        .expect("remove tar-split");
    cs.run_to_file(&["diff", &layer], &theirs_tar);
    eprintln!(
        "layer2 diff: strata {t_ours:?}, containers-storage {:?}",
        t.elapsed()
    );
    let count = compare_archives(&ours_tar, &theirs_tar);
    eprintln!("layer2 diff: {count} members identical");

    // Our export applied by the reference onto a fresh child is layer2.
    let again = cs.create_child(&base);
    cs.applydiff_file(&again, &ours_tar);
    assert_same_tree(
        &snapshot(&dir(&layer), false),
        &snapshot(&dir(&again), false),
    );
}

/// Equal texts, else a short report: lines only on one side, first
/// position where the order differs.
fn assert_same_lines(ours: &str, theirs: &str) {
    if ours == theirs {
        return;
    }
    let a: Vec<&str> = ours.lines().collect();
    let b: Vec<&str> = theirs.lines().collect();
    let sa: std::collections::HashSet<&str> = a.iter().copied().collect();
    let sb: std::collections::HashSet<&str> = b.iter().copied().collect();
    let only_a: Vec<&&str> = a.iter().filter(|l| !sb.contains(*l)).take(20).collect();
    let only_b: Vec<&&str> = b.iter().filter(|l| !sa.contains(*l)).take(20).collect();
    let first = a.iter().zip(&b).position(|(x, y)| x != y);
    panic!(
        "changes differ ({} vs {} lines)\nonly ours: {only_a:?}\nonly theirs: {only_b:?}\nfirst order difference at {first:?}: {:?}",
        a.len(),
        b.len(),
        first.map(|i| (&a[i.saturating_sub(2)..(i + 3).min(a.len())], &b[i.saturating_sub(2)..(i + 3).min(b.len())]))
    );
}

/// Compares two archives member by member; returns the member count.
fn compare_archives(ours: &Path, theirs: &Path) -> usize {
    let mut a = std::io::BufReader::new(std::fs::File::open(ours).expect("open"));
    let mut b = std::io::BufReader::new(std::fs::File::open(theirs).expect("open"));
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
    count
}

#[test]
fn privileged_corpus_layer2_overlay_matches_reference() {
    let test = "privileged_corpus_layer2_overlay_matches_reference";
    let Some(corpus) = Corpus::find(test, &["debian-minbase.tar", "layer2.tar"]) else {
        return;
    };
    if !can_run_reference(test) {
        return;
    }
    let tmp = strata_testsupport::Scratch::new("strata-changes-corpus-");
    let cs = Reference::new(tmp.path(), "overlay");
    let base = cs.import_file(&corpus.file("debian-minbase.tar"), None);
    let layer = cs.import_file(&corpus.file("layer2.tar"), Some(&base));
    let overlay = cs.graph.join("overlay");
    let upper = overlay.join(&layer).join("diff");
    let lower = std::fs::read_to_string(overlay.join(&layer).join("lower")).expect("lower");
    let lowers: Vec<PathBuf> = lower
        .trim()
        .split(':')
        .map(|l| std::fs::canonicalize(overlay.join(l)).expect("lower link"))
        .collect();

    let t = Instant::now();
    let theirs = String::from_utf8(cs.run(&["changes", &layer])).expect("utf-8");
    let t_ref = t.elapsed();
    let t = Instant::now();
    let ours = overlay_changes(&upper, &lowers, OpaqueXattr::Trusted).expect("changes");
    let t_ours = t.elapsed();
    eprintln!(
        "layer2 overlay changes: {} entries; strata {t_ours:?}, containers-storage {t_ref:?}",
        ours.len()
    );
    let text: String = ours.iter().map(|c| c.to_line() + "\n").collect();
    assert_same_lines(&text, &theirs);

    let size: u64 = cs.run_line(&["diffsize", &layer]).parse().expect("number");
    assert_eq!(changes_size(&upper, &ours).expect("size"), size);

    let (ours_tar, theirs_tar) = (tmp.path().join("ours.tar"), tmp.path().join("theirs.tar"));
    let t = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&ours_tar).expect("create"));
    export_overlay_upper(&upper, &lowers, &ExportOptions::default(), &mut out).expect("export");
    drop(out);
    let t_ours = t.elapsed();
    let t = Instant::now();
    std::fs::remove_file(
        cs.graph
            .join(format!("overlay-layers/{layer}.tar-split.gz")),
    )
    .expect("remove tar-split");
    cs.run_to_file(&["diff", &layer], &theirs_tar);
    eprintln!(
        "layer2 overlay diff: strata {t_ours:?}, containers-storage {:?}",
        t.elapsed()
    );
    let count = compare_archives(&ours_tar, &theirs_tar);
    eprintln!("layer2 overlay diff: {count} members identical");
}
