//! Images in and out: `import-image`, `export-image`.

use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{Context, Result};
use strata_image::export::{export_from_store, Compress};
use strata_image::{import, Choice, ImportOptions, Location, Platform, Progress};
use strata_store::Store;

use crate::args::{ExportImageOpts, ImportImageOpts};
use crate::output::print;

/// `import-image [--name N]... [--platform P] SOURCE`: prints the image ID.
pub(super) fn import_image(s: &Store, o: &ImportImageOpts) -> Result<ExitCode> {
    let source = o.source.as_str();
    let location = Location::parse(source)?;
    let opts = ImportOptions {
        names: o.names.clone(),
        choice: Choice {
            platform: o.platform.as_deref().map(Platform::parse).transpose()?,
        },
    };
    let bars = Bars::new();
    let report = |p: Progress| bars.on(p);
    let done =
        import(s, &location, &opts, &report).with_context(|| format!("importing {source}"))?;
    bars.clear();
    print(&format!("{}\n", done.id))?;
    Ok(ExitCode::SUCCESS)
}

/// `export-image [--compress C] IMAGE DEST`.
pub(super) fn export_image(s: &Store, o: &ExportImageOpts) -> Result<ExitCode> {
    let (image, dest) = (o.image.as_str(), o.dest.as_str());
    let location = Location::parse(dest)?;
    let compress = o.compress.as_deref().map(Compress::parse).transpose()?;
    export_from_store(s, image, &location, compress)
        .with_context(|| format!("exporting {image} to {dest}"))?;
    Ok(ExitCode::SUCCESS)
}

/// A progress bar per layer while stderr is a terminal.
struct Bars {
    multi: Option<indicatif::MultiProgress>,
    bars: Mutex<Vec<indicatif::ProgressBar>>,
}

impl Bars {
    fn new() -> Self {
        use std::io::IsTerminal;
        Bars {
            multi: std::io::stderr()
                .is_terminal()
                .then(indicatif::MultiProgress::new),
            bars: Mutex::new(Vec::new()),
        }
    }

    fn on(&self, p: Progress) {
        let Some(multi) = &self.multi else { return };
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        match p {
            Progress::LayerStart { id, size, .. } => {
                let style = indicatif::ProgressStyle::with_template(
                    "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
                let bar = multi.add(indicatif::ProgressBar::new(size).with_style(style));
                bar.set_message(format!("layer {}", &id[..12.min(id.len())]));
                bars.push(bar);
            }
            Progress::LayerBytes { index, read } => {
                if let Some(b) = bars.get(index) {
                    b.set_position(read);
                }
            }
            Progress::LayerDone { index, reused } => {
                if let Some(b) = bars.get(index) {
                    if reused {
                        b.set_message(format!("{} (already there)", b.message()));
                    }
                    b.finish();
                }
            }
            Progress::ImageDone { .. } => {}
        }
    }

    fn clear(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}
