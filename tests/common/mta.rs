//! Real mail servers that a test starts on a loopback port: where `.ci/install` unpacked
//! them, the launcher process that keeps one running for as long as the test holds it, and
//! what they delivered into their Maildirs.
//!
//! `.ci/install` never installs an MTA package: it unpacks postfix, exim4-daemon-light and
//! opensmtpd with `dpkg -x` into `$SMTPSEND_TEST_MTA_DIR` (default `/opt/smtpsend-test-mta`),
//! one directory per package. A launcher script (`tests/<server>/run-<server>.sh DIR ROOT`)
//! starts a private instance from a configuration the test wrote into DIR, prints `READY`,
//! and stops the instance when its stdin closes: when [`Launcher`] is dropped, panics
//! included, or when the test process dies without running destructors.
//!
//! [`Instance`] is what the tests of Exim and OpenSMTPD share about a running server: its
//! logs, its Maildirs, and the assertions that show both when they fail.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{code, stderr};

/// Where `.ci/install` unpacks the mail server packages.
pub const DEFAULT_MTA_DIR: &str = "/opt/smtpsend-test-mta";

/// The root of an unpacked package (`dpkg -x` output: `usr/sbin/...`, `etc/...`).
pub fn package_root(package: &str) -> PathBuf {
    std::env::var_os("SMTPSEND_TEST_MTA_DIR")
        .map_or_else(|| PathBuf::from(DEFAULT_MTA_DIR), PathBuf::from)
        .join(package)
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `None` with a printed "skipped: no `what`: ..." where a server the test needs cannot run;
/// with `CI=true` a failure instead.
pub fn skip<T>(what: &str, problem: &str) -> Option<T> {
    assert!(
        !in_ci(),
        "no {what}, and CI=true does not allow skipping: {problem}"
    );
    eprintln!("skipped: no {what}: {problem}");
    None
}

pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Why a server from this package cannot be started here, if it cannot: the program is
/// missing (`.ci/install` not run), the system users it runs as are missing, or this is
/// not root.
pub fn unavailable(package: &str, program: &str, users: &[&str]) -> Option<String> {
    let path = package_root(package).join(program);
    if !path.exists() {
        return Some(format!(
            "{} not found; .ci/install unpacks the {package} package there",
            path.display()
        ));
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for user in users {
        if !passwd.lines().any(|l| l.split(':').next() == Some(*user)) {
            return Some(format!(
                "no system user {user}; .ci/install creates it for {package}"
            ));
        }
    }
    if !running_as_root() {
        return Some(format!("{package} can only be started as root"));
    }
    None
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("binding 127.0.0.1 port 0: {e}"))
}

/// Runs `try_start` until an instance is up, three times at most: a port is free when
/// probed but may be taken before the server binds it. The error has every attempt's.
pub fn start_with_retries<T>(
    mut try_start: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let mut failures = String::new();
    for attempt in 1..=3 {
        match try_start() {
            Ok(instance) => return Ok(instance),
            Err(e) => failures.push_str(&format!("--- attempt {attempt} ---\n{e}\n")),
        }
    }
    Err(format!("it did not start\n{failures}"))
}

/// A token for an instance's banner, naming this test process and the port: a greeting
/// without it comes from another server that took the port.
pub fn banner_token(port: u16) -> String {
    format!("smtpsend-test-{}-{port}", std::process::id())
}

/// `Ok` when `greeting` is this instance's: `220 ` and its banner token.
pub fn check_greeting(greeting: Option<String>, port: u16, banner: &str) -> Result<(), String> {
    match greeting {
        Some(line) if line.starts_with("220 ") && line.contains(banner) => Ok(()),
        other => Err(format!(
            "127.0.0.1:{port} greeted with {other:?}, not this instance's banner"
        )),
    }
}

/// The first line a server on 127.0.0.1:`port` sends, tried until `limit` has passed (at
/// least once).
pub fn greeting(port: u16, limit: Duration) -> Option<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut line = String::new();
            let _ = BufReader::new(&s).read_line(&mut line);
            let _ = s.write_all(b"QUIT\r\n");
            return Some(line.trim_end().to_owned());
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A launcher script running a server: `bash SCRIPT ARGS...`, its stderr in `log`. The
/// script exits when its server does, so a server that refuses its configuration is seen
/// at once.
pub struct Launcher {
    child: Child,
    /// Held open: the launcher stops its server when it reads end of file here.
    stdin: Option<ChildStdin>,
    /// How long stopping may take before the launcher is killed.
    stop_limit: Duration,
}

impl Launcher {
    /// Runs the script and waits up to `limit` for its `READY` line. The error ends with
    /// what the script wrote to `log`.
    pub fn start(
        script: &str,
        args: &[&Path],
        log: &Path,
        limit: Duration,
    ) -> Result<Launcher, String> {
        Launcher::spawn(script, args, log, limit).map_err(|e| {
            let name = Path::new(script).file_name().unwrap_or_default().display();
            let text = fs::read_to_string(log).unwrap_or_default();
            format!("{e}\n--- {name} ---\n{text}")
        })
    }

    fn spawn(
        script: &str,
        args: &[&Path],
        log: &Path,
        limit: Duration,
    ) -> Result<Launcher, String> {
        let log_file = fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new("bash")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("bash {script}: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let launcher = Launcher {
            child,
            stdin,
            stop_limit: Duration::from_secs(10),
        };
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let ready = stdout.is_some_and(|out| {
                BufReader::new(out)
                    .lines()
                    .map_while(Result::ok)
                    .any(|line| line == "READY")
            });
            let _ = tx.send(ready);
        });
        match rx.recv_timeout(limit) {
            Ok(true) => Ok(launcher),
            Ok(false) => Err("the launcher failed".to_owned()),
            Err(_) => Err(format!("no READY from the launcher after {limit:?}")),
        }
    }

    /// Whether the launcher (and with it the server) has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `limit` for this instance's greeting on 127.0.0.1:`port` (see
    /// [`check_greeting`]).
    pub fn expect_greeting(
        &mut self,
        port: u16,
        banner: &str,
        limit: Duration,
    ) -> Result<(), String> {
        let greeting = self.greeting(port, limit);
        check_greeting(greeting, port, banner)
    }

    /// The first line the server sends on 127.0.0.1:`port`, tried until `limit` has passed
    /// or the server has exited.
    pub fn greeting(&mut self, port: u16, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline && !self.exited() {
            if let Some(line) = greeting(port, Duration::ZERO) {
                return Some(line);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        // End of file on its stdin: the launcher stops its server and exits.
        drop(self.stdin.take());
        let deadline = Instant::now() + self.stop_limit;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A private server that a test started, as the checks its tests share see it.
pub trait Instance {
    /// The trace fields the server puts in front of a delivered message.
    const TRACE: &'static [&'static str];

    /// The server's logs, for a failure message.
    fn logs(&self) -> String;

    /// The directory with one Maildir per local part.
    fn mail_dir(&self) -> PathBuf;

    /// Waits until the server has delivered (or bounced) every message it accepted.
    fn wait_until_delivered(&self);

    /// Every message delivered to this local part's Maildir, with the trace fields.
    fn mailbox(&self, user: &str) -> Vec<Vec<u8>> {
        maildir(&self.mail_dir().join(user))
    }

    /// The one message in this local part's Maildir: the trace fields, and the message.
    #[track_caller]
    fn only_message(&self, user: &str) -> (String, Vec<u8>) {
        let mut messages = self.mailbox(user);
        assert_eq!(
            messages.len(),
            1,
            "{user} should have exactly one message, has {}\n{}",
            messages.len(),
            self.logs()
        );
        let file = messages.remove(0);
        let (trace, message) = split_trace(&file, Self::TRACE);
        (trace, message.to_vec())
    }
}

/// 20 messages to `rcpt` (bob@ a domain the server delivers locally) queued while the relay
/// was down, then flushed to `server` on `port` by one `smtpsend -q`: the queue is left
/// empty, and bob's mailbox holds each message as sent. How many connections that took is
/// for the caller to read in its server's log.
pub fn flush_twenty_queued(server: &impl Instance, port: u16, rcpt: &str) {
    let q = super::spool::Queue::new();
    let down = super::spool::dead_port();
    let inputs: Vec<Vec<u8>> = (0..20)
        .map(|n| {
            message(
                &format!("queued-{n}"),
                super::RECIPIENT,
                &format!("message {n}\n"),
            )
        })
        .collect();
    for input in &inputs {
        let out = q.send(down.port(), &[rcpt], input.clone());
        assert_exit(&out, 0, server);
    }
    assert_eq!(q.entries().len(), 20);
    let out = q.flush(port, false);
    assert_exit(&out, 0, server);
    server.wait_until_delivered();
    q.assert_empty();
    let with_ids = |messages: Vec<Vec<u8>>| {
        let mut out: Vec<(String, Vec<u8>)> =
            messages.into_iter().map(|m| (message_id(&m), m)).collect();
        out.sort();
        out
    };
    let delivered = with_ids(
        server
            .mailbox("bob")
            .iter()
            .map(|file| split_trace(file, server_trace(server)).1.to_vec())
            .collect(),
    );
    let expected = with_ids(inputs.iter().map(|i| as_stored_with_lf(i)).collect());
    assert!(
        delivered == expected,
        "the 20 messages as sent\n{}",
        server.logs()
    );
}

/// The trace fields of `server`'s type.
fn server_trace<I: Instance>(_: &I) -> &'static [&'static str] {
    I::TRACE
}

/// smtpsend exited with `expected`; else a failure with its stderr and the server's logs.
#[track_caller]
pub fn assert_exit(out: &Output, expected: i32, server: &impl Instance) {
    assert_eq!(
        code(out),
        expected,
        "smtpsend exit status (wanted {expected})\n--- stderr ---\n{}\n{}",
        stderr(out),
        server.logs()
    );
}

/// `got` is `want` byte for byte; else a failure naming the first difference, with the
/// server's logs.
#[track_caller]
pub fn assert_same_bytes(got: &[u8], want: &[u8], what: &str, server: &impl Instance) {
    if let Some(diff) = first_difference(got, want) {
        panic!("{what}: {diff}\n{}", server.logs());
    }
}

/// Every file below `dir` (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Waits until `pending()` is empty or `limit` has passed; `Err` with what was left.
pub fn wait_until_empty(
    limit: Duration,
    mut pending: impl FnMut() -> Vec<PathBuf>,
) -> Result<(), Vec<PathBuf>> {
    let deadline = Instant::now() + limit;
    loop {
        let left = pending();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(left);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Every message delivered into the Maildir `dir` (`new/` and `cur/`), in name order.
pub fn maildir(dir: &Path) -> Vec<Vec<u8>> {
    let mut files = files_under(&dir.join("new"));
    files.extend(files_under(&dir.join("cur")));
    files.sort();
    files
        .iter()
        .map(|f| fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
        .collect()
}

/// A delivered file split into the trace fields the server put in front of the message
/// (the fields named in `names`, with their continuation lines) and the message.
pub fn split_trace<'a>(file: &'a [u8], names: &[&str]) -> (String, &'a [u8]) {
    let mut rest = file;
    let mut trace = String::new();
    let mut in_field = false;
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..nl];
        let starts_field = names.iter().any(|name| {
            line.len() > name.len()
                && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                && line[name.len()] == b':'
        });
        let continues = in_field && line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !starts_field && !continues {
            break;
        }
        in_field = true;
        trace.push_str(&String::from_utf8_lossy(line));
        trace.push('\n');
        rest = &rest[nl + 1..];
    }
    (trace, rest)
}

/// What a server that stores lines with LF keeps of a message the client sent as `input`
/// (bare LF or CR, or CRLF line ends): every line end an LF, and a final one added.
pub fn as_stored_with_lf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + 1);
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'\r' => {
                out.push(b'\n');
                if input.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

/// Where two byte strings first differ, for a failure message that does not print
/// megabytes: `None` when they are equal.
pub fn first_difference(got: &[u8], want: &[u8]) -> Option<String> {
    if got == want {
        return None;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let around = |b: &[u8]| {
        let from = at.saturating_sub(40);
        String::from_utf8_lossy(&b[from..b.len().min(at + 40)]).into_owned()
    };
    Some(format!(
        "{} bytes where {} were expected; first difference at byte {at}:\n  got  {:?}\n  want {:?}",
        got.len(),
        want.len(),
        around(got),
        around(want)
    ))
}

/// A message of at least `size` bytes with complete headers (so a client sends it as is):
/// LF line ends, lines of varied length, lines that start with one or two dots, a lone dot
/// (message text under `-i`), empty lines and UTF-8.
pub fn big_message(id: &str, to: &str, size: usize) -> Vec<u8> {
    let mut out = format!(
        "From: Alice <alice@example.org>\nTo: {to}\nSubject: {id}\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <{id}@smtpsend.test>\n\
         MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: 8bit\n\n"
    )
    .into_bytes();
    let mut i = 0usize;
    while out.len() < size {
        let line = match i % 8 {
            0 => format!(".leading dot {i}"),
            1 => format!("..two leading dots {i}"),
            2 => ".".to_owned(),
            3 => String::new(),
            4 => format!("{i} {}", "x".repeat(900)),
            5 => format!("{i} Grüße aus Köln, 日本語, ✉"),
            _ => format!("line {i} of the body, ordinary text"),
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        i += 1;
    }
    out
}

/// A self-signed certificate for localhost and 127.0.0.1 made with rcgen, written as
/// `cert.pem` and `key.pem` into `dir`; returns the certificate's path, which a client can
/// be told to trust.
pub fn write_certificate(dir: &Path) -> PathBuf {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate parameters");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let key = rcgen::KeyPair::generate().expect("key pair");
    let certificate = params.self_signed(&key).expect("self-signed certificate");
    let cert = dir.join("cert.pem");
    fs::write(&cert, certificate.pem()).expect("cert.pem");
    // Servers refuse a key that others may read.
    let key_file = dir.join("key.pem");
    fs::write(&key_file, key.serialize_pem()).expect("key.pem");
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).expect("chmod key.pem");
    cert
}

/// A small message with complete headers, LF line ends.
pub fn message(id: &str, to: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.org>\nTo: {to}\nSubject: {id}\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <{id}@smtpsend.test>\n\n{body}"
    )
    .into_bytes()
}

/// The Message-ID field's value in a message, to tell delivered messages apart.
pub fn message_id(message: &[u8]) -> String {
    String::from_utf8_lossy(message)
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap_or("<none>")
        .to_owned()
}

/// The longest line RFC 5321 §4.5.3.1.6 allows, without its CRLF.
pub const MAX_LINE: usize = 998;

/// A message whose body has one line of `octets` octets (no spaces in it, and no line of
/// the message starts with a space, so a fold is never ambiguous) between two short ones.
pub fn long_line_message(id: &str, to: &str, octets: usize) -> Vec<u8> {
    let line: String = (0..octets)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    message(
        id,
        to,
        &format!("before the long line\n{line}\nafter the long line\n"),
    )
}

/// Whether `stored` (a message as a server that keeps LF line ends stored it) is the
/// message sent as `input` with its over-long lines folded as Postfix's
/// smtp_line_length_limit folds them: no line longer than [`MAX_LINE`] octets, and removing
/// each inserted line break and the space after it ("CRLF SP" on the wire, "LF SP" stored)
/// gives back the original bytes.
pub fn check_folded(stored: &[u8], input: &[u8]) -> Result<(), String> {
    let original = as_stored_with_lf(input);
    assert!(
        !original.windows(2).any(|w| w == b"\n "),
        "the test message must not have lines that start with a space"
    );
    let longest = stored
        .split(|&b| b == b'\n')
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    if longest > MAX_LINE {
        return Err(format!(
            "a line of {longest} octets arrived (RFC 5321 §4.5.3.1.6: at most {MAX_LINE} \
             before CRLF); it was not folded"
        ));
    }
    let mut unfolded = Vec::with_capacity(stored.len());
    let mut i = 0;
    while i < stored.len() {
        if stored[i] == b'\n' && stored.get(i + 1) == Some(&b' ') {
            i += 2;
            continue;
        }
        unfolded.push(stored[i]);
        i += 1;
    }
    match first_difference(&unfolded, &original) {
        None => Ok(()),
        Some(diff) => Err(format!(
            "without its folds the message is not the original: {diff}"
        )),
    }
}
