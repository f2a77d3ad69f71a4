//! The `smtpsend` binary: parse arguments, run, turn the outcome into an exit status and
//! one line per failure on stderr.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use smtpsend::ExitStatus;
use smtpsend::app::cli::{self, Cli};
use smtpsend::app::settings::Settings;
use smtpsend::message::input::Input;

/// Standard input as a file when it is a regular one (`smtpsend rcpt < msg.eml`), so the
/// message can be read again after a failure instead of being copied as it streams.
fn stdin_file() -> Option<std::fs::File> {
    use std::os::fd::AsFd;
    let owned = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let file = std::fs::File::from(owned);
    let meta = file.metadata().ok()?;
    meta.is_file().then_some(file)
}

fn main() -> ExitCode {
    smtpsend::system::private::no_core_dumps();
    let args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .and_then(|a| a.to_str())
        .unwrap_or("smtpsend")
        .to_string();
    if smtpsend::app::oauth::is_invocation(&args) {
        return oauth(&args[2..]);
    }
    if smtpsend::app::config_cmd::is_invocation(&args) {
        return config(&args[2..]);
    }
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
    let input = match stdin_file() {
        Some(file) => Input::File(file),
        None => Input::Stream(Box::new(std::io::stdin().lock())),
    };
    let result = Settings::resolve_with_input(&cli, &argv0, input)
        .and_then(|(settings, input)| smtpsend::app::run(&settings, input, &mut stderr));
    exit(result, &mut stderr)
}

/// `smtpsend oauth ...`: its own small command line (recipients are positional, so clap
/// has no subcommands).
fn oauth(args: &[OsString]) -> ExitCode {
    let mut stderr = std::io::stderr();
    let result = smtpsend::app::oauth::run(args, &mut std::io::stdout(), &mut stderr);
    exit(result, &mut stderr)
}

/// `smtpsend config ...`: recognised like `smtpsend oauth`.
fn config(args: &[OsString]) -> ExitCode {
    let mut stderr = std::io::stderr();
    let result = smtpsend::app::config_cmd::run(args, &mut std::io::stdout(), &mut stderr);
    exit(result, &mut stderr)
}

/// The process's end: the status a mode chose, or the failure's own (the typed error knows
/// its sysexits code), after one `smtpsend: ` line on stderr for each line of it.
fn exit(result: Result<ExitStatus, smtpsend::Error>, stderr: &mut impl Write) -> ExitCode {
    let status = match result {
        Ok(status) => status,
        Err(e) => {
            for line in e.lines() {
                let _ = writeln!(stderr, "smtpsend: {line}");
            }
            e.exit_status()
        }
    };
    ExitCode::from(status.code())
}
