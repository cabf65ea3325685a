//! The store as a whole: `status`, `wipe`, `shutdown`, and `version` and
//! `completion`, which need no store.

use std::process::ExitCode;

use anyhow::Result;
use strata_store::{Force, Store};

use super::reference_message;
use crate::args::{Cli, Json, ShutdownOpts};
use crate::output::{print, print_json};

/// Prints key/value pairs as `key: value` lines or a JSON list of pairs.
fn pairs<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)], json: &Json) -> Result<()> {
    if json.json {
        let v: Vec<[&str; 2]> = pairs
            .iter()
            .map(|(k, v)| [k.as_ref(), v.as_ref()])
            .collect();
        print_json(&v)
    } else {
        let mut out = String::new();
        for (k, v) in pairs {
            out.push_str(&format!("{}: {}\n", k.as_ref(), v.as_ref()));
        }
        print(&out)
    }
}

/// `version`.
pub(super) fn version(o: &Json) -> Result<ExitCode> {
    pairs(&[("Version", env!("CARGO_PKG_VERSION"))], o)?;
    Ok(ExitCode::SUCCESS)
}

/// `completion SHELL`.
pub(super) fn completion(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cmd, "strata", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// `status`: the store's and the driver's key/value pairs.
pub(super) fn status(s: &Store, o: &Json) -> Result<ExitCode> {
    pairs(&s.status(), o)?;
    Ok(ExitCode::SUCCESS)
}

/// `wipe`: every container, image and layer removed.
pub(super) fn wipe(s: &Store, o: &Json) -> Result<ExitCode> {
    outcome("wipe", s.wipe(), o)
}

/// `shutdown`: the driver released; refused while layers are mounted,
/// unless `--force`, which unmounts them first.
pub(super) fn shutdown(s: &Store, o: &ShutdownOpts) -> Result<ExitCode> {
    let force = if o.force.force { Force::Yes } else { Force::No };
    outcome("shutdown", s.shutdown(force), &o.json)
}

/// The reference's report of `wipe` and `shutdown`: `""` or `{}` with
/// `--json`, else `COMMAND: ERROR` on stderr.
fn outcome(cmd: &str, res: strata_store::Result<()>, o: &Json) -> Result<ExitCode> {
    if o.json {
        print(if res.is_ok() { "\"\"\n" } else { "{}\n" })?;
    } else if let Err(e) = &res {
        eprintln!("{cmd}: {}", reference_message(e));
    }
    Ok(super::status(res.is_ok()))
}
