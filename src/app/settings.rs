//! Everything the command line, the config file and the account say about one run,
//! resolved once into [`Settings`] before anything runs (in the manner of ripgrep's
//! high-level arguments): no code below this module sees [`Cli`].
//!
//! Secrets are not looked up here: a route is first a [`RouteSpec`] (names and paths, what
//! a spool entry keeps), and [`super::routes`] turns it into a live route with its
//! credentials when a message is about to go.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::app::cli::{Cli, Mode};
use crate::config::{self, Account, ConfigKind};
use crate::delivery::log::Logger;
use crate::delivery::recipients::LocalRules;
use crate::delivery::route::{AccountRef, Client, DirectSpec, RelaySpec, RouteSpec, Timeouts};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::message::FromHeader;
use crate::message::address::{self, AddressError, Origin};
use crate::message::compose::ComposeOptions;
use crate::message::dkim::Signer;
use crate::message::input::Input;
use crate::queue::Backoff;
use crate::smtp::Dsn;
use crate::smtp::probe::Query;
use crate::system::identity;
use crate::transport::{PolicyUse, TlsMode, tls};

/// Domains delivered at once on the direct route (the `parallel` setting), each on a
/// thread of its own: a delivery is mostly waiting, so sixteen cost little and ten domains
/// take about as long as one.
pub const DEFAULT_PARALLEL: usize = 16;

/// One run of smtpsend, resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    pub mode: Mode,
    pub verbose: bool,
    /// `--dry-run`: say what a send would do, send nothing.
    pub dry_run: bool,
    /// Sendmail options accepted and ignored, for a note under `-v`.
    pub ignored_options: Vec<String>,
    /// The config file the account came from.
    pub config_file: Option<PathBuf>,
    /// Its syntax: smtpsend's TOML or an msmtprc (for `-v`).
    pub config_kind: Option<ConfigKind>,
    /// Directives of the config accepted without effect, one line each (for `-v`).
    pub config_notes: Vec<String>,
    pub account: Option<Account>,
    /// `-a NAME` was given, or `-f` matched an account's `from`: the account was chosen,
    /// not defaulted.
    pub account_chosen: bool,
    pub message: MessageSettings,
    /// Recipients as given on the command line, comma lists split.
    pub recipients: Vec<String>,
    /// What to compose, when the message is built from flags.
    pub compose: Option<ComposeRequest>,
    pub local: LocalRules,
    /// Where remote recipients go, without secrets; or the mistake on the command line or
    /// in the config that only matters when a message goes to a remote recipient.
    pub route: Result<RouteSpec, String>,
    /// The command line's part of it.
    pub route_flags: RouteFlags,
    pub client: Client,
    pub queue: QueueSettings,
    pub log: Logger,
    /// Domains delivered at once on the direct route.
    pub parallel: usize,
    pub diagnose: DiagnoseSettings,
    /// The DKIM signer of the account, loaded (its key file checked) once, for the modes
    /// that send a message of their own: a queue run sends what was signed when it was
    /// queued and needs no key.
    pub dkim: Option<Arc<Signer>>,
}

/// How the message is read and what the envelope says about it.
#[derive(Clone, Debug, Default)]
pub struct MessageSettings {
    /// `-t`: recipients from the header.
    pub read_recipients: bool,
    /// Whether a recipient refused for good is also reported to the sender by mail.
    pub mail_errors: MailErrors,
    /// Without `-i`: a lone `.` line ends the input, as in sendmail.
    pub dot_ends_input: bool,
    /// `-f`/`-r`, else the account's `from` (unless that is a pattern).
    pub from: Option<String>,
    /// `-F`: the display name of an added From.
    pub full_name: Option<String>,
    pub dsn: Dsn,
    /// `-B 8BITMIME` / `-B 7BIT`.
    pub eight_bit: Option<bool>,
    /// Add From, Date and Message-ID when missing (not for a composed message).
    pub add_missing_headers: bool,
    /// Qualifies a bare `-f` name (sendmail does this with the local domain).
    pub sender_domain: String,
    /// When From is written from the envelope sender (the account's `set_from_header`).
    pub from_header: FromHeader,
    /// Replace To, Cc and Bcc by `To: undisclosed-recipients:;`.
    pub undisclosed_recipients: bool,
}

/// The compose flags (`--subject`, `--attach`, ...).
#[derive(Clone, Debug, Default)]
pub struct ComposeRequest {
    pub header_from: Option<String>,
    pub subject: Option<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub body: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub attach: Vec<PathBuf>,
    pub headers: Vec<String>,
}

/// What the command line says about the route, kept so that a route can be worked out
/// for another account too (an entry queued under it before routes were kept).
#[derive(Clone, Debug, Default)]
pub struct RouteFlags {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<TlsMode>,
    pub tls_trust_file: Option<PathBuf>,
    pub tls_fingerprint: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub user: Option<String>,
    pub auth: Option<crate::smtp::Mechanism>,
    pub oauth: bool,
    pub insecure_auth: bool,
    pub direct: bool,
    pub dns_server: Option<String>,
    pub mx_port: Option<u16>,
    pub dane: Option<PolicyUse>,
    pub mta_sts: Option<PolicyUse>,
    pub dnssec_trust_anchor: Option<PathBuf>,
    pub mta_sts_port: Option<u16>,
    pub mta_sts_trust_file: Option<PathBuf>,
    pub ehlo: Option<String>,
    /// `-a NAME`: the account was asked for by name, so its credentials may go to a
    /// `--host` other than its own relay.
    pub account_named: bool,
}

impl RouteFlags {
    fn from_cli(cli: &Cli) -> RouteFlags {
        RouteFlags {
            host: cli.host.clone(),
            port: cli.port,
            tls: cli.tls,
            tls_trust_file: cli.tls_trust_file.clone(),
            tls_fingerprint: cli.tls_fingerprint.clone(),
            tls_cert: cli.tls_cert.clone(),
            tls_key: cli.tls_key.clone(),
            user: cli.user.clone(),
            auth: cli.auth,
            oauth: cli.oauth,
            insecure_auth: cli.insecure_auth,
            direct: cli.direct,
            dns_server: cli.dns_server.clone(),
            mx_port: cli.mx_port,
            dane: cli.dane,
            mta_sts: cli.mta_sts,
            dnssec_trust_anchor: cli.dnssec_trust_anchor.clone(),
            mta_sts_port: cli.mta_sts_port,
            mta_sts_trust_file: cli.mta_sts_trust_file.clone(),
            ehlo: cli.ehlo.clone(),
            account_named: cli.account.is_some(),
        }
    }
}

/// Whether `--host`/`--port` name a relay other than the one the account names: then nothing of
/// the account's (credentials, AUTH settings, client certificate, pinned fingerprint,
/// trust file) goes there unless it was asked for by name (`-a`). msmtp's `--host` uses
/// no configuration data at all.
pub fn foreign_relay(flags: &RouteFlags, acct: Option<&Account>) -> bool {
    let (Some(host), Some(acct)) = (&flags.host, acct) else {
        return false;
    };
    if flags.account_named {
        return false;
    }
    // An account that names no relay of its own is there to be used with `--host`.
    let Some(own) = &acct.host else {
        return false;
    };
    let tls = flags.tls.or(acct.tls).unwrap_or_default();
    let default_port = match tls {
        TlsMode::Off => 25,
        m => m.default_port(),
    };
    let port = flags.port.or(acct.port).unwrap_or(default_port);
    let own_port = acct.port.unwrap_or(default_port);
    !host.eq_ignore_ascii_case(own) || port != own_port
}

/// What the queue does for this run.
#[derive(Clone, Debug, Default)]
pub struct QueueSettings {
    /// `--queue-dir`, else the account's `queue_dir`; `None` for the default.
    pub dir: Option<PathBuf>,
    /// Queue on a temporary failure and exit 0 (`queue_on_tempfail`, `--no-queue`).
    pub on_tempfail: bool,
    /// `--queue` / `-odq`: queue without trying.
    pub only: bool,
    /// `-q`: every entry, due or not (false with `--due`).
    pub all: bool,
    /// `--queue-remove ID`.
    pub remove: Vec<String>,
    /// `--queue-remove-all --yes`.
    pub remove_all: bool,
    pub yes: bool,
    /// Start a background queue runner when a message is queued (config `queue_runner`).
    pub runner: bool,
    /// The retry schedule (config `queue_retry_first`, `queue_retry_max`).
    pub backoff: Backoff,
    /// The config could not be read (a daemon's user, a config of root:smtpsend 0640), but
    /// `smtpsend-drop` can take the message: it is only queued there, for the shared
    /// spool's runner, which can read the config. Why, in words.
    pub drop_only: Option<String>,
}

/// When refusals are mailed back to the sender (RFC 3464 reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MailErrors {
    /// `-oep`, the default: the exit status and stderr say it all.
    #[default]
    Never,
    /// `-oem`/`-oee`: the caller never reads the exit status (cron).
    Always,
    /// `-bs`: only refusals the SMTP client did not see, those of a message it was told
    /// was accepted (some recipients refused after others took it).
    Unseen,
}

/// The diagnostic queries (`--serverinfo`, `--verify`, ...).
#[derive(Clone, Debug, Default)]
pub struct DiagnoseSettings {
    pub serverinfo: bool,
    pub queries: Vec<Query>,
}

/// What a user without a config is told when mail goes straight to MX hosts: always
/// under `-v`, and without it when such a send did not get through (port 25 is often
/// blocked), never when it did (cron would mail it on every run).
pub const NO_CONFIG_NOTE: &str = "smtpsend: note: no config file and no --host: mail goes \
     straight to each recipient domain's mail exchangers on port 25 (set up a relay in \
     ~/.config/smtpsend/config.toml, or give --host)";

impl Settings {
    /// A send goes to MX hosts only because nothing names a relay: no config file, no
    /// `--host`, no `--direct`.
    pub fn direct_for_want_of_config(&self) -> bool {
        self.mode == Mode::Deliver
            && self.config_file.is_none()
            && self.route_flags.host.is_none()
            && !self.route_flags.direct
            && self.queue.drop_only.is_none()
    }

    /// Resolve the command line against the config file and its account.
    pub fn resolve(cli: &Cli, argv0: &str) -> Result<Settings, Error> {
        Settings::resolve_as(cli, argv0, cli.envelope_from())
    }

    /// [`Settings::resolve`], reading the message's `From` first with
    /// `--read-envelope-from`: as msmtp does, it is then the envelope sender, and with no
    /// `-a` it chooses the account as `-f` would. The input is handed back whole.
    pub fn resolve_with_input<'a>(
        cli: &Cli,
        argv0: &str,
        input: Input<'a>,
    ) -> Result<(Settings, Input<'a>), Error> {
        // Only a message being sent has a From to read.
        if !cli.read_envelope_from || cli.mode(argv0) != Ok(Mode::Deliver) {
            return Ok((Settings::resolve(cli, argv0)?, input));
        }
        if cli.composing() {
            return Err(Error::Usage(
                "--read-envelope-from reads the From of a message; compose options build one \
                 (give --from or -f instead)"
                    .into(),
            ));
        }
        let (from, input) = input.from_address()?;
        let from = from.ok_or_else(|| {
            Error::Data(
                "--read-envelope-from: the message has no From header with an address".into(),
            )
        })?;
        Ok((Settings::resolve_as(cli, argv0, Some(&from))?, input))
    }

    /// Resolve with `sender` as the envelope sender given (`-f`, or the message's From).
    fn resolve_as(cli: &Cli, argv0: &str, sender: Option<&str>) -> Result<Settings, Error> {
        let mode = cli.mode(argv0).map_err(Error::Usage)?;
        let (config, drop_only) = match config::load(cli.config.as_deref()) {
            Ok(config) => (config, None),
            // Not ours to read: a message can still go to the shared spool.
            Err(e)
                if e.exit_status() == ExitStatus::TempFail
                    && mode == Mode::Deliver
                    && crate::queue::maildrop::available(cli.queue_dir.as_deref()).is_some() =>
            {
                (None, Some(e.to_string()))
            }
            Err(e) => return Err(e),
        };
        let account = match (&config, &cli.account) {
            // msmtp's rule, which mutt's `set envelope_from` relies on: with no -a, the
            // -f address chooses the first account whose `from` matches it.
            (Some(config), name) => Some(config.account_for(name.as_deref(), sender)?),
            (None, Some(_)) if drop_only.is_some() => None,
            (None, Some(name)) => {
                return Err(Error::Usage(format!(
                    "account {name:?} was asked for, but there is no config file"
                )));
            }
            (None, None) => None,
        };
        let acct = account.as_ref();
        // A config we could not read is still named to the shared spool's runner.
        let config_file = match &config {
            Some(c) => Some(c.origin().to_path_buf()),
            None if drop_only.is_some() => cli.config.clone(),
            None => None,
        };
        let client = client(cli, acct);
        let route_flags = RouteFlags::from_cli(cli);
        let route = spec_for(&route_flags, config_file.as_deref(), acct);
        let dkim = match acct.and_then(|a| a.dkim.as_ref()) {
            Some(config) if matches!(mode, Mode::Deliver | Mode::SmtpOnStdio) => {
                Some(Arc::new(Signer::load(config)?))
            }
            _ => None,
        };
        Ok(Settings {
            mode,
            verbose: cli.verbose > 0,
            dry_run: cli.dry_run,
            ignored_options: cli.ignored_options(),
            config_kind: config.as_ref().map(|c| c.kind()),
            config_notes: config
                .as_ref()
                .map(|c| c.notes().to_vec())
                .unwrap_or_default(),
            config_file,
            // Chosen by -a, or by -f matching an account's `from`: not defaulted.
            account_chosen: cli.account.is_some()
                || config
                    .as_ref()
                    .is_some_and(|c| sender.is_some_and(|f| c.match_sender(f).is_some())),
            message: message_settings(cli, acct, sender)?,
            recipients: split_recipients(&cli.recipients),
            compose: cli.composing().then(|| ComposeRequest {
                header_from: cli.header_from.clone(),
                subject: cli.subject.clone(),
                cc: split_recipients(&cli.cc),
                bcc: split_recipients(&cli.bcc),
                body: cli.body.clone(),
                html: cli.html.clone(),
                attach: cli.attach.clone(),
                headers: cli.header.clone(),
            }),
            local: local_rules(acct),
            route,
            route_flags,
            client,
            queue: QueueSettings {
                dir: cli
                    .queue_dir
                    .clone()
                    .or_else(|| acct.and_then(|a| a.queue_dir.clone())),
                on_tempfail: !cli.no_queue && acct.is_none_or(|a| a.queue_on_tempfail),
                only: cli.queue_only(),
                all: !cli.due,
                remove: cli.queue_remove.clone(),
                remove_all: cli.queue_remove_all,
                yes: cli.yes,
                runner: runner_wanted(acct),
                backoff: backoff(acct),
                drop_only,
            },
            log: Logger::new(
                cli.logfile
                    .clone()
                    .or_else(|| acct.and_then(|a| a.logfile.clone())),
                cli.syslog || acct.is_some_and(|a| a.syslog.is_some()),
            ),
            parallel: cli
                .parallel
                .or(acct.and_then(|a| a.parallel))
                .unwrap_or(DEFAULT_PARALLEL)
                .max(1),
            diagnose: DiagnoseSettings {
                serverinfo: cli.serverinfo,
                queries: queries(cli)?,
            },
            dkim,
            account,
        })
    }

    /// The envelope sender: `-f`/`-r`, the account's `from`, or `user@mailname`; "" for
    /// the null sender. A bare name is qualified with the local domain, as sendmail does.
    pub fn envelope_sender(&self) -> Result<String, Error> {
        match &self.message.from {
            Some(f) if address::is_null_sender(f) => Ok(String::new()),
            Some(f) => match address::envelope_address(f) {
                Ok(a) => Ok(a),
                Err(AddressError::NoDomain(_)) => address::envelope_address(&format!(
                    "{}@{}",
                    f.trim(),
                    self.message.sender_domain
                ))
                .map_err(|e| e.into_error(Origin::CommandLine)),
                Err(e) => Err(e.into_error(Origin::CommandLine)),
            },
            None => {
                if let Some(pattern) = self
                    .account
                    .as_ref()
                    .and_then(|a| a.from.as_deref())
                    .filter(|f| config::is_pattern(f))
                {
                    return Err(Error::Config(format!(
                        "the account's from {pattern:?} is a pattern that chooses the \
                         account for -f, not an address to send from; give -f"
                    )));
                }
                Ok(format!(
                    "{}@{}",
                    identity::user_name(),
                    identity::mail_name()
                ))
            }
        }
    }

    /// The route for remote recipients, or the mistake that prevents one.
    pub fn route_spec(&self) -> Result<&RouteSpec, Error> {
        self.route.as_ref().map_err(|why| Error::Usage(why.clone()))
    }

    /// The compose options for a message built from flags.
    pub fn compose_options(
        &self,
        request: &ComposeRequest,
        envelope_from: &str,
        to: Vec<String>,
        cc: Vec<String>,
    ) -> ComposeOptions {
        let from = match &request.header_from {
            Some(f) => f.clone(),
            None => match &self.message.full_name {
                Some(name) => format!("{} <{envelope_from}>", quote_display_name(name)),
                None => envelope_from.to_string(),
            },
        };
        ComposeOptions {
            from,
            to,
            cc,
            subject: request.subject.clone(),
            text_body: request.body.clone(),
            html_body: request.html.clone(),
            attachments: request.attach.clone(),
            headers: request.headers.clone(),
            hostname: identity::mail_name(),
        }
    }
}

fn message_settings(
    cli: &Cli,
    acct: Option<&Account>,
    sender: Option<&str>,
) -> Result<MessageSettings, Error> {
    Ok(MessageSettings {
        read_recipients: cli.read_recipients,
        mail_errors: if cli.mail_errors() {
            MailErrors::Always
        } else {
            MailErrors::Never
        },
        dot_ends_input: !cli.ignore_dots(),
        from: sender
            .or_else(|| acct.and_then(Account::envelope_from))
            .map(str::to_string),
        full_name: cli.full_name.clone(),
        dsn: Dsn::new(
            cli.dsn_notify
                .as_deref()
                .or_else(|| acct.and_then(|a| a.dsn_notify.as_deref())),
            cli.dsn_return
                .as_deref()
                .or_else(|| acct.and_then(|a| a.dsn_return.as_deref())),
            cli.dsn_envid.as_deref(),
        )
        .map_err(Error::Usage)?,
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
            None => None,
        },
        add_missing_headers: !cli.composing() && acct.is_none_or(|a| a.add_missing_headers),
        sender_domain: acct
            .and_then(|a| a.local_domain.clone())
            .unwrap_or_else(identity::mail_name),
        from_header: acct.map(|a| a.set_from_header).unwrap_or_default(),
        undisclosed_recipients: acct.is_some_and(|a| a.undisclosed_recipients),
    })
}

/// Whether a sender starts the background queue runner: the config's `queue_runner`,
/// unless `SMTPSEND_QUEUE_RUNNER` says `off` or `on` (a systemd unit or a test suite that
/// runs the queue itself).
fn runner_wanted(acct: Option<&Account>) -> bool {
    match std::env::var("SMTPSEND_QUEUE_RUNNER").as_deref() {
        Ok("off" | "0" | "no" | "false") => false,
        Ok("on" | "1" | "yes" | "true") => true,
        _ => acct.is_none_or(|a| a.queue_runner),
    }
}

/// The retry schedule: the account's, else five minutes doubling to four hours.
fn backoff(acct: Option<&Account>) -> Backoff {
    let default = Backoff::default();
    let first = acct
        .and_then(|a| a.queue_retry_first)
        .map_or(default.first, Duration::from_secs);
    let max = acct
        .and_then(|a| a.queue_retry_max)
        .map_or(default.max, Duration::from_secs);
    Backoff {
        first,
        max: max.max(first),
    }
}

/// How bare local names are handled, from the account.
fn local_rules(acct: Option<&Account>) -> LocalRules {
    LocalRules {
        local_domain: acct.and_then(|a| a.local_domain.clone()),
        default_recipient: acct.and_then(|a| a.default_recipient.clone()),
        local_delivery: acct.is_none_or(|a| a.local_delivery),
        aliases_file: acct.and_then(|a| a.aliases.clone()),
        mail_spool: acct.and_then(|a| a.mail_spool.clone()),
    }
}

/// The route for `acct` (from `config_file`) under the command line's flags: a relay when
/// one is configured (`--host`, the account's `host`) and `--direct` is not given;
/// otherwise direct delivery to each domain's exchangers.
pub fn spec_for(
    flags: &RouteFlags,
    config_file: Option<&Path>,
    acct: Option<&Account>,
) -> Result<RouteSpec, String> {
    // Another host than the account's: the account stays out of it.
    let acct = acct.filter(|_| !foreign_relay(flags, acct));
    let relay_host = flags
        .host
        .clone()
        .or_else(|| acct.and_then(|a| a.host.clone()));
    let trust_file = flags
        .tls_trust_file
        .clone()
        .or_else(|| acct.and_then(|a| a.tls_trust_file.clone()));
    let ehlo = flags
        .ehlo
        .clone()
        .or_else(|| acct.and_then(|a| a.ehlo.clone()));
    match relay_host {
        Some(host) if !flags.direct => {
            let tls = flags.tls.or(acct.and_then(|a| a.tls)).unwrap_or_default();
            let port = flags
                .port
                .or(acct.and_then(|a| a.port))
                .unwrap_or(match tls {
                    TlsMode::Off => 25,
                    m => m.default_port(),
                });
            let tls_fingerprint = flags
                .tls_fingerprint
                .clone()
                .or_else(|| acct.and_then(|a| a.tls_fingerprint.clone()));
            if let Some(text) = &tls_fingerprint {
                tls::parse_fingerprint(text)?;
            }
            let (tls_cert, tls_key) = client_cert(flags, acct);
            Ok(RouteSpec::Relay(RelaySpec {
                host,
                port,
                tls,
                tls_trust_file: trust_file,
                tls_fingerprint,
                tls_cert,
                tls_key,
                account: acct.zip(config_file).map(|(a, file)| AccountRef {
                    name: a.name.clone(),
                    config: file.to_path_buf(),
                }),
                user: flags.user.clone(),
                auth: flags
                    .auth
                    .or(acct.and_then(|a| a.auth))
                    .map(|m| m.name().to_string()),
                oauth: flags.oauth,
                insecure_auth: flags.insecure_auth || acct.is_some_and(|a| a.insecure_auth),
                from_command_line: flags.host.is_some(),
                ehlo,
            }))
        }
        _ => {
            let tls = flags.tls.unwrap_or(TlsMode::Opportunistic);
            if tls == TlsMode::Implicit {
                return Err(
                    "--tls implicit is for a relay; exchangers speak STARTTLS on port 25".into(),
                );
            }
            Ok(RouteSpec::Direct(DirectSpec {
                tls,
                tls_trust_file: trust_file,
                verify_domains: acct
                    .map(|a| a.tls_verify_domains.clone())
                    .unwrap_or_default(),
                dns_server: flags
                    .dns_server
                    .clone()
                    .or_else(|| acct.and_then(|a| a.dns_server.clone())),
                mx_port: flags.mx_port,
                ehlo,
                ..direct_policy(flags, acct)
            }))
        }
    }
}

/// How we present ourselves and what we watch, the same for every route of the run.
fn client(cli: &Cli, acct: Option<&Account>) -> Client {
    let timeout = cli.timeout.or(acct.and_then(|a| a.timeout));
    Client {
        ehlo: cli
            .ehlo
            .clone()
            .or_else(|| acct.and_then(|a| a.ehlo.clone()))
            .unwrap_or_else(identity::mail_name),
        pipelining: !cli.no_pipelining,
        // Beside the spool's entries, where the state of this user's mail is kept.
        mta_sts_cache: crate::queue::Spool::path(
            cli.queue_dir
                .as_deref()
                .or(acct.and_then(|a| a.queue_dir.as_deref())),
        )
        .ok()
        .map(|spool| spool.join("mta-sts")),
        trace: cli.verbose > 0,
        progress: cli.verbose > 0 || !cli.attach.is_empty(),
        timeouts: Timeouts {
            connect: Duration::from_secs(cli.connect_timeout.unwrap_or(30)),
            command: timeout.map(Duration::from_secs),
            total: cli
                .deadline
                .or(acct.and_then(|a| a.deadline))
                .map(Duration::from_secs),
        },
    }
}

/// DANE and MTA-STS for the direct route: the command line over the account's keys.
fn direct_policy(flags: &RouteFlags, acct: Option<&Account>) -> DirectSpec {
    let policy = acct.map(|a| a.direct_policy.clone()).unwrap_or_default();
    DirectSpec {
        dane: flags.dane.or(policy.dane).unwrap_or_default(),
        mta_sts: flags.mta_sts.or(policy.mta_sts).unwrap_or_default(),
        dnssec_trust_anchor: flags
            .dnssec_trust_anchor
            .clone()
            .or(policy.dnssec_trust_anchor),
        dane_domains: policy.dane_domains,
        mta_sts_domains: policy.mta_sts_domains,
        mta_sts_trust_file: flags
            .mta_sts_trust_file
            .clone()
            .or(policy.mta_sts_trust_file),
        mta_sts_port: flags.mta_sts_port,
        ..DirectSpec::default()
    }
}

/// `--tls-cert` and `--tls-key` over the account's; the key defaults to the cert file.
fn client_cert(flags: &RouteFlags, acct: Option<&Account>) -> (Option<PathBuf>, Option<PathBuf>) {
    match &flags.tls_cert {
        Some(cert) => (Some(cert.clone()), flags.tls_key.clone()),
        None => match acct.and_then(|a| a.tls_cert.clone()) {
            Some(cert) => (
                Some(cert),
                flags
                    .tls_key
                    .clone()
                    .or_else(|| acct.and_then(|a| a.tls_key.clone())),
            ),
            None => (None, None),
        },
    }
}

/// The queries in the order the man page gives: VRFY, EXPN, ETRN, NOOP, HELP.
fn queries(cli: &Cli) -> Result<Vec<Query>, Error> {
    let nonempty = |flag: &str, v: &str| -> Result<String, Error> {
        let v = v.trim();
        if v.is_empty() {
            Err(Error::Usage(format!("{flag} needs a non-empty argument")))
        } else {
            Ok(v.to_string())
        }
    };
    let mut queries = Vec::new();
    for a in &cli.verify_address {
        queries.push(Query::Vrfy(nonempty("--verify", a)?));
    }
    for a in &cli.expand_list {
        queries.push(Query::Expn(nonempty("--expand", a)?));
    }
    for d in &cli.etrn {
        queries.push(Query::Etrn(nonempty("--etrn", d)?));
    }
    if cli.noop {
        queries.push(Query::Noop);
    }
    if let Some(topic) = &cli.help_server {
        let topic = topic.trim();
        queries.push(Query::Help((!topic.is_empty()).then(|| topic.to_string())));
    }
    Ok(queries)
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
