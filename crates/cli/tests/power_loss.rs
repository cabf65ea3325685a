//! Power loss, simulated: every layer operation runs on crashfs (see
//! `crates/crashfs`), the power is cut before each of its sync points,
//! between them, and after it returned; then the store is opened again as
//! after a reboot.
//!
//! - with `sync=filesystem`: the store opens, `check` is clean, and an
//!   operation that reported success is there with its full data;
//! - by default (no syncs, as the reference): `check --repair` always
//!   brings the store to a clean state and keeps every intact layer;
//! - the same cuts against the store files the reference writes: what it
//!   loses, and that `check --repair` repairs it into a store it reads.
//!
//! Each run prints one line per operation (cuts, outcomes); with
//! `STRATA_POWER_REPORT=<file>` the lines are appended there too.

mod power_support;

use power_support::{cut_points, layer_tar, report_line, sha, Lab, Step, Sync, Tool, REFERENCE};
use strata_crashfs::{Ended, Model, Tree};

const BASE: &str = "b1b2b3b4b5b6b7b8b9b0b1b2b3b4b5b6b7b8b9b0b1b2b3b4b5b6b7b8b9b0b1b2";
const NEW: &str = "c1c2c3c4c5c6c7c8c9c0c1c2c3c4c5c6c7c8c9c0c1c2c3c4c5c6c7c8c9c0c1c2";

fn need_root_and_fuse() -> bool {
    let root = rustix::process::geteuid().is_root();
    let fuse = std::path::Path::new("/dev/fuse").exists();
    if root && fuse {
        return true;
    }
    let why = format!("needs root and /dev/fuse (root: {root}, /dev/fuse: {fuse})");
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but this test {why}"
    );
    eprintln!("skipping: {why}");
    false
}

/// What an operation should leave when it reported success.
#[derive(Debug, Clone)]
enum Effect {
    /// Layer NEW whose diff is this tar.
    Imported(Vec<u8>),
    /// Layer NEW exists.
    Created,
    /// Layer NEW is gone.
    Deleted,
    /// BASE's metadata.
    Metadata(String),
    /// BASE's data item `key`.
    Data(Vec<u8>),
}

struct Op {
    name: &'static str,
    setup: Vec<Step>,
    /// Run one after the other; the operation succeeded when all did.
    steps: Vec<Step>,
    effect: Effect,
}

fn ops(lab: &Lab) -> Vec<Op> {
    let base_tar = lab.file("base.tar", &layer_tar(3));
    let new_bytes = layer_tar(5);
    let new_tar = lab.file("new.tar", &new_bytes);
    let data = lab.file("item", b"big data item\n");
    let base = || Step::new(&["import-layer", "-i", BASE]).stdin(&base_tar);
    vec![
        Op {
            // The classic loss: a later operation's fsync commits the
            // import's record while the layer's files were never synced.
            name: "import, set-names",
            setup: vec![base()],
            steps: vec![
                Step::new(&["import-layer", "-i", NEW]).stdin(&new_tar),
                Step::new(&["set-names", "-n", "named", BASE]),
            ],
            effect: Effect::Imported(layer_tar(5)),
        },
        Op {
            name: "import-layer",
            setup: vec![],
            steps: vec![Step::new(&["import-layer", "-i", NEW]).stdin(&new_tar)],
            effect: Effect::Imported(new_bytes.clone()),
        },
        Op {
            name: "import-layer (child)",
            setup: vec![base()],
            steps: vec![Step::new(&["import-layer", "-i", NEW, BASE]).stdin(&new_tar)],
            effect: Effect::Imported(new_bytes),
        },
        Op {
            name: "create-layer",
            setup: vec![base()],
            steps: vec![Step::new(&["create-layer", "-i", NEW, BASE])],
            effect: Effect::Created,
        },
        Op {
            name: "delete-layer",
            setup: vec![base(), Step::new(&["create-layer", "-i", NEW, BASE])],
            steps: vec![Step::new(&["delete-layer", NEW])],
            effect: Effect::Deleted,
        },
        Op {
            name: "set-metadata",
            setup: vec![base()],
            steps: vec![Step::new(&["set-metadata", "-m", "meta two", BASE])],
            effect: Effect::Metadata("meta two".into()),
        },
        Op {
            name: "set-layer-data",
            setup: vec![base()],
            steps: vec![Step::new(&[
                "set-layer-data",
                "-f",
                data.to_str().unwrap(),
                BASE,
                "key",
            ])],
            effect: Effect::Data(b"big data item\n".to_vec()),
        },
    ]
}

/// Whether the operation's effect is in the store (read with strata).
fn effect_present(lab: &Lab, e: &Effect) -> bool {
    let st = |args: &[&str]| lab.run(Tool::Strata, Sync::None, &Step::new(args));
    match e {
        Effect::Imported(tar) => {
            let o = st(&["diff", "-u", NEW]);
            o.status.success() && sha(&o.stdout) == sha(tar)
        }
        Effect::Created => st(&["exists", NEW]).status.success(),
        Effect::Deleted => !st(&["exists", NEW]).status.success(),
        Effect::Metadata(m) => {
            let o = st(&["metadata", "-q", BASE]);
            String::from_utf8_lossy(&o.stdout).trim_end() == m
        }
        Effect::Data(d) => st(&["get-layer-data", BASE, "key"]).stdout == *d,
    }
}

/// Tallies of one operation's cuts.
#[derive(Debug, Default)]
struct Tally {
    cuts: usize,
    clean: usize,
    repaired: usize,
    completed: usize,
    lost_after_success: usize,
    reference_unreadable: usize,
    /// What check found, IDs and paths left out.
    kinds: std::collections::BTreeSet<String>,
    failures: Vec<String>,
}

/// A finding with IDs and paths taken out, to count kinds.
fn kind_of(problem: &str) -> String {
    problem
        .split(' ')
        .map(|w| {
            let w = w.trim_matches(|c| c == '"' || c == ',');
            if w.starts_with('/') || w.starts_with("l/") {
                "<path>"
            } else if w.len() >= 12 && w.bytes().all(|b| b.is_ascii_hexdigit()) {
                "<id>"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

struct Run {
    writer: Tool,
    sync: Sync,
    model: Model,
}

fn exercise(run: &Run) -> Vec<String> {
    let lab = Lab::new();
    let base_tar = layer_tar(3);
    let mut failures = Vec::new();
    for op in ops(&lab) {
        let base: Tree = lab.prepare(run.writer, &op.setup);
        let fs = lab.mount(base.clone(), run.model);
        let ended = run_steps(&lab, &fs, run, &op.steps);
        let counts = fs.counts();
        drop(fs.shut_down());
        lab.reboot();
        assert_eq!(ended, Ended::Exited(0), "{} did not run uncut", op.name);
        let mut t = Tally::default();
        for cut in cut_points(&counts) {
            t.cuts += 1;
            let fs = lab.mount(base.clone(), run.model);
            fs.set_cut(cut);
            let ended = run_steps(&lab, &fs, run, &op.steps);
            let durable = fs.power_cut().unwrap();
            lab.reboot();
            let fs = lab.mount(durable, run.model);
            let what = format!("{} {cut:?}", op.name);
            after_cut(&lab, run, &op, ended, &base_tar, &mut t, &what);
            drop(fs.shut_down());
            lab.reboot();
        }
        report_line(&format!(
            "power-loss writer={:?} sync={:?} model={:?} op={:<22} syncs={:>3} changes={:>4} cuts={:>3} \
             clean={:>3} repaired={:>3} completed={:>3} lost-after-success={:>3} reference-unreadable={:>3} failures={} found={:?}",
            run.writer,
            run.sync,
            run.model,
            op.name,
            counts.syncs,
            counts.ops,
            t.cuts,
            t.clean,
            t.repaired,
            t.completed,
            t.lost_after_success,
            t.reference_unreadable,
            t.failures.len(),
            t.kinds
        ));
        failures.append(&mut t.failures);
    }
    failures
}

/// Runs the steps traced until one fails or the power is cut.
fn run_steps(lab: &Lab, fs: &strata_crashfs::CrashFs, run: &Run, steps: &[Step]) -> Ended {
    let mut ended = Ended::Exited(0);
    for step in steps {
        ended = lab.run_traced(fs, run.writer, run.sync, step).0;
        if ended != Ended::Exited(0) || fs.is_dead() {
            break;
        }
    }
    ended
}

fn after_cut(
    lab: &Lab,
    run: &Run,
    op: &Op,
    ended: Ended,
    base_tar: &[u8],
    t: &mut Tally,
    what: &str,
) {
    let st = |args: &[&str]| lab.run(Tool::Strata, Sync::None, &Step::new(args));
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let succeeded = ended == Ended::Exited(0);
    if succeeded {
        t.completed += 1;
    }
    if run.sync == Sync::Filesystem {
        // A normal open finishes what an interrupted writer left.
        let o = st(&["layers"]);
        if !o.status.success() {
            t.failures
                .push(format!("{what}: store does not open: {}", text(&o)));
            return;
        }
        let o = st(&["check"]);
        if !o.status.success() {
            t.failures
                .push(format!("{what}: check not clean: {}", text(&o)));
            return;
        }
        t.clean += 1;
        if succeeded && !effect_present(lab, &op.effect) {
            t.lost_after_success += 1;
            t.failures
                .push(format!("{what}: reported success but its effect is gone"));
        }
    } else {
        // Look first, before any normal open cleans up.
        let before = st(&["check"]);
        for line in String::from_utf8_lossy(&before.stdout).lines() {
            if let Some(p) = line.strip_prefix(' ') {
                t.kinds.insert(kind_of(p));
            }
        }
        if run.writer == Tool::Reference {
            let o = lab.run(Tool::Reference, Sync::None, &Step::new(&["layers"]));
            if !o.status.success() {
                t.reference_unreadable += 1;
            }
        }
        if before.status.success() {
            t.clean += 1;
        } else {
            let o = st(&["check", "--repair"]);
            if !o.status.success() {
                t.failures
                    .push(format!("{what}: repair failed: {}", text(&o)));
                return;
            }
            t.repaired += 1;
        }
        let o = st(&["check"]);
        if !o.status.success() {
            t.failures
                .push(format!("{what}: not clean after repair: {}", text(&o)));
            return;
        }
        if succeeded && !effect_present(lab, &op.effect) {
            t.lost_after_success += 1;
        }
        if run.writer == Tool::Reference {
            let o = lab.run(Tool::Reference, Sync::None, &Step::new(&["layers"]));
            if !o.status.success() {
                t.failures.push(format!(
                    "{what}: reference cannot read the repaired store: {}",
                    text(&o)
                ));
            }
        }
    }
    // The base layer was durable before the operation: it must be intact.
    if !op.setup.is_empty() {
        let o = st(&["diff", "-u", BASE]);
        if !o.status.success() || sha(&o.stdout) != sha(base_tar) {
            t.failures
                .push(format!("{what}: intact base layer lost: {}", text(&o)));
        }
    }
}

fn check_run(run: Run) {
    let failures = exercise(&run);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn privileged_power_loss_sync_filesystem() {
    if !need_root_and_fuse() {
        return;
    }
    for model in [Model::Directory, Model::Journal] {
        check_run(Run {
            writer: Tool::Strata,
            sync: Sync::Filesystem,
            model,
        });
    }
}

#[test]
fn privileged_power_loss_default_repairs() {
    if !need_root_and_fuse() {
        return;
    }
    for model in [Model::Directory, Model::Journal] {
        check_run(Run {
            writer: Tool::Strata,
            sync: Sync::None,
            model,
        });
    }
}

#[test]
fn privileged_power_loss_reference_store() {
    if !need_root_and_fuse() {
        return;
    }
    if !std::path::Path::new(REFERENCE).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but {REFERENCE} is missing"
        );
        eprintln!("skipping: {REFERENCE} not installed");
        return;
    }
    check_run(Run {
        writer: Tool::Reference,
        sync: Sync::None,
        model: Model::Journal,
    });
}
