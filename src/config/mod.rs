//! Accounts from a config file: smtpsend's TOML, or an msmtprc read as msmtp reads it
//! ([`msmtprc`]), both giving the same [`Account`] values.
//!
//! In TOML, top-level keys are defaults that every `[accounts.NAME]` table inherits; a
//! table may also inherit another (`inherits = "work"`, or a list, later names winning);
//! a file with no account tables is itself the one account, "default".
//!
//! Parsing is strict (unknown keys are errors, with their line) because a misspelt
//! `tls` or `host` would otherwise send mail somewhere, or in a way, nobody chose.

mod file;
mod from;
pub mod msmtprc;
pub mod oauth;
mod password;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer};

pub use file::{SYSTEM_CONFIG, SYSTEM_MSMTPRC, msmtprc_path};
pub use from::is_pattern;
pub use password::PasswordSource;

use crate::message::FromHeader;
use crate::message::dkim::SignerConfig;
use crate::smtp::Dsn;
use crate::smtp::session::Mechanism;
use crate::transport::{PolicyUse, TlsMode, tls};
use crate::{Error, Result};
use oauth::{Provider, ProviderKeys, TokenSource};

/// The name of the account a file without `[accounts.*]` tables defines.
pub const DEFAULT_ACCOUNT: &str = "default";

/// One way of sending: a relay (or, with no `host`, direct delivery) and how to talk to it.
/// `None` fields are left to the caller's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    /// The syntax of the file the account is in, so advice can be given in it.
    pub config_kind: ConfigKind,
    /// The relay; `None` means no relay was configured.
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<TlsMode>,
    /// A forced SASL mechanism; otherwise one is chosen from the server's offer.
    pub auth: Option<Mechanism>,
    /// `auth = "off"` (msmtp's default): never authenticate, even with a user and a
    /// password set; the command line's `--user` still does.
    pub auth_off: bool,
    pub user: Option<String>,
    pub password: PasswordSource,
    /// OAuth 2.0 instead of a password: where the access token comes from.
    pub oauth: Option<TokenSource>,
    /// The envelope sender, with msmtp's `%U`, `%H`, `%C` and `%M` replaced; or, when it
    /// holds `*`, `?` or `[`, a pattern that only chooses the account for `-f` (see
    /// [`Account::envelope_from`]).
    pub from: Option<String>,
    pub ehlo: Option<String>,
    /// Extra certificates to trust, or [`tls::SYSTEM_TRUST`] for the system's CA store.
    pub tls_trust_file: Option<PathBuf>,
    /// A SHA-256 certificate fingerprint as written (64 hex digits, colons allowed).
    pub tls_fingerprint: Option<String>,
    /// Check the relay's certificate (default true). `false` is msmtp's
    /// `tls_certcheck off`: encrypted, not authenticated, so credentials then need
    /// `insecure_auth`.
    pub tls_verify: bool,
    /// Seconds, overriding the per-command timeouts.
    pub timeout: Option<u64>,
    /// Allow AUTH on a connection without TLS, or with TLS whose certificate is not
    /// verified.
    pub insecure_auth: bool,
    /// A PEM client certificate for TLS, for AUTH EXTERNAL or a server that relays by
    /// certificate.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert` (default: the `tls_cert` file itself).
    pub tls_key: Option<PathBuf>,
    /// Qualifies bare local recipients such as `root`.
    pub local_domain: Option<String>,
    /// The aliases file for bare local names (default `/etc/aliases`).
    pub aliases: Option<PathBuf>,
    /// Where local names go that no alias names and no `local_domain` qualifies
    /// (msmtp's `default:` alias); otherwise they are delivered to the local mailbox.
    pub default_recipient: Option<String>,
    /// Deliver bare local names into the mailbox in `mail_spool` (default true).
    pub local_delivery: bool,
    /// The mailbox directory for local delivery (default `/var/mail`).
    pub mail_spool: Option<PathBuf>,
    /// The queue directory (default `/var/spool/smtpsend` when writable, else
    /// `$XDG_STATE_HOME/smtpsend/queue`).
    pub queue_dir: Option<PathBuf>,
    /// Start a background queue runner when a message is queued and none is running
    /// (default true; off where a timer runs `smtpsend -q`).
    pub queue_runner: bool,
    /// Seconds before the first retry of a queued message (default 300), doubling up to
    /// `queue_retry_max` (default 14400).
    pub queue_retry_first: Option<u64>,
    pub queue_retry_max: Option<u64>,
    /// Queue the message and exit 0 on a temporary failure (default true).
    pub queue_on_tempfail: bool,
    /// Add From, Date and Message-ID when the message lacks them (default true).
    pub add_missing_headers: bool,
    /// When the From field is written from the envelope sender (msmtp's
    /// `set_from_header`; default: only when missing).
    pub set_from_header: FromHeader,
    /// Replace To, Cc and Bcc by `To: undisclosed-recipients:;` (RFC 5322 §3.4).
    pub undisclosed_recipients: bool,
    /// DSN NOTIFY when the command line gives no `-N` (RFC 3461 §4.1), as `-N` takes it.
    pub dsn_notify: Option<String>,
    /// DSN RET when the command line gives no `-R` (RFC 3461 §4.3): `full` or `hdrs`.
    pub dsn_return: Option<String>,
    /// The DNS server for MX lookups in direct delivery, `IP[:PORT]`.
    pub dns_server: Option<String>,
    /// Threads delivering domains at once on the direct route (each driving up to 4
    /// connections; 1: one domain after another).
    pub parallel: Option<usize>,
    /// A deadline in seconds for a whole SMTP session.
    pub deadline: Option<u64>,
    /// Domains whose exchangers must present a verified certificate on the direct route
    /// (the rest get opportunistic TLS).
    pub tls_verify_domains: Vec<String>,
    /// The delivery log file (`--logfile`).
    pub logfile: Option<PathBuf>,
    /// Log each delivery to syslog with this facility (`--syslog` uses `LOG_MAIL`).
    pub syslog: Option<SyslogFacility>,
    /// DANE and MTA-STS on the direct route.
    pub direct_policy: DirectPolicy,
    /// Sign outgoing mail with DKIM (`dkim_key`, `dkim_selector`, `dkim_domain`,
    /// `dkim_headers`; issue 18). The key is read and checked when a send starts, not here.
    pub dkim: Option<SignerConfig>,
}

/// What the direct route makes of the TLS policies destinations publish (DANE, MTA-STS).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectPolicy {
    /// `dane`: on (default), off or require.
    pub dane: Option<PolicyUse>,
    /// `mta_sts`: on (default), off or require.
    pub mta_sts: Option<PolicyUse>,
    /// `dnssec_trust_anchor`: DNSKEY records instead of the IANA root's.
    pub dnssec_trust_anchor: Option<PathBuf>,
    /// `mta_sts_trust_file`: certificates trusted for policy hosts besides the web PKI.
    pub mta_sts_trust_file: Option<PathBuf>,
    /// `tls_dane_domains`: domains whose exchangers must be authenticated by DANE.
    pub dane_domains: Vec<String>,
    /// `tls_mta_sts_domains`: domains that must have an MTA-STS policy in mode enforce.
    pub mta_sts_domains: Vec<String>,
}

impl Account {
    /// The envelope sender the account names: its `from`, unless that is a pattern
    /// (which only chooses the account for a `-f` that matches it).
    pub fn envelope_from(&self) -> Option<&str> {
        self.from.as_deref().filter(|f| !from::is_pattern(f))
    }
}

/// A syslog facility, as msmtp's `syslog` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyslogFacility {
    User,
    Mail,
    /// `LOG_LOCAL0` to `LOG_LOCAL7`.
    Local(u8),
}

impl SyslogFacility {
    /// `LOG_USER`, `LOG_MAIL` or `LOG_LOCAL0` ... `LOG_LOCAL7`.
    pub fn from_name(name: &str) -> Option<SyslogFacility> {
        match name {
            "LOG_USER" => Some(SyslogFacility::User),
            "LOG_MAIL" => Some(SyslogFacility::Mail),
            _ => {
                let n = name.strip_prefix("LOG_LOCAL")?;
                let digit = n.parse::<u8>().ok().filter(|d| *d <= 7 && n.len() == 1)?;
                Some(SyslogFacility::Local(digit))
            }
        }
    }

    pub fn name(self) -> String {
        match self {
            SyslogFacility::User => "LOG_USER".into(),
            SyslogFacility::Mail => "LOG_MAIL".into(),
            SyslogFacility::Local(n) => format!("LOG_LOCAL{n}"),
        }
    }

    /// The facility as `syslog(3)` takes it, to be or-ed with a priority.
    pub fn code(self) -> libc::c_int {
        match self {
            SyslogFacility::User => libc::LOG_USER,
            SyslogFacility::Mail => libc::LOG_MAIL,
            SyslogFacility::Local(n) => libc::LOG_LOCAL0 + (libc::c_int::from(n) << 3),
        }
    }
}

/// The syntax a config file is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigKind {
    /// smtpsend's own TOML.
    Toml,
    /// msmtp's `key value` lines, read as msmtp reads them.
    Msmtprc,
}

impl ConfigKind {
    /// The kind `text` is written in: an msmtprc when its first line that is not empty and
    /// not a comment is one of msmtp's commands followed by a blank or nothing (`host
    /// smtp.example.org`, `defaults`, `account work`), never by `=`; TOML otherwise.
    pub fn detect(text: &str) -> ConfigKind {
        if msmtprc::looks_like_msmtprc(text) {
            ConfigKind::Msmtprc
        } else {
            ConfigKind::Toml
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ConfigKind::Toml => "toml",
            ConfigKind::Msmtprc => "msmtprc",
        }
    }
}

/// A parsed config file and where it came from.
#[derive(Clone, Debug)]
pub struct Config {
    origin: PathBuf,
    kind: ConfigKind,
    default_account: Option<String>,
    accounts: BTreeMap<String, Account>,
    /// msmtprc accounts that cannot send, and why, naming the line: an error only when
    /// chosen, as msmtp checks only the account it uses.
    unusable: BTreeMap<String, String>,
    /// Every account's name and `from`, in the order of the file: `-f` chooses the first
    /// account whose `from` matches, as msmtp does.
    order: Vec<(String, Option<String>)>,
    /// Directives accepted without effect, for a note under `-v`.
    notes: Vec<String>,
    holds_password: bool,
    runs_command: bool,
}

/// Finds and loads the config: `explicit` (`--config`) or `$SMTPSEND_CONFIG` if set (either
/// must exist, TOML or msmtprc as its syntax says), else
/// `$XDG_CONFIG_HOME/smtpsend/config.toml` (or `~/.config/smtpsend/config.toml`), else
/// [`SYSTEM_CONFIG`], else msmtp's files in msmtp's order: `~/.msmtprc`,
/// `$XDG_CONFIG_HOME/msmtp/config`, [`SYSTEM_MSMTPRC`]. The first file found is the whole
/// config; files are never merged. `Ok(None)` when there is none.
///
/// A file that exists but this user may not read is [`Error::TempFail`], so a sendmail
/// caller keeps the message instead of losing it to a permanent error.
pub fn load(explicit: Option<&Path>) -> Result<Option<Config>> {
    let env = |name: &str| std::env::var_os(name);
    let home = env("HOME").map(PathBuf::from);
    file::load_first(&file::search_path(explicit, &env), home.as_deref())
}

impl Config {
    /// Parses `text`, TOML or msmtprc as [`ConfigKind::detect`] says; `origin` names the
    /// file in messages and anchors relative paths. File permissions are checked by
    /// [`load`], which knows the file.
    pub fn parse(text: &str, origin: &Path) -> Result<Config> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Config::parse_kind(text, ConfigKind::detect(text), origin, home.as_deref())
    }

    /// Whether every key of TOML config `text` is one smtpsend knows, with a value of the
    /// right type: the first half of [`Config::parse`], without judging how the settings go
    /// together (a file half written, an example showing one setting).
    pub fn check_keys(text: &str, origin: &Path) -> Result<()> {
        toml::from_str::<RawFile>(text)
            .map(|_| ())
            .map_err(|e| toml_error(text, origin, &e))
    }

    fn parse_kind(
        text: &str,
        kind: ConfigKind,
        origin: &Path,
        home: Option<&Path>,
    ) -> Result<Config> {
        match kind {
            ConfigKind::Toml => Config::parse_with_home(text, origin, home),
            ConfigKind::Msmtprc => msmtprc::parse(text, origin)?.into_config(origin, home),
        }
    }

    fn parse_with_home(text: &str, origin: &Path, home: Option<&Path>) -> Result<Config> {
        let raw: RawFile = toml::from_str(text).map_err(|e| toml_error(text, origin, &e))?;
        let shown = origin.display();
        // An OAuth client secret is a credential too, and a token command runs as us.
        let holds_password = raw.defaults().holds_secret()
            || raw.accounts.values().any(|a| a.get_ref().holds_secret());
        let runs_command = raw.defaults().runs_command()
            || raw.accounts.values().any(|a| a.get_ref().runs_command());
        let defaults = raw.defaults();
        let mut accounts = BTreeMap::new();
        let mut order = Vec::new();
        if raw.accounts.is_empty() {
            let account = defaults
                .clone()
                .build(DEFAULT_ACCOUNT, origin, home)
                .map_err(|e| Error::Config(format!("{shown}: {e}")))?;
            order.push((DEFAULT_ACCOUNT.to_string(), account.from.clone()));
            accounts.insert(DEFAULT_ACCOUNT.to_string(), account);
        }
        let tables = Tables {
            text,
            defaults: &defaults,
            tables: &raw.accounts,
        };
        let mut by_line: Vec<(&String, usize)> = raw
            .accounts
            .iter()
            .map(|(name, table)| (name, line_of(text, table.span().start)))
            .collect();
        by_line.sort_by_key(|(_, line)| *line);
        let mut resolved = BTreeMap::new();
        for (name, line) in by_line {
            if name.is_empty() {
                return Err(Error::Config(format!(
                    "{shown}: line {line}: an account name is empty"
                )));
            }
            let merged = tables
                .resolve(name, &mut resolved, &mut Vec::new())
                .map_err(|e| Error::Config(format!("{shown}: {e}")))?;
            let account = merged
                .build(name, origin, home)
                .map_err(|e| Error::Config(format!("{shown}: line {line}: account {name}: {e}")))?;
            order.push((name.clone(), account.from.clone()));
            accounts.insert(name.clone(), account);
        }
        let default_account = raw.default_account.map(|t| t.0);
        if let Some(name) = &default_account
            && !accounts.contains_key(name)
        {
            return Err(Error::Config(format!(
                "{shown}: default_account {name:?} is not an account here (known: {})",
                names(accounts.keys())
            )));
        }
        Ok(Config {
            origin: origin.to_path_buf(),
            kind: ConfigKind::Toml,
            default_account,
            accounts,
            unusable: BTreeMap::new(),
            order,
            notes: Vec::new(),
            holds_password,
            runs_command,
        })
    }

    /// The account named on the command line, or the default one: `default_account`
    /// (in an msmtprc, the account named `default`), or the only account there is.
    pub fn account(&self, name: Option<&str>) -> Result<Account> {
        let shown = self.origin.display();
        if self.order.is_empty() {
            return Err(Error::Config(format!("{shown} defines no account")));
        }
        let name = match (name, &self.default_account) {
            (Some(name), _) => name,
            (None, Some(default)) => default.as_str(),
            (None, None) => match self.order.as_slice() {
                [(only, _)] => only.as_str(),
                _ => {
                    let hint = match self.kind {
                        ConfigKind::Toml => "set default_account, or choose with -a",
                        ConfigKind::Msmtprc => {
                            "add `account default : NAME`, or choose with -a or -f"
                        }
                    };
                    return Err(Error::Config(format!(
                        "{shown}: several accounts ({}) and no default; {hint}",
                        self.known()
                    )));
                }
            },
        };
        if let Some(why) = self.unusable.get(name) {
            return Err(Error::Config(format!("{shown}: account {name}: {why}")));
        }
        self.accounts.get(name).cloned().ok_or_else(|| {
            Error::Usage(format!(
                "unknown account {name:?}; {shown} defines: {}",
                self.known()
            ))
        })
    }

    /// The account for a message: the one named (`-a`); else, as msmtp does for `-f` and
    /// `--read-envelope-from`, the first account in the file whose `from` matches
    /// `sender`, as an address without regard to case, or as a shell pattern when it holds
    /// `*`, `?` or `[`, `user+detail@domain` also matching the account of `user@domain`;
    /// else the default one ([`Config::account`]).
    pub fn account_for(&self, name: Option<&str>, sender: Option<&str>) -> Result<Account> {
        if name.is_none()
            && let Some(sender) = sender
            && let Some(chosen) = self.match_sender(sender)
        {
            return self.account(Some(chosen));
        }
        self.account(name)
    }

    /// The name of the first account whose `from` matches `sender`.
    pub fn match_sender(&self, sender: &str) -> Option<&str> {
        from::match_account(
            self.order
                .iter()
                .filter_map(|(name, from)| from.as_deref().map(|f| (name.as_str(), f))),
            sender,
        )
    }

    /// The file this came from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// TOML or msmtprc.
    pub fn kind(&self) -> ConfigKind {
        self.kind
    }

    /// Directives that were accepted but change nothing here, one line each naming the
    /// file and the line, for `-v`.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The accounts' names, in the order of the file.
    pub fn account_names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(|(name, _)| name.as_str())
    }

    fn known(&self) -> String {
        names(self.order.iter().map(|(name, _)| name))
    }

    fn holds_password(&self) -> bool {
        self.holds_password
    }

    fn runs_command(&self) -> bool {
        self.runs_command
    }
}

fn names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let mut sorted: Vec<&str> = names.map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.join(", ")
}

fn line_of(text: &str, offset: usize) -> usize {
    let before = text.as_bytes().get(..offset).unwrap_or(text.as_bytes());
    before.iter().filter(|&&b| b == b'\n').count() + 1
}

/// One line for stderr: toml's own rendering draws the source over several.
fn toml_error(text: &str, origin: &Path, e: &toml::de::Error) -> Error {
    let message = e.message().trim_end().replace('\n', "; ");
    match e.span() {
        Some(span) => Error::Config(format!(
            "{}: line {}: {message}",
            origin.display(),
            line_of(text, span.start)
        )),
        None => Error::Config(format!("{}: {message}", origin.display())),
    }
}

/// The account tables of a TOML file, for following `inherits`.
struct Tables<'a> {
    text: &'a str,
    defaults: &'a RawAccount,
    tables: &'a BTreeMap<String, toml::Spanned<RawAccount>>,
}

impl Tables<'_> {
    /// The keys of account `name` with what it inherits filled in: from the accounts its
    /// `inherits` names (each with its own inheritance; a later name wins over an earlier
    /// one), or else from the top level. `path` holds the accounts being resolved, to
    /// refuse a cycle.
    fn resolve(
        &self,
        name: &str,
        done: &mut BTreeMap<String, RawAccount>,
        path: &mut Vec<String>,
    ) -> std::result::Result<RawAccount, String> {
        if let Some(merged) = done.get(name) {
            return Ok(merged.clone());
        }
        let Some(table) = self.tables.get(name) else {
            return Err(format!("no account {name:?}"));
        };
        let line = line_of(self.text, table.span().start);
        if path.iter().any(|p| p == name) {
            path.push(name.to_string());
            return Err(format!(
                "line {line}: account {name}: inherits forms a cycle ({})",
                path.join(" -> ")
            ));
        }
        let mut own = table.get_ref().clone();
        let merged = match own.inherits.take() {
            None => own.inherit(self.defaults),
            Some(parents) => {
                path.push(name.to_string());
                let mut base: Option<RawAccount> = None;
                for parent in parents.names() {
                    if !self.tables.contains_key(parent) {
                        let known: Vec<&str> = self.tables.keys().map(String::as_str).collect();
                        return Err(format!(
                            "line {line}: account {name}: inherits {parent:?}, which is not \
                             an account here (known: {})",
                            known.join(", ")
                        ));
                    }
                    let theirs = self.resolve(parent, done, path)?;
                    base = Some(match base {
                        None => theirs,
                        Some(earlier) => theirs.inherit(&earlier),
                    });
                }
                path.pop();
                match base {
                    Some(base) => own.inherit(&base),
                    None => {
                        return Err(format!(
                            "line {line}: account {name}: inherits names no account"
                        ));
                    }
                }
            }
        };
        done.insert(name.to_string(), merged.clone());
        Ok(merged)
    }
}

/// Declares the account keys once, for both an account table and the top level, and the
/// field-by-field inheritance between them. `inherits` belongs to account tables only and
/// is never itself inherited.
macro_rules! account_keys {
    ($($key:ident: $ty:ty,)*) => {
        /// The keys of an `[accounts.NAME]` table, each optional.
        #[derive(Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawAccount {
            $($key: Option<$ty>,)*
            inherits: Option<Inherits>,
        }

        /// The whole file. `#[serde(flatten)]` would be shorter but cannot be combined
        /// with `deny_unknown_fields`.
        #[derive(Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawFile {
            $($key: Option<$ty>,)*
            default_account: Option<Text>,
            #[serde(default)]
            accounts: BTreeMap<String, toml::Spanned<RawAccount>>,
        }

        impl RawFile {
            fn defaults(&self) -> RawAccount {
                RawAccount { $($key: self.$key.clone(),)* inherits: None }
            }
        }

        impl RawAccount {
            fn or(self, defaults: RawAccount) -> RawAccount {
                RawAccount { $($key: self.$key.or(defaults.$key),)* inherits: self.inherits }
            }
        }
    };
}

account_keys! {
    host: Text,
    port: Port,
    tls: Parsed<TlsMode>,
    auth: Auth,
    user: Text,
    password: Text,
    password_env: Text,
    password_command: Text,
    password_file: Text,
    from: Text,
    ehlo: Text,
    tls_trust_file: Text,
    tls_fingerprint: Fingerprint,
    tls_verify: bool,
    timeout: Seconds,
    insecure_auth: bool,
    tls_cert: Text,
    tls_key: Text,
    local_domain: Text,
    aliases: Text,
    default_recipient: Text,
    local_delivery: bool,
    mail_spool: Text,
    queue_dir: Text,
    queue_on_tempfail: bool,
    queue_runner: bool,
    queue_retry_first: Seconds,
    queue_retry_max: Seconds,
    add_missing_headers: bool,
    set_from_header: SetFrom,
    undisclosed_recipients: bool,
    dsn_notify: Text,
    dsn_return: Text,
    dns_server: Text,
    parallel: Parallel,
    logfile: Text,
    syslog: Syslog,
    deadline: Seconds,
    tls_verify_domains: Vec<Text>,
    dane: Parsed<PolicyUse>,
    mta_sts: Parsed<PolicyUse>,
    dnssec_trust_anchor: Text,
    mta_sts_trust_file: Text,
    tls_dane_domains: Vec<Text>,
    tls_mta_sts_domains: Vec<Text>,
    oauth_provider: Text,
    oauth_client_id: Text,
    oauth_client_secret: Text,
    oauth_tenant: Text,
    oauth_device_endpoint: Text,
    oauth_token_endpoint: Text,
    oauth_scope: Text,
    oauth_token_command: Text,
    oauth_token_file: Text,
    dkim_key: Text,
    dkim_selector: Text,
    dkim_domain: Text,
    dkim_headers: Vec<Text>,
}
impl RawAccount {
    /// A password source or an OAuth token source: the keys that say how to authenticate.
    fn has_credential_source(&self) -> bool {
        self.password.is_some()
            || self.password_env.is_some()
            || self.password_command.is_some()
            || self.password_file.is_some()
            || self.oauth_provider.is_some()
            || self.oauth_token_command.is_some()
            || self.oauth_token_file.is_some()
    }

    fn holds_secret(&self) -> bool {
        self.password.is_some() || self.oauth_client_secret.is_some()
    }

    fn runs_command(&self) -> bool {
        self.password_command.is_some() || self.oauth_token_command.is_some()
    }

    /// Fills unset keys from the top level. The credential sources go as a group: an
    /// account with its own `password_command` must not also inherit a top-level
    /// `password` or `oauth_provider`. A provider's details (`oauth_client_id`, ...) are
    /// inherited only by an account that ends up with an `oauth_provider`.
    fn inherit(self, defaults: &RawAccount) -> RawAccount {
        let mut defaults = defaults.clone();
        if self.has_credential_source() {
            defaults.password = None;
            defaults.password_env = None;
            defaults.password_command = None;
            defaults.password_file = None;
            defaults.oauth_provider = None;
            defaults.oauth_token_command = None;
            defaults.oauth_token_file = None;
        }
        if self.oauth_provider.is_none() && defaults.oauth_provider.is_none() {
            defaults.oauth_client_id = None;
            defaults.oauth_client_secret = None;
            defaults.oauth_tenant = None;
            defaults.oauth_device_endpoint = None;
            defaults.oauth_token_endpoint = None;
            defaults.oauth_scope = None;
        }
        self.or(defaults)
    }

    /// The OAuth token source, if any; the provider keys are checked here so a typo in
    /// an endpoint fails when the file is read.
    fn oauth_source(
        &mut self,
        origin: &Path,
        home: Option<&Path>,
    ) -> std::result::Result<Vec<(&'static str, TokenSource)>, String> {
        let mut sources = Vec::new();
        let details = [
            ("oauth_client_id", self.oauth_client_id.is_some()),
            ("oauth_client_secret", self.oauth_client_secret.is_some()),
            ("oauth_tenant", self.oauth_tenant.is_some()),
            (
                "oauth_device_endpoint",
                self.oauth_device_endpoint.is_some(),
            ),
            ("oauth_token_endpoint", self.oauth_token_endpoint.is_some()),
            ("oauth_scope", self.oauth_scope.is_some()),
        ];
        match self.oauth_provider.take() {
            Some(Text(provider)) => {
                let text = |t: &mut Option<Text>| t.take().map(|t| t.0);
                let keys = ProviderKeys {
                    provider,
                    client_id: text(&mut self.oauth_client_id),
                    client_secret: text(&mut self.oauth_client_secret),
                    tenant: text(&mut self.oauth_tenant),
                    device_endpoint: text(&mut self.oauth_device_endpoint),
                    token_endpoint: text(&mut self.oauth_token_endpoint),
                    scope: text(&mut self.oauth_scope),
                };
                sources.push((
                    "oauth_provider",
                    TokenSource::Provider(Provider::from_keys(keys)?),
                ));
            }
            None => {
                if let Some((key, _)) = details.iter().find(|(_, set)| *set) {
                    return Err(format!("{key} is set but no oauth_provider"));
                }
            }
        }
        if let Some(Text(cmd)) = self.oauth_token_command.take() {
            sources.push(("oauth_token_command", TokenSource::Command(cmd)));
        }
        if let Some(Text(path)) = self.oauth_token_file.take() {
            sources.push((
                "oauth_token_file",
                TokenSource::File(local_path(&path, origin, home)?),
            ));
        }
        Ok(sources)
    }

    /// The account these keys describe, its keys checked together (credentials, AUTH,
    /// TLS, DSN, paths) when the file is read, so a mistake names the account then, not
    /// in the middle of a delivery.
    fn build(
        mut self,
        name: &str,
        origin: &Path,
        home: Option<&Path>,
    ) -> std::result::Result<Account, String> {
        let (password, oauth) = self.credentials(origin, home)?;
        let (auth, auth_off) = self.auth_choice()?;
        let dkim = self.dkim(origin, home)?;
        let tls_verify = self.tls_verify.unwrap_or(true);
        let insecure_auth = self.insecure_auth.unwrap_or(false);
        if !tls_verify && self.user.is_some() && !auth_off && !insecure_auth {
            // The session would refuse at the first AUTH anyway; saying so now names the
            // file and the account.
            return Err(
                "tls_verify = false with a user: the credentials would go to a \
                        server whose certificate is not checked; set insecure_auth = true \
                        to allow that, or trust the server with tls_trust_file or \
                        tls_fingerprint"
                    .into(),
            );
        }
        let dsn_notify = self.dsn_notify.map(|t| t.0);
        let dsn_return = self.dsn_return.map(|t| t.0);
        Dsn::new(dsn_notify.as_deref(), dsn_return.as_deref(), None)?;
        let path = |p: Option<Text>| -> std::result::Result<Option<PathBuf>, String> {
            p.map(|Text(p)| local_path(&p, origin, home)).transpose()
        };
        let tls_trust_file = match self.tls_trust_file {
            Some(Text(system)) if system == tls::SYSTEM_TRUST => Some(PathBuf::from(system)),
            other => path(other)?,
        };
        let tls_cert = path(self.tls_cert)?;
        let tls_key = path(self.tls_key)?;
        let aliases = path(self.aliases)?;
        let mail_spool = path(self.mail_spool)?;
        let queue_dir = path(self.queue_dir)?;
        let logfile = path(self.logfile)?;
        let from = self
            .from
            .map(|Text(f)| from::expand(&f, true).map_err(|e| format!("from {f:?}: {e}")))
            .transpose()?;
        let ehlo = self
            .ehlo
            .map(|Text(e)| from::expand(&e, false).map_err(|why| format!("ehlo {e:?}: {why}")))
            .transpose()?;
        Ok(Account {
            name: name.to_string(),
            config_kind: ConfigKind::Toml,
            host: self.host.map(|t| t.0),
            port: self.port.map(|p| p.0),
            tls: self.tls.map(|t| t.0),
            auth,
            auth_off,
            user: self.user.map(|t| t.0),
            password,
            oauth,
            from,
            ehlo,
            tls_trust_file,
            tls_fingerprint: self.tls_fingerprint.map(|f| f.0),
            tls_verify,
            timeout: self.timeout.map(|s| s.0),
            insecure_auth,
            tls_cert,
            tls_key,
            local_domain: self.local_domain.map(|t| t.0),
            aliases,
            default_recipient: self.default_recipient.map(|t| t.0),
            local_delivery: self.local_delivery.unwrap_or(true),
            mail_spool,
            queue_dir,
            queue_runner: self.queue_runner.unwrap_or(true),
            queue_retry_first: self.queue_retry_first.map(|s| s.0),
            queue_retry_max: self.queue_retry_max.map(|s| s.0),
            queue_on_tempfail: self.queue_on_tempfail.unwrap_or(true),
            add_missing_headers: self.add_missing_headers.unwrap_or(true),
            set_from_header: self.set_from_header.map(|s| s.0).unwrap_or_default(),
            undisclosed_recipients: self.undisclosed_recipients.unwrap_or(false),
            dsn_notify,
            dsn_return,
            dns_server: self.dns_server.map(|t| t.0),
            parallel: self.parallel.map(|p| p.0),
            deadline: self.deadline.map(|s| s.0),
            tls_verify_domains: self
                .tls_verify_domains
                .unwrap_or_default()
                .into_iter()
                .map(|t| t.0.to_ascii_lowercase())
                .collect(),
            logfile,
            syslog: self.syslog.and_then(|s| s.0),
            direct_policy: DirectPolicy {
                dane: self.dane.map(|u| u.0),
                mta_sts: self.mta_sts.map(|u| u.0),
                dnssec_trust_anchor: path(self.dnssec_trust_anchor)?,
                mta_sts_trust_file: path(self.mta_sts_trust_file)?,
                dane_domains: lower_all(self.tls_dane_domains),
                mta_sts_domains: lower_all(self.tls_mta_sts_domains),
            },
            dkim,
        })
    }

    /// The DKIM keys, taken together: a key needs a selector to be published under, and
    /// the other keys mean nothing without a key (a typo would otherwise sign nothing
    /// without a word).
    fn dkim(
        &mut self,
        origin: &Path,
        home: Option<&Path>,
    ) -> std::result::Result<Option<SignerConfig>, String> {
        let selector = self.dkim_selector.take().map(|t| t.0);
        let domain = self.dkim_domain.take().map(|t| t.0);
        let headers = self
            .dkim_headers
            .take()
            .map(|list| list.into_iter().map(|t| t.0).collect::<Vec<_>>());
        let Some(Text(key)) = self.dkim_key.take() else {
            let stray = [
                ("dkim_selector", selector.is_some()),
                ("dkim_domain", domain.is_some()),
                ("dkim_headers", headers.is_some()),
            ];
            return match stray.iter().find(|(_, set)| *set) {
                Some((name, _)) => Err(format!("{name} is set but no dkim_key")),
                None => Ok(None),
            };
        };
        let Some(selector) = selector else {
            return Err(
                "dkim_key is set but no dkim_selector (the key is published as \
                        SELECTOR._domainkey.DOMAIN)"
                    .into(),
            );
        };
        Ok(Some(SignerConfig {
            key: local_path(&key, origin, home)?,
            selector,
            domain,
            headers,
        }))
    }

    /// The one source of credentials: a password source or an OAuth token source. With
    /// two it would be unclear which is meant; and either needs a user to log in as.
    fn credentials(
        &mut self,
        origin: &Path,
        home: Option<&Path>,
    ) -> std::result::Result<(PasswordSource, Option<TokenSource>), String> {
        let mut oauth_sources = self.oauth_source(origin, home)?;
        let mut sources = Vec::new();
        if let Some(Text(p)) = self.password.take() {
            sources.push(("password", PasswordSource::Inline(p)));
        }
        if let Some(Text(var)) = self.password_env.take() {
            sources.push(("password_env", PasswordSource::Env(var)));
        }
        if let Some(Text(cmd)) = self.password_command.take() {
            sources.push(("password_command", PasswordSource::Command(cmd)));
        }
        if let Some(Text(path)) = self.password_file.take() {
            sources.push((
                "password_file",
                PasswordSource::File(local_path(&path, origin, home)?),
            ));
        }
        if sources.len() + oauth_sources.len() > 1 {
            let keys: Vec<&str> = sources
                .iter()
                .map(|(key, _)| *key)
                .chain(oauth_sources.iter().map(|(key, _)| *key))
                .collect();
            return Err(format!("set only one of {}", keys.join(", ")));
        }
        let password = sources.pop().map(|(_, s)| s).unwrap_or_default();
        if password != PasswordSource::None && self.user.is_none() {
            return Err("a password is set but no user".into());
        }
        let oauth = oauth_sources.pop().map(|(_, s)| s);
        if oauth.is_some() && self.user.is_none() {
            // XOAUTH2 and OAUTHBEARER name the mailbox the token is for.
            return Err("OAuth is set but no user".into());
        }
        Ok((password, oauth))
    }

    /// `auth` as the session takes it: the mechanism asked for, if one is named, and
    /// whether AUTH is turned off; `on` needs a user to authenticate as.
    fn auth_choice(&self) -> std::result::Result<(Option<Mechanism>, bool), String> {
        match self.auth.map(|a| a.0) {
            None => Ok((None, false)),
            Some(AuthChoice::Off) => Ok((None, true)),
            Some(AuthChoice::On) if self.user.is_none() => {
                Err("auth = \"on\" but no user to authenticate as".into())
            }
            Some(AuthChoice::On) => Ok((None, false)),
            Some(AuthChoice::Mechanism(m)) => Ok((Some(m), false)),
        }
    }
}

/// `~/x` is under `$HOME`; a relative path is relative to the config file, not to
/// wherever cron happened to start us.
fn local_path(
    text: &str,
    origin: &Path,
    home: Option<&Path>,
) -> std::result::Result<PathBuf, String> {
    if let Some(rest) = text.strip_prefix("~/") {
        return home
            .map(|h| h.join(rest))
            .ok_or_else(|| format!("{text}: ~ used but $HOME is not set"));
    }
    let path = PathBuf::from(text);
    if path.is_absolute() {
        return Ok(path);
    }
    Ok(origin.parent().unwrap_or(Path::new("")).join(path))
}

/// A string that must not be empty: an empty host or user is a mistake, not a choice.
#[derive(Clone)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Err(de::Error::custom("empty string"));
        }
        Ok(Text(s))
    }
}

#[derive(Clone, Copy)]
struct Port(u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        u16::try_from(n)
            .ok()
            .filter(|&p| p != 0)
            .map(Port)
            .ok_or_else(|| de::Error::custom(format!("port {n} is not between 1 and 65535")))
    }
}

#[derive(Clone, Copy)]
struct Seconds(u64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        u64::try_from(n)
            .ok()
            .filter(|&s| s != 0)
            .map(Seconds)
            .ok_or_else(|| {
                de::Error::custom(format!("timeout {n} is not a positive number of seconds"))
            })
    }
}

/// A count of at least 1 and at most 64 (threads for `parallel`).
#[derive(Clone, Copy)]
struct Parallel(usize);

impl<'de> Deserialize<'de> for Parallel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        usize::try_from(n)
            .ok()
            .filter(|p| (1..=64).contains(p))
            .map(Parallel)
            .ok_or_else(|| de::Error::custom(format!("parallel {n} is not between 1 and 64")))
    }
}

/// Domain names from a list key, lower-cased.
fn lower_all(list: Option<Vec<Text>>) -> Vec<String> {
    list.unwrap_or_default()
        .into_iter()
        .map(|t| t.0.to_ascii_lowercase())
        .collect()
}

/// A value written as the word its type parses (`FromStr`), with that type's own message
/// when it does not: `tls`, `dane`, `mta_sts`.
#[derive(Clone, Copy)]
struct Parsed<T>(T);

impl<'de, T> Deserialize<'de> for Parsed<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Parsed).map_err(de::Error::custom)
    }
}

/// `auth`: `off`, `on` (a mechanism chosen from the server's offer) or a mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AuthChoice {
    Off,
    On,
    Mechanism(Mechanism),
}

#[derive(Clone, Copy)]
struct Auth(AuthChoice);

impl<'de> Deserialize<'de> for Auth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "off" => return Ok(Auth(AuthChoice::Off)),
            "on" => return Ok(Auth(AuthChoice::On)),
            _ => {}
        }
        Mechanism::from_name(&s)
            .map(|m| Auth(AuthChoice::Mechanism(m)))
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "unknown auth {s:?} (expected on, off or one of {})",
                    Mechanism::names()
                ))
            })
    }
}

/// `set_from_header`: `auto`, `on` or `off`.
#[derive(Clone, Copy)]
struct SetFrom(FromHeader);

impl<'de> Deserialize<'de> for SetFrom {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FromHeader::from_word(&s).map(SetFrom).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown set_from_header {s:?} (expected auto, on or off)"
            ))
        })
    }
}

/// `syslog`: `true` or `"on"` (facility `LOG_MAIL`, as `--syslog`), `false` or `"off"`,
/// or a facility as msmtp names them (`"LOG_USER"`, `"LOG_LOCAL3"`, ...).
#[derive(Clone, Copy)]
struct Syslog(Option<SyslogFacility>);

impl<'de> Deserialize<'de> for Syslog {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Word(String),
        }
        let bad = |s: &str| {
            de::Error::custom(format!(
                "unknown syslog {s:?} (expected true, false, \"on\", \"off\", LOG_USER, \
                 LOG_MAIL or LOG_LOCAL0 to LOG_LOCAL7)"
            ))
        };
        match Raw::deserialize(d).map_err(|_| bad("?"))? {
            Raw::Flag(true) => Ok(Syslog(Some(SyslogFacility::Mail))),
            Raw::Flag(false) => Ok(Syslog(None)),
            Raw::Word(w) if w == "on" => Ok(Syslog(Some(SyslogFacility::Mail))),
            Raw::Word(w) if w == "off" => Ok(Syslog(None)),
            Raw::Word(w) => SyslogFacility::from_name(&w)
                .map(|f| Syslog(Some(f)))
                .ok_or_else(|| bad(&w)),
        }
    }
}

/// `inherits`: one account name or a list of them.
#[derive(Clone)]
struct Inherits(Vec<String>);

impl Inherits {
    fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl<'de> Deserialize<'de> for Inherits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let names = match Raw::deserialize(d)
            .map_err(|_| de::Error::custom("inherits must be an account name or a list of them"))?
        {
            Raw::One(name) => vec![name],
            Raw::Many(names) => names,
        };
        if names.is_empty() || names.iter().any(String::is_empty) {
            return Err(de::Error::custom("inherits names an empty account"));
        }
        Ok(Inherits(names))
    }
}

/// Checked here so a typo fails when the file is read, not at the first TLS handshake.
#[derive(Clone)]
struct Fingerprint(String);

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let digits: Vec<char> = s.chars().filter(|&c| c != ':').collect();
        if digits.len() != 64 || !digits.iter().all(char::is_ascii_hexdigit) {
            return Err(de::Error::custom(format!(
                "tls_fingerprint {s:?} is not a SHA-256 digest (64 hex digits, colons allowed)"
            )));
        }
        Ok(Fingerprint(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExitStatus;

    const FILE: &str = "/home/me/.config/smtpsend/config.toml";

    fn parse(text: &str) -> Result<Config> {
        Config::parse_with_home(text, Path::new(FILE), Some(Path::new("/home/me")))
    }

    fn config_error(text: &str) -> String {
        match parse(text) {
            Err(Error::Config(msg)) => msg,
            other => panic!("expected Error::Config, got {other:?}"),
        }
    }

    const FULL: &str = r#"
tls = "required"
from = "me@example.org"
default_account = "work"

[accounts.work]
host = "smtp.example.org"
port = 587
tls = "required"
auth = "plain"
user = "me@example.org"
password_command = "pass show mail/work"
from = "me@example.org"
ehlo = "client.example.org"
tls_trust_file = "/etc/ssl/my-ca.pem"
tls_fingerprint = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
timeout = 300
insecure_auth = false
tls_cert = "/etc/ssl/client.pem"
tls_key = "/etc/ssl/private/client.key"
local_domain = "example.org"
aliases = "/etc/aliases"
default_recipient = "admin@example.org"
local_delivery = false
mail_spool = "/var/mail"
queue_dir = "/var/spool/smtpsend"
queue_on_tempfail = false
add_missing_headers = false
logfile = "~/smtpsend.log"
set_from_header = "on"
undisclosed_recipients = true
dsn_notify = "failure,delay"
dsn_return = "hdrs"
syslog = "LOG_LOCAL2"
tls_verify = true

[accounts.home]
host = "mail.example.net"
tls = "implicit"
auth = "SCRAM-SHA-256"
user = "me"
password_env = "HOME_PW"
insecure_auth = true
"#;

    #[test]
    fn every_key_is_parsed() {
        let work = parse(FULL).unwrap().account(Some("work")).unwrap();
        assert_eq!(
            work,
            Account {
                name: "work".into(),
                config_kind: ConfigKind::Toml,
                host: Some("smtp.example.org".into()),
                port: Some(587),
                tls: Some(TlsMode::Required),
                auth: Some(Mechanism::Plain),
                auth_off: false,
                user: Some("me@example.org".into()),
                password: PasswordSource::Command("pass show mail/work".into()),
                oauth: None,
                from: Some("me@example.org".into()),
                ehlo: Some("client.example.org".into()),
                tls_trust_file: Some(PathBuf::from("/etc/ssl/my-ca.pem")),
                tls_fingerprint: Some(
                    "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:\
                     AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
                        .into()
                ),
                tls_verify: true,
                timeout: Some(300),
                insecure_auth: false,
                tls_cert: Some(PathBuf::from("/etc/ssl/client.pem")),
                tls_key: Some(PathBuf::from("/etc/ssl/private/client.key")),
                local_domain: Some("example.org".into()),
                aliases: Some(PathBuf::from("/etc/aliases")),
                default_recipient: Some("admin@example.org".into()),
                local_delivery: false,
                mail_spool: Some(PathBuf::from("/var/mail")),
                queue_dir: Some(PathBuf::from("/var/spool/smtpsend")),
                queue_runner: true,
                queue_retry_first: None,
                queue_retry_max: None,
                queue_on_tempfail: false,
                add_missing_headers: false,
                set_from_header: FromHeader::Always,
                undisclosed_recipients: true,
                dsn_notify: Some("failure,delay".into()),
                dsn_return: Some("hdrs".into()),
                dns_server: None,
                parallel: None,
                deadline: None,
                tls_verify_domains: Vec::new(),
                logfile: Some(PathBuf::from("/home/me/smtpsend.log")),
                syslog: Some(SyslogFacility::Local(2)),
                direct_policy: DirectPolicy::default(),
                dkim: None,
            }
        );
    }

    #[test]
    fn accounts_inherit_top_level_keys() {
        let home = parse(FULL).unwrap().account(Some("home")).unwrap();
        assert_eq!(home.from.as_deref(), Some("me@example.org"));
        assert_eq!(home.tls, Some(TlsMode::Implicit), "own key wins");
        assert_eq!(home.auth, Some(Mechanism::ScramSha256));
        assert_eq!(home.password, PasswordSource::Env("HOME_PW".into()));
        assert_eq!(home.port, None, "left to the caller: TlsMode::default_port");
        assert!(home.insecure_auth);
    }

    #[test]
    fn dkim_keys_are_inherited_and_overridden_per_account() {
        let config = parse(
            r#"
dkim_key = "~/dkim/main.pem"
dkim_selector = "main"

[accounts.plain]
host = "a.example"

[accounts.list]
host = "b.example"
dkim_key = "keys/list.pem"
dkim_domain = "lists.example.org"
dkim_headers = ["From", "Subject", "List-Id"]
"#,
        )
        .unwrap();
        let plain = config.account(Some("plain")).unwrap();
        assert_eq!(
            plain.dkim,
            Some(SignerConfig {
                key: PathBuf::from("/home/me/dkim/main.pem"),
                selector: "main".into(),
                domain: None,
                headers: None,
            })
        );
        let list = config.account(Some("list")).unwrap();
        assert_eq!(
            list.dkim,
            Some(SignerConfig {
                key: PathBuf::from("/home/me/.config/smtpsend/keys/list.pem"),
                selector: "main".into(),
                domain: Some("lists.example.org".into()),
                headers: Some(vec!["From".into(), "Subject".into(), "List-Id".into()]),
            })
        );
        assert_eq!(
            parse("host = \"a\"\n").unwrap().account(None).unwrap().dkim,
            None
        );
    }

    #[test]
    fn dkim_keys_go_together() {
        let msg = config_error("dkim_key = \"k.pem\"\n");
        assert!(
            msg.contains("dkim_key is set but no dkim_selector"),
            "{msg}"
        );
        for stray in [
            "dkim_selector = \"s\"\n",
            "dkim_domain = \"example.org\"\n",
            "dkim_headers = [\"From\"]\n",
        ] {
            let msg = config_error(stray);
            assert!(msg.contains("is set but no dkim_key"), "{stray}: {msg}");
        }
    }
    #[test]
    fn password_source_is_inherited_as_a_whole() {
        let config = parse(
            r#"
            user = "me"
            password_env = "PW"
            [accounts.a]
            host = "a.example"
            [accounts.b]
            host = "b.example"
            password_command = "pass b"
            "#,
        )
        .unwrap();
        let a = config.account(Some("a")).unwrap();
        assert_eq!(a.password, PasswordSource::Env("PW".into()));
        assert_eq!(a.user.as_deref(), Some("me"));
        let b = config.account(Some("b")).unwrap();
        assert_eq!(b.password, PasswordSource::Command("pass b".into()));
    }

    #[test]
    fn default_account_key_picks_the_account() {
        let config = parse(FULL).unwrap();
        assert_eq!(config.account(None).unwrap().name, "work");
        assert_eq!(config.account(Some("home")).unwrap().name, "home");
    }

    #[test]
    fn single_account_is_the_default() {
        let config = parse("[accounts.only]\nhost = \"x.example\"\n").unwrap();
        assert_eq!(config.account(None).unwrap().name, "only");
    }

    #[test]
    fn top_level_alone_is_the_default_account() {
        let config = parse("host = \"relay.example\"\nport = 2525\ntls = \"off\"\n").unwrap();
        let account = config.account(None).unwrap();
        assert_eq!(account.name, DEFAULT_ACCOUNT);
        assert_eq!(account.host.as_deref(), Some("relay.example"));
        assert_eq!(account.port, Some(2525));
        assert_eq!(account.tls, Some(TlsMode::Off));
        assert_eq!(config.account(Some("default")).unwrap(), account);
        assert_eq!(config.account_names().collect::<Vec<_>>(), ["default"]);
    }

    #[test]
    fn top_level_is_not_an_account_when_tables_exist() {
        let config = parse("host = \"relay\"\n[accounts.a]\n[accounts.b]\n").unwrap();
        assert_eq!(config.account_names().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            config.account(Some("a")).unwrap().host.as_deref(),
            Some("relay")
        );
        assert!(matches!(
            config.account(Some("default")),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn several_accounts_without_default_is_a_config_error() {
        let config = parse("[accounts.a]\n[accounts.b]\n").unwrap();
        match config.account(None) {
            Err(e @ Error::Config(_)) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("a, b") && msg.contains("default_account"),
                    "{msg}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_account_is_a_usage_error_listing_known_ones() {
        let err = parse(FULL).unwrap().account(Some("play")).unwrap_err();
        assert_eq!(err.exit_status(), ExitStatus::Usage);
        let msg = err.to_string();
        assert!(msg.contains("\"play\""), "{msg}");
        assert!(msg.contains("home, work"), "{msg}");
        assert!(msg.contains(FILE), "{msg}");
    }

    #[test]
    fn default_account_must_exist() {
        let msg = config_error("default_account = \"nope\"\n[accounts.a]\n");
        assert!(
            msg.contains("\"nope\"") && msg.contains("known: a"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let msg = config_error("[accounts.work]\nhost = \"x\"\nhots = \"y\"\n");
        assert!(msg.starts_with(&format!("{FILE}: line 3: ")), "{msg}");
        assert!(msg.contains("hots"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }

    #[test]
    fn unknown_top_level_key_is_refused() {
        let msg = config_error("tls = \"off\"\n\npasword = \"x\"\n");
        assert!(msg.contains("line 3") && msg.contains("pasword"), "{msg}");
    }

    #[test]
    fn bad_tls_value_is_refused_with_its_line() {
        let msg = config_error("[accounts.a]\ntls = \"sometimes\"\n");
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.contains("sometimes"), "{msg}");
    }

    #[test]
    fn tls_aliases_are_accepted() {
        let config = parse("tls = \"smtps\"\n").unwrap();
        assert_eq!(config.account(None).unwrap().tls, Some(TlsMode::Implicit));
    }

    #[test]
    fn bad_ports_are_refused() {
        for bad in ["0", "65536", "-25", "\"25\""] {
            let msg = config_error(&format!("[accounts.a]\nport = {bad}\n"));
            assert!(msg.contains("line 2"), "{bad}: {msg}");
        }
        let msg = config_error("port = 70000\n");
        assert!(msg.contains("not between 1 and 65535"), "{msg}");
    }

    #[test]
    fn bad_auth_is_refused() {
        let msg = config_error("auth = \"gssapi\"\n");
        assert!(msg.contains("gssapi") && msg.contains("line 1"), "{msg}");
        assert!(msg.contains("scram-sha-256"), "names what is known: {msg}");
    }

    #[test]
    fn auth_on_needs_a_user_and_auth_off_turns_auth_off() {
        let msg = config_error("auth = \"on\"\n");
        assert!(msg.contains("no user"), "{msg}");
        let on = parse("auth = \"on\"\nuser = \"u\"\n")
            .unwrap()
            .account(None)
            .unwrap();
        assert_eq!((on.auth, on.auth_off), (None, false));
        let off = parse("auth = \"off\"\nuser = \"u\"\npassword_env = \"PW\"\n")
            .unwrap()
            .account(None)
            .unwrap();
        assert_eq!((off.auth, off.auth_off), (None, true));
    }

    #[test]
    fn tls_verify_off_with_a_user_needs_insecure_auth() {
        let msg = config_error("tls_verify = false\nuser = \"u\"\n");
        assert!(msg.contains("insecure_auth"), "{msg}");
        let ok = parse("tls_verify = false\nuser = \"u\"\ninsecure_auth = true\n").unwrap();
        assert!(!ok.account(None).unwrap().tls_verify);
        let no_user = parse("tls_verify = false\n").unwrap();
        assert!(!no_user.account(None).unwrap().tls_verify);
    }

    #[test]
    fn system_trust_file_is_kept_as_the_word() {
        let a = parse("tls_trust_file = \"system\"\n")
            .unwrap()
            .account(None)
            .unwrap();
        assert_eq!(a.tls_trust_file, Some(PathBuf::from(tls::SYSTEM_TRUST)));
    }

    #[test]
    fn syslog_takes_a_flag_or_a_facility() {
        let facility = |v: &str| {
            parse(&format!("syslog = {v}\n"))
                .unwrap()
                .account(None)
                .unwrap()
                .syslog
        };
        assert_eq!(facility("true"), Some(SyslogFacility::Mail));
        assert_eq!(facility("\"on\""), Some(SyslogFacility::Mail));
        assert_eq!(facility("false"), None);
        assert_eq!(facility("\"LOG_USER\""), Some(SyslogFacility::User));
        assert_eq!(SyslogFacility::Local(7).code(), libc::LOG_LOCAL7);
        let msg = config_error("syslog = \"LOG_KERN\"\n");
        assert!(
            msg.contains("line 1") && msg.contains("LOG_LOCAL0"),
            "{msg}"
        );
    }

    #[test]
    fn bad_dsn_defaults_are_refused() {
        let msg = config_error("dsn_notify = \"sometimes\"\n");
        assert!(msg.contains("DSN notify"), "{msg}");
        let msg = config_error("[accounts.a]\ndsn_return = \"all\"\n");
        assert!(
            msg.contains("line 1") && msg.contains("DSN return"),
            "{msg}"
        );
    }

    const INHERITING: &str = r#"
tls = "implicit"
user = "top"
password_env = "TOP_PW"

[accounts.base]
host = "smtp.example.org"
from = "me@example.org"
password_command = "pass base"

[accounts.second]
inherits = "base"
from = "me2@example.org"

[accounts.third]
inherits = "second"
port = 2465

[accounts.override]
inherits = ["base", "other"]

[accounts.other]
host = "other.example.org"
password_env = "OTHER_PW"
"#;

    #[test]
    fn accounts_inherit_accounts_in_chains_and_lists() {
        let config = parse(INHERITING).unwrap();
        let second = config.account(Some("second")).unwrap();
        assert_eq!(second.host.as_deref(), Some("smtp.example.org"));
        assert_eq!(second.from.as_deref(), Some("me2@example.org"));
        assert_eq!(second.password, PasswordSource::Command("pass base".into()));
        assert_eq!(
            second.tls,
            Some(TlsMode::Implicit),
            "the top level still applies"
        );
        let third = config.account(Some("third")).unwrap();
        assert_eq!(third.from.as_deref(), Some("me2@example.org"));
        assert_eq!(third.port, Some(2465));
        let over = config.account(Some("override")).unwrap();
        assert_eq!(
            over.host.as_deref(),
            Some("other.example.org"),
            "a later name wins"
        );
        assert_eq!(over.from.as_deref(), Some("me@example.org"));
        assert_eq!(
            over.password,
            PasswordSource::Env("OTHER_PW".into()),
            "the credential source goes as a whole"
        );
        let names: Vec<&str> = config.account_names().collect();
        assert_eq!(
            names,
            ["base", "second", "third", "override", "other"],
            "file order"
        );
    }

    #[test]
    fn inheritance_cycles_and_unknown_accounts_are_refused_with_the_line() {
        let msg = config_error(
            "[accounts.a]\ninherits = \"b\"\n[accounts.b]\ninherits = \"c\"\n\
             [accounts.c]\ninherits = \"a\"\n",
        );
        assert!(
            msg.contains("inherits forms a cycle (a -> b -> c -> a)"),
            "{msg}"
        );
        assert!(msg.contains("line 1: account a"), "{msg}");
        let msg = config_error("[accounts.a]\ninherits = \"a\"\n");
        assert!(msg.contains("cycle (a -> a)"), "{msg}");
        let msg = config_error("[accounts.a]\nhost = \"h\"\n\n[accounts.b]\ninherits = \"nope\"\n");
        assert!(
            msg.contains("line 4: account b: inherits \"nope\""),
            "{msg}"
        );
        let msg = config_error("inherits = \"a\"\n[accounts.a]\n");
        assert!(msg.contains("line 1") && msg.contains("inherits"), "{msg}");
        let msg = config_error("[accounts.a]\ninherits = []\n");
        assert!(msg.contains("empty account"), "{msg}");
    }

    #[test]
    fn the_sender_chooses_a_toml_account_by_its_from() {
        let config = parse(INHERITING).unwrap();
        let pick = |sender| config.account_for(None, Some(sender)).map(|a| a.name);
        assert_eq!(pick("me2@example.org").unwrap(), "second", "before third");
        assert_eq!(pick("ME@example.org").unwrap(), "base");
        assert!(
            pick("nobody@example.org").is_err(),
            "no default among several"
        );
        let single = parse("from = \"*@example.org\"\nhost = \"h\"\n").unwrap();
        let account = single.account_for(None, Some("a@example.org")).unwrap();
        assert_eq!(account.envelope_from(), None);
    }

    #[test]
    fn zero_timeout_is_refused() {
        let msg = config_error("timeout = 0\n");
        assert!(msg.contains("timeout"), "{msg}");
    }

    #[test]
    fn bad_fingerprint_is_refused() {
        let msg = config_error("tls_fingerprint = \"AB:CD\"\n");
        assert!(msg.contains("SHA-256"), "{msg}");
        let plain = "ab".repeat(32);
        assert!(parse(&format!("tls_fingerprint = \"{plain}\"\n")).is_ok());
    }

    #[test]
    fn empty_strings_are_refused() {
        let msg = config_error("[accounts.a]\nhost = \"\"\n");
        assert!(msg.contains("line 2") && msg.contains("empty"), "{msg}");
    }

    #[test]
    fn toml_syntax_error_has_line() {
        let msg = config_error("host = \"a\"\nport = \n");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn two_password_sources_are_refused() {
        let msg =
            config_error("[accounts.a]\nuser = \"u\"\npassword = \"x\"\npassword_env = \"PW\"\n");
        assert!(msg.contains("account a"), "{msg}");
        assert!(msg.contains("password, password_env"), "{msg}");
        assert!(!msg.contains("\"x\""), "{msg}");
    }

    #[test]
    fn password_without_user_is_refused() {
        let msg = config_error("[accounts.a]\npassword_env = \"PW\"\n");
        assert!(msg.contains("no user"), "{msg}");
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let config =
            parse("user = \"u\"\npassword_file = \"pw\"\ntls_trust_file = \"~/ca.pem\"\n").unwrap();
        let account = config.account(None).unwrap();
        assert_eq!(
            account.password,
            PasswordSource::File(PathBuf::from("/home/me/.config/smtpsend/pw"))
        );
        assert_eq!(
            account.tls_trust_file,
            Some(PathBuf::from("/home/me/ca.pem"))
        );
    }

    #[test]
    fn empty_file_is_one_account_with_nothing_set() {
        let account = parse("").unwrap().account(None).unwrap();
        assert_eq!(account.name, DEFAULT_ACCOUNT);
        assert_eq!(account.host, None);
        assert_eq!(account.password, PasswordSource::None);
    }

    #[test]
    fn inline_password_is_found_anywhere_and_never_shown() {
        let top = parse("user = \"u\"\npassword = \"hunter2\"\n").unwrap();
        assert!(top.holds_password());
        let nested = parse("[accounts.a]\nuser = \"u\"\npassword = \"hunter2\"\n").unwrap();
        assert!(nested.holds_password());
        assert!(!format!("{nested:?}").contains("hunter2"));
        assert!(!format!("{:?}", nested.account(None).unwrap()).contains("hunter2"));
        assert!(!parse(FULL).unwrap().holds_password());
        assert!(parse(FULL).unwrap().runs_command());
    }

    fn provider_of(account: &Account) -> &Provider {
        match &account.oauth {
            Some(TokenSource::Provider(p)) => p,
            other => panic!("expected a provider, got {other:?}"),
        }
    }

    #[test]
    fn oauth_provider_keys_are_parsed() {
        let config = parse(
            r#"
            [accounts.m365]
            user = "me@contoso.example"
            oauth_provider = "microsoft"
            oauth_client_id = "00000000-1111-2222-3333-444444444444"
            oauth_tenant = "contoso.example"
            [accounts.custom]
            user = "me"
            oauth_provider = "custom"
            oauth_client_id = "cid"
            oauth_client_secret = "very-secret"
            oauth_device_endpoint = "http://127.0.0.1:8080/device"
            oauth_token_endpoint = "https://idp.example/token"
            oauth_scope = "smtp"
            "#,
        )
        .unwrap();
        let m365 = config.account(Some("m365")).unwrap();
        let p = provider_of(&m365);
        assert_eq!(p.kind, oauth::ProviderKind::Microsoft);
        assert_eq!(
            p.token_endpoint,
            "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/token"
        );
        assert_eq!(m365.password, PasswordSource::None);
        let custom = config.account(Some("custom")).unwrap();
        let p = provider_of(&custom);
        assert_eq!(p.device_endpoint, "http://127.0.0.1:8080/device");
        assert_eq!(p.scope, "smtp");
        assert_eq!(p.client_secret.as_ref().unwrap().expose(), "very-secret");
        assert!(config.holds_password(), "a client secret is a secret");
        assert!(!format!("{config:?}").contains("very-secret"));
    }

    #[test]
    fn oauth_token_command_and_file_are_sources() {
        let config = parse(
            r#"
            user = "me"
            [accounts.cmd]
            oauth_token_command = "oama access me@example.org"
            [accounts.file]
            oauth_token_file = "~/token"
            "#,
        )
        .unwrap();
        assert!(config.runs_command());
        assert_eq!(
            config.account(Some("cmd")).unwrap().oauth,
            Some(TokenSource::Command("oama access me@example.org".into()))
        );
        assert_eq!(
            config.account(Some("file")).unwrap().oauth,
            Some(TokenSource::File(PathBuf::from("/home/me/token")))
        );
    }

    #[test]
    fn plain_http_token_endpoint_is_refused_with_its_line() {
        let msg = config_error(
            "[accounts.a]\nuser = \"u\"\noauth_provider = \"custom\"\noauth_client_id = \"c\"\n\
             oauth_device_endpoint = \"https://idp.example/d\"\n\
             oauth_token_endpoint = \"http://idp.example/t\"\noauth_scope = \"s\"\n",
        );
        assert!(msg.contains("line 1") && msg.contains("account a"), "{msg}");
        assert!(msg.contains("oauth_token_endpoint"), "{msg}");
        assert!(msg.contains("plain http is refused"), "{msg}");
    }

    #[test]
    fn oauth_and_password_together_are_refused() {
        let msg =
            config_error("user = \"u\"\npassword_env = \"PW\"\noauth_token_command = \"x\"\n");
        assert!(msg.contains("password_env, oauth_token_command"), "{msg}");
        let msg =
            config_error("user = \"u\"\noauth_token_file = \"/t\"\noauth_token_command = \"x\"\n");
        assert!(msg.contains("set only one of"), "{msg}");
    }

    #[test]
    fn oauth_details_without_provider_or_user_are_refused() {
        let msg = config_error("user = \"u\"\noauth_client_id = \"c\"\n");
        assert!(
            msg.contains("oauth_client_id is set but no oauth_provider"),
            "{msg}"
        );
        let msg = config_error("oauth_token_command = \"x\"\n");
        assert!(msg.contains("OAuth is set but no user"), "{msg}");
        let msg =
            config_error("user = \"u\"\noauth_provider = \"yahoo\"\noauth_client_id = \"c\"\n");
        assert!(msg.contains("yahoo"), "{msg}");
    }

    #[test]
    fn oauth_keys_are_inherited_with_the_credential_group() {
        let config = parse(
            r#"
            oauth_provider = "google"
            oauth_client_id = "shared-client"
            [accounts.a]
            user = "a@example.org"
            [accounts.b]
            user = "b@example.org"
            password_command = "pass b"
            [accounts.c]
            user = "c@example.org"
            oauth_provider = "microsoft"
            "#,
        )
        .unwrap();
        let a = config.account(Some("a")).unwrap();
        assert_eq!(provider_of(&a).client_id, "shared-client");
        let b = config.account(Some("b")).unwrap();
        assert_eq!(b.oauth, None, "own password source: no inherited OAuth");
        assert_eq!(b.password, PasswordSource::Command("pass b".into()));
        let c = config.account(Some("c")).unwrap();
        assert_eq!(provider_of(&c).kind, oauth::ProviderKind::Microsoft);
        assert_eq!(provider_of(&c).client_id, "shared-client");
    }
}
