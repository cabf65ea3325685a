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

use power_support::{
    cut_budget, cut_points, layer_tar, report_line, sha, within_budget, Lab, Step, Sync, Tool,
};
use strata_crashfs::{Ended, Model, Tree};

const BASE: &str = "b1b2b3b4b5b6b7b8b9b0b1b2b3b4b5b6b7b8b9b0b1b2b3b4b5b6b7b8b9b0b1b2";
const NEW: &str = "c1c2c3c4c5c6c7c8c9c0c1c2c3c4c5c6c7c8c9c0c1c2c3c4c5c6c7c8c9c0c1c2";
/// The image an operation makes, changes or deletes.
const IMG: &str = "d1d2d3d4d5d6d7d8d9d0d1d2d3d4d5d6d7d8d9d0d1d2d3d4d5d6d7d8d9d0d1d2";
/// An image on BASE that no operation touches (keeps BASE in use).
const KEEP_IMG: &str = "e1e2e3e4e5e6e7e8e9e0e1e2e3e4e5e6e7e8e9e0e1e2e3e4e5e6e7e8e9e0e1e2";
/// The container an operation makes, changes or deletes.
const CTR: &str = "f1f2f3f4f5f6f7f8f9f0f1f2f3f4f5f6f7f8f9f0f1f2f3f4f5f6f7f8f9f0f1f2";
const DATA: &[u8] = b"big data item\n";

fn need_root_and_fuse() -> bool {
    let fuse = std::path::Path::new("/dev/fuse").exists();
    strata_testsupport::need(
        &strata_testsupport::current_test(),
        strata_testsupport::is_root() && fuse,
        "needs root and /dev/fuse",
    )
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
    /// BASE's data item `key` is DATA.
    LayerData,
    /// Image IMG exists.
    ImageCreated,
    /// Image IMG and its own layer NEW are gone.
    ImageDeleted,
    /// IMG's data item `key` is DATA.
    ImageData,
    /// Container CTR exists.
    ContainerCreated,
    /// Container CTR is gone.
    ContainerDeleted,
    /// CTR's data item `key` is DATA.
    ContainerData,
}

/// An item that existed, durable, before the operation and that the
/// operation does not touch: after every cut (and repair) it is there.
#[derive(Debug, Clone, Copy)]
enum Kept {
    /// BASE, with the diff of `layer_tar(3)`.
    Base,
    Image(&'static str),
    Container(&'static str),
}

struct Op {
    name: &'static str,
    setup: Vec<Step>,
    /// Run one after the other; the operation succeeded when all did.
    steps: Vec<Step>,
    effect: Effect,
    kept: Vec<Kept>,
}

fn ops(lab: &Lab) -> Vec<Op> {
    let base_tar = lab.file("base.tar", &layer_tar(3));
    let new_bytes = layer_tar(5);
    let new_tar = lab.file("new.tar", &new_bytes);
    let data = lab.file("item", DATA);
    let data = data.to_str().unwrap();
    let base = || Step::new(&["import-layer", "-i", BASE]).stdin(&base_tar);
    let image = || Step::new(&["create-image", "-i", IMG, BASE]);
    let container = || Step::new(&["create-container", "-i", CTR, IMG]);
    let op = |name, setup, steps, effect, kept| Op {
        name,
        setup,
        steps,
        effect,
        kept,
    };
    use Kept::{Base, Container, Image};
    vec![
        // The classic loss: a later operation's fsync commits the
        // import's record while the layer's files were never synced.
        op(
            "import, set-names",
            vec![base()],
            vec![
                Step::new(&["import-layer", "-i", NEW]).stdin(&new_tar),
                Step::new(&["set-names", "-n", "named", BASE]),
            ],
            Effect::Imported(new_bytes.clone()),
            vec![Base],
        ),
        op(
            "import-layer",
            vec![],
            vec![Step::new(&["import-layer", "-i", NEW]).stdin(&new_tar)],
            Effect::Imported(new_bytes.clone()),
            vec![],
        ),
        op(
            "import-layer (child)",
            vec![base()],
            vec![Step::new(&["import-layer", "-i", NEW, BASE]).stdin(&new_tar)],
            Effect::Imported(new_bytes),
            vec![Base],
        ),
        op(
            "create-layer",
            vec![base()],
            vec![Step::new(&["create-layer", "-i", NEW, BASE])],
            Effect::Created,
            vec![Base],
        ),
        op(
            "delete-layer",
            vec![base(), Step::new(&["create-layer", "-i", NEW, BASE])],
            vec![Step::new(&["delete-layer", NEW])],
            Effect::Deleted,
            vec![Base],
        ),
        op(
            "set-metadata",
            vec![base()],
            vec![Step::new(&["set-metadata", "-m", "meta two", BASE])],
            Effect::Metadata("meta two".into()),
            vec![Base],
        ),
        op(
            "set-layer-data",
            vec![base()],
            vec![Step::new(&["set-layer-data", "-f", data, BASE, "key"])],
            Effect::LayerData,
            vec![Base],
        ),
        op(
            "create-image",
            vec![base()],
            vec![image()],
            Effect::ImageCreated,
            vec![Base],
        ),
        op(
            "delete-image",
            vec![
                base(),
                Step::new(&["import-layer", "-i", NEW, BASE]).stdin(&new_tar),
                Step::new(&["create-image", "-i", IMG, NEW]),
                Step::new(&["create-image", "-i", KEEP_IMG, BASE]),
            ],
            vec![Step::new(&["delete-image", IMG])],
            Effect::ImageDeleted,
            vec![Base, Image(KEEP_IMG)],
        ),
        op(
            "set-image-data",
            vec![base(), image()],
            vec![Step::new(&["set-image-data", "-f", data, IMG, "key"])],
            Effect::ImageData,
            vec![Base, Image(IMG)],
        ),
        op(
            "create-container",
            vec![base(), image()],
            vec![container()],
            Effect::ContainerCreated,
            vec![Base, Image(IMG)],
        ),
        op(
            "set-container-data",
            vec![base(), image(), container()],
            vec![Step::new(&["set-container-data", "-f", data, CTR, "key"])],
            Effect::ContainerData,
            vec![Base, Image(IMG), Container(CTR)],
        ),
        op(
            "delete-container",
            vec![base(), image(), container()],
            vec![Step::new(&["delete-container", CTR])],
            Effect::ContainerDeleted,
            vec![Base, Image(IMG)],
        ),
    ]
}

/// Runs strata (no sync asked) on the store as it is mounted.
fn strata(lab: &Lab, args: &[&str]) -> std::process::Output {
    lab.run(Tool::Strata, Sync::None, &Step::new(args))
}

/// Whether the operation's effect is in the store (read with strata).
fn effect_present(lab: &Lab, e: &Effect) -> bool {
    let st = |args: &[&str]| strata(lab, args);
    let exists = |flag: &str, id: &str| st(&["exists", flag, id]).status.success();
    match e {
        Effect::Imported(tar) => {
            let o = st(&["diff", "-u", NEW]);
            o.status.success() && sha(&o.stdout) == sha(tar)
        }
        Effect::Created => exists("-l", NEW),
        Effect::Deleted => !exists("-l", NEW),
        Effect::Metadata(m) => {
            let o = st(&["metadata", "-q", BASE]);
            String::from_utf8_lossy(&o.stdout).trim_end() == m
        }
        Effect::LayerData => st(&["get-layer-data", BASE, "key"]).stdout == DATA,
        Effect::ImageCreated => exists("-i", IMG),
        Effect::ImageDeleted => !exists("-i", IMG) && !exists("-l", NEW),
        Effect::ImageData => st(&["get-image-data", IMG, "key"]).stdout == DATA,
        Effect::ContainerCreated => exists("-c", CTR),
        Effect::ContainerDeleted => !exists("-c", CTR),
        Effect::ContainerData => st(&["get-container-data", CTR, "key"]).stdout == DATA,
    }
}

/// The first kept item that is missing or altered, if any.
fn kept_missing(lab: &Lab, kept: &[Kept]) -> Option<String> {
    let base_tar = layer_tar(3);
    kept.iter().find_map(|k| {
        let ok = match k {
            Kept::Base => {
                let o = strata(lab, &["diff", "-u", BASE]);
                o.status.success() && sha(&o.stdout) == sha(&base_tar)
            }
            Kept::Image(id) => strata(lab, &["exists", "-i", id]).status.success(),
            Kept::Container(id) => strata(lab, &["exists", "-c", id]).status.success(),
        };
        (!ok).then(|| format!("{k:?}"))
    })
}

/// Tallies of one operation's cuts.
#[derive(Debug, Default)]
struct Tally {
    cuts: usize,
    clean: usize,
    repaired: usize,
    /// Repairs that needed `--force` (a container on a damaged layer).
    forced: usize,
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
    let budget = cut_budget();
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
        let all = cut_points(&counts);
        let all_cuts = all.len();
        for cut in within_budget(all, budget) {
            t.cuts += 1;
            let fs = lab.mount(base.clone(), run.model);
            fs.set_cut(cut);
            let ended = run_steps(&lab, &fs, run, &op.steps);
            let durable = fs.power_cut().unwrap();
            lab.reboot();
            let fs = lab.mount(durable, run.model);
            let what = format!("{} {cut:?}", op.name);
            after_cut(&lab, run, &op, ended, &mut t, &what);
            drop(fs.shut_down());
            lab.reboot();
        }
        report_line(&format!(
            "power-loss writer={:?} sync={:?} model={:?} op={:<22} syncs={:>3} changes={:>4} cuts={:>3}/{:>3} \
             clean={:>3} repaired={:>3} forced={:>3} completed={:>3} lost-after-success={:>3} reference-unreadable={:>3} failures={} found={:?}",
            run.writer,
            run.sync,
            run.model,
            op.name,
            counts.syncs,
            counts.ops,
            t.cuts,
            all_cuts,
            t.clean,
            t.repaired,
            t.forced,
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

/// stdout and stderr of a command, for failure messages.
fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn after_cut(lab: &Lab, run: &Run, op: &Op, ended: Ended, t: &mut Tally, what: &str) {
    let succeeded = ended == Ended::Exited(0);
    if succeeded {
        t.completed += 1;
    }
    let checked = if run.sync == Sync::Filesystem {
        after_cut_synced(lab, t, what)
    } else {
        after_cut_repaired(lab, run, t, what)
    };
    if !checked {
        return;
    }
    if succeeded && !effect_present(lab, &op.effect) {
        t.lost_after_success += 1;
        if run.sync == Sync::Filesystem {
            t.failures
                .push(format!("{what}: reported success but its effect is gone"));
        }
    }
    // What was durable before the operation and that it does not touch
    // must be there, intact.
    if let Some(k) = kept_missing(lab, &op.kept) {
        t.failures.push(format!("{what}: intact item {k} lost"));
    }
}

/// `sync=filesystem`: the store opens and `check` is clean without repair.
fn after_cut_synced(lab: &Lab, t: &mut Tally, what: &str) -> bool {
    // A normal open finishes what an interrupted writer left.
    let o = strata(lab, &["layers"]);
    if !o.status.success() {
        t.failures
            .push(format!("{what}: store does not open: {}", text(&o)));
        return false;
    }
    let o = strata(lab, &["check"]);
    if !o.status.success() {
        t.failures
            .push(format!("{what}: check not clean: {}", text(&o)));
        return false;
    }
    t.clean += 1;
    true
}

/// No syncs: `check --repair` (with `--force` when a container sits on a
/// damaged layer) leaves a clean store, which the reference reads when it
/// wrote it.
fn after_cut_repaired(lab: &Lab, run: &Run, t: &mut Tally, what: &str) -> bool {
    // Look first, before any normal open cleans up.
    let before = strata(lab, &["check"]);
    for line in String::from_utf8_lossy(&before.stdout).lines() {
        if let Some(p) = line.strip_prefix(' ') {
            t.kinds.insert(kind_of(p));
        }
    }
    let reference_reads = || {
        lab.run(Tool::Reference, Sync::None, &Step::new(&["layers"]))
            .status
            .success()
            && lab
                .run(Tool::Reference, Sync::None, &Step::new(&["containers"]))
                .status
                .success()
    };
    if run.writer == Tool::Reference && !reference_reads() {
        t.reference_unreadable += 1;
    }
    if before.status.success() {
        t.clean += 1;
    } else if strata(lab, &["check", "--repair"]).status.success() {
        t.repaired += 1;
    } else {
        let o = strata(lab, &["check", "--repair", "--force"]);
        if !o.status.success() {
            t.failures
                .push(format!("{what}: repair failed: {}", text(&o)));
            return false;
        }
        t.repaired += 1;
        t.forced += 1;
    }
    let o = strata(lab, &["check"]);
    if !o.status.success() {
        t.failures
            .push(format!("{what}: not clean after repair: {}", text(&o)));
        return false;
    }
    if run.writer == Tool::Reference && !reference_reads() {
        t.failures
            .push(format!("{what}: reference cannot read the repaired store"));
    }
    true
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
    if strata_testsupport::reference(&strata_testsupport::current_test()).is_none() {
        return;
    }
    check_run(Run {
        writer: Tool::Reference,
        sync: Sync::None,
        model: Model::Journal,
    });
}
