//! What a transport needs of a sans-IO machine: both the client session and the
//! diagnostic probe are fed bytes and asked for bytes the same way, so one driver
//! (`delivery::link`) runs either.

use super::session::{TraceLine, Wait};

/// A sans-IO SMTP client machine.
pub trait Engine {
    /// Feed bytes read from the server.
    fn handle_input(&mut self, data: &[u8]);
    /// The server closed the connection.
    fn handle_eof(&mut self);
    /// Bytes to write next: one flight (RFC 2920 §3.1) is one buffer.
    fn poll_transmit(&self) -> Option<&[u8]>;
    /// `n` bytes of [`Engine::poll_transmit`] were written.
    fn consume(&mut self, n: usize);
    /// The next line of the `C:`/`S:` trace.
    fn poll_trace(&mut self) -> Option<TraceLine>;
    /// Whether the machine waits for bytes from the server.
    fn wants_input(&self) -> bool;
    /// What it waits for, which decides the timeout (RFC 5321 §4.5.3.2).
    fn wait(&self) -> Wait;
    /// The TLS handshake it asked for succeeded; `verified`: the certificate checked out.
    fn tls_established(&mut self, verified: bool);
}

impl Engine for super::Session {
    fn handle_input(&mut self, data: &[u8]) {
        super::Session::handle_input(self, data)
    }
    fn handle_eof(&mut self) {
        super::Session::handle_eof(self)
    }
    fn poll_transmit(&self) -> Option<&[u8]> {
        super::Session::poll_transmit(self)
    }
    fn consume(&mut self, n: usize) {
        super::Session::consume(self, n)
    }
    fn poll_trace(&mut self) -> Option<TraceLine> {
        super::Session::poll_trace(self)
    }
    fn wants_input(&self) -> bool {
        super::Session::wants_input(self)
    }
    fn wait(&self) -> Wait {
        super::Session::wait(self)
    }
    fn tls_established(&mut self, verified: bool) {
        super::Session::tls_established(self, verified)
    }
}

impl Engine for super::probe::Probe {
    fn handle_input(&mut self, data: &[u8]) {
        super::probe::Probe::handle_input(self, data)
    }
    fn handle_eof(&mut self) {
        super::probe::Probe::handle_eof(self)
    }
    fn poll_transmit(&self) -> Option<&[u8]> {
        super::probe::Probe::poll_transmit(self)
    }
    fn consume(&mut self, n: usize) {
        super::probe::Probe::consume(self, n)
    }
    fn poll_trace(&mut self) -> Option<TraceLine> {
        super::probe::Probe::poll_trace(self)
    }
    fn wants_input(&self) -> bool {
        super::probe::Probe::wants_input(self)
    }
    fn wait(&self) -> Wait {
        Wait::Command
    }
    fn tls_established(&mut self, _verified: bool) {
        super::probe::Probe::tls_established(self)
    }
}
