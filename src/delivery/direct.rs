//! Direct delivery (no relay): each recipient domain's mail exchangers, in preference
//! order, like the client side of an MTA (RFC 5321 §5.1).
//!
//! A host that cannot be reached, or that greets with a 4xx, passes the message on to the
//! next one; an answer about the message itself (a 5xx at RCPT, a 4xx at end of data) is
//! final for this attempt, as it would be from any other exchanger of the domain.

use std::borrow::Cow;
use std::net::SocketAddr;

use crate::delivery::policy::host::{HostTls, Policies};
use crate::delivery::policy::mta_sts::{self, Cache, FetchSettings, Fetcher};
use crate::delivery::resolve::Resolver;
use crate::delivery::route::{Client, DirectSpec};
use crate::delivery::{self, Body, Delivered, Job, JobOutcome, Route, Timeouts};
use crate::error::Error;
use crate::message::input::Reopen;
use crate::smtp::{Envelope, MessageInfo, SessionError, SessionOptions, TraceLine};
use crate::transport::{PolicyUse, TlsMode, TlsSettings};

/// How direct delivery connects.
pub struct Direct {
    pub resolver: Resolver,
    /// 25, or `--mx-port` (a testing aid).
    pub port: u16,
    /// Opportunistic unless the user asks for `required` (then certificates are verified).
    pub tls: TlsMode,
    pub tls_settings: TlsSettings,
    pub timeouts: Timeouts,
    /// Domains whose exchangers must present a verified certificate (a per-domain policy
    /// like Postfix's `smtp_tls_policy_maps` with `verify`).
    pub verify_domains: Vec<String>,
    /// Show upload progress (when stderr is a terminal).
    pub progress: bool,
    /// The name for EHLO.
    pub ehlo: String,
    /// DANE and MTA-STS: the policies recipient domains publish.
    pub policies: Policies,
}

impl Direct {
    /// Direct delivery as `spec` describes it, with the run's timeouts. A DNS query waits
    /// at most the reply timeout (5 s by default), tried twice: a dead resolver costs
    /// seconds, not hickory's default of three 5 s tries per record type.
    pub fn new(spec: &DirectSpec, client: &Client) -> Result<Direct, Error> {
        let per_query = client
            .timeouts
            .command
            .map_or(std::time::Duration::from_secs(5), |t| {
                t.clamp(
                    std::time::Duration::from_secs(1),
                    std::time::Duration::from_secs(5),
                )
            });
        let resolver = resolver_of(spec, per_query)?;
        let policies = policies(spec, client, per_query)?;
        Ok(Direct {
            policies,
            resolver,
            port: spec.mx_port.unwrap_or(25),
            tls: spec.tls,
            tls_settings: TlsSettings {
                trust_file: spec.tls_trust_file.clone(),
                ..TlsSettings::default()
            },
            timeouts: client.timeouts.clone(),
            verify_domains: spec.verify_domains.clone(),
            progress: client.progress,
            ehlo: spec.ehlo.clone().unwrap_or_else(|| client.ehlo.clone()),
        })
    }
}

/// The resolver `spec` names (`--dns-server`, else the system's), each query waiting at
/// most `per_query`, tried twice.
fn resolver_of(spec: &DirectSpec, per_query: std::time::Duration) -> Result<Resolver, Error> {
    let resolver = match &spec.dns_server {
        Some(server) => Resolver::with_server(parse_dns_server(server)?)?,
        None => Resolver::system()?,
    };
    Ok(resolver.with_timeout(per_query, 2))
}

/// The published policies `spec` asks to honour. With `--tls off` only those required
/// (`require`, or listed domains, as `tls_verify_domains` still wins over it): the user
/// asked for no TLS elsewhere. DNSSEC is validated by a resolver of its own, asking the
/// same server.
fn policies(
    spec: &DirectSpec,
    client: &Client,
    per_query: std::time::Duration,
) -> Result<Policies, Error> {
    let unless_required = |use_: PolicyUse| match use_ {
        PolicyUse::On if spec.tls == TlsMode::Off => PolicyUse::Off,
        other => other,
    };
    let (dane, mta_sts) = (unless_required(spec.dane), unless_required(spec.mta_sts));
    let secure = match dane {
        PolicyUse::Off if spec.dane_domains.is_empty() => None,
        _ => Some(resolver_of(spec, per_query)?.with_dnssec(spec.dnssec_trust_anchor.as_deref())?),
    };
    let sts = match mta_sts {
        PolicyUse::Off if spec.mta_sts_domains.is_empty() => None,
        _ => {
            let fetcher = Fetcher::new(&FetchSettings {
                extra_trust: spec.mta_sts_trust_file.clone(),
                port: spec.mta_sts_port.unwrap_or(443),
                timeout: client
                    .timeouts
                    .command
                    .map_or(mta_sts::fetch::DEFAULT_TIMEOUT, |t| {
                        t.min(mta_sts::fetch::DEFAULT_TIMEOUT)
                    }),
            })?;
            // Without a place for it (no home, no state directory), nothing is cached:
            // each write fails and says so under -v.
            let dir = client
                .mta_sts_cache
                .clone()
                .unwrap_or_else(|| "/nonexistent/smtpsend/mta-sts".into());
            Some((fetcher, Cache::new(dir)))
        }
    };
    Ok(Policies {
        dane,
        mta_sts,
        dane_domains: spec.dane_domains.clone(),
        mta_sts_domains: spec.mta_sts_domains.clone(),
        secure,
        sts,
    })
}

impl Direct {
    /// The session options every message on this route starts from: no AUTH with
    /// someone else's exchangers.
    pub fn session_options(&self, client: &Client) -> SessionOptions {
        SessionOptions {
            ehlo_name: self.ehlo.clone(),
            pipelining: client.pipelining,
            trace: client.trace,
            ..SessionOptions::default()
        }
    }

    /// The route to exchanger `host` of `domain` at `addrs` with the TLS its policy
    /// gives: DANE, or a certificate verified for the host name (MTA-STS enforce, a
    /// domain the user wants verified, `--tls required`), else opportunistic.
    pub fn route_to(
        &self,
        host: &str,
        domain: &str,
        addrs: Vec<SocketAddr>,
        policy: HostTls,
    ) -> Route {
        let verify_domain = self
            .verify_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain));
        let (tls, label, dane) = match policy {
            HostTls::Dane(records) => (TlsMode::Required, "dane", Some(records)),
            HostTls::Enforced => (TlsMode::Required, "mta-sts enforce", None),
            HostTls::Configured(_) if verify_domain => {
                (TlsMode::Required, "verified (tls_verify_domains)", None)
            }
            HostTls::Configured(_) if self.tls == TlsMode::Off => (TlsMode::Off, "none", None),
            HostTls::Configured(_) if self.tls == TlsMode::Required => {
                (TlsMode::Required, "verified (--tls required)", None)
            }
            HostTls::Configured(label) => (self.tls, label, None),
        };
        Route {
            host: host.to_string(),
            port: self.port,
            addrs: Some(addrs),
            tls,
            tls_settings: TlsSettings {
                verify: tls == TlsMode::Required,
                ..self.tls_settings.clone()
            },
            timeouts: self.timeouts.clone(),
            progress: self.progress,
            dane,
            policy: Some(label.to_string()),
        }
    }
}

/// `IP` or `IP:PORT` (`[IPv6]:PORT`), port 53 by default.
pub fn parse_dns_server(text: &str) -> Result<SocketAddr, Error> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| Error::Usage(format!("--dns-server {text:?}: expected IP or IP:PORT")))
}

/// Recipients grouped by domain (case-insensitive), in order of first appearance: one
/// transaction per domain.
pub fn by_domain(recipients: &[String]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in recipients {
        let domain = r
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        match groups.iter_mut().find(|(d, _)| *d == domain) {
            Some((_, list)) => list.push(r.clone()),
            None => groups.push((domain, vec![r.clone()])),
        }
    }
    groups
}

/// Whether a failure with one exchanger lets the next one be tried: the host was not
/// reached, did not greet, or refused the connection for now.
fn try_next_host(e: &Error) -> bool {
    match e {
        Error::Network { .. } | Error::Tls { .. } | Error::NoHost { .. } => true,
        Error::Session { error, .. } => match error {
            SessionError::Refused { command, reply, .. } => {
                reply.is_transient()
                    && (command == "connection greeting" || command.starts_with("EHLO"))
            }
            SessionError::Closed(command) => {
                command == "connection greeting" || command.starts_with("EHLO")
            }
            SessionError::TlsUnavailable(_) => true,
            _ => false,
        },
        _ => false,
    }
}

/// Deliver to `domain`'s exchangers; `message` is read from its start for each attempt.
pub fn deliver_domain(
    direct: &Direct,
    domain: &str,
    envelope: &Envelope,
    opts: &SessionOptions,
    message: &mut dyn Reopen,
    dot_ends_input: bool,
    trace: &mut dyn FnMut(&TraceLine),
) -> Result<Delivered, Error> {
    each_exchanger(direct, domain, trace, &mut |route, trace| {
        let (head, mut rest) = match message.reopen() {
            Ok(x) => x,
            Err(e) => return Tried::NoMessage(e),
        };
        match delivery::deliver(
            route,
            envelope.clone(),
            opts.clone(),
            Body {
                head: Cow::Borrowed(head),
                rest: &mut rest,
                dot_ends_input,
            },
            trace,
        ) {
            Ok(d) => Tried::Done(d),
            Err(e) => Tried::Failed(e),
        }
    })
}

/// `--check` with `domain`: its exchangers in preference order, each rehearsed
/// ([`delivery::rehearse`]) until one answers as a send would stop at, the next tried
/// when one cannot be reached or does not greet. `step` is told which exchanger each
/// step is with.
pub fn rehearse_domain(
    direct: &Direct,
    domain: &str,
    from: &str,
    opts: &SessionOptions,
    trace: &mut dyn FnMut(&TraceLine),
    step: &mut dyn FnMut(&Route, delivery::RehearsalStep<'_, '_>),
) -> Result<(), Error> {
    each_exchanger(
        direct,
        domain,
        trace,
        &mut |route, trace| match delivery::rehearse(route, from, opts.clone(), trace, &mut |s| {
            step(route, s)
        }) {
            Ok(_) => Tried::Done(()),
            Err(e) => Tried::Failed(e),
        },
    )
}

/// One message of a batch for a domain's exchangers.
pub struct DomainJob<'a> {
    pub envelope: Envelope,
    pub info: MessageInfo,
    pub message: &'a mut dyn Reopen,
    pub dot_ends_input: bool,
}

/// Deliver several messages to `domain` over one connection to its first exchanger that
/// takes them (a queue run), pipelined as [`delivery::deliver_batch`] does. An exchanger
/// that cannot be reached, does not greet or fails before the first outcome passes the
/// whole batch to the next; once one has answered for a message, outcomes go to `outcome`
/// (by index, with the exchanger's name) as they come, and what the connection did not get
/// to waits for the next run.
/// Returns the host that answered.
pub fn deliver_domain_batch(
    direct: &Direct,
    domain: &str,
    opts: &SessionOptions,
    jobs: &mut [DomainJob<'_>],
    trace: &mut dyn FnMut(&TraceLine),
    outcome: &mut dyn FnMut(usize, &str, JobOutcome),
) -> Result<String, Error> {
    each_exchanger(direct, domain, trace, &mut |route, trace| {
        let described: Vec<(Envelope, MessageInfo, bool)> = jobs
            .iter()
            .map(|job| (job.envelope.clone(), job.info.clone(), job.dot_ends_input))
            .collect();
        let mut opened = Vec::with_capacity(jobs.len());
        for job in jobs.iter_mut() {
            match job.message.reopen() {
                Ok(x) => opened.push(x),
                Err(e) => return Tried::NoMessage(e),
            }
        }
        let batch: Vec<Job<'_>> = described
            .into_iter()
            .zip(opened.iter_mut())
            .map(|((envelope, info, dot_ends_input), (head, rest))| Job {
                envelope,
                info,
                body: Body {
                    head: Cow::Borrowed(*head),
                    rest,
                    dot_ends_input,
                },
            })
            .collect();
        // Until the first outcome, a failure is the exchanger's, not a message's.
        let mut answered = false;
        let mut host_failure: Option<Error> = None;
        let result = delivery::deliver_batch(
            route,
            opts.clone(),
            batch,
            trace,
            &mut |i, o| {
                if !answered && host_failure.is_none() {
                    let failure = match &o {
                        JobOutcome::NotAttempted(why) => {
                            Some(JobOutcome::not_attempted_error(&route.host, why))
                        }
                        JobOutcome::Failed(error) => Some(Error::Session {
                            host: route.host.clone(),
                            error: error.clone(),
                        })
                        .filter(try_next_host),
                        JobOutcome::Delivered(..) => None,
                    };
                    match failure {
                        Some(e) => host_failure = Some(e),
                        None => answered = true,
                    }
                }
                if answered {
                    outcome(i, &route.host, o);
                }
            },
            &mut || {},
        );
        match (result, host_failure) {
            (Err(e), _) | (Ok(()), Some(e)) => Tried::Failed(e),
            (Ok(()), None) => Tried::Done(route.host.clone()),
        }
    })
}

/// One try of one exchanger, with the trace to write to.
type Attempt<'a, T> = dyn FnMut(&Route, &mut dyn FnMut(&TraceLine)) -> Tried<T> + 'a;

/// What one exchanger made of an attempt.
enum Tried<T> {
    Done(T),
    Failed(Error),
    /// The message cannot be read again: the previous exchanger's failure (or this) is final.
    NoMessage(Error),
}

/// Try `domain`'s exchangers in preference order with `attempt`, which is handed a route
/// to each; the next is tried when one cannot be reached or does not greet
/// ([`try_next_host`]). The last failure is returned when none would do.
fn each_exchanger<T>(
    direct: &Direct,
    domain: &str,
    trace: &mut dyn FnMut(&TraceLine),
    attempt: &mut Attempt<'_, T>,
) -> Result<T, Error> {
    let plan = direct.policies.domain(&direct.resolver, domain, trace)?;
    let hosts = &plan.hosts;
    trace(&TraceLine {
        client: true,
        text: format!(
            "mail exchangers for {domain}: {}",
            hosts
                .iter()
                .map(|h| if h.implicit {
                    format!("{} (implicit, no MX)", h.name)
                } else {
                    format!("{} ({})", h.name, h.preference)
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });
    let mut last = None;
    for host in hosts {
        let (addrs, policy) = match direct.policies.host(&direct.resolver, &plan, host, domain) {
            Ok((ips, policy)) => (
                ips.into_iter()
                    .map(|ip| SocketAddr::new(ip, direct.port))
                    .collect(),
                policy,
            ),
            Err(e) => {
                trace(&TraceLine {
                    client: true,
                    text: format!("{}: {e}; trying the next exchanger", host.name),
                });
                last = Some(e);
                continue;
            }
        };
        trace(&TraceLine {
            client: true,
            text: format!("{}: TLS policy {}", host.name, policy.describe()),
        });
        let route = direct.route_to(&host.name, domain, addrs, policy);
        match attempt(&route, trace) {
            Tried::Done(done) => return Ok(done),
            Tried::Failed(e) if try_next_host(&e) => {
                trace(&TraceLine {
                    client: true,
                    text: format!("{e}; trying the next exchanger"),
                });
                last = Some(e);
            }
            Tried::Failed(e) => return Err(e),
            Tried::NoMessage(e) => return Err(last.unwrap_or(e)),
        }
    }
    Err(last.unwrap_or_else(|| Error::NoHost {
        host: domain.to_string(),
        detail: "no mail exchanger to try".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::Reply;

    #[test]
    fn recipients_are_grouped_by_domain() {
        let g = by_domain(&[
            "a@One.test".into(),
            "b@two.test".into(),
            "c@one.TEST".into(),
        ]);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].0, "one.test");
        assert_eq!(g[0].1, vec!["a@One.test", "c@one.TEST"]);
        assert_eq!(g[1].1, vec!["b@two.test"]);
    }

    fn refused(command: &str, code: u16) -> Error {
        Error::Session {
            host: "mx".into(),
            error: SessionError::Refused {
                command: command.into(),
                reply: Reply {
                    code,
                    lines: vec!["x".into()],
                },
                at_rcpt: false,
            },
        }
    }

    #[test]
    fn which_failures_move_on_to_the_next_exchanger() {
        assert!(try_next_host(&Error::network(
            "mx",
            "connect to 192.0.2.1:25",
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused)
        )));
        assert!(try_next_host(&refused("connection greeting", 421)));
        assert!(try_next_host(&refused("EHLO x", 451)));
        assert!(!try_next_host(&refused("connection greeting", 554)));
        assert!(!try_next_host(&refused("MAIL FROM:<a@b>", 451)));
        assert!(!try_next_host(&refused("end of DATA", 451)));
    }
}
