//! msmtp configurations work as they are (issue 15, item 2). Each msmtprc in
//! `tests/data/msmtprc/` (ours, in the shape of msmtp's documented examples) is sent to the
//! in-process server on 127.0.0.1 through Debian's msmtp, through smtpsend, and through
//! smtpsend with the TOML `smtpsend config import` printed for it: all three must reach
//! the server with the same envelope and the same AUTH identity.
//!
//! msmtp comes from Debian's `msmtp` package (`.ci/install`). Without it the msmtp leg is
//! skipped with a note (and the smtpsend legs still run), except with `CI=true`, where a
//! missing msmtp fails the test.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use crate::common::server::{Builder, Connection};
use crate::common::*;

/// What the server saw of one client: the envelope, the AUTH exchange, TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    mail_from: String,
    rcpt_to: Vec<String>,
    /// Mechanism, user, password and whether the server accepted them.
    auth: Option<(String, String, String, bool)>,
    tls: bool,
}

fn seen(conn: &Connection) -> Seen {
    let message = conn.message();
    Seen {
        mail_from: message.mail_from.clone(),
        rcpt_to: message.rcpt_to.clone(),
        auth: conn.auth.last().map(|a| {
            (
                a.mechanism.clone(),
                a.user.clone(),
                a.password.clone(),
                a.success,
            )
        }),
        tls: message.tls,
    }
}

/// The version of the msmtp that is here to compare with (`msmtp version 1.8.23`).
fn msmtp_version() -> Option<(u32, u32, u32)> {
    let out = std::process::Command::new("msmtp")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.lines().next()?.strip_prefix("msmtp version ")?;
    let mut parts = version.trim().split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// Whether Debian's msmtp is here to compare with.
fn have_msmtp() -> bool {
    let found = msmtp_version().is_some();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "msmtp is not installed (.ci/install installs Debian's msmtp)"
        );
        eprintln!("skipped: msmtp is not installed; comparing smtpsend with itself only");
    }
    found
}

/// A fixture written into a directory of its own with the server's port and CA, and a
/// home directory with nothing in it.
struct Setup {
    dir: tempfile::TempDir,
    rc: PathBuf,
    home: PathBuf,
}

fn fixture(name: &str, port: u16, pki: &Pki) -> Setup {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/msmtprc")
        .join(name);
    let text = std::fs::read_to_string(&source)
        .expect("read fixture")
        .replace("@PORT@", &port.to_string())
        .replace("@CA@", pki.trust_file.to_str().expect("UTF-8 path"));
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let rc = dir.path().join("msmtprc");
    write_private(&rc, &text);
    Setup { dir, rc, home }
}

/// Mode 0600: msmtp and smtpsend both refuse a password in a file others may read.
fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// msmtp with the fixture as its user file, in sendmail mode.
fn msmtp(setup: &Setup, args: &[&str]) -> Output {
    let mut cmd = assert_cmd::Command::new("msmtp");
    cmd.arg("-C")
        .arg(&setup.rc)
        .args(args)
        .arg(RECIPIENT)
        .env("HOME", &setup.home)
        .timeout(CLIENT_LIMIT);
    run(cmd, MESSAGE)
}

/// smtpsend isolated from the machine: its own home, no queue (a failure must show).
fn smtpsend_cmd(setup: &Setup) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("smtpsend").expect("binary");
    // Queue runs in tests are the tests' own: no background runner.
    cmd.env("SMTPSEND_QUEUE_RUNNER", "off");
    cmd.env("HOME", &setup.home)
        .env("XDG_CONFIG_HOME", setup.home.join(".config"))
        .env("XDG_STATE_HOME", setup.home.join(".state"))
        .env_remove("SMTPSEND_CONFIG")
        .env_remove("SMTPSEND_PASSWORD")
        .timeout(CLIENT_LIMIT);
    cmd
}

fn smtpsend_with(setup: &Setup, config: &Path, args: &[&str]) -> Output {
    let mut cmd = smtpsend_cmd(setup);
    cmd.arg("--config")
        .arg(config)
        .arg("--no-queue")
        .args(args)
        .arg(RECIPIENT);
    run(cmd, MESSAGE)
}

/// `smtpsend config import` of the fixture, saved as a private TOML file.
fn imported(setup: &Setup) -> PathBuf {
    let mut cmd = smtpsend_cmd(setup);
    cmd.args(["config", "import"]).arg(&setup.rc);
    let out = cmd.output().expect("run config import");
    assert_eq!(code(&out), 0, "config import: {}", stderr(&out));
    let toml = String::from_utf8(out.stdout).expect("UTF-8 TOML");
    let path = setup.dir.path().join("config.toml");
    write_private(&path, &toml);
    path
}

/// Sends through msmtp (when installed), smtpsend and smtpsend with the imported TOML;
/// asserts all reached the server alike and returns what the server saw, with the
/// delivered messages.
fn compare(fixture_name: &str, server: Builder, pki: &Pki, args: &[&str]) -> (Seen, Vec<Vec<u8>>) {
    compare_if(true, fixture_name, server, pki, args)
}

/// [`compare`], leaving msmtp out when `msmtp_too` is false.
fn compare_if(
    msmtp_too: bool,
    fixture_name: &str,
    server: Builder,
    pki: &Pki,
    args: &[&str],
) -> (Seen, Vec<Vec<u8>>) {
    let with_msmtp = msmtp_too && have_msmtp();
    let clients = if with_msmtp { 3 } else { 2 };
    let server = server
        .connections(clients)
        .deadline(Duration::from_secs(30))
        .start();
    let setup = fixture(fixture_name, server.port(), pki);
    let toml = imported(&setup);
    let mut outs = Vec::new();
    if with_msmtp {
        outs.push(("msmtp", msmtp(&setup, args)));
    }
    outs.push(("smtpsend", smtpsend_with(&setup, &setup.rc, args)));
    outs.push((
        "smtpsend with the imported TOML",
        smtpsend_with(&setup, &toml, args),
    ));
    let t = server.finish();
    for (who, out) in &outs {
        assert_eq!(
            code(out),
            0,
            "{who} failed: {}\nserver saw: {:#?}",
            stderr(out),
            t.connections.iter().map(|c| c.verbs()).collect::<Vec<_>>()
        );
    }
    assert_eq!(t.connections.len(), clients, "one connection per client");
    let seen_all: Vec<Seen> = t.connections.iter().map(seen).collect();
    for (i, (who, _)) in outs.iter().enumerate().skip(1) {
        assert_eq!(seen_all[i], seen_all[0], "{who} differs from {}", outs[0].0);
    }
    let contents = t
        .connections
        .iter()
        .map(|c| c.message().content.clone())
        .collect();
    (seen_all[0].clone(), contents)
}

fn auth(mechanism: &str, user: &str, password: &str) -> Option<(String, String, String, bool)> {
    Some((mechanism.into(), user.into(), password.into(), true))
}

#[test]
fn webmail_over_starttls_with_passwordeval_sends_as_msmtp_does() {
    let pki = Pki::ca_signed();
    let server =
        TestServer::starttls(&pki).credentials("jane.doe@webmail.example", "app-password-one");
    let (seen, _) = compare("webmail-starttls", server, &pki, &[]);
    assert_eq!(
        seen,
        Seen {
            mail_from: "jane.doe@webmail.example".into(),
            rcpt_to: vec![RECIPIENT.into()],
            auth: auth("PLAIN", "jane.doe@webmail.example", "app-password-one"),
            tls: true,
        }
    );
}

#[test]
fn provider_with_tls_starttls_off_speaks_tls_from_the_first_byte() {
    let pki = Pki::ca_signed();
    let server = TestServer::builder()
        .implicit_tls(&pki)
        .capabilities_tls(&["PIPELINING", "AUTH PLAIN LOGIN"])
        .credentials("box-4711", "  a pass phrase with blanks  ");
    let (seen, _) = compare("provider-smtps", server, &pki, &[]);
    assert_eq!(
        seen,
        Seen {
            mail_from: "box-4711@provider.example".into(),
            rcpt_to: vec![RECIPIENT.into()],
            auth: auth("PLAIN", "box-4711", "  a pass phrase with blanks  "),
            tls: true,
        }
    );
}

#[test]
fn account_default_colon_name_is_used_without_a_or_f() {
    let pki = Pki::ca_signed();
    let server = TestServer::starttls(&pki).credentials("alice.private", "personal-secret");
    let (seen, _) = compare("inheritance", server, &pki, &[]);
    assert_eq!(seen.mail_from, "alice@personal.example");
    assert_eq!(seen.auth, auth("LOGIN", "alice.private", "personal-secret"));
}

#[test]
fn an_account_inherits_its_parents_login_and_server() {
    let pki = Pki::ca_signed();
    let server = TestServer::starttls(&pki).credentials("alice", "office-secret");
    let (seen, _) = compare("inheritance", server, &pki, &["-a", "office-lists"]);
    assert_eq!(seen.mail_from, "alice-lists@office.example");
    assert_eq!(seen.auth, auth("PLAIN", "alice", "office-secret"));
}

#[test]
fn the_envelope_sender_chooses_the_account_by_its_from_pattern() {
    // msmtp before 1.8.25 tried no pattern for a sender with a +detail (its issue 132,
    // fixed upstream); smtpsend matches as msmtp does since, so that case is compared
    // with msmtp only where msmtp has the fix.
    let fixed = msmtp_version().is_some_and(|v| v >= (1, 8, 25));
    let cases = [
        ("boss@work.example", "worker", "work-pw", true),
        ("kim@club.example", "member", "club-pw", true),
        ("kim+news@club.example", "member", "club-pw", fixed),
        ("zed@club.example", "someone", "default-pw", true),
        ("someone@home.example", "someone", "default-pw", true),
        ("someone+x@home.example", "someone", "default-pw", true),
    ];
    for (sender, user, password, msmtp_too) in cases {
        let pki = Pki::ca_signed();
        let server = TestServer::starttls(&pki).credentials(user, password);
        let (seen, _) = compare_if(msmtp_too, "wildcards", server, &pki, &["-f", sender]);
        assert_eq!(seen.mail_from, sender, "-f is the envelope sender");
        assert_eq!(seen.auth, auth("PLAIN", user, password), "-f {sender}");
    }
}

#[test]
fn set_from_header_on_and_undisclosed_recipients_rewrite_the_header_alike() {
    let pki = Pki::ca_signed();
    let server = TestServer::starttls(&pki).credentials("announcer", "announce-pw");
    let (seen, contents) = compare("headers", server, &pki, &[]);
    assert_eq!(seen.mail_from, "news@announce.example");
    for content in contents {
        let text = String::from_utf8(content).expect("UTF-8 message");
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        let fields: Vec<&str> = head.split("\r\n").collect();
        let from: Vec<&&str> = fields.iter().filter(|f| f.starts_with("From:")).collect();
        assert_eq!(from, [&"From: news@announce.example"], "{text}");
        assert!(fields.contains(&"To: undisclosed-recipients:;"), "{text}");
        assert!(!head.contains("bob@example.org"), "{text}");
    }
}

#[test]
fn tls_certcheck_off_encrypts_to_a_certificate_nobody_trusts_and_sends_no_login() {
    // The fixture's trust is the CA of another PKI: the server's own is not trusted.
    let server_pki = Pki::self_signed();
    let other = Pki::ca_signed();
    let server = TestServer::starttls(&server_pki);
    let (seen, _) = compare("certcheck-off", server, &other, &[]);
    assert_eq!(
        seen,
        Seen {
            mail_from: "scanner@appliance.example".into(),
            rcpt_to: vec![RECIPIENT.into()],
            auth: None,
            tls: true,
        }
    );
}

#[test]
fn auth_off_in_toml_sends_no_login_though_a_password_is_set() {
    let pki = Pki::ca_signed();
    // AUTH is offered but no credentials are configured: any AUTH would be refused.
    let server = TestServer::starttls(&pki).start();
    let setup = fixture("certcheck-off", server.port(), &pki);
    let toml = setup.dir.path().join("config.toml");
    write_private(
        &toml,
        &format!(
            "host = \"127.0.0.1\"\nport = {}\ntls_trust_file = \"{}\"\nauth = \"off\"\n\
             user = \"someone\"\npassword = \"never-sent\"\nfrom = \"a@example.org\"\n",
            server.port(),
            pki.trust_file.display()
        ),
    );
    let out = smtpsend_with(&setup, &toml, &[]);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert!(!conn.saw("AUTH"), "{:?}", conn.verbs());
    assert!(conn.message().tls);
}

#[test]
fn a_users_msmtprc_is_found_without_being_named() {
    if Path::new("/etc/smtpsend.conf").exists() {
        eprintln!("skipped: /etc/smtpsend.conf exists and comes before ~/.msmtprc");
        return;
    }
    let pki = Pki::ca_signed();
    let server = TestServer::starttls(&pki)
        .credentials("jane.doe@webmail.example", "app-password-one")
        .start();
    let setup = fixture("webmail-starttls", server.port(), &pki);
    std::fs::rename(&setup.rc, setup.home.join(".msmtprc")).expect("move to ~/.msmtprc");
    let mut cmd = smtpsend_cmd(&setup);
    cmd.args(["--no-queue", RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let seen = seen(t.only());
    assert_eq!(seen.mail_from, "jane.doe@webmail.example");
    assert_eq!(
        seen.auth.map(|a| a.1).as_deref(),
        Some("jane.doe@webmail.example")
    );

    // And `config import` with no file reads the same one.
    let mut cmd = smtpsend_cmd(&setup);
    cmd.args(["config", "import"]);
    let out = cmd.output().expect("run config import");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let toml = String::from_utf8_lossy(&out.stdout);
    assert!(
        toml.contains("user = \"jane.doe@webmail.example\""),
        "{toml}"
    );
    assert!(toml.contains(".msmtprc"), "names the file it read: {toml}");
}

#[test]
fn a_directive_smtpsend_cannot_honour_exits_78_naming_the_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rc = dir.path().join("msmtprc");
    write_private(
        &rc,
        "# Tor users send through a SOCKS proxy\naccount default\nhost mail.example\n\
         tls on\nproxy_host 127.0.0.1\nproxy_port 9050\n",
    );
    let setup = Setup {
        home: dir.path().to_path_buf(),
        rc,
        dir,
    };
    let out = smtpsend_with(&setup, &setup.rc, &[]);
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("msmtprc: account default: line 5: proxy_host 127.0.0.1"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn credentials_over_unchecked_tls_are_refused_before_connecting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rc = dir.path().join("msmtprc");
    write_private(
        &rc,
        "account default\nhost 127.0.0.1\nport 9\ntls on\ntls_certcheck off\n\
         auth on\nuser u\npassword p\n",
    );
    let setup = Setup {
        home: dir.path().to_path_buf(),
        rc,
        dir,
    };
    let out = smtpsend_with(&setup, &setup.rc, &[]);
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("line 5: tls_certcheck off with auth"),
        "{}",
        stderr(&out)
    );
}

/// Two accounts, each with its own relay (two servers on loopback), chosen by `from`.
fn two_relays(work_port: u16, club_port: u16, pki: &Pki) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let rc = dir.path().join("msmtprc");
    let ca = pki.trust_file.display();
    write_private(
        &rc,
        &format!(
            "defaults\nhost 127.0.0.1\ntls on\ntls_trust_file {ca}\nauth on\n\n\
             account work\nport {work_port}\nuser worker\npasswordeval echo work-pw\n\
             from *@work.example\n\n\
             account club\nport {club_port}\nuser member\npasswordeval echo club-pw\n\
             from *@club.example\n\n\
             account default : work\n"
        ),
    );
    Setup { dir, rc, home }
}

/// msmtp's --read-envelope-from, as mutt users call it: the message's From is the envelope
/// sender and chooses the account, so the message goes to that account's relay (and
/// msmtp, when installed, does the same with the same file).
#[test]
fn read_envelope_from_sends_through_the_relay_of_the_account_whose_from_matches() {
    let with_msmtp = have_msmtp();
    let runs = if with_msmtp { 2 } else { 1 };
    for (from, chosen) in [("kim@club.example", "club"), ("boss@work.example", "work")] {
        let pki = Pki::ca_signed();
        let work = TestServer::starttls(&pki)
            .credentials("worker", "work-pw")
            .connections(runs)
            .start();
        let club = TestServer::starttls(&pki)
            .credentials("member", "club-pw")
            .connections(runs)
            .start();
        let setup = two_relays(work.port(), club.port(), &pki);
        let message = MESSAGE.replace(
            "From: Alice <alice@example.org>",
            &format!("From: Kim <{from}>"),
        );
        let mut cmd = smtpsend_cmd(&setup);
        cmd.arg("--config")
            .arg(&setup.rc)
            .args(["--no-queue", "--read-envelope-from", RECIPIENT]);
        let out = run(cmd, message.clone());
        assert_eq!(code(&out), 0, "smtpsend: {}", stderr(&out));
        if with_msmtp {
            let mut cmd = assert_cmd::Command::new("msmtp");
            cmd.arg("-C")
                .arg(&setup.rc)
                .args(["--read-envelope-from", RECIPIENT])
                .env("HOME", &setup.home)
                .timeout(CLIENT_LIMIT);
            let out = run(cmd, message);
            assert_eq!(code(&out), 0, "msmtp: {}", stderr(&out));
        }
        let (work, club) = (work.finish(), club.finish());
        let (used, unused, user) = match chosen {
            "club" => (club, work, "member"),
            _ => (work, club, "worker"),
        };
        assert!(
            unused.connections.is_empty(),
            "the other relay was used for {from}"
        );
        assert_eq!(used.connections.len(), runs, "{from}");
        for conn in &used.connections {
            let seen = seen(conn);
            assert_eq!(
                seen.mail_from, from,
                "the From header is the envelope sender"
            );
            assert_eq!(seen.auth.map(|a| a.1), Some(user.to_string()), "{from}");
        }
    }
}

#[test]
fn read_envelope_from_without_a_from_header_exits_65_and_sends_nothing() {
    let pki = Pki::ca_signed();
    let work = TestServer::starttls(&pki).start();
    let setup = two_relays(work.port(), work.port(), &pki);
    let mut cmd = smtpsend_cmd(&setup);
    cmd.arg("--config")
        .arg(&setup.rc)
        .args(["--no-queue", "--read-envelope-from", RECIPIENT]);
    let out = run(cmd, "Subject: no sender\r\n\r\nbody\r\n");
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert!(stderr(&out).contains("no From header"), "{}", stderr(&out));
    assert!(work.finish().connections.is_empty());
}

#[test]
fn read_envelope_from_and_f_together_are_a_usage_error() {
    let pki = Pki::ca_signed();
    let setup = two_relays(1, 1, &pki);
    let mut cmd = smtpsend_cmd(&setup);
    cmd.arg("--config").arg(&setup.rc).args([
        "--read-envelope-from",
        "-f",
        "kim@club.example",
        RECIPIENT,
    ]);
    let out = run(cmd, MESSAGE);
    assert_eq!(code(&out), 64, "{}", stderr(&out));
}
