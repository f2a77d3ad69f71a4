//! Direct delivery (no relay) through the real binary: each recipient domain's mail
//! exchangers come from a DNS server the test starts (RFC 5321 §5.1, RFC 7505), and the
//! exchangers are scriptable SMTP servers on different loopback addresses sharing one port,
//! the `--mx-port` the binary dials for every host. This is issue 3's matrix of DNS cases.
//!
//! Nothing here leaves the machine: the test zones hold loopback addresses only, and the
//! binary is never given any other DNS server.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::process::Output;
use std::time::Duration;

use crate::common::dns::*;
use crate::common::server::{Builder, Message, stuff};
use crate::common::*;
use hickory_server::proto::rr::RecordType;

/// Where the first exchanger of a test listens.
const MX1: &str = "127.0.0.2";
/// Where the second exchanger of a test listens.
const MX2: &str = "127.0.0.3";
/// A domain's own address, for the implicit MX.
const HOST4: &str = "127.0.0.4";
/// No test ever listens on this address, on any port: a connection to it is refused
/// whatever port the test's servers got, even with other tests running beside it.
const NOBODY: &str = "127.0.0.99";

fn ip(text: &str) -> IpAddr {
    text.parse().expect("IP address")
}

/// One server per address, all on one port; the port and the servers in the order given.
fn servers<const N: usize>(list: [(&str, Builder); N]) -> (u16, [TestServer; N]) {
    let (port, started) = start_on_one_port(list.into_iter().map(|(a, b)| (ip(a), b)).collect());
    match <[TestServer; N]>::try_from(started) {
        Ok(servers) => (port, servers),
        Err(_) => panic!("start_on_one_port returned a different number of servers"),
    }
}

/// How many connections each server accepts: more than any test expects, so that a
/// second connection (a message received twice) is recorded and fails the test instead
/// of waiting unanswered in the listen queue.
const ACCEPT: usize = 3;

/// A plain exchanger: no STARTTLS, default replies.
fn exchanger() -> Builder {
    TestServer::builder().connections(ACCEPT)
}

/// An exchanger offering STARTTLS with this certificate.
fn tls_exchanger(pki: &Pki) -> Builder {
    TestServer::starttls(pki).connections(ACCEPT)
}

/// The binary, direct delivery through `dns` with every exchanger on `port`, the usual
/// sender, and these further arguments.
fn direct(dns: &DnsServer, port: u16, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = smtpsend_direct(dns.addr(), port);
    cmd.args(["-f", SENDER]).args(args);
    cmd
}

/// Assert the exit status, showing stderr and what every server saw on failure.
#[track_caller]
fn assert_status(output: &Output, expected: i32, transcripts: &[&Transcript]) {
    let actual = code(output);
    assert_eq!(
        actual,
        expected,
        "exit status {actual}, expected {expected}\nstderr:\n{}\nservers saw: {:#?}",
        stderr(output),
        transcripts
            .iter()
            .map(|t| t
                .connections
                .iter()
                .map(|c| (c.verbs(), &c.end, &c.tls_error))
                .collect::<Vec<_>>())
            .collect::<Vec<_>>()
    );
}

/// The server had exactly one connection carrying exactly one transaction, accepted, from
/// the usual sender for exactly `rcpts`, with exactly `content` (dot-stuffed correctly on
/// the wire). Returns the message for further checks.
#[track_caller]
fn assert_one_message<'t>(t: &'t Transcript, rcpts: &[&str], content: &[u8]) -> &'t Message {
    let conn = t.only();
    assert_eq!(
        conn.commands_for("MAIL").len(),
        1,
        "one transaction: {:?}",
        conn.verbs()
    );
    let m = conn.message();
    assert!(m.accepted, "the server accepted the message");
    assert_eq!(m.mail_from, SENDER);
    assert_eq!(m.rcpt_to, rcpts);
    assert_same_bytes(&m.content, content);
    assert_same_bytes(&m.wire, &stuff(content));
    m
}

/// Byte equality without printing megabytes: the length and the first difference.
#[track_caller]
fn assert_same_bytes(got: &[u8], want: &[u8]) {
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        let show = |b: &[u8]| {
            String::from_utf8_lossy(&b[at.min(b.len())..(at + 60).min(b.len())]).into_owned()
        };
        panic!(
            "message differs: got {} bytes, want {}; first difference at byte {at}: got {:?}, want {:?}",
            got.len(),
            want.len(),
            show(got),
            show(want)
        );
    }
}

#[track_caller]
fn assert_never_connected(t: &Transcript, who: &str) {
    assert!(
        t.connections.is_empty(),
        "{who} must not have been contacted; it saw {:?}",
        t.connections.iter().map(|c| c.verbs()).collect::<Vec<_>>()
    );
}

#[track_caller]
fn assert_stderr_has(output: &Output, needle: &str) {
    let text = stderr(output);
    assert!(text.contains(needle), "stderr lacks {needle:?}:\n{text}");
}

/// RFC 5321 §5.1: the lowest preference is tried first; when it takes the message, no other
/// exchanger is contacted. The MX records are listed highest first, so the order cannot
/// come from the zone's.
#[test]
fn mx_preference_order() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(20, "mx2.one.test")),
        ("one.test", Mx(10, "mx1.one.test")),
        ("mx1.one.test", A(MX1)),
        ("mx2.one.test", A(MX2)),
    ]);
    let (port, [mx1, mx2]) = servers([(MX1, exchanger()), (MX2, exchanger())]);
    let out = run(direct(&dns, port, &["bob@one.test"]), MESSAGE);
    let (t1, t2) = (mx1.finish(), mx2.finish());
    assert_status(&out, 0, &[&t1, &t2]);
    assert_one_message(&t1, &["bob@one.test"], MESSAGE.as_bytes());
    assert_never_connected(&t2, "mx2 (preference 20)");
}

/// A refused connection to the best exchanger passes the message to the next one.
#[test]
fn fallback_to_next_mx_on_connection_refused() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx1.one.test")),
        ("one.test", Mx(20, "mx2.one.test")),
        ("mx1.one.test", A(NOBODY)),
        ("mx2.one.test", A(MX2)),
    ]);
    let (port, [mx2]) = servers([(MX2, exchanger())]);
    let out = run(direct(&dns, port, &["-v", "bob@one.test"]), MESSAGE);
    let t2 = mx2.finish();
    assert_status(&out, 0, &[&t2]);
    assert_one_message(&t2, &["bob@one.test"], MESSAGE.as_bytes());
    assert_stderr_has(
        &out,
        &format!("connect to {NOBODY}:{port}: connection refused"),
    );
    assert_stderr_has(&out, &format!("connected to mx2.one.test [{MX2}:{port}]"));
}

/// RFC 5321 §3.1: a 421 greeting means "not now, here"; the next exchanger is tried.
#[test]
fn fallback_to_next_mx_on_421_greeting() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx1.one.test")),
        ("one.test", Mx(20, "mx2.one.test")),
        ("mx1.one.test", A(MX1)),
        ("mx2.one.test", A(MX2)),
    ]);
    let busy = exchanger().banner("421 4.3.2 mx1.one.test busy, try again later");
    let (port, [mx1, mx2]) = servers([(MX1, busy), (MX2, exchanger())]);
    let out = run(direct(&dns, port, &["bob@one.test"]), MESSAGE);
    let (t1, t2) = (mx1.finish(), mx2.finish());
    assert_status(&out, 0, &[&t1, &t2]);
    assert!(
        t1.never_saw("MAIL"),
        "mx1 said 421: {:?}",
        t1.only().verbs()
    );
    assert_one_message(&t2, &["bob@one.test"], MESSAGE.as_bytes());
}

/// A 5xx at RCPT is the domain's answer about the recipient: asking another exchanger of
/// the same domain would only get it again (or, worse, a different answer).
#[test]
fn no_fallback_on_5xx_at_rcpt() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx1.one.test")),
        ("one.test", Mx(20, "mx2.one.test")),
        ("mx1.one.test", A(MX1)),
        ("mx2.one.test", A(MX2)),
    ]);
    let rejecting =
        exchanger().rule(Rule::on("RCPT").reply("550 5.1.1 <bob@one.test>: user unknown"));
    let (port, [mx1, mx2]) = servers([(MX1, rejecting), (MX2, exchanger())]);
    let out = run(direct(&dns, port, &["bob@one.test"]), MESSAGE);
    let (t1, t2) = (mx1.finish(), mx2.finish());
    assert_status(&out, 67, &[&t1, &t2]);
    assert_stderr_has(
        &out,
        "RCPT TO:<bob@one.test>: 550 5.1.1 <bob@one.test>: user unknown",
    );
    assert!(
        t1.only().messages.iter().all(|m| !m.accepted),
        "no message was accepted"
    );
    assert_never_connected(&t2, "mx2");
}

/// RFC 5321 §5.1: no MX records, but an address: the domain itself is the exchanger.
#[test]
fn implicit_mx() {
    let dns = DnsServer::start(&[("one.test", A(HOST4))]);
    let (port, [host]) = servers([(HOST4, exchanger())]);
    let out = run(direct(&dns, port, &["-v", "bob@one.test"]), MESSAGE);
    let t = host.finish();
    assert_status(&out, 0, &[&t]);
    assert_one_message(&t, &["bob@one.test"], MESSAGE.as_bytes());
    assert_eq!(dns.count("one.test", RecordType::MX), 1, "MX asked first");
    assert_stderr_has(
        &out,
        "mail exchangers for one.test: one.test (implicit, no MX)",
    );
    assert_stderr_has(&out, &format!("connected to one.test [{HOST4}:{port}]"));
}

/// RFC 7505: `MX 0 .` says the domain takes no mail. That is final (69), and the domain's
/// own address, which an implicit MX would use, is not tried.
#[test]
fn null_mx_exits_69_without_connecting() {
    let dns = DnsServer::start(&[("one.test", Mx(0, ".")), ("one.test", A(MX1))]);
    let (port, [trap]) = servers([(MX1, exchanger())]);
    let out = run(direct(&dns, port, &["bob@one.test"]), MESSAGE);
    let t = trap.finish();
    assert_status(&out, 69, &[&t]);
    assert_stderr_has(&out, "one.test does not accept mail (null MX, RFC 7505)");
    assert_never_connected(&t, "the domain's own address");
    assert_eq!(dns.count("one.test", RecordType::A), 0);
}

/// A domain that does not exist is a permanent failure: EX_NOHOST.
#[test]
fn nxdomain_exits_68() {
    let dns = DnsServer::start(&[("one.test", Mx(10, "mx1.one.test"))]);
    let (port, [trap]) = servers([(MX1, exchanger())]);
    let out = run(direct(&dns, port, &["bob@nowhere.test"]), MESSAGE);
    let t = trap.finish();
    assert_status(&out, 68, &[&t]);
    assert_stderr_has(&out, "nowhere.test: no such domain (DNS NXDOMAIN)");
    assert_never_connected(&t, "an unrelated server");
}

/// SERVFAIL says nothing about the domain: try again later (75).
#[test]
fn servfail_exits_75() {
    let dns = DnsServer::start(&[("one.test", ServFail), ("one.test", A(MX1))]);
    let (port, [trap]) = servers([(MX1, exchanger())]);
    let out = run(direct(&dns, port, &["bob@one.test"]), MESSAGE);
    let t = trap.finish();
    assert_status(&out, 75, &[&t]);
    assert_stderr_has(&out, "one.test: DNS MX lookup: server failure (SERVFAIL)");
    assert_never_connected(&t, "the domain's address");
}

/// REFUSED, like SERVFAIL, is the DNS server's trouble, not the domain's: 75.
#[test]
fn refused_exits_75() {
    let dns = DnsServer::start(&[("one.test", Refused)]);
    let out = run(direct(&dns, 9, &["bob@one.test"]), MESSAGE);
    assert_status(&out, 75, &[]);
    assert_stderr_has(&out, "one.test: DNS MX lookup: query refused (REFUSED)");
}

/// A DNS server that never answers is a temporary failure, reported well before a caller
/// (or this test's 10 s limit) gives up.
#[test]
fn dns_timeout_exits_75() {
    let silent = SilentServer::start();
    let mut cmd = smtpsend_direct_std(silent.addr(), 9);
    cmd.args(["-f", SENDER, "--timeout", "2", "bob@one.test"]);
    // run_measured fails the test if the binary is still running after CLIENT_LIMIT (10 s).
    let measured = run_measured(cmd, MESSAGE);
    assert_status(&measured.output, 75, &[]);
    assert_stderr_has(&measured.output, "one.test: DNS MX lookup: timed out");
    assert!(
        measured.took < Duration::from_secs(10),
        "took {:?}",
        measured.took
    );
}

/// An exchanger's name may be an alias of an alias (RFC 5321 §5.1 says the MX should not
/// name one, but resolvers follow them and so must we).
#[test]
fn cname_chain() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx.one.test")),
        ("mx.one.test", Cname("relay.one.test")),
        ("relay.one.test", Cname("host.elsewhere.test")),
        ("host.elsewhere.test", A(MX1)),
    ]);
    let (port, [host]) = servers([(MX1, exchanger())]);
    let out = run(direct(&dns, port, &["-v", "bob@one.test"]), MESSAGE);
    let t = host.finish();
    assert_status(&out, 0, &[&t]);
    assert_one_message(&t, &["bob@one.test"], MESSAGE.as_bytes());
    assert_stderr_has(&out, &format!("connected to mx.one.test [{MX1}:{port}]"));
}

/// Whether this machine has an IPv6 loopback. Without one the IPv6 test is skipped, with a
/// note, except in CI (`CI=true`), where it must not be skipped silently.
fn ipv6_loopback() -> bool {
    match TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but ::1 is unavailable: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no IPv6 loopback (::1): {e}");
            false
        }
    }
}

/// An exchanger with only an AAAA record is reached over IPv6.
#[test]
fn aaaa_only_host() {
    if !ipv6_loopback() {
        return;
    }
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx6.one.test")),
        ("mx6.one.test", Aaaa("::1")),
    ]);
    let (port, [host]) = servers([("::1", exchanger())]);
    let out = run(direct(&dns, port, &["-v", "bob@one.test"]), MESSAGE);
    let t = host.finish();
    assert_status(&out, 0, &[&t]);
    assert_one_message(&t, &["bob@one.test"], MESSAGE.as_bytes());
    assert_stderr_has(&out, &format!("connected to mx6.one.test [[::1]:{port}]"));
}

/// How two domains' deliveries are run: at once (the default pool), or one after the
/// other (`--parallel 1`). Tests with several domains run both ways.
const MODES: [&[&str]; 2] = [&[], &["--parallel", "1"]];

/// Recipients of one domain share one transaction (two RCPTs); another domain gets its
/// own. The message is complete already, so each server gets exactly the input. With
/// `-v`, each domain's dialogue is written whole, in the order of the recipients, even
/// when the domains are delivered at once.
#[test]
fn one_transaction_per_domain() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx.one.test")),
        ("mx.one.test", A(MX1)),
        ("two.test", Mx(10, "mx.two.test")),
        ("mx.two.test", A(MX2)),
    ]);
    for mode in MODES {
        let (port, [one, two]) = servers([(MX1, exchanger()), (MX2, exchanger())]);
        let mut args = mode.to_vec();
        args.extend(["-v", "a@one.test", "b@one.test", "c@two.test"]);
        let out = run(direct(&dns, port, &args), MESSAGE);
        let (t1, t2) = (one.finish(), two.finish());
        assert_status(&out, 0, &[&t1, &t2]);
        let m1 = assert_one_message(&t1, &["a@one.test", "b@one.test"], MESSAGE.as_bytes());
        let m2 = assert_one_message(&t2, &["c@two.test"], MESSAGE.as_bytes());
        assert_eq!(m1.content, m2.content);
        assert_eq!(t1.only().commands_for("RCPT").len(), 2);
        assert_eq!(t2.only().commands_for("RCPT").len(), 1);
        let err = stderr(&out);
        let at = |needle: &str| {
            err.find(needle)
                .unwrap_or_else(|| panic!("{mode:?}: stderr lacks {needle:?}:\n{err}"))
        };
        assert!(
            at("accepted by mx.one.test") < at("mail exchangers for two.test"),
            "{mode:?}: one.test's dialogue is whole and first:\n{err}"
        );
    }
    // The resolver's answers are kept for the run: each domain asked once per run.
    assert_eq!(dns.count("one.test", RecordType::MX), MODES.len());
    assert_eq!(dns.count("two.test", RecordType::MX), MODES.len());
}

/// One refused recipient among three: the others are delivered, once each, and the refusal
/// is reported with the server's words and EX_NOUSER.
#[test]
fn partial_recipient_failure() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx.one.test")),
        ("mx.one.test", A(MX1)),
        ("two.test", Mx(10, "mx.two.test")),
        ("mx.two.test", A(MX2)),
    ]);
    for mode in MODES {
        let picky = exchanger().rule(
            Rule::on("RCPT")
                .arg("<b@one.test>")
                .reply("550 5.1.1 <b@one.test>: user unknown"),
        );
        let (port, [one, two]) = servers([(MX1, picky), (MX2, exchanger())]);
        let mut args = mode.to_vec();
        args.extend(["a@one.test", "b@one.test", "c@two.test"]);
        let out = run(direct(&dns, port, &args), MESSAGE);
        let (t1, t2) = (one.finish(), two.finish());
        assert_status(&out, 67, &[&t1, &t2]);
        let err = stderr(&out);
        assert_eq!(
            err,
            "smtpsend: mx.one.test: RCPT TO:<b@one.test>: 550 5.1.1 <b@one.test>: user unknown\n",
            "{mode:?}: only b@ is reported"
        );
        // `only()` and `message()` also prove nobody received twice.
        assert_one_message(&t1, &["a@one.test"], MESSAGE.as_bytes());
        assert_one_message(&t2, &["c@two.test"], MESSAGE.as_bytes());
    }
}

/// `-v` names the exchangers in order, the one connected to, and what TLS gave: an
/// exchanger's self-signed certificate is used for encryption without being verified
/// (opportunistic TLS, RFC 3207 §4.1; RFC 7435).
#[test]
fn verbose_shows_mx_and_tls_state() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx1.one.test")),
        ("one.test", Mx(20, "mx2.one.test")),
        ("mx1.one.test", A(MX1)),
        ("mx2.one.test", A(MX2)),
    ]);
    let pki = Pki::self_signed_for(&["mx1.one.test"]);
    let (port, [mx1, mx2]) = servers([(MX1, tls_exchanger(&pki)), (MX2, exchanger())]);
    let out = run(direct(&dns, port, &["-v", "bob@one.test"]), MESSAGE);
    let (t1, t2) = (mx1.finish(), mx2.finish());
    assert_status(&out, 0, &[&t1, &t2]);
    let m = assert_one_message(&t1, &["bob@one.test"], MESSAGE.as_bytes());
    assert!(m.tls, "the message went inside TLS");
    assert!(t1.only().saw_in_tls("MAIL"));
    assert_never_connected(&t2, "mx2");
    assert_stderr_has(
        &out,
        "mail exchangers for one.test: mx1.one.test (10), mx2.one.test (20)",
    );
    assert_stderr_has(&out, &format!("connected to mx1.one.test [{MX1}:{port}]"));
    assert_stderr_has(&out, "certificate NOT verified");
    assert_stderr_has(&out, "smtpsend: accepted by mx1.one.test (TLS ");
    assert_stderr_has(
        &out,
        ", certificate not verified; TLS policy opportunistic) for bob@one.test",
    );
}

/// `--tls required` with an exchanger verifies its certificate for the exchanger's name:
/// the same self-signed certificate fails the delivery (75, try later), and succeeds once
/// trusted with `--tls-trust-file`.
#[test]
fn tls_required_to_mx_needs_a_trusted_certificate() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx1.one.test")),
        ("mx1.one.test", A(MX1)),
    ]);
    let pki = Pki::self_signed_for(&["mx1.one.test"]);

    let (port, [untrusted]) = servers([(MX1, tls_exchanger(&pki))]);
    let out = run(
        direct(&dns, port, &["--tls", "required", "-v", "bob@one.test"]),
        MESSAGE,
    );
    let t = untrusted.finish();
    assert_status(&out, 75, &[&t]);
    assert!(
        t.never_saw("MAIL"),
        "nothing sent without a verified certificate"
    );
    assert!(t.connections.iter().all(|c| c.messages.is_empty()));

    let (port, [trusted]) = servers([(MX1, tls_exchanger(&pki))]);
    let trust = pki.trust_file.to_str().expect("UTF-8 path");
    let out = run(
        direct(
            &dns,
            port,
            &[
                "--tls",
                "required",
                "--tls-trust-file",
                trust,
                "-v",
                "bob@one.test",
            ],
        ),
        MESSAGE,
    );
    let t = trusted.finish();
    assert_status(&out, 0, &[&t]);
    let m = assert_one_message(&t, &["bob@one.test"], MESSAGE.as_bytes());
    assert!(m.tls);
    assert_stderr_has(&out, "certificate verified");
    assert_stderr_has(
        &out,
        ", certificate verified; TLS policy verified (--tls required)) for bob@one.test",
    );
}

/// RFC 5321 §4.1.3: `user@[127.0.0.2]` names the host itself; DNS is not asked.
#[test]
fn address_literal() {
    let dns = DnsServer::start(&[("one.test", Mx(10, "mx1.one.test"))]);
    let (port, [host]) = servers([(MX1, exchanger())]);
    let rcpt = format!("bob@[{MX1}]");
    let out = run(direct(&dns, port, &["-v", &rcpt]), MESSAGE);
    let t = host.finish();
    assert_status(&out, 0, &[&t]);
    assert_one_message(&t, &[rcpt.as_str()], MESSAGE.as_bytes());
    assert_eq!(dns.queries(), vec![], "no DNS query for an address literal");
}

/// A complete message of `size` bytes or a little more, CRLF lines, with lines that need
/// dot-stuffing.
fn large_message(size: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(size + 200);
    m.extend_from_slice(MESSAGE.trim_end_matches("Hello, Bob.\r\n").as_bytes());
    let mut n = 0u64;
    while m.len() < size {
        match n % 50 {
            0 => m.extend_from_slice(b".\r\n"),
            1 => m.extend_from_slice(b"..two dots at the start\r\n"),
            _ => writeln!(
                m,
                "line {n:08} of a large message: 0123456789abcdefghijklmnopqrstuvwxyz\r"
            )
            .expect("write to a Vec"),
        }
        n += 1;
    }
    m
}

/// A 3 MiB message for two domains arrives whole and identical at both, whether the
/// domains are delivered at once or one after the other: the input is read once into a
/// private copy, and each delivery reads that copy from its start.
#[test]
fn large_message_to_two_domains() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx.one.test")),
        ("mx.one.test", A(MX1)),
        ("two.test", Mx(10, "mx.two.test")),
        ("mx.two.test", A(MX2)),
    ]);
    let message = large_message(3 << 20);
    for mode in MODES {
        let (port, [one, two]) = servers([(MX1, exchanger()), (MX2, exchanger())]);
        // -i: a lone "." line is message content, not the end of the input.
        let mut args = mode.to_vec();
        args.extend(["-i", "a@one.test", "c@two.test"]);
        let out = run(direct(&dns, port, &args), message.clone());
        let (t1, t2) = (one.finish(), two.finish());
        assert_status(&out, 0, &[&t1, &t2]);
        assert_one_message(&t1, &["a@one.test"], &message);
        assert_one_message(&t2, &["c@two.test"], &message);
    }
}

/// An exchanger whose name has no address is skipped for the next one.
#[test]
fn fallback_to_next_mx_when_host_has_no_address() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "gone.one.test")),
        ("one.test", Mx(20, "mx2.one.test")),
        ("mx2.one.test", A(MX2)),
    ]);
    let (port, [mx2]) = servers([(MX2, exchanger())]);
    let out = run(direct(&dns, port, &["-v", "bob@one.test"]), MESSAGE);
    let t2 = mx2.finish();
    assert_status(&out, 0, &[&t2]);
    assert_one_message(&t2, &["bob@one.test"], MESSAGE.as_bytes());
    assert_stderr_has(
        &out,
        "gone.one.test: no such domain (DNS NXDOMAIN); trying the next exchanger",
    );
}

/// Every exchanger busy: each is tried once, in order, and the message waits (75).
#[test]
fn all_exchangers_busy_exits_75() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx1.one.test")),
        ("one.test", Mx(20, "mx2.one.test")),
        ("mx1.one.test", A(MX1)),
        ("mx2.one.test", A(MX2)),
    ]);
    let busy = || exchanger().banner("421 4.3.2 busy, try again later");
    let (port, [mx1, mx2]) = servers([(MX1, busy()), (MX2, busy())]);
    let out = run(direct(&dns, port, &["bob@one.test"]), MESSAGE);
    let (t1, t2) = (mx1.finish(), mx2.finish());
    assert_status(&out, 75, &[&t1, &t2]);
    assert_stderr_has(&out, "421 4.3.2 busy, try again later");
    assert_eq!(t1.connections.len(), 1, "mx1 tried once");
    assert_eq!(t2.connections.len(), 1, "mx2 tried once");
    assert!(t1.never_saw("MAIL") && t2.never_saw("MAIL"));
}

/// A message larger than what is read ahead (128 KiB) still goes whole to the next
/// exchanger when the first refused it at the greeting, whether standard input is a pipe
/// or a file: nothing past the read-ahead was consumed by the failed attempt.
#[test]
fn large_message_falls_back_to_next_mx() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx1.one.test")),
        ("one.test", Mx(20, "mx2.one.test")),
        ("mx1.one.test", A(MX1)),
        ("mx2.one.test", A(MX2)),
    ]);
    let message = large_message(1 << 20);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("msg");
    std::fs::write(&file, &message).expect("write the message file");
    for from_file in [false, true] {
        let busy = exchanger().banner("421 4.3.2 busy, try again later");
        let (port, [mx1, mx2]) = servers([(MX1, busy), (MX2, exchanger())]);
        let mut cmd = direct(&dns, port, &["-i", "bob@one.test"]);
        let out = if from_file {
            cmd.pipe_stdin(&file).expect("message file as stdin");
            cmd.output().expect("run smtpsend")
        } else {
            run(cmd, message.clone())
        };
        let (t1, t2) = (mx1.finish(), mx2.finish());
        assert_status(&out, 0, &[&t1, &t2]);
        assert!(t1.never_saw("MAIL"));
        assert_one_message(&t2, &["bob@one.test"], &message);
    }
}

/// Issue 3, "Done when": `smtpsend --dns-server 127.0.0.1:PORT --mx-port N a@one.test
/// b@two.test < msg` delivers to the two domains' servers. No sender, no TLS option, and
/// the message from a file on standard input, as a user would run it.
#[test]
fn issue_3_done_when_two_domains_delivered_on_loopback() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx.one.test")),
        ("mx.one.test", A(MX1)),
        ("two.test", Mx(10, "mx.two.test")),
        ("mx.two.test", A(MX2)),
    ]);
    let dir = tempfile::tempdir().expect("temp dir");
    let msg = dir.path().join("msg");
    std::fs::write(&msg, MESSAGE).expect("write the message file");
    let (port, [one, two]) = servers([(MX1, exchanger()), (MX2, exchanger())]);
    let out = smtpsend_direct(dns.addr(), port)
        .args(["a@one.test", "b@two.test"])
        .pipe_stdin(&msg)
        .expect("message file as stdin")
        .output()
        .expect("run smtpsend");
    let (t1, t2) = (one.finish(), two.finish());
    assert_status(&out, 0, &[&t1, &t2]);
    for (t, rcpt) in [(&t1, "a@one.test"), (&t2, "b@two.test")] {
        let m = t.only().message();
        assert!(m.accepted);
        assert_eq!(m.rcpt_to, [rcpt]);
        assert!(m.mail_from.contains('@'), "a sender: {:?}", m.mail_from);
        assert_same_bytes(&m.content, MESSAGE.as_bytes());
    }
    assert!(
        stderr(&out).is_empty(),
        "quiet on success: {}",
        stderr(&out)
    );
}

/// The servers on one port really are told apart by address (a self-check of the harness
/// the other tests rely on).
#[test]
fn servers_share_a_port_on_different_addresses() {
    let (port, [a, b]) = servers([(MX1, exchanger()), (MX2, exchanger())]);
    assert_eq!(a.addr(), SocketAddr::new(ip(MX1), port));
    assert_eq!(b.addr(), SocketAddr::new(ip(MX2), port));
    assert!(std::net::TcpStream::connect((ip(NOBODY), port)).is_err());
}

/// A per-domain policy (`tls_verify_domains`) makes one domain's exchangers prove who they
/// are, while the others keep opportunistic TLS.
#[test]
fn tls_verify_domains_policy_applies_per_domain() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx1.one.test")),
        ("mx1.one.test", A(MX1)),
        ("two.test", Mx(10, "mx2.two.test")),
        ("mx2.two.test", A(MX2)),
    ]);
    let pki = Pki::self_signed_for(&["mx1.one.test", "mx2.two.test"]);
    let (port, [one, two]) = servers([(MX1, tls_exchanger(&pki)), (MX2, tls_exchanger(&pki))]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "queue_on_tempfail = false\ntls_verify_domains = [\"One.test\"]\n",
    )
    .unwrap();
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    // Queue runs in tests are the tests' own: no background runner.
    cmd.env("SMTPSEND_QUEUE_RUNNER", "off");
    cmd.arg("--config")
        .arg(&config)
        .args(["--dns-server", &dns.addr().to_string()])
        .args(["--mx-port", &port.to_string()])
        .args(["-f", SENDER, "bob@one.test", "carol@two.test"])
        .env("HOME", dir.path())
        .timeout(CLIENT_LIMIT);
    let out = run(cmd, MESSAGE);
    let (t1, t2) = (one.finish(), two.finish());
    assert_status(&out, 75, &[&t1, &t2]);
    assert!(
        t1.never_saw("MAIL"),
        "one.test must be verified: nothing sent"
    );
    assert_one_message(&t2, &["carol@two.test"], MESSAGE.as_bytes());
}

/// Queue `(recipients, text)` with `--queue` (nothing is dialled) into `queue`.
fn queue_direct(dns: &DnsServer, port: u16, queue: &std::path::Path, messages: &[(&[&str], &str)]) {
    for (rcpts, text) in messages {
        let mut cmd = direct(dns, port, &["--queue", "--queue-dir"]);
        cmd.arg(queue).args(*rcpts);
        let out = run(cmd, *text);
        assert_eq!(code(&out), 0, "queueing: {}", stderr(&out));
    }
}

/// Queue run, direct route: every entry with recipients in a domain goes over one
/// connection to that domain's exchanger, pipelined; an entry with recipients in two
/// domains goes to each; nothing is left in the spool. The domains go at once on the pool
/// (their connections overlap, each greeting held back a little), or one after the other
/// with `--parallel 1`.
#[test]
fn queue_run_sends_each_domains_entries_over_one_connection() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx.one.test")),
        ("mx.one.test", A(MX1)),
        ("two.test", Mx(10, "mx.two.test")),
        ("mx.two.test", A(MX2)),
    ]);
    let texts = [
        "Subject: 0\n\nzero\n",
        "Subject: 1\n\none\n",
        "Subject: 2\n\ntwo\n",
    ];
    for mode in MODES {
        let spool = tempfile::tempdir().expect("temp dir");
        let queue = spool.path().join("queue");
        let slow = || exchanger().rule(Rule::banner().stall(Duration::from_millis(300)));
        let (port, [one, two]) = servers([(MX1, slow()), (MX2, slow())]);
        queue_direct(
            &dns,
            port,
            &queue,
            &[
                (&["a@one.test"], texts[0]),
                (&["b@one.test", "c@two.test"], texts[1]),
                (&["d@two.test"], texts[2]),
            ],
        );
        let mut cmd = direct(&dns, port, &["-q", "--queue-dir"]);
        cmd.arg(&queue).args(mode);
        let out = run(cmd, "");
        let (t1, t2) = (one.finish(), two.finish());
        assert_status(&out, 0, &[&t1, &t2]);
        for (t, want) in [
            (&t1, [("a@one.test", texts[0]), ("b@one.test", texts[1])]),
            (&t2, [("c@two.test", texts[1]), ("d@two.test", texts[2])]),
        ] {
            assert_eq!(
                t.connections.len(),
                1,
                "{mode:?}: one connection per domain"
            );
            let conn = t.only();
            assert_eq!(conn.messages.len(), 2, "{mode:?}: {:?}", conn.verbs());
            for (m, (rcpt, text)) in conn.messages.iter().zip(want) {
                assert!(m.accepted);
                assert_eq!(m.rcpt_to, [rcpt]);
                let content = String::from_utf8_lossy(&m.content);
                let (subject, body) = text.split_once("\n\n").expect("a body");
                assert!(content.starts_with(&format!("{subject}\r\n")), "{content}");
                let end = format!("\r\n\r\n{}", body.replace('\n', "\r\n"));
                assert!(content.ends_with(&end), "{content}");
            }
            // The second transaction went behind the first: RSET opens it, in a flight that
            // also carries the end of the first message.
            assert_eq!(
                conn.commands_for("RSET").len(),
                1,
                "{:?}",
                conn.flight_shape()
            );
        }
        let at_once = t1.only().overlaps(t2.only());
        assert_eq!(
            at_once,
            mode.is_empty(),
            "{mode:?}: domains at once: {at_once}"
        );
        let mut cmd = direct(&dns, port, &["-bp", "--queue-dir"]);
        cmd.arg(&queue);
        let listing = String::from_utf8_lossy(&run(cmd, "").stdout).into_owned();
        assert!(listing.contains("Mail queue is empty"), "{listing}");
    }
}

/// Queue run, direct route: an exchanger that greets with 421 passes the whole batch to the
/// next one.
#[test]
fn queue_run_passes_the_batch_to_the_next_exchanger() {
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx1.one.test")),
        ("one.test", Mx(20, "mx2.one.test")),
        ("mx1.one.test", A(MX1)),
        ("mx2.one.test", A(MX2)),
    ]);
    let spool = tempfile::tempdir().expect("temp dir");
    let queue = spool.path().join("queue");
    let busy = exchanger().banner("421 4.3.2 mx1.one.test busy, try again later");
    let (port, [mx1, mx2]) = servers([(MX1, busy), (MX2, exchanger())]);
    queue_direct(
        &dns,
        port,
        &queue,
        &[(&["a@one.test"], MESSAGE), (&["b@one.test"], MESSAGE)],
    );
    let mut cmd = direct(&dns, port, &["-q", "--queue-dir"]);
    cmd.arg(&queue);
    let out = run(cmd, "");
    let (t1, t2) = (mx1.finish(), mx2.finish());
    assert_status(&out, 0, &[&t1, &t2]);
    assert_eq!(t1.connections.len(), 1);
    assert!(t1.never_saw("MAIL"));
    assert_eq!(t2.connections.len(), 1);
    let rcpts: Vec<&str> = t2
        .only()
        .messages
        .iter()
        .filter(|m| m.accepted)
        .map(|m| m.rcpt_to[0].as_str())
        .collect();
    assert_eq!(rcpts, ["a@one.test", "b@one.test"]);
}

/// Issue 8: six domains on the default pool of four threads are all delivered at once, each
/// thread driving several connections while they wait for their servers (each greeting is
/// held back so the waits are long enough to see). Every pair of connections overlaps.
#[test]
fn six_domains_are_open_at_once_on_the_default_pool() {
    let addrs = [
        "127.0.0.11",
        "127.0.0.12",
        "127.0.0.13",
        "127.0.0.14",
        "127.0.0.15",
        "127.0.0.16",
    ];
    let domains: Vec<String> = (0..addrs.len()).map(|i| format!("d{i}.test")).collect();
    let exchangers: Vec<String> = domains.iter().map(|d| format!("mx.{d}")).collect();
    let mut zone = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        zone.push((domains[i].as_str(), Mx(10, exchangers[i].as_str())));
        zone.push((exchangers[i].as_str(), A(addr)));
    }
    let dns = DnsServer::start(&zone);
    let slow = || exchanger().rule(Rule::banner().stall(Duration::from_millis(300)));
    let (port, servers) = servers(addrs.map(|a| (a, slow())));
    let rcpts: Vec<String> = domains.iter().map(|d| format!("rcpt@{d}")).collect();
    let args: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let out = run(direct(&dns, port, &args), MESSAGE);
    let transcripts: Vec<Transcript> = servers.into_iter().map(TestServer::finish).collect();
    let refs: Vec<&Transcript> = transcripts.iter().collect();
    assert_status(&out, 0, &refs);
    for (t, rcpt) in transcripts.iter().zip(&rcpts) {
        assert_one_message(t, &[rcpt.as_str()], MESSAGE.as_bytes());
    }
    for (i, a) in transcripts.iter().enumerate() {
        for b in &transcripts[i + 1..] {
            assert!(
                a.only().overlaps(b.only()),
                "two of the six domains were not delivered at the same time"
            );
        }
    }
}
