//! Direct delivery that is secure, through the real binary (issue 18): DANE (RFC 7672) from
//! a DNSSEC-signed tree the test serves on loopback (its root key handed to smtpsend with
//! `--dnssec-trust-anchor`), and MTA-STS (RFC 8461) with a policy served over HTTPS on
//! loopback by a test CA (`--mta-sts-trust-file`, `--mta-sts-port`). The exchangers are
//! scriptable servers on 127.0.0.2 and 127.0.0.3 sharing one port (`--mx-port`).
//!
//! Each case checks what reached the servers (nothing in cleartext, nothing to a host the
//! policy refuses), the exit status (75: deferred) and what `-v` says of the policy.

use std::net::IpAddr;
use std::process::Output;

use crate::common::dns::{A, Cname, DnsServer, Mx, Rec, Tlsa, Txt};
use crate::common::dnssec::{DnssecServer, Zone};
use crate::common::https_server::{PolicyServer, Reply};
use crate::common::server::Builder;
use crate::common::*;

const MX1: &str = "127.0.0.2";
const MX2: &str = "127.0.0.3";

fn ip(text: &str) -> IpAddr {
    text.parse().expect("IP address")
}

fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// An exchanger offering STARTTLS with `pki`'s certificate.
fn tls_mx(pki: &Pki) -> Builder {
    TestServer::starttls(pki).connections(3)
}

/// An exchanger without STARTTLS (or one whose STARTTLS an attacker stripped).
fn plain_mx() -> Builder {
    TestServer::builder().connections(3)
}

/// The servers, in the order given, all on one port.
fn servers(list: Vec<(&str, Builder)>) -> (u16, Vec<TestServer>) {
    start_on_one_port(list.into_iter().map(|(a, b)| (ip(a), b)).collect())
}

/// Direct delivery to bob@DOMAIN with `-v`, resolving through `dns` (DNSSEC from its
/// root key when given), every exchanger on `port`.
fn send(
    dns: std::net::SocketAddr,
    anchor: Option<&std::path::Path>,
    port: u16,
    extra: &[&str],
    rcpt: &str,
) -> Output {
    let mut cmd = smtpsend_direct(dns, port);
    if let Some(anchor) = anchor {
        cmd.arg("--dnssec-trust-anchor").arg(anchor);
    }
    cmd.args(["-v", "-f", SENDER]).args(extra).arg(rcpt);
    run(cmd, MESSAGE)
}

/// [`send`] through the signed tree `dns` to these exchangers (on one port); what each
/// saw, in the order given.
fn via_dane(
    dns: &DnssecServer,
    exchangers: Vec<(&str, Builder)>,
    extra: &[&str],
    rcpt: &str,
) -> (Output, Vec<Transcript>) {
    let (port, started) = servers(exchangers);
    let out = send(dns.addr(), Some(dns.trust_anchor()), port, extra, rcpt);
    (out, started.into_iter().map(TestServer::finish).collect())
}

/// [`send`] to bob@sts.test through `dns` (no DNSSEC) with the policy host's `flags`, to
/// one exchanger presenting `pki`'s certificate; what it saw.
fn via_sts(dns: &DnsServer, pki: &Pki, flags: &[String]) -> (Output, Transcript) {
    let (port, mut started) = servers(vec![(MX1, tls_mx(pki))]);
    let out = send(dns.addr(), None, port, &strs(flags), "bob@sts.test");
    (out, started.remove(0).finish())
}

#[track_caller]
fn assert_said(out: &Output, text: &str) {
    let err = stderr(out);
    assert!(err.contains(text), "stderr lacks {text:?}:\n{err}");
}

/// Nothing of the message reached this server: no MAIL, no data.
#[track_caller]
fn assert_nothing_sent(t: &Transcript, who: &str) {
    assert!(t.never_saw("MAIL"), "{who} saw MAIL");
    assert!(
        t.connections.iter().all(|c| c.messages.is_empty()),
        "{who} received a message"
    );
}

/// [`via_dane`] to bob@dane.test through one exchanger presenting `pki`'s certificate:
/// delivered once, and stderr names `matched` (`dane (3 1 1 matched)`, ...).
#[track_caller]
fn dane_delivers(dns: &DnssecServer, pki: &Pki, matched: &str) {
    let (out, seen) = via_dane(dns, vec![(MX1, tls_mx(pki))], &[], "bob@dane.test");
    let [t] = <[Transcript; 1]>::try_from(seen).expect("one server");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(t.connections[0].messages.len(), 1);
    assert_said(&out, matched);
}

/// [`via_dane`] to bob@dane.test through one exchanger presenting `pki`'s certificate:
/// deferred (75), and nothing reached `who`.
#[track_caller]
fn dane_refuses(dns: &DnssecServer, pki: &Pki, who: &str) {
    let (out, seen) = via_dane(dns, vec![(MX1, tls_mx(pki))], &[], "bob@dane.test");
    let [t] = <[Transcript; 1]>::try_from(seen).expect("one server");
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert_nothing_sent(&t, who);
}

// ---------------------------------------------------------------------------------------
// DANE

/// A self-signed certificate for a name no PKIX client would accept for the MX host:
/// its DANE-EE 3 1 1 record makes it the only certificate the exchanger may present.
#[test]
fn dane_ee_match_delivers_over_tls_to_a_self_signed_exchanger() {
    let pki = Pki::self_signed_for(&["localhost"]);
    let digest = sha256(&pki.spki);
    let zone = [
        ("dane.test", Mx(10, "mx.dane.test")),
        ("mx.dane.test", A(MX1)),
        ("_25._tcp.mx.dane.test", Tlsa(3, 1, 1, &digest)),
    ];
    let dns = DnssecServer::start(&[Zone::signed("dane.test", &zone)]);
    let (port, mut mx) = servers(vec![(MX1, tls_mx(&pki))]);
    let logs = tempfile::tempdir().expect("log dir");
    let log = logs.path().join("delivery.log");
    let logfile = log.display().to_string();
    let out = send(
        dns.addr(),
        Some(dns.trust_anchor()),
        port,
        &["--logfile", &logfile],
        "bob@dane.test",
    );
    let t = mx.remove(0).finish();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let c = t.only();
    assert!(c.saw_in_tls("MAIL"), "MAIL went inside TLS");
    assert_eq!(t.connections[0].messages.len(), 1);
    assert_said(
        &out,
        "mx.dane.test: TLS policy dane (1 usable TLSA records)",
    );
    assert_said(&out, "dane (3 1 1 matched)");
    assert_said(&out, "TLS policy dane (3 1 1 matched)) for bob@dane.test");
    let logged = std::fs::read_to_string(&log).expect("delivery log");
    assert!(
        logged.contains(r#"policy="dane (3 1 1 matched)""#),
        "{logged}"
    );

    // --serverinfo DOMAIN names the policy per exchanger, without sending anything.
    let (port, mut mx) = servers(vec![(MX1, tls_mx(&pki))]);
    let mut cmd = smtpsend_direct(dns.addr(), port);
    cmd.arg("--dnssec-trust-anchor")
        .arg(dns.trust_anchor())
        .args(["--serverinfo", "dane.test"]);
    let out = run(cmd, "");
    let t = mx.remove(0).finish();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("TLS policy: dane (3 1 1 matched)"),
        "{report}"
    );
    assert!(t.never_saw("MAIL"));
}

/// The first exchanger's certificate matches none of its records: it gets nothing, and
/// the second (whose record matches) takes the message. When no exchanger matches, the
/// message is deferred and nothing goes anywhere.
#[test]
fn dane_mismatch_skips_to_the_next_exchanger_then_defers() {
    let good = Pki::self_signed_for(&["localhost"]);
    let bad = Pki::self_signed_for(&["localhost"]);
    let digest = sha256(&good.spki);
    let zone = [
        ("dane.test", Mx(10, "mx1.dane.test")),
        ("dane.test", Mx(20, "mx2.dane.test")),
        ("mx1.dane.test", A(MX1)),
        ("mx2.dane.test", A(MX2)),
        ("_25._tcp.mx1.dane.test", Tlsa(3, 1, 1, &digest)),
        ("_25._tcp.mx2.dane.test", Tlsa(3, 1, 1, &digest)),
    ];
    let dns = DnssecServer::start(&[Zone::signed("dane.test", &zone)]);
    let (out, seen) = via_dane(
        &dns,
        vec![(MX1, tls_mx(&bad)), (MX2, tls_mx(&good))],
        &[],
        "bob@dane.test",
    );
    let [t1, t2] = <[Transcript; 2]>::try_from(seen).expect("servers");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_nothing_sent(&t1, "mx1 (its certificate matches no record)");
    assert_eq!(t2.connections[0].messages.len(), 1, "mx2 took it");
    assert_said(&out, "trying the next exchanger");

    // Both present the wrong certificate: deferred, nothing sent.
    let (out, seen) = via_dane(
        &dns,
        vec![(MX1, tls_mx(&bad)), (MX2, tls_mx(&bad))],
        &[],
        "bob@dane.test",
    );
    let [t1, t2] = <[Transcript; 2]>::try_from(seen).expect("servers");
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert_nothing_sent(&t1, "mx1");
    assert_nothing_sent(&t2, "mx2");
}

/// An attacker strips STARTTLS from the exchanger's EHLO reply: with a usable TLSA record
/// the message waits, it never goes in cleartext.
#[test]
fn dane_with_starttls_stripped_defers_and_sends_nothing_in_cleartext() {
    let pki = Pki::self_signed_for(&["localhost"]);
    let digest = sha256(&pki.spki);
    let zone = [
        ("dane.test", Mx(10, "mx.dane.test")),
        ("mx.dane.test", A(MX1)),
        ("_25._tcp.mx.dane.test", Tlsa(3, 1, 1, &digest)),
    ];
    let dns = DnssecServer::start(&[Zone::signed("dane.test", &zone)]);
    let (out, seen) = via_dane(&dns, vec![(MX1, plain_mx())], &[], "bob@dane.test");
    let [t] = <[Transcript; 1]>::try_from(seen).expect("one server");
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert_nothing_sent(&t, "the stripped exchanger");
}

/// A TLSA answer whose signature does not verify is a temporary failure of that host,
/// never a reason to go without DANE.
#[test]
fn dane_bogus_tlsa_answer_defers() {
    let pki = Pki::self_signed_for(&["localhost"]);
    let digest = sha256(&pki.spki);
    let zone = [
        ("bad.test", Mx(10, "mx.bad.test")),
        ("mx.bad.test", A(MX1)),
        ("_25._tcp.mx.bad.test", Tlsa(3, 1, 1, &digest)),
    ];
    let dns = DnssecServer::start(&[Zone::bogus("bad.test", &zone, "_25._tcp.mx.bad.test")]);
    let (out, seen) = via_dane(&dns, vec![(MX1, tls_mx(&pki))], &[], "bob@bad.test");
    let [t] = <[Transcript; 1]>::try_from(seen).expect("one server");
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(t.connections.is_empty(), "no connection to the exchanger");
}

/// An unsigned zone (an insecure delegation the signed root proves): opportunistic TLS
/// as without DANE, the self-signed certificate used unverified.
#[test]
fn unsigned_zone_is_opportunistic_as_before() {
    let pki = Pki::self_signed_for(&["localhost"]);
    let zone = [
        ("plain.test", Mx(10, "mx.plain.test")),
        ("mx.plain.test", A(MX1)),
    ];
    let dns = DnssecServer::start(&[Zone::unsigned("plain.test", &zone)]);
    let (out, seen) = via_dane(&dns, vec![(MX1, tls_mx(&pki))], &[], "bob@plain.test");
    let [t] = <[Transcript; 1]>::try_from(seen).expect("one server");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(t.only().saw_in_tls("MAIL"));
    assert_said(&out, "mx.plain.test: TLS policy opportunistic");
    assert_said(&out, "certificate not verified; TLS policy opportunistic)");
}

/// DANE-TA (2 1 1): the chain must lead to the named CA and the certificate must carry
/// the MX host's name (RFC 7672 §3.2.2). A certificate from that CA for another name is
/// refused: deferred, nothing sent.
#[test]
fn dane_ta_requires_the_name_too() {
    let (right, wrong_name) = Pki::ca_signed_pair(&["mx.dane.test"], &["elsewhere.test"]);
    let ca = sha256(right.ca_spki.as_ref().expect("CA key"));
    let zone = [
        ("dane.test", Mx(10, "mx.dane.test")),
        ("mx.dane.test", A(MX1)),
        ("_25._tcp.mx.dane.test", Tlsa(2, 1, 1, &ca)),
    ];
    let dns = DnssecServer::start(&[Zone::signed("dane.test", &zone)]);
    dane_delivers(&dns, &right, "dane (2 1 1 matched)");
    dane_refuses(
        &dns,
        &wrong_name,
        "the exchanger with a certificate for another name",
    );
}

/// An exchanger whose MX name is an alias (RFC 7672 §2.2.2, RFC 7671 §7): its TLSA records
/// are looked up at the fully CNAME-expanded name first, and a DANE-TA match may carry that
/// name; where the expanded name has none, the records at the alias's own name apply.
#[test]
fn dane_follows_the_exchangers_cname() {
    let pki = Pki::self_signed_for(&["localhost"]);
    let other = Pki::self_signed_for(&["localhost"]);
    let digest = sha256(&pki.spki);
    let at_expanded = [
        ("dane.test", Mx(10, "mx.dane.test")),
        ("mx.dane.test", Cname("host.dane.test")),
        ("host.dane.test", A(MX1)),
        ("_25._tcp.host.dane.test", Tlsa(3, 1, 1, &digest)),
    ];
    let dns = DnssecServer::start(&[Zone::signed("dane.test", &at_expanded)]);
    dane_delivers(&dns, &pki, "dane (3 1 1 matched)");
    // Another certificate matches nothing at the expanded name: refused, where TLS
    // without DANE (the records looked for only at mx.dane.test) would have taken it.
    dane_refuses(
        &dns,
        &other,
        "the exchanger whose certificate matches no record",
    );

    // DANE-TA: a certificate for the expanded name only is one of the names accepted.
    let (for_host, _) = Pki::ca_signed_pair(&["host.dane.test"], &["elsewhere.test"]);
    let ca = sha256(for_host.ca_spki.as_ref().expect("CA key"));
    let ta = [
        ("dane.test", Mx(10, "mx.dane.test")),
        ("mx.dane.test", Cname("host.dane.test")),
        ("host.dane.test", A(MX1)),
        ("_25._tcp.host.dane.test", Tlsa(2, 1, 1, &ca)),
    ];
    let dns = DnssecServer::start(&[Zone::signed("dane.test", &ta)]);
    dane_delivers(&dns, &for_host, "dane (2 1 1 matched)");

    // Records only at the alias's own name: they are the ones that apply.
    let at_alias = [
        ("dane.test", Mx(10, "mx.dane.test")),
        ("mx.dane.test", Cname("host.dane.test")),
        ("host.dane.test", A(MX1)),
        ("_25._tcp.mx.dane.test", Tlsa(3, 1, 1, &digest)),
    ];
    let dns = DnssecServer::start(&[Zone::signed("dane.test", &at_alias)]);
    dane_refuses(
        &dns,
        &other,
        "the exchanger that does not match the alias's records",
    );
    dane_delivers(&dns, &pki, "dane (3 1 1 matched)");
}

/// `--dane require`: a domain without signed records is deferred, never delivered
/// without DANE; `--dane off` delivers to a DANE domain as before (opportunistic).
#[test]
fn dane_require_and_off() {
    let pki = Pki::self_signed_for(&["localhost"]);
    let zone = [
        ("plain.test", Mx(10, "mx.plain.test")),
        ("mx.plain.test", A(MX1)),
    ];
    let dns = DnssecServer::start(&[Zone::unsigned("plain.test", &zone)]);
    let (out, seen) = via_dane(
        &dns,
        vec![(MX1, tls_mx(&pki))],
        &["--dane", "require"],
        "bob@plain.test",
    );
    let [t] = <[Transcript; 1]>::try_from(seen).expect("one server");
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert_said(&out, "DANE is required");
    assert!(t.connections.is_empty());

    let other = Pki::self_signed_for(&["localhost"]);
    let digest = sha256(&other.spki);
    let zone = [
        ("dane.test", Mx(10, "mx.dane.test")),
        ("mx.dane.test", A(MX1)),
        ("_25._tcp.mx.dane.test", Tlsa(3, 1, 1, &digest)),
    ];
    let dns = DnssecServer::start(&[Zone::signed("dane.test", &zone)]);
    let (out, seen) = via_dane(
        &dns,
        vec![(MX1, tls_mx(&pki))],
        &["--dane", "off"],
        "bob@dane.test",
    );
    let [t] = <[Transcript; 1]>::try_from(seen).expect("one server");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(t.connections[0].messages.len(), 1);
    assert_said(&out, "TLS policy opportunistic");
}

// ---------------------------------------------------------------------------------------
// MTA-STS

const DOMAIN: &str = "sts.test";

fn policy(mode: &str, mx: &str) -> String {
    format!("version: STSv1\nmode: {mode}\nmx: {mx}\nmax_age: 86400\n")
}

/// The domain's DNS: MX hosts, the `_mta-sts` record with `id`, and the policy host.
fn sts_zone(id: &str) -> DnsServer {
    let record = format!("v=STSv1; id={id};");
    let records: Vec<(&str, Rec<'_>)> = vec![
        (DOMAIN, Mx(10, "mx1.sts.test")),
        ("mx1.sts.test", A(MX1)),
        ("_mta-sts.sts.test", Txt(&record)),
        ("mta-sts.sts.test", A("127.0.0.1")),
    ];
    DnsServer::start(&records)
}

/// The policy host of sts.test with a certificate from a test CA, serving `text`.
fn policy_site(text: &str) -> (Pki, PolicyServer) {
    policy_site_of(DOMAIN, text)
}

/// The policy host of `domain`, `mta-sts.DOMAIN`, serving `text`.
fn policy_site_of(domain: &str, text: &str) -> (Pki, PolicyServer) {
    let pki = Pki::ca_signed_for(&[&format!("mta-sts.{domain}")]);
    let server = PolicyServer::start(&pki, Reply::Policy(text.to_string()));
    (pki, server)
}

/// The flags that point smtpsend at the policy host, with the spool (and so the policy
/// cache beside it) in `state`.
fn sts_flags(site: &(Pki, PolicyServer), state: &std::path::Path) -> Vec<String> {
    vec![
        "--mta-sts-trust-file".into(),
        site.0.trust_file.display().to_string(),
        "--mta-sts-port".into(),
        site.1.port().to_string(),
        "--queue-dir".into(),
        state.join("queue").display().to_string(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `enforce` with an exchanger the policy does not list: no connection, deferred.
#[test]
fn mta_sts_enforce_refuses_an_exchanger_not_in_the_policy() {
    let dns = sts_zone("1");
    let site = policy_site(&policy("enforce", "mx9.sts.test"));
    let state = tempfile::tempdir().expect("state dir");
    let mx_pki = Pki::ca_signed_for(&["mx1.sts.test"]);
    let (port, mut mx) = servers(vec![(MX1, tls_mx(&mx_pki))]);
    let flags = sts_flags(&site, state.path());
    let out = send(dns.addr(), None, port, &strs(&flags), "bob@sts.test");
    let t = mx.remove(0).finish();
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(
        t.connections.is_empty(),
        "no connection to an unlisted exchanger"
    );
    assert_said(
        &out,
        "not among the MX hosts the MTA-STS policy of sts.test allows",
    );
}

/// `enforce` with a listed exchanger: its certificate must verify for its name. Not
/// trusted → deferred, nothing sent; trusted → delivered, said so.
#[test]
fn mta_sts_enforce_needs_a_verified_certificate() {
    let dns = sts_zone("1");
    let site = policy_site(&policy("enforce", "mx1.sts.test"));
    let state = tempfile::tempdir().expect("state dir");
    let mx_pki = Pki::ca_signed_for(&["mx1.sts.test"]);
    let flags = sts_flags(&site, state.path());

    let (out, t) = via_sts(&dns, &mx_pki, &flags);
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert_nothing_sent(&t, "an exchanger with an unverified certificate");

    let mut trusted = flags.clone();
    trusted.extend([
        "--tls-trust-file".into(),
        mx_pki.trust_file.display().to_string(),
    ]);
    let (out, t) = via_sts(&dns, &mx_pki, &trusted);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(t.only().saw_in_tls("MAIL"));
    assert_said(&out, "mx1.sts.test: TLS policy mta-sts enforce");
    assert_said(&out, "certificate verified; TLS policy mta-sts enforce)");
}

/// `testing`: delivered as without a policy, and `-v` says the policy was in testing.
#[test]
fn mta_sts_testing_delivers_and_says_so() {
    let dns = sts_zone("1");
    let site = policy_site(&policy("testing", "mx9.sts.test"));
    let state = tempfile::tempdir().expect("state dir");
    let mx_pki = Pki::ca_signed_for(&["mx1.sts.test"]);
    let flags = sts_flags(&site, state.path());
    let (out, t) = via_sts(&dns, &mx_pki, &flags);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(t.connections[0].messages.len(), 1);
    assert_said(&out, "TLS policy mta-sts testing (host not in the policy)");
}

/// The policy is cached beside the spool: with its host gone, the cached `enforce` still
/// applies; a new `id` in DNS makes smtpsend fetch it again.
#[test]
fn mta_sts_cached_policy_outlives_its_host_and_a_new_id_refetches() {
    let state = tempfile::tempdir().expect("state dir");
    let mx_pki = Pki::ca_signed_for(&["mx1.sts.test"]);
    let mut site = policy_site(&policy("enforce", "mx9.sts.test"));
    let flags = sts_flags(&site, state.path());
    let dns = sts_zone("1");
    let (port, mut mx) = servers(vec![(MX1, tls_mx(&mx_pki))]);
    let out = send(dns.addr(), None, port, &strs(&flags), "bob@sts.test");
    drop(mx.remove(0).finish());
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert_eq!(site.1.requests().len(), 1, "fetched once");

    // The policy host is gone: the cached policy still refuses mx1.
    site.1.stop();
    let (out, t) = via_sts(&dns, &mx_pki, &flags);
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(t.connections.is_empty(), "the cached policy still applies");

    // A new id: the new policy (testing) is fetched and applies.
    let fresh = PolicyServer::start(&site.0, Reply::Policy(policy("testing", "mx9.sts.test")));
    let mut flags = flags.clone();
    flags[3] = fresh.port().to_string();
    let dns = sts_zone("2");
    let (out, t) = via_sts(&dns, &mx_pki, &flags);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(fresh.requests().len(), 1, "fetched again for the new id");
    assert_eq!(t.connections[0].messages.len(), 1);
}

/// `--dry-run` on the direct route names the policies a send would apply, and looks up
/// nothing.
#[test]
fn dry_run_names_the_policies() {
    let dns = DnsServer::start(&[]);
    let mut cmd = smtpsend_direct(dns.addr(), 1);
    cmd.args([
        "--dry-run",
        "--dane",
        "require",
        "-f",
        SENDER,
        "bob@sts.test",
    ]);
    let out = run(cmd, MESSAGE);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("recipient bob@sts.test: direct delivery to the mail exchangers of sts.test"),
        "{text}"
    );
    assert!(
        text.contains("TLS opportunistic, DANE require, MTA-STS on)"),
        "{text}"
    );
    assert!(dns.queries().is_empty(), "a dry run asked DNS");
}

/// TLSA records that are all unusable for SMTP (PKIX-EE, usage 1) leave the host to the
/// domain's MTA-STS policy: in mode enforce an exchanger it does not list is refused.
#[test]
fn unusable_tlsa_leaves_the_host_to_mta_sts_enforce() {
    let pki = Pki::self_signed_for(&["localhost"]);
    let digest = sha256(&pki.spki);
    let site = policy_site_of("dane.test", &policy("enforce", "mx9.dane.test"));
    let record = "v=STSv1; id=1;";
    let zone = [
        ("dane.test", Mx(10, "mx.dane.test")),
        ("mx.dane.test", A(MX1)),
        ("_25._tcp.mx.dane.test", Tlsa(1, 1, 1, &digest)),
        ("_mta-sts.dane.test", Txt(record)),
        ("mta-sts.dane.test", A("127.0.0.1")),
    ];
    let dns = DnssecServer::start(&[Zone::signed("dane.test", &zone)]);
    let state = tempfile::tempdir().expect("state dir");
    let flags = sts_flags(&site, state.path());
    let (out, seen) = via_dane(
        &dns,
        vec![(MX1, tls_mx(&pki))],
        &strs(&flags),
        "bob@dane.test",
    );
    let [t] = <[Transcript; 1]>::try_from(seen).expect("one server");
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(t.connections.is_empty(), "refused by the MTA-STS policy");
    assert_said(
        &out,
        "not among the MX hosts the MTA-STS policy of dane.test allows",
    );
}

/// `--tls off` turns off TLS where nothing demands it, but not DANE that is required:
/// the exchanger with a matching TLSA record still gets STARTTLS, authenticated.
#[test]
fn tls_off_keeps_a_required_dane() {
    let pki = Pki::self_signed_for(&["localhost"]);
    let digest = sha256(&pki.spki);
    let zone = [
        ("dane.test", Mx(10, "mx.dane.test")),
        ("mx.dane.test", A(MX1)),
        ("_25._tcp.mx.dane.test", Tlsa(3, 1, 1, &digest)),
    ];
    let dns = DnssecServer::start(&[Zone::signed("dane.test", &zone)]);
    let (out, seen) = via_dane(
        &dns,
        vec![(MX1, tls_mx(&pki))],
        &["--tls", "off", "--dane", "require"],
        "bob@dane.test",
    );
    let [t] = <[Transcript; 1]>::try_from(seen).expect("one server");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(t.only().saw_in_tls("MAIL"), "inside TLS despite --tls off");
    assert_said(&out, "dane (3 1 1 matched)");
}
