//! MTA-STS (RFC 8461) through the library: `policy_for` and the fetcher against a DNS
//! server and an HTTPS policy server the test starts on 127.0.0.1, with certificates
//! from a test CA that only the test trusts.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::Pki;
use crate::common::dns::*;
use crate::common::https_server::{PolicyServer, Reply};
use smtpsend::delivery::policy::mta_sts::http::HttpError;
use smtpsend::delivery::policy::mta_sts::{
    Cache, FetchErrorKind, FetchSettings, Fetcher, Mode, MxCheck, Outcome, Source, policy_for,
};
use smtpsend::delivery::resolve::Resolver;
use tempfile::TempDir;

const DOMAIN: &str = "example.test";
const POLICY_HOST: &str = "mta-sts.example.test";
const TXT_NAME: &str = "_mta-sts.example.test";

const ENFORCE: &str = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\n\
mx: *.mx.example.test\r\nmax_age: 86400\r\n";
const TESTING: &str = "version: STSv1\nmode: testing\nmx: mx1.example.test\nmax_age: 3600\n";

/// 2030-01-01: the time every test pretends it is, so expiry is exact.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_893_456_000)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The zone of a domain that announces policy `id`, its policy host on 127.0.0.1.
fn zone_with_id(id: &str) -> DnsServer {
    let record = format!("v=STSv1; id={id};");
    DnsServer::start(&[(TXT_NAME, Txt(&record)), (POLICY_HOST, A("127.0.0.1"))])
}

/// The same domain with no `_mta-sts` record (the policy host still resolves).
fn zone_without_record() -> DnsServer {
    DnsServer::start(&[(POLICY_HOST, A("127.0.0.1"))])
}

fn resolver(dns: &DnsServer) -> Resolver {
    Resolver::with_server(dns.addr())
        .expect("resolver")
        .with_timeout(Duration::from_secs(2), 2)
}

/// A test CA's certificate for the policy host, and the fetcher trusting that CA.
struct Site {
    pki: Pki,
    server: PolicyServer,
}

impl Site {
    fn start(reply: Reply) -> Site {
        let pki = Pki::ca_signed_for(&[POLICY_HOST]);
        let server = PolicyServer::start(&pki, reply);
        Site { pki, server }
    }

    fn fetcher(&self) -> Fetcher {
        fetcher_trusting(&self.pki, self.server.port())
    }
}

fn fetcher_trusting(pki: &Pki, port: u16) -> Fetcher {
    Fetcher::new(&FetchSettings {
        extra_trust: Some(pki.trust_file.clone()),
        port,
        timeout: Duration::from_secs(5),
    })
    .expect("fetcher")
}

fn cache() -> (TempDir, Cache) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let cache = Cache::new(tmp.path().join("state/smtpsend/mta-sts"));
    (tmp, cache)
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[track_caller]
fn assert_source(outcome: &Outcome, source: Source) {
    assert_eq!(outcome.source, source, "{outcome:#?}");
}

fn notes(outcome: &Outcome) -> String {
    outcome.notes.join("\n")
}

#[test]
fn fetched_policy_applies_and_is_cached_privately() {
    let site = Site::start(Reply::Policy(ENFORCE.into()));
    let dns = zone_with_id("20300101");
    let (_tmp, cache) = cache();
    let outcome = policy_for(DOMAIN, &resolver(&dns), &site.fetcher(), &cache, now());
    assert_source(&outcome, Source::Fetched);
    assert!(outcome.notes.is_empty(), "{outcome:#?}");
    assert_eq!(outcome.id.as_deref(), Some("20300101"));
    assert_eq!(outcome.label(), Some("mta-sts enforce"));
    let policy = outcome.policy.as_ref().unwrap();
    assert_eq!(policy.mode, Mode::Enforce);
    assert_eq!(policy.max_age, 86400);

    let requests = site.server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/.well-known/mta-sts.txt");
    assert_eq!(
        requests[0].host.as_deref(),
        Some(format!("{POLICY_HOST}:{}", site.server.port()).as_str())
    );

    let file = cache.path(DOMAIN).unwrap();
    assert_eq!(mode_of(&file), 0o600);
    assert_eq!(mode_of(cache.dir()), 0o700);
    let entry = cache.load(DOMAIN).unwrap().unwrap();
    assert_eq!(entry.id, "20300101");
    assert_eq!(entry.policy, ENFORCE);
    assert_eq!(entry.fetched_at, secs(now()));
    assert_eq!(entry.expires_at, secs(now()) + 86400);
}

#[test]
fn enforce_allows_only_matching_mx_hosts_with_verified_tls() {
    let site = Site::start(Reply::Policy(ENFORCE.into()));
    let dns = zone_with_id("1");
    let (_tmp, cache) = cache();
    let outcome = policy_for(DOMAIN, &resolver(&dns), &site.fetcher(), &cache, now());
    assert_eq!(
        outcome.check_mx("mx1.example.test"),
        MxCheck::RequireVerifiedTls
    );
    assert_eq!(
        outcome.check_mx("a.mx.example.test."),
        MxCheck::RequireVerifiedTls
    );
    assert_eq!(outcome.check_mx("a.b.mx.example.test"), MxCheck::Refused);
    assert_eq!(outcome.check_mx("mx.example.test"), MxCheck::Refused);
    assert_eq!(outcome.check_mx("mx.attacker.test"), MxCheck::Refused);
}

#[test]
fn testing_mode_reports_instead_of_refusing() {
    let site = Site::start(Reply::Policy(TESTING.into()));
    let dns = zone_with_id("1");
    let (_tmp, cache) = cache();
    let outcome = policy_for(DOMAIN, &resolver(&dns), &site.fetcher(), &cache, now());
    assert_eq!(outcome.label(), Some("mta-sts testing"));
    assert_eq!(
        outcome.check_mx("mx1.example.test"),
        MxCheck::Report { matches: true }
    );
    assert_eq!(
        outcome.check_mx("mx.attacker.test"),
        MxCheck::Report { matches: false }
    );
}

#[test]
fn mode_none_constrains_nothing() {
    let site = Site::start(Reply::Policy(
        "version: STSv1\nmode: none\nmax_age: 600\n".into(),
    ));
    let dns = zone_with_id("1");
    let (_tmp, cache) = cache();
    let outcome = policy_for(DOMAIN, &resolver(&dns), &site.fetcher(), &cache, now());
    assert_source(&outcome, Source::Fetched);
    assert_eq!(outcome.label(), Some("mta-sts none"));
    assert_eq!(outcome.check_mx("anything.test"), MxCheck::Unconstrained);
    // Cached like any policy: a switch to "none" must replace an older "enforce".
    assert!(cache.load(DOMAIN).unwrap().is_some());
}

#[test]
fn chunked_policy_is_read() {
    let site = Site::start(Reply::Chunked(ENFORCE.into(), 7));
    let dns = zone_with_id("1");
    let (_tmp, cache) = cache();
    let outcome = policy_for(DOMAIN, &resolver(&dns), &site.fetcher(), &cache, now());
    assert_source(&outcome, Source::Fetched);
    assert_eq!(outcome.policy.unwrap().mode, Mode::Enforce);
}

#[test]
fn record_split_in_several_strings_is_joined() {
    let site = Site::start(Reply::Policy(ENFORCE.into()));
    let dns = DnsServer::start(&[
        (TXT_NAME, TxtParts(&["v=STSv1; id=2030", "0101;"])),
        (TXT_NAME, Txt("unrelated text record")),
        (POLICY_HOST, A("127.0.0.1")),
    ]);
    let (_tmp, cache) = cache();
    let outcome = policy_for(DOMAIN, &resolver(&dns), &site.fetcher(), &cache, now());
    assert_source(&outcome, Source::Fetched);
    assert_eq!(outcome.id.as_deref(), Some("20300101"));
}

#[test]
fn no_record_means_no_policy_and_no_fetch() {
    let site = Site::start(Reply::Policy(ENFORCE.into()));
    let dns = zone_without_record();
    let (_tmp, cache) = cache();
    let outcome = policy_for(DOMAIN, &resolver(&dns), &site.fetcher(), &cache, now());
    assert_source(&outcome, Source::NotAnnounced);
    assert_eq!(outcome.policy, None);
    assert_eq!(outcome.check_mx("mx.attacker.test"), MxCheck::Unconstrained);
    assert!(site.server.requests().is_empty());
}

#[test]
fn two_sts_records_mean_no_policy() {
    let site = Site::start(Reply::Policy(ENFORCE.into()));
    let dns = DnsServer::start(&[
        (TXT_NAME, Txt("v=STSv1; id=one;")),
        (TXT_NAME, Txt("v=STSv1; id=two;")),
        (POLICY_HOST, A("127.0.0.1")),
    ]);
    let (_tmp, cache) = cache();
    let outcome = policy_for(DOMAIN, &resolver(&dns), &site.fetcher(), &cache, now());
    assert_source(&outcome, Source::NotAnnounced);
    assert!(
        notes(&outcome).contains("2 STSv1 TXT records"),
        "{outcome:#?}"
    );
    assert!(site.server.requests().is_empty());
}

#[test]
fn address_literal_has_no_policy() {
    let dns = zone_without_record();
    let (_tmp, cache) = cache();
    let fetcher = Fetcher::new(&FetchSettings::default()).unwrap();
    let outcome = policy_for("[127.0.0.1]", &resolver(&dns), &fetcher, &cache, now());
    assert_source(&outcome, Source::NotAnnounced);
    assert!(dns.queries().is_empty());
}

#[test]
fn same_id_uses_the_cache_without_fetching() {
    let mut site = Site::start(Reply::Policy(ENFORCE.into()));
    let dns = zone_with_id("1");
    let (_tmp, cache) = cache();
    let fetcher = site.fetcher();
    policy_for(DOMAIN, &resolver(&dns), &fetcher, &cache, now());
    site.server.stop();
    let later = now() + Duration::from_secs(3600);
    let outcome = policy_for(DOMAIN, &resolver(&dns), &fetcher, &cache, later);
    assert_source(&outcome, Source::Cached);
    assert!(outcome.notes.is_empty(), "{outcome:#?}");
    assert_eq!(outcome.policy.unwrap().mode, Mode::Enforce);
    assert_eq!(site.server.requests().len(), 1);
}

#[test]
fn id_change_refetches_and_replaces_the_cache() {
    let site = Site::start(Reply::Policy(ENFORCE.into()));
    let (_tmp, cache) = cache();
    let fetcher = site.fetcher();
    let first = zone_with_id("1");
    policy_for(DOMAIN, &resolver(&first), &fetcher, &cache, now());

    site.server.set(Reply::Policy(TESTING.into()));
    let second = zone_with_id("2");
    let later = now() + Duration::from_secs(60);
    let outcome = policy_for(DOMAIN, &resolver(&second), &fetcher, &cache, later);
    assert_source(&outcome, Source::Fetched);
    assert_eq!(outcome.id.as_deref(), Some("2"));
    assert_eq!(outcome.policy.unwrap().mode, Mode::Testing);
    assert_eq!(site.server.requests().len(), 2);
    let entry = cache.load(DOMAIN).unwrap().unwrap();
    assert_eq!((entry.id.as_str(), entry.policy.as_str()), ("2", TESTING));
    assert_eq!(entry.expires_at, secs(later) + 3600);
}

#[test]
fn cached_policy_is_kept_when_the_server_is_gone() {
    let mut site = Site::start(Reply::Policy(ENFORCE.into()));
    let (_tmp, cache) = cache();
    let fetcher = site.fetcher();
    policy_for(
        DOMAIN,
        &resolver(&zone_with_id("1")),
        &fetcher,
        &cache,
        now(),
    );
    site.server.stop();

    // A new id sends the sender to a server that no longer answers (§3.3).
    let dns = zone_with_id("2");
    let outcome = policy_for(DOMAIN, &resolver(&dns), &fetcher, &cache, now());
    assert_source(&outcome, Source::CachedFallback);
    assert_eq!(outcome.id.as_deref(), Some("1"));
    assert_eq!(outcome.policy.as_ref().unwrap().mode, Mode::Enforce);
    let note = notes(&outcome);
    assert!(note.contains("connection refused"), "{note}");
    assert!(note.contains("the cached policy stays"), "{note}");
    // The cache still holds what was fetched under id 1.
    assert_eq!(cache.load(DOMAIN).unwrap().unwrap().id, "1");
}

#[test]
fn cached_policy_is_kept_when_the_record_is_gone() {
    let site = Site::start(Reply::Policy(ENFORCE.into()));
    let (_tmp, cache) = cache();
    let fetcher = site.fetcher();
    policy_for(
        DOMAIN,
        &resolver(&zone_with_id("1")),
        &fetcher,
        &cache,
        now(),
    );

    let outcome = policy_for(
        DOMAIN,
        &resolver(&zone_without_record()),
        &fetcher,
        &cache,
        now(),
    );
    assert_source(&outcome, Source::CachedFallback);
    assert_eq!(outcome.label(), Some("mta-sts enforce"));
    assert!(
        notes(&outcome).contains("no STSv1 TXT record"),
        "{outcome:#?}"
    );
    assert_eq!(site.server.requests().len(), 1, "nothing fetched");
}

#[test]
fn cached_policy_is_kept_when_dns_fails() {
    let site = Site::start(Reply::Policy(ENFORCE.into()));
    let (_tmp, cache) = cache();
    let fetcher = site.fetcher();
    policy_for(
        DOMAIN,
        &resolver(&zone_with_id("1")),
        &fetcher,
        &cache,
        now(),
    );

    let failing = DnsServer::start(&[(TXT_NAME, ServFail), (POLICY_HOST, A("127.0.0.1"))]);
    let outcome = policy_for(DOMAIN, &resolver(&failing), &fetcher, &cache, now());
    assert_source(&outcome, Source::CachedFallback);
    assert!(notes(&outcome).contains("SERVFAIL"), "{outcome:#?}");
}

#[test]
fn dns_failure_without_cache_is_no_policy_with_a_note() {
    let site = Site::start(Reply::Policy(ENFORCE.into()));
    let (_tmp, cache) = cache();
    let failing = DnsServer::start(&[(TXT_NAME, ServFail), (POLICY_HOST, A("127.0.0.1"))]);
    let outcome = policy_for(DOMAIN, &resolver(&failing), &site.fetcher(), &cache, now());
    assert_source(&outcome, Source::NotAnnounced);
    assert_eq!(outcome.policy, None);
    assert!(notes(&outcome).contains("SERVFAIL"), "{outcome:#?}");
}

#[test]
fn expired_cache_is_dropped() {
    let mut site = Site::start(Reply::Policy(TESTING.into()));
    let (_tmp, cache) = cache();
    let fetcher = site.fetcher();
    let dns = zone_with_id("1");
    policy_for(DOMAIN, &resolver(&dns), &fetcher, &cache, now());
    site.server.stop();

    // max_age is 3600: at exactly fetch time + 3600 the policy is gone, and with the
    // server gone nothing replaces it.
    let expired = now() + Duration::from_secs(3600);
    let outcome = policy_for(DOMAIN, &resolver(&dns), &fetcher, &cache, expired);
    assert_source(&outcome, Source::Unavailable);
    assert_eq!(outcome.policy, None);
    assert!(notes(&outcome).contains("expired"), "{outcome:#?}");
    assert!(!cache.path(DOMAIN).unwrap().exists(), "the file is removed");

    // Without the record either: nothing at all.
    let outcome = policy_for(
        DOMAIN,
        &resolver(&zone_without_record()),
        &fetcher,
        &cache,
        expired,
    );
    assert_source(&outcome, Source::NotAnnounced);
}

#[test]
fn max_age_is_honoured_to_the_second() {
    let mut site = Site::start(Reply::Policy(TESTING.into()));
    let (_tmp, cache) = cache();
    let fetcher = site.fetcher();
    policy_for(
        DOMAIN,
        &resolver(&zone_with_id("1")),
        &fetcher,
        &cache,
        now(),
    );
    site.server.stop();
    let no_record = zone_without_record();

    let last_second = now() + Duration::from_secs(3599);
    let outcome = policy_for(DOMAIN, &resolver(&no_record), &fetcher, &cache, last_second);
    assert_source(&outcome, Source::CachedFallback);

    let expired = now() + Duration::from_secs(3600);
    let outcome = policy_for(DOMAIN, &resolver(&no_record), &fetcher, &cache, expired);
    assert_source(&outcome, Source::NotAnnounced);
}

#[test]
fn expired_cache_is_refetched_under_the_same_id() {
    let site = Site::start(Reply::Policy(TESTING.into()));
    let (_tmp, cache) = cache();
    let fetcher = site.fetcher();
    let dns = zone_with_id("1");
    policy_for(DOMAIN, &resolver(&dns), &fetcher, &cache, now());
    let expired = now() + Duration::from_secs(7200);
    let outcome = policy_for(DOMAIN, &resolver(&dns), &fetcher, &cache, expired);
    assert_source(&outcome, Source::Fetched);
    assert_eq!(site.server.requests().len(), 2);
    assert_eq!(
        cache.load(DOMAIN).unwrap().unwrap().expires_at,
        secs(expired) + 3600
    );
}

#[test]
fn max_age_zero_is_not_cached() {
    let site = Site::start(Reply::Policy(
        "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 0\n".into(),
    ));
    let (_tmp, cache) = cache();
    let outcome = policy_for(
        DOMAIN,
        &resolver(&zone_with_id("1")),
        &site.fetcher(),
        &cache,
        now(),
    );
    assert_source(&outcome, Source::Fetched);
    assert_eq!(outcome.label(), Some("mta-sts enforce"));
    assert_eq!(cache.load(DOMAIN).unwrap(), None);
}

#[test]
fn invalid_policy_is_no_policy() {
    let site = Site::start(Reply::Policy(
        "version: STSv1\nmode: enforce\nmax_age: 86400\n".into(),
    ));
    let (_tmp, cache) = cache();
    let outcome = policy_for(
        DOMAIN,
        &resolver(&zone_with_id("1")),
        &site.fetcher(),
        &cache,
        now(),
    );
    assert_source(&outcome, Source::Unavailable);
    assert!(notes(&outcome).contains("without mx"), "{outcome:#?}");
    assert_eq!(cache.load(DOMAIN).unwrap(), None);
}

#[test]
fn invalid_new_policy_keeps_the_cached_one() {
    let site = Site::start(Reply::Policy(ENFORCE.into()));
    let (_tmp, cache) = cache();
    let fetcher = site.fetcher();
    policy_for(
        DOMAIN,
        &resolver(&zone_with_id("1")),
        &fetcher,
        &cache,
        now(),
    );
    site.server
        .set(Reply::Policy("version: STSv1\nmode: off\n".into()));
    let outcome = policy_for(
        DOMAIN,
        &resolver(&zone_with_id("2")),
        &fetcher,
        &cache,
        now(),
    );
    assert_source(&outcome, Source::CachedFallback);
    assert_eq!(outcome.label(), Some("mta-sts enforce"));
}

/// The fetcher's failure for `reply`, served with a trusted certificate.
fn fetch_failure(reply: Reply) -> FetchErrorKind {
    let site = Site::start(reply);
    let dns = zone_with_id("1");
    site.fetcher()
        .fetch(DOMAIN, &resolver(&dns))
        .expect_err("the fetch must fail")
        .kind
}

#[test]
fn redirect_is_not_followed() {
    for code in [301, 302, 307, 308] {
        let kind = fetch_failure(Reply::Redirect(
            code,
            "https://mta-sts.example.test/elsewhere.txt".into(),
        ));
        assert_eq!(
            kind,
            FetchErrorKind::Http(HttpError::Status {
                code,
                location: Some("https://mta-sts.example.test/elsewhere.txt".into())
            })
        );
    }
}

#[test]
fn status_other_than_200_is_refused() {
    assert_eq!(
        fetch_failure(Reply::Status(404)),
        FetchErrorKind::Http(HttpError::Status {
            code: 404,
            location: None
        })
    );
}

#[test]
fn oversized_policy_is_refused() {
    assert_eq!(
        fetch_failure(Reply::Oversized(64 * 1024 + 1)),
        FetchErrorKind::Http(HttpError::TooLarge(64 * 1024))
    );
    assert_eq!(
        fetch_failure(Reply::OversizedChunked(64 * 1024 + 1)),
        FetchErrorKind::Http(HttpError::TooLarge(64 * 1024))
    );
}

#[test]
fn policy_of_64_kib_is_read() {
    // The limit itself is allowed: a valid policy padded with an unknown key.
    let mut body = ENFORCE.to_string();
    let pad = 64 * 1024 - body.len() - "x: \n".len();
    body.push_str(&format!("x: {}\n", "p".repeat(pad)));
    assert_eq!(body.len(), 64 * 1024);
    let site = Site::start(Reply::Policy(body.clone()));
    let got = site
        .fetcher()
        .fetch(DOMAIN, &resolver(&zone_with_id("1")))
        .expect("fetch");
    assert_eq!(got, body);
}

#[test]
fn wrong_content_type_is_refused() {
    assert_eq!(
        fetch_failure(Reply::Typed(Some("text/html".into()), ENFORCE.into())),
        FetchErrorKind::Http(HttpError::ContentType(Some("text/html".into())))
    );
    assert_eq!(
        fetch_failure(Reply::Typed(None, ENFORCE.into())),
        FetchErrorKind::Http(HttpError::ContentType(None))
    );
}

#[test]
fn body_ended_only_by_the_connection_is_refused() {
    assert_eq!(
        fetch_failure(Reply::UntilClose(ENFORCE.into())),
        FetchErrorKind::Http(HttpError::NoLength)
    );
}

#[test]
fn untrusted_certificate_is_refused() {
    let site = Site::start(Reply::Policy(ENFORCE.into()));
    let dns = zone_with_id("1");
    // Trusts another test CA (of the same name, so the chain is refused for its
    // signature rather than its issuer).
    let stranger = Pki::ca_signed_for(&[POLICY_HOST]);
    let err = fetcher_trusting(&stranger, site.server.port())
        .fetch(DOMAIN, &resolver(&dns))
        .unwrap_err();
    assert!(
        matches!(&err.kind, FetchErrorKind::Tls(d) if d.contains("handshake failed: certificate")),
        "{err}"
    );
    assert!(site.server.requests().is_empty(), "no request was sent");
    assert_eq!(site.server.wait_for_handshake_failures(1), 1);

    // With the web PKI only, a test CA is not trusted either.
    let web_only = Fetcher::new(&FetchSettings {
        port: site.server.port(),
        timeout: Duration::from_secs(5),
        ..FetchSettings::default()
    })
    .unwrap();
    let err = web_only.fetch(DOMAIN, &resolver(&dns)).unwrap_err();
    assert!(
        matches!(&err.kind, FetchErrorKind::Tls(d) if d.contains("not signed by a trusted authority")),
        "{err}"
    );

    // And through policy_for: no policy, the reason noted.
    let (_tmp, cache) = cache();
    let outcome = policy_for(DOMAIN, &resolver(&dns), &web_only, &cache, now());
    assert_source(&outcome, Source::Unavailable);
    assert!(notes(&outcome).contains("TLS"), "{outcome:#?}");
}

#[test]
fn certificate_for_another_name_is_refused() {
    let pki = Pki::ca_signed_for(&["www.example.test"]);
    let server = PolicyServer::start(&pki, Reply::Policy(ENFORCE.into()));
    let dns = zone_with_id("1");
    let err = fetcher_trusting(&pki, server.port())
        .fetch(DOMAIN, &resolver(&dns))
        .unwrap_err();
    assert!(
        matches!(&err.kind, FetchErrorKind::Tls(d) if d.contains("not valid for this host name")),
        "{err}"
    );
    assert!(server.requests().is_empty());
}

#[test]
fn policy_host_without_address_is_a_resolve_failure() {
    let dns = DnsServer::start(&[(TXT_NAME, Txt("v=STSv1; id=1;"))]);
    let fetcher = Fetcher::new(&FetchSettings::default()).unwrap();
    let err = fetcher.fetch(DOMAIN, &resolver(&dns)).unwrap_err();
    assert_eq!(err.host, POLICY_HOST);
    assert!(matches!(err.kind, FetchErrorKind::Resolve(_)), "{err}");
}

#[test]
fn silent_server_fails_at_the_deadline() {
    let site = Site::start(Reply::Silent);
    let dns = zone_with_id("1");
    let fetcher = Fetcher::new(&FetchSettings {
        extra_trust: Some(site.pki.trust_file.clone()),
        port: site.server.port(),
        timeout: Duration::from_millis(500),
    })
    .unwrap();
    let err = fetcher.fetch(DOMAIN, &resolver(&dns)).unwrap_err();
    assert_eq!(err.kind, FetchErrorKind::Io("timed out".into()), "{err}");
    assert_eq!(site.server.requests().len(), 1, "the request was sent");
}

#[test]
fn domain_is_matched_in_any_case_and_as_a_u_label() {
    let site = Site::start(Reply::Policy(ENFORCE.into()));
    let dns = zone_with_id("1");
    let (_tmp, cache) = cache();
    let outcome = policy_for(
        "Example.TEST.",
        &resolver(&dns),
        &site.fetcher(),
        &cache,
        now(),
    );
    assert_source(&outcome, Source::Fetched);
    assert!(cache.path(DOMAIN).unwrap().exists());
}

#[test]
fn record_and_policy_host_delegated_through_cnames() {
    // A hosting provider serves both (§3.1 and §3.3 allow it); the certificate must still
    // be valid for mta-sts.DOMAIN, the name the sender asked for.
    let site = Site::start(Reply::Policy(ENFORCE.into()));
    let dns = DnsServer::start(&[
        (TXT_NAME, Cname("example-test.sts.provider.test")),
        ("example-test.sts.provider.test", Txt("v=STSv1; id=p1;")),
        (POLICY_HOST, Cname("policies.provider.test")),
        ("policies.provider.test", A("127.0.0.1")),
    ]);
    let (_tmp, cache) = cache();
    let outcome = policy_for(DOMAIN, &resolver(&dns), &site.fetcher(), &cache, now());
    assert_source(&outcome, Source::Fetched);
    assert_eq!(outcome.id.as_deref(), Some("p1"));
}

#[test]
fn failed_fetch_is_not_retried_by_the_same_fetcher() {
    let site = Site::start(Reply::Status(500));
    let dns = zone_with_id("1");
    let (_tmp, cache) = cache();
    let fetcher = site.fetcher();
    let first = policy_for(DOMAIN, &resolver(&dns), &fetcher, &cache, now());
    assert_source(&first, Source::Unavailable);
    site.server.set(Reply::Policy(ENFORCE.into()));
    let second = policy_for(DOMAIN, &resolver(&dns), &fetcher, &cache, now());
    assert_eq!(second, first, "the same failure, remembered");
    assert_eq!(site.server.requests().len(), 1);
    // The next run (a new fetcher) tries again.
    let third = policy_for(DOMAIN, &resolver(&dns), &site.fetcher(), &cache, now());
    assert_source(&third, Source::Fetched);
}

#[test]
fn policy_past_half_its_life_is_refreshed_before_it_expires() {
    let site = Site::start(Reply::Policy(ENFORCE.into()));
    let (_tmp, cache) = cache();
    let dns = zone_with_id("1");
    policy_for(DOMAIN, &resolver(&dns), &site.fetcher(), &cache, now());

    let before_half = now() + Duration::from_secs(43_199);
    let outcome = policy_for(
        DOMAIN,
        &resolver(&dns),
        &site.fetcher(),
        &cache,
        before_half,
    );
    assert_source(&outcome, Source::Cached);
    assert_eq!(site.server.requests().len(), 1);

    let half = now() + Duration::from_secs(43_200);
    let outcome = policy_for(DOMAIN, &resolver(&dns), &site.fetcher(), &cache, half);
    assert_source(&outcome, Source::Fetched);
    assert_eq!(site.server.requests().len(), 2);
    let entry = cache.load(DOMAIN).unwrap().unwrap();
    assert_eq!(
        entry.expires_at,
        secs(half) + 86400,
        "its life starts again"
    );
}

#[test]
fn failed_refresh_keeps_the_cached_policy() {
    let mut site = Site::start(Reply::Policy(ENFORCE.into()));
    let (_tmp, cache) = cache();
    let dns = zone_with_id("1");
    let fetcher = site.fetcher();
    policy_for(DOMAIN, &resolver(&dns), &fetcher, &cache, now());
    site.server.stop();

    let late = now() + Duration::from_secs(80_000);
    let outcome = policy_for(DOMAIN, &resolver(&dns), &fetcher, &cache, late);
    assert_source(&outcome, Source::Cached);
    assert_eq!(outcome.label(), Some("mta-sts enforce"));
    assert!(
        notes(&outcome).contains("the cached policy stays"),
        "{outcome:#?}"
    );
    assert_eq!(
        cache.load(DOMAIN).unwrap().unwrap().expires_at,
        secs(now()) + 86400,
        "unchanged"
    );
}
