//! Golden tests: real-world messages from tests/data/ as cron, git send-email, PHP mail(),
//! a MIME mailer and a UTF-8 mail client hand them to sendmail, with the exact envelope and
//! bytes a loopback server receives.

use std::path::PathBuf;

use crate::common::*;

fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the server must receive for `input`: every line end CRLF (bare CR and bare LF
/// included, as the body encoder does).
fn crlf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 16);
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'\r' if input.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The header section of a received message, split at the first empty line.
fn split(message: &[u8]) -> (String, Vec<u8>) {
    let at = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header/body separator");
    (
        String::from_utf8_lossy(&message[..at + 2]).into_owned(),
        message[at + 4..].to_vec(),
    )
}

/// The binary with a config that qualifies local names and never queues.
fn sendmail(port: u16, dir: &tempfile::TempDir) -> assert_cmd::Command {
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "queue_on_tempfail = false\nlocal_domain = \"host.example\"\n",
    )
    .unwrap();
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    // Queue runs in tests are the tests' own: no background runner.
    cmd.env("SMTPSEND_QUEUE_RUNNER", "off");
    cmd.arg("--config")
        .arg(&config)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--tls",
            "off",
        ])
        .env("HOME", dir.path())
        .timeout(CLIENT_LIMIT);
    cmd
}

#[test]
fn cron_mail_to_root_gets_date_and_message_id_and_a_qualified_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder().start();
    let mut cmd = sendmail(server.port(), &dir);
    // What cron runs.
    cmd.args([
        "-FCronDaemon",
        "-i",
        "-B8BITMIME",
        "-oem",
        "-f",
        "root@host.example",
        "root",
    ]);
    let input = data("cron.eml");
    let out = run(cmd, input.clone());
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let msg = t.only().message();
    assert_eq!(msg.mail_from, "root@host.example");
    assert_eq!(msg.rcpt_to, vec!["root@host.example"]);
    let (headers, body) = split(&msg.content);
    let (orig_headers, orig_body) = split(&crlf(&input));
    assert!(headers.starts_with(&orig_headers), "{headers}");
    assert!(headers.contains("\r\nDate: "), "{headers}");
    assert!(headers.contains("\r\nMessage-ID: <"), "{headers}");
    assert_eq!(
        headers.matches("From:").count(),
        1,
        "From is not duplicated"
    );
    assert_eq!(body, orig_body);
    // The dot line went out stuffed.
    assert!(msg.wire.windows(17).any(|w| w == b"\r\n..hidden file s"));
}

/// The Date header we add (RFC 5322 §3.3) carries the offset of the local zone as `TZ`
/// sets it, the way the C library reads it: a POSIX rule, a zone name, empty for UTC.
#[test]
fn added_date_header_has_the_offset_tz_names() {
    let mut zones = vec![
        ("<+0545>-05:45", "+0545"),
        ("<-0330>3:30", "-0330"),
        ("UTC", "+0000"),
        ("", "+0000"),
    ];
    // India has kept +0530 all year since 1945; the name needs the tzdata package.
    if std::path::Path::new("/usr/share/zoneinfo/Asia/Kolkata").exists() {
        zones.push(("Asia/Kolkata", "+0530"));
    }
    for (tz, offset) in zones {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::builder().start();
        let mut cmd = sendmail(server.port(), &dir);
        cmd.env("TZ", tz)
            .args(["-i", "-f", "root@host.example", "root"]);
        let out = run(cmd, &b"Subject: tz\n\nbody\n"[..]);
        let t = server.finish();
        assert_exit(&out, 0, &t);
        let (headers, _) = split(&t.only().message().content);
        let date = headers
            .lines()
            .find_map(|l| l.strip_prefix("Date: "))
            .unwrap_or_else(|| panic!("no Date in {headers}"));
        let fields: Vec<&str> = date.split(' ').collect();
        assert_eq!(fields.len(), 6, "TZ={tz:?}: {date}");
        assert_eq!(fields[5], offset, "TZ={tz:?}: {date}");
    }
}

#[test]
fn git_send_email_patch_arrives_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder().start();
    let mut cmd = sendmail(server.port(), &dir);
    cmd.args([
        "-i",
        "-f",
        "ann@example.org",
        "dev@lists.example.org",
        "bob@example.org",
    ]);
    let input = data("git-send-email.eml");
    let out = run(cmd, input.clone());
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let msg = t.only().message();
    assert_eq!(
        msg.rcpt_to,
        vec!["dev@lists.example.org", "bob@example.org"]
    );
    assert_eq!(msg.content, crlf(&input));
}

#[test]
fn php_mail_with_bare_lf_and_bcc() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder().start();
    let mut cmd = sendmail(server.port(), &dir);
    // What PHP's mail() runs by default: sendmail -t -i.
    cmd.args(["-t", "-i", "-f", "shop@example.org"]);
    let input = data("php-mail.eml");
    let out = run(cmd, input.clone());
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let msg = t.only().message();
    assert_eq!(
        msg.rcpt_to,
        vec!["customer@example.net", "archive@example.org"]
    );
    let expected: Vec<u8> = crlf(&input)
        .split(|&b| b == b'\n')
        .filter(|line| !line.starts_with(b"Bcc:"))
        .collect::<Vec<_>>()
        .join(&b'\n');
    assert_eq!(msg.content, expected);
    assert!(!String::from_utf8_lossy(&msg.content).contains("archive@"));
}

#[test]
fn multipart_with_attachment_arrives_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder().start();
    let mut cmd = sendmail(server.port(), &dir);
    cmd.args(["-t", "-i", "-f", "reports@example.org"]);
    let input = data("multipart.eml");
    let out = run(cmd, input.clone());
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let msg = t.only().message();
    assert_eq!(msg.rcpt_to, vec!["boss@example.org"]);
    assert_eq!(msg.content, crlf(&input));
}

#[test]
fn utf8_message_is_declared_8bitmime_and_arrives_intact() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::builder().start();
    let mut cmd = sendmail(server.port(), &dir);
    cmd.args(["-t", "-i", "-f", "joerg@example.org"]);
    let input = data("utf8.eml");
    let out = run(cmd, input.clone());
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert!(
        conn.commands_for("MAIL")[0].line.contains("BODY=8BITMIME"),
        "{:?}",
        conn.commands_for("MAIL")
    );
    assert_eq!(conn.message().rcpt_to, vec!["mueller@example.org"]);
    assert_eq!(conn.message().content, crlf(&input));
}
