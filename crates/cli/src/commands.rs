//! From parsed arguments to store calls and printed results.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use strata_store::{
    Force, LayerMaps, MapChoice, MountRequest, NewLayer, Safety, Store, StoreOptions,
};

use crate::args::{Cli, Cmd, DiffOpts, ExistsOpts, LayerOpts};
use crate::output::{self, print};

mod check;
mod copy;

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
    if let Cmd::Completion { shell } = &cli.cmd {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(*shell, &mut cmd, "strata", &mut std::io::stdout());
        return Ok(ExitCode::SUCCESS);
    }
    if let Cmd::Version { json } = &cli.cmd {
        let pairs = [("Version", env!("CARGO_PKG_VERSION"))];
        if json.json {
            let v: Vec<[&str; 2]> = pairs.iter().map(|(k, v)| [*k, *v]).collect();
            print(&format!("{}\n", output::json(&v)))?;
        } else {
            for (k, v) in pairs {
                print(&format!("{k}: {v}\n"))?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut s = open(&cli)?;
    let code = dispatch(&mut s, cli.cmd)?;
    Ok(code)
}

fn dispatch(s: &mut Store, cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::CreateLayer(o) => put_layer(s, &o, None),
        Cmd::ImportLayer { file, opts } => {
            let input: Box<dyn Read + Send> = match &file {
                Some(f) => Box::new(
                    std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?,
                ),
                None => Box::new(std::io::stdin()),
            };
            let size = file
                .as_ref()
                .and_then(|f| std::fs::metadata(f).ok())
                .map(|m| m.len());
            let mut input = progress_reader(input, size, "importing");
            put_layer(s, &opts, Some(&mut input))
        }
        Cmd::ApplyDiff { file, layer, .. } => {
            let input: Box<dyn Read + Send> = match &file {
                Some(f) => Box::new(
                    std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?,
                ),
                None => Box::new(std::io::stdin()),
            };
            let size = file
                .as_ref()
                .and_then(|f| std::fs::metadata(f).ok())
                .map(|m| m.len());
            let mut input = progress_reader(input, size, "applying");
            s.apply_diff(&layer, &mut input)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Mount {
            label,
            opt,
            ro,
            json,
            layers,
        } => {
            let mut options: Vec<String> = opt
                .map(|o| {
                    o.split(',')
                        .filter(|x| !x.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if ro {
                options.push("ro".into());
            }
            let req = MountRequest {
                mount_label: label,
                options,
            };
            let mut results = Vec::new();
            let mut failed = None;
            for l in &layers {
                match s.mount(l, &req) {
                    Ok(p) => {
                        if !json.json {
                            print(&format!("{}\n", p.display()))?;
                        }
                        results.push(serde_json::json!({"id": l, "mountpoint": p.display().to_string(), "error": ""}));
                    }
                    Err(e) => {
                        results.push(serde_json::json!({"id": l, "error": e.to_string()}));
                        failed.get_or_insert(e);
                    }
                }
            }
            if json.json {
                print(&format!("{}\n", output::json(&results)))?;
            }
            finish(failed)
        }
        Cmd::Unmount {
            force,
            json,
            layers,
        } => {
            let force = if force.force { Force::Yes } else { Force::No };
            let mut results = Vec::new();
            let mut failed = None;
            for l in &layers {
                match s.unmount(l, force) {
                    Ok(still) => {
                        if !still {
                            print(&format!("{l} mountpoint unmounted\n"))?;
                        }
                        results.push(serde_json::json!({"id": l, "error": ""}));
                    }
                    Err(e) => {
                        results.push(serde_json::json!({"id": l, "error": e.to_string()}));
                        failed.get_or_insert(e);
                    }
                }
            }
            if json.json {
                print(&format!("{}\n", output::json(&results)))?;
            }
            finish(failed)
        }
        Cmd::Mounted { json, layers } => {
            let mut results = Vec::new();
            let mut failed = None;
            for l in &layers {
                match s.mounted(l) {
                    Ok((n, _)) => {
                        if n > 0 {
                            print(&format!("{l} mounted\n"))?;
                        }
                        results.push(serde_json::json!({"id": l, "error": ""}));
                    }
                    Err(e) => {
                        results.push(serde_json::json!({"id": l, "error": e.to_string()}));
                        failed.get_or_insert(e);
                    }
                }
            }
            if json.json {
                print(&format!("{}\n", output::json(&results)))?;
            }
            finish(failed)
        }
        Cmd::Changes {
            json,
            layer,
            reference,
        } => {
            let ch = s.changes(reference.as_deref(), &layer)?;
            if json.json {
                print(&format!("{}\n", output::changes_json(&ch)))?;
            } else {
                print(&output::changes_text(&ch))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Diff(o) => diff(s, o),
        Cmd::Diffsize { layer, reference } => {
            let n = s.diff_size(reference.as_deref(), &layer)?;
            print(&format!("{n}\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::DeleteLayer { layers, .. } => delete(s, &layers, Safety::Checked),
        Cmd::Delete { layers, .. } => delete(s, &layers, Safety::Unchecked),
        Cmd::Layers { json, tree } => {
            let layers = s.layers()?;
            if json.json {
                print(&format!("{}\n", output::json(&layers)))?;
            } else if tree {
                let mounts = s.mounts()?;
                print(&output::layers_tree(&layers, &mounts))?;
            } else {
                let mut out = String::new();
                for l in &layers {
                    out.push_str(&format!("{}\n", l.id));
                    for n in &l.names {
                        out.push_str(&format!("\tname: {n}\n"));
                    }
                }
                print(&out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Layer { json, layers } => {
            let mut found = Vec::new();
            let mut failed = None;
            for l in &layers {
                match s.layer(l) {
                    Ok(r) => found.push(r),
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            if json.json {
                print(&format!("{}\n", output::json(&found)))?;
            } else {
                for r in &found {
                    print(&output::layer_text(r))?;
                }
            }
            finish(failed)
        }
        Cmd::Exists(o) => exists(s, o),
        Cmd::Status { json } => {
            let st = s.status();
            if json.json {
                let v: Vec<[&str; 2]> = st.iter().map(|(k, v)| [k.as_str(), v.as_str()]).collect();
                print(&format!("{}\n", output::json(&v)))?;
            } else {
                let mut out = String::new();
                for (k, v) in &st {
                    out.push_str(&format!("{k}: {v}\n"));
                }
                print(&out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Wipe { json } => {
            s.wipe()?;
            if json.json {
                print("\"\"\n")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Shutdown { force, .. } => {
            s.shutdown(if force.force { Force::Yes } else { Force::No })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Metadata {
            quiet,
            json,
            layers,
        } => {
            let mut map = serde_json::Map::new();
            let mut failed = None;
            for l in &layers {
                match s.layer(l) {
                    Ok(r) => {
                        if !json.json {
                            if quiet {
                                print(&format!("{}\n", r.metadata))?;
                            } else {
                                print(&format!("{l}: {}\n", r.metadata))?;
                            }
                        }
                        map.insert(l.clone(), r.metadata.into());
                    }
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            if json.json {
                let sorted: std::collections::BTreeMap<_, _> = map.into_iter().collect();
                print(&format!("{}\n", output::json(&sorted)))?;
            }
            finish(failed)
        }
        Cmd::SetMetadata {
            metadata,
            file,
            layer,
        } => {
            let m = match (metadata, file) {
                (_, Some(f)) => std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?,
                (Some(m), None) => m,
                (None, None) => {
                    bail!("set-metadata: no metadata given (use --metadata or --metadata-file)")
                }
            };
            s.set_metadata(&layer, &m)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::GetNames { json, layers } => {
            let mut all = Vec::new();
            for l in &layers {
                all.extend(s.layer(l)?.names);
            }
            if json.json {
                print(&format!("{}\n", output::json(&all)))?;
            } else {
                let mut out = String::new();
                for n in &all {
                    out.push_str(&format!("{n}\n"));
                }
                print(&out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::AddNames(o) => {
            s.add_names(&o.layer, &o.names)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::SetNames(o) => {
            s.set_names(&o.layer, &o.names)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::ListLayerData { json, layer } => {
            let names = s.layer(&layer)?.big_data_names;
            if json.json {
                print(&format!("{}\n", output::json(&names)))?;
            } else {
                let mut out = String::new();
                for n in &names {
                    out.push_str(&format!("{n}\n"));
                }
                print(&out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::GetLayerData { file, layer, name } => {
            let data = s.big_data(&layer, &name)?;
            match file {
                Some(f) => {
                    std::fs::write(&f, &data).with_context(|| format!("writing {}", f.display()))?
                }
                None => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&data)?;
                    out.flush()?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::SetLayerData { file, layer, name } => {
            let data = match file {
                Some(f) => std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?,
                None => {
                    let mut v = Vec::new();
                    std::io::stdin().read_to_end(&mut v)?;
                    v
                }
            };
            s.set_big_data(&layer, &name, &data)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Copy { chown, paths } => copy::run(s, chown.as_deref(), &paths),
        Cmd::LayerParentOwners { json, layers } => {
            for l in &layers {
                let (uids, gids) = s.layer_parent_owners(l)?;
                if json.json {
                    let j = serde_json::json!({
                        "ID": l,
                        "UIDs": if uids.is_empty() { serde_json::Value::Null } else { uids.clone().into() },
                        "GIDs": if gids.is_empty() { serde_json::Value::Null } else { gids.clone().into() },
                    });
                    print(&format!("{}\n", output::json(&j)))?;
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
        Cmd::Check(o) => check::run(s, &o),
        Cmd::Version { .. } | Cmd::Completion { .. } | Cmd::Other(_) => {
            Err(anyhow!("internal error: command handled earlier"))
        }
    }
}

fn finish(failed: Option<strata_store::Error>) -> Result<ExitCode> {
    match failed {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => Err(e.into()),
    }
}

fn layer_maps(o: &LayerOpts) -> Result<LayerMaps> {
    let side = |host: bool, explicit: Option<&String>, sub: Option<&String>, file: &str| {
        if host {
            return Ok::<_, anyhow::Error>(MapChoice::Host);
        }
        if let Some(m) = explicit {
            return Ok(MapChoice::Explicit(strata_idmap::parse_maps(m)?));
        }
        if let Some(name) = sub {
            return Ok(MapChoice::Explicit(strata_idmap::read_subid_maps(
                Path::new(file),
                name,
            )?));
        }
        Ok(MapChoice::Inherit)
    };
    Ok(LayerMaps {
        uids: side(
            o.hostuidmap,
            o.uidmap.as_ref(),
            o.subuidmap.as_ref(),
            "/etc/subuid",
        )?,
        gids: side(
            o.hostgidmap,
            o.gidmap.as_ref(),
            o.subgidmap.as_ref(),
            "/etc/subgid",
        )?,
    })
}

fn put_layer(
    s: &mut Store,
    o: &LayerOpts,
    diff: Option<&mut (dyn Read + Send)>,
) -> Result<ExitCode> {
    let req = NewLayer {
        id: o.id.clone(),
        parent: o.parent.clone(),
        names: o.names.clone(),
        mount_label: o.label.clone(),
        access: if o.readonly {
            strata_driver::Access::ReadOnly
        } else {
            strata_driver::Access::ReadWrite
        },
        maps: layer_maps(o)?,
        ..Default::default()
    };
    let layer = match diff {
        Some(d) => s.import_layer(&req, d)?,
        None => s.create_layer(&req)?,
    };
    if o.json.json {
        print(&format!("{}\n", output::json(&layer)))?;
    } else {
        let mut out = format!("{}\n", layer.id);
        for n in &layer.names {
            out.push_str(&format!("\t{n}\n"));
        }
        print(&out)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn delete(s: &mut Store, layers: &[String], safety: Safety) -> Result<ExitCode> {
    let mut failed = false;
    for l in layers {
        if let Err(e) = s.delete_layer(l, safety) {
            match e.kind() {
                strata_store::ErrorKind::NotFound => eprintln!("{l}: identifier is not a layer"),
                _ => eprintln!("{l}: {e}"),
            }
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn exists(s: &mut Store, o: ExistsOpts) -> Result<ExitCode> {
    let mut all = true;
    let mut map = std::collections::BTreeMap::new();
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
        print(&format!("{}\n", output::json(&map)))?;
    }
    Ok(if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn diff(s: &mut Store, o: DiffOpts) -> Result<ExitCode> {
    if o.bzip2 || o.xz {
        bail!("diff: bzip2 and xz compression are not currently supported");
    }
    let compression = if o.gzip {
        Some(strata_store::Compression::Gzip)
    } else if o.uncompressed {
        Some(strata_store::Compression::None)
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
    let mut out = progress_writer(&mut sink);
    s.diff(o.reference.as_deref(), &o.layer, compression, &mut out)?;
    drop(out);
    sink.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Shows a progress bar (bytes and rate) on a terminal's stderr.
fn progress_reader(r: Box<dyn Read + Send>, size: Option<u64>, what: &str) -> Box<dyn Read + Send> {
    if !std::io::stderr().is_terminal() {
        return r;
    }
    let pb = match size {
        Some(n) => indicatif::ProgressBar::new(n).with_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        ),
        None => indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        ),
    };
    pb.set_message(what.to_string());
    Box::new(Finishing(pb.wrap_read(r)))
}

struct Finishing<R>(indicatif::ProgressBarIter<R>);

impl<R: Read> Read for Finishing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        if n == 0 {
            self.0.progress.finish_and_clear();
        }
        Ok(n)
    }
}

fn progress_writer<'a>(w: &'a mut Box<dyn Write>) -> Box<dyn Write + 'a> {
    if !std::io::stderr().is_terminal() || std::io::stdout().is_terminal() {
        return Box::new(w);
    }
    let pb = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template("{spinner} diff {bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    Box::new(pb.wrap_write(w))
}
