//! Waiting for a socket until a deadline. Sockets are non-blocking, and every place that
//! would block waits here with poll(2), never past its deadline: a server trickling a byte
//! at a time cannot hold the process longer than the wait allows. A process asked to stop
//! ([`crate::system::signals`]) ends its waits within the grace period.

use std::io;
use std::os::fd::AsFd;
use std::time::Instant;

use rustix::event::{PollFd, PollFlags, Timespec, poll};

use crate::system::signals;

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

/// Wait until `fd` is readable (or closed), or until `deadline`.
pub fn readable(fd: impl AsFd, deadline: Instant) -> io::Result<()> {
    wait(fd, PollFlags::IN, deadline)
}

/// Wait until `fd` is writable (or connected), or until `deadline`.
pub fn writable(fd: impl AsFd, deadline: Instant) -> io::Result<()> {
    wait(fd, PollFlags::OUT, deadline)
}

fn wait(fd: impl AsFd, events: PollFlags, deadline: Instant) -> io::Result<()> {
    loop {
        let mut left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || signals::past_grace() {
            return Err(timed_out());
        }
        // A process that stops on request looks at the request between short waits.
        if let Some(slice) = signals::wait_slice() {
            left = left.min(slice);
        }
        let mut fds = [PollFd::new(&fd, events)];
        let timeout = Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        });
        match poll(&mut fds, Some(&timeout)) {
            // Woken early (a signal, or rounding): the deadline decides.
            Ok(0) => continue,
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    #[test]
    fn a_silent_peer_times_out_at_the_deadline_not_before() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sock = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let start = Instant::now();
        let err = readable(&sock, start + Duration::from_millis(150)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(150));
    }

    #[test]
    fn data_waiting_ends_the_wait_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sock = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        peer.write_all(b"220 hi\r\n").unwrap();
        readable(&sock, Instant::now() + Duration::from_secs(5)).unwrap();
        writable(&sock, Instant::now() + Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn a_deadline_already_past_fails_without_waiting() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sock = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let err = writable(&sock, Instant::now()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
