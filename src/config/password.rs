//! Where an account's password comes from, and fetching it only when AUTH needs it.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use crate::system::private::{Ownership, check_private, open_failure};
use crate::system::secret_command::run_secret_command;
use crate::{Error, Result};

/// The source of an account's password. Resolved late so a command such as
/// `pass show ...` only runs when a session is about to authenticate.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum PasswordSource {
    #[default]
    None,
    /// Written in the config file, which must then be private.
    Inline(String),
    /// The name of an environment variable.
    Env(String),
    /// A shell command whose first line of output is the password.
    Command(String),
    /// A private file whose first line is the password.
    File(PathBuf),
}

impl fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::None => f.write_str("None"),
            PasswordSource::Inline(_) => f.write_str("Inline(<redacted>)"),
            PasswordSource::Env(var) => f.debug_tuple("Env").field(var).finish(),
            PasswordSource::Command(cmd) => f.debug_tuple("Command").field(cmd).finish(),
            PasswordSource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl PasswordSource {
    /// Fetches the password; `None` when the account has no password source.
    pub fn resolve(&self) -> Result<Option<String>> {
        self.resolve_with(&|name| std::env::var_os(name))
    }

    /// [`resolve`](Self::resolve) with the environment passed in, so tests need not
    /// change the process's own.
    pub(super) fn resolve_with(
        &self,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Option<String>> {
        let password = match self {
            PasswordSource::None => return Ok(None),
            PasswordSource::Inline(password) => password.clone(),
            PasswordSource::Env(var) => from_env(var, env)?,
            PasswordSource::Command(command) => from_command(command)?,
            PasswordSource::File(path) => from_file(path)?,
        };
        Ok(Some(password))
    }
}

fn from_env(var: &str, env: &dyn Fn(&str) -> Option<OsString>) -> Result<String> {
    let value = env(var)
        .ok_or_else(|| Error::Config(format!("password_env: ${var} is not set")))?
        .into_string()
        .map_err(|_| Error::Config(format!("password_env: ${var} is not UTF-8")))?;
    if value.is_empty() {
        return Err(Error::Config(format!("password_env: ${var} is empty")));
    }
    Ok(value)
}

/// Runs `sh -c command` with no stdin (it must not eat the message being sent) and
/// stderr shown (gpg and pass explain themselves there). Its output is never echoed.
fn from_command(command: &str) -> Result<String> {
    let output = run_secret_command(command)
        .map_err(|e| Error::Config(format!("password_command `{command}`: cannot run sh: {e}")))?;
    if !output.status.success() {
        return Err(Error::Config(format!(
            "password_command `{command}` failed ({})",
            output.status
        )));
    }
    first_line(output.stdout)
        .map_err(|problem| Error::Config(format!("password_command `{command}`: {problem}")))
}

/// Reads the first line of a file that must be as private as a config holding a password.
fn from_file(path: &std::path::Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| open_failure(path, &e))?;
    let meta = file.metadata().map_err(|e| open_failure(path, &e))?;
    if !meta.is_file() {
        return Err(Error::Config(format!(
            "{}: password_file is not a regular file",
            path.display()
        )));
    }
    check_private(path, "is a password_file", Ownership::of(&meta))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e: io::Error| open_failure(path, &e))?;
    first_line(bytes).map_err(|problem| Error::Config(format!("{}: {problem}", path.display())))
}

/// The first line without its line ending: `pass` and friends put the password there and
/// other fields on the lines below.
fn first_line(mut bytes: Vec<u8>) -> std::result::Result<String, &'static str> {
    if let Some(end) = bytes.iter().position(|&b| b == b'\n') {
        bytes.truncate(end);
    }
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err("empty password");
    }
    String::from_utf8(bytes).map_err(|_| "password is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn env_with(var: &'static str, value: &'static str) -> impl Fn(&str) -> Option<OsString> {
        move |name| (name == var).then(|| OsString::from(value))
    }

    fn is_config(r: Result<Option<String>>) -> String {
        match r {
            Err(Error::Config(msg)) => msg,
            other => panic!("expected Error::Config, got {other:?}"),
        }
    }

    #[test]
    fn inline_debug_is_redacted() {
        let shown = format!("{:?}", PasswordSource::Inline("hunter2".into()));
        assert_eq!(shown, "Inline(<redacted>)");
    }

    #[test]
    fn none_resolves_to_none() {
        assert_eq!(PasswordSource::None.resolve().unwrap(), None);
    }

    #[test]
    fn env_password_is_read() {
        let source = PasswordSource::Env("SMTP_PW".into());
        let got = source.resolve_with(&env_with("SMTP_PW", "s3cret")).unwrap();
        assert_eq!(got.as_deref(), Some("s3cret"));
    }

    #[test]
    fn missing_env_var_is_a_config_error() {
        let source = PasswordSource::Env("SMTP_PW".into());
        let msg = is_config(source.resolve_with(&|_| None));
        assert!(msg.contains("$SMTP_PW is not set"), "{msg}");
    }

    #[test]
    fn empty_env_var_is_a_config_error() {
        let source = PasswordSource::Env("SMTP_PW".into());
        let msg = is_config(source.resolve_with(&env_with("SMTP_PW", "")));
        assert!(msg.contains("empty"), "{msg}");
    }

    #[test]
    fn command_first_line_without_newline() {
        let source = PasswordSource::Command("printf 'pw word\\r\\nuser: me\\n'".into());
        assert_eq!(source.resolve().unwrap().as_deref(), Some("pw word"));
    }

    #[test]
    fn command_without_trailing_newline() {
        let source = PasswordSource::Command("printf abc".into());
        assert_eq!(source.resolve().unwrap().as_deref(), Some("abc"));
    }

    #[test]
    fn command_gets_no_stdin() {
        // With stdin inherited, `cat` would block on the test runner's terminal or pipe.
        let source = PasswordSource::Command("cat; echo fallback".into());
        assert_eq!(source.resolve().unwrap().as_deref(), Some("fallback"));
    }

    #[test]
    fn failing_command_reports_status_not_output() {
        // The output is split in the command text so only running it produces "abcdef".
        let source = PasswordSource::Command("printf abc; printf 'def\\n'; exit 3".into());
        let msg = is_config(source.resolve());
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(!msg.contains("abcdef"), "{msg}");
    }

    #[test]
    fn empty_command_output_is_an_error() {
        let msg = is_config(PasswordSource::Command("true".into()).resolve());
        assert!(msg.contains("empty password"), "{msg}");
        let msg = is_config(PasswordSource::Command("echo".into()).resolve());
        assert!(msg.contains("empty password"), "{msg}");
    }

    fn password_file(mode: u32, contents: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        fs::set_permissions(file.path(), fs::Permissions::from_mode(mode)).unwrap();
        file
    }

    #[test]
    fn private_password_file_is_read() {
        let file = password_file(0o600, "filepw\nsecond line\n");
        let source = PasswordSource::File(file.path().to_path_buf());
        assert_eq!(source.resolve().unwrap().as_deref(), Some("filepw"));
    }

    #[test]
    fn group_readable_password_file_is_refused() {
        let file = password_file(0o640, "filepw\n");
        let source = PasswordSource::File(file.path().to_path_buf());
        let msg = is_config(source.resolve());
        assert!(msg.contains("readable by others"), "{msg}");
        assert!(msg.contains("chmod 600"), "{msg}");
        assert!(!msg.contains("filepw"), "{msg}");
    }

    #[test]
    fn other_writable_password_file_is_refused() {
        let file = password_file(0o602, "filepw\n");
        let msg = is_config(PasswordSource::File(file.path().to_path_buf()).resolve());
        assert!(msg.contains("writable by others"), "{msg}");
    }

    #[test]
    fn missing_password_file_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let source = PasswordSource::File(dir.path().join("nope"));
        let msg = is_config(source.resolve());
        assert!(msg.contains("no such file"), "{msg}");
    }

    #[test]
    fn empty_password_file_is_an_error() {
        let file = password_file(0o600, "\n");
        let msg = is_config(PasswordSource::File(file.path().to_path_buf()).resolve());
        assert!(msg.contains("empty password"), "{msg}");
    }
}
