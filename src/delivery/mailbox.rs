//! Local delivery: appending a message to `/var/mail/USER` in mbox format, so that mail to
//! a bare local name (cron's `root`, `$USER`) lands somewhere useful on a machine with no
//! configuration at all, as dma and the other small MTAs do.
//!
//! The format is the one Debian's mail tools read and write (mutt, mailx, procmail): mboxrd,
//! a `From ` line before each message and `^>*From ` lines quoted with one more `>`.
//! Locking is both a dot-lock (`USER.lock`, for tools that only know that) and an fcntl
//! lock on the mailbox (for tools that only know that, and as the real guard when a stale
//! dot-lock is broken by two processes at once).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::message::address::is_null_sender;
use crate::{Error, Result};

/// The system mail spool.
pub const SPOOL_DIR: &str = "/var/mail";

/// The longest user name we deliver to; useradd's default limit.
const MAX_NAME: usize = 32;

/// How much of the message is read at a time; memory use does not depend on its size.
const CHUNK: usize = 64 * 1024;

/// `From ` at the start of a line would start a new message in an mbox.
const FROM: &[u8; 5] = b"From ";

/// A user's mailbox file, checked and ready for [`deliver`].
#[derive(Clone, Debug)]
pub struct Mailbox {
    path: PathBuf,
    user: String,
    /// Owner and group for a mailbox we create as root; `None` when the name is not a user
    /// of this machine (a spool directory other than the system's).
    owner: Option<(libc::uid_t, libc::gid_t)>,
}

impl Mailbox {
    /// The mailbox file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The user whose mailbox it is.
    pub fn user(&self) -> &str {
        &self.user
    }
}

/// The mailbox of `user` in `spool_dir` (normally [`SPOOL_DIR`]).
///
/// The name is checked before it becomes part of a path: `[a-z0-9._-]`, at most 32
/// characters, not starting with a dot, so no name can reach outside the spool directory
/// or onto a lock file. In the system spool the name must be a user of this machine, as
/// only then does someone read the mailbox; in any other directory (tests, a private
/// spool) an unknown name is accepted and the file belongs to whoever delivers.
///
/// An unknown user is [`Error::Unavailable`] (EX_UNAVAILABLE, permanent): the crate's
/// error type has no variant for EX_NOUSER outside an SMTP reply.
pub fn mailbox_for(user: &str, spool_dir: &Path) -> Result<Mailbox> {
    validate_name(user)?;
    let owner = match lookup_user(user)? {
        Some((uid, gid)) => Some((uid, mail_group().unwrap_or(gid))),
        None if spool_dir == Path::new(SPOOL_DIR) => {
            return Err(Error::Unavailable(format!(
                "{user}: no such local user, cannot deliver to {}",
                spool_dir.join(user).display()
            )));
        }
        None => None,
    };
    Ok(Mailbox {
        path: spool_dir.join(user),
        user: user.to_string(),
        owner,
    })
}

fn validate_name(user: &str) -> Result<()> {
    let problem = if user.is_empty() {
        "an empty name".to_string()
    } else if user.len() > MAX_NAME {
        format!("longer than {MAX_NAME} characters")
    } else if user.starts_with('.') {
        "starts with a dot".to_string()
    } else if let Some(c) = user
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-'))
    {
        format!("{c:?} is not allowed (only a-z, 0-9, '.', '_', '-')")
    } else {
        return Ok(());
    };
    Err(Error::Data(format!(
        "\"{}\" cannot be a local mailbox: {problem}",
        user.escape_debug()
    )))
}

/// Append one message to `mailbox`: a `From SENDER DATE` line, the message with line ends
/// made LF and `^>*From ` lines quoted, then a blank line. The message is streamed.
/// Returns the number of bytes appended.
///
/// Either the whole message is appended or the mailbox is left as it was: its length is
/// taken once both locks are held and it is cut back to that length on any failure. The
/// data is fsynced before the locks are released.
///
/// Errors: a lock still held after 10 s, or a spool this user may not write, is
/// [`Error::TempFail`] so that the caller keeps the message (EX_CANTCREAT would read as
/// permanent); a failing input is [`Error::Io`]; a mailbox that is a symbolic link, a hard
/// link, not a regular file or someone else's is [`Error::CantCreate`].
pub fn deliver(mailbox: &Mailbox, sender: &str, message: &mut dyn Read) -> Result<u64> {
    deliver_with(mailbox, sender, message, &Timing::STANDARD, now_secs())
}

/// How long to wait for locks, and when a dot-lock is abandoned; shortened in tests.
#[derive(Clone, Copy, Debug)]
struct Timing {
    wait: Duration,
    stale: Duration,
    poll: Duration,
}

impl Timing {
    /// Five minutes for a stale lock is liblockfile's figure; ten seconds of waiting keeps
    /// `smtpsend` from hanging a cron job behind a stuck mail reader.
    const STANDARD: Timing = Timing {
        wait: Duration::from_secs(10),
        stale: Duration::from_secs(300),
        poll: Duration::from_millis(100),
    };
}

fn deliver_with(
    mailbox: &Mailbox,
    sender: &str,
    message: &mut dyn Read,
    timing: &Timing,
    now: i64,
) -> Result<u64> {
    let from_line = format!(
        "From {} {}\n",
        from_line_sender(sender)?,
        crate::system::time::asctime_local(now)
    );
    let deadline = Instant::now() + timing.wait;
    // Declared first so it is released last, after the mailbox is closed.
    let _dot_lock = DotLock::acquire(mailbox, deadline, timing)?;
    let (file, created) = open_mailbox(mailbox)?;
    fcntl_lock(mailbox, &file, deadline, timing)?;
    let start = file
        .metadata()
        .map_err(|e| spool_error(mailbox, "cannot read the size of", &mailbox.path, &e))?
        .len();
    match append(mailbox, &file, created, from_line.as_bytes(), message) {
        Ok(written) => Ok(written),
        Err(e) => {
            // Leave no half message for the next one to be glued to. If even this fails,
            // the error that made us try is the one worth reporting.
            let _ = file.set_len(start);
            let _ = file.sync_all();
            Err(e)
        }
    }
}

fn append(
    mailbox: &Mailbox,
    mut file: &File,
    created: bool,
    from_line: &[u8],
    message: &mut dyn Read,
) -> Result<u64> {
    let write_failed = |e: &io::Error| spool_error(mailbox, "cannot write to", &mailbox.path, e);
    file.write_all(from_line).map_err(|e| write_failed(&e))?;
    let mut written = from_line.len() as u64;
    let mut encoder = MboxEncoder::default();
    let mut input = vec![0; CHUNK];
    let mut output = Vec::with_capacity(CHUNK + CHUNK / 4);
    loop {
        let n = match message.read(&mut input) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::io(
                    format!(
                        "reading the message for {} (nothing was delivered)",
                        mailbox.path.display()
                    ),
                    e,
                ));
            }
        };
        output.clear();
        encoder.encode(&input[..n], &mut output);
        file.write_all(&output).map_err(|e| write_failed(&e))?;
        written += output.len() as u64;
    }
    output.clear();
    encoder.finish(&mut output);
    file.write_all(&output).map_err(|e| write_failed(&e))?;
    written += output.len() as u64;
    file.sync_all().map_err(|e| write_failed(&e))?;
    if created {
        // The new directory entry must survive a crash as well as the data in it.
        let dir = mailbox.path.parent().unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| spool_error(mailbox, "cannot sync", dir, &e))?;
    }
    Ok(written)
}

/// The envelope sender as the `From ` line shows it: `MAILER-DAEMON` for the null sender,
/// as Postfix and sendmail write it. A quoted local part keeps its blanks; mbox readers
/// find the date from the end of the line.
fn from_line_sender(sender: &str) -> Result<String> {
    if is_null_sender(sender) {
        return Ok("MAILER-DAEMON".to_string());
    }
    let trimmed = sender.trim_matches([' ', '\t']);
    let bare = trimmed
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(trimmed);
    if bare.chars().any(char::is_control) {
        // A line break here would forge the start of the message.
        return Err(Error::Data(format!(
            "sender \"{}\" contains a control character",
            sender.escape_debug()
        )));
    }
    Ok(bare.to_string())
}

/// A dot-lock held until dropped.
struct DotLock {
    path: PathBuf,
    /// Device and inode of our lock file, so that we never remove someone else's.
    id: (u64, u64),
}

impl DotLock {
    /// Create `MAILBOX.lock` with O_EXCL, removing it first if it is older than
    /// `timing.stale` (its holder died); retry until `deadline`.
    ///
    /// Two processes can both find the same lock stale and the second can remove the lock
    /// the first has just made; the fcntl lock taken next still keeps them apart.
    fn acquire(mailbox: &Mailbox, deadline: Instant, timing: &Timing) -> Result<DotLock> {
        let mut name = mailbox.path.clone().into_os_string();
        name.push(".lock");
        let path = PathBuf::from(name);
        loop {
            let created = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path);
            match created {
                Ok(mut file) => {
                    let meta = file
                        .metadata()
                        .map_err(|e| spool_error(mailbox, "cannot create", &path, &e))?;
                    // The pid is for a person looking at a stuck lock; failing to write
                    // it does not weaken the lock.
                    let _ = writeln!(file, "{}", std::process::id());
                    return Ok(DotLock {
                        path,
                        id: (meta.dev(), meta.ino()),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(spool_error(mailbox, "cannot create", &path, &e)),
            }
            match std::fs::symlink_metadata(&path) {
                Ok(meta) => {
                    let age = meta
                        .modified()
                        .ok()
                        .and_then(|m| SystemTime::now().duration_since(m).ok());
                    if age.is_some_and(|age| age > timing.stale) {
                        match std::fs::remove_file(&path) {
                            Ok(()) => continue,
                            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                            Err(e) => {
                                return Err(spool_error(
                                    mailbox,
                                    "cannot remove the stale lock",
                                    &path,
                                    &e,
                                ));
                            }
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(spool_error(mailbox, "cannot examine", &path, &e)),
            }
            if Instant::now() >= deadline {
                return Err(locked(mailbox, &path, timing.wait));
            }
            std::thread::sleep(timing.poll);
        }
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        // Nothing can be reported from here; a lock left behind goes stale in five minutes.
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.id
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn locked(mailbox: &Mailbox, lock: &Path, wait: Duration) -> Error {
    Error::TempFail(format!(
        "{}: mailbox {} is locked ({}), gave up after {} s; the message was not \
         delivered, keep it and retry",
        mailbox.user,
        mailbox.path.display(),
        lock.display(),
        wait.as_secs_f32()
    ))
}

/// Open the mailbox for appending, creating it (0600) if missing. Returns whether it was
/// created. O_NOFOLLOW refuses a symbolic link; O_NONBLOCK keeps a FIFO planted in the
/// spool from blocking the open (and is harmless on a regular file).
fn open_mailbox(mailbox: &Mailbox) -> Result<(File, bool)> {
    let path = &mailbox.path;
    let open = |create: bool| {
        OpenOptions::new()
            .append(true)
            .create_new(create)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
    };
    let (file, created) = match open(true) {
        Ok(file) => (file, true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match open(false) {
            Ok(file) => (file, false),
            Err(e) => return Err(open_failure(mailbox, &e)),
        },
        Err(e) => return Err(open_failure(mailbox, &e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| spool_error(mailbox, "cannot examine", path, &e))?;
    if !meta.file_type().is_file() {
        return Err(refuse(mailbox, "is not a regular file"));
    }
    if meta.nlink() > 1 {
        // A hard link in the spool could make us append to any file on the same file
        // system, with root's rights when run by cron.
        return Err(refuse(mailbox, "has more than one hard link"));
    }
    if let Some((uid, gid)) = mailbox.owner.filter(|_| running_as_root()) {
        if created {
            if let Err(e) = std::os::unix::fs::fchown(&file, Some(uid), Some(gid)) {
                let _ = std::fs::remove_file(path);
                return Err(spool_error(mailbox, "cannot give away", path, &e));
            }
        } else if meta.uid() != uid && meta.uid() != 0 {
            // Where users can create files in the spool, one could plant a mailbox for
            // another and read their mail.
            return Err(refuse(mailbox, &format!("belongs to uid {}", meta.uid())));
        }
    }
    Ok((file, created))
}

fn open_failure(mailbox: &Mailbox, e: &io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => refuse(mailbox, "is a symbolic link"),
        Some(libc::EISDIR) => refuse(mailbox, "is a directory"),
        Some(libc::ENXIO) => refuse(mailbox, "is not a regular file"),
        _ => spool_error(mailbox, "cannot open", &mailbox.path, e),
    }
}

/// A mailbox that is not a plain file of its own is a setup problem or an attack; no
/// retry will change it, so it is permanent (EX_CANTCREAT).
fn refuse(mailbox: &Mailbox, why: &str) -> Error {
    Error::cant_create(
        format!(
            "{}: refusing to deliver to {}",
            mailbox.user,
            mailbox.path.display()
        ),
        std::io::Error::other(format!("it {why}")),
    )
}

/// Take an fcntl write lock on the whole mailbox, retrying F_SETLK until `deadline` (an
/// F_SETLKW could wait for ever on a stuck reader).
fn fcntl_lock(mailbox: &Mailbox, file: &File, deadline: Instant, timing: &Timing) -> Result<()> {
    loop {
        // F_SETLK with F_WRLCK from offset 0 to the end, as the file grows.
        match rustix::fs::fcntl_lock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            // Released when the file is closed.
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::ACCESS | rustix::io::Errno::AGAIN) => {}
            Err(e) => {
                let e = io::Error::from(e);
                return Err(spool_error(mailbox, "cannot lock", &mailbox.path, &e));
            }
        }
        if Instant::now() >= deadline {
            return Err(locked(mailbox, &mailbox.path, timing.wait));
        }
        std::thread::sleep(timing.poll);
    }
}

/// The error for a failure to use the spool.
///
/// Permission denied (and a full or read-only disk, and a missing spool) is
/// [`Error::TempFail`], not [`Error::CantCreate`]: nothing is wrong with the message or
/// the address, and an administrator can fix the spool (group `mail`, setgid). EX_TEMPFAIL
/// is the one status that makes a caller such as mutt, mailx or a queue keep the message;
/// EX_CANTCREAT reads as a permanent failure and the message would be dropped.
fn spool_error(mailbox: &Mailbox, what: &str, path: &Path, e: &io::Error) -> Error {
    let text = format!(
        "{}: {what} {}: {} (running as {}, uid {})",
        mailbox.user,
        path.display(),
        crate::os_error::describe(e),
        crate::system::identity::user_name(),
        effective_uid()
    );
    match e.raw_os_error() {
        Some(
            libc::EACCES
            | libc::EPERM
            | libc::EROFS
            | libc::ENOSPC
            | libc::EDQUOT
            | libc::ENOENT
            | libc::ENOLCK
            | libc::EAGAIN,
        ) => Error::TempFail(format!(
            "{text}; the message was not delivered, keep it and retry"
        )),
        _ => Error::io(
            format!(
                "{}: {what} {} (running as {}, uid {}; the message was not delivered)",
                mailbox.user,
                path.display(),
                crate::system::identity::user_name(),
                effective_uid()
            ),
            crate::os_error::owned(e),
        ),
    }
}

fn effective_uid() -> libc::uid_t {
    rustix::process::geteuid().as_raw()
}

fn running_as_root() -> bool {
    effective_uid() == 0
}

/// The uid and primary gid of `name`, `None` if there is no such user. A failing user
/// database (NSS, LDAP down) is a temporary failure, not an unknown user.
fn lookup_user(name: &str) -> Result<Option<(libc::uid_t, libc::gid_t)>> {
    let c_name = std::ffi::CString::new(name)
        .map_err(|_| Error::Data(format!("\"{}\": NUL in a user name", name.escape_debug())))?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        let mut pwd = MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `c_name` is NUL-terminated; every other pointer is valid for writing,
        // `buf` for `buf.len()` bytes; getpwnam_r keeps none of them after it returns.
        // Neither std nor rustix reads the user database, which goes through NSS.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                pwd.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        match rc {
            0 if result.is_null() => return Ok(None),
            // SAFETY: on success `result` points to `pwd`, which getpwnam_r initialised;
            // only its integer fields are read.
            0 => return Ok(Some(unsafe { ((*result).pw_uid, (*result).pw_gid) })),
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            libc::EINTR => {}
            // getpwnam_r(3) lists these as what some systems return for "not found".
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            _ => {
                return Err(Error::TempFail(format!(
                    "{name}: cannot look up the user: {}; the message was not delivered, \
                     keep it and retry",
                    crate::os_error::describe(&io::Error::from_raw_os_error(rc))
                )));
            }
        }
    }
}

/// The gid of group `mail`, which owns the spool on Debian and its relatives.
fn mail_group() -> Option<libc::gid_t> {
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        let mut grp = MaybeUninit::<libc::group>::uninit();
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: the name is a NUL-terminated literal; every other pointer is valid for
        // writing, `buf` for `buf.len()` bytes; getgrnam_r keeps none of them after it
        // returns.
        let rc = unsafe {
            libc::getgrnam_r(
                c"mail".as_ptr(),
                grp.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        match rc {
            // SAFETY: on success `result` points to `grp`, which getgrnam_r initialised;
            // only its integer gid is read.
            0 if !result.is_null() => return Some(unsafe { (*result).gr_gid }),
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            libc::EINTR => {}
            _ => return None,
        }
    }
}

fn now_secs() -> i64 {
    match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Where the encoder is within a line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum LineState {
    /// At the start of a line or inside its leading run of `>`.
    #[default]
    Start,
    /// After the `>` run, this many bytes of `From ` seen and held back.
    Matching(usize),
    /// Anywhere else in the line.
    Rest,
}

/// The mbox body encoder: CRLF and bare CR become LF, `^>*From ` gets one more `>`
/// (mboxrd, so that readers can undo it exactly), and the message ends with a line end and
/// a blank line. Fed in pieces of any size with the same output as in one piece; it holds
/// back at most four bytes.
///
/// The extra `>` is put after the existing run of `>` rather than before it, which gives
/// the same bytes without having to hold the run back.
#[derive(Clone, Debug, Default)]
struct MboxEncoder {
    state: LineState,
    /// The last byte was a CR, already written as LF; an LF right after it belongs to it.
    after_cr: bool,
    /// Something of the current line has been consumed.
    in_line: bool,
}

impl MboxEncoder {
    /// Encode `input`, appending to `out`: at most `input.len() + input.len() / 5 + 5` bytes.
    fn encode(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while let Some(&b) = input.first() {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    input = &input[1..];
                    continue;
                }
            }
            match self.state {
                LineState::Start if b == b'>' => {
                    out.push(b'>');
                    self.in_line = true;
                    input = &input[1..];
                }
                LineState::Start => self.state = LineState::Matching(0),
                LineState::Matching(n) if FROM.get(n) == Some(&b) => {
                    self.in_line = true;
                    input = &input[1..];
                    if n + 1 == FROM.len() {
                        out.extend_from_slice(b">From ");
                        self.state = LineState::Rest;
                    } else {
                        self.state = LineState::Matching(n + 1);
                    }
                }
                LineState::Matching(n) => {
                    out.extend_from_slice(&FROM[..n]);
                    self.state = LineState::Rest;
                }
                LineState::Rest => {
                    let end = memchr::memchr2(b'\r', b'\n', input).unwrap_or(input.len());
                    out.extend_from_slice(&input[..end]);
                    if end > 0 {
                        self.in_line = true;
                    }
                    input = &input[end..];
                    if let Some(&brk) = input.first() {
                        out.push(b'\n');
                        self.after_cr = brk == b'\r';
                        self.state = LineState::Start;
                        self.in_line = false;
                        input = &input[1..];
                    }
                }
            }
        }
    }

    /// End the message: what was held back, a final LF if the last line had none, and the
    /// blank line that separates it from the next message.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if let LineState::Matching(n) = self.state {
            out.extend_from_slice(&FROM[..n]);
        }
        if self.in_line {
            out.push(b'\n');
        }
        out.push(b'\n');
        *self = MboxEncoder::default();
    }
}

#[cfg(test)]
mod tests;
