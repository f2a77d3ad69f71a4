//! A connection that is cleartext or TLS, read and written under deadlines.
//!
//! Deadlines, not per-read timeouts: each wait has an instant after which it fails, so a
//! server trickling a byte at a time cannot hold the process past it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use super::mismatch::{self, Mismatch};
use super::wait;

/// A connection to one server.
pub struct Stream {
    sock: TcpStream,
    tls: Option<Box<ClientConnection>>,
}

/// Acknowledge what arrives at once instead of after the delayed-ACK timer (40 ms on
/// Linux). A server that writes a multi-line or pipelined reply one line at a time with
/// Nagle's algorithm on holds each line until the previous one is acknowledged; with
/// delayed ACKs every such reply costs 40 ms. Linux leaves quick-ack mode on its own, so it
/// is set again before each read.
#[cfg(target_os = "linux")]
fn quick_ack(sock: &TcpStream) {
    let _ = rustix::net::sockopt::set_tcp_quickack(sock, true);
}

#[cfg(not(target_os = "linux"))]
fn quick_ack(_sock: &TcpStream) {}

/// The socket seen through a deadline: each call waits ([`wait`]) for the socket to be
/// ready, never past `deadline`.
struct Deadlined<'a> {
    sock: &'a TcpStream,
    deadline: Instant,
}

impl Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        quick_ack(self.sock);
        loop {
            let mut sock = self.sock;
            match sock.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait::readable(self.sock, self.deadline)?;
                    quick_ack(self.sock);
                }
                other => return other,
            }
        }
    }
}

impl Write for Deadlined<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            let mut sock = self.sock;
            match sock.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait::writable(self.sock, self.deadline)?
                }
                other => return other,
            }
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        loop {
            let mut sock = self.sock;
            match sock.write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait::writable(self.sock, self.deadline)?
                }
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Stream {
    pub fn new(sock: TcpStream) -> Stream {
        // Flights are written whole; Nagle would only delay the last segment of each.
        let _ = sock.set_nodelay(true);
        // Waits are the deadlined reads and writes' (poll), never the kernel's.
        let _ = sock.set_nonblocking(true);
        Stream { sock, tls: None }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The negotiated protocol version and cipher suite, for the trace and the log.
    pub fn tls_description(&self) -> Option<String> {
        let conn = self.tls.as_ref()?;
        let version = conn.protocol_version()?;
        let suite = conn.negotiated_cipher_suite()?;
        Some(format!("{version:?} {:?}", suite.suite()))
    }

    /// The server's end-entity certificate, DER.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        let conn = self.tls.as_ref()?;
        conn.peer_certificates()?
            .first()
            .map(|c| c.as_ref().to_vec())
    }

    /// Run the TLS handshake over this connection. Nothing read before it is kept: the
    /// caller's reply parser was emptied, and this reads only TLS records.
    ///
    /// For TLS 1.3 the client's Finished is left queued, so the first write after the
    /// handshake (EHLO) leaves in the same flight (one round trip saved).
    pub fn start_tls(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        deadline: Instant,
    ) -> io::Result<()> {
        self.handshake(config, name, deadline, false)
    }

    /// [`Stream::start_tls`] on a fresh connection (implicit TLS, RFC 8314 §3.3): a server
    /// that greets in plain text instead is named ([`Mismatch::PlainText`]) rather than
    /// fed to rustls as a corrupt record.
    pub fn start_implicit_tls(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        deadline: Instant,
    ) -> io::Result<()> {
        self.handshake(config, name, deadline, true)
    }

    fn handshake(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        deadline: Instant,
        mut look_first: bool,
    ) -> io::Result<()> {
        let mut conn = ClientConnection::new(config, name).map_err(tls_error)?;
        let mut io = Deadlined {
            sock: &self.sock,
            deadline,
        };
        while conn.is_handshaking() {
            while conn.wants_write() {
                conn.write_tls(&mut io)?;
            }
            if !conn.is_handshaking() {
                break;
            }
            if std::mem::take(&mut look_first)
                && let Some(line) = mismatch::plaintext_reply(&self.peek(deadline)?)
            {
                return Err(Mismatch::PlainText(line).into_io());
            }
            if conn.read_tls(&mut io)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed during the TLS handshake",
                ));
            }
            if let Err(e) = conn.process_new_packets() {
                // Tell the server why (the alert is queued), then give up.
                let _ = conn.write_tls(&mut io);
                return Err(tls_error(e));
            }
        }
        self.tls = Some(Box::new(conn));
        Ok(())
    }

    /// The socket, for a wait that watches it alongside another.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.sock.as_fd()
    }

    /// The first bytes waiting to be read, left in place; empty at the end of the stream.
    pub fn peek(&self, deadline: Instant) -> io::Result<Vec<u8>> {
        let mut head = [0u8; 128];
        loop {
            match self.sock.peek(&mut head) {
                Ok(n) => return Ok(head[..n].to_vec()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait::readable(&self.sock, deadline)?
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Send whatever TLS has queued (the client's Finished after an implicit-TLS handshake,
    /// where the server speaks first).
    pub fn flush(&mut self, deadline: Instant) -> io::Result<()> {
        let mut io = Deadlined {
            sock: &self.sock,
            deadline,
        };
        if let Some(conn) = self.tls.as_mut() {
            while conn.wants_write() {
                conn.write_tls(&mut io)?;
            }
        }
        Ok(())
    }

    /// Read what is available, waiting until `deadline`. `Ok(0)` is the end of the stream.
    pub fn read(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        let mut io = Deadlined {
            sock: &self.sock,
            deadline,
        };
        let Some(conn) = self.tls.as_mut() else {
            return io.read(buf);
        };
        loop {
            match conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if conn.read_tls(&mut io)? == 0 {
                return Ok(0);
            }
            conn.process_new_packets().map_err(tls_error)?;
            while conn.wants_write() {
                conn.write_tls(&mut io)?;
            }
        }
    }

    /// Write all of `data` before `deadline`. One call is one flight.
    pub fn write_all(&mut self, data: &[u8], deadline: Instant) -> io::Result<()> {
        let mut io = Deadlined {
            sock: &self.sock,
            deadline,
        };
        let Some(conn) = self.tls.as_mut() else {
            return io.write_all(data);
        };
        // One record's worth at a time, each written as soon as it is sealed: a server that
        // reads record by record gets each one as early as possible (as curl does it).
        for piece in data.chunks(16 * 1024) {
            let mut rest = piece;
            while !rest.is_empty() {
                let n = conn.writer().write(rest)?;
                rest = &rest[n..];
                while conn.wants_write() {
                    conn.write_tls(&mut io)?;
                }
            }
        }
        while conn.wants_write() {
            conn.write_tls(&mut io)?;
        }
        Ok(())
    }

    /// Close politely: TLS close_notify when TLS is up, then shut the socket.
    ///
    /// Called only once the last reply needed is read. A close_notify sent with QUIT, before
    /// the replies, is often left unread by a server that closes after its 221 (OpenSSL
    /// reads record by record); its kernel then answers with a reset, and a reset can
    /// discard the replies still on their way here, the 250 for the message among them.
    pub fn close(mut self, deadline: Instant) {
        if let Some(conn) = self.tls.as_mut() {
            conn.send_close_notify();
            let mut io = Deadlined {
                sock: &self.sock,
                deadline,
            };
            while conn.wants_write() {
                if conn.write_tls(&mut io).is_err() {
                    break;
                }
            }
        }
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}
