//! The binary against a well-behaved relay on 127.0.0.1: delivery, envelope, replies,
//! STARTTLS, AUTH, PIPELINING, sendmail input conventions.

use crate::common::server::Connection;
use crate::common::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-Pa55";

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn shape(items: &[&[&str]]) -> Vec<Vec<String>> {
    items.iter().map(|f| strings(f)).collect()
}

/// The client behaved in every way a server can check without a script.
#[track_caller]
fn assert_well_formed(conn: &Connection) {
    assert!(
        conn.bare_lf_lines.is_empty(),
        "command lines ended in bare LF: {:?}",
        conn.bare_lf_lines
    );
    assert!(
        conn.pipelining_violations.is_empty(),
        "{:?}",
        conn.pipelining_violations
    );
    assert!(
        conn.plaintext_after_starttls.is_empty(),
        "the client pipelined after STARTTLS: {:?}",
        String::from_utf8_lossy(&conn.plaintext_after_starttls)
    );
}

#[test]
fn delivery_is_byte_exact_with_dot_stuffing_and_crlf() {
    let server = TestServer::builder().start();
    let input = "From: Alice <alice@example.org>\n\
To: Bob <bob@example.org>\n\
Subject: dots\n\
Date: Mon, 1 Jan 2024 00:00:00 +0000\n\
Message-ID: <dots@example.org>\n\
\n\
.leading dot\n\
..two dots\r\n\
bare CR\rin the middle\n\
\n\
. \n\
last line without newline";
    let expected_content = "From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: dots\r\n\
Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\
Message-ID: <dots@example.org>\r\n\
\r\n\
.leading dot\r\n\
..two dots\r\n\
bare CR\r\nin the middle\r\n\
\r\n\
. \r\n\
last line without newline\r\n";
    let expected_wire = "From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: dots\r\n\
Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\
Message-ID: <dots@example.org>\r\n\
\r\n\
..leading dot\r\n\
...two dots\r\n\
bare CR\r\nin the middle\r\n\
\r\n\
.. \r\n\
last line without newline\r\n";
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, input);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert_well_formed(conn);
    let m = conn.message();
    assert_eq!(
        String::from_utf8_lossy(&m.wire),
        expected_wire,
        "wire form differs"
    );
    assert_eq!(String::from_utf8_lossy(&m.content), expected_content);
    assert!(m.accepted);
}

#[test]
fn delivered_message_is_the_input_when_already_crlf() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(String::from_utf8_lossy(&t.only().message().wire), MESSAGE);
}

#[test]
fn envelope_sender_comes_from_dash_f() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "off", "-f", "bounces@example.net", RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let mail = t.only().commands_for("MAIL");
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0].arg.starts_with("FROM:<bounces@example.net>"),
        "{}",
        mail[0].line
    );
    assert_eq!(t.only().message().mail_from, "bounces@example.net");
}

#[test]
fn ehlo_name_comes_from_flag() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args(["--ehlo", "client.example.org", RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(t.only().commands_for("EHLO")[0].arg, "client.example.org");
}

#[test]
fn multiple_recipients_in_one_transaction() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args([RECIPIENT, "carol@example.org", "dave@example.net"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert_eq!(conn.commands_for("MAIL").len(), 1);
    assert_eq!(conn.commands_for("DATA").len(), 1);
    assert_eq!(
        conn.message().rcpt_to,
        strings(&[RECIPIENT, "carol@example.org", "dave@example.net"])
    );
}

#[test]
fn comma_separated_recipients_are_split() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg("bob@example.org,carol@example.org");
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(
        t.only().message().rcpt_to,
        strings(&[RECIPIENT, "carol@example.org"])
    );
}

const DASH_T_INPUT: &str = "From: alice@example.org\r\n\
To: Bob <bob@example.org>\r\n\
Cc: carol@example.org\r\n\
Bcc: dave@example.net\r\n\
Subject: t\r\n\
Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\
Message-ID: <t@example.org>\r\n\
\r\n\
body\r\n";

#[test]
fn recipients_come_from_headers_with_dash_t() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg("-t");
    let out = run(cmd, DASH_T_INPUT);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let mut rcpts = t.only().message().rcpt_to.clone();
    rcpts.sort();
    assert_eq!(
        rcpts,
        strings(&["bob@example.org", "carol@example.org", "dave@example.net"])
    );
}

#[test]
fn bcc_header_is_removed_with_dash_t() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg("-t");
    let out = run(cmd, DASH_T_INPUT);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let data = String::from_utf8_lossy(&t.only().message().content).into_owned();
    assert!(!data.to_ascii_lowercase().contains("bcc:"), "{data}");
    assert!(!data.contains("dave@example.net"), "{data}");
    assert!(data.contains("Cc: carol@example.org\r\n"), "{data}");
    assert!(data.ends_with("\r\n\r\nbody\r\n"), "{data}");
}

#[test]
fn rejected_recipient_exits_67() {
    let server = TestServer::builder()
        .rule(
            Rule::on("RCPT")
                .arg("<bob@example.org>")
                .reply("550 5.1.1 user unknown"),
        )
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 67, &t);
    let err = stderr(&out);
    assert!(err.contains("bob@example.org"), "{err}");
    assert!(err.contains("550 5.1.1 user unknown"), "{err}");
    assert!(t.only().messages.is_empty());
}

#[test]
fn partially_rejected_recipients_deliver_to_the_rest_and_exit_67() {
    let server = TestServer::builder()
        .rule(
            Rule::on("RCPT")
                .arg("<eve@example.org>")
                .reply("550 5.1.1 user unknown"),
        )
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args([RECIPIENT, "eve@example.org", "carol@example.org"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 67, &t);
    let m = t.only().message();
    assert!(m.accepted);
    assert_eq!(m.rcpt_to, strings(&[RECIPIENT, "carol@example.org"]));
    let err = stderr(&out);
    assert!(err.contains("eve@example.org"), "{err}");
    assert!(err.contains("550 5.1.1"), "{err}");
}

#[test]
fn all_rejected_sends_no_data() {
    let server = TestServer::builder()
        .rule(Rule::on("RCPT").reply("550 5.1.1 user unknown"))
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args([RECIPIENT, "carol@example.org"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 67, &t);
    let conn = t.only();
    assert!(conn.messages.is_empty());
    assert!(
        conn.flights
            .iter()
            .all(|f| !f.items.iter().any(|i| i == "<data>")),
        "{:?}",
        conn.flight_shape()
    );
    let all: Vec<u8> = conn.flights.iter().flat_map(|f| f.bytes.clone()).collect();
    assert!(
        !String::from_utf8_lossy(&all).contains("Hello, Bob."),
        "the body was sent"
    );
}

#[test]
fn temp_failure_421_at_greeting_exits_75() {
    let server = TestServer::builder()
        .banner("421 4.3.2 Service not available")
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(t.never_saw("MAIL"));
    assert!(stderr(&out).contains("421"), "{}", stderr(&out));
}

#[test]
fn temp_failure_451_at_mail_exits_75() {
    let server = TestServer::builder()
        .rule(Rule::on("MAIL").reply("451 4.3.0 try again later"))
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(t.only().messages.is_empty());
    let err = stderr(&out);
    assert!(err.contains("451 4.3.0 try again later"), "{err}");
}

#[test]
fn temp_failure_450_at_rcpt_exits_75() {
    let server = TestServer::builder()
        .rule(Rule::on("RCPT").reply("450 4.2.0 mailbox busy"))
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(t.only().messages.is_empty());
}

#[test]
fn permanent_failure_554_at_end_of_data_exits_69() {
    let server = TestServer::builder()
        .rule(Rule::data_end().reply("554 5.7.1 message refused"))
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 69, &t);
    assert!(!t.only().message().accepted);
    let err = stderr(&out);
    assert!(err.contains("554 5.7.1 message refused"), "{err}");
}

#[test]
fn temp_failure_451_at_end_of_data_exits_75() {
    let server = TestServer::builder()
        .rule(Rule::data_end().reply("451 4.3.0 queue full"))
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
}

#[test]
fn greeting_554_exits_69_nothing_sent() {
    let server = TestServer::builder()
        .banner("554 5.3.2 no service for you")
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 69, &t);
    assert!(t.never_saw("MAIL"));
}

#[test]
fn multiline_greeting_is_accepted() {
    let server = TestServer::builder()
        .banner("220-localhost ESMTP\r\n220-second line\r\n220 third line")
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
}

fn auth_server(pki: &Pki) -> crate::common::server::Builder {
    TestServer::starttls(pki).credentials(USER, PASSWORD)
}

fn smtpsend_auth(port: u16, pki: &Pki) -> assert_cmd::Command {
    let mut cmd = smtpsend_starttls(port, pki);
    cmd.args(["--user", USER])
        .env("SMTPSEND_PASSWORD", PASSWORD)
        .arg(RECIPIENT);
    cmd
}

#[test]
fn auth_plain_success_over_starttls() {
    let pki = Pki::self_signed();
    let server = auth_server(&pki).start();
    let mut cmd = smtpsend_auth(server.port(), &pki);
    cmd.args(["--auth", "plain"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert_well_formed(conn);
    assert!(conn.tls_established);
    assert!(!conn.auth_before_tls);
    assert_eq!(conn.auth.len(), 1);
    let a = &conn.auth[0];
    assert_eq!(a.mechanism, "PLAIN");
    assert!(a.success && a.tls, "{a:?}");
    let m = conn.message();
    assert!(m.tls && m.accepted);
    assert!(
        conn.commands
            .iter()
            .filter(|c| c.verb != "EHLO" && c.verb != "STARTTLS")
            .all(|c| c.tls)
    );
}

#[test]
fn starttls_auth_plain_takes_five_client_flights() {
    let pki = Pki::self_signed();
    let server = auth_server(&pki).start();
    let mut cmd = smtpsend_auth(server.port(), &pki);
    cmd.args(["--auth", "plain"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(
        t.only().flight_shape(),
        shape(&[
            &["EHLO"],
            &["STARTTLS"],
            &["EHLO"],
            &["AUTH", "MAIL", "RCPT", "DATA"],
            &["<data>"],
            &["QUIT"],
        ])
    );
    // QUIT (and TLS's close_notify behind it) leave only once the 250 is read, so a reset
    // the server's kernel sends when we close can no longer destroy the 250.
    let m = t.only().message();
    assert!(m.accepted && m.tls);
}

#[test]
fn auth_login_success() {
    let pki = Pki::self_signed();
    let server = auth_server(&pki).start();
    let mut cmd = smtpsend_auth(server.port(), &pki);
    cmd.args(["--auth", "login"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert_eq!(conn.auth.len(), 1);
    assert_eq!(conn.auth[0].mechanism, "LOGIN");
    assert!(conn.auth[0].success && conn.auth[0].tls);
    assert!(conn.message().accepted);
}

#[test]
fn auth_login_is_chosen_when_only_login_is_offered() {
    let pki = Pki::self_signed();
    let server = auth_server(&pki)
        .capabilities_tls(&["PIPELINING", "AUTH LOGIN"])
        .start();
    let out = run(smtpsend_auth(server.port(), &pki), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(t.only().auth[0].mechanism, "LOGIN");
}

#[test]
fn auth_failure_exits_77() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .credentials(USER, "another password")
        .start();
    let out = run(smtpsend_auth(server.port(), &pki), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 77, &t);
    let conn = t.only();
    assert!(conn.messages.is_empty());
    assert_eq!(
        conn.auth.len(),
        1,
        "the client retried with another mechanism"
    );
    assert!(!conn.auth[0].success);
    let err = stderr(&out);
    assert!(err.contains("535"), "{err}");
    assert!(!err.contains(PASSWORD), "the password is on stderr: {err}");
}

#[test]
fn no_auth_over_cleartext_without_insecure_flag() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "AUTH PLAIN LOGIN"])
        .credentials(USER, PASSWORD)
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args(["--user", USER])
        .env("SMTPSEND_PASSWORD", PASSWORD)
        .arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 77, &t);
    assert!(t.never_saw("AUTH"));
    assert!(t.connections.iter().all(|c| c.messages.is_empty()));
    let all: Vec<u8> = t
        .connections
        .iter()
        .flat_map(|c| c.flights.iter().flat_map(|f| f.bytes.clone()))
        .collect();
    let plain = BASE64.encode(format!("\0{USER}\0{PASSWORD}"));
    let text = String::from_utf8_lossy(&all);
    assert!(!text.contains(&plain) && !text.contains(PASSWORD));
}

#[test]
fn auth_over_cleartext_with_insecure_auth_flag() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "AUTH PLAIN LOGIN"])
        .credentials(USER, PASSWORD)
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args(["--user", USER, "--insecure-auth"])
        .env("SMTPSEND_PASSWORD", PASSWORD)
        .arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert!(conn.auth[0].success);
    assert!(conn.message().accepted);
}

#[test]
fn starttls_required_but_not_offered_exits_75_nothing_sent() {
    let pki = Pki::self_signed();
    let server = TestServer::builder()
        .tls(&pki)
        .capabilities(&["PIPELINING", "8BITMIME"])
        .start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(t.never_saw("MAIL"));
    assert!(t.never_saw("RCPT"));
    assert!(t.never_saw("AUTH"));
}

#[test]
fn starttls_refused_454_exits_75() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .rule(Rule::on("STARTTLS").reply("454 4.7.0 TLS not available due to temporary reason"))
        .start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(t.never_saw("MAIL"));
    let err = stderr(&out);
    assert!(err.contains("454"), "{err}");
}

#[test]
fn opportunistic_tls_delivers_in_cleartext_when_starttls_is_not_offered() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "opportunistic", "-f", SENDER, RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert!(!t.only().message().tls);
}

#[test]
fn opportunistic_tls_uses_starttls_when_offered() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki).start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "opportunistic", "-f", SENDER, RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert!(t.only().message().tls);
}

#[test]
fn capabilities_before_tls_are_forgotten() {
    let pki = Pki::self_signed();
    let server = auth_server(&pki)
        .capabilities(&["PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN"])
        .capabilities_tls(&["8BITMIME"])
        .start();
    let out = run(smtpsend_auth(server.port(), &pki), MESSAGE);
    let t = server.finish();
    assert_ne!(
        code(&out),
        0,
        "delivered although AUTH was offered only before TLS"
    );
    let conn = t.only();
    assert!(
        !conn.saw("AUTH"),
        "the client used AUTH learned before TLS: {:?}",
        conn.verbs()
    );
    assert!(conn.messages.is_empty());
}

#[test]
fn pipelining_offered_only_before_tls_is_not_used_after() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .capabilities(&["PIPELINING", "STARTTLS"])
        .capabilities_tls(&["8BITMIME"])
        .start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.args([RECIPIENT, "carol@example.org"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert_well_formed(conn);
    assert_eq!(
        conn.flight_shape(),
        shape(&[
            &["EHLO"],
            &["STARTTLS"],
            &["EHLO"],
            &["MAIL"],
            &["RCPT"],
            &["RCPT"],
            &["DATA"],
            &["<data>"],
            &["QUIT"],
        ])
    );
}

#[test]
fn pipelining_used_when_offered() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args([RECIPIENT, "carol@example.org"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert_well_formed(conn);
    assert_eq!(
        conn.flight_shape(),
        shape(&[
            &["EHLO"],
            &["MAIL", "RCPT", "RCPT", "DATA"],
            &["<data>"],
            // After the 250: never behind the end of data (issue 16 (1)).
            &["QUIT"],
        ])
    );
    let envelope = &conn.flights[1];
    assert_eq!(envelope.reads, 1, "the envelope came in several writes");
}

#[test]
fn lockstep_without_pipelining() {
    let server = TestServer::builder().capabilities(&["8BITMIME"]).start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args([RECIPIENT, "carol@example.org"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert_well_formed(conn);
    assert_eq!(
        conn.flight_shape(),
        shape(&[
            &["EHLO"],
            &["MAIL"],
            &["RCPT"],
            &["RCPT"],
            &["DATA"],
            &["<data>"],
            &["QUIT"],
        ])
    );
}

#[test]
fn no_pipelining_flag_forces_lockstep() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args(["--no-pipelining", RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(
        t.only().flight_shape(),
        shape(&[
            &["EHLO"],
            &["MAIL"],
            &["RCPT"],
            &["DATA"],
            &["<data>"],
            &["QUIT"],
        ])
    );
}

#[test]
fn helo_fallback_on_502() {
    let server = TestServer::builder()
        .rule(Rule::on("EHLO").reply("502 5.5.2 Command not recognized"))
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert_eq!(conn.verbs()[..2], ["EHLO", "HELO"]);
    assert!(conn.message().accepted);
    // HELO offers no extensions: no pipelining either.
    assert!(
        conn.flight_shape()
            .iter()
            .all(|f| f.len() == 1 || f[0] == "<data>"),
        "{:?}",
        conn.flight_shape()
    );
}

#[test]
fn helo_fallback_on_500() {
    let server = TestServer::builder()
        .rule(Rule::on("EHLO").reply("500 5.5.1 what?"))
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert!(t.only().saw("HELO"));
}

const LONE_DOT_INPUT: &str = "Subject: dot\n\
Date: Mon, 1 Jan 2024 00:00:00 +0000\n\
Message-ID: <dot@example.org>\n\
From: alice@example.org\n\
To: bob@example.org\n\
\n\
before\n\
.\n\
after\n";

#[test]
fn lone_dot_ends_input_without_dash_i() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, LONE_DOT_INPUT);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let content = String::from_utf8_lossy(&t.only().message().content).into_owned();
    assert!(content.ends_with("\r\nbefore\r\n"), "{content:?}");
    assert!(!content.contains("after"), "{content:?}");
}

#[test]
fn lone_dot_is_data_with_dash_i() {
    for flag in ["-i", "-oi"] {
        let server = TestServer::builder().start();
        let mut cmd = smtpsend_plain(server.port());
        cmd.args([flag, RECIPIENT]);
        let out = run(cmd, LONE_DOT_INPUT);
        let t = server.finish();
        assert_exit(&out, 0, &t);
        let m = t.only().message();
        let content = String::from_utf8_lossy(&m.content).into_owned();
        assert!(
            content.ends_with("\r\nbefore\r\n.\r\nafter\r\n"),
            "{flag}: {content:?}"
        );
        let wire = String::from_utf8_lossy(&m.wire).into_owned();
        assert!(
            wire.ends_with("\r\nbefore\r\n..\r\nafter\r\n"),
            "{flag}: {wire:?}"
        );
    }
}

#[test]
fn implicit_tls_delivery() {
    let pki = Pki::self_signed();
    let server = TestServer::builder().implicit_tls(&pki).start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "implicit", "--tls-trust-file"])
        .arg(&pki.trust_file)
        .args(["-f", SENDER, RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert!(conn.tls_established);
    assert!(conn.commands.iter().all(|c| c.tls));
    assert!(!conn.saw("STARTTLS"));
    assert!(conn.message().tls);
}

#[test]
fn trust_file_with_a_ca_verifies_the_chain() {
    let pki = Pki::ca_signed();
    let server = TestServer::starttls(&pki).start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert!(t.only().message().tls);
}

#[test]
fn untrusted_certificate_fails() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .credentials(USER, PASSWORD)
        .start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "required", "-f", SENDER, "--user", USER])
        .env("SMTPSEND_PASSWORD", PASSWORD)
        .arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_ne!(code(&out), 0, "delivered over an unverified certificate");
    let conn = t.only();
    assert!(!conn.tls_established, "the client accepted the handshake");
    assert!(!conn.saw("MAIL") && !conn.saw("AUTH"));
    assert!(conn.auth.is_empty());
    eprintln!(
        "untrusted certificate: exit {} / {}",
        code(&out),
        stderr(&out)
    );
}

#[test]
fn fingerprint_pinning_accepts_pinned_cert() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki).start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "required", "--tls-fingerprint", &pki.fingerprint()])
        .args(["-f", SENDER, RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert!(t.only().message().tls);
}

#[test]
fn fingerprint_pinning_accepts_colon_separated_uppercase() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki).start();
    let fp = pki.fingerprint().to_ascii_uppercase();
    let colons: Vec<&str> = (0..fp.len()).step_by(2).map(|i| &fp[i..i + 2]).collect();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "required", "--tls-fingerprint", &colons.join(":")])
        .args(["-f", SENDER, RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
}

#[test]
fn fingerprint_mismatch_is_refused() {
    let pki = Pki::self_signed();
    let other = Pki::self_signed();
    let server = TestServer::starttls(&pki).start();
    let mut cmd = smtpsend(server.port());
    cmd.args([
        "--tls",
        "required",
        "--tls-fingerprint",
        &other.fingerprint(),
    ])
    .arg("--tls-trust-file")
    .arg(&pki.trust_file)
    .args(["-f", SENDER, RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_ne!(
        code(&out),
        0,
        "delivered to a server whose pin does not match"
    );
    assert!(t.never_saw("MAIL"));
}

#[test]
fn trace_redacts_auth() {
    let pki = Pki::self_signed();
    let server = auth_server(&pki).start();
    let mut cmd = smtpsend_auth(server.port(), &pki);
    cmd.args(["-v", "--auth", "plain"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let err = stderr(&out);
    assert!(err.contains("C: EHLO "), "{err}");
    assert!(err.contains("S: 250-"), "{err}");
    assert!(err.contains("C: STARTTLS"), "{err}");
    assert!(err.contains("<redacted>"), "{err}");
    let ir = BASE64.encode(format!("\0{USER}\0{PASSWORD}"));
    assert!(!err.contains(&ir), "AUTH PLAIN response on stderr: {err}");
    assert!(!err.contains(PASSWORD), "password on stderr: {err}");
}

#[test]
fn trace_redacts_auth_login() {
    let pki = Pki::self_signed();
    let server = auth_server(&pki).start();
    let mut cmd = smtpsend_auth(server.port(), &pki);
    cmd.args(["-v", "--auth", "login"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let err = stderr(&out);
    assert!(err.contains("<redacted>"), "{err}");
    let encoded = BASE64.encode(PASSWORD);
    assert!(!err.contains(&encoded), "LOGIN password on stderr: {err}");
    assert!(!err.contains(PASSWORD), "password on stderr: {err}");
}

#[test]
fn chunking_sends_a_small_message_in_one_bdat_without_dot_stuffing() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "CHUNKING", "8BITMIME"])
        .start();
    let input = "Subject: chunk\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\
Message-ID: <chunk@example.org>\nFrom: alice@example.org\nTo: bob@example.org\n\n\
.dot\nbare CR\rend";
    let expected = "Subject: chunk\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\
Message-ID: <chunk@example.org>\r\nFrom: alice@example.org\r\nTo: bob@example.org\r\n\r\n\
.dot\r\nbare CR\r\nend\r\n";
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, input);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert_well_formed(conn);
    let m = conn.message();
    assert!(m.chunked && m.accepted);
    assert_eq!(String::from_utf8_lossy(&m.wire), expected);
    let bdat = conn.commands_for("BDAT");
    assert_eq!(bdat.len(), 1);
    assert_eq!(bdat[0].arg, format!("{} LAST", expected.len()));
    assert_eq!(
        conn.flight_shape(),
        shape(&[&["EHLO"], &["MAIL", "RCPT", "BDAT", "<data>"], &["QUIT"]])
    );
}

#[test]
fn chunking_is_not_used_without_pipelining() {
    let server = TestServer::builder().capabilities(&["CHUNKING"]).start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let m = t.only().message();
    assert!(!m.chunked);
    assert_eq!(String::from_utf8_lossy(&m.wire), MESSAGE);
}

#[test]
fn bdat_refused_at_end_exits_69() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "CHUNKING"])
        .rule(Rule::on("BDAT").reply("554 5.7.1 message refused"))
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 69, &t);
    assert!(!t.only().message().accepted);
    assert!(stderr(&out).contains("554 5.7.1"), "{}", stderr(&out));
}

#[test]
fn bdat_with_every_recipient_rejected_exits_67() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "CHUNKING"])
        .rule(Rule::on("RCPT").reply("550 5.1.1 user unknown"))
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 67, &t);
    assert!(t.only().messages.iter().all(|m| !m.accepted));
}

#[test]
fn lone_dot_ends_input_with_chunking_too() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "CHUNKING"])
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, LONE_DOT_INPUT);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let m = t.only().message();
    assert!(m.chunked);
    let content = String::from_utf8_lossy(&m.content).into_owned();
    assert!(content.ends_with("\r\nbefore\r\n"), "{content:?}");
}

#[test]
fn message_size_is_declared_when_offered() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "SIZE 1000000"])
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let mail = &t.only().commands_for("MAIL")[0].arg;
    let declared: usize = mail
        .split_whitespace()
        .find_map(|p| p.strip_prefix("SIZE="))
        .unwrap_or_else(|| panic!("no SIZE= in {mail}"))
        .parse()
        .expect("SIZE is a number");
    assert!(
        declared >= MESSAGE.len(),
        "SIZE={declared} for {} bytes",
        MESSAGE.len()
    );
}

#[test]
fn message_larger_than_the_size_limit_is_not_sent_exits_69() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "SIZE 100"])
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 69, &t);
    assert!(t.connections.iter().all(|c| c.messages.is_empty()));
}

const EIGHT_BIT: &str = "From: alice@example.org\r\nTo: bob@example.org\r\n\
Subject: 8bit\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <8@example.org>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n";

#[test]
fn eight_bit_body_is_declared_with_body_8bitmime() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "8BITMIME"])
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, EIGHT_BIT);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    let mail = &conn.commands_for("MAIL")[0].arg;
    assert!(mail.contains("BODY=8BITMIME"), "{mail}");
    assert_eq!(conn.message().wire, EIGHT_BIT.as_bytes());
}

#[test]
fn eight_bit_body_is_not_sent_to_a_seven_bit_server() {
    let server = TestServer::builder().capabilities(&["PIPELINING"]).start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, EIGHT_BIT);
    let t = server.finish();
    assert_ne!(code(&out), 0);
    assert!(t.connections.iter().all(|c| c.messages.is_empty()));
}

#[test]
fn dsn_parameters_are_sent_when_offered() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "DSN"])
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args([
        "-N",
        "success,failure",
        "-R",
        "hdrs",
        "-V",
        "env-42",
        RECIPIENT,
    ]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    let mail = &conn.commands_for("MAIL")[0].arg;
    assert!(mail.contains("RET=HDRS"), "{mail}");
    assert!(mail.contains("ENVID=env-42"), "{mail}");
    let rcpt = &conn.commands_for("RCPT")[0].arg;
    assert!(rcpt.contains("NOTIFY=SUCCESS,FAILURE"), "{rcpt}");
}

#[test]
fn dsn_parameters_are_dropped_when_not_offered() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args(["-N", "never", "-R", "full", RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert!(!conn.commands_for("MAIL")[0].arg.contains("RET="));
    assert!(!conn.commands_for("RCPT")[0].arg.contains("NOTIFY="));
}

#[test]
fn missing_from_date_and_message_id_are_added() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, "To: bob@example.org\nSubject: bare\n\nbody\n");
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let content = String::from_utf8_lossy(&t.only().message().content).into_owned();
    let (head, body) = content
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header/body separator: {content:?}"));
    let has = |name: &str| {
        head.split("\r\n")
            .any(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
    };
    assert!(has("from") && has("date") && has("message-id"), "{head}");
    assert!(
        head.contains(SENDER),
        "From is not the envelope sender: {head}"
    );
    assert!(head.contains("Subject: bare"), "{head}");
    assert_eq!(body, "body\r\n");
}

/// Issue 16 (5): a message from a regular file on stdin declares its size at MAIL
/// (RFC 1870), however large: a server whose limit it exceeds refuses MAIL, and not a
/// byte of the body is sent (exit 69).
#[test]
fn a_large_file_on_stdin_declares_its_size_and_a_refusal_at_mail_sends_no_body() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "SIZE", "8BITMIME"])
        .rule(Rule::on("MAIL").reply("552 5.3.4 Message size exceeds fixed limit"))
        .start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.eml");
    let mut input = MESSAGE.as_bytes().to_vec();
    while input.len() < 1 << 20 {
        input.extend_from_slice(b"a line of the body, not a short one at all\r\n");
    }
    std::fs::write(&path, &input).unwrap();
    let mut cmd = smtpsend_std(server.port());
    cmd.args(["--tls", "off", "-i", "-f", SENDER, RECIPIENT])
        .stdin(std::fs::File::open(&path).unwrap());
    let out = cmd.output().unwrap();
    let t = server.finish();
    assert_exit(&out, 69, &t);
    let conn = t.only();
    let mail = conn.commands_for("MAIL");
    let declared: usize = mail[0]
        .arg
        .split_whitespace()
        .find_map(|p| p.strip_prefix("SIZE="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no SIZE= in MAIL {}", mail[0].arg));
    assert!(
        declared >= input.len(),
        "SIZE={declared} for {} bytes",
        input.len()
    );
    assert!(conn.messages.is_empty(), "a body was sent");
    assert!(conn.commands_for("BDAT").is_empty() && conn.commands_for("DATA").len() <= 1);
}

/// Issue 16 (4): a server that refuses mid-message and closes at once (OpenSMTPD's "500
/// Line too long", the unread rest making its kernel send a reset): the reply it sent
/// before the reset is the outcome, permanent for a 5xx (69), temporary for a 4xx (75),
/// and stderr names it, not the reset. A raw server: it must stop reading and close
/// while the client is still writing.
#[test]
fn a_reply_sent_before_the_server_reset_the_connection_is_read() {
    use std::io::{BufRead, BufReader, Read, Write};
    for (reply, status) in [
        ("500 5.0.0 Line too long\r\n", 69),
        ("421 4.3.0 shutting down\r\n", 75),
    ] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (sock, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(sock.try_clone().unwrap());
            let mut out = sock.try_clone().unwrap();
            out.write_all(b"220 raw.test ESMTP\r\n").unwrap();
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                let answer: &[u8] = match verb.as_str() {
                    "EHLO" => b"250 raw.test\r\n",
                    "DATA" => b"354 go ahead\r\n",
                    _ => b"250 ok\r\n",
                };
                out.write_all(answer).unwrap();
                if verb == "DATA" {
                    break;
                }
            }
            let mut some = vec![0u8; 64 * 1024];
            let _ = reader.read_exact(&mut some);
            out.write_all(reply.as_bytes()).unwrap();
            // Closed with data unread: the kernel answers what follows with a reset.
            drop(reader);
            drop(out);
            drop(sock);
        });
        let mut input = MESSAGE.as_bytes().to_vec();
        while input.len() < 32 << 20 {
            input.extend_from_slice(b"a line of the body, not a short one at all\r\n");
        }
        let mut cmd = smtpsend_plain(port);
        cmd.arg(RECIPIENT);
        let out = run(cmd, input);
        server.join().unwrap();
        let err = stderr(&out);
        assert_eq!(code(&out), status, "{err}");
        assert!(err.contains(reply.trim_end()), "{err}");
        assert!(!err.contains("reset"), "{err}");
    }
}

/// Issue 16 (6): a 452 goes to a further transaction on the same connection; when that
/// one takes none of them (452 for storage, not a limit), they stay refused for now.
#[test]
fn recipients_refused_with_452_get_one_further_transaction_then_wait() {
    let server = TestServer::builder()
        .rule(
            Rule::on("RCPT")
                .arg("carol")
                .reply("452 4.3.1 Insufficient system storage"),
        )
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args([RECIPIENT, "carol@example.org"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    let conn = t.only();
    assert_eq!(
        conn.commands_for("MAIL").len(),
        2,
        "one further transaction"
    );
    let rcpts: Vec<&str> = conn
        .commands_for("RCPT")
        .iter()
        .map(|c| c.arg.as_str())
        .collect();
    assert_eq!(
        rcpts,
        [
            "TO:<bob@example.org>",
            "TO:<carol@example.org>",
            "TO:<carol@example.org>"
        ]
    );
    assert_eq!(conn.messages.iter().filter(|m| m.accepted).count(), 1);
    assert!(stderr(&out).contains("452 4.3.1"), "{}", stderr(&out));
}

/// Issue 16 (2): opportunistic TLS whose handshake fails (the server closes after its 220
/// to STARTTLS, as a broken TLS stack does) is followed at once by a new connection in
/// cleartext, and `-v` says so; with `--tls required` there is no such second connection.
#[test]
fn a_failed_handshake_in_opportunistic_mode_falls_back_to_cleartext() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "STARTTLS", "8BITMIME"])
        .rule(
            Rule::on("STARTTLS")
                .reply("220 2.0.0 Ready to start TLS")
                .close_after_reply(),
        )
        .connections(2)
        .start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "opportunistic", "-v", "-f", SENDER, RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert!(
        stderr(&out).contains("cleartext after a failed TLS handshake"),
        "{}",
        stderr(&out)
    );
    assert_eq!(t.connections.len(), 2);
    assert!(t.connections[0].messages.is_empty());
    assert!(t.connections[1].commands_for("STARTTLS").is_empty());
    let m = t.connections[1].message();
    assert!(m.accepted && !m.tls);

    let pki = Pki::self_signed();
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "STARTTLS"])
        .rule(
            Rule::on("STARTTLS")
                .reply("220 2.0.0 Ready to start TLS")
                .close_after_reply(),
        )
        .connections(2)
        .start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert_eq!(t.connections.len(), 1, "required TLS never goes cleartext");
}

/// Issue 15 (1): an account's secrets go only to the host and port it names. With a
/// `--host`/`--port` of another server and no `-a`, nothing of the account's reaches it
/// (no AUTH, not its user, not its password), and `-v` says why; with `-a` the user
/// asks for it by name.
#[test]
fn an_accounts_credentials_never_go_to_another_host_given_with_host() {
    const SECRET: &str = "the-accounts-own-secret";
    let pki = Pki::self_signed();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    // The account's own relay is port 1 on loopback (nothing listens there).
    std::fs::write(
        &config,
        format!(
            "queue_on_tempfail = false\nhost = \"127.0.0.1\"\nport = 1\nuser = \"{USER}\"\n\
             password = \"{SECRET}\"\ntls_trust_file = \"{}\"\n",
            pki.trust_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let cmd_for = |port: u16, extra: &[&str]| {
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
        cmd.env("SMTPSEND_QUEUE_RUNNER", "off")
            .env_remove("SMTPSEND_PASSWORD")
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--tls", "required", "--tls-trust-file"])
            .arg(&pki.trust_file)
            .args(extra)
            .args(["-v", "-f", SENDER, RECIPIENT])
            .timeout(CLIENT_LIMIT);
        cmd
    };

    let server = TestServer::starttls(&pki).credentials(USER, SECRET).start();
    let out = run(cmd_for(server.port(), &[]), MESSAGE);
    let t = server.finish();
    // That server wants AUTH, which it does not get: its 530 is the outcome.
    assert_exit(&out, 69, &t);
    assert!(stderr(&out).contains("530 5.7.0"), "{}", stderr(&out));
    let conn = t.only();
    assert!(conn.auth.is_empty(), "AUTH was tried: {:?}", conn.auth);
    assert!(conn.commands_for("AUTH").is_empty());
    let err = stderr(&out);
    assert!(!err.contains(SECRET));
    assert!(err.contains("is not the relay of account"), "{err}");

    // Asked for by name, the account's credentials go there.
    let server = TestServer::starttls(&pki).credentials(USER, SECRET).start();
    let out = run(cmd_for(server.port(), &["-a", "default"]), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let auth = &t.only().auth;
    assert_eq!(auth.len(), 1, "{auth:?}");
    assert!(auth[0].success, "{auth:?}");
}
