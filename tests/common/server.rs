//! A scriptable SMTP server on 127.0.0.1, in a thread of the test process.
//!
//! The test says what the server offers (banner, EHLO keywords before and after TLS,
//! STARTTLS, implicit TLS, AUTH credentials), how it answers given commands, and which faults
//! it commits (raw bytes, stalls, trickled replies, closing at a chosen point). The server
//! records everything the client did so that the test can assert on it once the binary
//! has exited: each command with whether TLS was active, each flight (a burst of bytes the
//! client wrote without waiting for a reply, RFC 2920), each message in wire form and
//! un-stuffed, each AUTH attempt.
//!
//! Every wait is bounded: the server gives up on its own after [`DEFAULT_DEADLINE`], so a
//! broken client fails a test instead of hanging it; a panic in the server thread is
//! re-raised by [`TestServer::finish`].

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::pki::Pki;

/// How long the server waits in all for one test: accepting, reading, stalling.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(9);

/// After the client has written, how long the server keeps reading before it takes what it
/// has as one flight. The client's flights are single writes, so on loopback they arrive
/// in one read; the grace only guards against the kernel splitting a write.
pub const DEFAULT_GRACE: Duration = Duration::from_millis(25);

/// The slice in which blocking reads and sleeps are cut, so the stop flag is seen soon.
const TICK: Duration = Duration::from_millis(20);

/// What the server does when a given command (or the greeting, or the end of data) comes.
///
/// Rules are matched in the order they were added; the first match applies. A rule may
/// replace the reply, add bytes after it in the same write, stall before it, trickle it out
/// byte by byte, or close the connection before or after it.
#[derive(Clone, Debug)]
pub struct Rule {
    verb: String,
    arg: Option<String>,
    tls: Option<bool>,
    reply: Option<Vec<u8>>,
    append: Vec<u8>,
    stall: Option<Duration>,
    trickle: Option<Duration>,
    close_before: bool,
    close_after: bool,
    repeat: Option<Vec<u8>>,
    deaf: Option<Duration>,
    /// At most this many uses, counted in `used` (shared by the clones of the rule, so
    /// across every connection of the server).
    times: Option<usize>,
    used: Arc<AtomicUsize>,
}

impl Rule {
    /// A rule for a command verb (`"MAIL"`, `"RCPT"`, `"EHLO"`, `"STARTTLS"`, ...).
    pub fn on(verb: &str) -> Rule {
        Rule {
            verb: verb.to_ascii_uppercase(),
            arg: None,
            tls: None,
            reply: None,
            append: Vec::new(),
            stall: None,
            trickle: None,
            close_before: false,
            close_after: false,
            repeat: None,
            deaf: None,
            times: None,
            used: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A rule for the greeting the server sends on connect.
    pub fn banner() -> Rule {
        Rule::on(BANNER)
    }

    /// A rule for the reply to the final dot of DATA.
    pub fn data_end() -> Rule {
        Rule::on(DATA_END)
    }

    /// Match only when the argument contains this text (case-insensitive).
    pub fn arg(mut self, text: &str) -> Rule {
        self.arg = Some(text.to_ascii_lowercase());
        self
    }

    /// Match only inside TLS.
    pub fn in_tls(mut self) -> Rule {
        self.tls = Some(true);
        self
    }

    /// Match only before TLS.
    pub fn before_tls(mut self) -> Rule {
        self.tls = Some(false);
        self
    }

    /// Replace the reply by this text; CRLF is added unless the text ends in one. Lines of
    /// a multiline reply are separated by CRLF: `"250-a\r\n250 b"`.
    pub fn reply(mut self, text: &str) -> Rule {
        let mut bytes = text.as_bytes().to_vec();
        if !bytes.ends_with(b"\r\n") {
            bytes.extend_from_slice(b"\r\n");
        }
        self.reply = Some(bytes);
        self
    }

    /// Replace the reply by exactly these bytes.
    pub fn raw(mut self, bytes: &[u8]) -> Rule {
        self.reply = Some(bytes.to_vec());
        self
    }

    /// Send these bytes right after the reply, in the same write.
    pub fn append(mut self, bytes: &[u8]) -> Rule {
        self.append = bytes.to_vec();
        self
    }

    /// Sleep this long before replying.
    pub fn stall(mut self, how_long: Duration) -> Rule {
        self.stall = Some(how_long);
        self
    }

    /// Send the reply one byte at a time, sleeping this long between bytes.
    pub fn trickle(mut self, interval: Duration) -> Rule {
        self.trickle = Some(interval);
        self
    }

    /// Close the connection instead of replying.
    pub fn close(mut self) -> Rule {
        self.close_before = true;
        self
    }

    /// Reply, then close the connection.
    pub fn close_after_reply(mut self) -> Rule {
        self.close_after = true;
        self
    }

    /// After the reply, send these bytes again and again for as long as the client reads
    /// them (at most [`REPEAT_LIMIT`] bytes, and never past the deadline): a reply that
    /// never ends. Cleartext connections only.
    pub fn repeat(mut self, unit: &[u8]) -> Rule {
        self.repeat = Some(unit.to_vec());
        self
    }

    /// After the reply, read nothing for this long: the client's writes fill the socket
    /// buffers and block, as with a server that stalls in the middle of DATA.
    pub fn deaf(mut self, how_long: Duration) -> Rule {
        self.deaf = Some(how_long);
        self
    }

    /// Apply only the first `n` times it matches, counted over every connection the
    /// server serves; after that the rules behind it and the default reply apply. A server
    /// that answers 451 once and then recovers: `Rule::on("MAIL").reply("451 ...").times(1)`.
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }

    fn exhausted(&self) -> bool {
        self.times
            .is_some_and(|n| self.used.load(Ordering::SeqCst) >= n)
    }

    fn matches(&self, verb: &str, arg: &str, tls: bool) -> bool {
        !self.exhausted()
            && self.verb.eq_ignore_ascii_case(verb)
            && self.tls.is_none_or(|t| t == tls)
            && self
                .arg
                .as_ref()
                .is_none_or(|a| arg.to_ascii_lowercase().contains(a.as_str()))
    }
}

/// The most a [`Rule::repeat`] sends before giving up on the client ever stopping.
pub const REPEAT_LIMIT: usize = 256 << 20;

const BANNER: &str = "<banner>";
const DATA_END: &str = "<end of data>";

/// What the server is; built with [`TestServer::builder`].
#[derive(Clone)]
pub struct Builder {
    banner: String,
    caps: Vec<String>,
    caps_tls: Vec<String>,
    tls: Option<Arc<rustls::ServerConfig>>,
    implicit_tls: bool,
    credentials: Option<(String, String)>,
    scram_iterations: u32,
    scram_wrong_signature: bool,
    rules: Vec<Rule>,
    coalesce: bool,
    grace: Duration,
    close_mid_data: Option<usize>,
    /// What is said just before that close (OpenSMTPD's "500 Line too long").
    close_mid_data_reply: Option<Vec<u8>>,
    connections: usize,
    deadline: Duration,
    linger_after_421: bool,
}

impl Builder {
    /// The greeting line(s), without the final CRLF. Default `220 localhost ESMTP test`.
    pub fn banner(mut self, text: &str) -> Builder {
        self.banner = text.to_string();
        self
    }

    /// EHLO keywords offered before TLS (or on a connection that never has TLS).
    pub fn capabilities(mut self, caps: &[&str]) -> Builder {
        self.caps = caps.iter().map(|c| c.to_string()).collect();
        self
    }

    /// EHLO keywords offered after STARTTLS, and on an implicit-TLS connection.
    pub fn capabilities_tls(mut self, caps: &[&str]) -> Builder {
        self.caps_tls = caps.iter().map(|c| c.to_string()).collect();
        self
    }

    /// Accept STARTTLS with this certificate (whether it is offered is up to the
    /// capabilities).
    pub fn tls(mut self, pki: &Pki) -> Builder {
        self.tls = Some(pki.server_config());
        self
    }

    /// Speak TLS from the first byte (port 465 style, RFC 8314).
    pub fn implicit_tls(mut self, pki: &Pki) -> Builder {
        self.tls = Some(pki.server_config());
        self.implicit_tls = true;
        self
    }

    /// Accept AUTH PLAIN, LOGIN, SCRAM-SHA-256 and SCRAM-SHA-1 for exactly this user and
    /// password, and XOAUTH2 and OAUTHBEARER with the password as the token; require
    /// authentication before MAIL (530 otherwise). Which mechanisms are offered is up to
    /// the capabilities. AUTH EXTERNAL succeeds when the client presented a certificate.
    pub fn credentials(mut self, user: &str, password: &str) -> Builder {
        self.credentials = Some((user.to_string(), password.to_string()));
        self
    }

    /// Ask SCRAM clients for this many PBKDF2 iterations (default 4096).
    pub fn scram_iterations(mut self, n: u32) -> Builder {
        self.scram_iterations = n;
        self
    }

    /// Send a SCRAM server signature that is wrong, as a server that does not know the
    /// password (an impostor that got the client's proof) would.
    pub fn scram_wrong_signature(mut self) -> Builder {
        self.scram_wrong_signature = true;
        self
    }

    /// Ask for a TLS client certificate and verify it against `clients`' CA (a client
    /// without one may still connect). Call after [`tls`](Self::tls).
    pub fn client_ca(mut self, pki: &Pki, clients: &super::pki::ClientPki) -> Builder {
        self.tls = Some(pki.server_config_with_client_ca(clients));
        self
    }

    /// Add a rule; see [`Rule`].
    pub fn rule(mut self, rule: Rule) -> Builder {
        self.rules.push(rule);
        self
    }

    /// Answer pipelined commands in one write, as Postfix does, instead of one write per
    /// reply.
    pub fn coalesce_replies(mut self) -> Builder {
        self.coalesce = true;
        self
    }

    /// Close the connection, without a reply, once this many bytes of message data came.
    pub fn close_mid_data_after(mut self, bytes: usize) -> Builder {
        self.close_mid_data = Some(bytes);
        self
    }

    /// As [`Builder::close_mid_data_after`], but say `reply` (a full line) first.
    pub fn refuse_mid_data_after(mut self, bytes: usize, reply: &str) -> Builder {
        self.close_mid_data = Some(bytes);
        self.close_mid_data_reply = Some(reply.as_bytes().to_vec());
        self
    }

    /// Serve this many connections one after the other (default 1).
    pub fn connections(mut self, n: usize) -> Builder {
        self.connections = n;
        self
    }

    /// Set how long the server keeps reading after a burst before taking it as one flight.
    pub fn grace(mut self, grace: Duration) -> Builder {
        self.grace = grace;
        self
    }

    /// Give up after this long in all instead of [`DEFAULT_DEADLINE`], for a server that
    /// outlives many runs of the binary.
    pub fn deadline(mut self, deadline: Duration) -> Builder {
        self.deadline = deadline;
        self
    }

    /// Keep serving after a 421 reply instead of closing, to see whether the client goes
    /// on talking on a connection the server said it was closing (RFC 5321 §3.8).
    pub fn linger_after_421(mut self) -> Builder {
        self.linger_after_421 = true;
        self
    }

    /// Bind 127.0.0.1:0 and start serving in a thread.
    pub fn start(self) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        self.serve_on(listener)
    }

    /// Bind `addr` (a loopback address; port 0 for any) and start serving in a thread. The
    /// bind error is returned, not raised, so that a caller choosing a port can try another.
    pub fn start_at(self, addr: SocketAddr) -> io::Result<TestServer> {
        assert!(
            addr.ip().is_loopback(),
            "test servers listen on loopback only, not {addr}"
        );
        let listener = TcpListener::bind(addr)?;
        Ok(self.serve_on(listener))
    }

    fn serve_on(self, listener: TcpListener) -> TestServer {
        let addr = listener.local_addr().expect("local address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let handle = thread::Builder::new()
            .name("smtp-test-server".into())
            .spawn(move || serve(listener, self, &thread_stop))
            .expect("spawn server thread");
        TestServer {
            addr,
            stop,
            handle: Some(handle),
        }
    }
}

/// A running server; [`finish`](TestServer::finish) it after the binary exited.
pub struct TestServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Connection>>>,
}

impl TestServer {
    /// A server offering PIPELINING, 8BITMIME and ENHANCEDSTATUSCODES, no TLS.
    pub fn builder() -> Builder {
        Builder {
            banner: "220 localhost ESMTP test".into(),
            caps: vec![
                "PIPELINING".into(),
                "8BITMIME".into(),
                "ENHANCEDSTATUSCODES".into(),
            ],
            caps_tls: vec![
                "PIPELINING".into(),
                "8BITMIME".into(),
                "ENHANCEDSTATUSCODES".into(),
            ],
            tls: None,
            implicit_tls: false,
            credentials: None,
            scram_iterations: 4096,
            scram_wrong_signature: false,
            rules: Vec::new(),
            coalesce: false,
            grace: DEFAULT_GRACE,
            close_mid_data: None,
            close_mid_data_reply: None,
            connections: 1,
            deadline: DEFAULT_DEADLINE,
            linger_after_421: false,
        }
    }

    /// A server offering STARTTLS with this certificate: PIPELINING and STARTTLS before
    /// TLS; PIPELINING, 8BITMIME and AUTH PLAIN LOGIN after it.
    pub fn starttls(pki: &Pki) -> Builder {
        TestServer::builder()
            .tls(pki)
            .capabilities(&["PIPELINING", "STARTTLS"])
            .capabilities_tls(&["PIPELINING", "8BITMIME", "AUTH PLAIN LOGIN"])
    }

    /// The port to give the client.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, wait for the session to end, and return what the client did.
    /// Re-raises a panic of the server thread.
    pub fn finish(mut self) -> Transcript {
        self.stop.store(true, Ordering::SeqCst);
        let handle = self.handle.take().expect("server joined once");
        match handle.join() {
            Ok(connections) => Transcript { connections },
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Start one server per address, all on the same port: the port of the first, chosen by
/// the system, is tried on the others, and another is chosen while one of them has it
/// taken. A client that is given one port for every host (`--mx-port`) then reaches each
/// server by its address alone. The servers come back in the order given.
pub fn start_on_one_port(servers: Vec<(IpAddr, Builder)>) -> (u16, Vec<TestServer>) {
    let Some(((first_ip, first), rest)) = servers.split_first() else {
        panic!("start_on_one_port needs at least one server");
    };
    for _ in 0..50 {
        let first = match first.clone().start_at(SocketAddr::new(*first_ip, 0)) {
            Ok(server) => server,
            Err(e) => panic!("cannot listen on {first_ip}: {e}"),
        };
        let port = first.port();
        let others: io::Result<Vec<TestServer>> = rest
            .iter()
            .map(|(ip, builder)| builder.clone().start_at(SocketAddr::new(*ip, port)))
            .collect();
        if let Ok(others) = others {
            let mut all = vec![first];
            all.extend(others);
            return (port, all);
        }
    }
    panic!(
        "no port free on every one of {:?}",
        servers.iter().map(|(ip, _)| ip).collect::<Vec<_>>()
    );
}

/// Everything the clients did, one entry per connection.
#[derive(Debug)]
pub struct Transcript {
    pub connections: Vec<Connection>,
}

impl Transcript {
    /// The one connection the test expected; panics if there were none or several.
    pub fn only(&self) -> &Connection {
        match self.connections.as_slice() {
            [one] => one,
            [] => panic!("the client never connected to the test server"),
            many => panic!("expected one connection, the client made {}", many.len()),
        }
    }

    /// Whether no connection carried this command.
    pub fn never_saw(&self, verb: &str) -> bool {
        self.connections.iter().all(|c| !c.saw(verb))
    }
}

/// One command line as the server received it.
#[derive(Clone, Debug)]
pub struct Command {
    /// The line without its CRLF.
    pub line: String,
    /// The verb, upper-cased.
    pub verb: String,
    /// Everything after the first space.
    pub arg: String,
    /// Whether TLS was active when it arrived.
    pub tls: bool,
    /// The index in [`Connection::flights`] of the flight that completed this line.
    pub flight: usize,
}

/// What arrived in one burst of client writes, without the server having replied between.
#[derive(Clone, Debug, Default)]
pub struct Flight {
    /// The bytes, decrypted when TLS was active.
    pub bytes: Vec<u8>,
    /// How many read() calls the burst took.
    pub reads: usize,
    /// Whether TLS was active.
    pub tls: bool,
    /// The verbs of the commands this flight completed; `"<data>"` for message data.
    pub items: Vec<String>,
    /// The client ended its side (TLS close_notify, FIN or reset) within this burst.
    pub ended: bool,
}

/// One message transfer, from the 354 to the final dot.
#[derive(Clone, Debug)]
pub struct Message {
    /// The envelope sender as given in MAIL FROM (without the angle brackets).
    pub mail_from: String,
    /// The recipients the server accepted, without angle brackets.
    pub rcpt_to: Vec<String>,
    /// The data exactly as sent, dot-stuffed, up to and including the CRLF before the
    /// final ".\r\n" (which is not included).
    pub wire: Vec<u8>,
    /// The data with the dot-stuffing removed (RFC 5321 §4.5.2).
    pub content: Vec<u8>,
    /// Whether the server answered the final dot (or the last BDAT chunk) with 2xx.
    pub accepted: bool,
    /// Whether TLS was active.
    pub tls: bool,
    /// Whether it came in BDAT chunks (RFC 3030); `wire` and `content` are then the same.
    pub chunked: bool,
    /// When the server had the whole message and chose its reply: a client killed before
    /// this could not have known the outcome (the duplicate window of RFC 1047).
    pub decided: Instant,
}

/// One AUTH exchange.
#[derive(Clone, Debug)]
pub struct AuthAttempt {
    pub mechanism: String,
    pub user: String,
    /// The password or token as received; empty for SCRAM and EXTERNAL, which send none.
    pub password: String,
    pub tls: bool,
    pub success: bool,
    /// Every line the client sent in the exchange, the AUTH argument first.
    pub lines: Vec<String>,
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum End {
    /// Still running (never seen in a finished transcript).
    #[default]
    Running,
    /// The client closed (EOF or reset).
    ClientClosed,
    /// The server closed after QUIT, a 421, or a rule.
    ServerClosed,
    /// The server's deadline passed.
    Deadline,
    /// A read or write failed otherwise.
    Error(String),
}

/// What one client connection did.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    pub commands: Vec<Command>,
    pub flights: Vec<Flight>,
    pub messages: Vec<Message>,
    pub auth: Vec<AuthAttempt>,
    /// Whether an AUTH command ever came before TLS was established.
    pub auth_before_tls: bool,
    /// Whether a TLS handshake completed (STARTTLS or implicit).
    pub tls_established: bool,
    /// Whether the client presented a certificate the server verified.
    pub client_certificate: bool,
    /// Why a TLS handshake failed, if it did.
    pub tls_error: Option<String>,
    /// Bytes the client sent after STARTTLS in the same flight: they were discarded.
    pub plaintext_after_starttls: Vec<u8>,
    /// Commands that must end a flight (RFC 2920 §3.1: EHLO, HELO, DATA; and STARTTLS)
    /// but had more bytes behind them.
    pub pipelining_violations: Vec<String>,
    /// Command lines that ended in a bare LF.
    pub bare_lf_lines: Vec<String>,
    /// How many flights had arrived when the server first replied 421: flights from this
    /// index on were written after the client could have read the 421.
    pub flights_before_421: Option<usize>,
    pub end: End,
    /// When the connection was accepted and when it ended: to tell whether two
    /// connections (to two servers) were open at the same time.
    pub open: Option<(Instant, Instant)>,
}

impl Connection {
    /// Whether this connection and `other` were open at the same time.
    pub fn overlaps(&self, other: &Connection) -> bool {
        match (self.open, other.open) {
            (Some((a0, a1)), Some((b0, b1))) => a0 < b1 && b0 < a1,
            _ => false,
        }
    }

    /// The verbs in the order received.
    pub fn verbs(&self) -> Vec<&str> {
        self.commands.iter().map(|c| c.verb.as_str()).collect()
    }

    /// Whether this verb was received at all.
    pub fn saw(&self, verb: &str) -> bool {
        self.commands
            .iter()
            .any(|c| c.verb.eq_ignore_ascii_case(verb))
    }

    /// Whether this verb was received inside TLS.
    pub fn saw_in_tls(&self, verb: &str) -> bool {
        self.commands
            .iter()
            .any(|c| c.tls && c.verb.eq_ignore_ascii_case(verb))
    }

    /// The commands with this verb.
    pub fn commands_for(&self, verb: &str) -> Vec<&Command> {
        self.commands
            .iter()
            .filter(|c| c.verb.eq_ignore_ascii_case(verb))
            .collect()
    }

    /// The items of every flight, e.g. `[["EHLO"], ["MAIL", "RCPT", "DATA"], ["<data>", "QUIT"]]`.
    pub fn flight_shape(&self) -> Vec<Vec<String>> {
        self.flights.iter().map(|f| f.items.clone()).collect()
    }

    /// What the client sent after the server's first 421 (commands and `"<data>"`), from
    /// a server that [lingered](Builder::linger_after_421); `None` if no 421 was sent.
    pub fn items_after_421(&self) -> Option<Vec<String>> {
        let from = self.flights_before_421?;
        Some(
            self.flights
                .iter()
                .skip(from)
                .flat_map(|f| f.items.iter().cloned())
                .collect(),
        )
    }

    /// Every byte the client sent, TLS records decrypted, in order.
    pub fn received(&self) -> Vec<u8> {
        self.flights.iter().flat_map(|f| f.bytes.clone()).collect()
    }

    /// The one message; panics if there were none or several.
    pub fn message(&self) -> &Message {
        match self.messages.as_slice() {
            [one] => one,
            [] => panic!("no message was transferred; commands: {:?}", self.verbs()),
            many => panic!("expected one message, got {}", many.len()),
        }
    }
}

fn serve(listener: TcpListener, script: Builder, stop: &AtomicBool) -> Vec<Connection> {
    let deadline = Instant::now() + script.deadline;
    let mut connections = Vec::new();
    while connections.len() < script.connections {
        if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
            break;
        }
        match listener.accept() {
            Ok((tcp, _)) => {
                let mut session = Session::new(&script, tcp, stop, deadline);
                session.run();
                connections.push(session.rec);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("accept failed: {e}"),
        }
    }
    connections
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
    Closed,
}

impl Stream {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Tls(s) => Some(&s.sock),
            Stream::Closed => None,
        }
    }

    fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Closed => Ok(0),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
            Stream::Tls(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
            Stream::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn set_read_timeout(&self, timeout: Duration) {
        if let Some(tcp) = self.tcp() {
            let _ = tcp.set_read_timeout(Some(timeout.max(Duration::from_millis(1))));
        }
    }
}

/// Why the session loop stopped early.
enum Stop {
    Ended(End),
}

type Step<T> = Result<T, Stop>;

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

#[derive(Default)]
struct Envelope {
    greeted: bool,
    authenticated: bool,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    /// BDAT data so far in this transaction.
    chunks: Option<Vec<u8>>,
}

struct Session<'a> {
    script: &'a Builder,
    stream: Stream,
    stop: &'a AtomicBool,
    deadline: Instant,
    /// Received, not yet processed bytes.
    buf: Vec<u8>,
    /// Which flight each run of `buf` came in: (length, flight index).
    origin: VecDeque<(usize, usize)>,
    /// Replies held back to be written together (coalescing).
    out: Vec<u8>,
    /// The client closed its side; what it sent is in `buf`.
    eof: bool,
    env: Envelope,
    rec: Connection,
    /// The lines of the SASL exchange under way.
    sasl_lines: Vec<String>,
}

impl<'a> Session<'a> {
    fn new(script: &'a Builder, tcp: TcpStream, stop: &'a AtomicBool, deadline: Instant) -> Self {
        let _ = tcp.set_nodelay(true);
        Session {
            script,
            stream: Stream::Plain(tcp),
            stop,
            deadline,
            buf: Vec::new(),
            origin: VecDeque::new(),
            out: Vec::new(),
            eof: false,
            env: Envelope::default(),
            rec: Connection::default(),
            sasl_lines: Vec::new(),
        }
    }

    fn run(&mut self) {
        let accepted = Instant::now();
        let end = match self.converse() {
            Ok(()) => End::ServerClosed,
            Err(Stop::Ended(end)) => end,
        };
        if let Some(tcp) = self.stream.tcp() {
            let _ = tcp.shutdown(Shutdown::Both);
        }
        self.stream = Stream::Closed;
        self.rec.end = end;
        self.rec.open = Some((accepted, Instant::now()));
    }

    fn tls(&self) -> bool {
        self.stream.is_tls()
    }

    fn converse(&mut self) -> Step<()> {
        if self.script.implicit_tls {
            self.handshake()?;
        }
        let banner = format!("{}\r\n", self.script.banner);
        self.respond(BANNER, "", banner.into_bytes())?;
        loop {
            let Some(line) = self.next_line()? else {
                return Err(Stop::Ended(End::ClientClosed));
            };
            self.command(line)?;
        }
    }

    /// The first matching rule for this stage.
    fn rule(&self, verb: &str, arg: &str) -> Option<Rule> {
        let tls = self.tls();
        self.script
            .rules
            .iter()
            .find(|r| r.matches(verb, arg, tls))
            .cloned()
    }

    /// Send the reply for a stage, applying its rule. Returns the reply actually sent.
    fn respond(&mut self, verb: &str, arg: &str, default: Vec<u8>) -> Step<Vec<u8>> {
        let rule = self.rule(verb, arg);
        if let Some(r) = &rule {
            r.used.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(stall) = rule.as_ref().and_then(|r| r.stall) {
            self.flush()?;
            self.sleep(stall);
        }
        if rule.as_ref().is_some_and(|r| r.close_before) {
            self.close()?;
        }
        let reply = rule
            .as_ref()
            .and_then(|r| r.reply.clone())
            .unwrap_or(default);
        let mut bytes = reply.clone();
        if let Some(r) = &rule {
            bytes.extend_from_slice(&r.append);
        }
        if let Some(interval) = rule.as_ref().and_then(|r| r.trickle) {
            self.flush()?;
            for byte in &bytes {
                self.write(std::slice::from_ref(byte))?;
                self.sleep(interval);
            }
        } else if self.script.coalesce {
            self.out.extend_from_slice(&bytes);
        } else {
            self.write(&bytes)?;
        }
        if let Some(unit) = rule.as_ref().and_then(|r| r.repeat.clone()) {
            self.flush()?;
            self.endless(&unit)?;
        }
        if reply.starts_with(b"421") && self.rec.flights_before_421.is_none() {
            self.rec.flights_before_421 = Some(self.rec.flights.len());
        }
        let closing = reply.starts_with(b"421") && !self.script.linger_after_421;
        if rule.as_ref().is_some_and(|r| r.close_after) || closing {
            self.close()?;
        }
        if let Some(deaf) = rule.as_ref().and_then(|r| r.deaf) {
            self.flush()?;
            self.sleep(deaf);
        }
        Ok(reply)
    }

    /// Write `unit` over and over until the client stops reading or closes, the test
    /// finishes, the deadline passes, or [`REPEAT_LIMIT`] bytes went out. Partial writes
    /// are resumed where they stopped, so every unit arrives whole.
    fn endless(&mut self, unit: &[u8]) -> Step<()> {
        let Stream::Plain(tcp) = &mut self.stream else {
            return Err(Stop::Ended(End::Error(
                "Rule::repeat on a TLS connection".into(),
            )));
        };
        let batch: Vec<u8> = unit
            .iter()
            .copied()
            .cycle()
            .take(unit.len() * (64 * 1024 / unit.len().max(1)).max(1))
            .collect();
        let _ = tcp.set_write_timeout(Some(TICK));
        let mut sent = 0usize;
        let mut pos = 0usize;
        let outcome = loop {
            if self.stop.load(Ordering::SeqCst) || Instant::now() >= self.deadline {
                break Ok(());
            }
            if sent >= REPEAT_LIMIT {
                break Ok(());
            }
            match tcp.write(&batch[pos..]) {
                Ok(0) => break Err(Stop::Ended(End::ClientClosed)),
                Ok(n) => {
                    sent += n;
                    pos = (pos + n) % batch.len();
                }
                Err(e) if is_timeout(&e) => continue,
                Err(e) if is_closed(&e) => break Err(Stop::Ended(End::ClientClosed)),
                Err(e) => break Err(Stop::Ended(End::Error(format!("write: {e}")))),
            }
        };
        let _ = tcp.set_write_timeout(None);
        outcome
    }

    fn write(&mut self, bytes: &[u8]) -> Step<()> {
        match self.stream.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(e) if is_closed(&e) => Err(Stop::Ended(End::ClientClosed)),
            Err(e) => Err(Stop::Ended(End::Error(format!("write: {e}")))),
        }
    }

    fn flush(&mut self) -> Step<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        self.write(&out)
    }

    fn close(&mut self) -> Step<()> {
        self.flush()?;
        Err(Stop::Ended(End::ServerClosed))
    }

    /// Sleep, but wake up when the test is finishing or the deadline passed.
    fn sleep(&self, how_long: Duration) {
        let until = (Instant::now() + how_long).min(self.deadline);
        while Instant::now() < until && !self.stop.load(Ordering::SeqCst) {
            thread::sleep(TICK.min(until.saturating_duration_since(Instant::now())));
        }
    }

    /// Read one flight: block until bytes come, then keep reading while more follow
    /// within the grace period.
    fn read_flight(&mut self) -> Step<()> {
        self.flush()?;
        if self.eof {
            return Err(Stop::Ended(End::ClientClosed));
        }
        let mut flight = Flight {
            tls: self.tls(),
            ..Flight::default()
        };
        let mut chunk = vec![0u8; 64 * 1024];
        let mut stopped_at: Option<Instant> = None;
        // Wait for the first bytes.
        loop {
            let now = Instant::now();
            if now >= self.deadline {
                return Err(Stop::Ended(End::Deadline));
            }
            if self.stop.load(Ordering::SeqCst) {
                // The binary has exited; whatever it wrote is already here or never comes.
                let since = *stopped_at.get_or_insert(now);
                if now.duration_since(since) > Duration::from_secs(1) {
                    return Err(Stop::Ended(End::ClientClosed));
                }
            }
            self.stream.set_read_timeout(TICK);
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Err(Stop::Ended(End::ClientClosed));
                }
                Ok(n) => {
                    flight.bytes.extend_from_slice(&chunk[..n]);
                    flight.reads += 1;
                    break;
                }
                Err(e) if is_timeout(&e) => continue,
                Err(e) if is_closed(&e) => return Err(Stop::Ended(End::ClientClosed)),
                Err(e) => return Err(Stop::Ended(End::Error(format!("read: {e}")))),
            }
        }
        // Gather the rest of the burst.
        loop {
            self.stream.set_read_timeout(self.script.grace);
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    flight.ended = true;
                    break;
                }
                Ok(n) => {
                    flight.bytes.extend_from_slice(&chunk[..n]);
                    flight.reads += 1;
                }
                Err(e) if is_timeout(&e) => break,
                Err(_) => {
                    self.eof = true;
                    flight.ended = true;
                    break;
                }
            }
        }
        let index = self.rec.flights.len();
        self.buf.extend_from_slice(&flight.bytes);
        self.origin.push_back((flight.bytes.len(), index));
        self.rec.flights.push(flight);
        Ok(())
    }

    /// Take `n` bytes off the input; returns them and the flights they came in.
    fn consume(&mut self, n: usize) -> (Vec<u8>, Vec<usize>) {
        let bytes: Vec<u8> = self.buf.drain(..n).collect();
        let mut flights = Vec::new();
        let mut left = n;
        while left > 0 {
            let Some((len, flight)) = self.origin.front_mut() else {
                break;
            };
            if flights.last() != Some(flight) {
                flights.push(*flight);
            }
            let take = left.min(*len);
            *len -= take;
            left -= take;
            if *len == 0 {
                self.origin.pop_front();
            }
        }
        (bytes, flights)
    }

    /// The next line, without its line ending, and the flight that completed it.
    fn next_line(&mut self) -> Step<Option<(String, usize)>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let (bytes, flights) = self.consume(pos + 1);
                let flight = flights.last().copied().unwrap_or(0);
                let mut text = &bytes[..bytes.len() - 1];
                let bare_lf = !text.ends_with(b"\r");
                if !bare_lf {
                    text = &text[..text.len() - 1];
                }
                let line = String::from_utf8_lossy(text).into_owned();
                if bare_lf {
                    self.rec.bare_lf_lines.push(line.clone());
                }
                return Ok(Some((line, flight)));
            }
            match self.read_flight() {
                Ok(()) => {}
                Err(Stop::Ended(End::ClientClosed)) => return Ok(None),
                Err(stop) => return Err(stop),
            }
        }
    }

    fn command(&mut self, (line, flight): (String, usize)) -> Step<()> {
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.to_string()),
            None => (line.to_ascii_uppercase(), String::new()),
        };
        let tls = self.tls();
        if let Some(f) = self.rec.flights.get_mut(flight) {
            f.items.push(verb.clone());
        }
        self.rec.commands.push(Command {
            line: line.clone(),
            verb: verb.clone(),
            arg: arg.clone(),
            tls,
            flight,
        });
        if matches!(verb.as_str(), "EHLO" | "HELO" | "STARTTLS" | "DATA") && !self.buf.is_empty() {
            self.rec.pipelining_violations.push(format!(
                "{verb} followed by {:?} in the same flight",
                String::from_utf8_lossy(&self.buf)
            ));
        }
        match verb.as_str() {
            "EHLO" => {
                let caps = if tls {
                    &self.script.caps_tls
                } else {
                    &self.script.caps
                };
                let mut reply = String::new();
                let mut lines = vec![format!("localhost greets {arg}")];
                lines.extend(caps.iter().cloned());
                for (i, l) in lines.iter().enumerate() {
                    let sep = if i + 1 == lines.len() { ' ' } else { '-' };
                    reply.push_str(&format!("250{sep}{l}\r\n"));
                }
                let sent = self.respond("EHLO", &arg, reply.into_bytes())?;
                if positive(&sent) {
                    self.env = Envelope {
                        greeted: true,
                        authenticated: self.env.authenticated,
                        ..Envelope::default()
                    };
                }
            }
            "HELO" => {
                let sent = self.respond("HELO", &arg, b"250 localhost\r\n".to_vec())?;
                if positive(&sent) {
                    self.env.greeted = true;
                }
            }
            "STARTTLS" => {
                let default: &[u8] = if self.script.tls.is_none() {
                    b"502 5.5.1 STARTTLS not available\r\n"
                } else if tls {
                    b"503 5.5.1 TLS already active\r\n"
                } else {
                    b"220 2.0.0 Ready to start TLS\r\n"
                };
                let sent = self.respond("STARTTLS", &arg, default.to_vec())?;
                if sent.starts_with(b"220") && self.script.tls.is_some() && !tls {
                    self.flush()?;
                    if !self.buf.is_empty() {
                        let (early, _) = self.consume(self.buf.len());
                        self.rec.plaintext_after_starttls.extend_from_slice(&early);
                    }
                    self.handshake()?;
                    // RFC 3207 §4.2: the server forgets everything it learned before TLS.
                    self.env = Envelope::default();
                }
            }
            "AUTH" => self.auth(&arg)?,
            "MAIL" => {
                let default: &[u8] = if !self.env.greeted {
                    b"503 5.5.1 Send EHLO first\r\n"
                } else if self.env.mail_from.is_some() {
                    b"503 5.5.1 Nested MAIL command\r\n"
                } else if self.script.credentials.is_some() && !self.env.authenticated {
                    b"530 5.7.0 Authentication required\r\n"
                } else if self
                    .size_limit()
                    .is_some_and(|limit| declared_size(&arg).is_some_and(|size| size > limit))
                {
                    b"552 5.3.4 Message size exceeds fixed limit\r\n"
                } else {
                    b"250 2.1.0 Ok\r\n"
                };
                let sent = self.respond("MAIL", &arg, default.to_vec())?;
                if positive(&sent) {
                    self.env.mail_from = Some(path_of(&arg, "FROM:"));
                }
            }
            "RCPT" => {
                let default: &[u8] = if self.env.mail_from.is_none() {
                    b"503 5.5.1 Need MAIL first\r\n"
                } else {
                    b"250 2.1.5 Ok\r\n"
                };
                let sent = self.respond("RCPT", &arg, default.to_vec())?;
                if positive(&sent) && self.env.mail_from.is_some() {
                    self.env.rcpt_to.push(path_of(&arg, "TO:"));
                }
            }
            "DATA" => {
                let default: &[u8] = if self.env.mail_from.is_none() {
                    b"503 5.5.1 Need MAIL first\r\n"
                } else if self.env.rcpt_to.is_empty() {
                    b"554 5.5.1 No valid recipients\r\n"
                } else {
                    b"354 End data with <CR><LF>.<CR><LF>\r\n"
                };
                let sent = self.respond("DATA", &arg, default.to_vec())?;
                if sent.starts_with(b"354") {
                    self.data()?;
                }
            }
            "BDAT" => self.bdat(&arg)?,
            "RSET" => {
                self.respond("RSET", &arg, b"250 2.0.0 Ok\r\n".to_vec())?;
                self.env.mail_from = None;
                self.env.rcpt_to.clear();
                self.env.chunks = None;
            }
            "NOOP" => {
                self.respond("NOOP", &arg, b"250 2.0.0 Ok\r\n".to_vec())?;
            }
            "QUIT" => {
                self.respond("QUIT", &arg, b"221 2.0.0 Bye\r\n".to_vec())?;
                self.close()?;
            }
            _ => {
                self.respond(
                    &verb,
                    &arg,
                    b"502 5.5.2 Command not recognized\r\n".to_vec(),
                )?;
            }
        }
        Ok(())
    }

    fn handshake(&mut self) -> Step<()> {
        let Some(config) = self.script.tls.clone() else {
            return Err(Stop::Ended(End::Error(
                "TLS requested without a certificate".into(),
            )));
        };
        let Stream::Plain(mut tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(Stop::Ended(End::Error(
                "TLS on a connection that has it".into(),
            )));
        };
        let mut conn = match rustls::ServerConnection::new(config) {
            Ok(c) => c,
            Err(e) => return Err(Stop::Ended(End::Error(format!("TLS setup: {e}")))),
        };
        let _ = tcp.set_read_timeout(Some(TICK));
        while conn.is_handshaking() {
            if Instant::now() >= self.deadline {
                self.rec.tls_error = Some("deadline during handshake".into());
                return Err(Stop::Ended(End::Deadline));
            }
            match conn.complete_io(&mut tcp) {
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {
                    if self.stop.load(Ordering::SeqCst) {
                        self.rec.tls_error = Some("client gone during handshake".into());
                        return Err(Stop::Ended(End::ClientClosed));
                    }
                }
                Err(e) => {
                    self.rec.tls_error = Some(e.to_string());
                    let _ = tcp.shutdown(Shutdown::Both);
                    return Err(Stop::Ended(End::ClientClosed));
                }
            }
        }
        self.rec.tls_established = true;
        self.rec.client_certificate = conn.peer_certificates().is_some_and(|c| !c.is_empty());
        self.stream = Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)));
        Ok(())
    }

    /// AUTH PLAIN (RFC 4616), LOGIN, SCRAM-SHA-256/SHA-1 (RFC 7677, RFC 5802), XOAUTH2,
    /// OAUTHBEARER (RFC 7628) and EXTERNAL (RFC 4422 Appendix A), with or without an
    /// initial response (RFC 4954).
    fn auth(&mut self, arg: &str) -> Step<()> {
        let tls = self.tls();
        if !tls {
            self.rec.auth_before_tls = true;
        }
        let mut words = arg.split_whitespace();
        let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
        let initial = words.next().map(str::to_string);
        if self.rule("AUTH", arg).is_some_and(|r| r.reply.is_some()) {
            let sent = self.respond("AUTH", arg, Vec::new())?;
            if positive(&sent) {
                self.env.authenticated = true;
            }
            return Ok(());
        }
        self.sasl_lines = vec![arg.to_string()];
        if mechanism == "EXTERNAL" {
            let Some(authzid) = self.response(initial)? else {
                return Ok(());
            };
            let success = self.rec.client_certificate;
            let user = String::from_utf8_lossy(&decode(&authzid)).into_owned();
            return self.auth_outcome(mechanism, user, String::new(), success);
        }
        let Some((want_user, want_password)) = self.script.credentials.clone() else {
            self.respond("AUTH", arg, b"503 5.5.1 AUTH not available\r\n".to_vec())?;
            return Ok(());
        };
        let (user, password) = match mechanism.as_str() {
            "PLAIN" => {
                let Some(response) = self.response(initial)? else {
                    return Ok(());
                };
                let decoded = decode(&response);
                let mut parts = decoded.split(|&b| b == 0);
                let _authzid = parts.next();
                let user = parts.next().unwrap_or_default();
                let password = parts.next().unwrap_or_default();
                (
                    String::from_utf8_lossy(user).into_owned(),
                    String::from_utf8_lossy(password).into_owned(),
                )
            }
            "LOGIN" => {
                let user = match initial {
                    Some(ir) => ir,
                    None => match self.challenge(b"334 VXNlcm5hbWU6\r\n")? {
                        Some(r) => r,
                        None => return Ok(()),
                    },
                };
                let Some(password) = self.challenge(b"334 UGFzc3dvcmQ6\r\n")? else {
                    return Ok(());
                };
                (
                    String::from_utf8_lossy(&decode(&user)).into_owned(),
                    String::from_utf8_lossy(&decode(&password)).into_owned(),
                )
            }
            "SCRAM-SHA-256" | "SCRAM-SHA-1" => {
                return self.auth_scram(mechanism, initial, &want_user, &want_password);
            }
            "XOAUTH2" | "OAUTHBEARER" => {
                return self.auth_bearer(mechanism, initial, &want_user, &want_password);
            }
            _ => {
                self.respond(
                    "AUTH",
                    arg,
                    b"504 5.5.4 Unrecognized authentication type\r\n".to_vec(),
                )?;
                return Ok(());
            }
        };
        let success = want_user == user && want_password == password;
        self.auth_outcome(mechanism, user, password, success)
    }

    /// The initial response, or the answer to an empty challenge; `None` if cancelled.
    fn response(&mut self, initial: Option<String>) -> Step<Option<String>> {
        match initial {
            Some(ir) => Ok(Some(ir)),
            None => self.challenge(b"334 \r\n"),
        }
    }

    /// Record the attempt and send 235 or 535 (through the rules).
    fn auth_outcome(
        &mut self,
        mechanism: String,
        user: String,
        password: String,
        success: bool,
    ) -> Step<()> {
        let tls = self.tls();
        let arg = self.sasl_lines.first().cloned().unwrap_or_default();
        self.rec.auth.push(AuthAttempt {
            mechanism,
            user,
            password,
            tls,
            success,
            lines: std::mem::take(&mut self.sasl_lines),
        });
        let default: &[u8] = if success {
            b"235 2.7.0 Authentication successful\r\n"
        } else {
            b"535 5.7.8 Authentication credentials invalid\r\n"
        };
        let sent = self.respond("AUTH", &arg, default.to_vec())?;
        if positive(&sent) && success {
            self.env.authenticated = true;
        }
        Ok(())
    }

    /// The server side of SCRAM (RFC 5802 §3), with its own salt and nonce.
    fn auth_scram(
        &mut self,
        mechanism: String,
        initial: Option<String>,
        want_user: &str,
        want_password: &str,
    ) -> Step<()> {
        use ring::{digest, hmac, pbkdf2};
        let (pbkdf, mac, hash) = if mechanism == "SCRAM-SHA-256" {
            (
                pbkdf2::PBKDF2_HMAC_SHA256,
                hmac::HMAC_SHA256,
                &digest::SHA256,
            )
        } else {
            (
                pbkdf2::PBKDF2_HMAC_SHA1,
                hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                &digest::SHA1_FOR_LEGACY_USE_ONLY,
            )
        };
        let Some(first) = self.response(initial)? else {
            return Ok(());
        };
        let first = String::from_utf8_lossy(&decode(&first)).into_owned();
        let bare = first.strip_prefix("n,,").unwrap_or_default().to_string();
        let mut user = String::new();
        let mut client_nonce = String::new();
        for attr in bare.split(',') {
            if let Some(u) = attr.strip_prefix("n=") {
                user = u.replace("=2C", ",").replace("=3D", "=");
            } else if let Some(r) = attr.strip_prefix("r=") {
                client_nonce = r.to_string();
            }
        }
        let nonce = format!("{client_nonce}server-nonce-0123");
        let salt = b"smtpsend-test-salt";
        let iterations = self.script.scram_iterations;
        let server_first = format!("r={nonce},s={},i={iterations}", BASE64.encode(salt));
        let challenge = format!("334 {}\r\n", BASE64.encode(&server_first));
        let Some(final_) = self.challenge(challenge.as_bytes())? else {
            return Ok(());
        };
        let final_ = String::from_utf8_lossy(&decode(&final_)).into_owned();
        let Some((without_proof, proof)) = final_.rsplit_once(",p=") else {
            return self.auth_outcome(mechanism, user, String::new(), false);
        };
        let rounds = std::num::NonZeroU32::new(iterations.max(1)).expect("non-zero");
        let mut salted = vec![0u8; hash.output_len()];
        pbkdf2::derive(pbkdf, rounds, salt, want_password.as_bytes(), &mut salted);
        let salted = hmac::Key::new(mac, &salted);
        let client_key = hmac::sign(&salted, b"Client Key");
        let server_key = hmac::sign(&salted, b"Server Key");
        let stored_key = digest::digest(hash, client_key.as_ref());
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let signature = hmac::sign(
            &hmac::Key::new(mac, stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let expected: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(signature.as_ref())
            .map(|(k, s)| k ^ s)
            .collect();
        let success = user == want_user
            && without_proof == format!("c=biws,r={nonce}")
            && decode(proof) == expected;
        if !success {
            return self.auth_outcome(mechanism, user, String::new(), false);
        }
        let mut server_signature = hmac::sign(
            &hmac::Key::new(mac, server_key.as_ref()),
            auth_message.as_bytes(),
        )
        .as_ref()
        .to_vec();
        if self.script.scram_wrong_signature {
            server_signature[0] ^= 1;
        }
        let verifier = format!(
            "334 {}\r\n",
            BASE64.encode(format!("v={}", BASE64.encode(server_signature)))
        );
        let Some(last) = self.challenge(verifier.as_bytes())? else {
            return Ok(());
        };
        let success = last.is_empty();
        self.auth_outcome(mechanism, user, String::new(), success)
    }

    /// XOAUTH2 and OAUTHBEARER: the password is the token. A wrong one gets the JSON error
    /// challenge, whose answer (empty, or ^A for OAUTHBEARER) is read before the 535.
    fn auth_bearer(
        &mut self,
        mechanism: String,
        initial: Option<String>,
        want_user: &str,
        want_token: &str,
    ) -> Step<()> {
        let Some(response) = self.response(initial)? else {
            return Ok(());
        };
        let decoded = String::from_utf8_lossy(&decode(&response)).into_owned();
        let (user, rest) = if mechanism == "XOAUTH2" {
            let rest = decoded.strip_prefix("user=").unwrap_or_default();
            rest.split_once('\x01').unwrap_or_default()
        } else {
            let rest = decoded.strip_prefix("n,a=").unwrap_or_default();
            rest.split_once(",\x01").unwrap_or_default()
        };
        let user = user.replace("=2C", ",").replace("=3D", "=");
        let token = rest
            .split('\x01')
            .find_map(|kv| kv.strip_prefix("auth=Bearer "))
            .unwrap_or_default()
            .to_string();
        let success = user == want_user && token == want_token && decoded.ends_with("\x01\x01");
        if !success {
            let json = r#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
            let challenge = format!("334 {}\r\n", BASE64.encode(json));
            if self.challenge(challenge.as_bytes())?.is_none() {
                return Ok(());
            }
        }
        self.auth_outcome(mechanism, user, token, success)
    }

    /// Send a 334 challenge and read the client's response line; `None` if it cancelled.
    fn challenge(&mut self, challenge: &[u8]) -> Step<Option<String>> {
        self.flush()?;
        self.write(challenge)?;
        let Some((line, _)) = self.next_line()? else {
            return Err(Stop::Ended(End::ClientClosed));
        };
        self.sasl_lines.push(line.clone());
        if line == "*" {
            let mechanism = self
                .sasl_lines
                .first()
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or_default()
                .to_ascii_uppercase();
            let tls = self.tls();
            self.rec.auth.push(AuthAttempt {
                mechanism,
                user: String::new(),
                password: String::new(),
                tls,
                success: false,
                lines: std::mem::take(&mut self.sasl_lines),
            });
            self.respond(
                "AUTH",
                "",
                b"501 5.7.0 Authentication cancelled\r\n".to_vec(),
            )?;
            return Ok(None);
        }
        Ok(Some(line))
    }

    /// Receive message data up to the final dot (RFC 5321 §4.1.1.4), then reply.
    fn data(&mut self) -> Step<()> {
        let tls = self.tls();
        let mut scanned: usize = 0;
        let end = loop {
            let found = if self.buf.starts_with(b".\r\n") {
                Some(0)
            } else {
                find(&self.buf[scanned.saturating_sub(4)..], b"\r\n.\r\n")
                    .map(|i| i + scanned.saturating_sub(4) + 2)
            };
            if let Some(limit) = self.script.close_mid_data {
                let arrived = found.map_or(self.buf.len(), |e| e + 3);
                if arrived >= limit {
                    if let Some(reply) = self.script.close_mid_data_reply.clone() {
                        self.write(&reply)?;
                    }
                    self.close()?;
                }
            }
            if let Some(end) = found {
                break end;
            }
            scanned = self.buf.len();
            self.read_flight()?;
        };
        let (wire, flights) = self.consume(end);
        let _ = self.consume(3);
        for f in flights {
            if let Some(flight) = self.rec.flights.get_mut(f) {
                flight.items.push("<data>".into());
            }
        }
        let content = unstuff(&wire);
        let default: &[u8] = if self.size_limit().is_some_and(|limit| content.len() > limit) {
            b"552 5.3.4 Message size exceeds fixed limit\r\n"
        } else {
            b"250 2.0.0 Ok: queued\r\n"
        };
        let sent = self.respond(DATA_END, "", default.to_vec())?;
        self.rec.messages.push(Message {
            mail_from: self.env.mail_from.take().unwrap_or_default(),
            rcpt_to: std::mem::take(&mut self.env.rcpt_to),
            wire,
            content,
            accepted: positive(&sent),
            tls,
            chunked: false,
            decided: Instant::now(),
        });
        Ok(())
    }

    /// The SIZE limit offered in the current EHLO keywords (RFC 1870), if any.
    fn size_limit(&self) -> Option<usize> {
        let caps = if self.tls() {
            &self.script.caps_tls
        } else {
            &self.script.caps
        };
        caps.iter().find_map(|c| {
            let mut words = c.split_whitespace();
            match (words.next(), words.next()) {
                (Some(k), Some(n)) if k.eq_ignore_ascii_case("SIZE") => {
                    n.parse().ok().filter(|&n| n > 0)
                }
                _ => None,
            }
        })
    }

    /// BDAT (RFC 3030 §2): exactly `size` octets follow the command line, whatever the
    /// reply will be; the last chunk ends the transaction.
    fn bdat(&mut self, arg: &str) -> Step<()> {
        let tls = self.tls();
        let mut words = arg.split_whitespace();
        let size: Option<usize> = words.next().and_then(|w| w.parse().ok());
        let last = words.next().is_some_and(|w| w.eq_ignore_ascii_case("LAST"));
        let Some(size) = size else {
            self.respond(
                "BDAT",
                arg,
                b"501 5.5.4 Syntax: BDAT size [LAST]\r\n".to_vec(),
            )?;
            return Ok(());
        };
        loop {
            let arrived = self.buf.len().min(size);
            if self
                .script
                .close_mid_data
                .is_some_and(|limit| arrived >= limit)
            {
                self.close()?;
            }
            if arrived == size {
                break;
            }
            self.read_flight()?;
        }
        let (chunk, flights) = self.consume(size);
        for f in flights {
            if let Some(flight) = self.rec.flights.get_mut(f) {
                flight.items.push("<data>".into());
            }
        }
        let so_far = self.env.chunks.as_ref().map_or(0, Vec::len) + chunk.len();
        let default: &[u8] = if self.env.mail_from.is_none() {
            b"503 5.5.1 Need MAIL first\r\n"
        } else if self.env.rcpt_to.is_empty() {
            b"554 5.5.1 No valid recipients\r\n"
        } else if self.size_limit().is_some_and(|limit| so_far > limit) {
            b"552 5.3.4 Message size exceeds fixed limit\r\n"
        } else if last {
            b"250 2.0.0 Ok: queued\r\n"
        } else {
            b"250 2.0.0 Chunk received\r\n"
        };
        let stage = if last && self.rule("BDAT", arg).is_none() {
            DATA_END
        } else {
            "BDAT"
        };
        let sent = self.respond(stage, arg, default.to_vec())?;
        let valid = positive(&sent) && self.env.mail_from.is_some();
        let chunks = self.env.chunks.get_or_insert_with(Vec::new);
        chunks.extend_from_slice(&chunk);
        if last || !valid {
            let wire = self.env.chunks.take().unwrap_or_default();
            if self.env.mail_from.is_some() {
                self.rec.messages.push(Message {
                    mail_from: self.env.mail_from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut self.env.rcpt_to),
                    content: wire.clone(),
                    wire,
                    accepted: valid && last,
                    tls,
                    chunked: true,
                    decided: Instant::now(),
                });
            }
        }
        Ok(())
    }
}

/// The SIZE= parameter of MAIL FROM (RFC 1870 §6).
fn declared_size(arg: &str) -> Option<usize> {
    arg.split_whitespace().find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.eq_ignore_ascii_case("SIZE")
            .then(|| v.parse().ok())
            .flatten()
    })
}

fn positive(reply: &[u8]) -> bool {
    matches!(reply.first(), Some(b'2' | b'3'))
}

/// The address inside `FROM:<...>` / `TO:<...>`, parameters dropped.
fn path_of(arg: &str, prefix: &str) -> String {
    let rest = if arg.len() >= prefix.len() && arg[..prefix.len()].eq_ignore_ascii_case(prefix) {
        &arg[prefix.len()..]
    } else {
        arg
    };
    let rest = rest.trim_start();
    match (rest.find('<'), rest.find('>')) {
        (Some(a), Some(b)) if a < b => rest[a + 1..b].to_string(),
        _ => rest.split_whitespace().next().unwrap_or("").to_string(),
    }
}

fn decode(b64: &str) -> Vec<u8> {
    BASE64
        .decode(b64.trim())
        .unwrap_or_else(|_| b64.as_bytes().to_vec())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Remove the transparency dots (RFC 5321 §4.5.2) from CRLF-terminated lines.
pub fn unstuff(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    let mut at_line_start = true;
    for &b in wire {
        if at_line_start && b == b'.' {
            at_line_start = false;
            continue;
        }
        at_line_start = false;
        out.push(b);
        if b == b'\n' {
            at_line_start = true;
        }
    }
    out
}

/// Dot-stuff CRLF-terminated lines, as a correct client must.
pub fn stuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 8);
    let mut at_line_start = true;
    for &b in content {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    out
}
