//! Runs one SMTP session over a real connection: the transport that drives the sans-IO
//! [`crate::smtp::Session`], streams the body, and turns the outcome into a typed result.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use super::link::Link;
use super::route::Route;
use crate::error::Error;
use crate::message::input::Reopen;
use crate::smtp::{
    BodyEncoder, Engine, Envelope, Event, MessageInfo, RcptFailure, Reply, ReplyParser, Report,
    Session, SessionError, SessionOptions, TraceLine, Wait,
};
use crate::system::signals;
use crate::system::terminal::Progress;
use crate::transport::TlsMode;

/// Input is read in blocks of this size; output is written once this much is encoded.
pub const BLOCK: usize = 64 * 1024;

/// The most plaintext one TLS record carries (RFC 8446 §5.1).
const TLS_RECORD: usize = 16 * 1024;

/// The largest message sent as one `BDAT LAST` chunk pipelined with the envelope: small
/// enough that sending it to a server that then refuses every recipient costs little.
pub const CHUNK_MAX: usize = 64 * 1024;

/// A queue run keeps at most this many transactions in flight on one connection…
const MAX_IN_FLIGHT: usize = 32;
/// …and stops staging more once this much is waiting to be written.
const FLIGHT_MAX: usize = 256 * 1024;

/// A whole message (read ahead, so it is known to be whole) encoded as one BDAT chunk:
/// CRLF line ends, no dot-stuffing, a lone `.` line ending it when `dot_ends_input`.
pub fn encode_chunk(whole: &[u8], dot_ends_input: bool) -> Vec<u8> {
    let mut encoder = BodyEncoder::for_bdat(dot_ends_input);
    let mut chunk = Vec::with_capacity(whole.len() + whole.len() / 16 + 2);
    encoder.encode(whole, &mut chunk);
    encoder.finish(&mut chunk);
    chunk
}

/// The message to send: what was already read, then the rest of the input.
pub struct Body<'a> {
    /// What was read already: lent by the message, owned once a small message is read
    /// whole for one `BDAT LAST` chunk.
    pub head: Cow<'a, [u8]>,
    pub rest: &'a mut dyn Read,
    /// sendmail without `-i`: a lone `.` line ends the input.
    pub dot_ends_input: bool,
}

/// What a delivery did, for the caller's report and the log.
#[derive(Debug)]
pub struct Delivered {
    pub report: Report,
    pub host: String,
    /// TLS version and cipher, when TLS was used.
    pub tls: Option<String>,
    /// Whether the certificate was verified (chain and name, or pin).
    pub tls_verified: bool,
    /// Sent in cleartext after a failed TLS handshake (opportunistic mode).
    pub tls_fallback: bool,
    /// The TLS policy that applied (direct delivery): `dane (3 1 1 matched)`, ...
    pub policy: Option<String>,
}

/// One message of a batch sent over one connection.
pub struct Job<'a> {
    pub envelope: Envelope,
    pub info: MessageInfo,
    pub body: Body<'a>,
}

/// What happened to one job of a batch.
#[derive(Clone, Debug)]
pub enum JobOutcome {
    /// Accepted for `report.accepted`; `report.rejected` were refused. With the TLS version
    /// and cipher when TLS was used.
    Delivered(Report, Option<String>),
    /// This transaction failed; the connection went on.
    Failed(SessionError),
    /// Not attempted, or its outcome never came: the connection failed (temporary for
    /// it). Why, naming the host, for the record.
    NotAttempted(String),
}

impl JobOutcome {
    /// A job left without an outcome, as the network error it stands for at `host` (its
    /// reason already names the host; the error adds it again when shown).
    pub fn not_attempted_error(host: &str, why: &str) -> Error {
        Error::network_text(host, why.strip_prefix(&format!("{host}: ")).unwrap_or(why))
    }
}

/// Queued messages for the same relay that go over the connection a new message has just
/// gone through, before its QUIT: a relay that is up takes along what waited for it, as a
/// queue run would, without a second connection. Their outcomes go to `outcome` (by index)
/// as they come; `idle` is the moment to make them durable (see [`deliver_batch`]).
pub struct TakeAlong<'j, 'f> {
    pub jobs: Vec<Job<'j>>,
    pub outcome: &'f mut dyn FnMut(usize, JobOutcome),
    pub idle: &'f mut dyn FnMut(),
}

/// Deliver `envelope` through `route`. `trace` receives each line of the dialogue. In
/// opportunistic mode a failed TLS handshake is followed by a new connection in cleartext
/// (see [`cleartext_after`]).
pub fn deliver(
    route: &Route,
    envelope: Envelope,
    opts: SessionOptions,
    body: Body<'_>,
    trace: &mut dyn FnMut(&TraceLine),
) -> Result<Delivered, Error> {
    let mut body = Some(body);
    match deliver_once(route, envelope.clone(), opts.clone(), &mut body, trace) {
        // The handshake comes before the body: it is still unread.
        Err(e) if body.is_some() => match cleartext_after(route, &e, trace) {
            Some(plain) => deliver_once(&plain, envelope, opts, &mut body, trace).map(fell_back),
            None => Err(e),
        },
        other => other,
    }
}

fn deliver_once(
    route: &Route,
    envelope: Envelope,
    opts: SessionOptions,
    body: &mut Option<Body<'_>>,
    trace: &mut dyn FnMut(&TraceLine),
) -> Result<Delivered, Error> {
    let mut conn = Connection::open(route, envelope, opts, trace)?;
    let host = route.host.clone();
    match conn.run_transaction(body, trace, &mut |_| {}, &mut || {})? {
        Event::Done(report) => Ok(conn.finish(report)),
        Event::Failed(error) | Event::TransactionFailed(error) => {
            Err(Error::Session { host, error })
        }
        other => Err(Error::Internal(format!("unexpected event {other:?}"))),
    }
}

/// Opportunistic TLS (RFC 7435) whose handshake failed, as with a server whose TLS is
/// broken (OpenSMTPD 6.8 with OpenSSL 3): the route again in cleartext, as Postfix does at
/// security level `may`, said in the trace. Never when TLS is required (a verified
/// domain, DANE, MTA-STS and `--tls required` all make the route `Required`), and never
/// for anything but a failed TLS setup.
pub fn cleartext_after(
    route: &Route,
    error: &Error,
    trace: &mut dyn FnMut(&TraceLine),
) -> Option<Route> {
    if route.tls != TlsMode::Opportunistic || !matches!(error, Error::Tls { .. }) {
        return None;
    }
    trace(&TraceLine {
        client: true,
        text: format!("cleartext after a failed TLS handshake ({error}); connecting again"),
    });
    Some(Route {
        tls: TlsMode::Off,
        ..route.clone()
    })
}

/// A delivery made in cleartext after a failed handshake, so marked for the log.
fn fell_back(mut delivered: Delivered) -> Delivered {
    delivered.tls_fallback = true;
    delivered
}

/// Deliver `envelope` through `route`, reading the message from `message` as often as a
/// transaction needs it: recipients a server refuses with 452 (a limit on recipients per
/// transaction, RFC 5321 §4.5.3.1.10: Exim's `recipients_max`, Postfix's
/// `smtpd_recipient_limit`) go in further transactions on the same connection, for as long
/// as a transaction takes some of them. Those the last one took none of stay refused (a
/// 452 for storage), for the caller to queue.
pub fn deliver_message(
    route: &Route,
    envelope: Envelope,
    opts: SessionOptions,
    message: &mut dyn Reopen,
    dot_ends_input: bool,
    trace: &mut dyn FnMut(&TraceLine),
) -> Result<Delivered, Error> {
    deliver_message_along(
        route,
        envelope,
        opts,
        message,
        dot_ends_input,
        trace,
        &mut None,
    )
}

/// [`deliver_message`], then, once the message is delivered, the jobs of `along` over the
/// same connection. They are not touched (no outcome given) when the message was not
/// delivered: they wait where they are.
pub fn deliver_message_along(
    route: &Route,
    envelope: Envelope,
    opts: SessionOptions,
    message: &mut dyn Reopen,
    dot_ends_input: bool,
    trace: &mut dyn FnMut(&TraceLine),
    along: &mut Option<TakeAlong<'_, '_>>,
) -> Result<Delivered, Error> {
    let first = deliver_rounds(
        route,
        envelope.clone(),
        opts.clone(),
        message,
        dot_ends_input,
        trace,
        along,
    );
    match first {
        // Only the first transaction can meet the handshake: nothing was delivered.
        Err(e) => match cleartext_after(route, &e, trace) {
            Some(plain) => deliver_rounds(
                &plain,
                envelope,
                opts,
                message,
                dot_ends_input,
                trace,
                along,
            )
            .map(fell_back),
            None => Err(e),
        },
        ok => ok,
    }
}

fn deliver_rounds(
    route: &Route,
    envelope: Envelope,
    opts: SessionOptions,
    message: &mut dyn Reopen,
    dot_ends_input: bool,
    trace: &mut dyn FnMut(&TraceLine),
    along: &mut Option<TakeAlong<'_, '_>>,
) -> Result<Delivered, Error> {
    let info = MessageInfo {
        size: opts.size,
        eight_bit: opts.eight_bit,
        chunk: opts.chunk.clone(),
        dsn: opts.dsn.clone(),
    };
    let from = envelope.from.clone();
    let opts = SessionOptions {
        keep_open: true,
        ..opts
    };
    let mut conn = Connection::open(route, envelope, opts, trace)?;
    let host = route.host.clone();
    let mut merged: Option<Report> = None;
    // The recipients of a further transaction, while one is under way.
    let mut further: Vec<String> = Vec::new();
    loop {
        let (head, mut rest) = message.reopen()?;
        let mut body = Some(Body {
            head: Cow::Borrowed(head),
            rest: &mut rest,
            dot_ends_input,
        });
        let event = conn.run_transaction(&mut body, trace, &mut |_| {}, &mut || {})?;
        let report = match (event, merged.take()) {
            (Event::Done(report), done) => {
                merged = done;
                report
            }
            // A further transaction failed: the earlier ones have the message, its own
            // recipients wait (a temporary failure the caller queues).
            (Event::Failed(error) | Event::TransactionFailed(error), Some(mut done)) => {
                let reply = Reply {
                    code: 451,
                    lines: vec![format!("4.3.0 a further transaction failed: {error}")],
                };
                done.rejected
                    .extend(further.drain(..).map(|recipient| RcptFailure {
                        recipient,
                        reply: reply.clone(),
                    }));
                return Ok(conn.finish(done));
            }
            (Event::Failed(error) | Event::TransactionFailed(error), None) => {
                conn.session.quit();
                conn.close();
                return Err(Error::Session { host, error });
            }
            (other, _) => return Err(Error::Internal(format!("unexpected event {other:?}"))),
        };
        let took_some = !report.accepted.is_empty();
        let (again, refused): (Vec<RcptFailure>, Vec<RcptFailure>) = report
            .rejected
            .iter()
            .cloned()
            .partition(|f| f.reply.code == 452);
        let done = merged.get_or_insert_with(|| Report {
            accepted: Vec::new(),
            rejected: Vec::new(),
            ..report.clone()
        });
        done.accepted.extend(report.accepted);
        done.rejected.extend(refused);
        done.reply = report.reply;
        if again.is_empty() || !took_some {
            done.rejected.extend(again);
            let done = done.clone();
            return Ok(match along.take() {
                Some(along) if !along.jobs.is_empty() => conn.take_along(done, along, trace),
                _ => conn.finish(done),
            });
        }
        further = again.into_iter().map(|f| f.recipient).collect();
        conn.session.start_transaction(
            Envelope {
                from: from.clone(),
                recipients: further.clone(),
            },
            info.clone(),
        );
    }
}

/// Deliver several messages over one connection (a queue run). With PIPELINING each
/// transaction is written behind the one before without waiting for its outcome (small
/// messages as `BDAT LAST` in the envelope's flight, the others with the next envelope
/// behind the end of data), up to 32 at once.
///
/// An error is returned only when the connection could not be set up at all; afterwards
/// each job's outcome goes to `outcome` (by index) as soon as the server gave it, so a
/// caller that is killed later has already recorded it.
///
/// `idle` is called whenever every reply read so far has been handed to `outcome` and
/// the next one must be waited for: the moment to make those outcomes durable at once
/// (one directory sync for the replies of one read, not one per message).
pub fn deliver_batch(
    route: &Route,
    opts: SessionOptions,
    jobs: Vec<Job<'_>>,
    trace: &mut dyn FnMut(&TraceLine),
    outcome: &mut dyn FnMut(usize, JobOutcome),
    idle: &mut dyn FnMut(),
) -> Result<(), Error> {
    let mut jobs = jobs.into_iter().enumerate();
    let Some((first_index, mut first)) = jobs.next() else {
        return Ok(());
    };
    read_ahead(&mut first);
    let opts = SessionOptions {
        keep_open: true,
        size: first.info.size,
        eight_bit: first.info.eight_bit,
        chunk: first.info.chunk,
        dsn: first.info.dsn,
        ..opts
    };
    // In opportunistic mode, where a failed handshake is followed by a cleartext
    // connection (see `cleartext_after`).
    let plain = Route {
        tls: TlsMode::Off,
        ..route.clone()
    };
    let fallback = Fallback {
        plain: &plain,
        envelope: first.envelope.clone(),
        opts: opts.clone(),
    };
    let conn = Connection::open(route, first.envelope, opts, trace)?;
    let batch = Batch {
        route,
        jobs: &mut jobs,
        trace,
        outcome,
        idle,
    };
    batch.run(conn, (first_index, first.body), Some(fallback))
}

/// How a batch whose first handshake failed in opportunistic mode connects again.
struct Fallback<'r> {
    plain: &'r Route,
    envelope: Envelope,
    opts: SessionOptions,
}

/// The jobs of a batch still to start, and where their outcomes go.
struct Batch<'b, 'j> {
    route: &'b Route,
    jobs: &'b mut dyn Iterator<Item = (usize, Job<'j>)>,
    trace: &'b mut dyn FnMut(&TraceLine),
    outcome: &'b mut dyn FnMut(usize, JobOutcome),
    idle: &'b mut dyn FnMut(),
}

impl<'j> Batch<'_, 'j> {
    /// Run the batch over `conn`, whose session has `first`'s transaction started: each
    /// job's outcome goes to `outcome` as the server gives it, those left without one get
    /// what the connection's end says. QUIT when every job has its outcome.
    fn run<'r>(
        mut self,
        mut conn: Connection<'r>,
        first: (usize, Body<'j>),
        mut fallback: Option<Fallback<'r>>,
    ) -> Result<(), Error> {
        // The jobs whose transactions are written, oldest (the current one) first.
        let mut in_flight: VecDeque<(usize, Option<Body<'j>>)> = VecDeque::new();
        in_flight.push_back((first.0, Some(first.1)));
        // What the jobs left without an outcome get, once the connection is gone.
        let mut leftover = JobOutcome::NotAttempted(String::new());
        let mut reported = false;
        let route = self.route;
        while let Some((index, body)) = in_flight.front_mut() {
            let index = *index;
            let mut body = body.take();
            let jobs = &mut self.jobs;
            let outcome = &mut self.outcome;
            let mut stage = |session: &mut Session| {
                // A run asked to stop starts no more transactions.
                while !signals::stop_requested()
                    && in_flight.len() < MAX_IN_FLIGHT
                    && session.can_stage()
                    && session.poll_transmit().map_or(0, <[u8]>::len) < FLIGHT_MAX
                {
                    let Some((i, mut job)) = jobs.next() else {
                        return;
                    };
                    if session.capabilities().chunking {
                        read_ahead(&mut job);
                    }
                    match session.stage_transaction(job.envelope, job.info) {
                        Ok(()) => in_flight.push_back((i, Some(job.body))),
                        Err(error) => outcome(i, JobOutcome::Failed(error)),
                    }
                }
            };
            let event = conn.run_transaction(&mut body, self.trace, &mut stage, self.idle);
            in_flight.pop_front();
            match event {
                Ok(Event::Done(report)) => {
                    reported = true;
                    let tls = conn.link.stream.tls_description();
                    (self.outcome)(index, JobOutcome::Delivered(report, tls));
                }
                Ok(Event::TransactionFailed(error)) => {
                    reported = true;
                    (self.outcome)(index, JobOutcome::Failed(error));
                }
                // Before any message's turn, a failure is the session's: refused
                // credentials leave every message waiting for new ones; anything else (a
                // 554 greeting included) defers them all, as Postfix's
                // smtp_skip_5xx_greeting does. It is never one message's permanent
                // failure, returned to its sender.
                Ok(Event::Failed(error)) if !reported && error.is_auth() => {
                    leftover = JobOutcome::Failed(error.clone());
                    (self.outcome)(index, JobOutcome::Failed(error));
                    break;
                }
                Ok(Event::Failed(error)) if !reported && !conn.session.mail_sent() => {
                    leftover = JobOutcome::NotAttempted(format!("{}: {error}", route.host));
                    (self.outcome)(index, leftover.clone());
                    break;
                }
                Ok(Event::Failed(error)) => {
                    let why = format!("{}: the session ended: {error}", route.host);
                    leftover = JobOutcome::NotAttempted(why);
                    (self.outcome)(index, JobOutcome::Failed(error));
                    break;
                }
                // The first transaction met a failed handshake in opportunistic mode:
                // again, in cleartext, with the same jobs (nothing of theirs was written).
                Err(e)
                    if !reported
                        && fallback.is_some()
                        && body.is_some()
                        && in_flight.is_empty()
                        && cleartext_after(route, &e, self.trace).is_some() =>
                {
                    let Some(f) = fallback.take() else {
                        return Err(e);
                    };
                    conn = Connection::open(f.plain, f.envelope, f.opts, self.trace)?;
                    in_flight.push_front((index, body));
                    continue;
                }
                // The connection broke mid-transaction: this job and the rest wait.
                Err(e) => {
                    leftover = JobOutcome::NotAttempted(e.to_string());
                    (self.outcome)(index, leftover.clone());
                    break;
                }
                Ok(other) => return Err(Error::Internal(format!("unexpected event {other:?}"))),
            }
            if in_flight.is_empty() && !self.start_next(&mut conn, &mut in_flight) {
                conn.session.quit();
                conn.close();
                return Ok(());
            }
        }
        for (i, _) in in_flight {
            (self.outcome)(i, leftover.clone());
        }
        for (i, _) in self.jobs {
            (self.outcome)(i, leftover.clone());
        }
        conn.close();
        Ok(())
    }

    /// Nothing in flight: start the next job's transaction, if there is one (and the run
    /// was not asked to stop). False when every job has had its turn.
    fn start_next(
        &mut self,
        conn: &mut Connection<'_>,
        in_flight: &mut VecDeque<(usize, Option<Body<'j>>)>,
    ) -> bool {
        if signals::stop_requested() {
            for (i, _) in &mut *self.jobs {
                (self.outcome)(i, JobOutcome::NotAttempted("stopped on request".into()));
            }
        }
        match self.jobs.next() {
            Some((i, mut job)) => {
                if conn.session.capabilities().chunking {
                    read_ahead(&mut job);
                }
                conn.session.start_transaction(job.envelope, job.info);
                in_flight.push_back((i, Some(job.body)));
                true
            }
            None => false,
        }
    }
}

/// Read a small message whole, so it can go as one `BDAT LAST` chunk in its envelope's
/// flight. What was read stays in the body's head, for a server without CHUNKING; a
/// message that turns out larger, or holds a NUL, goes the usual way.
fn read_ahead(job: &mut Job<'_>) {
    let body = &mut job.body;
    if job.info.chunk.is_some() || job.info.size.is_none_or(|n| n > BLOCK as u64) {
        return;
    }
    let want = BLOCK.saturating_sub(body.head.len()) as u64;
    let Ok(got) = (&mut body.rest)
        .take(want + 1)
        .read_to_end(body.head.to_mut())
    else {
        return;
    };
    if got as u64 > want || memchr::memchr(0, &body.head).is_some() {
        return;
    }
    let chunk = encode_chunk(&body.head, body.dot_ends_input);
    if chunk.len() <= CHUNK_MAX {
        job.info.size = Some(chunk.len() as u64);
        job.info.chunk = Some(chunk);
    }
}

/// One step of [`rehearse`], shown as it happens.
pub enum RehearsalStep<'s, 'r> {
    /// The connection is open; with implicit TLS, the handshake is done.
    Connected(&'s Link<'r>),
    /// The handshake after STARTTLS is done.
    Tls(&'s Link<'r>),
    /// Opportunistic TLS failed its handshake: a send goes on in cleartext, and so does
    /// the rehearsal, on a new connection.
    Cleartext(&'s Error),
    /// A reply arrived to the command named.
    Reply(&'s str, &'s Reply),
}

/// Go through `route` as far as a send from `from` would before its first recipient,
/// and send nothing ([`Session::rehearsal`]): `--check`. `step` sees each step as it
/// happens; the error is the one a send would have met.
pub fn rehearse(
    route: &Route,
    from: &str,
    opts: SessionOptions,
    trace: &mut dyn FnMut(&TraceLine),
    step: &mut dyn FnMut(RehearsalStep<'_, '_>),
) -> Result<Report, Error> {
    match rehearse_once(route, from, opts.clone(), trace, step) {
        Err(e) => match cleartext_after(route, &e, trace) {
            Some(plain) => {
                step(RehearsalStep::Cleartext(&e));
                rehearse_once(&plain, from, opts, trace, step)
            }
            None => Err(e),
        },
        ok => ok,
    }
}

fn rehearse_once(
    route: &Route,
    from: &str,
    opts: SessionOptions,
    trace: &mut dyn FnMut(&TraceLine),
    step: &mut dyn FnMut(RehearsalStep<'_, '_>),
) -> Result<Report, Error> {
    let conn = Connection::open_with(route, opts, trace, |opts| {
        Session::rehearsal(from.to_string(), opts)
    })?;
    step(RehearsalStep::Connected(&conn.link));
    conn.rehearse(trace, step)
}

/// A connection with its session: the session-specific loop around the shared driver.
struct Connection<'r> {
    link: Link<'r>,
    session: Session,
}

impl<'r> Connection<'r> {
    /// Connect, run implicit TLS if asked, and create the session for the first envelope.
    fn open(
        route: &'r Route,
        envelope: Envelope,
        opts: SessionOptions,
        trace: &mut dyn FnMut(&TraceLine),
    ) -> Result<Connection<'r>, Error> {
        Self::open_with(route, opts, trace, |opts| Session::new(envelope, opts))
    }

    /// Connect as [`Self::open`] does, with the session `make` creates from the options
    /// the route completes.
    fn open_with(
        route: &'r Route,
        mut opts: SessionOptions,
        trace: &mut dyn FnMut(&TraceLine),
        make: impl FnOnce(SessionOptions) -> Session,
    ) -> Result<Connection<'r>, Error> {
        (opts.tls, opts.implicit_tls) = route.session_tls();
        opts.server_address
            .get_or_insert_with(|| (route.host.clone(), route.port));
        let link = Link::open(route, trace)?;
        opts.tls_verified = link.tls_verified();
        Ok(Connection {
            link,
            session: make(opts),
        })
    }

    /// Run a rehearsal to its end, showing each step; QUIT goes out and the connection
    /// is closed whatever the outcome.
    fn rehearse(
        mut self,
        trace: &mut dyn FnMut(&TraceLine),
        step: &mut dyn FnMut(RehearsalStep<'_, '_>),
    ) -> Result<Report, Error> {
        let outcome = self.run_rehearsal(trace, step);
        self.link
            .say_last(&mut self.session, Duration::from_secs(2));
        Link::drain_trace(&mut self.session, trace);
        self.link.close();
        outcome
    }

    fn run_rehearsal(
        &mut self,
        trace: &mut dyn FnMut(&TraceLine),
        step: &mut dyn FnMut(RehearsalStep<'_, '_>),
    ) -> Result<Report, Error> {
        let host = self.link.route.host.clone();
        loop {
            self.link.transmit(&mut self.session)?;
            Link::drain_trace(&mut self.session, trace);
            while let Some(event) = self.session.poll_event() {
                match event {
                    Event::StartTls => {
                        self.link.start_tls(&mut self.session, trace)?;
                        step(RehearsalStep::Tls(&self.link));
                    }
                    Event::Reply(command, reply) => step(RehearsalStep::Reply(&command, &reply)),
                    Event::Done(report) => return Ok(report),
                    Event::Failed(error) | Event::TransactionFailed(error) => {
                        return Err(Error::Session { host, error });
                    }
                    Event::SendBody => {
                        return Err(Error::Internal("a rehearsal asked for a message".into()));
                    }
                }
            }
            if self.session.poll_transmit().is_some() {
                continue;
            }
            if !self.session.wants_input() {
                return Err(Error::Internal(
                    "session is neither waiting nor finished".into(),
                ));
            }
            let deadline = self.link.deadline(self.session.wait());
            self.link.receive(&mut self.session, deadline)?;
        }
    }

    /// Run the session until the current transaction ends: `Done`, `TransactionFailed` or
    /// `Failed`. Network failures are errors.
    ///
    /// `stage` is offered the session whenever another transaction could be written behind
    /// this one ([`Session::stage_transaction`]), before each write.
    fn run_transaction(
        &mut self,
        body: &mut Option<Body<'_>>,
        trace: &mut dyn FnMut(&TraceLine),
        stage: &mut dyn FnMut(&mut Session),
        idle: &mut dyn FnMut(),
    ) -> Result<Event, Error> {
        let mut deadline = self.link.deadline(self.session.wait());
        loop {
            if self.session.can_stage() {
                stage(&mut self.session);
            }
            if self.link.transmit(&mut self.session)? {
                deadline = self.link.deadline(self.session.wait());
            }
            Link::drain_trace(&mut self.session, trace);
            match self.session.poll_event() {
                Some(Event::StartTls) => {
                    self.link.start_tls(&mut self.session, trace)?;
                    continue;
                }
                Some(Event::SendBody) => {
                    let Some(b) = body.take() else {
                        return Err(Error::Internal("body requested twice".into()));
                    };
                    send_body(&mut self.link, &mut self.session, b, stage)?;
                    continue;
                }
                Some(event @ (Event::Done(_) | Event::TransactionFailed(_))) => {
                    // QUIT after the last message: best effort, the 221 is not awaited.
                    self.link
                        .say_last(&mut self.session, Duration::from_secs(5));
                    return Ok(event);
                }
                Some(event @ Event::Failed(_)) => {
                    self.link
                        .say_last(&mut self.session, Duration::from_secs(2));
                    Link::drain_trace(&mut self.session, trace);
                    return Ok(event);
                }
                // Only a rehearsal reports each reply.
                Some(Event::Reply(..)) => continue,
                None => {}
            }
            if self.session.is_idle() || self.session.is_finished() {
                return Err(Error::Internal("session ended without an outcome".into()));
            }
            if !self.session.wants_input() {
                return Err(Error::Internal(
                    "session is neither waiting nor finished".into(),
                ));
            }
            idle();
            self.link.receive(&mut self.session, deadline)?;
        }
    }

    /// The delivery record for a successful transaction, and the connection closed.
    fn finish(mut self, report: Report) -> Delivered {
        self.session.quit();
        self.link
            .say_last(&mut self.session, Duration::from_secs(2));
        let delivered = self.delivered(report);
        self.close();
        delivered
    }

    /// What this connection did for a message `report` is the outcome of.
    fn delivered(&self, report: Report) -> Delivered {
        Delivered {
            report,
            tls_fallback: false,
            host: self.link.route.host.clone(),
            tls: self.link.stream.tls_description(),
            tls_verified: self.link.tls_verified(),
            policy: self.link.policy(),
        }
    }

    /// The message is delivered (`report`): the jobs of `along` go next on this
    /// connection, then QUIT.
    fn take_along(
        mut self,
        report: Report,
        along: TakeAlong<'_, '_>,
        trace: &mut dyn FnMut(&TraceLine),
    ) -> Delivered {
        let delivered = self.delivered(report);
        let route = self.link.route.clone();
        let mut jobs = along.jobs.into_iter().enumerate();
        if let Some((index, mut first)) = jobs.next() {
            if self.session.capabilities().chunking {
                read_ahead(&mut first);
            }
            self.session.start_transaction(first.envelope, first.info);
            let batch = Batch {
                route: &route,
                jobs: &mut jobs,
                trace,
                outcome: along.outcome,
                idle: along.idle,
            };
            // The message itself is delivered whatever becomes of these; what has no
            // outcome waits where it is.
            let _ = batch.run(self, (index, first.body), None);
        }
        delivered
    }

    fn close(mut self) {
        self.link
            .say_last(&mut self.session, Duration::from_secs(2));
        self.link.close();
    }
}

/// A 4xx or 5xx the server sent before it closed or reset the connection, read within a
/// short while after a write failed: whatever was already on its way is still in our
/// socket's buffer.
fn reply_before_close(link: &mut Link<'_>) -> Option<Reply> {
    let deadline = link.cap(Instant::now() + REPLY_AFTER_FAILURE);
    let mut parser = ReplyParser::new();
    let mut buf = [0u8; 4096];
    for _ in 0..16 {
        match link.stream.read(&mut buf, deadline) {
            Ok(0) | Err(_) => break,
            Ok(n) => parser.push(&buf[..n]),
        }
        match parser.next_reply() {
            Ok(Some(reply)) if reply.is_transient() || reply.is_permanent() => {
                return Some(reply);
            }
            Ok(None) => continue,
            Ok(Some(_)) | Err(_) => break,
        }
    }
    None
}

/// How long a reply is looked for after a write failed.
const REPLY_AFTER_FAILURE: Duration = Duration::from_secs(2);

fn nul_error() -> Error {
    Error::Data("the message contains a NUL byte, which RFC 5322 §3.5 does not allow".into())
}

/// Stream the body through the encoder in fixed blocks; the last block carries the end of
/// data and any pipelined QUIT in the same write.
fn send_body(
    link: &mut Link<'_>,
    session: &mut Session,
    body: Body<'_>,
    stage: &mut dyn FnMut(&mut Session),
) -> Result<(), Error> {
    let route = link.route;
    let host = route.host.as_str();
    let block_timeout = route.timeouts.for_wait(Wait::DataBlock);
    let mut encoder = BodyEncoder::new(body.dot_ends_input);
    let mut progress = Progress::start(route.progress);
    let mut out = Vec::with_capacity(2 * BLOCK + 8);
    // Blocks leave in whole multiples of a TLS record's payload, the rest waiting for the
    // next block: an encoded block is a little over 64 KiB, and cut as it comes every
    // block would end in a small record, one more for the server to take apart (a server
    // that reads record by record, like OpenSSL's, then reads a fifth more often).
    let mut write = |out: &mut Vec<u8>, last: bool| -> Result<(), Error> {
        let deadline = link.cap(Instant::now() + block_timeout);
        let whole = if last {
            out.len()
        } else {
            out.len() - out.len() % TLS_RECORD
        };
        if let Err(e) = link.stream.write_all(&out[..whole], deadline) {
            // A server that refuses mid-message (OpenSMTPD's "500 Line too long") says
            // why before it closes: that reply, not the reset, is the outcome.
            return Err(match reply_before_close(link) {
                Some(reply) => Error::Session {
                    host: host.to_string(),
                    error: SessionError::Refused {
                        command: "sending the message".into(),
                        reply,
                        at_rcpt: false,
                    },
                },
                None => Error::network(host, "sending the message", e),
            });
        }
        out.drain(..whole);
        Ok(())
    };
    for piece in body.head.chunks(BLOCK) {
        encoder.encode(piece, &mut out);
        if encoder.saw_nul() {
            return Err(nul_error());
        }
        if out.len() >= BLOCK {
            write(&mut out, false)?;
        }
    }
    let mut inbuf = vec![0u8; BLOCK];
    while !encoder.input_ended() {
        let n = match body.rest.read(&mut inbuf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Never end the data with a dot here: the server must discard the partial message.
            Err(e) => return Err(Error::io("reading the message", e)),
        };
        encoder.encode(&inbuf[..n], &mut out);
        if let Some(meter) = progress.as_mut() {
            meter.add(n);
        }
        if encoder.saw_nul() {
            // Never end the data: without the final dot the server discards what it has.
            return Err(nul_error());
        }
        if out.len() >= BLOCK {
            write(&mut out, false)?;
        }
    }
    encoder.finish(&mut out);
    if let Some(meter) = progress.take() {
        meter.finish();
    }
    session.body_sent();
    if session.can_stage() {
        // The next envelope leaves with the end of this message.
        stage(session);
    }
    if let Some(quit) = session.poll_transmit() {
        out.extend_from_slice(quit);
        let n = quit.len();
        session.consume(n);
    }
    write(&mut out, true)
}
