//! `smtpsend -bs`: a program speaks SMTP to smtpsend on stdin/stdout; each message it hands
//! over is sent on through the relay (here the in-process test server).

use crate::common::*;

/// The replies on stdout, one code per reply (continuation lines left out).
fn reply_codes(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .split_terminator("\r\n")
        .filter(|l| l.as_bytes().get(3) != Some(&b'-'))
        .map(|l| l[..3].to_string())
        .collect()
}

fn dot_stuff(message: &str) -> String {
    message
        .split_inclusive("\r\n")
        .map(|l| {
            if l.starts_with('.') {
                format!(".{l}")
            } else {
                l.to_string()
            }
        })
        .collect()
}

const SECOND: &str = "From: Carol <carol@example.org>\r\n\
To: Dave <dave@example.net>\r\n\
Subject: second\r\n\
Date: Mon, 1 Jan 2024 00:00:01 +0000\r\n\
Message-ID: <test-2@example.org>\r\n\
\r\n\
.a line that starts with a dot\r\n\
.\r\n\
..\r\n\
the end\r\n";

fn bs(port: u16) -> assert_cmd::Command {
    let mut cmd = smtpsend(port);
    cmd.args(["-bs", "--tls", "off"]);
    cmd
}

#[test]
fn two_messages_in_one_pipelined_session_arrive_byte_exact() {
    let server = TestServer::builder().connections(2).start();
    let script = format!(
        "EHLO client.example\r\n\
         MAIL FROM:<{SENDER}>\r\n\
         RCPT TO:<{RECIPIENT}>\r\n\
         DATA\r\n\
         {}.\r\n\
         MAIL FROM:<carol@example.org>\r\n\
         RCPT TO:<dave@example.net>\r\n\
         RCPT TO:<erin@example.net>\r\n\
         DATA\r\n\
         {}.\r\n\
         QUIT\r\n",
        dot_stuff(MESSAGE),
        dot_stuff(SECOND)
    );
    let out = run(bs(server.port()), script);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(
        reply_codes(&out.stdout),
        [
            "220", "250", "250", "250", "354", "250", "250", "250", "250", "354", "250", "221"
        ],
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    assert_eq!(t.connections.len(), 2);
    let first = t.connections[0].message();
    assert_eq!(first.mail_from, SENDER);
    assert_eq!(first.rcpt_to, [RECIPIENT]);
    assert_eq!(String::from_utf8_lossy(&first.content), MESSAGE);
    let second = t.connections[1].message();
    assert_eq!(second.mail_from, "carol@example.org");
    assert_eq!(second.rcpt_to, ["dave@example.net", "erin@example.net"]);
    assert_eq!(String::from_utf8_lossy(&second.content), SECOND);
    assert_eq!(
        String::from_utf8_lossy(&second.wire),
        dot_stuff(SECOND),
        "dots are stuffed again on the way out"
    );
}

#[test]
fn a_refusal_by_the_relay_is_a_554_and_the_session_goes_on() {
    let server = TestServer::builder()
        .rule(
            Rule::on("RCPT")
                .arg("nobody")
                .reply("550 5.1.1 no such user"),
        )
        .connections(2)
        .start();
    let script = format!(
        "HELO client.example\r\n\
         MAIL FROM:<{SENDER}>\r\nRCPT TO:<nobody@example.org>\r\nDATA\r\n{MESSAGE}.\r\n\
         MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RECIPIENT}>\r\nDATA\r\n{MESSAGE}.\r\n\
         QUIT\r\n"
    );
    let out = run(bs(server.port()), script);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(
            "554 5.3.0 127.0.0.1: RCPT TO:<nobody@example.org>: 550 5.1.1 no such user\r\n"
        ),
        "{text}"
    );
    assert_eq!(
        reply_codes(&out.stdout),
        [
            "220", "250", "250", "250", "354", "554", "250", "250", "354", "250", "221"
        ]
    );
    assert_eq!(t.connections[1].message().rcpt_to, [RECIPIENT]);
}

#[test]
fn a_temporary_failure_is_a_451() {
    let server = TestServer::builder()
        .rule(Rule::on("MAIL").reply("451 4.3.0 try again later"))
        .start();
    let script = format!(
        "EHLO c\r\nMAIL FROM:<{SENDER}>\r\nRCPT TO:<{RECIPIENT}>\r\nDATA\r\n{MESSAGE}.\r\nQUIT\r\n"
    );
    // The test config turns queueing off, so the failure reaches the -bs client.
    let out = run(bs(server.port()), script);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("\r\n451 4.3.0 127.0.0.1: MAIL FROM:"),
        "{text}"
    );
}

#[test]
fn compose_options_do_not_mix_with_bs() {
    let out = run(
        {
            let mut cmd = bs(1);
            cmd.args(["--subject", "x"]);
            cmd
        },
        "QUIT\r\n",
    );
    assert_eq!(code(&out), 64, "{}", stderr(&out));
}

/// The client was told 250 while one recipient was refused for good: that refusal is
/// mailed back to the sender (RFC 3464), over the same relay, from the null sender. A
/// refusal the client saw as a 554 is not.
#[test]
fn a_refusal_behind_a_250_is_mailed_back_to_the_sender() {
    let server = TestServer::builder()
        .rule(
            Rule::on("RCPT")
                .arg("nobody")
                .reply("550 5.1.1 no such user"),
        )
        .connections(2)
        .start();
    let script = format!(
        "HELO client.example\r\n\
         MAIL FROM:<{SENDER}>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<{RECIPIENT}>\r\n\
         DATA\r\n{MESSAGE}.\r\nQUIT\r\n"
    );
    let out = run(bs(server.port()), script);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(
        reply_codes(&out.stdout),
        ["220", "250", "250", "250", "250", "354", "250", "221"]
    );
    assert_eq!(t.connections.len(), 2, "no report was sent");
    let report = t.connections[1].message();
    assert_eq!(report.mail_from, "");
    assert_eq!(report.rcpt_to, [SENDER]);
    let text = String::from_utf8_lossy(&report.content);
    assert!(
        text.contains("Final-Recipient: rfc822; nobody@example.org"),
        "{text}"
    );
    assert!(text.contains("Status: 5.1.1"), "{text}");
}
