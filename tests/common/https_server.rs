//! An HTTPS server for MTA-STS policy fetches (RFC 8461 §3.3): 127.0.0.1, a random port,
//! the certificate of a [`Pki`] (made for `mta-sts.DOMAIN` by the test), one request per
//! connection, answered from a [`Reply`] the test can change at any time. It records each
//! request and each failed handshake, and stops (the port then refuses connections) on
//! [`PolicyServer::stop`] or when dropped.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection};

use super::pki::Pki;

/// The longest the server runs, whatever the test does.
const LIFETIME: Duration = Duration::from_secs(60);

/// What to answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200, `text/plain`, framed by Content-Length.
    Policy(String),
    /// 200, `text/plain; charset=utf-8`, chunked in pieces of at most this many bytes.
    Chunked(String, usize),
    /// 200 with this Content-Type (`None`: no such header) and body.
    Typed(Option<String>, String),
    /// This status (a 3xx) with `Location`.
    Redirect(u16, String),
    /// This status with a short text/plain body.
    Status(u16),
    /// 200, `text/plain`, Content-Length and body of this many bytes.
    Oversized(usize),
    /// 200, `text/plain`, chunked, this many bytes in 1 KiB chunks: no length up front.
    OversizedChunked(usize),
    /// 200, `text/plain`, no length: the body ends with the connection.
    UntilClose(String),
    /// Read the request, then say nothing until the client gives up.
    Silent,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    pub head: String,
}

pub struct PolicyServer {
    addr: SocketAddr,
    reply: Arc<Mutex<Reply>>,
    requests: Arc<Mutex<Vec<Request>>>,
    handshake_failures: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PolicyServer {
    /// Serve `reply` with `pki`'s certificate on 127.0.0.1.
    pub fn start(pki: &Pki, reply: Reply) -> PolicyServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local address");
        let config = pki.server_config();
        let reply = Arc::new(Mutex::new(reply));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handshake_failures = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Shared {
            config,
            reply: reply.clone(),
            requests: requests.clone(),
            handshake_failures: handshake_failures.clone(),
            stop: stop.clone(),
        };
        let thread = thread::spawn(move || {
            let started = Instant::now();
            while !shared.stop.load(Ordering::Relaxed) && started.elapsed() < LIFETIME {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let shared = shared.clone();
                        thread::spawn(move || shared.serve(stream));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            // The listener is dropped here: the port refuses from now on.
        });
        PolicyServer {
            addr,
            reply,
            requests,
            handshake_failures,
            stop,
            thread: Some(thread),
        }
    }

    /// The port to give the fetcher; the address is always 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Answer `reply` from the next request on.
    pub fn set(&self, reply: Reply) {
        *self.reply.lock().expect("reply") = reply;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("requests").clone()
    }

    /// Connections whose TLS handshake failed: the client refused the certificate.
    pub fn handshake_failures(&self) -> usize {
        self.handshake_failures.load(Ordering::SeqCst)
    }

    /// [`Self::handshake_failures`] once it reaches `n`, or after 5 s: the client's alert
    /// may reach the server's thread after the client has returned.
    pub fn wait_for_handshake_failures(&self, n: usize) -> usize {
        let started = Instant::now();
        while self.handshake_failures() < n && started.elapsed() < Duration::from_secs(5) {
            thread::sleep(Duration::from_millis(5));
        }
        self.handshake_failures()
    }

    /// Close the listening socket: the server is gone. Returns once it is closed.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Clone)]
struct Shared {
    config: Arc<ServerConfig>,
    reply: Arc<Mutex<Reply>>,
    requests: Arc<Mutex<Vec<Request>>>,
    handshake_failures: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Shared {
    fn serve(&self, mut sock: TcpStream) {
        let _ = sock.set_nonblocking(false);
        let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
        let Ok(mut conn) = ServerConnection::new(self.config.clone()) else {
            return;
        };
        while conn.is_handshaking() {
            if conn.complete_io(&mut sock).is_err() {
                self.handshake_failures.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        let Some(head) = read_head(&mut tls) else {
            return;
        };
        self.requests
            .lock()
            .expect("requests")
            .push(parse_request(&head));
        let reply = self.reply.lock().expect("reply").clone();
        if let Reply::Silent = reply {
            let started = Instant::now();
            while !self.stop.load(Ordering::Relaxed) && started.elapsed() < LIFETIME {
                thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        let _ = tls.write_all(&response(&reply));
        let _ = tls.flush();
        conn.send_close_notify();
        let _ = conn.complete_io(&mut sock);
        let _ = sock.shutdown(Shutdown::Write);
        // Let the client read to the end before the socket is dropped, so that nothing it
        // still sends (its own close_notify) turns into a reset that could cut the reply.
        let mut sink = [0u8; 1024];
        let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
        while matches!(sock.read(&mut sink), Ok(n) if n > 0) {}
    }
}

/// The request head, up to the empty line; `None` when the client went away first.
fn read_head(tls: &mut impl Read) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return None;
        }
        match tls.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn parse_request(head: &str) -> Request {
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let host = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("host")
            .then(|| value.trim().to_string())
    });
    Request {
        method,
        path,
        host,
        head: head.to_string(),
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Whatever",
    }
}

fn with_length(code: u16, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        reason(code),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn chunked(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        .to_vec();
    for chunk in body.chunks(piece.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn response(reply: &Reply) -> Vec<u8> {
    let text = "Content-Type: text/plain\r\n";
    match reply {
        Reply::Policy(body) => with_length(200, text, body.as_bytes()),
        Reply::Chunked(body, piece) => chunked(body.as_bytes(), *piece),
        Reply::Typed(Some(t), body) => {
            with_length(200, &format!("Content-Type: {t}\r\n"), body.as_bytes())
        }
        Reply::Typed(None, body) => with_length(200, "", body.as_bytes()),
        Reply::Redirect(code, to) => {
            with_length(*code, &format!("Location: {to}\r\n{text}"), b"moved\n")
        }
        Reply::Status(code) => with_length(*code, text, b"no policy here\n"),
        Reply::Oversized(n) => with_length(200, text, &vec![b'x'; *n]),
        Reply::OversizedChunked(n) => chunked(&vec![b'x'; *n], 1024),
        Reply::UntilClose(body) => {
            let mut out =
                format!("HTTP/1.1 200 OK\r\n{text}Connection: close\r\n\r\n").into_bytes();
            out.extend_from_slice(body.as_bytes());
            out
        }
        Reply::Silent => Vec::new(),
    }
}
