//! The few file-system operations the spool is built from, each refusing to follow a
//! symbolic link, and the mapping from their failures to the crate's errors.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::Error;

/// What was being done when a file operation failed: it decides the exit status.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Creating or renaming into place (EX_CANTCREAT).
    Create,
    /// Writing, syncing, reading or deleting (EX_IOERR).
    Write,
}

/// A full disk or an exhausted quota is temporary: the caller (cron, a mail client) must
/// keep the message and try again, which EX_TEMPFAIL asks for.
pub(super) fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

pub(super) fn spool_error(step: Step, path: &Path, e: &io::Error) -> Error {
    let shown = path.display();
    if is_full(e) {
        return Error::TempFail(format!(
            "spool full: {shown}: {}",
            crate::os_error::describe(e)
        ));
    }
    let source = crate::os_error::owned(e);
    match step {
        Step::Create => Error::cant_create(format!("{shown}: cannot create"), source),
        Step::Write => Error::io(shown.to_string(), source),
    }
}

pub(super) fn is_symlink_refusal(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// A new file with `mode` (0600, or 0660 in a shared spool, whatever the umask): O_EXCL
/// so nothing already there (a planted link, a file of another writer) is ever reused,
/// O_NOFOLLOW for the same reason.
pub(super) fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    if mode & 0o070 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    Ok(file)
}

/// Creates `path` with `bytes` and `mode`, synced to disk.
pub(super) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> crate::Result<()> {
    let mut file = create_new(path, mode).map_err(|e| spool_error(Step::Create, path, &e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| spool_error(Step::Write, path, &e))
}

/// Why an existing file could not be opened.
#[derive(Debug)]
pub(super) enum OpenError {
    Missing,
    /// A symbolic link: refused, not followed.
    Symlink,
    /// A directory, FIFO, device or socket where a file should be.
    NotRegular,
    Other(io::Error),
}

/// Opens an existing regular file for reading without following a link. O_NONBLOCK keeps
/// a planted FIFO from hanging us; it changes nothing for a regular file.
pub(super) fn open_regular(path: &Path) -> Result<(File, Metadata), OpenError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                OpenError::Missing
            } else if is_symlink_refusal(&e) {
                OpenError::Symlink
            } else {
                OpenError::Other(e)
            }
        })?;
    let meta = file.metadata().map_err(OpenError::Other)?;
    if !meta.is_file() {
        return Err(OpenError::NotRegular);
    }
    Ok((file, meta))
}

/// Reads at most `limit` bytes of `file` as text; `None` when it is longer.
pub(super) fn read_limited(file: File, limit: u64) -> io::Result<Option<String>> {
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text)?;
    Ok((text.len() as u64 <= limit).then_some(text))
}

/// Makes renames and unlinks in `dir` durable: without it a crash can undo a rename the
/// file's own fsync did not cover.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    let file = File::open(dir)?;
    match file.sync_all() {
        // Some file systems cannot sync a directory; their renames are as durable as
        // they get.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other,
    }
}

/// Why a directory is not safe to keep mail in, or `None` when it is: a directory, not a
/// link, owned by us or root and writable by nobody else. Another user who can write
/// there could swap an entry and make us send their mail with our credentials.
pub(super) fn unsafe_dir(meta: &Metadata, euid: u32) -> Option<String> {
    if meta.file_type().is_symlink() {
        return Some("is a symbolic link".into());
    }
    if !meta.is_dir() {
        return Some("is not a directory".into());
    }
    if is_shared(meta, egid()) || (euid == 0 && is_shared(meta, meta.gid())) {
        // Root may look after a shared spool whatever its group.
        return None;
    }
    if meta.uid() != euid && meta.uid() != 0 {
        return Some(format!(
            "belongs to uid {}, not to uid {euid} or root",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Some(format!(
            "is writable by group or others (mode {mode:04o}); run chmod go-w on it"
        ));
    }
    None
}

/// A shared spool (the maildrop every local user submits into through `smtpsend-drop`):
/// a directory of root's, set-group-ID to the spool group `egid` (never root's group),
/// writable by that group and closed to others (2770). Only root can have made it so;
/// only the group may write there.
pub(super) fn is_shared(meta: &Metadata, egid: u32) -> bool {
    let mode = meta.mode() & 0o7777;
    meta.is_dir()
        && meta.uid() == 0
        && egid != 0
        && meta.gid() == egid
        && mode & 0o2070 == 0o2070
        && mode & 0o007 == 0
}

pub(super) fn egid() -> u32 {
    rustix::process::getegid().as_raw()
}

pub(super) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether the effective ids may create files in `dir` (`access(2)` checks the real
/// ones, which differ in a set-id program).
pub(super) fn can_write_dir(dir: &Path) -> bool {
    use rustix::fs::{Access, AtFlags};
    rustix::fs::accessat(
        rustix::fs::CWD,
        dir,
        Access::WRITE_OK | Access::EXEC_OK,
        AtFlags::EACCESS,
    )
    .is_ok()
}

/// Whether process `pid` exists (EPERM means it does, as someone else).
pub(super) fn pid_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // kill(pid, 0): nothing is sent, only whether the process exists is checked.
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// `flock(LOCK_EX|LOCK_NB)`: `Ok(false)` when another open file holds it. The lock goes
/// with the open file, so it is released when the file is closed, also by a crash.
pub(super) fn try_flock(file: &File) -> io::Result<bool> {
    use rustix::fs::FlockOperation;
    use rustix::io::Errno;
    loop {
        match rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(true),
            Err(Errno::INTR) => continue,
            Err(e) if e == Errno::WOULDBLOCK || e == Errno::AGAIN => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExitStatus;
    use std::os::unix::fs::PermissionsExt;

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn a_full_disk_is_a_temporary_failure_at_any_step() {
        for code in [libc::ENOSPC, libc::EDQUOT] {
            for step in [Step::Create, Step::Write] {
                let err = spool_error(step, Path::new("/spool/x.data"), &os(code));
                assert_eq!(err.exit_status(), ExitStatus::TempFail);
                let text = err.to_string();
                assert!(text.starts_with("spool full: /spool/x.data: "), "{text}");
                assert!(!text.contains("os error"), "{text}");
            }
        }
    }

    #[test]
    fn other_failures_are_cantcreat_or_ioerr_by_step() {
        let create = spool_error(Step::Create, Path::new("/s/x"), &os(libc::EACCES));
        assert_eq!(create.exit_status(), ExitStatus::CantCreat);
        assert_eq!(create.to_string(), "/s/x: cannot create: Permission denied");
        let write = spool_error(Step::Write, Path::new("/s/x"), &os(libc::EIO));
        assert_eq!(write.exit_status(), ExitStatus::IoErr);
    }

    #[test]
    fn create_new_refuses_an_existing_name_and_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(create_new(&link, 0o600).is_err());
        assert!(create_new(&target, 0o600).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let fresh = dir.path().join("fresh");
        drop(create_new(&fresh, 0o600).unwrap());
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn open_regular_refuses_links_and_fifos() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(open_regular(&link), Err(OpenError::Symlink)));
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(open_regular(&fifo), Err(OpenError::NotRegular)));
        assert!(matches!(
            open_regular(dir.path()),
            Err(OpenError::NotRegular)
        ));
        let missing = dir.path().join("missing");
        assert!(matches!(open_regular(&missing), Err(OpenError::Missing)));
        assert!(open_regular(&target).is_ok());
    }

    #[test]
    fn read_limited_stops_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "12345").unwrap();
        let read = |limit| read_limited(File::open(&path).unwrap(), limit).unwrap();
        assert_eq!(read(5).as_deref(), Some("12345"));
        assert_eq!(read(4), None);
    }

    #[test]
    fn group_writable_linked_or_foreign_dirs_are_unsafe() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir(&spool).unwrap();
        let set =
            |mode| std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(mode)).unwrap();
        let check = |euid| unsafe_dir(&std::fs::symlink_metadata(&spool).unwrap(), euid);
        let me = euid();
        set(0o700);
        assert_eq!(check(me), None);
        set(0o770);
        assert!(check(me).unwrap().contains("mode 0770"));
        set(0o702);
        assert!(check(me).is_some());
        set(0o755);
        assert_eq!(check(me), None);
        if me != 0 {
            // A directory of ours seen by someone else.
            assert!(check(me + 1).unwrap().contains("belongs to uid"));
        }
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&spool, &link).unwrap();
        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert_eq!(unsafe_dir(&meta, me).as_deref(), Some("is a symbolic link"));
    }

    #[test]
    fn our_own_pid_is_alive_and_an_impossible_one_is_not() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
        assert!(!pid_alive(0x7fff_fff0));
    }
}
