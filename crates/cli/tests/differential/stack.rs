//! One stack: build it with both tools, then compare every layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::edits::{at, Prim};
use super::model::{self, Judged};
use super::plan::{self, Planner};
use super::snapshot::{self, Tree};
use super::tarfacts;
use super::tools::{CmdResult, Store, Tool};
use super::Variant;

/// Something that differs between the tools.
#[derive(Debug)]
pub struct Finding {
    pub layer: usize,
    pub what: &'static str,
    pub detail: String,
}

/// What one stack (or a sum of stacks) did and found.
#[derive(Default)]
pub struct StackReport {
    pub stacks: usize,
    pub layers: usize,
    pub edits: usize,
    pub findings: Vec<Finding>,
    /// Differences where the reference is known to fail or be wrong and
    /// strata gave the right answer, by reason.
    pub known: BTreeMap<&'static str, usize>,
    /// The edits, layer by layer, for the failure report.
    pub log: Vec<String>,
}

impl StackReport {
    pub fn add(&mut self, o: &StackReport) {
        self.stacks += 1;
        self.layers += o.layers;
        self.edits += o.edits;
        for (k, v) in &o.known {
            *self.known.entry(k).or_default() += v;
        }
    }

    pub fn known_summary(&self) -> String {
        if self.known.is_empty() {
            return "none".into();
        }
        self.known
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The failure report: seed, the edits and what differed.
    pub fn describe(&self, variant: &str, what: &str) -> String {
        let mut s = format!(
            "=== {variant} {what}: {} difference(s)\n--- edits\n",
            self.findings.len()
        );
        for l in &self.log {
            s.push_str(l);
            s.push('\n');
        }
        s.push_str("--- differences\n");
        for f in &self.findings {
            let detail: String = f.detail.chars().take(4000).collect();
            s.push_str(&format!("layer {} {}: {detail}\n", f.layer, f.what));
        }
        s
    }

    fn judged(&mut self, layer: usize, what: &'static str, v: Judged) {
        match v {
            Judged::Same => {}
            Judged::Known(reason) => *self.known.entry(reason).or_default() += 1,
            Judged::Differs(d) => self.find(layer, what, d),
        }
    }

    fn find(&mut self, layer: usize, what: &'static str, detail: impl Into<String>) {
        self.findings.push(Finding {
            layer,
            what,
            detail: detail.into(),
        });
    }
}

/// A layer as both tools hold it.
pub struct Layer {
    pub ids: [String; 2],
    /// The reference's tree after the edits.
    pub tree: Tree,
    /// strata's.
    pub strata_tree: Tree,
    /// Its set-group-ID shadow ([`model::setgid_shadow`]).
    pub shadow: BTreeSet<String>,
}

/// The two stores of a stack; index 0 is strata, 1 the reference.
pub struct Pair {
    pub stores: [Store; 2],
    pub variant: &'static Variant,
    pub dir: PathBuf,
    /// Times at or after this (seconds) came from the clock.
    pub fresh_after: i64,
}

impl Pair {
    fn new(base: &Path, dir: &Path, variant: &'static Variant) -> Self {
        let graph = |t: Tool| base.join(dir.file_name().unwrap()).join(t.name());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        Self {
            stores: [
                Store::new(Tool::Strata, variant, graph(Tool::Strata), dir),
                Store::new(Tool::Reference, variant, graph(Tool::Reference), dir),
            ],
            variant,
            dir: dir.to_path_buf(),
            fresh_after: now - 2,
        }
    }
}

/// Detaches every mount under a stack's directory when the stack ends,
/// also when it panics.
struct Unmounter(PathBuf);

impl Drop for Unmounter {
    fn drop(&mut self) {
        strata_testsupport::detach_mounts_under(&self.0);
    }
}

/// `STRATA_DIFF_KEEP` set: the stores and diff files of a failing stack
/// stay for a look.
pub fn keep() -> bool {
    std::env::var_os("STRATA_DIFF_KEEP").is_some()
}

/// Builds and compares the stack of `seed` under `base`.
pub fn run_stack(base: &Path, variant: &'static Variant, script: Script) -> StackReport {
    let dir = tempfile::Builder::new()
        .prefix("stack-")
        .tempdir_in(base)
        .expect("stack dir");
    let _unmount = Unmounter(dir.path().to_path_buf());
    let pair = Pair::new(base, dir.path(), variant);
    let mut report = StackReport::default();
    let layers = build(&pair, script, &mut report);
    for i in 0..layers.len() {
        compare_layer(&pair, &layers, i, &mut report);
    }
    if keep() && !report.findings.is_empty() {
        report
            .log
            .push(format!("stores and diffs kept in {}", dir.keep().display()));
    }
    // Every layer was unmounted: what stays mounted (the overlay driver's
    // home, made a private mount on itself) is the same for both tools.
    let left = pair
        .stores
        .each_ref()
        .map(|s| strata_testsupport::mounts_under(&s.graph));
    let rel = |t: usize| -> Vec<PathBuf> {
        let g = &pair.stores[t].graph;
        left[t]
            .iter()
            .map(|p| Path::new("<graph>").join(p.strip_prefix(g).unwrap_or(p)))
            .collect()
    };
    if rel(0) != rel(1) {
        report.find(
            0,
            "mounts left after the last unmount",
            format!("strata: {:?}; reference: {:?}", rel(0), rel(1)),
        );
    }
    report
}

/// Where a stack's edits come from.
pub enum Script {
    /// Drawn from a seed.
    Seed(u64),
    /// Given, layer by layer (regression tests of cases found otherwise);
    /// every layer gets a time of its own.
    Fixed(Vec<Vec<Prim>>),
}

/// Creates, mounts, edits and unmounts each layer with both tools.
fn build(pair: &Pair, script: Script, report: &mut StackReport) -> Vec<Layer> {
    let mut planner = match &script {
        Script::Seed(seed) => Some(Planner::new(*seed)),
        Script::Fixed(_) => None,
    };
    let n = match (&mut planner, &script) {
        (Some(p), _) => p.layers(),
        (None, Script::Fixed(l)) => l.len(),
        (None, Script::Seed(_)) => unreachable!("a seed has a planner"),
    };
    let mut layers: Vec<Layer> = Vec::new();
    for i in 0..n {
        let ids: [String; 2] = both(|t| {
            let parent = layers.last().map(|l| l.ids[t].as_str());
            pair.stores[t].create_layer(parent)
        });
        let mounts: [PathBuf; 2] = both(|t| pair.stores[t].mount(&ids[t]));
        let (lp, given) = match (&mut planner, &script) {
            (Some(p), _) => (p.layer(i), &[][..]),
            (None, Script::Fixed(l)) => (
                plan::LayerPlan {
                    steps: l[i].len(),
                    stamp: (1_100_000_000 + i as i64 * 1_000_000, 123_456_789),
                },
                &l[i][..],
            ),
            (None, Script::Seed(_)) => unreachable!("a seed has a planner"),
        };
        report.log.push(format!(
            "layer {i}: {} edits, stamp {}.{:09}",
            lp.steps, lp.stamp.0, lp.stamp.1
        ));
        let mut touched: BTreeSet<String> = BTreeSet::new();
        let mut given = given.iter();
        for _ in 0..lp.steps {
            let step = match (&mut planner, given.next()) {
                (Some(p), _) => p.step(&plan::list(&mounts[1]), i, lp.stamp),
                (None, Some(prim)) => plan::Step {
                    label: "given",
                    prims: vec![prim.clone()],
                },
                (None, None) => unreachable!("steps counts the given edits"),
            };
            report.log.push(format!("  {}:", step.label));
            for p in &step.prims {
                report.edits += 1;
                report.log.push(format!("    {p:?}"));
                apply_both(p, &mounts, i, report);
                match p {
                    Prim::SetTime { path, .. } => {
                        touched.remove(path);
                    }
                    // What was touched below a renamed entry is now under
                    // its new name.
                    Prim::Rename { from, to } => {
                        let inside = format!("{from}/");
                        touched = std::mem::take(&mut touched)
                            .into_iter()
                            .map(|t: String| match t.strip_prefix(&inside) {
                                Some(rest) => format!("{to}/{rest}"),
                                None if t == *from => to.clone(),
                                None => t,
                            })
                            .collect();
                        p.touched(&mut touched);
                    }
                    _ => p.touched(&mut touched),
                }
            }
        }
        // Every entry the edits touched gets the layer's time, so both
        // stacks agree on times without depending on the clock.
        for path in touched {
            if std::fs::symlink_metadata(at(&mounts[1], &path)).is_ok() {
                let p = Prim::SetTime {
                    path,
                    sec: lp.stamp.0,
                    nsec: lp.stamp.1,
                };
                apply_both(&p, &mounts, i, report);
            }
        }
        let trees = both(|t| snapshot::snapshot(&mounts[t], pair.fresh_after));
        let parent = layers.last().map(|l| &l.strata_tree);
        let shadow = model::setgid_shadow(pair.variant, &layers, &trees[0], &trees[1]);
        report.judged(
            i,
            "mounted tree",
            model::judge_trees(pair.variant, &trees, parent, &shadow),
        );
        both(|t| pair.stores[t].unmount(&ids[t]));
        let [strata_tree, tree] = trees;
        layers.push(Layer {
            ids,
            tree,
            strata_tree,
            shadow,
        });
    }
    report.layers = n;
    layers
}

/// `f(0)` (strata) and `f(1)` (the reference) on two threads: the tools'
/// commands mostly wait (process start, fsync), so a stack takes about as
/// long as the slower tool alone.
pub fn both<T: Send>(f: impl Fn(usize) -> T + Sync) -> [T; 2] {
    std::thread::scope(|s| {
        let h = s.spawn(|| f(1));
        let a = f(0);
        let b = h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        [a, b]
    })
}

fn apply_both(p: &Prim, mounts: &[PathBuf; 2], layer: usize, report: &mut StackReport) {
    let r = p.apply(&mounts[1]);
    let s = p.apply(&mounts[0]);
    if r != s {
        report.find(
            layer,
            "edit",
            format!("{p:?}: strata {s:?}, reference {r:?}"),
        );
    }
}

/// `changes`, `diffsize`, `diff` and cross-applied diffs of layer `i`.
fn compare_layer(pair: &Pair, layers: &[Layer], i: usize, report: &mut StackReport) {
    let ids = &layers[i].ids;
    let [sc, ss, sd, rc, rs, rd]: [CmdResult; 6] = {
        let [a, b] = both(|t| {
            let store = &pair.stores[t];
            let id = ids[t].as_str();
            [
                store.run(&["changes", id]),
                store.run(&["diffsize", id]),
                store.run(&["diff", "-u", id]),
            ]
        });
        let [a0, a1, a2] = a;
        let [b0, b1, b2] = b;
        [a0, a1, a2, b0, b1, b2]
    };
    let tars: model::Tars = [&sd, &rd].map(|o| {
        o.as_ref()
            .map_err(Clone::clone)
            .and_then(|b| tarfacts::members(b, pair.fresh_after).map(|m| (b.clone(), m)))
    });
    let facts = model::facts(pair, layers, i);
    let verdicts = [
        ("changes", model::judge_changes(&facts, &sc, &rc)),
        (
            "diffsize",
            model::judge_diffsize(&facts, &layers[i].tree, &ss, &rs),
        ),
        ("diff", model::judge_diff(&facts, &tars)),
    ];
    for (what, v) in verdicts {
        report.judged(i, what, v);
    }

    // Each tool's diff applied by the other tool on its own parent gives
    // the layer's tree.
    let found = both(|by| match &tars[1 - by] {
        Ok((bytes, _)) => Some(cross_apply(pair, layers, i, bytes, by, &facts)),
        Err(_) => None,
    });
    for (what, v) in found.into_iter().flatten() {
        report.judged(i, what, v);
    }
}

fn cross_apply(
    pair: &Pair,
    layers: &[Layer],
    i: usize,
    tar: &[u8],
    by: usize,
    facts: &model::Facts,
) -> (&'static str, Judged) {
    let store = &pair.stores[by];
    let file = pair
        .dir
        .join(format!("diff-{i}-{}.tar", store.tool.other().name()));
    std::fs::write(&file, tar).unwrap();
    let parent = i.checked_sub(1).map(|p| layers[p].ids[by].as_str());
    let what = if by == 0 {
        "reference diff applied by strata"
    } else {
        "strata diff applied by the reference"
    };
    let id = match store.import_layer(&file, parent) {
        Ok(id) => id,
        Err(e) => return (what, Judged::Differs(e)),
    };
    let m = store.mount(&id);
    let tree = snapshot::snapshot(&m, pair.fresh_after);
    store.unmount(&id);
    if !keep() {
        let _ = std::fs::remove_file(&file);
    }
    let parent = i.checked_sub(1).map(|p| &layers[p].tree);
    let members: BTreeSet<String> = tarfacts::members(tar, pair.fresh_after)
        .map(|m| m.into_iter().map(|m| m.name).collect())
        .unwrap_or_default();
    let tree = snapshot::as_applied(tree, &layers[i].tree, parent, &members);
    let layer = snapshot::as_applied(layers[i].tree.clone(), &layers[i].tree, parent, &members);
    // A layer tar has no member for the root: its attributes come from
    // the new layer's creation, not from the diff.
    let cmp = |skip: &dyn Fn(&str) -> bool| {
        snapshot::compare(&tree, &layer, (what, "layer"), &|p| p.is_empty() || skip(p))
    };
    let d = cmp(&|_| false);
    // The comparison with what a known fault changes stripped from both.
    let stripped = |strip: &dyn Fn(&Tree) -> Tree| {
        snapshot::compare(&strip(&tree), &strip(&layer), (what, "layer"), &|p| {
            p.is_empty()
        })
    };
    (
        what,
        model::judge_applied(
            facts,
            by == 0,
            d,
            cmp,
            || stripped(&|t| snapshot::without_empty_xattrs(t.clone())),
            || stripped(&|t| model::without_shadow(t, &facts.shadow)),
        ),
    )
}
