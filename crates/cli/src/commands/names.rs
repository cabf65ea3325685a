//! Names, metadata and existence: `exists`, `metadata`, `set-metadata`,
//! `get-names`, `add-names`, `set-names` (the reference takes a layer, an
//! image or a container for each).

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use strata_store::Store;

use super::{status, Each};
use crate::args::{ExistsOpts, Items, MetadataOpts, NamesOpts, SetMetadataOpts};
use crate::output::{print, print_json, print_lines};

/// `exists`: fails unless every name is found (as the kind asked for).
pub(super) fn exists(s: &Store, o: &ExistsOpts) -> Result<ExitCode> {
    let mut all = true;
    let mut map = BTreeMap::new();
    for n in &o.names {
        let found = s.exists(n)?;
        // strata keeps no images or containers yet: a match is a layer.
        let ok = found && !o.image && !o.container;
        all &= ok;
        if !o.quiet && !o.json.json {
            print(&format!("{n}: {found}\n"))?;
        }
        map.insert(n.clone(), found);
    }
    if o.json.json {
        print_json(&map)?;
    }
    Ok(status(all))
}

/// `metadata`: the metadata of each layer found (keys sorted in JSON).
pub(super) fn metadata(s: &Store, o: &MetadataOpts) -> Result<ExitCode> {
    let each = Each::run(&o.layers, |l| s.layer(l));
    if o.json.json {
        let map: BTreeMap<&str, &str> = each.ok().map(|(l, r)| (l, r.metadata.as_str())).collect();
        print_json(&map)?;
    } else {
        for (l, r) in each.ok() {
            if o.quiet {
                print(&format!("{}\n", r.metadata))?;
            } else {
                print(&format!("{l}: {}\n", r.metadata))?;
            }
        }
    }
    each.finish()
}

/// `set-metadata`: from `--metadata-file`, else `--metadata`.
pub(super) fn set_metadata(s: &Store, o: &SetMetadataOpts) -> Result<ExitCode> {
    let m = match (&o.metadata, &o.file) {
        (_, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (Some(m), None) => m.clone(),
        (None, None) => {
            bail!("set-metadata: no metadata given (use --metadata or --metadata-file)")
        }
    };
    s.set_metadata(&o.layer, &m)?;
    Ok(ExitCode::SUCCESS)
}

/// `get-names`: the names of all the layers, in order.
pub(super) fn get(s: &Store, o: &Items) -> Result<ExitCode> {
    let mut all = Vec::new();
    for l in &o.layers {
        all.extend(s.layer(l)?.names);
    }
    if o.json.json {
        print_json(&all)?;
    } else {
        print_lines(&all)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `add-names`.
pub(super) fn add(s: &Store, o: &NamesOpts) -> Result<ExitCode> {
    s.add_names(&o.layer, &o.names)?;
    Ok(ExitCode::SUCCESS)
}

/// `set-names`.
pub(super) fn set(s: &Store, o: &NamesOpts) -> Result<ExitCode> {
    s.set_names(&o.layer, &o.names)?;
    Ok(ExitCode::SUCCESS)
}
