//! Issue 15 (4): every TLS mistake explains itself. The wrong kind of port (STARTTLS on a
//! port that speaks TLS from the first byte, implicit TLS on one that greets in plain text)
//! is named at once with the setting that fixes it; a refused certificate says what is
//! wrong with it, its SHA-256 fingerprint, and the line that would trust it, written for
//! where the relay came from (the command line, smtpsend's TOML, an msmtprc). Each message
//! is asserted whole: it is what a person reads in a cron mail.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

/// Run `cmd` with the message, returning the output and how long it took.
fn timed(cmd: assert_cmd::Command) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let out = run(cmd, MESSAGE);
    (out, started.elapsed())
}

/// The binary with `config` (written as given) as its only configuration, a private home,
/// and no relay on the command line: the relay is the config's.
fn smtpsend_with_config(dir: &Path, config: &str) -> assert_cmd::Command {
    let file = dir.join("config");
    std::fs::write(&file, config).expect("write config");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("create home");
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    cmd.timeout(CLIENT_LIMIT)
        .env("SMTPSEND_QUEUE_RUNNER", "off")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", &home)
        .env_remove("SMTPSEND_PASSWORD")
        .arg("--config")
        .arg(&file)
        .args(["--no-queue", "-f", SENDER, RECIPIENT]);
    cmd
}

// ---------------------------------------------------------------------------------------
// The wrong kind of port.

#[test]
fn implicit_tls_to_a_port_that_greets_in_plain_text_is_named_at_once_exits_75() {
    let server = TestServer::builder().start();
    let port = server.port();
    let mut cmd = smtpsend(port);
    cmd.args(["--tls", "implicit", "-f", SENDER, RECIPIENT]);
    let (out, took) = timed(cmd);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert_eq!(
        stderr(&out),
        format!(
            "smtpsend: 127.0.0.1: TLS: port {port} answered in plain text (\"220 localhost \
             ESMTP test\"): it expects STARTTLS, not TLS from the first byte; use --tls \
             starttls\n"
        )
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
    // The ClientHello went out (it had to, to learn anything); no SMTP did.
    assert!(t.never_saw("EHLO") && t.never_saw("MAIL"));
}

#[test]
fn the_fix_for_the_wrong_kind_of_port_is_written_in_the_configs_own_syntax() {
    let dir = tempfile::tempdir().unwrap();
    for (config, fix) in [
        (
            "host = \"127.0.0.1\"\nport = {port}\ntls = \"implicit\"\n",
            "use tls = \"starttls\"",
        ),
        (
            "account default\nhost 127.0.0.1\nport {port}\ntls on\ntls_starttls off\n",
            "use tls_starttls on",
        ),
    ] {
        let server = TestServer::builder().start();
        let port = server.port();
        let cmd = smtpsend_with_config(dir.path(), &config.replace("{port}", &port.to_string()));
        let out = run(cmd, MESSAGE);
        let t = server.finish();
        assert_exit(&out, 75, &t);
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!(
                "smtpsend: 127.0.0.1: TLS: port {port} answered in plain text"
            )),
            "{err}"
        );
        assert!(err.ends_with(&format!("; {fix}\n")), "{err}");
    }
}

/// A server speaking TLS from the first byte that serves each connection in a thread of
/// its own (as every real one does): it greets once a handshake is done. Counts the
/// connections that sent it anything and those that finished a handshake.
struct ImplicitTlsServer {
    port: u16,
    spoke: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl ImplicitTlsServer {
    fn start(pki: &Pki) -> ImplicitTlsServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let config = pki.server_config();
        let spoke = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (s, c) = (spoke.clone(), connections.clone());
        thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(sock) = sock else { return };
                c.fetch_add(1, Ordering::SeqCst);
                let (config, s) = (config.clone(), s.clone());
                thread::spawn(move || serve_tls(sock, config, &s));
            }
        });
        ImplicitTlsServer {
            port,
            spoke,
            connections,
        }
    }
}

fn serve_tls(sock: TcpStream, config: Arc<rustls::ServerConfig>, spoke: &AtomicUsize) {
    let _ = sock.set_read_timeout(Some(Duration::from_secs(15)));
    let mut first = [0u8; 1];
    if sock.peek(&mut first).unwrap_or(0) == 0 {
        return;
    }
    spoke.fetch_add(1, Ordering::SeqCst);
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, sock);
    if tls.write_all(b"220 localhost ESMTP tls\r\n").is_ok() {
        let mut buf = [0u8; 512];
        let _ = tls.read(&mut buf);
    }
}

#[test]
fn starttls_to_a_port_that_speaks_tls_first_is_named_within_seconds_exits_75() {
    let pki = Pki::self_signed();
    for mode in ["required", "opportunistic", "off"] {
        let server = ImplicitTlsServer::start(&pki);
        let port = server.port;
        let mut cmd = smtpsend(port);
        cmd.args(["--tls", mode])
            .arg("--tls-trust-file")
            .arg(&pki.trust_file)
            .args(["-f", SENDER, RECIPIENT]);
        let (out, took) = timed(cmd);
        assert_eq!(code(&out), 75, "{mode}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            format!(
                "smtpsend: 127.0.0.1: port {port} expects TLS from the first byte: use --tls \
                 implicit\n"
            ),
            "{mode}"
        );
        // Two seconds of silence, then the look on a second connection; not the five
        // minutes of the greeting timeout.
        assert!(took < Duration::from_secs(5), "{mode}: took {took:?}");
        // The session's connection sent nothing; only the look sent a ClientHello. No
        // cleartext retry in opportunistic mode.
        assert_eq!(server.connections.load(Ordering::SeqCst), 2, "{mode}");
        assert_eq!(server.spoke.load(Ordering::SeqCst), 1, "{mode}");
    }
}

#[test]
fn a_tls_record_in_place_of_the_greeting_is_named_at_once() {
    // A TLS alert (fatal, protocol_version) where the greeting belongs.
    let server = TestServer::builder()
        .rule(Rule::banner().raw(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]))
        .start();
    let port = server.port();
    let mut cmd = smtpsend(port);
    cmd.args(["--tls", "required", "-f", SENDER, RECIPIENT]);
    let (out, took) = timed(cmd);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert_eq!(
        stderr(&out),
        format!(
            "smtpsend: 127.0.0.1: port {port} expects TLS from the first byte: use --tls \
             implicit\n"
        )
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn a_slow_plain_text_greeting_is_waited_for_not_taken_for_tls() {
    // Silent past the two seconds after which we look; the look (a second connection,
    // which this one-at-a-time server never answers) must not spoil the real one.
    let server = TestServer::builder()
        .rule(Rule::banner().stall(Duration::from_secs(3)))
        .start();
    let mut cmd = smtpsend_plain(server.port());
    cmd.args(["-v", RECIPIENT]);
    let (out, took) = timed(cmd);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let err = stderr(&out);
    assert!(
        err.contains("no greeting after 2 s: is this a TLS port?")
            && err.contains("no TLS answer there; waiting for the greeting"),
        "{err}"
    );
    assert!(took >= Duration::from_secs(3), "took {took:?}");
    // The greeting ended the look at once.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(t.connections.len(), 1);
    assert!(t.only().message().accepted);
}

// ---------------------------------------------------------------------------------------
// Refused certificates: what is wrong, the fingerprint, the line that trusts it.

/// STARTTLS to a server presenting `pki`'s certificate, trusting `trust`'s trust file
/// (or nothing); exits 75 before MAIL. Returns stderr.
fn refused(pki: &Pki, trust: Option<&Pki>) -> String {
    let server = TestServer::starttls(pki).start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "required", "-f", SENDER, RECIPIENT]);
    if let Some(trust) = trust {
        cmd.arg("--tls-trust-file").arg(&trust.trust_file);
    }
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(t.never_saw("MAIL"));
    stderr(&out)
}

#[test]
fn an_expired_certificate_names_the_day_it_expired_and_the_pin_that_trusts_it() {
    let pki = Pki::ca_signed_expired();
    assert_eq!(
        refused(&pki, Some(&pki)),
        format!(
            "smtpsend: 127.0.0.1: TLS: certificate expired on 2021-01-01T00:00:00Z; to trust \
             this certificate by its SHA-256 fingerprint: --tls-fingerprint {}\n",
            pki.colon_fingerprint()
        )
    );
}

#[test]
fn a_certificate_for_other_names_lists_them() {
    let pki = Pki::ca_signed_for(&["mail.example.org", "smtp.example.org"]);
    assert_eq!(
        refused(&pki, Some(&pki)),
        format!(
            "smtpsend: 127.0.0.1: TLS: certificate is issued for mail.example.org, \
             smtp.example.org, not 127.0.0.1; to trust this certificate by its SHA-256 \
             fingerprint: --tls-fingerprint {}\n",
            pki.colon_fingerprint()
        )
    );
}

#[test]
fn an_untrusted_issuer_is_named_or_the_certificate_said_to_be_self_signed() {
    let pki = Pki::self_signed();
    assert_eq!(
        refused(&pki, None),
        format!(
            "smtpsend: 127.0.0.1: TLS: certificate issuer is not trusted: it is self-signed \
             by CN=localhost; to trust this certificate by its SHA-256 fingerprint: \
             --tls-fingerprint {}\n",
            pki.colon_fingerprint()
        )
    );
    let pki = Pki::ca_signed();
    assert_eq!(
        refused(&pki, None),
        format!(
            "smtpsend: 127.0.0.1: TLS: certificate issuer CN=smtpsend test CA is not trusted; \
             to trust this certificate by its SHA-256 fingerprint: --tls-fingerprint {}\n",
            pki.colon_fingerprint()
        )
    );
}

#[test]
fn a_pin_that_no_longer_matches_offers_the_new_one() {
    let pki = Pki::self_signed();
    let old = Pki::self_signed();
    let server = TestServer::starttls(&pki).start();
    let mut cmd = smtpsend(server.port());
    cmd.args(["--tls", "required", "--tls-fingerprint", &old.fingerprint()])
        .args(["-f", SENDER, RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    let fp = pki.colon_fingerprint();
    assert_eq!(
        stderr(&out),
        format!(
            "smtpsend: 127.0.0.1: TLS: certificate {fp} is not the pinned one; if the \
             server's certificate was renewed, pin the new one: --tls-fingerprint {fp}\n"
        )
    );
}

/// The line a refusal gives, pasted into the config it names, makes the send go through:
/// the advice is exact, for smtpsend's TOML and for an msmtprc.
#[test]
fn the_line_a_refusal_gives_trusts_the_certificate_when_added_to_the_config() {
    let pki = Pki::self_signed_expired();
    let dir = tempfile::tempdir().unwrap();
    for (config, fixed) in [
        (
            "host = \"127.0.0.1\"\nport = {port}\ntls = \"starttls\"\n",
            "tls_fingerprint = \"{fp}\"",
        ),
        (
            "account default\nhost 127.0.0.1\nport {port}\ntls on\ntls_starttls on\n",
            "tls_fingerprint {fp}",
        ),
    ] {
        let server = TestServer::starttls(&pki).connections(2).start();
        let config = config.replace("{port}", &server.port().to_string());
        let out = run(smtpsend_with_config(dir.path(), &config), MESSAGE);
        let err = stderr(&out);
        assert_eq!(code(&out), 75, "{err}");
        let line = fixed.replace("{fp}", &pki.colon_fingerprint());
        let expected_start =
            "smtpsend: 127.0.0.1: TLS: certificate expired on 2021-01-01T00:00:00Z";
        assert!(err.starts_with(expected_start), "{err}");
        assert!(
            err.ends_with(&format!(
                "; to trust this certificate by its SHA-256 fingerprint: {line}\n"
            )),
            "{err}"
        );
        let out = run(
            smtpsend_with_config(dir.path(), &format!("{config}{line}\n")),
            MESSAGE,
        );
        let t = server.finish();
        assert_exit(&out, 0, &t);
        assert!(t.connections[1].message().tls);
    }
}

// ---------------------------------------------------------------------------------------
// The system's CA store (what update-ca-certificates maintains), pointed at a private
// bundle with OpenSSL's SSL_CERT_FILE: nothing of the machine's is read or written.

#[test]
fn an_internal_ca_in_the_system_store_is_trusted_as_well_as_the_built_in_roots() {
    let pki = Pki::ca_signed();
    // Some other certificate in the store, named otherwise than the test CA.
    let other = Pki::self_signed();
    let dir = tempfile::tempdir().unwrap();
    let bundle = |name: &str, ca: &Pki| {
        let path = dir.path().join(name);
        let mut text = std::fs::read_to_string(&other.trust_file).unwrap();
        if !std::ptr::eq(ca, &other) {
            text.push_str(&std::fs::read_to_string(&ca.trust_file).unwrap());
        }
        std::fs::write(&path, text).unwrap();
        path
    };
    let with_ca = bundle("with-ca.crt", &pki);
    let without = bundle("without.crt", &other);
    // Installed in the system store: trusted with no trust file, and with the store
    // alone (`tls_trust_file = "system"`, msmtp's default).
    for narrowed in [false, true] {
        let server = TestServer::starttls(&pki).start();
        let mut cmd = smtpsend(server.port());
        cmd.env("SSL_CERT_FILE", &with_ca)
            .args(["--tls", "required", "-f", SENDER, RECIPIENT]);
        if narrowed {
            cmd.args(["--tls-trust-file", "system"]);
        }
        let out = run(cmd, MESSAGE);
        let t = server.finish();
        assert_exit(&out, 0, &t);
        assert!(t.only().message().tls);
    }
    // Not installed: refused, as before.
    let server = TestServer::starttls(&pki).start();
    let mut cmd = smtpsend(server.port());
    cmd.env("SSL_CERT_FILE", &without)
        .args(["--tls", "required", "-f", SENDER, RECIPIENT]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(
        stderr(&out).contains("certificate issuer CN=smtpsend test CA is not trusted"),
        "{}",
        stderr(&out)
    );
}
