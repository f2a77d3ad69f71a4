//! SASL mechanisms through the binary against the in-process server on 127.0.0.1: the
//! mechanism chosen from the offer, the bytes of each exchange, and the exit status when
//! the server refuses or fails to prove itself.

use crate::common::pki::ClientPki;
use crate::common::server::{AuthAttempt, Builder, Connection};
use crate::common::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-Pa55";
const TOKEN: &str = "ya29.a0AfH6SMBx-test-token";

/// After STARTTLS: PIPELINING and these AUTH mechanisms.
fn server_offering(pki: &Pki, auth: &'static str) -> Builder {
    TestServer::starttls(pki)
        .capabilities_tls(&["PIPELINING", "8BITMIME", auth])
        .credentials(USER, PASSWORD)
}

fn client(port: u16, pki: &Pki, secret: &str) -> assert_cmd::Command {
    let mut cmd = smtpsend_starttls(port, pki);
    cmd.args(["--user", USER])
        .env("SMTPSEND_PASSWORD", secret)
        .arg(RECIPIENT);
    cmd
}

fn only_auth(conn: &Connection) -> &AuthAttempt {
    assert_eq!(conn.auth.len(), 1, "{:?}", conn.auth);
    &conn.auth[0]
}

fn decoded(b64: &str) -> Vec<u8> {
    BASE64.decode(b64).expect("client sent base64")
}

#[test]
fn scram_sha256_is_preferred_and_proves_both_sides() {
    let pki = Pki::self_signed();
    let server = server_offering(&pki, "AUTH PLAIN LOGIN SCRAM-SHA-1 SCRAM-SHA-256").start();
    let out = run(client(server.port(), &pki, PASSWORD), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    let a = only_auth(conn);
    assert_eq!(a.mechanism, "SCRAM-SHA-256");
    assert!(a.success && a.tls, "{a:?}");
    assert!(conn.message().accepted);
    // AUTH with the client-first message, the client-final message, the empty answer
    // to the server's signature.
    assert_eq!(a.lines.len(), 3, "{:?}", a.lines);
    let (name, first) = a.lines[0].split_once(' ').expect("initial response");
    assert_eq!(name, "SCRAM-SHA-256");
    let first = String::from_utf8(decoded(first)).unwrap();
    assert!(first.starts_with("n,,n=alice,r="), "{first}");
    let final_ = String::from_utf8(decoded(&a.lines[1])).unwrap();
    assert!(final_.starts_with("c=biws,r="), "{final_}");
    assert!(final_.contains(",p="), "{final_}");
    assert_eq!(a.lines[2], "");
    // The password never crossed the wire, not even base64-encoded.
    let wire = String::from_utf8_lossy(&conn.received()).into_owned();
    assert!(!wire.contains(PASSWORD) && !wire.contains(&BASE64.encode(PASSWORD)));
    // The lock-step exchange stands alone; the transaction is pipelined after it.
    let shape = conn.flight_shape();
    assert!(
        shape.contains(&vec!["MAIL".to_string(), "RCPT".into(), "DATA".into()]),
        "{shape:?}"
    );
}

#[test]
fn scram_sha1_is_used_when_it_is_the_only_scram() {
    let pki = Pki::self_signed();
    let server = server_offering(&pki, "AUTH PLAIN SCRAM-SHA-1").start();
    let out = run(client(server.port(), &pki, PASSWORD), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let a = only_auth(t.only());
    assert_eq!(a.mechanism, "SCRAM-SHA-1");
    assert!(a.success);
}

#[test]
fn scram_wrong_password_exits_77() {
    let pki = Pki::self_signed();
    let server = server_offering(&pki, "AUTH SCRAM-SHA-256").start();
    let out = run(client(server.port(), &pki, "not the password"), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 77, &t);
    assert!(!only_auth(t.only()).success);
    assert!(stderr(&out).contains("535"), "{}", stderr(&out));
    assert!(!t.only().saw("MAIL"));
}

#[test]
fn scram_server_that_cannot_prove_it_knows_the_password_exits_77() {
    let pki = Pki::self_signed();
    let server = server_offering(&pki, "AUTH SCRAM-SHA-256")
        .scram_wrong_signature()
        .start();
    let out = run(client(server.port(), &pki, PASSWORD), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 77, &t);
    let err = stderr(&out);
    assert!(
        err.contains("the server could not prove it knows the password"),
        "{err}"
    );
    let conn = t.only();
    // The client cancelled instead of acknowledging the signature, and sent no mail.
    assert_eq!(only_auth(conn).lines.last().map(String::as_str), Some("*"));
    assert!(!conn.saw("MAIL"));
    assert!(conn.messages.is_empty());
}

#[test]
fn scram_iteration_count_below_4096_is_refused() {
    let pki = Pki::self_signed();
    let server = server_offering(&pki, "AUTH SCRAM-SHA-256")
        .scram_iterations(1024)
        .start();
    let out = run(client(server.port(), &pki, PASSWORD), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 77, &t);
    let err = stderr(&out);
    assert!(err.contains("1024") && err.contains("downgrade"), "{err}");
    // No proof was sent for the weak parameters.
    assert_eq!(only_auth(t.only()).lines.len(), 2);
    assert_eq!(only_auth(t.only()).lines[1], "*");
}

#[test]
fn xoauth2_with_a_token_goes_lockstep() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .capabilities_tls(&["PIPELINING", "AUTH PLAIN OAUTHBEARER XOAUTH2"])
        .credentials(USER, TOKEN)
        .start();
    let mut cmd = client(server.port(), &pki, TOKEN);
    cmd.arg("--oauth");
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    let a = only_auth(conn);
    assert_eq!((a.mechanism.as_str(), a.user.as_str()), ("XOAUTH2", USER));
    assert_eq!(a.password, TOKEN);
    let (_, ir) = a.lines[0].split_once(' ').expect("initial response");
    assert_eq!(
        decoded(ir),
        format!("user={USER}\x01auth=Bearer {TOKEN}\x01\x01").as_bytes()
    );
    // AUTH alone in its flight: an error challenge must not meet a pipelined MAIL.
    let shape = conn.flight_shape();
    let auth_flight = shape
        .iter()
        .find(|f| f.contains(&"AUTH".to_string()))
        .expect("AUTH flight");
    assert_eq!(auth_flight, &vec!["AUTH".to_string()]);
}

#[test]
fn xoauth2_refused_token_answers_the_error_challenge_and_exits_77() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .capabilities_tls(&["PIPELINING", "AUTH XOAUTH2"])
        .credentials(USER, TOKEN)
        .start();
    let mut cmd = client(server.port(), &pki, "expired-token");
    cmd.arg("--oauth");
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 77, &t);
    let err = stderr(&out);
    assert!(err.contains("535") && err.contains("status=401"), "{err}");
    let a = only_auth(t.only());
    assert!(!a.success);
    assert_eq!(a.lines.len(), 2, "{:?}", a.lines);
    assert_eq!(a.lines[1], "", "an empty line answers the JSON challenge");
    assert!(!t.only().saw("MAIL"));
}

#[test]
fn forcing_oauthbearer_makes_the_secret_a_token_and_names_host_and_port() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .capabilities_tls(&["PIPELINING", "AUTH XOAUTH2 OAUTHBEARER"])
        .credentials(USER, TOKEN)
        .start();
    let port = server.port();
    let mut cmd = client(port, &pki, TOKEN);
    cmd.args(["--auth", "oauthbearer"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let a = only_auth(t.only());
    assert_eq!(a.mechanism, "OAUTHBEARER");
    let (_, ir) = a.lines[0].split_once(' ').expect("initial response");
    assert_eq!(
        String::from_utf8(decoded(ir)).unwrap(),
        format!("n,a={USER},\x01host=127.0.0.1\x01port={port}\x01auth=Bearer {TOKEN}\x01\x01")
    );
}

#[test]
fn oauthbearer_refused_token_answers_control_a_and_exits_77() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .capabilities_tls(&["PIPELINING", "AUTH OAUTHBEARER"])
        .credentials(USER, TOKEN)
        .start();
    let mut cmd = client(server.port(), &pki, "wrong");
    cmd.arg("--oauth");
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 77, &t);
    let a = only_auth(t.only());
    assert_eq!(a.lines[1], "AQ==", "RFC 7628 §3.2.3: a single %x01");
}

#[test]
fn cram_md5_when_forced_sends_the_rfc2195_digest() {
    let pki = Pki::self_signed();
    // RFC 2195's challenge and the response it gives for tim / tanstaaftanstaaf.
    let server = TestServer::starttls(&pki)
        .capabilities_tls(&["PIPELINING", "AUTH PLAIN CRAM-MD5"])
        .rule(
            Rule::on("AUTH")
                .arg("CRAM-MD5")
                .reply("334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"),
        )
        .rule(Rule::on("dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw").reply("235 2.7.0 ok"))
        .start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.args(["--user", "tim", "--auth", "cram-md5"])
        .env("SMTPSEND_PASSWORD", "tanstaaftanstaaf")
        .arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let lines: Vec<&str> = t
        .only()
        .commands
        .iter()
        .map(|c| c.line.as_str())
        .filter(|l| !l.starts_with("EHLO") && *l != "STARTTLS")
        .take(2)
        .collect();
    assert_eq!(
        lines,
        [
            "AUTH CRAM-MD5",
            "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
        ]
    );
}

#[test]
fn cram_md5_alone_is_no_mechanism_in_common() {
    let pki = Pki::self_signed();
    let server = server_offering(&pki, "AUTH CRAM-MD5 GSSAPI").start();
    let out = run(client(server.port(), &pki, PASSWORD), MESSAGE);
    let t = server.finish();
    assert_exit(&out, 77, &t);
    let err = stderr(&out);
    assert!(err.contains("server offers CRAM-MD5 GSSAPI"), "{err}");
    assert!(!t.only().saw("AUTH"));
}

#[test]
fn a_forced_mechanism_that_does_not_fit_the_secret_exits_77() {
    let pki = Pki::self_signed();
    let server = server_offering(&pki, "AUTH PLAIN XOAUTH2").start();
    let mut cmd = client(server.port(), &pki, TOKEN);
    cmd.args(["--oauth", "--auth", "plain"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 77, &t);
    let err = stderr(&out);
    assert!(
        err.contains("AUTH PLAIN: needs a password, but an OAuth 2.0 token is configured"),
        "{err}"
    );
    assert!(!t.only().saw("AUTH"));
}

fn external_server(pki: &Pki, clients: &ClientPki) -> Builder {
    TestServer::starttls(pki)
        .client_ca(pki, clients)
        .capabilities_tls(&["PIPELINING", "AUTH PLAIN EXTERNAL"])
        // Any credentials: they make the server insist on AUTH before MAIL.
        .credentials("nobody", "unused")
}

#[test]
fn external_with_a_client_certificate_is_pipelined_and_accepted() {
    let pki = Pki::self_signed();
    let clients = ClientPki::new();
    let server = external_server(&pki, &clients).start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.arg("--tls-cert")
        .arg(&clients.cert_file)
        .arg("--tls-key")
        .arg(&clients.key_file)
        .arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let conn = t.only();
    assert!(conn.client_certificate);
    let a = only_auth(conn);
    assert_eq!(a.mechanism, "EXTERNAL");
    assert!(a.success);
    assert_eq!(
        a.lines,
        ["EXTERNAL ="],
        "RFC 4422 Appendix A: empty authzid"
    );
    assert!(conn.message().accepted);
    assert!(
        conn.flight_shape().contains(&vec![
            "AUTH".to_string(),
            "MAIL".into(),
            "RCPT".into(),
            "DATA".into()
        ]),
        "{:?}",
        conn.flight_shape()
    );
}

#[test]
fn a_client_certificate_from_another_ca_fails_the_handshake() {
    let pki = Pki::self_signed();
    let trusted = ClientPki::new();
    let stranger = ClientPki::new();
    let server = external_server(&pki, &trusted).start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.arg("--tls-cert")
        .arg(&stranger.cert_file)
        .arg("--tls-key")
        .arg(&stranger.key_file)
        .arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    // The server's verifier refuses the unknown issuer; a TLS failure is temporary.
    assert_exit(&out, 75, &t);
    let conn = t.only();
    assert!(!conn.client_certificate);
    assert!(!conn.saw("AUTH") && !conn.saw("MAIL"));
}

#[test]
fn auth_external_without_a_certificate_is_a_config_error() {
    let pki = Pki::self_signed();
    let server = external_server(&pki, &ClientPki::new()).start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.args(["--auth", "external"]).arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 78, &t);
    assert!(stderr(&out).contains("--tls-cert"), "{}", stderr(&out));
}

#[test]
fn a_client_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;

    let pki = Pki::self_signed();
    let clients = ClientPki::new();
    std::fs::set_permissions(&clients.key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = external_server(&pki, &clients).start();
    let mut cmd = smtpsend_starttls(server.port(), &pki);
    cmd.arg("--tls-cert")
        .arg(&clients.cert_file)
        .arg("--tls-key")
        .arg(&clients.key_file)
        .arg(RECIPIENT);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 78, &t);
    let err = stderr(&out);
    assert!(
        err.contains("readable or writable by group or others"),
        "{err}"
    );
    assert!(t.connections.is_empty() || !t.only().saw("MAIL"));
}

#[test]
fn every_sasl_payload_is_redacted_in_the_verbose_trace() {
    let pki = Pki::self_signed();
    let server = server_offering(&pki, "AUTH SCRAM-SHA-256").start();
    let mut cmd = client(server.port(), &pki, PASSWORD);
    cmd.arg("-v");
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let err = stderr(&out);
    let a = only_auth(t.only());
    for line in &a.lines[1..] {
        if !line.is_empty() {
            assert!(!err.contains(line.as_str()), "{line} in the trace:\n{err}");
        }
    }
    let (_, ir) = a.lines[0].split_once(' ').unwrap();
    assert!(!err.contains(ir), "{err}");
    assert!(err.contains("AUTH SCRAM-SHA-256 <redacted>"), "{err}");
}

#[test]
fn an_account_with_an_oauth_token_command_chooses_xoauth2_from_the_offer() {
    let pki = Pki::self_signed();
    let server = TestServer::starttls(&pki)
        .capabilities_tls(&["PIPELINING", "AUTH PLAIN LOGIN OAUTHBEARER XOAUTH2"])
        .credentials(USER, TOKEN)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "queue_on_tempfail = false\nuser = \"{USER}\"\noauth_token_command = \"echo {TOKEN}\"\n"
        ),
    )
    .unwrap();
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    // Queue runs in tests are the tests' own: no background runner.
    cmd.env("SMTPSEND_QUEUE_RUNNER", "off");
    cmd.timeout(CLIENT_LIMIT)
        .arg("--config")
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &server.port().to_string()])
        .args(["--tls", "required", "--tls-trust-file"])
        .arg(&pki.trust_file)
        .args(["-f", SENDER, RECIPIENT])
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env_remove("SMTPSEND_PASSWORD");
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let a = only_auth(t.only());
    assert_eq!(a.mechanism, "XOAUTH2");
    assert_eq!((a.user.as_str(), a.password.as_str()), (USER, TOKEN));
    assert!(a.success);
}
