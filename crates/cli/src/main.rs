//! `strata`: the command-line front end of strata's layer store, accepting
//! the commands, flags and output formats of `containers-storage`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("version") => {
            println!("Version: {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(cmd) => {
            eprintln!("strata: command {cmd:?} is not yet supported");
            ExitCode::from(125)
        }
        None => {
            eprintln!("usage: strata COMMAND [OPTIONS]");
            ExitCode::from(2)
        }
    }
}
