//! Issue 10's "Done when", end to end through the binary: `smtpsend oauth login` against
//! the in-process token endpoint (`common/oauth_server.rs`, a custom provider on
//! 127.0.0.1), then mail through the in-process SMTP server acting as an XOAUTH2 server
//! that checks the bearer token (`common/server.rs`), with the token refreshed, refused
//! or unreachable in between. Everything is loopback; each test has its own data
//! directory (the token store), spool (`--queue-dir`) and config file.

use crate::common::oauth_server;

use std::fs;
use std::path::PathBuf;
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::server::{AuthAttempt, Builder, Connection};
use crate::common::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use oauth_server::{Answer, OAuthServer};

const ACCOUNT: &str = "test";
const USER: &str = "me@example.org";
const RCPT: &str = "rcpt@example.org";
const HINT: &str = "run `smtpsend oauth login test`";

/// What the token endpoint grants, distinctive enough to be searched for in any output.
const ACCESS_A: &str = "ya29.access-A-7f3c9e1d";
const REFRESH_R1: &str = "1//refresh-R1-91d2a6b4";
const ACCESS_B: &str = "ya29.access-B-04be55a2";
const REFRESH_R2: &str = "1//refresh-R2-c83f0e17";
const ACCESS_C: &str = "ya29.access-C-5d6a2b90";
const REFRESH_R3: &str = "1//refresh-R3-e2794c01";

const MSG: &str = "From: Me <me@example.org>\n\
To: <rcpt@example.org>\n\
Subject: oauth end to end\n\
Date: Mon, 1 Jan 2024 00:00:00 +0000\n\
Message-ID: <oauth-e2e@example.org>\n\
\n\
Sent with a bearer token.\n";

fn grant(access: &str, refresh: &str) -> Answer {
    Answer::ok(&format!(
        r#"{{"access_token":"{access}","token_type":"Bearer","expires_in":3600,
            "refresh_token":"{refresh}","scope":"smtp offline_access"}}"#
    ))
}

/// RFC 8628 §3.2 with a 1 s interval: a login takes one poll, about a second.
fn device_answer() -> Answer {
    Answer::ok(
        r#"{"device_code":"dev-code-e2e","user_code":"E2E-CODE",
            "verification_uri":"https://idp.example/device",
            "expires_in":300,"interval":1}"#,
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The XOAUTH2 initial response for `token`, base64-encoded as it crosses the wire.
fn xoauth2_b64(token: &str) -> String {
    BASE64.encode(format!("user={USER}\x01auth=Bearer {token}\x01\x01"))
}

/// One person's machine: a config with account `test` (custom provider on the loopback
/// token endpoint), a home, a data directory for the token store, a spool, a message file,
/// and the certificate the SMTP server presents.
struct Machine {
    root: tempfile::TempDir,
    idp: OAuthServer,
    pki: Pki,
}

impl Machine {
    fn new() -> Machine {
        let root = tempfile::Builder::new()
            .prefix("smtpsend-oauth-e2e-")
            .tempdir()
            .expect("temporary directory");
        let idp = OAuthServer::start();
        idp.otherwise("/device", device_answer());
        let config = format!(
            "[accounts.{ACCOUNT}]\n\
             user = \"{USER}\"\n\
             oauth_provider = \"custom\"\n\
             oauth_client_id = \"client-e2e\"\n\
             oauth_device_endpoint = \"{}\"\n\
             oauth_token_endpoint = \"{}\"\n\
             oauth_scope = \"smtp offline_access\"\n\
             timeout = 5\n",
            idp.url("/device"),
            idp.url("/token"),
        );
        fs::write(root.path().join("config.toml"), config).expect("config file");
        fs::write(root.path().join("msg"), MSG).expect("message file");
        fs::create_dir(root.path().join("home")).expect("home");
        Machine {
            root,
            idp,
            pki: Pki::self_signed(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// `ACCOUNT.json` under `$XDG_DATA_HOME/smtpsend/oauth`.
    fn store_path(&self) -> PathBuf {
        self.path("data/smtpsend/oauth")
            .join(format!("{ACCOUNT}.json"))
    }

    /// The binary with nothing of the machine's: a clean environment, our config.
    fn bin(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
        cmd.timeout(CLIENT_LIMIT)
            .env_clear()
            // Queue runs in tests are the tests' own: no background runner.
            .env("SMTPSEND_QUEUE_RUNNER", "off")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("home"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("XDG_STATE_HOME", self.path("state"));
        cmd
    }

    /// `smtpsend --config CFG oauth login test`: the endpoint must have a grant queued.
    #[track_caller]
    fn login(&self) -> Output {
        let out = self
            .bin()
            .args(["oauth", "login", "--config"])
            .arg(self.path("config.toml"))
            .arg(ACCOUNT)
            .output()
            .expect("run smtpsend oauth login");
        assert_eq!(code(&out), 0, "oauth login:\n{}", stderr(&out));
        assert!(stderr(&out).contains("signed in"), "{}", stderr(&out));
        out
    }

    /// The binary for account `test` at the relay 127.0.0.1:`port` with STARTTLS
    /// required and the server's certificate trusted, and our spool.
    fn relay_cmd(&self, port: u16) -> assert_cmd::Command {
        let mut cmd = self.bin();
        cmd.arg("--config")
            .arg(self.path("config.toml"))
            .args(["-a", ACCOUNT])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--tls", "required", "--tls-trust-file"])
            .arg(&self.pki.trust_file)
            .arg("--queue-dir")
            .arg(self.path("q"));
        cmd
    }

    /// `smtpsend -a test ... -f me@example.org rcpt@example.org < msg`, with `extra` flags.
    fn send(&self, port: u16, extra: &[&str]) -> Output {
        let mut cmd = self.relay_cmd(port);
        cmd.args(extra)
            .args(["-f", USER, RCPT])
            .pipe_stdin(self.path("msg"))
            .expect("message file");
        cmd.output().expect("run smtpsend")
    }

    /// `-q` with the same relay flags and `-a test`.
    fn flush(&self, port: u16, extra: &[&str]) -> Output {
        let mut cmd = self.relay_cmd(port);
        cmd.arg("-q").args(extra);
        cmd.output().expect("run smtpsend -q")
    }

    /// `-bp`: asserts it exits 0; returns stdout.
    #[track_caller]
    fn listing(&self) -> String {
        let out = self
            .bin()
            .arg("--config")
            .arg(self.path("config.toml"))
            .arg("--queue-dir")
            .arg(self.path("q"))
            .arg("-bp")
            .output()
            .expect("run smtpsend -bp");
        assert_eq!(code(&out), 0, "-bp:\n{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The envelopes in the spool (`ID.env`).
    fn queued(&self) -> Vec<String> {
        let Ok(dir) = fs::read_dir(self.path("q")) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = dir
            .map(|e| {
                e.expect("spool entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| !n.starts_with('.'))
            .filter_map(|n| n.strip_suffix(".env").map(str::to_string))
            .collect();
        ids.sort();
        ids
    }

    /// The token store as JSON (the format of `src/oauth/store.rs`).
    fn store(&self) -> serde_json::Value {
        let text = fs::read_to_string(self.store_path()).expect("token store");
        serde_json::from_str(&text).expect("token store is JSON")
    }

    fn stored(&self, key: &str) -> String {
        self.store()[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in the store"))
            .to_string()
    }

    /// Makes the stored access token expired, as an hour's wait would, by rewriting
    /// `expires_at` (seconds since the epoch); the file keeps its 0600 mode.
    fn expire_access_token(&self) {
        let mut store = self.store();
        store["expires_at"] = serde_json::json!(unix_now() - 10);
        fs::write(
            self.store_path(),
            serde_json::to_vec_pretty(&store).expect("JSON"),
        )
        .expect("rewrite the token store");
    }

    /// The refresh requests the token endpoint received so far.
    fn refreshes(&self) -> Vec<oauth_server::Request> {
        self.idp
            .requests_to("/token")
            .into_iter()
            .filter(|r| r.form.get("grant_type").map(String::as_str) == Some("refresh_token"))
            .collect()
    }
}

/// An XOAUTH2 server (OAUTHBEARER offered too) behind required STARTTLS that accepts
/// exactly `token` for [`USER`].
fn smtp_server(pki: &Pki, token: &str) -> Builder {
    TestServer::starttls(pki)
        .capabilities_tls(&["PIPELINING", "8BITMIME", "AUTH XOAUTH2 OAUTHBEARER"])
        .credentials(USER, token)
}

/// The connection authenticated with XOAUTH2 and `token` (and nothing else that is a
/// secret crossed the wire), then the message was accepted.
#[track_caller]
fn assert_sent_with(conn: &Connection, token: &str, never: &[&str]) {
    assert_eq!(conn.auth.len(), 1, "{:?}", conn.auth);
    let a: &AuthAttempt = &conn.auth[0];
    assert_eq!(a.mechanism, "XOAUTH2", "{a:?}");
    assert!(a.success && a.tls, "{a:?}");
    assert_eq!((a.user.as_str(), a.password.as_str()), (USER, token));
    assert_eq!(a.lines[0], format!("XOAUTH2 {}", xoauth2_b64(token)));
    let message = conn.message();
    assert!(message.accepted);
    assert_eq!(message.rcpt_to, [RCPT]);
    let wire = String::from_utf8_lossy(&conn.received()).into_owned();
    for secret in never {
        assert!(!wire.contains(secret), "{secret} crossed the wire");
        for line in &a.lines {
            let decoded = BASE64.decode(line.trim_start_matches("XOAUTH2 "));
            let decoded = String::from_utf8_lossy(&decoded.unwrap_or_default()).into_owned();
            assert!(!decoded.contains(secret), "{secret} in the AUTH exchange");
        }
    }
}

/// `secret`, and the XOAUTH2 response carrying it, appear nowhere in `text`.
#[track_caller]
fn assert_not_shown(text: &str, secrets: &[&str], place: &str) {
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} shown in {place}:\n{text}");
        let wire = xoauth2_b64(secret);
        assert!(
            !text.contains(&wire),
            "{secret} (base64) in {place}:\n{text}"
        );
    }
}

#[test]
fn login_then_send_then_refresh() {
    let m = Machine::new();
    m.idp.then("/token", grant(ACCESS_A, REFRESH_R1));
    m.login();
    let expires_at = m.store()["expires_at"].as_u64().expect("expires_at");
    let now = unix_now();
    assert!(
        (now + 3500..=now + 3600).contains(&expires_at),
        "{expires_at} vs {now}"
    );
    assert_eq!(m.stored("refresh_token"), REFRESH_R1);

    let server = smtp_server(&m.pki, ACCESS_A).start();
    let out = m.send(server.port(), &[]);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_sent_with(t.only(), ACCESS_A, &[REFRESH_R1]);
    assert!(m.refreshes().is_empty(), "a fresh token is not refreshed");

    // An hour later, as far as the store can tell; nobody does anything in between.
    m.expire_access_token();
    m.idp.then("/token", grant(ACCESS_B, REFRESH_R2));
    let server = smtp_server(&m.pki, ACCESS_B).start();
    let out = m.send(server.port(), &[]);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_sent_with(t.only(), ACCESS_B, &[REFRESH_R1, REFRESH_R2, ACCESS_A]);

    let refreshes = m.refreshes();
    assert_eq!(refreshes.len(), 1, "{refreshes:?}");
    assert_eq!(refreshes[0].form["refresh_token"], REFRESH_R1);
    assert_eq!(refreshes[0].form["client_id"], "client-e2e");
    // The rotated refresh token replaced the spent one.
    assert_eq!(m.stored("access_token"), ACCESS_B);
    assert_eq!(m.stored("refresh_token"), REFRESH_R2);
    let expires_at = m.store()["expires_at"].as_u64().expect("expires_at");
    assert!(expires_at >= unix_now() + 3500, "{expires_at}");
    assert!(m.queued().is_empty(), "{:?}", m.queued());
}

/// Login, an hour passes, and the token endpoint answers the refresh with
/// `invalid_grant`: a send then. Asserts what every test of this case relies on (the
/// SMTP server never contacted, the message queued, the store as it was); returns the
/// send's output and the queue entry's id.
fn send_with_revoked_refresh_token(m: &Machine) -> (Output, String) {
    m.idp.then("/token", grant(ACCESS_A, REFRESH_R1));
    m.login();
    m.expire_access_token();
    m.idp.then(
        "/token",
        Answer::Json(
            400,
            r#"{"error":"invalid_grant","error_description":"refresh token revoked"}"#.into(),
        ),
    );
    let server = smtp_server(&m.pki, ACCESS_A).start();
    let out = m.send(server.port(), &[]);
    let t = server.finish();
    assert_exit(&out, 77, &t);
    assert!(t.connections.is_empty(), "the SMTP server was contacted");
    assert_eq!(m.refreshes().len(), 1);
    assert_eq!(
        m.stored("refresh_token"),
        REFRESH_R1,
        "store left as it was"
    );
    let queued = m.queued();
    assert_eq!(queued.len(), 1, "{queued:?}");
    (out, queued[0].clone())
}

/// The person signs in again after the refusal; the endpoint grants token C.
fn login_again(m: &Machine) {
    m.idp.then("/token", grant(ACCESS_C, REFRESH_R3));
    m.login();
    assert_eq!(m.stored("refresh_token"), REFRESH_R3);
}

#[test]
fn revoked_refresh_token_queues_and_exits_77() {
    let m = Machine::new();
    let (out, id) = send_with_revoked_refresh_token(&m);
    let err = stderr(&out);
    assert!(err.contains(HINT), "{err}");
    assert!(err.contains("invalid_grant"), "{err}");
    assert_not_shown(&err, &[ACCESS_A, REFRESH_R1], "stderr");
    let listing = m.listing();
    assert!(listing.contains(&id), "{listing}");
    assert!(listing.contains(RCPT), "{listing}");
    assert!(listing.contains("waiting for credentials"), "{listing}");
    assert!(listing.contains(HINT), "{listing}");
    assert_not_shown(&listing, &[ACCESS_A, REFRESH_R1], "-bp");

    // Signed in again, the queue run sends with the new token.
    login_again(&m);
    let server = smtp_server(&m.pki, ACCESS_C).start();
    let out = m.flush(server.port(), &[]);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_sent_with(t.only(), ACCESS_C, &[REFRESH_R1, REFRESH_R3, ACCESS_A]);
    assert_eq!(m.refreshes().len(), 1, "the new token needed no refresh");
    assert!(m.queued().is_empty(), "{:?}", m.queued());
    assert!(m.listing().contains("Mail queue is empty"));
}

#[test]
fn revoked_refresh_token_hint_is_one_line() {
    let m = Machine::new();
    let (out, _) = send_with_revoked_refresh_token(&m);
    let err = stderr(&out);
    let hints: Vec<&str> = err.lines().filter(|l| l.contains(HINT)).collect();
    assert_eq!(hints.len(), 1, "one line with the hint:\n{err}");
}

#[test]
fn flush_after_login_sends_the_message_waiting_for_authentication() {
    let m = Machine::new();
    send_with_revoked_refresh_token(&m);
    login_again(&m);
    let server = smtp_server(&m.pki, ACCESS_C).start();
    let out = m.flush(server.port(), &[]);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(
        t.connections.len(),
        1,
        "-q did not try the entry:\n{}",
        m.listing()
    );
    assert_sent_with(&t.connections[0], ACCESS_C, &[REFRESH_R1, REFRESH_R3]);
    assert!(m.queued().is_empty(), "{:?}", m.queued());
}

#[test]
fn transient_token_failure_queues_and_exits_0() {
    let m = Machine::new();
    m.idp.then("/token", grant(ACCESS_A, REFRESH_R1));
    m.login();
    m.expire_access_token();
    m.idp
        .then("/token", Answer::Json(500, "{\"oops\":true}".into()));

    let server = smtp_server(&m.pki, ACCESS_A).start();
    let out = m.send(server.port(), &[]);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert!(t.connections.is_empty(), "the SMTP server was contacted");
    assert_eq!(m.refreshes().len(), 1);
    assert_eq!(
        m.stored("refresh_token"),
        REFRESH_R1,
        "store left as it was"
    );
    assert_not_shown(&stderr(&out), &[ACCESS_A, REFRESH_R1], "stderr");
    let queued = m.queued();
    assert_eq!(queued.len(), 1, "{queued:?}");
    let listing = m.listing();
    assert!(
        listing.contains(&queued[0]) && listing.contains(RCPT),
        "{listing}"
    );
    assert!(!listing.contains("waiting for credentials"), "{listing}");

    // Without queueing the same failure is the caller's: exit 75, nothing added.
    m.idp
        .then("/token", Answer::Json(500, "{\"oops\":true}".into()));
    let server = smtp_server(&m.pki, ACCESS_A).start();
    let out = m.send(server.port(), &["--no-queue"]);
    let t = server.finish();
    assert_exit(&out, 75, &t);
    assert!(t.connections.is_empty());
    assert!(stderr(&out).contains("HTTP 500"), "{}", stderr(&out));
    assert_eq!(m.queued(), queued);

    // The endpoint recovers: the next queue run refreshes and delivers.
    m.idp.then("/token", grant(ACCESS_B, REFRESH_R2));
    let server = smtp_server(&m.pki, ACCESS_B).start();
    let out = m.flush(server.port(), &[]);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_sent_with(t.only(), ACCESS_B, &[REFRESH_R1, REFRESH_R2]);
    assert_eq!(m.stored("refresh_token"), REFRESH_R2);
    assert!(m.queued().is_empty(), "{:?}", m.queued());
}

#[test]
fn tokens_never_appear_in_verbose_output_or_the_log() {
    let m = Machine::new();
    m.idp.then("/token", grant(ACCESS_A, REFRESH_R1));
    let login = m.login();
    let secrets = [ACCESS_A, REFRESH_R1, ACCESS_B, REFRESH_R2, "dev-code-e2e"];
    assert_not_shown(&stderr(&login), &secrets, "oauth login");
    let log = m.path("delivery.log");
    let log_arg = log.to_str().expect("UTF-8 path");

    let server = smtp_server(&m.pki, ACCESS_A).start();
    let out = m.send(server.port(), &["-v", "--logfile", log_arg]);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_sent_with(t.only(), ACCESS_A, &[REFRESH_R1]);
    let first = stderr(&out);

    m.expire_access_token();
    m.idp.then("/token", grant(ACCESS_B, REFRESH_R2));
    let server = smtp_server(&m.pki, ACCESS_B).start();
    let out = m.send(server.port(), &["-v", "--logfile", log_arg]);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_sent_with(t.only(), ACCESS_B, &[REFRESH_R1, REFRESH_R2]);
    let second = stderr(&out);

    // A revoked refresh token, under -v too.
    m.expire_access_token();
    m.idp.then("/token", Answer::error("invalid_grant"));
    let server = smtp_server(&m.pki, ACCESS_B).start();
    let out = m.send(server.port(), &["-v", "--logfile", log_arg]);
    let t = server.finish();
    assert_exit(&out, 77, &t);
    let third = stderr(&out);

    // The traces are there (so the search means something), with AUTH redacted.
    for trace in [&first, &second] {
        assert!(trace.contains("AUTH XOAUTH2 <redacted>"), "{trace}");
        assert!(trace.contains("STARTTLS"), "{trace}");
        assert_not_shown(trace, &secrets, "the -v trace");
    }
    assert!(third.contains(HINT), "{third}");
    assert_not_shown(&third, &secrets, "stderr");
    let logged = fs::read_to_string(&log).expect("log file");
    assert_eq!(
        logged.lines().filter(|l| l.contains("status=sent")).count(),
        2,
        "{logged}"
    );
    assert_not_shown(&logged, &secrets, "the log file");
    // Nor in the spool, where the third message waits.
    for id in m.queued() {
        let env = fs::read_to_string(m.path("q").join(format!("{id}.env"))).expect("envelope");
        assert_not_shown(&env, &secrets, "the queue envelope");
    }
    assert_eq!(m.queued().len(), 1);
}
