//! The entry layer: the command line, the settings resolved from it and the config once,
//! and the modes it dispatches to (send, the queue commands, diagnostics, `-bs`,
//! `oauth`, `config`, `--check`). No mode imports another.

pub mod check;
pub mod cli;
pub mod config_cmd;
pub mod diagnose;
pub mod oauth;
pub mod queue;
pub mod routes;
pub mod send;
pub mod settings;
pub mod smtp_stdio;

use std::io::Write;

use crate::error::Error;
use crate::exit::ExitStatus;
use crate::message::input::Input;
use cli::Mode;
use settings::Settings;

/// Run what the settings ask for; diagnostics go to `err`.
pub fn run(
    settings: &Settings,
    input: Input<'_>,
    err: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    if settings.verbose {
        for opt in &settings.ignored_options {
            let _ = writeln!(err, "smtpsend: note: sendmail option {opt} ignored");
        }
        say_config(settings, err);
        if let Some(account) = &settings.account
            && settings::foreign_relay(&settings.route_flags, Some(account))
        {
            let host = settings.route_flags.host.as_deref().unwrap_or_default();
            let _ = writeln!(
                err,
                "smtpsend: note: {host} is not the relay of account {name}: none of its \
                 credentials or TLS settings are used there (give -a {name} to use them)",
                name = account.name
            );
        }
    }
    match settings.mode {
        Mode::Deliver => send::run(settings, input, err),
        Mode::ListQueue => queue::list(settings, err),
        Mode::RunQueue => queue::flush(settings, err),
        Mode::QueueRunner => queue::background(settings),
        Mode::RemoveFromQueue => queue::remove(settings, err),
        Mode::RebuildAliases => Ok(ExitStatus::Ok),
        Mode::VerifyAddresses => verify_addresses(settings),
        Mode::SmtpOnStdio => smtp_stdio::run(settings, input, err),
        Mode::Diagnose => diagnose::run(settings, err),
        Mode::Check => check::run(settings, err),
    }
}

/// Under `-v`: which config file and account are in use (an msmtprc too), what of the
/// file changes nothing here, and, with no config at all, that mail goes straight to each
/// domain's exchangers.
fn say_config(settings: &Settings, err: &mut dyn Write) {
    match (&settings.config_file, &settings.account) {
        (Some(file), Some(account)) => {
            let kind = match settings.config_kind {
                Some(crate::config::ConfigKind::Msmtprc) => " (an msmtprc)",
                _ => "",
            };
            let _ = writeln!(
                err,
                "smtpsend: config {}{kind}, account {}",
                file.display(),
                account.name
            );
        }
        _ if settings.direct_for_want_of_config() => {
            let _ = writeln!(err, "{}", settings::NO_CONFIG_NOTE);
        }
        _ => {}
    }
    for note in &settings.config_notes {
        let _ = writeln!(err, "smtpsend: note: {note}");
    }
}

/// `-bv`: the syntax of each address, without asking anyone.
fn verify_addresses(settings: &Settings) -> Result<ExitStatus, Error> {
    use crate::message::address::{self, Origin};
    for r in &settings.recipients {
        let addr = address::envelope_address(r).map_err(|e| e.into_error(Origin::CommandLine))?;
        let _ = writeln!(std::io::stdout(), "{addr}... deliverable: syntax is valid");
    }
    Ok(ExitStatus::Ok)
}
