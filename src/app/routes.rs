//! A [`RouteSpec`] made live: the relay with the credentials of the account it names, or
//! direct delivery with its resolver. The same for a message sent now and for one a
//! queue run sends days later, so an entry leaves the way it was meant to.

use crate::config::{self, Account};
use crate::delivery::Relay;
use crate::delivery::direct::Direct;
use crate::delivery::remote::Remote;
use crate::delivery::route::{Client, RelaySpec, Route, RouteSpec};
use crate::error::Error;
use crate::smtp::{Credentials, Mechanism, Secret, SecretKind};
use crate::transport::refusal::Syntax;
use crate::transport::{ClientCert, TlsMode, TlsSettings, tls};

/// Environment variable holding the SMTP password (never a command-line argument).
pub const PASSWORD_ENV: &str = "SMTPSEND_PASSWORD";

/// The live route for `spec`. `account` is the account `spec` names, already loaded
/// (the sender has it in hand; a queue run loads it with [`named_account`]).
///
/// A relay spec that names no account (a `--host` other than the account's relay, see
/// `settings::foreign_relay`) gets nothing of `account`: its secrets stay with its host.
pub fn open(spec: &RouteSpec, account: Option<&Account>, client: &Client) -> Result<Remote, Error> {
    match spec {
        RouteSpec::Relay(relay) => {
            let account = account.filter(|_| relay.account.is_some());
            Ok(Remote::Relay(Box::new(open_relay(relay, account, client)?)))
        }
        RouteSpec::Direct(direct) => Ok(Remote::Direct(Box::new(Direct::new(direct, client)?))),
    }
}

/// The account a stored relay spec names, from the file it names; an account that is
/// gone, or that now sends through another relay, keeps the entry waiting with that
/// reason rather than sending it somewhere nobody chose.
pub fn named_account(spec: &RelaySpec) -> Result<Option<Account>, Error> {
    let Some(named) = &spec.account else {
        return Ok(None);
    };
    let shown = named.config.display();
    let config = config::load(Some(&named.config))?.ok_or_else(|| {
        Error::TempFail(format!(
            "{shown}: the config file the message was queued with is gone"
        ))
    })?;
    let account = config.account(Some(&named.name)).map_err(|_| {
        Error::TempFail(format!(
            "account {} is no longer in {shown}; the message stays queued",
            named.name
        ))
    })?;
    if !spec.from_command_line {
        let now = account_relay(&account);
        if now
            .as_ref()
            .is_none_or(|(host, port)| !host.eq_ignore_ascii_case(&spec.host) || *port != spec.port)
        {
            let now = now.map_or("direct delivery".to_string(), |(h, p)| format!("{h}:{p}"));
            return Err(Error::TempFail(format!(
                "account {} now sends through {now}, the message was queued for {}:{}; it \
                 stays queued",
                named.name, spec.host, spec.port
            )));
        }
    }
    Ok(Some(account))
}

/// The relay an account names, with its port defaulted as for a send.
fn account_relay(account: &Account) -> Option<(String, u16)> {
    let host = account.host.clone()?;
    let tls = account.tls.unwrap_or_default();
    let port = account.port.unwrap_or(match tls {
        TlsMode::Off => 25,
        m => m.default_port(),
    });
    Some((host, port))
}

fn open_relay(
    spec: &RelaySpec,
    account: Option<&Account>,
    client: &Client,
) -> Result<Relay, Error> {
    let fingerprint = spec
        .tls_fingerprint
        .as_deref()
        .map(tls::parse_fingerprint)
        .transpose()
        .map_err(Error::Usage)?;
    let client_cert = spec.tls_cert.clone().map(|cert| ClientCert {
        key: spec.tls_key.clone().unwrap_or_else(|| cert.clone()),
        cert,
    });
    let mechanism = spec.auth.as_deref().and_then(Mechanism::from_name);
    let credentials = credentials(spec, mechanism, account, client_cert.is_some())?;
    Ok(Relay {
        route: Route {
            host: spec.host.clone(),
            port: spec.port,
            addrs: None,
            progress: client.progress,
            dane: None,
            policy: None,
            tls: spec.tls,
            tls_settings: TlsSettings {
                trust_file: spec.tls_trust_file.clone(),
                fingerprint,
                // The account's `tls_verify = false` (msmtp's `tls_certcheck off`), not
                // for a relay named on the command line. The session then refuses
                // credentials unless `insecure_auth`.
                verify: spec.from_command_line || account.is_none_or(|a| a.tls_verify),
                client_cert,
                advice: Some(advice(spec, account)),
            },
            timeouts: client.timeouts.clone(),
        },
        credentials,
        mechanism,
        allow_plaintext_auth: spec.insecure_auth,
        ehlo: spec.ehlo.clone().unwrap_or_else(|| client.ehlo.clone()),
    })
}

/// How a refused certificate's pin is written: as a flag for a relay named on the command
/// line, else in the syntax of the account's file.
fn advice(spec: &RelaySpec, account: Option<&Account>) -> Syntax {
    match account {
        Some(a) if !spec.from_command_line => match a.config_kind {
            config::ConfigKind::Toml => Syntax::Toml,
            config::ConfigKind::Msmtprc => Syntax::Msmtprc,
        },
        _ => Syntax::Flag,
    }
}

/// Who authenticates, and with what. An account with an OAuth token source sends its
/// access token; otherwise the secret from `$SMTPSEND_PASSWORD` or the account's password
/// source is a password, or a token with `--oauth` or a forced XOAUTH2/OAUTHBEARER. A
/// client certificate stands in for it with `--auth external`, or when no user is named.
fn credentials(
    spec: &RelaySpec,
    mechanism: Option<Mechanism>,
    acct: Option<&Account>,
    has_client_cert: bool,
) -> Result<Option<Credentials>, Error> {
    if spec.user.is_none() && acct.is_some_and(|a| a.auth_off) {
        // `auth = "off"` (msmtp's default): no AUTH, whatever else the account holds.
        return Ok(None);
    }
    let user = spec
        .user
        .clone()
        .or_else(|| acct.and_then(|a| a.user.clone()));
    if mechanism == Some(Mechanism::External) {
        if !has_client_cert {
            return Err(Error::Config(
                "AUTH EXTERNAL needs a client certificate: pass --tls-cert or set tls_cert".into(),
            ));
        }
        return Ok(Some(Credentials {
            user: user.unwrap_or_default(),
            secret: Secret::ClientCertificate,
        }));
    }
    let Some(user) = user else {
        return Ok(has_client_cert.then(|| Credentials {
            user: String::new(),
            secret: Secret::ClientCertificate,
        }));
    };
    if let Some(acct) = acct.filter(|a| crate::oauth::uses_oauth(a)) {
        // Fetched (and refreshed) now, before the input is read: a token that cannot be
        // had holds the message back (exit 75) or asks for a login (exit 77).
        let token = crate::oauth::access_token(acct)?;
        return Ok(Some(Credentials {
            user,
            secret: Secret::Token(token),
        }));
    }
    let secret = match std::env::var(PASSWORD_ENV) {
        Ok(p) => Some(p),
        Err(_) => match acct {
            Some(a) => a.password.resolve()?,
            None => None,
        },
    };
    let secret = secret.ok_or_else(|| {
        Error::Config(format!(
            "no password for {user}: set {PASSWORD_ENV} or a password source in the config"
        ))
    })?;
    let token = spec.oauth || mechanism.is_some_and(|m| m.secret_kind() == SecretKind::Token);
    let secret = if token {
        Secret::Token(secret)
    } else {
        Secret::Password(secret)
    };
    Ok(Some(Credentials { user, secret }))
}
