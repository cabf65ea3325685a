//! Layers: `create-layer`, `import-layer`, `delete-layer`, `delete`,
//! `layers`, `layer`, `layer-parent-owners`.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use strata_store::{Access, ErrorKind, LayerMaps, MapChoice, NewLayer, Safety, Store};

use super::{input, reference_message, status, Each};
use crate::args::{DeleteOpts, ImportOpts, Items, LayerOpts, ListOpts, MapOpts};
use crate::output::{self, print, print_created, print_json};

/// `create-layer`.
pub(super) fn create(s: &Store, o: &LayerOpts) -> Result<ExitCode> {
    put_layer(s, o, None)
}

/// `import-layer`.
pub(super) fn import(s: &Store, o: &ImportOpts) -> Result<ExitCode> {
    let mut diff = input(o.file.as_deref(), "importing")?;
    put_layer(s, &o.opts, Some(&mut diff))
}

fn put_layer(s: &Store, o: &LayerOpts, diff: Option<&mut (dyn Read + Send)>) -> Result<ExitCode> {
    let req = NewLayer {
        id: o.id.clone(),
        parent: o.parent.clone(),
        names: o.names.clone(),
        mount_label: o.label.clone(),
        access: if o.readonly {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        },
        maps: layer_maps(&o.maps)?,
        ..Default::default()
    };
    let layer = match diff {
        Some(d) => s.import_layer(&req, d)?,
        None => s.create_layer(&req)?,
    };
    print_created(o.json.json, &layer, &layer.id, &layer.names, "\n")?;
    Ok(ExitCode::SUCCESS)
}

/// The ID maps asked for, as the reference combines its flags: a host
/// flag refuses a map or subordinate name for its side; a subordinate
/// name given for one side names the other too; its ranges (from
/// /etc/subuid and /etc/subgid) come first, `--uidmap`/`--gidmap` ranges
/// after them; a host flag leaves its side unmapped; nothing given
/// inherits.
pub(super) fn layer_maps(o: &MapOpts) -> Result<LayerMaps> {
    fn given(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|s| !s.is_empty())
    }
    if o.hostuidmap && (given(&o.uidmap).is_some() || given(&o.subuidmap).is_some()) {
        anyhow::bail!("host uid map specified along with UID mapping");
    }
    if o.hostgidmap && (given(&o.gidmap).is_some() || given(&o.subgidmap).is_some()) {
        anyhow::bail!("host gid map specified along with GID mapping");
    }
    let sub_user = given(&o.subuidmap).or(given(&o.subgidmap));
    let sub_group = given(&o.subgidmap).or(given(&o.subuidmap));
    let side = |host: bool, sub: Option<&str>, file: &str, explicit: Option<&str>| {
        let mut maps = match sub {
            Some(name) => strata_store::read_subid_maps(Path::new(file), name)?,
            None => Vec::new(),
        };
        if let Some(m) = explicit {
            maps.extend(strata_store::parse_maps(m)?);
        }
        Ok::<_, anyhow::Error>(if host {
            MapChoice::Host
        } else if maps.is_empty() {
            MapChoice::Inherit
        } else {
            MapChoice::Explicit(maps)
        })
    };
    Ok(LayerMaps {
        uids: side(o.hostuidmap, sub_user, "/etc/subuid", given(&o.uidmap))?,
        gids: side(o.hostgidmap, sub_group, "/etc/subgid", given(&o.gidmap))?,
    })
}

/// `delete-layer` (checked) and `delete` (unchecked, of whatever each
/// argument names): `ITEM: ERROR` on stderr per failure; with `--json`,
/// `{"ITEM": ""|"ERROR", …}`.
pub(super) fn delete(s: &Store, o: &DeleteOpts, safety: Safety) -> Result<ExitCode> {
    let mut report = std::collections::BTreeMap::new();
    for l in &o.layers {
        let res = match safety {
            Safety::Checked => s.delete_layer(l, safety),
            Safety::Unchecked => s.delete(l).map(|_| ()),
        };
        let msg = match res {
            Ok(()) => String::new(),
            Err(e) if e.kind() == ErrorKind::NotFound && safety == Safety::Checked => {
                "identifier is not a layer".into()
            }
            Err(e) => reference_message(&e),
        };
        if !msg.is_empty() && !o.json.json {
            eprintln!("{l}: {msg}");
        }
        report.insert(l.clone(), msg);
    }
    if o.json.json {
        print_json(&report)?;
    }
    Ok(status(report.values().all(String::is_empty)))
}

/// `layers [-t]`: with the images and containers on each layer.
pub(super) fn list(s: &Store, o: &ListOpts) -> Result<ExitCode> {
    let layers = s.layers()?;
    if o.json.json {
        return print_json(&layers).map(|_| ExitCode::SUCCESS);
    }
    let images = s.images().list()?;
    let containers = s.containers().list()?;
    let users = output::Users::new(&images, &containers);
    if o.tree {
        let mounts = s.mounts()?;
        print(&output::layers_tree(&layers, &mounts, &users))?;
    } else {
        print(&output::layers_list(&layers, &users))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `layer`: the records of the layers found; the first unknown one is the
/// error.
pub(super) fn examine(s: &Store, o: &Items) -> Result<ExitCode> {
    let each = Each::run(&o.layers, |l| s.layer(l));
    if o.json.json {
        let found: Vec<_> = each.ok().map(|(_, r)| r).collect();
        print_json(&found)?;
    } else {
        for (_, r) in each.ok() {
            print(&output::layer_text(r))?;
        }
    }
    each.finish()
}

/// `layer-parent-owners`.
pub(super) fn parent_owners(s: &Store, o: &Items) -> Result<ExitCode> {
    for l in &o.layers {
        let (uids, gids) = s.layer_parent_owners(l)?;
        if o.json.json {
            let list = |ids: &[u32]| {
                if ids.is_empty() {
                    serde_json::Value::Null
                } else {
                    ids.into()
                }
            };
            let j = serde_json::json!({"ID": l, "UIDs": list(&uids), "GIDs": list(&gids)});
            print_json(&j)?;
        } else {
            let mut out = format!("ID: {l}\n");
            if !uids.is_empty() {
                out.push_str(&format!("UIDs: {}\n", output::go_list(&uids)));
            }
            if !gids.is_empty() {
                out.push_str(&format!("GIDs: {}\n", output::go_list(&gids)));
            }
            print(&out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
