//! Containers: `create-container`, `containers`, `container`,
//! `delete-container`, the container big-data commands, its directories
//! and `container-parent-owners`, with the reference's outputs and
//! messages.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use strata_store::{Container, Durability, ErrorKind, NewContainer, Store};

use super::layers::layer_maps;
use super::{fail, metadata_arg, read_data, reference_message, write_data};
use crate::args::{
    ContainersOpts, CreateContainerOpts, DataKey, DataOpts, DeleteOpts, Items, ListDataOpts,
    SetDataOpts,
};
use crate::output::{go_list, go_quote, print, print_created, print_json, print_lines};

/// `create-container IMAGE`: the new ID and a newline, then a tab before
/// each name and no final newline (as the reference prints it).
pub(super) fn create(s: &Store, o: &CreateContainerOpts) -> Result<ExitCode> {
    let req = NewContainer {
        id: o.id.clone(),
        image: Some(o.image.clone()).filter(|i| !i.is_empty()),
        names: o.names.clone(),
        metadata: metadata_arg(&o.metadata)?.unwrap_or_default(),
        durability: if o.volatile {
            Durability::Volatile
        } else {
            Durability::Durable
        },
        maps: layer_maps(&o.maps)?,
        ..Default::default()
    };
    let c = match s.containers().create(&req) {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return fail(format!(
                "locating image with ID {}: image not known",
                go_quote(o.image.as_bytes())
            ))
        }
        Err(e) => return fail(reference_message(&e)),
    };
    print_created(o.json.json, &c, &c.id, &c.names, "")?;
    Ok(ExitCode::SUCCESS)
}

/// `containers`.
pub(super) fn list(s: &Store, o: &ContainersOpts) -> Result<ExitCode> {
    let all = s.containers().list()?;
    if o.json.json {
        print_json(&all)?;
    } else {
        let mut out = String::new();
        for c in &all {
            out.push_str(&format!("{}\n", c.id));
            for n in &c.names {
                out.push_str(&format!("\tname: {n}\n"));
            }
            for k in &c.big_data_names {
                out.push_str(&format!("\tdata: {k}\n"));
            }
        }
        print(&out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `container ID…`: the containers found; an unknown one fails the command
/// silently.
pub(super) fn examine(s: &Store, o: &Items) -> Result<ExitCode> {
    let mut found = Vec::new();
    let mut ok = true;
    for key in &o.layers {
        match s.containers().lookup(key)? {
            Some(c) => found.push(c),
            None => ok = false,
        }
    }
    if o.json.json {
        print_json(&found)?;
    } else {
        for c in &found {
            print(&details(s, c)?)?;
        }
    }
    Ok(super::status(ok))
}

fn details(s: &Store, c: &Container) -> Result<String> {
    let mut out = format!("ID: {}\n", c.id);
    for n in &c.names {
        out.push_str(&format!("Name: {n}\n"));
    }
    out.push_str(&format!("Image: {}\n", c.image));
    if let Some(i) = s.images().lookup(&c.image)?.filter(|_| !c.image.is_empty()) {
        for n in &i.names {
            out.push_str(&format!("Image name: {n}\n"));
        }
    }
    match s.containers().size(&c.id) {
        Ok(n) => out.push_str(&format!("Size: {n}\n")),
        Err(e) => out.push_str(&format!("Size unknown: {}\n", reference_message(&e))),
    }
    out.push_str(&format!("Layer: {}\n", c.layer));
    for k in &c.big_data_names {
        out.push_str(&format!("Data: {k}\n"));
    }
    Ok(out)
}

fn unknown(e: &strata_store::Error) -> String {
    match e.kind() {
        ErrorKind::NotFound => "container not known".to_string(),
        _ => reference_message(e),
    }
}

/// `list-container-data CONTAINER`.
pub(super) fn list_data(s: &Store, o: &ListDataOpts) -> Result<ExitCode> {
    let c = match s.containers().get(&o.layer) {
        Ok(c) => c,
        Err(e) => return fail(unknown(&e)),
    };
    if o.json.json {
        print_json(&c.big_data_names)?;
    } else {
        print_lines(&c.big_data_names)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `get-container-data CONTAINER KEY`.
pub(super) fn get_data(s: &Store, o: &DataOpts) -> Result<ExitCode> {
    if let Err(e) = s.containers().get(&o.layer) {
        return fail(unknown(&e));
    }
    match s.containers().big_data(&o.layer, &o.name) {
        Ok(data) => write_data(o.file.as_deref(), &data),
        Err(strata_store::Error::Io { path, source, .. }) => {
            fail(format!("open {}: {}", path.display(), go_errno(&source)))
        }
        Err(e) => fail(reference_message(&e)),
    }
}

/// An I/O error as Go's `syscall.Errno` prints it.
fn go_errno(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        _ => e.to_string(),
    }
}

/// `get-container-data-size CONTAINER KEY`.
pub(super) fn data_size(s: &Store, o: &DataKey) -> Result<ExitCode> {
    if let Err(e) = s.containers().get(&o.key) {
        return fail(unknown(&e));
    }
    match s.containers().big_data_size(&o.key, &o.name) {
        Ok(n) => print(&format!("{n}\n")).map(|_| ExitCode::SUCCESS),
        Err(_) => fail("size is not known"),
    }
}

/// `get-container-data-digest CONTAINER KEY`.
pub(super) fn data_digest(s: &Store, o: &DataKey) -> Result<ExitCode> {
    if let Err(e) = s.containers().get(&o.key) {
        return fail(unknown(&e));
    }
    match s.containers().big_data_digest(&o.key, &o.name) {
        Ok(d) => print(&format!("{d}\n")).map(|_| ExitCode::SUCCESS),
        Err(_) => fail("could not compute digest of item"),
    }
}

/// `set-container-data CONTAINER KEY`: from `--file` or stdin.
pub(super) fn set_data(s: &Store, o: &SetDataOpts) -> Result<ExitCode> {
    if let Err(e) = s.containers().get(&o.layer) {
        return fail(unknown(&e));
    }
    if o.name.is_empty() {
        return fail(
            "can't set empty name for container big data item: not a valid name for a big data item",
        );
    }
    let data = read_data(o.file.as_deref())?;
    match s.containers().set_big_data(&o.layer, &o.name, &data) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => fail(reference_message(&e)),
    }
}

/// `get-container-dir` and `get-container-run-dir`: the directory
/// (created when missing).
pub(super) fn dir(s: &Store, o: &ListDataOpts, run: bool) -> Result<ExitCode> {
    let c = s.containers();
    let res = if run {
        c.run_dir(&o.layer)
    } else {
        c.dir(&o.layer)
    };
    match res {
        Ok(p) => print(&format!("{}\n", p.display())).map(|_| ExitCode::SUCCESS),
        Err(e) => fail(unknown(&e)),
    }
}

/// `container-parent-owners CONTAINER…`: an unknown container ends the
/// command without a message, as in the reference.
pub(super) fn parent_owners(s: &Store, o: &Items) -> Result<ExitCode> {
    for key in &o.layers {
        if s.containers().lookup(key)?.is_none() {
            return Ok(ExitCode::FAILURE);
        }
        let (uids, gids) = match s.containers().parent_owners(key) {
            Ok(v) => v,
            Err(e) => return fail(reference_message(&e)),
        };
        if o.json.json {
            let list = |ids: &[u32]| {
                if ids.is_empty() {
                    serde_json::Value::Null
                } else {
                    ids.into()
                }
            };
            print_json(&serde_json::json!({"ID": key, "UIDs": list(&uids), "GIDs": list(&gids)}))?;
        } else {
            print(&format!(
                "ID: {key}\nUIDs: {}\nGIDs: {}\n",
                go_list(&uids),
                go_list(&gids)
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `delete-container CONTAINER…`: `CONTAINER: ERROR` on stderr for each
/// failure; with `--json`, `{"CONTAINER": ""|"ERROR", …}`.
pub(super) fn delete(s: &Store, o: &DeleteOpts) -> Result<ExitCode> {
    let mut report = BTreeMap::new();
    let mut ok = true;
    for key in &o.layers {
        let msg = match s.containers().delete(key) {
            Ok(()) => String::new(),
            Err(e) if e.kind() == ErrorKind::NotFound => "identifier is not a container".into(),
            Err(e) => reference_message(&e),
        };
        if !msg.is_empty() {
            ok = false;
            if !o.json.json {
                eprintln!("{key}: {msg}");
            }
        }
        report.insert(key.clone(), msg);
    }
    if o.json.json {
        print_json(&report)?;
    }
    Ok(super::status(ok))
}
