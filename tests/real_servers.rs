//! Interoperability: the real `smtpsend` binary against real mail servers on loopback.
//!
//! - Postfix's `smtp-sink` (package `postfix`, unpacked by `.ci/install` into
//!   `/opt/smtpsend-test-mta/postfix`): it dumps each transaction to a file, with the
//!   envelope in `X-Mail-Args` / `X-Rcpt-Args` records and the message with every CR removed
//!   and the dot-stuffing undone. It ends DATA only on `CRLF.CRLF`.
//! - aiosmtpd (PyPI), driven by `tests/real/aiosmtpd_server.py`: STARTTLS (RFC 3207),
//!   implicit TLS (RFC 8314), AUTH PLAIN and LOGIN (RFC 4954), and the exact DATA bytes
//!   (`envelope.original_content`), so CRLFs are checked byte for byte.
//!
//! Every server is started by the test on a loopback port and killed when the test ends,
//! panics included. A missing server is a failure when `CI=true` and a printed
//! "skipped: ..." note otherwise.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::common::mta;

/// smtp-sink of the postfix package as `.ci/install` unpacked it (never an installed one);
/// it finds its libraries there through LD_LIBRARY_PATH.
fn smtp_sink() -> Command {
    let root = mta::package_root("postfix");
    let mut command = Command::new(root.join("usr/sbin/smtp-sink"));
    command.env("LD_LIBRARY_PATH", root.join("usr/lib/postfix"));
    command
}
const AIOSMTPD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/real/aiosmtpd_server.py");
const SERVER_START: Duration = Duration::from_secs(30);
const CLIENT_RUN: Duration = Duration::from_secs(60);
/// After the client has exited, how long a server gets to finish writing what it received.
const SETTLE: Duration = Duration::from_millis(300);

const LOOPBACK_V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const LOOPBACK_V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

const SENDER: &str = "alice@example.org";
const RECIPIENT: &str = "bob@example.net";

// ---------------------------------------------------------------------------------------
// Skipping, loudly.

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A server this test needs is missing: fatal in CI, a visible note elsewhere.
fn missing(what: &str, install: &str) -> bool {
    assert!(
        !in_ci(),
        "{what} is missing and CI=true does not allow skipping; .ci/run installs it ({install})"
    );
    eprintln!("skipped: {what} not found; {install}");
    false
}

pub(crate) fn have_smtp_sink() -> bool {
    let path = mta::package_root("postfix").join("usr/sbin/smtp-sink");
    path.exists()
        || missing(
            &path.to_string_lossy(),
            ".ci/install unpacks the postfix package there (apt-get download, dpkg -x)",
        )
}

fn python() -> String {
    std::env::var("SMTPSEND_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn have_aiosmtpd() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok || missing(
        &format!("aiosmtpd for {}", python()),
        "install aiosmtpd: python3 -m pip install aiosmtpd",
    )
}

// ---------------------------------------------------------------------------------------
// Processes that die with the test.

/// A server process, killed and reaped on drop (so also when an assertion panics).
struct ServerProcess {
    name: &'static str,
    child: Child,
    /// Held open: the aiosmtpd launcher exits when it reads EOF here, which covers a test
    /// process that is killed before its destructors run.
    _stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl ServerProcess {
    fn log_text(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- {} log ({}) ---\n{text}", self.name, self.log.display())
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago. smtp-sink needs one named on its command line;
/// aiosmtpd binds port 0 itself and tells us.
fn free_port(ip: IpAddr) -> u16 {
    TcpListener::bind(SocketAddr::new(ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("binding {ip} port 0: {e}"))
}

fn ipv6_loopback_usable() -> bool {
    TcpListener::bind(SocketAddr::new(LOOPBACK_V6, 0)).is_ok()
}

fn log_file(dir: &Path, name: &str) -> (PathBuf, fs::File) {
    let path = dir.join(name);
    let file = fs::File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, file)
}

// ---------------------------------------------------------------------------------------
// Postfix smtp-sink.

pub(crate) struct SmtpSink {
    proc: ServerProcess,
    ip: IpAddr,
    pub(crate) port: u16,
    dumps: PathBuf,
    _dir: TempDir,
}

/// One transaction as smtp-sink dumped it.
#[derive(Debug)]
pub(crate) struct SinkDump {
    mail_args: String,
    rcpt_args: Vec<String>,
    /// The message as smtp-sink wrote it: every CR dropped, dot-stuffing undone, and a final
    /// LF that comes from the `CRLF.CRLF` terminator.
    pub(crate) message: Vec<u8>,
}

impl SmtpSink {
    pub(crate) fn start(ip: IpAddr) -> SmtpSink {
        let dir = tempfile::tempdir().expect("temp dir");
        let dumps = dir.path().join("dumps");
        fs::create_dir(&dumps).expect("dump dir");
        // smtp-sink refuses to keep root privileges; `-u` names whom to become.
        let as_root = fs::metadata(dir.path())
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let mut last_log = String::new();
        for attempt in 0..5 {
            let port = free_port(ip);
            // The greeting carries this name, so we know the listener is ours.
            let banner = format!("sink-{}-{port}", std::process::id());
            let listen = match ip {
                IpAddr::V4(a) => format!("inet:{a}:{port}"),
                IpAddr::V6(a) => format!("inet:[{a}]:{port}"),
            };
            let (log, file) = log_file(dir.path(), &format!("smtp-sink-{attempt}.log"));
            let mut cmd = smtp_sink();
            if as_root {
                cmd.args(["-u", "root"]);
            }
            // -v: the SMTP commands go to the log, for failures and for the AUTH check.
            cmd.arg(if ip.is_ipv6() { "-6" } else { "-4" })
                .args(["-v", "-h", &banner, "-d"])
                .arg(format!("{}/msg.", dumps.display()))
                .arg(listen)
                .arg("16")
                .stdin(Stdio::null())
                .stdout(file.try_clone().expect("log fd"))
                .stderr(file);
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("starting smtp-sink: {e}"));
            let mut proc = ServerProcess {
                name: "smtp-sink",
                child,
                _stdin: None,
                log,
            };
            if wait_for_banner(&mut proc, SocketAddr::new(ip, port), &banner) {
                return SmtpSink {
                    proc,
                    ip,
                    port,
                    dumps,
                    _dir: dir,
                };
            }
            last_log = proc.log_text();
        }
        panic!("smtp-sink did not start on {ip}\n{last_log}");
    }

    fn host(&self) -> String {
        self.ip.to_string()
    }

    /// Every transaction dumped so far, in no particular order.
    pub(crate) fn dumps(&self) -> Vec<SinkDump> {
        thread::sleep(SETTLE);
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dumps).expect("read dump dir") {
            let path = entry.expect("dump entry").path();
            let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push(parse_sink_dump(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}\n{}\n{}",
                    path.display(),
                    String::from_utf8_lossy(&bytes),
                    self.proc.log_text()
                )
            }));
        }
        out
    }

    fn only_dump(&self) -> SinkDump {
        let mut dumps = self.dumps();
        assert_eq!(
            dumps.len(),
            1,
            "smtp-sink should have exactly one message, has {}: {dumps:#?}\n{}",
            dumps.len(),
            self.proc.log_text()
        );
        dumps.remove(0)
    }
}

/// Waits until `addr` greets with `banner`. False when the process died (the port was taken
/// between our probe and its bind) or someone else's server answered there.
fn wait_for_banner(proc: &mut ServerProcess, addr: SocketAddr, banner: &str) -> bool {
    let deadline = Instant::now() + SERVER_START;
    while Instant::now() < deadline {
        if proc.exited() {
            return false;
        }
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut line = String::new();
            let _ = BufReader::new(&s).read_line(&mut line);
            let _ = s.write_all(b"QUIT\r\n");
            return line.starts_with("220 ") && line.contains(banner);
        }
        thread::sleep(Duration::from_millis(25));
    }
    false
}

/// Splits a dump into smtp-sink's own records and the message. The records end with a
/// three-line `Received:` header (`Received: ...`, then two lines starting with a tab).
fn parse_sink_dump(bytes: &[u8]) -> Result<SinkDump, String> {
    let mut mail_args = None;
    let mut rcpt_args = Vec::new();
    let mut rest = bytes;
    let mut in_received = false;
    loop {
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return Err("no end of smtp-sink's records".into());
        };
        let line = String::from_utf8_lossy(&rest[..nl]).into_owned();
        if in_received && !line.starts_with('\t') {
            break;
        }
        if let Some(v) = line.strip_prefix("X-Mail-Args: ") {
            mail_args = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("X-Rcpt-Args: ") {
            rcpt_args.push(v.to_owned());
        } else if line.starts_with("Received: ") {
            in_received = true;
        }
        rest = &rest[nl + 1..];
    }
    Ok(SinkDump {
        mail_args: mail_args.ok_or("no X-Mail-Args record")?,
        rcpt_args,
        message: rest.to_vec(),
    })
}

/// What smtp-sink writes for a message that went over the wire as `wire` (CRLF lines,
/// before dot-stuffing): the CRs dropped, plus the LF of the terminator.
fn as_smtp_sink_dumps_it(wire: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = wire.iter().copied().filter(|&b| b != b'\r').collect();
    v.push(b'\n');
    v
}

/// The address part of an `X-Mail-Args` / `X-Rcpt-Args` record (`<a@b> BODY=8BITMIME`).
fn path_of(args: &str) -> &str {
    args.split(' ').next().unwrap_or("")
}

// ---------------------------------------------------------------------------------------
// aiosmtpd.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Plain,
    StartTls,
    Implicit,
}

struct Aiosmtpd {
    proc: ServerProcess,
    port: u16,
    out: PathBuf,
    cert: PathBuf,
    _dir: TempDir,
}

/// One message as the aiosmtpd launcher recorded it.
#[derive(Debug)]
struct Delivered {
    mail_from: String,
    mail_options: Vec<String>,
    rcpt_tos: Vec<String>,
    content: Vec<u8>,
    session: String,
}

impl Aiosmtpd {
    fn start(mode: Mode) -> Aiosmtpd {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out");
        let (cert, key) = write_self_signed_cert(dir.path());
        let (log, file) = log_file(dir.path(), "aiosmtpd.log");
        let mode_arg = match mode {
            Mode::Plain => "plain",
            Mode::StartTls => "starttls",
            Mode::Implicit => "implicit",
        };
        let mut child = Command::new(python())
            .arg(AIOSMTPD_SCRIPT)
            .args(["--host", "127.0.0.1", "--port", "0", "--mode", mode_arg])
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--out")
            .arg(&out)
            .args(["--user", "test", "--password", "secret"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} {AIOSMTPD_SCRIPT}: {e}", python()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let proc = ServerProcess {
            name: "aiosmtpd",
            child,
            _stdin: stdin,
            log,
        };
        // The launcher prints "READY <port>" once it listens.
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.strip_prefix("READY ") {
                    let _ = tx.send(port.trim().parse::<u16>());
                    break;
                }
            }
        });
        let port = match rx.recv_timeout(SERVER_START) {
            Ok(Ok(port)) => port,
            other => panic!(
                "aiosmtpd did not report READY: {other:?}\n{}",
                proc.log_text()
            ),
        };
        Aiosmtpd {
            proc,
            port,
            out,
            cert,
            _dir: dir,
        }
    }

    fn messages(&self) -> Vec<Delivered> {
        thread::sleep(SETTLE);
        let mut dirs: Vec<PathBuf> = match fs::read_dir(&self.out) {
            Ok(rd) => rd
                .map(|e| e.expect("out entry").path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("msg-"))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        dirs.sort();
        dirs.iter()
            .map(|d| {
                let text = |f: &str| String::from_utf8_lossy(&read(&d.join(f))).into_owned();
                let lines = |f: &str| text(f).lines().map(str::to_owned).collect::<Vec<_>>();
                Delivered {
                    mail_from: text("mail_from"),
                    mail_options: lines("mail_options"),
                    rcpt_tos: lines("rcpt_tos"),
                    content: read(&d.join("content")),
                    session: text("session"),
                }
            })
            .collect()
    }

    fn only_message(&self) -> Delivered {
        let mut msgs = self.messages();
        assert_eq!(
            msgs.len(),
            1,
            "aiosmtpd should have exactly one message, has {}: {msgs:#?}\n{}",
            msgs.len(),
            self.proc.log_text()
        );
        msgs.remove(0)
    }

    fn assert_nothing_delivered(&self) {
        let msgs = self.messages();
        assert!(
            msgs.is_empty(),
            "nothing should have been delivered: {msgs:#?}\n{}",
            self.proc.log_text()
        );
    }

    /// One line per AUTH attempt: `<MECHANISM> <login> ok|fail`.
    fn auth_log(&self) -> String {
        fs::read_to_string(self.out.join("auth.log")).unwrap_or_default()
    }
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A self-signed certificate for `localhost`, `127.0.0.1` and `::1`; returns (cert, key).
fn write_self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let ck = rcgen::generate_simple_self_signed(names).expect("rcgen self-signed certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    fs::write(&cert, ck.cert.pem()).expect("write cert");
    fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
    (cert, key)
}

// ---------------------------------------------------------------------------------------
// The client.

/// Runs `smtpsend --host HOST --port PORT --config EMPTY ARGS... < input`, with HOME in a
/// temporary directory so no configuration of this machine takes part.
fn smtpsend(host: &str, port: u16, args: &[&str], password: Option<&str>, input: &[u8]) -> Output {
    let home = tempfile::tempdir().expect("temp dir");
    let config = home.path().join("smtpsend.toml");
    fs::write(&config, "queue_on_tempfail = false\n").expect("test config");
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    // Queue runs in tests are the tests' own: no background runner.
    cmd.env("SMTPSEND_QUEUE_RUNNER", "off");
    cmd.args(["--host", host, "--port", &port.to_string(), "--config"])
        .arg(&config)
        .args(args)
        .env("HOME", home.path())
        .env_remove("SMTPSEND_PASSWORD")
        .timeout(CLIENT_RUN)
        .write_stdin(input.to_vec());
    if let Some(p) = password {
        cmd.env("SMTPSEND_PASSWORD", p);
    }
    cmd.output().expect("running smtpsend")
}

#[track_caller]
fn assert_exit(out: &Output, code: i32, server_log: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "smtpsend exit status (wanted {code})\n--- stderr ---\n{}\n--- stdout ---\n{}\n{server_log}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
    );
}

#[track_caller]
fn assert_failed(out: &Output, server_log: &str) {
    assert!(
        !out.status.success(),
        "smtpsend should have failed\n--- stderr ---\n{}\n{server_log}",
        String::from_utf8_lossy(&out.stderr),
    );
}

// ---------------------------------------------------------------------------------------
// Messages and what should arrive.

/// The bytes a conforming client puts between DATA and the terminator for `input` (before
/// dot-stuffing): bare LF and bare CR become CRLF, and an unterminated last line gets a
/// CRLF (RFC 5321 §2.3.8, §4.1.1.4). Written independently of the library's encoder.
fn crlf_normalise(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 16 + 2);
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if input.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn headers(subject: &str) -> String {
    format!(
        "From: Alice <{SENDER}>\nTo: Bob <{RECIPIENT}>\nSubject: {subject}\n\
         Date: Tue, 25 Nov 2025 13:00:00 +0000\nMessage-ID: <{subject}@smtpsend.test>\n\
         MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: 8bit\n\n"
    )
}

/// Bare LF line ends, lines that start with dots, a line of 998 octets (the most RFC 5321
/// §4.5.3.1.6 allows), UTF-8, a CRLF line among LF ones, and no final newline.
fn awkward_message(subject: &str) -> Vec<u8> {
    let mut m = headers(subject).into_bytes();
    m.extend_from_slice(b".one leading dot\n..two leading dots\n...\n. \n");
    m.extend_from_slice(b"a line ending in CRLF\r\n");
    m.extend_from_slice("UTF-8: Grüße aus Köln, 日本語, ✉\n".as_bytes());
    let long: String = (0..998)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    m.extend_from_slice(long.as_bytes());
    m.extend_from_slice(b"\n\n.\tdot then tab\nlast line, no newline");
    m
}

/// Line ends that some servers have taken for the end of DATA, each followed by a whole
/// second transaction. Sent with `-i`, so a lone `.` line is message text.
fn smuggling_message() -> Vec<u8> {
    let smuggled = "MAIL FROM:<mallory@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n\
                    Subject: smuggled\r\n\r\nsmuggled\r\n";
    let variants: [&[u8]; 9] = [
        b"\n.\n",
        b"\r.\r",
        b"\r\n.\n",
        b"\n.\r\n",
        b"\r.\r\n",
        b"\r\n.\r",
        b"\r\n.\r\n",
        b"\n.\r",
        b"\r\n.\r\r\n",
    ];
    let mut m = headers("smuggling").into_bytes();
    m.extend_from_slice(b"before\n");
    for (i, v) in variants.iter().enumerate() {
        m.extend_from_slice(format!("variant {i}").as_bytes());
        m.extend_from_slice(v);
        m.extend_from_slice(smuggled.as_bytes());
    }
    // A line that is just a dot, and then the end of input with no newline.
    m.extend_from_slice(b".\r\nend\n.");
    m
}

// ---------------------------------------------------------------------------------------
// smtp-sink (Postfix)

#[test]
fn smtp_sink_receives_message_byte_exact() {
    if !have_smtp_sink() {
        return;
    }
    let sink = SmtpSink::start(LOOPBACK_V4);
    let input = awkward_message("byte-exact");
    let out = smtpsend(
        &sink.host(),
        sink.port,
        &["--tls", "off", "-f", SENDER, RECIPIENT],
        None,
        &input,
    );
    assert_exit(&out, 0, &sink.proc.log_text());
    let dump = sink.only_dump();
    let want = as_smtp_sink_dumps_it(&crlf_normalise(&input));
    assert_eq!(
        String::from_utf8_lossy(&dump.message),
        String::from_utf8_lossy(&want),
        "message as smtp-sink received it (CRs removed by smtp-sink)"
    );
    assert_eq!(dump.message, want);
    assert_eq!(path_of(&dump.mail_args), format!("<{SENDER}>"));
    assert_eq!(dump.rcpt_args, [format!("<{RECIPIENT}>")]);
}

#[test]
fn smtp_sink_multiple_recipients() {
    if !have_smtp_sink() {
        return;
    }
    let sink = SmtpSink::start(LOOPBACK_V4);
    let rcpts = [
        "one@example.net",
        "two@example.com",
        "Three.Four@example.org",
    ];
    let input = format!("{}three recipients\n", headers("multi")).into_bytes();
    let mut args = vec!["--tls", "off", "-f", SENDER];
    args.extend(rcpts);
    let out = smtpsend(&sink.host(), sink.port, &args, None, &input);
    assert_exit(&out, 0, &sink.proc.log_text());
    let dump = sink.only_dump();
    assert_eq!(path_of(&dump.mail_args), format!("<{SENDER}>"));
    let got: Vec<&str> = dump.rcpt_args.iter().map(|a| path_of(a)).collect();
    let want: Vec<String> = rcpts.iter().map(|r| format!("<{r}>")).collect();
    assert_eq!(got, want, "RCPT TO records, in order: {:?}", dump.rcpt_args);
    assert_eq!(dump.message, as_smtp_sink_dumps_it(&crlf_normalise(&input)));
}

#[test]
fn smtp_sink_over_ipv6_loopback() {
    if !have_smtp_sink() {
        return;
    }
    if !ipv6_loopback_usable() {
        eprintln!("skipped: ::1 cannot be bound on this machine (no IPv6 loopback)");
        return;
    }
    let sink = SmtpSink::start(LOOPBACK_V6);
    let input = format!("{}over IPv6\n", headers("ipv6")).into_bytes();
    let out = smtpsend(
        &sink.host(),
        sink.port,
        &["--tls", "off", "-f", SENDER, RECIPIENT],
        None,
        &input,
    );
    assert_exit(&out, 0, &sink.proc.log_text());
    let dump = sink.only_dump();
    assert_eq!(dump.rcpt_args, [format!("<{RECIPIENT}>")]);
    assert_eq!(dump.message, as_smtp_sink_dumps_it(&crlf_normalise(&input)));
}

#[test]
fn eight_bit_body_is_announced_with_body_8bitmime() {
    if !have_smtp_sink() {
        return;
    }
    let sink = SmtpSink::start(LOOPBACK_V4);
    let input = format!("{}Grüße\n", headers("eight-bit")).into_bytes();
    let out = smtpsend(
        &sink.host(),
        sink.port,
        &["--tls", "off", "-f", SENDER, RECIPIENT],
        None,
        &input,
    );
    assert_exit(&out, 0, &sink.proc.log_text());
    let dump = sink.only_dump();
    // RFC 6152 §3: 8-bit data only after MAIL FROM with BODY=8BITMIME.
    assert!(
        dump.mail_args
            .split(' ')
            .any(|p| p.eq_ignore_ascii_case("BODY=8BITMIME")),
        "MAIL FROM parameters: {:?}",
        dump.mail_args
    );
}

#[test]
fn lone_dot_line_ends_input_without_dash_i() {
    if !have_smtp_sink() {
        return;
    }
    let sink = SmtpSink::start(LOOPBACK_V4);
    let head = headers("lone-dot");
    let input = format!("{head}before\n.\nafter\n").into_bytes();
    let out = smtpsend(
        &sink.host(),
        sink.port,
        &["--tls", "off", "-f", SENDER, RECIPIENT],
        None,
        &input,
    );
    assert_exit(&out, 0, &sink.proc.log_text());
    // sendmail reads up to a line holding a single dot unless -i/-oi is given.
    let want = crlf_normalise(format!("{head}before\n").as_bytes());
    assert_eq!(
        String::from_utf8_lossy(&sink.only_dump().message),
        String::from_utf8_lossy(&as_smtp_sink_dumps_it(&want))
    );
}

#[test]
fn dash_t_takes_recipients_from_headers_and_drops_bcc() {
    if !have_smtp_sink() {
        return;
    }
    let sink = SmtpSink::start(LOOPBACK_V4);
    let head = format!(
        "From: Alice <{SENDER}>\nTo: Bob <bob@example.net>, carol@example.com\n\
         Cc: \"Dave, Jr.\" <dave@example.org>\nBcc: eve@example.net\n\
         Subject: dash-t\nDate: Tue, 25 Nov 2025 13:00:00 +0000\n\
         Message-ID: <dash-t@smtpsend.test>\n"
    );
    let input = format!("{head}\nrecipients from the header\n").into_bytes();
    let out = smtpsend(
        &sink.host(),
        sink.port,
        &["--tls", "off", "-t", "-f", SENDER],
        None,
        &input,
    );
    assert_exit(&out, 0, &sink.proc.log_text());
    let dump = sink.only_dump();
    let mut got: Vec<&str> = dump.rcpt_args.iter().map(|a| path_of(a)).collect();
    got.sort_unstable();
    assert_eq!(
        got,
        [
            "<bob@example.net>",
            "<carol@example.com>",
            "<dave@example.org>",
            "<eve@example.net>"
        ]
    );
    // RFC 5322 §3.6.3: Bcc recipients are not disclosed to the others.
    let without_bcc = String::from_utf8_lossy(&input).replace("Bcc: eve@example.net\n", "");
    assert_eq!(
        String::from_utf8_lossy(&dump.message),
        String::from_utf8_lossy(&as_smtp_sink_dumps_it(&crlf_normalise(
            without_bcc.as_bytes()
        )))
    );
}

#[test]
fn credentials_are_not_sent_without_tls() {
    if !have_smtp_sink() {
        return;
    }
    // smtp-sink offers AUTH PLAIN LOGIN in the clear and accepts anything.
    let sink = SmtpSink::start(LOOPBACK_V4);
    let input = format!("{}never delivered\n", headers("no-clear-auth")).into_bytes();
    for tls in ["off", "opportunistic"] {
        let out = smtpsend(
            &sink.host(),
            sink.port,
            &[
                "--tls", tls, "--user", "test", "--auth", "plain", "-f", SENDER, RECIPIENT,
            ],
            Some("secret"),
            &input,
        );
        assert_failed(&out, &sink.proc.log_text());
    }
    let log = sink.proc.log_text();
    assert!(
        log.contains(": EHLO "),
        "smtp-sink -v should log the commands\n{log}"
    );
    assert!(
        !log.to_ascii_uppercase().contains(": AUTH"),
        "no AUTH command may cross a plaintext connection\n{log}"
    );
    assert!(
        sink.dumps().is_empty(),
        "nothing should have been delivered"
    );
}

#[test]
fn smuggling_variants_arrive_as_one_message() {
    if !have_smtp_sink() {
        return;
    }
    let sink = SmtpSink::start(LOOPBACK_V4);
    let input = smuggling_message();
    let out = smtpsend(
        &sink.host(),
        sink.port,
        &["--tls", "off", "-i", "-f", SENDER, RECIPIENT],
        None,
        &input,
    );
    assert_exit(&out, 0, &sink.proc.log_text());
    let dump = sink.only_dump();
    assert_eq!(dump.rcpt_args, [format!("<{RECIPIENT}>")]);
    assert_eq!(
        String::from_utf8_lossy(&dump.message),
        String::from_utf8_lossy(&as_smtp_sink_dumps_it(&crlf_normalise(&input)))
    );
}

// ---------------------------------------------------------------------------------------
// aiosmtpd

#[test]
fn aiosmtpd_plain_receives_message_byte_exact() {
    if !have_aiosmtpd() {
        return;
    }
    let server = Aiosmtpd::start(Mode::Plain);
    let input = awkward_message("aiosmtpd-byte-exact");
    let out = smtpsend(
        "127.0.0.1",
        server.port,
        &["--tls", "off", "-f", SENDER, RECIPIENT],
        None,
        &input,
    );
    assert_exit(&out, 0, &server.proc.log_text());
    let msg = server.only_message();
    assert_eq!(msg.mail_from, SENDER);
    assert_eq!(msg.rcpt_tos, [RECIPIENT]);
    let want = crlf_normalise(&input);
    assert_eq!(
        String::from_utf8_lossy(&msg.content),
        String::from_utf8_lossy(&want)
    );
    assert_eq!(msg.content, want, "DATA bytes, CRLFs included");
    assert!(
        msg.mail_options
            .iter()
            .any(|o| o.eq_ignore_ascii_case("BODY=8BITMIME")),
        "MAIL FROM parameters: {:?}",
        msg.mail_options
    );
    assert!(msg.session.contains("tls=no"), "{}", msg.session);
}

#[test]
fn aiosmtpd_starttls_auth_plain_delivers() {
    if !have_aiosmtpd() {
        return;
    }
    let server = Aiosmtpd::start(Mode::StartTls);
    let cert = server.cert.to_string_lossy().into_owned();
    let input = awkward_message("starttls-plain");
    let out = smtpsend(
        "127.0.0.1",
        server.port,
        &[
            "--tls",
            "required",
            "--tls-trust-file",
            &cert,
            "--user",
            "test",
            "--auth",
            "plain",
            "-f",
            SENDER,
            RECIPIENT,
        ],
        Some("secret"),
        &input,
    );
    assert_exit(&out, 0, &server.proc.log_text());
    let msg = server.only_message();
    assert_eq!(msg.mail_from, SENDER);
    assert_eq!(msg.rcpt_tos, [RECIPIENT]);
    assert_eq!(msg.content, crlf_normalise(&input));
    assert_eq!(msg.session, "tls=yes\nauth=test\n");
    assert_eq!(server.auth_log(), "PLAIN test ok\n");
}

#[test]
fn aiosmtpd_auth_login_delivers() {
    if !have_aiosmtpd() {
        return;
    }
    let server = Aiosmtpd::start(Mode::StartTls);
    let cert = server.cert.to_string_lossy().into_owned();
    let input = format!("{}AUTH LOGIN\n", headers("auth-login")).into_bytes();
    let out = smtpsend(
        "127.0.0.1",
        server.port,
        &[
            "--tls",
            "required",
            "--tls-trust-file",
            &cert,
            "--user",
            "test",
            "--auth",
            "login",
            "-f",
            SENDER,
            RECIPIENT,
        ],
        Some("secret"),
        &input,
    );
    assert_exit(&out, 0, &server.proc.log_text());
    let msg = server.only_message();
    assert_eq!(msg.rcpt_tos, [RECIPIENT]);
    assert_eq!(msg.content, crlf_normalise(&input));
    assert_eq!(msg.session, "tls=yes\nauth=test\n");
    assert_eq!(server.auth_log(), "LOGIN test ok\n");
}

#[test]
fn aiosmtpd_wrong_password_exits_77() {
    if !have_aiosmtpd() {
        return;
    }
    let server = Aiosmtpd::start(Mode::StartTls);
    let cert = server.cert.to_string_lossy().into_owned();
    let input = format!("{}never delivered\n", headers("wrong-password")).into_bytes();
    let out = smtpsend(
        "127.0.0.1",
        server.port,
        &[
            "--tls",
            "required",
            "--tls-trust-file",
            &cert,
            "--user",
            "test",
            "--auth",
            "plain",
            "-f",
            SENDER,
            RECIPIENT,
        ],
        Some("not-the-secret"),
        &input,
    );
    assert_exit(&out, 77, &server.proc.log_text());
    server.assert_nothing_delivered();
    assert_eq!(server.auth_log(), "PLAIN test fail\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("not-the-secret"),
        "the password must not be printed: {stderr}"
    );
}

#[test]
fn aiosmtpd_implicit_tls_auth_plain_delivers() {
    if !have_aiosmtpd() {
        return;
    }
    let server = Aiosmtpd::start(Mode::Implicit);
    let cert = server.cert.to_string_lossy().into_owned();
    let input = awkward_message("implicit-tls");
    let out = smtpsend(
        "127.0.0.1",
        server.port,
        &[
            "--tls",
            "implicit",
            "--tls-trust-file",
            &cert,
            "--user",
            "test",
            "--auth",
            "plain",
            "-f",
            SENDER,
            RECIPIENT,
        ],
        Some("secret"),
        &input,
    );
    assert_exit(&out, 0, &server.proc.log_text());
    let msg = server.only_message();
    assert_eq!(msg.mail_from, SENDER);
    assert_eq!(msg.rcpt_tos, [RECIPIENT]);
    assert_eq!(msg.content, crlf_normalise(&input));
    assert_eq!(msg.session, "tls=yes\nauth=test\n");
}

#[test]
fn aiosmtpd_smuggling_variants_arrive_as_one_message() {
    if !have_aiosmtpd() {
        return;
    }
    let server = Aiosmtpd::start(Mode::Plain);
    let input = smuggling_message();
    let out = smtpsend(
        "127.0.0.1",
        server.port,
        &["--tls", "off", "-i", "-f", SENDER, RECIPIENT],
        None,
        &input,
    );
    assert_exit(&out, 0, &server.proc.log_text());
    let msg = server.only_message();
    assert_eq!(msg.mail_from, SENDER);
    assert_eq!(msg.rcpt_tos, [RECIPIENT]);
    assert_eq!(
        String::from_utf8_lossy(&msg.content),
        String::from_utf8_lossy(&crlf_normalise(&input))
    );
}

#[test]
fn aiosmtpd_rejected_recipient_exits_67() {
    if !have_aiosmtpd() {
        return;
    }
    let server = Aiosmtpd::start(Mode::Plain);
    let input = format!("{}to nobody\n", headers("rejected")).into_bytes();
    let out = smtpsend(
        "127.0.0.1",
        server.port,
        &["--tls", "off", "-f", SENDER, "reject-me@example.net"],
        None,
        &input,
    );
    assert_exit(&out, 67, &server.proc.log_text());
    server.assert_nothing_delivered();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("550"),
        "stderr should carry the server's reply: {stderr}"
    );
}

#[test]
fn aiosmtpd_deferred_recipient_exits_75() {
    if !have_aiosmtpd() {
        return;
    }
    let server = Aiosmtpd::start(Mode::Plain);
    let input = format!("{}later\n", headers("deferred")).into_bytes();
    let out = smtpsend(
        "127.0.0.1",
        server.port,
        &["--tls", "off", "-f", SENDER, "defer-me@example.net"],
        None,
        &input,
    );
    assert_exit(&out, 75, &server.proc.log_text());
    server.assert_nothing_delivered();
}

#[test]
fn aiosmtpd_untrusted_certificate_is_refused_before_auth() {
    if !have_aiosmtpd() {
        return;
    }
    let server = Aiosmtpd::start(Mode::StartTls);
    let input = format!("{}never delivered\n", headers("untrusted")).into_bytes();
    // No --tls-trust-file: the self-signed certificate is not trusted.
    let out = smtpsend(
        "127.0.0.1",
        server.port,
        &[
            "--tls", "required", "--user", "test", "--auth", "plain", "-f", SENDER, RECIPIENT,
        ],
        Some("secret"),
        &input,
    );
    assert_failed(&out, &server.proc.log_text());
    server.assert_nothing_delivered();
    assert_eq!(
        server.auth_log(),
        "",
        "no credentials may cross an unverified TLS session"
    );
}

#[test]
fn aiosmtpd_tls_required_refuses_server_without_starttls() {
    if !have_aiosmtpd() {
        return;
    }
    let server = Aiosmtpd::start(Mode::Plain);
    let input = format!("{}never delivered\n", headers("no-starttls")).into_bytes();
    let out = smtpsend(
        "127.0.0.1",
        server.port,
        &["--tls", "required", "-f", SENDER, RECIPIENT],
        None,
        &input,
    );
    assert_failed(&out, &server.proc.log_text());
    server.assert_nothing_delivered();
}

#[test]
fn aiosmtpd_opportunistic_tls_delivers_in_clear_without_starttls() {
    if !have_aiosmtpd() {
        return;
    }
    let server = Aiosmtpd::start(Mode::Plain);
    let input = format!("{}no STARTTLS offered\n", headers("opportunistic")).into_bytes();
    let out = smtpsend(
        "127.0.0.1",
        server.port,
        &["--tls", "opportunistic", "-f", SENDER, RECIPIENT],
        None,
        &input,
    );
    assert_exit(&out, 0, &server.proc.log_text());
    let msg = server.only_message();
    assert_eq!(msg.content, crlf_normalise(&input));
    assert!(msg.session.contains("tls=no"), "{}", msg.session);
}

#[test]
fn aiosmtpd_opportunistic_tls_upgrades_when_offered() {
    if !have_aiosmtpd() {
        return;
    }
    // This server offers STARTTLS and insists on it (and on AUTH after it).
    let server = Aiosmtpd::start(Mode::StartTls);
    let cert = server.cert.to_string_lossy().into_owned();
    let input = format!("{}upgraded\n", headers("opportunistic-upgrade")).into_bytes();
    let out = smtpsend(
        "127.0.0.1",
        server.port,
        &[
            "--tls",
            "opportunistic",
            "--tls-trust-file",
            &cert,
            "--user",
            "test",
            "--auth",
            "plain",
            "-f",
            SENDER,
            RECIPIENT,
        ],
        Some("secret"),
        &input,
    );
    assert_exit(&out, 0, &server.proc.log_text());
    let msg = server.only_message();
    assert_eq!(msg.content, crlf_normalise(&input));
    assert_eq!(msg.session, "tls=yes\nauth=test\n");
}

/// The helpers themselves: a dump that smtp-sink wrote is split where it should be.
#[test]
fn smtp_sink_dump_parser_splits_records_from_message() {
    let dump = b"X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Helo-Args: h\n\
                 X-Mail-Args: <a@b> BODY=8BITMIME\nX-Rcpt-Args: <c@d>\nX-Rcpt-Args: <e@f>\n\
                 Received: from h ([127.0.0.1])\n\tby s (smtp-sink) with ESMTP id 1;\n\
                 \tWed, 25 Nov 2026 13:46:16 +0000 (UTC)\nSubject: x\n\n.body\n\n";
    let d = parse_sink_dump(dump).expect("parses");
    assert_eq!(d.mail_args, "<a@b> BODY=8BITMIME");
    assert_eq!(d.rcpt_args, ["<c@d>", "<e@f>"]);
    assert_eq!(d.message, b"Subject: x\n\n.body\n\n");
    assert_eq!(
        crlf_normalise(b"a\nb\rc\r\n\r\r\nd"),
        b"a\r\nb\r\nc\r\n\r\n\r\nd\r\n"
    );
}
