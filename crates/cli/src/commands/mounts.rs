//! Mounts: `mount`, `unmount`, `mounted`. Each takes several layers, tries
//! them all, prints a line per layer and, with `--json`, one report of
//! all of them.

use std::process::ExitCode;

use anyhow::Result;
use strata_store::{ErrorKind, Force, MountRequest, Store};

use super::{reference_message, status, Each};
use crate::args::{Items, MountOpts, UnmountOpts};
use crate::output::print;

/// `mount`: a line per item with its mount point (empty when it failed,
/// the failure on stderr as `ERROR while mounting ITEM`). With `--ro` an
/// image's top layer is mounted read-only, as `noexec,nosuid` too.
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
        options.extend(["ro", "noexec", "nosuid"].map(String::from));
    }
    let req = MountRequest {
        mount_label: o.label.clone(),
        options,
    };
    let each = Each::run(&o.layers, |l| {
        if o.ro {
            s.images().mount(l, &req)
        } else {
            s.mount(l, &req)
        }
    });
    let mut out = String::new();
    for (l, r) in &each.results {
        match r {
            Ok(p) => out.push_str(&format!("{}\n", p.display())),
            Err(e) => {
                if !o.json.json {
                    eprintln!("{} while mounting {l}", reference_message(e));
                }
                out.push('\n');
            }
        }
    }
    if o.json.json {
        each.print_report(
            |p| vec![("mountpoint", p.display().to_string())],
            &["mountpoint"],
        )?;
    } else {
        print(&out)?;
    }
    Ok(status(each.all_ok()))
}

/// `unmount`: `ITEM mountpoint unmounted` for each container or layer no
/// longer mounted; an image's top layer is unmounted quietly.
pub(super) fn unmount(s: &Store, o: &UnmountOpts) -> Result<ExitCode> {
    let force = if o.force.force { Force::Yes } else { Force::No };
    let each = Each::run(&o.layers, |l| match s.unmount(l, force) {
        Err(e) if e.kind() == ErrorKind::NotFound => match s.images().lookup(l) {
            Ok(Some(_)) => s.images().unmount(l, force).map(|_| None),
            _ => Err(e),
        },
        r => r.map(Some),
    });
    for (l, r) in &each.results {
        match r {
            Ok(Some(false)) => print(&format!("{l} mountpoint unmounted\n"))?,
            Ok(_) => {}
            Err(e) if !o.json.json => {
                eprintln!("{} while unmounting {l}", reference_message(e))
            }
            Err(_) => {}
        }
    }
    if o.json.json {
        each.print_report(|_| Vec::new(), &[])?;
    }
    Ok(status(each.all_ok()))
}

/// `mounted`: `ITEM mounted` for each container or layer mounted.
pub(super) fn mounted(s: &Store, o: &Items) -> Result<ExitCode> {
    let each = Each::run(&o.layers, |l| s.mounted(l));
    for (l, r) in &each.results {
        match r {
            Ok((n, _)) if *n > 0 => print(&format!("{l} mounted\n"))?,
            Ok(_) => {}
            Err(e) if !o.json.json => {
                eprintln!("{} checking if {l} is mounted", reference_message(e))
            }
            Err(_) => {}
        }
    }
    if o.json.json {
        each.print_report(|_| Vec::new(), &[])?;
    }
    Ok(status(each.all_ok()))
}
