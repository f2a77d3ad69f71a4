//! What the command line and the account say about where a message goes and how: a relay
//! or direct delivery, TLS, credentials, and the session options for one message.

use super::*;

/// The relay and how to talk to it, from the command line over the account.
pub(crate) struct Relay {
    pub(crate) route: Route,
    pub(crate) credentials: Option<Credentials>,
}

/// A relay when one is configured (`--host`, the account's `host`) and `--direct` is not
/// given; otherwise direct delivery to each domain's exchangers.
pub(crate) fn remote_settings(cli: &Cli, acct: Option<&Account>) -> Result<Remote, Error> {
    let relay_host = cli.host.is_some() || acct.is_some_and(|a| a.host.is_some());
    if relay_host && !cli.direct {
        return relay_settings(cli, acct).map(|r| Remote::Relay(Box::new(r)));
    }
    let resolver = match cli
        .dns_server
        .clone()
        .or_else(|| acct.and_then(|a| a.dns_server.clone()))
    {
        Some(server) => Resolver::with_server(parse_dns_server(&server)?)?,
        None => Resolver::system()?,
    };
    let timeout = cli.timeout.or(acct.and_then(|a| a.timeout));
    // A DNS query waits at most the reply timeout (5 s by default), tried twice: a dead
    // resolver costs seconds, not hickory's default of three 5 s tries per record type.
    let per_query = Duration::from_secs(timeout.unwrap_or(5).clamp(1, 5));
    let resolver = resolver.with_timeout(per_query, 2);
    let mut direct = Direct::new(
        resolver,
        cli.mx_port.unwrap_or(25),
        cli.tls.unwrap_or(TlsMode::Opportunistic),
        Timeouts {
            connect: Duration::from_secs(cli.connect_timeout.unwrap_or(30)),
            command: timeout.map(Duration::from_secs),
            total: cli
                .deadline
                .or(acct.and_then(|a| a.deadline))
                .map(Duration::from_secs),
        },
    );
    if direct.tls == TlsMode::Implicit {
        return Err(Error::Usage(
            "--tls implicit is for a relay; exchangers speak STARTTLS on port 25".into(),
        ));
    }
    direct.progress = wants_progress(cli);
    direct.verify_domains = acct
        .map(|a| a.tls_verify_domains.clone())
        .unwrap_or_default();
    direct.tls_settings.trust_file = cli
        .tls_trust_file
        .clone()
        .or_else(|| acct.and_then(|a| a.tls_trust_file.clone()));
    Ok(Remote::Direct(Box::new(direct)))
}

/// Upload progress for a person watching: under `-v`, or when attachments are composed.
pub(super) fn wants_progress(cli: &Cli) -> bool {
    cli.verbose > 0 || !cli.attach.is_empty()
}

/// `IP` or `IP:PORT` (`[IPv6]:PORT`), port 53 by default.
pub(super) fn parse_dns_server(text: &str) -> Result<std::net::SocketAddr, Error> {
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .map_err(|_| Error::Usage(format!("--dns-server {text:?}: expected IP or IP:PORT")))
}

pub(crate) fn relay_settings(cli: &Cli, acct: Option<&Account>) -> Result<Relay, Error> {
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
        progress: wants_progress(cli),
        tls: tls_mode,
        tls_settings: TlsSettings {
            trust_file: cli
                .tls_trust_file
                .clone()
                .or_else(|| acct.and_then(|a| a.tls_trust_file.clone())),
            fingerprint,
            verify: true,
            client_cert: client_cert(cli, acct),
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(cli.connect_timeout.unwrap_or(30)),
            command: timeout.map(Duration::from_secs),
            total: cli
                .deadline
                .or(acct.and_then(|a| a.deadline))
                .map(Duration::from_secs),
        },
    };
    let credentials = credentials(cli, acct, route.tls_settings.client_cert.is_some())?;
    Ok(Relay { route, credentials })
}

/// `--tls-cert` and `--tls-key` over the account's; the key defaults to the cert file.
pub(super) fn client_cert(cli: &Cli, acct: Option<&Account>) -> Option<ClientCert> {
    let (cert, key) = match &cli.tls_cert {
        Some(cert) => (cert.clone(), cli.tls_key.clone()),
        None => {
            let acct = acct?;
            let cert = acct.tls_cert.clone()?;
            (cert, cli.tls_key.clone().or_else(|| acct.tls_key.clone()))
        }
    };
    let key = key.unwrap_or_else(|| cert.clone());
    Some(ClientCert { cert, key })
}

/// Who authenticates, and with what. An account with an OAuth token source sends its
/// access token; otherwise the secret from `$SMTPSEND_PASSWORD` or the account's password
/// source is a password, or a token with `--oauth` or a forced XOAUTH2/OAUTHBEARER. A
/// client certificate stands in for it with `--auth external`, or when no user is named.
pub(super) fn credentials(
    cli: &Cli,
    acct: Option<&Account>,
    has_client_cert: bool,
) -> Result<Option<Credentials>, Error> {
    let mechanism = cli.auth.or(acct.and_then(|a| a.auth));
    let user = cli
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
    let token = cli.oauth || mechanism.is_some_and(|m| m.secret_kind() == SecretKind::Token);
    let secret = if token {
        Secret::Token(secret)
    } else {
        Secret::Password(secret)
    };
    Ok(Some(Credentials { user, secret }))
}

/// Where remote recipients go: one relay, or each domain's exchangers.
pub(crate) enum Remote {
    Relay(Box<Relay>),
    Direct(Box<Direct>),
}

/// Read ahead so a small message's size is known and it can go as one BDAT chunk; the
/// session options for it.
pub(super) fn session_for(
    cli: &Cli,
    acct: Option<&Account>,
    credentials: Option<Credentials>,
    head: &mut Vec<u8>,
    input: &mut dyn Read,
) -> Result<SessionOptions, Error> {
    let want = delivery::BLOCK.saturating_sub(head.len());
    let got = input
        .take(want as u64)
        .read_to_end(head)
        .map_err(|e| Error::NoInput(format!("reading the message: {e}")))?;
    let whole = got < want;
    if memchr::memchr(0, head).is_some() {
        // Refused before connecting when it is already in sight; later in the stream the
        // transfer is abandoned without the final dot.
        return Err(Error::Data(
            "the message contains a NUL byte, which RFC 5322 §3.5 does not allow".into(),
        ));
    }
    let dot_ends_input = !cli.ignore_dots();
    let (chunk, size) = if whole {
        let chunk = delivery::encode_chunk(head, dot_ends_input);
        let size = chunk.len() as u64;
        (
            (chunk.len() <= delivery::CHUNK_MAX).then_some(chunk),
            Some(size),
        )
    } else {
        (None, None)
    };
    Ok(SessionOptions {
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
        trace: cli.verbose > 0,
        ..SessionOptions::default()
    })
}

/// The account to use: from the config file, if there is one.
pub(crate) fn load_account(cli: &Cli) -> Result<Option<Account>, Error> {
    match (config::load(cli.config.as_deref())?, &cli.account) {
        (Some(config), name) => config.account(name.as_deref()).map(Some),
        (None, Some(name)) => Err(Error::Usage(format!(
            "account {name:?} was asked for, but there is no config file"
        ))),
        (None, None) => Ok(None),
    }
}
