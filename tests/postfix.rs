//! Interoperability with a real Postfix smtpd: the binary against a private Postfix instance
//! that each test starts on 127.0.0.1 and stops when it ends, panics included.
//!
//! Postfix is the package `.ci/install` unpacked (`dpkg -x`) into
//! `/opt/smtpsend-test-mta/postfix` (`$SMTPSEND_TEST_MTA_DIR`): its programs, daemons and
//! libraries, whichever Postfix the machine may have installed. The instance lives in a
//! temporary directory: `conf/` holds `tests/postfix/main.cf` and `master.cf` (with the
//! directory, the port, a banner token and the package's place filled in), the recipient
//! table `vmailbox` and a certificate made here with rcgen; `queue/`, `data/`, `maillog` and
//! `mail/` (one Maildir per recipient, virtual(8) delivery) are Postfix's. The system's own
//! Postfix (`/etc/postfix/main.cf`, `/var/spool/postfix`), if any, is never used nor started.
//! `tests/postfix/run-postfix.sh` runs `postfix -c DIR/conf start`, prints `READY`, and stops
//! the instance when its stdin closes: when the guard here drops it, or when this process
//! dies without running destructors.
//!
//! Postfix runs only as root. Without the unpacked package, its postfix user or root the
//! tests print "skipped: ..." and pass, except with `CI=true`, where they fail.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// SASL through this Postfix, checked by a private Dovecot auth service.
mod dovecot;

use crate::common::mta;

/// The postfix package as `.ci/install` unpacked it.
fn postfix_root() -> PathBuf {
    mta::package_root("postfix")
}

/// The `postfix` command of [`postfix_root`], which finds its libraries there.
fn postfix_command() -> Command {
    let root = postfix_root();
    let mut command = Command::new(root.join("usr/sbin/postfix"));
    command.env("LD_LIBRARY_PATH", root.join("usr/lib/postfix"));
    command
}

const LAUNCHER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/postfix/run-postfix.sh");
const MAIN_CF: &str = include_str!("postfix/main.cf");
const MASTER_CF: &str = include_str!("postfix/master.cf");
const VMAILBOX: &str = include_str!("postfix/vmailbox");

/// From spawning the launcher to a greeting on the port (it takes about 0.3 s).
const START_LIMIT: Duration = Duration::from_secs(10);
/// From the client's exit to every accepted message having left Postfix's queue.
const DELIVERY_LIMIT: Duration = Duration::from_secs(10);
const CLIENT_LIMIT: Duration = Duration::from_secs(30);
/// How long stopping the instance may take before its launcher is killed.
const STOP_LIMIT: Duration = Duration::from_secs(10);

const SENDER: &str = "alice@example.org";
/// In `tests/postfix/vmailbox`, as is `victim@example.net`; anyone else at example.net is
/// refused at RCPT.
const RECIPIENT: &str = "bob@example.net";
const UNKNOWN: &str = "nobody@example.net";

// ---------------------------------------------------------------------------------------
// Skipping, loudly (`mta::skip`: a printed note, or with `CI=true` a failure).

use mta::{running_as_root, skip};

/// A private Postfix with these lines added to `tests/postfix/main.cf`, or `None` with a
/// printed note where it cannot run (no Postfix, not root, or it would not start). With
/// `CI=true` that is a failure instead.
fn postfix_or_skip(extra_main_cf: &str) -> Option<Postfix> {
    postfix_with_mailboxes_or_skip(extra_main_cf, &[])
}

/// [`postfix_or_skip`] with Maildirs for these local parts at example.net besides the ones
/// in `tests/postfix/vmailbox`.
fn postfix_with_mailboxes_or_skip(extra_main_cf: &str, mailboxes: &[String]) -> Option<Postfix> {
    let started = match mta::unavailable("postfix", "usr/sbin/postfix", &["postfix"]) {
        Some(problem) => Err(problem),
        None => Postfix::start(extra_main_cf, mailboxes),
    };
    started.map_or_else(|problem| skip("private Postfix", &problem), Some)
}

// ---------------------------------------------------------------------------------------
// The instance.

struct Postfix {
    launcher: Child,
    /// Held open: the launcher stops Postfix when it reads end of file here.
    stdin: Option<ChildStdin>,
    port: u16,
    /// The server certificate, which a client can be told to trust.
    cert: PathBuf,
    /// SHA-256 of the certificate, in the colon form `--serverinfo` prints.
    fingerprint: String,
    /// Logs of other servers the test started beside this one (a name and a file), shown
    /// with Postfix's own in a failure message.
    other_logs: Vec<(&'static str, PathBuf)>,
    dir: TempDir,
}

impl Postfix {
    /// An instance with these lines added to `tests/postfix/main.cf`, and these local parts
    /// added to `tests/postfix/vmailbox`.
    fn start(extra_main_cf: &str, mailboxes: &[String]) -> Result<Postfix, String> {
        // When the port is taken before the master binds it, `postfix start` fails.
        mta::start_with_retries(|| Postfix::try_start(extra_main_cf, mailboxes))
    }

    fn try_start(extra_main_cf: &str, mailboxes: &[String]) -> Result<Postfix, String> {
        let started = Instant::now();
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let port = mta::free_port();
        let banner = mta::banner_token(port);
        let (cert, fingerprint) = write_config(dir.path(), port, &banner, extra_main_cf, mailboxes);
        let log = fs::File::create(dir.path().join("launcher.log"))
            .map_err(|e| format!("launcher log: {e}"))?;
        let mut launcher = Command::new("sh")
            .arg(LAUNCHER)
            .arg(dir.path())
            .arg(postfix_root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("sh {LAUNCHER}: {e}"))?;
        let stdin = launcher.stdin.take();
        let stdout = launcher.stdout.take();
        let postfix = Postfix {
            launcher,
            stdin,
            port,
            cert,
            fingerprint,
            other_logs: Vec::new(),
            dir,
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
        match rx.recv_timeout(START_LIMIT) {
            Ok(true) => {}
            Ok(false) => return Err(format!("the launcher failed\n{}", postfix.logs())),
            Err(_) => {
                return Err(format!(
                    "no READY after {START_LIMIT:?}\n{}",
                    postfix.logs()
                ));
            }
        }
        let left = START_LIMIT.saturating_sub(started.elapsed());
        mta::check_greeting(mta::greeting(port, left), port, &banner)
            .map_err(|e| format!("{e}\n{}", postfix.logs()))?;
        Ok(postfix)
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    /// The launcher's output and Postfix's log, for a failure message.
    fn logs(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let mut text = format!(
            "--- run-postfix.sh ---\n{}--- maillog ---\n{}",
            read("launcher.log"),
            read("maillog")
        );
        for (name, file) in &self.other_logs {
            let log = fs::read_to_string(file).unwrap_or_default();
            text.push_str(&format!("--- {name} ---\n{log}"));
        }
        text
    }

    fn maillog(&self) -> String {
        fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Runs the binary against this instance.
    fn smtpsend(&self, args: &[&str], input: &[u8]) -> Output {
        self.smtpsend_with("queue_on_tempfail = false\n", args, input)
    }

    /// smtpsend with this configuration file.
    fn smtpsend_with(&self, config_text: &str, args: &[&str], input: &[u8]) -> Output {
        self.run_smtpsend(config_text, None, args, input)
    }

    /// smtpsend with this password in `$SMTPSEND_PASSWORD`.
    fn smtpsend_with_password(&self, password: &str, args: &[&str], input: &[u8]) -> Output {
        self.run_smtpsend("queue_on_tempfail = false\n", Some(password), args, input)
    }

    fn run_smtpsend(
        &self,
        config_text: &str,
        password: Option<&str>,
        args: &[&str],
        input: &[u8],
    ) -> Output {
        let home = tempfile::tempdir().expect("temp dir");
        let config = home.path().join("smtpsend.toml");
        fs::write(&config, config_text).expect("test config");
        let mut command = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
        // Queue runs in tests are the tests' own: no background runner.
        command.env("SMTPSEND_QUEUE_RUNNER", "off");
        command
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path());
        match password {
            Some(password) => command.env("SMTPSEND_PASSWORD", password),
            None => command.env_remove("SMTPSEND_PASSWORD"),
        };
        command
            .timeout(CLIENT_LIMIT)
            .write_stdin(input.to_vec())
            .output()
            .expect("running smtpsend")
    }

    /// Waits until no message is left in any of Postfix's queues: everything accepted has
    /// been delivered (or bounced, which the caller's mailbox check then shows).
    fn wait_until_queue_empty(&self) {
        let queue = self.dir.path().join("queue");
        let deadline = Instant::now() + DELIVERY_LIMIT;
        loop {
            let queued: Vec<PathBuf> = ["maildrop", "incoming", "active", "deferred", "hold"]
                .iter()
                .flat_map(|q| files_under(&queue.join(q)))
                .collect();
            if queued.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still queued after {DELIVERY_LIMIT:?}: {queued:?}\n{}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every message delivered to this recipient's Maildir (`mail/<user>/new`).
    fn mailbox(&self, user: &str) -> Vec<Vec<u8>> {
        let mut files = files_under(&self.dir.path().join("mail").join(user).join("new"));
        files.sort();
        files
            .iter()
            .map(|f| fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
            .collect()
    }

    /// The one message in this recipient's Maildir.
    #[track_caller]
    fn only_message(&self, user: &str) -> Delivered {
        let mut messages = self.mailbox(user);
        assert_eq!(
            messages.len(),
            1,
            "{user} should have exactly one message: {:#?}\n{}",
            messages
                .iter()
                .map(|m| String::from_utf8_lossy(m))
                .collect::<Vec<_>>(),
            self.logs()
        );
        parse_delivered(&messages.remove(0)).unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// The log line smtpd writes when the client has gone, with its command counts
    /// (`disconnect from ... ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5`).
    fn disconnect_lines(&self, sessions: usize) -> Vec<String> {
        let deadline = Instant::now() + DELIVERY_LIMIT;
        loop {
            let lines: Vec<String> = self
                .maillog()
                .lines()
                .filter(|l| l.contains("/smtpd[") && l.contains(": disconnect from "))
                // Not the start-up probe, which only read the greeting and sent QUIT.
                .filter(|l| l.contains(" ehlo="))
                .map(str::to_owned)
                .collect();
            if lines.len() >= sessions {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "smtpd logged {} of {sessions} disconnects\n{}",
                lines.len(),
                self.logs()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        // End of file on its stdin: the launcher runs `postfix stop` and exits.
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_LIMIT;
        while matches!(self.launcher.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if matches!(self.launcher.try_wait(), Ok(None)) {
            let _ = self.launcher.kill();
            let _ = self.launcher.wait();
            let _ = postfix_command()
                .arg("-c")
                .arg(self.conf())
                .arg("stop")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Writes `conf/` into `dir`; returns the certificate's path and its SHA-256 fingerprint.
fn write_config(
    dir: &Path,
    port: u16,
    banner: &str,
    extra_main_cf: &str,
    mailboxes: &[String],
) -> (PathBuf, String) {
    let conf = dir.join("conf");
    fs::create_dir(&conf).expect("conf dir");
    let dir_text = dir.to_str().expect("temp dir path is UTF-8");
    let root = postfix_root();
    let root_text = root.to_str().expect("package path is UTF-8");
    let fill = |template: &str| {
        template
            .replace("@DIR@", dir_text)
            .replace("@PORT@", &port.to_string())
            .replace("@BANNER@", banner)
            .replace("@ROOT@", root_text)
    };
    fs::write(conf.join("main.cf"), fill(MAIN_CF) + extra_main_cf).expect("main.cf");
    fs::write(conf.join("master.cf"), fill(MASTER_CF)).expect("master.cf");
    let extra: String = mailboxes
        .iter()
        .map(|m| format!("{m}@example.net {m}/\n"))
        .collect();
    fs::write(conf.join("vmailbox"), format!("{VMAILBOX}{extra}")).expect("vmailbox");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate parameters");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let key = rcgen::KeyPair::generate().expect("key pair");
    let certificate = params.self_signed(&key).expect("self-signed certificate");
    let cert = conf.join("cert.pem");
    fs::write(&cert, certificate.pem()).expect("cert.pem");
    fs::write(conf.join("key.pem"), key.serialize_pem()).expect("key.pem");
    let digest = ring::digest::digest(&ring::digest::SHA256, certificate.der());
    let fingerprint = digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    (cert, fingerprint)
}

/// Every file below `dir` (none when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
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

// ---------------------------------------------------------------------------------------
// What Postfix delivered.

/// A Maildir file split into the header fields virtual(8) and smtpd put in front of the
/// message, and the message as the client sent it (Postfix stores lines with LF).
#[derive(Debug)]
struct Delivered {
    return_path: String,
    delivered_to: String,
    /// Postfix's Received header field, its lines joined with LF.
    received: String,
    message: Vec<u8>,
}

fn parse_delivered(file: &[u8]) -> Result<Delivered, String> {
    let text = String::from_utf8_lossy(file);
    let shown = || format!("delivered file:\n{text}");
    let mut rest = file;
    let next_line = |rest: &mut &[u8]| -> Option<String> {
        let nl = rest.iter().position(|&b| b == b'\n')?;
        let line = String::from_utf8_lossy(&rest[..nl]).into_owned();
        *rest = &rest[nl + 1..];
        Some(line)
    };
    let field = |rest: &mut &[u8], name: &str| -> Result<String, String> {
        let line = next_line(rest).ok_or_else(shown)?;
        line.strip_prefix(name)
            .map(str::to_owned)
            .ok_or_else(|| format!("expected {name:?}, found {line:?}\n{}", shown()))
    };
    let return_path = field(&mut rest, "Return-Path: ")?;
    let _original_to = field(&mut rest, "X-Original-To: ")?;
    let delivered_to = field(&mut rest, "Delivered-To: ")?;
    let mut received = format!("Received: {}", field(&mut rest, "Received: ")?);
    while rest.first().is_some_and(|&b| b == b'\t' || b == b' ') {
        let nl = rest.iter().position(|&b| b == b'\n').ok_or_else(shown)?;
        received.push('\n');
        received.push_str(&String::from_utf8_lossy(&rest[..nl]));
        rest = &rest[nl + 1..];
    }
    Ok(Delivered {
        return_path,
        delivered_to,
        received,
        message: rest.to_vec(),
    })
}

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

/// What Postfix stores for a message that went over the wire as `wire` (CRLF lines, before
/// dot-stuffing): each CRLF becomes LF.
fn as_postfix_stores_it(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    let mut i = 0;
    while i < wire.len() {
        if wire[i] == b'\r' && wire.get(i + 1) == Some(&b'\n') {
            i += 1;
        }
        out.push(wire[i]);
        i += 1;
    }
    out
}

#[track_caller]
fn assert_message(delivered: &Delivered, input: &[u8]) {
    let want = as_postfix_stores_it(&crlf_normalise(input));
    assert_eq!(
        String::from_utf8_lossy(&delivered.message),
        String::from_utf8_lossy(&want),
        "the message as Postfix delivered it"
    );
    assert_eq!(delivered.message, want);
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
/// second transaction to a recipient this Postfix would deliver to. Sent with `-i`, so a
/// lone `.` line is message text.
fn smuggling_message() -> Vec<u8> {
    let smuggled = "MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n\
                    From: evil@example.com\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\nQUIT\r\n";
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

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_exit(out: &Output, code: i32, postfix: &Postfix) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "smtpsend exit status (wanted {code})\n--- stderr ---\n{}\n--- stdout ---\n{}\n{}",
        stderr(out),
        stdout(out),
        postfix.logs()
    );
}

// ---------------------------------------------------------------------------------------
// Delivery.

/// Without CHUNKING in Postfix's EHLO reply the binary sends the message with DATA
/// (dot-stuffed, ended by `CRLF.CRLF`); with it, in BDAT chunks (RFC 3030), which Postfix
/// offers by default.
const NO_CHUNKING: &str = "smtpd_discard_ehlo_keywords = chunking\n";

/// Issue 9 item 4: every line end that a server has ever taken for the end of DATA, each
/// followed by a second transaction to a mailbox this Postfix has, reaches smtpd as the
/// text of one message. The instance refuses any bare LF (`smtpd_forbid_bare_newline =
/// reject`), so this also shows that none crossed the wire.
#[test]
fn smuggling_variants_reach_postfix_smtpd_as_one_message() {
    smuggling_variants_arrive_as_one_message(NO_CHUNKING, "data");
}

/// The same message in BDAT chunks, where no line end can end the message.
#[test]
fn smuggling_variants_reach_postfix_smtpd_as_one_message_over_bdat() {
    smuggling_variants_arrive_as_one_message("", "bdat");
}

fn smuggling_variants_arrive_as_one_message(extra_main_cf: &str, command: &str) {
    let Some(postfix) = postfix_or_skip(extra_main_cf) else {
        return;
    };
    let input = smuggling_message();
    let out = postfix.smtpsend(&["--tls", "off", "-i", "-f", SENDER, RECIPIENT], &input);
    assert_exit(&out, 0, &postfix);
    postfix.wait_until_queue_empty();
    let delivered = postfix.only_message("bob");
    assert_message(&delivered, &input);
    assert_eq!(delivered.return_path, format!("<{SENDER}>"));
    assert!(
        postfix.mailbox("victim").is_empty(),
        "the smuggled transaction was delivered\n{}",
        postfix.logs()
    );
    // smtpd's own count of the session's commands: one transaction.
    let disconnects = postfix.disconnect_lines(1);
    assert_eq!(disconnects.len(), 1, "{disconnects:#?}");
    assert!(
        disconnects[0].contains(&format!(" ehlo=1 mail=1 rcpt=1 {command}=1 quit=1 ")),
        "{}",
        disconnects[0]
    );
    let log = postfix.maillog();
    assert!(!log.contains("evil@example.com"), "{log}");
    assert!(!log.contains("bare <LF> received"), "{log}");
}

/// The awkward message arrives as sent, in cleartext and over STARTTLS with the instance's
/// certificate trusted, with DATA and with BDAT; Postfix's Received header field says
/// whether TLS was used.
#[test]
fn delivery_byte_exact_to_postfix() {
    for (extra_main_cf, command) in [(NO_CHUNKING, "data"), ("", "bdat")] {
        let Some(postfix) = postfix_or_skip(extra_main_cf) else {
            return;
        };
        let cert = postfix.cert.to_str().expect("UTF-8 path").to_owned();
        let cases: [(&str, &[&str]); 2] = [
            ("cleartext", &["--tls", "off"]),
            (
                "starttls",
                &["--tls", "required", "--tls-trust-file", cert.as_str()],
            ),
        ];
        for (i, (name, tls)) in cases.iter().enumerate() {
            let input = awkward_message(&format!("{name}-{command}"));
            let mut args = tls.to_vec();
            args.extend(["-f", SENDER, RECIPIENT]);
            let out = postfix.smtpsend(&args, &input);
            assert_exit(&out, 0, &postfix);
            postfix.wait_until_queue_empty();
            let mailbox = postfix.mailbox("bob");
            assert_eq!(mailbox.len(), i + 1, "{}", postfix.logs());
            let id = format!("Message-ID: <{name}-{command}@smtpsend.test>\n");
            let delivered = mailbox
                .iter()
                .map(|m| parse_delivered(m).unwrap_or_else(|e| panic!("{e}")))
                .find(|d| String::from_utf8_lossy(&d.message).contains(&id))
                .unwrap_or_else(|| panic!("no {id:?} delivered\n{}", postfix.logs()));
            assert_message(&delivered, &input);
            assert_eq!(delivered.return_path, format!("<{SENDER}>"));
            assert_eq!(delivered.delivered_to, RECIPIENT);
            let received = &delivered.received;
            if *name == "starttls" {
                assert!(
                    received.contains("(using TLSv1.3 with cipher ")
                        && received.contains(" with ESMTPS id "),
                    "{received}"
                );
            } else {
                assert!(
                    !received.contains("using TLS") && received.contains(" with ESMTP id "),
                    "{received}"
                );
            }
            let session = &postfix.disconnect_lines(i + 1)[i];
            assert!(
                session.contains(&format!(" mail=1 rcpt=1 {command}=1 ")),
                "{session}"
            );
        }
    }
}

/// A recipient Postfix does not know is refused at RCPT with 550 5.1.1: exit 67, the reply
/// on stderr, nothing delivered.
#[test]
fn rejected_recipient_exits_67_against_postfix() {
    let Some(postfix) = postfix_or_skip("") else {
        return;
    };
    let input = format!("{}to nobody\n", headers("rejected")).into_bytes();
    let out = postfix.smtpsend(&["--tls", "off", "-f", SENDER, UNKNOWN], &input);
    assert_exit(&out, 67, &postfix);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "RCPT TO:<{UNKNOWN}>: 550 5.1.1 <{UNKNOWN}>: Recipient address rejected: \
             User unknown in virtual mailbox table"
        )),
        "stderr should carry Postfix's reply: {err}"
    );
    postfix.wait_until_queue_empty();
    assert!(files_under(&postfix.dir.path().join("mail")).is_empty());
}

/// One known and one unknown recipient: the known one gets the message, the unknown one is
/// reported, and the exit status says a recipient was refused.
#[test]
fn one_refused_recipient_of_two_exits_67_and_the_other_gets_the_message() {
    let Some(postfix) = postfix_or_skip("") else {
        return;
    };
    let input = format!("{}one of two\n", headers("one-of-two")).into_bytes();
    let out = postfix.smtpsend(&["--tls", "off", "-f", SENDER, UNKNOWN, RECIPIENT], &input);
    assert_exit(&out, 67, &postfix);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("RCPT TO:<{UNKNOWN}>: 550 5.1.1 ")),
        "{err}"
    );
    assert!(!err.contains(RECIPIENT), "{err}");
    postfix.wait_until_queue_empty();
    assert_message(&postfix.only_message("bob"), &input);
}

// ---------------------------------------------------------------------------------------
// Diagnostics: what Postfix answers, as the binary shows it.

#[test]
fn serverinfo_shows_postfix_capabilities_before_and_after_starttls() {
    let Some(postfix) = postfix_or_skip("") else {
        return;
    };
    let out = postfix.smtpsend(&["--tls", "opportunistic", "--serverinfo"], b"");
    assert_exit(&out, 0, &postfix);
    let text = stdout(&out);
    let (before, after) = text
        .split_once("EHLO after TLS:\n")
        .unwrap_or_else(|| panic!("no EHLO after TLS in\n{text}"));
    for expected in [
        &format!("server: 127.0.0.1 [127.0.0.1:{}]\n", postfix.port),
        "banner:\n  220 mx.smtpsend.test ESMTP Postfix smtpsend-test-",
        "EHLO before STARTTLS:\n  greeting: mx.smtpsend.test\n",
        "\n  VRFY\n  ETRN\n  STARTTLS\n  ENHANCEDSTATUSCODES\n  8BITMIME\n",
        "TLS: TLSv1_3 ",
        "certificate:\n  subject: CN=localhost\n  issuer: CN=localhost\n",
        "  names: DNS:localhost, IP:127.0.0.1\n",
        &format!("  SHA-256: {}\n", postfix.fingerprint),
        // Opportunistic TLS trusts nothing it was not told to.
        "  verified: no\n",
    ] {
        assert!(
            before.contains(expected),
            "{expected:?} missing from\n{text}"
        );
    }
    assert!(
        after.starts_with("  greeting: mx.smtpsend.test\n")
            && after.contains("\n  VRFY\n  ETRN\n  ENHANCEDSTATUSCODES\n"),
        "{text}"
    );
    // RFC 3207 §4.2: no STARTTLS on a session that has it already.
    assert!(!after.contains("STARTTLS"), "{text}");
    assert!(after.contains("AUTH: none offered\n"), "{text}");
    // The probe ends the session with QUIT, nothing else.
    let disconnect = &postfix.disconnect_lines(1)[0];
    assert!(
        disconnect.contains(" ehlo=2 starttls=1 quit=1 commands=4"),
        "{disconnect}"
    );
}

#[test]
fn serverinfo_with_the_postfix_certificate_trusted_says_verified() {
    let Some(postfix) = postfix_or_skip("") else {
        return;
    };
    let cert = postfix.cert.to_str().expect("UTF-8 path").to_owned();
    let out = postfix.smtpsend(
        &[
            "--tls",
            "required",
            "--tls-trust-file",
            &cert,
            "--serverinfo",
        ],
        b"",
    );
    assert_exit(&out, 0, &postfix);
    let text = stdout(&out);
    assert!(text.contains("  verified: yes\n"), "{text}");
    assert!(
        text.contains(&format!("  SHA-256: {}\n", postfix.fingerprint)),
        "{text}"
    );
}

/// Postfix answers VRFY for a mailbox it has with 252 and refuses an unknown one with the
/// reply it gives at RCPT (550 5.1.1): exit 0 and 67.
#[test]
fn vrfy_against_postfix_252_for_a_mailbox_and_550_for_an_unknown_one() {
    let Some(postfix) = postfix_or_skip("") else {
        return;
    };
    let out = postfix.smtpsend(&["--tls", "off", "--verify", RECIPIENT], b"");
    assert_exit(&out, 0, &postfix);
    assert_eq!(
        stdout(&out),
        format!("VRFY {RECIPIENT}\n  252 2.0.0 {RECIPIENT}\n")
    );

    let out = postfix.smtpsend(&["--tls", "off", "--verify", UNKNOWN], b"");
    assert_exit(&out, 67, &postfix);
    assert_eq!(
        stdout(&out),
        format!(
            "VRFY {UNKNOWN}\n  550 5.1.1 <{UNKNOWN}>: Recipient address rejected: \
             User unknown in virtual mailbox table\n"
        )
    );
}

/// Postfix has no EXPN and no HELP: both get `500 5.5.2 Error: command not recognized`, a
/// permanent refusal (exit 69), shown as Postfix gave it.
#[test]
fn expn_and_help_are_not_recognised_by_postfix_and_exit_69() {
    let Some(postfix) = postfix_or_skip("") else {
        return;
    };
    for (args, command) in [
        (["--expand", "staff"].as_slice(), "EXPN staff"),
        (["--help-server"].as_slice(), "HELP"),
        (["--help-server=DATA"].as_slice(), "HELP DATA"),
    ] {
        let mut all = vec!["--tls", "off"];
        all.extend(args);
        let out = postfix.smtpsend(&all, b"");
        assert_exit(&out, 69, &postfix);
        assert_eq!(
            stdout(&out),
            format!("{command}\n  500 5.5.2 Error: command not recognized\n")
        );
    }
}

/// ETRN (RFC 1985) for a domain in `fast_flush_domains` starts a queue run (250); for any
/// other Postfix answers 459, a temporary failure (exit 75). NOOP gets 250.
#[test]
fn etrn_and_noop_against_postfix() {
    let Some(postfix) = postfix_or_skip("") else {
        return;
    };
    let out = postfix.smtpsend(&["--tls", "off", "--etrn", "example.net"], b"");
    assert_exit(&out, 0, &postfix);
    assert_eq!(stdout(&out), "ETRN example.net\n  250 Queuing started\n");

    let out = postfix.smtpsend(&["--tls", "off", "--etrn", "example.com"], b"");
    assert_exit(&out, 75, &postfix);
    assert_eq!(
        stdout(&out),
        "ETRN example.com\n  459 <example.com>: service unavailable\n"
    );

    let out = postfix.smtpsend(&["--tls", "off", "--noop"], b"");
    assert_exit(&out, 0, &postfix);
    assert_eq!(stdout(&out), "NOOP\n  250 2.0.0 Ok\n");
}

/// Several queries over STARTTLS in one session, in the order the binary documents.
#[test]
fn diagnostics_over_starttls_against_postfix() {
    let Some(postfix) = postfix_or_skip("") else {
        return;
    };
    let cert = postfix.cert.to_str().expect("UTF-8 path").to_owned();
    let out = postfix.smtpsend(
        &[
            "--tls",
            "required",
            "--tls-trust-file",
            &cert,
            "--noop",
            "--etrn",
            "example.net",
            "--verify",
            RECIPIENT,
        ],
        b"",
    );
    assert_exit(&out, 0, &postfix);
    assert_eq!(
        stdout(&out),
        format!(
            "VRFY {RECIPIENT}\n  252 2.0.0 {RECIPIENT}\nETRN example.net\n  \
             250 Queuing started\nNOOP\n  250 2.0.0 Ok\n"
        )
    );
    let disconnect = &postfix.disconnect_lines(1)[0];
    assert!(
        disconnect.contains(" ehlo=2 starttls=1 noop=1 vrfy=1 etrn=1 quit=1 commands=7"),
        "{disconnect}"
    );
}

/// The helpers: a Maildir file is split where Postfix's header fields end.
#[test]
fn delivered_file_parser_splits_trace_fields_from_message() {
    let file = b"Return-Path: <a@b>\nX-Original-To: c@d\nDelivered-To: c@d\n\
                 Received: from h (unknown [127.0.0.1])\n\t(using TLSv1.3)\n\tby mx with ESMTPS id 1\n\
                 \tfor <c@d>; Wed, 25 Nov 2026 14:55:31 +0000 (UTC)\nSubject: x\n\n.body\n";
    let d = parse_delivered(file).expect("parses");
    assert_eq!(d.return_path, "<a@b>");
    assert_eq!(d.delivered_to, "c@d");
    assert!(d.received.ends_with("(UTC)") && d.received.contains("\n\t(using TLSv1.3)\n"));
    assert_eq!(d.message, b"Subject: x\n\n.body\n");
    assert_eq!(as_postfix_stores_it(b"a\r\nb\r\n\r\n"), b"a\nb\n\n");
    assert!(parse_delivered(b"Subject: x\n\nbody\n").is_err());
}

/// A queue run pipelines its transactions (each opening with RSET, written behind the one
/// before without waiting for its outcome): Postfix's smtpd takes every message, with BDAT
/// and with DATA, in one session.
#[test]
fn pipelined_queue_run_delivers_every_message_to_postfix() {
    for (extra_main_cf, command) in [("", "bdat"), (NO_CHUNKING, "data")] {
        let Some(postfix) = postfix_or_skip(extra_main_cf) else {
            return;
        };
        let spool = tempfile::tempdir().expect("temp dir");
        let config = format!("queue_dir = \"{}\"\n", spool.path().join("q").display());
        let to = ["bob", "victim", "bob", "victim"];
        for (n, user) in to.iter().enumerate() {
            let mut input = headers(&format!("queued-{n}")).into_bytes();
            input.extend_from_slice(format!("message {n} for {user}\n").as_bytes());
            let rcpt = format!("{user}@example.net");
            let out = postfix.smtpsend_with(&config, &["--queue", "-f", SENDER, &rcpt], &input);
            assert_exit(&out, 0, &postfix);
        }
        let out = postfix.smtpsend_with(&config, &["-q", "--tls", "off"], b"");
        assert_exit(&out, 0, &postfix);
        postfix.wait_until_queue_empty();
        for user in ["bob", "victim"] {
            let mut bodies: Vec<String> = postfix
                .mailbox(user)
                .iter()
                .map(|m| parse_delivered(m).unwrap_or_else(|e| panic!("{e}")))
                .map(|d| String::from_utf8_lossy(&d.message).into_owned())
                .map(|m| m.lines().last().unwrap_or_default().to_owned())
                .collect();
            bodies.sort();
            let want: Vec<String> = (0..4)
                .filter(|n| to[*n] == user)
                .map(|n| format!("message {n} for {user}"))
                .collect();
            assert_eq!(bodies, want, "{command}\n{}", postfix.logs());
        }
        let disconnects = postfix.disconnect_lines(1);
        assert_eq!(disconnects.len(), 1, "{disconnects:#?}");
        assert!(
            disconnects[0].contains(&format!(" mail=4 rcpt=4 {command}=4 rset=3 quit=1 ")),
            "{}",
            disconnects[0]
        );
    }
}

// ---------------------------------------------------------------------------------------
// Issue 16's findings against Postfix.

/// Issue 16 (3): a 66,000-octet body line. RFC 5321 §4.5.3.1.6 allows 998 octets before
/// CRLF; folded the way Postfix's own smtp_line_length_limit folds (CRLF and a space
/// inserted), the message arrives whole, and without the folds it is the original.
#[test]
fn over_long_line_arrives_at_postfix_folded_to_998_octets() {
    let Some(postfix) = postfix_or_skip("") else {
        return;
    };
    let input = mta::long_line_message("long-line", RECIPIENT, 66_000);
    let out = postfix.smtpsend(&["--tls", "off", "-f", SENDER, RECIPIENT], &input);
    assert_exit(&out, 0, &postfix);
    postfix.wait_until_queue_empty();
    let delivered = postfix.only_message("bob");
    if let Err(e) = mta::check_folded(&delivered.message, &input) {
        panic!("{e}\n{}", postfix.logs());
    }
}

/// Issue 16 (6): 250 recipients to a Postfix that takes 100 per transaction
/// (`smtpd_recipient_limit = 100`; RCPT 101 and later get `452 4.5.3 Error: too many
/// recipients`). RFC 5321 §4.5.3.1.8: the client sends the rest in further transactions on
/// the same connection: three transactions, one session, every mailbox gets the message,
/// exit 0 and nothing queued.
#[test]
fn recipients_beyond_postfixs_recipient_limit_go_in_further_transactions() {
    let users: Vec<String> = (0..250).map(|i| format!("rcpt{i}")).collect();
    let Some(postfix) = postfix_with_mailboxes_or_skip("smtpd_recipient_limit = 100\n", &users)
    else {
        return;
    };
    let spool = tempfile::tempdir().expect("temp dir");
    let queue = spool.path().join("q");
    let config = format!(
        "queue_on_tempfail = true\nqueue_dir = \"{}\"\n",
        queue.display()
    );
    let recipients: Vec<String> = users.iter().map(|u| format!("{u}@example.net")).collect();
    let mut args = vec!["--tls", "off", "-f", SENDER];
    args.extend(recipients.iter().map(String::as_str));
    let input = format!("{}to 250\n", headers("many-recipients")).into_bytes();
    let out = postfix.smtpsend_with(&config, &args, &input);
    assert_exit(&out, 0, &postfix);
    postfix.wait_until_queue_empty();
    assert!(
        files_under(&queue).is_empty(),
        "queued: {:?}\n{}",
        files_under(&queue),
        stderr(&out)
    );
    for user in &users {
        assert_message(&postfix.only_message(user), &input);
    }
    let disconnects = postfix.disconnect_lines(1);
    assert_eq!(disconnects.len(), 1, "{disconnects:#?}");
    assert!(disconnects[0].contains(" mail=3 "), "{}", disconnects[0]);
}
