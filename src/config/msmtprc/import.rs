//! `smtpsend config import`: an msmtprc written out as smtpsend TOML that gives the same
//! accounts, as short as inheritance makes it.

use std::collections::BTreeMap;
use std::path::Path;

use toml::{Table, Value};

use super::{Msmtprc, Parsed, build, parse};
use crate::config::{Config, DEFAULT_ACCOUNT};
use crate::{Error, Result};

/// The order keys are written in, as a person would group them.
const KEY_ORDER: &[&str] = &[
    "host",
    "port",
    "tls",
    "tls_verify",
    "tls_trust_file",
    "tls_fingerprint",
    "tls_cert",
    "tls_key",
    "auth",
    "user",
    "password",
    "password_command",
    "from",
    "ehlo",
    "timeout",
    "set_from_header",
    "undisclosed_recipients",
    "dsn_notify",
    "dsn_return",
    "aliases",
    "logfile",
    "syslog",
];

/// The keys that say how to authenticate: inherited as a group (see `RawAccount::inherit`).
const CREDENTIAL_KEYS: &[&str] = &["password", "password_command"];

/// `own` over `base`, as TOML inheritance does it: a credential source in `own` replaces
/// the one in `base`.
fn inherit(own: &Table, base: &Table) -> Table {
    let mut out = base.clone();
    if CREDENTIAL_KEYS.iter().any(|k| own.contains_key(*k)) {
        for key in CREDENTIAL_KEYS {
            out.remove(*key);
        }
    }
    out.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// The keys of `table` that `base` does not give it.
fn difference(table: &Table, base: &Table) -> Table {
    table
        .iter()
        .filter(|(k, v)| base.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `smtpsend config import`: the msmtprc `text` (read from `origin`) as smtpsend TOML.
/// The top level holds what every account shares, an account that inherited in the
/// msmtprc inherits the same accounts here, and the result is checked: read back, it must
/// give the very accounts the msmtprc gives. An account that cannot send is an error,
/// except one without a host (a base for others to inherit from), which is left out with
/// a comment.
pub fn import(text: &str, origin: &Path) -> Result<String> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let home = home.as_deref();
    let shown = origin.display();
    let parsed = parse(text, origin)?;
    let mut comments = Vec::new();
    let mut usable: Vec<(&Parsed, Table)> = Vec::new();
    for account in &parsed.accounts {
        match &account.table {
            Ok(table) => {
                build(account, origin, home).map_err(|why| {
                    Error::Config(format!(
                        "{shown}: account {}: {why}; it cannot be converted",
                        account.name
                    ))
                })?;
                usable.push((account, table.clone()));
            }
            Err(u) if u.no_host => comments.push(format!(
                "account {} (line {}) is left out: it names no host, so msmtp uses it only \
                 for others to inherit from; they have its settings here",
                account.name, account.line
            )),
            Err(u) => {
                return Err(Error::Config(format!(
                    "{shown}: account {}: {}; it cannot be converted",
                    account.name, u.why
                )));
            }
        }
    }
    if usable.is_empty() {
        return Err(Error::Config(format!(
            "{shown} defines no account that can send; there is nothing to convert"
        )));
    }
    let rendered = render(&parsed, &usable, &comments, origin);
    // The promise of import: the TOML sends exactly as the msmtprc does.
    let ours = parsed.clone().into_config(origin, home)?;
    let theirs = Config::parse_with_home(&rendered, origin, home)?;
    for (account, _) in &usable {
        let a = ours.account(Some(&account.name))?;
        let b = theirs.account(Some(&account.name))?;
        // Everything but the syntax it is written in.
        let a = super::super::Account {
            config_kind: b.config_kind,
            ..a
        };
        if a != b {
            return Err(Error::Internal(format!(
                "config import: account {} would change in TOML ({a:?} became {b:?})",
                account.name
            )));
        }
    }
    Ok(rendered)
}

fn render(
    parsed: &Msmtprc,
    usable: &[(&Parsed, Table)],
    comments: &[String],
    origin: &Path,
) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# smtpsend configuration converted from {} by `smtpsend config import`.\n\
         # Save it as ~/.config/smtpsend/config.toml (mode 600 when it holds a password).\n",
        origin.display()
    ));
    for note in &parsed.notes {
        out.push_str(&format!("# {note}\n"));
    }
    for comment in comments {
        out.push_str(&format!("# {comment}\n"));
    }
    let flat = usable.len() == 1 && usable[0].0.name == DEFAULT_ACCOUNT;
    if flat {
        out.push('\n');
        write_keys(&mut out, &usable[0].1);
        return out;
    }
    // What every account has in common goes to the top level, which each inherits.
    let top: Table = if usable.len() > 1 {
        usable[0]
            .1
            .iter()
            .filter(|(k, v)| usable[1..].iter().all(|(_, t)| t.get(*k) == Some(*v)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    } else {
        Table::new()
    };
    let has_default = usable.iter().any(|(p, _)| p.name == DEFAULT_ACCOUNT);
    if (has_default && usable.len() > 1) || !top.is_empty() {
        out.push('\n');
    }
    if has_default && usable.len() > 1 {
        out.push_str(&format!(
            "default_account = {}\n",
            Value::String(DEFAULT_ACCOUNT.into())
        ));
    }
    write_keys(&mut out, &top);
    let effective: BTreeMap<&str, &Table> =
        usable.iter().map(|(p, t)| (p.name.as_str(), t)).collect();
    for (account, table) in usable {
        let parents: Vec<&Table> = account
            .parents
            .iter()
            .filter_map(|p| effective.get(p.as_str()).copied())
            .collect();
        let inherited = (!parents.is_empty() && parents.len() == account.parents.len())
            .then(|| {
                parents
                    .iter()
                    .fold(None::<Table>, |base, parent| {
                        Some(match base {
                            None => (*parent).clone(),
                            Some(earlier) => inherit(parent, &earlier),
                        })
                    })
                    .unwrap_or_default()
            })
            // Inheriting works only when it brings no key the account does not have.
            .filter(|base| base.keys().all(|k| table.contains_key(k)));
        out.push_str(&format!("\n[accounts.{}]\n", bare_or_quoted(&account.name)));
        let base = match &inherited {
            Some(base) => {
                let names: Vec<Value> = account
                    .parents
                    .iter()
                    .map(|p| Value::String(p.clone()))
                    .collect();
                let value = match names.as_slice() {
                    [one] => one.clone(),
                    _ => Value::Array(names),
                };
                out.push_str(&format!("inherits = {value}\n"));
                base
            }
            None => &top,
        };
        write_keys(&mut out, &difference(table, base));
    }
    out
}

fn write_keys(out: &mut String, table: &Table) {
    for key in KEY_ORDER {
        if let Some(v) = table.get(*key) {
            out.push_str(&format!("{key} = {v}\n"));
        }
    }
    for (key, v) in table {
        if !KEY_ORDER.contains(&key.as_str()) {
            out.push_str(&format!("{} = {v}\n", bare_or_quoted(key)));
        }
    }
}

/// A TOML key: bare when it can be (RFC-like `A-Za-z0-9_-`), else a quoted string.
fn bare_or_quoted(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        Value::String(key.to_string()).to_string()
    }
}
