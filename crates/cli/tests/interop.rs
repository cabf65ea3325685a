//! Interoperability with Debian's `containers-storage` 1.43 on real Debian
//! content: a store written by one tool is read and used by the other, and
//! both can take turns on one store.
//!
//! The base layer is `$STRATA_CORPUS/debian-minbase.tar` when set, else a
//! tar of real files from this machine's /usr/share.

mod common;

use std::path::Path;

use common::{first_line, have_reference, is_root, top_tar, Env};

fn sorted(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// Which tool writes and which reads.
#[derive(Clone, Copy)]
enum Writer {
    Strata,
    Reference,
}

fn run_as(e: &Env, who: Writer, args: &[&str], input: &[u8]) -> String {
    match who {
        Writer::Strata => e.ok_in(args, input),
        Writer::Reference => {
            let o = e.reference_in(args, input);
            assert!(
                o.status.success(),
                "reference {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8(o.stdout).unwrap()
        }
    }
}

/// Whether the reader mounts the writer's container layer.
#[derive(Clone, Copy, PartialEq)]
enum Remount {
    Check,
    Skip,
}

fn one_writes_other_reads(driver: &str, writer: Writer, remount: Remount) {
    let reader = match writer {
        Writer::Strata => Writer::Reference,
        Writer::Reference => Writer::Strata,
    };
    let e = Env::new(driver);
    let tar_path = common::real_tar(e.dir.path());
    let tar = std::fs::read(&tar_path).unwrap();
    let base = first_line(&run_as(&e, writer, &["import-layer", "-n", "debian"], &tar));
    let top = first_line(&run_as(
        &e,
        writer,
        &["import-layer", base.as_str()],
        &top_tar(),
    ));
    let ctr = first_line(&run_as(
        &e,
        writer,
        &["create-layer", "-n", "ctr", top.as_str()],
        b"",
    ));
    // (The reference mounts by ID only: given a name it asks its driver
    // for a layer of that name.)
    let m = run_as(&e, writer, &["mount", ctr.as_str()], b"");
    let m = Path::new(m.trim_end());
    std::fs::write(m.join("etc/written-by-writer"), "hello\n").unwrap();
    std::fs::remove_file(m.join("etc/motd")).unwrap();
    run_as(&e, writer, &["unmount", ctr.as_str()], b"");

    // The reader lists the same layers.
    assert_eq!(
        run_as(&e, reader, &["layers"], b""),
        run_as(&e, writer, &["layers"], b"")
    );
    assert_eq!(
        run_as(&e, reader, &["layers", "-t"], b""),
        run_as(&e, writer, &["layers", "-t"], b"")
    );
    let wj: serde_json::Value =
        serde_json::from_str(&run_as(&e, writer, &["layers", "-j"], b"")).unwrap();
    let rj: serde_json::Value =
        serde_json::from_str(&run_as(&e, reader, &["layers", "-j"], b"")).unwrap();
    assert_eq!(wj, rj);
    // Same changes (as sets: the reference lists them in directory order).
    for l in [&ctr, &top] {
        assert_eq!(
            sorted(&run_as(&e, reader, &["changes", l.as_str()], b"")),
            sorted(&run_as(&e, writer, &["changes", l.as_str()], b"")),
            "changes of {l}"
        );
    }
    // The diff of the imported layer is the original tar, byte for byte.
    let d = match reader {
        Writer::Strata => e.strata(&["diff", "-u", base.as_str()]),
        Writer::Reference => e.reference(&["diff", "-u", base.as_str()]),
    };
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    assert!(
        d.stdout == tar,
        "diff of the imported layer differs from the tar"
    );
    // It mounts the child and sees the files.
    if remount == Remount::Skip {
        e.strata(&["shutdown", "-f"]);
        return;
    }
    let m = run_as(&e, reader, &["mount", ctr.as_str()], b"");
    let m = Path::new(m.trim_end());
    assert_eq!(
        std::fs::read_to_string(m.join("etc/written-by-writer")).unwrap(),
        "hello\n"
    );
    assert!(!m.join("etc/motd").exists());
    assert_eq!(
        std::fs::read_to_string(m.join("etc/new")).unwrap(),
        "new file\n"
    );
    run_as(&e, reader, &["unmount", ctr.as_str()], b"");
    // The reader can delete what the writer made.
    run_as(&e, reader, &["delete-layer", ctr.as_str()], b"");
    assert!(!run_as(&e, writer, &["layers"], b"").contains(&ctr));
    e.strata(&["shutdown", "-f"]);
}

fn alternate(driver: &str) {
    let e = Env::new(driver);
    let s = Writer::Strata;
    let r = Writer::Reference;
    run_as(
        &e,
        s,
        &["import-layer", "--id", "base"],
        &common::small_tar(),
    );
    run_as(&e, r, &["create-layer", "--id", "c1", "base"], b"");
    assert!(run_as(&e, s, &["layers"], b"").contains("c1\n"));
    run_as(
        &e,
        s,
        &["create-layer", "--id", "c2", "-n", "two", "base"],
        b"",
    );
    assert!(run_as(&e, r, &["layers"], b"").contains("c2\n\tname: two\n"));
    let p1 = run_as(&e, s, &["mount", "c1"], b"");
    assert_eq!(run_as(&e, r, &["mount", "c1"], b""), p1);
    std::fs::write(Path::new(p1.trim_end()).join("x"), "x").unwrap();
    assert_eq!(run_as(&e, r, &["unmount", "c1"], b""), "");
    assert_eq!(run_as(&e, s, &["mounted", "c1"], b""), "c1 mounted\n");
    assert_eq!(
        run_as(&e, s, &["unmount", "c1"], b""),
        "c1 mountpoint unmounted\n"
    );
    assert_eq!(run_as(&e, r, &["mounted", "c1"], b""), "");
    assert!(run_as(&e, r, &["changes", "c1"], b"").contains("Add \"/x\""));
    run_as(&e, r, &["set-names", "-n", "one", "c1"], b"");
    assert_eq!(run_as(&e, s, &["get-names", "c1"], b""), "one\n");
    run_as(&e, s, &["set-metadata", "-m", "meta", "c1"], b"");
    assert_eq!(run_as(&e, r, &["metadata", "-q", "c1"], b""), "meta\n");
    run_as(&e, r, &["delete-layer", "c2"], b"");
    assert!(!run_as(&e, s, &["layers"], b"").contains("c2"));
    run_as(&e, s, &["delete-layer", "c1"], b"");
    assert_eq!(run_as(&e, r, &["layers"], b""), "base\n");
    run_as(&e, r, &["wipe"], b"");
    assert_eq!(run_as(&e, s, &["layers"], b""), "");
    e.strata(&["shutdown", "-f"]);
}

macro_rules! interop {
    ($(#[$m:meta])* $name:ident, $body:expr) => {
        #[test]
        $(#[$m])*
        fn $name() {
            if is_root() && have_reference() {
                $body;
            }
        }
    };
}

interop!(
    privileged_interop_vfs_strata_writes,
    one_writes_other_reads("vfs", Writer::Strata, Remount::Check)
);
interop!(
    privileged_interop_vfs_reference_writes,
    one_writes_other_reads("vfs", Writer::Reference, Remount::Check)
);
interop!(privileged_interop_vfs_alternate, alternate("vfs"));
interop!(
    privileged_interop_overlay_strata_writes,
    one_writes_other_reads("overlay", Writer::Strata, Remount::Check)
);
// The reference removes `merged/` when it unmounts; strata's overlay
// driver makes it again before mounting.
interop!(
    privileged_interop_overlay_reference_writes,
    one_writes_other_reads("overlay", Writer::Reference, Remount::Check)
);
interop!(
    privileged_interop_overlay_reference_writes_no_remount,
    one_writes_other_reads("overlay", Writer::Reference, Remount::Skip)
);
interop!(privileged_interop_overlay_alternate, alternate("overlay"));

/// Both tools writing at the same time: the fcntl locks serialise them and
/// no record is lost.
#[test]
fn concurrent_writers_lose_nothing() {
    if !have_reference() {
        return;
    }
    let e = Env::new("vfs");
    e.ok(&["create-layer", "--id", "base"]);
    std::thread::scope(|sc| {
        for i in 0..6 {
            let e = &e;
            sc.spawn(move || {
                let id = format!("l{i}");
                let args = [
                    "create-layer",
                    "--id",
                    id.as_str(),
                    "-n",
                    id.as_str(),
                    "base",
                ];
                if i % 2 == 0 {
                    e.ok(&args);
                } else {
                    let o = e.reference(&args);
                    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                }
                let names = ["set-names", "-n", "x", id.as_str()];
                if i % 2 == 0 {
                    let o = e.reference(&names);
                    assert!(o.status.success());
                } else {
                    e.ok(&names);
                }
            });
        }
    });
    let v = e.layers_json();
    assert_eq!(v.as_array().unwrap().len(), 7, "{v}");
    // Exactly one layer ends up with the contested name.
    let with_x = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            l["names"]
                .as_array()
                .is_some_and(|n| n.contains(&"x".into()))
        })
        .count();
    assert_eq!(with_x, 1, "{v}");
    let listing = e.ok(&["layers"]);
    assert_eq!(listing, e.ref_ok(&["layers"]));
}
