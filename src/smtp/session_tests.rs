//! Session tests: a scripted server answers each flight; waits are counted as the
//! bench counts them (each time the client must read before it can go on).

use std::collections::VecDeque;

use super::body::encode_all;
use super::failure::Failure;
use super::*;

/// A scripted server: answers commands with canned replies, collects the body.
struct FakeServer {
    ehlo: Vec<&'static str>,
    ehlo_tls: Vec<&'static str>,
    tls: bool,
    /// What the transport would report about the certificate after STARTTLS.
    verified: bool,
    in_data: bool,
    /// (command prefix, reply) overrides, checked in order.
    overrides: Vec<(String, String)>,
    /// (whole line, reply) overrides, checked before the prefixes: SASL responses,
    /// including the empty line.
    exact: Vec<(String, String)>,
    commands: Vec<String>,
    data: Vec<u8>,
    partial: Vec<u8>,
    bdat_left: usize,
    /// Replies to the `BDAT` chunks in order, before the override or the default.
    bdat_replies: VecDeque<String>,
    /// Every chunk received, in order.
    chunks: Vec<Vec<u8>>,
}

impl FakeServer {
    fn new(ehlo: &[&'static str]) -> Self {
        FakeServer {
            ehlo: ehlo.to_vec(),
            ehlo_tls: ehlo.iter().copied().filter(|c| *c != "STARTTLS").collect(),
            tls: false,
            verified: true,
            in_data: false,
            overrides: vec![],
            exact: vec![],
            commands: vec![],
            data: vec![],
            partial: vec![],
            bdat_left: 0,
            bdat_replies: VecDeque::new(),
            chunks: vec![],
        }
    }

    fn on(mut self, prefix: &str, reply: &str) -> Self {
        self.overrides.push((prefix.into(), reply.into()));
        self
    }

    fn on_line(mut self, line: &str, reply: &str) -> Self {
        self.exact.push((line.into(), reply.into()));
        self
    }

    fn reply_for(&self, line: &str) -> String {
        if let Some((_, reply)) = self.exact.iter().find(|(l, _)| l == line) {
            return format!("{reply}\r\n");
        }
        for (prefix, reply) in &self.overrides {
            if line.starts_with(prefix.as_str()) {
                return format!("{reply}\r\n");
            }
        }
        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                let caps = if self.tls { &self.ehlo_tls } else { &self.ehlo };
                let mut out = String::new();
                let mut lines = vec!["server.example"];
                lines.extend(caps.iter().copied());
                for (i, l) in lines.iter().enumerate() {
                    let sep = if i + 1 == lines.len() { ' ' } else { '-' };
                    out.push_str(&format!("250{sep}{l}\r\n"));
                }
                out
            }
            "HELO" => "250 server.example\r\n".into(),
            "STARTTLS" => "220 2.0.0 go ahead\r\n".into(),
            "AUTH" => "235 2.7.0 ok\r\n".into(),
            "MAIL" | "RCPT" => "250 2.1.0 ok\r\n".into(),
            "DATA" => "354 go on\r\n".into(),
            "QUIT" => "221 bye\r\n".into(),
            "RSET" | "NOOP" => "250 2.0.0 ok\r\n".into(),
            _ => "500 5.5.1 unknown\r\n".into(),
        }
    }

    /// Answer one flight from the client.
    fn respond(&mut self, flight: &[u8]) -> Vec<u8> {
        self.partial.extend_from_slice(flight);
        let mut out = Vec::new();
        loop {
            if self.bdat_left > 0 {
                if self.partial.len() < self.bdat_left {
                    break;
                }
                self.data = self.partial.drain(..self.bdat_left).collect();
                self.chunks.push(self.data.clone());
                self.bdat_left = 0;
                let reply = match self.bdat_replies.pop_front() {
                    Some(r) => format!("{r}\r\n"),
                    None => self
                        .overrides
                        .iter()
                        .find(|(p, _)| p == "BDAT")
                        .map(|(_, r)| format!("{r}\r\n"))
                        .unwrap_or_else(|| "250 2.0.0 queued\r\n".into()),
                };
                out.extend_from_slice(reply.as_bytes());
                continue;
            }
            if self.in_data {
                let Some(end) = find(&self.partial, b"\r\n.\r\n") else {
                    break;
                };
                self.data = self.partial[..end + 5].to_vec();
                self.partial.drain(..end + 5);
                self.in_data = false;
                let reply = self
                    .overrides
                    .iter()
                    .find(|(p, _)| p == ".")
                    .map(|(_, r)| format!("{r}\r\n"))
                    .unwrap_or_else(|| "250 2.0.0 queued\r\n".into());
                out.extend_from_slice(reply.as_bytes());
                continue;
            }
            let Some(end) = find(&self.partial, b"\r\n") else {
                break;
            };
            let line = String::from_utf8_lossy(&self.partial[..end]).into_owned();
            self.partial.drain(..end + 2);
            let reply = self.reply_for(&line);
            if line == "DATA" && reply.starts_with("354") {
                self.in_data = true;
            }
            if let Some(rest) = line.strip_prefix("BDAT ") {
                self.bdat_left = rest
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                self.commands.push(line);
                continue;
            }
            self.commands.push(line);
            out.extend_from_slice(reply.as_bytes());
        }
        out
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

struct Outcome {
    trace: Vec<String>,
    waits: usize,
    flights: Vec<Vec<u8>>,
    result: Event,
    server: FakeServer,
}

/// Drive a session against the fake server until it is done or failed.
fn run(mut s: Session, mut server: FakeServer, body: &[u8], banner: &str) -> Outcome {
    let mut waits = 0;
    let mut flights = vec![];
    let mut inbox = banner.as_bytes().to_vec();
    let mut result = None;
    let mut trace = vec![];
    for _ in 0..100 {
        let mut flight = Vec::new();
        loop {
            while let Some(buf) = s.poll_transmit() {
                let n = buf.len();
                flight.extend_from_slice(buf);
                s.consume(n);
            }
            match s.poll_event() {
                Some(Event::StartTls) => {
                    assert!(flight.is_empty(), "nothing may follow STARTTLS");
                    // The handshake is one more wait for the server.
                    waits += 1;
                    server.tls = true;
                    s.tls_established(server.verified);
                }
                Some(Event::SendBody) => {
                    flight.extend_from_slice(&encode_all(body, false));
                    s.body_sent();
                }
                Some(e) => {
                    result = Some(e);
                    break;
                }
                None => break,
            }
        }
        while let Some(t) = s.poll_trace() {
            trace.push(format!("{}: {}", if t.client { "C" } else { "S" }, t.text));
        }
        if !flight.is_empty() {
            inbox.extend_from_slice(&server.respond(&flight));
            flights.push(flight);
        }
        if let Some(r) = result {
            return Outcome {
                trace,
                waits,
                flights,
                result: r,
                server,
            };
        }
        assert!(s.wants_input(), "session neither finished nor waiting");
        waits += 1;
        let input = std::mem::take(&mut inbox);
        s.handle_input(&input);
    }
    panic!("session did not finish");
}

fn env(rcpts: &[&str]) -> Envelope {
    Envelope {
        from: "alice@example.org".into(),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
    }
}

fn plain_opts() -> SessionOptions {
    SessionOptions {
        tls: TlsPolicy::Off,
        ehlo_name: "client.example".into(),
        ..SessionOptions::default()
    }
}

fn creds() -> Option<Credentials> {
    Some(Credentials::password("alice", "s3cret"))
}

const BANNER: &str = "220 server.example ESMTP\r\n";
const FULL: &[&str] = &[
    "PIPELINING",
    "SIZE 1000000",
    "8BITMIME",
    "STARTTLS",
    "AUTH PLAIN LOGIN",
    "ENHANCEDSTATUSCODES",
];

fn done(o: &Outcome) -> &Report {
    match &o.result {
        Event::Done(r) => r,
        other => panic!("expected Done, got {other:?}"),
    }
}

fn failed(o: &Outcome) -> &SessionError {
    match &o.result {
        Event::Failed(e) => e,
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn plain_pipelined_send_takes_four_waits() {
    for n in [1, 10] {
        let rcpts: Vec<String> = (0..n).map(|i| format!("r{i}@example.net")).collect();
        let rcpts: Vec<&str> = rcpts.iter().map(|s| s.as_str()).collect();
        let o = run(
            Session::new(env(&rcpts), plain_opts()),
            FakeServer::new(&["PIPELINING", "8BITMIME"]),
            b"Subject: hi\n\nbody\n",
            BANNER,
        );
        assert_eq!(done(&o).accepted.len(), n);
        assert_eq!(o.waits, 4, "{n} recipients");
        // EHLO; MAIL+RCPTs+DATA; body; QUIT once the 250 is in (not behind the end of
        // data, where Exim would hold its reply back; nothing waits for the 221).
        assert_eq!(o.flights.len(), 4);
        let second = String::from_utf8_lossy(&o.flights[1]);
        assert!(second.starts_with("MAIL FROM:<alice@example.org> BODY=8BITMIME\r\n"));
        assert!(second.ends_with("DATA\r\n"));
        assert_eq!(second.matches("RCPT TO:").count(), n);
        assert!(o.flights[2].ends_with(b"\r\n.\r\n"));
        assert_eq!(o.flights[3], b"QUIT\r\n");
    }
}

#[test]
fn starttls_and_auth_plain_take_seven_waits() {
    let opts = SessionOptions {
        tls: TlsPolicy::Required,
        credentials: creds(),
        ..plain_opts()
    };
    let o = run(
        Session::new(env(&["bob@example.net"]), opts),
        FakeServer::new(FULL),
        b"x\n",
        BANNER,
    );
    let r = done(&o);
    assert!(r.tls && r.authenticated);
    assert_eq!(o.waits, 7);
    let cmds = &o.server.commands;
    assert_eq!(cmds[0], "EHLO client.example");
    assert_eq!(cmds[1], "STARTTLS");
    assert_eq!(cmds[2], "EHLO client.example");
    // \0alice\0s3cret
    assert_eq!(cmds[3], "AUTH PLAIN AGFsaWNlAHMzY3JldA==");
    assert!(cmds[4].starts_with("MAIL FROM:"));
}

#[test]
fn implicit_tls_with_auth_plain_takes_four_waits_after_the_handshake() {
    let opts = SessionOptions {
        tls: TlsPolicy::Required,
        implicit_tls: true,
        tls_verified: true,
        credentials: creds(),
        ..plain_opts()
    };
    let mut server = FakeServer::new(FULL);
    server.tls = true;
    let o = run(
        Session::new(env(&["bob@example.net"]), opts),
        server,
        b"x\n",
        BANNER,
    );
    assert!(done(&o).authenticated);
    // banner, EHLO, AUTH+MAIL+RCPT+DATA, body+QUIT; the handshake is the transport's.
    assert_eq!(o.waits, 4);
}

#[test]
fn lockstep_without_pipelining() {
    let o = run(
        Session::new(env(&["a@x.example", "b@x.example"]), plain_opts()),
        FakeServer::new(&["8BITMIME"]),
        b"x\n",
        BANNER,
    );
    done(&o);
    // banner, EHLO, MAIL, RCPT, RCPT, DATA, end of data.
    assert_eq!(o.waits, 7);
    assert!(o.flights.iter().skip(1).take(4).all(|f| {
        let t = String::from_utf8_lossy(f);
        t.matches("\r\n").count() == 1
    }));
    assert_eq!(o.server.commands.last().map(String::as_str), Some("QUIT"));
}

#[test]
fn auth_login_is_lockstep_and_redacted() {
    let opts = SessionOptions {
        tls: TlsPolicy::Required,
        credentials: creds(),
        mechanism: Some(Mechanism::Login),
        trace: true,
        ..plain_opts()
    };
    let server = FakeServer::new(FULL)
        .on("AUTH LOGIN", "334 VXNlcm5hbWU6")
        .on("YWxpY2U=", "334 UGFzc3dvcmQ6")
        .on("czNjcmV0", "235 2.7.0 ok");
    let o = run(
        Session::new(env(&["bob@example.net"]), opts),
        server,
        b"x\n",
        BANNER,
    );
    assert!(done(&o).authenticated);
    assert!(o.server.commands.contains(&"YWxpY2U=".to_string()));
    let joined = o.trace.join("\n");
    assert!(!joined.contains("czNjcmV0"), "password must not be traced");
    assert!(!joined.contains("YWxpY2U="), "user must not be traced");
    assert!(joined.contains("C: <redacted>"));
    assert!(joined.contains("S: 334 VXNlcm5hbWU6"));
}

#[test]
fn failed_pipelined_auth_reports_the_535() {
    let opts = SessionOptions {
        tls: TlsPolicy::Required,
        credentials: creds(),
        ..plain_opts()
    };
    let server = FakeServer::new(FULL)
        .on("AUTH", "535 5.7.8 bad credentials")
        .on("MAIL", "530 5.7.0 authentication required")
        .on("RCPT", "503 5.5.1 need MAIL")
        .on("DATA", "503 5.5.1 need RCPT");
    let o = run(
        Session::new(env(&["bob@example.net"]), opts),
        server,
        b"x\n",
        BANNER,
    );
    let e = failed(&o);
    assert_eq!(e.kind(), Failure::Auth);
    assert!(e.to_string().contains("535 5.7.8"), "{e}");
    assert!(e.to_string().starts_with("AUTH PLAIN <redacted>"), "{e}");
}

#[test]
fn starttls_required_but_not_offered_sends_nothing_more() {
    let o = run(
        Session::new(
            env(&["bob@example.net"]),
            SessionOptions {
                tls: TlsPolicy::Required,
                credentials: creds(),
                ..plain_opts()
            },
        ),
        FakeServer::new(&["PIPELINING", "AUTH PLAIN"]),
        b"x\n",
        BANNER,
    );
    assert!(matches!(failed(&o), SessionError::TlsUnavailable(_)));
    assert_eq!(failed(&o).kind(), Failure::Transient);
    assert!(
        o.server
            .commands
            .iter()
            .all(|c| !c.starts_with("MAIL") && !c.starts_with("AUTH"))
    );
}

#[test]
fn starttls_refused_when_required_is_a_temporary_failure() {
    let o = run(
        Session::new(
            env(&["bob@example.net"]),
            SessionOptions {
                tls: TlsPolicy::Required,
                ..plain_opts()
            },
        ),
        FakeServer::new(FULL).on("STARTTLS", "454 4.7.0 TLS not available"),
        b"x\n",
        BANNER,
    );
    assert_eq!(failed(&o).kind(), Failure::Transient);
    assert!(!o.server.commands.iter().any(|c| c.starts_with("MAIL")));
}

#[test]
fn starttls_refused_when_opportunistic_goes_on_in_cleartext() {
    let o = run(
        Session::new(
            env(&["bob@example.net"]),
            SessionOptions {
                tls: TlsPolicy::Opportunistic,
                ..plain_opts()
            },
        ),
        FakeServer::new(FULL).on("STARTTLS", "454 4.7.0 TLS not available"),
        b"x\n",
        BANNER,
    );
    assert!(!done(&o).tls);
}

#[test]
fn bytes_after_starttls_reply_abort_the_session() {
    let mut s = Session::new(
        env(&["bob@example.net"]),
        SessionOptions {
            tls: TlsPolicy::Required,
            ..plain_opts()
        },
    );
    s.handle_input(BANNER.as_bytes());
    s.consume(s.poll_transmit().unwrap().len());
    s.handle_input(b"250-server.example\r\n250 STARTTLS\r\n");
    assert_eq!(s.poll_transmit(), Some(&b"STARTTLS\r\n"[..]));
    s.consume(10);
    s.handle_input(b"220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n");
    match s.poll_event() {
        Some(Event::Failed(SessionError::Protocol(m))) => assert!(m.contains("injection")),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.poll_event(), None, "no StartTls event after injection");
    assert_eq!(
        s.poll_transmit(),
        None,
        "not even QUIT on a tampered connection"
    );
}

#[test]
fn capabilities_from_before_tls_are_forgotten() {
    // Before TLS the server offers AUTH PLAIN; after TLS it offers nothing.
    let mut server = FakeServer::new(FULL);
    server.ehlo_tls = vec!["PIPELINING"];
    let o = run(
        Session::new(
            env(&["bob@example.net"]),
            SessionOptions {
                tls: TlsPolicy::Required,
                credentials: creds(),
                ..plain_opts()
            },
        ),
        server,
        b"x\n",
        BANNER,
    );
    assert!(matches!(failed(&o), SessionError::AuthUnavailable(_)));
    assert!(!o.server.commands.iter().any(|c| c.starts_with("AUTH")));
}

#[test]
fn no_credentials_over_cleartext() {
    let o = run(
        Session::new(
            env(&["bob@example.net"]),
            SessionOptions {
                tls: TlsPolicy::Off,
                credentials: creds(),
                ..plain_opts()
            },
        ),
        FakeServer::new(FULL),
        b"x\n",
        BANNER,
    );
    assert_eq!(failed(&o).kind(), Failure::Auth);
    assert!(!o.server.commands.iter().any(|c| c.starts_with("AUTH")));
}

#[test]
fn cleartext_auth_when_the_user_insists() {
    let o = run(
        Session::new(
            env(&["bob@example.net"]),
            SessionOptions {
                tls: TlsPolicy::Off,
                credentials: creds(),
                allow_plaintext_auth: true,
                ..plain_opts()
            },
        ),
        FakeServer::new(FULL),
        b"x\n",
        BANNER,
    );
    assert!(done(&o).authenticated);
}

#[test]
fn helo_fallback_on_502() {
    for code in ["500", "502"] {
        let o = run(
            Session::new(env(&["bob@example.net"]), plain_opts()),
            FakeServer::new(&[]).on("EHLO", &format!("{code} 5.5.1 what?")),
            b"x\n",
            BANNER,
        );
        done(&o);
        assert_eq!(o.server.commands[1], "HELO client.example");
    }
}

#[test]
fn partial_recipient_failure_delivers_to_the_rest() {
    let o = run(
        Session::new(
            env(&["good@x.example", "bad@x.example", "later@x.example"]),
            plain_opts(),
        ),
        FakeServer::new(&["PIPELINING"]).on("RCPT TO:<bad@", "550 5.1.1 user unknown"),
        b"x\n",
        BANNER,
    );
    let r = done(&o);
    assert_eq!(r.accepted, vec!["good@x.example", "later@x.example"]);
    assert_eq!(r.rejected.len(), 1);
    assert_eq!(r.rejected[0].reply.code, 550);
}

#[test]
fn every_recipient_refused_sends_no_body() {
    for pipelining in [true, false] {
        let caps: &[&'static str] = if pipelining { &["PIPELINING"] } else { &[] };
        let o = run(
            Session::new(env(&["a@x.example", "b@x.example"]), plain_opts()),
            FakeServer::new(caps)
                .on("RCPT", "550 5.1.1 user unknown")
                .on("DATA", "554 5.5.1 no valid recipients"),
            b"secret body\n",
            BANNER,
        );
        let e = failed(&o);
        assert_eq!(e.kind(), Failure::NoSuchRecipient);
        assert!(o.server.data.is_empty());
        assert!(!o.flights.concat().windows(6).any(|w| w == b"secret"));
    }
}

#[test]
fn data_accepted_after_every_rcpt_failed_gets_an_empty_message() {
    let o = run(
        Session::new(env(&["a@x.example"]), plain_opts()),
        FakeServer::new(&["PIPELINING"]).on("RCPT", "550 5.1.1 no"),
        b"secret body\n",
        BANNER,
    );
    assert_eq!(failed(&o).kind(), Failure::NoSuchRecipient);
    assert!(!o.flights.concat().windows(6).any(|w| w == b"secret"));
    assert!(o.flights.last().unwrap().starts_with(b".\r\nQUIT\r\n"));
}

#[test]
fn reply_codes_at_each_stage_map_to_exit_statuses() {
    use OutcomeKind as X;
    let cases: &[(&str, &str, X)] = &[
        ("MAIL", "421 4.3.2 shutting down", X::TempFail),
        ("MAIL", "451 4.3.0 try later", X::TempFail),
        ("MAIL", "452 4.3.1 full", X::TempFail),
        ("MAIL", "455 4.5.4 params", X::TempFail),
        ("MAIL", "501 5.1.7 bad sender", X::Unavailable),
        ("MAIL", "503 5.5.1 sequence", X::Unavailable),
        ("MAIL", "550 5.7.1 no", X::Unavailable),
        ("MAIL", "552 5.3.4 too big", X::Unavailable),
        ("MAIL", "553 5.1.8 bad", X::Unavailable),
        ("MAIL", "555 5.5.4 param", X::Unavailable),
        ("RCPT", "450 4.2.0 busy", X::TempFail),
        ("RCPT", "550 5.1.1 unknown", X::NoUser),
        ("RCPT", "551 5.1.6 moved", X::NoUser),
        ("RCPT", "553 5.1.3 bad", X::NoUser),
        ("RCPT", "552 5.2.2 quota", X::Unavailable),
        ("RCPT", "521 5.3.2 no mail", X::Unavailable),
        ("DATA", "451 4.3.0 later", X::TempFail),
        ("DATA", "554 5.5.1 no", X::Unavailable),
        (".", "552 5.3.4 too big", X::Unavailable),
        (".", "451 4.3.0 later", X::TempFail),
        (".", "554 5.7.1 spam", X::Unavailable),
        ("EHLO", "421 4.3.2 bye", X::TempFail),
        ("EHLO", "554 5.7.1 go away", X::Unavailable),
        ("MAIL", "250 ok", X::Ok),
        ("RCPT", "251 will forward", X::Ok),
        ("RCPT", "252 cannot verify", X::Ok),
        ("MAIL", "211 status", X::Ok),
        ("MAIL", "214 help", X::Ok),
        ("MAIL", "220 odd", X::Ok),
        ("MAIL", "221 odd", X::Ok),
        ("MAIL", "354 odd", X::Protocol),
        ("MAIL", "504 5.5.4 param", X::Unavailable),
        ("MAIL", "502 5.5.1 no", X::Unavailable),
    ];
    for pipelining in [true, false] {
        for (stage, reply, want) in cases {
            let caps: &[&'static str] = if pipelining { &["PIPELINING"] } else { &[] };
            let mut server = FakeServer::new(caps);
            if *stage == "RCPT" {
                // Keep one recipient good so DATA follows a rejected one.
                server = server.on("RCPT TO:<a@", reply);
            } else {
                server = server.on(stage, reply);
            }
            let o = run(
                Session::new(env(&["a@x.example", "b@x.example"]), plain_opts()),
                server,
                b"x\n",
                BANNER,
            );
            let got = match &o.result {
                Event::Done(r) if r.rejected.is_empty() => X::Ok,
                Event::Done(r) => X::from(crate::smtp::error::rcpt_failures_kind(&r.rejected)),
                Event::Failed(e) => X::from(e.kind()),
                other => panic!("{other:?}"),
            };
            assert_eq!(got, *want, "{stage} {reply} pipelining={pipelining}");
        }
    }
}

#[test]
fn greeting_codes() {
    use OutcomeKind as X;
    for (banner, want) in [
        ("421 4.3.2 busy\r\n", X::TempFail),
        ("554 5.7.1 go away\r\n", X::Unavailable),
        ("250 odd\r\n", X::Protocol),
        ("garbage\r\n", X::Protocol),
        ("600 x\r\n", X::Protocol),
    ] {
        let o = run(
            Session::new(env(&["a@x.example"]), plain_opts()),
            FakeServer::new(&[]),
            b"x\n",
            banner,
        );
        assert_eq!(X::from(failed(&o).kind()), want, "{banner}");
    }
}

#[test]
fn size_is_declared_and_enforced() {
    let o = run(
        Session::new(
            env(&["a@x.example"]),
            SessionOptions {
                size: Some(500),
                ..plain_opts()
            },
        ),
        FakeServer::new(&["PIPELINING", "SIZE 1000"]),
        b"x\n",
        BANNER,
    );
    done(&o);
    assert!(o.server.commands[1].contains(" SIZE=500"));
    let o = run(
        Session::new(
            env(&["a@x.example"]),
            SessionOptions {
                size: Some(5000),
                ..plain_opts()
            },
        ),
        FakeServer::new(&["PIPELINING", "SIZE 1000"]),
        b"x\n",
        BANNER,
    );
    assert!(matches!(failed(&o), SessionError::Unsupported(_)));
    assert!(!o.server.commands.iter().any(|c| c.starts_with("MAIL")));
}

#[test]
fn eight_bit_needs_8bitmime_and_utf8_needs_smtputf8() {
    let o = run(
        Session::new(
            env(&["a@x.example"]),
            SessionOptions {
                eight_bit: Some(true),
                ..plain_opts()
            },
        ),
        FakeServer::new(&["PIPELINING"]),
        b"x\n",
        BANNER,
    );
    assert_eq!(failed(&o).kind(), Failure::Permanent);
    let o = run(
        Session::new(env(&["j\u{f6}rg@x.example"]), plain_opts()),
        FakeServer::new(&["PIPELINING", "SMTPUTF8", "8BITMIME"]),
        b"x\n",
        BANNER,
    );
    done(&o);
    assert!(o.server.commands[1].ends_with(" SMTPUTF8"));
    let o = run(
        Session::new(env(&["j\u{f6}rg@x.example"]), plain_opts()),
        FakeServer::new(&["PIPELINING"]),
        b"x\n",
        BANNER,
    );
    assert!(matches!(failed(&o), SessionError::Unsupported(_)));
}

#[test]
fn unsafe_address_never_reaches_the_wire() {
    let o = run(
        Session::new(
            Envelope {
                from: "a@x.example>\r\nRCPT TO:<evil@y.example".into(),
                recipients: vec!["b@x.example".into()],
            },
            plain_opts(),
        ),
        FakeServer::new(&["PIPELINING"]),
        b"x\n",
        BANNER,
    );
    assert_eq!(failed(&o).kind(), Failure::BadInput);
    assert!(!o.server.commands.iter().any(|c| c.contains("evil")));
}

#[test]
fn server_closing_mid_session_is_temporary() {
    let mut s = Session::new(env(&["a@x.example"]), plain_opts());
    s.handle_input(BANNER.as_bytes());
    s.handle_eof();
    match s.poll_event() {
        Some(Event::Failed(e)) => {
            assert_eq!(e.kind(), Failure::Transient);
            assert!(e.to_string().starts_with("EHLO client.example"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn reply_while_the_body_is_sent_is_a_protocol_error() {
    let mut s = Session::new(env(&["a@x.example"]), plain_opts());
    s.handle_input(BANNER.as_bytes());
    s.handle_input(b"250-server.example\r\n250 PIPELINING\r\n");
    s.handle_input(b"250 ok\r\n250 ok\r\n354 go\r\n");
    assert_eq!(s.poll_event(), Some(Event::SendBody));
    assert_eq!(s.wait(), Wait::DataBlock);
    s.handle_input(b"250 early\r\n");
    assert!(matches!(
        s.poll_event(),
        Some(Event::Failed(SessionError::Protocol(_)))
    ));
}

#[test]
fn waits_use_rfc5321_timeouts() {
    let mut s = Session::new(env(&["a@x.example"]), plain_opts());
    assert_eq!(s.wait(), Wait::Greeting);
    assert_eq!(Wait::Greeting.default_timeout().as_secs(), 300);
    assert_eq!(Wait::DataInit.default_timeout().as_secs(), 120);
    assert_eq!(Wait::DataBlock.default_timeout().as_secs(), 180);
    assert_eq!(Wait::DataTermination.default_timeout().as_secs(), 600);
    s.handle_input(BANNER.as_bytes());
    assert_eq!(s.wait(), Wait::Command);
}

#[test]
fn dsn_parameters_are_sent_when_offered() {
    let dsn = Dsn::new(Some("success,failure"), Some("hdrs"), Some("id+1 x")).unwrap();
    let opts = SessionOptions {
        dsn: dsn.clone(),
        ..plain_opts()
    };
    let o = run(
        Session::new(env(&["a@x.example"]), opts.clone()),
        FakeServer::new(&["PIPELINING", "DSN"]),
        b"x\n",
        BANNER,
    );
    done(&o);
    assert_eq!(
        o.server.commands[1],
        "MAIL FROM:<alice@example.org> RET=HDRS ENVID=id+2B1+20x"
    );
    assert_eq!(
        o.server.commands[2],
        "RCPT TO:<a@x.example> NOTIFY=SUCCESS,FAILURE"
    );
    // Without DSN offered, nothing is sent (sendmail does the same).
    let o = run(
        Session::new(env(&["a@x.example"]), opts),
        FakeServer::new(&["PIPELINING"]),
        b"x\n",
        BANNER,
    );
    done(&o);
    assert_eq!(o.server.commands[2], "RCPT TO:<a@x.example>");
}

#[test]
fn dsn_values_are_validated() {
    assert!(Dsn::new(Some("never"), None, None).is_ok());
    assert!(Dsn::new(Some("never,success"), None, None).is_err());
    assert!(Dsn::new(Some("sometimes"), None, None).is_err());
    assert!(Dsn::new(None, Some("all"), None).is_err());
    assert!(Dsn::new(None, None, Some("a\r\nb")).is_err());
}

#[test]
fn small_message_with_chunking_takes_three_waits() {
    let body = b"Subject: x\r\n\r\n.dot stays single\r\n".to_vec();
    let o = run(
        Session::new(
            env(&["a@x.example", "b@x.example"]),
            SessionOptions {
                chunk: Some(body.clone()),
                ..plain_opts()
            },
        ),
        FakeServer::new(&["PIPELINING", "CHUNKING"]),
        b"unused",
        BANNER,
    );
    assert_eq!(done(&o).accepted.len(), 2);
    assert_eq!(o.waits, 3);
    // The chunk with MAIL and RCPT; QUIT alone once the chunk's 250 is in.
    assert_eq!(o.flights.len(), 3);
    assert_eq!(o.server.data, body);
    assert!(o.flights[1].ends_with(b".dot stays single\r\n"));
    assert_eq!(o.flights[2], b"QUIT\r\n");
}

#[test]
fn chunk_is_not_used_without_chunking() {
    let o = run(
        Session::new(
            env(&["a@x.example"]),
            SessionOptions {
                chunk: Some(b"x\r\n".to_vec()),
                ..plain_opts()
            },
        ),
        FakeServer::new(&["PIPELINING"]),
        b"x\n",
        BANNER,
    );
    done(&o);
    assert_eq!(o.waits, 4);
    assert!(o.server.commands.contains(&"DATA".to_string()));
}

#[test]
fn bdat_with_every_recipient_refused_is_no_user() {
    let o = run(
        Session::new(
            env(&["a@x.example"]),
            SessionOptions {
                chunk: Some(b"x\r\n".to_vec()),
                ..plain_opts()
            },
        ),
        FakeServer::new(&["PIPELINING", "CHUNKING"])
            .on("RCPT", "550 5.1.1 no")
            .on("BDAT", "554 5.5.1 no valid recipients"),
        b"x\n",
        BANNER,
    );
    assert_eq!(failed(&o).kind(), Failure::NoSuchRecipient);
}

/// Drive a kept-open session through several envelopes, one transaction at a time (never
/// staged), then QUIT; returns each transaction's outcome.
fn run_many(
    envelopes: Vec<Envelope>,
    opts: SessionOptions,
    server: FakeServer,
) -> (Vec<Event>, FakeServer, usize) {
    let jobs = envelopes
        .into_iter()
        .map(|e| (e, MessageInfo::default()))
        .collect();
    let st = drive_jobs(jobs, opts, server, false);
    (st.results, st.server, st.waits)
}

#[test]
fn several_transactions_over_one_connection() {
    let envs = vec![
        env(&["a@x.example"]),
        Envelope {
            from: "refused@example.org".into(),
            recipients: vec!["b@x.example".into()],
        },
        env(&["c@x.example", "nobody@x.example"]),
        env(&["nobody@x.example"]),
        env(&["d@x.example"]),
    ];
    for pipelining in [true, false] {
        let caps: &[&'static str] = if pipelining { &["PIPELINING"] } else { &[] };
        let server = FakeServer::new(caps)
            .on("MAIL FROM:<refused@", "550 5.7.1 sender refused")
            .on("RCPT TO:<nobody@", "550 5.1.1 no such user")
            .on("DATA", "554 5.5.1 no valid recipients")
            .on("RSET", "250 2.0.0 ok");
        // The DATA override applies only when no recipient was accepted (the fake server
        // answers DATA by override), so keep it to the all-refused transaction by checking
        // outcomes rather than DATA replies.
        let (results, server, _) = run_many(envs.clone(), plain_opts(), server);
        assert_eq!(results.len(), 5, "pipelining={pipelining}");
        assert!(matches!(
            results[0],
            Event::TransactionFailed(_) | Event::Done(_)
        ));
        assert!(matches!(
            &results[1],
            Event::TransactionFailed(SessionError::Refused { reply, .. }) if reply.code == 550
        ));
        assert!(matches!(
            &results[3],
            Event::TransactionFailed(SessionError::NoRecipientAccepted(_))
        ));
        // A failed transaction is followed by RSET before the next MAIL.
        let cmds = &server.commands;
        let mails: Vec<usize> = cmds
            .iter()
            .enumerate()
            .filter(|(_, c)| c.starts_with("MAIL"))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(mails.len(), 5);
        assert_eq!(cmds[mails[2] - 1], "RSET", "{cmds:?}");
        assert_eq!(cmds.last().map(String::as_str), Some("QUIT"));
        assert_eq!(cmds.iter().filter(|c| *c == "QUIT").count(), 1);
    }
}

#[test]
fn kept_open_transactions_deliver_every_body() {
    let envs: Vec<Envelope> = (0..5).map(|i| env(&[&format!("r{i}@x.example")])).collect();
    let (results, server, waits) = run_many(envs, plain_opts(), FakeServer::new(&["PIPELINING"]));
    assert!(results.iter().all(|r| matches!(r, Event::Done(_))));
    assert_eq!(server.commands.iter().filter(|c| *c == "DATA").count(), 5);
    // banner, EHLO, then two waits per message (envelope flight, body).
    assert_eq!(waits, 2 + 2 * 5);
}

#[test]
fn no_credentials_over_unverified_tls() {
    let mut server = FakeServer::new(FULL);
    server.verified = false;
    let o = run(
        Session::new(
            env(&["bob@example.net"]),
            SessionOptions {
                tls: TlsPolicy::Opportunistic,
                credentials: creds(),
                ..plain_opts()
            },
        ),
        server,
        b"x\n",
        BANNER,
    );
    assert!(matches!(failed(&o), SessionError::AuthUnavailable(m) if m.contains("not verified")));
    assert!(!o.server.commands.iter().any(|c| c.starts_with("AUTH")));
    let mut server = FakeServer::new(FULL);
    server.verified = false;
    let o = run(
        Session::new(
            env(&["bob@example.net"]),
            SessionOptions {
                tls: TlsPolicy::Opportunistic,
                credentials: creds(),
                allow_plaintext_auth: true,
                ..plain_opts()
            },
        ),
        server,
        b"x\n",
        BANNER,
    );
    let r = done(&o);
    assert!(r.tls && !r.tls_verified && r.authenticated);
}

#[test]
fn a_421_to_any_command_ends_the_session() {
    for (stage, pipelining) in [
        ("STARTTLS", true),
        ("RCPT TO:<a@", true),
        ("RCPT TO:<a@", false),
        ("MAIL", true),
        ("DATA", false),
    ] {
        let caps: &[&'static str] = if pipelining {
            &["PIPELINING", "STARTTLS"]
        } else {
            &["STARTTLS"]
        };
        let o = run(
            Session::new(
                env(&["a@x.example", "b@x.example"]),
                SessionOptions {
                    tls: TlsPolicy::Opportunistic,
                    ..plain_opts()
                },
            ),
            FakeServer::new(caps).on(stage, "421 4.3.2 closing"),
            b"secret body\n",
            BANNER,
        );
        let e = failed(&o);
        assert_eq!(e.kind(), Failure::Transient, "{stage}");
        assert!(e.to_string().contains("421 4.3.2 closing"), "{stage}: {e}");
        assert!(
            !o.flights.concat().windows(6).any(|w| w == b"secret"),
            "{stage}"
        );
    }
}

#[test]
fn a_reply_riding_behind_the_354_is_a_protocol_error() {
    let mut s = Session::new(env(&["a@x.example"]), plain_opts());
    s.handle_input(BANNER.as_bytes());
    s.handle_input(b"250-server.example\r\n250 PIPELINING\r\n");
    s.handle_input(b"250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 fake\r\n");
    assert!(matches!(
        s.poll_event(),
        Some(Event::Failed(SessionError::Protocol(_)))
    ));
}

// SASL mechanisms: each exchange byte for byte.

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn token_creds(user: &str, token: &str) -> Option<Credentials> {
    Some(Credentials {
        user: user.into(),
        secret: Secret::Token(token.into()),
    })
}

fn with_auth(auth_line: &'static str) -> Vec<&'static str> {
    vec!["PIPELINING", "STARTTLS", auth_line, "ENHANCEDSTATUSCODES"]
}

fn auth_opts(credentials: Option<Credentials>) -> SessionOptions {
    SessionOptions {
        tls: TlsPolicy::Required,
        credentials,
        trace: true,
        ..plain_opts()
    }
}

/// What the client sent after the second EHLO, up to MAIL or QUIT.
fn auth_lines(o: &Outcome) -> Vec<String> {
    o.server
        .commands
        .iter()
        .skip(3)
        .take_while(|c| !c.starts_with("MAIL") && *c != "QUIT")
        .cloned()
        .collect()
}

const RFC7677_FIRST: &[u8] = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC7677_SERVER_FIRST: &[u8] =
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC7677_FINAL: &[u8] = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC7677_SERVER_FINAL: &[u8] = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

/// The RFC 7677 §3 server, answering the RFC's client with `server_final`.
fn scram_server(server_final: &[u8]) -> FakeServer {
    FakeServer::new(&with_auth("AUTH PLAIN LOGIN SCRAM-SHA-1 SCRAM-SHA-256"))
        .on(
            "AUTH SCRAM-SHA-256",
            &format!("334 {}", b64(RFC7677_SERVER_FIRST)),
        )
        .on_line(&b64(RFC7677_FINAL), &format!("334 {}", b64(server_final)))
        .on_line("", "235 2.7.0 Authentication successful")
}

fn scram_session() -> Session {
    sasl::test_nonce::set("rOprNGfwEbeRWgbNEkqO");
    Session::new(
        env(&["bob@example.net"]),
        auth_opts(Some(Credentials::password("user", "pencil"))),
    )
}

#[test]
fn scram_sha256_is_preferred_and_follows_rfc7677_byte_for_byte() {
    let o = run(
        scram_session(),
        scram_server(RFC7677_SERVER_FINAL),
        b"x\n",
        BANNER,
    );
    let r = done(&o);
    assert!(r.authenticated);
    assert_eq!(
        auth_lines(&o),
        [
            format!("AUTH SCRAM-SHA-256 {}", b64(RFC7677_FIRST)),
            b64(RFC7677_FINAL),
            String::new(),
        ]
    );
    // banner, EHLO, STARTTLS, handshake, EHLO, three SASL steps, MAIL+RCPT+DATA, body.
    assert_eq!(o.waits, 10);
    let trace = o.trace.join("\n");
    assert!(
        trace.contains("C: AUTH SCRAM-SHA-256 <redacted>"),
        "{trace}"
    );
    assert!(!trace.contains(&b64(RFC7677_FIRST)) && !trace.contains(&b64(RFC7677_FINAL)));
}

#[test]
fn scram_with_a_wrong_server_signature_fails_77() {
    let o = run(
        scram_session(),
        scram_server(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G8="),
        b"x\n",
        BANNER,
    );
    let e = failed(&o);
    assert!(
        matches!(
            e,
            SessionError::Sasl {
                error: SaslError::ServerSignature,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.kind(), Failure::Auth);
    assert!(
        e.to_string()
            .starts_with("AUTH SCRAM-SHA-256: the server could not prove it knows the password"),
        "{e}"
    );
    // The exchange is cancelled (RFC 4954 §4) and nothing of the message is sent.
    let cmds = &o.server.commands;
    assert_eq!(&cmds[cmds.len() - 2..], ["*", "QUIT"]);
    assert!(!cmds.iter().any(|c| c.starts_with("MAIL")));
}

#[test]
fn scram_accepted_without_a_server_signature_fails_77() {
    let server = FakeServer::new(&with_auth("AUTH SCRAM-SHA-256"))
        .on(
            "AUTH SCRAM-SHA-256",
            &format!("334 {}", b64(RFC7677_SERVER_FIRST)),
        )
        .on_line(&b64(RFC7677_FINAL), "235 2.7.0 ok");
    let o = run(scram_session(), server, b"x\n", BANNER);
    let e = failed(&o);
    assert!(
        matches!(
            e,
            SessionError::Sasl {
                error: SaslError::NoServerSignature,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.kind(), Failure::Auth);
    assert!(!o.server.commands.iter().any(|c| c.starts_with("MAIL")));
}

#[test]
fn scram_iterations_below_the_floor_are_refused() {
    let weak =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1024";
    let server = FakeServer::new(&with_auth("AUTH SCRAM-SHA-256"))
        .on("AUTH SCRAM-SHA-256", &format!("334 {}", b64(weak)));
    let o = run(scram_session(), server, b"x\n", BANNER);
    let e = failed(&o);
    assert_eq!(
        e,
        &SessionError::Sasl {
            command: "AUTH SCRAM-SHA-256 <redacted>".into(),
            error: SaslError::TooFewIterations(1024),
        }
    );
    assert_eq!(e.kind(), Failure::Auth);
    assert!(e.to_string().contains("downgrade"), "{e}");
    // No proof was computed or sent: the next line is the cancel.
    assert_eq!(auth_lines(&o)[1..], ["*"]);
}

#[test]
fn scram_server_error_is_reported() {
    let server = FakeServer::new(&with_auth("AUTH SCRAM-SHA-256"))
        .on(
            "AUTH SCRAM-SHA-256",
            &format!("334 {}", b64(RFC7677_SERVER_FIRST)),
        )
        .on_line(
            &b64(RFC7677_FINAL),
            &format!("334 {}", b64(b"e=invalid-proof")),
        );
    let o = run(scram_session(), server, b"x\n", BANNER);
    let e = failed(&o);
    assert!(e.to_string().contains("invalid-proof"), "{e}");
    assert_eq!(e.kind(), Failure::Auth);
}

#[test]
fn scram_sha1_follows_rfc5802_when_it_is_the_only_scram() {
    sasl::test_nonce::set("fyko+d2lbbFgONRv9qkxdawL");
    let first = b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL";
    let server_first = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
    let final_ =
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
    let server = FakeServer::new(&with_auth("AUTH PLAIN SCRAM-SHA-1"))
        .on("AUTH SCRAM-SHA-1", &format!("334 {}", b64(server_first)))
        .on_line(
            &b64(final_),
            &format!("334 {}", b64(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")),
        )
        .on_line("", "235 2.7.0 ok");
    let o = run(
        Session::new(
            env(&["bob@example.net"]),
            auth_opts(Some(Credentials::password("user", "pencil"))),
        ),
        server,
        b"x\n",
        BANNER,
    );
    assert!(done(&o).authenticated);
    assert_eq!(
        auth_lines(&o),
        [
            format!("AUTH SCRAM-SHA-1 {}", b64(first)),
            b64(final_),
            String::new()
        ]
    );
}

#[test]
fn a_password_saslprep_refuses_falls_back_from_scram_to_plain() {
    let o = run(
        Session::new(
            env(&["bob@example.net"]),
            auth_opts(Some(Credentials::password("alice", "tab\there"))),
        ),
        FakeServer::new(&with_auth("AUTH SCRAM-SHA-256 PLAIN")),
        b"x\n",
        BANNER,
    );
    assert!(done(&o).authenticated);
    assert!(auth_lines(&o)[0].starts_with("AUTH PLAIN "));
    assert!(
        o.trace.iter().any(|t| t.contains("SASLprep")),
        "{:?}",
        o.trace
    );
}

const GOOGLE_TOKEN: &str = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg";
const GOOGLE_ERROR: &str = "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K";

#[test]
fn xoauth2_is_preferred_for_a_token_and_goes_lockstep() {
    let o = run(
        Session::new(
            env(&["bob@example.net"]),
            auth_opts(token_creds("someuser@example.com", GOOGLE_TOKEN)),
        ),
        FakeServer::new(&with_auth("AUTH PLAIN OAUTHBEARER XOAUTH2")),
        b"x\n",
        BANNER,
    );
    assert!(done(&o).authenticated);
    let ir =
        b64(format!("user=someuser@example.com\x01auth=Bearer {GOOGLE_TOKEN}\x01\x01").as_bytes());
    assert_eq!(auth_lines(&o), [format!("AUTH XOAUTH2 {ir}")]);
    // Not pipelined: a 334 error challenge would take MAIL for the SASL response.
    let auth_flight = String::from_utf8_lossy(&o.flights[3]).into_owned();
    assert_eq!(auth_flight, format!("AUTH XOAUTH2 {ir}\r\n"));
    // One wait more than PLAIN's seven.
    assert_eq!(o.waits, 8);
}

#[test]
fn xoauth2_error_challenge_gets_an_empty_line_then_535_exits_77() {
    let server = FakeServer::new(&with_auth("AUTH XOAUTH2"))
        .on("AUTH XOAUTH2", &format!("334 {GOOGLE_ERROR}"))
        .on_line(
            "",
            "535-5.7.8 Username and Password not accepted.\r\n535 5.7.8 Learn more",
        );
    let o = run(
        Session::new(
            env(&["bob@example.net"]),
            auth_opts(token_creds("someuser@example.com", GOOGLE_TOKEN)),
        ),
        server,
        b"x\n",
        BANNER,
    );
    let e = failed(&o);
    assert!(matches!(e, SessionError::AuthFailed { .. }), "{e:?}");
    assert_eq!(e.kind(), Failure::Auth);
    let msg = e.to_string();
    assert!(msg.starts_with("AUTH XOAUTH2: 535"), "{msg}");
    assert!(msg.contains("status=401"), "{msg}");
    let lines = auth_lines(&o);
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("AUTH XOAUTH2 "));
    assert_eq!(lines[1], "", "the empty response to the error challenge");
    assert_eq!(o.server.commands.last().map(String::as_str), Some("QUIT"));
    let trace = o.trace.join("\n");
    assert!(!trace.contains(GOOGLE_TOKEN) && !trace.contains(&lines[0][13..]));
}

#[test]
fn oauthbearer_error_gets_a_control_a_then_535_exits_77() {
    let error = "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0=";
    let server = FakeServer::new(&with_auth("AUTH OAUTHBEARER"))
        .on("AUTH OAUTHBEARER", &format!("334 {error}"))
        .on_line("AQ==", "535 5.7.8 Authentication credentials invalid");
    let opts = SessionOptions {
        server_address: Some(("server.example.com".into(), 143)),
        ..auth_opts(token_creds(
            "user@example.com",
            "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
        ))
    };
    let o = run(
        Session::new(env(&["bob@example.net"]), opts),
        server,
        b"x\n",
        BANNER,
    );
    let e = failed(&o);
    assert_eq!(e.kind(), Failure::Auth);
    assert!(e.to_string().contains("status=invalid_token"), "{e}");
    assert_eq!(
        auth_lines(&o),
        [
            // RFC 7628 §4.1's initial response.
            "AUTH OAUTHBEARER bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1\
             dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB",
            "AQ==",
        ]
    );
}

#[test]
fn a_token_too_long_for_the_command_line_answers_the_empty_challenge() {
    let long = "t".repeat(600);
    let server = FakeServer::new(&with_auth("AUTH XOAUTH2"))
        .on_line("AUTH XOAUTH2", "334 ")
        .on("dXNlcj1h", "235 2.7.0 ok");
    let o = run(
        Session::new(
            env(&["bob@example.net"]),
            auth_opts(token_creds("a", &long)),
        ),
        server,
        b"x\n",
        BANNER,
    );
    assert!(done(&o).authenticated);
    let lines = auth_lines(&o);
    assert_eq!(
        lines[0], "AUTH XOAUTH2",
        "RFC 4954 §4: no initial response past 512 octets"
    );
    assert_eq!(
        lines[1],
        b64(format!("user=a\x01auth=Bearer {long}\x01\x01").as_bytes())
    );
}

#[test]
fn cram_md5_when_forced_answers_rfc2195_example() {
    let server = FakeServer::new(&with_auth("AUTH PLAIN CRAM-MD5"))
        .on(
            "AUTH CRAM-MD5",
            "334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+",
        )
        .on_line(
            "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw",
            "235 2.7.0 ok",
        );
    let opts = SessionOptions {
        mechanism: Some(Mechanism::CramMd5),
        ..auth_opts(Some(Credentials::password("tim", "tanstaaftanstaaf")))
    };
    let o = run(
        Session::new(env(&["bob@example.net"]), opts),
        server,
        b"x\n",
        BANNER,
    );
    assert!(done(&o).authenticated);
    assert_eq!(
        auth_lines(&o),
        [
            "AUTH CRAM-MD5",
            "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
        ]
    );
}

#[test]
fn cram_md5_is_never_chosen_automatically() {
    let o = run(
        Session::new(
            env(&["bob@example.net"]),
            auth_opts(Some(Credentials::password("tim", "tanstaaftanstaaf"))),
        ),
        FakeServer::new(&with_auth("AUTH CRAM-MD5 GSSAPI")),
        b"x\n",
        BANNER,
    );
    let e = failed(&o);
    assert_eq!(e.kind(), Failure::Auth);
    let msg = e.to_string();
    assert!(
        msg.starts_with("no authentication mechanism in common (server offers CRAM-MD5 GSSAPI"),
        "{msg}"
    );
    assert!(auth_lines(&o).is_empty());
}

#[test]
fn a_forced_mechanism_must_match_the_secret() {
    for (mechanism, credentials) in [
        (Mechanism::Plain, token_creds("a", "t")),
        (Mechanism::XOAuth2, Some(Credentials::password("a", "p"))),
        (Mechanism::External, Some(Credentials::password("a", "p"))),
    ] {
        let opts = SessionOptions {
            mechanism: Some(mechanism),
            ..auth_opts(credentials)
        };
        let o = run(
            Session::new(env(&["bob@example.net"]), opts),
            FakeServer::new(&with_auth("AUTH PLAIN XOAUTH2 EXTERNAL")),
            b"x\n",
            BANNER,
        );
        let e = failed(&o);
        assert!(matches!(e, SessionError::AuthUnavailable(_)), "{e:?}");
        assert_eq!(e.kind(), Failure::Auth);
        assert!(e.to_string().contains("needs"), "{e}");
        assert!(auth_lines(&o).is_empty(), "{mechanism:?}");
    }
}

fn certificate() -> Option<Credentials> {
    Some(Credentials {
        user: String::new(),
        secret: Secret::ClientCertificate,
    })
}

#[test]
fn external_is_pipelined_like_plain_in_seven_waits() {
    let o = run(
        Session::new(env(&["bob@example.net"]), auth_opts(certificate())),
        FakeServer::new(&with_auth("AUTH PLAIN EXTERNAL")),
        b"x\n",
        BANNER,
    );
    assert!(done(&o).authenticated);
    assert_eq!(o.waits, 7);
    let flight = String::from_utf8_lossy(&o.flights[3]).into_owned();
    assert!(
        flight.starts_with("AUTH EXTERNAL =\r\nMAIL FROM:"),
        "RFC 4422 Appendix A: empty authzid; pipelined: {flight}"
    );
}

#[test]
fn a_client_certificate_without_external_offered_sends_no_auth() {
    let o = run(
        Session::new(env(&["bob@example.net"]), auth_opts(certificate())),
        FakeServer::new(&with_auth("AUTH PLAIN LOGIN")),
        b"x\n",
        BANNER,
    );
    assert!(!done(&o).authenticated);
    assert!(!o.server.commands.iter().any(|c| c.starts_with("AUTH")));
}

#[test]
fn a_challenge_that_is_not_base64_is_a_protocol_error() {
    let opts = SessionOptions {
        mechanism: Some(Mechanism::Login),
        ..auth_opts(creds())
    };
    let o = run(
        Session::new(env(&["bob@example.net"]), opts),
        FakeServer::new(FULL).on("AUTH LOGIN", "334 Username:"),
        b"x\n",
        BANNER,
    );
    let e = failed(&o);
    assert_eq!(e.kind(), Failure::Protocol);
    assert_eq!(auth_lines(&o), ["AUTH LOGIN", "*"]);
}

/// What `run_staged` saw: each transaction's outcome in order, the server, the client's
/// waits, and the envelopes `stage_transaction` refused.
struct Staging {
    results: Vec<Event>,
    server: FakeServer,
    waits: usize,
    refused: Vec<SessionError>,
}

/// Drive a kept-open session as a queue run does: every further envelope is staged behind
/// the current transaction as soon as [`Session::can_stage`] allows, the first with
/// `Session::new`, any left once the session is idle with `start_transaction`.
fn run_staged(
    jobs: Vec<(Envelope, MessageInfo)>,
    opts: SessionOptions,
    server: FakeServer,
) -> Staging {
    drive_jobs(jobs, opts, server, true)
}

/// Drive a kept-open session through `jobs`, staging when `staging` and allowed, else one
/// transaction after another.
fn drive_jobs(
    jobs: Vec<(Envelope, MessageInfo)>,
    opts: SessionOptions,
    mut server: FakeServer,
    staging: bool,
) -> Staging {
    let mut jobs = jobs.into_iter();
    let (first, info) = jobs.next().unwrap();
    let mut s = Session::new(
        first,
        SessionOptions {
            keep_open: true,
            chunk: info.chunk,
            size: info.size,
            ..opts
        },
    );
    let mut inbox = BANNER.as_bytes().to_vec();
    let mut results = vec![];
    let mut refused = vec![];
    let stage = |s: &mut Session, jobs: &mut std::vec::IntoIter<_>, refused: &mut Vec<_>| {
        while staging && s.can_stage() {
            let Some((envelope, info)) = jobs.next() else {
                break;
            };
            if let Err(e) = s.stage_transaction(envelope, info) {
                refused.push(e);
            }
        }
    };
    for waits in 0..200 {
        let mut flight = Vec::new();
        loop {
            stage(&mut s, &mut jobs, &mut refused);
            while let Some(buf) = s.poll_transmit() {
                let n = buf.len();
                flight.extend_from_slice(buf);
                s.consume(n);
            }
            match s.poll_event() {
                Some(Event::SendBody) => {
                    flight.extend_from_slice(&encode_all(b"body\n", false));
                    s.body_sent();
                }
                Some(e @ (Event::Done(_) | Event::TransactionFailed(_))) => {
                    results.push(e);
                    if s.is_idle() {
                        match jobs.next() {
                            Some((env, info)) => s.start_transaction(env, info),
                            None => s.quit(),
                        }
                    }
                }
                Some(e) => {
                    results.push(e);
                    break;
                }
                None => break,
            }
        }
        if !flight.is_empty() {
            inbox.extend_from_slice(&server.respond(&flight));
        }
        if s.is_finished() {
            return Staging {
                results,
                server,
                waits,
                refused,
            };
        }
        assert!(s.wants_input(), "neither finished nor waiting");
        let input = std::mem::take(&mut inbox);
        s.handle_input(&input);
    }
    panic!("did not finish");
}

fn chunked(rcpt: &str, text: &str) -> (Envelope, MessageInfo) {
    (
        env(&[rcpt]),
        MessageInfo {
            chunk: Some(text.as_bytes().to_vec()),
            ..MessageInfo::default()
        },
    )
}

#[test]
fn staged_small_messages_take_one_flight_together() {
    let jobs: Vec<_> = (0..5)
        .map(|i| chunked(&format!("r{i}@x.example"), &format!("message {i}\r\n")))
        .collect();
    let st = run_staged(
        jobs,
        plain_opts(),
        FakeServer::new(&["PIPELINING", "CHUNKING"]),
    );
    assert_eq!(st.results.len(), 5);
    for (i, r) in st.results.iter().enumerate() {
        let Event::Done(report) = r else {
            panic!("{i}: {r:?}")
        };
        assert_eq!(report.accepted, vec![format!("r{i}@x.example")]);
    }
    let expected: Vec<Vec<u8>> = (0..5)
        .map(|i| format!("message {i}\r\n").into_bytes())
        .collect();
    assert_eq!(st.server.chunks, expected);
    // Banner, EHLO, then every transaction in one flight (the QUIT's 221 is not read):
    // against two waits per message when each waits for the one before.
    assert_eq!(st.waits, 3);
    let cmds = &st.server.commands;
    assert_eq!(cmds.iter().filter(|c| *c == "RSET").count(), 4, "{cmds:?}");
    assert_eq!(cmds.last().map(String::as_str), Some("QUIT"));
}

#[test]
fn staged_data_transactions_send_the_next_envelope_with_the_end_of_data() {
    let jobs: Vec<_> = (0..5)
        .map(|i| (env(&[&format!("r{i}@x.example")]), MessageInfo::default()))
        .collect();
    let st = run_staged(jobs, plain_opts(), FakeServer::new(&["PIPELINING"]));
    assert!(st.results.iter().all(|r| matches!(r, Event::Done(_))));
    assert_eq!(
        st.server.commands.iter().filter(|c| *c == "DATA").count(),
        5
    );
    // Banner, EHLO, the first envelope, then one wait per message (body, end of data and
    // the next envelope in one flight): 2 + 1 + 5 against 2 + 2 × 5 unstaged.
    assert_eq!(st.waits, 8);
}

#[test]
fn a_failed_staged_transaction_leaves_the_others_alone() {
    let mut jobs: Vec<_> = (0..5)
        .map(|i| chunked(&format!("r{i}@x.example"), "text\r\n"))
        .collect();
    jobs[1].0.from = "refused@example.org".into();
    jobs[3].0.recipients = vec!["nobody@x.example".into()];
    let mut server = FakeServer::new(&["PIPELINING", "CHUNKING"])
        .on("MAIL FROM:<refused@", "550 5.7.1 sender refused")
        .on("RCPT TO:<nobody@", "550 5.1.1 no such user");
    server.bdat_replies = [
        "250 2.0.0 queued",
        "503 5.5.1 no MAIL",
        "250 2.0.0 queued",
        "554 5.5.1 no valid recipients",
        "250 2.0.0 queued",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let st = run_staged(jobs, plain_opts(), server);
    assert_eq!(st.results.len(), 5);
    assert!(matches!(st.results[0], Event::Done(_)));
    assert!(matches!(
        &st.results[1],
        Event::TransactionFailed(SessionError::Refused { reply, .. }) if reply.code == 550
    ));
    assert!(matches!(st.results[2], Event::Done(_)));
    assert!(matches!(
        &st.results[3],
        Event::TransactionFailed(SessionError::NoRecipientAccepted(r)) if r.len() == 1
    ));
    let Event::Done(last) = &st.results[4] else {
        panic!("{:?}", st.results[4])
    };
    assert_eq!(last.accepted, vec!["r4@x.example".to_string()]);
    assert_eq!(st.waits, 3);
}

#[test]
fn a_421_to_a_staged_transaction_ends_the_session_there() {
    let mut jobs: Vec<_> = (0..4)
        .map(|i| chunked(&format!("r{i}@x.example"), "text\r\n"))
        .collect();
    jobs[2].0.from = "closing@example.org".into();
    let server = FakeServer::new(&["PIPELINING", "CHUNKING"])
        .on("MAIL FROM:<closing@", "421 4.3.2 shutting down");
    let st = run_staged(jobs, plain_opts(), server);
    // The first two delivered, the third failed with the 421; the fourth has no outcome
    // (the caller keeps it for the next run).
    assert_eq!(st.results.len(), 3, "{:?}", st.results);
    assert!(matches!(st.results[0], Event::Done(_)));
    assert!(matches!(st.results[1], Event::Done(_)));
    assert!(matches!(
        &st.results[2],
        Event::Failed(SessionError::Refused { reply, .. }) if reply.code == 421
    ));
}

#[test]
fn an_envelope_the_server_cannot_take_is_refused_before_staging() {
    let mut jobs: Vec<_> = (0..3)
        .map(|i| chunked(&format!("r{i}@x.example"), "text\r\n"))
        .collect();
    jobs[1].1.size = Some(5_000_000);
    jobs[2].0.recipients = vec!["evil@x.example\r\nRCPT TO:<x@y>".into()];
    let st = run_staged(
        jobs,
        plain_opts(),
        FakeServer::new(&["PIPELINING", "CHUNKING", "SIZE 1000000"]),
    );
    assert_eq!(st.results.len(), 1);
    assert!(matches!(st.results[0], Event::Done(_)));
    assert_eq!(st.refused.len(), 2);
    assert!(matches!(&st.refused[0], SessionError::Unsupported(m) if m.contains("SIZE")));
    assert!(matches!(&st.refused[1], SessionError::UnsafeArgument(_)));
    let cmds = &st.server.commands;
    assert_eq!(cmds.iter().filter(|c| c.starts_with("MAIL")).count(), 1);
    assert!(!cmds.iter().any(|c| c.contains("evil")), "{cmds:?}");
}

#[test]
fn nothing_is_staged_without_pipelining_or_while_a_354_is_due() {
    let jobs: Vec<_> = (0..3)
        .map(|i| chunked(&format!("r{i}@x.example"), "text\r\n"))
        .collect();
    // CHUNKING without PIPELINING: one transaction at a time.
    let st = run_staged(jobs, plain_opts(), FakeServer::new(&["CHUNKING"]));
    assert!(st.results.iter().all(|r| matches!(r, Event::Done(_))));
    assert!(!st.server.commands.iter().any(|c| c == "RSET"));
    let mut s = Session::new(
        env(&["a@x.example"]),
        SessionOptions {
            keep_open: true,
            ..plain_opts()
        },
    );
    s.handle_input(BANNER.as_bytes());
    s.handle_input(b"250-server.example\r\n250 PIPELINING\r\n");
    // MAIL, RCPT and DATA are out; the 354 is still due.
    assert!(!s.can_stage());
    assert!(
        s.stage_transaction(env(&["b@x.example"]), MessageInfo::default())
            .is_err()
    );
}

/// A pipelined AUTH never has the message behind it, even where one BDAT chunk would save
/// a round trip: a server that refuses the credentials may take mail for its own domains
/// from anyone (an MX that is also a submission server), and would deliver what the 535
/// reports as not sent. Found against Postfix with Dovecot SASL.
#[test]
fn pipelined_auth_never_carries_the_message() {
    let body = b"Subject: x\r\n\r\nsecret text\r\n".to_vec();
    let opts = || SessionOptions {
        tls: TlsPolicy::Required,
        credentials: creds(),
        chunk: Some(body.clone()),
        ..plain_opts()
    };
    let caps = &["PIPELINING", "CHUNKING", "STARTTLS", "AUTH PLAIN"];
    let o = run(
        Session::new(env(&["bob@example.net"]), opts()),
        FakeServer::new(caps),
        b"secret text\n",
        BANNER,
    );
    assert!(done(&o).authenticated);
    // AUTH + MAIL + RCPT + DATA, then the message: the same seven waits as without CHUNKING.
    assert_eq!(o.waits, 7);
    let auth_flight = o
        .flights
        .iter()
        .find(|f| f.starts_with(b"AUTH "))
        .expect("an AUTH flight");
    assert!(
        auth_flight.ends_with(b"DATA\r\n"),
        "{:?}",
        String::from_utf8_lossy(auth_flight)
    );

    // Refused credentials on a server that would take the mail anyway: no message leaves.
    let o = run(
        Session::new(env(&["bob@example.net"]), opts()),
        FakeServer::new(caps).on("AUTH", "535 5.7.8 authentication failed"),
        b"secret text\n",
        BANNER,
    );
    assert!(matches!(failed(&o), SessionError::AuthFailed { .. }));
    assert!(
        !o.flights.iter().any(|f| find(f, b"secret text").is_some()),
        "the message was sent behind a refused AUTH"
    );
}

/// What a session's outcome is, as the reply tables above write it: done, or a failure of
/// some kind.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
enum OutcomeKind {
    Ok,
    TempFail,
    NoUser,
    Unavailable,
    Protocol,
    NoPerm,
    DataErr,
}

impl From<Failure> for OutcomeKind {
    fn from(f: Failure) -> OutcomeKind {
        match f {
            Failure::Transient => OutcomeKind::TempFail,
            Failure::NoSuchRecipient => OutcomeKind::NoUser,
            Failure::Permanent => OutcomeKind::Unavailable,
            Failure::Protocol => OutcomeKind::Protocol,
            Failure::Auth => OutcomeKind::NoPerm,
            Failure::BadInput => OutcomeKind::DataErr,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rehearsal (`--check`): as far as a send goes before its first recipient, then RSET.

/// What the session wants to send, as text.
fn take(s: &mut Session) -> String {
    let out = s.poll_transmit().map(<[u8]>::to_vec).unwrap_or_default();
    s.consume(out.len());
    String::from_utf8(out).unwrap()
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// The `Reply` events as (command, code).
fn replies(events: &[Event]) -> Vec<(String, u16)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reply(command, reply) => Some((command.clone(), reply.code)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_rehearsal_sends_mail_then_rset_and_never_rcpt_or_data() {
    let mut s = Session::rehearsal("alice@example.org".into(), plain_opts());
    assert_eq!(take(&mut s), "", "nothing before the greeting");
    s.handle_input(BANNER.as_bytes());
    assert_eq!(take(&mut s), "EHLO client.example\r\n");
    s.handle_input(b"250-server.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
    assert_eq!(
        take(&mut s),
        "MAIL FROM:<alice@example.org> BODY=8BITMIME\r\n",
        "alone, though the server pipelines: no RCPT, no DATA"
    );
    s.handle_input(b"250 2.1.0 Ok\r\n");
    assert_eq!(take(&mut s), "RSET\r\n");
    s.handle_input(b"250 2.0.0 Ok\r\n");
    assert_eq!(take(&mut s), "QUIT\r\n", "the 221 is not awaited");
    assert!(s.is_finished() && !s.wants_input());
    let evs = events(&mut s);
    assert_eq!(
        replies(&evs),
        [
            ("connection greeting".to_string(), 220),
            ("EHLO client.example".into(), 250),
            ("MAIL FROM:<alice@example.org> BODY=8BITMIME".into(), 250),
            ("RSET".into(), 250),
        ]
    );
    match evs.last() {
        Some(Event::Done(report)) => {
            assert!(report.accepted.is_empty() && report.rejected.is_empty());
            assert_eq!(report.reply.code, 250);
            assert!(!report.tls && !report.authenticated);
        }
        other => panic!("expected Done last, got {other:?}"),
    }
}

#[test]
fn a_rehearsal_with_starttls_and_auth_plain_takes_six_waits() {
    let opts = SessionOptions {
        tls: TlsPolicy::Required,
        credentials: creds(),
        ..plain_opts()
    };
    let mut s = Session::rehearsal("alice@example.org".into(), opts);
    // Greeting, EHLO, STARTTLS, EHLO, AUTH with MAIL behind it (RFC 4954 §4), RSET: a
    // send's seven less DATA and the end of data, plus RSET.
    let replies_in: [&[u8]; 6] = [
        BANNER.as_bytes(),
        b"250-server.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
        b"220 2.0.0 go ahead\r\n",
        b"250-server.example\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n",
        b"235 2.7.0 ok\r\n250 2.1.0 Ok\r\n",
        b"250 2.0.0 Ok\r\n",
    ];
    let mut wire = String::new();
    let mut all = Vec::new();
    for reply in replies_in {
        assert!(s.wants_input());
        s.handle_input(reply);
        wire.push_str(&take(&mut s));
        let evs = events(&mut s);
        if evs.contains(&Event::StartTls) {
            s.tls_established(true);
            wire.push_str(&take(&mut s));
        }
        all.extend(evs);
    }
    assert!(s.is_finished());
    assert_eq!(
        wire,
        "EHLO client.example\r\nSTARTTLS\r\nEHLO client.example\r\n\
         AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\nMAIL FROM:<alice@example.org>\r\nRSET\r\nQUIT\r\n"
    );
    assert!(replies(&all).contains(&("AUTH PLAIN <redacted>".into(), 235)));
    match all.last() {
        Some(Event::Done(report)) => assert!(report.tls && report.authenticated),
        other => panic!("expected Done last, got {other:?}"),
    }
}

#[test]
fn a_refused_password_fails_a_rehearsal_as_it_fails_a_send() {
    let opts = SessionOptions {
        credentials: creds(),
        allow_plaintext_auth: true,
        pipelining: false,
        ..plain_opts()
    };
    let mut s = Session::rehearsal("alice@example.org".into(), opts);
    s.handle_input(BANNER.as_bytes());
    take(&mut s);
    s.handle_input(b"250-server.example\r\n250 AUTH PLAIN\r\n");
    assert_eq!(take(&mut s), "AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n");
    s.handle_input(b"535 5.7.8 Authentication credentials invalid\r\n");
    assert_eq!(take(&mut s), "QUIT\r\n", "no MAIL, no RSET");
    let evs = events(&mut s);
    assert_eq!(
        replies(&evs).last(),
        Some(&("AUTH PLAIN <redacted>".to_string(), 535)),
        "the refusal is shown as a step"
    );
    match evs.last() {
        Some(Event::Failed(e)) => assert_eq!(e.kind(), Failure::Auth),
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn a_refused_sender_fails_a_rehearsal_with_the_mail_reply() {
    let mut s = Session::rehearsal("alice@example.org".into(), plain_opts());
    s.handle_input(BANNER.as_bytes());
    take(&mut s);
    s.handle_input(b"250 server.example\r\n");
    assert_eq!(take(&mut s), "MAIL FROM:<alice@example.org>\r\n");
    s.handle_input(b"553 5.7.1 Sender address rejected\r\n");
    assert_eq!(take(&mut s), "QUIT\r\n", "no RSET after a refusal");
    match events(&mut s).last() {
        Some(Event::Failed(SessionError::Refused { command, reply, .. })) => {
            assert_eq!(command, "MAIL FROM:<alice@example.org>");
            assert_eq!(reply.code, 553);
        }
        other => panic!("expected the MAIL refusal, got {other:?}"),
    }
}

#[test]
fn a_refused_rset_ends_a_rehearsal_with_its_reply() {
    let mut s = Session::rehearsal("alice@example.org".into(), plain_opts());
    s.handle_input(BANNER.as_bytes());
    s.handle_input(b"250 server.example\r\n");
    s.handle_input(b"250 2.1.0 Ok\r\n");
    assert!(take(&mut s).ends_with("RSET\r\n"));
    s.handle_input(b"421 4.3.2 shutting down\r\n");
    match events(&mut s).last() {
        Some(Event::Failed(e)) => assert_eq!(e.kind(), Failure::Transient),
        other => panic!("expected Failed, got {other:?}"),
    }
}
