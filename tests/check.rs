//! `--check` (issue 15, item 3): the route a send would take, gone through up to `MAIL
//! FROM` and ended with RSET, against the in-process server with real credentials: one
//! line per step, nothing sent, and the exit status a send has at the same server.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::dns::{A, DnsServer, Mx};
use crate::common::server::Builder;
use crate::common::*;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-Pa55";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// STARTTLS, then PIPELINING and AUTH PLAIN LOGIN, wanting alice's password.
fn relay(pki: &Pki) -> Builder {
    TestServer::starttls(pki)
        .capabilities_tls(&["PIPELINING", "8BITMIME", "AUTH PLAIN LOGIN"])
        .credentials(USER, PASSWORD)
}

/// A config with account `work` at 127.0.0.1:`port`, private to the test.
fn config(dir: &Path, port: u16, pki: &Pki, password: &str) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "queue_on_tempfail = false\n\n[accounts.work]\nhost = \"127.0.0.1\"\nport = {port}\n\
             tls = \"required\"\ntls_trust_file = \"{}\"\nuser = \"{USER}\"\n\
             password = \"{password}\"\nfrom = \"{SENDER}\"\n",
            pki.trust_file.display()
        ),
    )
    .expect("write config");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod config");
    path
}

/// The binary with a home of its own and this config, and nothing else.
fn smtpsend_with(dir: &Path, config: &Path, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    cmd.env("SMTPSEND_QUEUE_RUNNER", "off")
        .env_remove("SMTPSEND_PASSWORD")
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .arg("--config")
        .arg(config)
        .args(args)
        .timeout(CLIENT_LIMIT);
    cmd
}

/// The exit status of a real send through `-a work` at a server built by `server`.
fn send_status(dir: &Path, server: Builder, pki: &Pki, password: &str) -> i32 {
    let server = server.start();
    let config = config(dir, server.port(), pki, password);
    let out = run(
        smtpsend_with(dir, &config, &["-a", "work", RECIPIENT]),
        MESSAGE,
    );
    drop(server.finish());
    code(&out)
}

#[test]
fn check_shows_each_step_and_sends_nothing() {
    let pki = Pki::self_signed();
    let dir = tempfile::tempdir().unwrap();
    let server = relay(&pki).start();
    let port = server.port();
    let config = config(dir.path(), port, &pki, PASSWORD);
    let out = run(
        smtpsend_with(dir.path(), &config, &["--check", "-a", "work"]),
        "",
    );
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let fingerprint = pki.colon_fingerprint();
    let expected_prefixes = [
        format!("route: relay 127.0.0.1:{port} (account work)"),
        "resolve: 127.0.0.1: 127.0.0.1".into(),
        format!("connect: 127.0.0.1 [127.0.0.1:{port}]"),
        "greeting: 220 ".into(),
        "EHLO: ".into(),
        "STARTTLS: 220 ".into(),
        "TLS: TLSv1_3 ".into(),
        "EHLO: PIPELINING, 8BITMIME, AUTH PLAIN LOGIN".into(),
        format!("AUTH PLAIN as {USER}: 235 "),
        format!("MAIL FROM:<{SENDER}> BODY=8BITMIME: 250 "),
        "RSET: 250 ".into(),
        "ok: 127.0.0.1 takes mail from <alice@example.org> up to the recipients; nothing was \
         sent"
            .into(),
    ];
    assert_eq!(lines.len(), expected_prefixes.len(), "{text}");
    for (line, prefix) in lines.iter().zip(&expected_prefixes) {
        assert!(
            line.starts_with(prefix.as_str()),
            "{line:?} should start {prefix:?}\n{text}"
        );
    }
    assert!(
        lines[6].contains(&format!("certificate verified, SHA-256 {fingerprint}")),
        "{}",
        lines[6]
    );
    let conn = t.only();
    assert_eq!(
        conn.verbs(),
        ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RSET", "QUIT"]
    );
    assert!(conn.auth[0].success, "{:?}", conn.auth);
    assert!(conn.messages.is_empty(), "a check sends no message");
    let all = format!("{text}{}", stderr(&out));
    assert!(!all.contains(PASSWORD), "the secret was shown: {all}");
}

#[test]
fn a_wrong_password_exits_77_naming_the_servers_reply_as_a_send_does() {
    let pki = Pki::self_signed();
    let dir = tempfile::tempdir().unwrap();
    let server = relay(&pki).start();
    let config = config(dir.path(), server.port(), &pki, "not-the-password");
    let out = run(
        smtpsend_with(dir.path(), &config, &["--check", "-a", "work"]),
        "",
    );
    let t = server.finish();
    assert_exit(&out, 77, &t);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("AUTH PLAIN as {USER}: 535 ")),
        "the server's reply is named: {text}"
    );
    assert!(text.contains("check failed (exit status 77): "), "{text}");
    assert!(!text.contains("RSET"), "{text}");
    assert!(stderr(&out).contains("535"), "{}", stderr(&out));
    let conn = t.only();
    assert!(!conn.auth[0].success);
    assert!(!conn.saw("RCPT") && !conn.saw("DATA") && conn.messages.is_empty());
    assert!(!format!("{text}{}", stderr(&out)).contains("not-the-password"));
    let sent = send_status(dir.path(), relay(&pki), &pki, "not-the-password");
    assert_eq!(sent, 77, "a send meets the same refusal");
}

#[test]
fn a_refused_sender_exits_as_a_send_would() {
    let pki = Pki::self_signed();
    let dir = tempfile::tempdir().unwrap();
    let refusing = || {
        relay(&pki)
            .rule(Rule::on("MAIL").reply("553 5.7.1 <alice@example.org>: Sender address rejected"))
    };
    let server = refusing().start();
    let config = config(dir.path(), server.port(), &pki, PASSWORD);
    let out = run(
        smtpsend_with(dir.path(), &config, &["--check", "-a", "work"]),
        "",
    );
    let t = server.finish();
    let status = code(&out);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("MAIL FROM:<{SENDER}> BODY=8BITMIME: 553 5.7.1 ")),
        "{text}"
    );
    assert!(
        text.contains(&format!("check failed (exit status {status}): ")),
        "{text}"
    );
    assert!(!t.only().saw("RSET") && !t.only().saw("RCPT"));
    let sent = send_status(dir.path(), refusing(), &pki, PASSWORD);
    assert_ne!(status, 0);
    assert_eq!(status, sent, "the check exits as the send does");
}

#[test]
fn a_refused_connection_exits_75() {
    let pki = Pki::self_signed();
    let dir = tempfile::tempdir().unwrap();
    let port = crate::common::mta::free_port();
    let config = config(dir.path(), port, &pki, PASSWORD);
    let out = run(
        smtpsend_with(dir.path(), &config, &["--check", "-a", "work"]),
        "",
    );
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("route: relay 127.0.0.1:"), "{text}");
    assert!(
        text.contains("check failed (exit status 75): ") && text.contains("connect to 127.0.0.1"),
        "{text}"
    );
    let sent = run(
        smtpsend_with(dir.path(), &config, &["-a", "work", RECIPIENT]),
        MESSAGE,
    );
    assert_eq!(code(&sent), 75, "{}", stderr(&sent));
}

#[test]
fn opportunistic_tls_says_why_the_certificate_is_not_verified() {
    // The certificate is not trusted (no trust file): opportunistic TLS encrypts anyway,
    // and the check says why it is not verified.
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki).start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "opportunistic", "-f", SENDER, "--check"]);
    let out = run(cmd, "");
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let text = stdout(&out);
    assert!(
        text.contains("certificate NOT verified (certificate is not signed by a trusted authority"),
        "{text}"
    );
    assert!(text.contains("AUTH: none configured (no user)"), "{text}");
    assert!(
        text.contains(&format!("SHA-256 {}", pki.colon_fingerprint())),
        "{text}"
    );
}

#[test]
fn a_check_through_a_relay_takes_no_recipient() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args(["--check", RECIPIENT]);
    let out = run(cmd, "");
    drop(server);
    assert_eq!(code(&out), 64, "{}", stderr(&out));
}

#[test]
fn without_a_relay_the_check_names_the_route_and_looks_up_the_domains() {
    let server = TestServer::builder().start();
    let port = server.port();
    let dns = DnsServer::start(&[
        ("example.org", Mx(10, "mx.example.org")),
        ("mx.example.org", A("127.0.0.1")),
        ("example.test", Mx(10, "mx1.example.test")),
        ("mx1.example.test", A("127.0.0.1")),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "queue_on_tempfail = false\n").unwrap();
    let direct = |extra: &[&str]| {
        let mut cmd = smtpsend_with(dir.path(), &config, &["--check", "-f", SENDER]);
        cmd.args(["--dns-server", &dns.addr().to_string()])
            .args(["--mx-port", &port.to_string()])
            .args(extra);
        cmd
    };

    // Nothing to connect to without a recipient domain: said, and not a failure.
    let out = run(direct(&[]), "");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("route: direct delivery"), "{text}");
    assert!(
        text.contains("sender domain example.org: MX 10 mx.example.org"),
        "{text}"
    );
    assert!(text.contains("nothing to connect to"), "{text}");

    // A recipient domain: its exchanger is tried up to MAIL FROM.
    let out = run(direct(&["example.test"]), "");
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let text = stdout(&out);
    assert!(
        text.contains("example.test: MX 10 mx1.example.test"),
        "{text}"
    );
    assert!(
        text.contains(&format!("connect: mx1.example.test [127.0.0.1:{port}]")),
        "{text}"
    );
    assert!(text.contains("RSET: 250 "), "{text}");
    let conn = t.only();
    assert!(conn.saw("MAIL") && conn.saw("RSET") && !conn.saw("RCPT"));
}
