//! Interoperability with Exim 4.96 (Debian's exim4-daemon-light, built with GnuTLS): the
//! binary against a private Exim that each test starts on 127.0.0.1 and stops when it ends,
//! panics included.
//!
//! The Exim is the package `.ci/install` unpacked into `/opt/smtpsend-test-mta` (never an
//! installed one), run as `exim4 -C DIR/exim.conf -bdf` by `tests/exim/run-exim.sh` from a
//! temporary directory: `tests/exim/exim.conf` filled in with that directory, a port, a
//! banner token and the test's limits (message_size_limit, recipients_max), a certificate
//! made here with rcgen, `mailboxes` (the local parts at example.net that have a Maildir),
//! and Exim's `spool/`, `log/` and `mail/` (one Maildir per recipient). It offers
//! PIPELINING, CHUNKING, SIZE and STARTTLS, and AUTH PLAIN and LOGIN (`plaintext`
//! authenticators, user `test`, password `secret`) only after STARTTLS. Its log says per
//! message which client port, TLS, AUTH, PIPELINING and CHUNKING it saw, and per session
//! which commands arrived.
//!
//! Exim runs only as root here. Without the unpacked package, the Debian-exim user or root
//! the tests print "skipped: ..." and pass, except with `CI=true`, where they fail.

use std::fs;
use std::path::PathBuf;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::mta::{self, Instance, Launcher, assert_exit, assert_same_bytes};
use crate::common::spool::{Queue, wait_bounded};
use crate::common::{SENDER, run, smtpsend, stderr};
use tempfile::TempDir;

const PACKAGE: &str = "exim4-daemon-light";
const PROGRAM: &str = "usr/sbin/exim4";
const LAUNCHER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/exim/run-exim.sh");
const CONF: &str = include_str!("exim/exim.conf");

/// From spawning the launcher to a greeting on the port (it takes about 0.1 s).
const START_LIMIT: Duration = Duration::from_secs(10);
/// From the client's exit to every accepted message having left Exim's spool.
const DELIVERY_LIMIT: Duration = Duration::from_secs(60);
/// For the runs that move tens of MiB (the binary under test is a debug build).
const BIG_CLIENT_LIMIT: Duration = Duration::from_secs(120);

/// A mailbox; so are carol, dave, victim and rcpt0 to rcpt299 (see [`mailboxes`]).
const RECIPIENT: &str = "bob@example.net";
/// Refused at RCPT with 550 5.1.1.
const UNKNOWN: &str = "nobody@example.net";
const USER: &str = "test";
const PASSWORD: &str = "secret";

/// The trace fields Exim puts in front of a delivered message.
const TRACE: [&str; 4] = ["Return-path", "Envelope-to", "Delivery-date", "Received"];

/// The local parts at example.net that have a Maildir.
fn mailboxes() -> Vec<String> {
    let mut names: Vec<String> = ["bob", "carol", "dave", "victim"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    names.extend((0..300).map(|i| format!("rcpt{i}")));
    names
}

/// What a test sets in the instance's configuration.
#[derive(Clone, Copy)]
struct Settings {
    /// message_size_limit, which the EHLO reply announces as SIZE.
    size_limit: &'static str,
    /// recipients_max: RCPTs beyond it in one transaction get 452.
    recipients_max: u32,
    chunking: bool,
}

/// Room for the 50 MiB message; Exim's own recipient default; CHUNKING offered.
const DEFAULTS: Settings = Settings {
    size_limit: "60M",
    recipients_max: 50_000,
    chunking: true,
};

// ---------------------------------------------------------------------------------------
// The instance.

/// A private Exim, or `None` with a printed note where it cannot run (with `CI=true` a
/// failure instead).
fn exim_or_skip(settings: Settings) -> Option<Exim> {
    let started = match mta::unavailable(PACKAGE, PROGRAM, &["Debian-exim"]) {
        Some(problem) => Err(problem),
        None => Exim::start(settings),
    };
    started.map_or_else(|problem| mta::skip("private Exim", &problem), Some)
}

struct Exim {
    port: u16,
    /// The server certificate, which a client can be told to trust.
    cert: PathBuf,
    /// Held: dropping it stops Exim (before `dir` goes).
    launcher: Launcher,
    dir: TempDir,
}

impl Exim {
    fn start(settings: Settings) -> Result<Exim, String> {
        mta::start_with_retries(|| Exim::try_start(settings))
    }

    fn try_start(settings: Settings) -> Result<Exim, String> {
        let started = Instant::now();
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let port = mta::free_port();
        let banner = mta::banner_token(port);
        let root = mta::package_root(PACKAGE);
        let path = dir.path().to_str().ok_or("temp dir path is not UTF-8")?;
        let mut conf = CONF
            .replace("@DIR@", path)
            .replace("@PORT@", &port.to_string())
            .replace("@BANNER@", &banner)
            .replace("@ROOT@", &root.to_string_lossy())
            .replace("@SIZE_LIMIT@", settings.size_limit)
            .replace("@RECIPIENTS_MAX@", &settings.recipients_max.to_string());
        if !settings.chunking {
            conf = conf.replace("chunking_advertise_hosts = *", "chunking_advertise_hosts =");
        }
        fs::write(dir.path().join("exim.conf"), conf).map_err(|e| format!("exim.conf: {e}"))?;
        let table: String = mailboxes().iter().map(|m| format!("{m}: {m}\n")).collect();
        fs::write(dir.path().join("mailboxes"), table).map_err(|e| format!("mailboxes: {e}"))?;
        let cert = mta::write_certificate(dir.path());
        let log = dir.path().join("launcher.log");
        let launcher = Launcher::start(LAUNCHER, &[dir.path(), &root], &log, START_LIMIT)?;
        let mut exim = Exim {
            port,
            cert,
            launcher,
            dir,
        };
        let left = START_LIMIT.saturating_sub(started.elapsed());
        exim.launcher
            .expect_greeting(port, &banner, left)
            .map_err(|e| format!("{e}\n{}", exim.logs()))?;
        Ok(exim)
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn mainlog(&self) -> String {
        self.read("log/mainlog")
    }

    /// The binary pointed at this instance (isolated as `crate::common::smtpsend` is).
    fn smtpsend(&self) -> assert_cmd::Command {
        smtpsend(self.port)
    }

    /// Arguments for STARTTLS with this instance's certificate trusted.
    fn starttls(&self) -> Vec<String> {
        vec![
            "--tls".to_owned(),
            "required".to_owned(),
            "--tls-trust-file".to_owned(),
            self.cert.to_string_lossy().into_owned(),
        ]
    }

    /// The log's "<=" lines, one per message Exim accepted, in order.
    fn received(&self) -> Vec<String> {
        self.mainlog()
            .lines()
            .filter(|l| l.contains(" <= "))
            .map(str::to_owned)
            .collect()
    }

    /// The commands of each session a client ended, as `acl_session_end` logged them
    /// (`EHLO,MAIL,RCPT,BDAT,QUIT`, the last 20), leaving out the start-up probe (which
    /// sent QUIT and nothing else); waits up to [`DELIVERY_LIMIT`] for `sessions` of them.
    fn sessions(&self, sessions: usize) -> Vec<String> {
        let deadline = Instant::now() + DELIVERY_LIMIT;
        loop {
            let found: Vec<String> = self
                .mainlog()
                .lines()
                .filter_map(|l| l.split_once(" commands: ").map(|(_, c)| c.to_owned()))
                .filter(|c| c.contains("EHLO") || c.contains("MAIL"))
                .collect();
            if found.len() >= sessions || Instant::now() >= deadline {
                return found;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Instance for Exim {
    const TRACE: &'static [&'static str] = &TRACE;

    /// Waits until nothing is left in Exim's spool: every accepted message has been
    /// delivered (or bounced, which the caller's mailbox check then shows).
    fn wait_until_delivered(&self) {
        let input = self.dir.path().join("spool/input");
        if let Err(left) = mta::wait_until_empty(DELIVERY_LIMIT, || mta::files_under(&input)) {
            panic!(
                "still in Exim's spool after {DELIVERY_LIMIT:?}: {left:?}\n{}",
                self.logs()
            );
        }
    }

    /// The launcher's output and Exim's logs, for a failure message.
    fn logs(&self) -> String {
        format!(
            "--- run-exim.sh ---\n{}--- mainlog ---\n{}--- rejectlog ---\n{}--- paniclog ---\n{}",
            self.read("launcher.log"),
            self.mainlog(),
            self.read("log/rejectlog"),
            self.read("log/paniclog")
        )
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }
}

/// The client port in a "<=" line (`H=(vm) [127.0.0.1]:41234`): which connection brought
/// the message.
fn client_port(received: &str) -> &str {
    received
        .split_once("[127.0.0.1]:")
        .and_then(|(_, rest)| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no client address in {received:?}"))
}

// ---------------------------------------------------------------------------------------
// What works: AUTH after STARTTLS, refusals, big bodies, -t, a pipelined queue run.

/// Exim offers AUTH only on a TLS session; there, PLAIN and LOGIN each get the message
/// delivered, and Exim's log names the authenticator, the user and TLS 1.3.
#[test]
fn auth_plain_and_login_after_starttls_deliver_to_exim() {
    let Some(exim) = exim_or_skip(DEFAULTS) else {
        return;
    };
    for (n, mechanism) in ["plain", "login"].into_iter().enumerate() {
        let input = mta::message(&format!("auth-{mechanism}"), RECIPIENT, "authenticated\n");
        let mut cmd = exim.smtpsend();
        cmd.args(exim.starttls())
            .args(["--user", USER, "--auth", mechanism, "-f", SENDER, RECIPIENT])
            .env("SMTPSEND_PASSWORD", PASSWORD);
        let out = run(cmd, input.clone());
        assert_exit(&out, 0, &exim);
        exim.wait_until_delivered();
        let received = exim.received();
        assert_eq!(received.len(), n + 1, "{}", exim.logs());
        let line = &received[n];
        assert!(
            line.contains(&format!(" A={mechanism}:{USER} ")) && line.contains(" X=TLS1.3:"),
            "{line}"
        );
    }
    let mailbox = exim.mailbox("bob");
    assert_eq!(mailbox.len(), 2, "{}", exim.logs());
}

/// Before STARTTLS the EHLO reply has no AUTH; after it, PLAIN and LOGIN. PIPELINING,
/// CHUNKING and the SIZE limit are there from the start.
#[test]
fn serverinfo_shows_exim_offering_auth_only_after_starttls() {
    let Some(exim) = exim_or_skip(DEFAULTS) else {
        return;
    };
    let mut cmd = exim.smtpsend();
    cmd.args(exim.starttls()).arg("--serverinfo");
    let out = run(cmd, Vec::new());
    assert_exit(&out, 0, &exim);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (before, after) = text
        .split_once("EHLO after TLS:\n")
        .unwrap_or_else(|| panic!("no EHLO after TLS in\n{text}"));
    for expected in [
        "\n  SIZE 62914560\n",
        "\n  PIPELINING\n",
        "\n  CHUNKING\n",
        "\n  STARTTLS\n",
    ] {
        assert!(
            before.contains(expected),
            "{expected:?} missing from\n{text}"
        );
    }
    assert!(!before.contains("AUTH"), "AUTH offered before TLS:\n{text}");
    assert!(after.contains("PLAIN") && after.contains("LOGIN"), "{text}");
    assert!(before.contains("verified: yes"), "{text}");
}

/// A password Exim's authenticator refuses (535) is a credentials failure: exit 77, and
/// nothing is delivered.
#[test]
fn wrong_password_exits_77_against_exim() {
    let Some(exim) = exim_or_skip(DEFAULTS) else {
        return;
    };
    let mut cmd = exim.smtpsend();
    cmd.args(exim.starttls())
        .args(["--user", USER, "--auth", "plain", "-f", SENDER, RECIPIENT])
        .env("SMTPSEND_PASSWORD", "not the password");
    let out = run(
        cmd,
        mta::message("wrong-password", RECIPIENT, "never sent\n"),
    );
    assert_exit(&out, 77, &exim);
    assert!(stderr(&out).contains("535"), "{}", stderr(&out));
    assert!(exim.received().is_empty(), "{}", exim.logs());
    assert!(
        exim.mainlog().contains("plain authenticator failed"),
        "{}",
        exim.logs()
    );
}

/// One known and one unknown recipient: Exim refuses the unknown one at RCPT (550 5.1.1),
/// the known one gets the message unchanged, and the exit status says a recipient was
/// refused.
#[test]
fn refused_recipient_exits_67_and_the_other_gets_the_message_from_exim() {
    let Some(exim) = exim_or_skip(DEFAULTS) else {
        return;
    };
    let input = mta::message("one-of-two", RECIPIENT, "for bob only\n");
    let mut cmd = exim.smtpsend();
    cmd.args(["--tls", "off", "-f", SENDER, UNKNOWN, RECIPIENT]);
    let out = run(cmd, input.clone());
    assert_exit(&out, 67, &exim);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "RCPT TO:<{UNKNOWN}>: 550 5.1.1 <{UNKNOWN}>: user unknown"
        )),
        "stderr should carry Exim's reply: {err}"
    );
    exim.wait_until_delivered();
    let (trace, message) = exim.only_message("bob");
    assert_same_bytes(
        &message,
        &mta::as_stored_with_lf(&input),
        "bob's message",
        &exim,
    );
    assert!(
        trace.contains(&format!("Return-path: <{SENDER}>\n")),
        "{trace}"
    );
    assert!(exim.mailbox("nobody").is_empty());
}

/// 1 MiB and 50 MiB arrive byte for byte (Exim keeps lines with LF), with and without
/// CHUNKING offered. (Messages this big go with DATA either way: only a small one is sent
/// as one `BDAT LAST` chunk in the envelope's flight.)
#[test]
fn one_mib_and_fifty_mib_bodies_arrive_byte_exact_at_exim() {
    for (chunking, mib) in [(false, 1), (true, 1), (true, 50)] {
        let Some(exim) = exim_or_skip(Settings {
            chunking,
            ..DEFAULTS
        }) else {
            return;
        };
        let id = format!("big-{mib}-chunking-{chunking}");
        let input = mta::big_message(&id, RECIPIENT, mib << 20);
        let mut cmd = exim.smtpsend();
        cmd.args(["--tls", "off", "-i", "-f", SENDER, RECIPIENT])
            .timeout(BIG_CLIENT_LIMIT);
        let out = run(cmd, input.clone());
        assert_exit(&out, 0, &exim);
        exim.wait_until_delivered();
        let (_, message) = exim.only_message("bob");
        assert_same_bytes(&message, &mta::as_stored_with_lf(&input), &id, &exim);
        assert_eq!(exim.received().len(), 1, "{}", exim.logs());
    }
}

/// `-t`: To, Cc and Bcc recipients all get the message, in one transaction, and the Bcc
/// field is gone from every copy.
#[test]
fn t_flag_removes_bcc_and_every_recipient_gets_the_message_from_exim() {
    let Some(exim) = exim_or_skip(DEFAULTS) else {
        return;
    };
    let input = b"From: Alice <alice@example.org>\nTo: Bob <bob@example.net>\n\
                  Cc: carol@example.net\nBcc: Dave <dave@example.net>\nSubject: bcc\n\
                  Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <bcc@smtpsend.test>\n\n\
                  Dave is not named.\n"
        .to_vec();
    let mut cmd = exim.smtpsend();
    cmd.args(["--tls", "off", "-t", "-f", SENDER]);
    let out = run(cmd, input.clone());
    assert_exit(&out, 0, &exim);
    exim.wait_until_delivered();
    let text = String::from_utf8_lossy(&input);
    let without_bcc: String = text
        .lines()
        .filter(|l| !l.starts_with("Bcc:"))
        .map(|l| format!("{l}\n"))
        .collect();
    for user in ["bob", "carol", "dave"] {
        let (_, message) = exim.only_message(user);
        assert_same_bytes(&message, without_bcc.as_bytes(), user, &exim);
    }
    let received = exim.received();
    assert_eq!(received.len(), 1, "{}", exim.logs());
    assert!(
        received[0].ends_with(" for bob@example.net carol@example.net dave@example.net"),
        "{}",
        received[0]
    );
}

/// 20 messages queued while the relay was down go to Exim over one connection, pipelined
/// (L) and with BDAT (K); each arrives unchanged and the queue is left empty.
#[test]
fn queue_of_20_flushes_over_one_pipelined_connection_to_exim() {
    let Some(exim) = exim_or_skip(DEFAULTS) else {
        return;
    };
    mta::flush_twenty_queued(&exim, exim.port, RECIPIENT);

    let received = exim.received();
    assert_eq!(received.len(), 20, "{}", exim.logs());
    let port = client_port(&received[0]);
    for line in &received {
        assert_eq!(client_port(line), port, "another connection: {line}");
        assert!(line.contains(" L") && line.contains(" K "), "{line}");
    }
    assert_eq!(exim.sessions(1).len(), 1, "{}", exim.logs());
}

// ---------------------------------------------------------------------------------------
// Issue 16's findings against Exim.

/// Issue 16 (3): a 66,000-octet body line. RFC 5321 §4.5.3.1.6 allows 998 octets before
/// CRLF; folded the way Postfix's smtp_line_length_limit folds (CRLF and a space inserted),
/// the message arrives whole, and without the folds it is the original.
#[test]
fn over_long_line_arrives_at_exim_folded_to_998_octets() {
    let Some(exim) = exim_or_skip(DEFAULTS) else {
        return;
    };
    let input = mta::long_line_message("long-line", RECIPIENT, 66_000);
    let mut cmd = exim.smtpsend();
    cmd.args(["--tls", "off", "-f", SENDER, RECIPIENT]);
    let out = run(cmd, input.clone());
    assert_exit(&out, 0, &exim);
    exim.wait_until_delivered();
    let (_, message) = exim.only_message("bob");
    if let Err(e) = mta::check_folded(&message, &input) {
        panic!("{e}\n{}", exim.logs());
    }
}

/// Issue 16 (5): a 64 MiB message from a regular file, to an Exim that takes 60M. The size
/// is known before MAIL, so MAIL carries SIZE= (RFC 1870) and Exim refuses it there (552):
/// exit 69, and not a byte of the body is sent.
#[test]
fn oversized_message_is_refused_at_mail_by_exim_with_size_declared_and_exits_69() {
    let Some(exim) = exim_or_skip(DEFAULTS) else {
        return;
    };
    let input = mta::big_message("too-big", RECIPIENT, 64 << 20);
    let file = exim.dir.path().join("too-big.eml");
    fs::write(&file, &input).expect("message file");
    let err_file = exim.dir.path().join("smtpsend.stderr");
    let mut cmd = crate::common::smtpsend_std(exim.port);
    cmd.args(["--tls", "off", "-i", "-f", SENDER, RECIPIENT])
        .stdin(Stdio::from(
            fs::File::open(&file).expect("open message file"),
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            fs::File::create(&err_file).expect("stderr file"),
        ));
    let mut child = cmd.spawn().expect("spawn smtpsend");
    let status = wait_bounded(&mut child, BIG_CLIENT_LIMIT).expect("smtpsend ran too long");
    let err = fs::read_to_string(&err_file).unwrap_or_default();
    assert_eq!(status.code(), Some(69), "stderr:\n{err}\n{}", exim.logs());
    // Exim offers SIZE 62914560 in its EHLO reply: smtpsend, knowing the size, refuses
    // before MAIL; a server that offers no limit refuses MAIL ... SIZE= with its 552.
    let refused_here = err.contains("exceeds the server's SIZE limit of 62914560");
    assert!(
        refused_here || err.contains("552"),
        "stderr should name the limit or carry Exim's 552: {err}"
    );
    let log = exim.mainlog();
    if refused_here {
        let declared: u64 = err
            .split_once("message of ")
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no size in: {err}"));
        assert!(declared >= input.len() as u64, "{err}");
    } else {
        let refusal = log
            .lines()
            .find(|l| l.contains(&format!("rejected MAIL FROM:<{SENDER}>")))
            .unwrap_or_else(|| {
                panic!(
                    "Exim did not refuse MAIL (it had no SIZE= to go by?)\n{}",
                    exim.logs()
                )
            });
        let declared: u64 = refusal
            .split_once("message too big: size=")
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no SIZE= in the refusal: {refusal}"));
        assert!(declared >= input.len() as u64, "SIZE={declared}: {refusal}");
    }
    // No body bytes: none in BDAT chunks; none after a DATA, which can only have been
    // refused behind the refused MAIL (RFC 2920 lets DATA end a pipelined group), so body
    // lines would have reached Exim as commands and been logged as syntax or
    // synchronization errors; and no body read to its end.
    let sessions = exim.sessions(1);
    assert_eq!(sessions.len(), 1, "{}", exim.logs());
    assert!(
        !sessions[0].contains("BDAT"),
        "BDAT chunks reached Exim: {}",
        sessions[0]
    );
    for unwanted in [
        "syntax error",
        "synchronization error",
        "protocol error",
        "syntax or protocol errors",
        "message too big: read=",
    ] {
        assert!(
            !log.contains(unwanted),
            "{unwanted:?} in Exim's log\n{}",
            exim.logs()
        );
    }
    assert!(exim.received().is_empty(), "{}", exim.logs());
}

/// Issue 16 (6): 250 recipients to an Exim that takes 100 per transaction (RCPT 101 and
/// later get "452 too many recipients"). RFC 5321 §4.5.3.1.8: the client sends the rest in
/// further transactions on the same connection: three transactions, one connection, every
/// mailbox gets the message, exit 0 and nothing queued.
#[test]
fn recipients_beyond_exims_recipients_max_go_in_further_transactions() {
    let Some(exim) = exim_or_skip(Settings {
        recipients_max: 100,
        ..DEFAULTS
    }) else {
        return;
    };
    let recipients: Vec<String> = (0..250).map(|i| format!("rcpt{i}@example.net")).collect();
    let input = mta::message("many-recipients", "undisclosed-recipients:;", "to 250\n");
    let q = Queue::new();
    let mut cmd = q.cmd(exim.port);
    cmd.args(["-f", SENDER]).args(&recipients);
    let out = run(cmd, input.clone());
    assert_exit(&out, 0, &exim);
    exim.wait_until_delivered();
    assert!(q.entries().is_empty(), "queued: {:?}", q.files());
    let want = mta::as_stored_with_lf(&input);
    for i in 0..250 {
        let (_, message) = exim.only_message(&format!("rcpt{i}"));
        assert_same_bytes(&message, &want, &format!("rcpt{i}"), &exim);
    }
    let received = exim.received();
    assert_eq!(received.len(), 3, "{}", exim.logs());
    let port = client_port(&received[0]);
    let mut counts = Vec::new();
    for line in &received {
        assert_eq!(client_port(line), port, "another connection: {line}");
        let rcpts = line
            .split_once(" for ")
            .map_or(0, |(_, r)| r.split(' ').count());
        counts.push(rcpts);
    }
    assert_eq!(counts, [100, 100, 50], "{received:#?}");
}
