//! Command-line definitions (clap) and sendmail compatibility.
//!
//! Called as `sendmail` by cron, PHP `mail()`, git send-email, mutt, logwatch, smartd and
//! mdadm, smtpsend takes their flags. A flag that would be harmless to ignore is ignored
//! (with a note under `-v`), never an error.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{ArgAction, Parser};

use crate::smtp::Mechanism;
use crate::transport::{PolicyUse, TlsMode};

/// What the program was asked to do, from the name it was called by and `-b`/`-q`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Deliver one message (`-bm`, the default).
    Deliver,
    /// List the queue (`-bp`, `mailq`).
    ListQueue,
    /// Rebuild the aliases database (`-bi`, `newaliases`).
    RebuildAliases,
    /// Process the queue (`-q`, `--flush`).
    RunQueue,
    /// Be the spool's background queue runner (`--queue-runner`, started by a sender).
    QueueRunner,
    /// Remove queue entries (`--queue-remove`, `--queue-remove-all`).
    RemoveFromQueue,
    /// Speak SMTP on stdin/stdout (`-bs`).
    SmtpOnStdio,
    /// Verify addresses only (`-bv`).
    VerifyAddresses,
    /// Ask a server about itself or an address (`--serverinfo`, `--verify`, ...).
    Diagnose,
    /// Try the route a send would take, sending nothing (`--check`).
    Check,
}

/// What `--help` says after the options: the commands `main` takes before clap (recipients
/// are positional, so clap has no subcommands), the check to run first, and the exit
/// statuses.
const AFTER_HELP: &str = "\
Commands (the first argument; called as sendmail, these words are recipients):
  smtpsend config import [FILE]       print an msmtprc as smtpsend TOML
  smtpsend config accounts            list the account names of the config
  smtpsend oauth login [ACCOUNT]      sign in with the account's OAuth provider
  smtpsend oauth status [ACCOUNT]     whether tokens are stored, and when they expire

Try before you send: smtpsend --check [-a NAME] connects, authenticates and says MAIL FROM
as a send would, then RSET; nothing is sent.

Exit statuses follow sysexits.h: 0 sent, 64 usage, 65 bad data, 67 recipient refused, 68 \
unknown host, 69 refused, 75 try again later, 76 protocol error, 77 authentication failed, \
78 configuration error.";

/// smtpsend: send one message from stdin through an SMTP relay.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "smtpsend",
    version,
    disable_help_flag = true,
    disable_version_flag = true,
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Recipient addresses (comma-separated lists are split).
    #[arg(value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    /// Read recipients from the To, Cc and Bcc headers (and remove Bcc).
    #[arg(short = 't', help_heading = "Sendmail")]
    pub read_recipients: bool,

    /// Do not treat a line with a single dot as the end of the message.
    #[arg(short = 'i', help_heading = "Sendmail")]
    pub ignore_dots: bool,

    /// Envelope sender address (MAIL FROM).
    #[arg(
        short = 'f',
        allow_hyphen_values = true,
        value_name = "ADDRESS",
        help_heading = "Sendmail"
    )]
    pub from: Option<String>,

    /// Same as -f.
    #[arg(
        short = 'r',
        allow_hyphen_values = true,
        value_name = "ADDRESS",
        hide = true
    )]
    pub from_r: Option<String>,

    /// Envelope sender from the message's From header, choosing the account whose `from`
    /// matches it (msmtp's --read-envelope-from, for mutt).
    #[arg(long, conflicts_with_all = ["from", "from_r"])]
    pub read_envelope_from: bool,

    /// Full name of the sender, used when a From header is added.
    #[arg(
        short = 'F',
        allow_hyphen_values = true,
        value_name = "NAME",
        help_heading = "Sendmail"
    )]
    pub full_name: Option<String>,

    /// Print the SMTP dialogue on stderr (passwords are never shown).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,

    /// Read the message and show what a send would do (envelope sender, each recipient
    /// with its route, the header section as sent), connecting to nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Sendmail option: -oi is -i, -odq queues; others are accepted and ignored.
    #[arg(short = 'o', allow_hyphen_values = true, value_name = "OPTION", action = ArgAction::Append, help_heading = "Sendmail")]
    pub sendmail_options: Vec<String>,

    /// Sendmail long option (-O Name=value); accepted and ignored.
    #[arg(short = 'O', allow_hyphen_values = true, value_name = "OPTION=VALUE", action = ArgAction::Append, hide = true)]
    pub sendmail_long_options: Vec<String>,

    /// Mode: m deliver (default), p list queue, s SMTP on stdin, i rebuild aliases, v verify.
    #[arg(
        short = 'b',
        allow_hyphen_values = true,
        value_name = "MODE",
        help_heading = "Sendmail"
    )]
    pub mode: Option<String>,

    /// Process the queue (an interval argument is accepted and ignored).
    #[arg(short = 'q', value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "", help_heading = "Sendmail")]
    pub queue_run: Option<String>,

    /// DSN: when to notify (never, or success,failure,delay).
    #[arg(
        short = 'N',
        allow_hyphen_values = true,
        value_name = "DSN",
        help_heading = "Sendmail"
    )]
    pub dsn_notify: Option<String>,

    /// DSN: return full message or headers only (full|hdrs).
    #[arg(
        short = 'R',
        allow_hyphen_values = true,
        value_name = "RET",
        help_heading = "Sendmail"
    )]
    pub dsn_return: Option<String>,

    /// DSN: envelope identifier.
    #[arg(
        short = 'V',
        allow_hyphen_values = true,
        value_name = "ENVID",
        help_heading = "Sendmail"
    )]
    pub dsn_envid: Option<String>,

    /// Body type: 7BIT or 8BITMIME.
    #[arg(
        short = 'B',
        allow_hyphen_values = true,
        value_name = "TYPE",
        help_heading = "Sendmail"
    )]
    pub body_type: Option<String>,

    /// Sendmail flags taking a value that smtpsend ignores (-C -X -L -A -d; -h is taken
    /// out before, see [`filter_unknown_flags`]).
    #[arg(short = 'C', allow_hyphen_values = true, hide = true)]
    pub ignored_c: Option<String>,
    #[arg(short = 'X', allow_hyphen_values = true, hide = true)]
    pub ignored_x: Option<String>,
    #[arg(short = 'L', allow_hyphen_values = true, hide = true)]
    pub ignored_l: Option<String>,
    #[arg(short = 'A', allow_hyphen_values = true, hide = true)]
    pub ignored_a: Option<String>,
    #[arg(short = 'd', allow_hyphen_values = true, hide = true)]
    pub ignored_d: Option<String>,
    /// Sendmail flags without a value that smtpsend ignores (-U -G -n -m -e).
    #[arg(short = 'U', hide = true)]
    pub ignored_u: bool,
    #[arg(short = 'G', hide = true)]
    pub ignored_g: bool,
    #[arg(short = 'n', hide = true)]
    pub ignored_n: bool,
    #[arg(short = 'm', hide = true)]
    pub ignored_m: bool,

    /// Compose a MIME message: its Subject (UTF-8 is encoded per RFC 2047).
    #[arg(long, value_name = "TEXT", help_heading = "Compose")]
    pub subject: Option<String>,

    /// Compose: the From header, `Name <addr>` or `addr` (default: the envelope sender).
    #[arg(long = "from", value_name = "MAILBOX", help_heading = "Compose")]
    pub header_from: Option<String>,

    /// Compose: Cc recipients (also added to the envelope).
    #[arg(long, value_name = "ADDRESS", action = ArgAction::Append, help_heading = "Compose")]
    pub cc: Vec<String>,

    /// Compose: Bcc recipients (envelope only, never in a header).
    #[arg(long, value_name = "ADDRESS", action = ArgAction::Append, help_heading = "Compose")]
    pub bcc: Vec<String>,

    /// Compose: read the text body from FILE instead of standard input.
    #[arg(long, value_name = "FILE", help_heading = "Compose")]
    pub body: Option<PathBuf>,

    /// Compose: an HTML alternative to the text body.
    #[arg(long, value_name = "FILE", help_heading = "Compose")]
    pub html: Option<PathBuf>,

    /// Compose: attach FILE (repeatable); its type comes from the extension.
    #[arg(long, value_name = "FILE", action = ArgAction::Append, help_heading = "Compose")]
    pub attach: Vec<PathBuf>,

    /// Compose: an extra header, `Name: value` (repeatable).
    #[arg(long, value_name = "HEADER", action = ArgAction::Append, help_heading = "Compose")]
    pub header: Vec<String>,

    /// SMTP relay host; without one, mail goes straight to each domain's MX hosts.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Deliver to each recipient domain's MX hosts even when a relay is configured.
    #[arg(long, help_heading = "Direct delivery")]
    pub direct: bool,

    /// DNS server for MX lookups, IP[:PORT] (default: /etc/resolv.conf).
    #[allow(rustdoc::broken_intra_doc_links)] // clap's help text, not a link
    #[arg(long, value_name = "IP[:PORT]", help_heading = "Direct delivery")]
    pub dns_server: Option<String>,

    /// Domains delivered at once on the direct route, each on a thread of its own; 1
    /// delivers one domain after another (default 16).
    #[arg(long, value_name = "N", help_heading = "Direct delivery")]
    pub parallel: Option<usize>,

    /// Port of the MX hosts (default 25); a testing aid.
    #[arg(long, value_name = "PORT", help_heading = "Direct delivery")]
    pub mx_port: Option<u16>,

    /// DANE (TLSA records in DNSSEC-signed zones): on where published (default), off, or
    /// require.
    #[arg(long, value_name = "USE", help_heading = "Direct delivery")]
    pub dane: Option<PolicyUse>,

    /// MTA-STS (a domain's HTTPS-published TLS policy): on (default), off, or require.
    #[arg(long, value_name = "USE", help_heading = "Direct delivery")]
    pub mta_sts: Option<PolicyUse>,

    /// DNSKEY records to validate DNSSEC from instead of the IANA root's keys.
    #[arg(long, value_name = "FILE", help_heading = "Direct delivery")]
    pub dnssec_trust_anchor: Option<PathBuf>,

    /// HTTPS port of MTA-STS policy hosts (default 443); a testing aid.
    #[arg(long, value_name = "PORT", hide = true)]
    pub mta_sts_port: Option<u16>,

    /// Certificates to trust for MTA-STS policy hosts besides the web PKI; a testing aid.
    #[arg(long, value_name = "FILE", hide = true)]
    pub mta_sts_trust_file: Option<PathBuf>,

    /// SMTP port (default: 587, 465 with --tls implicit, 25 with --tls off).
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// TLS: required (STARTTLS, verified), opportunistic, implicit (port 465) or off.
    #[arg(long, value_name = "MODE", value_parser = tls_modes(), ignore_case = true)]
    pub tls: Option<TlsMode>,

    /// PEM file with certificates to trust besides the built-in web PKI roots and the
    /// system CA store; "system": the system CA store alone.
    #[arg(long, value_name = "FILE")]
    pub tls_trust_file: Option<PathBuf>,

    /// Trust the server only if its certificate has this SHA-256 fingerprint (hex).
    #[arg(long, value_name = "SHA256")]
    pub tls_fingerprint: Option<String>,

    /// User name for SMTP AUTH; the password comes from the config or $SMTPSEND_PASSWORD.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Force an AUTH mechanism: scram-sha-256, scram-sha-1, plain, login, xoauth2,
    /// oauthbearer, external or cram-md5.
    #[arg(long, value_name = "MECHANISM", value_parser = mechanisms(), ignore_case = true)]
    pub auth: Option<Mechanism>,

    /// $SMTPSEND_PASSWORD holds an OAuth 2.0 access token (XOAUTH2, OAUTHBEARER), not a
    /// password; accounts with oauth_* keys need no flag.
    #[arg(long)]
    pub oauth: bool,

    /// PEM client certificate to present in TLS (AUTH EXTERNAL, or relaying by certificate).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert (default: the --tls-cert file); must be private.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Allow AUTH over a connection without TLS (credentials in cleartext).
    #[arg(long)]
    pub insecure_auth: bool,

    /// Config file, TOML or msmtprc (default: $SMTPSEND_CONFIG, ~/.config/smtpsend/config.toml,
    /// /etc/smtpsend.conf, then ~/.msmtprc, ~/.config/msmtp/config, /etc/msmtprc).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Account from the config file.
    #[arg(short = 'a', long, value_name = "NAME")]
    pub account: Option<String>,

    /// Name to send with EHLO (default: /etc/mailname or the host name).
    #[arg(long, value_name = "NAME")]
    pub ehlo: Option<String>,

    /// Seconds to wait for each reply, instead of RFC 5321's per-command timeouts.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,

    /// Seconds to wait for the TCP connection (default 30).
    #[arg(long, value_name = "SECONDS")]
    pub connect_timeout: Option<u64>,

    /// A deadline in seconds for a whole SMTP session, whatever the server does.
    #[arg(long, value_name = "SECONDS")]
    pub deadline: Option<u64>,

    /// Queue the message without trying to send it (as -odq).
    #[arg(long = "queue", help_heading = "Queue")]
    pub queue_only: bool,

    /// Never queue: a temporary failure exits 75 and the caller keeps the message.
    #[arg(long, help_heading = "Queue")]
    pub no_queue: bool,

    /// The queue directory (default /var/spool/smtpsend when writable, else
    /// $XDG_STATE_HOME/smtpsend/queue).
    #[arg(long, value_name = "DIR", help_heading = "Queue")]
    pub queue_dir: Option<PathBuf>,

    /// Try every queued message now, as sendmail -q and postqueue -f do (same as -q).
    #[arg(long, help_heading = "Queue")]
    pub flush: bool,

    /// With --flush/-q: try only the messages whose retry time has come (for timers).
    #[arg(long, help_heading = "Queue", conflicts_with = "all")]
    pub due: bool,

    /// With --flush/-q: every message, whatever its retry time (the default; kept for
    /// scripts written when -q only took what was due).
    #[arg(long, help_heading = "Queue", hide = true)]
    pub all: bool,

    /// Remove the queued message with this id.
    #[arg(long, value_name = "ID", help_heading = "Queue")]
    pub queue_remove: Vec<String>,

    /// Remove every queued message (needs --yes).
    #[arg(long, help_heading = "Queue")]
    pub queue_remove_all: bool,

    /// Confirm --queue-remove-all.
    #[arg(long, help_heading = "Queue")]
    pub yes: bool,

    /// Run as the spool's background queue runner until it is empty (what a sender
    /// starts after queueing; not for people).
    #[arg(long, hide = true)]
    pub queue_runner: bool,

    /// Try before you send: TLS, AUTH and MAIL FROM as a send would, then RSET; nothing sent.
    ///
    /// Connects as a send would (TLS, AUTH with the real credentials, MAIL FROM the
    /// sender), then RSET and QUIT; one line per step, nothing sent, and the exit status a
    /// send would have had. Without a relay: the route, the DNS of the sender's domain,
    /// and each DOMAIN given tried at its exchangers.
    #[arg(long, help_heading = "Diagnostics")]
    pub check: bool,

    /// Show the server's greeting, EHLO capabilities before and after STARTTLS, TLS
    /// version and cipher, certificate and AUTH methods; with a DOMAIN argument instead of
    /// --host, of the domain's first reachable MX host.
    #[arg(long, help_heading = "Diagnostics")]
    pub serverinfo: bool,

    /// Ask the server whether ADDRESS is a mailbox (VRFY); 550/551/553 exits 67.
    #[arg(long = "verify", value_name = "ADDRESS", action = ArgAction::Append, help_heading = "Diagnostics")]
    pub verify_address: Vec<String>,

    /// Ask the server for the members of a mailing list (EXPN).
    #[arg(long = "expand", value_name = "LIST", action = ArgAction::Append, help_heading = "Diagnostics")]
    pub expand_list: Vec<String>,

    /// Ask the server to start delivering its queue for DOMAIN (ETRN, RFC 1985).
    #[arg(long, value_name = "DOMAIN", action = ArgAction::Append, help_heading = "Diagnostics")]
    pub etrn: Vec<String>,

    /// Send NOOP and show the reply.
    #[arg(long, help_heading = "Diagnostics")]
    pub noop: bool,

    /// Send HELP (with --help-server=TOPIC, HELP TOPIC) and show the reply.
    #[arg(long, value_name = "TOPIC", num_args = 0..=1, require_equals = true, default_missing_value = "", help_heading = "Diagnostics")]
    pub help_server: Option<String>,

    /// Append one key=value line per delivery attempt to FILE (created mode 0600).
    #[arg(long, value_name = "FILE", help_heading = "Logging")]
    pub logfile: Option<PathBuf>,

    /// Log each delivery attempt to syslog (facility mail).
    #[arg(long, help_heading = "Logging")]
    pub syslog: bool,

    /// Do not use PIPELINING even when offered.
    #[arg(long)]
    pub no_pipelining: bool,

    /// Print help (-h: a summary). Called as sendmail, -h is the hop count and is ignored.
    #[arg(short = 'h', long, action = ArgAction::Help)]
    pub help: Option<bool>,

    /// Print version.
    #[arg(long, action = ArgAction::Version)]
    pub version: Option<bool>,
}

/// The TLS modes, named for `--help` and the shell completions; msmtp's and Postfix's
/// words for them are accepted too, unlisted.
fn tls_modes() -> impl TypedValueParser<Value = TlsMode> {
    PossibleValuesParser::new([
        PossibleValue::new("required")
            .help("STARTTLS with a verified certificate (the relay default)")
            .aliases(["starttls", "on", "yes"]),
        PossibleValue::new("opportunistic")
            .help("STARTTLS when offered, unverified allowed (the MX default)")
            .alias("may"),
        PossibleValue::new("implicit")
            .help("TLS from the first byte, port 465 (RFC 8314)")
            .aliases(["smtps", "tls"]),
        PossibleValue::new("off")
            .help("cleartext")
            .aliases(["no", "none"]),
    ])
    .try_map(|s| s.parse::<TlsMode>())
}

/// The AUTH mechanisms `--auth` can force, as the completions offer them.
const MECHANISMS: [&str; 8] = [
    "scram-sha-256",
    "scram-sha-1",
    "plain",
    "login",
    "xoauth2",
    "oauthbearer",
    "external",
    "cram-md5",
];

fn mechanisms() -> impl TypedValueParser<Value = Mechanism> {
    PossibleValuesParser::new(MECHANISMS).try_map(|s| {
        Mechanism::from_name(&s)
            .ok_or_else(|| format!("unknown AUTH mechanism {s:?} ({})", Mechanism::names()))
    })
}

/// Single-letter flags the parser knows, and whether each takes a value.
const KNOWN_SHORT: &[(char, bool)] = &[
    ('t', false),
    ('i', false),
    ('v', false),
    ('U', false),
    ('G', false),
    ('n', false),
    ('m', false),
    // Help; sendmail's hop count never gets here (see `hop_count`).
    ('h', false),
    ('f', true),
    ('r', true),
    ('F', true),
    ('o', true),
    ('O', true),
    ('b', true),
    ('q', true),
    ('N', true),
    ('R', true),
    ('V', true),
    ('B', true),
    ('C', true),
    ('X', true),
    ('L', true),
    ('A', true),
    ('d', true),
    ('a', true),
];

/// The names that make smtpsend sendmail (as `config_cmd` and `oauth` know them too).
const SENDMAIL_NAMES: [&str; 3] = ["sendmail", "mailq", "newaliases"];

/// Sendmail's `-h N` (`-hN`): the hop count, a limit on how often a message may be
/// relayed, which Postfix and Exim ignore as well. It is dropped with its number. A bare
/// `-h` is dropped too when called as sendmail (a caller's stray flag), and is help when
/// called as smtpsend. Returns what to drop: this argument alone, with the next, or none.
fn hop_count(text: &str, next: Option<&OsString>, as_sendmail: bool) -> Option<usize> {
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match text.strip_prefix("-h")? {
        "" if next.and_then(|n| n.to_str()).is_some_and(number) => Some(2),
        "" if as_sendmail => Some(1),
        "" => None,
        n if number(n) => Some(1),
        _ => None,
    }
}

/// Drop single-letter flags no sendmail caller depends on and smtpsend does not know, so
/// that an old script's flag never turns into a failed delivery. Returns the kept
/// arguments and the dropped ones (for a note under `-v`).
pub fn filter_unknown_flags(args: Vec<OsString>) -> (Vec<OsString>, Vec<String>) {
    let mut kept = Vec::with_capacity(args.len());
    let mut dropped = Vec::new();
    let mut iter = args.into_iter().peekable();
    let as_sendmail = iter
        .peek()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .is_some_and(|n| SENDMAIL_NAMES.contains(&n));
    if let Some(argv0) = iter.next() {
        kept.push(argv0);
    }
    let mut takes_value_next = false;
    while let Some(arg) = iter.next() {
        if takes_value_next {
            takes_value_next = false;
            kept.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            kept.push(arg);
            continue;
        };
        if text == "--" {
            kept.push(arg);
            break;
        }
        match hop_count(text, iter.peek(), as_sendmail) {
            Some(2) => {
                let count = iter.next().unwrap_or_default();
                dropped.push(format!("{text} {}", count.to_string_lossy()));
                continue;
            }
            Some(_) => {
                dropped.push(text.to_string());
                continue;
            }
            None => {}
        }
        if text.starts_with("--") || !text.starts_with('-') || text.len() < 2 {
            // A long option taking a separate value is handled by clap itself.
            kept.push(arg);
            continue;
        }
        // A cluster of short flags: "-ti", "-oi", "-fuser".
        let mut keep = true;
        for (i, c) in text[1..].char_indices() {
            match KNOWN_SHORT.iter().find(|(k, _)| *k == c) {
                Some((_, true)) => {
                    // The rest of the cluster, or the next argument, is the value.
                    // `-q` takes an optional value and never the next argument.
                    if i + 1 + c.len_utf8() == text.len() && c != 'q' {
                        takes_value_next = true;
                    }
                    break;
                }
                Some((_, false)) => {}
                None => {
                    keep = false;
                    break;
                }
            }
        }
        if keep {
            kept.push(arg);
        } else {
            dropped.push(text.to_string());
        }
    }
    kept.extend(iter);
    (kept, dropped)
}

impl Cli {
    /// The mode, from `argv[0]` (`mailq`, `newaliases`) and the `-b`/`-q` flags.
    pub fn mode(&self, argv0: &str) -> Result<Mode, String> {
        let name = std::path::Path::new(argv0)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("smtpsend");
        match name {
            "mailq" => return Ok(Mode::ListQueue),
            "newaliases" => return Ok(Mode::RebuildAliases),
            _ => {}
        }
        if self.check {
            return Ok(Mode::Check);
        }
        if self.diagnosing() {
            return Ok(Mode::Diagnose);
        }
        if self.queue_runner {
            return Ok(Mode::QueueRunner);
        }
        if self.queue_run.is_some() || self.flush {
            return Ok(Mode::RunQueue);
        }
        if !self.queue_remove.is_empty() || self.queue_remove_all {
            return Ok(Mode::RemoveFromQueue);
        }
        match self.mode.as_deref() {
            None | Some("m") => Ok(Mode::Deliver),
            Some("p") => Ok(Mode::ListQueue),
            Some("i") => Ok(Mode::RebuildAliases),
            Some("s") => Ok(Mode::SmtpOnStdio),
            Some("v") => Ok(Mode::VerifyAddresses),
            Some(other) => Err(format!(
                "-b{other} is not supported (smtpsend knows -bm, -bp, -bs, -bi, -bv)"
            )),
        }
    }

    /// `-i` or `-oi`: a lone dot does not end the input.
    pub fn ignore_dots(&self) -> bool {
        self.ignore_dots
            || self
                .sendmail_options
                .iter()
                .any(|o| o == "i" || o.eq_ignore_ascii_case("ignoredots"))
    }

    /// Sendmail's `-oem` or `-oee` (ErrorMode m or e): errors are mailed back, not only
    /// printed (cron passes `-oem`; nobody reads its exit status).
    pub fn mail_errors(&self) -> bool {
        self.sendmail_options.iter().any(|o| {
            matches!(o.as_str(), "em" | "ee")
                || o.eq_ignore_ascii_case("ErrorMode=m")
                || o.eq_ignore_ascii_case("ErrorMode=e")
        }) || self
            .sendmail_long_options
            .iter()
            .any(|o| o.eq_ignore_ascii_case("ErrorMode=m") || o.eq_ignore_ascii_case("ErrorMode=e"))
    }

    /// `--queue` or sendmail's `-odq` (deliver to the queue only).
    pub fn queue_only(&self) -> bool {
        self.queue_only
            || self
                .sendmail_options
                .iter()
                .any(|o| o == "dq" || o.eq_ignore_ascii_case("DeliveryMode=q"))
    }

    /// Whether the message is composed from flags rather than read whole from stdin.
    pub fn composing(&self) -> bool {
        self.subject.is_some()
            || self.header_from.is_some()
            || self.body.is_some()
            || self.html.is_some()
            || !self.attach.is_empty()
            || !self.header.is_empty()
            || !self.cc.is_empty()
            || !self.bcc.is_empty()
    }

    /// Whether a diagnostic flag was given: the server is asked, no mail is sent.
    pub fn diagnosing(&self) -> bool {
        self.serverinfo
            || !self.verify_address.is_empty()
            || !self.expand_list.is_empty()
            || !self.etrn.is_empty()
            || self.noop
            || self.help_server.is_some()
    }

    /// `-f` or `-r`.
    pub fn envelope_from(&self) -> Option<&str> {
        self.from.as_deref().or(self.from_r.as_deref())
    }

    /// Sendmail options that were ignored, for a note under `-v`.
    pub fn ignored_options(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .sendmail_options
            .iter()
            .filter(|o| !matches!(o.as_str(), "i" | "dq" | "em" | "ee"))
            .map(|o| format!("-o{o}"))
            .collect();
        out.extend(self.sendmail_long_options.iter().map(|o| format!("-O {o}")));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> (Cli, Vec<String>) {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let (kept, dropped) = filter_unknown_flags(args);
        (Cli::try_parse_from(kept).unwrap(), dropped)
    }

    #[test]
    fn cron_style_invocation() {
        let (cli, _) = parse(&[
            "sendmail",
            "-FCronDaemon",
            "-i",
            "-B8BITMIME",
            "-oem",
            "root",
        ]);
        assert_eq!(cli.full_name.as_deref(), Some("CronDaemon"));
        assert!(cli.ignore_dots());
        assert_eq!(cli.recipients, vec!["root"]);
        assert_eq!(cli.body_type.as_deref(), Some("8BITMIME"));
        assert!(cli.mail_errors());
        let (plain, _) = parse(&["sendmail", "-oep", "root"]);
        assert!(!plain.mail_errors());
    }

    #[test]
    fn php_mail_style_invocation() {
        let (cli, _) = parse(&["sendmail", "-t", "-i", "-f", "www@example.org"]);
        assert!(cli.read_recipients && cli.ignore_dots());
        assert_eq!(cli.envelope_from(), Some("www@example.org"));
    }

    #[test]
    fn bundled_and_attached_values() {
        let (cli, _) = parse(&["sendmail", "-ti", "-oi", "-fbob@example.org", "a@b.example"]);
        assert!(cli.read_recipients && cli.ignore_dots());
        assert_eq!(cli.envelope_from(), Some("bob@example.org"));
        let (cli, _) = parse(&["sendmail", "-r", "x@y.example", "-N", "success,failure"]);
        assert_eq!(cli.envelope_from(), Some("x@y.example"));
        assert_eq!(cli.dsn_notify.as_deref(), Some("success,failure"));
    }

    #[test]
    fn modes() {
        let (cli, _) = parse(&["sendmail", "-bp"]);
        assert_eq!(cli.mode("sendmail"), Ok(Mode::ListQueue));
        let (cli, _) = parse(&["sendmail", "-bs"]);
        assert_eq!(cli.mode("sendmail"), Ok(Mode::SmtpOnStdio));
        let (cli, _) = parse(&["sendmail", "-q"]);
        assert_eq!(cli.mode("sendmail"), Ok(Mode::RunQueue));
        let (cli, _) = parse(&["sendmail", "-q30m"]);
        assert_eq!(cli.mode("sendmail"), Ok(Mode::RunQueue));
        let (cli, _) = parse(&["x"]);
        assert_eq!(cli.mode("/usr/bin/mailq"), Ok(Mode::ListQueue));
        assert_eq!(cli.mode("newaliases"), Ok(Mode::RebuildAliases));
        assert_eq!(cli.mode("sendmail"), Ok(Mode::Deliver));
        let (cli, _) = parse(&["sendmail", "-bd"]);
        assert!(cli.mode("sendmail").is_err());
    }

    #[test]
    fn unknown_single_letter_flags_are_dropped_not_fatal() {
        let (cli, dropped) = parse(&["sendmail", "-Y", "-i", "-Zfoo", "root"]);
        assert_eq!(dropped, vec!["-Y", "-Zfoo"]);
        assert_eq!(cli.recipients, vec!["root"]);
    }

    #[test]
    fn sendmails_hop_count_is_ignored_with_its_number() {
        let (cli, dropped) = parse(&["sendmail", "-h", "17", "-i", "root"]);
        assert_eq!(dropped, ["-h 17"]);
        assert_eq!(cli.recipients, ["root"]);
        assert!(cli.ignore_dots());
        let (cli, dropped) = parse(&["/usr/sbin/sendmail", "-h17", "root"]);
        assert_eq!(dropped, ["-h17"]);
        assert_eq!(cli.recipients, ["root"]);
        // Called as smtpsend too: a number after -h is a hop count, not a recipient.
        let (cli, dropped) = parse(&["smtpsend", "-h", "3", "a@b.example"]);
        assert_eq!(dropped, ["-h 3"]);
        assert_eq!(cli.recipients, ["a@b.example"]);
    }

    #[test]
    fn a_bare_h_is_ignored_as_sendmail_and_is_help_as_smtpsend() {
        for args in [
            &["sendmail", "root", "-h"][..],
            &["sendmail", "-h", "root"],
            &["mailq", "-h"],
        ] {
            let (cli, dropped) = parse(args);
            assert_eq!(dropped, ["-h"], "{args:?}");
            assert!(cli.recipients.iter().all(|r| r == "root"), "{args:?}");
        }
        let args: Vec<OsString> = ["smtpsend", "-h"].iter().map(OsString::from).collect();
        let (kept, dropped) = filter_unknown_flags(args);
        assert!(dropped.is_empty());
        let e = Cli::try_parse_from(kept).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(e.to_string().contains("Usage:"), "{e}");
    }

    #[test]
    fn value_of_a_flag_is_never_taken_for_a_flag() {
        let (cli, dropped) = parse(&["sendmail", "-F", "-weird-name-", "root"]);
        assert!(dropped.is_empty());
        assert_eq!(cli.full_name.as_deref(), Some("-weird-name-"));
    }

    #[test]
    fn long_options() {
        let (cli, _) = parse(&[
            "smtpsend",
            "--host",
            "mail.example.org",
            "--port",
            "2525",
            "--tls",
            "implicit",
            "--auth",
            "login",
            "--user",
            "me",
            "a@b.example",
        ]);
        assert_eq!(cli.host.as_deref(), Some("mail.example.org"));
        assert_eq!(cli.port, Some(2525));
        assert_eq!(cli.tls, Some(TlsMode::Implicit));
        assert_eq!(cli.auth, Some(Mechanism::Login));
    }

    #[test]
    fn sasl_options() {
        let (cli, _) = parse(&[
            "smtpsend",
            "--auth",
            "SCRAM-SHA-256",
            "--oauth",
            "--tls-cert",
            "/etc/ssl/me.pem",
            "--tls-key",
            "/etc/ssl/private/me.key",
            "a@b.example",
        ]);
        assert_eq!(cli.auth, Some(Mechanism::ScramSha256));
        assert!(cli.oauth);
        assert_eq!(
            cli.tls_cert.as_deref(),
            Some(std::path::Path::new("/etc/ssl/me.pem"))
        );
        assert_eq!(
            cli.tls_key.as_deref(),
            Some(std::path::Path::new("/etc/ssl/private/me.key"))
        );
        let e = Cli::try_parse_from(["smtpsend", "--auth", "gssapi"]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("cram-md5") && text.contains("external"),
            "{text}"
        );
        // Every mechanism can be forced, and each name parses to its mechanism.
        assert_eq!(MECHANISMS.len(), Mechanism::ALL.len());
        for name in MECHANISMS {
            let (cli, _) = parse(&["smtpsend", "--auth", name]);
            assert_eq!(
                cli.auth.map(|m| m.name().to_ascii_lowercase()),
                Some(name.into())
            );
        }
    }

    #[test]
    fn tls_modes_take_the_msmtp_and_postfix_words_in_any_case() {
        for (word, mode) in [
            ("required", TlsMode::Required),
            ("STARTTLS", TlsMode::Required),
            ("on", TlsMode::Required),
            ("may", TlsMode::Opportunistic),
            ("Opportunistic", TlsMode::Opportunistic),
            ("smtps", TlsMode::Implicit),
            ("implicit", TlsMode::Implicit),
            ("none", TlsMode::Off),
            ("off", TlsMode::Off),
        ] {
            let (cli, _) = parse(&["smtpsend", "--tls", word]);
            assert_eq!(cli.tls, Some(mode), "{word}");
        }
        let e = Cli::try_parse_from(["smtpsend", "--tls", "maybe"]).unwrap_err();
        assert!(e.to_string().contains("opportunistic"), "{e}");
    }
}
