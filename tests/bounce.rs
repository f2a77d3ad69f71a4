//! Refusals mailed back (issue 14): cron passes `-oem` and never reads the exit status, so
//! a recipient refused for good (a 550, a domain that does not exist) must reach the
//! sender as an RFC 3464 report, here in the local mailbox of the user running the test
//! (the sender cron uses: no `-f`), in a mail spool of the test's own.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::dns::{DnsServer, Rec::Mx};
use crate::common::spool::dead_port;
use crate::common::{MESSAGE, RECIPIENT, Rule, TestServer, code, run, stderr};

/// Debian cron's arguments to sendmail, before the recipient.
const CRON: [&str; 5] = ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "-oi"];

/// A config with a mail spool and an aliases file of its own, so nothing of the machine's
/// (`/var/mail`, `/etc/aliases`) is used; returns the temporary directory.
fn machine() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir(dir.path().join("mail")).unwrap();
    std::fs::create_dir(dir.path().join("home")).unwrap();
    std::fs::write(dir.path().join("aliases"), "").unwrap();
    let config = format!(
        "queue_on_tempfail = false\nmail_spool = \"{}\"\naliases = \"{}\"\n",
        dir.path().join("mail").display(),
        dir.path().join("aliases").display()
    );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    dir
}

fn smtpsend(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    cmd.arg("--config")
        .arg(dir.join("config.toml"))
        .env("HOME", dir.join("home"))
        .env("XDG_CONFIG_HOME", dir.join("home"))
        .env("XDG_STATE_HOME", dir.join("home"))
        .env("SMTPSEND_QUEUE_RUNNER", "off")
        .env_remove("SMTPSEND_CONFIG")
        .env_remove("SMTPSEND_PASSWORD");
    cmd
}

/// One send to RECIPIENT through `server` (a relay on loopback, cleartext) with `args`;
/// the output and what the relay saw.
fn send_through(
    dir: &Path,
    server: TestServer,
    args: &[&str],
) -> (std::process::Output, crate::common::Transcript) {
    let mut cmd = smtpsend(dir);
    cmd.args(["--host", "127.0.0.1", "--port", &server.port().to_string()])
        .args(["--tls", "off"])
        .args(args)
        .arg(RECIPIENT);
    let out = run(assert_cmd::Command::from_std(cmd), MESSAGE);
    (out, server.finish())
}

/// A relay that refuses every recipient for good.
fn refusing_relay() -> TestServer {
    TestServer::builder()
        .rule(Rule::on("RCPT").reply("550 5.1.1 no such user"))
        .start()
}

/// The mailboxes the spool holds, with their contents.
fn mailboxes(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out: Vec<(PathBuf, String)> = std::fs::read_dir(dir.join("mail"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            (e.path(), text)
        })
        .collect();
    out.sort();
    out
}

#[track_caller]
fn assert_report(dir: &Path, status: &str, recipient: &str, diagnostic: &str) {
    let boxes = mailboxes(dir);
    assert_eq!(boxes.len(), 1, "one mailbox: {boxes:?}");
    let text = &boxes[0].1;
    assert!(text.starts_with("From MAILER-DAEMON "), "{text}");
    for want in [
        "Subject: Undelivered Mail Returned to Sender",
        "Content-Type: multipart/report; report-type=delivery-status;",
        "Content-Type: message/delivery-status",
        &format!("Final-Recipient: rfc822; {recipient}"),
        "Action: failed",
        &format!("Status: {status}"),
        diagnostic,
        "Content-Type: text/rfc822-headers",
        // The original's headers.
        "Subject: test",
        "Message-ID: <test-1@example.org>",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    assert!(
        !text.contains("Hello, Bob."),
        "the body is not returned:\n{text}"
    );
}

#[test]
fn cron_mail_refused_with_550_comes_back_to_the_local_mailbox() {
    let dir = machine();
    let (out, t) = send_through(dir.path(), refusing_relay(), &CRON);
    assert_eq!(code(&out), 67, "{}", stderr(&out));
    assert_eq!(
        t.connections.len(),
        1,
        "the report went to the mailbox, not the relay"
    );
    let err = stderr(&out);
    assert!(
        err.contains("a delivery status notification went to <") && err.contains("the mailbox of"),
        "{err}"
    );
    assert_report(
        dir.path(),
        "5.1.1",
        RECIPIENT,
        "Diagnostic-Code: smtp; RCPT TO:<bob@example.org>: 550 5.1.1 no such user",
    );
}

#[test]
fn cron_mail_to_a_domain_that_does_not_exist_comes_back() {
    let dir = machine();
    let dns = DnsServer::start(&[("one.test", Mx(10, "mx1.one.test"))]);
    let trap = dead_port();
    let mut cmd = smtpsend(dir.path());
    cmd.args(["--dns-server", &dns.addr().to_string()])
        .args(["--mx-port", &trap.port().to_string()])
        .args(CRON)
        .arg("bob@nowhere.test");
    let out = run(assert_cmd::Command::from_std(cmd), MESSAGE);
    assert_eq!(code(&out), 68, "{}", stderr(&out));
    assert_report(
        dir.path(),
        "5.1.2",
        "bob@nowhere.test",
        "no such domain (DNS NXDOMAIN)",
    );
}

#[test]
fn without_oem_nothing_comes_back() {
    let dir = machine();
    let (out, _) = send_through(dir.path(), refusing_relay(), &["-FCronDaemon", "-i", "-oi"]);
    assert_eq!(code(&out), 67, "{}", stderr(&out));
    assert!(
        mailboxes(dir.path()).is_empty(),
        "{:?}",
        mailboxes(dir.path())
    );
}

#[test]
fn the_null_sender_gets_no_report() {
    let dir = machine();
    let (out, t) = send_through(dir.path(), refusing_relay(), &["-oem", "-f", "<>"]);
    assert_eq!(code(&out), 67, "{}", stderr(&out));
    assert_eq!(t.connections.len(), 1);
    assert!(mailboxes(dir.path()).is_empty());
    assert!(!dir.path().join("home/dead.letter").exists());
}

/// A remote sender's report goes over the message's own route, from the null sender.
#[test]
fn a_remote_senders_report_goes_through_the_relay() {
    let dir = machine();
    let server = TestServer::builder()
        .connections(2)
        .rule(Rule::on("RCPT").arg("bob@").reply("550 5.1.1 no such user"))
        .start();
    let (out, t) = send_through(dir.path(), server, &["-oem", "-f", "alice@example.net"]);
    assert_eq!(code(&out), 67, "{}", stderr(&out));
    assert_eq!(t.connections.len(), 2, "{}", stderr(&out));
    let report = &t.connections[1].messages[0];
    assert_eq!(report.mail_from, "");
    assert_eq!(report.rcpt_to, ["alice@example.net"]);
    let text = String::from_utf8_lossy(&report.content);
    assert!(
        text.contains("Final-Recipient: rfc822; bob@example.org"),
        "{text}"
    );
    assert!(mailboxes(dir.path()).is_empty());
}
