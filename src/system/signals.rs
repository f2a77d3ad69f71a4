//! Stopping and waking on request. A queue run, and the background runner, catch SIGTERM
//! (a system shutdown), SIGINT and SIGHUP: they stop starting transactions, keep the
//! outcomes they already have, and end within [`GRACE`] of the signal, so nothing is lost
//! and nothing is sent twice more than a shutdown must. SIGUSR1 wakes a sleeping runner
//! (a message was queued that is due now).

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

/// How long waits may go on after a stop was asked for: what the server already sent is
/// read, nothing more is waited for.
pub const GRACE: Duration = Duration::from_millis(1500);

/// Set by the signal handlers (an atomic store is all a handler may do).
static STOP: AtomicBool = AtomicBool::new(false);
/// Set once signals are caught: waits then look at [`STOP`] in short slices.
static CAUGHT: AtomicBool = AtomicBool::new(false);
/// When this process first saw the stop.
static STOPPED_AT: OnceLock<Instant> = OnceLock::new();

/// Whether a stop was asked for.
pub fn stop_requested() -> bool {
    if STOP.load(Ordering::SeqCst) {
        STOPPED_AT.get_or_init(Instant::now);
        true
    } else {
        false
    }
}

/// Whether waits must end now: a stop was asked for more than [`GRACE`] ago.
pub fn past_grace() -> bool {
    stop_requested() && STOPPED_AT.get().is_some_and(|t| t.elapsed() >= GRACE)
}

/// How long one wait on a socket may last before [`past_grace`] is looked at again:
/// unbounded unless signals are caught.
pub fn wait_slice() -> Option<Duration> {
    CAUGHT
        .load(Ordering::SeqCst)
        .then_some(Duration::from_millis(250))
}

/// What wakes a sleeping runner: a stop, or a poke.
pub struct Wakeup {
    read: UnixStream,
}

/// Catch SIGTERM, SIGINT and SIGHUP as a stop, and SIGUSR1 as a poke.
pub fn catch() -> io::Result<Wakeup> {
    let (read, write) = UnixStream::pair()?;
    read.set_nonblocking(true)?;
    for signal in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, &STOP)?;
        signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
    }
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGUSR1, write)?;
    CAUGHT.store(true, Ordering::SeqCst);
    Ok(Wakeup { read })
}

impl Wakeup {
    /// Sleep up to `timeout`, or until a signal comes. Returns whether one came.
    pub fn sleep(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || stop_requested() {
                return stop_requested();
            }
            let mut fds = [PollFd::new(&self.read, PollFlags::IN)];
            let ts = Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0,
            });
            match poll(&mut fds, Some(&ts)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                Ok(_) => {
                    let mut buf = [0u8; 64];
                    while matches!(self.read.read(&mut buf), Ok(n) if n > 0) {}
                    return true;
                }
                Err(_) => {
                    std::thread::sleep(left.min(Duration::from_secs(1)));
                }
            }
        }
    }
}

/// Wake the runner with pid `pid` (SIGUSR1), if it is ours to signal.
pub fn poke(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    rustix::process::kill_process(pid, rustix::process::Signal::USR1).is_ok()
}

/// Ask this process to stop, as a signal would (for tests and for the runner's own
/// reasons to end).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}
