//! The token store: one private JSON file per account,
//! `$XDG_DATA_HOME/smtpsend/oauth/ACCOUNT.json`, in a directory only its owner can enter.
//!
//! A refresh token is as good as the account's password for sending mail, so the file is
//! written like one: created 0600, replaced atomically (temporary file, fsync, rename,
//! fsync of the directory) so a crash never leaves half a token, and refused on reading
//! when group or others could read it. A lock file serialises refreshes, so two sends at
//! once do not both spend a rotating refresh token.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{OAuthError, Secret};
use crate::system::private::{Ownership, check_private, replace_private};

/// A store file is small; anything bigger is not ours.
const MAX_STORE: u64 = 256 * 1024;

/// What is kept for an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredToken {
    pub access_token: Secret,
    /// When the access token expires, in seconds since the Unix epoch.
    pub expires_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret>,
    /// The scope granted, when the provider said (RFC 6749 §5.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl StoredToken {
    /// True when the access token is expired at `now` or will be within `margin`.
    pub fn expires_within(&self, now: Duration, margin: Duration) -> bool {
        self.expires_at <= (now + margin).as_secs()
    }
}

/// `$XDG_DATA_HOME/smtpsend/oauth`, else `$HOME/.local/share/smtpsend/oauth`; relative
/// values are ignored, as the XDG Base Directory spec says.
pub fn default_dir(env: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let absolute = |name: &str| env(name).map(PathBuf::from).filter(|p| p.is_absolute());
    absolute("XDG_DATA_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".local").join("share")))
        .map(|data| data.join("smtpsend").join("oauth"))
}

/// The store of one account.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
    path: PathBuf,
}

impl Store {
    pub fn new(dir: &Path, account: &str) -> Store {
        Store {
            dir: dir.to_path_buf(),
            path: dir.join(format!("{}.json", file_stem(account))),
        }
    }

    /// The JSON file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored tokens; `None` when nothing was ever stored. A file others can read
    /// is refused, since its tokens must be presumed stolen.
    pub fn load(&self) -> Result<Option<StoredToken>, OAuthError> {
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io_failure("cannot be read", &e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| self.io_failure("cannot be read", &e))?;
        if !meta.is_file() {
            return Err(OAuthError::Config(format!(
                "{}: the OAuth token store is not a regular file",
                self.path.display()
            )));
        }
        check_private(&self.path, "holds OAuth tokens", Ownership::of(&meta))
            .map_err(|e| OAuthError::Config(e.to_string()))?;
        let mut bytes = Vec::new();
        Read::by_ref(&mut file)
            .take(MAX_STORE)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io_failure("cannot be read", &e))?;
        // serde_json's messages may quote a value, which may be a token: only the place.
        let token = serde_json::from_slice(&bytes).map_err(|e| {
            OAuthError::Config(format!(
                "{}: not an OAuth token store (line {}, column {}); remove it and log in again",
                self.path.display(),
                e.line(),
                e.column()
            ))
        })?;
        Ok(Some(token))
    }

    /// Creates the directory (0700) if need be and refuses one others may enter or that
    /// belongs to someone else; called before a login so nobody signs in for nothing.
    pub fn check_writable(&self) -> Result<(), OAuthError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| self.dir_failure(&e))?;
        let meta = fs::symlink_metadata(&self.dir).map_err(|e| self.dir_failure(&e))?;
        let facts = Ownership::of(&meta);
        if !meta.is_dir() {
            return Err(OAuthError::Config(format!(
                "{}: not a directory",
                self.dir.display()
            )));
        }
        if facts.owner != facts.me {
            return Err(OAuthError::Config(format!(
                "{}: the OAuth token directory belongs to uid {}, not to uid {}",
                self.dir.display(),
                facts.owner,
                facts.me
            )));
        }
        if facts.mode & 0o077 != 0 {
            // Ours, so tighten it rather than fail: it may predate smtpsend.
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| self.dir_failure(&e))?;
        }
        Ok(())
    }

    /// Replaces the stored tokens atomically: a reader sees the old file or the new one.
    pub fn save(&self, token: &StoredToken) -> Result<(), OAuthError> {
        self.check_writable()?;
        let json = serde_json::to_vec_pretty(token)
            .map_err(|e| OAuthError::Store(format!("{}: {e}", self.path.display())))?;
        replace_private(&self.path, &json).map_err(|e| self.io_failure("cannot be written", &e))
    }

    /// Holds an exclusive lock on `ACCOUNT.lock` until the guard is dropped. Whoever
    /// holds it is inside an HTTP request with a deadline, so the wait is bounded.
    pub fn lock(&self) -> Result<StoreLock, OAuthError> {
        self.check_writable()?;
        let path = self.path.with_extension("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| self.io_failure("cannot be locked", &e))?;
        loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) {
                Ok(()) => return Ok(StoreLock { _file: file }),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(self.io_failure("cannot be locked", &e.into())),
            }
        }
    }

    fn io_failure(&self, what: &str, e: &io::Error) -> OAuthError {
        let shown = self.path.display();
        match e.kind() {
            io::ErrorKind::PermissionDenied => OAuthError::Config(format!(
                "{shown}: the OAuth token store {what}: permission denied"
            )),
            _ if e.raw_os_error() == Some(libc::ELOOP) => OAuthError::Config(format!(
                "{shown}: the OAuth token store is a symbolic link, which is refused"
            )),
            _ => OAuthError::Store(format!("{shown}: the OAuth token store {what}: {e}")),
        }
    }

    fn dir_failure(&self, e: &io::Error) -> OAuthError {
        let shown = self.dir.display();
        match e.kind() {
            io::ErrorKind::PermissionDenied => OAuthError::Config(format!(
                "{shown}: cannot create the OAuth token directory: permission denied"
            )),
            _ => OAuthError::Store(format!(
                "{shown}: cannot create the OAuth token directory: {e}"
            )),
        }
    }
}

/// Released when dropped (the descriptor is closed).
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// An account name as a file name: it comes from a TOML key and may hold anything, so
/// every byte outside `[A-Za-z0-9_-]` (and `.` after the first) is `%XX`-escaped.
/// "work" stays "work"; "../x" cannot leave the directory.
fn file_stem(account: &str) -> String {
    let mut out = String::with_capacity(account.len());
    for (i, b) in account.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The mode of a file, for tests and diagnostics.
pub fn mode_of(path: &Path) -> io::Result<u32> {
    Ok(fs::metadata(path)?.mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::FlockOperation;
    use std::io::Write;

    fn token(refresh: Option<&str>) -> StoredToken {
        StoredToken {
            access_token: Secret::new("at-1"),
            expires_at: 1_000,
            refresh_token: refresh.map(Secret::new),
            scope: Some("s".into()),
        }
    }

    #[test]
    fn account_names_cannot_escape_the_directory() {
        assert_eq!(file_stem("work"), "work");
        assert_eq!(file_stem("me.example_2-x"), "me.example_2-x");
        assert_eq!(file_stem("../x"), "%2E.%2Fx");
        assert_eq!(file_stem(".hidden"), "%2Ehidden");
        assert_eq!(file_stem("a b/ü"), "a%20b%2F%C3%BC");
    }

    #[test]
    fn default_dir_follows_xdg() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert_eq!(
            default_dir(&env(&[("XDG_DATA_HOME", "/d"), ("HOME", "/h")])),
            Some(PathBuf::from("/d/smtpsend/oauth"))
        );
        assert_eq!(
            default_dir(&env(&[("XDG_DATA_HOME", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.local/share/smtpsend/oauth"))
        );
        assert_eq!(default_dir(&env(&[])), None);
    }

    #[test]
    fn saved_store_is_private_and_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data/smtpsend/oauth");
        let store = Store::new(&dir, "work");
        assert_eq!(store.load().unwrap(), None);
        store.save(&token(Some("rt-1"))).unwrap();
        assert_eq!(mode_of(store.path()).unwrap(), 0o600);
        assert_eq!(mode_of(&dir).unwrap(), 0o700);
        assert_eq!(store.load().unwrap(), Some(token(Some("rt-1"))));
        store.save(&token(None)).unwrap();
        assert_eq!(store.load().unwrap(), Some(token(None)));
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn group_readable_store_is_refused_without_showing_tokens() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path(), "work");
        store.save(&token(Some("rt-secret"))).unwrap();
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o640)).unwrap();
        let err = store.load().unwrap_err();
        assert!(matches!(err, OAuthError::Config(_)), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("readable by others"), "{msg}");
        assert!(!msg.contains("rt-secret"), "{msg}");
    }

    #[test]
    fn loose_directory_is_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("oauth");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        Store::new(&dir, "a").save(&token(None)).unwrap();
        assert_eq!(mode_of(&dir).unwrap(), 0o700);
    }

    #[test]
    fn corrupt_store_is_a_config_error_that_quotes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path(), "work");
        let path = store.path().to_path_buf();
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"access_token\": \"leaky\", ").unwrap();
        let err = store.load().unwrap_err();
        assert!(
            err.to_string().contains("not an OAuth token store"),
            "{err}"
        );
        assert!(!err.to_string().contains("leaky"), "{err}");
    }

    #[test]
    fn symlinked_store_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path(), "work");
        std::os::unix::fs::symlink("/etc/passwd", store.path()).unwrap();
        let err = store.load().unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[test]
    fn expiry_margin() {
        let t = token(None);
        let s = Duration::from_secs;
        assert!(!t.expires_within(s(900), s(60)));
        assert!(t.expires_within(s(940), s(60)));
        assert!(t.expires_within(s(2000), s(60)));
    }

    #[test]
    fn lock_is_exclusive_and_released_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path(), "work");
        let guard = store.lock().unwrap();
        let lock_path = store.path().with_extension("lock");
        let other = File::open(&lock_path).unwrap();
        let try_lock = || rustix::fs::flock(&other, FlockOperation::NonBlockingLockExclusive);
        assert_eq!(try_lock(), Err(rustix::io::Errno::WOULDBLOCK));
        drop(guard);
        assert_eq!(try_lock(), Ok(()));
    }
}
