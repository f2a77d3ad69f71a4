//! The client session state machine, sans-IO: fed bytes, asked for bytes, never blocks.
//!
//! The transport reads from the socket and calls [`Session::handle_input`], writes whatever
//! [`Session::poll_transmit`] returns (one buffer per flight, RFC 2920 §3.1), and acts on
//! [`Session::poll_event`]. Because each flight is one buffer, the number of round trips is
//! a property of this type that unit tests count.

use std::collections::VecDeque;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::capabilities::Capabilities;
use super::command::Command;
use super::engine::{Engine, Outbox, Wait};
use super::error::{RcptFailure, SessionError};
use super::reply::{Reply, ReplyParser};
use super::sasl;

/// How much TLS the session insists on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Never start TLS.
    Off,
    /// Start TLS when offered, go on in cleartext otherwise (RFC 7435).
    Opportunistic,
    /// Stop before AUTH and MAIL unless TLS is active.
    Required,
}

pub use super::sasl::{Credentials, Mechanism, Secret, SecretKind};

/// Everything the session needs to know besides the envelope.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// The name sent with EHLO/HELO.
    pub ehlo_name: String,
    pub tls: TlsPolicy,
    /// TLS is already active when the session starts (port 465, RFC 8314).
    pub implicit_tls: bool,
    /// With `implicit_tls`: whether the certificate was verified in that handshake.
    pub tls_verified: bool,
    pub credentials: Option<Credentials>,
    /// A mechanism forced by the user; otherwise chosen from [`Mechanism::preference`].
    pub mechanism: Option<Mechanism>,
    /// The host name and port dialled, for OAUTHBEARER's `host=` and `port=`
    /// (RFC 7628 §3.1).
    pub server_address: Option<(String, u16)>,
    /// Allow credentials over a connection without TLS (only when the user insists).
    pub allow_plaintext_auth: bool,
    /// Use PIPELINING when the server offers it.
    pub pipelining: bool,
    /// The message size on the wire, when known before sending (RFC 1870 `SIZE=`).
    pub size: Option<u64>,
    /// Whether the body has 8-bit bytes: `None` when not known before it is sent.
    pub eight_bit: Option<bool>,
    /// The whole message, CRLF-normalised and not dot-stuffed, when it is small enough to
    /// go in one `BDAT n LAST` chunk pipelined with MAIL and RCPT (RFC 3030): one round
    /// trip fewer than DATA. Used only when the server offers CHUNKING and PIPELINING.
    pub chunk: Option<Vec<u8>>,
    /// Delivery status notification requests (RFC 3461), sent when the server offers DSN.
    pub dsn: Dsn,
    /// Keep the connection open after the transaction, for another one
    /// ([`Session::start_transaction`]) or [`Session::quit`]: a queue run sends many
    /// messages over one connection.
    pub keep_open: bool,
    /// Record a `C:`/`S:` trace of the dialogue.
    pub trace: bool,
}

/// What a further transaction on a kept-open session needs to know about its message.
#[derive(Clone, Debug, Default)]
pub struct MessageInfo {
    pub size: Option<u64>,
    pub eight_bit: Option<bool>,
    pub chunk: Option<Vec<u8>>,
    pub dsn: Dsn,
}

/// RFC 3461 parameters, from sendmail's `-N`, `-R` and `-V`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dsn {
    /// `NEVER` or a comma list of `SUCCESS`, `FAILURE`, `DELAY`.
    pub notify: Option<String>,
    /// `FULL` or `HDRS`.
    pub ret: Option<String>,
    /// The envelope identifier, sent as xtext.
    pub envid: Option<String>,
}

impl Dsn {
    /// Validate and normalise sendmail-style values (`-N success,failure`, `-R hdrs`).
    pub fn new(
        notify: Option<&str>,
        ret: Option<&str>,
        envid: Option<&str>,
    ) -> Result<Dsn, String> {
        let notify = match notify {
            None => None,
            Some(n) => {
                let parts: Vec<String> = n
                    .split(',')
                    .map(|p| p.trim().to_ascii_uppercase())
                    .collect();
                let valid = if parts.iter().any(|p| p == "NEVER") {
                    parts.len() == 1
                } else {
                    parts
                        .iter()
                        .all(|p| matches!(p.as_str(), "SUCCESS" | "FAILURE" | "DELAY"))
                };
                if !valid || parts.is_empty() {
                    return Err(format!(
                        "DSN notify {n:?} must be never or a list of success, failure, delay"
                    ));
                }
                Some(parts.join(","))
            }
        };
        let ret = match ret.map(str::to_ascii_uppercase) {
            None => None,
            Some(r) if r == "FULL" || r == "HDRS" => Some(r),
            Some(r) => return Err(format!("DSN return {r:?} must be full or hdrs")),
        };
        if let Some(e) = envid
            && (e.len() > 100 || e.bytes().any(|b| !(0x20..0x7f).contains(&b)))
        {
            return Err(format!(
                "DSN envelope id {e:?} must be printable ASCII, at most 100"
            ));
        }
        Ok(Dsn {
            notify,
            ret,
            envid: envid.map(String::from),
        })
    }
}

/// RFC 3461 §4 xtext: printable ASCII except `+` and `=`, everything else as `+HH`.
pub fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            ehlo_name: "localhost".into(),
            tls: TlsPolicy::Required,
            implicit_tls: false,
            tls_verified: false,
            credentials: None,
            mechanism: None,
            server_address: None,
            allow_plaintext_auth: false,
            pipelining: true,
            size: None,
            eight_bit: None,
            chunk: None,
            dsn: Dsn::default(),
            keep_open: false,
            trace: false,
        }
    }
}

/// The envelope of one message (RFC 5321 §2.3.1). An empty `from` is the null sender `<>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub from: String,
    pub recipients: Vec<String>,
}

/// What the transport must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Run the TLS handshake now, then call [`Session::tls_established`].
    StartTls,
    /// Stream the message through a [`super::BodyEncoder`], then call [`Session::body_sent`].
    SendBody,
    /// The server accepted the message for the recipients in the report.
    Done(Report),
    /// The session failed; nothing more will be accepted. Write what is left (a QUIT) and close.
    Failed(SessionError),
    /// With `keep_open`: this transaction failed but the connection is usable; start
    /// another transaction or quit.
    TransactionFailed(SessionError),
    /// Only in a rehearsal ([`Session::rehearsal`]): a reply arrived to the command named
    /// (the greeting is "connection greeting"), so each step can be shown as it happens.
    Reply(String, Reply),
}

/// The outcome of a delivered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub accepted: Vec<String>,
    pub rejected: Vec<RcptFailure>,
    /// The server's reply to the end of data.
    pub reply: Reply,
    pub tls: bool,
    pub tls_verified: bool,
    pub authenticated: bool,
}

/// The reply the session waits for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Awaiting {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    /// A reply in a SASL exchange; `pipelined` when MAIL, RCPT and DATA followed.
    Auth {
        pipelined: bool,
    },
    Mail,
    Rcpt(usize),
    Data,
    DataEnd,
    Bdat,
    Rset,
    /// The RSET that ends a rehearsal after its MAIL.
    RehearsalRset,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    Talking,
    TlsHandshake,
    Body,
    /// Between transactions of a kept-open session.
    Idle,
    Finished,
}

/// One client session delivering one envelope.
#[derive(Debug)]
pub struct Session {
    envelope: Envelope,
    opts: SessionOptions,
    parser: ReplyParser,
    caps: Capabilities,
    tls_active: bool,
    /// The server's certificate was verified (chain and name, or pin).
    tls_verified: bool,
    authenticated: bool,
    /// The SASL exchange under way.
    sasl: Option<sasl::Client>,
    /// Commands whose replies are due, oldest first, with their text for error messages.
    pending: VecDeque<(Awaiting, String)>,
    outbox: Outbox<Event>,
    accepted: Vec<String>,
    rejected: Vec<RcptFailure>,
    phase: Phase,
    /// The first failure of a transaction whose remaining pipelined replies are still due.
    doomed: Option<SessionError>,
    /// The last transaction failed part-way, so the next one starts with RSET.
    needs_rset: bool,
    /// QUIT has been queued.
    quit_queued: bool,
    /// A MAIL command has been written: a failure from then on may concern a message.
    mail_sent: bool,
    /// Transactions written behind the current one whose replies are still due, oldest
    /// first ([`Session::stage_transaction`]).
    staged: VecDeque<Staged>,
    /// MAIL, then RSET instead of RCPT and DATA ([`Session::rehearsal`]).
    rehearsal: bool,
}

/// A transaction pipelined behind the current one: its envelope (to name the recipients its
/// replies are about) and how many of the entries in `pending` are its.
#[derive(Debug)]
struct Staged {
    envelope: Envelope,
    replies: usize,
}

impl Session {
    /// A session that waits for the greeting; nothing is sent yet.
    pub fn new(envelope: Envelope, opts: SessionOptions) -> Session {
        let tls_active = opts.implicit_tls;
        let tracing = opts.trace;
        let tls_verified = opts.implicit_tls && opts.tls_verified;
        let mut session = Session {
            envelope,
            opts,
            parser: ReplyParser::new(),
            caps: Capabilities::default(),
            tls_active,
            tls_verified,
            authenticated: false,
            sasl: None,
            pending: VecDeque::new(),
            outbox: Outbox::new(tracing),
            accepted: Vec::new(),
            rejected: Vec::new(),
            phase: Phase::Talking,
            doomed: None,
            needs_rset: false,
            quit_queued: false,
            mail_sent: false,
            staged: VecDeque::new(),
            rehearsal: false,
        };
        session
            .pending
            .push_back((Awaiting::Greeting, "connection greeting".into()));
        session
    }

    /// A session that goes as far as a send would before the first recipient and sends
    /// nothing: greeting, EHLO, STARTTLS, AUTH with the real credentials, `MAIL FROM`
    /// with `from`, then RSET (RFC 5321 §4.1.1.5: the transaction is abandoned) and QUIT.
    /// Each reply is also an [`Event::Reply`]; the RSET's ends it as [`Event::Done`]
    /// with no recipients. Every refusal fails it as it would fail a send, so the
    /// caller's exit status is the one a send would have had.
    pub fn rehearsal(from: String, opts: SessionOptions) -> Session {
        let opts = SessionOptions {
            keep_open: false,
            chunk: None,
            ..opts
        };
        let mut session = Session::new(
            Envelope {
                from,
                recipients: Vec::new(),
            },
            opts,
        );
        session.rehearsal = true;
        session
    }

    /// Whether TLS is active on this session.
    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// The capabilities of the last EHLO.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Whether the session ended, delivered or failed.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// The whole body, terminator included, was written after [`Event::SendBody`].
    pub fn body_sent(&mut self) {
        if self.phase != Phase::Body {
            return;
        }
        self.phase = Phase::Talking;
        self.outbox.note("<message body sent>");
        self.pending
            .push_back((Awaiting::DataEnd, "end of DATA".into()));
        // QUIT waits for the reply to the end of data (see `quit_after_message`).
    }

    fn send(&mut self, command: Command, awaiting: Awaiting) {
        let label = command.redacted();
        if self.send_unawaited(command) {
            self.pending.push_back((awaiting, label));
        }
    }

    /// Queue a command whose reply is not waited for. False if it was refused as unsafe.
    fn send_unawaited(&mut self, command: Command) -> bool {
        if command == Command::Quit {
            self.quit_queued = true;
        }
        match self.outbox.write(&command) {
            Ok(()) => true,
            Err(e) => {
                self.fail(SessionError::UnsafeArgument(e.to_string()));
                false
            }
        }
    }

    fn current_command(&self) -> String {
        self.pending
            .front()
            .map(|p| p.1.clone())
            .unwrap_or_else(|| "after QUIT".into())
    }

    fn fail(&mut self, error: SessionError) {
        if self.phase == Phase::Finished {
            return;
        }
        let polite = self.phase == Phase::Talking;
        self.phase = Phase::Finished;
        self.pending.clear();
        self.staged.clear();
        if polite {
            self.outbox.quit_quietly();
        }
        self.outbox.event(Event::Failed(error));
    }

    /// Whether the session waits between transactions.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle
    }

    /// Start another transaction on a kept-open session (after `Done` or
    /// `TransactionFailed`). A failed transaction is cleared with RSET first.
    pub fn start_transaction(&mut self, envelope: Envelope, message: MessageInfo) {
        if self.phase != Phase::Idle {
            return;
        }
        self.envelope = envelope;
        self.accepted.clear();
        self.rejected.clear();
        self.set_message(message);
        self.phase = Phase::Talking;
        if std::mem::take(&mut self.needs_rset) {
            self.send(Command::Rset, Awaiting::Rset);
            if self.pipelined() {
                self.send_transaction();
            }
        } else {
            self.send_transaction();
        }
    }

    fn set_message(&mut self, message: MessageInfo) {
        self.opts.size = message.size;
        self.opts.eight_bit = message.eight_bit;
        self.opts.chunk = message.chunk;
        self.opts.dsn = message.dsn;
    }

    /// Whether another transaction can be written now, behind those whose replies are
    /// still due ([`Self::stage_transaction`]): the server pipelines, and everything of the
    /// newest transaction, its message included, is already written (its last command is
    /// `BDAT … LAST` or the end of data). Nothing waits on a 354 then, so the server reads
    /// the next commands as commands.
    pub fn can_stage(&self) -> bool {
        self.opts.keep_open
            && self.phase == Phase::Talking
            && self.pipelined()
            && !self.quit_queued
            && matches!(
                self.pending.back(),
                Some((Awaiting::Bdat | Awaiting::DataEnd, _))
            )
    }

    /// Write the next transaction behind the current one without waiting for its outcome
    /// (a queue run: one round trip per message or less instead of two). It opens with
    /// RSET, so it starts clean whatever became of the one before (RFC 2920 lets RSET,
    /// MAIL and RCPT share a flight; RFC 3030 §4.2 lets `BDAT LAST` be followed by more
    /// commands). Its outcome is the event after the current one's.
    ///
    /// An envelope this server cannot take (size, 8-bit, SMTPUTF8) is refused here, with
    /// nothing sent; so is any call while [`Self::can_stage`] is false.
    pub fn stage_transaction(
        &mut self,
        envelope: Envelope,
        message: MessageInfo,
    ) -> Result<(), SessionError> {
        if !self.can_stage() {
            return Err(SessionError::Protocol(
                "no transaction can be pipelined now".into(),
            ));
        }
        self.set_message(message);
        let params = self.mail_params(&envelope)?;
        // Refuse an unsafe address here, as this envelope's failure; once sent, a refused
        // argument fails the whole session.
        let mut scratch = Vec::new();
        let mail = Command::Mail {
            from: envelope.from.clone(),
            params: params.clone(),
        };
        std::iter::once(mail)
            .chain(envelope.recipients.iter().map(|to| Command::Rcpt {
                to: to.clone(),
                params: Vec::new(),
            }))
            .try_for_each(|c| c.encode(&mut scratch))
            .map_err(|e| SessionError::UnsafeArgument(e.to_string()))?;
        let before = self.pending.len();
        self.send(Command::Rset, Awaiting::Rset);
        self.send_envelope(&envelope, params);
        let replies = self.pending.len() - before;
        self.staged.push_back(Staged { envelope, replies });
        Ok(())
    }

    /// How many of the replies due belong to staged transactions.
    fn staged_replies(&self) -> usize {
        self.staged.iter().map(|s| s.replies).sum()
    }

    /// The current transaction ended (its event is queued): go on with the next staged
    /// one, or wait between transactions.
    fn next_transaction(&mut self) {
        match self.staged.pop_front() {
            Some(next) => {
                self.envelope = next.envelope;
                self.accepted.clear();
                self.rejected.clear();
                self.needs_rset = false;
                self.phase = Phase::Talking;
            }
            None => self.phase = Phase::Idle,
        }
    }

    /// End a kept-open session: QUIT, whose 221 is not awaited.
    pub fn quit(&mut self) {
        if self.phase == Phase::Idle {
            self.send_unawaited(Command::Quit);
            self.phase = Phase::Finished;
        }
    }

    /// A failure that ends the transaction but not the connection (unless `keep_open` is
    /// off, or the server is closing with 421). Pipelined replies still due are awaited.
    fn transaction_failed(&mut self, error: SessionError) {
        let closing = matches!(&error, SessionError::Refused { reply, .. } if reply.code == 421);
        if !self.opts.keep_open || closing {
            return self.fail(error);
        }
        if self.doomed.is_none() {
            self.doomed = Some(error);
        }
        self.end_doomed_transaction();
    }

    fn end_doomed_transaction(&mut self) {
        if self.pending.len() == self.staged_replies()
            && let Some(error) = self.doomed.take()
        {
            self.needs_rset = true;
            self.outbox.event(Event::TransactionFailed(error));
            self.next_transaction();
        }
    }

    /// A reply to a doomed transaction's pipelined command: consumed, not acted on, except
    /// that a 354 must be answered with an empty message.
    fn handle_doomed_reply(&mut self, awaiting: Awaiting, reply: Reply) {
        if reply.code == 421 {
            let command = "pipelined transaction".to_string();
            return self.fail(SessionError::Refused {
                command,
                reply,
                at_rcpt: false,
            });
        }
        if awaiting == Awaiting::Data && reply.code == 354 {
            self.outbox.write_raw().extend_from_slice(b".\r\n");
            self.pending
                .push_back((Awaiting::DataEnd, "end of DATA".into()));
        }
        self.end_doomed_transaction();
    }

    fn finish(&mut self, reply: Reply) {
        // Whatever is still due belongs to the staged transactions.
        let own = self.pending.len() - self.staged_replies();
        self.pending.drain(..own);
        self.outbox.event(Event::Done(Report {
            accepted: std::mem::take(&mut self.accepted),
            rejected: std::mem::take(&mut self.rejected),
            reply,
            tls: self.tls_active,
            tls_verified: self.tls_verified,
            authenticated: self.authenticated,
        }));
        if self.opts.keep_open {
            self.next_transaction();
        } else {
            self.phase = Phase::Finished;
        }
    }

    fn transaction_refused(&mut self, command: String, reply: Reply) {
        self.transaction_failed(SessionError::Refused {
            command,
            reply,
            at_rcpt: false,
        });
    }

    fn refused(&mut self, command: String, reply: Reply) {
        self.fail(SessionError::Refused {
            command,
            reply,
            at_rcpt: false,
        });
    }

    fn handle_reply(&mut self, reply: Reply) {
        let Some((awaiting, command)) = self.pending.pop_front() else {
            self.fail(SessionError::Protocol(format!(
                "unexpected reply with no command outstanding: {reply}"
            )));
            return;
        };
        if self.rehearsal {
            self.outbox
                .event(Event::Reply(command.clone(), reply.clone()));
        }
        if self.doomed.is_some() {
            return self.handle_doomed_reply(awaiting, reply);
        }
        if reply.code == 421 {
            // RFC 5321 §3.8: the server is closing the channel, whatever it was asked.
            return self.fail(SessionError::Refused {
                command,
                reply,
                at_rcpt: false,
            });
        }
        match awaiting {
            Awaiting::Greeting => self.on_greeting(command, reply),
            Awaiting::Ehlo => self.on_ehlo(command, reply),
            Awaiting::Helo => self.on_helo(command, reply),
            Awaiting::StartTls => self.on_starttls(command, reply),
            Awaiting::Auth { pipelined } => self.handle_auth_reply(pipelined, command, reply),
            Awaiting::Rset => self.on_rset(command, reply),
            Awaiting::RehearsalRset => self.on_rehearsal_rset(command, reply),
            Awaiting::Mail => self.on_mail(command, reply),
            Awaiting::Rcpt(i) => self.on_rcpt(i, command, reply),
            Awaiting::Data => self.on_data(command, reply),
            Awaiting::Bdat => self.on_bdat(command, reply),
            Awaiting::DataEnd => self.on_data_end(command, reply),
        }
    }

    /// The server's greeting (RFC 5321 §4.3.1): 220, then EHLO.
    fn on_greeting(&mut self, command: String, reply: Reply) {
        match reply.code {
            220 => self.send(Command::Ehlo(self.opts.ehlo_name.clone()), Awaiting::Ehlo),
            _ if reply.is_transient() || reply.is_permanent() => self.refused(command, reply),
            _ => self.unexpected(command, reply),
        }
    }

    /// EHLO's reply names the extensions; a server that does not know EHLO gets HELO
    /// (RFC 5321 §3.2).
    fn on_ehlo(&mut self, command: String, reply: Reply) {
        match reply.code {
            250 => {
                self.caps = Capabilities::from_ehlo(&reply);
                self.after_hello();
            }
            500 | 501 | 502 | 504 => {
                self.send(Command::Helo(self.opts.ehlo_name.clone()), Awaiting::Helo)
            }
            _ if reply.is_transient() || reply.is_permanent() => self.refused(command, reply),
            _ => self.unexpected(command, reply),
        }
    }

    /// HELO: no extensions at all.
    fn on_helo(&mut self, command: String, reply: Reply) {
        match reply.code {
            250 => {
                self.caps = Capabilities::default();
                self.after_hello();
            }
            _ if reply.is_transient() || reply.is_permanent() => self.refused(command, reply),
            _ => self.unexpected(command, reply),
        }
    }

    /// STARTTLS's 220 hands over to the transport for the handshake (RFC 3207 §4).
    fn on_starttls(&mut self, command: String, reply: Reply) {
        match reply.code {
            220 if self.parser.has_buffered() => {
                // RFC 3207 §4.2, CVE-2011-0411: bytes after the 220 came in cleartext
                // and must never be read as replies after the handshake. Nothing more
                // is said on a connection that is being tampered with, not even QUIT.
                self.phase = Phase::TlsHandshake;
                self.fail(SessionError::Protocol(format!(
                    "{command}: server sent data after its 220 reply, before the TLS \
                     handshake (response injection)"
                )));
            }
            220 => {
                self.phase = Phase::TlsHandshake;
                self.outbox.event(Event::StartTls);
            }
            _ if reply.is_transient() || reply.is_permanent() => {
                if self.opts.tls == TlsPolicy::Required {
                    self.fail(SessionError::TlsUnavailable(format!(
                        "{command}: {reply} (TLS is required)"
                    )));
                } else {
                    self.outbox.note("STARTTLS refused; continuing without TLS");
                    self.begin_auth_or_transaction();
                }
            }
            _ => self.unexpected(command, reply),
        }
    }

    /// RSET before a further transaction on a kept-open session.
    fn on_rset(&mut self, command: String, reply: Reply) {
        if reply.is_positive() {
            if !self.pipelined() {
                self.send_transaction();
            }
        } else if reply.is_transient() || reply.is_permanent() {
            self.refused(command, reply);
        } else {
            self.unexpected(command, reply);
        }
    }

    /// The RSET of a rehearsal: its reply ends it, as a message's would.
    fn on_rehearsal_rset(&mut self, command: String, reply: Reply) {
        if reply.is_positive() {
            self.quit_after_message();
            self.finish(reply);
        } else if reply.is_transient() || reply.is_permanent() {
            self.refused(command, reply);
        } else {
            self.unexpected(command, reply);
        }
    }

    fn on_mail(&mut self, command: String, reply: Reply) {
        if reply.is_positive() {
            if self.rehearsal {
                self.send(Command::Rset, Awaiting::RehearsalRset);
            } else if !self.pipelined() {
                self.send_rcpt(0);
            }
        } else if reply.is_transient() || reply.is_permanent() {
            self.transaction_refused(command, reply);
        } else {
            self.unexpected(command, reply);
        }
    }

    /// One recipient's reply: accepted or refused, then (without PIPELINING) the next
    /// RCPT or DATA.
    fn on_rcpt(&mut self, i: usize, command: String, reply: Reply) {
        let recipient = self.envelope.recipients[i].clone();
        if reply.is_positive() {
            self.accepted.push(recipient);
        } else if reply.is_transient() || reply.is_permanent() {
            self.rejected.push(RcptFailure { recipient, reply });
        } else {
            return self.unexpected(command, reply);
        }
        if !self.pipelined() {
            if i + 1 < self.envelope.recipients.len() {
                self.send_rcpt(i + 1);
            } else if self.accepted.is_empty() {
                self.fail_no_recipients();
            } else {
                self.send(Command::Data, Awaiting::Data);
            }
        }
    }

    /// DATA's 354 starts the body.
    fn on_data(&mut self, command: String, reply: Reply) {
        if reply.code == 354 {
            if self.accepted.is_empty() {
                // RFC 2920 §3.1: DATA accepted although every RCPT failed; end the empty
                // message at once.
                self.outbox.write_raw().extend_from_slice(b".\r\n");
                if self.opts.keep_open {
                    self.pending
                        .push_back((Awaiting::DataEnd, "end of DATA".into()));
                }
                self.fail_no_recipients();
            } else if self.parser.has_buffered() {
                // Nothing may follow the 354 before the body; a reply here would be taken
                // for the end-of-data answer.
                self.fail(SessionError::Protocol(format!(
                    "{command}: server sent more after its 354 reply"
                )));
            } else {
                self.phase = Phase::Body;
                self.outbox.event(Event::SendBody);
            }
        } else if self.accepted.is_empty() {
            self.fail_no_recipients();
        } else if reply.is_transient() || reply.is_permanent() {
            self.transaction_refused(command, reply);
        } else {
            self.unexpected(command, reply);
        }
    }

    /// `BDAT n LAST`'s reply is the message's (RFC 3030 §3).
    fn on_bdat(&mut self, command: String, reply: Reply) {
        if reply.is_positive() && !self.accepted.is_empty() {
            self.quit_after_message();
            self.finish(reply);
        } else if self.accepted.is_empty() {
            self.fail_no_recipients();
        } else if reply.is_transient() || reply.is_permanent() {
            self.transaction_refused(command, reply);
        } else {
            self.unexpected(command, reply);
        }
    }

    /// The reply to the end of data is the message's.
    fn on_data_end(&mut self, command: String, reply: Reply) {
        if reply.is_positive() {
            self.quit_after_message();
            self.finish(reply);
        } else if reply.is_transient() || reply.is_permanent() {
            self.transaction_refused(command, reply);
        } else {
            self.unexpected(command, reply);
        }
    }

    /// The message's reply is in: QUIT now, whose 221 is never awaited. Not pipelined
    /// behind the end of data (RFC 2920 §3.2 would allow it): Exim, seeing more input
    /// coming, holds its 250 back for 200 ms, and the end of data alone lets every
    /// server answer at once. No round trip is added: nothing waits for the 221.
    fn quit_after_message(&mut self) {
        if !self.opts.keep_open {
            self.send_unawaited(Command::Quit);
        }
    }

    fn unexpected(&mut self, command: String, reply: Reply) {
        self.fail(SessionError::Protocol(format!(
            "{command}: unexpected reply {reply}"
        )));
    }

    fn fail_no_recipients(&mut self) {
        let rejected = std::mem::take(&mut self.rejected);
        self.transaction_failed(SessionError::NoRecipientAccepted(rejected));
    }

    fn pipelined(&self) -> bool {
        self.opts.pipelining && self.caps.pipelining
    }

    fn after_hello(&mut self) {
        if !self.tls_active {
            match self.opts.tls {
                TlsPolicy::Required | TlsPolicy::Opportunistic if self.caps.starttls => {
                    self.send(Command::StartTls, Awaiting::StartTls);
                    return;
                }
                TlsPolicy::Required => {
                    self.fail(SessionError::TlsUnavailable(
                        "server does not offer STARTTLS and TLS is required".into(),
                    ));
                    return;
                }
                _ => {}
            }
        }
        self.begin_auth_or_transaction();
    }

    fn begin_auth_or_transaction(&mut self) {
        let Some(creds) = self.opts.credentials.clone() else {
            return self.send_transaction();
        };
        if creds.secret.kind() == SecretKind::ClientCertificate
            && self.opts.mechanism.is_none()
            && !self.caps.offers_auth(Mechanism::External.name())
        {
            // The certificate went with the handshake; a server without AUTH EXTERNAL may
            // grant relaying on it alone (Postfix's permit_tls_clientcerts).
            self.outbox
                .note("AUTH EXTERNAL not offered; relying on the TLS client certificate");
            return self.send_transaction();
        }
        if !self.opts.allow_plaintext_auth {
            if !self.tls_active {
                return self.fail(SessionError::AuthUnavailable(
                    "refusing to send credentials over a connection without TLS".into(),
                ));
            }
            if !self.tls_verified {
                // Opportunistic TLS stops a passive eavesdropper, not a man in the middle,
                // who would be handed the password.
                return self.fail(SessionError::AuthUnavailable(
                    "refusing to send credentials: the server's TLS certificate is not \
                     verified"
                        .into(),
                ));
            }
        }
        let offered = if self.caps.auth.is_empty() {
            "nothing".to_string()
        } else {
            self.caps.auth.join(" ")
        };
        let server = self
            .opts
            .server_address
            .as_ref()
            .map(|(host, port)| (host.as_str(), *port));
        let kind = creds.secret.kind();
        let client = match self.opts.mechanism {
            Some(m) if m.secret_kind() == kind && !self.caps.offers_auth(m.name()) => {
                return self.fail(SessionError::AuthUnavailable(format!(
                    "AUTH {} is not offered by the server (it offers {offered})",
                    m.name()
                )));
            }
            Some(m) => match sasl::Client::new(m, &creds, server) {
                Ok(c) => c,
                Err(e) => {
                    return self.fail(SessionError::AuthUnavailable(format!(
                        "AUTH {}: {e}",
                        m.name()
                    )));
                }
            },
            None => {
                let mut chosen = None;
                let mut refused = Vec::new();
                for &m in Mechanism::preference(kind) {
                    if !self.caps.offers_auth(m.name()) {
                        continue;
                    }
                    // A password SASLprep refuses rules out SCRAM, not PLAIN.
                    match sasl::Client::new(m, &creds, server) {
                        Ok(c) => {
                            chosen = Some(c);
                            break;
                        }
                        Err(e) => refused.push(format!("AUTH {}: {e}", m.name())),
                    }
                }
                for note in &refused {
                    self.outbox
                        .note(&format!("{note}; trying the next mechanism"));
                }
                match chosen {
                    Some(c) => c,
                    None if !refused.is_empty() => {
                        return self.fail(SessionError::AuthUnavailable(refused.join("; ")));
                    }
                    None => {
                        return self.fail(SessionError::AuthUnavailable(format!(
                            "no authentication mechanism in common (server offers {offered}; \
                             {} can use {})",
                            kind.describe(),
                            Mechanism::preference(kind)
                                .iter()
                                .map(|m| m.name())
                                .collect::<Vec<_>>()
                                .join(" ")
                        )));
                    }
                }
            }
        };
        self.start_auth(client);
    }

    /// Send AUTH, with the initial response when it fits on the command line.
    fn start_auth(&mut self, mut client: sasl::Client) {
        let mechanism = client.mechanism();
        let name = mechanism.name();
        let initial = client.initial_response().map(|ir| B64.encode(ir));
        // RFC 4954 §4: a command line that the initial response would make longer than
        // RFC 5321's 512 octets goes without it; the response then answers the server's
        // empty challenge. Long OAuth tokens take this path.
        let initial =
            initial.filter(|ir| "AUTH ".len() + name.len() + 1 + ir.len().max(1) + 2 <= 512);
        if initial.is_some() {
            client.initial_sent();
        }
        let pipelined = initial.is_some() && mechanism.pipelinable() && self.pipelined();
        self.sasl = Some(client);
        self.send(
            Command::Auth {
                mechanism: name.into(),
                initial,
            },
            Awaiting::Auth { pipelined },
        );
        if pipelined {
            // RFC 4954 §4: AUTH with an initial response for a one-step mechanism may be
            // followed by other commands in the same flight.
            self.send_transaction();
        }
    }

    fn handle_auth_reply(&mut self, pipelined: bool, command: String, reply: Reply) {
        match reply.code {
            235 => {
                if let Some(Err(error)) = self.sasl.take().map(|c| c.finish()) {
                    return self.fail(SessionError::Sasl { command, error });
                }
                self.authenticated = true;
                if !pipelined {
                    self.send_transaction();
                }
            }
            // A 334 after a pipelined initial response: the server would read the MAIL
            // already sent as SASL data.
            334 if !pipelined => {
                let Some(client) = self.sasl.as_mut() else {
                    return self.unexpected(command, reply);
                };
                let text = reply.lines.first().map(|l| l.trim()).unwrap_or_default();
                let response = match B64.decode(text) {
                    Ok(challenge) => client.respond(&challenge),
                    Err(_) => Err(sasl::SaslError::Malformed(format!(
                        "334 {text} is not base64"
                    ))),
                };
                match response {
                    Ok(response) => {
                        let label = format!("AUTH {}", client.mechanism().name());
                        if self.send_unawaited(Command::AuthResponse(B64.encode(response))) {
                            self.pending
                                .push_back((Awaiting::Auth { pipelined: false }, label));
                        }
                    }
                    Err(error) => {
                        // RFC 4954 §4: "*" cancels the exchange, so the QUIT that follows
                        // is read as a command.
                        self.send_unawaited(Command::AuthResponse("*".into()));
                        self.sasl = None;
                        self.fail(SessionError::Sasl { command, error });
                    }
                }
            }
            _ if reply.is_transient() || reply.is_permanent() => {
                let detail = self
                    .sasl
                    .take()
                    .and_then(|c| c.failure_detail().map(String::from));
                self.fail(SessionError::AuthFailed {
                    command,
                    reply,
                    detail,
                })
            }
            _ => self.unexpected(command, reply),
        }
    }

    fn send_transaction(&mut self) {
        if self.phase == Phase::Finished {
            return;
        }
        if self.envelope.recipients.is_empty() && !self.rehearsal {
            return self.fail(SessionError::Protocol("no recipients to send to".into()));
        }
        let envelope = self.envelope.clone();
        match self.mail_params(&envelope) {
            Ok(params) => self.send_envelope(&envelope, params),
            Err(error) => self.transaction_failed(error),
        }
    }

    /// The MAIL parameters for `envelope` and the current message, or why this server
    /// cannot take it.
    fn mail_params(&self, envelope: &Envelope) -> Result<Vec<String>, SessionError> {
        if envelope.recipients.is_empty() && !self.rehearsal {
            return Err(SessionError::Protocol("no recipients to send to".into()));
        }
        let mut params = Vec::new();
        if let (Some(size), Some(limit)) = (self.opts.size, self.caps.size) {
            if limit > 0 && size > limit {
                return Err(SessionError::Unsupported(format!(
                    "message of {size} bytes exceeds the server's SIZE limit of {limit}"
                )));
            }
            params.push(format!("SIZE={size}"));
        }
        if self.caps.eightbitmime {
            if self.opts.eight_bit != Some(false) {
                params.push("BODY=8BITMIME".into());
            }
        } else if self.opts.eight_bit == Some(true) {
            return Err(SessionError::Unsupported(
                "the message has 8-bit data and the server does not offer 8BITMIME".into(),
            ));
        }
        let needs_utf8 =
            !envelope.from.is_ascii() || envelope.recipients.iter().any(|r| !r.is_ascii());
        if needs_utf8 {
            if !self.caps.smtputf8 {
                return Err(SessionError::Unsupported(
                    "an address is not ASCII and the server does not offer SMTPUTF8".into(),
                ));
            }
            params.push("SMTPUTF8".into());
        }
        if self.caps.dsn {
            if let Some(ret) = &self.opts.dsn.ret {
                params.push(format!("RET={ret}"));
            }
            if let Some(envid) = &self.opts.dsn.envid {
                params.push(format!("ENVID={}", xtext(envid)));
            }
        }
        Ok(params)
    }

    /// Whether a transaction was ever begun: a failure before it (greeting, EHLO, STARTTLS,
    /// AUTH) is the session's, not any message's.
    pub fn mail_sent(&self) -> bool {
        self.mail_sent
    }

    /// MAIL, and when pipelining every RCPT and then `BDAT … LAST` with the message or DATA.
    fn send_envelope(&mut self, envelope: &Envelope, params: Vec<String>) {
        self.mail_sent = true;
        self.send(
            Command::Mail {
                from: envelope.from.clone(),
                params,
            },
            Awaiting::Mail,
        );
        if self.pipelined() && !self.rehearsal {
            for (i, to) in envelope.recipients.iter().enumerate() {
                self.send_rcpt_to(to.clone(), i);
            }
            match self.opts.chunk.take() {
                // Never behind an AUTH whose answer is not in: a server that refuses the
                // credentials may still take mail for its own domains from anyone, and
                // would deliver the message that the 535 says was not sent. DATA waits
                // for its 354, by when the AUTH reply is known.
                Some(chunk) if self.caps.chunking && !self.auth_pending() => {
                    let label = format!("BDAT {} LAST", chunk.len());
                    self.outbox.write_raw().extend_from_slice(label.as_bytes());
                    self.outbox.write_raw().extend_from_slice(b"\r\n");
                    self.outbox.write_raw().extend_from_slice(&chunk);
                    if self.outbox.tracing() {
                        self.outbox.note(&format!("{label} <message body>"));
                    }
                    self.pending.push_back((Awaiting::Bdat, label));
                }
                _ => self.send(Command::Data, Awaiting::Data),
            }
        }
    }

    /// Whether an AUTH command's reply is still due (it was pipelined).
    fn auth_pending(&self) -> bool {
        self.pending
            .iter()
            .any(|(a, _)| matches!(a, Awaiting::Auth { .. }))
    }

    fn send_rcpt(&mut self, i: usize) {
        self.send_rcpt_to(self.envelope.recipients[i].clone(), i);
    }

    fn send_rcpt_to(&mut self, to: String, i: usize) {
        let params = match (&self.opts.dsn.notify, self.caps.dsn) {
            (Some(n), true) => vec![format!("NOTIFY={n}")],
            _ => vec![],
        };
        self.send(Command::Rcpt { to, params }, Awaiting::Rcpt(i));
    }
}

impl Engine for Session {
    type Event = Event;

    fn outbox(&self) -> &Outbox<Event> {
        &self.outbox
    }

    fn outbox_mut(&mut self) -> &mut Outbox<Event> {
        &mut self.outbox
    }

    /// Feed bytes read from the server.
    fn handle_input(&mut self, data: &[u8]) {
        if self.phase != Phase::Talking {
            // Nothing may arrive during the handshake or while the body is sent; once
            // finished, the 221 to QUIT and anything else is of no interest.
            if matches!(self.phase, Phase::TlsHandshake | Phase::Body | Phase::Idle) {
                self.fail(SessionError::Protocol(
                    "server sent data while none was expected".into(),
                ));
            }
            return;
        }
        self.parser.push(data);
        loop {
            match self.parser.next_reply() {
                Ok(Some(reply)) => {
                    self.outbox.trace_reply(&reply);
                    self.handle_reply(reply);
                    if self.phase != Phase::Talking {
                        return;
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    let command = self.current_command();
                    self.fail(SessionError::BadReply { command, error });
                    return;
                }
            }
        }
    }

    /// The server closed the connection (read returned 0).
    fn handle_eof(&mut self) {
        if self.phase != Phase::Finished {
            let command = self.current_command();
            self.fail(SessionError::Closed(command));
        }
    }

    /// Whether the session waits for bytes from the server.
    fn wants_input(&self) -> bool {
        self.phase == Phase::Talking && !self.pending.is_empty()
    }

    /// The timeout that applies now: to the reply awaited, or to the body being sent.
    fn wait(&self) -> Wait {
        if self.phase == Phase::Body {
            return Wait::DataBlock;
        }
        match self.pending.front().map(|p| p.0) {
            Some(Awaiting::Greeting) => Wait::Greeting,
            Some(Awaiting::Mail) => Wait::Mail,
            Some(Awaiting::Rcpt(_)) => Wait::Rcpt,
            Some(Awaiting::Data) => Wait::DataInit,
            Some(Awaiting::DataEnd | Awaiting::Bdat) => Wait::DataTermination,
            _ => Wait::Command,
        }
    }

    /// The TLS handshake after STARTTLS succeeded. Everything learned before it is
    /// forgotten (RFC 3207 §4.2) and EHLO is sent again.
    /// `verified`: the certificate checked out (opportunistic TLS may go on without).
    fn tls_established(&mut self, verified: bool) {
        if self.phase != Phase::TlsHandshake {
            return;
        }
        self.tls_verified = verified;
        self.parser.clear();
        self.caps = Capabilities::default();
        self.tls_active = true;
        self.phase = Phase::Talking;
        self.outbox
            .note("TLS established; capabilities from before TLS discarded");
        self.send(Command::Ehlo(self.opts.ehlo_name.clone()), Awaiting::Ehlo);
    }
}
