//! Compose mode end to end: the binary builds a MIME message from flags, sends it, and a
//! real parser (Python's `email` package) reads back exactly what went in.

use std::process::Command as Process;

use crate::common::*;

/// Parse `message` with Python's email package and print one line per fact.
fn python_view(message: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msg.eml");
    std::fs::write(&path, message).unwrap();
    let script = r#"
import email, email.policy, hashlib, sys
m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)
print('subject', m['subject'])
print('from', m['from'])
print('to', m['to'])
print('cc', m['cc'])
print('bcc', m['bcc'])
print('x-mailer-test', m['x-mailer-test'])
print('defects', len(m.defects))
print('body', m.get_body(('plain',)).get_content().replace('\r\n', '\n').strip())
for part in m.iter_attachments():
    data = part.get_payload(decode=True)
    print('attachment', part.get_filename(), part.get_content_type(), hashlib.sha256(data).hexdigest())
"#;
    let out = Process::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sha256_hex(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn composed_message_with_two_attachments_parses_back_identical() {
    let dir = tempfile::tempdir().unwrap();
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let text = "Zeile eins\nüber zwei\n".as_bytes().to_vec();
    let bin_path = dir.path().join("data.bin");
    let txt_path = dir.path().join("notiz für dich.txt");
    std::fs::write(&bin_path, &binary).unwrap();
    std::fs::write(&txt_path, &text).unwrap();

    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args(["--subject", "Grüße aus Zürich", "-F", "Änne Example"])
        .args(["--cc", "carol@example.org", "--bcc", "hidden@example.org"])
        .args(["--header", "X-Mailer-Test: yes"])
        .arg("--attach")
        .arg(&bin_path)
        .arg("--attach")
        .arg(&txt_path)
        .arg(RECIPIENT);
    let out = run(cmd, "Hallo Bob,\nanbei zwei Dateien.\n");
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let msg = t.only().message();
    assert_eq!(
        msg.rcpt_to,
        vec![RECIPIENT, "carol@example.org", "hidden@example.org"]
    );
    let view = python_view(&msg.content);
    assert!(view.contains("subject Grüße aus Zürich"), "{view}");
    assert!(
        view.contains("from Änne Example <alice@example.org>"),
        "{view}"
    );
    assert!(view.contains("to bob@example.org"), "{view}");
    assert!(view.contains("cc carol@example.org"), "{view}");
    assert!(
        view.contains("bcc None"),
        "Bcc must never be a header: {view}"
    );
    assert!(!String::from_utf8_lossy(&msg.content).contains("hidden@"));
    assert!(view.contains("x-mailer-test yes"), "{view}");
    assert!(view.contains("defects 0"), "{view}");
    assert!(
        view.contains("body Hallo Bob,\nanbei zwei Dateien."),
        "{view}"
    );
    assert!(
        view.contains(&format!(
            "attachment data.bin application/octet-stream {}",
            sha256_hex(&binary)
        )),
        "{view}"
    );
    assert!(
        view.contains(&format!(
            "attachment notiz für dich.txt text/plain {}",
            sha256_hex(&text)
        )),
        "{view}"
    );
}

#[test]
fn header_injection_through_a_compose_argument_exits_64() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args(["--subject", "hi\r\nBcc: victim@example.net", RECIPIENT]);
    let out = run(cmd, "body\n");
    let t = server.finish();
    assert_exit(&out, 64, &t);
    assert!(t.connections.is_empty(), "nothing may be sent");
}

#[test]
fn missing_attachment_exits_66_before_connecting() {
    let server = TestServer::builder().start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args(["--attach", "/nonexistent/file.pdf", RECIPIENT]);
    let out = run(cmd, "body\n");
    let t = server.finish();
    assert_exit(&out, 66, &t);
    assert!(t.connections.is_empty());
}
