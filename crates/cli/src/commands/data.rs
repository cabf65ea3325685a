//! Big-data items of a layer: `list-layer-data`, `get-layer-data`,
//! `set-layer-data`.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use strata_store::Store;

use crate::args::{DataOpts, ListDataOpts, SetDataOpts};
use crate::output::{print_json, print_lines};

/// `list-layer-data`.
pub(super) fn list(s: &Store, o: &ListDataOpts) -> Result<ExitCode> {
    let names = s.layer(&o.layer)?.big_data_names;
    if o.json.json {
        print_json(&names)?;
    } else {
        print_lines(&names)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `get-layer-data`: to `--file` or stdout.
pub(super) fn get(s: &Store, o: &DataOpts) -> Result<ExitCode> {
    let data = s.big_data(&o.layer, &o.name)?;
    match &o.file {
        Some(f) => std::fs::write(f, &data).with_context(|| format!("writing {}", f.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&data)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `set-layer-data`: from `--file` or stdin.
pub(super) fn set(s: &Store, o: &SetDataOpts) -> Result<ExitCode> {
    let data = match &o.file {
        Some(f) => std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
        None => {
            let mut v = Vec::new();
            std::io::stdin().read_to_end(&mut v)?;
            v
        }
    };
    s.set_big_data(&o.layer, &o.name, &data)?;
    Ok(ExitCode::SUCCESS)
}
