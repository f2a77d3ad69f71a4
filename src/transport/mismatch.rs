//! The wrong kind of port: STARTTLS asked of a port that speaks TLS from the first byte
//! (465), or implicit TLS asked of one that greets in plain text (587, 25). Each is
//! recognised by the first bytes the server sends (RFC 8446 §5.1: a record starts with its
//! content type and a 0x03 major version; RFC 5321 §4.2: a reply starts with three digits)
//! and named with the setting that fixes it, instead of rustls' "corrupt message" or a
//! wait for a greeting that never comes.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use super::refusal::Syntax;

/// How long a server may stay silent after the connection before we look into why; a
/// relay greets at once, a port that waits for a TLS ClientHello never does.
pub const GREETING_PATIENCE: Duration = Duration::from_secs(2);

/// How long the look (a second connection that sends a ClientHello) may take.
pub const PROBE_LIMIT: Duration = Duration::from_secs(5);

/// Whether `head` starts a TLS record a server sends first: a handshake (ServerHello) or
/// an alert, with a 3.x version.
pub fn is_tls_record(head: &[u8]) -> bool {
    matches!(head, [0x15 | 0x16, 0x03, ..])
}

/// The first line of an SMTP reply, when `head` starts with one (three digits, then a
/// space, a hyphen or the end of what came): a server greeting in plain text. Escaped
/// and cut short, as it goes to a terminal.
pub fn plaintext_reply(head: &[u8]) -> Option<String> {
    let digits = head.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if !matches!(head.get(3), None | Some(b' ' | b'-' | b'\r' | b'\n')) {
        return None;
    }
    let line = head.split(|&b| b == b'\r' || b == b'\n').next()?;
    let text: String = String::from_utf8_lossy(line)
        .chars()
        .flat_map(char::escape_default)
        .take(72)
        .collect();
    Some(text)
}

/// Which mismatch it was; carried inside the [`io::Error`] of a failed handshake or wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// Implicit TLS was asked for and the server greeted in plain text, this line.
    PlainText(String),
    /// STARTTLS (or no TLS) was asked for and the server speaks TLS from the first byte.
    TlsFirst,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::PlainText(line) => write!(f, "answered in plain text (\"{line}\")"),
            Mismatch::TlsFirst => f.write_str("expects TLS from the first byte"),
        }
    }
}

impl std::error::Error for Mismatch {}

impl Mismatch {
    /// The mismatch inside `e`, if it is one.
    pub fn of(e: &io::Error) -> Option<&Mismatch> {
        e.get_ref()?.downcast_ref::<Mismatch>()
    }

    /// The whole story for the person: what the port did and the line that fixes it.
    pub fn explain(&self, port: u16, syntax: Syntax) -> String {
        match self {
            Mismatch::PlainText(line) => format!(
                "port {port} answered in plain text (\"{line}\"): it expects STARTTLS, not TLS \
                 from the first byte; use {}",
                syntax.tls_line(false)
            ),
            Mismatch::TlsFirst => format!(
                "port {port} expects TLS from the first byte: use {}",
                syntax.tls_line(true)
            ),
        }
    }

    pub fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

/// Whether the server at `addr` answers a TLS ClientHello with a TLS record, on a
/// connection of its own, before `deadline`. Gives up (false) as soon as `greeting`, the
/// connection that waits for the greeting, has something to read: the server was only slow.
///
/// The connection that waits for the greeting is left alone: writing a ClientHello on it
/// would be garbage to a plain-text server that is only slow to greet (and a pregreet
/// violation to Postfix's postscreen). A server that is slow to greet sees one extra
/// connection that sends a ClientHello and is dropped; the real one goes on waiting. A
/// server that serves one connection at a time never answers the probe, and the wait
/// goes on as it would have.
pub fn answers_tls(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    deadline: Instant,
    greeting: BorrowedFd<'_>,
) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return false;
    }
    let Ok(mut sock) = TcpStream::connect_timeout(&addr, left) else {
        return false;
    };
    let Ok(mut conn) = ClientConnection::new(config, name) else {
        return false;
    };
    let mut hello = Vec::new();
    while conn.wants_write() {
        if conn.write_tls(&mut hello).is_err() {
            return false;
        }
    }
    // A ClientHello is far smaller than a socket's send buffer: one write, no wait.
    if sock.set_nonblocking(true).is_err() || sock.write_all(&hello).is_err() {
        return false;
    }
    let mut head = [0u8; 2];
    let mut got = 0;
    while got < head.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut fds = [
            PollFd::new(&sock, PollFlags::IN),
            PollFd::new(&greeting, PollFlags::IN),
        ];
        let timeout = Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        });
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => return false,
        }
        if !fds[1].revents().is_empty() {
            return false;
        }
        match sock.read(&mut head[got..]) {
            Ok(0) => return false,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
    }
    let _ = sock.shutdown(std::net::Shutdown::Both);
    is_tls_record(&head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_records_are_told_from_replies() {
        // A ServerHello record header and a fatal alert (RFC 8446 §5.1, §6).
        assert!(is_tls_record(&[0x16, 0x03, 0x03, 0x00, 0x7a]));
        assert!(is_tls_record(&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46]));
        assert!(!is_tls_record(b"220 mx.example.org ESMTP\r\n"));
        assert!(!is_tls_record(&[0x16]));
        assert!(
            !is_tls_record(&[0x17, 0x03, 0x03]),
            "application data never comes first"
        );
    }

    #[test]
    fn a_greeting_is_recognised_and_shown_safely() {
        assert_eq!(
            plaintext_reply(b"220 mx.example.org ESMTP Postfix\r\n").as_deref(),
            Some("220 mx.example.org ESMTP Postfix")
        );
        assert_eq!(
            plaintext_reply(b"220-first\r\n220 second\r\n").as_deref(),
            Some("220-first")
        );
        // What arrived so far, even without its end of line.
        assert_eq!(plaintext_reply(b"554").as_deref(), Some("554"));
        assert_eq!(
            plaintext_reply(b"220 a\x1b[2Jb\r\n").as_deref(),
            Some("220 a\\u{1b}[2Jb")
        );
        let long = format!("220 {}\r\n", "x".repeat(200));
        assert_eq!(plaintext_reply(long.as_bytes()).unwrap().len(), 72);
        assert_eq!(plaintext_reply(&[0x16, 0x03, 0x03, 0x00]), None);
        assert_eq!(plaintext_reply(b"22"), None);
        assert_eq!(plaintext_reply(b"220x"), None);
        assert_eq!(plaintext_reply(b"HTTP/1.1 400"), None);
    }

    #[test]
    fn each_mismatch_names_the_port_and_the_fix_in_the_users_syntax() {
        let plain = Mismatch::PlainText("220 mx ESMTP".into());
        assert_eq!(
            plain.explain(587, Syntax::Toml),
            "port 587 answered in plain text (\"220 mx ESMTP\"): it expects STARTTLS, not \
             TLS from the first byte; use tls = \"starttls\""
        );
        assert!(
            plain
                .explain(587, Syntax::Msmtprc)
                .ends_with("use tls_starttls on")
        );
        assert_eq!(
            Mismatch::TlsFirst.explain(465, Syntax::Toml),
            "port 465 expects TLS from the first byte: use tls = \"implicit\""
        );
        assert!(
            Mismatch::TlsFirst
                .explain(465, Syntax::Flag)
                .ends_with("use --tls implicit")
        );
    }
}
