//! One connection to one server, driving a sans-IO machine ([`Engine`]: the session or the
//! probe): connect, implicit TLS, writing each flight, reading under the deadline the
//! machine's wait gives, and the STARTTLS upgrade. Both machines run on this one driver.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::policy::dane::{self, DaneTls};
use super::route::Route;
use crate::error::Error;
use crate::smtp::{Engine, TraceLine, Wait};
use crate::transport::mismatch::{self, GREETING_PATIENCE, Mismatch, PROBE_LIMIT};
use crate::transport::refusal::Syntax;
use crate::transport::{self, Stream, TlsMode, describe_io, tls};

/// A connection under one route's rules.
pub struct Link<'r> {
    pub route: &'r Route,
    pub stream: Stream,
    /// The address connected to.
    pub addr: SocketAddr,
    tls: Option<transport::Tls>,
    /// DANE's verifier, when DANE authenticates this server: it knows which record matched.
    dane: Option<DaneTls>,
    /// The deadline for the whole session, when one is set.
    overall: Option<Instant>,
    inbuf: Vec<u8>,
}

impl<'r> Link<'r> {
    /// Connect (to the route's addresses, or its host name) and, for implicit TLS, run the
    /// handshake before the server says anything.
    pub fn open(route: &'r Route, trace: &mut dyn FnMut(&TraceLine)) -> Result<Link<'r>, Error> {
        let overall = route.timeouts.total.map(|t| Instant::now() + t);
        let host = route.host.as_str();
        let (tls, dane) = match &route.dane {
            Some(d) if route.tls != TlsMode::Off => {
                let dane = dane::client_config(&d.records, &d.names)?;
                (Some(transport::Tls::other(dane.config.clone())), Some(dane))
            }
            _ => {
                let tls = route
                    .tls_settings_for_handshake()
                    .map(|settings| tls::client_config(&settings))
                    .transpose()?;
                (tls, None)
            }
        };
        let (sock, addr) = match &route.addrs {
            Some(addrs) => transport::connect_addrs(host, addrs, route.timeouts.connect)?,
            None => transport::connect(host, route.port, route.timeouts.connect)?,
        };
        trace(&TraceLine {
            client: true,
            text: format!("connected to {host} [{addr}]"),
        });
        let mut link = Link {
            route,
            stream: Stream::new(sock),
            addr,
            tls,
            dane,
            overall,
            inbuf: vec![0u8; 16 * 1024],
        };
        if route.tls == TlsMode::Implicit {
            link.handshake(Wait::Greeting, trace)?;
        } else if route.addrs.is_none() {
            link.watch_greeting(trace)?;
        }
        Ok(link)
    }

    /// How advice is written for this route.
    fn syntax(&self) -> Syntax {
        self.route.tls_settings.advice.unwrap_or(Syntax::Toml)
    }

    /// A relay's port that speaks TLS from the first byte never greets: it waits for a
    /// ClientHello, and the session would wait out the greeting timeout (5 minutes,
    /// RFC 5321 §4.5.3.2.1). A server greets at once, so after [`GREETING_PATIENCE`] of
    /// silence a second connection sends a ClientHello; a TLS record in answer names the
    /// mistake, anything else (a slow server) leaves this connection waiting as before.
    /// A TLS record that arrives in place of the greeting is named too.
    ///
    /// Only for relays: the user chose the port. An MX host's port 25 never speaks TLS
    /// first, and a slow one should not get a stray ClientHello.
    ///
    /// The error is the network error the silence would have ended in (75, and
    /// opportunistic TLS does not try again in cleartext), only sooner and in words.
    fn watch_greeting(&self, trace: &mut dyn FnMut(&TraceLine)) -> Result<(), Error> {
        let greeting = self.deadline(Wait::Greeting);
        let patience = greeting.min(Instant::now() + GREETING_PATIENCE);
        let tls_first = match self.stream.peek(patience) {
            Ok(head) => mismatch::is_tls_record(&head),
            Err(e) if e.kind() == io::ErrorKind::TimedOut && patience < greeting => {
                trace(&TraceLine {
                    client: true,
                    text: format!(
                        "no greeting after {} s: is this a TLS port? asking with a ClientHello \
                         on a second connection",
                        GREETING_PATIENCE.as_secs()
                    ),
                });
                let answered = self.answers_tls(greeting.min(Instant::now() + PROBE_LIMIT));
                if !answered {
                    trace(&TraceLine {
                        client: true,
                        text: "no TLS answer there; waiting for the greeting".into(),
                    });
                }
                answered
            }
            // The session's own read reports it.
            Err(_) => false,
        };
        if tls_first {
            return Err(Error::network_text(
                &self.route.host,
                Mismatch::TlsFirst.explain(self.addr.port(), self.syntax()),
            ));
        }
        Ok(())
    }

    /// Whether the server answers a ClientHello on a connection of its own before
    /// `deadline` (and before this connection's greeting).
    fn answers_tls(&self, deadline: Instant) -> bool {
        let config = match &self.tls {
            Some(tls) => tls.config.clone(),
            None => match tls::client_config(&transport::TlsSettings::default()) {
                Ok(tls) => tls.config,
                Err(_) => return false,
            },
        };
        let Ok(name) = self.route.tls_name() else {
            return false;
        };
        mismatch::answers_tls(self.addr, config, name, deadline, self.stream.fd())
    }

    /// `deadline`, or the session's overall deadline when that comes first.
    pub fn cap(&self, deadline: Instant) -> Instant {
        self.overall.map_or(deadline, |o| o.min(deadline))
    }

    /// The deadline for what `wait` waits for, from now.
    pub fn deadline(&self, wait: Wait) -> Instant {
        self.cap(Instant::now() + self.route.timeouts.for_wait(wait))
    }

    /// Whether the certificate of the TLS in use was verified (chain and name, or pin).
    pub fn tls_verified(&self) -> bool {
        match &self.dane {
            Some(dane) => dane.matched().is_some(),
            None => self.tls.as_ref().is_some_and(|t| t.verified()),
        }
    }

    /// The TLS policy that applied, for `-v` and the log: the DANE record that matched,
    /// or what the route says.
    pub fn policy(&self) -> Option<String> {
        match self.dane.as_ref().and_then(DaneTls::matched) {
            Some(matched) => Some(matched.to_string()),
            None => self.route.policy.clone(),
        }
    }

    /// Why the certificate of the TLS in use did not check out, when the handshake went on
    /// without it (opportunistic TLS, or verification turned off).
    pub fn tls_unverified_because(&self) -> Option<String> {
        self.tls.as_ref().and_then(|t| t.unverified_because())
    }

    /// Write the engine's next flight, if it has one. Returns whether it wrote.
    pub fn transmit<E: Engine>(&mut self, engine: &mut E) -> Result<bool, Error> {
        let Some(out) = engine.poll_transmit() else {
            return Ok(false);
        };
        let n = out.len();
        let deadline = self.deadline(Wait::Command);
        self.stream
            .write_all(out, deadline)
            .map_err(|e| self.io_error(engine.wait(), &e))?;
        engine.consume(n);
        Ok(true)
    }

    /// Read what the server sent, until `deadline`, into the engine.
    pub fn receive<E: Engine>(&mut self, engine: &mut E, deadline: Instant) -> Result<(), Error> {
        match self.stream.read(&mut self.inbuf, deadline) {
            Ok(0) => engine.handle_eof(),
            Ok(n) => engine.handle_input(&self.inbuf[..n]),
            Err(e) => return Err(self.io_error(engine.wait(), &e)),
        }
        Ok(())
    }

    /// The engine's trace lines so far.
    pub fn drain_trace<E: Engine>(engine: &mut E, trace: &mut dyn FnMut(&TraceLine)) {
        while let Some(line) = engine.poll_trace() {
            trace(&line);
        }
    }

    /// STARTTLS was answered 220: run the handshake and tell the engine.
    pub fn start_tls<E: Engine>(
        &mut self,
        engine: &mut E,
        trace: &mut dyn FnMut(&TraceLine),
    ) -> Result<(), Error> {
        self.handshake(Wait::Command, trace)?;
        engine.tls_established(self.tls_verified());
        Ok(())
    }

    fn handshake(&mut self, wait: Wait, trace: &mut dyn FnMut(&TraceLine)) -> Result<(), Error> {
        let host = self.route.host.as_str();
        let Some(tls) = &self.tls else {
            return Err(Error::Internal("TLS without a TLS config".into()));
        };
        let deadline = self.deadline(wait);
        let name = self.route.tls_name()?;
        let config = tls.config.clone();
        let started = if self.route.tls == TlsMode::Implicit {
            self.stream.start_implicit_tls(config, name, deadline)
        } else {
            self.stream.start_tls(config, name, deadline)
        };
        started.map_err(|e| {
            let detail = match Mismatch::of(&e) {
                Some(mismatch) => mismatch.explain(self.addr.port(), self.syntax()),
                None => tls.describe_failure(&e, host),
            };
            tls::tls_failure(host, detail)
        })?;
        // What TLS queued after the handshake (the client's Finished when the server
        // speaks first, as with implicit TLS).
        if self.route.tls == TlsMode::Implicit {
            self.stream
                .flush(deadline)
                .map_err(|e| tls::tls_failure(host, describe_io(&e)))?;
        }
        let desc = self
            .stream
            .tls_description()
            .unwrap_or_else(|| "TLS".into());
        let check = match self.dane.as_ref().and_then(DaneTls::matched) {
            Some(matched) => matched.to_string(),
            None if tls.verified() => "certificate verified".into(),
            None => "certificate NOT verified".into(),
        };
        trace(&TraceLine {
            client: true,
            text: format!("TLS handshake done: {desc}, {check}"),
        });
        Ok(())
    }

    /// Write what the engine still has to say (QUIT), best effort, without waiting for
    /// a reply.
    pub fn say_last<E: Engine>(&mut self, engine: &mut E, within: Duration) {
        if let Some(out) = engine.poll_transmit() {
            let n = out.len();
            let _ = self
                .stream
                .write_all(out, self.cap(Instant::now() + within));
            engine.consume(n);
        }
    }

    /// Close politely (TLS close_notify, then the socket).
    pub fn close(self) {
        self.stream.close(Instant::now() + Duration::from_secs(2));
    }

    /// A network error while waiting for `wait`: name what was being waited for.
    pub fn io_error(&self, wait: Wait, e: &io::Error) -> Error {
        let what = match wait {
            Wait::Greeting => "waiting for the greeting",
            Wait::Mail => "waiting for the reply to MAIL",
            Wait::Rcpt => "waiting for the reply to RCPT",
            Wait::DataInit => "waiting for the reply to DATA",
            Wait::DataBlock => "sending the message",
            Wait::DataTermination => "waiting for the reply to the end of DATA",
            Wait::Command => "waiting for a reply",
        };
        Error::network(&self.route.host, what, crate::os_error::owned(e))
    }
}
