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

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::pin;
use std::sync::{Mutex, OnceLock};
use std::task::Poll;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};

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

/// A DNS resolver for one run of smtpsend.
pub struct Resolver {
    config: ResolverConfig,
    opts: ResolverOpts,
    live: OnceLock<Live>,
    mx_cache: Mutex<HashMap<String, Cached<MxAnswer>>>,
    addr_cache: Mutex<HashMap<String, Cached<Vec<IpAddr>>>>,
    txt_cache: Mutex<HashMap<String, Cached<Vec<TxtRecord>>>>,
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
            live: OnceLock::new(),
            mx_cache: Mutex::new(HashMap::new()),
            addr_cache: Mutex::new(HashMap::new()),
            txt_cache: Mutex::new(HashMap::new()),
        }
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
        let shown = display_name(domain);
        if address_literal(domain).is_some() {
            return Ok(vec![MailHost {
                name: shown.to_string(),
                preference: 0,
                implicit: true,
            }]);
        }
        let name = dns_name(domain)?;
        let key = key_of(&name);
        let answer = self.cached(&self.mx_cache, &key, || self.ask_mx(&name))?;
        match answer {
            Ok(MxAnswer::Hosts(hosts)) => Ok(order(hosts)),
            Ok(MxAnswer::NullMx) => Err(Error::Unavailable(format!(
                "{shown} does not accept mail (null MX, RFC 7505)"
            ))),
            Ok(MxAnswer::None) => {
                // RFC 5321 §5.1: the implicit MX must have an address, or it is an error.
                self.addresses(&key)?;
                Ok(vec![MailHost {
                    name: key,
                    preference: 0,
                    implicit: true,
                }])
            }
            Err(failure) => Err(failure.into_error(shown, "MX")),
        }
    }

    /// The addresses of `host`: AAAA then A, both asked at once and both kept, so a client
    /// can fall back from IPv6 to IPv4 (RFC 5321 §5.1 on multihomed hosts). CNAMEs are
    /// followed. An address literal is returned without asking anyone.
    ///
    /// Errors: neither A nor AAAA, or no such host → [`Error::NoHost`]; a DNS failure or
    /// timeout with no address found → [`Error::Network`].
    pub fn addresses(&self, host: &str) -> Result<Vec<IpAddr>> {
        if let Some(ip) = address_literal(host) {
            return Ok(vec![ip]);
        }
        let shown = display_name(host);
        let name = dns_name(host)?;
        let key = key_of(&name);
        match self.cached(&self.addr_cache, &key, || self.ask_addresses(&name))? {
            Ok(addrs) => Ok(addrs),
            Err(failure) => Err(failure.into_error(shown, "A/AAAA")),
        }
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
            TokioResolver::builder_with_config(self.config.clone(), TokioRuntimeProvider::default())
                .with_options(self.opts.clone())
                .build()
                .map_err(|e| Error::TempFail(format!("cannot start the DNS resolver: {e}")))?
        };
        // Another thread may have won the race; either value will do.
        let _ = self.live.set(Live { dns, runtime });
        self.live
            .get()
            .ok_or_else(|| Error::Internal("DNS resolver not initialised".into()))
    }

    fn ask_mx(&self, name: &Name) -> Result<Cached<MxAnswer>> {
        let live = self.live()?;
        let result = live
            .runtime
            .block_on(live.dns.lookup(name.clone(), RecordType::MX));
        Ok(match classify(result) {
            Outcome::Found(lookup) => Ok(mx_answer(&lookup)),
            Outcome::NoData => Ok(MxAnswer::None),
            Outcome::NxDomain => Err(Failure::NxDomain),
            Outcome::Failed(detail) => Err(Failure::Temporary(detail)),
        })
    }

    fn ask_txt(&self, name: &Name) -> Result<Cached<Vec<TxtRecord>>> {
        let live = self.live()?;
        let result = live
            .runtime
            .block_on(live.dns.lookup(name.clone(), RecordType::TXT));
        Ok(match classify(result) {
            Outcome::Found(lookup) => Ok(txt_records(&lookup)),
            Outcome::NoData | Outcome::NxDomain => Ok(Vec::new()),
            Outcome::Failed(detail) => Err(Failure::Temporary(detail)),
        })
    }

    fn ask_addresses(&self, name: &Name) -> Result<Cached<Vec<IpAddr>>> {
        let live = self.live()?;
        let (v6, v4) = live.runtime.block_on(both(
            live.dns.lookup(name.clone(), RecordType::AAAA),
            live.dns.lookup(name.clone(), RecordType::A),
        ));
        Ok(combine_addresses(classify(v6), classify(v4)))
    }
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
            Failure::Temporary(detail) => Error::Network {
                host,
                detail: format!("DNS {what} lookup: {detail}"),
            },
        }
    }
}

/// One query's result in the terms that decide delivery.
#[derive(Debug)]
enum Outcome {
    Found(Lookup),
    NoData,
    NxDomain,
    Failed(String),
}

fn classify(result: std::result::Result<Lookup, NetError>) -> Outcome {
    match result {
        Ok(lookup) => Outcome::Found(lookup),
        Err(NetError::Dns(DnsError::NoRecordsFound(NoRecords { response_code, .. }))) => {
            match response_code {
                ResponseCode::NXDomain => Outcome::NxDomain,
                ResponseCode::NoError => Outcome::NoData,
                code => Outcome::Failed(describe_rcode(code)),
            }
        }
        Err(NetError::Dns(DnsError::ResponseCode(code))) => Outcome::Failed(describe_rcode(code)),
        Err(NetError::Timeout) => Outcome::Failed("timed out".into()),
        Err(e) => Outcome::Failed(e.to_string()),
    }
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
/// host", which would bounce the mail.
fn combine_addresses(v6: Outcome, v4: Outcome) -> Cached<Vec<IpAddr>> {
    let mut addrs = Vec::new();
    let mut failed = None;
    let mut nxdomain = 0;
    for outcome in [v6, v4] {
        match outcome {
            Outcome::Found(lookup) => {
                addrs.extend(lookup.answers().iter().filter_map(|r| match &r.data {
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    _ => None,
                }))
            }
            Outcome::NoData => {}
            Outcome::NxDomain => nxdomain += 1,
            Outcome::Failed(detail) => {
                failed.get_or_insert(detail);
            }
        }
    }
    if !addrs.is_empty() {
        // hickory answers each query with its own type, but keep the promise regardless.
        addrs.sort_by_key(|a| a.is_ipv4());
        return Ok(addrs);
    }
    match failed {
        Some(detail) => Err(Failure::Temporary(detail)),
        None if nxdomain == 2 => Err(Failure::NxDomain),
        None => Err(Failure::NoAddress),
    }
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
    use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, MX, TXT};

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
        Outcome::Found(lookup(rdata))
    }

    #[test]
    fn ipv6_addresses_come_first() {
        let got = combine_addresses(
            found(vec![RData::AAAA(AAAA("::1".parse().unwrap()))]),
            found(vec![RData::A(A("127.0.0.2".parse().unwrap()))]),
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                "::1".parse::<IpAddr>().unwrap(),
                "127.0.0.2".parse().unwrap()
            ]
        );
    }

    #[test]
    fn one_family_failing_keeps_the_others_addresses() {
        let got = combine_addresses(
            Outcome::Failed("timed out".into()),
            found(vec![RData::A(A("127.0.0.2".parse().unwrap()))]),
        );
        assert_eq!(got, Ok(vec!["127.0.0.2".parse().unwrap()]));
    }

    #[test]
    fn no_address_with_a_failure_is_temporary() {
        let got = combine_addresses(Outcome::NoData, Outcome::Failed("SERVFAIL".into()));
        assert_eq!(got, Err(Failure::Temporary("SERVFAIL".into())));
        let got = combine_addresses(Outcome::NxDomain, Outcome::Failed("x".into()));
        assert_eq!(got, Err(Failure::Temporary("x".into())));
    }

    #[test]
    fn no_address_without_failure_is_permanent() {
        assert_eq!(
            combine_addresses(Outcome::NoData, Outcome::NoData),
            Err(Failure::NoAddress)
        );
        assert_eq!(
            combine_addresses(Outcome::NxDomain, Outcome::NxDomain),
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
        assert!(matches!(classify(Err(nx)), Outcome::NxDomain));
        let nodata = NetError::from(NoRecords::new(q, ResponseCode::NoError));
        assert!(matches!(classify(Err(nodata)), Outcome::NoData));
        let servfail = NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail));
        assert!(matches!(classify(Err(servfail)), Outcome::Failed(_)));
        let refused = NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused));
        assert!(matches!(classify(Err(refused)), Outcome::Failed(d) if d.contains("REFUSED")));
        assert!(matches!(classify(Err(NetError::Timeout)), Outcome::Failed(d) if d == "timed out"));
    }
}
