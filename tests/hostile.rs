//! The binary against servers that misbehave: injected bytes, broken replies, closed
//! connections, stalls and trickles. Each test proves the client fails closed, with the
//! right status, quickly, and without sending what it must not.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;

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
