//! SASL against an independent implementation: the private Postfix's smtpd hands AUTH to a
//! private Dovecot auth service (`smtpd_sasl_type = dovecot`), so the binary's PLAIN, LOGIN,
//! SCRAM-SHA-1 and SCRAM-SHA-256 are checked by code that shares nothing with it or with the
//! test server of `tests/sasl.rs`.
//!
//! Dovecot lives in a temporary directory of its own: `dovecot.conf` (from
//! `tests/postfix/dovecot.conf`), the passwd-file with the one user, `run/` (its base_dir,
//! with the `smtpd-auth` socket Postfix's `smtpd_sasl_path` names), `state/` and
//! `dovecot.log`. `tests/postfix/run-dovecot.sh` runs `dovecot -F` as its child and stops it
//! when its stdin closes, as `run-postfix.sh` does for Postfix. Postfix offers AUTH only
//! after STARTTLS and, unless a test says otherwise, takes mail only from a client that
//! authenticated.
//!
//! Dovecot's master runs only as root. Without `/usr/sbin/dovecot` (package dovecot-core) or
//! without root the tests print "skipped: ..." and pass, except with `CI=true`.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{
    NO_CHUNKING, Postfix, RECIPIENT, SENDER, START_LIMIT, STOP_LIMIT, assert_exit, assert_message,
    files_under, headers, postfix_or_skip, running_as_root, skip, stderr, stdout,
};

const DOVECOT: &str = "/usr/sbin/dovecot";
const LAUNCHER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/postfix/run-dovecot.sh");
const DOVECOT_CONF: &str = include_str!("dovecot.conf");

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";
const WRONG_PASSWORD: &str = "correct horse battery stapler";
/// Non-ASCII, and already what SASLprep (RFC 4013) makes of it: NFKC, no mapped characters.
const NON_ASCII_PASSWORD: &str = "pässwörd";

/// The mechanisms `dovecot.conf` enables, as smtpsend's `--auth` names them.
const MECHANISMS: [&str; 4] = ["plain", "login", "scram-sha-1", "scram-sha-256"];

// ---------------------------------------------------------------------------------------
// The auth service.

struct Dovecot {
    launcher: Child,
    /// Held open: the launcher stops Dovecot when it reads end of file here.
    stdin: Option<ChildStdin>,
    dir: TempDir,
}

impl Dovecot {
    /// A Dovecot whose only user is [`USER`] with this password.
    fn start(password: &str) -> Result<Dovecot, String> {
        let started = Instant::now();
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let dir_text = dir.path().to_str().ok_or("temp dir path is not UTF-8")?;
        fs::write(
            dir.path().join("dovecot.conf"),
            DOVECOT_CONF.replace("@DIR@", dir_text),
        )
        .map_err(|e| format!("dovecot.conf: {e}"))?;
        fs::write(
            dir.path().join("passwd"),
            format!("{USER}:{{PLAIN}}{password}\n"),
        )
        .map_err(|e| format!("passwd: {e}"))?;
        let log = fs::File::create(dir.path().join("launcher.log"))
            .map_err(|e| format!("launcher log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("launcher log: {e}"))?;
        let mut launcher = Command::new("sh")
            .arg(LAUNCHER)
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("sh {LAUNCHER}: {e}"))?;
        let stdin = launcher.stdin.take();
        let mut dovecot = Dovecot {
            launcher,
            stdin,
            dir,
        };
        let left = START_LIMIT.saturating_sub(started.elapsed());
        let mechanisms = dovecot.handshake(left)?;
        for wanted in MECHANISMS {
            if !mechanisms.contains(&wanted.to_ascii_uppercase()) {
                return Err(format!(
                    "the auth service offers {mechanisms:?}, not {wanted}\n{}",
                    dovecot.logs()
                ));
            }
        }
        Ok(dovecot)
    }

    /// Waits until the auth socket answers the way Dovecot's auth service greets a client
    /// (Dovecot's authentication protocol, version 1.2): `VERSION`, a `MECH` line per
    /// mechanism, `DONE`. Returns the mechanisms.
    fn handshake(&mut self, limit: Duration) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(mut socket) = UnixStream::connect(self.socket()) {
                return self.read_handshake(&mut socket);
            }
            if let Ok(Some(status)) = self.launcher.try_wait() {
                return Err(format!("the launcher exited ({status})\n{}", self.logs()));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no auth socket after {limit:?}: {}\n{}",
                    self.socket().display(),
                    self.logs()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn read_handshake(&self, socket: &mut UnixStream) -> Result<Vec<String>, String> {
        let failed = |e: std::io::Error| format!("auth socket: {e}\n{}", self.logs());
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(failed)?;
        write!(socket, "VERSION\t1\t2\nCPID\t{}\n", std::process::id()).map_err(failed)?;
        let mut mechanisms = Vec::new();
        for line in BufReader::new(&*socket).lines() {
            let line = line.map_err(failed)?;
            if line == "DONE" {
                return Ok(mechanisms);
            }
            if let Some(rest) = line.strip_prefix("MECH\t") {
                mechanisms.push(rest.split('\t').next().unwrap_or_default().to_owned());
            }
        }
        Err(format!(
            "the auth socket closed before DONE\n{}",
            self.logs()
        ))
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("run").join("smtpd-auth")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("dovecot.log")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    fn logs(&self) -> String {
        let launcher = fs::read_to_string(self.dir.path().join("launcher.log")).unwrap_or_default();
        format!(
            "--- run-dovecot.sh ---\n{launcher}--- dovecot.log ---\n{}",
            self.log()
        )
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // End of file on its stdin: the launcher stops Dovecot's master and exits.
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_LIMIT;
        while matches!(self.launcher.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if matches!(self.launcher.try_wait(), Ok(None)) {
            let _ = self.launcher.kill();
            let _ = self.launcher.wait();
            // The master's pid, which it wrote into base_dir; SIGTERM stops its children too.
            let master = fs::read_to_string(self.dir.path().join("run").join("master.pid"));
            if let Some(pid) = master
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
                .filter(|&pid| pid > 0)
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Postfix with Dovecot behind it.

/// The private Postfix as a submission server: AUTH only after STARTTLS, checked by
/// `dovecot`.
struct Submission {
    /// Declared first, so dropped first: smtpd goes before the auth service it talks to.
    postfix: Postfix,
    dovecot: Dovecot,
    cert: String,
}

/// Mail only from a client that authenticated, even for the instance's own example.net:
/// without AUTH, RCPT gets 554 5.7.1.
const AUTHENTICATED_ONLY: &str = "smtpd_relay_restrictions = permit_sasl_authenticated, reject\n";

/// Postfix as a submission server that takes mail only from a client that authenticated,
/// with Dovecot's one user having this password.
fn submission_or_skip(password: &str) -> Option<Submission> {
    submission_with_or_skip(password, AUTHENTICATED_ONLY)
}

/// The same with these lines added to main.cf (relay restrictions, say).
fn submission_with_or_skip(password: &str, extra_main_cf: &str) -> Option<Submission> {
    let started = if !Path::new(DOVECOT).exists() {
        Err(format!(
            "{DOVECOT} not found; .ci/install installs the dovecot-core package"
        ))
    } else if !running_as_root() {
        Err("Dovecot can only be started as root".to_owned())
    } else {
        Dovecot::start(password)
    };
    let dovecot = match started {
        Ok(dovecot) => dovecot,
        Err(problem) => return skip("private Dovecot", &problem),
    };
    let sasl_main_cf = format!(
        "\n# Dovecot SASL (tests/postfix/dovecot.rs)\n\
         smtpd_sasl_auth_enable = yes\n\
         smtpd_sasl_type = dovecot\n\
         smtpd_sasl_path = {}\n\
         smtpd_tls_auth_only = yes\n{extra_main_cf}",
        dovecot.socket().display()
    );
    let mut postfix = postfix_or_skip(&sasl_main_cf)?;
    postfix.other_logs.push(("dovecot.log", dovecot.log_file()));
    postfix
        .other_logs
        .push(("run-dovecot.sh", dovecot.dir.path().join("launcher.log")));
    let cert = postfix.cert.to_str().expect("UTF-8 path").to_owned();
    Some(Submission {
        postfix,
        dovecot,
        cert,
    })
}

impl Submission {
    /// One message from [`SENDER`] to [`RECIPIENT`] over verified STARTTLS as [`USER`],
    /// with `--auth mechanism` when there is one.
    fn send(&self, mechanism: Option<&str>, password: &str, input: &[u8]) -> Output {
        let mut args = vec![
            "--tls",
            "required",
            "--tls-trust-file",
            &self.cert,
            "--user",
            USER,
        ];
        if let Some(mechanism) = mechanism {
            args.extend(["--auth", mechanism]);
        }
        args.extend(["-f", SENDER, RECIPIENT]);
        self.postfix.smtpsend_with_password(password, &args, input)
    }

    /// The `sasl_method=` of every message smtpd accepted, in order, each with its
    /// `sasl_username=`: `("SCRAM-SHA-256", "alice")`.
    fn authenticated_messages(&self) -> Vec<(String, String)> {
        self.postfix
            .maillog()
            .lines()
            .filter(|l| l.contains("/smtpd["))
            .filter_map(|l| l.split_once(", sasl_method=").map(|(_, rest)| rest))
            .map(|rest| match rest.split_once(", sasl_username=") {
                Some((method, user)) => (method.to_owned(), user.to_owned()),
                None => (rest.to_owned(), String::new()),
            })
            .collect()
    }
}

fn message(subject: &str) -> Vec<u8> {
    format!("{}sent with AUTH, checked by Dovecot\n", headers(subject)).into_bytes()
}

// ---------------------------------------------------------------------------------------
// The right password: the message is delivered, and smtpd logs the mechanism and user.

fn delivers(mechanism: &str) {
    let Some(submission) = submission_or_skip(PASSWORD) else {
        return;
    };
    let postfix = &submission.postfix;
    let input = message(mechanism);
    let out = submission.send(Some(mechanism), PASSWORD, &input);
    assert_exit(&out, 0, postfix);
    postfix.wait_until_queue_empty();
    assert_message(&postfix.only_message("bob"), &input);
    assert_eq!(
        submission.authenticated_messages(),
        [(mechanism.to_ascii_uppercase(), USER.to_owned())],
        "{}",
        postfix.logs()
    );
    let disconnect = &postfix.disconnect_lines(1)[0];
    assert!(disconnect.contains(" starttls=1 auth=1 "), "{disconnect}");
}

#[test]
fn plain_against_dovecot_delivers() {
    delivers("plain");
}

#[test]
fn login_against_dovecot_delivers() {
    delivers("login");
}

#[test]
fn scram_sha_1_against_dovecot_delivers() {
    delivers("scram-sha-1");
}

#[test]
fn scram_sha_256_against_dovecot_delivers() {
    delivers("scram-sha-256");
}

// ---------------------------------------------------------------------------------------
// A wrong password: Dovecot refuses it, smtpd answers 535, the client exits 77 (EX_NOPERM).

fn wrong_password_exits_77(mechanism: &str) {
    let Some(submission) = submission_or_skip(PASSWORD) else {
        return;
    };
    let postfix = &submission.postfix;
    let out = submission.send(Some(mechanism), WRONG_PASSWORD, &message(mechanism));
    assert_exit(&out, 77, postfix);
    let err = stderr(&out);
    assert!(
        err.contains("535 5.7.8 Error: authentication failed"),
        "stderr should carry Postfix's 535: {err}"
    );
    let upper = mechanism.to_ascii_uppercase();
    let disconnect = &postfix.disconnect_lines(1)[0];
    assert!(disconnect.contains(" auth=0/1 "), "{disconnect}");
    postfix.wait_until_queue_empty();
    assert!(
        files_under(&postfix.dir.path().join("mail")).is_empty(),
        "{}",
        postfix.logs()
    );
    assert!(submission.authenticated_messages().is_empty());
    let log = postfix.maillog();
    assert!(
        log.contains(&format!(": SASL {upper} authentication failed")),
        "{log}"
    );
    let dovecot = submission.dovecot.log();
    assert!(
        dovecot.contains(&format!("({USER},127.0.0.1): Password mismatch")),
        "Dovecot's log should say why it refused {USER}:\n{dovecot}"
    );
}

#[test]
fn plain_with_a_wrong_password_against_dovecot_exits_77() {
    wrong_password_exits_77("plain");
}

#[test]
fn login_with_a_wrong_password_against_dovecot_exits_77() {
    wrong_password_exits_77("login");
}

#[test]
fn scram_sha_1_with_a_wrong_password_against_dovecot_exits_77() {
    wrong_password_exits_77("scram-sha-1");
}

#[test]
fn scram_sha_256_with_a_wrong_password_against_dovecot_exits_77() {
    wrong_password_exits_77("scram-sha-256");
}

// ---------------------------------------------------------------------------------------
// The rest.

/// Without `--auth` the client picks the strongest mechanism smtpd offers after STARTTLS.
#[test]
fn unforced_mechanism_against_dovecot_is_scram_sha_256() {
    let Some(submission) = submission_or_skip(PASSWORD) else {
        return;
    };
    let postfix = &submission.postfix;
    let input = message("unforced");
    let out = submission.send(None, PASSWORD, &input);
    assert_exit(&out, 0, postfix);
    postfix.wait_until_queue_empty();
    assert_message(&postfix.only_message("bob"), &input);
    assert_eq!(
        submission.authenticated_messages(),
        [("SCRAM-SHA-256".to_owned(), USER.to_owned())],
        "{}",
        postfix.logs()
    );
}

/// A password with umlauts (UTF-8, already in SASLprep's form) gets through every
/// mechanism: SCRAM's salted password is computed from the same octets Dovecot has.
#[test]
fn non_ascii_password_against_dovecot_delivers_with_every_mechanism() {
    let Some(submission) = submission_or_skip(NON_ASCII_PASSWORD) else {
        return;
    };
    let postfix = &submission.postfix;
    for (i, mechanism) in MECHANISMS.iter().enumerate() {
        let out = submission.send(
            Some(mechanism),
            NON_ASCII_PASSWORD,
            &message(&format!("non-ascii-{mechanism}")),
        );
        assert_exit(&out, 0, postfix);
        postfix.wait_until_queue_empty();
        assert_eq!(postfix.mailbox("bob").len(), i + 1, "{}", postfix.logs());
    }
    let methods: Vec<String> = submission
        .authenticated_messages()
        .into_iter()
        .map(|(method, user)| {
            assert_eq!(user, USER);
            method
        })
        .collect();
    assert_eq!(methods, MECHANISMS.map(|m| m.to_ascii_uppercase()));
}

/// The same password typed in decomposed form (`o` + U+0308): SASLprep's NFKC step
/// (RFC 4013 §2.2) makes SCRAM's salted password from the composed octets Dovecot has.
#[test]
fn scram_with_a_decomposed_password_against_dovecot_delivers() {
    let Some(submission) = submission_or_skip(NON_ASCII_PASSWORD) else {
        return;
    };
    let postfix = &submission.postfix;
    let decomposed = "pa\u{0308}sswo\u{0308}rd";
    assert_ne!(decomposed, NON_ASCII_PASSWORD);
    let input = message("decomposed");
    let out = submission.send(Some("scram-sha-256"), decomposed, &input);
    assert_exit(&out, 0, postfix);
    postfix.wait_until_queue_empty();
    assert_message(&postfix.only_message("bob"), &input);
}

/// smtpd offers what Dovecot offers, and only inside TLS (`smtpd_tls_auth_only`).
#[test]
fn serverinfo_shows_dovecot_mechanisms_only_after_starttls() {
    let Some(submission) = submission_or_skip(PASSWORD) else {
        return;
    };
    let postfix = &submission.postfix;
    let out = postfix.smtpsend(
        &[
            "--tls",
            "required",
            "--tls-trust-file",
            &submission.cert,
            "--serverinfo",
        ],
        b"",
    );
    assert_exit(&out, 0, postfix);
    let text = stdout(&out);
    let (before, after) = text
        .split_once("EHLO after TLS:\n")
        .unwrap_or_else(|| panic!("no EHLO after TLS in\n{text}"));
    assert!(!before.contains("AUTH"), "{text}");
    assert!(
        after.contains("\n  AUTH PLAIN LOGIN SCRAM-SHA-1 SCRAM-SHA-256\n"),
        "{text}"
    );
    assert!(
        after.ends_with("AUTH: PLAIN LOGIN SCRAM-SHA-1 SCRAM-SHA-256\n"),
        "{text}"
    );
}

/// The control: without AUTH this instance takes no mail at all, so the deliveries above
/// are owed to Dovecot's yes.
#[test]
fn unauthenticated_client_is_refused_by_the_dovecot_instance() {
    let Some(submission) = submission_or_skip(PASSWORD) else {
        return;
    };
    let postfix = &submission.postfix;
    let out = postfix.smtpsend(
        &[
            "--tls",
            "required",
            "--tls-trust-file",
            &submission.cert,
            "-f",
            SENDER,
            RECIPIENT,
        ],
        &message("unauthenticated"),
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "RCPT TO:<{RECIPIENT}>: 554 5.7.1 <{RECIPIENT}>: Recipient address rejected: \
             Access denied"
        )),
        "{err}\n{}",
        postfix.logs()
    );
    // A 5xx at RCPT other than 550, 551 or 553: EX_UNAVAILABLE.
    assert_exit(&out, 69, postfix);
    postfix.wait_until_queue_empty();
    assert!(files_under(&postfix.dir.path().join("mail")).is_empty());
}

// ---------------------------------------------------------------------------------------
// A refused AUTH PLAIN on a server that takes mail for its own domain from anyone.

/// Restrictions of a server that is both MX and submission server on one port: its own
/// domain (example.net) from anyone, other domains only after AUTH.
const OPEN_TO_ITS_DOMAIN: &str =
    "smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination\n";

/// AUTH PLAIN with its initial response is pipelined with MAIL, RCPT and what follows (RFC
/// 4954 §4 allows it for a one-step mechanism). Postfix answers the wrong password with 535,
/// then takes MAIL and RCPT as from any unauthenticated client, because bob@example.net is
/// its own. Without CHUNKING the flight ends with DATA and the client hangs up at the 354:
/// nothing is delivered, and the 535 is what it reports.
#[test]
fn refused_auth_plain_over_data_delivers_nothing_even_where_mail_is_open() {
    let no_chunking = format!("{OPEN_TO_ITS_DOMAIN}{NO_CHUNKING}");
    refused_auth_plain_delivers_nothing(&no_chunking);
}

/// The same with CHUNKING (Postfix's default). Once the flight behind AUTH carried
/// `BDAT n LAST` with the whole message: Postfix had it before the client read the 535,
/// delivered it unauthenticated, and the client exited 77 for a delivered message. Now a
/// pipelined AUTH is followed by DATA whatever the server offers.
#[test]
fn refused_auth_plain_over_bdat_delivers_nothing_even_where_mail_is_open() {
    refused_auth_plain_delivers_nothing(OPEN_TO_ITS_DOMAIN);
}

fn refused_auth_plain_delivers_nothing(extra_main_cf: &str) {
    let Some(submission) = submission_with_or_skip(PASSWORD, extra_main_cf) else {
        return;
    };
    let postfix = &submission.postfix;
    let out = submission.send(Some("plain"), WRONG_PASSWORD, &message("refused-plain"));
    assert_exit(&out, 77, postfix);
    let err = stderr(&out);
    assert!(
        err.contains("AUTH PLAIN <redacted>: 535 5.7.8 Error: authentication failed"),
        "{err}"
    );
    postfix.wait_until_queue_empty();
    assert!(
        postfix.mailbox("bob").is_empty(),
        "delivered without authentication, while the client exits 77\n{}",
        postfix.logs()
    );
}
