//! DKIM signatures made by `smtpsend::message::dkim`, checked by two verifiers that share no
//! code with it (issue 18):
//!
//! - dkimpy (Python; `python3 -m pip install dkimpy pynacl`, as `.ci/install` does; PyNaCl
//!   for Ed25519), run by `tests/real/dkimpy_verify.py`, which hands it the key records
//!   through its `dnsfunc` hook;
//! - mail-auth (Rust, a dev-dependency), which asks the DNS server the test starts
//!   (`common/dns.rs`) for `<selector>._domainkey.<domain>` TXT.
//!
//! Keys are made fresh by `openssl` in every run: RSA-2048 as PKCS#8 and as PKCS#1, and
//! Ed25519, each in a 0600 file. Each message is signed as smtpsend will send it: the
//! returned field, then the message in wire form ([`BodyEncoder::for_bdat`]: CRLF lines, a
//! lone `.` ending the input when `dot_ends_input`), which is what a server stores once it
//! has undone the dot-stuffing.
//!
//! Without python's dkim and nacl modules, or without openssl, the tests print "skipped: ..."
//! and pass, except with `CI=true`, where they fail. `SMTPSEND_TEST_PYTHON` picks the
//! interpreter (default `python3`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::dns::{DnsServer, Txt};
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};
use smtpsend::message::dkim::{Signer, SignerConfig};
use smtpsend::smtp::BodyEncoder;
use tempfile::TempDir;

const DKIMPY_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/real/dkimpy_verify.py");
pub(crate) const DOMAIN: &str = "example.org";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A tool this test needs is missing: fatal in CI, a visible note elsewhere.
fn missing(what: &str, install: &str) -> bool {
    assert!(
        !in_ci(),
        "{what} is missing and CI=true does not allow skipping; .ci/install installs it ({install})"
    );
    eprintln!("skipped: {what} not found; {install}");
    false
}

fn python() -> String {
    std::env::var("SMTPSEND_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

pub(crate) fn have_tools() -> bool {
    let openssl = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !openssl && !missing("openssl", "apt-get install openssl") {
        return false;
    }
    let dkimpy = Command::new(python())
        .args(["-c", "import dkim, nacl"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    dkimpy
        || missing(
            &format!("dkimpy with PyNaCl for {}", python()),
            "python3 -m pip install dkimpy pynacl",
        )
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum KeyKind {
    RsaPkcs8,
    RsaPkcs1,
    Ed25519,
}

/// A fresh key from openssl in a 0600 file in `dir`, and the signer loaded from it.
fn make_signer(dir: &Path, kind: KeyKind, selector: &str) -> (Signer, PathBuf) {
    let path = make_key(dir, kind, selector);
    let signer = Signer::load(&SignerConfig {
        key: path.clone(),
        selector: selector.into(),
        domain: None,
        headers: None,
    })
    .unwrap_or_else(|e| panic!("load the {kind:?} key: {e}"));
    (signer, path)
}

/// A fresh key from openssl in the 0600 file `dir/SELECTOR.pem`.
pub(crate) fn make_key(dir: &Path, kind: KeyKind, selector: &str) -> PathBuf {
    let path = dir.join(format!("{selector}.pem"));
    let out_path = path.to_str().expect("UTF-8 temporary path");
    let args: &[&str] = match kind {
        KeyKind::RsaPkcs8 => &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            out_path,
        ],
        KeyKind::RsaPkcs1 => &["genrsa", "-traditional", "-out", out_path, "2048"],
        KeyKind::Ed25519 => &["genpkey", "-algorithm", "ed25519", "-out", out_path],
    };
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let pem = std::fs::read_to_string(&path).expect("read the key");
    let label = match kind {
        KeyKind::RsaPkcs1 => "-----BEGIN RSA PRIVATE KEY-----",
        _ => "-----BEGIN PRIVATE KEY-----",
    };
    assert!(pem.starts_with(label), "{kind:?} key written as {label}");
    path
}

/// The public key as openssl writes it (SubjectPublicKeyInfo, DER, base64): what `p=` of an
/// RSA record holds; for Ed25519, the last 32 octets of it (RFC 8463 §4.2).
pub(crate) fn openssl_public_key(path: &Path, kind: KeyKind) -> String {
    use base64::Engine as _;
    let out = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(path)
        .output()
        .expect("run openssl pkey");
    assert!(out.status.success(), "openssl pkey: {out:?}");
    let der = match kind {
        KeyKind::Ed25519 => &out.stdout[out.stdout.len() - 32..],
        _ => &out.stdout[..],
    };
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// What the server holds: the field, then the message in wire form.
fn wire(field: &str, message: &[u8], dot_ends_input: bool) -> Vec<u8> {
    let mut enc = BodyEncoder::for_bdat(dot_ends_input);
    let mut out = field.as_bytes().to_vec();
    enc.encode(message, &mut out);
    enc.finish(&mut out);
    out
}

/// One message to sign: a name for failures, the input as a caller hands it over, and
/// whether a lone `.` line ends it (sendmail without `-i`).
struct Case {
    name: &'static str,
    input: Vec<u8>,
    dot_ends_input: bool,
    /// Why mail-auth is not asked about this one.
    mail_auth_wrong: Option<&'static str>,
}

fn case(name: &'static str, input: impl Into<Vec<u8>>) -> Case {
    Case {
        name,
        input: input.into(),
        dot_ends_input: false,
        mail_auth_wrong: None,
    }
}

/// mail-auth 0.13 keeps a line of nothing but white space at the end of a body as a line
/// (its relaxed canonicalizer writes the line breaks before it), where RFC 6376 §3.4.4
/// removes the white space first and then the empty lines; dkimpy, OpenDKIM, Gmail and
/// Microsoft do the latter (rspamd's fix for the same bug, rspamd PR 5662, says so), and so
/// does mail-auth 0.15, whose mail-parser 1.0 needs Rust 1.98, newer than this toolchain.
const MAIL_AUTH_TRAILING_WSP: &str =
    "mail-auth 0.13 keeps trailing white-space-only lines (fixed in 0.15)";

fn cases() -> Vec<Case> {
    let plain = "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\n\
        Subject: test\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\
        Message-ID: <test-1@example.org>\r\n\r\nHello, Bob.\r\n";
    let multipart = "From: =?UTF-8?Q?J=C3=BCrgen?= <juergen@Example.ORG>\n\
        To: bob@example.net,\n\tcarol@example.net\n\
        Cc: dave@example.net\n\
        Subject: report\n\
        MIME-Version: 1.0\n\
        Content-Type: multipart/mixed;\n boundary=\"b1\"\n\
        \n\
        This is a multi-part message in MIME format.\n\
        \n\
        --b1\n\
        Content-Type: text/plain; charset=utf-8\n\
        Content-Transfer-Encoding: 8bit\n\
        \n\
        Grüße aus Köln  \t\n\
        \n\
        --b1\n\
        Content-Type: application/octet-stream\n\
        Content-Transfer-Encoding: base64\n\
        \n\
        AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4\n\
        OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3Bx\n\
        --b1--\n";
    let mut latin1 = b"From: a@example.org\nSubject: caf\xe9\nContent-Type: text/plain; \
        charset=iso-8859-1\n\ncaf\xe9 cr\xe8me \xff\n"
        .to_vec();
    latin1.extend_from_slice(b"\xe9\xe8\n");
    let long_line = format!(
        "From: a@example.org\r\nSubject: long\r\n\r\n{}\r\n{} x\r\n",
        "y".repeat(20_000),
        "z ".repeat(5_000)
    );
    let many_headers = "Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n\
        From: a@example.org\r\nTo: one@example.net\r\nTo: two@example.net\r\n\
        Subject:   spaced \t out  \r\n\tand folded\r\nX-Mailer: test\r\n\
        Reply-To: r@example.org\r\nIn-Reply-To: <x@example.org>\r\n\
        References: <w@example.org>\r\n <x@example.org>\r\n\r\nbody\r\n";
    vec![
        case("plain, CRLF", plain),
        case("plain, bare LF", plain.replace("\r\n", "\n")),
        case("plain, bare CR", plain.replace("\r\n", "\r")),
        case("multipart, 8-bit UTF-8, folded headers, bare LF", multipart),
        case("8-bit ISO-8859-1 in header and body", latin1),
        case(
            "empty body",
            "From: a@example.org\r\nSubject: empty\r\n\r\n",
        ),
        case(
            "no body, no empty line",
            "From: a@example.org\nSubject: none\n",
        ),
        case("no final line break", "From: a@example.org\n\nlast line"),
        case(
            "white space: leading, trailing, runs, lines of it inside the body",
            "From: a@example.org\r\n\r\n  lead\r\ntrail  \t\r\n \t \r\n\r\nin  the\t\tmiddle\r\n\r\n\r\n",
        ),
        Case {
            mail_auth_wrong: Some(MAIL_AUTH_TRAILING_WSP),
            ..case(
                "white space: lines of only white space at the end of the body",
                "From: a@example.org\r\n\r\ntext\r\n\r\n \t\r\n\r\n  \r\n",
            )
        },
        case("a 20000-octet line and a 10000-octet spaced one", long_line),
        case("repeated and folded signed fields", many_headers),
        case(
            "leading dots (sent dot-stuffed)",
            "From: a@example.org\n\n.\n..\n.hidden\nend\n",
        ),
        Case {
            name: "dot_ends_input: a lone dot ends the message",
            input: b"From: a@example.org\nSubject: cut\n\nkept\n.\nnot sent\n".to_vec(),
            dot_ends_input: true,
            mail_auth_wrong: None,
        },
    ]
}

/// Run dkimpy over `messages`; Err with its report when any fails.
pub(crate) fn dkimpy(
    dir: &Path,
    records: &[(String, String)],
    messages: &[(String, Vec<u8>)],
) -> String {
    let records_file = dir.join("records.tsv");
    let mut text = String::new();
    for (name, txt) in records {
        writeln!(text, "{name}\t{txt}").expect("format");
    }
    std::fs::write(&records_file, text).expect("write records");
    let mut cmd = Command::new(python());
    cmd.arg(DKIMPY_SCRIPT).arg(&records_file);
    for (i, (_, bytes)) in messages.iter().enumerate() {
        let path = dir.join(format!("message-{i}.eml"));
        std::fs::write(&path, bytes).expect("write message");
        cmd.arg(path);
    }
    let out = cmd.output().expect("run dkimpy");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = report.lines();
    let mut problems = String::new();
    for (i, (name, _)) in messages.iter().enumerate() {
        match lines.next() {
            Some(line) if line.ends_with(&format!("message-{i}.eml: pass")) => {}
            other => writeln!(problems, "{name}: {other:?}").expect("format"),
        }
    }
    if !out.status.success() && problems.is_empty() {
        writeln!(problems, "dkimpy: {out:?}").expect("format");
    }
    problems
}

/// mail-auth's verdicts, asking `dns` for the keys.
pub(crate) fn mail_auth(dns: SocketAddr, messages: &[(String, Vec<u8>)]) -> String {
    let mut udp = ConnectionConfig::udp();
    udp.port = dns.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = dns.port();
    let config = ResolverConfig::from_parts(
        None,
        Vec::new(),
        vec![NameServerConfig::new(dns.ip(), true, vec![udp, tcp])],
    );
    let authenticator =
        MessageAuthenticator::new(config, ResolverOpts::default()).expect("mail-auth resolver");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut problems = String::new();
    for (name, bytes) in messages {
        let Some(message) = AuthenticatedMessage::parse(bytes) else {
            writeln!(problems, "{name}: mail-auth cannot parse it").expect("format");
            continue;
        };
        let results = runtime.block_on(authenticator.verify_dkim(&message));
        let verdicts: Vec<&DkimResult> = results.iter().map(|r| r.result()).collect();
        if verdicts.len() != 1 || verdicts[0] != &DkimResult::Pass {
            writeln!(problems, "{name}: {verdicts:?}").expect("format");
        }
    }
    problems
}

/// Sign every case with a fresh key of `kind` and have both verifiers check every result.
fn signatures_verify(kind: KeyKind) {
    if !have_tools() {
        return;
    }
    let dir = TempDir::new().expect("temporary directory");
    let selector = format!("{kind:?}").to_ascii_lowercase();
    let (signer, key) = make_signer(dir.path(), kind, &selector);
    let record = signer.dns_record();
    assert!(
        record.ends_with(&format!("; p={}", openssl_public_key(&key, kind))),
        "the record's p= is the public key as openssl writes it: {record}"
    );
    let name = format!("{selector}._domainkey.{DOMAIN}");
    let mut messages = Vec::new();
    let mut for_mail_auth = Vec::new();
    for c in cases() {
        let field = signer
            .sign(&mut &c.input[..], c.dot_ends_input)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert!(
            field.contains(&format!(" d={DOMAIN};")),
            "{}: {field}",
            c.name
        );
        let signed = (c.name.to_string(), wire(&field, &c.input, c.dot_ends_input));
        match c.mail_auth_wrong {
            None => for_mail_auth.push(signed.clone()),
            Some(why) => eprintln!("{}: not shown to mail-auth: {why}", c.name),
        }
        messages.push(signed);
    }

    let problems = dkimpy(dir.path(), &[(name.clone(), record.clone())], &messages);
    assert!(problems.is_empty(), "dkimpy refused:\n{problems}");

    let dns = DnsServer::start(&[(name.as_str(), Txt(&record))]);
    let problems = mail_auth(dns.addr(), &for_mail_auth);
    assert!(problems.is_empty(), "mail-auth refused:\n{problems}");
}

#[test]
fn rsa_pkcs8_signatures_verify_with_dkimpy_and_mail_auth() {
    signatures_verify(KeyKind::RsaPkcs8);
}

#[test]
fn rsa_pkcs1_signatures_verify_with_dkimpy_and_mail_auth() {
    signatures_verify(KeyKind::RsaPkcs1);
}

#[test]
fn ed25519_signatures_verify_with_dkimpy_and_mail_auth() {
    signatures_verify(KeyKind::Ed25519);
}

/// The verifiers above would pass a message they did not check; here each is shown a
/// signed message changed after signing, in ways a relay may and may not change it.
#[test]
fn both_verifiers_fail_a_message_changed_after_signing() {
    if !have_tools() {
        return;
    }
    let dir = TempDir::new().expect("temporary directory");
    let (signer, _) = make_signer(dir.path(), KeyKind::Ed25519, "tamper");
    let name = format!("tamper._domainkey.{DOMAIN}");
    let record = signer.dns_record();
    let input = b"From: a@example.org\nTo: b@example.net\nSubject: s\n\nbody text\n";
    let field = signer.sign(&mut &input[..], false).expect("sign");
    let signed = String::from_utf8(wire(&field, input, false)).expect("ASCII");

    // A relay may refold a header and add white space at the ends of lines: relaxed
    // canonicalization is for that, and both verifiers still pass it.
    let refolded = signed
        .replace("\r\nSubject: s\r\n", "\r\nSubject:\r\n\t s  \r\n")
        .replace("body text\r\n", "body   text \r\n\r\n");
    let fine = vec![("refolded".to_string(), refolded.into_bytes())];
    assert!(dkimpy(dir.path(), &[(name.clone(), record.clone())], &fine).is_empty());
    let dns = DnsServer::start(&[(name.as_str(), Txt(&record))]);
    assert!(mail_auth(dns.addr(), &fine).is_empty());

    let changed = [
        ("body", signed.replace("body text", "body text!")),
        ("signed header", signed.replace("Subject: s", "Subject: S")),
        (
            "a second From (over-signed)",
            signed.replace("\r\nFrom: ", "\r\nFrom: m@evil.example\r\nFrom: "),
        ),
        ("appended line", format!("{signed}P.S.\r\n")),
    ];
    let changed: Vec<(String, Vec<u8>)> = changed
        .into_iter()
        .map(|(n, m)| (n.to_string(), m.into_bytes()))
        .collect();
    let report = dkimpy(dir.path(), &[(name.clone(), record.clone())], &changed);
    for (n, _) in &changed {
        assert!(
            report.contains(&format!("{n}: ")),
            "dkimpy passed \"{n}\": {report}"
        );
    }
    let report = mail_auth(dns.addr(), &changed);
    for (n, _) in &changed {
        assert!(
            report.contains(&format!("{n}: ")),
            "mail-auth passed \"{n}\": {report}"
        );
    }
}

/// Issue 18: a key others may read is refused as a password file is, with EX_CONFIG.
#[test]
fn a_key_file_readable_by_others_is_refused_with_78() {
    let dir = TempDir::new().expect("temporary directory");
    let path = dir.path().join("open.pem");
    // Any content: the mode is checked before the key is read.
    std::fs::write(
        &path,
        "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = Signer::load(&SignerConfig {
        key: path.clone(),
        selector: "s".into(),
        domain: None,
        headers: None,
    })
    .expect_err("a world-readable key is refused");
    assert_eq!(err.exit_status().code(), 78, "{err}");
    assert!(err.to_string().contains("readable by others"), "{err}");
}
