//! Names, metadata and existence: `exists`, `metadata`, `set-metadata`,
//! `get-names`, `add-names`, `set-names` (the reference takes a layer, an
//! image or a container for each).

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use strata_store::{ErrorKind, NameOp, Store};

use super::{fail, metadata_arg, status, Each};
use crate::args::{ExistsOpts, Items, MetadataOpts, MetadataSource, NamesOpts, SetMetadataOpts};
use crate::output::{print, print_json, print_lines};

/// `exists`: `NAME: true|false` per name; fails unless every name is
/// found, and (with `--layer`, `--image` or `--container`) is of a kind
/// asked for.
pub(super) fn exists(s: &Store, o: &ExistsOpts) -> Result<ExitCode> {
    let mut all = true;
    let mut map = BTreeMap::new();
    let any_kind = !(o.layer || o.image || o.container);
    for n in &o.names {
        let found = s.exists(n)?;
        let ok = found
            && (any_kind
                || (o.layer && s.layer(n).is_ok())
                || (o.image && s.images().exists(n)?)
                || (o.container && s.containers().exists(n)?));
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

/// `metadata`: the metadata of each layer, image or container (an unknown
/// one prints as empty and fails the command; JSON keys sorted).
pub(super) fn metadata(s: &Store, o: &MetadataOpts) -> Result<ExitCode> {
    // The reference drops one trailing newline of each.
    let each = Each::run(&o.layers, |k| {
        s.metadata(k)
            .map(|m| m.strip_suffix('\n').map(str::to_string).unwrap_or(m))
    });
    if o.json.json {
        let map: BTreeMap<&str, &str> = each.ok().map(|(k, m)| (k, m.as_str())).collect();
        print_json(&map)?;
    } else {
        let mut out = String::new();
        for (k, m) in &each.results {
            let m = m.as_deref().unwrap_or("");
            if o.quiet {
                out.push_str(&format!("{m}\n"));
            } else {
                out.push_str(&format!("{k}: {m}\n"));
            }
        }
        print(&out)?;
    }
    Ok(status(each.ok().count() == o.layers.len()))
}

/// `set-metadata`: from `--metadata-file`, else `--metadata`.
pub(super) fn set_metadata(s: &Store, o: &SetMetadataOpts) -> Result<ExitCode> {
    let source = MetadataSource {
        metadata: o.metadata.clone(),
        file: o.file.clone(),
    };
    let Some(m) = metadata_arg(&source)? else {
        return fail("no new metadata provided");
    };
    match s.set_metadata(&o.layer, &m) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fail("identifier is not a layer, image, or container")
        }
        Err(e) => Err(e.into()),
    }
}

/// `get-names`: the names of a layer, image or container (the first
/// argument; the reference ignores the others).
pub(super) fn get(s: &Store, o: &Items) -> Result<ExitCode> {
    let key = o.layers.first().map(String::as_str).unwrap_or_default();
    let names = match s.names(key) {
        Ok(n) => n,
        Err(e) if e.kind() == ErrorKind::NotFound => return fail("layer not known"),
        Err(e) => return Err(e.into()),
    };
    if o.json.json {
        print_json(&names)?;
    } else {
        print_lines(&names)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `add-names` (after the names it has) and `set-names`; with `--json`,
/// the names it ends up with.
pub(super) fn change(s: &Store, o: &NamesOpts, op: NameOp) -> Result<ExitCode> {
    match s.change_names(&o.layer, &o.names, op) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return fail("layer not known"),
        Err(e) => return Err(e.into()),
    }
    if o.json.json {
        print_json(&s.names(&o.layer)?)?;
    }
    Ok(ExitCode::SUCCESS)
}
