//! Big-data items of a layer: `list-layer-data`, `get-layer-data`,
//! `set-layer-data`.

use std::process::ExitCode;

use anyhow::Result;
use strata_store::Store;

use super::{read_data, write_data};
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
    write_data(o.file.as_deref(), &data)
}

/// `set-layer-data`: from `--file` or stdin.
pub(super) fn set(s: &Store, o: &SetDataOpts) -> Result<ExitCode> {
    let data = read_data(o.file.as_deref())?;
    s.set_big_data(&o.layer, &o.name, &data)?;
    Ok(ExitCode::SUCCESS)
}
