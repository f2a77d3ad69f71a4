//! Finding, opening and vetting the config file.
//!
//! The one failure that must not be a permanent error is a config file this user cannot
//! read: as `/usr/sbin/sendmail` we are often run by a daemon under its own user (cron,
//! a web server), and exiting EX_CONFIG there drops the message, the msmtp-mta trap.
//! EX_TEMPFAIL makes the caller keep it and try again once the permissions are fixed.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::Config;
use crate::{Error, Result};

/// The system-wide file, read only when the user has none.
pub const SYSTEM_CONFIG: &str = "/etc/smtpsend.conf";

/// A place a config file may be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Candidate {
    pub path: PathBuf,
    /// Named by the user (`--config`, `$SMTPSEND_CONFIG`): a missing file is an error, not
    /// a reason to fall back to another account somewhere else.
    pub required: bool,
}

/// The files to try, first match wins; the environment is passed in so tests need not
/// change the process's own.
pub(super) fn search_path(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Vec<Candidate> {
    let required = |path: PathBuf| {
        vec![Candidate {
            path,
            required: true,
        }]
    };
    if let Some(path) = explicit {
        return required(path.to_path_buf());
    }
    if let Some(path) = env("SMTPSEND_CONFIG").filter(|v| !v.is_empty()) {
        return required(PathBuf::from(path));
    }
    let mut found = Vec::new();
    // XDG Base Directory: a relative $XDG_CONFIG_HOME is invalid and must be ignored.
    let config_home = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            env("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|home| home.join(".config"))
        });
    if let Some(dir) = config_home {
        found.push(Candidate {
            path: dir.join("smtpsend").join("config.toml"),
            required: false,
        });
    }
    found.push(Candidate {
        path: PathBuf::from(SYSTEM_CONFIG),
        required: false,
    });
    found
}

/// Loads the first candidate that exists.
pub(super) fn load_first(candidates: &[Candidate], home: Option<&Path>) -> Result<Option<Config>> {
    for candidate in candidates {
        match File::open(&candidate.path) {
            Ok(file) => return read_config(file, &candidate.path, home).map(Some),
            Err(e) if is_absent(&e) && !candidate.required => continue,
            Err(e) => return Err(open_failure(&candidate.path, &e)),
        }
    }
    Ok(None)
}

fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Why a file we need could not be opened, as the error the caller should see.
pub(crate) fn open_failure(path: &Path, e: &io::Error) -> Error {
    let shown = path.display();
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
            Error::Config(format!("{shown}: no such file"))
        }
        io::ErrorKind::PermissionDenied => Error::TempFail(format!(
            "{shown}: cannot be read by {}: {}; the message was not sent, \
             keep it and retry once this user can read the file",
            describe_user(current_uid()),
            io_reason(e)
        )),
        _ => Error::Config(format!("{shown}: {}", io_reason(e))),
    }
}

/// The OS's words without Rust's " (os error 13)" suffix.
fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn read_config(mut file: File, path: &Path, home: Option<&Path>) -> Result<Config> {
    // fstat the open file, so the checks apply to what is read, not to what the path
    // names a moment later.
    let meta = file.metadata().map_err(|e| open_failure(path, &e))?;
    if !meta.is_file() {
        return Err(Error::Config(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|e| {
        if e.kind() == io::ErrorKind::InvalidData {
            Error::Config(format!("{}: not UTF-8 text", path.display()))
        } else {
            open_failure(path, &e)
        }
    })?;
    let config = Config::parse_with_home(&text, path, home)?;
    let facts = Ownership::of(&meta);
    if config.holds_password() {
        check_private(path, "holds a password or oauth_client_secret", facts)?;
    }
    if config.runs_command() {
        check_not_writable_by_others(path, facts)?;
    }
    Ok(config)
}

/// Who may touch a file, and who we are.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ownership {
    pub mode: u32,
    pub owner: u32,
    pub me: u32,
}

impl Ownership {
    pub fn of(meta: &std::fs::Metadata) -> Ownership {
        Ownership {
            mode: meta.mode(),
            owner: meta.uid(),
            me: current_uid(),
        }
    }

    /// Root owns system files; anyone else owning our secrets could read or replace them.
    fn trusted_owner(self) -> bool {
        self.owner == self.me || self.owner == 0
    }
}

/// A file holding a secret must be private (no group or other bits) and belong to this
/// user or root.
pub(crate) fn check_private(path: &Path, what: &str, facts: Ownership) -> Result<()> {
    let shown = path.display();
    if facts.mode & 0o077 != 0 {
        let access = if facts.mode & 0o044 != 0 {
            "readable"
        } else {
            "writable"
        };
        return Err(Error::Config(format!(
            "{shown} {what} and is {access} by others (mode {:04o}); run chmod 600 {shown}",
            facts.mode & 0o7777
        )));
    }
    if !facts.trusted_owner() {
        return Err(Error::Config(format!(
            "{shown} {what} and belongs to {}, not to {} or root",
            describe_user(facts.owner),
            describe_user(facts.me)
        )));
    }
    Ok(())
}

/// `password_command` and `oauth_token_command` run as us, so whoever can edit the file
/// can run anything as us.
pub(super) fn check_not_writable_by_others(path: &Path, facts: Ownership) -> Result<()> {
    let shown = path.display();
    if facts.mode & 0o022 != 0 {
        return Err(Error::Config(format!(
            "{shown} sets a command (password_command, oauth_token_command) and is \
             writable by others (mode {:04o}), \
             who could run any command as you; run chmod go-w {shown}",
            facts.mode & 0o7777
        )));
    }
    if !facts.trusted_owner() {
        return Err(Error::Config(format!(
            "{shown} sets a command (password_command, oauth_token_command) and belongs \
             to {}, not to {} or root",
            describe_user(facts.owner),
            describe_user(facts.me)
        )));
    }
    Ok(())
}

pub(super) fn current_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// "user www-data (uid 33)", or "uid 33" when the user database has no entry.
pub(super) fn describe_user(uid: u32) -> String {
    match crate::identity::passwd(uid).map(|p| p.name) {
        Some(name) => format!("user {name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExitStatus;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    fn paths(candidates: &[Candidate]) -> Vec<(&Path, bool)> {
        candidates
            .iter()
            .map(|c| (c.path.as_path(), c.required))
            .collect()
    }

    #[test]
    fn explicit_path_is_the_only_candidate_and_required() {
        let env = env_of(&[("SMTPSEND_CONFIG", "/x"), ("HOME", "/home/me")]);
        let found = search_path(Some(Path::new("/tmp/c.toml")), &env);
        assert_eq!(paths(&found), [(Path::new("/tmp/c.toml"), true)]);
    }

    #[test]
    fn env_variable_comes_before_user_and_system_files() {
        let env = env_of(&[
            ("SMTPSEND_CONFIG", "/srv/smtpsend.toml"),
            ("HOME", "/home/me"),
        ]);
        assert_eq!(
            paths(&search_path(None, &env)),
            [(Path::new("/srv/smtpsend.toml"), true)]
        );
    }

    #[test]
    fn user_file_comes_before_system_file() {
        let env = env_of(&[("HOME", "/home/me")]);
        assert_eq!(
            paths(&search_path(None, &env)),
            [
                (Path::new("/home/me/.config/smtpsend/config.toml"), false),
                (Path::new(SYSTEM_CONFIG), false),
            ]
        );
        let env = env_of(&[("HOME", "/home/me"), ("XDG_CONFIG_HOME", "/cfg")]);
        assert_eq!(
            search_path(None, &env)[0].path,
            Path::new("/cfg/smtpsend/config.toml")
        );
    }

    #[test]
    fn relative_xdg_config_home_and_missing_home_are_ignored() {
        let env = env_of(&[("XDG_CONFIG_HOME", "cfg"), ("SMTPSEND_CONFIG", "")]);
        assert_eq!(
            paths(&search_path(None, &env)),
            [(Path::new(SYSTEM_CONFIG), false)]
        );
    }

    fn candidate(path: &Path, required: bool) -> Candidate {
        Candidate {
            path: path.to_path_buf(),
            required,
        }
    }

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn first_existing_file_wins_without_merging() {
        let dir = tempfile::tempdir().unwrap();
        let user = write(dir.path(), "user.toml", "host = \"user.example\"\n", 0o644);
        let system = write(dir.path(), "system.toml", "from = \"sys@example\"\n", 0o644);
        let list = [
            candidate(&dir.path().join("missing.toml"), false),
            candidate(&user, false),
            candidate(&system, false),
        ];
        let config = load_first(&list, None).unwrap().unwrap();
        assert_eq!(config.origin(), user);
        let account = config.account(None).unwrap();
        assert_eq!(account.host.as_deref(), Some("user.example"));
        assert_eq!(account.from, None, "the system file is not merged in");
    }

    #[test]
    fn no_file_at_all_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let list = [
            candidate(&dir.path().join("a"), false),
            // A path through a regular file fails with ENOTDIR: still "not there".
            candidate(
                &write(dir.path(), "f", "", 0o600).join("config.toml"),
                false,
            ),
        ];
        assert!(load_first(&list, None).unwrap().is_none());
    }

    #[test]
    fn missing_required_file_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let err = load_first(&[candidate(&missing, true)], None).unwrap_err();
        assert_eq!(err.exit_status(), ExitStatus::Config);
        assert!(err.to_string().contains("no such file"), "{err}");
    }

    #[test]
    fn unreadable_config_is_a_temporary_failure_naming_file_and_user() {
        let path = Path::new(SYSTEM_CONFIG);
        let err = open_failure(path, &io::Error::from_raw_os_error(libc::EACCES));
        assert!(matches!(err, Error::TempFail(_)), "{err:?}");
        assert_eq!(err.exit_status(), ExitStatus::TempFail);
        let msg = err.to_string();
        assert!(msg.starts_with("/etc/smtpsend.conf: "), "{msg}");
        assert!(msg.contains(&format!("uid {}", current_uid())), "{msg}");
        assert!(msg.contains("Permission denied"), "{msg}");
        assert!(msg.contains("not sent"), "{msg}");
        assert!(!msg.contains("os error"), "{msg}");
    }

    #[test]
    fn directory_as_config_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_first(&[candidate(dir.path(), false)], None).unwrap_err();
        assert_eq!(err.exit_status(), ExitStatus::Config);
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    const WITH_PASSWORD: &str = "[accounts.a]\nuser = \"u\"\npassword = \"hunter2\"\n";

    #[test]
    fn config_with_password_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            let path = write(dir.path(), "c.toml", WITH_PASSWORD, mode);
            let err = load_first(&[candidate(&path, true)], None).unwrap_err();
            let msg = err.to_string();
            assert_eq!(err.exit_status(), ExitStatus::Config, "{mode:o}");
            assert!(msg.contains("holds a password"), "{msg}");
            assert!(
                msg.contains(&format!("chmod 600 {}", path.display())),
                "{msg}"
            );
            assert!(!msg.contains("hunter2"), "{msg}");
        }
    }

    #[test]
    fn private_config_with_password_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "c.toml", WITH_PASSWORD, 0o600);
        let config = load_first(&[candidate(&path, true)], None)
            .unwrap()
            .unwrap();
        let account = config.account(None).unwrap();
        assert_eq!(
            account.password.resolve().unwrap().as_deref(),
            Some("hunter2")
        );
    }

    #[test]
    fn config_without_password_may_be_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "c.toml", "host = \"relay\"\n", 0o644);
        assert!(
            load_first(&[candidate(&path, true)], None)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn secret_owned_by_another_user_is_refused() {
        let facts = Ownership {
            mode: 0o100600,
            owner: 1001,
            me: 1000,
        };
        let err = check_private(Path::new("/x"), "holds a password", facts).unwrap_err();
        assert_eq!(err.exit_status(), ExitStatus::Config);
        assert!(err.to_string().contains("uid 1001"), "{err}");
        let root_owned = Ownership { owner: 0, ..facts };
        assert!(check_private(Path::new("/x"), "holds a password", root_owned).is_ok());
        let mine = Ownership {
            owner: 1000,
            ..facts
        };
        assert!(check_private(Path::new("/x"), "holds a password", mine).is_ok());
    }

    #[test]
    fn password_command_in_a_file_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text = "user = \"u\"\npassword_command = \"pass show x\"\n";
        let path = write(dir.path(), "c.toml", text, 0o664);
        let err = load_first(&[candidate(&path, true)], None).unwrap_err();
        assert!(err.to_string().contains("writable by others"), "{err}");
        let path = write(dir.path(), "c.toml", text, 0o644);
        assert!(load_first(&[candidate(&path, true)], None).is_ok());
        let theirs = Ownership {
            mode: 0o100644,
            owner: 1001,
            me: 1000,
        };
        assert!(check_not_writable_by_others(&path, theirs).is_err());
    }

    #[test]
    fn user_is_described_by_name_when_known() {
        assert_eq!(describe_user(0), "user root (uid 0)");
        assert_eq!(describe_user(4_000_000_000), "uid 4000000000");
    }
}
