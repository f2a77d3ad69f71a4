//! The diagnostic probe, sans-IO: greet a server, learn what it offers before and after
//! STARTTLS, ask it the questions the user asked (VRFY, EXPN, ETRN, NOOP, HELP), and quit.
//!
//! Shaped like [`super::Session`]: the transport feeds bytes to [`Probe::handle_input`],
//! writes what [`Probe::poll_transmit`] returns and acts on [`Probe::poll_event`]. Nothing is
//! pipelined: RFC 2920 §3.1 puts VRFY, EXPN and NOOP last in a group, and a probe wants
//! each answer on its own. The obsolete verbs TURN, SEND, SOML, SAML, VERB and TICK (removed
//! by RFC 5321 Appendix F) cannot be expressed here at all.

use super::capabilities::Capabilities;
use super::command::Command;
use super::engine::{Engine, Outbox, Wait};
use super::error::SessionError;
use super::failure::Failure;
use super::reply::{Reply, ReplyParser};
use super::session::TlsPolicy;

/// A question for the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// RFC 5321 §3.5.1: is this a mailbox?
    Vrfy(String),
    /// RFC 5321 §3.5.2: the members of this mailing list.
    Expn(String),
    /// RFC 1985: start the queue for this domain (`@domain` and `#queue` forms pass as given).
    Etrn(String),
    /// RFC 5321 §4.1.1.9.
    Noop,
    /// RFC 5321 §4.1.1.8, with an optional topic.
    Help(Option<String>),
}

impl Query {
    pub fn command(&self) -> Command {
        match self {
            Query::Vrfy(a) => Command::Vrfy(a.clone()),
            Query::Expn(a) => Command::Expn(a.clone()),
            Query::Etrn(a) => Command::Etrn(a.clone()),
            Query::Noop => Command::Noop,
            Query::Help(t) => Command::Help(t.clone()),
        }
    }

    /// What a reply to this query means: `None` for 2xx success; 4xx try later, 5xx
    /// refused, and for VRFY a 550/551/553 says the user does not exist (RFC 5321 §3.5.3).
    pub fn failure(&self, reply: &Reply) -> Option<Failure> {
        match reply.class() {
            2 => None,
            4 => Some(Failure::Transient),
            5 => Some(Failure::of_reply(
                reply.code,
                matches!(self, Query::Vrfy(_)),
            )),
            // A 3xx asks for more, which none of these commands can take.
            _ => Some(Failure::Protocol),
        }
    }
}

/// One query and the server's reply to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub query: Query,
    pub reply: Reply,
}

/// The server's answer to EHLO (or to HELO, when EHLO was refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub reply: Reply,
    /// False when the server only knew HELO: it offers no extensions.
    pub extended: bool,
}

impl Hello {
    pub fn capabilities(&self) -> Capabilities {
        if self.extended {
            Capabilities::from_ehlo(&self.reply)
        } else {
            Capabilities::default()
        }
    }

    /// The extension lines as offered (the greeting line left out).
    pub fn keywords(&self) -> &[String] {
        if self.extended {
            self.reply.lines.get(1..).unwrap_or(&[])
        } else {
            &[]
        }
    }
}

/// What the probe learned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeReport {
    /// The greeting (RFC 5321 §4.3.1).
    pub banner: Option<Reply>,
    /// EHLO before TLS; `None` with implicit TLS.
    pub before_tls: Option<Hello>,
    /// EHLO after STARTTLS or on an implicit-TLS connection.
    pub after_tls: Option<Hello>,
    /// Whether TLS was active when the queries were asked.
    pub tls: bool,
    /// The refusal of STARTTLS, when TLS was opportunistic and the server said no.
    pub starttls_refused: Option<Reply>,
    pub answers: Vec<Answer>,
}

impl ProbeReport {
    /// The capabilities in force for the queries: those of the last EHLO.
    pub fn capabilities(&self) -> Capabilities {
        self.after_tls
            .as_ref()
            .or(self.before_tls.as_ref())
            .map(Hello::capabilities)
            .unwrap_or_default()
    }

    /// The worst failure among the answers, `None` when every one succeeded; a refusal
    /// for good outranks one for now, and a protocol error a refusal for now.
    pub fn failure(&self) -> Option<Failure> {
        let rank = |f: &Failure| match f {
            Failure::Transient => 1,
            Failure::Protocol => 2,
            Failure::Permanent => 3,
            _ => 4,
        };
        self.answers
            .iter()
            .filter_map(|a| a.query.failure(&a.reply))
            .max_by_key(rank)
    }
}

/// What the probe needs to know.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    pub ehlo_name: String,
    pub tls: TlsPolicy,
    /// TLS is already up (port 465, RFC 8314).
    pub implicit_tls: bool,
    /// Asked in this order, after the greeting and TLS.
    pub queries: Vec<Query>,
    /// Record a `C:`/`S:` trace.
    pub trace: bool,
}

/// What the transport must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum ProbeEvent {
    /// Run the TLS handshake, then call [`Probe::tls_established`].
    StartTls,
    /// A reply arrived to the command named (the greeting is "connection greeting").
    Reply(String, Reply),
    /// Every query was answered; QUIT is queued, its 221 not awaited.
    Done(ProbeReport),
    /// The probe failed; a QUIT may be queued. The report so far is in
    /// [`Probe::report`].
    Failed(SessionError),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Step {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Query(usize),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    Talking,
    TlsHandshake,
    Finished,
}

/// One diagnostic conversation.
#[derive(Debug)]
pub struct Probe {
    opts: ProbeOptions,
    parser: ReplyParser,
    /// The one command whose reply is due, and its text for messages.
    pending: Option<(Step, String)>,
    outbox: Outbox<ProbeEvent>,
    phase: Phase,
    tls_active: bool,
    report: ProbeReport,
}

impl Probe {
    /// A probe waiting for the greeting; nothing is sent yet.
    pub fn new(opts: ProbeOptions) -> Probe {
        let tls_active = opts.implicit_tls;
        let tracing = opts.trace;
        Probe {
            opts,
            parser: ReplyParser::new(),
            pending: Some((Step::Greeting, "connection greeting".into())),
            outbox: Outbox::new(tracing),
            phase: Phase::Talking,
            tls_active,
            report: ProbeReport {
                tls: tls_active,
                ..ProbeReport::default()
            },
        }
    }

    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// What was learned so far (all of it once `Done` came).
    pub fn report(&self) -> &ProbeReport {
        &self.report
    }

    fn handle_reply(&mut self, reply: Reply) {
        self.outbox.trace_reply(&reply);
        let Some((step, command)) = self.pending.take() else {
            return self.fail(SessionError::Protocol(format!(
                "unexpected reply with no command outstanding: {reply}"
            )));
        };
        self.outbox
            .event(ProbeEvent::Reply(command.clone(), reply.clone()));
        if step == Step::Greeting {
            self.report.banner = Some(reply.clone());
        }
        if reply.code == 421 {
            // RFC 5321 §3.8: the server is closing, whatever it was asked.
            return self.refused(command, reply);
        }
        match step {
            Step::Greeting => match reply.code {
                220 => self.send(Command::Ehlo(self.opts.ehlo_name.clone()), Step::Ehlo),
                _ => self.refused(command, reply),
            },
            Step::Ehlo => match reply.code {
                250 => self.hello(reply, true),
                // RFC 5321 §3.2: a server that does not know EHLO gets HELO.
                500 | 501 | 502 | 504 => {
                    self.send(Command::Helo(self.opts.ehlo_name.clone()), Step::Helo)
                }
                _ => self.refused(command, reply),
            },
            Step::Helo => match reply.code {
                250 => self.hello(reply, false),
                _ => self.refused(command, reply),
            },
            Step::StartTls => match reply.code {
                220 if self.parser.has_buffered() => {
                    // RFC 3207 §4.2, CVE-2011-0411: nothing may follow the 220 in cleartext.
                    self.phase = Phase::TlsHandshake;
                    self.fail(SessionError::Protocol(format!(
                        "{command}: server sent data after its 220 reply, before the TLS \
                         handshake (response injection)"
                    )));
                }
                220 => {
                    self.phase = Phase::TlsHandshake;
                    self.outbox.event(ProbeEvent::StartTls);
                }
                _ if self.opts.tls == TlsPolicy::Required => self.fail(
                    SessionError::TlsUnavailable(format!("{command}: {reply} (TLS is required)")),
                ),
                _ => {
                    self.outbox.note("STARTTLS refused; continuing without TLS");
                    self.report.starttls_refused = Some(reply);
                    self.next_query(0);
                }
            },
            Step::Query(i) => {
                let query = self.opts.queries[i].clone();
                self.report.answers.push(Answer { query, reply });
                self.next_query(i + 1);
            }
        }
    }

    fn hello(&mut self, reply: Reply, extended: bool) {
        let hello = Hello { reply, extended };
        let starttls = hello.capabilities().starttls;
        if self.tls_active {
            self.report.after_tls = Some(hello);
        } else {
            self.report.before_tls = Some(hello);
        }
        if !self.tls_active {
            match self.opts.tls {
                TlsPolicy::Required | TlsPolicy::Opportunistic if starttls => {
                    return self.send(Command::StartTls, Step::StartTls);
                }
                TlsPolicy::Required => {
                    return self.fail(SessionError::TlsUnavailable(
                        "server does not offer STARTTLS and TLS is required".into(),
                    ));
                }
                _ => {}
            }
        }
        self.next_query(0);
    }

    fn next_query(&mut self, i: usize) {
        match self.opts.queries.get(i) {
            Some(q) => self.send(q.command(), Step::Query(i)),
            None => {
                // The 221 to QUIT is not awaited: everything asked has been answered.
                self.send_unawaited(Command::Quit);
                self.phase = Phase::Finished;
                self.outbox.event(ProbeEvent::Done(self.report.clone()));
            }
        }
    }

    fn send(&mut self, command: Command, step: Step) {
        let label = command.redacted();
        if self.send_unawaited(command) {
            self.pending = Some((step, label));
        }
    }

    fn send_unawaited(&mut self, command: Command) -> bool {
        match self.outbox.write(&command) {
            Ok(()) => true,
            Err(e) => {
                self.fail(SessionError::UnsafeArgument(e.to_string()));
                false
            }
        }
    }

    fn refused(&mut self, command: String, reply: Reply) {
        self.fail(SessionError::Refused {
            command,
            reply,
            at_rcpt: false,
        });
    }

    fn fail(&mut self, error: SessionError) {
        if self.phase == Phase::Finished {
            return;
        }
        let polite = self.phase == Phase::Talking;
        self.phase = Phase::Finished;
        self.pending = None;
        if polite {
            self.outbox.quit_quietly();
        }
        self.outbox.event(ProbeEvent::Failed(error));
    }

    fn current_command(&self) -> String {
        self.pending
            .as_ref()
            .map(|p| p.1.clone())
            .unwrap_or_else(|| "after QUIT".into())
    }
}

impl Engine for Probe {
    type Event = ProbeEvent;

    fn outbox(&self) -> &Outbox<ProbeEvent> {
        &self.outbox
    }

    fn outbox_mut(&mut self) -> &mut Outbox<ProbeEvent> {
        &mut self.outbox
    }

    /// Feed bytes read from the server.
    fn handle_input(&mut self, data: &[u8]) {
        match self.phase {
            Phase::Finished => return,
            Phase::TlsHandshake => {
                return self.fail(SessionError::Protocol(
                    "server sent data while none was expected".into(),
                ));
            }
            Phase::Talking => {}
        }
        self.parser.push(data);
        while self.phase == Phase::Talking {
            match self.parser.next_reply() {
                Ok(Some(reply)) => self.handle_reply(reply),
                Ok(None) => return,
                Err(error) => {
                    let command = self.current_command();
                    return self.fail(SessionError::BadReply { command, error });
                }
            }
        }
    }

    /// The server closed the connection.
    fn handle_eof(&mut self) {
        if self.phase != Phase::Finished {
            let command = self.current_command();
            self.fail(SessionError::Closed(command));
        }
    }

    /// Whether a reply is awaited.
    fn wants_input(&self) -> bool {
        self.phase == Phase::Talking && self.pending.is_some()
    }

    /// One command at a time, each with the default five minutes.
    fn wait(&self) -> Wait {
        Wait::Command
    }

    /// The handshake after STARTTLS succeeded: forget everything from before it
    /// (RFC 3207 §4.2) and say EHLO again.
    fn tls_established(&mut self, _verified: bool) {
        if self.phase != Phase::TlsHandshake {
            return;
        }
        self.parser.clear();
        self.tls_active = true;
        self.report.tls = true;
        self.phase = Phase::Talking;
        self.outbox
            .note("TLS established; capabilities from before TLS discarded");
        self.send(Command::Ehlo(self.opts.ehlo_name.clone()), Step::Ehlo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(tls: TlsPolicy, queries: Vec<Query>) -> ProbeOptions {
        ProbeOptions {
            ehlo_name: "client.example".into(),
            tls,
            implicit_tls: false,
            queries,
            trace: false,
        }
    }

    /// Take what the probe wants to send, as text.
    fn sent(p: &mut Probe) -> String {
        let out = p.poll_transmit().map(<[u8]>::to_vec).unwrap_or_default();
        p.consume(out.len());
        String::from_utf8(out).unwrap()
    }

    fn events(p: &mut Probe) -> Vec<ProbeEvent> {
        std::iter::from_fn(|| p.poll_event()).collect()
    }

    fn done(p: &mut Probe) -> ProbeReport {
        let mut report = None;
        for e in events(p) {
            match e {
                ProbeEvent::Done(r) => report = Some(r),
                ProbeEvent::Failed(e) => panic!("probe failed: {e}"),
                _ => {}
            }
        }
        report.expect("probe is done")
    }

    fn failed(p: &mut Probe) -> SessionError {
        events(p)
            .into_iter()
            .find_map(|e| match e {
                ProbeEvent::Failed(e) => Some(e),
                _ => None,
            })
            .expect("probe failed")
    }

    const EHLO_PLAIN: &[u8] = b"250-mx.example greets client.example\r\n250-PIPELINING\r\n\
                                 250-VRFY\r\n250-ETRN\r\n250 8BITMIME\r\n";

    #[test]
    fn each_query_is_asked_alone_and_recorded_in_order() {
        let queries = vec![
            Query::Vrfy("bob@example.org".into()),
            Query::Expn("staff".into()),
            Query::Etrn("@example.org".into()),
            Query::Noop,
            Query::Help(Some("DATA".into())),
        ];
        let mut p = Probe::new(opts(TlsPolicy::Off, queries.clone()));
        assert_eq!(sent(&mut p), "", "nothing before the greeting");
        p.handle_input(b"220 mx.example ESMTP\r\n");
        assert_eq!(sent(&mut p), "EHLO client.example\r\n");
        p.handle_input(EHLO_PLAIN);
        assert_eq!(sent(&mut p), "VRFY bob@example.org\r\n");
        p.handle_input(b"252 2.0.0 Cannot VRFY user\r\n");
        assert_eq!(sent(&mut p), "EXPN staff\r\n");
        p.handle_input(b"502 5.5.1 EXPN not implemented\r\n");
        assert_eq!(sent(&mut p), "ETRN @example.org\r\n");
        p.handle_input(b"250 Queuing started\r\n");
        assert_eq!(sent(&mut p), "NOOP\r\n");
        p.handle_input(b"250 2.0.0 Ok\r\n");
        assert_eq!(sent(&mut p), "HELP DATA\r\n");
        p.handle_input(b"214-DATA\r\n214 End of HELP info\r\n");
        assert_eq!(sent(&mut p), "QUIT\r\n", "221 is never awaited");
        assert!(p.is_finished() && !p.wants_input());
        let r = done(&mut p);
        let codes: Vec<u16> = r.answers.iter().map(|a| a.reply.code).collect();
        assert_eq!(codes, vec![252, 502, 250, 250, 214]);
        let asked: Vec<Query> = r.answers.iter().map(|a| a.query.clone()).collect();
        assert_eq!(asked, queries);
        assert_eq!(r.answers[4].reply.lines, vec!["DATA", "End of HELP info"]);
        assert_eq!(r.banner.unwrap().code, 220);
        assert!(!r.tls);
        let before = r.before_tls.unwrap();
        assert_eq!(
            before.keywords(),
            ["PIPELINING", "VRFY", "ETRN", "8BITMIME"]
        );
        assert!(r.after_tls.is_none());
    }

    #[test]
    fn reply_events_name_their_command() {
        let mut p = Probe::new(opts(TlsPolicy::Off, vec![Query::Noop]));
        p.handle_input(b"220 hi\r\n");
        p.handle_input(b"250 mx\r\n");
        p.handle_input(b"250 Ok\r\n");
        let names: Vec<String> = events(&mut p)
            .into_iter()
            .filter_map(|e| match e {
                ProbeEvent::Reply(c, _) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(
            names,
            vec!["connection greeting", "EHLO client.example", "NOOP"]
        );
    }

    #[test]
    fn capabilities_before_and_after_starttls_are_kept_apart() {
        let mut p = Probe::new(opts(TlsPolicy::Required, vec![Query::Noop]));
        p.handle_input(b"220 mx\r\n");
        sent(&mut p);
        p.handle_input(b"250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
        assert_eq!(sent(&mut p), "STARTTLS\r\n");
        p.handle_input(b"220 2.0.0 go ahead\r\n");
        assert_eq!(
            events(&mut p).last(),
            Some(&ProbeEvent::StartTls),
            "the transport runs the handshake now"
        );
        assert_eq!(sent(&mut p), "");
        p.tls_established(true);
        assert_eq!(sent(&mut p), "EHLO client.example\r\n");
        p.handle_input(b"250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n");
        assert_eq!(sent(&mut p), "NOOP\r\n");
        p.handle_input(b"250 Ok\r\n");
        let r = done(&mut p);
        assert!(r.tls);
        assert_eq!(
            r.before_tls.as_ref().unwrap().keywords(),
            ["PIPELINING", "STARTTLS"]
        );
        assert_eq!(
            r.after_tls.as_ref().unwrap().keywords(),
            ["PIPELINING", "AUTH PLAIN LOGIN"]
        );
        assert_eq!(r.capabilities().auth, vec!["PLAIN", "LOGIN"]);
        assert!(!r.capabilities().starttls);
    }

    #[test]
    fn starttls_is_not_used_when_tls_is_off() {
        let mut p = Probe::new(opts(TlsPolicy::Off, vec![]));
        p.handle_input(b"220 mx\r\n");
        sent(&mut p);
        p.handle_input(b"250-mx\r\n250 STARTTLS\r\n");
        assert_eq!(sent(&mut p), "QUIT\r\n");
        assert!(!done(&mut p).tls);
    }

    #[test]
    fn required_tls_without_starttls_fails_before_any_query() {
        let mut p = Probe::new(opts(TlsPolicy::Required, vec![Query::Vrfy("a@b.c".into())]));
        p.handle_input(b"220 mx\r\n");
        sent(&mut p);
        p.handle_input(b"250-mx\r\n250 PIPELINING\r\n");
        assert_eq!(sent(&mut p), "QUIT\r\n");
        assert!(matches!(failed(&mut p), SessionError::TlsUnavailable(_)));
        assert!(
            p.report().before_tls.is_some(),
            "what was learned is kept for the report"
        );
    }

    #[test]
    fn opportunistic_tls_records_a_refused_starttls_and_goes_on() {
        let mut p = Probe::new(opts(TlsPolicy::Opportunistic, vec![Query::Noop]));
        p.handle_input(b"220 mx\r\n");
        sent(&mut p);
        p.handle_input(b"250-mx\r\n250 STARTTLS\r\n");
        assert_eq!(sent(&mut p), "STARTTLS\r\n");
        p.handle_input(b"454 4.7.0 TLS not available\r\n");
        assert_eq!(sent(&mut p), "NOOP\r\n");
        p.handle_input(b"250 Ok\r\n");
        let r = done(&mut p);
        assert_eq!(r.starttls_refused.unwrap().code, 454);
        assert!(!r.tls);
    }

    #[test]
    fn bytes_after_the_starttls_220_are_refused() {
        let mut p = Probe::new(opts(TlsPolicy::Required, vec![]));
        p.handle_input(b"220 mx\r\n");
        p.handle_input(b"250-mx\r\n250 STARTTLS\r\n");
        sent(&mut p);
        p.handle_input(b"220 go\r\n250-injected\r\n");
        assert!(matches!(failed(&mut p), SessionError::Protocol(m) if m.contains("injection")));
        assert_eq!(
            sent(&mut p),
            "",
            "nothing more is said on a tampered connection"
        );
    }

    #[test]
    fn ehlo_refused_falls_back_to_helo() {
        let mut p = Probe::new(opts(TlsPolicy::Opportunistic, vec![Query::Noop]));
        p.handle_input(b"220 old\r\n");
        sent(&mut p);
        p.handle_input(b"502 unknown command\r\n");
        assert_eq!(sent(&mut p), "HELO client.example\r\n");
        p.handle_input(b"250 old.example\r\n");
        assert_eq!(sent(&mut p), "NOOP\r\n");
        p.handle_input(b"250 Ok\r\n");
        let r = done(&mut p);
        let hello = r.before_tls.unwrap();
        assert!(!hello.extended);
        assert!(hello.keywords().is_empty());
    }

    #[test]
    fn implicit_tls_has_only_the_after_tls_ehlo() {
        let mut o = opts(TlsPolicy::Required, vec![]);
        o.implicit_tls = true;
        let mut p = Probe::new(o);
        p.handle_input(b"220 mx\r\n");
        assert_eq!(sent(&mut p), "EHLO client.example\r\n");
        p.handle_input(b"250-mx\r\n250 AUTH PLAIN\r\n");
        assert_eq!(sent(&mut p), "QUIT\r\n");
        let r = done(&mut p);
        assert!(r.tls && r.before_tls.is_none());
        assert_eq!(r.after_tls.unwrap().keywords(), ["AUTH PLAIN"]);
    }

    #[test]
    fn a_refused_greeting_fails_with_its_reply() {
        let mut p = Probe::new(opts(TlsPolicy::Off, vec![Query::Noop]));
        p.handle_input(b"554 5.7.1 go away\r\n");
        assert_eq!(sent(&mut p), "QUIT\r\n");
        let e = failed(&mut p);
        assert_eq!(e.kind(), Failure::Permanent);
        assert_eq!(p.report().banner.as_ref().unwrap().code, 554);
    }

    #[test]
    fn a_421_to_a_query_ends_the_probe() {
        let mut p = Probe::new(opts(TlsPolicy::Off, vec![Query::Noop, Query::Help(None)]));
        p.handle_input(b"220 mx\r\n250 mx\r\n");
        assert_eq!(sent(&mut p), "EHLO client.example\r\nNOOP\r\n");
        p.handle_input(b"421 4.3.2 shutting down\r\n");
        assert_eq!(failed(&mut p).kind(), Failure::Transient);
        assert_eq!(sent(&mut p), "QUIT\r\n");
    }

    #[test]
    fn malformed_replies_and_eof_are_failures() {
        let mut p = Probe::new(opts(TlsPolicy::Off, vec![]));
        p.handle_input(b"hello\r\n");
        assert_eq!(failed(&mut p).kind(), Failure::Protocol);
        let mut p = Probe::new(opts(TlsPolicy::Off, vec![Query::Noop]));
        p.handle_input(b"220 mx\r\n");
        p.handle_eof();
        assert!(matches!(failed(&mut p), SessionError::Closed(c) if c.starts_with("EHLO")));
    }

    #[test]
    fn an_argument_with_crlf_is_never_sent() {
        let mut p = Probe::new(opts(
            TlsPolicy::Off,
            vec![Query::Vrfy("a\r\nRCPT TO:<x@y>".into())],
        ));
        p.handle_input(b"220 mx\r\n250 mx\r\n");
        let wire = sent(&mut p);
        assert!(!wire.contains("RCPT"), "{wire:?}");
        assert!(matches!(failed(&mut p), SessionError::UnsafeArgument(_)));
    }

    #[test]
    fn round_trips_are_one_per_command() {
        // Banner, EHLO, STARTTLS, EHLO, two queries: six waits for input.
        let mut p = Probe::new(opts(
            TlsPolicy::Required,
            vec![Query::Noop, Query::Help(None)],
        ));
        let replies: [&[u8]; 6] = [
            b"220 mx\r\n",
            b"250-mx\r\n250 STARTTLS\r\n",
            b"220 go\r\n",
            b"250 mx\r\n",
            b"250 ok\r\n",
            b"214 help\r\n",
        ];
        let mut waits = 0;
        for reply in replies {
            assert!(p.wants_input());
            waits += 1;
            p.handle_input(reply);
            sent(&mut p);
            if events(&mut p).contains(&ProbeEvent::StartTls) {
                p.tls_established(true);
                sent(&mut p);
            }
        }
        assert_eq!(waits, 6);
        assert!(p.is_finished());
    }

    #[test]
    fn exit_statuses_follow_the_reply() {
        let r = |code| Reply {
            code,
            lines: vec!["x".into()],
        };
        let vrfy = Query::Vrfy("bob".into());
        assert_eq!(vrfy.failure(&r(250)), None);
        assert_eq!(vrfy.failure(&r(252)), None);
        assert_eq!(vrfy.failure(&r(450)), Some(Failure::Transient));
        for code in [550, 551, 553] {
            assert_eq!(vrfy.failure(&r(code)), Some(Failure::NoSuchRecipient));
        }
        assert_eq!(vrfy.failure(&r(502)), Some(Failure::Permanent));
        assert_eq!(vrfy.failure(&r(554)), Some(Failure::Permanent));
        let expn = Query::Expn("list".into());
        assert_eq!(expn.failure(&r(550)), Some(Failure::Permanent));
        assert_eq!(expn.failure(&r(502)), Some(Failure::Permanent));
        assert_eq!(Query::Noop.failure(&r(354)), Some(Failure::Protocol));
        assert_eq!(
            Query::Etrn("x".into()).failure(&r(458)),
            Some(Failure::Transient)
        );
    }

    #[test]
    fn the_worst_answer_decides_the_report_status() {
        let answer = |query: Query, code| Answer {
            query,
            reply: Reply {
                code,
                lines: vec![],
            },
        };
        let mut report = ProbeReport::default();
        assert_eq!(report.failure(), None);
        report.answers.push(answer(Query::Noop, 250));
        report.answers.push(answer(Query::Help(None), 451));
        assert_eq!(report.failure(), Some(Failure::Transient));
        report.answers.push(answer(Query::Vrfy("x".into()), 550));
        report.answers.push(answer(Query::Expn("y".into()), 502));
        assert_eq!(report.failure(), Some(Failure::NoSuchRecipient));
    }
}
