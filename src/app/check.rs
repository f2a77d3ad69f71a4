//! `--check`, try before you send: the route a send would take, gone through as far as a
//! send goes before its first recipient, and no further. On the relay route: the relay's
//! addresses, the connection, TLS (whether the certificate was verified, or why not, and
//! its SHA-256 fingerprint), the EHLO capabilities, AUTH with the account's real
//! credentials, `MAIL FROM` with the sender, then RSET and QUIT
//! ([`crate::smtp::Session::rehearsal`]). One line per step on stdout, nothing sent, and
//! the exit status a send would have had: refused credentials are 77, a refused sender is
//! what a refused `MAIL FROM` is to a send.
//!
//! Direct delivery (no relay) has no one server to try: the exchangers a message goes to
//! are its recipients' domains'. The check says so, looks up the sender's domain (many
//! receivers refuse a sender whose domain does not resolve, as Postfix's
//! `reject_unknown_sender_domain` does), and given DOMAIN arguments tries each domain's
//! exchangers as a send would, in preference order.

use std::io::{self, Write};

use crate::app::routes;
use crate::app::settings::Settings;
use crate::delivery::direct;
use crate::delivery::link::Link;
use crate::delivery::remote::Remote;
use crate::delivery::route::{Route, RouteSpec};
use crate::delivery::{self, RehearsalStep};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::smtp::{Reply, SessionOptions, TraceLine};
use crate::system::terminal::{self, printable};
use crate::transport::{self, cert};

/// Run the check; the steps go to stdout, the `-v` trace to `err`.
pub fn run(settings: &Settings, err: &mut dyn Write) -> Result<ExitStatus, Error> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    run_to(settings, &mut out, err)
}

/// [`run`], writing the steps to `out`. Lines that cannot be written are lost; the exit
/// status still says how the check went.
pub fn run_to(
    settings: &Settings,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let from = settings.envelope_sender()?;
    let result = match settings.route_spec()? {
        spec @ RouteSpec::Relay(_) => relay(settings, spec, &from, out, err),
        spec @ RouteSpec::Direct(_) => direct(settings, spec, &from, out, err),
    };
    match result {
        Ok(done) => {
            let _ = writeln!(out, "{done}");
            Ok(ExitStatus::Ok)
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "check failed (exit status {}): {}",
                e.exit_status().code(),
                printable(&e.to_string())
            );
            Err(e)
        }
    }
}

/// The relay, as a send would use it. Returns the closing line.
fn relay(
    settings: &Settings,
    spec: &RouteSpec,
    from: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<String, Error> {
    if let Some(first) = settings.recipients.first() {
        return Err(Error::Usage(format!(
            "--check through a relay takes no recipient ({first}): a relay answers for \
             recipients only at RCPT, which a check never sends"
        )));
    }
    let account = match spec {
        RouteSpec::Relay(r) => r.account.as_ref().map(|a| a.name.clone()),
        RouteSpec::Direct(_) => None,
    };
    let _ = writeln!(
        out,
        "route: relay {}{}",
        spec.describe(),
        account.map_or(String::new(), |a| format!(" (account {a})"))
    );
    // Credentials are looked up (a password command run, a token refreshed) as a send
    // looks them up; the secret itself is never shown.
    let Remote::Relay(relay) = routes::open(spec, settings.account.as_ref(), &settings.client)?
    else {
        return Err(Error::Internal("a relay spec made another route".into()));
    };
    let user = relay.credentials.as_ref().map(|c| c.user.clone());
    let host = relay.route.host.clone();
    let addrs = transport::resolve(&host, relay.route.port)?;
    let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    let _ = writeln!(out, "resolve: {host}: {}", shown.join(" "));
    let route = Route {
        addrs: Some(addrs),
        ..relay.route.clone()
    };
    if user.is_none() {
        let _ = writeln!(out, "AUTH: none configured (no user)");
    }
    let opts = relay.session_options(&settings.client);
    rehearse(settings, &route, from, opts, user.as_deref(), out, err)?;
    Ok(format!(
        "ok: {host} takes mail from <{from}> up to the recipients; nothing was sent"
    ))
}

/// Direct delivery: the route in words, the sender's domain in DNS, and each DOMAIN
/// argument's exchangers tried. Returns the closing line.
fn direct(
    settings: &Settings,
    spec: &RouteSpec,
    from: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<String, Error> {
    let Remote::Direct(direct) = routes::open(spec, None, &settings.client)? else {
        return Err(Error::Internal("a direct spec made another route".into()));
    };
    let _ = writeln!(
        out,
        "route: direct delivery (no relay configured): each recipient domain's mail \
         exchangers on port {}, TLS {}",
        direct.port, direct.tls
    );
    match from.rsplit_once('@') {
        None => {
            let _ = writeln!(out, "sender: null sender <>: no domain to look up");
        }
        Some((_, domain)) => match describe_exchangers(&direct, domain) {
            Ok(hosts) => {
                let _ = writeln!(out, "sender domain {domain}: {hosts}");
            }
            // A send does not look its sender up: a warning, not a failure.
            Err(e) => {
                let _ = writeln!(
                    out,
                    "sender domain {domain}: {}; receivers that check the sender's domain \
                     will refuse mail from <{from}>",
                    printable(&e.to_string())
                );
            }
        },
    }
    if settings.recipients.is_empty() {
        return Ok(
            "nothing to connect to: the exchangers depend on the recipients; give \
                   a recipient domain (smtpsend --check example.org) to try its exchangers"
                .into(),
        );
    }
    let opts = direct.session_options(&settings.client);
    let verbose = settings.verbose;
    let mut trace = |line: &TraceLine| {
        if verbose {
            let _ = writeln!(err, "{}", terminal::trace_line(line));
        }
    };
    let mut first_error = None;
    for domain in &settings.recipients {
        let domain = domain.rsplit_once('@').map_or(domain.as_str(), |(_, d)| d);
        let outcome = describe_exchangers(&direct, domain).and_then(|hosts| {
            let _ = writeln!(out, "{domain}: {hosts}");
            let mut show =
                |route: &Route, step: RehearsalStep<'_, '_>| show_step(out, None, route, step);
            direct::rehearse_domain(&direct, domain, from, &opts, &mut trace, &mut show)
        });
        if let Err(e) = outcome {
            let _ = writeln!(out, "{domain}: {}", printable(&e.to_string()));
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(format!(
            "ok: the exchangers of {} take mail from <{from}> up to the recipients; \
             nothing was sent",
            settings.recipients.join(", ")
        )),
    }
}

/// A domain's exchangers in preference order, in words.
fn describe_exchangers(direct: &direct::Direct, domain: &str) -> Result<String, Error> {
    let hosts = direct.resolver.mail_hosts(domain)?;
    Ok(hosts
        .iter()
        .map(|h| {
            if h.implicit {
                format!("no MX, the domain's own address ({})", h.name)
            } else {
                format!("MX {} {}", h.preference, h.name)
            }
        })
        .collect::<Vec<_>>()
        .join(", "))
}

/// Go through `route`, one line per step.
fn rehearse(
    settings: &Settings,
    route: &Route,
    from: &str,
    opts: SessionOptions,
    user: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let verbose = settings.verbose;
    let mut trace = |line: &TraceLine| {
        if verbose {
            let _ = writeln!(err, "{}", terminal::trace_line(line));
        }
    };
    let mut show = |step: RehearsalStep<'_, '_>| show_step(out, user, route, step);
    delivery::rehearse(route, from, opts, &mut trace, &mut show).map(|_| ())
}

fn show_step(out: &mut dyn Write, user: Option<&str>, route: &Route, step: RehearsalStep<'_, '_>) {
    let _ = match step {
        RehearsalStep::Connected(link) => {
            let _ = writeln!(out, "connect: {} [{}]", link.route.host, link.addr);
            if link.stream.is_tls() {
                write_tls(out, link)
            } else {
                Ok(())
            }
        }
        RehearsalStep::Tls(link) => write_tls(out, link),
        RehearsalStep::Cleartext(e) => writeln!(
            out,
            "TLS: {}; with tls {} a send goes on in cleartext, and so does the check",
            printable(&e.to_string()),
            route.tls
        ),
        RehearsalStep::Reply(command, reply) => write_reply(out, user, command, reply),
    };
}

/// The TLS in use: version and cipher, whether the certificate was verified or why not,
/// and its fingerprint (what `--tls-fingerprint` pins).
fn write_tls(out: &mut dyn Write, link: &Link<'_>) -> io::Result<()> {
    let desc = link
        .stream
        .tls_description()
        .unwrap_or_else(|| "TLS".into());
    let verified = if link.tls_verified() {
        "certificate verified".to_string()
    } else {
        let why = link
            .tls_unverified_because()
            .unwrap_or_else(|| "it was not checked".into());
        format!(
            "certificate NOT verified ({}; tls {} goes on without it, and AUTH is refused \
             unless insecure_auth)",
            printable(&why),
            link.route.tls
        )
    };
    let fingerprint = link
        .stream
        .peer_certificate()
        .map(|der| format!(", SHA-256 {}", cert::hex_colons(&cert::sha256(&der))))
        .unwrap_or_default();
    // Direct delivery's policy for this exchanger (MTA-STS, DANE), as a send logs it.
    let policy = link
        .policy()
        .map_or(String::new(), |p| format!(", policy {}", printable(&p)));
    writeln!(out, "TLS: {desc}, {verified}{fingerprint}{policy}")
}

/// One reply as a step: the greeting, the EHLO capabilities, AUTH's outcome (its
/// challenges are left out), MAIL, RSET.
fn write_reply(
    out: &mut dyn Write,
    user: Option<&str>,
    command: &str,
    reply: &Reply,
) -> io::Result<()> {
    let text = printable(&reply.to_string());
    if command == "connection greeting" {
        return writeln!(out, "greeting: {text}");
    }
    let verb = command.split(' ').next().unwrap_or_default();
    match verb {
        "EHLO" if reply.code == 250 => {
            let keywords: Vec<String> = reply.lines.iter().skip(1).map(|l| printable(l)).collect();
            if keywords.is_empty() {
                writeln!(out, "EHLO: no extensions")
            } else {
                writeln!(out, "EHLO: {}", keywords.join(", "))
            }
        }
        "AUTH" if reply.code == 334 => Ok(()),
        "AUTH" => {
            let mechanism = command.split(' ').nth(1).unwrap_or_default();
            let who = user.map_or(String::new(), |u| format!(" as {}", printable(u)));
            writeln!(out, "AUTH {mechanism}{who}: {text}")
        }
        _ => writeln!(out, "{}: {text}", printable(command)),
    }
}
