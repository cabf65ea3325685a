//! Mounts: `mount`, `unmount`, `mounted`. Each takes several layers, tries
//! them all, prints a line per layer and, with `--json`, one report of
//! all of them.

use std::process::ExitCode;

use anyhow::Result;
use strata_store::{Force, MountRequest, Store};

use super::Each;
use crate::args::{Items, MountOpts, UnmountOpts};
use crate::output::print;

/// `mount`: prints each mount point.
pub(super) fn mount(s: &Store, o: &MountOpts) -> Result<ExitCode> {
    let mut options: Vec<String> = o
        .opt
        .as_deref()
        .map(|o| {
            o.split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if o.ro {
        options.push("ro".into());
    }
    let req = MountRequest {
        mount_label: o.label.clone(),
        options,
    };
    let each = Each::run(&o.layers, |l| s.mount(l, &req));
    if o.json.json {
        each.print_report(|p| vec![("mountpoint", p.display().to_string())])?;
    } else {
        for (_, p) in each.ok() {
            print(&format!("{}\n", p.display()))?;
        }
    }
    each.finish()
}

/// `unmount`: says which layers are no longer mounted.
pub(super) fn unmount(s: &Store, o: &UnmountOpts) -> Result<ExitCode> {
    let force = if o.force.force { Force::Yes } else { Force::No };
    let each = Each::run(&o.layers, |l| s.unmount(l, force));
    for (l, still) in each.ok() {
        if !still {
            print(&format!("{l} mountpoint unmounted\n"))?;
        }
    }
    if o.json.json {
        each.print_report(|_| Vec::new())?;
    }
    each.finish()
}

/// `mounted`: says which layers are mounted.
pub(super) fn mounted(s: &Store, o: &Items) -> Result<ExitCode> {
    let each = Each::run(&o.layers, |l| s.mounted(l));
    for (l, (n, _)) in each.ok() {
        if *n > 0 {
            print(&format!("{l} mounted\n"))?;
        }
    }
    if o.json.json {
        each.print_report(|_| Vec::new())?;
    }
    each.finish()
}
