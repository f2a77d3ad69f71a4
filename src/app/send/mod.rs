//! Submitting one message: the envelope from the command line, the config and the message,
//! a route, one delivery, and the report.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::time::Duration;

use crate::app::cli::{Cli, Mode};
use crate::config::{self, Account};
use crate::delivery::direct::{self, Direct, Reopen};
use crate::delivery::{self, Body, Delivered, Route, Timeouts};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::message::address::{self, AddressError, Origin};
use crate::message::compose::ComposeOptions;

use crate::delivery::log::Logger;
use crate::delivery::mailbox;
use crate::delivery::recipients::{self, LocalPolicy, Target};
use crate::delivery::resolve::Resolver;
use crate::message::{self, PrepareOptions};
use crate::queue::{self, NewEntry, Spool};
use crate::smtp::{
    Credentials, Dsn, Envelope, Mechanism, Secret, SecretKind, SessionOptions, TraceLine,
};
use crate::system::identity;
use crate::transport::{ClientCert, TlsMode, TlsSettings, tls};

mod settings;
mod source;
mod spooling;

use settings::*;
pub(crate) use settings::{Relay, Remote, load_account, relay_settings, remote_settings};
use source::*;
pub(crate) use source::{At, private_temp_file};
pub use spooling::open_spool;
use spooling::*;

/// Environment variable holding the SMTP password (never a command-line argument).
pub const PASSWORD_ENV: &str = "SMTPSEND_PASSWORD";

/// Run what the command line asks for. Diagnostics go to `err`.
/// The message input: standard input as a stream, or (when it is a regular file) as a
/// file that can be read again from where the body began, so a temporary failure can
/// queue it without a copy having been made in advance.
pub enum Input<'a> {
    Stream(&'a mut dyn Read),
    File(std::fs::File),
}

pub fn run(
    cli: &Cli,
    mode: Mode,
    input: Input<'_>,
    err: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let verbose = cli.verbose > 0;
    if verbose {
        for opt in cli.ignored_options() {
            let _ = writeln!(err, "smtpsend: note: sendmail option {opt} ignored");
        }
    }
    match mode {
        Mode::Deliver => send(cli, input, err),
        Mode::ListQueue => {
            let spool = open_spool(cli, load_account(cli)?.as_ref())?;
            let listing = spool.list()?;
            for w in &listing.warnings {
                let _ = writeln!(err, "smtpsend: {w}");
            }
            let text = queue::format_listing(&listing.entries, std::time::SystemTime::now());
            let _ = io::stdout().write_all(text.as_bytes());
            Ok(ExitStatus::Ok)
        }
        Mode::RunQueue => crate::queue::run::run(cli, err),
        Mode::RemoveFromQueue => {
            let spool = open_spool(cli, load_account(cli)?.as_ref())?;
            if cli.queue_remove_all {
                if !cli.yes {
                    return Err(Error::Usage(
                        "--queue-remove-all deletes every queued message: add --yes".into(),
                    ));
                }
                let listing = spool.list()?;
                for entry in &listing.entries {
                    spool.remove(entry)?;
                }
                let _ = writeln!(
                    err,
                    "smtpsend: removed {} queued messages",
                    listing.entries.len()
                );
            }
            let mut status = ExitStatus::Ok;
            for id in &cli.queue_remove {
                if !spool.remove_id(id)? {
                    let _ = writeln!(err, "smtpsend: {id}: no such queued message");
                    status = ExitStatus::NoInput;
                }
            }
            Ok(status)
        }
        Mode::RebuildAliases => Ok(ExitStatus::Ok),
        Mode::VerifyAddresses => {
            for r in split_recipients(&cli.recipients) {
                let addr =
                    address::envelope_address(&r).map_err(|e| e.into_error(Origin::CommandLine))?;
                let _ = writeln!(io::stdout(), "{addr}... deliverable: syntax is valid");
            }
            Ok(ExitStatus::Ok)
        }
        Mode::SmtpOnStdio => crate::app::smtp_stdio::run(cli, input, err),
        Mode::Diagnose => crate::app::diagnose::run(cli, err),
    }
}

/// Split sendmail-style recipient arguments: `"a@x, b@y"` is two recipients.
pub fn split_recipients(args: &[String]) -> Vec<String> {
    args.iter()
        .flat_map(|a| a.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

pub(crate) fn send(cli: &Cli, input: Input<'_>, err: &mut dyn Write) -> Result<ExitStatus, Error> {
    let (mut file_input, stream_input) = match input {
        Input::File(f) => (Some(f), None),
        Input::Stream(r) => (None, Some(r)),
    };
    let input_file = file_input.is_some();
    let input: &mut dyn Read = match (&mut file_input, stream_input) {
        (Some(f), _) => f,
        (None, Some(r)) => r,
        (None, None) => return Err(Error::Internal("no input".into())),
    };
    let account = load_account(cli)?;
    let acct = account.as_ref();
    let from = envelope_sender(cli, acct)?;
    let mut policy = LocalPolicy::new(acct);
    let mut targets = Vec::new();
    for r in split_recipients(&cli.recipients) {
        add_targets(&mut targets, policy.route(&r, Origin::CommandLine)?);
    }

    let mut composed;
    let input: &mut dyn Read = if cli.composing() {
        if cli.read_recipients {
            return Err(Error::Usage(
                "-t reads recipients from a message; it cannot be combined with compose options"
                    .into(),
            ));
        }
        let to = remote_addresses(&targets);
        let mut cc = Vec::new();
        for r in split_recipients(&cli.cc) {
            let routed = policy.route(&r, Origin::CommandLine)?;
            cc.extend(remote_addresses(&routed));
            add_targets(&mut targets, routed);
        }
        for r in split_recipients(&cli.bcc) {
            add_targets(&mut targets, policy.route(&r, Origin::CommandLine)?);
        }
        composed = compose_message(cli, &from, to, cc, input)?;
        &mut composed
    } else {
        input
    };
    // Headers are read (and rewritten: Bcc removed, missing From/Date/Message-ID added)
    // before any connection is made; the body streams later. A composed message has them.
    let prepared = message::prepare(
        input,
        &PrepareOptions {
            extract_recipients: cli.read_recipients,
            add_missing_headers: !cli.composing() && acct.is_none_or(|a| a.add_missing_headers),
            envelope_from: from.clone(),
            full_name: cli.full_name.clone(),
            hostname: identity::mail_name(),
        },
    )?;
    for r in &prepared.recipients {
        add_targets(&mut targets, policy.route(r, Origin::Message)?);
    }
    if targets.is_empty() {
        return Err(if cli.read_recipients {
            Error::Data(
                "no recipients: none in the To, Cc or Bcc headers (-t) nor as arguments".into(),
            )
        } else {
            Error::Usage("no recipients: name them as arguments or use -t".into())
        });
    }

    let remote = remote_addresses(&targets);
    let mailboxes: Vec<String> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Mailbox(name) => Some(name.clone()),
            Target::Remote(_) => None,
        })
        .collect();
    // Settle everything that can fail on configuration before the input is consumed.
    // A route that cannot be set up for now (an OAuth token that cannot be refreshed, a
    // resolver configuration that cannot be read) holds the message back in the spool.
    let (remote_route, held_back) = if remote.is_empty() {
        (None, None)
    } else {
        match remote_settings(cli, acct) {
            Ok(route) => (Some(route), None),
            Err(e)
                if queue_on_tempfail(cli, acct)
                    && matches!(e.exit_status(), ExitStatus::TempFail | ExitStatus::NoPerm) =>
            {
                (None, Some(e))
            }
            Err(e) => return Err(e),
        }
    };
    // A relay takes every remote recipient in one transaction; direct delivery makes one
    // per domain.
    let groups: Vec<Vec<String>> = match &remote_route {
        None => Vec::new(),
        Some(Remote::Relay(_)) => vec![remote.clone()],
        Some(Remote::Direct(_)) => direct::by_domain(&remote)
            .into_iter()
            .map(|(_, rcpts)| rcpts)
            .collect(),
    };

    let destinations = groups.len() + mailboxes.len() + usize::from(held_back.is_some());
    // One destination streams the input; several need it again, so it is copied once into
    // a private file that each reads from the start.
    let mut source = if destinations > 1 {
        let mut file = private_temp_file()?;
        file.write_all(&prepared.head)
            .and_then(|()| io::copy(input, &mut file).map(|_| ()))
            .map_err(|e| Error::Io(format!("copying the message for several destinations: {e}")))?;
        Source::Copy(file)
    } else if input_file && !cli.composing() {
        match file_input.as_mut() {
            Some(file) => Source::File {
                head: prepared.head,
                file,
            },
            None => return Err(Error::Internal("input file vanished".into())),
        }
    } else {
        Source::Stream {
            head: prepared.head,
            rest: input,
        }
    };

    let mut failures: Vec<Error> = Vec::new();
    for name in &mailboxes {
        let result = source.open().and_then(|(head, rest)| {
            let mailbox = mailbox::mailbox_for(name, &recipients::mail_spool(acct))?;
            let sender = if from.is_empty() {
                "MAILER-DAEMON"
            } else {
                &from
            };
            mailbox::deliver(&mailbox, sender, &mut io::Cursor::new(head).chain(rest))
        });
        match result {
            Ok(bytes) if cli.verbose > 0 => {
                let _ = writeln!(
                    err,
                    "smtpsend: delivered {bytes} bytes to the mailbox of {name}"
                );
            }
            Ok(_) => {}
            Err(e) => failures.push(e),
        }
    }
    if let Some(error) = held_back {
        // Kept for a later queue run; a login that is needed is the caller's business too,
        // so it still exits 77 (with the hint to log in).
        let needs_person = error.exit_status() == ExitStatus::NoPerm;
        let reason = error.to_string();
        let queued = source.open().and_then(|(head, rest)| {
            let mut message = io::Cursor::new(head).chain(rest);
            enqueue_held(
                cli,
                acct,
                &from,
                &remote,
                &reason,
                needs_person,
                &mut message,
            )
        });
        match queued {
            Ok(id) => {
                if needs_person {
                    // The error itself (with the hint) is printed by the caller.
                    let _ = writeln!(
                        err,
                        "smtpsend: queued as {id}; it goes out with the next queue run once \
                         that is done"
                    );
                    failures.push(error);
                } else if cli.verbose > 0 {
                    let _ = writeln!(err, "smtpsend: queued as {id}: {reason}");
                }
            }
            Err(spool_error) => {
                let _ = writeln!(err, "smtpsend: could not queue the message: {spool_error}");
                failures.push(error);
            }
        }
    }
    if let Some(route) = &remote_route {
        let queueing = queue_on_tempfail(cli, acct);
        if cli.queue_only() {
            let queued = source
                .open()
                .and_then(|(head, rest)| {
                    let mut message = io::Cursor::new(head).chain(rest);
                    enqueue(
                        cli,
                        acct,
                        &from,
                        &remote,
                        "queued with --queue (-odq)",
                        &mut message,
                    )
                })
                .map(|id| {
                    if cli.verbose > 0 {
                        let _ = writeln!(err, "smtpsend: queued as {id}");
                    }
                });
            if let Err(e) = queued {
                failures.push(e);
            }
        } else {
            let parallel = parallel(cli, acct);
            match &source {
                // Domains are independent: a small pool delivers them at once, each
                // reading the shared copy at its own offset.
                Source::Copy(file) if groups.len() > 1 && parallel > 1 => {
                    let results = crate::delivery::pool::run(
                        &groups,
                        parallel,
                        &|rcpts: &Vec<String>, out: &mut Vec<u8>| {
                            let mut own = Source::At(At { file, pos: 0 });
                            let rcpts = rcpts.clone();
                            deliver_group(cli, acct, route, &from, rcpts, &mut own, queueing, out)
                        },
                    );
                    for (out, result) in results {
                        let _ = err.write_all(&out);
                        if let Err(e) = result {
                            failures.push(e);
                        }
                    }
                }
                _ => {
                    for rcpts in groups {
                        let result = deliver_group(
                            cli,
                            acct,
                            route,
                            &from,
                            rcpts,
                            &mut source,
                            queueing,
                            err,
                        );
                        if let Err(e) = result {
                            failures.push(e);
                        }
                    }
                }
            }
        }
    }
    // A stored OAuth token the server refused (revoked, or a clock that is off) is not
    // offered again: the next send refreshes it first.
    if let Some(a) = acct
        && crate::oauth::uses_oauth(a)
        && failures.iter().any(|e| {
            matches!(
                e,
                Error::Session {
                    error: crate::smtp::SessionError::AuthFailed { .. },
                    ..
                }
            )
        })
    {
        let _ = crate::oauth::forget_access_token(a);
    }
    match failures.len() {
        0 => Ok(ExitStatus::Ok),
        1 => Err(failures.remove(0)),
        _ => {
            // Every failure is reported; the exit status is the first one's.
            for e in &failures[1..] {
                for line in e.lines() {
                    let _ = writeln!(err, "smtpsend: {line}");
                }
            }
            Err(failures.remove(0))
        }
    }
}

/// Domains delivered at once on the direct route (the `parallel` setting).
pub const DEFAULT_PARALLEL: usize = 4;

/// `--parallel`, else the account's `parallel`, else [`DEFAULT_PARALLEL`].
pub(crate) fn parallel(cli: &Cli, acct: Option<&Account>) -> usize {
    cli.parallel
        .or(acct.and_then(|a| a.parallel))
        .unwrap_or(DEFAULT_PARALLEL)
        .max(1)
}

/// One transaction (a relay's, or one domain's), queueing on a temporary failure when
/// `queueing`.
#[allow(clippy::too_many_arguments)]
fn deliver_group(
    cli: &Cli,
    acct: Option<&Account>,
    route: &Remote,
    from: &str,
    rcpts: Vec<String>,
    source: &mut Source<'_>,
    queueing: bool,
    err: &mut dyn Write,
) -> Result<(), Error> {
    if queueing {
        send_or_queue(cli, acct, route, from, rcpts, source, err)
    } else {
        source
            .open()
            .and_then(|(head, rest)| send_remote(cli, acct, route, from, rcpts, head, rest, err))
            .and_then(report)
    }
}

fn add_targets(list: &mut Vec<Target>, new: Vec<Target>) {
    for t in new {
        let duplicate = list.iter().any(|old| match (old, &t) {
            (Target::Remote(a), Target::Remote(b)) => same_address(a, b),
            (a, b) => a == b,
        });
        if !duplicate {
            list.push(t);
        }
    }
}

fn remote_addresses(targets: &[Target]) -> Vec<String> {
    targets
        .iter()
        .filter_map(|t| match t {
            Target::Remote(a) => Some(a.clone()),
            Target::Mailbox(_) => None,
        })
        .collect()
}

/// The envelope sender: `-f`/`-r`, the account's `from`, or `user@mailname`.
fn envelope_sender(cli: &Cli, acct: Option<&Account>) -> Result<String, Error> {
    let given = cli
        .envelope_from()
        .map(str::to_string)
        .or_else(|| acct.and_then(|a| a.from.clone()));
    match given {
        Some(f) if address::is_null_sender(&f) => Ok(String::new()),
        Some(f) => {
            // sendmail qualifies a bare -f name with the local domain.
            let domain = acct
                .and_then(|a| a.local_domain.clone())
                .unwrap_or_else(identity::mail_name);
            match address::envelope_address(&f) {
                Ok(a) => Ok(a),
                Err(AddressError::NoDomain(_)) => {
                    address::envelope_address(&format!("{}@{domain}", f.trim()))
                        .map_err(|e| e.into_error(Origin::CommandLine))
                }
                Err(e) => Err(e.into_error(Origin::CommandLine)),
            }
        }
        None => Ok(format!(
            "{}@{}",
            identity::user_name(),
            identity::mail_name()
        )),
    }
}

/// Send `recipients` (all of one domain, for direct delivery) through `remote`.
#[allow(clippy::too_many_arguments)]
fn send_remote(
    cli: &Cli,
    acct: Option<&Account>,
    remote: &Remote,
    from: &str,
    recipients: Vec<String>,
    mut head: Vec<u8>,
    input: &mut dyn Read,
    err: &mut dyn Write,
) -> Result<Delivered, Error> {
    let verbose = cli.verbose > 0;
    let credentials = match remote {
        Remote::Relay(relay) => relay.credentials.clone(),
        // No AUTH with someone else's exchangers.
        Remote::Direct(_) => None,
    };
    let opts = session_for(cli, acct, credentials, &mut head, input)?;
    let (log, log_to, whole) = (Logger::from_cli(cli, acct), recipients.clone(), opts.size);
    let log_id =
        crate::delivery::log::message_id(&head).unwrap_or_else(crate::delivery::log::random_id);
    let head_len = head.len() as u64;
    let mut counted = crate::delivery::log::Counted::new(input);
    let input = &mut counted;
    let envelope = Envelope {
        from: from.to_string(),
        recipients,
    };
    let mut trace = |line: &TraceLine| {
        if verbose {
            let _ = writeln!(err, "{}", crate::app::terminal::trace_line(line));
        }
    };
    let dot_ends_input = !cli.ignore_dots();
    let result = match remote {
        Remote::Relay(relay) => delivery::deliver(
            &relay.route,
            envelope,
            opts,
            Body {
                head,
                rest: input,
                dot_ends_input,
            },
            &mut trace,
        ),
        Remote::Direct(direct) => {
            let domain = envelope.recipients[0]
                .rsplit_once('@')
                .map(|(_, d)| d.to_string())
                .unwrap_or_default();
            let mut replay = Replay {
                head,
                rest: input,
                read: 0,
            };
            direct::deliver_domain(
                direct,
                &domain,
                &envelope,
                &opts,
                &mut replay,
                dot_ends_input,
                &mut trace,
            )
        }
    };
    let attempt = crate::delivery::log::Attempt {
        id: &log_id,
        from,
        to: &log_to,
        host: match remote {
            Remote::Relay(relay) => &relay.route.host,
            Remote::Direct(_) => log_to
                .first()
                .and_then(|r| r.rsplit_once('@'))
                .map_or("", |(_, d)| d),
        },
        // A failed attempt may have read only part of a large message.
        size: (result.is_ok() || whole.is_some()).then_some(head_len + counted.bytes),
    };
    log.attempt(&attempt, &result, err);
    let delivered = result?;
    if verbose {
        let tls = match &delivered.tls {
            Some(t) if delivered.tls_verified => format!("TLS {t}, certificate verified"),
            Some(t) => format!("TLS {t}, certificate not verified"),
            None => "no TLS".into(),
        };
        let _ = writeln!(
            err,
            "smtpsend: accepted by {} ({tls}) for {}",
            delivered.host,
            delivered.report.accepted.join(", ")
        );
    }
    Ok(delivered)
}

/// Build the message from the compose flags into a private, already-unlinked temporary
/// file, so attachments are read once and the result streams like any other input.
fn compose_message(
    cli: &Cli,
    envelope_from: &str,
    to: Vec<String>,
    cc: Vec<String>,
    stdin: &mut dyn Read,
) -> Result<std::fs::File, Error> {
    let from = match &cli.header_from {
        Some(f) => f.clone(),
        None => match &cli.full_name {
            Some(name) => format!("{} <{envelope_from}>", quote_display_name(name)),
            None => envelope_from.to_string(),
        },
    };
    let opts = ComposeOptions {
        from,
        to,
        cc,
        subject: cli.subject.clone(),
        text_body: cli.body.clone(),
        html_body: cli.html.clone(),
        attachments: cli.attach.clone(),
        headers: cli.header.clone(),
        hostname: identity::mail_name(),
    };
    crate::message::compose::validate(&opts)?;
    let mut file = private_temp_file()?;
    crate::message::compose::compose(&opts, stdin, &mut file)?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Error::Io(format!("rewinding the composed message: {e}")))?;
    Ok(file)
}

/// A display name as a quoted string when it is not a plain phrase (RFC 5322 §3.2.5).
fn quote_display_name(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '.')
    {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Local parts are compared exactly, domains without case (RFC 5321 §2.4).
fn same_address(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => a == b,
    }
}

fn report(delivered: Delivered) -> Result<(), Error> {
    if delivered.report.rejected.is_empty() {
        Ok(())
    } else {
        Err(Error::PartialDelivery {
            host: delivered.host,
            rejected: delivered.report.rejected,
        })
    }
}
