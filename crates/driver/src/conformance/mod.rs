//! The conformance suite every driver runs (feature `testsuite`; not part
//! of production builds).
//!
//! One public function per behaviour of the [`Driver`] contract, each
//! given a [`Suite`] (how to make the driver) and run in fresh directories
//! with no shared state. When a case fails, the whole tree of the case is
//! printed (mode, owner, size, path) before the panic continues.
//! [`conformance_tests!`](crate::conformance_tests) generates one `#[test]`
//! per case of the one case list ([`CASES`]):
//!
//! ```ignore
//! fn suite() -> strata_driver::conformance::Suite {
//!     strata_driver::conformance::Suite::new("vfs", strata_driver::vfs::init)
//! }
//! strata_driver::conformance_tests!(suite());
//! ```
//!
//! Every case needs root (it creates files owned by other users), so the
//! generated tests are named `privileged_*`: without root they print why and
//! return, and fail when `CI` is set.

mod cases;
mod contract;
mod tree;

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use strata_testsupport::Scratch;

use crate::{Driver, InitFn, InitOptions};

pub use cases::*;
pub use contract::*;
pub use tree::{dump_tree, Entry, Fixture};

/// Sets up a case's graph root before the driver starts (e.g. mounts a
/// loop-backed btrfs there); the returned guard is dropped after the case.
/// `None` when the case cannot run here (after saying why; under `CI` the
/// setup fails instead).
pub type Prepare = fn(case: &str, graph: &Path) -> Option<Box<dyn Any>>;

/// A conformance case.
pub type Case = fn(&Suite);

/// How to make the driver under test.
#[derive(Clone)]
pub struct Suite {
    /// Driver name; its home is `<tmp>/graph/<name>`.
    pub name: &'static str,
    /// Initialises the driver.
    pub init: InitFn,
    /// Driver options given at every init.
    pub options: Vec<String>,
    /// Option key naming additional image stores (`imagestore`), or `None`
    /// when the driver has none.
    pub image_store_key: Option<&'static str>,
    /// Per-case setup of the graph root.
    pub prepare: Option<Prepare>,
    /// Cases this driver leaves out, each with the reason, which the case
    /// prints instead of running.
    pub left_out: Vec<(&'static str, &'static str)>,
}

impl Suite {
    /// A suite for driver `name` with defaults: image stores under the
    /// `imagestore` key, no setup, every case.
    pub fn new(name: &'static str, init: InitFn) -> Self {
        Self {
            name,
            init,
            options: Vec::new(),
            image_store_key: Some("imagestore"),
            prepare: None,
            left_out: Vec::new(),
        }
    }
}

/// One case's world: a temp dir, the store's roots and the driver.
pub struct Env {
    /// Graph root (`<tmp>/graph`).
    pub graph: PathBuf,
    /// Run root (`<tmp>/run`).
    pub run: PathBuf,
    /// The driver under test.
    pub driver: Box<dyn Driver>,
    suite: Suite,
    extra: Vec<(Box<dyn Driver>, PathBuf)>,
    _guard: Option<Box<dyn Any>>,
    // Dropped last: detaches whatever is still mounted below it.
    tmp: Scratch,
}

impl Env {
    /// Makes a fresh environment for `suite`; `None` when its setup
    /// cannot be had here.
    fn new(suite: &Suite, case: &str) -> Option<Env> {
        let tmp = Scratch::new("strata-conformance-");
        let graph = tmp.path().join("graph");
        let run = tmp.path().join("run");
        std::fs::create_dir_all(&graph).expect("graph root");
        std::fs::create_dir_all(&run).expect("run root");
        let guard = match suite.prepare {
            Some(p) => Some(p(case, &graph)?),
            None => None,
        };
        let driver = start(suite, &graph, &run, &[]);
        Some(Env {
            graph,
            run,
            driver,
            suite: suite.clone(),
            extra: Vec::new(),
            _guard: guard,
            tmp,
        })
    }

    /// Starts another driver of the same kind in a sibling store
    /// (`<tmp>/<name>/graph`), with extra options; kept until the case ends.
    pub fn another_store(&mut self, name: &str, options: &[String]) -> (usize, PathBuf) {
        let base = self.tmp.path().join(name);
        let graph = base.join("graph");
        let run = base.join("run");
        std::fs::create_dir_all(&graph).expect("graph root");
        std::fs::create_dir_all(&run).expect("run root");
        let d = start(&self.suite, &graph, &run, options);
        self.extra.push((d, graph.clone()));
        (self.extra.len() - 1, graph)
    }

    /// A driver made by [`Env::another_store`].
    pub fn store(&self, i: usize) -> &dyn Driver {
        self.extra[i].0.as_ref()
    }

    /// The temp dir of this case.
    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }
}

fn start(suite: &Suite, graph: &Path, run: &Path, extra: &[String]) -> Box<dyn Driver> {
    let mut options = suite.options.clone();
    options.extend_from_slice(extra);
    let opts = InitOptions {
        home: graph.join(suite.name),
        run_root: run.join(suite.name),
        driver_options: options,
        ..Default::default()
    };
    match (suite.init)(&opts) {
        Ok(d) => d,
        Err(e) => panic!(
            "initialising {} in {}: {e}",
            suite.name,
            opts.home.display()
        ),
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for (d, _) in &self.extra {
            if let Err(e) = d.cleanup() {
                eprintln!("cleanup: {e}");
            }
        }
        if let Err(e) = self.driver.cleanup() {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Runs `body` in a fresh [`Env`]; on panic prints the case's tree first.
/// A case the suite leaves out says why and returns.
pub fn run_case(suite: &Suite, case: &str, body: impl FnOnce(&mut Env)) {
    if let Some((_, why)) = suite.left_out.iter().find(|(c, _)| *c == case) {
        eprintln!("{} / {case}: left out: {why}", suite.name);
        return;
    }
    if !strata_testsupport::need_root(case) {
        return;
    }
    let Some(mut env) = Env::new(suite, case) else {
        return;
    };
    let r = catch_unwind(AssertUnwindSafe(|| body(&mut env)));
    if let Err(panic) = r {
        eprintln!(
            "--- {} / {case} failed; tree of {} ---",
            suite.name,
            env.tmp().display()
        );
        eprintln!("{}", dump_tree(env.tmp()));
        drop(env);
        resume_unwind(panic);
    }
}

/// Runs every case for `suite` in turn (the generated tests run them one
/// per `#[test]` instead).
pub fn run_all(suite: &Suite) {
    for (name, case) in CASES {
        eprintln!("case {name}");
        case(suite);
    }
}

crate::conformance_tests!(@list @table);

/// Generates one `#[test]` per conformance case for a [`Suite`] expression.
/// The arms starting with `@` are the one case list ([`CASES`] is made
/// from it too) and what is made of it.
#[macro_export]
macro_rules! conformance_tests {
    (@list $($mode:tt)*) => {
        $crate::conformance_tests!($($mode)*;
            privileged_create_empty => create_empty,
            privileged_base_layer => base_layer,
            privileged_child_inherits => child_inherits,
            privileged_template_copies => template_copies,
            privileged_deep_read_50 => deep_read_50,
            privileged_diff_apply_round_trip => diff_apply_round_trip,
            privileged_changes_after_edits => changes_after_edits,
            privileged_recreate_at_depths => recreate_at_depths,
            privileged_list_layers => list_layers,
            privileged_read_128_layers => read_128_layers,
            privileged_id_mapped_layer => id_mapped_layer,
            privileged_additional_image_store => additional_image_store,
            privileged_contract_unknown_layer => contract_unknown_layer,
            privileged_contract_create => contract_create,
            privileged_contract_get_and_put => contract_get_and_put,
            privileged_contract_remove_mounted => contract_remove_mounted,
            privileged_contract_cleanup => contract_cleanup,
        );
    };
    (@table; $($test:ident => $case:ident),* $(,)?) => {
        /// Every case with its name, for [`run_all`] and for drivers that
        /// run the cases their own way (in a user namespace, say).
        pub const CASES: &[(&str, $crate::conformance::Case)] =
            &[$((stringify!($case), $crate::conformance::$case)),*];
    };
    (@tests $suite:expr; $($test:ident => $case:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $crate::conformance::$case(&$suite);
            }
        )*
    };
    ($suite:expr) => {
        $crate::conformance_tests!(@list @tests $suite);
    };
}
