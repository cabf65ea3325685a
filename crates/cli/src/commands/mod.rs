//! From parsed arguments to store calls and printed results, one module per
//! family of commands:
//!
//! - [`layers`]: create, import, delete, list and examine layers;
//! - [`names`]: names, metadata and existence of a layer (the commands the
//!   reference also takes for images and containers);
//! - [`diffs`]: changes, diff, diffsize and applydiff;
//! - [`mounts`]: mount, unmount, mounted;
//! - [`data`]: big-data items of a layer;
//! - [`copy`]: files copied into a layer;
//! - [`admin`]: status, wipe, shutdown, version, completion;
//! - [`check`]: check and repair.
//!
//! - [`images`]: create, list, examine and delete images, their big data;
//! - [`containers`]: create, list, examine and delete containers, their big
//!   data and directories.
//!
//! The helpers here are what several families share: the store opened from
//! the global options, the input of a command ([`input`]), big data read
//! and written ([`read_data`], [`write_data`]), the reference's wording of
//! errors ([`reference_message`]) and the loop over several items
//! ([`Each`]).

mod admin;
mod check;
mod containers;
mod copy;
mod data;
mod diffs;
mod images;
mod layers;
mod mounts;
mod names;
mod progress;
mod transfer;

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use strata_store::{Error, Kind, NameOp, Safety, Store, StoreOptions};

use crate::args::{Cli, Cmd, MetadataSource};
use crate::output::{self, go_quote};

fn open(cli: &Cli) -> Result<Store> {
    let mut opts = StoreOptions::load().context("loading storage configuration")?;
    if let Some(g) = &cli.graph {
        opts.graph_root = g.clone();
    }
    if let Some(r) = &cli.run {
        opts.run_root = r.clone();
    }
    if let Some(d) = &cli.driver {
        opts.set_driver(d);
    }
    if !cli.storage_opt.is_empty() {
        opts.driver_options = cli.storage_opt.clone();
    }
    if matches!(cli.cmd, Cmd::Check(_)) {
        // A store left damaged must open for check to report it.
        return Store::open_for_check(&opts).context("error initializing");
    }
    Store::open(&opts).context("error initializing")
}

/// Runs one command; `Ok` carries the exit status.
pub fn run(cli: Cli) -> Result<ExitCode> {
    // These need no store.
    match &cli.cmd {
        Cmd::Completion { shell } => return admin::completion(*shell),
        Cmd::Version(o) => return admin::version(o),
        _ => {}
    }
    let s = open(&cli)?;
    dispatch(&s, cli.cmd)
}

fn dispatch(s: &Store, cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::CreateLayer(o) => layers::create(s, &o),
        Cmd::ImportLayer(o) => layers::import(s, &o),
        Cmd::ImportImage(o) => transfer::import_image(s, &o),
        Cmd::ExportImage(o) => transfer::export_image(s, &o),
        Cmd::DeleteLayer(o) => layers::delete(s, &o, Safety::Checked),
        Cmd::Delete(o) => layers::delete(s, &o, Safety::Unchecked),
        Cmd::Layers(o) => layers::list(s, &o),
        Cmd::Layer(o) => layers::examine(s, &o),
        Cmd::LayerParentOwners(o) => layers::parent_owners(s, &o),
        Cmd::Exists(o) => names::exists(s, &o),
        Cmd::Check(o) => check::run(s, &o),
        Cmd::Metadata(o) => names::metadata(s, &o),
        Cmd::SetMetadata(o) => names::set_metadata(s, &o),
        Cmd::GetNames(o) => names::get(s, &o),
        Cmd::AddNames(o) => names::change(s, &o, NameOp::Append),
        Cmd::SetNames(o) => names::change(s, &o, NameOp::Set),
        Cmd::Changes(o) => diffs::changes(s, &o),
        Cmd::Diff(o) => diffs::diff(s, &o),
        Cmd::Diffsize(o) => diffs::size(s, &o),
        Cmd::ApplyDiff(o) => diffs::apply(s, &o),
        Cmd::Mount(o) => mounts::mount(s, &o),
        Cmd::Unmount(o) => mounts::unmount(s, &o),
        Cmd::Mounted(o) => mounts::mounted(s, &o),
        Cmd::ListLayerData(o) => data::list(s, &o),
        Cmd::GetLayerData(o) => data::get(s, &o),
        Cmd::SetLayerData(o) => data::set(s, &o),
        Cmd::Copy(o) => copy::run(s, &o),
        Cmd::CreateImage(o) => images::create(s, &o),
        Cmd::Images(o) => images::list(s, &o),
        Cmd::ImagesByDigest(o) => images::by_digest(s, &o),
        Cmd::Image(o) => images::examine(s, &o),
        Cmd::ListImageData(o) => images::list_data(s, &o),
        Cmd::GetImageData(o) => images::get_data(s, &o),
        Cmd::GetImageDataSize(o) => images::data_size(s, &o),
        Cmd::GetImageDataDigest(o) => images::data_digest(s, &o),
        Cmd::SetImageData(o) => images::set_data(s, &o),
        Cmd::DeleteImage(o) => images::delete(s, &o),
        Cmd::CreateContainer(o) => containers::create(s, &o),
        Cmd::Containers(o) => containers::list(s, &o),
        Cmd::Container(o) => containers::examine(s, &o),
        Cmd::ListContainerData(o) => containers::list_data(s, &o),
        Cmd::GetContainerData(o) => containers::get_data(s, &o),
        Cmd::GetContainerDataSize(o) => containers::data_size(s, &o),
        Cmd::GetContainerDataDigest(o) => containers::data_digest(s, &o),
        Cmd::SetContainerData(o) => containers::set_data(s, &o),
        Cmd::GetContainerDir(o) => containers::dir(s, &o, false),
        Cmd::GetContainerRunDir(o) => containers::dir(s, &o, true),
        Cmd::ContainerParentOwners(o) => containers::parent_owners(s, &o),
        Cmd::DeleteContainer(o) => containers::delete(s, &o),
        Cmd::Status(o) => admin::status(s, &o),
        Cmd::Wipe(o) => admin::wipe(s, &o),
        Cmd::Shutdown(o) => admin::shutdown(s, &o),
        Cmd::Version(_) | Cmd::Completion { .. } | Cmd::Other(_) => {
            Err(anyhow!("internal error: command handled earlier"))
        }
    }
}

/// The input of a command: the named file, else stdin, behind a progress
/// bar on a terminal (`what` names the work in it).
fn input(file: Option<&Path>, what: &str) -> Result<Box<dyn Read + Send>> {
    let (reader, size): (Box<dyn Read + Send>, _) = match file {
        Some(f) => (
            Box::new(std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?),
            std::fs::metadata(f).ok().map(|m| m.len()),
        ),
        None => (Box::new(std::io::stdin()), None),
    };
    Ok(progress::reader(reader, size, what))
}

/// A command run on each of several items, in order, every item tried
/// even after a failure; the first failure is the command's error.
struct Each<'a, T> {
    results: Vec<(&'a str, strata_store::Result<T>)>,
}

impl<'a, T> Each<'a, T> {
    fn run(items: &'a [String], mut op: impl FnMut(&str) -> strata_store::Result<T>) -> Self {
        Self {
            results: items.iter().map(|i| (i.as_str(), op(i))).collect(),
        }
    }

    /// The items that succeeded, with their results.
    fn ok(&self) -> impl Iterator<Item = (&'a str, &T)> + '_ {
        self.results
            .iter()
            .filter_map(|(i, r)| r.as_ref().ok().map(|v| (*i, v)))
    }

    /// Whether every item succeeded.
    fn all_ok(&self) -> bool {
        self.results.iter().all(|(_, r)| r.is_ok())
    }

    /// Prints `[{"id": …, <fields of a success>, "error": ""|"…"}, …]`, the
    /// per-item report of mount, unmount and mounted; a failed item has
    /// each of `empty` as an empty string, as the reference's report does.
    fn print_report(
        &self,
        fields: impl Fn(&T) -> Vec<(&'static str, String)>,
        empty: &[&'static str],
    ) -> Result<()> {
        let records: Vec<serde_json::Value> = self
            .results
            .iter()
            .map(|(id, r)| {
                let mut rec = serde_json::Map::new();
                rec.insert("id".into(), (*id).into());
                let error = match r {
                    Ok(v) => {
                        for (k, f) in fields(v) {
                            rec.insert(k.into(), f.into());
                        }
                        String::new()
                    }
                    Err(e) => {
                        for k in empty {
                            rec.insert((*k).into(), "".into());
                        }
                        reference_message(e)
                    }
                };
                rec.insert("error".into(), error.into());
                rec.into()
            })
            .collect();
        output::print_json(&records)
    }

    /// Success, or the first failure.
    fn finish(self) -> Result<ExitCode> {
        match self.results.into_iter().find_map(|(_, r)| r.err()) {
            None => Ok(ExitCode::SUCCESS),
            Some(e) => Err(e.into()),
        }
    }
}

/// Prints the reference's message for a failure; the command fails.
fn fail(msg: impl std::fmt::Display) -> Result<ExitCode> {
    eprintln!("{msg}");
    Ok(ExitCode::FAILURE)
}

/// A store error as the reference words it (most messages are the
/// library's own; these differ because the reference's name no key).
fn reference_message(e: &Error) -> String {
    match e {
        Error::Unknown { kind, .. } => format!("{kind} not known"),
        Error::DuplicateId {
            kind: Kind::Container,
            ..
        } => "that ID is already in use".into(),
        Error::DuplicateName {
            kind: Kind::Container,
            name,
            owner,
        } => format!(
            "the container name {} is already in use by {owner}. You have to remove that \
             container to be able to reuse that name: that name is already in use",
            go_quote(name.as_bytes())
        ),
        Error::InUse {
            kind: Kind::Image,
            user,
            ..
        } => format!("image used by {user}: image is in use by a container"),
        Error::Mounted(_) => "a layer is mounted: layer is in use by a container".into(),
        Error::HasChildren(_, kid) => format!("used by layer {kid}: layer has children"),
        Error::SizeUnknown { .. } => "size is not known".into(),
        Error::DigestUnknown { .. } => "could not compute digest of item".into(),
        other => other.to_string(),
    }
}

/// The `--metadata-file` (which wins) or `--metadata` of a command.
fn metadata_arg(m: &MetadataSource) -> Result<Option<String>> {
    match (&m.file, &m.metadata) {
        (Some(f), _) => Ok(Some(
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        )),
        (None, m) => Ok(m.clone()),
    }
}

/// Big data from `--file`, else stdin.
fn read_data(file: Option<&Path>) -> Result<Vec<u8>> {
    match file {
        Some(f) => std::fs::read(f).with_context(|| format!("reading {}", f.display())),
        None => {
            let mut v = Vec::new();
            std::io::stdin().read_to_end(&mut v)?;
            Ok(v)
        }
    }
}

/// Big data to `--file`, else stdout.
fn write_data(file: Option<&Path>, data: &[u8]) -> Result<ExitCode> {
    match file {
        Some(f) => std::fs::write(f, data).with_context(|| format!("writing {}", f.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(data)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Success, or failure without a message (the command printed its own).
fn status(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
