//! Submitting one message: the envelope from the command line, the config and the message,
//! a route, one delivery, and the report.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::time::Duration;

use crate::address::{self, AddressError, Origin};
use crate::cli::{Cli, Mode};
use crate::compose::{self, ComposeOptions};
use crate::config::{self, Account};
use crate::deliver::{self, Body, Delivered, Route, Timeouts};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::identity;
use crate::local;
use crate::message::{self, PrepareOptions};
use crate::recipients::{self, LocalPolicy, Target};
use crate::smtp::{BodyEncoder, Credentials, Dsn, Envelope, SessionOptions, TraceLine};
use crate::transport::{TlsMode, TlsSettings, tls};

/// Environment variable holding the SMTP password (never a command-line argument).
pub const PASSWORD_ENV: &str = "SMTPSEND_PASSWORD";

/// The largest message sent as one `BDAT LAST` chunk pipelined with the envelope: small
/// enough that sending it to a server that then refuses every recipient costs little.
pub const CHUNK_MAX: usize = 64 * 1024;

/// Run what the command line asks for. Diagnostics go to `err`.
pub fn run(
    cli: &Cli,
    mode: Mode,
    input: &mut dyn Read,
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
            // No spool exists yet, so nothing can be queued.
            let _ = writeln!(io::stdout(), "Mail queue is empty");
            Ok(ExitStatus::Ok)
        }
        Mode::RunQueue | Mode::RebuildAliases => Ok(ExitStatus::Ok),
        Mode::VerifyAddresses => {
            for r in split_recipients(&cli.recipients) {
                let addr =
                    address::envelope_address(&r).map_err(|e| e.into_error(Origin::CommandLine))?;
                let _ = writeln!(io::stdout(), "{addr}... deliverable: syntax is valid");
            }
            Ok(ExitStatus::Ok)
        }
        Mode::SmtpOnStdio => Err(Error::Unavailable(
            "-bs (SMTP on standard input) is not supported yet".into(),
        )),
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

fn send(cli: &Cli, input: &mut dyn Read, err: &mut dyn Write) -> Result<ExitStatus, Error> {
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
    let relay = if remote.is_empty() {
        None
    } else {
        Some(relay_settings(cli, acct)?)
    };

    let destinations = usize::from(!remote.is_empty()) + mailboxes.len();
    // One destination streams the input; several need it again, so it is copied once into
    // a private file that each reads from the start.
    let mut source = if destinations > 1 {
        let mut file = private_temp_file()?;
        file.write_all(&prepared.head)
            .and_then(|()| io::copy(input, &mut file).map(|_| ()))
            .map_err(|e| Error::Io(format!("copying the message for several destinations: {e}")))?;
        Source::Copy(file)
    } else {
        Source::Stream {
            head: prepared.head,
            rest: input,
        }
    };

    let mut failures: Vec<Error> = Vec::new();
    for name in &mailboxes {
        let result = source.open().and_then(|(head, rest)| {
            let mailbox = local::mailbox_for(name, &recipients::mail_spool(acct))?;
            let sender = if from.is_empty() {
                "MAILER-DAEMON"
            } else {
                &from
            };
            local::deliver(&mailbox, sender, &mut io::Cursor::new(head).chain(rest))
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
    if let Some(relay) = relay {
        let result = source.open().and_then(|(head, rest)| {
            send_remote(cli, acct, &relay, &from, remote, head, rest, err)
        });
        if let Err(e) = result {
            failures.push(e);
        }
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

/// The message for the destinations: the input itself, or a copy read once per destination.
enum Source<'a> {
    Stream {
        head: Vec<u8>,
        rest: &'a mut dyn Read,
    },
    Copy(std::fs::File),
}

impl Source<'_> {
    /// The message from its start: what was already read, and the rest.
    fn open(&mut self) -> Result<(Vec<u8>, &mut dyn Read), Error> {
        match self {
            Source::Stream { head, rest } => Ok((std::mem::take(head), &mut **rest)),
            Source::Copy(file) => {
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| Error::Io(format!("rewinding the message copy: {e}")))?;
                Ok((Vec::new(), file))
            }
        }
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

/// The relay and how to talk to it, from the command line over the account.
struct Relay {
    route: Route,
    credentials: Option<Credentials>,
}

fn relay_settings(cli: &Cli, acct: Option<&Account>) -> Result<Relay, Error> {
    let host = cli
        .host
        .clone()
        .or_else(|| acct.and_then(|a| a.host.clone()))
        .ok_or_else(|| {
            Error::Config("no relay host: pass --host or set host in the config file".into())
        })?;
    let tls_mode = cli.tls.or(acct.and_then(|a| a.tls)).unwrap_or_default();
    let port = cli
        .port
        .or(acct.and_then(|a| a.port))
        .unwrap_or(match tls_mode {
            TlsMode::Off => 25,
            m => m.default_port(),
        });
    let fingerprint = cli
        .tls_fingerprint
        .clone()
        .or_else(|| acct.and_then(|a| a.tls_fingerprint.clone()))
        .as_deref()
        .map(tls::parse_fingerprint)
        .transpose()
        .map_err(Error::Usage)?;
    let timeout = cli.timeout.or(acct.and_then(|a| a.timeout));
    let route = Route {
        host,
        port,
        addrs: None,
        tls: tls_mode,
        tls_settings: TlsSettings {
            trust_file: cli
                .tls_trust_file
                .clone()
                .or_else(|| acct.and_then(|a| a.tls_trust_file.clone())),
            fingerprint,
            verify: true,
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(cli.connect_timeout.unwrap_or(30)),
            command: timeout.map(Duration::from_secs),
            total: None,
        },
    };
    let credentials = match cli
        .user
        .clone()
        .or_else(|| acct.and_then(|a| a.user.clone()))
    {
        Some(user) => {
            let password = match std::env::var(PASSWORD_ENV) {
                Ok(p) => Some(p),
                Err(_) => match acct {
                    Some(a) => a.password.resolve()?,
                    None => None,
                },
            };
            let password = password.ok_or_else(|| {
                Error::Config(format!(
                    "no password for {user}: set {PASSWORD_ENV} or a password source in the config"
                ))
            })?;
            Some(Credentials { user, password })
        }
        None => None,
    };
    Ok(Relay { route, credentials })
}

/// Send through the relay: read ahead so a small message's size is known and it can go
/// as one BDAT chunk, then run the session.
#[allow(clippy::too_many_arguments)]
fn send_remote(
    cli: &Cli,
    acct: Option<&Account>,
    relay: &Relay,
    from: &str,
    recipients: Vec<String>,
    mut head: Vec<u8>,
    input: &mut dyn Read,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let verbose = cli.verbose > 0;
    let want = deliver::BLOCK.saturating_sub(head.len());
    let got = input
        .take(want as u64)
        .read_to_end(&mut head)
        .map_err(|e| Error::NoInput(format!("reading the message: {e}")))?;
    let whole = got < want;
    let dot_ends_input = !cli.ignore_dots();
    let (chunk, size) = if whole {
        let mut encoder = BodyEncoder::for_bdat(dot_ends_input);
        let mut chunk = Vec::with_capacity(head.len() + head.len() / 16 + 2);
        encoder.encode(&head, &mut chunk);
        encoder.finish(&mut chunk);
        let size = chunk.len() as u64;
        ((chunk.len() <= CHUNK_MAX).then_some(chunk), Some(size))
    } else {
        (None, None)
    };
    let opts = SessionOptions {
        ehlo_name: cli
            .ehlo
            .clone()
            .or_else(|| acct.and_then(|a| a.ehlo.clone()))
            .unwrap_or_else(identity::mail_name),
        credentials: relay.credentials.clone(),
        mechanism: cli.auth.or(acct.and_then(|a| a.auth)),
        allow_plaintext_auth: cli.insecure_auth || acct.is_some_and(|a| a.insecure_auth),
        pipelining: !cli.no_pipelining,
        eight_bit: match cli
            .body_type
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("8BITMIME") => Some(true),
            Some("7BIT") => Some(false),
            Some(other) => {
                return Err(Error::Usage(format!(
                    "-B {other}: body type must be 7BIT or 8BITMIME"
                )));
            }
            None => whole.then(|| !head.is_ascii()),
        },
        dsn: Dsn::new(
            cli.dsn_notify.as_deref(),
            cli.dsn_return.as_deref(),
            cli.dsn_envid.as_deref(),
        )
        .map_err(Error::Usage)?,
        chunk,
        size,
        trace: verbose,
        ..SessionOptions::default()
    };
    let envelope = Envelope {
        from: from.to_string(),
        recipients,
    };
    let mut trace = |line: &TraceLine| {
        if verbose {
            let side = if line.client { "C" } else { "S" };
            let _ = writeln!(err, "{side}: {}", line.text);
        }
    };
    let delivered = deliver::deliver(
        &relay.route,
        envelope,
        opts,
        Body {
            head,
            rest: input,
            dot_ends_input,
        },
        &mut trace,
    )?;
    report(delivered)
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
    compose::validate(&opts)?;
    let mut file = private_temp_file()?;
    compose::compose(&opts, stdin, &mut file)?;
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

/// An anonymous 0600 file in `$TMPDIR` (O_TMPFILE: it has no name, so nothing is left
/// behind whatever happens to the process).
fn private_temp_file() -> Result<std::fs::File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir();
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(&dir)
        .map_err(|e| Error::CantCreate(format!("temporary file in {}: {e}", dir.display())))
}

/// Local parts are compared exactly, domains without case (RFC 5321 §2.4).
fn same_address(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => a == b,
    }
}

/// The account to use: from the config file, if there is one.
fn load_account(cli: &Cli) -> Result<Option<Account>, Error> {
    match (config::load(cli.config.as_deref())?, &cli.account) {
        (Some(config), name) => config.account(name.as_deref()).map(Some),
        (None, Some(name)) => Err(Error::Usage(format!(
            "account {name:?} was asked for, but there is no config file"
        ))),
        (None, None) => Ok(None),
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
