//! Progress bars on a terminal's stderr for long imports and diffs.

use std::io::{IsTerminal, Read, Write};

/// `r` behind a bar (bytes, rate, and with a known `size` the rest).
pub(super) fn reader(
    r: Box<dyn Read + Send>,
    size: Option<u64>,
    what: &str,
) -> Box<dyn Read + Send> {
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

/// Clears the bar at the end of the input.
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

/// `w` behind a spinner, unless the output itself goes to the terminal.
pub(super) fn writer<'a>(w: &'a mut Box<dyn Write>) -> Box<dyn Write + 'a> {
    if !std::io::stderr().is_terminal() || std::io::stdout().is_terminal() {
        return Box::new(w);
    }
    let pb = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template("{spinner} diff {bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    Box::new(pb.wrap_write(w))
}
