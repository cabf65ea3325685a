//! `check [-q] [-r [-f]] [-j]`: report damage, and repair it.
//!
//! Output follows the reference's later releases: for each damaged item a
//! line `layer <id>:` (`image`, `container`) and one indented line per
//! problem (or, with `-j`, an object
//! `{"layers":{"<id>":["problem",…]},"images":…,"containers":…}`); when
//! anything was found and not repaired, the exit status is 1 with a count
//! of the errors on stderr.

use std::process::ExitCode;

use anyhow::{bail, Result};
use strata_store::check::ItemKind;
use strata_store::{CheckMode, RepairScope, Report, Store};

use crate::args::CheckOpts;
use crate::output::{self, print};

pub(super) fn run(s: &Store, o: &CheckOpts) -> Result<ExitCode> {
    let mode = if o.quick {
        CheckMode::Quick
    } else {
        CheckMode::Full
    };
    if !(o.repair || o.force) {
        let report = s.check(mode)?;
        show(&report, o.json.json)?;
        return verdict(&report);
    }
    let scope = if o.force {
        RepairScope::WithContainers
    } else {
        RepairScope::Layers
    };
    let outcome = s.repair(mode, scope)?;
    show(&outcome.found, o.json.json)?;
    let r = &outcome.repaired;
    for id in &r.removed_containers {
        eprintln!("removed damaged container {id}");
    }
    for id in &r.removed_images {
        eprintln!("removed damaged image {id}");
    }
    for id in &r.removed_layers {
        eprintln!("removed damaged layer {id}");
    }
    for id in &r.rebuilt {
        eprintln!("rebuilt links of layer {id}");
    }
    for p in &r.removed_unnamed {
        eprintln!("removed {}", p.display());
    }
    for (from, to) in &r.moved_aside {
        eprintln!("moved {} aside to {}", from.display(), to.display());
    }
    for id in &r.mounts_dropped {
        eprintln!("dropped stale mount count of layer {id}");
    }
    for id in &r.completed {
        eprintln!("completed layer {id} of a container");
    }
    if !outcome.after.is_clean() {
        show(&outcome.after, o.json.json)?;
        bail!("repair left {}", counts(&outcome.after));
    }
    Ok(ExitCode::SUCCESS)
}

fn show(report: &Report, json: bool) -> Result<()> {
    let groups = [
        (ItemKind::Layer, "layers", "layer"),
        (ItemKind::Image, "images", "image"),
        (ItemKind::Container, "containers", "container"),
    ];
    if json {
        let mut obj = serde_json::Map::new();
        for (kind, key, _) in groups {
            let items = report.by_item(kind);
            if !items.is_empty() {
                let m: serde_json::Map<String, serde_json::Value> = items
                    .into_iter()
                    .map(|(id, msgs)| (id, msgs.into()))
                    .collect();
                obj.insert(key.into(), m.into());
            }
        }
        return print(&format!("{}\n", output::json(&obj)));
    }
    let mut out = String::new();
    for (kind, _, word) in groups {
        for (id, msgs) in report.by_item(kind) {
            out.push_str(&format!("{word} {id}:\n"));
            for m in msgs {
                out.push_str(&format!(" {m}\n"));
            }
        }
    }
    print(&out)
}

fn counts(report: &Report) -> String {
    format!(
        "{} layer errors, 0 read-only layer errors, {} image errors, \
         0 read-only image errors, {} container errors",
        report.by_item(ItemKind::Layer).len(),
        report.by_item(ItemKind::Image).len(),
        report.by_item(ItemKind::Container).len()
    )
}

fn verdict(report: &Report) -> Result<ExitCode> {
    if report.is_clean() {
        return Ok(ExitCode::SUCCESS);
    }
    bail!("{}", counts(report))
}
