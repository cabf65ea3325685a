//! Differences between layers: `changes`, `diff`, `diffsize`, and
//! `applydiff`, which applies one.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use strata_store::{Compression, Store};

use super::{input, progress};
use crate::args::{ApplyDiffOpts, ChangesOpts, DiffOpts, Pair};
use crate::output::{self, print};

/// `changes`.
pub(super) fn changes(s: &Store, o: &ChangesOpts) -> Result<ExitCode> {
    let ch = s.changes(o.pair.reference.as_deref(), &o.pair.layer)?;
    if o.json.json {
        print(&format!("{}\n", output::changes_json(&ch)))?;
    } else {
        print(&output::changes_text(&ch))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `diff`: the changes as a layer tar, to `--file` or stdout.
pub(super) fn diff(s: &Store, o: &DiffOpts) -> Result<ExitCode> {
    if o.bzip2 || o.xz {
        bail!("diff: bzip2 and xz compression are not currently supported");
    }
    let compression = if o.gzip {
        Some(Compression::Gzip)
    } else if o.uncompressed {
        Some(Compression::None)
    } else {
        None
    };
    let mut sink: Box<dyn Write> = match &o.file {
        Some(f) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(f).with_context(|| format!("creating {}", f.display()))?,
        )),
        None => Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout().lock(),
        )),
    };
    let mut out = progress::writer(&mut sink);
    s.diff(o.reference.as_deref(), &o.layer, compression, &mut out)?;
    drop(out);
    sink.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `diffsize`.
pub(super) fn size(s: &Store, o: &Pair) -> Result<ExitCode> {
    let n = s.diff_size(o.reference.as_deref(), &o.layer)?;
    print(&format!("{n}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// `applydiff`: a layer tar from `--file` or stdin applied onto a layer.
pub(super) fn apply(s: &Store, o: &ApplyDiffOpts) -> Result<ExitCode> {
    let mut diff = input(o.file.as_deref(), "applying")?;
    s.apply_diff(&o.layer, &mut diff)?;
    Ok(ExitCode::SUCCESS)
}
