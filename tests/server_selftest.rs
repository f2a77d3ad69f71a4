//! Checks of the test server itself, with a hand-driven client, so that a failing
//! integration test points at the binary and not at the harness.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::server::{End, stuff, unstuff};
use crate::common::{Pki, Rule, TestServer};

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

/// A client that writes exactly what it is told, in exactly the writes it is told.
struct Raw {
    conn: Conn,
    pending: Vec<u8>,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.set_nodelay(true).unwrap();
        Raw {
            conn: Conn::Plain(tcp),
            pending: Vec::new(),
        }
    }

    fn connect_tls(port: u16, pki: &Pki) -> Raw {
        let mut raw = Raw::connect(port);
        raw.upgrade(pki);
        raw
    }

    fn upgrade(&mut self, pki: &Pki) {
        let Conn::Plain(tcp) = std::mem::replace(&mut self.conn, Conn::Plain(dummy())) else {
            panic!("already TLS");
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.chain.last().unwrap().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        self.conn = Conn::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)));
    }

    fn send(&mut self, bytes: &[u8]) {
        match &mut self.conn {
            Conn::Plain(s) => s.write_all(bytes).unwrap(),
            Conn::Tls(s) => {
                s.write_all(bytes).unwrap();
                s.flush().unwrap();
            }
        }
    }

    fn read_some(&mut self) -> usize {
        let mut chunk = [0u8; 4096];
        let result = match &mut self.conn {
            Conn::Plain(s) => s.read(&mut chunk),
            Conn::Tls(s) => s.read(&mut chunk),
        };
        let n = match result {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server neither replied nor closed within 5 s")
            }
            Err(_) => 0,
        };
        self.pending.extend_from_slice(&chunk[..n]);
        n
    }

    /// One complete reply (all its lines), as text.
    fn reply(&mut self) -> String {
        loop {
            let mut start = 0;
            while let Some(pos) = self.pending[start..].windows(2).position(|w| w == b"\r\n") {
                let line = &self.pending[start..start + pos];
                if line.len() < 4 || line[3] == b' ' {
                    let end = start + pos + 2;
                    let reply: Vec<u8> = self.pending.drain(..end).collect();
                    return String::from_utf8_lossy(&reply).into_owned();
                }
                start += pos + 2;
            }
            if self.read_some() == 0 {
                panic!(
                    "connection closed mid-reply: {:?}",
                    String::from_utf8_lossy(&self.pending)
                );
            }
        }
    }

    fn closed(&mut self) -> bool {
        self.pending.is_empty() && self.read_some() == 0
    }
}

fn dummy() -> TcpStream {
    // A placeholder for mem::replace; never used for I/O.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    TcpStream::connect(listener.local_addr().unwrap()).unwrap()
}

#[test]
fn pipelined_session_is_recorded_by_flight() {
    let server = TestServer::builder().start();
    let mut c = Raw::connect(server.port());
    assert!(c.reply().starts_with("220 "));
    c.send(b"EHLO client.test\r\n");
    let ehlo = c.reply();
    assert!(ehlo.contains("250-PIPELINING"), "{ehlo}");
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n");
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("354"));
    let content = b"Subject: x\r\n\r\n.hidden\r\n..two\r\nend\r\n";
    let mut body = stuff(content);
    body.extend_from_slice(b".\r\nQUIT\r\n");
    c.send(&body);
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("221"));
    let t = server.finish();
    let conn = t.only();
    assert_eq!(
        conn.flight_shape(),
        vec![
            vec!["EHLO"],
            vec!["MAIL", "RCPT", "RCPT", "DATA"],
            vec!["<data>", "QUIT"]
        ]
    );
    let m = conn.message();
    assert_eq!(m.wire, b"Subject: x\r\n\r\n..hidden\r\n...two\r\nend\r\n");
    assert_eq!(m.content, content);
    assert_eq!(m.mail_from, "a@example.org");
    assert_eq!(m.rcpt_to, vec!["b@example.org", "c@example.org"]);
    assert!(m.accepted);
    assert!(conn.pipelining_violations.is_empty());
    assert_eq!(conn.end, End::ServerClosed);
}

#[test]
fn lockstep_commands_are_separate_flights_and_rules_apply() {
    let server = TestServer::builder()
        .capabilities(&[])
        .rule(
            Rule::on("RCPT")
                .arg("<nobody@")
                .reply("550 5.1.1 user unknown"),
        )
        .start();
    let mut c = Raw::connect(server.port());
    c.reply();
    c.send(b"EHLO x\r\n");
    assert_eq!(c.reply(), "250 localhost greets x\r\n");
    c.send(b"MAIL FROM:<a@example.org>\r\n");
    c.reply();
    c.send(b"RCPT TO:<nobody@example.org>\r\n");
    assert_eq!(c.reply(), "550 5.1.1 user unknown\r\n");
    c.send(b"DATA\r\n");
    assert!(c.reply().starts_with("554"), "no valid recipients");
    c.send(b"QUIT\r\n");
    c.reply();
    let t = server.finish();
    let conn = t.only();
    assert_eq!(conn.flights.len(), 5);
    assert!(conn.messages.is_empty());
}

#[test]
fn starttls_then_auth_plain_is_recorded_in_tls() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .credentials("alice", "s3cret")
        .start();
    let mut c = Raw::connect(server.port());
    c.reply();
    c.send(b"EHLO x\r\n");
    let caps = c.reply();
    assert!(
        caps.contains("STARTTLS") && !caps.contains("AUTH"),
        "{caps}"
    );
    c.send(b"STARTTLS\r\n");
    assert!(c.reply().starts_with("220"));
    c.upgrade(&pki);
    c.send(b"EHLO x\r\n");
    assert!(c.reply().contains("AUTH PLAIN LOGIN"));
    // "\0alice\0s3cret"
    c.send(b"AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\nMAIL FROM:<a@example.org>\r\n");
    assert!(c.reply().starts_with("235"));
    assert!(c.reply().starts_with("250"));
    c.send(b"QUIT\r\n");
    c.reply();
    let t = server.finish();
    let conn = t.only();
    assert!(conn.tls_established);
    assert!(!conn.auth_before_tls);
    assert_eq!(conn.auth.len(), 1);
    assert!(conn.auth[0].success && conn.auth[0].tls);
    assert_eq!(conn.auth[0].password, "s3cret");
    assert!(conn.saw_in_tls("MAIL"));
    assert!(!conn.commands_for("EHLO")[0].tls);
}

#[test]
fn auth_login_and_wrong_password() {
    let server = TestServer::builder()
        .capabilities(&["AUTH LOGIN"])
        .credentials("alice", "s3cret")
        .start();
    let mut c = Raw::connect(server.port());
    c.reply();
    c.send(b"EHLO x\r\n");
    c.reply();
    c.send(b"AUTH LOGIN\r\n");
    assert_eq!(c.reply(), "334 VXNlcm5hbWU6\r\n");
    c.send(b"YWxpY2U=\r\n");
    assert_eq!(c.reply(), "334 UGFzc3dvcmQ6\r\n");
    c.send(b"d3Jvbmc=\r\n"); // "wrong"
    assert!(c.reply().starts_with("535"));
    c.send(b"MAIL FROM:<a@example.org>\r\n");
    assert!(c.reply().starts_with("530"));
    c.send(b"QUIT\r\n");
    c.reply();
    let t = server.finish();
    let conn = t.only();
    assert!(conn.auth_before_tls);
    assert!(!conn.auth[0].success);
    assert_eq!(conn.auth[0].user, "alice");
    assert_eq!(conn.auth[0].password, "wrong");
}

#[test]
fn injected_bytes_ride_in_the_same_write_as_the_starttls_reply() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .rule(Rule::on("STARTTLS").append(b"250 injected\r\n"))
        .start();
    let mut c = Raw::connect(server.port());
    c.reply();
    c.send(b"EHLO x\r\n");
    c.reply();
    c.send(b"STARTTLS\r\n");
    c.read_some();
    assert_eq!(
        c.pending,
        b"220 2.0.0 Ready to start TLS\r\n250 injected\r\n"
    );
    drop(c);
    let t = server.finish();
    assert!(!t.only().tls_established);
    assert!(t.only().tls_error.is_some());
}

#[test]
fn client_plaintext_after_starttls_is_recorded_and_discarded() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki).start();
    let mut c = Raw::connect(server.port());
    c.reply();
    c.send(b"EHLO x\r\n");
    c.reply();
    c.send(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n");
    assert!(c.reply().starts_with("220"));
    c.upgrade(&pki);
    c.send(b"QUIT\r\n");
    c.reply();
    let t = server.finish();
    let conn = t.only();
    assert_eq!(
        conn.plaintext_after_starttls,
        b"MAIL FROM:<evil@example.org>\r\n"
    );
    assert!(!conn.saw("MAIL"));
    assert_eq!(conn.pipelining_violations.len(), 1);
}

#[test]
fn implicit_tls_greets_inside_tls() {
    let pki = Pki::ca_signed();
    let server = TestServer::builder().implicit_tls(&pki).start();
    let mut c = Raw::connect_tls(server.port(), &pki);
    assert!(c.reply().starts_with("220"));
    c.send(b"EHLO x\r\nQUIT\r\n");
    c.reply();
    c.reply();
    let t = server.finish();
    assert!(t.only().tls_established);
    assert!(t.only().commands.iter().all(|c| c.tls));
    assert_eq!(t.only().pipelining_violations.len(), 1, "EHLO was not last");
}

#[test]
fn close_mid_data_drops_the_connection_without_a_reply() {
    let server = TestServer::builder().close_mid_data_after(10).start();
    let mut c = Raw::connect(server.port());
    c.reply();
    c.send(b"HELO x\r\n");
    c.reply();
    c.send(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n");
    c.reply();
    c.reply();
    c.reply();
    c.send(b"0123456789abcdef\r\n.\r\n");
    assert!(c.closed());
    let t = server.finish();
    assert!(t.only().messages.is_empty());
    assert_eq!(t.only().end, End::ServerClosed);
}

#[test]
fn close_after_banner_and_421_close() {
    let server = TestServer::builder()
        .rule(Rule::banner().close_after_reply())
        .start();
    let mut c = Raw::connect(server.port());
    assert!(c.reply().starts_with("220"));
    assert!(c.closed());
    server.finish();

    let server = TestServer::builder().banner("421 4.3.2 busy").start();
    let mut c = Raw::connect(server.port());
    assert!(c.reply().starts_with("421"));
    assert!(c.closed());
    server.finish();
}

#[test]
fn trickled_reply_arrives_byte_by_byte() {
    let server = TestServer::builder()
        .rule(Rule::banner().trickle(Duration::from_millis(5)))
        .start();
    let mut c = Raw::connect(server.port());
    assert_eq!(c.reply(), "220 localhost ESMTP test\r\n");
    drop(c);
    server.finish();
}

#[test]
fn stall_is_cut_short_when_the_test_finishes() {
    let server = TestServer::builder()
        .rule(Rule::on("MAIL").stall(Duration::from_secs(30)))
        .start();
    let mut c = Raw::connect(server.port());
    c.reply();
    c.send(b"EHLO x\r\nMAIL FROM:<a@x>\r\n");
    c.reply();
    drop(c);
    let started = Instant::now();
    server.finish();
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn finish_without_a_client_returns_quickly() {
    let server = TestServer::builder().start();
    let started = Instant::now();
    let t = server.finish();
    assert!(t.connections.is_empty());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn coalesced_replies_come_in_one_write() {
    let server = TestServer::builder().coalesce_replies().start();
    let mut c = Raw::connect(server.port());
    c.reply();
    c.send(b"EHLO x\r\n");
    c.reply();
    c.send(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n");
    c.read_some();
    assert_eq!(
        c.pending,
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    );
    drop(c);
    server.finish();
}

#[test]
fn data_end_rule_replaces_the_final_reply() {
    let server = TestServer::builder()
        .rule(Rule::data_end().reply("554 5.7.1 spam"))
        .start();
    let mut c = Raw::connect(server.port());
    c.reply();
    c.send(b"EHLO x\r\n");
    c.reply();
    c.send(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n");
    c.reply();
    c.reply();
    c.reply();
    c.send(b".\r\n");
    assert_eq!(c.reply(), "554 5.7.1 spam\r\n");
    drop(c);
    let t = server.finish();
    let m = t.only().message();
    assert!(!m.accepted);
    assert!(m.wire.is_empty());
}

#[test]
fn stuffing_round_trips() {
    let content = b".\r\n..\r\na.b\r\n.x\r\n";
    assert_eq!(stuff(content), b"..\r\n...\r\na.b\r\n..x\r\n");
    assert_eq!(unstuff(&stuff(content)), content);
}

#[test]
fn bdat_chunks_are_recorded_without_unstuffing() {
    let server = TestServer::builder()
        .capabilities(&["PIPELINING", "CHUNKING", "SIZE 1000"])
        .start();
    let mut c = Raw::connect(server.port());
    c.reply();
    c.send(b"EHLO x\r\n");
    assert!(c.reply().contains("250-CHUNKING"));
    c.send(b"MAIL FROM:<a@x> SIZE=20\r\nRCPT TO:<b@x>\r\nBDAT 8\r\n.a\r\n.b\r\nBDAT 3 LAST\r\nc\r\nQUIT\r\n");
    assert!(c.reply().starts_with("250 2.1.0"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert_eq!(c.reply(), "250 2.0.0 Chunk received\r\n");
    assert_eq!(c.reply(), "250 2.0.0 Ok: queued\r\n");
    assert!(c.reply().starts_with("221"));
    let t = server.finish();
    let conn = t.only();
    let m = conn.message();
    assert!(m.chunked && m.accepted);
    assert_eq!(m.wire, b".a\r\n.b\r\nc\r\n");
    assert_eq!(m.content, m.wire);
    assert_eq!(
        conn.flight_shape(),
        vec![
            vec!["EHLO"],
            vec!["MAIL", "RCPT", "BDAT", "<data>", "BDAT", "<data>", "QUIT"]
        ]
    );
}

#[test]
fn size_limit_is_enforced_at_mail_and_after_data() {
    let server = TestServer::builder().capabilities(&["SIZE 10"]).start();
    let mut c = Raw::connect(server.port());
    c.reply();
    c.send(b"EHLO x\r\n");
    c.reply();
    c.send(b"MAIL FROM:<a@x> SIZE=11\r\n");
    assert!(c.reply().starts_with("552 5.3.4"));
    c.send(b"MAIL FROM:<a@x>\r\n");
    assert!(c.reply().starts_with("250"));
    c.send(b"RCPT TO:<b@x>\r\n");
    c.reply();
    c.send(b"DATA\r\n");
    c.reply();
    c.send(b"0123456789\r\n.\r\n");
    assert!(c.reply().starts_with("552 5.3.4"));
    drop(c);
    let t = server.finish();
    assert!(!t.only().message().accepted);
}

#[test]
fn lingering_server_keeps_serving_after_421_and_marks_the_flight() {
    let server = TestServer::builder()
        .rule(Rule::on("MAIL").reply("421 4.3.2 closing"))
        .linger_after_421()
        .start();
    let mut c = Raw::connect(server.port());
    c.reply();
    c.send(b"EHLO x\r\n");
    c.reply();
    c.send(b"MAIL FROM:<a@x>\r\n");
    assert!(c.reply().starts_with("421"));
    c.send(b"RSET\r\n");
    assert!(c.reply().starts_with("250"));
    c.send(b"QUIT\r\n");
    assert!(c.reply().starts_with("221"));
    let t = server.finish();
    let conn = t.only();
    assert_eq!(conn.flights_before_421, Some(2));
    assert_eq!(
        conn.items_after_421(),
        Some(vec!["RSET".to_string(), "QUIT".to_string()])
    );
}

#[test]
fn repeated_reply_arrives_in_whole_units_until_the_client_leaves() {
    let server = TestServer::builder()
        .rule(
            Rule::on("EHLO")
                .raw(b"250-first\r\n")
                .repeat(b"250-again\r\n"),
        )
        .start();
    let mut c = Raw::connect(server.port());
    c.reply();
    c.send(b"EHLO x\r\n");
    while c.pending.len() < 1 << 20 {
        assert!(c.read_some() > 0, "the server stopped repeating");
    }
    let text = String::from_utf8_lossy(&c.pending[..1 << 20]).into_owned();
    let mut lines = text.split("\r\n");
    assert_eq!(lines.next(), Some("250-first"));
    let whole: Vec<&str> = lines.collect();
    // Every complete line is a whole unit; only the last may be cut by the 1 MiB slice.
    assert!(whole[..whole.len() - 1].iter().all(|l| *l == "250-again"));
    drop(c);
    let started = Instant::now();
    let t = server.finish();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(t.only().end, End::ClientClosed);
}

#[test]
fn deaf_server_reads_nothing_for_a_while_after_its_reply() {
    let server = TestServer::builder()
        .rule(Rule::on("DATA").deaf(Duration::from_millis(500)))
        .start();
    let mut c = Raw::connect(server.port());
    c.reply();
    c.send(b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n");
    for _ in 0..4 {
        c.reply();
    }
    let started = Instant::now();
    c.send(b"Subject: x\r\n\r\nhello\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    assert!(started.elapsed() >= Duration::from_millis(400));
    server.finish();
}

#[test]
fn measured_run_sees_the_peak_memory_of_the_child_alone() {
    // dd fills a 96 MiB buffer once and exits within some 50 ms: the polling must see
    // well over the hostile tests' 64 MiB limit, or those could not fail.
    let mut big = std::process::Command::new("dd");
    big.args(["if=/dev/zero", "of=/dev/null", "bs=96M", "count=1"]);
    let m = crate::common::run_measured(big, Vec::new());
    assert!(m.output.status.success());
    assert!(m.peak_rss_kib > 80 * 1024, "peak {} KiB", m.peak_rss_kib);

    let mut small = std::process::Command::new("sleep");
    small.arg("0.05");
    let m = crate::common::run_measured(small, Vec::new());
    assert!(m.peak_rss_kib < 16 * 1024, "peak {} KiB", m.peak_rss_kib);
}
