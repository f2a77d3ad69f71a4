//! Messages of every quality, each with a defined outcome: sent as is where the RFCs allow
//! it (or where refusing would only lose mail), refused with exit 65 where they do not.

use crate::common::*;

fn send(input: &[u8], extra: &[&str]) -> (std::process::Output, Transcript) {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args(extra).arg(RECIPIENT);
    let out = run(cmd, input.to_vec());
    (out, server.finish())
}

#[test]
fn line_longer_than_998_octets_is_folded_not_refused() {
    // RFC 5321 §4.5.3.1.6 limits lines to 998 octets, and servers enforce it (OpenSMTPD
    // refuses the message); refusing cron's output would lose it. Folded as Postfix does:
    // CRLF and a space inserted, the text otherwise whole.
    let mut input = b"Subject: long\n\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 5000));
    input.push(b'\n');
    let (out, t) = send(&input, &["-i"]);
    assert_exit(&out, 0, &t);
    let content = &t.only().message().content;
    assert!(
        content.split(|&b| b == b'\n').all(|l| l.len() <= 999),
        "a line over 998 octets"
    );
    let unfolded = String::from_utf8_lossy(content).replace("\r\n ", "");
    assert!(unfolded.contains(&"x".repeat(5000)), "{unfolded}");
}

#[test]
fn nul_byte_in_the_body_exits_65_before_connecting() {
    let (out, t) = send(b"Subject: nul\n\na\0b\n", &["-i"]);
    assert_exit(&out, 65, &t);
    assert!(t.connections.is_empty(), "refused before any connection");
    assert!(stderr(&out).contains("NUL"), "{}", stderr(&out));
}

#[test]
fn nul_byte_deep_in_a_large_body_abandons_the_transfer_exits_65() {
    let mut input = b"Subject: nul\n\n".to_vec();
    input.extend(std::iter::repeat_n(b"0123456789abcdef\n", 40_000).flatten());
    input.extend_from_slice(b"late\0nul\n");
    let (out, t) = send(&input, &["-i"]);
    assert_exit(&out, 65, &t);
    // The server never saw an end of data, so it never accepted anything.
    assert!(
        t.connections
            .iter()
            .all(|c| c.messages.iter().all(|m| !m.accepted))
    );
}

#[test]
fn nul_byte_in_a_header_exits_65() {
    let (out, t) = send(b"Subject: a\0b\n\nbody\n", &["-i"]);
    assert_exit(&out, 65, &t);
    assert!(t.connections.is_empty());
}

#[test]
fn message_without_a_header_separator_gets_headers_and_is_sent() {
    let (out, t) = send(b"just a line of text\nand another\n", &["-i"]);
    assert_exit(&out, 0, &t);
    let text = String::from_utf8_lossy(&t.only().message().content).into_owned();
    assert!(text.contains("\r\nDate: "), "{text}");
    assert!(
        text.contains("\r\n\r\njust a line of text\r\nand another\r\n"),
        "{text}"
    );
}

#[test]
fn header_only_message_is_sent() {
    let (out, t) = send(b"Subject: only headers\nX-Test: 1\n", &["-i"]);
    assert_exit(&out, 0, &t);
    let text = String::from_utf8_lossy(&t.only().message().content).into_owned();
    assert!(
        text.starts_with("Subject: only headers\r\nX-Test: 1\r\n"),
        "{text}"
    );
}

#[test]
fn empty_message_is_sent_with_the_added_headers() {
    let (out, t) = send(b"", &["-i"]);
    assert_exit(&out, 0, &t);
    let text = String::from_utf8_lossy(&t.only().message().content).into_owned();
    assert!(text.starts_with("From: "), "{text}");
    assert!(text.contains("Message-ID: <"), "{text}");
}

#[test]
fn non_utf8_bytes_in_headers_are_sent_as_is() {
    let input = b"Subject: caf\xe9 cr\xe8me\n\nbody\n";
    let (out, t) = send(input, &["-i"]);
    assert_exit(&out, 0, &t);
    let content = &t.only().message().content;
    assert!(content.starts_with(b"Subject: caf\xe9 cr\xe8me\r\n"));
}

#[test]
fn non_ascii_address_in_a_header_for_dash_t_needs_smtputf8() {
    // The server offers no SMTPUTF8: the client refuses rather than sending something the
    // server would corrupt.
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args(["-t", "-i"]);
    let out = run(cmd, "To: j\u{f6}rg@example.org\nSubject: x\n\nbody\n");
    let t = server.finish();
    assert_exit(&out, 69, &t);
    assert!(t.never_saw("DATA"));
}
