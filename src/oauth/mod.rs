//! OAuth 2.0 access tokens for SMTP AUTH XOAUTH2 / OAUTHBEARER (RFC 7628).
//!
//! An account gets its token from one of three places: a command (`oauth_token_command`),
//! a file (`oauth_token_file`), or a provider (`oauth_provider`), in which case
//! `smtpsend oauth login ACCOUNT` runs the device authorization grant (RFC 8628) once and
//! stores the tokens, and every later send refreshes the access token (RFC 6749 §6) when
//! it is about to expire.
//!
//! Tokens are secrets: they are never printed, never put on a command line, and every
//! type holding one redacts it in `Debug`.

mod command;
mod device;
mod http;
mod refresh;
pub mod store;
mod token;

use std::cell::Cell;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::config::oauth::{Provider, ProviderKeys, ProviderKind, Secret, TokenSource};
pub use device::DEVICE_GRANT;
pub use store::Store;

use crate::config::Account;

/// The deadline of one HTTP request when the account sets no `timeout`.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// An access token is refreshed when it expires within this margin, so it does not
/// expire between being fetched and the server checking it.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// Why no access token could be had. Each kind tells the caller what to do with the
/// message: keep it and retry ([`Transient`](Self::Transient), [`Store`](Self::Store)),
/// hold it until someone logs in ([`NeedsLogin`](Self::NeedsLogin)), or fix the config.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The provider could not be reached or failed (network, timeout, HTTP 5xx):
    /// try again later (EX_TEMPFAIL).
    #[error("{0}")]
    Transient(String),
    /// No usable token: never logged in, or the refresh token was revoked or expired
    /// (`invalid_grant`, RFC 6749 §5.2). A person must run `smtpsend oauth login`
    /// (EX_NOPERM). The message ends with that hint.
    #[error("{0}")]
    NeedsLogin(String),
    /// The person refused, or did not finish, the sign-in (`access_denied`,
    /// `expired_token`, RFC 8628 §3.5) (EX_NOPERM).
    #[error("{0}")]
    Denied(String),
    /// The account's OAuth settings are wrong or unsafe (EX_CONFIG).
    #[error("{0}")]
    Config(String),
    /// The token store could not be read or written for a reason other than its
    /// permissions (a full disk, a read-only file system): try again later (EX_TEMPFAIL).
    #[error("{0}")]
    Store(String),
}

impl OAuthError {
    /// True when only a person running `smtpsend oauth login` can fix this; the queue
    /// marks such entries `waiting_for_auth` instead of retrying them on a timer.
    pub fn needs_login(&self) -> bool {
        matches!(self, OAuthError::NeedsLogin(_))
    }

    /// True when the same call may succeed later without anyone doing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, OAuthError::Transient(_) | OAuthError::Store(_))
    }

    /// The hint a [`NeedsLogin`](Self::NeedsLogin) message ends with.
    pub fn login_hint(account: &str) -> String {
        format!("run `smtpsend oauth login {account}`")
    }

    pub(crate) fn needs_login_for(account: &str, why: impl fmt::Display) -> OAuthError {
        OAuthError::NeedsLogin(format!(
            "account {account}: {why}; {}",
            OAuthError::login_hint(account)
        ))
    }
}

impl From<OAuthError> for crate::Error {
    fn from(e: OAuthError) -> crate::Error {
        match e {
            OAuthError::Transient(m) | OAuthError::Store(m) => crate::Error::TempFail(m),
            OAuthError::NeedsLogin(m) | OAuthError::Denied(m) => crate::Error::NoPerm(m),
            OAuthError::Config(m) => crate::Error::Config(m),
        }
    }
}

/// Wall-clock time and waiting, passed in so the device flow's polling and the expiry
/// rules can be tested without sleeping.
pub trait Clock {
    /// Time since the Unix epoch.
    fn now(&self) -> Duration;
    fn sleep(&self, d: Duration);
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// A clock that only moves when slept on, and remembers every sleep.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: Cell<Duration>,
    slept: std::cell::RefCell<Vec<Duration>>,
}

impl ManualClock {
    pub fn starting_at(now: Duration) -> ManualClock {
        ManualClock {
            now: Cell::new(now),
            slept: Default::default(),
        }
    }

    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.slept.borrow().clone()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        self.now.get()
    }

    fn sleep(&self, d: Duration) {
        self.now.set(self.now.get() + d);
        self.slept.borrow_mut().push(d);
    }
}

/// Where tokens are kept, how long one HTTP request may take, and the clock.
pub struct Context<'a> {
    /// The directory of `ACCOUNT.json` files.
    pub store_dir: PathBuf,
    /// The deadline of each HTTP request (connect, send, wait and read together).
    pub http_timeout: Duration,
    pub clock: &'a dyn Clock,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("store_dir", &self.store_dir)
            .field("http_timeout", &self.http_timeout)
            .finish_non_exhaustive()
    }
}

impl Context<'static> {
    /// The store under `$XDG_DATA_HOME/smtpsend/oauth` (or
    /// `~/.local/share/smtpsend/oauth`), the account's `timeout` (else
    /// [`DEFAULT_HTTP_TIMEOUT`]) per request, the system clock.
    pub fn for_account(account: &Account) -> Result<Context<'static>, OAuthError> {
        let env = |name: &str| std::env::var_os(name);
        let store_dir = store::default_dir(&env).ok_or_else(|| {
            OAuthError::Config(
                "no place for the OAuth token store: neither $XDG_DATA_HOME nor $HOME \
                 is an absolute path"
                    .into(),
            )
        })?;
        Ok(Context {
            store_dir,
            http_timeout: account
                .timeout
                .map_or(DEFAULT_HTTP_TIMEOUT, Duration::from_secs),
            clock: &SystemClock,
        })
    }
}

/// True when the account authenticates with an OAuth 2.0 token instead of a password.
pub fn uses_oauth(account: &Account) -> bool {
    account.oauth.is_some()
}

/// The access token to send in XOAUTH2 / OAUTHBEARER for `account`: the output of its
/// `oauth_token_command`, the contents of its `oauth_token_file`, or the stored token,
/// refreshed first when it expires within [`EXPIRY_MARGIN`].
pub fn access_token(account: &Account) -> Result<String, OAuthError> {
    access_token_in(account, &Context::for_account(account)?)
}

/// [`access_token`] with the store, deadline and clock given.
pub fn access_token_in(account: &Account, ctx: &Context<'_>) -> Result<String, OAuthError> {
    match source_of(account)? {
        TokenSource::Command(command) => command::run(&command),
        TokenSource::File(path) => token::from_file(&path),
        TokenSource::Provider(provider) => {
            let store = Store::new(&ctx.store_dir, &account.name);
            refresh::fresh_token(&account.name, &provider, &store, ctx)
        }
    }
}

/// After the server refused a token that had not expired (a 535 to XOAUTH2: revoked,
/// or the clock is off), marks the stored access token expired so the next
/// [`access_token`] refreshes it. A token from a command or a file is left alone.
pub fn forget_access_token(account: &Account) -> Result<(), OAuthError> {
    forget_access_token_in(account, &Context::for_account(account)?)
}

/// [`forget_access_token`] with the store given.
pub fn forget_access_token_in(account: &Account, ctx: &Context<'_>) -> Result<(), OAuthError> {
    let Some(TokenSource::Provider(_)) = &account.oauth else {
        return Ok(());
    };
    let store = Store::new(&ctx.store_dir, &account.name);
    let _lock = store.lock()?;
    if let Some(mut stored) = store.load()? {
        stored.expires_at = 0;
        store.save(&stored)?;
    }
    Ok(())
}

/// `smtpsend oauth login ACCOUNT`: the device authorization grant (RFC 8628). Prints
/// where to sign in and the code on `out`, polls until the person has signed in, and
/// stores the tokens. Returns the store's path.
pub fn login(account: &Account, out: &mut dyn Write) -> Result<PathBuf, OAuthError> {
    login_in(account, &Context::for_account(account)?, out)
}

/// [`login`] with the store, deadline and clock given.
pub fn login_in(
    account: &Account,
    ctx: &Context<'_>,
    out: &mut dyn Write,
) -> Result<PathBuf, OAuthError> {
    let provider = match source_of(account)? {
        TokenSource::Provider(p) => p,
        TokenSource::Command(_) => {
            return Err(OAuthError::Config(format!(
                "account {}: the token comes from oauth_token_command; \
                 `oauth login` is for accounts with oauth_provider",
                account.name
            )));
        }
        TokenSource::File(_) => {
            return Err(OAuthError::Config(format!(
                "account {}: the token comes from oauth_token_file; \
                 `oauth login` is for accounts with oauth_provider",
                account.name
            )));
        }
    };
    let store = Store::new(&ctx.store_dir, &account.name);
    // Refuse an unsafe store directory before the person spends time signing in.
    store.check_writable()?;
    let granted = device::authorize(&account.name, &provider, ctx, out)?;
    let stored = granted.into_stored(ctx.clock.now(), None)?;
    let _lock = store.lock()?;
    store.save(&stored)?;
    Ok(store.path().to_path_buf())
}

fn source_of(account: &Account) -> Result<TokenSource, OAuthError> {
    account.oauth.clone().ok_or_else(|| {
        OAuthError::Config(format!(
            "account {}: no OAuth settings (oauth_provider, oauth_token_command or \
             oauth_token_file)",
            account.name
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExitStatus;

    #[test]
    fn errors_map_to_exit_statuses() {
        let cases = [
            (OAuthError::Transient("x".into()), ExitStatus::TempFail),
            (OAuthError::Store("x".into()), ExitStatus::TempFail),
            (OAuthError::NeedsLogin("x".into()), ExitStatus::NoPerm),
            (OAuthError::Denied("x".into()), ExitStatus::NoPerm),
            (OAuthError::Config("x".into()), ExitStatus::Config),
        ];
        for (e, status) in cases {
            let e: crate::Error = e.into();
            assert_eq!(e.exit_status(), status, "{e:?}");
        }
    }

    #[test]
    fn needs_login_names_the_command() {
        let e = OAuthError::needs_login_for("work", "no token is stored");
        assert!(e.needs_login());
        assert!(!e.is_transient());
        assert_eq!(
            e.to_string(),
            "account work: no token is stored; run `smtpsend oauth login work`"
        );
        assert!(OAuthError::Transient("t".into()).is_transient());
        assert!(!OAuthError::Denied("d".into()).needs_login());
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("tok")), "<redacted>");
        let json = serde_json::to_string(&Secret::new("tok")).unwrap();
        assert_eq!(json, "\"tok\"");
    }

    #[test]
    fn manual_clock_moves_only_when_slept_on() {
        let clock = ManualClock::starting_at(Duration::from_secs(100));
        clock.sleep(Duration::from_secs(5));
        assert_eq!(clock.now(), Duration::from_secs(105));
        assert_eq!(clock.sleeps(), [Duration::from_secs(5)]);
    }
}
