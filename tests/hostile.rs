//! The binary against servers that misbehave: injected bytes, broken replies, closed
//! connections, stalls and trickles, bad certificates, replies without end, 421 at every
//! stage, capabilities that change with TLS, replies that do not match the commands. Each
//! test proves the client fails closed, with the right status, quickly, in bounded memory,
//! and without sending what it must not.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::common::*;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-Pa55";

/// What the binary may take beyond its own --timeout before a test calls it hung.
const SLACK: Duration = Duration::from_secs(3);

fn timed(cmd: assert_cmd::Command, input: &str) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let out = run(cmd, input);
    (out, started.elapsed())
}

fn plain(server: &TestServer) -> assert_cmd::Command {
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    cmd
}

#[test]
fn injection_after_starttls_aborts() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .credentials(USER, PASSWORD)
        .rule(Rule::on("STARTTLS").append(b"250 2.0.0 injected\r\n"))
        .start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.args(["--user", USER])
        .env("SMTPSEND_PASSWORD", PASSWORD)
        .arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    let status = code(&out);
    assert!(
        status == 76 || status == 75,
        "exit {status}, expected 76 (or 75); stderr: {}",
        stderr(&out)
    );
    let conn = t.only();
    assert!(!conn.saw("MAIL"), "{:?}", conn.verbs());
    assert!(!conn.saw("AUTH"), "{:?}", conn.verbs());
    assert!(conn.auth.is_empty());
    assert!(conn.messages.is_empty());
}

#[test]
fn injected_capabilities_after_starttls_are_not_believed() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .credentials(USER, PASSWORD)
        .rule(
            Rule::on("STARTTLS")
                .append(b"250-localhost\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n"),
        )
        .start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.args(["--user", USER])
        .env("SMTPSEND_PASSWORD", PASSWORD)
        .arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_ne!(code(&out), 0);
    let conn = t.only();
    assert!(!conn.saw("MAIL") && !conn.saw("AUTH"), "{:?}", conn.verbs());
}

#[test]
fn malformed_reply_exits_76() {
    let server = TestServer::builder()
        .rule(Rule::on("MAIL").raw(b"2x0 what\r\n"))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 76, &t);
    assert!(t.only().messages.is_empty());
}

#[test]
fn malformed_greeting_exits_76() {
    let server = TestServer::builder()
        .banner("hello, this is not SMTP")
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 76, &t);
    assert!(t.never_saw("MAIL"));
}

#[test]
fn reply_code_out_of_range_exits_76() {
    let server = TestServer::builder()
        .rule(Rule::on("RCPT").reply("600 6.0.0 beyond the range"))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 76, &t);
    assert!(t.only().messages.is_empty());
}

#[test]
fn reply_code_below_200_exits_76() {
    let server = TestServer::builder()
        .rule(Rule::on("MAIL").reply("199 1.0.0 too low"))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 76, &t);
    assert!(t.only().messages.is_empty());
}

#[test]
fn recipient_rejected_with_553_exits_67() {
    let server = TestServer::builder()
        .rule(Rule::on("RCPT").reply("553 5.1.3 bad address syntax"))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 67, &t);
}

#[test]
fn permanent_failure_at_mail_exits_69() {
    let server = TestServer::builder()
        .rule(Rule::on("MAIL").reply("550 5.7.1 sender refused"))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 69, &t);
    assert!(t.only().messages.is_empty());
}

#[test]
fn temp_failure_at_data_command_exits_75() {
    let server = TestServer::builder()
        .rule(Rule::on("DATA").reply("451 4.3.0 not now"))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(t.only().messages.is_empty());
}

#[test]
fn auth_temporary_failure_454_exits_75() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .credentials(USER, PASSWORD)
        .rule(Rule::on("AUTH").reply("454 4.7.0 Temporary authentication failure"))
        .start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.args(["--user", USER])
        .env("SMTPSEND_PASSWORD", PASSWORD)
        .arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(t.only().messages.is_empty());
}

#[test]
fn server_closes_before_banner_exits_75() {
    let server = TestServer::builder().rule(Rule::banner().close()).start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
}

#[test]
fn server_closes_after_banner_exits_75() {
    let server = TestServer::builder()
        .rule(Rule::banner().close_after_reply())
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(t.never_saw("MAIL"));
}

#[test]
fn server_closes_instead_of_replying_to_rcpt_exits_75() {
    let server = TestServer::builder().rule(Rule::on("RCPT").close()).start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
}

#[test]
fn server_closes_mid_data_exits_75() {
    let server = TestServer::builder().close_mid_data_after(40).start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(t.only().messages.is_empty());
}

#[test]
fn server_closes_right_after_starttls_220_exits_75() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .rule(Rule::on("STARTTLS").close_after_reply())
        .start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
}

#[test]
fn stalled_server_times_out_exits_75() {
    let server = TestServer::builder()
        .rule(Rule::on("MAIL").stall(Duration::from_secs(30)))
        .start();
    let mut cmd = plain(&server);
    cmd.args(["--timeout", "2"]);
    let (out, took) = timed(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(
        took < Duration::from_secs(2) + SLACK,
        "took {took:?} with --timeout 2"
    );
    assert!(t.only().messages.is_empty());
}

#[test]
fn stalled_greeting_times_out_exits_75() {
    let server = TestServer::builder()
        .rule(Rule::banner().stall(Duration::from_secs(30)))
        .start();
    let mut cmd = plain(&server);
    cmd.args(["--timeout", "2"]);
    let (out, took) = timed(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(took < Duration::from_secs(2) + SLACK, "took {took:?}");
}

#[test]
fn stalled_end_of_data_times_out_exits_75() {
    let server = TestServer::builder()
        .rule(Rule::data_end().stall(Duration::from_secs(30)))
        .start();
    let mut cmd = plain(&server);
    cmd.args(["--timeout", "2"]);
    let (out, took) = timed(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(took < Duration::from_secs(2) + SLACK, "took {took:?}");
}

#[test]
fn trickled_replies_are_reassembled() {
    let every_byte = Duration::from_millis(3);
    let server = TestServer::builder()
        .rule(Rule::banner().trickle(every_byte))
        .rule(Rule::on("EHLO").trickle(every_byte))
        .rule(Rule::on("RCPT").trickle(every_byte))
        .rule(Rule::data_end().trickle(every_byte))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert!(t.only().message().accepted);
}

#[test]
fn trickling_server_hits_the_reply_deadline_exits_75() {
    // Each byte comes well within any idle timeout, but the whole reply takes ~13 s:
    // --timeout bounds the wait for a reply, not the gap between bytes.
    let mut endless = String::new();
    for i in 0..40 {
        endless.push_str(&format!("250-EXTENSION{i:03}\r\n"));
    }
    endless.push_str("250 SMTPUTF8\r\n");
    let server = TestServer::builder()
        .rule(
            Rule::on("EHLO")
                .raw(endless.as_bytes())
                .trickle(Duration::from_millis(20)),
        )
        .start();
    let mut cmd = plain(&server);
    cmd.args(["--timeout", "2"]);
    let (out, took) = timed(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(
        took < Duration::from_secs(2) + SLACK,
        "took {took:?} with --timeout 2: the deadline is per byte, not per reply"
    );
}

#[test]
fn endless_reply_line_is_refused() {
    let mut huge = b"250-".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    let server = TestServer::builder()
        .rule(Rule::on("EHLO").raw(&huge))
        .start();
    let mut cmd = plain(&server);
    cmd.args(["--timeout", "2"]);
    let (out, took) = timed(cmd, MESSAGE);
    let t = server.finish();
    let status = code(&out);
    assert!(
        status == 76 || status == 75,
        "exit {status}; stderr: {}",
        stderr(&out)
    );
    assert!(took < Duration::from_secs(2) + SLACK, "took {took:?}");
    assert!(t.never_saw("MAIL"));
}

#[test]
fn connection_refused_exits_75() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let mut cmd = smtpsend_plain(port);
    cmd.arg(RECIPIENT);
    let (out, took) = timed(cmd, MESSAGE);
    assert_eq!(code(&out), 75, "stderr: {}", stderr(&out));
    assert!(took < SLACK, "took {took:?}");
    let err = stderr(&out);
    assert!(err.starts_with("smtpsend: "), "{err}");
}

#[test]
fn client_does_not_wait_for_221() {
    let server = TestServer::builder()
        .rule(Rule::on("QUIT").stall(Duration::from_secs(30)))
        .start();
    let (out, took) = timed(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert!(
        took < SLACK,
        "took {took:?}: the client waited for the reply to QUIT"
    );
    assert!(t.only().message().accepted);
}

#[test]
fn server_closing_instead_of_221_is_not_an_error() {
    let server = TestServer::builder().rule(Rule::on("QUIT").close()).start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
}

#[test]
fn coalesced_pipelined_replies_are_matched_in_order() {
    let server = TestServer::builder()
        .coalesce_replies()
        .rule(
            Rule::on("RCPT")
                .arg("<eve@")
                .reply("550 5.1.1 no such user"),
        )
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args([RECIPIENT, "eve@example.org", "carol@example.org"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 67, &t);
    let m = t.only().message();
    assert_eq!(m.rcpt_to, vec![RECIPIENT, "carol@example.org"]);
    let err = stderr(&out);
    assert!(
        err.contains("eve@example.org") && err.contains("550 5.1.1"),
        "{err}"
    );
    assert!(
        !err.contains("carol@"),
        "an accepted recipient reported as failed: {err}"
    );
}

#[test]
fn server_closes_mid_bdat_exits_75() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "CHUNKING"])
        .close_mid_data_after(40)
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(t.only().messages.is_empty());
}

#[test]
fn stalled_reply_to_bdat_times_out_exits_75() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "CHUNKING"])
        .rule(Rule::on("BDAT").stall(Duration::from_secs(30)))
        .start();
    let mut cmd = plain(&server);
    cmd.args(["--timeout", "2"]);
    let (out, took) = timed(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(took < Duration::from_secs(2) + SLACK, "took {took:?}");
}

#[test]
fn coalesced_replies_with_bdat_are_matched_in_order() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "CHUNKING"])
        .coalesce_replies()
        .rule(
            Rule::on("RCPT")
                .arg("<eve@")
                .reply("550 5.1.1 no such user"),
        )
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args([RECIPIENT, "eve@example.org"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 67, &t);
    let m = t.only().message();
    assert!(m.chunked && m.accepted);
    assert_eq!(m.rcpt_to, vec![RECIPIENT]);
}

// ---------------------------------------------------------------------------------------
// Helpers for the scripts below.

/// The peak memory a run of the binary may reach against a hostile server: its own
/// footprint is a few MiB, so anything near this means it buffered what the server sent.
const MEMORY_LIMIT_KIB: u64 = 64 * 1024;

/// The body text of [`MESSAGE`]: if the server saw it, the message was sent.
const BODY_TEXT: &[u8] = b"Hello, Bob.";

fn with_credentials(mut cmd: assert_cmd::Command) -> assert_cmd::Command {
    cmd.args(["--user", USER])
        .env("SMTPSEND_PASSWORD", PASSWORD)
        .arg(RECIPIENT);
    cmd
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// No AUTH command, no AUTH exchange, and neither the password nor the PLAIN or LOGIN
/// encodings of it in any byte the client sent.
#[track_caller]
fn assert_no_credentials(t: &Transcript) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    for conn in &t.connections {
        assert!(!conn.saw("AUTH"), "AUTH was sent: {:?}", conn.verbs());
        assert!(
            conn.auth.is_empty(),
            "credentials were sent: {:?}",
            conn.auth
        );
        let bytes = conn.received();
        for secret in [
            PASSWORD.to_string(),
            b64.encode(format!("\0{USER}\0{PASSWORD}")),
            b64.encode(PASSWORD),
        ] {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "the password crossed the wire as {secret:?}"
            );
        }
    }
}

/// No MAIL, no message, and not one byte of the body.
#[track_caller]
fn assert_nothing_sent(t: &Transcript) {
    for conn in &t.connections {
        assert!(!conn.saw("MAIL"), "MAIL was sent: {:?}", conn.verbs());
        assert_no_body(conn);
    }
}

#[track_caller]
fn assert_no_body(conn: &crate::common::server::Connection) {
    assert!(conn.messages.is_empty(), "a message went through");
    assert!(
        !contains(&conn.received(), BODY_TEXT),
        "the body was sent: {:?}",
        conn.flight_shape()
    );
}

/// The binary ended by itself (no signal, so no panic abort) and said nothing of a panic.
#[track_caller]
fn assert_sane(out: &std::process::Output) {
    let status = code(out);
    assert!(status < 128, "exit {status}; stderr: {}", stderr(out));
    assert!(
        !stderr(out).contains("panicked"),
        "the binary panicked: {}",
        stderr(out)
    );
}

// ---------------------------------------------------------------------------------------
// Certificates: each refusal happens in the handshake, before AUTH or MAIL, and is
// temporary (75) so the caller keeps the message until the server is fixed.

/// STARTTLS to a server presenting `pki`'s certificate, with credentials; the trust file
/// is `trust` (the test's own, or none).
fn certificate_refused(pki: &Pki, trust: Option<&Pki>, reason: &str) {
    let server = TestServer::starttls(pki)
        .credentials(USER, PASSWORD)
        .start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "required", "-f", SENDER]);
    if let Some(trust) = trust {
        cmd.arg("--tls-trust-file").arg(&trust.trust_file);
    }
    let out = run(with_credentials(cmd), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    let conn = t.only();
    assert!(conn.saw("STARTTLS"), "{:?}", conn.verbs());
    assert!(!conn.tls_established, "the client finished the handshake");
    assert_no_credentials(&t);
    assert_nothing_sent(&t);
    let err = stderr(&out);
    assert!(
        err.contains(reason),
        "stderr does not say {reason:?}: {err}"
    );
    assert!(err.starts_with("smtpsend: 127.0.0.1"), "{err}");
}

#[test]
fn expired_self_signed_certificate_in_the_trust_file_is_refused_exits_75() {
    let pki = Pki::self_signed_expired();
    certificate_refused(
        &pki,
        Some(&pki),
        "certificate expired on 2021-01-01T00:00:00Z",
    );
}

#[test]
fn expired_leaf_under_a_trusted_ca_is_refused_exits_75() {
    let pki = Pki::ca_signed_expired();
    certificate_refused(
        &pki,
        Some(&pki),
        "certificate expired on 2021-01-01T00:00:00Z",
    );
}

#[test]
fn trusted_self_signed_certificate_for_another_name_is_refused_exits_75() {
    // The very certificate is in the trust file, but it names other.example only and the
    // client dialled 127.0.0.1.
    let pki = Pki::self_signed_for(&["other.example"]);
    certificate_refused(&pki, Some(&pki), "not 127.0.0.1;");
}

#[test]
fn ca_signed_certificate_for_another_name_is_refused_exits_75() {
    let pki = Pki::ca_signed_for(&["other.example", "localhost"]);
    certificate_refused(&pki, Some(&pki), "not 127.0.0.1;");
}

#[test]
fn self_signed_certificate_without_a_trust_file_is_refused_exits_75() {
    let pki = Pki::self_signed();
    certificate_refused(&pki, None, "certificate issuer is not trusted");
}

#[test]
fn renewed_self_signed_certificate_not_in_the_trust_file_is_refused_exits_75() {
    // The trust file pins last year's certificate: same names, same subject, another key.
    let pki = Pki::self_signed();
    let old = Pki::self_signed();
    certificate_refused(&pki, Some(&old), "certificate");
}

#[test]
fn renewed_self_signed_certificate_refusal_is_in_words() {
    let pki = Pki::self_signed();
    let old = Pki::self_signed();
    let server = TestServer::starttls(&pki).start();
    let mut cmd = smtpsend_starttls(server.port(), &old);
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    let err = stderr(&out);
    assert!(!err.contains("BadSignature"), "{err}");
}

#[test]
fn expired_leaf_on_implicit_tls_is_refused_before_the_greeting_exits_75() {
    let pki = Pki::ca_signed_expired();
    let server = TestServer::builder()
        .implicit_tls(&pki)
        .credentials(USER, PASSWORD)
        .start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "implicit", "--tls-trust-file"])
        .arg(&pki.trust_file)
        .args(["-f", SENDER]);
    let out = run(with_credentials(cmd), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(t.connections.iter().all(|c| c.commands.is_empty()));
    assert_no_credentials(&t);
    assert!(
        stderr(&out).contains("certificate expired on 2021-01-01T00:00:00Z"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------------------
// AUTH offered where TLS is missing: the credentials stay home (77).

#[test]
fn opportunistic_tls_without_starttls_sends_no_credentials_exits_77() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "AUTH PLAIN LOGIN"])
        .credentials(USER, PASSWORD)
        .start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "opportunistic", "-f", SENDER]);
    let out = run(with_credentials(cmd), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 77, &t);
    assert_no_credentials(&t);
    assert_nothing_sent(&t);
}

#[test]
fn opportunistic_tls_refused_with_454_sends_no_credentials_exits_77() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .capabilities(&["PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN"])
        .credentials(USER, PASSWORD)
        .rule(Rule::on("STARTTLS").reply("454 4.7.0 TLS not available"))
        .start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "opportunistic", "-f", SENDER]);
    let out = run(with_credentials(cmd), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 77, &t);
    assert_no_credentials(&t);
    assert_nothing_sent(&t);
}

#[test]
fn cleartext_auth_login_only_sends_no_credentials_exits_77() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "AUTH LOGIN"])
        .credentials(USER, PASSWORD)
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args(["--auth", "login"]);
    let out = run(with_credentials(cmd), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 77, &t);
    assert_no_credentials(&t);
    assert_nothing_sent(&t);
}

// ---------------------------------------------------------------------------------------
// Replies that never end: refused at the parser's bounds, quickly, in bounded memory.

#[track_caller]
fn assert_bounded(m: &Measured, t: &Transcript) {
    assert_exit(&m.output, 76, t);
    assert!(m.took < SLACK, "took {:?}", m.took);
    assert!(
        m.peak_rss_kib < MEMORY_LIMIT_KIB,
        "peak RSS {} KiB",
        m.peak_rss_kib
    );
    assert_nothing_sent(t);
}

#[test]
fn five_megabyte_reply_line_without_newline_exits_76_in_bounded_memory() {
    let mut huge = b"250-".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 5 << 20));
    let server = TestServer::builder()
        .rule(Rule::on("EHLO").raw(&huge))
        .start();
    let mut cmd = smtpsend_std(server.port());
    cmd.args(["--tls", "off", "-f", SENDER, RECIPIENT]);
    let m = run_measured(cmd, MESSAGE);
    let t = server.finish();
    eprintln!("5 MB reply line: peak RSS {} KiB", m.peak_rss_kib);
    assert_bounded(&m, &t);
    let err = stderr(&m.output);
    assert!(err.contains("longer than"), "{err}");
}

#[test]
fn five_megabyte_greeting_line_with_crlf_exits_76_in_bounded_memory() {
    let mut huge = b"220 ".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 5 << 20));
    huge.extend_from_slice(b"\r\n");
    let server = TestServer::builder()
        .rule(Rule::banner().raw(&huge))
        .start();
    let mut cmd = smtpsend_std(server.port());
    cmd.args(["--tls", "off", "-f", SENDER, RECIPIENT]);
    let m = run_measured(cmd, MESSAGE);
    let t = server.finish();
    assert_bounded(&m, &t);
    assert!(t.never_saw("EHLO"));
}

#[test]
fn never_ending_multiline_reply_exits_76_in_bounded_memory() {
    let server = TestServer::builder()
        .rule(
            Rule::on("EHLO")
                .raw(b"250-localhost\r\n")
                .repeat(b"250-x\r\n"),
        )
        .start();
    let mut cmd = smtpsend_std(server.port());
    cmd.args(["--tls", "off", "-f", SENDER, RECIPIENT]);
    let m = run_measured(cmd, MESSAGE);
    let t = server.finish();
    eprintln!("endless reply: peak RSS {} KiB", m.peak_rss_kib);
    assert_bounded(&m, &t);
    let err = stderr(&m.output);
    assert!(err.contains("more than"), "{err}");
}

#[test]
fn never_ending_greeting_exits_76_in_bounded_memory() {
    let server = TestServer::builder()
        .rule(Rule::banner().raw(b"220-hello\r\n").repeat(b"220-more\r\n"))
        .start();
    let mut cmd = smtpsend_std(server.port());
    cmd.args(["--tls", "off", "-f", SENDER, RECIPIENT]);
    let m = run_measured(cmd, MESSAGE);
    let t = server.finish();
    assert_bounded(&m, &t);
    assert!(t.never_saw("EHLO"));
}

// ---------------------------------------------------------------------------------------
// Odd bytes in replies.

#[test]
fn nul_byte_in_a_reply_exits_76() {
    let server = TestServer::builder()
        .rule(Rule::on("MAIL").raw(b"250 2.1.0 o\0k\r\n"))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 76, &t);
    assert_no_body(t.only());
    assert!(stderr(&out).contains("NUL"), "{}", stderr(&out));
}

#[test]
fn nul_byte_in_the_greeting_exits_76() {
    let server = TestServer::builder()
        .rule(Rule::banner().raw(b"220 local\0host ESMTP\r\n"))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 76, &t);
    assert!(t.never_saw("EHLO") && t.never_saw("MAIL"));
}

#[test]
fn bare_lf_line_ends_in_every_reply_are_tolerated() {
    let server = TestServer::builder()
        .rule(Rule::banner().raw(b"220-localhost\n220 ESMTP test\n"))
        .rule(Rule::on("EHLO").raw(b"250-localhost\n250-PIPELINING\n250 8BITMIME\n"))
        .rule(Rule::on("MAIL").raw(b"250 2.1.0 Ok\n"))
        .rule(Rule::on("RCPT").raw(b"250 2.1.5 Ok\n"))
        .rule(Rule::on("DATA").raw(b"354 go ahead\n"))
        .rule(Rule::data_end().raw(b"250-2.0.0 Ok\n250 2.0.0 queued\n"))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let m = t.only().message();
    assert!(m.accepted);
    assert_eq!(m.content, MESSAGE.as_bytes());
    assert!(
        t.only().bare_lf_lines.is_empty(),
        "the client sent bare LFs"
    );
}

#[test]
fn non_utf8_reply_text_does_not_stop_a_delivery() {
    let server = TestServer::builder()
        .rule(Rule::banner().raw(b"220 caf\xe9 \xff\xfe ESMTP\r\n"))
        .rule(Rule::on("EHLO").raw(
            b"250-localhost gr\xfc\xdft dich\r\n250-PIPELINING\r\n250-X-\xc3\x28\r\n250 8BITMIME\r\n",
        ))
        .rule(Rule::on("MAIL").raw(b"250 2.1.0 d\xe9j\xe0 vu\r\n"))
        .rule(Rule::data_end().raw(b"250 2.0.0 \x80\x81\x82 queued\r\n"))
        .start();
    let mut cmd = plain(&server);
    cmd.arg("-v");
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_sane(&out);
    assert_exit(&out, 0, &t);
    assert!(t.only().message().accepted);
}

#[test]
fn non_utf8_text_in_a_refusal_is_shown_with_replacement_characters() {
    let server = TestServer::builder()
        .rule(Rule::on("RCPT").raw(b"550 5.1.1 unbekannter Empf\xe4nger \xff\r\n"))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_sane(&out);
    assert_exit(&out, 67, &t);
    assert_no_body(t.only());
    let err = stderr(&out);
    assert!(
        err.contains("550 5.1.1 unbekannter Empf\u{fffd}nger \u{fffd}"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Reply codes outside 200-599 at the stages not covered above (greeting: malformed;
// MAIL: 199; RCPT: 600).

#[test]
fn reply_code_600_at_end_of_data_exits_76() {
    let server = TestServer::builder()
        .rule(Rule::data_end().reply("600 6.0.0 beyond the range"))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 76, &t);
    assert!(!t.only().message().accepted);
}

#[test]
fn reply_code_099_to_data_exits_76_without_the_body() {
    let server = TestServer::builder()
        .rule(Rule::on("DATA").reply("099 go ahead, maybe"))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 76, &t);
    assert_no_body(t.only());
}

#[test]
fn reply_code_999_to_ehlo_exits_76() {
    let server = TestServer::builder()
        .rule(Rule::on("EHLO").reply("999 hello"))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 76, &t);
    assert_nothing_sent(&t);
    assert!(t.never_saw("HELO"));
}

// ---------------------------------------------------------------------------------------
// 421 at every stage (RFC 5321 §3.8: the server is closing the channel). Each stage twice:
// against a server that closes right after its 421, as servers do, the status is 75; against
// one that lingers, the client must not say anything after the 421 but QUIT.

const CLOSING: &str = "421 4.3.2 Service shutting down, closing transmission channel";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Greeting,
    Ehlo,
    StartTls,
    Auth,
    Mail,
    Rcpt,
    Data,
    DataEnd,
    Bdat,
}

/// Run the binary against a server that answers 421 at `stage`.
fn scenario_421(stage: Stage, linger: bool) -> (std::process::Output, Transcript) {
    let pki = Pki::self_signed();
    let tls = matches!(stage, Stage::StartTls | Stage::Auth);
    let builder = if tls {
        TestServer::starttls(&pki)
    } else {
        TestServer::builder()
    };
    let builder = match stage {
        Stage::Greeting => builder.banner(CLOSING),
        Stage::Ehlo => builder.rule(Rule::on("EHLO").reply(CLOSING)),
        Stage::StartTls => builder.rule(Rule::on("STARTTLS").reply(CLOSING)),
        Stage::Auth => builder
            .credentials(USER, PASSWORD)
            .rule(Rule::on("AUTH").reply(CLOSING)),
        Stage::Mail => builder.rule(Rule::on("MAIL").reply(CLOSING)),
        Stage::Rcpt => builder.rule(Rule::on("RCPT").reply(CLOSING)),
        Stage::Data => builder.rule(Rule::on("DATA").reply(CLOSING)),
        Stage::DataEnd => builder.rule(Rule::data_end().reply(CLOSING)),
        Stage::Bdat => builder
            .capabilities(&["PIPELINING", "CHUNKING"])
            .rule(Rule::on("BDAT").reply(CLOSING)),
    };
    let builder = if linger {
        builder.linger_after_421()
    } else {
        builder
    };
    let server = builder.start();
    let cmd = match stage {
        Stage::Auth => with_credentials(smtpsend_starttls(server.port(), &pki)),
        Stage::StartTls => {
            let mut cmd = smtpsend_starttls(server.port(), &pki);
            cmd.arg(RECIPIENT);
            cmd
        }
        _ => plain(&server),
    };
    let out = run(cmd, MESSAGE);
    (out, server.finish())
}

/// The server closes after its 421: 75, the 421 on stderr, no message accepted.
fn closing_421(stage: Stage) {
    let (out, t) = scenario_421(stage, false);
    assert_exit(&out, 75, &t);
    let err = stderr(&out);
    if stage != Stage::Rcpt {
        // See reply_421_at_rcpt_is_on_stderr.
        assert!(err.contains("421 4.3.2"), "{stage:?}: {err}");
    }
    let conn = t.only();
    assert!(conn.flights_before_421.is_some(), "no 421 was sent");
    assert!(conn.messages.iter().all(|m| !m.accepted));
    if stage != Stage::DataEnd && stage != Stage::Bdat {
        assert_no_body(conn);
    }
}

/// The server stays after its 421: 75, and nothing but QUIT in any later flight.
fn lingering_421(stage: Stage) {
    let (out, t) = scenario_421(stage, true);
    assert_exit(&out, 75, &t);
    let conn = t.only();
    let after = conn.items_after_421().expect("the server sent its 421");
    assert!(
        after.iter().all(|item| item == "QUIT"),
        "{stage:?}: the client went on after the 421: {after:?}; flights {:?}",
        conn.flight_shape()
    );
    assert!(conn.messages.iter().all(|m| !m.accepted));
}

#[test]
fn reply_421_at_greeting_exits_75() {
    closing_421(Stage::Greeting);
}

#[test]
fn reply_421_at_ehlo_exits_75() {
    closing_421(Stage::Ehlo);
}

#[test]
fn reply_421_at_starttls_exits_75() {
    closing_421(Stage::StartTls);
}

#[test]
fn reply_421_at_auth_exits_75() {
    closing_421(Stage::Auth);
}

#[test]
fn reply_421_at_mail_exits_75() {
    closing_421(Stage::Mail);
}

#[test]
fn reply_421_at_rcpt_exits_75() {
    closing_421(Stage::Rcpt);
}

#[test]
fn reply_421_at_rcpt_is_on_stderr() {
    let (out, t) = scenario_421(Stage::Rcpt, false);
    assert_exit(&out, 75, &t);
    let err = stderr(&out);
    assert!(err.contains("421 4.3.2"), "{err}");
}

#[test]
fn reply_421_at_data_exits_75() {
    closing_421(Stage::Data);
}

#[test]
fn reply_421_at_end_of_data_exits_75() {
    closing_421(Stage::DataEnd);
}

#[test]
fn reply_421_at_bdat_exits_75() {
    closing_421(Stage::Bdat);
}

#[test]
fn only_quit_after_421_at_greeting() {
    lingering_421(Stage::Greeting);
}

#[test]
fn only_quit_after_421_at_ehlo() {
    lingering_421(Stage::Ehlo);
}

#[test]
fn only_quit_after_421_at_starttls() {
    lingering_421(Stage::StartTls);
}

#[test]
fn only_quit_after_421_at_auth() {
    lingering_421(Stage::Auth);
}

#[test]
fn only_quit_after_421_at_mail() {
    lingering_421(Stage::Mail);
}

#[test]
fn only_quit_after_421_at_rcpt() {
    lingering_421(Stage::Rcpt);
}

#[test]
fn only_quit_after_421_at_data() {
    lingering_421(Stage::Data);
}

#[test]
fn only_quit_after_421_at_end_of_data() {
    lingering_421(Stage::DataEnd);
}

#[test]
fn only_quit_after_421_at_bdat() {
    lingering_421(Stage::Bdat);
}

#[test]
fn reply_421_at_starttls_in_opportunistic_mode_exits_75() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .rule(Rule::on("STARTTLS").reply(CLOSING))
        .start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "opportunistic", "-f", SENDER, RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert_nothing_sent(&t);
}

#[test]
fn only_quit_after_421_at_starttls_in_opportunistic_mode() {
    // STARTTLS refused with 454 lets an opportunistic client go on in cleartext; a 421
    // does not: the server is closing.
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .rule(Rule::on("STARTTLS").reply(CLOSING))
        .linger_after_421()
        .start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "opportunistic", "-f", SENDER, RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    let conn = t.only();
    let after = conn.items_after_421().expect("the server sent its 421");
    assert!(
        after.iter().all(|item| item == "QUIT"),
        "the client went on after the 421: {after:?}"
    );
    assert_nothing_sent(&t);
}

#[test]
fn only_quit_after_421_at_the_first_of_two_pipelined_recipients() {
    // The second RCPT and DATA were in the 421's flight already; the body must not follow.
    let server = TestServer::builder()
        .rule(Rule::on("RCPT").arg("<bob@").reply(CLOSING))
        .linger_after_421()
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args([RECIPIENT, "carol@example.org"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    let conn = t.only();
    let after = conn.items_after_421().expect("the server sent its 421");
    assert!(
        after.iter().all(|item| item == "QUIT"),
        "the client went on after the 421: {after:?}"
    );
    assert_no_body(conn);
}

#[test]
fn only_quit_after_421_at_the_first_of_two_recipients_without_pipelining() {
    let server = TestServer::builder()
        .capabilities(&["8BITMIME"])
        .rule(Rule::on("RCPT").arg("<bob@").reply(CLOSING))
        .linger_after_421()
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args([RECIPIENT, "carol@example.org"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    let conn = t.only();
    let after = conn.items_after_421().expect("the server sent its 421");
    assert!(
        after.iter().all(|item| item == "QUIT"),
        "the client went on after the 421: {after:?}"
    );
    assert_no_body(conn);
}

// ---------------------------------------------------------------------------------------
// A server that stops reading in the middle of DATA: the body's writes block, and the
// per-block deadline ends the run.

#[test]
fn server_deaf_after_354_times_out_exits_75() {
    let server = TestServer::builder()
        .rule(Rule::on("DATA").deaf(Duration::from_secs(30)))
        .start();
    let mut input = MESSAGE.as_bytes().to_vec();
    let line = format!("{}\r\n", "0123456789".repeat(7));
    while input.len() < 8 << 20 {
        input.extend_from_slice(line.as_bytes());
    }
    let mut cmd = plain(&server);
    cmd.args(["--timeout", "2"]);
    let started = Instant::now();
    let out = run(cmd, input);
    let took = started.elapsed();
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(took < Duration::from_secs(2) + SLACK, "took {took:?}");
    assert!(t.only().messages.is_empty());
    let err = stderr(&out);
    assert!(err.contains("sending the message"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Capabilities that change with TLS (RFC 3207 §4.2: only what comes after counts).

#[test]
fn size_limit_offered_only_after_tls_applies_exits_69() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .capabilities(&["PIPELINING", "STARTTLS"])
        .capabilities_tls(&["PIPELINING", "8BITMIME", "SIZE 100"])
        .start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 69, &t);
    assert!(t.only().tls_established);
    assert_nothing_sent(&t);
    assert!(stderr(&out).contains("SIZE"), "{}", stderr(&out));
}

#[test]
fn size_limit_offered_only_before_tls_is_forgotten() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .capabilities(&["PIPELINING", "STARTTLS", "SIZE 100"])
        .capabilities_tls(&["PIPELINING", "8BITMIME"])
        .start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert!(conn.message().accepted && conn.message().tls);
    assert!(
        conn.commands_for("MAIL")
            .iter()
            .all(|c| !c.arg.contains("SIZE=")),
        "SIZE= declared to a server that no longer offers SIZE"
    );
}

#[test]
fn auth_mechanism_is_chosen_from_the_capabilities_after_tls() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .capabilities(&["PIPELINING", "STARTTLS", "AUTH PLAIN"])
        .capabilities_tls(&["PIPELINING", "AUTH LOGIN"])
        .credentials(USER, PASSWORD)
        .start();
    let out = run(
        with_credentials(smtpsend_starttls(server.port(), &pki)),
        MESSAGE,
    );
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert!(!conn.auth_before_tls);
    assert_eq!(conn.auth.len(), 1, "{:?}", conn.auth);
    assert_eq!(conn.auth[0].mechanism, "LOGIN");
    assert!(conn.auth[0].tls && conn.auth[0].success);
    assert!(conn.message().accepted);
}

#[test]
fn starttls_offered_again_inside_tls_is_not_issued_twice() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .capabilities_tls(&["PIPELINING", "8BITMIME", "STARTTLS"])
        .start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert_eq!(conn.commands_for("STARTTLS").len(), 1, "{:?}", conn.verbs());
    assert!(!conn.saw_in_tls("STARTTLS"));
    assert!(conn.message().tls && conn.message().accepted);
}

// ---------------------------------------------------------------------------------------
// A greeting trickled out byte by byte: --timeout bounds the whole wait for it.

#[test]
fn trickled_greeting_hits_the_reply_deadline_exits_75() {
    let banner = "220-localhost ESMTP\r\n220-please wait while we think\r\n220 ready\r\n";
    let server = TestServer::builder()
        .rule(
            Rule::banner()
                .raw(banner.as_bytes())
                .trickle(Duration::from_millis(60)),
        )
        .start();
    // ~68 bytes at 60 ms each: about 4 s for the whole greeting, 60 ms between bytes.
    let mut cmd = plain(&server);
    cmd.args(["--timeout", "2"]);
    let (out, took) = timed(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(
        took < Duration::from_secs(2) + SLACK,
        "took {took:?} with --timeout 2"
    );
    assert!(t.never_saw("EHLO"));
    let err = stderr(&out);
    assert!(err.contains("greeting"), "{err}");
}

// ---------------------------------------------------------------------------------------
// SIZE refused at MAIL (RFC 1870 §6.1).

#[test]
fn declared_size_refused_with_552_at_mail_exits_69() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "SIZE 1000000"])
        .rule(
            Rule::on("MAIL")
                .arg("SIZE=")
                .reply("552 5.3.4 Message size exceeds fixed maximum message size"),
        )
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 69, &t);
    let conn = t.only();
    assert!(
        conn.commands_for("MAIL")[0].arg.contains("SIZE="),
        "{:?}",
        conn.commands_for("MAIL")
    );
    assert_no_body(conn);
    assert!(stderr(&out).contains("552 5.3.4"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------
// Pipelined replies that do not add up to the commands sent.

#[test]
fn extra_reply_in_the_pipelined_flight_exits_76() {
    let server = TestServer::builder()
        .rule(Rule::on("MAIL").append(b"250 2.0.0 ok\r\n"))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 76, &t);
    assert_no_body(t.only());
}

#[test]
fn extra_reply_in_coalesced_pipelined_replies_exits_76() {
    let server = TestServer::builder()
        .coalesce_replies()
        .rule(Rule::on("RCPT").append(b"250 2.0.0 ok\r\n"))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 76, &t);
    assert_no_body(t.only());
}

#[test]
fn extra_reply_after_354_is_not_taken_for_the_end_of_data_reply() {
    // The "250" that came with the 354 answers nothing; had the client read it as the
    // reply to the end of data it would report a refused message as delivered.
    let server = TestServer::builder()
        .rule(Rule::on("DATA").append(b"250 2.0.0 ok\r\n"))
        .rule(Rule::data_end().reply("554 5.7.1 message refused"))
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_sane(&out);
    assert_exit(&out, 76, &t);
}

#[test]
fn fewer_replies_than_commands_then_close_exits_75() {
    let server = TestServer::builder()
        .coalesce_replies()
        .rule(Rule::on("DATA").close())
        .start();
    let out = run(plain(&server), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    let conn = t.only();
    assert_eq!(conn.verbs(), ["EHLO", "MAIL", "RCPT", "DATA"]);
    assert_no_body(conn);
}

/// A crash must not leave the process's memory (a password, a token, the message) in a
/// core file: smtpsend lowers its core limit to 0 before it reads anything. Seen from
/// outside, in /proc, once it has connected to a server that never greets it.
#[test]
fn no_core_file_can_hold_a_secret() {
    use std::io::Write as _;
    let silent = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = silent.local_addr().expect("address").port();
    let mut smtpsend = smtpsend_std(port);
    smtpsend.args(["--tls", "off", "-f", SENDER, RECIPIENT]);
    // Started with core files allowed, whatever this machine's default.
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "ulimit -c unlimited && exec \"$0\" \"$@\""])
        .arg(smtpsend.get_program())
        .args(smtpsend.get_args());
    for (key, value) in smtpsend.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("smtpsend runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(MESSAGE.as_bytes()).expect("message");
    drop(stdin);
    silent.set_nonblocking(true).expect("non-blocking");
    let until = Instant::now() + Duration::from_secs(10);
    // The connection shows smtpsend is well past its start.
    let _held = loop {
        match silent.accept() {
            Ok((conn, _)) => break Some(conn),
            Err(_) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id()))
        .expect("the process's limits");
    let _ = child.kill();
    let _ = child.wait();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("a core limit");
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");
}
