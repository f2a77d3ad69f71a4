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
use crate::message::{self, PrepareOptions};
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
    let verbose = cli.verbose > 0;
    let account = load_account(cli)?;
    let acct = account.as_ref();
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

    let local_domain = acct
        .and_then(|a| a.local_domain.clone())
        .unwrap_or_else(identity::mail_name);
    let from = match cli
        .envelope_from()
        .map(str::to_string)
        .or_else(|| acct.and_then(|a| a.from.clone()))
    {
        Some(f) if address::is_null_sender(&f) => String::new(),
        // sendmail qualifies a bare -f name with the local domain.
        Some(f) => qualify(&f, Some(&local_domain), Origin::CommandLine)?,
        None => format!("{}@{}", identity::user_name(), identity::mail_name()),
    };
    let configured_domain = acct.and_then(|a| a.local_domain.clone());
    let mut recipients = Vec::new();
    for r in split_recipients(&cli.recipients) {
        let addr = qualify(&r, configured_domain.as_deref(), Origin::CommandLine)?;
        push_unique(&mut recipients, addr);
    }

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

    let mut composed;
    let input: &mut dyn Read = if cli.composing() {
        if cli.read_recipients {
            return Err(Error::Usage(
                "-t reads recipients from a message; it cannot be combined with compose options"
                    .into(),
            ));
        }
        let mut extra = Vec::new();
        for r in split_recipients(&cli.cc)
            .into_iter()
            .chain(split_recipients(&cli.bcc))
        {
            extra.push(qualify(
                &r,
                configured_domain.as_deref(),
                Origin::CommandLine,
            )?);
        }
        let to = recipients.clone();
        let cc: Vec<String> = split_recipients(&cli.cc)
            .iter()
            .map(|r| qualify(r, configured_domain.as_deref(), Origin::CommandLine))
            .collect::<Result<_, _>>()?;
        for addr in extra {
            push_unique(&mut recipients, addr);
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
            add_missing_headers: !cli.composing(),
            envelope_from: from.clone(),
            full_name: cli.full_name.clone(),
            hostname: identity::mail_name(),
        },
    )?;
    for r in prepared.recipients {
        let addr = qualify(&r, configured_domain.as_deref(), Origin::Message)?;
        push_unique(&mut recipients, addr);
    }
    if recipients.is_empty() {
        return Err(if cli.read_recipients {
            Error::Data(
                "no recipients: none in the To, Cc or Bcc headers (-t) nor as arguments".into(),
            )
        } else {
            Error::Usage("no recipients: name them as arguments or use -t".into())
        });
    }
    // Read ahead so that a small message's size is known and it can go as one chunk.
    let mut head = prepared.head;
    let want = deliver::BLOCK.saturating_sub(head.len());
    let got = input
        .take(want as u64)
        .read_to_end(&mut head)
        .map_err(|e| Error::NoInput(format!("reading the message: {e}")))?;
    let whole = got < want;

    let dot_ends_input = !cli.ignore_dots();
    // A message read whole has a known size; a small one can go as one BDAT chunk.
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
        credentials,
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
    let envelope = Envelope { from, recipients };
    let mut trace = |line: &TraceLine| {
        if verbose {
            let side = if line.client { "C" } else { "S" };
            let _ = writeln!(err, "{side}: {}", line.text);
        }
    };
    let delivered = deliver::deliver(
        &route,
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

/// An envelope address, with a bare local name (`root`) qualified by `domain`.
fn qualify(input: &str, domain: Option<&str>, origin: Origin) -> Result<String, Error> {
    match address::envelope_address(input) {
        Ok(a) => Ok(a),
        Err(AddressError::NoDomain(_)) => match domain {
            Some(d) => address::envelope_address(&format!("{}@{d}", input.trim()))
                .map_err(|e| e.into_error(origin)),
            None => Err(Error::Usage(format!(
                "{input:?} has no domain: set local_domain in the config to qualify local names"
            ))),
        },
        Err(e) => Err(e.into_error(origin)),
    }
}

/// Add a recipient unless it is already there: nobody gets the message twice.
/// Local parts are compared exactly, domains without case (RFC 5321 §2.4).
fn push_unique(list: &mut Vec<String>, addr: String) {
    let key = |a: &str| match a.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => a.to_string(),
    };
    let k = key(&addr);
    if !list.iter().any(|a| key(a) == k) {
        list.push(addr);
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

fn report(delivered: Delivered) -> Result<ExitStatus, Error> {
    if delivered.report.rejected.is_empty() {
        Ok(ExitStatus::Ok)
    } else {
        Err(Error::PartialDelivery {
            host: delivered.host,
            rejected: delivered.report.rejected,
        })
    }
}
