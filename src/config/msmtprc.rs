//! msmtp's configuration files (msmtp(1), "CONFIGURATION FILES"), read as msmtp 1.8 reads
//! them, into the same [`Account`](super::Account) values smtpsend's TOML gives; and
//! written out as that TOML for `smtpsend config import`.
//!
//! The syntax: one command per line, its argument the rest of the line without the blanks
//! (spaces and tabs) around it, and without one pair of double quotes around the whole
//! (no escapes); a line whose first non-blank character is `#` is a comment (there are no
//! comments after a command). `defaults` starts the values every later account starts
//! from; `account NAME [: PARENT[, PARENT...]]` starts an account, which takes over what
//! each parent set itself (in order, a later parent winning) on top of the defaults; a
//! command before any `account` or `defaults` starts the account `default`. An empty
//! argument turns a setting off, or on for the commands that take `on`.
//!
//! What msmtp does that smtpsend does not changes where or how mail goes (a SOCKS proxy,
//! LMTP, GSSAPI, a SHA-1 fingerprint...): an account that uses such a directive is a
//! configuration error naming its line when chosen, never quietly sent some other way.
//! Directives that change nothing that matters here (`logfile_time_format`, ...) are kept
//! as notes for `-v`. `eval` runs a command while the file is read and is refused outright.
//!
//! Where msmtp's defaults differ from smtpsend's, the account says msmtp's explicitly: no
//! TLS unless `tls on`; port 25, or 465 for TLS without STARTTLS; the system CA store for
//! `tls on`; no AUTH unless `auth` says so.

use std::collections::BTreeMap;
use std::path::Path;

use toml::{Table, Value};

use super::{Config, ConfigKind, RawAccount, from};
use crate::transport::tls::SYSTEM_TRUST;
use crate::{Error, Result};

/// Every command msmtp 1.8 knows, for telling an msmtprc from TOML.
const COMMANDS: &[&str] = &[
    "defaults",
    "account",
    "eval",
    "host",
    "port",
    "timeout",
    "connect_timeout",
    "protocol",
    "domain",
    "from",
    "from_full_name",
    "allow_from_override",
    "auth",
    "user",
    "password",
    "passwordeval",
    "ntlmdomain",
    "tls",
    "tls_starttls",
    "tls_trust_file",
    "tls_crl_file",
    "tls_fingerprint",
    "tls_key_file",
    "tls_cert_file",
    "tls_certcheck",
    "tls_priorities",
    "tls_host_override",
    "tls_min_dh_prime_bits",
    "dsn_notify",
    "dsn_return",
    "logfile",
    "logfile_time_format",
    "syslog",
    "aliases",
    "proxy_host",
    "proxy_port",
    "socket",
    "source_ip",
    "set_from_header",
    "set_date_header",
    "set_msgid_header",
    "set_to_header",
    "remove_bcc_headers",
    "undisclosed_recipients",
    "add_missing_from_header",
    "add_missing_date_header",
    "auto_from",
    "maildomain",
    "keepbcc",
    "tls_nocertcheck",
    "tls_nostarttls",
    "tls_force_sslv3",
];

/// The SASL mechanisms msmtp names that smtpsend speaks.
const MECHANISMS: &[&str] = &[
    "plain",
    "login",
    "cram-md5",
    "scram-sha-1",
    "scram-sha-256",
    "external",
    "oauthbearer",
    "xoauth2",
];

/// The ones msmtp names that smtpsend does not, and why they cannot be stood in for.
const OTHER_MECHANISMS: &[(&str, &str)] = &[
    ("gssapi", "smtpsend has no Kerberos"),
    ("ntlm", "smtpsend does not speak NTLM, which is broken"),
    (
        "digest-md5",
        "smtpsend does not speak DIGEST-MD5 (obsolete, RFC 6331)",
    ),
    (
        "scram-sha-256-plus",
        "smtpsend does not do SCRAM channel binding",
    ),
    (
        "scram-sha-1-plus",
        "smtpsend does not do SCRAM channel binding",
    ),
];

/// Directives whose every non-empty value changes how mail goes in a way smtpsend cannot.
const REFUSED: &[(&str, &str)] = &[
    (
        "proxy_host",
        "smtpsend cannot send through a SOCKS proxy, and will not go around it",
    ),
    ("socket", "smtpsend cannot connect to a unix socket"),
    (
        "source_ip",
        "smtpsend cannot bind its connection to a source address",
    ),
    (
        "ntlmdomain",
        "smtpsend does not speak NTLM, which this is for",
    ),
];

/// The same, for TLS settings, which matter only when TLS is on.
const REFUSED_WITH_TLS: &[(&str, &str)] = &[
    (
        "tls_crl_file",
        "smtpsend cannot check a CRL file, and would accept a certificate it revokes",
    ),
    (
        "tls_priorities",
        "smtpsend's TLS (rustls) has its own fixed, safe choices and cannot take GnuTLS \
         priorities",
    ),
    (
        "tls_min_dh_prime_bits",
        "smtpsend's TLS (rustls) does no finite-field Diffie-Hellman to set a size for",
    ),
    (
        "tls_host_override",
        "smtpsend verifies the certificate for the host it dials",
    ),
];

/// Whether `text`'s first line that is not empty and not a comment is an msmtp command
/// standing alone or followed by a blank, never by `=`.
pub(super) fn looks_like_msmtprc(text: &str) -> bool {
    let Some(first) = lines(text).next() else {
        return false;
    };
    COMMANDS.contains(&first.command) && !first.rest.starts_with('=')
}

/// A command line of the file.
struct Line<'a> {
    number: usize,
    command: &'a str,
    /// What follows the command, leading blanks removed (for telling TOML apart).
    rest: &'a str,
    /// The argument as msmtp takes it.
    arg: String,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The command lines of `text`: CR LF or LF line ends, comments and empty lines skipped.
fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    text.split('\n').enumerate().filter_map(|(i, raw)| {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let line = raw.trim_start_matches(is_blank);
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let end = line.find(is_blank).unwrap_or(line.len());
        let (command, rest) = line.split_at(end);
        let rest = rest.trim_start_matches(is_blank);
        Some(Line {
            number: i + 1,
            command,
            rest,
            arg: unquote(rest),
        })
    })
}

/// msmtp's argument: blanks around it removed, then one pair of double quotes around the
/// whole, if both ends have one.
fn unquote(rest: &str) -> String {
    let arg = rest.trim_matches(is_blank);
    match arg.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
        Some(inner) => inner.to_string(),
        None => arg.to_string(),
    }
}

/// One setting as a line left it: its value (`None`: unset) and where.
#[derive(Clone, Debug)]
struct Setting {
    value: Option<String>,
    line: usize,
}

type Settings = BTreeMap<&'static str, Setting>;

/// An account as msmtp builds it: the defaults it started from, and what its parents set
/// and it set itself (msmtp's mask: only these pass on to an account that inherits it).
#[derive(Clone, Debug)]
struct Block {
    name: String,
    line: usize,
    parents: Vec<String>,
    defaults: Settings,
    own: Settings,
}

impl Block {
    fn effective(&self) -> Settings {
        let mut all = self.defaults.clone();
        all.extend(self.own.iter().map(|(k, v)| (*k, v.clone())));
        all
    }
}

/// Why an account of the file cannot send.
#[derive(Clone, Debug)]
pub(super) struct Unusable {
    pub why: String,
    /// The account names no host: msmtp can only use it for others to inherit from.
    pub no_host: bool,
}

/// One account of the file, mapped to smtpsend's keys.
#[derive(Clone, Debug)]
pub(super) struct Parsed {
    pub name: String,
    pub line: usize,
    pub parents: Vec<String>,
    /// The `from`, for choosing the account by envelope sender.
    pub from: Option<String>,
    /// The account as smtpsend TOML keys (every inherited value filled in), or why it
    /// cannot send.
    pub table: std::result::Result<Table, Unusable>,
}

/// A parsed msmtprc.
#[derive(Clone, Debug)]
pub(super) struct Msmtprc {
    pub accounts: Vec<Parsed>,
    pub notes: Vec<String>,
    pub holds_password: bool,
    pub runs_command: bool,
}

/// Reads an msmtprc. Syntax errors, unknown commands, bad arguments and `eval` fail the
/// whole file with its line, as msmtp fails to load it; what smtpsend cannot do makes
/// only the accounts that use it unusable.
pub(super) fn parse(text: &str, origin: &Path) -> Result<Msmtprc> {
    let shown = origin.display();
    let fail = |line: usize, msg: String| Error::Config(format!("{shown}: line {line}: {msg}"));
    let mut defaults = Settings::new();
    let mut blocks: Vec<Block> = Vec::new();
    // Where commands go: the defaults, or the last account.
    let mut in_defaults = false;
    let mut notes = Vec::new();
    let mut holds_password = false;
    let mut runs_command = false;
    for line in lines(text) {
        let Line {
            number,
            command,
            arg,
            ..
        } = line;
        match command {
            "eval" => {
                return Err(fail(
                    number,
                    "eval: smtpsend does not run commands while reading its configuration; \
                     write the setting out, or use passwordeval for a password"
                        .into(),
                ));
            }
            "defaults" => {
                if !arg.is_empty() {
                    return Err(fail(number, "defaults takes no argument".into()));
                }
                in_defaults = true;
                continue;
            }
            "account" => {
                let block = new_account(&arg, number, &defaults, &blocks)
                    .map_err(|msg| fail(number, msg))?;
                blocks.push(block);
                in_defaults = false;
                continue;
            }
            _ => {}
        }
        if !in_defaults && blocks.is_empty() {
            // msmtp 1.2's files had no accounts: what comes first is the account "default".
            blocks.push(Block {
                name: super::DEFAULT_ACCOUNT.into(),
                line: number,
                parents: Vec::new(),
                defaults: defaults.clone(),
                own: Settings::new(),
            });
        }
        let effect = interpret(command, &arg, origin).map_err(|msg| fail(number, msg))?;
        let target = match (in_defaults, blocks.last_mut()) {
            (false, Some(block)) => &mut block.own,
            _ => &mut defaults,
        };
        let note = |why: String| format!("{shown}: line {number}: {command}: {why}");
        let (set, noted) = match effect {
            Effect::Set(key, value) => (Some((key, value)), None),
            Effect::SetNoted(key, value, why) => (Some((key, value)), Some(why)),
            Effect::Note(why) => (None, Some(why)),
            Effect::Nothing => (None, None),
        };
        notes.extend(noted.map(note));
        if let Some((key, value)) = set {
            if key == "password" && value.is_some() {
                holds_password = true;
            }
            if key == "passwordeval" && value.is_some() {
                runs_command = true;
            }
            target.insert(
                key,
                Setting {
                    value,
                    line: number,
                },
            );
        }
    }
    let accounts = blocks.iter().map(map_account).collect();
    Ok(Msmtprc {
        accounts,
        notes,
        holds_password,
        runs_command,
    })
}

/// `account NAME [: PARENT, ...]`: a new account from the current defaults and what each
/// parent (defined above it) set.
fn new_account(
    arg: &str,
    line: usize,
    defaults: &Settings,
    blocks: &[Block],
) -> std::result::Result<Block, String> {
    let (name, parents) = match arg.split_once(':') {
        Some((name, list)) => {
            let mut parents = Vec::new();
            for parent in list.split(',') {
                let parent = unquote(parent);
                if parent.is_empty() {
                    return Err("missing account name".into());
                }
                if !blocks.iter().any(|b| b.name == parent) {
                    return Err(format!("account {parent} not (yet) defined"));
                }
                parents.push(parent);
            }
            (unquote(name), parents)
        }
        None => (arg.to_string(), Vec::new()),
    };
    if name.is_empty() {
        return Err("missing account name".into());
    }
    if name.contains(',') {
        return Err("an account name must not contain colons or commas".into());
    }
    if blocks.iter().any(|b| b.name == name) {
        return Err(format!("account {name} was already defined"));
    }
    let mut own = Settings::new();
    for parent in &parents {
        if let Some(block) = blocks.iter().find(|b| &b.name == parent) {
            own.extend(block.own.iter().map(|(k, v)| (*k, v.clone())));
        }
    }
    Ok(Block {
        name,
        line,
        parents,
        defaults: defaults.clone(),
        own,
    })
}

/// What a command does to the block it is in.
enum Effect {
    Set(&'static str, Option<String>),
    /// Set, with a note on what smtpsend does differently.
    SetNoted(&'static str, Option<String>, String),
    /// Accepted, changes nothing here: a note for `-v`.
    Note(String),
    Nothing,
}

/// `""` or `on` is on, `off` is off (msmtp's words, case and all).
fn on_off(command: &str, arg: &str) -> std::result::Result<bool, String> {
    match arg {
        "" | "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(invalid(command, arg)),
    }
}

fn invalid(command: &str, arg: &str) -> String {
    format!("invalid argument {arg} for command {command}")
}

fn needs_argument(command: &str, arg: &str) -> std::result::Result<(), String> {
    if arg.is_empty() {
        Err(format!("command {command} needs an argument"))
    } else {
        Ok(())
    }
}

/// A positive decimal number (msmtp's `get_pos_int`).
fn positive(command: &str, arg: &str) -> std::result::Result<u64, String> {
    arg.parse::<u64>()
        .ok()
        .filter(|n| *n > 0 && *n <= i32::MAX as u64)
        .ok_or_else(|| invalid(command, arg))
}

fn port(command: &str, arg: &str) -> std::result::Result<String, String> {
    let n = positive(command, arg)?;
    if n > 65535 {
        return Err(invalid(command, arg));
    }
    Ok(n.to_string())
}

fn text(arg: &str) -> Option<String> {
    (!arg.is_empty()).then(|| arg.to_string())
}

fn flag(on: bool) -> Option<String> {
    Some(if on { "on" } else { "off" }.to_string())
}

/// A file name: `~` is `$HOME` (kept as `~/` for the TOML, which expands it the same way);
/// a relative name is relative to the file's directory, where smtpsend looks for it (msmtp
/// would look in whatever directory it was started from), and made absolute when that
/// directory is known, so that the TOML `config import` prints finds it wherever it is put.
fn file_name(arg: &str, origin: &Path) -> Option<String> {
    if arg.is_empty() {
        return None;
    }
    if arg == "~" {
        return Some("~/".into());
    }
    match origin.parent() {
        Some(dir) if dir.is_absolute() && !arg.starts_with("~/") => {
            Some(dir.join(arg).to_string_lossy().into_owned())
        }
        _ => Some(arg.to_string()),
    }
}

/// One command line's effect, or what is wrong with its argument (msmtp's words). The
/// commands are read in groups by what they configure, so each group's rules read
/// together; a command no group knows is unknown to msmtp too.
fn interpret(command: &str, arg: &str, origin: &Path) -> std::result::Result<Effect, String> {
    if let Some(effect) = server_command(command, arg)? {
        return Ok(effect);
    }
    if let Some(effect) = address_command(command, arg, origin)? {
        return Ok(effect);
    }
    if let Some(effect) = auth_command(command, arg)? {
        return Ok(effect);
    }
    if let Some(effect) = tls_command(command, arg, origin)? {
        return Ok(effect);
    }
    if let Some(effect) = report_command(command, arg, origin)? {
        return Ok(effect);
    }
    if let Some(effect) = header_command(command, arg)? {
        return Ok(effect);
    }
    Err(format!("unknown command {command}"))
}

/// A command group's reading of a line: its effect, `None` if the command is not one of
/// the group's, or what is wrong with the argument.
type Interpreted = std::result::Result<Option<Effect>, String>;

/// Where and how the connection goes: the server, its port, the timeout, and the ways
/// of reaching it (proxy, socket, source address) that smtpsend refuses only when an
/// account uses them, in [`to_table`].
fn server_command(command: &str, arg: &str) -> Interpreted {
    use Effect::{Nothing, Set};
    let effect = match command {
        "host" => {
            needs_argument(command, arg)?;
            Set("host", text(arg))
        }
        "port" => {
            needs_argument(command, arg)?;
            Set("port", Some(port(command, arg)?))
        }
        "timeout" | "connect_timeout" => {
            needs_argument(command, arg)?;
            if arg == "off" {
                Set("timeout", None)
            } else {
                Set("timeout", Some(positive(command, arg)?.to_string()))
            }
        }
        "protocol" => match arg {
            "smtp" | "lmtp" => Set("protocol", text(arg)),
            "" => return Err(format!("command {command} needs an argument")),
            _ => return Err(invalid(command, arg)),
        },
        "domain" => Set("domain", text(arg)),
        "proxy_host" => Set("proxy_host", text(arg)),
        "proxy_port" => {
            if !arg.is_empty() {
                port(command, arg)?;
            }
            Nothing
        }
        "socket" => Set("socket", text(arg)),
        "source_ip" => Set("source_ip", text(arg)),
        _ => return Ok(None),
    };
    Ok(Some(effect))
}

/// Who the mail is from, and where a recipient's alias is looked up.
fn address_command(command: &str, arg: &str, origin: &Path) -> Interpreted {
    use Effect::{Note, Nothing, Set};
    let effect = match command {
        "from" => Set("from", text(arg)),
        "maildomain" => Set("maildomain", Some(arg.to_string())),
        "auto_from" => Set("auto_from", flag(on_off(command, arg)?)),
        "from_full_name" if !arg.is_empty() => {
            Note("not supported; the name of an added From comes from -F".into())
        }
        "from_full_name" => Nothing,
        "allow_from_override" => match arg {
            "on" | "off" => Set("allow_from_override", text(arg)),
            _ => return Err(invalid(command, arg)),
        },
        "aliases" if !arg.is_empty() => Effect::SetNoted(
            "aliases",
            file_name(arg, origin),
            "read in aliases(5) syntax, where # starts a comment only at the start of a \
             line and an entry named default is not msmtp's catch-all for unlisted names \
             (in TOML, default_recipient is)"
                .into(),
        ),
        "aliases" => Set("aliases", None),
        _ => return Ok(None),
    };
    Ok(Some(effect))
}

/// SMTP AUTH (RFC 4954): the mechanism and the credentials. A mechanism smtpsend does
/// not speak is accepted here and refused in [`to_table`], so that only the accounts
/// that use it fail.
fn auth_command(command: &str, arg: &str) -> Interpreted {
    use Effect::Set;
    let effect = match command {
        "auth" => {
            let value = match arg {
                "" | "on" => Some("on".to_string()),
                "off" => None,
                mech if MECHANISMS.contains(&mech)
                    || OTHER_MECHANISMS.iter().any(|(m, _)| *m == mech) =>
                {
                    Some(mech.to_string())
                }
                _ => return Err(invalid(command, arg)),
            };
            Set("auth", value)
        }
        "user" => Set("user", text(arg)),
        "password" => Set("password", text(arg)),
        "passwordeval" => Set("passwordeval", text(arg)),
        "ntlmdomain" => Set("ntlmdomain", text(arg)),
        _ => return Ok(None),
    };
    Ok(Some(effect))
}

/// TLS: whether it is on, STARTTLS or not, and how the server's certificate is trusted;
/// the obsolete `tls_no*` spellings set the same keys as their `tls_* off` forms.
fn tls_command(command: &str, arg: &str, origin: &Path) -> Interpreted {
    use Effect::{Note, Set};
    let effect = match command {
        "tls" => Set("tls", flag(on_off(command, arg)?)),
        "tls_starttls" => Set("tls_starttls", flag(on_off(command, arg)?)),
        "tls_nostarttls" | "tls_nocertcheck" if !arg.is_empty() => {
            return Err(format!("command {command} does not take an argument"));
        }
        "tls_nostarttls" => Set("tls_starttls", flag(false)),
        "tls_certcheck" => Set("tls_certcheck", flag(on_off(command, arg)?)),
        "tls_nocertcheck" => Set("tls_certcheck", flag(false)),
        "tls_trust_file" if arg == SYSTEM_TRUST => Set("tls_trust_file", text(arg)),
        "tls_trust_file" => Set("tls_trust_file", file_name(arg, origin)),
        "tls_crl_file" => Set("tls_crl_file", file_name(arg, origin)),
        "tls_key_file" => Set("tls_key_file", file_name(arg, origin)),
        "tls_cert_file" => Set("tls_cert_file", file_name(arg, origin)),
        "tls_fingerprint" => {
            if !arg.is_empty() && fingerprint_bytes(arg).is_none() {
                return Err(invalid(command, arg));
            }
            Set("tls_fingerprint", text(arg))
        }
        "tls_priorities" => Set("tls_priorities", text(arg)),
        "tls_host_override" => Set("tls_host_override", text(arg)),
        "tls_min_dh_prime_bits" => {
            if !arg.is_empty() {
                positive(command, arg)?;
            }
            Set("tls_min_dh_prime_bits", text(arg))
        }
        "tls_force_sslv3" => Note("ignored, as msmtp ignores it".into()),
        _ => return Ok(None),
    };
    Ok(Some(effect))
}

/// What is reported, and where: delivery status notifications (RFC 3461), the log file
/// and syslog.
fn report_command(command: &str, arg: &str, origin: &Path) -> Interpreted {
    use Effect::{Note, Nothing, Set};
    let effect = match command {
        "dsn_notify" => {
            needs_argument(command, arg)?;
            if arg == "off" {
                Set("dsn_notify", None)
            } else if !dsn_notify_ok(arg) {
                return Err(invalid(command, arg));
            } else {
                Set("dsn_notify", text(arg))
            }
        }
        "dsn_return" => match arg {
            "off" => Set("dsn_return", None),
            "headers" => Set("dsn_return", Some("hdrs".into())),
            "full" => Set("dsn_return", Some("full".into())),
            "" => return Err(format!("command {command} needs an argument")),
            _ => return Err(invalid(command, arg)),
        },
        "logfile" if arg == "-" => Effect::SetNoted(
            "logfile",
            None,
            "smtpsend does not log to standard output; this account is not logged".into(),
        ),
        "logfile" => Set("logfile", file_name(arg, origin)),
        "logfile_time_format" if !arg.is_empty() => {
            Note("ignored: smtpsend's log lines carry their own ISO 8601 time".into())
        }
        "logfile_time_format" => Nothing,
        "syslog" => match arg {
            "" | "on" => Set("syslog", Some("LOG_USER".into())),
            "off" => Set("syslog", None),
            facility if super::SyslogFacility::from_name(facility).is_some() => {
                Set("syslog", text(arg))
            }
            _ => return Err(invalid(command, arg)),
        },
        _ => return Ok(None),
    };
    Ok(Some(effect))
}

/// The header fields msmtp adds or rewrites (RFC 5322 §3.6). smtpsend adds Date and
/// Message-ID when missing and always removes Bcc, so turning those off is only noted.
fn header_command(command: &str, arg: &str) -> Interpreted {
    use Effect::{Note, Nothing, Set};
    let effect = match command {
        "set_from_header" => match arg {
            "" | "auto" => Set("set_from_header", Some("auto".into())),
            "on" | "off" => Set("set_from_header", text(arg)),
            _ => return Err(invalid(command, arg)),
        },
        "add_missing_from_header" => {
            let auto = on_off(command, arg)?;
            Set(
                "set_from_header",
                Some(if auto { "auto" } else { "off" }.into()),
            )
        }
        "set_date_header" | "set_msgid_header" => match arg {
            "" | "auto" => Nothing,
            "off" => Note(
                "ignored: smtpsend adds the field when the message lacks it (RFC 5322 §3.6)".into(),
            ),
            _ => return Err(invalid(command, arg)),
        },
        "add_missing_date_header" => {
            if on_off(command, arg)? {
                Nothing
            } else {
                Note(
                    "ignored: smtpsend adds a Date when the message lacks one (RFC 5322 §3.6)"
                        .into(),
                )
            }
        }
        "remove_bcc_headers" | "keepbcc" => {
            let remove = on_off(command, arg)? == (command == "remove_bcc_headers");
            if remove {
                Nothing
            } else {
                Note("ignored: smtpsend always removes Bcc, so a blind copy stays blind".into())
            }
        }
        "set_to_header" => match arg {
            "off" => Set("set_to_header", None),
            "undisclosed_recipients" => Set("set_to_header", text(arg)),
            "" | "on" => Set("set_to_header", Some("on".into())),
            _ => return Err(invalid(command, arg)),
        },
        "undisclosed_recipients" => {
            let on = on_off(command, arg)?;
            Set(
                "set_to_header",
                on.then(|| "undisclosed_recipients".to_string()),
            )
        }
        _ => return Ok(None),
    };
    Ok(Some(effect))
}

/// msmtp's `dsn_notify`: `never`, or a comma list (no spaces) of `failure`, `delay`,
/// `success`.
fn dsn_notify_ok(arg: &str) -> bool {
    if arg == "never" {
        return true;
    }
    let parts: Vec<&str> = arg.split(',').collect();
    parts
        .iter()
        .all(|p| matches!(*p, "failure" | "delay" | "success"))
        && parts
            .iter()
            .enumerate()
            .all(|(i, p)| !parts[..i].contains(p))
}

/// A fingerprint as msmtp takes it: hex pairs separated by `:` or a blank, 32 of them
/// (SHA-256), 20 (SHA-1) or 16 (MD5).
fn fingerprint_bytes(arg: &str) -> Option<usize> {
    let pairs: Vec<&str> = arg.split([':', ' ']).collect();
    let ok = pairs
        .iter()
        .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    (ok && matches!(pairs.len(), 32 | 20 | 16)).then_some(pairs.len())
}

/// Account `block` as smtpsend TOML keys, with msmtp's defaults spelt out; or why it
/// cannot be used, naming the line of the directive.
fn map_account(block: &Block) -> Parsed {
    let all = block.effective();
    let from = effective_from(&all);
    let table = to_table(&all).map_err(|u| Unusable {
        why: match u.line {
            Some(line) => format!("line {line}: {}", u.why),
            None => format!("line {}: {}", block.line, u.why),
        },
        no_host: u.no_host,
    });
    Parsed {
        name: block.name.clone(),
        line: block.line,
        parents: block.parents.clone(),
        from: from.map(|f| from::expand(&f, true).unwrap_or(f)),
        table,
    }
}

/// The envelope sender msmtp would use: `from`, or with the obsolete `auto_from`,
/// `%U@maildomain`.
fn effective_from(all: &Settings) -> Option<String> {
    let value = |key: &str| all.get(key).and_then(|s| s.value.clone());
    if value("auto_from").as_deref() == Some("on") {
        return Some(match value("maildomain").filter(|d| !d.is_empty()) {
            Some(domain) => format!("%U@{domain}"),
            None => "%U".to_string(),
        });
    }
    value("from")
}

/// Why a mapping failed, before the account's name is put to it.
struct Refusal {
    line: Option<usize>,
    why: String,
    no_host: bool,
}

fn refuse(setting: &Setting, why: String) -> Refusal {
    Refusal {
        line: Some(setting.line),
        why,
        no_host: false,
    }
}

/// Account settings `all` as smtpsend TOML keys, with msmtp's defaults spelt out; or the
/// refusal whose directive comes first in the file, so the error names that line.
fn to_table(all: &Settings) -> std::result::Result<Table, Refusal> {
    let view = View::new(all);
    let Some(host) = view.value("host") else {
        return Err(Refusal {
            line: None,
            why: "host not set (msmtp cannot send with this account either)".into(),
            no_host: true,
        });
    };
    let mut refusals = refused_directives(&view);
    refusals.extend(auth_refusals(&view));
    if view.tls_on {
        refusals.extend(tls_refusals(&view));
    }
    if let Some(first) = refusals.into_iter().min_by_key(|r| r.line) {
        return Err(first);
    }

    let mut table = Table::new();
    put_connection(&view, host, &mut table);
    put_auth(&view, &mut table);
    put_shared_settings(&view, &mut table);
    Ok(table)
}

/// An account's settings as the mapping reads them, with what msmtp's defaults make of
/// TLS and AUTH: TLS only with `tls on`, STARTTLS unless `tls_starttls off`, the
/// certificate checked unless `tls_certcheck off`.
struct View<'a> {
    all: &'a Settings,
    tls_on: bool,
    starttls: bool,
    certcheck: bool,
    auth: Option<&'a str>,
}

impl<'a> View<'a> {
    fn new(all: &'a Settings) -> View<'a> {
        let value = |key: &str| all.get(key).and_then(|s| s.value.as_deref());
        View {
            all,
            tls_on: value("tls") == Some("on"),
            starttls: value("tls_starttls") != Some("off"),
            certcheck: value("tls_certcheck") != Some("off"),
            auth: value("auth"),
        }
    }

    /// The value of `key`; `None` if it was never set or was turned off.
    fn value(&self, key: &str) -> Option<&'a str> {
        self.all.get(key).and_then(|s| s.value.as_deref())
    }

    /// Where `key` was given a value, for naming its line in a refusal.
    fn setting(&self, key: &str) -> Option<&'a Setting> {
        self.all.get(key).filter(|s| s.value.is_some())
    }
}

/// A refusal for each directive of `list` that has a value, naming it with its value.
fn refused_keys(view: &View, list: &[(&str, &str)]) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    for (key, why) in list {
        if let Some(s) = view.setting(key) {
            let v = s.value.as_deref().unwrap_or("");
            refusals.push(refuse(s, format!("{key} {v}: {why}")));
        }
    }
    refusals
}

/// Directives, TLS and AUTH aside, whose value would have msmtp send somewhere or
/// somehow smtpsend cannot: sending anyway would not be what the file asks.
fn refused_directives(view: &View) -> Vec<Refusal> {
    let mut refusals = refused_keys(view, REFUSED);
    if let Some(s) = view
        .setting("protocol")
        .filter(|s| s.value.as_deref() == Some("lmtp"))
    {
        refusals.push(refuse(s, "protocol lmtp: smtpsend speaks SMTP only".into()));
    }
    if let Some(s) = view
        .setting("allow_from_override")
        .filter(|s| s.value.as_deref() == Some("off"))
    {
        refusals.push(refuse(
            s,
            "allow_from_override off: smtpsend always uses the sender given with -f".into(),
        ));
    }
    if let Some(s) = view
        .setting("set_to_header")
        .filter(|s| s.value.as_deref() == Some("on"))
    {
        refusals.push(refuse(
            s,
            "set_to_header on: smtpsend does not rewrite To from the recipients".into(),
        ));
    }
    refusals
}

/// AUTH as smtpsend does it: a mechanism it speaks, a user to log in as (but for
/// EXTERNAL), and credentials sent only over TLS whose certificate is checked; the TOML's
/// `insecure_auth` is the way around that, and msmtprc has none.
fn auth_refusals(view: &View) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    let Some(s) = view.setting("auth") else {
        return refusals;
    };
    if let Some((mech, why)) = OTHER_MECHANISMS
        .iter()
        .find(|(m, _)| s.value.as_deref() == Some(*m))
    {
        refusals.push(refuse(s, format!("auth {mech}: {why}")));
    }
    let external = view.auth == Some("external");
    if view.value("user").is_none() && !external {
        refusals.push(refuse(
            s,
            format!("auth {}: no user is set", view.auth.unwrap_or("on")),
        ));
    }
    if !view.tls_on {
        refusals.push(refuse(
            s,
            "auth without tls on: smtpsend sends credentials only over TLS; turn tls \
             on, or move to an smtpsend config (smtpsend config import) and set \
             insecure_auth = true"
                .into(),
        ));
    } else if !view.certcheck
        && let Some(c) = view.all.get("tls_certcheck")
    {
        refusals.push(refuse(
            c,
            "tls_certcheck off with auth: smtpsend does not send credentials to a server \
             whose certificate is not checked; trust it with tls_trust_file or \
             tls_fingerprint, or move to an smtpsend config (smtpsend config import) \
             and set insecure_auth = true"
                .into(),
        ));
    }
    refusals
}

/// With TLS on: the TLS settings rustls cannot honour, and trust that cannot work (a
/// weak fingerprint, no trust at all, half a client certificate).
fn tls_refusals(view: &View) -> Vec<Refusal> {
    let mut refusals = refused_keys(view, REFUSED_WITH_TLS);
    if view.certcheck
        && let Some(s) = view.setting("tls_fingerprint")
        && fingerprint_bytes(s.value.as_deref().unwrap_or("")) != Some(32)
    {
        refusals.push(refuse(
            s,
            "tls_fingerprint: only a SHA-256 fingerprint pins a certificate safely; \
             SHA-1 and MD5 ones are refused (get the SHA-256 one with smtpsend \
             --serverinfo)"
                .into(),
        ));
    }
    if view.certcheck
        && view.value("tls_fingerprint").is_none()
        && let Some(s) = view.all.get("tls_trust_file").filter(|s| s.value.is_none())
    {
        refusals.push(refuse(
            s,
            "tls_trust_file is empty and there is no tls_fingerprint: no certificate \
             could be trusted (msmtp refuses this too)"
                .into(),
        ));
    }
    match (view.setting("tls_cert_file"), view.setting("tls_key_file")) {
        (Some(s), None) => refusals.push(refuse(s, "tls_cert_file requires tls_key_file".into())),
        (None, Some(s)) => refusals.push(refuse(s, "tls_key_file requires tls_cert_file".into())),
        _ => {}
    }
    refusals
}

fn put(table: &mut Table, key: &str, value: Value) {
    table.insert(key.to_string(), value);
}

fn string(s: &str) -> Value {
    Value::String(s.to_string())
}

/// The server, its port and TLS, where msmtp's defaults differ from smtpsend's: port 25,
/// or 465 for TLS without STARTTLS; the system CA store unless the file names other
/// trust.
fn put_connection(view: &View, host: &str, table: &mut Table) {
    put(table, "host", string(host));
    let implicit = view.tls_on && !view.starttls;
    let port = match view.value("port") {
        Some(p) => p.parse::<i64>().unwrap_or(25),
        None if implicit => 465,
        None => 25,
    };
    put(table, "port", Value::Integer(port));
    let mode = match (view.tls_on, implicit) {
        (false, _) => "off",
        (true, false) => "required",
        (true, true) => "implicit",
    };
    put(table, "tls", string(mode));
    if !view.tls_on {
        return;
    }
    if !view.certcheck {
        put(table, "tls_verify", Value::Boolean(false));
    } else if let Some(fp) = view.value("tls_fingerprint") {
        put(table, "tls_fingerprint", string(&fp.replace(' ', ":")));
    } else {
        put(
            table,
            "tls_trust_file",
            string(match view.all.get("tls_trust_file") {
                None => SYSTEM_TRUST,
                Some(s) => s.value.as_deref().unwrap_or(SYSTEM_TRUST),
            }),
        );
    }
    if let (Some(cert), Some(key)) = (view.value("tls_cert_file"), view.value("tls_key_file")) {
        put(table, "tls_cert", string(cert));
        put(table, "tls_key", string(key));
    }
}

/// AUTH and its credentials; no AUTH unless `auth` asks for it, as in msmtp.
fn put_auth(view: &View, table: &mut Table) {
    match view.auth {
        Some(mech) => {
            put(table, "auth", string(mech));
            if let Some(user) = view.value("user") {
                put(table, "user", string(user));
            }
            // msmtp asks for the password with passwordeval only when none is set.
            if let Some(password) = view.value("password") {
                put(table, "password", string(password));
            } else if let Some(command) = view.value("passwordeval") {
                put(table, "password_command", string(command));
            }
        }
        None if view.tls_on && view.value("tls_cert_file").is_some() => {
            // The certificate still goes with the handshake, but no AUTH EXTERNAL.
            put(table, "auth", string("off"));
        }
        None => {}
    }
}

/// The settings both programs have, each under smtpsend's name: sender, EHLO name,
/// timeout, DSN, logging, aliases and the header choices.
fn put_shared_settings(view: &View, table: &mut Table) {
    if let Some(f) = effective_from(view.all) {
        put(table, "from", Value::String(f));
    }
    if let Some(domain) = view.value("domain") {
        put(table, "ehlo", string(domain));
    }
    if let Some(t) = view.value("timeout").and_then(|t| t.parse::<i64>().ok()) {
        put(table, "timeout", Value::Integer(t));
    }
    if let Some(n) = view.value("dsn_notify") {
        put(table, "dsn_notify", string(n));
    }
    if let Some(r) = view.value("dsn_return") {
        put(table, "dsn_return", string(r));
    }
    if let Some(file) = view.value("logfile") {
        put(table, "logfile", string(file));
    }
    if let Some(facility) = view.value("syslog") {
        put(table, "syslog", string(facility));
    }
    if let Some(file) = view.value("aliases") {
        put(table, "aliases", string(file));
    }
    if let Some(word @ ("on" | "off")) = view.value("set_from_header") {
        put(table, "set_from_header", string(word));
    }
    if view.value("set_to_header") == Some("undisclosed_recipients") {
        put(table, "undisclosed_recipients", Value::Boolean(true));
    }
}

impl Msmtprc {
    /// The accounts as smtpsend uses them; an account that cannot send is kept with its
    /// reason, an error only if it is chosen.
    pub(super) fn into_config(self, origin: &Path, home: Option<&Path>) -> Result<Config> {
        let mut accounts = BTreeMap::new();
        let mut unusable = BTreeMap::new();
        let mut order = Vec::new();
        for parsed in self.accounts {
            let name = parsed.name.clone();
            match build(&parsed, origin, home) {
                Ok(account) => {
                    order.push((name.clone(), account.from.clone()));
                    accounts.insert(name, account);
                }
                Err(why) => {
                    order.push((name.clone(), parsed.from.clone()));
                    unusable.insert(name, why);
                }
            }
        }
        let default_account = order
            .iter()
            .any(|(name, _)| name == super::DEFAULT_ACCOUNT)
            .then(|| super::DEFAULT_ACCOUNT.to_string());
        Ok(Config {
            origin: origin.to_path_buf(),
            kind: ConfigKind::Msmtprc,
            default_account,
            accounts,
            unusable,
            order,
            notes: self.notes,
            holds_password: self.holds_password,
            runs_command: self.runs_command,
        })
    }
}

/// One account, through the very code that builds a TOML account.
fn build(
    parsed: &Parsed,
    origin: &Path,
    home: Option<&Path>,
) -> std::result::Result<super::Account, String> {
    let table = parsed.table.clone().map_err(|u| u.why)?;
    let raw: RawAccount = Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| format!("line {}: {}", parsed.line, e.message()))?;
    let mut account = raw
        .build(&parsed.name, origin, home)
        .map_err(|e| format!("line {}: {e}", parsed.line))?;
    account.config_kind = ConfigKind::Msmtprc;
    Ok(account)
}

mod import;

pub use import::import;

#[cfg(test)]
mod tests;
