//! The `smtpsend` binary: parse arguments, run, turn the outcome into an exit status and
//! one line per failure on stderr.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use smtpsend::ExitStatus;
use smtpsend::cli::{self, Cli};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .and_then(|a| a.to_str())
        .unwrap_or("smtpsend")
        .to_string();
    let (args, dropped) = cli::filter_unknown_flags(args);
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                ExitStatus::Usage.code()
            } else {
                0
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let mut stderr = std::io::stderr();
    if cli.verbose > 0 {
        for flag in &dropped {
            let _ = writeln!(stderr, "smtpsend: note: unknown flag {flag} ignored");
        }
    }
    let status = match cli.mode(&argv0) {
        Err(msg) => {
            let _ = writeln!(stderr, "smtpsend: {msg}");
            ExitStatus::Usage
        }
        Ok(mode) => {
            let mut stdin = std::io::stdin().lock();
            match smtpsend::submit::run(&cli, mode, &mut stdin, &mut stderr) {
                Ok(status) => status,
                Err(e) => {
                    for line in e.lines() {
                        let _ = writeln!(stderr, "smtpsend: {line}");
                    }
                    e.exit_status()
                }
            }
        }
    };
    ExitCode::from(status.code())
}
