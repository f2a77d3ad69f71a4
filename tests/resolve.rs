//! The resolve module through its public API, against a DNS server the test starts on
//! 127.0.0.1 (RFC 5321 §5.1, RFC 7505).

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::common::dns::*;
use hickory_server::proto::rr::RecordType;
use smtpsend::ExitStatus;
use smtpsend::delivery::resolve::{MailHost, Resolver, address_literal};

/// A resolver for `server`, quick to give up so a failing test fails fast.
fn resolver(server: &DnsServer) -> Resolver {
    Resolver::with_server(server.addr())
        .expect("resolver")
        .with_timeout(Duration::from_secs(2), 2)
}

fn names(hosts: &[MailHost]) -> Vec<&str> {
    hosts.iter().map(|h| h.name.as_str()).collect()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().expect("IP")).collect()
}

#[test]
fn mx_hosts_come_in_preference_order() {
    let server = DnsServer::start(&[
        ("one.test", Mx(20, "mx2.one.test")),
        ("one.test", Mx(10, "mx1.one.test")),
        ("one.test", Mx(30, "mx3.one.test")),
        ("mx1.one.test", A("127.0.0.2")),
    ]);
    let hosts = resolver(&server).mail_hosts("one.test").expect("MX");
    assert_eq!(
        names(&hosts),
        ["mx1.one.test", "mx2.one.test", "mx3.one.test"]
    );
    assert_eq!(
        hosts.iter().map(|h| h.preference).collect::<Vec<_>>(),
        [10, 20, 30]
    );
    assert!(hosts.iter().all(|h| !h.implicit));
}

#[test]
fn equal_preferences_are_shuffled_and_the_domain_asked_once() {
    let server = DnsServer::start(&[
        ("two.test", Mx(10, "a.two.test")),
        ("two.test", Mx(10, "b.two.test")),
        ("two.test", Mx(20, "last.two.test")),
    ]);
    let r = resolver(&server);
    let mut orders = HashSet::new();
    for _ in 0..50 {
        let hosts = r.mail_hosts("two.test").expect("MX");
        let got = names(&hosts);
        assert_eq!(
            got[..2].iter().copied().collect::<HashSet<_>>(),
            HashSet::from(["a.two.test", "b.two.test"])
        );
        assert_eq!(got[2], "last.two.test");
        orders.insert(got.join(" "));
    }
    assert_eq!(orders.len(), 2, "both orders of the tie appear: {orders:?}");
    assert_eq!(server.count("two.test", RecordType::MX), 1);
}

#[test]
fn no_mx_means_the_domain_itself_is_the_mail_host() {
    let server = DnsServer::start(&[("plain.test", A("127.0.0.3"))]);
    let r = resolver(&server);
    let hosts = r.mail_hosts("plain.test").expect("implicit MX");
    assert_eq!(
        hosts,
        [MailHost {
            name: "plain.test".into(),
            preference: 0,
            implicit: true
        }]
    );
    assert_eq!(r.addresses(&hosts[0].name).expect("A"), ips(&["127.0.0.3"]));
    // The address check made for the implicit MX is the one addresses() used.
    assert_eq!(server.count("plain.test", RecordType::A), 1);
}

#[test]
fn no_mx_and_no_address_exits_68() {
    let server = DnsServer::start(&[("textonly.test", Txt("v=spf1 -all"))]);
    let err = resolver(&server)
        .mail_hosts("textonly.test")
        .expect_err("no mail host");
    assert_eq!(err.exit_status(), ExitStatus::NoHost);
    assert_eq!(err.exit_status().code(), 68);
    assert!(err.to_string().contains("no A or AAAA"), "{err}");
}

#[test]
fn null_mx_exits_69_and_asks_no_address() {
    let server = DnsServer::start(&[("nomail.test", Mx(0, ".")), ("nomail.test", A("127.0.0.9"))]);
    let r = resolver(&server);
    let err = r.mail_hosts("nomail.test").expect_err("null MX");
    assert_eq!(err.exit_status(), ExitStatus::Unavailable);
    assert_eq!(err.exit_status().code(), 69);
    assert_eq!(
        err.to_string(),
        "nomail.test does not accept mail (null MX, RFC 7505)"
    );
    assert_eq!(server.count("nomail.test", RecordType::A), 0);
    assert_eq!(server.count("nomail.test", RecordType::AAAA), 0);
}

#[test]
fn nxdomain_exits_68() {
    let server = DnsServer::start(&[("one.test", A("127.0.0.2"))]);
    let r = resolver(&server);
    let err = r.mail_hosts("nowhere.test").expect_err("NXDOMAIN");
    assert_eq!(err.exit_status(), ExitStatus::NoHost);
    assert_eq!(err.exit_status().code(), 68);
    assert_eq!(
        err.to_string(),
        "nowhere.test: no such domain (DNS NXDOMAIN)"
    );
    let err = r.addresses("mx.nowhere.test").expect_err("NXDOMAIN");
    assert_eq!(err.exit_status(), ExitStatus::NoHost);
}

#[test]
fn servfail_exits_75_and_is_not_asked_again() {
    let server = DnsServer::start(&[("broken.test", ServFail)]);
    let r = resolver(&server);
    let err = r.mail_hosts("broken.test").expect_err("SERVFAIL");
    assert_eq!(err.exit_status(), ExitStatus::TempFail);
    assert_eq!(err.exit_status().code(), 75);
    assert_eq!(
        err.to_string(),
        "broken.test: DNS MX lookup: server failure (SERVFAIL)"
    );
    let asked = server.count("broken.test", RecordType::MX);
    assert!(asked >= 1);
    let again = r.mail_hosts("broken.test").expect_err("SERVFAIL");
    assert_eq!(again.exit_status(), ExitStatus::TempFail);
    assert_eq!(server.count("broken.test", RecordType::MX), asked);
}

#[test]
fn refused_exits_75() {
    let server = DnsServer::start(&[("refusing.test", Refused)]);
    let err = resolver(&server)
        .mail_hosts("refusing.test")
        .expect_err("REFUSED");
    assert_eq!(err.exit_status(), ExitStatus::TempFail);
    assert!(err.to_string().contains("REFUSED"), "{err}");
}

#[test]
fn servfail_for_a_mail_host_address_exits_75() {
    let server = DnsServer::start(&[
        ("four.test", Mx(10, "mx.four.test")),
        ("mx.four.test", ServFail),
    ]);
    let r = resolver(&server);
    let hosts = r.mail_hosts("four.test").expect("MX");
    let err = r.addresses(&hosts[0].name).expect_err("SERVFAIL");
    assert_eq!(err.exit_status(), ExitStatus::TempFail);
    assert!(
        err.to_string()
            .starts_with("mx.four.test: DNS A/AAAA lookup")
    );
}

#[test]
fn unanswered_query_times_out_with_75_quickly() {
    let silent = SilentServer::start();
    let r = Resolver::with_server(silent.addr())
        .expect("resolver")
        .with_timeout(Duration::from_millis(300), 2);
    let started = Instant::now();
    let err = r.mail_hosts("slow.test").expect_err("timeout");
    let elapsed = started.elapsed();
    assert_eq!(err.exit_status(), ExitStatus::TempFail);
    assert!(
        err.to_string().starts_with("slow.test: DNS MX lookup"),
        "{err}"
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    // Asked once per run: the second call does not wait again.
    let started = Instant::now();
    let again = r.mail_hosts("slow.test").expect_err("timeout");
    assert_eq!(again.exit_status(), ExitStatus::TempFail);
    assert!(started.elapsed() < Duration::from_millis(100));
}

#[test]
fn cname_chain_to_the_mail_host_is_followed() {
    let server = DnsServer::start(&[
        ("three.test", Mx(10, "mail.three.test")),
        ("mail.three.test", Cname("alias.elsewhere.test")),
        ("alias.elsewhere.test", Cname("real.elsewhere.test")),
        ("real.elsewhere.test", A("127.0.0.4")),
    ]);
    let r = resolver(&server);
    let hosts = r.mail_hosts("three.test").expect("MX");
    assert_eq!(names(&hosts), ["mail.three.test"]);
    assert_eq!(
        r.addresses("mail.three.test").expect("A"),
        ips(&["127.0.0.4"])
    );
}

#[test]
fn cname_domain_uses_the_targets_mx() {
    // RFC 5321 §5.1: a CNAME's target is processed as if it were the initial name.
    let server = DnsServer::start(&[
        ("www.five.test", Cname("five.test")),
        ("five.test", Mx(10, "mx.five.test")),
    ]);
    let hosts = resolver(&server).mail_hosts("www.five.test").expect("MX");
    assert_eq!(names(&hosts), ["mx.five.test"]);
    assert!(!hosts[0].implicit);
}

#[test]
fn aaaa_only_host_has_its_ipv6_address() {
    let server = DnsServer::start(&[("v6.test", Aaaa("::1"))]);
    let r = resolver(&server);
    assert_eq!(r.addresses("v6.test").expect("AAAA"), ips(&["::1"]));
    let hosts = r.mail_hosts("v6.test").expect("implicit MX");
    assert!(hosts[0].implicit);
}

#[test]
fn dual_stack_host_lists_ipv6_then_ipv4() {
    let server = DnsServer::start(&[
        ("dual.test", A("127.0.0.5")),
        ("dual.test", A("127.0.0.6")),
        ("dual.test", Aaaa("::1")),
    ]);
    let got = resolver(&server).addresses("dual.test").expect("addresses");
    assert_eq!(got[0], "::1".parse::<IpAddr>().expect("IP"));
    assert_eq!(
        got[1..].iter().collect::<HashSet<_>>(),
        ips(&["127.0.0.5", "127.0.0.6"]).iter().collect()
    );
}

#[test]
fn host_without_address_exits_68() {
    let server = DnsServer::start(&[("textonly.test", Txt("hello"))]);
    let err = resolver(&server)
        .addresses("textonly.test")
        .expect_err("no address");
    assert_eq!(err.exit_status(), ExitStatus::NoHost);
    assert_eq!(
        err.to_string(),
        "textonly.test: host has no A or AAAA record"
    );
}

#[test]
fn address_literals_need_no_dns() {
    let server = DnsServer::start(&[]);
    let r = resolver(&server);
    for (literal, ip) in [("[127.0.0.1]", "127.0.0.1"), ("[IPv6:::1]", "::1")] {
        assert_eq!(address_literal(literal), Some(ip.parse().expect("IP")));
        let hosts = r.mail_hosts(literal).expect("literal");
        assert_eq!(names(&hosts), [literal]);
        assert_eq!(r.addresses(literal).expect("literal"), ips(&[ip]));
    }
    assert!(server.queries().is_empty(), "{:?}", server.queries());
}

#[test]
fn domains_are_case_insensitive() {
    let server = DnsServer::start(&[("one.test", Mx(10, "MX1.One.Test"))]);
    let r = resolver(&server);
    let upper = r.mail_hosts("ONE.Test").expect("MX");
    let lower = r.mail_hosts("one.test.").expect("MX");
    assert_eq!(upper, lower);
    assert_eq!(names(&upper), ["mx1.one.test"]);
    assert_eq!(server.count("one.test", RecordType::MX), 1);
}

#[test]
fn utf8_domain_is_asked_as_a_labels() {
    let server = DnsServer::start(&[
        ("xn--bcher-kva.test", Mx(10, "mx.xn--bcher-kva.test")),
        ("mx.xn--bcher-kva.test", A("127.0.0.7")),
    ]);
    let r = resolver(&server);
    let hosts = r.mail_hosts("Bücher.test").expect("MX");
    assert_eq!(names(&hosts), ["mx.xn--bcher-kva.test"]);
    assert_eq!(server.count("xn--bcher-kva.test", RecordType::MX), 1);
    assert_eq!(r.addresses(&hosts[0].name).expect("A"), ips(&["127.0.0.7"]));
}

#[test]
fn invalid_domain_exits_68_naming_it() {
    let server = DnsServer::start(&[]);
    let err = resolver(&server)
        .mail_hosts("bad domain.test")
        .expect_err("invalid");
    assert_eq!(err.exit_status(), ExitStatus::NoHost);
    assert!(err.to_string().starts_with("bad domain.test: "), "{err}");
    assert!(server.queries().is_empty());
}
