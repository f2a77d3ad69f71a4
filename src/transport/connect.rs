//! TCP connection set-up with a timeout, trying every address of the host in turn.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::error::Error;

/// Resolve `host` with the system resolver (relay route) and connect to the first address
/// that answers within `timeout` each.
pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<(TcpStream, SocketAddr), Error> {
    connect_addrs(host, &resolve(host, port)?, timeout)
}

/// The addresses of `host` from the system resolver, in its order; never empty.
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    let addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return Err(resolve_error(host, &e)),
    };
    if addrs.is_empty() {
        return Err(Error::NoHost {
            host: host.into(),
            detail: "host name has no address".into(),
        });
    }
    Ok(addrs)
}

/// Connect to the first of `addrs` that answers.
pub fn connect_addrs(
    host: &str,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), Error> {
    let mut last = None;
    for addr in addrs {
        match connect_one(addr, timeout) {
            Ok(s) => return Ok((s, *addr)),
            Err(e) => last = Some((addr, e)),
        }
    }
    let (addr, e) = last.ok_or_else(|| Error::NoHost {
        host: host.into(),
        detail: "no address to connect to".into(),
    })?;
    Err(Error::network(host, format!("connect to {addr}"), e))
}

/// A non-blocking connect that waits until its deadline ([`super::wait`]).
fn connect_one(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let deadline = Instant::now() + timeout;
    let sock = Socket::new(
        Domain::for_address(*addr),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    sock.set_nonblocking(true)?;
    match sock.connect(&(*addr).into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
            super::wait::writable(&sock, deadline)?;
            if let Some(e) = sock.take_error()? {
                return Err(e);
            }
        }
        Err(e) => return Err(e),
    }
    Ok(sock.into())
}

/// getaddrinfo's failures: "not known" is permanent (EX_NOHOST), anything else (EAI_AGAIN,
/// no network) is temporary.
fn resolve_error(host: &str, e: &io::Error) -> Error {
    let text = e.to_string();
    let permanent = text.contains("not known") || text.contains("No address associated");
    if permanent {
        Error::NoHost {
            host: host.into(),
            detail: format!("cannot resolve host name: {text}"),
        }
    } else {
        Error::network_text(host, format!("cannot resolve host name: {text}"))
    }
}

/// An I/O error in words for a person: "connection refused", "timed out".
pub fn describe_io(e: &io::Error) -> String {
    crate::os_error::describe_network(e)
}
