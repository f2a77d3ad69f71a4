//! DANE for SMTP (RFC 7672) at library level: DNSSEC-validated MX, address and TLSA lookups
//! against a signed tree the test serves on 127.0.0.1 (`common/dnssec.rs`), and the TLSA
//! verifier against certificates made with rcgen, directly and in real rustls handshakes
//! over loopback.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::common::Pki;
use crate::common::dns::{A, Cname, Mx, Rec, ServFail, Tlsa as TlsaRec, Txt};
use crate::common::dnssec::{DnssecServer, Zone};
use pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::client::danger::ServerCertVerifier;
use smtpsend::ExitStatus;
use smtpsend::delivery::policy::dane::{
    self, DaneMatch, DanePolicy, DaneVerifier, Tlsa, reference_identifiers,
};
use smtpsend::delivery::resolve::{Resolver, Secured, Security};

fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

fn sha512(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA512, data)
        .as_ref()
        .to_vec()
}

/// A validating resolver for `server`, trusting its root key, quick to give up.
fn validating(server: &DnssecServer) -> Resolver {
    Resolver::with_server(server.addr())
        .expect("resolver")
        .with_timeout(Duration::from_secs(2), 2)
        .with_dnssec(Some(server.trust_anchor()))
        .expect("trust anchor")
}

// ---------------------------------------------------------------------------------------
// DNS: what DNSSEC says of MX, address and TLSA answers.

#[test]
fn secure_mx_address_and_tlsa_read_as_secure() {
    let digest = [0x5a; 32];
    let zone = [
        ("dane.test", Mx(10, "mx.dane.test")),
        ("mx.dane.test", A("127.0.0.2")),
        ("_25._tcp.mx.dane.test", TlsaRec(3, 1, 1, &digest)),
        ("_25._tcp.mx.dane.test", TlsaRec(2, 0, 1, &[0x11; 32])),
    ];
    let server = DnssecServer::start(&[Zone::signed("dane.test", &zone)]);
    let r = validating(&server);

    let hosts = r.mail_hosts_secured("dane.test").expect("MX");
    assert_eq!(hosts.security, Security::Secure);
    assert_eq!(hosts.value.len(), 1);
    assert_eq!(hosts.value[0].name, "mx.dane.test");

    let addrs = r.addresses_secured("mx.dane.test").expect("A");
    assert_eq!(addrs.security, Security::Secure);
    assert_eq!(
        addrs.value.ips,
        ["127.0.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(addrs.value.expanded, None, "not an alias");

    let tlsa = r.tlsa("mx.dane.test", 25).expect("TLSA");
    assert_eq!(tlsa.security, Security::Secure);
    let mut got = tlsa.value.clone();
    got.sort_by_key(|t| t.usage);
    assert_eq!(
        got,
        [
            Tlsa::new(2, 0, 1, vec![0x11; 32]),
            Tlsa::new(3, 1, 1, digest.to_vec())
        ]
    );
    assert!(matches!(DanePolicy::from_tlsa(&tlsa), DanePolicy::Required(r) if r.len() == 2));
    // The TLSA RRset was asked for at _25._tcp.HOST, and once.
    assert_eq!(
        server.count(
            "_25._tcp.mx.dane.test",
            hickory_server::proto::rr::RecordType::TLSA
        ),
        1
    );
    r.tlsa("mx.dane.test", 25).expect("cached");
    assert_eq!(
        server.count(
            "_25._tcp.mx.dane.test",
            hickory_server::proto::rr::RecordType::TLSA
        ),
        1
    );
}

/// An alias: the addresses carry the fully CNAME-expanded name, secure when every link of
/// the chain is (RFC 7672 §2.2.2 looks for TLSA records there first).
#[test]
fn an_alias_reports_its_expanded_name() {
    let zone = [
        ("dane.test", Mx(10, "mx.dane.test")),
        ("mx.dane.test", Cname("hop.dane.test")),
        ("hop.dane.test", Cname("host.dane.test")),
        ("host.dane.test", A("127.0.0.2")),
    ];
    let server = DnssecServer::start(&[Zone::signed("dane.test", &zone)]);
    let addrs = validating(&server)
        .addresses_secured("MX.dane.test.")
        .expect("A");
    assert_eq!(addrs.security, Security::Secure);
    assert_eq!(addrs.value.expanded.as_deref(), Some("host.dane.test"));
    assert_eq!(
        addrs.value.ips,
        ["127.0.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[test]
fn missing_tlsa_in_a_signed_zone_is_a_secure_denial() {
    let zone = [
        ("deny.test", Mx(10, "mx.deny.test")),
        ("deny.test", Mx(20, "mx2.deny.test")),
        ("mx.deny.test", A("127.0.0.2")),
        ("mx2.deny.test", A("127.0.0.3")),
        // The name exists, without a TLSA record: NODATA rather than NXDOMAIN.
        ("_25._tcp.mx2.deny.test", Txt("not a TLSA record")),
    ];
    let server = DnssecServer::start(&[Zone::signed("deny.test", &zone)]);
    let r = validating(&server);
    let denied = Secured {
        value: Vec::new(),
        security: Security::Secure,
    };
    assert_eq!(r.tlsa("mx.deny.test", 25).expect("NXDOMAIN"), denied);
    assert_eq!(r.tlsa("mx2.deny.test", 25).expect("NODATA"), denied);
    assert_eq!(DanePolicy::from_tlsa(&denied), DanePolicy::Absent);
}

#[test]
fn implicit_mx_in_a_signed_zone_is_secure() {
    let zone = [("bare.test", A("127.0.0.3"))];
    let server = DnssecServer::start(&[Zone::signed("bare.test", &zone)]);
    let r = validating(&server);
    let hosts = r.mail_hosts_secured("bare.test").expect("implicit MX");
    assert!(hosts.value[0].implicit);
    assert_eq!(hosts.security, Security::Secure);
}

#[test]
fn unsigned_zone_reads_as_insecure() {
    let digest = [0x5a; 32];
    let zone = [
        ("plain.test", Mx(10, "mx.plain.test")),
        ("mx.plain.test", A("127.0.0.2")),
        ("_25._tcp.mx.plain.test", TlsaRec(3, 1, 1, &digest)),
    ];
    let server = DnssecServer::start(&[Zone::unsigned("plain.test", &zone)]);
    let r = validating(&server);
    let hosts = r.mail_hosts_secured("plain.test").expect("MX");
    assert_eq!(hosts.security, Security::Insecure);
    assert_eq!(hosts.value[0].name, "mx.plain.test");
    let addrs = r.addresses_secured("mx.plain.test").expect("A");
    assert_eq!(addrs.security, Security::Insecure);
    let tlsa = r.tlsa("mx.plain.test", 25).expect("TLSA");
    assert_eq!(tlsa.security, Security::Insecure);
    assert_eq!(tlsa.value, [Tlsa::new(3, 1, 1, digest.to_vec())]);
    // TLSA records an unsigned zone publishes are no policy (RFC 7672 §2.2).
    assert_eq!(DanePolicy::from_tlsa(&tlsa), DanePolicy::Absent);
    // A name that does not exist there is still "no such domain", not a failure.
    let err = r.mail_hosts("nowhere.plain.test").expect_err("NXDOMAIN");
    assert_eq!(err.exit_status(), ExitStatus::NoHost, "{err}");
}

#[test]
fn signed_and_unsigned_zones_side_by_side() {
    let signed = [
        ("a.test", Mx(10, "mx.a.test")),
        ("mx.a.test", A("127.0.0.2")),
    ];
    let unsigned = [
        ("b.test", Mx(10, "mx.b.test")),
        ("mx.b.test", A("127.0.0.3")),
    ];
    let server = DnssecServer::start(&[
        Zone::signed("a.test", &signed),
        Zone::unsigned("b.test", &unsigned),
    ]);
    let r = validating(&server);
    assert!(r.mail_hosts_secured("a.test").expect("MX").is_secure());
    assert!(!r.mail_hosts_secured("b.test").expect("MX").is_secure());
}

#[test]
fn bogus_mx_is_a_temporary_failure() {
    let zone = [
        ("bad.test", Mx(10, "mx.bad.test")),
        ("mx.bad.test", A("127.0.0.2")),
    ];
    let server = DnssecServer::start(&[Zone::bogus("bad.test", &zone, "bad.test")]);
    let r = validating(&server);
    let err = r.mail_hosts("bad.test").expect_err("bogus");
    assert_eq!(err.exit_status(), ExitStatus::TempFail, "{err}");
    assert_eq!(err.exit_status().code(), 75);
    assert!(err.to_string().contains("DNSSEC"), "{err}");
    // The same server, not validating: the data, as before DANE.
    let plain = Resolver::with_server(server.addr()).expect("resolver");
    let hosts = plain.mail_hosts_secured("bad.test").expect("MX");
    assert_eq!(hosts.security, Security::Insecure);
    assert_eq!(hosts.value[0].name, "mx.bad.test");
}

#[test]
fn bogus_tlsa_is_a_temporary_failure_for_that_host_only() {
    let zone = [
        ("half.test", Mx(10, "mx.half.test")),
        ("mx.half.test", A("127.0.0.2")),
        ("_25._tcp.mx.half.test", TlsaRec(3, 1, 1, &[0x5a; 32])),
    ];
    let server = DnssecServer::start(&[Zone::bogus("half.test", &zone, "_25._tcp.mx.half.test")]);
    let r = validating(&server);
    assert!(r.mail_hosts_secured("half.test").expect("MX").is_secure());
    assert!(r.addresses_secured("mx.half.test").expect("A").is_secure());
    let err = r.tlsa("mx.half.test", 25).expect_err("bogus TLSA");
    assert_eq!(err.exit_status(), ExitStatus::TempFail, "{err}");
    assert!(
        err.to_string()
            .starts_with("mx.half.test: DNS TLSA lookup: DNSSEC"),
        "{err}"
    );
}

#[test]
fn tlsa_servfail_is_a_temporary_failure() {
    let zone = [
        ("sf.test", Mx(10, "mx.sf.test")),
        ("mx.sf.test", A("127.0.0.2")),
        ("_25._tcp.mx.sf.test", ServFail),
    ];
    let server = DnssecServer::start(&[Zone::signed("sf.test", &zone)]);
    let err = validating(&server)
        .tlsa("mx.sf.test", 25)
        .expect_err("SERVFAIL");
    assert_eq!(err.exit_status(), ExitStatus::TempFail, "{err}");
}

#[test]
fn a_root_the_anchor_does_not_vouch_for_is_bogus() {
    let zone = [
        ("dane.test", Mx(10, "mx.dane.test")),
        ("mx.dane.test", A("127.0.0.2")),
    ];
    let server = DnssecServer::start(&[Zone::signed("dane.test", &zone)]);
    // Another tree's root key: the test root's signatures lead to no trusted key.
    let other: [(&str, Rec<'_>); 0] = [];
    let stranger = DnssecServer::start(&[Zone::signed("other.test", &other)]);
    let r = Resolver::with_server(server.addr())
        .expect("resolver")
        .with_timeout(Duration::from_secs(2), 2)
        .with_dnssec(Some(stranger.trust_anchor()))
        .expect("trust anchor");
    let err = r.mail_hosts("dane.test").expect_err("no chain of trust");
    assert_eq!(err.exit_status(), ExitStatus::TempFail, "{err}");
}

// ---------------------------------------------------------------------------------------
// TLS: the TLSA verifier.

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Run the verifier as rustls would, with the chain `pki` presents.
fn verify(records: &[Tlsa], refs: &[&str], pki: &Pki) -> Result<DaneMatch, String> {
    verify_chain(records, refs, &pki.chain)
}

/// Run the verifier as rustls would, with this chain, leaf first.
fn verify_chain(
    records: &[Tlsa],
    refs: &[&str],
    chain: &[CertificateDer<'static>],
) -> Result<DaneMatch, String> {
    let verifier = DaneVerifier::new(records, &names(refs)).expect("usable records");
    let server_name = ServerName::try_from("mx.dane.test").expect("server name");
    verifier
        .verify_server_cert(&chain[0], &chain[1..], &server_name, &[], UnixTime::now())
        .map_err(|e| e.to_string())?;
    Ok(verifier.matched().expect("a match is recorded"))
}

#[test]
fn dane_ee_3_1_1_matches_a_self_signed_certificate_for_another_name() {
    // Self-signed, for localhost only: no PKIX client would accept it for mx.dane.test.
    let pki = Pki::self_signed();
    let record = Tlsa::new(3, 1, 1, sha256(&pki.spki));
    let m = verify(std::slice::from_ref(&record), &["mx.dane.test"], &pki).expect("3 1 1 match");
    assert_eq!(m.record, record);
    assert_eq!(m.depth, 0);
    assert_eq!(m.to_string(), "dane (3 1 1 matched)");
}

#[test]
fn dane_ee_3_0_1_matches_the_whole_certificate() {
    let pki = Pki::self_signed();
    let record = Tlsa::new(3, 0, 1, sha256(pki.chain[0].as_ref()));
    let m = verify(&[record], &["mx.dane.test"], &pki).expect("3 0 1 match");
    assert_eq!(m.to_string(), "dane (3 0 1 matched)");
}

#[test]
fn dane_ee_3_1_2_and_3_1_0_match_the_key() {
    let pki = Pki::self_signed();
    let m = verify(&[Tlsa::new(3, 1, 2, sha512(&pki.spki))], &["x.test"], &pki).expect("3 1 2");
    assert_eq!(m.to_string(), "dane (3 1 2 matched)");
    let m = verify(&[Tlsa::new(3, 1, 0, pki.spki.clone())], &["x.test"], &pki).expect("3 1 0");
    assert_eq!(m.to_string(), "dane (3 1 0 matched)");
}

#[test]
fn dane_ee_ignores_expiry() {
    let pki = Pki::self_signed_expired();
    verify(
        &[Tlsa::new(3, 1, 1, sha256(&pki.spki))],
        &["mx.dane.test"],
        &pki,
    )
    .expect("DANE-EE has no date check (RFC 7671 §5.1)");
}

#[test]
fn mismatch_is_refused() {
    let pki = Pki::self_signed();
    let other = Pki::self_signed();
    let records = [
        Tlsa::new(3, 1, 1, sha256(&other.spki)),
        Tlsa::new(3, 0, 1, sha256(other.chain[0].as_ref())),
    ];
    let err = verify(&records, &["mx.dane.test"], &pki).expect_err("no record matches");
    assert!(
        err.contains("matches none of the TLSA records (3 1 1, 3 0 1)"),
        "{err}"
    );
}

#[test]
fn dane_ta_with_a_chain_and_the_right_name_is_accepted() {
    let pki = Pki::ca_signed_for(&["mx.dane.test"]);
    let ca = &pki.chain[1];
    let m = verify(
        &[Tlsa::new(2, 0, 1, sha256(ca.as_ref()))],
        &["mx.dane.test"],
        &pki,
    )
    .expect("2 0 1 match");
    assert_eq!(m.to_string(), "dane (2 0 1 matched)");
    assert_eq!(m.depth, 1);
    let ca_spki = pki.ca_spki.clone().expect("CA key");
    verify(
        &[Tlsa::new(2, 1, 1, sha256(&ca_spki))],
        &["mx.dane.test"],
        &pki,
    )
    .expect("2 1 1");
}

#[test]
fn dane_ta_accepts_the_next_hop_domain_and_wildcards() {
    // Named for the recipient domain only: valid when that is a reference identifier.
    let pki = Pki::ca_signed_for(&["dane.test"]);
    let record = Tlsa::new(2, 0, 1, sha256(pki.chain[1].as_ref()));
    let refs = reference_identifiers("mx.dane.test", "mx.dane.test", "dane.test", true);
    assert_eq!(refs, ["mx.dane.test", "dane.test"]);
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    verify(std::slice::from_ref(&record), &refs, &pki).expect("next-hop domain behind a secure MX");
    verify(&[record], &["mx.dane.test"], &pki).expect_err("MX host name only");

    let wild = Pki::ca_signed_for(&["*.dane.test"]);
    let record = Tlsa::new(2, 0, 1, sha256(wild.chain[1].as_ref()));
    verify(std::slice::from_ref(&record), &["mx.dane.test"], &wild).expect("wildcard");
    verify(&[record], &["a.mx.dane.test"], &wild).expect_err("one label only");
}

#[test]
fn dane_ta_falls_back_to_the_common_name_without_dns_names() {
    let pki = Pki::ca_signed_cn_only("mx.dane.test");
    let record = Tlsa::new(2, 0, 1, sha256(pki.chain[1].as_ref()));
    verify(std::slice::from_ref(&record), &["mx.dane.test"], &pki).expect("CN-ID");
    verify(&[record], &["mx2.dane.test"], &pki).expect_err("another name");
}

#[test]
fn dane_ta_with_a_wrong_name_is_refused() {
    let pki = Pki::ca_signed_for(&["elsewhere.test"]);
    let record = Tlsa::new(2, 0, 1, sha256(pki.chain[1].as_ref()));
    let err = verify(&[record], &["mx.dane.test"], &pki).expect_err("wrong name");
    assert!(err.contains("not valid for mx.dane.test"), "{err}");
    assert!(err.contains("2 0 1"), "{err}");
}

#[test]
fn dane_ta_needs_a_valid_path() {
    // The leaf expired under a CA that is still valid.
    let pki = Pki::ca_signed_expired();
    let record = Tlsa::new(2, 0, 1, sha256(pki.chain[1].as_ref()));
    let err = verify(&[record], &["localhost"], &pki).expect_err("expired leaf");
    assert!(err.contains("expired"), "{err}");
    // A record for a certificate the chain does not hold is no anchor.
    let pki = Pki::ca_signed_for(&["mx.dane.test"]);
    let stranger = Pki::ca_signed_for(&["mx.dane.test"]);
    let record = Tlsa::new(2, 0, 1, sha256(stranger.chain[1].as_ref()));
    verify(&[record], &["mx.dane.test"], &pki).expect_err("foreign CA");
}

#[test]
fn dane_ta_full_key_need_not_be_in_the_chain() {
    let pki = Pki::ca_signed_for(&["mx.dane.test"]);
    let ca_spki = pki.ca_spki.clone().expect("CA key");
    // The server sends its own certificate only: the anchor is the published key.
    let m = verify_chain(
        &[Tlsa::new(2, 1, 0, ca_spki)],
        &["mx.dane.test"],
        &pki.chain[..1],
    )
    .expect("2 1 0");
    assert_eq!(m.to_string(), "dane (2 1 0 matched)");
    assert_eq!(m.depth, 1);
}

#[test]
fn dane_ta_does_not_match_the_server_certificate_itself() {
    let pki = Pki::self_signed_for(&["mx.dane.test"]);
    let record = Tlsa::new(2, 0, 1, sha256(pki.chain[0].as_ref()));
    verify(&[record], &["mx.dane.test"], &pki).expect_err("a leaf is not its own anchor");
}

#[test]
fn all_unusable_records_mean_opportunistic_tls() {
    let pki = Pki::self_signed();
    let records = vec![
        Tlsa::new(1, 1, 1, sha256(&pki.spki)),
        Tlsa::new(0, 0, 1, sha256(pki.chain[0].as_ref())),
        Tlsa::new(3, 1, 7, sha256(&pki.spki)),
    ];
    let secure = Secured {
        value: records.clone(),
        security: Security::Secure,
    };
    assert_eq!(
        DanePolicy::from_tlsa(&secure),
        DanePolicy::Unusable(records.clone())
    );
    assert!(DaneVerifier::new(&records, &names(&["mx.dane.test"])).is_err());
    assert!(dane::client_config(&records, &names(&["mx.dane.test"])).is_err());
}

#[test]
fn usable_records_beside_unusable_ones_are_required() {
    let pki = Pki::self_signed();
    let good = Tlsa::new(3, 1, 1, sha256(&pki.spki));
    let secure = Secured {
        value: vec![Tlsa::new(1, 1, 1, sha256(&pki.spki)), good.clone()],
        security: Security::Secure,
    };
    assert_eq!(
        DanePolicy::from_tlsa(&secure),
        DanePolicy::Required(vec![good])
    );
}

// ---------------------------------------------------------------------------------------
// TLS: real handshakes over loopback, rustls on both sides.

/// A TLS server on 127.0.0.1 presenting `config`'s certificate; it sends `hello` once the
/// handshake is done. Returns the port and what the server saw of the handshake.
fn tls_server(config: Arc<rustls::ServerConfig>) -> (u16, thread::JoinHandle<Result<(), String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let handle = thread::spawn(move || {
        let (mut tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut conn = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
        }
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        tls.write_all(b"hello").map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
        Ok(())
    });
    (port, handle)
}

/// Connect to `port` with the DANE configuration and read what the server says.
fn dane_handshake(tls: &dane::DaneTls, port: u16) -> Result<Vec<u8>, String> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("mx.dane.test").expect("server name");
    let mut conn =
        rustls::ClientConnection::new(tls.config.clone(), name).map_err(|e| e.to_string())?;
    let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
    let mut got = vec![0; 5];
    stream.read_exact(&mut got).map_err(|e| e.to_string())?;
    Ok(got)
}

#[test]
fn handshake_with_a_dane_ee_match_succeeds() {
    let pki = Pki::self_signed();
    let (port, server) = tls_server(pki.server_config());
    let tls = dane::client_config(
        &[Tlsa::new(3, 1, 1, sha256(&pki.spki))],
        &names(&["mx.dane.test"]),
    )
    .expect("config");
    assert_eq!(tls.matched(), None);
    let got = dane_handshake(&tls, port).expect("handshake");
    assert_eq!(got, b"hello");
    assert_eq!(
        tls.matched().map(|m| m.to_string()).as_deref(),
        Some("dane (3 1 1 matched)")
    );
    server.join().expect("server thread").expect("server side");
}

#[test]
fn handshake_with_a_dane_ta_chain_succeeds() {
    let pki = Pki::ca_signed_for(&["mx.dane.test"]);
    let (port, server) = tls_server(pki.server_config());
    let tls = dane::client_config(
        &[Tlsa::new(2, 0, 1, sha256(pki.chain[1].as_ref()))],
        &names(&["mx.dane.test"]),
    )
    .expect("config");
    assert_eq!(dane_handshake(&tls, port).expect("handshake"), b"hello");
    let m = tls.matched().expect("match");
    assert_eq!(
        (m.to_string().as_str(), m.depth),
        ("dane (2 0 1 matched)", 1)
    );
    server.join().expect("server thread").expect("server side");
}

#[test]
fn handshake_with_a_mismatch_fails_and_sends_nothing() {
    let pki = Pki::self_signed();
    let other = Pki::self_signed();
    let (port, server) = tls_server(pki.server_config());
    let tls = dane::client_config(
        &[Tlsa::new(3, 1, 1, sha256(&other.spki))],
        &names(&["mx.dane.test"]),
    )
    .expect("config");
    let err = dane_handshake(&tls, port).expect_err("mismatch");
    assert!(err.contains("TLSA"), "{err}");
    assert_eq!(tls.matched(), None);
    let seen = server
        .join()
        .expect("server thread")
        .expect_err("client aborted");
    assert!(seen.to_lowercase().contains("alert"), "{seen}");
}

/// Presents one certificate and signs with another certificate's key.
#[derive(Debug)]
struct WrongKey(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for WrongKey {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[test]
fn handshake_signature_is_still_verified() {
    // The server shows the certificate the TLSA record names, but holds another key: only
    // the handshake signature can tell (RFC 8446 §4.4.3).
    let named = Pki::self_signed();
    let impostor = Pki::self_signed();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(impostor.key_pkcs8.clone()));
    let signing = provider
        .key_provider
        .load_private_key(key)
        .expect("load key");
    let chain: Vec<CertificateDer<'static>> = named.chain.clone();
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(WrongKey(Arc::new(certified))));
    let (port, server) = tls_server(Arc::new(config));
    let tls = dane::client_config(
        &[Tlsa::new(3, 1, 1, sha256(&named.spki))],
        &names(&["mx.dane.test"]),
    )
    .expect("config");
    let err = dane_handshake(&tls, port).expect_err("bad handshake signature");
    assert!(err.to_lowercase().contains("signature"), "{err}");
    let _ = server.join().expect("server thread");
}
