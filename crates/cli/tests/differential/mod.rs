//! The differential stack test: the same random edited layer stacks built
//! with strata and with the reference `containers-storage`, compared layer
//! by layer (see `differential_stacks.rs` for what and how to run it).
#![allow(dead_code)]

pub mod edits;
pub mod model;
pub mod overlay_model;
pub mod plan;
pub mod rng;
pub mod snapshot;
pub mod stack;
pub mod tarfacts;
pub mod tools;

use std::path::PathBuf;

use stack::{run_stack, Script, StackReport};

/// Stacks per driver when `STRATA_DIFF_STACKS` is unset: the "few hundred
/// per driver" CI runs (about eight minutes of two cores for the three
/// drivers together).
pub const DEFAULT_STACKS: u64 = 300;
/// First seed when `STRATA_DIFF_SEED` is unset.
pub const DEFAULT_SEED: u64 = 1;

/// What to run, from the environment.
pub struct Config {
    pub stacks: u64,
    pub first_seed: u64,
    /// Go on after a failing stack (long runs), listing every failing seed.
    pub keep_going: bool,
    /// Where to append a one-line summary per driver.
    pub report: Option<PathBuf>,
    /// Stacks built at the same time.
    pub jobs: u64,
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

impl Config {
    pub fn from_env(v: &Variant) -> Self {
        Self {
            stacks: env_u64("STRATA_DIFF_STACKS", v.default_stacks),
            first_seed: env_u64("STRATA_DIFF_SEED", DEFAULT_SEED),
            keep_going: std::env::var_os("STRATA_DIFF_KEEP_GOING").is_some(),
            report: std::env::var_os("STRATA_DIFF_REPORT").map(PathBuf::from),
            jobs: env_u64("STRATA_DIFF_JOBS", 2).max(1),
        }
    }
}

/// A driver as both tools are asked to use it.
pub struct Variant {
    /// Name in reports.
    pub name: &'static str,
    /// `-s` value.
    pub driver: &'static str,
    /// `--storage-opt` values.
    pub options: &'static [&'static str],
    /// Stacks when `STRATA_DIFF_STACKS` is unset.
    pub default_stacks: u64,
}

impl Variant {
    /// Whether both tools read changes from overlay upper directories
    /// (kernel overlay; with a mount program both compare trees).
    pub fn native_overlay(&self) -> bool {
        self.driver == "overlay" && self.options.is_empty()
    }
}

pub const VFS: Variant = Variant {
    name: "vfs",
    driver: "vfs",
    options: &[],
    default_stacks: DEFAULT_STACKS,
};
pub const OVERLAY: Variant = Variant {
    name: "overlay",
    driver: "overlay",
    options: &[],
    default_stacks: DEFAULT_STACKS,
};
/// Used by given stacks only: random stacks on fuse-overlayfs find the
/// reference reading layers through fuse-overlayfs's own view (hard links
/// as separate files, a deletion missed in a directory removed and made
/// again), which is not modelled yet.
pub const FUSE_OVERLAY: Variant = Variant {
    name: "fuse-overlayfs",
    driver: "overlay",
    options: &["overlay.mount_program=/usr/bin/fuse-overlayfs"],
    default_stacks: 0,
};
pub const BTRFS: Variant = Variant {
    name: "btrfs",
    driver: "btrfs",
    options: &[],
    default_stacks: DEFAULT_STACKS,
};

/// Where a driver's stacks live: a temp dir under /var/tmp, or a
/// loop-mounted btrfs for btrfs. Detaches whatever is still mounted below
/// it when dropped.
pub struct Place {
    // Declared first so that it is dropped (unmounted) before the temp dir
    // is removed.
    _fs: Option<strata_testsupport::LoopFs>,
    pub dir: tempfile::TempDir,
    pub base: PathBuf,
}

impl Place {
    /// `None` (after saying why) when the driver cannot run here and `CI`
    /// is unset.
    pub fn new(v: &Variant) -> Option<Self> {
        let test = strata_testsupport::current_test();
        let dir = tempfile::Builder::new()
            .prefix("strata-diffstacks-")
            .disable_cleanup(stack::keep())
            .tempdir_in("/var/tmp")
            .expect("temp dir");
        let (base, fs) = if v.driver == "btrfs" {
            let mnt = dir.path().join("btrfs");
            let fs = strata_testsupport::LoopFs::at(
                &test,
                &dir.path().join("btrfs.img"),
                &mnt,
                &strata_testsupport::LoopOptions::new("btrfs", 1024),
            )?;
            (mnt, Some(fs))
        } else {
            (dir.path().to_path_buf(), None)
        };
        let program = v
            .options
            .iter()
            .find_map(|o| o.strip_prefix("overlay.mount_program="));
        if let Some(p) = program {
            if !strata_testsupport::need_tool(&test, p)
                || !strata_testsupport::need(
                    &test,
                    std::path::Path::new("/dev/fuse").exists(),
                    "needs /dev/fuse",
                )
            {
                return None;
            }
        }
        Some(Self { dir, base, _fs: fs })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        // Layers a failing stack left mounted (the loop filesystem, if any,
        // detaches what is below it itself).
        if self._fs.is_none() {
            strata_testsupport::detach_mounts_under(self.dir.path());
        }
    }
}

/// Whether root and the reference are here (under `CI` their absence
/// fails).
fn can_run() -> bool {
    let test = strata_testsupport::current_test();
    strata_testsupport::need_root(&test) && strata_testsupport::reference(&test).is_some()
}

/// Runs the configured stacks on `v`; fails listing every failing seed
/// with what differed.
pub fn run_driver(v: &'static Variant) {
    if !can_run() {
        return;
    }
    let Some(place) = Place::new(v) else {
        return;
    };
    let cfg = Config::from_env(v);
    let started = std::time::Instant::now();
    let next = std::sync::atomic::AtomicU64::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let results = std::sync::Mutex::new((StackReport::default(), Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..cfg.jobs {
            s.spawn(|| loop {
                use std::sync::atomic::Ordering::SeqCst;
                let k = next.fetch_add(1, SeqCst);
                if k >= cfg.stacks || stop.load(SeqCst) {
                    break;
                }
                let seed = cfg.first_seed + k;
                let r = run_stack(&place.base, v, Script::Seed(seed));
                let mut res = results.lock().unwrap();
                res.0.add(&r);
                // A long run says how far it got now and then.
                if res.0.stacks % 100 == 0 {
                    eprintln!(
                        "differential {}: {} of {} stacks, {:.0}s, failing {:?}",
                        v.name,
                        res.0.stacks,
                        cfg.stacks,
                        started.elapsed().as_secs_f64(),
                        res.1
                    );
                }
                if !r.findings.is_empty() {
                    eprintln!("{}", r.describe(v.name, &seed_label(seed)));
                    res.1.push(seed);
                    if !cfg.keep_going {
                        stop.store(true, SeqCst);
                    }
                }
            });
        }
    });
    let (total, mut failing) = results.into_inner().unwrap();
    failing.sort();
    let summary = format!(
        "differential {}: {} stacks from seed {}, {} layers, {} edits, {:.0}s; known differences: {}; failing seeds: {:?}",
        v.name,
        total.stacks,
        cfg.first_seed,
        total.layers,
        total.edits,
        started.elapsed().as_secs_f64(),
        total.known_summary(),
        failing
    );
    eprintln!("{summary}");
    if let Some(p) = &cfg.report {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        writeln!(f, "{summary}").unwrap();
    }
    assert!(
        failing.is_empty(),
        "{}: stacks differ from the reference for seeds {failing:?}; rerun one with \
         STRATA_DIFF_SEED=<seed> STRATA_DIFF_STACKS=1",
        v.name
    );
}

fn seed_label(seed: u64) -> String {
    format!("seed {seed} (rerun: STRATA_DIFF_SEED={seed} STRATA_DIFF_STACKS=1)")
}

/// Runs the stack of one seed on `v` (a regression test).
pub fn check_seed(v: &'static Variant, seed: u64) {
    check(v, Script::Seed(seed), &seed_label(seed), &[]);
}

/// Runs a given stack on `v` (a regression test): `layers[i]` are the
/// edits of layer `i`; the tools agree everywhere.
pub fn check_script(v: &'static Variant, layers: Vec<Vec<edits::Prim>>) {
    check(v, Script::Fixed(layers), "given stack", &[]);
}

/// Like [`check_script`] where the reference is wrong: the stack must
/// show each of the `known` faults (and strata the right answer there).
pub fn check_script_known(
    v: &'static Variant,
    layers: Vec<Vec<edits::Prim>>,
    known: &[&'static str],
) {
    check(v, Script::Fixed(layers), "given stack", known);
}

fn check(v: &'static Variant, script: Script, what: &str, known: &[&'static str]) {
    if !can_run() {
        return;
    }
    let Some(place) = Place::new(v) else {
        return;
    };
    let r = run_stack(&place.base, v, script);
    assert!(r.findings.is_empty(), "{}", r.describe(v.name, what));
    for k in known {
        assert!(
            r.known.contains_key(k),
            "{} {what}: expected the reference fault {k:?}, saw {}",
            v.name,
            r.known_summary()
        );
    }
}
