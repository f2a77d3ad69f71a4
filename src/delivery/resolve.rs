//! Where mail for a domain goes: MX, A and AAAA lookups for direct delivery
//! (RFC 5321 §5.1, RFC 7505), with hickory-resolver.
//!
//! The API is synchronous. The tokio runtime and the hickory resolver are built on the first
//! lookup, so a run that relays through a smarthost (or delivers to an address literal) pays
//! nothing for them. Answers, failures included, are kept for the rest of the run: a domain
//! or host is asked once however many recipients share it.
//!
//! These are DNS lookups only: `/etc/hosts` is not consulted, as RFC 5321 §5.1 is about DNS
//! records (the relay route, which is not, goes through the system's `getaddrinfo`).
//!
//! A resolver made with [`Resolver::with_dnssec`] validates every answer (RFC 4035 §5) and
//! says which are secure, as DANE for SMTP needs (RFC 7672 §2.1): the `*_secured` lookups and
//! [`Resolver::tlsa`]. A bogus answer is then a temporary failure, never data.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::pin::pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::dnssec::rdata::{DNSSECRData, NSEC, NSEC3};
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_resolver::proto::serialize::txt::trust_anchor;

use crate::delivery::policy::tlsa::Tlsa;
use crate::error::{Error, Result};

/// One host to try for a domain, in the order [`Resolver::mail_hosts`] returns them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailHost {
    /// The host name in A-label form, without the trailing dot; for an address literal, the
    /// literal as given (`[192.0.2.1]`).
    pub name: String,
    pub preference: u16,
    /// No MX records: the domain itself is the mail host (RFC 5321 §5.1 "implicit MX").
    pub implicit: bool,
}

/// What DNSSEC says of an answer (RFC 4035 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Validated along a chain of signed DNSKEY and DS records from a trust anchor.
    Secure,
    /// Not validated: the zone is proven unsigned, or the resolver does not validate. (Bogus
    /// and indeterminate answers are never data: they are temporary failures.)
    Insecure,
}

/// An answer and what DNSSEC says of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secured<T> {
    pub value: T,
    pub security: Security,
}

impl<T> Secured<T> {
    pub fn is_secure(&self) -> bool {
        self.security == Security::Secure
    }

    fn insecure(value: T) -> Secured<T> {
        Secured {
            value,
            security: Security::Insecure,
        }
    }
}

/// A DNS resolver for one run of smtpsend.
pub struct Resolver {
    config: ResolverConfig,
    opts: ResolverOpts,
    /// The DNSSEC trust anchors when this resolver validates.
    trust_anchor: Option<Arc<TrustAnchors>>,
    live: OnceLock<Live>,
    mx_cache: Mutex<HashMap<String, Cached<Secured<MxAnswer>>>>,
    addr_cache: Mutex<HashMap<String, Cached<Secured<Addresses>>>>,
    tlsa_cache: Mutex<HashMap<String, Cached<Secured<Vec<Tlsa>>>>>,
    txt_cache: Mutex<HashMap<String, Cached<Vec<TxtRecord>>>>,
    /// [`Resolver::dnssec_available`], once known.
    dnssec_works: OnceLock<bool>,
}

/// A host's addresses, and the name they belong to when the host name is an alias.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addresses {
    /// IPv6 first, then IPv4.
    pub ips: Vec<IpAddr>,
    /// The fully CNAME-expanded name (lower-case, no trailing dot) when the host name
    /// led through CNAMEs to the addresses and every family that answered agrees on it:
    /// where RFC 7672 §2.2.2 looks for TLSA records first.
    pub expanded: Option<String>,
}

/// One TXT record: its character-strings in order (RFC 1035 §3.3.14). What they mean
/// together is the caller's: RFC 8461 §3.1 and RFC 7208 §3.3 concatenate them.
pub type TxtRecord = Vec<Vec<u8>>;

/// Built on the first lookup. `dns` is declared first so it is dropped before the runtime
/// its connections live on.
struct Live {
    dns: TokioResolver,
    runtime: tokio::runtime::Runtime,
}

impl Resolver {
    /// The system's resolv.conf (read now; nothing is sent until the first lookup).
    ///
    /// An unreadable configuration is a temporary failure: mail waits rather than bounces.
    pub fn system() -> Result<Resolver> {
        let (config, opts) = hickory_resolver::system_conf::read_system_conf().map_err(|e| {
            Error::TempFail(format!("cannot read the system's DNS configuration: {e}"))
        })?;
        Ok(Resolver::new(config, opts))
    }

    /// A specific server (tests, `--dns-server IP[:PORT]`): UDP, then TCP for a truncated
    /// answer (RFC 1035 §4.2.1).
    pub fn with_server(addr: SocketAddr) -> Result<Resolver> {
        let mut udp = ConnectionConfig::udp();
        udp.port = addr.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = addr.port();
        let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
        let config = ResolverConfig::from_parts(None, Vec::new(), vec![server]);
        Ok(Resolver::new(config, ResolverOpts::default()))
    }

    fn new(config: ResolverConfig, mut opts: ResolverOpts) -> Resolver {
        opts.use_hosts_file = ResolveHosts::Never;
        Resolver {
            config,
            opts,
            trust_anchor: None,
            live: OnceLock::new(),
            mx_cache: Mutex::new(HashMap::new()),
            addr_cache: Mutex::new(HashMap::new()),
            tlsa_cache: Mutex::new(HashMap::new()),
            txt_cache: Mutex::new(HashMap::new()),
            dnssec_works: OnceLock::new(),
        }
    }

    /// Validate every answer with DNSSEC (RFC 4035 §5), from the trust anchors in
    /// `trust_anchor` or, with `None`, from the IANA root zone's key-signing keys (KSK-2017
    /// and KSK-2024, built into hickory). The file holds DNSKEY records in zone-file form, one
    /// a line (`. IN DNSKEY 257 3 8 AwEAA…`), for the root or for any zone (an island of
    /// security); hickory reads no DS records there.
    ///
    /// Errors: an unreadable file, or one without a DNSKEY record → [`Error::Config`].
    pub fn with_dnssec(mut self, trust_anchor: Option<&Path>) -> Result<Resolver> {
        let anchors = match trust_anchor {
            None => TrustAnchors::default(),
            Some(path) => read_trust_anchors(path)?,
        };
        self.trust_anchor = Some(Arc::new(anchors));
        self.opts.validate = true;
        self.live = OnceLock::new();
        Ok(self)
    }

    /// Whether answers are validated with DNSSEC ([`Resolver::with_dnssec`]).
    pub fn validates(&self) -> bool {
        self.trust_anchor.is_some()
    }

    /// Whether this validating resolver can be given validated answers at all: the root
    /// zone's DNSKEY RRset checks out against the trust anchor. An answer that does not (a
    /// server that strips signatures, or that serves only its own zones: a test's, a
    /// private one without a trust anchor for it) means it cannot, for the rest of the
    /// run. No answer (a timeout, SERVFAIL) proves nothing: a temporary failure, asked
    /// again next time, so that dropping one query cannot turn DANE off.
    pub fn dnssec_available(&self) -> Result<bool> {
        if !self.validates() {
            return Ok(false);
        }
        if let Some(known) = self.dnssec_works.get() {
            return Ok(*known);
        }
        let live = self.live()?;
        let result = live
            .runtime
            .block_on(live.dns.lookup(Name::root(), RecordType::DNSKEY));
        let unanswered = matches!(
            &result,
            Err(NetError::Timeout)
                | Err(NetError::Dns(DnsError::ResponseCode(
                    ResponseCode::ServFail
                )))
        );
        if unanswered {
            return Err(Error::network_text(
                "DNSSEC",
                "the root zone's keys could not be fetched (no answer); DANE cannot be \
                 ruled out",
            ));
        }
        let works = matches!(classify(result, true), Outcome::Found(_, Security::Secure));
        let _ = self.dnssec_works.set(works);
        Ok(works)
    }

    /// Wait at most `timeout` for an answer, and ask `attempts` times in all (at least once)
    /// before giving up with a temporary failure.
    pub fn with_timeout(mut self, timeout: Duration, attempts: usize) -> Resolver {
        self.opts.timeout = timeout;
        // hickory counts retries after the first query.
        self.opts.attempts = attempts.max(1) - 1;
        self.live = OnceLock::new();
        self
    }

    /// The mail exchangers for `domain`, in the order to try them (RFC 5321 §5.1): by MX
    /// preference, hosts of equal preference in random order, or the domain itself when it
    /// has no MX records but has an address. An address literal is its own single host.
    ///
    /// Errors: no such domain → [`Error::NoHost`]; a null MX (RFC 7505) →
    /// [`Error::Unavailable`]; a DNS failure or timeout → [`Error::Network`].
    pub fn mail_hosts(&self, domain: &str) -> Result<Vec<MailHost>> {
        self.mail_hosts_secured(domain).map(|hosts| hosts.value)
    }

    /// [`Resolver::mail_hosts`], and whether the MX RRset (or, for the implicit MX, the
    /// denial that there is one) is secure (RFC 7672 §2.2.1). An address literal is insecure:
    /// no DNS vouches for it.
    ///
    /// Errors as [`Resolver::mail_hosts`]; a bogus or indeterminate answer of a validating
    /// resolver is a temporary failure, [`Error::Network`] (RFC 7672 §2.1.1).
    pub fn mail_hosts_secured(&self, domain: &str) -> Result<Secured<Vec<MailHost>>> {
        let shown = display_name(domain);
        if address_literal(domain).is_some() {
            return Ok(Secured::insecure(vec![MailHost {
                name: shown.to_string(),
                preference: 0,
                implicit: true,
            }]));
        }
        let name = dns_name(domain)?;
        let key = key_of(&name);
        let answer = self.cached(&self.mx_cache, &key, || self.ask_mx(&name))?;
        let Secured { value, security } = answer.map_err(|f| f.into_error(shown, "MX"))?;
        let hosts = match value {
            MxAnswer::Hosts(hosts) => order(hosts),
            MxAnswer::NullMx => {
                return Err(Error::Unavailable(format!(
                    "{shown} does not accept mail (null MX, RFC 7505)"
                )));
            }
            MxAnswer::None => {
                // RFC 5321 §5.1: the implicit MX must have an address, or it is an error.
                self.addresses(&key)?;
                vec![MailHost {
                    name: key,
                    preference: 0,
                    implicit: true,
                }]
            }
        };
        Ok(Secured {
            value: hosts,
            security,
        })
    }

    /// The addresses of `host`: AAAA then A, both asked at once and both kept, so a client
    /// can fall back from IPv6 to IPv4 (RFC 5321 §5.1 on multihomed hosts). CNAMEs are
    /// followed. An address literal is returned without asking anyone.
    ///
    /// Errors: neither A nor AAAA, or no such host → [`Error::NoHost`]; a DNS failure or
    /// timeout with no address found → [`Error::Network`].
    pub fn addresses(&self, host: &str) -> Result<Vec<IpAddr>> {
        self.addresses_secured(host).map(|addrs| addrs.value.ips)
    }

    /// [`Resolver::addresses`], and whether they are secure: every family that answered
    /// (with addresses or a denial) answered securely. RFC 7672 §2.2.2: only a host whose
    /// addresses are secure has its TLSA records looked up.
    pub fn addresses_secured(&self, host: &str) -> Result<Secured<Addresses>> {
        if let Some(ip) = address_literal(host) {
            return Ok(Secured::insecure(Addresses {
                ips: vec![ip],
                expanded: None,
            }));
        }
        let shown = display_name(host);
        let name = dns_name(host)?;
        let key = key_of(&name);
        self.cached(&self.addr_cache, &key, || self.ask_addresses(&name))?
            .map_err(|failure| failure.into_error(shown, "A/AAAA"))
    }

    /// The TLSA records for SMTP to `host` on `port`, at `_PORT._tcp.HOST` (RFC 6698 §3,
    /// RFC 7672 §2.2.3), and whether they are secure. No such name and no TLSA records (NXDOMAIN,
    /// NODATA) are an empty set, secure when the denial is. An address literal has none.
    ///
    /// Errors: SERVFAIL, a timeout, or a bogus or indeterminate answer → [`Error::Network`]
    /// (exit 75): RFC 7672 §2.2.3 has the client skip such a host, never treat it as
    /// unauthenticated.
    pub fn tlsa(&self, host: &str, port: u16) -> Result<Secured<Vec<Tlsa>>> {
        if address_literal(host).is_some() {
            return Ok(Secured::insecure(Vec::new()));
        }
        let shown = display_name(host);
        let invalid = |e: hickory_resolver::proto::ProtoError| Error::NoHost {
            host: shown.to_string(),
            detail: format!("not a valid domain name: {e}"),
        };
        let name = dns_name(host)?
            .prepend_label("_tcp")
            .and_then(|n| n.prepend_label(format!("_{port}")))
            .map_err(invalid)?;
        let key = key_of(&name);
        self.cached(&self.tlsa_cache, &key, || self.ask_tlsa(&name))?
            .map_err(|failure| failure.into_error(shown, "TLSA"))
    }

    /// The TXT records at `name` (CNAMEs followed), for policy discovery such as RFC 8461
    /// §3.1. A name that does not exist or has no TXT record has none: that is an answer,
    /// not a failure.
    ///
    /// Errors: a DNS failure or timeout → [`Error::Network`]; an invalid name →
    /// [`Error::NoHost`].
    pub fn txt(&self, name: &str) -> Result<Vec<TxtRecord>> {
        let shown = display_name(name);
        let name = dns_name(name)?;
        let key = key_of(&name);
        match self.cached(&self.txt_cache, &key, || self.ask_txt(&name))? {
            Ok(records) => Ok(records),
            Err(failure) => Err(failure.into_error(shown, "TXT")),
        }
    }

    /// The cached answer for `key`, or `ask()`'s, which is then cached.
    fn cached<T: Clone>(
        &self,
        cache: &Mutex<HashMap<String, Cached<T>>>,
        key: &str,
        ask: impl FnOnce() -> Result<Cached<T>>,
    ) -> Result<Cached<T>> {
        if let Some(hit) = lock(cache).get(key) {
            return Ok(hit.clone());
        }
        let answer = ask()?;
        lock(cache).insert(key.to_string(), answer.clone());
        Ok(answer)
    }

    fn live(&self) -> Result<&Live> {
        if let Some(live) = self.live.get() {
            return Ok(live);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::TempFail(format!("cannot start the DNS resolver: {e}")))?;
        let dns = {
            let _context = runtime.enter();
            let mut builder = TokioResolver::builder_with_config(
                self.config.clone(),
                TokioRuntimeProvider::default(),
            )
            .with_options(self.opts.clone());
            if let Some(anchors) = &self.trust_anchor {
                builder = builder.with_trust_anchor(anchors.clone());
            }
            builder
                .build()
                .map_err(|e| Error::TempFail(format!("cannot start the DNS resolver: {e}")))?
        };
        // Another thread may have won the race; either value will do.
        let _ = self.live.set(Live { dns, runtime });
        self.live
            .get()
            .ok_or_else(|| Error::Internal("DNS resolver not initialised".into()))
    }

    fn ask_mx(&self, name: &Name) -> Result<Cached<Secured<MxAnswer>>> {
        let live = self.live()?;
        let result = live
            .runtime
            .block_on(live.dns.lookup(name.clone(), RecordType::MX));
        Ok(match classify(result, self.validates()) {
            Outcome::Found(lookup, security) => Ok(Secured {
                value: mx_answer(&lookup),
                security,
            }),
            Outcome::NoData(security) => Ok(Secured {
                value: MxAnswer::None,
                security,
            }),
            Outcome::NxDomain(_) => Err(Failure::NxDomain),
            Outcome::Failed(detail) => Err(Failure::Temporary(detail)),
        })
    }

    fn ask_txt(&self, name: &Name) -> Result<Cached<Vec<TxtRecord>>> {
        let live = self.live()?;
        let result = live
            .runtime
            .block_on(live.dns.lookup(name.clone(), RecordType::TXT));
        Ok(match classify(result, self.validates()) {
            Outcome::Found(lookup, _) => Ok(txt_records(&lookup)),
            Outcome::NoData(_) | Outcome::NxDomain(_) => Ok(Vec::new()),
            Outcome::Failed(detail) => Err(Failure::Temporary(detail)),
        })
    }

    fn ask_addresses(&self, name: &Name) -> Result<Cached<Secured<Addresses>>> {
        let live = self.live()?;
        let (v6, v4) = live.runtime.block_on(both(
            live.dns.lookup(name.clone(), RecordType::AAAA),
            live.dns.lookup(name.clone(), RecordType::A),
        ));
        let validates = self.validates();
        Ok(combine_addresses(
            name,
            classify(v6, validates),
            classify(v4, validates),
        ))
    }

    fn ask_tlsa(&self, name: &Name) -> Result<Cached<Secured<Vec<Tlsa>>>> {
        let live = self.live()?;
        let result = live
            .runtime
            .block_on(live.dns.lookup(name.clone(), RecordType::TLSA));
        Ok(match classify(result, self.validates()) {
            Outcome::Found(lookup, security) => Ok(Secured {
                value: tlsa_records(&lookup),
                security,
            }),
            Outcome::NoData(security) | Outcome::NxDomain(security) => Ok(Secured {
                value: Vec::new(),
                security,
            }),
            Outcome::Failed(detail) => Err(Failure::Temporary(detail)),
        })
    }
}

/// The DNSKEY records of a trust anchor file, for [`Resolver::with_dnssec`].
fn read_trust_anchors(path: &Path) -> Result<TrustAnchors> {
    let bad = |detail: String| {
        Error::Config(format!(
            "DNSSEC trust anchor file {}: {detail}",
            path.display()
        ))
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let entries = trust_anchor::Parser::new(text.as_str())
        .parse()
        .map_err(|e| bad(e.to_string()))?;
    let mut anchors = TrustAnchors::empty();
    let mut keys = 0;
    for entry in entries {
        let trust_anchor::Entry::DNSKEY(record) = entry else {
            continue;
        };
        anchors.insert_with_name(record.data().public_key(), LowerName::new(record.name()));
        keys += 1;
    }
    if keys == 0 {
        return Err(bad("no DNSKEY record".into()));
    }
    Ok(anchors)
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3); `None` for anything else,
/// including the general address literal (`[tag:content]`), which has no defined routing.
pub fn address_literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    if let Some(v6) = inner
        .get(..5)
        .filter(|tag| tag.eq_ignore_ascii_case("IPv6:"))
        .and_then(|_| inner.get(5..))
    {
        return v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    inner.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// What an MX query said, before ordering.
#[derive(Clone, Debug, PartialEq, Eq)]
enum MxAnswer {
    /// (preference, host) pairs, each host once with its best preference.
    Hosts(Vec<(u16, String)>),
    /// No MX records (NOERROR, no data): the implicit MX applies.
    None,
    /// `MX 0 .` (RFC 7505 §3).
    NullMx,
}

/// An answer or a failure, kept for the rest of the run.
type Cached<T> = std::result::Result<T, Failure>;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Failure {
    /// NXDOMAIN: the name does not exist (permanent).
    NxDomain,
    /// The name exists but has no address (permanent).
    NoAddress,
    /// SERVFAIL, REFUSED, a timeout, a network error: try again later.
    Temporary(String),
}

impl Failure {
    fn into_error(self, host: &str, what: &str) -> Error {
        let host = host.to_string();
        match self {
            Failure::NxDomain => Error::NoHost {
                host,
                detail: "no such domain (DNS NXDOMAIN)".into(),
            },
            Failure::NoAddress => Error::NoHost {
                host,
                detail: "host has no A or AAAA record".into(),
            },
            Failure::Temporary(detail) => {
                Error::network_text(host, format!("DNS {what} lookup: {detail}"))
            }
        }
    }
}

/// One query's result in the terms that decide delivery, with what DNSSEC said of it.
#[derive(Debug)]
enum Outcome {
    Found(Lookup, Security),
    NoData(Security),
    NxDomain(Security),
    Failed(String),
}

/// hickory's answer in delivery's terms. `validating`: the answer went through hickory's
/// DNSSEC validation, so each record carries its proof; otherwise everything is insecure.
fn classify(result: std::result::Result<Lookup, NetError>, validating: bool) -> Outcome {
    let judged = |records: &[Record], negative: bool| {
        if validating {
            judge(records, negative)
        } else {
            Ok(Security::Insecure)
        }
    };
    match result {
        Ok(lookup) => match judged(lookup.answers(), false) {
            Ok(security) => Outcome::Found(lookup, security),
            Err(detail) => Outcome::Failed(detail),
        },
        Err(NetError::Dns(DnsError::NoRecordsFound(NoRecords {
            response_code,
            authorities,
            ..
        }))) => {
            let security = match judged(authorities.as_deref().unwrap_or_default(), true) {
                Ok(security) => security,
                Err(detail) => return Outcome::Failed(detail),
            };
            negative(response_code, security)
        }
        // hickory reports a negative answer it proved insecure, or could not judge, as an
        // error carrying the proof (a bogus one becomes DnssecBogus).
        Err(NetError::Dns(DnsError::Nsec {
            response, proof, ..
        })) => match proof {
            Proof::Insecure => negative(response.response_code, Security::Insecure),
            proof => Outcome::Failed(format!("DNSSEC: denial of existence is {proof}")),
        },
        Err(NetError::Dns(DnsError::DnssecBogus)) => {
            Outcome::Failed("DNSSEC validation failed (bogus answer)".into())
        }
        Err(NetError::Dns(DnsError::ResponseCode(code))) => Outcome::Failed(describe_rcode(code)),
        Err(NetError::Timeout) => Outcome::Failed("timed out".into()),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn negative(code: ResponseCode, security: Security) -> Outcome {
    match code {
        ResponseCode::NXDomain => Outcome::NxDomain(security),
        ResponseCode::NoError => Outcome::NoData(security),
        code => Outcome::Failed(describe_rcode(code)),
    }
}

/// What hickory's validation proved of these records (RFC 4035 §4.3): bogus or indeterminate
/// is a failure (RFC 7672 §2.1.1); secure when every record is. For a `negative` answer the
/// records are the authority section, secure when a secure NSEC or NSEC3 record proves the
/// denial (hickory has checked that it does).
fn judge(records: &[Record], negative: bool) -> std::result::Result<Security, String> {
    let mut all_secure = true;
    let mut secure_denial = false;
    for record in records {
        if record.record_type() == RecordType::RRSIG {
            // Only the signature that validated carries the proof.
            continue;
        }
        match record.proof {
            Proof::Secure => {
                secure_denial |= matches!(
                    record.data,
                    RData::DNSSEC(
                        DNSSECRData::NSEC(NSEC { .. }) | DNSSECRData::NSEC3(NSEC3 { .. })
                    )
                );
            }
            Proof::Insecure => all_secure = false,
            Proof::Bogus => return Err("DNSSEC validation failed (bogus answer)".into()),
            Proof::Indeterminate => {
                return Err("DNSSEC validation failed (indeterminate answer)".into());
            }
        }
    }
    let secure = if negative {
        secure_denial
    } else {
        all_secure && !records.is_empty()
    };
    Ok(if secure {
        Security::Secure
    } else {
        Security::Insecure
    })
}

fn describe_rcode(code: ResponseCode) -> String {
    match code {
        ResponseCode::ServFail => "server failure (SERVFAIL)".into(),
        ResponseCode::Refused => "query refused (REFUSED)".into(),
        code => format!("error response: {code} ({})", u16::from(code)),
    }
}

fn mx_answer(lookup: &Lookup) -> MxAnswer {
    let mut hosts: Vec<(u16, String)> = Vec::new();
    for record in lookup.answers() {
        let RData::MX(mx) = &record.data else {
            continue;
        };
        // RFC 7505 §3: an exchange of "." (the null MX) says the domain takes no mail;
        // with other records beside it the domain is misconfigured, and "." still names no
        // host, so the owner's "no mail" is what we honour.
        if mx.exchange.is_root() {
            return MxAnswer::NullMx;
        }
        let host = key_of(&mx.exchange);
        match hosts.iter_mut().find(|(_, h)| *h == host) {
            Some(seen) => seen.0 = seen.0.min(mx.preference),
            None => hosts.push((mx.preference, host)),
        }
    }
    if hosts.is_empty() {
        MxAnswer::None
    } else {
        MxAnswer::Hosts(hosts)
    }
}

fn txt_records(lookup: &Lookup) -> Vec<TxtRecord> {
    lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(txt.txt_data.iter().map(|s| s.to_vec()).collect()),
            _ => None,
        })
        .collect()
}

/// `domain` as DNS names it, for keys and file names: lower-case A-labels without the
/// trailing dot (`Bücher.Example.` → `xn--bcher-kva.example`).
///
/// Errors: not a valid domain name → [`Error::NoHost`].
pub fn ascii_domain(domain: &str) -> Result<String> {
    Ok(key_of(&dns_name(domain)?))
}

/// By preference, lowest first; hosts of equal preference shuffled (RFC 5321 §5.1: "the
/// sender-SMTP MUST randomize them to spread the load").
fn order(hosts: Vec<(u16, String)>) -> Vec<MailHost> {
    let mut hosts: Vec<MailHost> = hosts
        .into_iter()
        .map(|(preference, name)| MailHost {
            name,
            preference,
            implicit: false,
        })
        .collect();
    // The key is computed once per host: a key that changed between comparisons would not
    // be a total order.
    hosts.sort_by_cached_key(|h| (h.preference, random()));
    hosts
}

/// A random number from std's per-process random hash keys; good enough to spread load,
/// without a dependency.
fn random() -> u64 {
    RandomState::new().hash_one(0u8)
}

/// AAAA and A results together: every address found, IPv6 first. A failure of one family
/// does not hide the other's addresses; with none, a temporary failure outranks "no such
/// host", which would bounce the mail. Secure when every family that answered did so
/// securely: a failed family cannot make the addresses look insecure, and so switch DANE off.
fn combine_addresses(asked: &Name, v6: Outcome, v4: Outcome) -> Cached<Secured<Addresses>> {
    let mut addrs = Vec::new();
    // The owner names of the address records, per family that has some.
    let mut owners: Vec<String> = Vec::new();
    let mut failed = None;
    let mut nxdomain = 0;
    let mut security = Security::Secure;
    for outcome in [v6, v4] {
        match outcome {
            Outcome::Found(lookup, answered) => {
                let mut owner = None;
                for record in lookup.answers() {
                    match &record.data {
                        RData::AAAA(a) => addrs.push(IpAddr::V6(a.0)),
                        RData::A(a) => addrs.push(IpAddr::V4(a.0)),
                        _ => continue,
                    }
                    owner.get_or_insert_with(|| key_of(&record.name));
                }
                owners.extend(owner);
                security = weaker(security, answered);
            }
            Outcome::NoData(answered) => security = weaker(security, answered),
            Outcome::NxDomain(answered) => {
                nxdomain += 1;
                security = weaker(security, answered);
            }
            Outcome::Failed(detail) => {
                failed.get_or_insert(detail);
            }
        }
    }
    if !addrs.is_empty() {
        // hickory answers each query with its own type, but keep the promise regardless.
        addrs.sort_by_key(|a| a.is_ipv4());
        owners.dedup();
        let expanded = match owners.as_slice() {
            [one] if *one != key_of(asked) => Some(one.clone()),
            _ => None,
        };
        return Ok(Secured {
            value: Addresses {
                ips: addrs,
                expanded,
            },
            security,
        });
    }
    match failed {
        Some(detail) => Err(Failure::Temporary(detail)),
        None if nxdomain == 2 => Err(Failure::NxDomain),
        None => Err(Failure::NoAddress),
    }
}

/// Secure only if both are.
fn weaker(a: Security, b: Security) -> Security {
    if a == Security::Secure && b == Security::Secure {
        Security::Secure
    } else {
        Security::Insecure
    }
}

/// The TLSA records of an answer (RFC 6698 §2.1), in the order the server gave them.
fn tlsa_records(lookup: &Lookup) -> Vec<Tlsa> {
    lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::TLSA(t) => Some(Tlsa::new(
                t.cert_usage.into(),
                t.selector.into(),
                t.matching.into(),
                t.cert_data.clone(),
            )),
            _ => None,
        })
        .collect()
}

/// Run two futures on the current task until both are done.
async fn both<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let mut out_a = None;
    let mut out_b = None;
    std::future::poll_fn(|cx| {
        if out_a.is_none() {
            out_a = match a.as_mut().poll(cx) {
                Poll::Ready(v) => Some(v),
                Poll::Pending => None,
            };
        }
        if out_b.is_none() {
            out_b = match b.as_mut().poll(cx) {
                Poll::Ready(v) => Some(v),
                Poll::Pending => None,
            };
        }
        match (out_a.take(), out_b.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                out_a = x;
                out_b = y;
                Poll::Pending
            }
        }
    })
    .await
}

/// A domain as the user wrote it, for messages: without a trailing dot.
fn display_name(domain: &str) -> &str {
    domain.strip_suffix('.').unwrap_or(domain)
}

/// The fully qualified DNS name of `domain`: never subject to a search list (RFC 5321
/// §5.1 names are fully qualified); a UTF-8 domain converted to A-labels (RFC 5890).
fn dns_name(domain: &str) -> Result<Name> {
    let shown = display_name(domain);
    let invalid = |detail: String| Error::NoHost {
        host: shown.to_string(),
        detail: format!("not a valid domain name: {detail}"),
    };
    if shown.is_empty() || shown.starts_with('.') {
        return Err(invalid("empty label".into()));
    }
    let mut name = Name::from_utf8(shown).map_err(|e| invalid(e.to_string()))?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

/// The cache key and host name of `name`: lower-case A-labels, no trailing dot.
fn key_of(name: &Name) -> String {
    let ascii = name.to_lowercase().to_ascii();
    match ascii.strip_suffix('.') {
        Some(s) => s.to_string(),
        None => ascii,
    }
}

/// A poisoned cache is still a valid cache: every entry was inserted whole.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitStatus;
    use hickory_resolver::proto::op::Query;
    use hickory_resolver::proto::rr::Record;
    use hickory_resolver::proto::rr::rdata::{self, A, AAAA, CNAME, MX, TXT};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn lookup(rdata: Vec<RData>) -> Lookup {
        let records = rdata
            .into_iter()
            .map(|d| Record::from_rdata(name("one.test."), 300, d));
        Lookup::new_with_max_ttl(Query::query(name("one.test."), RecordType::MX), records)
    }

    fn mx(pref: u16, host: &str) -> RData {
        RData::MX(MX::new(pref, name(host)))
    }

    #[test]
    fn ipv4_address_literal() {
        assert_eq!(
            address_literal("[192.0.2.1]"),
            Some("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn ipv6_address_literal_tag_is_case_insensitive() {
        let want: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(address_literal("[IPv6:2001:db8::1]"), Some(want));
        assert_eq!(address_literal("[ipv6:2001:DB8::1]"), Some(want));
        // RFC 5321 §4.1.3 IPv6v4-full form.
        assert_eq!(
            address_literal("[IPv6:::ffff:192.0.2.1]"),
            Some("::ffff:192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn not_address_literals() {
        for s in [
            "example.org",
            "192.0.2.1",
            "[192.0.2.1",
            "[192.0.2.256]",
            "[2001:db8::1]",
            "[IPv6:192.0.2.1]",
            "[x-tag:whatever]",
            "[]",
            "[IPv6:]",
            "[IPv6",
        ] {
            assert_eq!(address_literal(s), None, "{s}");
        }
    }

    #[test]
    fn address_literal_needs_no_dns() {
        // A server that does not exist: nothing may be sent to it.
        let r = Resolver::with_server("127.0.0.1:9".parse().unwrap()).unwrap();
        let hosts = r.mail_hosts("[192.0.2.1]").unwrap();
        assert_eq!(hosts.len(), 1);
        assert!(hosts[0].implicit);
        assert_eq!(
            r.addresses(&hosts[0].name).unwrap(),
            vec!["192.0.2.1".parse::<IpAddr>().unwrap()]
        );
        assert!(r.live.get().is_none(), "no runtime for an address literal");
    }

    #[test]
    fn no_runtime_until_first_lookup() {
        let r = Resolver::with_server("127.0.0.1:53".parse().unwrap())
            .unwrap()
            .with_timeout(Duration::from_millis(100), 1);
        assert!(r.live.get().is_none());
    }

    #[test]
    fn attempts_count_the_first_query() {
        let r = Resolver::with_server("127.0.0.1:53".parse().unwrap()).unwrap();
        assert_eq!(r.with_timeout(Duration::from_secs(1), 3).opts.attempts, 2);
        let r = Resolver::with_server("127.0.0.1:53".parse().unwrap()).unwrap();
        assert_eq!(r.with_timeout(Duration::from_secs(1), 0).opts.attempts, 0);
    }

    #[test]
    fn names_are_lowercased_fully_qualified_a_labels() {
        let n = dns_name("Example.ORG").unwrap();
        assert!(n.is_fqdn());
        assert_eq!(key_of(&n), "example.org");
        assert_eq!(key_of(&dns_name("example.org.").unwrap()), "example.org");
        assert_eq!(
            key_of(&dns_name("Bücher.example").unwrap()),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn invalid_domain_is_no_host_naming_it() {
        for bad in ["", ".", "a..b", "bad domain.test", "-x\u{0}.test"] {
            let e = dns_name(bad).unwrap_err();
            assert_eq!(e.exit_status(), ExitStatus::NoHost, "{bad:?}");
            assert!(e.to_string().starts_with(display_name(bad)), "{bad:?}: {e}");
        }
    }

    #[test]
    fn mx_records_become_hosts_without_duplicates() {
        let answer = mx_answer(&lookup(vec![
            mx(20, "MX2.one.test."),
            mx(10, "mx1.one.test."),
            mx(30, "mx2.one.test."),
            RData::CNAME(CNAME(name("alias.one.test."))),
        ]));
        assert_eq!(
            answer,
            MxAnswer::Hosts(vec![
                (20, "mx2.one.test".into()),
                (10, "mx1.one.test".into())
            ])
        );
    }

    #[test]
    fn txt_records_keep_their_strings_apart_and_skip_other_types() {
        let records = txt_records(&lookup(vec![
            RData::CNAME(CNAME(name("alias.one.test."))),
            RData::TXT(TXT::new(vec!["v=STSv1; ".into(), "id=1".into()])),
            RData::TXT(TXT::from_bytes(vec![b"\xff"])),
        ]));
        assert_eq!(
            records,
            vec![
                vec![b"v=STSv1; ".to_vec(), b"id=1".to_vec()],
                vec![b"\xff".to_vec()]
            ]
        );
    }

    #[test]
    fn underscore_labels_are_valid_names() {
        assert_eq!(
            ascii_domain("_mta-sts.Example.ORG.").unwrap(),
            "_mta-sts.example.org"
        );
    }

    #[test]
    fn null_mx_is_recognised() {
        assert_eq!(mx_answer(&lookup(vec![mx(0, ".")])), MxAnswer::NullMx);
        // Beside other records (a misconfiguration), the null MX still wins.
        assert_eq!(
            mx_answer(&lookup(vec![mx(10, "mx.one.test."), mx(0, ".")])),
            MxAnswer::NullMx
        );
    }

    #[test]
    fn answer_without_mx_records_is_implicit_mx() {
        let only_cname = lookup(vec![RData::CNAME(CNAME(name("x.test.")))]);
        assert_eq!(mx_answer(&only_cname), MxAnswer::None);
    }

    #[test]
    fn order_is_by_preference_and_shuffles_ties() {
        let hosts = vec![
            (20, "c".to_string()),
            (10, "a".to_string()),
            (10, "b".to_string()),
            (5, "first".to_string()),
        ];
        let mut seen = std::collections::HashSet::new();
        for _ in 0..64 {
            let names: Vec<String> = order(hosts.clone()).into_iter().map(|h| h.name).collect();
            assert_eq!(names[0], "first");
            assert_eq!(names[3], "c");
            seen.insert(names[1].clone());
        }
        assert_eq!(seen.len(), 2, "both orders of the tie appear");
    }

    #[test]
    fn random_values_differ() {
        let values: std::collections::HashSet<u64> = (0..16).map(|_| random()).collect();
        assert!(values.len() > 1);
    }

    fn found(rdata: Vec<RData>) -> Outcome {
        Outcome::Found(lookup(rdata), Security::Insecure)
    }

    const INSECURE: Security = Security::Insecure;

    #[test]
    fn ipv6_addresses_come_first() {
        let got = combine_addresses(
            &name("one.test."),
            found(vec![RData::AAAA(AAAA("::1".parse().unwrap()))]),
            found(vec![RData::A(A("127.0.0.2".parse().unwrap()))]),
        )
        .unwrap();
        assert_eq!(got.security, INSECURE);
        assert_eq!(
            got.value.ips,
            vec![
                "::1".parse::<IpAddr>().unwrap(),
                "127.0.0.2".parse().unwrap()
            ]
        );
        assert_eq!(got.value.expanded, None, "the records are the name's own");
    }

    #[test]
    fn one_family_failing_keeps_the_others_addresses() {
        let got = combine_addresses(
            &name("one.test."),
            Outcome::Failed("timed out".into()),
            found(vec![RData::A(A("127.0.0.2".parse().unwrap()))]),
        );
        assert_eq!(
            got.map(|a| a.value.ips),
            Ok(vec!["127.0.0.2".parse().unwrap()])
        );
    }

    /// Address records owned by `owner`, behind a CNAME from one.test.
    fn found_at(owner: &str, rdata: RData) -> Outcome {
        let records = [
            Record::from_rdata(name("one.test."), 300, RData::CNAME(CNAME(name(owner)))),
            Record::from_rdata(name(owner), 300, rdata),
        ];
        let query = Query::query(name("one.test."), RecordType::A);
        Outcome::Found(Lookup::new_with_max_ttl(query, records), INSECURE)
    }

    #[test]
    fn an_alias_is_named_by_its_expanded_name_when_the_families_agree() {
        let v6 = || found_at("Host.Test.", RData::AAAA(AAAA("::1".parse().unwrap())));
        let v4 = |owner| found_at(owner, RData::A(A("127.0.0.2".parse().unwrap())));
        let got = combine_addresses(&name("one.test."), v6(), v4("host.test.")).unwrap();
        assert_eq!(got.value.expanded.as_deref(), Some("host.test"));
        let got = combine_addresses(&name("one.test."), v6(), Outcome::NoData(INSECURE));
        assert_eq!(got.unwrap().value.expanded.as_deref(), Some("host.test"));
        let got = combine_addresses(&name("one.test."), v6(), v4("other.test.")).unwrap();
        assert_eq!(
            got.value.expanded, None,
            "two names: neither is the base domain"
        );
    }

    #[test]
    fn no_address_with_a_failure_is_temporary() {
        let got = combine_addresses(
            &name("one.test."),
            Outcome::NoData(INSECURE),
            Outcome::Failed("SERVFAIL".into()),
        );
        assert_eq!(got, Err(Failure::Temporary("SERVFAIL".into())));
        let got = combine_addresses(
            &name("one.test."),
            Outcome::NxDomain(INSECURE),
            Outcome::Failed("x".into()),
        );
        assert_eq!(got, Err(Failure::Temporary("x".into())));
    }

    #[test]
    fn no_address_without_failure_is_permanent() {
        assert_eq!(
            combine_addresses(
                &name("one.test."),
                Outcome::NoData(INSECURE),
                Outcome::NoData(INSECURE)
            ),
            Err(Failure::NoAddress)
        );
        assert_eq!(
            combine_addresses(
                &name("one.test."),
                Outcome::NxDomain(INSECURE),
                Outcome::NxDomain(INSECURE)
            ),
            Err(Failure::NxDomain)
        );
    }

    #[test]
    fn failures_map_to_exit_statuses() {
        let e = Failure::NxDomain.into_error("x.test", "MX");
        assert_eq!(e.exit_status(), ExitStatus::NoHost);
        assert_eq!(e.to_string(), "x.test: no such domain (DNS NXDOMAIN)");
        let e = Failure::NoAddress.into_error("x.test", "A/AAAA");
        assert_eq!(e.exit_status(), ExitStatus::NoHost);
        let e =
            Failure::Temporary(describe_rcode(ResponseCode::ServFail)).into_error("x.test", "MX");
        assert_eq!(e.exit_status(), ExitStatus::TempFail);
        assert_eq!(
            e.to_string(),
            "x.test: DNS MX lookup: server failure (SERVFAIL)"
        );
    }

    #[test]
    fn classify_sorts_hickory_errors() {
        let q = Query::query(name("x.test."), RecordType::MX);
        let nx = NetError::from(NoRecords::new(q.clone(), ResponseCode::NXDomain));
        assert!(matches!(
            classify(Err(nx), false),
            Outcome::NxDomain(INSECURE)
        ));
        let nodata = NetError::from(NoRecords::new(q, ResponseCode::NoError));
        assert!(matches!(
            classify(Err(nodata), false),
            Outcome::NoData(INSECURE)
        ));
        let servfail = NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail));
        assert!(matches!(classify(Err(servfail), false), Outcome::Failed(_)));
        let refused = NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused));
        assert!(
            matches!(classify(Err(refused), false), Outcome::Failed(d) if d.contains("REFUSED"))
        );
        assert!(
            matches!(classify(Err(NetError::Timeout), false), Outcome::Failed(d) if d == "timed out")
        );
    }

    fn proven(rdata: RData, proof: Proof) -> Record {
        let mut record = Record::from_rdata(name("one.test."), 300, rdata);
        record.proof = proof;
        record
    }

    fn nsec(proof: Proof) -> Record {
        let data = RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(
            name("z.one.test."),
            [RecordType::A, RecordType::NSEC, RecordType::RRSIG],
        )));
        proven(data, proof)
    }

    #[test]
    fn validated_answer_is_secure_only_when_every_record_is() {
        let a = |proof| proven(RData::A(A("127.0.0.2".parse().unwrap())), proof);
        assert_eq!(
            judge(&[a(Proof::Secure), a(Proof::Secure)], false),
            Ok(Security::Secure)
        );
        assert_eq!(
            judge(&[a(Proof::Secure), a(Proof::Insecure)], false),
            Ok(INSECURE)
        );
        assert_eq!(judge(&[], false), Ok(INSECURE));
        // The signatures that did not validate carry no proof and do not count.
        let rrsig = proven(RData::Update0(RecordType::RRSIG), Proof::Indeterminate);
        assert_eq!(rrsig.record_type(), RecordType::RRSIG);
        assert_eq!(
            judge(&[a(Proof::Secure), rrsig], false),
            Ok(Security::Secure)
        );
    }

    #[test]
    fn bogus_or_indeterminate_records_are_failures() {
        let a = |proof| proven(RData::A(A("127.0.0.2".parse().unwrap())), proof);
        let bogus = judge(&[a(Proof::Secure), a(Proof::Bogus)], false).unwrap_err();
        assert!(bogus.contains("bogus"), "{bogus}");
        let unknown = judge(&[a(Proof::Indeterminate)], false).unwrap_err();
        assert!(unknown.contains("indeterminate"), "{unknown}");
    }

    #[test]
    fn denial_is_secure_only_with_a_secure_nsec() {
        let soa = |proof| {
            proven(
                RData::SOA(rdata::SOA::new(
                    name("ns.one.test."),
                    name("h.one.test."),
                    1,
                    1,
                    1,
                    1,
                    1,
                )),
                proof,
            )
        };
        assert_eq!(
            judge(&[soa(Proof::Secure), nsec(Proof::Secure)], true),
            Ok(Security::Secure)
        );
        assert_eq!(judge(&[soa(Proof::Secure)], true), Ok(INSECURE));
        assert_eq!(judge(&[soa(Proof::Insecure)], true), Ok(INSECURE));
        assert!(judge(&[soa(Proof::Secure), nsec(Proof::Bogus)], true).is_err());
    }

    #[test]
    fn a_resolver_that_does_not_validate_calls_everything_insecure() {
        let mut secure = lookup(vec![mx(10, "mx.one.test.")]);
        let validated = classify(Ok(secure.clone()), true);
        assert!(matches!(validated, Outcome::Failed(d) if d.contains("indeterminate")));
        secure = Lookup::new_with_max_ttl(
            Query::query(name("one.test."), RecordType::MX),
            [proven(mx(10, "mx.one.test."), Proof::Secure)],
        );
        assert!(matches!(
            classify(Ok(secure.clone()), true),
            Outcome::Found(_, Security::Secure)
        ));
        assert!(matches!(
            classify(Ok(secure), false),
            Outcome::Found(_, INSECURE)
        ));
    }

    #[test]
    fn validated_negative_answers_keep_their_security() {
        let q = Query::query(name("_25._tcp.mx.one.test."), RecordType::TLSA);
        let mut denied = NoRecords::new(q.clone(), ResponseCode::NXDomain);
        denied.authorities = Some(vec![nsec(Proof::Secure)].into());
        assert!(matches!(
            classify(Err(denied.into()), true),
            Outcome::NxDomain(Security::Secure)
        ));
        let mut nodata = NoRecords::new(q.clone(), ResponseCode::NoError);
        nodata.authorities = Some(vec![nsec(Proof::Insecure)].into());
        assert!(matches!(
            classify(Err(nodata.into()), true),
            Outcome::NoData(INSECURE)
        ));
        let bogus = classify(Err(NetError::Dns(DnsError::DnssecBogus)), true);
        assert!(matches!(bogus, Outcome::Failed(d) if d.contains("bogus")));
    }

    #[test]
    fn tlsa_records_keep_their_fields() {
        use hickory_resolver::proto::rr::rdata::TLSA;
        use hickory_resolver::proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
        let answer = lookup(vec![
            RData::TLSA(TLSA::new(
                CertUsage::DaneEe,
                Selector::Spki,
                Matching::Sha256,
                vec![1, 2, 3],
            )),
            RData::TLSA(TLSA::new(
                CertUsage::PkixTa,
                Selector::Full,
                Matching::Unassigned(9),
                vec![4],
            )),
            mx(10, "mx.one.test."),
        ]);
        assert_eq!(
            tlsa_records(&answer),
            [
                Tlsa::new(3, 1, 1, vec![1, 2, 3]),
                Tlsa::new(0, 0, 9, vec![4])
            ]
        );
    }

    #[test]
    fn trust_anchor_file_holds_dnskeys() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("root.key");
        // The IANA root KSK-2024 (key tag 38696), as the root zone publishes it.
        std::fs::write(
            &good,
            ". 172800 IN DNSKEY 257 3 8 AwEAAa96jeuknZlaeSrvyAJj6ZHv28hhOKkx3rLGXVaC6rXTsDc449/cidltpkyGwCJNnOAlFNKF2jBosZBU5eeHspaQWOmOElZsjICMQMC3aeHbGiShvZsx4wMYSjH8e7Vrhbu6irwCzVBApESjbUdpWWmEnhathWu1jo+siFUiRAAxm9qyJNg/wOZqqzL/dL/q8PkcRU5oUKEpUge71M3ej2/7CPqpdVwuMoTvoB+ZOT4YeGyxMvHmbrxlFzGOHOijtzN+u1TQNatX2XBuzZNQ1K+s2CXkPIZo7s6JgZyvaBevYtxPvYLw4z9mR7K2vaF18UYH9Z9GNUUeayffKC73PYc=\n",
        )
        .unwrap();
        let r = Resolver::with_server("127.0.0.1:53".parse().unwrap()).unwrap();
        assert!(!r.validates());
        let r = r.with_dnssec(Some(&good)).unwrap();
        assert!(r.validates());
        assert!(r.opts.validate);

        let empty = dir.path().join("empty.key");
        std::fs::write(&empty, "; nothing here\n").unwrap();
        for bad in [empty, dir.path().join("missing.key")] {
            let e = Resolver::with_server("127.0.0.1:53".parse().unwrap())
                .unwrap()
                .with_dnssec(Some(&bad))
                .err()
                .expect("no anchor");
            assert_eq!(e.exit_status(), ExitStatus::Config, "{e}");
            assert!(e.to_string().contains("trust anchor"), "{e}");
        }
        let iana = Resolver::with_server("127.0.0.1:53".parse().unwrap())
            .unwrap()
            .with_dnssec(None)
            .unwrap();
        assert!(iana.validates());
    }
}
