//! What a transport needs of a sans-IO machine: both the client session and the
//! diagnostic probe are fed bytes and asked for bytes the same way, so one driver
//! (`delivery::link`) runs either. What they hand to the driver (the flight to write,
//! events, trace lines) is kept by one [`Outbox`], so the polling is written once.

use std::collections::VecDeque;
use std::time::Duration;

use super::command::{Command, UnsafeArgument};
use super::flight::Flight;
use super::reply::Reply;

/// A sans-IO SMTP client machine.
pub trait Engine {
    /// What the machine reports to its caller: a session's or a probe's event.
    type Event;

    /// Where the machine puts what the driver collects.
    fn outbox(&self) -> &Outbox<Self::Event>;
    fn outbox_mut(&mut self) -> &mut Outbox<Self::Event>;

    /// Feed bytes read from the server.
    fn handle_input(&mut self, data: &[u8]);
    /// The server closed the connection.
    fn handle_eof(&mut self);
    /// Whether the machine waits for bytes from the server.
    fn wants_input(&self) -> bool;
    /// What it waits for, which decides the timeout (RFC 5321 §4.5.3.2).
    fn wait(&self) -> Wait;
    /// The TLS handshake it asked for succeeded; `verified`: the certificate checked out.
    fn tls_established(&mut self, verified: bool);

    /// Bytes to write next: everything queued so far, one flight (RFC 2920 §3.1).
    fn poll_transmit(&self) -> Option<&[u8]> {
        self.outbox().out.pending()
    }
    /// `n` bytes of [`Engine::poll_transmit`] were written.
    fn consume(&mut self, n: usize) {
        self.outbox_mut().out.consume(n);
    }
    /// The next event, oldest first.
    fn poll_event(&mut self) -> Option<Self::Event> {
        self.outbox_mut().events.pop_front()
    }
    /// The next line of the `C:`/`S:` trace.
    fn poll_trace(&mut self) -> Option<TraceLine> {
        self.outbox_mut().trace.pop_front()
    }
}

/// The bytes, events and trace lines a machine has for its driver.
#[derive(Debug)]
pub struct Outbox<E> {
    out: Flight,
    events: VecDeque<E>,
    trace: VecDeque<TraceLine>,
    /// Whether trace lines are kept at all (`-v`, `--serverinfo`).
    tracing: bool,
}

impl<E> Outbox<E> {
    pub fn new(tracing: bool) -> Outbox<E> {
        Outbox {
            out: Flight::default(),
            events: VecDeque::new(),
            trace: VecDeque::new(),
            tracing,
        }
    }

    /// Queue `command` for the next flight, shown redacted in the trace; refused when an
    /// argument would smuggle a line end onto the wire.
    pub fn write(&mut self, command: &Command) -> Result<(), UnsafeArgument> {
        command.encode(self.out.buf())?;
        if self.tracing {
            self.trace.push_back(TraceLine {
                client: true,
                text: command.redacted(),
            });
        }
        Ok(())
    }

    /// Queue bytes that are not a command (the end of data, a chunk), untraced.
    pub fn write_raw(&mut self) -> &mut Vec<u8> {
        self.out.buf()
    }

    /// QUIT after a failure: best effort, and not traced (the failure is what is shown).
    pub fn quit_quietly(&mut self) {
        // QUIT has no argument, so it always encodes.
        let _ = Command::Quit.encode(self.out.buf());
    }

    pub fn event(&mut self, event: E) {
        self.events.push_back(event);
    }

    /// The server's reply, one trace line per reply line.
    pub fn trace_reply(&mut self, reply: &Reply) {
        if self.tracing {
            self.trace.extend(TraceLine::reply(reply));
        }
    }

    /// A note of the client's own, shown among its commands.
    pub fn note(&mut self, text: &str) {
        if self.tracing {
            self.trace.push_back(TraceLine {
                client: true,
                text: text.into(),
            });
        }
    }

    /// Whether trace lines are kept: a caller need not build a note nobody sees.
    pub fn tracing(&self) -> bool {
        self.tracing
    }
}

/// Which of RFC 5321 §4.5.3.2's timeouts applies to what a machine waits for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Wait {
    Greeting,
    Mail,
    Rcpt,
    DataInit,
    /// Sending one block of the body.
    DataBlock,
    DataTermination,
    /// Any other command (EHLO, STARTTLS, AUTH).
    Command,
}

impl Wait {
    /// The RFC's minimum timeout for this wait.
    pub fn default_timeout(self) -> Duration {
        let minutes = match self {
            Wait::Greeting | Wait::Mail | Wait::Rcpt | Wait::Command => 5,
            Wait::DataInit => 2,
            Wait::DataBlock => 3,
            Wait::DataTermination => 10,
        };
        Duration::from_secs(minutes * 60)
    }
}

/// One line of the trace; `client` lines were sent, the others received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceLine {
    pub client: bool,
    pub text: String,
}

impl TraceLine {
    /// A reply as the server sent it, one line each: `250-first`, ..., `250 last`.
    pub fn reply(reply: &Reply) -> impl Iterator<Item = TraceLine> + '_ {
        let n = reply.lines.len();
        reply.lines.iter().enumerate().map(move |(i, line)| {
            let sep = if i + 1 == n { ' ' } else { '-' };
            TraceLine {
                client: false,
                text: format!("{}{}{}", reply.code, sep, line),
            }
        })
    }
}
