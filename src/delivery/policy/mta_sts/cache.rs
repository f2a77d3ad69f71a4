//! The policy cache (RFC 8461 §3.3, §5.1): one private JSON file per domain,
//! `DIR/DOMAIN.json`, in a directory only its owner can enter.
//!
//! The file keeps the policy as fetched (parsed again on use), the TXT record's id it was
//! fetched under, and when it was fetched and expires. It is replaced atomically
//! (temporary file, fsync, rename, fsync of the directory), so a crash or a second
//! smtpsend never leaves half a policy; the last writer wins. A file another user could
//! have written is not trusted: a planted `enforce` policy naming foreign hosts would
//! hold mail back, a planted `none` would switch MTA-STS off.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::system::private::replace_private;

/// A cache file is a policy of at most 64 KiB and a few fields; anything bigger is not
/// ours.
const MAX_FILE: u64 = 256 * 1024;

/// One cached policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The `id` of the `_mta-sts` TXT record when the policy was fetched.
    pub id: String,
    /// Seconds since the Unix epoch.
    pub fetched_at: u64,
    /// `fetched_at + max_age`: after this the policy is dropped (§3.2).
    pub expires_at: u64,
    /// The policy file as served.
    pub policy: String,
}

impl Entry {
    /// Still usable at `now` (seconds since the epoch).
    pub fn is_valid_at(&self, now: u64) -> bool {
        now < self.expires_at
    }

    /// Past the middle of its life at `now`: time to fetch it again before it expires, so
    /// that an attacker who blocks fetches only around the expiry cannot make it lapse
    /// (§3.3, §10.2 "proactively refresh").
    pub fn wants_refresh_at(&self, now: u64) -> bool {
        let half = self.expires_at.saturating_sub(self.fetched_at) / 2;
        now >= self.fetched_at.saturating_add(half)
    }
}

/// Why the cache could not be read or written. Never fatal: without a cache, MTA-STS is
/// only less sticky.
#[derive(Debug)]
pub struct CacheError {
    pub path: PathBuf,
    pub detail: String,
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MTA-STS cache {}: {}", self.path.display(), self.detail)
    }
}

impl std::error::Error for CacheError {}

/// The cache directory, e.g. `$XDG_STATE_HOME/smtpsend/mta-sts`. Created (0700) on the
/// first write.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file for `domain` (lower-case A-labels, as [`crate::delivery::resolve::ascii_domain`]
    /// gives); `None` for anything that is not a plain domain name, which then has no
    /// cache rather than a path of its choosing.
    pub fn path(&self, domain: &str) -> Option<PathBuf> {
        let plain = !domain.is_empty()
            && domain.len() <= 253
            && !domain.starts_with('.')
            && !domain.contains("..")
            && domain
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.'));
        plain.then(|| self.dir.join(format!("{domain}.json")))
    }

    /// The cached entry for `domain`, expired or not; `None` when there is none.
    pub fn load(&self, domain: &str) -> Result<Option<Entry>, CacheError> {
        let Some(path) = self.path(domain) else {
            return Ok(None);
        };
        let fail = |detail: String| CacheError {
            path: path.clone(),
            detail,
        };
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fail(format!("cannot be read: {e}"))),
        };
        let meta = file
            .metadata()
            .map_err(|e| fail(format!("cannot be read: {e}")))?;
        if !meta.is_file() {
            return Err(fail("not a regular file".into()));
        }
        if let Some(why) = untrusted(&meta) {
            return Err(fail(why));
        }
        let mut bytes = Vec::new();
        Read::by_ref(&mut file)
            .take(MAX_FILE)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("cannot be read: {e}")))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| fail(format!("not a cached policy ({e})")))
    }

    /// Replaces the entry for `domain` atomically: a reader sees the old file or the new.
    pub fn store(&self, domain: &str, entry: &Entry) -> Result<(), CacheError> {
        let Some(path) = self.path(domain) else {
            return Ok(());
        };
        let fail = |detail: String| CacheError {
            path: path.clone(),
            detail,
        };
        self.prepare_dir().map_err(|detail| CacheError {
            path: self.dir.clone(),
            detail,
        })?;
        let json = serde_json::to_vec_pretty(entry).map_err(|e| fail(e.to_string()))?;
        replace_private(&path, &json).map_err(|e| fail(format!("cannot be written: {e}")))
    }

    /// Drops the entry for `domain`, if any.
    pub fn remove(&self, domain: &str) -> Result<(), CacheError> {
        let Some(path) = self.path(domain) else {
            return Ok(());
        };
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CacheError {
                path,
                detail: format!("cannot be removed: {e}"),
            }),
        }
    }

    /// Creates the directory (0700) if need be; one that belongs to someone else is
    /// refused, one of ours that others may enter is tightened (it may predate smtpsend).
    fn prepare_dir(&self) -> Result<(), String> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| format!("cannot be created: {e}"))?;
        let meta = fs::symlink_metadata(&self.dir).map_err(|e| e.to_string())?;
        if !meta.is_dir() {
            return Err("not a directory".into());
        }
        let me = euid();
        if meta.uid() != me {
            return Err(format!("belongs to uid {}, not to uid {me}", meta.uid()));
        }
        if meta.mode() & 0o077 != 0 {
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot be made private: {e}"))?;
        }
        Ok(())
    }
}

/// Why a cache file cannot be trusted: someone else's, or writable by others.
fn untrusted(meta: &fs::Metadata) -> Option<String> {
    let me = euid();
    if meta.uid() != me {
        return Some(format!("belongs to uid {}, not to uid {me}", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "is writable by others (mode {:04o})",
            meta.mode() & 0o7777
        ));
    }
    None
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> Entry {
        Entry {
            id: id.into(),
            fetched_at: 1000,
            expires_at: 2000,
            policy: "version: STSv1\nmode: none\nmax_age: 1000\n".into(),
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn stored_entry_loads_back_from_private_files() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::new(tmp.path().join("state/mta-sts"));
        assert_eq!(cache.load("example.org").unwrap(), None);
        cache.store("example.org", &entry("one")).unwrap();
        assert_eq!(cache.load("example.org").unwrap(), Some(entry("one")));
        let file = cache.path("example.org").unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(cache.dir()), 0o700);
        cache.store("example.org", &entry("two")).unwrap();
        assert_eq!(cache.load("example.org").unwrap(), Some(entry("two")));
        let names: Vec<_> = fs::read_dir(cache.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["example.org.json"], "no temporary file left");
        cache.remove("example.org").unwrap();
        assert_eq!(cache.load("example.org").unwrap(), None);
        cache.remove("example.org").unwrap();
    }

    #[test]
    fn an_open_directory_of_ours_is_made_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mta-sts");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        Cache::new(&dir).store("a.test", &entry("x")).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn names_that_are_not_plain_domains_have_no_file() {
        let cache = Cache::new("/nonexistent");
        for bad in [
            "",
            "../etc",
            "a/b",
            ".hidden",
            "a..b",
            "UPPER.test",
            "sp ace",
        ] {
            assert_eq!(cache.path(bad), None, "{bad:?}");
            assert_eq!(cache.load(bad).unwrap(), None);
            cache.store(bad, &entry("x")).unwrap();
        }
        assert!(cache.path("_x.xn--bcher-kva.example").is_some());
    }

    #[test]
    fn a_file_others_may_write_is_not_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::new(tmp.path());
        cache.store("a.test", &entry("x")).unwrap();
        let file = cache.path("a.test").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
        let err = cache.load("a.test").unwrap_err();
        assert!(err.detail.contains("writable by others"), "{err}");
    }

    #[test]
    fn a_link_or_garbage_is_an_error_not_a_policy() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::new(tmp.path());
        let target = tmp.path().join("elsewhere.json");
        fs::write(&target, serde_json::to_vec(&entry("x")).unwrap()).unwrap();
        std::os::unix::fs::symlink(&target, cache.path("link.test").unwrap()).unwrap();
        assert!(cache.load("link.test").is_err());
        fs::write(cache.path("junk.test").unwrap(), b"{\"id\": 1}").unwrap();
        let err = cache.load("junk.test").unwrap_err();
        assert!(err.to_string().contains("not a cached policy"), "{err}");
    }

    #[test]
    fn validity_ends_at_expiry() {
        let e = entry("x");
        assert!(e.is_valid_at(1999));
        assert!(!e.is_valid_at(2000));
    }

    #[test]
    fn refresh_is_wanted_from_half_life() {
        let e = entry("x");
        assert!(!e.wants_refresh_at(1000));
        assert!(!e.wants_refresh_at(1499));
        assert!(e.wants_refresh_at(1500));
    }
}
