//! The delivery log (`--logfile`, config `logfile`, `--syslog`): one `key=value` line per
//! delivery attempt, never a password.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-Pa55";
const WRONG_PASSWORD: &str = "Wr0ng-Pa55word";

/// The lines of the log, each split into its pairs with the quoting undone.
fn read_log(path: &Path) -> Vec<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("log {}: {e}", path.display()));
    text.lines().map(parse_line).collect()
}

/// Split `k=v k="quoted \"v\""` the way a script would.
fn parse_line(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => {
                        if let Some(e) = chars.next() {
                            value.push(e);
                        }
                    }
                    c => value.push(c),
                }
            }
            assert!(matches!(chars.next(), None | Some(' ')), "{line}");
        } else {
            value = chars.by_ref().take_while(|&c| c != ' ').collect();
        }
        out.push((key, value));
    }
    out
}

fn field<'a>(line: &'a [(String, String)], key: &str) -> &'a str {
    line.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

struct LogDir {
    dir: tempfile::TempDir,
}

impl LogDir {
    fn new() -> LogDir {
        LogDir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("smtpsend.log")
    }
}

#[test]
fn a_send_with_logfile_writes_one_parseable_line() {
    let log = LogDir::new();
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg("--logfile").arg(log.path()).arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let lines = read_log(&log.path());
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    let keys: Vec<&str> = line.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "time", "id", "from", "to", "host", "tls", "size", "status", "code", "reply"
        ]
    );
    let time = field(line, "time");
    assert!(
        time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );
    assert_eq!(field(line, "id"), "<test-1@example.org>");
    assert_eq!(field(line, "from"), SENDER);
    assert_eq!(field(line, "to"), RECIPIENT);
    assert_eq!(field(line, "host"), "127.0.0.1");
    assert_eq!(field(line, "tls"), "none");
    assert_eq!(field(line, "size"), MESSAGE.len().to_string());
    assert_eq!(field(line, "status"), "sent");
    assert_eq!(field(line, "code"), "0");
    assert_eq!(field(line, "reply"), "250 2.0.0 Ok: queued");
    let mode = std::fs::metadata(log.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

#[test]
fn lines_are_appended_and_a_starttls_delivery_says_verified() {
    let log = LogDir::new();
    std::fs::write(log.path(), "an older line\n").unwrap();
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki).start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.arg("--logfile").arg(log.path()).arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(text.starts_with("an older line\n"), "{text}");
    let lines = read_log(&log.path());
    assert_eq!(lines.len(), 2);
    assert_eq!(field(&lines[1], "tls"), "verified/TLSv1.3");
}

#[test]
fn a_failed_authentication_logs_no_password() {
    let log = LogDir::new();
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .credentials(USER, PASSWORD)
        .start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.args(["--user", USER, "--auth", "plain"])
        .env("SMTPSEND_PASSWORD", WRONG_PASSWORD)
        .arg("--logfile")
        .arg(log.path())
        .arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 77, &t);
    assert!(
        t.only().auth.iter().any(|a| !a.success),
        "the server saw a failed AUTH"
    );
    let text = std::fs::read_to_string(log.path()).unwrap();
    let plain = BASE64.encode(format!("\0{USER}\0{WRONG_PASSWORD}"));
    for secret in [WRONG_PASSWORD, &plain, &BASE64.encode(WRONG_PASSWORD)] {
        assert!(!text.contains(secret), "{secret:?} in the log: {text}");
    }
    assert!(!text.contains("AUTH"), "no AUTH command in the log: {text}");
    let lines = read_log(&log.path());
    assert_eq!(lines.len(), 1);
    assert_eq!(field(&lines[0], "status"), "failed");
    assert_eq!(field(&lines[0], "code"), "77");
    assert!(field(&lines[0], "reply").starts_with("535 "), "{text}");
}

#[test]
fn a_refused_recipient_is_logged_as_bounced_with_its_reply() {
    let log = LogDir::new();
    let server = TestServer::builder()
        .rule(
            Rule::on("RCPT")
                .arg("nobody")
                .reply("550 5.1.1 <nobody@example.org>: no such user"),
        )
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.arg("--logfile")
        .arg(log.path())
        .args([RECIPIENT, "nobody@example.org"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 67, &t);
    let lines = read_log(&log.path());
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(field(&lines[0], "status"), "sent");
    assert_eq!(field(&lines[0], "to"), RECIPIENT);
    assert_eq!(field(&lines[1], "status"), "bounced");
    assert_eq!(field(&lines[1], "to"), "nobody@example.org");
    assert_eq!(field(&lines[1], "code"), "67");
    assert_eq!(
        field(&lines[1], "reply"),
        "550 5.1.1 <nobody@example.org>: no such user"
    );
}

#[test]
fn a_refused_connection_is_logged_as_deferred() {
    let log = LogDir::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut cmd = smtpsend_plain(port);
    cmd.arg("--logfile").arg(log.path()).arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    let lines = read_log(&log.path());
    assert_eq!(lines.len(), 1);
    assert_eq!(field(&lines[0], "status"), "deferred");
    assert_eq!(field(&lines[0], "tls"), "unknown");
    assert_eq!(field(&lines[0], "size"), MESSAGE.len().to_string());
    assert!(field(&lines[0], "reply").contains("connection refused"));
}

/// The binary with a config file of the test's own (common's fixes its own config).
fn with_config(dir: &Path, config: &str, port: u16) -> assert_cmd::Command {
    let path = dir.join("config.toml");
    std::fs::write(&path, config).expect("config");
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    // Queue runs in tests are the tests' own: no background runner.
    cmd.env("SMTPSEND_QUEUE_RUNNER", "off");
    cmd.arg("--config")
        .arg(&path)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--tls", "off", "-f", SENDER])
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env_remove("SMTPSEND_PASSWORD")
        .timeout(CLIENT_LIMIT);
    cmd
}

#[test]
fn the_config_key_logfile_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder().start();
    let config = "queue_on_tempfail = false\nlogfile = \"delivery.log\"\n";
    let mut cmd = with_config(dir.path(), config, server.port());
    cmd.arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    // Relative to the config file's directory.
    let lines = read_log(&dir.path().join("delivery.log"));
    assert_eq!(field(&lines[0], "status"), "sent");
}

#[test]
fn a_queue_run_logs_each_entry_by_its_queue_id() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    let log = dir.path().join("run.log");
    let mut cmd = with_config(dir.path(), "", 1);
    cmd.arg("--queue-dir")
        .arg(&queue)
        .args(["--queue", "-v", RECIPIENT]);
    let out = run(cmd, MESSAGE);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let id = stderr(&out)
        .lines()
        .find_map(|l| l.strip_prefix("smtpsend: queued "))
        .and_then(|rest| rest.split(' ').next())
        .map(str::to_string)
        .expect("queue id on stderr");

    let server = TestServer::builder().start();
    let mut cmd = with_config(dir.path(), "", server.port());
    cmd.arg("--queue-dir")
        .arg(&queue)
        .arg("--logfile")
        .arg(&log)
        .arg("-q");
    let out = run(cmd, "");
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let lines = read_log(&log);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(field(&lines[0], "id"), id);
    assert_eq!(field(&lines[0], "status"), "sent");
    assert_eq!(field(&lines[0], "to"), RECIPIENT);
    // The queue run knows the connection's TLS state as a direct send does.
    assert_eq!(field(&lines[0], "tls"), "none");
}

#[test]
fn syslog_without_a_daemon_does_not_stop_the_mail() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args(["--syslog", RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert!(t.only().message().accepted);
}

#[test]
fn an_unwritable_log_is_a_note_not_a_failure() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args(["--logfile", "/nonexistent-dir/smtpsend.log", RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert!(
        stderr(&out).contains("log file /nonexistent-dir/smtpsend.log"),
        "{}",
        stderr(&out)
    );
}
