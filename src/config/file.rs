//! Finding, opening and vetting the config file.
//!
//! The one failure that must not be a permanent error is a config file this user cannot
//! read: as `/usr/sbin/sendmail` we are often run by a daemon under its own user (cron,
//! a web server), and exiting EX_CONFIG there drops the message, the msmtp-mta trap.
//! EX_TEMPFAIL makes the caller keep it and try again once the permissions are fixed.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::{Config, ConfigKind};
use crate::system::private::{
    Ownership, check_not_writable_by_others, check_private, open_failure,
};
use crate::{Error, Result};

/// The system-wide file, read only when the user has none.
pub const SYSTEM_CONFIG: &str = "/etc/smtpsend.conf";

/// msmtp's system-wide file (Debian's SYSCONFDIR), read when there is no smtpsend config
/// and no msmtp user file.
pub const SYSTEM_MSMTPRC: &str = "/etc/msmtprc";

/// A place a config file may be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Candidate {
    pub path: PathBuf,
    /// Named by the user (`--config`, `$SMTPSEND_CONFIG`): a missing file is an error, not
    /// a reason to fall back to another account somewhere else.
    pub required: bool,
    /// The syntax, when the place says it; `None`: as the file's syntax says.
    pub kind: Option<ConfigKind>,
}

/// msmtp's user files, in msmtp's order (msmtp(1), "CONFIGURATION FILES"):
/// `~/.msmtprc`, then `$XDG_CONFIG_HOME/msmtp/config` (`~/.config/msmtp/config`).
fn msmtp_user_files(env: &dyn Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    let home = env("HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    let mut files = Vec::new();
    if let Some(home) = &home {
        files.push(home.join(".msmtprc"));
    }
    if let Some(dir) = config_home(env) {
        files.push(dir.join("msmtp").join("config"));
    }
    files
}

/// The msmtprc msmtp itself would read as the user file, else the system one; for
/// `smtpsend config import` with no file named. `None` when neither exists.
pub fn msmtprc_path() -> Option<PathBuf> {
    let env = |name: &str| std::env::var_os(name);
    msmtp_user_files(&env)
        .into_iter()
        .chain([PathBuf::from(SYSTEM_MSMTPRC)])
        .find(|p| p.exists())
}

/// `$XDG_CONFIG_HOME`, else `~/.config` (XDG Base Directory: a relative
/// `$XDG_CONFIG_HOME` is invalid and must be ignored).
fn config_home(env: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            env("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|home| home.join(".config"))
        })
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
            kind: None,
        }]
    };
    if let Some(path) = explicit {
        return required(path.to_path_buf());
    }
    if let Some(path) = env("SMTPSEND_CONFIG").filter(|v| !v.is_empty()) {
        return required(PathBuf::from(path));
    }
    let optional = |path: PathBuf, kind: ConfigKind| Candidate {
        path,
        required: false,
        kind: Some(kind),
    };
    let mut found = Vec::new();
    if let Some(dir) = config_home(env) {
        found.push(optional(
            dir.join("smtpsend").join("config.toml"),
            ConfigKind::Toml,
        ));
    }
    found.push(optional(PathBuf::from(SYSTEM_CONFIG), ConfigKind::Toml));
    // With no smtpsend config, msmtp's: most who try smtpsend have a working msmtprc.
    for path in msmtp_user_files(env) {
        found.push(optional(path, ConfigKind::Msmtprc));
    }
    found.push(optional(PathBuf::from(SYSTEM_MSMTPRC), ConfigKind::Msmtprc));
    found
}

/// Loads the first candidate that exists.
pub(super) fn load_first(candidates: &[Candidate], home: Option<&Path>) -> Result<Option<Config>> {
    for candidate in candidates {
        match File::open(&candidate.path) {
            Ok(file) => {
                return read_config(file, &candidate.path, candidate.kind, home).map(Some);
            }
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

fn read_config(
    mut file: File,
    path: &Path,
    kind: Option<ConfigKind>,
    home: Option<&Path>,
) -> Result<Config> {
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
    let kind = kind.unwrap_or_else(|| ConfigKind::detect(&text));
    let config = Config::parse_kind(&text, kind, path, home)?;
    let facts = Ownership::of(&meta);
    if config.holds_password() {
        let what = match kind {
            ConfigKind::Toml => "holds a password or oauth_client_secret",
            ConfigKind::Msmtprc => "holds a password",
        };
        check_private(path, what, facts)?;
    }
    if config.runs_command() {
        check_not_writable_by_others(path, facts)?;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExitStatus;
    use crate::system::private::{current_uid, describe_user};
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
    fn user_file_comes_before_system_file_then_msmtps_files_in_msmtps_order() {
        let env = env_of(&[("HOME", "/home/me")]);
        assert_eq!(
            paths(&search_path(None, &env)),
            [
                (Path::new("/home/me/.config/smtpsend/config.toml"), false),
                (Path::new(SYSTEM_CONFIG), false),
                (Path::new("/home/me/.msmtprc"), false),
                (Path::new("/home/me/.config/msmtp/config"), false),
                (Path::new(SYSTEM_MSMTPRC), false),
            ]
        );
        let kinds: Vec<Option<ConfigKind>> =
            search_path(None, &env).iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [
                Some(ConfigKind::Toml),
                Some(ConfigKind::Toml),
                Some(ConfigKind::Msmtprc),
                Some(ConfigKind::Msmtprc),
                Some(ConfigKind::Msmtprc),
            ]
        );
        let env = env_of(&[("HOME", "/home/me"), ("XDG_CONFIG_HOME", "/cfg")]);
        assert_eq!(
            search_path(None, &env)[3].path,
            Path::new("/cfg/msmtp/config")
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
            [
                (Path::new(SYSTEM_CONFIG), false),
                (Path::new(SYSTEM_MSMTPRC), false)
            ]
        );
    }

    fn candidate(path: &Path, required: bool) -> Candidate {
        Candidate {
            path: path.to_path_buf(),
            required,
            kind: None,
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
            spool_group: false,
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
            spool_group: false,
        };
        assert!(check_not_writable_by_others(&path, theirs).is_err());
    }

    #[test]
    fn an_smtpsend_file_wins_over_an_msmtprc() {
        let dir = tempfile::tempdir().unwrap();
        let toml = write(
            dir.path(),
            "config.toml",
            "host = \"toml.example\"\n",
            0o644,
        );
        let rc = write(dir.path(), "msmtprc", "host msmtp.example\n", 0o644);
        let list = [
            Candidate {
                kind: Some(ConfigKind::Toml),
                ..candidate(&toml, false)
            },
            Candidate {
                kind: Some(ConfigKind::Msmtprc),
                ..candidate(&rc, false)
            },
        ];
        let config = load_first(&list, None).unwrap().unwrap();
        assert_eq!(config.kind(), ConfigKind::Toml);
        fs::remove_file(&toml).unwrap();
        let config = load_first(&list, None).unwrap().unwrap();
        assert_eq!(config.kind(), ConfigKind::Msmtprc);
        assert_eq!(config.origin(), rc);
        let account = config.account(None).unwrap();
        assert_eq!(account.host.as_deref(), Some("msmtp.example"));
        assert_eq!(
            account.port,
            Some(25),
            "msmtp's default port, not smtpsend's"
        );
    }

    #[test]
    fn a_named_file_is_read_as_its_syntax_says() {
        let dir = tempfile::tempdir().unwrap();
        let rc = write(
            dir.path(),
            "anything.conf",
            "# mine\naccount default\nhost relay.example\n",
            0o600,
        );
        let config = load_first(&[candidate(&rc, true)], None).unwrap().unwrap();
        assert_eq!(config.kind(), ConfigKind::Msmtprc);
        let toml = write(
            dir.path(),
            "c.toml",
            "# mine\nhost = \"relay.example\"\n",
            0o600,
        );
        let config = load_first(&[candidate(&toml, true)], None)
            .unwrap()
            .unwrap();
        assert_eq!(config.kind(), ConfigKind::Toml);
    }

    #[test]
    fn an_msmtprc_with_a_password_must_be_private_and_with_passwordeval_not_writable() {
        let dir = tempfile::tempdir().unwrap();
        let text = "account default\nhost h\ntls on\nauth on\nuser u\npassword hunter2\n";
        let path = write(dir.path(), "msmtprc", text, 0o644);
        let err = load_first(&[candidate(&path, true)], None).unwrap_err();
        assert!(err.to_string().contains("holds a password"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let text = "host h\ntls on\nauth on\nuser u\npasswordeval pass show mail\n";
        let path = write(dir.path(), "msmtprc", text, 0o664);
        let err = load_first(&[candidate(&path, true)], None).unwrap_err();
        assert!(err.to_string().contains("writable by others"), "{err}");
        let path = write(dir.path(), "msmtprc", text, 0o644);
        assert!(load_first(&[candidate(&path, true)], None).is_ok());
    }

    #[test]
    fn user_is_described_by_name_when_known() {
        assert_eq!(describe_user(0), "user root (uid 0)");
        assert_eq!(describe_user(4_000_000_000), "uid 4000000000");
    }
}
