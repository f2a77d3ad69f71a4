//! The diagnostic flags (`--serverinfo`, `--verify`, `--expand`, `--etrn`, `--noop`,
//! `--help-server`) against the in-process server, a test DNS server for the MX route, and
//! aiosmtpd as a real server.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command as StdCommand, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::common::dns::{A, DnsServer, Mx};
use crate::common::*;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The binary against the in-process server in cleartext, with these diagnostic flags.
fn probe(server: &TestServer, args: &[&str]) -> Output {
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "off"]).args(args);
    run(cmd, "")
}

#[test]
fn vrfy_252_is_printed_and_exits_0() {
    let server = TestServer::builder()
        .rule(Rule::on("VRFY").reply("252 2.0.0 Cannot VRFY user, but will try"))
        .start();
    let out = probe(&server, &["--verify", "bob@example.org"]);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(
        stdout(&out),
        "VRFY bob@example.org\n  252 2.0.0 Cannot VRFY user, but will try\n"
    );
    let conn = t.only();
    assert_eq!(conn.verbs(), ["EHLO", "VRFY", "QUIT"]);
    assert_eq!(conn.commands_for("VRFY")[0].arg, "bob@example.org");
}

#[test]
fn vrfy_of_an_unknown_user_exits_67() {
    for code in ["550", "551", "553"] {
        let server = TestServer::builder()
            .rule(Rule::on("VRFY").reply(&format!("{code} 5.1.1 no such user")))
            .start();
        let out = probe(&server, &["--verify", "nobody@example.org"]);
        let t = server.finish();
        assert_exit(&out, 67, &t);
        assert!(stdout(&out).contains(&format!("  {code} 5.1.1 no such user")));
    }
}

#[test]
fn expn_not_implemented_exits_69() {
    let server = TestServer::builder()
        .rule(Rule::on("EXPN").reply("502 5.5.1 EXPN not implemented"))
        .start();
    let out = probe(&server, &["--expand", "staff"]);
    let t = server.finish();
    assert_exit(&out, 69, &t);
    assert_eq!(
        stdout(&out),
        "EXPN staff\n  502 5.5.1 EXPN not implemented\n"
    );
}

#[test]
fn expn_lists_the_members() {
    let server = TestServer::builder()
        .rule(Rule::on("EXPN").reply("250-Alice <alice@example.org>\r\n250 Bob <bob@example.org>"))
        .start();
    let out = probe(&server, &["--expand", "staff"]);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(
        stdout(&out),
        "EXPN staff\n  250-Alice <alice@example.org>\n  250 Bob <bob@example.org>\n"
    );
}

#[test]
fn etrn_sends_the_domain_as_given_and_exits_by_the_reply() {
    let server = TestServer::builder()
        .rule(Rule::on("ETRN").reply("250 Queuing started"))
        .start();
    let out = probe(&server, &["--etrn", "@example.org"]);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(t.only().commands_for("ETRN")[0].line, "ETRN @example.org");

    // RFC 1985 §5: 458 "Unable to queue messages", a temporary failure.
    let server = TestServer::builder()
        .rule(Rule::on("ETRN").reply("458 Unable to queue messages for node example.org"))
        .start();
    let out = probe(&server, &["--etrn", "example.org"]);
    let t = server.finish();
    assert_exit(&out, 75, &t);
}

#[test]
fn noop_answers_and_a_4xx_exits_75() {
    let server = TestServer::builder().start();
    let out = probe(&server, &["--noop"]);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(stdout(&out), "NOOP\n  250 2.0.0 Ok\n");

    let server = TestServer::builder()
        .rule(Rule::on("NOOP").reply("451 4.3.0 try later"))
        .start();
    let out = probe(&server, &["--noop"]);
    let t = server.finish();
    assert_exit(&out, 75, &t);
}

#[test]
fn help_with_and_without_a_topic() {
    let server = TestServer::builder()
        .rule(Rule::on("HELP").reply("214-Commands:\r\n214 EHLO MAIL RCPT DATA"))
        .start();
    let out = probe(&server, &["--help-server"]);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(
        stdout(&out),
        "HELP\n  214-Commands:\n  214 EHLO MAIL RCPT DATA\n"
    );
    assert_eq!(t.only().commands_for("HELP")[0].line, "HELP");

    let server = TestServer::builder()
        .rule(Rule::on("HELP").reply("214 DATA starts the message"))
        .start();
    let out = probe(&server, &["--help-server=DATA"]);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(t.only().commands_for("HELP")[0].line, "HELP DATA");
}

#[test]
fn several_queries_go_in_order_and_the_worst_reply_decides() {
    let server = TestServer::builder()
        .rule(Rule::on("VRFY").reply("252 2.0.0 maybe"))
        .rule(Rule::on("EXPN").reply("502 5.5.1 no"))
        .rule(Rule::on("ETRN").reply("458 later"))
        .start();
    let out = probe(
        &server,
        &[
            "--help-server",
            "--noop",
            "--etrn",
            "example.org",
            "--expand",
            "staff",
            "--verify",
            "bob@example.org",
        ],
    );
    let t = server.finish();
    assert_exit(&out, 69, &t);
    assert_eq!(
        t.only().verbs(),
        ["EHLO", "VRFY", "EXPN", "ETRN", "NOOP", "HELP", "QUIT"]
    );
    let conn = t.only();
    assert_eq!(
        conn.flights.len(),
        7,
        "one command per flight: nothing is pipelined"
    );
}

#[test]
fn a_refused_greeting_is_shown_and_exits_69() {
    let server = TestServer::builder()
        .banner("554 5.7.1 no service for you")
        .start();
    let out = probe(&server, &["--serverinfo"]);
    let t = server.finish();
    assert_exit(&out, 69, &t);
    assert!(
        stdout(&out).contains("banner:\n  554 5.7.1 no service for you\n"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("554 5.7.1 no service for you"));
}

#[test]
fn serverinfo_shows_capabilities_before_and_after_starttls_and_the_certificate() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki).start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "required", "--tls-trust-file"])
        .arg(&pki.trust_file)
        .arg("--serverinfo");
    let out = run(cmd, "");
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let text = stdout(&out);
    let port = t.only();
    assert!(port.tls_established);
    for expected in [
        "banner:\n  220 localhost ESMTP test\n",
        "EHLO before STARTTLS:\n  greeting: localhost greets ",
        "\n  PIPELINING\n  STARTTLS\n",
        "TLS: TLSv1_3 ",
        "certificate:\n  subject: CN=localhost\n  issuer: CN=localhost\n",
        "  names: DNS:localhost, IP:127.0.0.1\n",
        &format!("  SHA-256: {}\n", pki.colon_fingerprint()),
        "  verified: yes\n",
        "EHLO after TLS:\n",
        "\n  PIPELINING\n  8BITMIME\n  AUTH PLAIN LOGIN\n",
        "AUTH: PLAIN LOGIN\n",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
    assert!(text.contains("  not before: ") && text.contains("  not after: "));
    assert!(!text.contains("expired"), "{text}");
    assert_eq!(port.verbs(), ["EHLO", "STARTTLS", "EHLO", "QUIT"]);
}

#[test]
fn serverinfo_with_opportunistic_tls_shows_an_untrusted_certificate_as_unverified() {
    let pki = Pki::self_signed_expired();
    let server = TestServer::starttls(&pki).start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "opportunistic", "--serverinfo"]);
    let out = run(cmd, "");
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let text = stdout(&out);
    assert!(text.contains("  verified: no\n"), "{text}");
    assert!(
        text.contains("  not after: 2021-01-01T00:00:00Z (expired)\n"),
        "{text}"
    );
    assert!(text.contains(&pki.colon_fingerprint()));
}

#[test]
fn serverinfo_with_required_tls_refuses_an_untrusted_certificate() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki).start();
    let mut cmd = smtpsend(server.port());
    cmd.args([
        "--tls",
        "required",
        "--serverinfo",
        "--verify",
        "bob@example.org",
    ]);
    let out = run(cmd, "");
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(stderr(&out).contains("certificate issuer is not trusted"));
    assert!(
        t.never_saw("VRFY"),
        "nothing is asked over an untrusted channel"
    );
    // What came before the handshake is still shown.
    assert!(
        stdout(&out).contains("EHLO before STARTTLS:"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn serverinfo_over_implicit_tls_has_one_ehlo() {
    let pki = Pki::self_signed();
    let server = TestServer::builder()
        .implicit_tls(&pki)
        .capabilities_tls(&["PIPELINING", "AUTH PLAIN"])
        .start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "implicit", "--tls-fingerprint", &pki.fingerprint()])
        .arg("--serverinfo");
    let out = run(cmd, "");
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let text = stdout(&out);
    assert!(!text.contains("before STARTTLS"), "{text}");
    assert!(text.contains("EHLO after TLS:\n"), "{text}");
    assert!(text.contains("  verified: yes\n"), "pinned: {text}");
    assert!(text.contains("AUTH: PLAIN\n"), "{text}");
}

#[test]
fn a_probe_never_authenticates_nor_asks_for_a_password() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .credentials("alice", "secret")
        .start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "required", "--tls-trust-file"])
        .arg(&pki.trust_file)
        // A user without a password would stop a send with exit 78; a probe needs neither.
        .args(["--user", "alice", "--serverinfo", "--noop"]);
    let out = run(cmd, "");
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert!(t.never_saw("AUTH") && t.never_saw("MAIL"));
}

#[test]
fn serverinfo_without_tls_says_so() {
    let server = TestServer::builder().start();
    let out = probe(&server, &["--serverinfo"]);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let text = stdout(&out);
    assert!(text.contains("EHLO:\n"), "{text}");
    assert!(text.contains("TLS: none\n") && text.contains("AUTH: none offered\n"));
}

#[test]
fn an_empty_address_is_a_usage_error() {
    let server = TestServer::builder().start();
    let out = probe(&server, &["--verify", " "]);
    drop(server);
    assert_eq!(code(&out), 64, "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------
// A domain instead of --host: its MX hosts, from a DNS server of the test's own.

/// The binary without --host, isolated like `crate::common::smtpsend`.
fn smtpsend_without_host(dir: &Path) -> assert_cmd::Command {
    let config = dir.join("config.toml");
    std::fs::write(&config, "queue_on_tempfail = false\n").expect("test config");
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    // Queue runs in tests are the tests' own: no background runner.
    cmd.env("SMTPSEND_QUEUE_RUNNER", "off");
    cmd.arg("--config")
        .arg(&config)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env_remove("SMTPSEND_PASSWORD")
        .timeout(CLIENT_LIMIT);
    cmd
}

#[test]
fn a_domain_is_probed_at_its_first_reachable_mx() {
    let server = TestServer::builder().start();
    let port = server.port();
    // The preferred exchanger's address has nothing listening (the test server is bound
    // to 127.0.0.1 only), so the second is the first reachable one.
    let dns = DnsServer::start(&[
        ("example.test", Mx(10, "mx1.example.test")),
        ("example.test", Mx(20, "mx2.example.test")),
        ("mx1.example.test", A("127.0.0.2")),
        ("mx2.example.test", A("127.0.0.1")),
    ]);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = smtpsend_without_host(dir.path());
    cmd.args(["--dns-server", &dns.addr().to_string()])
        .args(["--mx-port", &port.to_string()])
        .args(["--serverinfo", "--noop", "-v", "example.test"]);
    let out = run(cmd, "");
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("server: mx2.example.test [127.0.0.1:{port}]\n")),
        "{text}"
    );
    assert!(text.contains("NOOP\n  250 2.0.0 Ok\n"));
    assert!(
        stderr(&out).contains("mx1.example.test"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_domain_with_host_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = smtpsend_without_host(dir.path());
    cmd.args(["--host", "127.0.0.1", "--serverinfo", "example.test"]);
    let out = run(cmd, "");
    assert_eq!(code(&out), 64, "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------
// aiosmtpd, a real server: it answers NOOP and HELP, VRFY with 252 and EXPN with 502.

const AIOSMTPD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/real/aiosmtpd_server.py");

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

fn python() -> String {
    std::env::var("SMTPSEND_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Whether aiosmtpd can be started: a missing one fails the test when `CI=true`.
fn have_aiosmtpd() -> bool {
    let ok = StdCommand::new(python())
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok || !in_ci(),
        "aiosmtpd is missing and CI=true does not allow skipping (python3 -m pip install aiosmtpd)"
    );
    if !ok {
        eprintln!("skipped: aiosmtpd not found; python3 -m pip install aiosmtpd");
    }
    ok
}

/// The launcher, killed on drop; it also exits when its stdin (held here) closes.
struct Aiosmtpd {
    child: Child,
    _stdin: Option<ChildStdin>,
    port: u16,
    cert: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Aiosmtpd {
    fn start(mode: &str) -> Aiosmtpd {
        let dir = tempfile::tempdir().expect("temp dir");
        let names = vec!["localhost".into(), "127.0.0.1".into()];
        let ck = rcgen::generate_simple_self_signed(names).expect("certificate");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, ck.cert.pem()).expect("write cert");
        std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
        let log = dir.path().join("aiosmtpd.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut child = StdCommand::new(python())
            .arg(AIOSMTPD_SCRIPT)
            .args(["--host", "127.0.0.1", "--port", "0", "--mode", mode])
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--out")
            .arg(dir.path().join("out"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start aiosmtpd");
        let stdin = child.stdin.take();
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.strip_prefix("READY ") {
                    let _ = tx.send(port.trim().parse::<u16>());
                    break;
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(port)) => port,
            other => panic!(
                "aiosmtpd did not report READY: {other:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        };
        Aiosmtpd {
            child,
            _stdin: stdin,
            port,
            cert,
            log,
            _dir: dir,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = smtpsend_without_host(dir.path());
        cmd.args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(args);
        run(cmd, "")
    }

    #[track_caller]
    fn assert_exit(&self, out: &Output, code: i32) {
        assert_eq!(
            out.status.code(),
            Some(code),
            "stdout:\n{}\nstderr:\n{}\naiosmtpd log:\n{}",
            stdout(out),
            stderr(out),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

#[test]
fn aiosmtpd_answers_vrfy_with_252_and_exits_0() {
    if !have_aiosmtpd() {
        return;
    }
    let server = Aiosmtpd::start("plain");
    let out = server.run(&["--tls", "off", "--verify", "bob@example.org"]);
    server.assert_exit(&out, 0);
    assert!(stdout(&out).starts_with("VRFY bob@example.org\n  252 "));
}

#[test]
fn aiosmtpd_refuses_expn_with_502_and_exits_69() {
    if !have_aiosmtpd() {
        return;
    }
    let server = Aiosmtpd::start("plain");
    let out = server.run(&["--tls", "off", "--expand", "staff"]);
    server.assert_exit(&out, 69);
    assert!(stdout(&out).contains("  502 "), "{}", stdout(&out));
}

#[test]
fn aiosmtpd_answers_noop_and_help() {
    if !have_aiosmtpd() {
        return;
    }
    let server = Aiosmtpd::start("plain");
    let out = server.run(&["--tls", "off", "--noop", "--help-server"]);
    server.assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("NOOP\n  250 OK\n"), "{text}");
    assert!(text.contains("HELP\n  250 Supported commands:"), "{text}");

    let out = server.run(&["--tls", "off", "--help-server=NOOP"]);
    server.assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("HELP NOOP\n  250 Syntax: NOOP"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn aiosmtpd_serverinfo_shows_starttls_and_its_certificate() {
    if !have_aiosmtpd() {
        return;
    }
    let server = Aiosmtpd::start("starttls");
    let trust = server.cert.to_string_lossy().into_owned();
    let out = server.run(&[
        "--tls",
        "required",
        "--tls-trust-file",
        &trust,
        "--serverinfo",
    ]);
    server.assert_exit(&out, 0);
    let text = stdout(&out);
    let pem = std::fs::read_to_string(&server.cert).expect("cert");
    let der = pem_to_der(&pem);
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    let fingerprint = digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    for expected in [
        "EHLO before STARTTLS:\n",
        "\n  STARTTLS\n",
        "EHLO after TLS:\n",
        "AUTH: LOGIN PLAIN\n",
        &format!("  SHA-256: {fingerprint}\n"),
        "  verified: yes\n",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
    // aiosmtpd offers AUTH only after TLS.
    let before = text.split("EHLO after TLS").next().unwrap_or_default();
    assert!(!before.contains("AUTH "), "{text}");
}

/// The one certificate of a PEM file as DER, decoded here without the library.
fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM base64")
}
