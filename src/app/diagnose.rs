//! `--serverinfo`, `--verify`, `--expand`, `--etrn`, `--noop`, `--help-server`: ask a server
//! about itself or an address, print what it said, and exit by its answer.
//!
//! The transport for [`crate::smtp::probe::Probe`]: the relay (`--host`, or the account's)
//! with the relay's TLS rules (`required` verifies the certificate, `opportunistic` records
//! whether it could), or a domain's first reachable MX host with direct delivery's rules
//! (opportunistic unless `--tls required`). No AUTH is attempted and no mail is sent.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use crate::app::routes;
use crate::app::settings::{RouteFlags, Settings, spec_for};
use crate::delivery::link::Link;
use crate::delivery::remote::Remote;
use crate::delivery::route::{RelaySpec, Route, RouteSpec};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::smtp::probe::{Hello, Probe, ProbeEvent, ProbeOptions, ProbeReport};
use crate::smtp::{Engine, Reply, TraceLine, Wait};
use crate::system::terminal::printable;
use crate::transport::{TlsMode, cert};

pub use crate::transport::cert::{CertInfo, DerError};

/// What TLS looked like, for the report.
#[derive(Clone, Debug, Default)]
pub struct TlsInfo {
    /// Protocol version and cipher suite.
    pub description: Option<String>,
    /// The server's certificate, DER.
    pub certificate: Option<Vec<u8>>,
    /// The certificate checked out (chain and name, or the pinned fingerprint).
    pub verified: bool,
    /// Why the handshake failed, when STARTTLS (or implicit TLS) was tried and failed.
    pub failure: Option<String>,
    /// The TLS policy that applied to an exchanger (direct delivery): `dane (3 1 1
    /// matched)`, `mta-sts enforce`, `opportunistic`.
    pub policy: Option<String>,
}

/// Run the diagnostic the settings ask for; the report goes to stdout.
pub fn run(settings: &Settings, err: &mut dyn Write) -> Result<ExitStatus, Error> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    run_to(settings, &mut out, err)
}

/// [`run`], writing the report to `out`.
pub fn run_to(
    settings: &Settings,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let verbose = settings.verbose;
    let mut trace = |line: &TraceLine| {
        if verbose {
            let _ = writeln!(err, "{}", crate::system::terminal::trace_line(line));
        }
    };
    let (routes, ehlo) = targets(settings)?;
    let mut last = None;
    for route in &routes {
        let link = match Link::open(route, &mut trace) {
            Ok(link) => link,
            // The next exchanger of the domain, when there is one.
            Err(e @ (Error::Network { .. } | Error::NoHost { .. })) if routes.len() > 1 => {
                trace(&TraceLine {
                    client: true,
                    text: format!("{e}; trying the next exchanger"),
                });
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let (tls, implicit_tls) = route.session_tls();
        let opts = ProbeOptions {
            ehlo_name: ehlo.clone(),
            tls,
            implicit_tls,
            queries: settings.diagnose.queries.clone(),
            trace: verbose,
        };
        let addr = link.addr;
        let (outcome, mut tls_info, report) = probe(link, opts, &mut trace);
        if let Err(Error::Tls { detail, .. }) = &outcome {
            tls_info.failure = Some(detail.clone());
        }
        let show = |out: &mut dyn Write, report: &ProbeReport| -> io::Result<()> {
            if settings.diagnose.serverinfo {
                write_serverinfo(out, &route.host, addr, report, &tls_info, SystemTime::now())?;
            }
            write_answers(out, report)
        };
        return match outcome {
            Ok(report) => {
                show(out, &report).map_err(|e| Error::io("writing the report", e))?;
                Ok(report.failure().map_or(ExitStatus::Ok, ExitStatus::from))
            }
            Err(e) => {
                // What was learned before the failure helps find its cause.
                let _ = show(out, &report);
                Err(e)
            }
        };
    }
    Err(last.unwrap_or_else(|| Error::NoHost {
        host: settings.recipients.first().cloned().unwrap_or_default(),
        detail: "no mail exchanger to try".into(),
    }))
}

/// Where to ask, and the name to give: the relay (`--host` or the account's), or, given a
/// DOMAIN argument, the domain's exchangers in order (the first that accepts a connection
/// is asked).
fn targets(settings: &Settings) -> Result<(Vec<Route>, String), Error> {
    let client = &settings.client;
    match settings.recipients.as_slice() {
        [] => {
            // The relay's settings without its credentials: a probe never authenticates,
            // so no password is looked up (nor a password command run).
            let RouteSpec::Relay(spec) = settings.route_spec()? else {
                return Err(Error::Config(
                    "no relay host: pass --host or set host in the config file".into(),
                ));
            };
            let spec = RelaySpec {
                account: None,
                user: None,
                auth: None,
                ..spec.clone()
            };
            let Remote::Relay(relay) = routes::open(&RouteSpec::Relay(spec), None, client)? else {
                return Err(Error::Internal("a relay spec made another route".into()));
            };
            Ok((vec![relay.route], relay.ehlo))
        }
        [domain] => {
            if settings.route_flags.host.is_some() {
                return Err(Error::Usage(format!(
                    "give either --host or a domain ({domain}), not both"
                )));
            }
            let flags = RouteFlags {
                direct: true,
                mx_port: settings.route_flags.mx_port.or(settings.route_flags.port),
                ..settings.route_flags.clone()
            };
            let spec = spec_for(&flags, None, settings.account.as_ref()).map_err(Error::Usage)?;
            let Remote::Direct(direct) = routes::open(&spec, None, client)? else {
                return Err(Error::Internal("a direct spec made another route".into()));
            };
            let domain = domain.trim();
            let mut routes = Vec::new();
            let mut last = None;
            let plan = direct
                .policies
                .domain(&direct.resolver, domain, &mut |_| {})?;
            for mx in &plan.hosts {
                match direct.policies.host(&direct.resolver, &plan, mx, domain) {
                    Ok((ips, policy)) => {
                        let addrs = ips
                            .into_iter()
                            .map(|ip| SocketAddr::new(ip, direct.port))
                            .collect();
                        routes.push(direct.route_to(&mx.name, domain, addrs, policy));
                    }
                    Err(e) => last = Some(e),
                }
            }
            match (routes.is_empty(), last) {
                (true, Some(e)) => Err(e),
                _ => Ok((routes, direct.ehlo.clone())),
            }
        }
        more => Err(Error::Usage(format!(
            "diagnostics take one domain, not {} arguments",
            more.len()
        ))),
    }
}

/// Run the probe to its end. Returns the outcome, what TLS looked like, and the report
/// as far as it got (for a failure).
fn probe(
    mut link: Link<'_>,
    opts: ProbeOptions,
    trace: &mut dyn FnMut(&TraceLine),
) -> (Result<ProbeReport, Error>, TlsInfo, ProbeReport) {
    let mut probe = Probe::new(opts);
    let mut tls_info = TlsInfo {
        policy: link.policy(),
        ..TlsInfo::default()
    };
    if link.route.tls == TlsMode::Implicit {
        tls_info = tls_info_of(&link);
    }
    let host = link.route.host.clone();
    let outcome = drive(&mut link, &mut probe, &mut tls_info, trace);
    // QUIT (whose 221 is not awaited), or what a failed probe left to say.
    link.say_last(&mut probe, Duration::from_secs(2));
    Link::drain_trace(&mut probe, trace);
    link.close();
    let partial = probe.report().clone();
    let outcome = outcome.map_err(|e| match e {
        Failure::Session(error) => Error::Session { host, error },
        Failure::Other(e) => e,
    });
    (outcome, tls_info, partial)
}

fn tls_info_of(link: &Link<'_>) -> TlsInfo {
    TlsInfo {
        description: link.stream.tls_description(),
        certificate: link.stream.peer_certificate(),
        verified: link.tls_verified(),
        failure: None,
        policy: link.policy(),
    }
}

enum Failure {
    Session(crate::smtp::SessionError),
    Other(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Other(e)
    }
}

fn drive(
    link: &mut Link<'_>,
    probe: &mut Probe,
    tls_info: &mut TlsInfo,
    trace: &mut dyn FnMut(&TraceLine),
) -> Result<ProbeReport, Failure> {
    loop {
        link.transmit(probe)?;
        Link::drain_trace(probe, trace);
        while let Some(event) = probe.poll_event() {
            match event {
                ProbeEvent::StartTls => {
                    link.start_tls(probe, trace)?;
                    *tls_info = tls_info_of(link);
                }
                ProbeEvent::Reply(..) => {}
                ProbeEvent::Done(report) => return Ok(report),
                ProbeEvent::Failed(error) => return Err(Failure::Session(error)),
            }
        }
        if probe.poll_transmit().is_some() {
            continue;
        }
        if !probe.wants_input() {
            return Err(Error::Internal("probe is neither waiting nor finished".into()).into());
        }
        let deadline = link.deadline(Wait::Command);
        link.receive(probe, deadline)?;
    }
}

/// A reply as the server sent it, one line per line, indented.
fn write_reply(out: &mut dyn Write, reply: &Reply, indent: &str) -> io::Result<()> {
    let n = reply.lines.len();
    for (i, line) in reply.lines.iter().enumerate() {
        let sep = if i + 1 == n { ' ' } else { '-' };
        writeln!(out, "{indent}{}{sep}{}", reply.code, printable(line))?;
    }
    Ok(())
}

fn write_hello(out: &mut dyn Write, title: &str, hello: &Hello) -> io::Result<()> {
    if !hello.extended {
        return writeln!(out, "{title}: EHLO refused, HELO only (no extensions)");
    }
    writeln!(out, "{title}:")?;
    if let Some(greeting) = hello.reply.lines.first() {
        writeln!(out, "  greeting: {}", printable(greeting))?;
    }
    for keyword in hello.keywords() {
        writeln!(out, "  {}", printable(keyword))?;
    }
    Ok(())
}

/// The `--serverinfo` report.
pub fn write_serverinfo(
    out: &mut dyn Write,
    host: &str,
    addr: SocketAddr,
    report: &ProbeReport,
    tls_info: &TlsInfo,
    now: SystemTime,
) -> io::Result<()> {
    writeln!(out, "server: {host} [{addr}]")?;
    if let Some(banner) = &report.banner {
        writeln!(out, "banner:")?;
        write_reply(out, banner, "  ")?;
    }
    if let Some(hello) = &report.before_tls {
        let title = if report.after_tls.is_some() || hello.capabilities().starttls {
            "EHLO before STARTTLS"
        } else {
            "EHLO"
        };
        write_hello(out, title, hello)?;
    }
    if let Some(refused) = &report.starttls_refused {
        writeln!(out, "STARTTLS refused: {}", printable(&refused.to_string()))?;
    }
    match (&tls_info.description, &tls_info.failure) {
        (Some(desc), _) => writeln!(out, "TLS: {desc}")?,
        // Offered (or asked for) and broken: not the same as no TLS at all.
        (None, Some(why)) => writeln!(out, "TLS: offered, handshake failed: {}", printable(why))?,
        (None, None) => writeln!(out, "TLS: none")?,
    }
    if let Some(policy) = &tls_info.policy {
        writeln!(out, "TLS policy: {policy}")?;
    }
    if let Some(der) = &tls_info.certificate {
        write_certificate(out, der, tls_info.verified, now)?;
    }
    if let Some(hello) = &report.after_tls {
        write_hello(out, "EHLO after TLS", hello)?;
    }
    let caps = report.capabilities();
    if caps.auth.is_empty() {
        writeln!(out, "AUTH: none offered")?;
    } else {
        writeln!(out, "AUTH: {}", caps.auth.join(" "))?;
    }
    Ok(())
}

fn write_certificate(
    out: &mut dyn Write,
    der: &[u8],
    verified: bool,
    now: SystemTime,
) -> io::Result<()> {
    writeln!(out, "certificate:")?;
    match crate::transport::cert::parse(der) {
        Ok(info) => {
            let now = crate::delivery::log::rfc3339(now);
            writeln!(out, "  subject: {}", info.subject)?;
            writeln!(out, "  issuer: {}", info.issuer)?;
            // RFC 3339 UTC strings of equal form compare as the times do.
            let state = if now < info.not_before {
                " (not valid yet)"
            } else if now > info.not_after {
                " (expired)"
            } else {
                ""
            };
            writeln!(out, "  not before: {}", info.not_before)?;
            writeln!(out, "  not after: {}{state}", info.not_after)?;
            if !info.alt_names.is_empty() {
                writeln!(out, "  names: {}", info.alt_names.join(", "))?;
            }
        }
        Err(e) => writeln!(out, "  {e}")?,
    }
    writeln!(out, "  SHA-256: {}", cert::hex_colons(&cert::sha256(der)))?;
    writeln!(out, "  verified: {}", if verified { "yes" } else { "no" })
}

/// Each query and its reply.
pub fn write_answers(out: &mut dyn Write, report: &ProbeReport) -> io::Result<()> {
    for answer in &report.answers {
        writeln!(out, "{}", printable(&answer.query.command().redacted()))?;
        write_reply(out, &answer.reply, "  ")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::probe::Answer;
    use crate::smtp::probe::Query;

    fn reply(code: u16, lines: &[&str]) -> Reply {
        Reply {
            code,
            lines: lines.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn serverinfo_shows_both_ehlo_replies_and_auth() {
        let report = ProbeReport {
            banner: Some(reply(220, &["mx.example ESMTP"])),
            before_tls: Some(Hello {
                reply: reply(250, &["mx.example", "PIPELINING", "STARTTLS"]),
                extended: true,
            }),
            after_tls: Some(Hello {
                reply: reply(250, &["mx.example", "PIPELINING", "AUTH PLAIN LOGIN"]),
                extended: true,
            }),
            tls: true,
            starttls_refused: None,
            answers: vec![],
        };
        let tls_info = TlsInfo {
            description: Some("TLSv1_3 TLS13_AES_128_GCM_SHA256".into()),
            certificate: Some(vec![0x30, 0x00]),
            verified: false,
            failure: None,
            policy: None,
        };
        let mut out = Vec::new();
        write_serverinfo(
            &mut out,
            "mx.example",
            "192.0.2.1:25".parse().unwrap(),
            &report,
            &tls_info,
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let fingerprint = cert::hex_colons(&cert::sha256(&[0x30, 0x00]));
        assert_eq!(
            text,
            format!(
                "server: mx.example [192.0.2.1:25]\n\
             banner:\n  220 mx.example ESMTP\n\
             EHLO before STARTTLS:\n  greeting: mx.example\n  PIPELINING\n  STARTTLS\n\
             TLS: TLSv1_3 TLS13_AES_128_GCM_SHA256\n\
             certificate:\n  malformed certificate: truncated\n  SHA-256: {fingerprint}\n  \
             verified: no\n\
             EHLO after TLS:\n  greeting: mx.example\n  PIPELINING\n  AUTH PLAIN LOGIN\n\
             AUTH: PLAIN LOGIN\n"
            )
        );
    }

    #[test]
    fn a_failed_handshake_is_not_shown_as_no_tls() {
        let report = ProbeReport::default();
        let tls_info = TlsInfo {
            description: None,
            certificate: None,
            verified: false,
            failure: Some("received fatal alert: InternalError".into()),
            policy: None,
        };
        let mut out = Vec::new();
        let addr = "192.0.2.1:25".parse().unwrap();
        write_serverinfo(
            &mut out,
            "mx.example",
            addr,
            &report,
            &tls_info,
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("TLS: offered, handshake failed: received fatal alert: InternalError\n"),
            "{text}"
        );
        assert!(!text.contains("TLS: none"), "{text}");
    }

    #[test]
    fn answers_are_printed_as_the_server_sent_them() {
        let report = ProbeReport {
            answers: vec![
                Answer {
                    query: Query::Vrfy("bob@example.org".into()),
                    reply: reply(252, &["2.0.0 Cannot VRFY user"]),
                },
                Answer {
                    query: Query::Help(None),
                    reply: reply(214, &["Commands:", "  HELO EHLO\x1b[2J"]),
                },
            ],
            ..ProbeReport::default()
        };
        let mut out = Vec::new();
        write_answers(&mut out, &report).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "VRFY bob@example.org\n  252 2.0.0 Cannot VRFY user\n\
             HELP\n  214-Commands:\n  214   HELO EHLO\\u{1b}[2J\n"
        );
    }
}
