//! The background queue runner: started by the first sender that queues a message while
//! none is alive, it sleeps until the next entry is due, runs the queue, and ends when
//! the spool is empty. No daemon to install, no cron line, no mail left behind.
//!
//! How it stays one: the runner holds an exclusive `flock` on `runner.lock` in the spool
//! for its whole life. A sender that has queued a message tries that lock: held means a
//! runner is alive (the sender wakes it with SIGUSR1, the pid is in the lock file); free
//! means none is, and the sender starts one, which takes the lock or, beaten to it by
//! another sender's runner, ends at once.
//!
//! How no entry is stranded: a sender writes its entry before it looks at the lock, and
//! the runner that finds the spool empty lets go of the lock before it looks a last time.
//! Either the sender saw the lock free (and started a runner) or the runner's last look
//! comes after the entry was written.

use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use super::Spool;
use super::run::{self, RouteFor, RunOptions};
use super::spool::RunnerLock;
use crate::delivery::log::Logger;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::system::signals;

/// The longest sleep between looks at the spool: a sender that cannot signal the runner
/// (another user's) has its entry seen within this.
const LONGEST_SLEEP: Duration = Duration::from_secs(60);

/// The shortest: an entry that is still due after a run (its route's flush lock was held
/// by a `-q` of someone's) is not retried in a tight loop.
const SHORTEST_SLEEP: Duration = Duration::from_secs(1);

/// What a sender found when it made sure a runner is alive.
#[derive(Debug, PartialEq, Eq)]
pub enum Ensured {
    /// One is alive and was woken.
    Woken,
    /// One is alive; it sees the entry on its next look.
    Alive,
    /// None was; one was started with this pid.
    Started(u32),
}

/// Make sure a runner is alive for `spool` after an entry was written: wake the live one,
/// or start `command` (the runner's command line) fully detached.
pub fn ensure(spool: &Spool, command: Command) -> Result<Ensured, Error> {
    match spool.try_lock_runner()? {
        Some(lock) => {
            drop(lock);
            let pid = start_detached(command)
                .map_err(|e| Error::io("starting the background queue runner", e))?;
            Ok(Ensured::Started(pid))
        }
        None => Ok(match spool.runner_pid() {
            Some(pid) if signals::poke(pid) => Ensured::Woken,
            _ => Ensured::Alive,
        }),
    }
}

/// Start `command` in a session of its own, with no terminal and stdin, stdout and stderr
/// on /dev/null, holding no descriptor of ours or our caller's, and do not wait for it:
/// cron, PHP and a shell pipeline see us end as if it were not there.
fn start_detached(mut command: Command) -> io::Result<u32> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls are made: setsid and
    // close_range (or close), plain system calls that allocate nothing and take no lock.
    unsafe {
        command.pre_exec(|| {
            rustix::process::setsid()?;
            close_inherited();
            Ok(())
        });
    }
    let child = command.spawn()?;
    // The child is not waited for: when we end, init reaps it. Dropping the handle
    // neither kills nor waits.
    Ok(child.id())
}

/// Close every descriptor above stderr that the caller may have left inheritable (a pipe
/// that PHP or a shell waits on to see EOF).
fn close_inherited() {
    // SAFETY: a raw system call with integer arguments; on a kernel without
    // close_range (before 5.9) it fails and the loop does the same work.
    let done = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) } == 0;
    if !done {
        for fd in 3..1024 {
            // SAFETY: closing a descriptor number that may or may not be open is harmless
            // in a child about to exec.
            unsafe { libc::close(fd) };
        }
    }
}

/// Run as the background runner of `spool` until it is empty, or a stop is asked for.
/// Its words go to `log` (there is no stderr). Returns at once when another runner is
/// alive.
pub fn serve(
    spool: &Spool,
    opts: &RunOptions,
    route_for: &RouteFor<'_>,
    log: &Logger,
) -> Result<ExitStatus, Error> {
    let mut wakeup = signals::catch().map_err(|e| Error::io("catching signals", e))?;
    let Some(mut lock) = spool.try_lock_runner()? else {
        return Ok(ExitStatus::Ok);
    };
    let mut out = LogLines::new(log);
    let _ = lock.record_pid();
    let _ = writeln!(out, "queue runner started for {}", spool.dir().display());
    let mut lock = Some(lock);
    while !signals::stop_requested() {
        if let Err(e) = run::run(spool, opts, route_for, &mut out) {
            let _ = writeln!(out, "{e}");
        }
        let Some(next) = next_due(spool, &mut out) else {
            lock = recheck_empty(spool, lock.take())?;
            if lock.is_none() {
                break;
            }
            continue;
        };
        let wait = next
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .clamp(SHORTEST_SLEEP, LONGEST_SLEEP);
        wakeup.sleep(wait);
    }
    let why = if signals::stop_requested() {
        "stopped on request"
    } else {
        "the queue is empty"
    };
    let _ = writeln!(out, "queue runner ends: {why}");
    Ok(ExitStatus::Ok)
}

/// When the earliest entry is due; `None` when the spool is empty or gone.
fn next_due(spool: &Spool, out: &mut dyn Write) -> Option<SystemTime> {
    match spool.list() {
        Ok(listing) => listing.entries.iter().map(|e| e.next_attempt).min(),
        Err(e) => {
            let _ = writeln!(out, "{e}");
            None
        }
    }
}

/// The spool looked empty: let go of the lock, then look once more. An entry written
/// meanwhile by a sender that found the lock still held is ours again (`Some`, the lock
/// retaken); `None` to end.
fn recheck_empty(spool: &Spool, lock: Option<RunnerLock>) -> Result<Option<RunnerLock>, Error> {
    drop(lock);
    if !spool.dir().is_dir() || spool.list().is_ok_and(|l| l.entries.is_empty()) {
        return Ok(None);
    }
    let mut lock = spool.try_lock_runner()?;
    if let Some(lock) = &mut lock {
        let _ = lock.record_pid();
    }
    Ok(lock)
}

/// What a queue run would print on stderr, line by line into the log.
struct LogLines<'a> {
    log: &'a Logger,
    line: Vec<u8>,
}

impl<'a> LogLines<'a> {
    fn new(log: &'a Logger) -> LogLines<'a> {
        LogLines {
            log,
            line: Vec::new(),
        }
    }
}

impl Write for LogLines<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            if b == b'\n' {
                let text = String::from_utf8_lossy(&self.line);
                let text = text.strip_prefix("smtpsend: ").unwrap_or(&text);
                // Nowhere to say that the log failed: a detached runner has no stderr.
                let _ = self.log.note(text);
                self.line.clear();
            } else if self.line.len() < 16 * 1024 {
                self.line.push(b);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
