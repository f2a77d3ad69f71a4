//! Files that hold secrets or name commands: who owns them and who may read or write
//! them, checked before they are trusted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// Who may touch a file, and who we are.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    pub mode: u32,
    pub owner: u32,
    pub me: u32,
    /// Root's file of the group we run set-group-ID with (the runner `smtpsend-drop`
    /// starts): the system config of a shared spool, root:smtpsend 0640.
    pub spool_group: bool,
}

impl Ownership {
    pub fn of(meta: &std::fs::Metadata) -> Ownership {
        let egid = rustix::process::getegid().as_raw();
        Ownership {
            mode: meta.mode(),
            owner: meta.uid(),
            me: current_uid(),
            spool_group: meta.uid() == 0
                && meta.gid() == egid
                && egid != rustix::process::getgid().as_raw(),
        }
    }

    /// Root owns system files; anyone else owning our secrets could read or replace them.
    fn trusted_owner(self) -> bool {
        self.owner == self.me || self.owner == 0
    }
}

/// A file holding a secret must be private (no group or other bits) and belong to this
/// user or root.
pub fn check_private(path: &Path, what: &str, facts: Ownership) -> Result<()> {
    let shown = path.display();
    // The system config of a shared spool may be readable by the spool group (root:smtpsend
    // 0640, as dma's auth.conf is root:mail 0640) for the runner that runs with it.
    let closed = if facts.spool_group { 0o037 } else { 0o077 };
    if facts.mode & closed != 0 {
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
pub fn check_not_writable_by_others(path: &Path, facts: Ownership) -> Result<()> {
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

pub fn current_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// "user www-data (uid 33)", or "uid 33" when the user database has no entry.
pub fn describe_user(uid: u32) -> String {
    match crate::system::identity::passwd(uid).map(|p| p.name) {
        Some(name) => format!("user {name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// Why a file we need could not be opened, as the error the caller should see.
pub fn open_failure(path: &Path, e: &io::Error) -> Error {
    let shown = path.display();
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
            Error::Config(format!("{shown}: no such file"))
        }
        io::ErrorKind::PermissionDenied => Error::TempFail(format!(
            "{shown}: cannot be read by {}: {}; the message was not sent, \
             keep it and retry once this user can read the file",
            describe_user(current_uid()),
            crate::os_error::describe(e)
        )),
        _ => Error::Config(format!("{shown}: {}", crate::os_error::describe(e))),
    }
}

/// No core file from this process or the commands it starts: its memory holds passwords,
/// tokens and messages, and a crash (a panic aborts the release build) must not write them
/// to disk, as sudo makes sure too. Only the soft limit is lowered.
pub fn no_core_dumps() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Core);
    // A limit that cannot be lowered leaves nothing worse than before.
    let _ = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: limit.maximum,
        },
    );
}

/// Replace `path` with `bytes` and a final newline, atomically and durably: written to a
/// 0600 file beside it (never through a symbolic link), synced, renamed over it, and the
/// directory synced, so a reader sees the old file or the whole new one, after a crash too.
/// The temporary file is removed again when anything fails.
pub fn replace_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // This process and a counter within it: no other writer uses the name.
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let temp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&temp);
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn replace_private_swaps_the_whole_file_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        replace_private(&path, b"{\"n\": 1}").unwrap();
        replace_private(&path, b"{\"n\": 2}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"n\": 2}\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"], "no temporary file is left");
    }

    #[test]
    fn replace_private_fails_whole_in_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone").join("state.json");
        assert!(replace_private(&path, b"x").is_err());
        assert!(!path.exists());
    }
}
