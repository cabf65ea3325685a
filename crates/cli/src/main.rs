//! `strata`: the command-line front end of strata's layer store, accepting
//! the commands, flags and output formats of `containers-storage`.
//!
//! Parsing happens in two stages: [`args`] is what the user typed;
//! [`commands`] turns it into store calls and prints the results.

mod args;
mod commands;
mod output;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

/// Exit status for usage errors, as the reference uses.
const EXIT_USAGE: u8 = 125;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind as K;
            return match e.kind() {
                K::DisplayHelp
                | K::DisplayVersion
                | K::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                K::InvalidSubcommand => {
                    let cmd = std::env::args()
                        .skip(1)
                        .find(|a| !a.starts_with('-'))
                        .unwrap_or_default();
                    eprintln!("{cmd}: unrecognized command.");
                    ExitCode::FAILURE
                }
                _ => {
                    let _ = e.print();
                    ExitCode::from(EXIT_USAGE)
                }
            };
        }
    };
    init_tracing(cli.debug);
    if let args::Cmd::Other(v) = &cli.cmd {
        let name = v.first().map(String::as_str).unwrap_or("");
        eprintln!("{name}: unrecognized command.");
        return ExitCode::FAILURE;
    }
    let debug = cli.debug;
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            if debug {
                eprintln!("Error: {e:?}");
            } else {
                eprintln!("{}", one_line(&e));
            }
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once (a message that
/// already quotes its cause is not repeated).
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if !msg.contains(&c) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&c);
        }
    }
    msg.replace('\n', " ")
}

fn init_tracing(debug: bool) {
    let level = if debug { "debug" } else { "off" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
