//! OAuth 2.0 tokens against an in-process token endpoint on 127.0.0.1: the device
//! authorization grant (RFC 8628), refresh with rotation (RFC 6749 §6), the failures and
//! what they mean to a caller, the command and file sources, and `smtpsend oauth login`
//! through the binary.

use crate::common::oauth_server;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use oauth_server::{Answer, OAuthServer};
use smtpsend::config::{Account, Config};
use smtpsend::oauth::store::{Store, StoredToken, mode_of};
use smtpsend::oauth::{
    self, Context, DEVICE_GRANT, ManualClock, OAuthError, Secret, access_token_in, login_in,
};
use smtpsend::{Error, ExitStatus};

/// 2023-11-14, far from any real token's expiry.
const T0: Duration = Duration::from_secs(1_700_000_000);

fn account_for(server: &OAuthServer, extra: &str) -> Account {
    let text = format!(
        "[accounts.work]\n\
         user = \"me@example.org\"\n\
         oauth_provider = \"custom\"\n\
         oauth_client_id = \"client-1\"\n\
         oauth_device_endpoint = \"{}\"\n\
         oauth_token_endpoint = \"{}\"\n\
         oauth_scope = \"smtp offline_access\"\n{extra}",
        server.url("/device"),
        server.url("/token"),
    );
    Config::parse(&text, Path::new("/nowhere/config.toml"))
        .unwrap()
        .account(Some("work"))
        .unwrap()
}

fn context<'a>(dir: &Path, clock: &'a ManualClock) -> Context<'a> {
    Context {
        store_dir: dir.to_path_buf(),
        http_timeout: Duration::from_secs(5),
        clock,
    }
}

fn device_answer(interval: u64, expires_in: u64) -> Answer {
    Answer::ok(&format!(
        r#"{{"device_code":"dev-code-xyz","user_code":"WDJB-MJHT",
            "verification_uri":"https://idp.example/device",
            "verification_uri_complete":"https://idp.example/device?user_code=WDJB-MJHT",
            "expires_in":{expires_in},"interval":{interval}}}"#
    ))
}

const GRANT: &str = r#"{"access_token":"at-first","token_type":"Bearer","expires_in":3600,
    "refresh_token":"rt-first","scope":"smtp offline_access"}"#;

fn store_with(dir: &Path, access: &str, expires_at: Duration, refresh: Option<&str>) -> Store {
    let store = Store::new(dir, "work");
    store
        .save(&StoredToken {
            access_token: Secret::new(access),
            expires_at: expires_at.as_secs(),
            refresh_token: refresh.map(Secret::new),
            scope: None,
        })
        .unwrap();
    store
}

fn stored(dir: &Path) -> StoredToken {
    Store::new(dir, "work")
        .load()
        .unwrap()
        .expect("a stored token")
}

#[test]
fn device_flow_waits_through_pending_and_slow_down_then_stores_private_tokens() {
    let server = OAuthServer::start();
    server.then("/device", device_answer(2, 600));
    server
        .then("/token", Answer::error("authorization_pending"))
        .then("/token", Answer::error("slow_down"))
        .then("/token", Answer::error("authorization_pending"))
        .then("/token", Answer::ok(GRANT));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data/smtpsend/oauth");
    let clock = ManualClock::starting_at(T0);
    let mut said = Vec::new();
    let path = login_in(&account_for(&server, ""), &context(&dir, &clock), &mut said).unwrap();

    // RFC 8628 §3.5: slow_down adds 5 s to this and every later interval.
    let s = Duration::from_secs;
    assert_eq!(clock.sleeps(), [s(2), s(2), s(7), s(7)]);

    let device = server.requests_to("/device");
    assert_eq!(device.len(), 1);
    assert_eq!(device[0].form["client_id"], "client-1");
    assert_eq!(device[0].form["scope"], "smtp offline_access");
    assert_eq!(
        device[0].content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let polls = server.requests_to("/token");
    assert_eq!(polls.len(), 4);
    for poll in &polls {
        assert_eq!(poll.form["grant_type"], DEVICE_GRANT);
        assert_eq!(poll.form["device_code"], "dev-code-xyz");
        assert_eq!(poll.form["client_id"], "client-1");
        assert!(!poll.form.contains_key("client_secret"));
    }

    let said = String::from_utf8(said).unwrap();
    assert!(said.contains("https://idp.example/device"), "{said}");
    assert!(said.contains("WDJB-MJHT"), "{said}");
    assert!(
        !said.contains("dev-code-xyz"),
        "the device code is a secret: {said}"
    );

    assert_eq!(path, dir.join("work.json"));
    assert_eq!(mode_of(&path).unwrap(), 0o600);
    assert_eq!(mode_of(&dir).unwrap(), 0o700);
    let token = stored(&dir);
    assert_eq!(token.access_token.expose(), "at-first");
    assert_eq!(token.refresh_token.unwrap().expose(), "rt-first");
    assert_eq!(token.expires_at, (T0 + s(2 + 2 + 7 + 7 + 3600)).as_secs());
    let json = fs::read_to_string(&path).unwrap();
    assert!(json.contains("\"refresh_token\": \"rt-first\""), "{json}");
}

#[test]
fn device_flow_sends_the_client_secret_to_the_token_endpoint_only() {
    let server = OAuthServer::start();
    server.then("/device", device_answer(1, 600));
    server.then("/token", Answer::ok(GRANT));
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let account = account_for(&server, "oauth_client_secret = \"cs-1\"\n");
    login_in(&account, &context(tmp.path(), &clock), &mut Vec::new()).unwrap();
    assert!(
        !server.requests_to("/device")[0]
            .form
            .contains_key("client_secret")
    );
    assert_eq!(
        server.requests_to("/token")[0].form["client_secret"],
        "cs-1"
    );
}

#[test]
fn refused_sign_in_is_exit_77_and_stores_nothing() {
    for refusal in ["access_denied", "expired_token"] {
        let server = OAuthServer::start();
        server.then("/device", device_answer(1, 600));
        server
            .then("/token", Answer::error("authorization_pending"))
            .then("/token", Answer::error(refusal));
        let tmp = tempfile::tempdir().unwrap();
        let clock = ManualClock::starting_at(T0);
        let err = login_in(
            &account_for(&server, ""),
            &context(tmp.path(), &clock),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(matches!(err, OAuthError::Denied(_)), "{refusal}: {err:?}");
        assert!(!err.needs_login());
        assert_eq!(Error::from(err).exit_status(), ExitStatus::NoPerm);
        assert_eq!(Store::new(tmp.path(), "work").load().unwrap(), None);
    }
}

#[test]
fn device_flow_gives_up_when_the_code_expires() {
    let server = OAuthServer::start();
    server.then("/device", device_answer(2, 5));
    server.otherwise("/token", Answer::error("authorization_pending"));
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let err = login_in(
        &account_for(&server, ""),
        &context(tmp.path(), &clock),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("code expired"), "{err}");
    assert_eq!(Error::from(err).exit_status(), ExitStatus::NoPerm);
    // Polled at +2 s and +4 s; at +6 s the code had expired, so no third poll.
    assert_eq!(server.requests_to("/token").len(), 2);
}

#[test]
fn valid_stored_token_is_used_without_asking_the_provider() {
    let server = OAuthServer::start();
    let tmp = tempfile::tempdir().unwrap();
    store_with(
        tmp.path(),
        "at-valid",
        T0 + Duration::from_secs(61),
        Some("rt-1"),
    );
    let clock = ManualClock::starting_at(T0);
    let token = access_token_in(&account_for(&server, ""), &context(tmp.path(), &clock)).unwrap();
    assert_eq!(token, "at-valid");
    assert!(server.requests().is_empty());
}

#[test]
fn token_expiring_within_a_minute_is_refreshed_and_a_rotated_refresh_token_stored() {
    let server = OAuthServer::start();
    server.then(
        "/token",
        Answer::ok(r#"{"access_token":"at-new","token_type":"bearer","expires_in":1800,"refresh_token":"rt-2"}"#),
    );
    let tmp = tempfile::tempdir().unwrap();
    store_with(
        tmp.path(),
        "at-old",
        T0 + Duration::from_secs(59),
        Some("rt-1"),
    );
    let clock = ManualClock::starting_at(T0);
    let token = access_token_in(&account_for(&server, ""), &context(tmp.path(), &clock)).unwrap();
    assert_eq!(token, "at-new");
    let sent = server.requests_to("/token");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].form["grant_type"], "refresh_token");
    assert_eq!(sent[0].form["refresh_token"], "rt-1");
    assert_eq!(sent[0].form["client_id"], "client-1");
    assert_eq!(sent[0].form["scope"], "smtp offline_access");
    let after = stored(tmp.path());
    assert_eq!(after.access_token.expose(), "at-new");
    assert_eq!(after.refresh_token.unwrap().expose(), "rt-2");
    assert_eq!(after.expires_at, (T0 + Duration::from_secs(1800)).as_secs());
    assert_eq!(
        mode_of(Store::new(tmp.path(), "work").path()).unwrap(),
        0o600
    );
}

#[test]
fn forgotten_access_token_is_refreshed_on_the_next_call() {
    let server = OAuthServer::start();
    server.then(
        "/token",
        Answer::ok(r#"{"access_token":"at-new","expires_in":3600}"#),
    );
    let tmp = tempfile::tempdir().unwrap();
    store_with(tmp.path(), "at-rejected", T0 * 2, Some("rt-1"));
    let clock = ManualClock::starting_at(T0);
    let ctx = context(tmp.path(), &clock);
    let account = account_for(&server, "");
    assert_eq!(access_token_in(&account, &ctx).unwrap(), "at-rejected");
    oauth::forget_access_token_in(&account, &ctx).unwrap();
    assert_eq!(access_token_in(&account, &ctx).unwrap(), "at-new");
    assert_eq!(server.requests_to("/token").len(), 1);
}

#[test]
fn refresh_without_rotation_keeps_the_refresh_token() {
    let server = OAuthServer::start();
    server.then(
        "/token",
        Answer::ok(r#"{"access_token":"at-new","expires_in":3600}"#),
    );
    let tmp = tempfile::tempdir().unwrap();
    store_with(
        tmp.path(),
        "at-old",
        T0 - Duration::from_secs(10),
        Some("rt-1"),
    );
    let clock = ManualClock::starting_at(T0);
    access_token_in(&account_for(&server, ""), &context(tmp.path(), &clock)).unwrap();
    assert_eq!(stored(tmp.path()).refresh_token.unwrap().expose(), "rt-1");
}

#[test]
fn invalid_grant_needs_a_login_exit_77_with_the_hint() {
    let server = OAuthServer::start();
    server.then(
        "/token",
        Answer::Json(
            400,
            r#"{"error":"invalid_grant","error_description":"AADSTS70000: token revoked"}"#.into(),
        ),
    );
    let tmp = tempfile::tempdir().unwrap();
    store_with(tmp.path(), "at-old", T0, Some("rt-revoked"));
    let clock = ManualClock::starting_at(T0);
    let err = access_token_in(&account_for(&server, ""), &context(tmp.path(), &clock)).unwrap_err();
    assert!(err.needs_login(), "{err:?}");
    let msg = err.to_string();
    assert!(msg.ends_with("run `smtpsend oauth login work`"), "{msg}");
    assert!(
        msg.contains("invalid_grant: AADSTS70000: token revoked"),
        "{msg}"
    );
    assert!(!msg.contains("rt-revoked"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    let err = Error::from(err);
    assert!(matches!(err, Error::NoPerm(_)));
    assert_eq!(err.exit_status().code(), 77);
    assert_eq!(
        stored(tmp.path()).refresh_token.unwrap().expose(),
        "rt-revoked",
        "a refused refresh leaves the store as it was"
    );
}

#[test]
fn nothing_stored_needs_a_login() {
    let server = OAuthServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let err = access_token_in(&account_for(&server, ""), &context(tmp.path(), &clock)).unwrap_err();
    assert!(err.needs_login());
    assert!(
        err.to_string().contains("run `smtpsend oauth login work`"),
        "{err}"
    );
    assert_eq!(Error::from(err).exit_status(), ExitStatus::NoPerm);
}

#[test]
fn expired_token_without_refresh_token_needs_a_login() {
    let server = OAuthServer::start();
    let tmp = tempfile::tempdir().unwrap();
    store_with(tmp.path(), "at-old", T0, None);
    let clock = ManualClock::starting_at(T0);
    let err = access_token_in(&account_for(&server, ""), &context(tmp.path(), &clock)).unwrap_err();
    assert!(err.needs_login(), "{err:?}");
    assert!(server.requests().is_empty());
}

fn refresh_failure(answer: Answer, http_timeout: Duration) -> OAuthError {
    let server = OAuthServer::start();
    server.then("/token", answer);
    let tmp = tempfile::tempdir().unwrap();
    store_with(tmp.path(), "at-old", T0, Some("rt-1"));
    let clock = ManualClock::starting_at(T0);
    let ctx = Context {
        http_timeout,
        ..context(tmp.path(), &clock)
    };
    let err = access_token_in(&account_for(&server, ""), &ctx).unwrap_err();
    assert_eq!(
        stored(tmp.path()).refresh_token.unwrap().expose(),
        "rt-1",
        "a failed refresh leaves the store as it was"
    );
    err
}

#[test]
fn http_500_is_transient_exit_75() {
    let err = refresh_failure(
        Answer::Json(500, "{\"oops\":true}".into()),
        Duration::from_secs(5),
    );
    assert!(matches!(err, OAuthError::Transient(_)), "{err:?}");
    assert!(err.is_transient() && !err.needs_login());
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    let err = Error::from(err);
    assert!(matches!(err, Error::TempFail(_)));
    assert_eq!(err.exit_status().code(), 75);
}

#[test]
fn closed_connection_is_transient() {
    let err = refresh_failure(Answer::Close, Duration::from_secs(5));
    assert!(matches!(err, OAuthError::Transient(_)), "{err:?}");
    assert_eq!(Error::from(err).exit_status(), ExitStatus::TempFail);
}

#[test]
fn silent_endpoint_times_out_as_transient() {
    let started = Instant::now();
    let err = refresh_failure(Answer::Hang, Duration::from_millis(500));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, OAuthError::Transient(_)), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[test]
fn unreachable_endpoint_is_transient() {
    // Bind and drop: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = format!(
        "user = \"u\"\noauth_provider = \"custom\"\noauth_client_id = \"c\"\n\
         oauth_device_endpoint = \"http://127.0.0.1:{port}/device\"\n\
         oauth_token_endpoint = \"http://127.0.0.1:{port}/token\"\noauth_scope = \"s\"\n"
    );
    let account = Config::parse(&text, Path::new("/c.toml"))
        .unwrap()
        .account(None)
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(tmp.path(), &account.name);
    store
        .save(&StoredToken {
            access_token: Secret::new("a"),
            expires_at: 0,
            refresh_token: Some(Secret::new("r")),
            scope: None,
        })
        .unwrap();
    let clock = ManualClock::starting_at(T0);
    let err = access_token_in(&account, &context(tmp.path(), &clock)).unwrap_err();
    assert!(matches!(err, OAuthError::Transient(_)), "{err:?}");
}

#[test]
fn store_readable_by_others_is_a_config_error() {
    let server = OAuthServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with(tmp.path(), "at-valid", T0 * 2, Some("rt-1"));
    fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).unwrap();
    let clock = ManualClock::starting_at(T0);
    let err = access_token_in(&account_for(&server, ""), &context(tmp.path(), &clock)).unwrap_err();
    assert!(matches!(err, OAuthError::Config(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("readable by others") && msg.contains("chmod 600"),
        "{msg}"
    );
    assert!(!msg.contains("at-valid") && !msg.contains("rt-1"), "{msg}");
    assert_eq!(Error::from(err).exit_status(), ExitStatus::Config);
}

fn plain_account(extra: &str) -> Account {
    Config::parse(
        &format!("user = \"me@example.org\"\n{extra}"),
        Path::new("/c.toml"),
    )
    .unwrap()
    .account(None)
    .unwrap()
}

#[test]
fn token_command_prints_the_token() {
    let account =
        plain_account("oauth_token_command = \"printf 'ya29.from-cmd\\\\nextra\\\\n'\"\n");
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let ctx = context(tmp.path(), &clock);
    assert_eq!(access_token_in(&account, &ctx).unwrap(), "ya29.from-cmd");
    // The command gets no arguments: "$#" is 0 and "$1" empty.
    let account = plain_account("oauth_token_command = \"echo \\\"$#:$1:tok\\\"\"\n");
    assert_eq!(access_token_in(&account, &ctx).unwrap(), "0::tok");
}

#[test]
fn token_file_must_be_private() {
    let tmp = tempfile::tempdir().unwrap();
    let path: PathBuf = tmp.path().join("token");
    fs::write(&path, "ya29.from-file\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let account = plain_account(&format!("oauth_token_file = \"{}\"\n", path.display()));
    let clock = ManualClock::starting_at(T0);
    let ctx = context(tmp.path(), &clock);
    assert_eq!(access_token_in(&account, &ctx).unwrap(), "ya29.from-file");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let err = access_token_in(&account, &ctx).unwrap_err();
    assert!(matches!(err, OAuthError::Config(_)), "{err:?}");
    assert!(!err.to_string().contains("ya29"), "{err}");
}

#[test]
fn plain_http_to_another_host_is_refused() {
    for endpoint in [
        "http://192.0.2.7/token",
        "http://localhost:8080/token",
        "http://idp.example/token",
    ] {
        let text = format!(
            "user = \"u\"\noauth_provider = \"custom\"\noauth_client_id = \"c\"\n\
             oauth_device_endpoint = \"https://idp.example/device\"\n\
             oauth_token_endpoint = \"{endpoint}\"\noauth_scope = \"s\"\n"
        );
        let err = Config::parse(&text, Path::new("/c.toml")).unwrap_err();
        assert_eq!(err.exit_status(), ExitStatus::Config, "{endpoint}");
        assert!(err.to_string().contains("plain http is refused"), "{err}");
    }
    assert!(smtpsend::config::oauth::check_endpoint("http://[::1]:8080/token").is_ok());
    assert!(smtpsend::config::oauth::check_endpoint("http://127.0.0.2/token").is_ok());
}

#[test]
fn account_without_oauth_is_a_config_error() {
    let account = plain_account("");
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let err = access_token_in(&account, &context(tmp.path(), &clock)).unwrap_err();
    assert!(matches!(err, OAuthError::Config(_)), "{err:?}");
    assert!(!oauth::uses_oauth(&account));
}

/// The binary, with a config of its own and a data directory in `home`.
fn binary(home: &Path, config: &Path) -> Command {
    let mut cmd = Command::cargo_bin("smtpsend").unwrap();
    cmd.env_clear()
        // Queue runs in tests are the tests' own: no background runner.
        .env("SMTPSEND_QUEUE_RUNNER", "off")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("SMTPSEND_CONFIG", config)
        .timeout(Duration::from_secs(20));
    cmd
}

fn write_config(dir: &Path, server: &OAuthServer) -> PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "[accounts.test]\n\
         user = \"me@example.org\"\n\
         oauth_provider = \"custom\"\n\
         oauth_client_id = \"client-bin\"\n\
         oauth_device_endpoint = \"{}\"\n\
         oauth_token_endpoint = \"{}\"\n\
         oauth_scope = \"smtp offline_access\"\n\
         timeout = 5\n",
        server.url("/device"),
        server.url("/token"),
    );
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn oauth_login_through_the_binary_stores_the_tokens() {
    let server = OAuthServer::start();
    server.then("/device", device_answer(1, 300));
    server
        .then("/token", Answer::error("authorization_pending"))
        .then("/token", Answer::ok(GRANT));
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), &server);
    let started = Instant::now();
    let output = binary(tmp.path(), &config)
        .args(["oauth", "login", "test"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains("open https://idp.example/device"),
        "{stderr}"
    );
    assert!(stderr.contains("WDJB-MJHT"), "{stderr}");
    assert!(stderr.contains("signed in"), "{stderr}");
    for secret in ["dev-code-xyz", "at-first", "rt-first"] {
        assert!(!stderr.contains(secret), "{secret} shown: {stderr}");
    }
    // Two polls one interval (1 s) apart, the first one interval after the code.
    let polls = server.requests_to("/token");
    assert_eq!(polls.len(), 2);
    let device_at = server.requests_to("/device")[0].at;
    assert!(polls[0].at - device_at >= Duration::from_millis(900));
    assert!(polls[1].at - polls[0].at >= Duration::from_millis(900));
    assert!(started.elapsed() < Duration::from_secs(15));

    let dir = tmp.path().join("data/smtpsend/oauth");
    let path = dir.join("test.json");
    assert_eq!(mode_of(&path).unwrap(), 0o600);
    assert_eq!(mode_of(&dir).unwrap(), 0o700);
    let token = Store::new(&dir, "test").load().unwrap().unwrap();
    assert_eq!(token.refresh_token.unwrap().expose(), "rt-first");

    let status = binary(tmp.path(), &config)
        .args(["oauth", "status", "test"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&status.stderr);
    assert!(status.status.success(), "{said}");
    assert!(said.contains("a refresh token is stored"), "{said}");
    assert!(
        !said.contains("rt-first") && !said.contains("at-first"),
        "{said}"
    );
}

#[test]
fn oauth_login_refused_exits_77() {
    let server = OAuthServer::start();
    server.then("/device", device_answer(1, 300));
    server.then("/token", Answer::error("access_denied"));
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), &server);
    let output = binary(tmp.path(), &config)
        .args(["oauth", "login", "test"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(77), "{stderr}");
    assert!(stderr.contains("access_denied"), "{stderr}");
}

#[test]
fn oauth_status_before_login_gives_the_hint() {
    let server = OAuthServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), &server);
    let output = binary(tmp.path(), &config)
        .args(["oauth", "status"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("run `smtpsend oauth login test`"),
        "{stderr}"
    );
}

#[test]
fn oauth_login_for_an_unknown_account_is_a_usage_error() {
    let server = OAuthServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), &server);
    let output = binary(tmp.path(), &config)
        .args(["oauth", "login", "nope"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let output = binary(tmp.path(), &config)
        .args(["oauth", "logout"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
}
