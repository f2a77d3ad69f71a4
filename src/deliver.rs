//! Runs one SMTP session over a real connection: the transport that drives the sans-IO
//! [`crate::smtp::Session`], streams the body, and turns the outcome into a typed result.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::smtp::{BodyEncoder, Envelope, Event, Report, Session, SessionOptions, TraceLine, Wait};
use crate::transport::{self, Stream, TlsMode, TlsSettings, describe_io};

/// Input is read in blocks of this size; output is written once this much is encoded.
pub const BLOCK: usize = 128 * 1024;

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Route {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub tls_settings: TlsSettings,
    pub timeouts: Timeouts,
}

/// Time limits (RFC 5321 §4.5.3.2 unless overridden).
#[derive(Clone, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    /// One value for every command wait instead of the RFC's per-command ones.
    pub command: Option<Duration>,
    /// A deadline for the whole session.
    pub total: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            command: None,
            total: None,
        }
    }
}

impl Timeouts {
    fn for_wait(&self, wait: Wait) -> Duration {
        self.command.unwrap_or_else(|| wait.default_timeout())
    }
}

/// The message to send: what was already read, then the rest of the input.
pub struct Body<'a> {
    pub head: Vec<u8>,
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
}

/// Deliver `envelope` through `route`. `trace` receives each line of the dialogue.
pub fn deliver(
    route: &Route,
    envelope: Envelope,
    mut opts: SessionOptions,
    body: Body<'_>,
    trace: &mut dyn FnMut(&TraceLine),
) -> Result<Delivered, Error> {
    let started = Instant::now();
    let host = route.host.as_str();
    let overall = route.timeouts.total.map(|t| started + t);
    let cap = |d: Instant| overall.map_or(d, |o| o.min(d));

    let tls = match route.tls {
        TlsMode::Off => None,
        mode => Some(transport::tls::client_config(&TlsSettings {
            verify: mode != TlsMode::Opportunistic,
            ..route.tls_settings.clone()
        })?),
    };
    opts.tls = match route.tls {
        TlsMode::Off => crate::smtp::TlsPolicy::Off,
        TlsMode::Opportunistic => crate::smtp::TlsPolicy::Opportunistic,
        TlsMode::Required | TlsMode::Implicit => crate::smtp::TlsPolicy::Required,
    };
    opts.implicit_tls = route.tls == TlsMode::Implicit;

    let (sock, addr) = transport::connect(host, route.port, route.timeouts.connect)?;
    trace(&TraceLine {
        client: true,
        text: format!("connected to {host} [{addr}]"),
    });
    let mut stream = Stream::new(sock);
    if let (TlsMode::Implicit, Some(tls)) = (route.tls, &tls) {
        let deadline = cap(Instant::now() + route.timeouts.for_wait(Wait::Greeting));
        stream
            .start_tls(
                tls.config.clone(),
                transport::tls::server_name(host)?,
                deadline,
            )
            .map_err(|e| {
                transport::tls::tls_failure(host, transport::tls::describe_handshake_error(&e))
            })?;
        stream
            .flush(deadline)
            .map_err(|e| transport::tls::tls_failure(host, describe_io(&e)))?;
        trace_tls(&stream, tls.verified(), trace);
    }

    opts.tls_verified = tls.as_ref().is_some_and(|t| t.verified());
    let mut session = Session::new(envelope, opts);
    let mut inbuf = vec![0u8; 16 * 1024];
    let mut body = Some(body);
    let mut deadline = cap(Instant::now() + route.timeouts.for_wait(session.wait()));
    loop {
        if let Some(out) = session.poll_transmit() {
            let n = out.len();
            let write_deadline = cap(Instant::now() + route.timeouts.for_wait(Wait::Command));
            stream
                .write_all(out, write_deadline)
                .map_err(|e| session_io_error(host, &session, &e))?;
            session.consume(n);
            deadline = cap(Instant::now() + route.timeouts.for_wait(session.wait()));
        }
        while let Some(line) = session.poll_trace() {
            trace(&line);
        }
        match session.poll_event() {
            Some(Event::StartTls) => {
                let Some(tls) = &tls else {
                    return Err(Error::Internal("STARTTLS without a TLS config".into()));
                };
                let hs_deadline = cap(Instant::now() + route.timeouts.for_wait(Wait::Command));
                stream
                    .start_tls(
                        tls.config.clone(),
                        transport::tls::server_name(host)?,
                        hs_deadline,
                    )
                    .map_err(|e| {
                        transport::tls::tls_failure(
                            host,
                            transport::tls::describe_handshake_error(&e),
                        )
                    })?;
                trace_tls(&stream, tls.verified(), trace);
                session.tls_established(tls.verified());
                continue;
            }
            Some(Event::SendBody) => {
                let Some(b) = body.take() else {
                    return Err(Error::Internal("body requested twice".into()));
                };
                send_body(&mut stream, &mut session, b, route, cap)?;
                continue;
            }
            Some(Event::Done(report)) => {
                // QUIT is queued (or already sent with the body); the 221 is not awaited.
                if let Some(out) = session.poll_transmit() {
                    let _ = stream.write_all(out, cap(Instant::now() + Duration::from_secs(5)));
                }
                let tls_desc = stream.tls_description();
                stream.close(Instant::now() + Duration::from_secs(2));
                return Ok(Delivered {
                    report,
                    host: host.to_string(),
                    tls: tls_desc,
                    tls_verified: tls.as_ref().is_some_and(|t| t.verified()),
                });
            }
            Some(Event::Failed(error) | Event::TransactionFailed(error)) => {
                if let Some(out) = session.poll_transmit() {
                    let _ = stream.write_all(out, Instant::now() + Duration::from_secs(2));
                }
                while let Some(line) = session.poll_trace() {
                    trace(&line);
                }
                stream.close(Instant::now() + Duration::from_secs(2));
                return Err(Error::Session {
                    host: host.to_string(),
                    error,
                });
            }
            None => {}
        }
        if !session.wants_input() {
            return Err(Error::Internal(
                "session is neither waiting nor finished".into(),
            ));
        }
        match stream.read(&mut inbuf, deadline) {
            Ok(0) => session.handle_eof(),
            Ok(n) => session.handle_input(&inbuf[..n]),
            Err(e) => return Err(session_io_error(host, &session, &e)),
        }
    }
}

fn trace_tls(stream: &Stream, verified: bool, trace: &mut dyn FnMut(&TraceLine)) {
    let desc = stream.tls_description().unwrap_or_else(|| "TLS".into());
    let check = if verified {
        "certificate verified"
    } else {
        "certificate NOT verified"
    };
    trace(&TraceLine {
        client: true,
        text: format!("TLS handshake done: {desc}, {check}"),
    });
}

/// A network error while waiting on `session`: name what was being waited for.
fn session_io_error(host: &str, session: &Session, e: &io::Error) -> Error {
    let what = match session.wait() {
        Wait::Greeting => "waiting for the greeting",
        Wait::Mail => "waiting for the reply to MAIL",
        Wait::Rcpt => "waiting for the reply to RCPT",
        Wait::DataInit => "waiting for the reply to DATA",
        Wait::DataBlock => "sending the message",
        Wait::DataTermination => "waiting for the reply to the end of DATA",
        Wait::Command => "waiting for a reply",
    };
    Error::Network {
        host: host.to_string(),
        detail: format!("{what}: {}", describe_io(e)),
    }
}

/// Stream the body through the encoder in fixed blocks; the last block carries the end of
/// data and any pipelined QUIT in the same write.
fn send_body(
    stream: &mut Stream,
    session: &mut Session,
    body: Body<'_>,
    route: &Route,
    cap: impl Fn(Instant) -> Instant,
) -> Result<(), Error> {
    let host = route.host.as_str();
    let block_timeout = route.timeouts.for_wait(Wait::DataBlock);
    let mut encoder = BodyEncoder::new(body.dot_ends_input);
    let mut out = Vec::with_capacity(2 * BLOCK + 8);
    let mut write = |out: &mut Vec<u8>| -> Result<(), Error> {
        stream
            .write_all(out, cap(Instant::now() + block_timeout))
            .map_err(|e| Error::Network {
                host: host.to_string(),
                detail: format!("sending the message: {}", describe_io(&e)),
            })?;
        out.clear();
        Ok(())
    };
    for piece in body.head.chunks(BLOCK) {
        encoder.encode(piece, &mut out);
        if out.len() >= BLOCK {
            write(&mut out)?;
        }
    }
    let mut inbuf = vec![0u8; BLOCK];
    while !encoder.input_ended() {
        let n = match body.rest.read(&mut inbuf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Never end the data with a dot here: the server must discard the partial message.
            Err(e) => return Err(Error::Io(format!("reading the message: {e}"))),
        };
        encoder.encode(&inbuf[..n], &mut out);
        if out.len() >= BLOCK {
            write(&mut out)?;
        }
    }
    encoder.finish(&mut out);
    session.body_sent();
    if let Some(quit) = session.poll_transmit() {
        out.extend_from_slice(quit);
        let n = quit.len();
        session.consume(n);
    }
    write(&mut out)
}
