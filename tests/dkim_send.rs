//! DKIM signing end to end (issue 18 (3)): the binary, with `dkim_key` and `dkim_selector`
//! in its config, signs what it sends through a relay, to an exchanger directly, and
//! what it queues; each message as the server received it verifies with dkimpy and with
//! mail-auth (the helpers of `dkim.rs`; mail-auth asks the test DNS server for the key,
//! whose record is what `smtpsend config dkim-record` prints). A key others may read
//! stops the send before anything goes out (78). A large message is signed in the memory
//! of an unsigned send (see [`Large`] for the 1 GiB run).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::common::dns::{A, DnsServer, Mx, Txt};
use crate::common::sink::{Received, Sink};
use crate::common::spool::{Queue, dead_port, start_on_freed_port};
use crate::common::{
    MESSAGE, Measured, SENDER, TestServer, code, run, run_measured_feeding, stderr,
};
use crate::dkim::{DOMAIN, KeyKind, dkimpy, have_tools, mail_auth, make_key, openssl_public_key};
use base64::Engine as _;

/// A message with bare LF line ends (as cron hands them over), a folded header, 8-bit
/// text, lines that start with a dot (sent dot-stuffed) and white space that relaxed
/// canonicalization changes.
const LF_MESSAGE: &str = "From: Alice <alice@example.org>\n\
To: Bob <bob@example.org>,\n  Carol <carol@example.org>\n\
Subject: report   of\n\tthe night\n\
MIME-Version: 1.0\n\
Content-Type: text/plain; charset=utf-8\n\
\n\
Grüße  aus Köln \t\n\
.hidden\n\
..two dots\n\
\n\
\n";

/// A queue of its own (config, home, spool) whose config signs with a fresh key of `kind`
/// under `selector`; and the key's path.
fn signing_queue(kind: KeyKind, selector: &str) -> (Queue, std::path::PathBuf) {
    let queue = Queue::with_config("");
    let key = make_key(queue.root(), kind, selector);
    let config = format!(
        "queue_on_tempfail = true\nfrom = \"{SENDER}\"\n\
         dkim_key = \"{}\"\ndkim_selector = \"{selector}\"\n",
        key.display()
    );
    std::fs::write(queue.root().join("config.toml"), config).expect("config");
    (queue, key)
}

/// `smtpsend config dkim-record` for the queue's config: the record's name, and its
/// strings joined (RFC 6376 §3.6.2.2), which is what a resolver hands a verifier.
fn published_record(queue: &Queue, kind: KeyKind, key: &Path) -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smtpsend"))
        .args(["config", "dkim-record", "--config"])
        .arg(queue.root().join("config.toml"))
        .env("HOME", queue.home())
        .output()
        .expect("run config dkim-record");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let line = String::from_utf8(out.stdout).expect("UTF-8");
    let (name, strings) = line
        .trim_end()
        .split_once(" IN TXT ")
        .unwrap_or_else(|| panic!("not a zone file line: {line}"));
    let parts: Vec<&str> = strings
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not quoted: {line}"))
        .split("\" \"")
        .collect();
    assert!(parts.iter().all(|p| p.len() <= 255), "{line}");
    let value = parts.concat();
    assert!(
        value.ends_with(&format!("; p={}", openssl_public_key(key, kind))),
        "{value}"
    );
    (name.trim_end_matches('.').to_string(), value)
}

/// Both verifiers pass every message; `messages` are as the servers stored them.
#[track_caller]
fn assert_verifies(dir: &Path, record: &(String, String), messages: &[(String, Vec<u8>)]) {
    let problems = dkimpy(dir, std::slice::from_ref(record), messages);
    assert!(problems.is_empty(), "dkimpy refused:\n{problems}");
    let dns = DnsServer::start(&[(record.0.as_str(), Txt(&record.1))]);
    let problems = mail_auth(dns.addr(), messages);
    assert!(problems.is_empty(), "mail-auth refused:\n{problems}");
}

#[track_caller]
fn assert_sent(out: &Output) {
    assert_eq!(code(out), 0, "stderr:\n{}", stderr(out));
}

fn through_relay(kind: KeyKind) {
    if !have_tools() {
        return;
    }
    let selector = format!("{kind:?}").to_ascii_lowercase();
    let (queue, key) = signing_queue(kind, &selector);
    let record = published_record(&queue, kind, &key);
    assert_eq!(record.0, format!("{selector}._domainkey.{DOMAIN}"));
    let mut stored = Vec::new();
    for (name, input) in [("CRLF", MESSAGE), ("bare LF", LF_MESSAGE)] {
        let server = TestServer::builder().start();
        let out = queue.send(server.port(), &["-v", "-i", "bob@example.org"], input);
        let t = server.finish();
        assert_sent(&out);
        let algorithm = match kind {
            KeyKind::Ed25519 => "ed25519-sha256",
            _ => "rsa-sha256",
        };
        assert!(
            stderr(&out).contains(&format!(
                "DKIM: signed as d={DOMAIN} s={selector} ({algorithm})"
            )),
            "{}",
            stderr(&out)
        );
        let content = t.only().message().content.clone();
        assert!(content.starts_with(b"DKIM-Signature: v=1; "), "{name}");
        stored.push((format!("{kind:?}, {name}"), content));
    }
    assert_verifies(queue.root(), &record, &stored);
}

#[test]
fn ed25519_signed_through_a_relay_verifies_with_dkimpy_and_mail_auth() {
    through_relay(KeyKind::Ed25519);
}

#[test]
fn rsa_signed_through_a_relay_verifies_with_dkimpy_and_mail_auth() {
    through_relay(KeyKind::RsaPkcs8);
}

/// A message queued while the relay is down is queued signed: the flush sends the same
/// bytes with the key gone, and they verify.
#[test]
fn a_queued_message_is_queued_signed_and_flushed_without_the_key() {
    if !have_tools() {
        return;
    }
    let (queue, key) = signing_queue(KeyKind::Ed25519, "queued");
    let record = published_record(&queue, KeyKind::Ed25519, &key);
    let down = dead_port();
    let out = queue.send(down.port(), &["-i", "bob@example.org"], LF_MESSAGE);
    assert_sent(&out);
    assert!(
        stderr(&out).contains("smtpsend: queued "),
        "{}",
        stderr(&out)
    );
    let entry = queue.only_entry();
    let spooled = queue.data(&entry.id);
    assert!(spooled.starts_with(b"DKIM-Signature: v=1; "));

    std::fs::remove_file(&key).expect("remove the key");
    let port = down.port();
    drop(down);
    let server = start_on_freed_port(TestServer::builder, port);
    let out = queue.flush(port, false);
    let t = server.finish();
    assert_sent(&out);
    queue.assert_empty();
    let content = t.only().message().content.clone();
    assert_eq!(
        content,
        crate::common::spool::crlf(&spooled),
        "the flush sent what was spooled"
    );
    assert_verifies(
        queue.root(),
        &record,
        &[("queued, then flushed".into(), content)],
    );
}

/// Direct delivery signs as the relay route does.
#[test]
fn direct_delivery_is_signed_and_verifies() {
    if !have_tools() {
        return;
    }
    let (queue, key) = signing_queue(KeyKind::Ed25519, "direct");
    let record = published_record(&queue, KeyKind::Ed25519, &key);
    let dns = DnsServer::start(&[
        ("one.test", Mx(10, "mx.one.test")),
        ("mx.one.test", A("127.0.0.2")),
    ]);
    let (port, mut servers) = crate::common::start_on_one_port(vec![(
        "127.0.0.2".parse().expect("IP"),
        TestServer::builder(),
    )]);
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    cmd.timeout(crate::common::CLIENT_LIMIT)
        .env("SMTPSEND_QUEUE_RUNNER", "off")
        .env("HOME", queue.home())
        .arg("--config")
        .arg(queue.root().join("config.toml"))
        .arg("--queue-dir")
        .arg(queue.dir())
        .args(["--dns-server", &dns.addr().to_string()])
        .args(["--mx-port", &port.to_string()])
        .args(["-v", "-i", "-f", SENDER, "bob@one.test"]);
    let out = run(cmd, MESSAGE);
    let t = servers.remove(0).finish();
    assert_sent(&out);
    assert!(
        stderr(&out).contains("DKIM: signed as d=example.org s=direct (ed25519-sha256)"),
        "{}",
        stderr(&out)
    );
    let content = t.only().message().content.clone();
    assert_verifies(queue.root(), &record, &[("direct".into(), content)]);
}

/// `--dry-run` names the field a send would put first, and signs nothing.
#[test]
fn dry_run_names_the_signature_it_would_add() {
    if !have_tools() {
        return;
    }
    let (queue, _key) = signing_queue(KeyKind::Ed25519, "dry");
    let server = TestServer::builder().start();
    let out = queue.send(server.port(), &["--dry-run", "bob@example.org"], MESSAGE);
    let t = server.finish();
    assert_sent(&out);
    assert!(t.connections.is_empty(), "a dry run connected");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("DKIM: would sign as d=example.org s=dry (ed25519-sha256)\n"),
        "{shown}"
    );
    let fields = shown
        .split_once("header section as it would be sent:\n")
        .map(|(_, f)| f)
        .unwrap_or_default();
    assert!(
        fields.starts_with(
            "  DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.org; s=dry;"
        ),
        "{shown}"
    );
}

/// Issue 18: a key others may read is refused as a password file is (78), before the
/// message goes anywhere: not to the relay, not into the queue.
#[test]
fn a_key_others_may_read_exits_78_and_nothing_is_sent_or_queued() {
    let (queue, key) = {
        let queue = Queue::with_config("");
        let key = queue.root().join("open.pem");
        // Any content: the mode is checked before the key is read.
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
        )
        .expect("key");
        let config = format!(
            "queue_on_tempfail = true\ndkim_key = \"{}\"\ndkim_selector = \"s\"\n",
            key.display()
        );
        std::fs::write(queue.root().join("config.toml"), config).expect("config");
        (queue, key)
    };
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let server = TestServer::builder().start();
    let out = queue.send(server.port(), &["-i", "bob@example.org"], MESSAGE);
    let t = server.finish();
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("readable by others"),
        "{}",
        stderr(&out)
    );
    assert!(
        t.connections.is_empty(),
        "connected to the relay: {:?}",
        t.connections.len()
    );
    assert!(
        !queue.dir().exists() || queue.entries().is_empty(),
        "queued"
    );
}

/// A message made of this line again and again, after a header section: lines whose
/// relaxed canonical form is themselves, so the body hash is the SHA-256 of the body as
/// received.
const LINE: &[u8] = b"The quick brown fox jumps over the lazy dog, again and again, 0123456789.\n";

/// The large-message run: `SMTPSEND_TEST_DKIM_MIB` MiB (default 32) through a pipe, with
/// the binary `SMTPSEND_TEST_DKIM_BIN` (default the one under test, a debug build).
struct Large {
    mib: u64,
    binary: std::path::PathBuf,
}

impl Large {
    fn from_env() -> Large {
        Large {
            mib: std::env::var("SMTPSEND_TEST_DKIM_MIB")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(32),
            binary: std::env::var_os("SMTPSEND_TEST_DKIM_BIN")
                .map_or_else(|| env!("CARGO_BIN_EXE_smtpsend").into(), Into::into),
        }
    }

    fn lines(&self) -> u64 {
        self.mib * 1024 * 1024 / LINE.len() as u64
    }

    /// Send it through a pipe to a [`Sink`] with `config`; what the sink got, and the cost.
    fn send(&self, queue: &Queue, config: &str) -> (Option<Received>, Measured) {
        std::fs::write(queue.root().join("config.toml"), config).expect("config");
        let sink = Sink::start();
        let mut cmd = std::process::Command::new(&self.binary);
        cmd.env("SMTPSEND_QUEUE_RUNNER", "off")
            .env("HOME", queue.home())
            .arg("--config")
            .arg(queue.root().join("config.toml"))
            .arg("--queue-dir")
            .arg(queue.dir())
            .args(["--host", "127.0.0.1", "--port", &sink.port().to_string()])
            .args(["--tls", "off", "-i", "-f", SENDER, "bob@example.org"]);
        let lines = self.lines();
        let measured =
            run_measured_feeding(cmd, Duration::from_secs(60 + self.mib), move |mut stdin| {
                let head = b"From: a@example.org\nTo: bob@example.org\nSubject: large\n\n";
                let block: Vec<u8> = LINE.repeat(1024);
                let _ = stdin.write_all(head);
                let mut left = lines;
                while left > 0 {
                    let n = left.min(1024);
                    if stdin.write_all(&block[..n as usize * LINE.len()]).is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        let got = sink.finish();
        assert_sent(&measured.output);
        (got, measured)
    }
}

/// Issue 18: signing reads the whole message before it is sent, through the kept copy,
/// in the memory an unsigned send takes: no more than a few hundred KiB above it, and
/// under 16 MiB with a release build (a debug build's code alone is about that large).
/// `SMTPSEND_TEST_DKIM_MIB=1024 SMTPSEND_TEST_DKIM_BIN=target/release/smtpsend` for the
/// 1 GiB figure.
#[test]
fn a_large_message_is_signed_in_constant_memory() {
    let large = Large::from_env();
    let (queue, key) = signing_queue(KeyKind::Ed25519, "large");
    let (_, unsigned) = large.send(&queue, "queue_on_tempfail = true\n");
    let config = format!(
        "queue_on_tempfail = true\ndkim_key = \"{}\"\ndkim_selector = \"large\"\n",
        key.display()
    );
    let (got, signed) = large.send(&queue, &config);
    eprintln!(
        "{} MiB through a pipe, {}: unsigned peak RSS {} KiB in {:?}; signed {} KiB in {:?}",
        large.mib,
        large.binary.display(),
        unsigned.peak_rss_kib,
        unsigned.took,
        signed.peak_rss_kib,
        signed.took
    );
    let got = got.expect("the sink got a message");
    assert_eq!(
        got.body_len / (LINE.len() as u64 + 1),
        large.lines(),
        "every line arrived"
    );
    let head = String::from_utf8(got.head).expect("ASCII head");
    assert!(
        head.starts_with("DKIM-Signature: v=1; a=ed25519-sha256; "),
        "{head}"
    );
    let bh = head
        .split(|c: char| c == ';' || c.is_whitespace())
        .find_map(|tag| tag.strip_prefix("bh="))
        .expect("bh= tag");
    assert_eq!(
        bh,
        base64::engine::general_purpose::STANDARD.encode(&got.body_sha256),
        "the body hash is that of the body that was sent"
    );
    assert!(
        signed.peak_rss_kib < unsigned.peak_rss_kib + 2048,
        "signing took {} KiB more than an unsigned send",
        signed.peak_rss_kib.saturating_sub(unsigned.peak_rss_kib)
    );
    if std::env::var_os("SMTPSEND_TEST_DKIM_BIN").is_some() {
        assert!(
            signed.peak_rss_kib < 16 * 1024,
            "peak RSS {} KiB",
            signed.peak_rss_kib
        );
    }
}
