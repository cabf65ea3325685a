//! Benchmark helper: creates (or removes) one vfs layer in an existing home.
//!
//! ```text
//! vfs_create <home> create <id> [<parent>]
//! vfs_create <home> remove <id>
//! ```
//!
//! The vfs layout is the reference's, so `<home>` may be the `vfs/` directory
//! of a store written by `containers-storage -s vfs`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: vfs_create <home> create <id> [<parent>] | remove <id>";
    let (home, verb, id) = match args.as_slice() {
        [_, home, verb, id, ..] => (PathBuf::from(home), verb.as_str(), id.clone()),
        _ => return Err(usage.into()),
    };
    let d = strata_driver::vfs::init(&strata_driver::InitOptions {
        home,
        ..Default::default()
    })?;
    match verb {
        "create" => d.create(&strata_driver::CreateRequest {
            id,
            parent: args.get(4).cloned(),
            ..Default::default()
        })?,
        "remove" => d.remove(&id)?,
        _ => return Err(usage.into()),
    }
    Ok(())
}
