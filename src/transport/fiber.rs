//! Waiting for a socket, and running several deliveries on one thread.
//!
//! Sockets are non-blocking; every place that would block ([`readable`], [`writable`])
//! either polls the one socket until its deadline, or, inside [`run`], suspends the
//! delivery (a stackful coroutine) so that the thread drives the others meanwhile. A
//! delivery is written as plain blocking code either way: the session driver does not know
//! which.

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};

/// Stack of one delivery: TLS, DNS lookups and the driver's frames, with room to spare.
/// Only the pages touched are ever resident.
const STACK: usize = 2 * 1024 * 1024;

/// What a suspended delivery waits for.
#[derive(Clone, Copy, Debug)]
pub struct Wait {
    fd: RawFd,
    events: libc::c_short,
    deadline: Instant,
}

/// Why a delivery was resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Woken {
    Ready,
    TimedOut,
}

type FiberYielder = Yielder<Woken, Wait>;

thread_local! {
    /// The running delivery's yielder; null outside [`run`]'s deliveries.
    static CURRENT: Cell<*const FiberYielder> = const { Cell::new(std::ptr::null()) };
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

/// Wait until `fd` is readable, or until `deadline`.
pub fn readable(fd: RawFd, deadline: Instant) -> io::Result<()> {
    wait(fd, libc::POLLIN, deadline)
}

/// Wait until `fd` is writable (or connected), or until `deadline`.
pub fn writable(fd: RawFd, deadline: Instant) -> io::Result<()> {
    wait(fd, libc::POLLOUT, deadline)
}

fn wait(fd: RawFd, events: libc::c_short, deadline: Instant) -> io::Result<()> {
    if Instant::now() >= deadline {
        return Err(timed_out());
    }
    let yielder = CURRENT.with(Cell::get);
    if yielder.is_null() {
        return poll_one(fd, events, deadline);
    }
    // SAFETY: CURRENT is set only by a running delivery of `run`, to its own yielder, which
    // lives as long as that delivery; it is cleared whenever control returns to `run`.
    let yielder = unsafe { &*yielder };
    let woken = yielder.suspend(Wait {
        fd,
        events,
        deadline,
    });
    CURRENT.with(|c| c.set(yielder));
    match woken {
        Woken::Ready => Ok(()),
        Woken::TimedOut => Err(timed_out()),
    }
}

/// poll(2) on one descriptor until `deadline`.
fn poll_one(fd: RawFd, events: libc::c_short, deadline: Instant) -> io::Result<()> {
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, millis(left)) };
        match n {
            0 => continue,
            n if n > 0 => return Ok(()),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// A timeout for poll(2): rounded up, so that a wait never ends before its deadline.
fn millis(d: std::time::Duration) -> libc::c_int {
    let ms = d.as_micros().div_ceil(1000);
    libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
}

/// One delivery in progress.
struct Fiber<'a, R> {
    coroutine: Coroutine<Woken, Wait, R, DefaultStack>,
    waiting: Option<Wait>,
    index: usize,
    _borrows: std::marker::PhantomData<&'a ()>,
}

/// Run `job` for each item that `next` hands out, up to `at_once` of them at a time on this
/// thread, switching between them whenever one would wait for its socket. `done` receives
/// each result with its index as it comes; every item handed out gets one.
pub fn run<'a, T: 'a, R>(
    next: &mut dyn FnMut() -> Option<(usize, &'a T)>,
    at_once: usize,
    job: &'a (dyn Fn(&T) -> R + Sync),
    done: &mut dyn FnMut(usize, R),
) {
    let mut fibers: Vec<Fiber<'a, R>> = Vec::new();
    let mut exhausted = false;
    loop {
        while !exhausted && fibers.len() < at_once.max(1) {
            let Some((index, item)) = next() else {
                exhausted = true;
                break;
            };
            let Ok(stack) = DefaultStack::new(STACK) else {
                // No memory for a stack: this one runs here and now, its waits polled.
                done(index, job(item));
                continue;
            };
            let body = move |yielder: &FiberYielder, _first: Woken| {
                CURRENT.with(|c| c.set(yielder));
                job(item)
            };
            // SAFETY: the coroutine borrows `item` and `job` for 'a, which outlives this
            // call; every coroutine is run to completion or dropped (unwinding its stack)
            // before `run` returns, panics included, since `fibers` is a local.
            let coroutine = unsafe { Coroutine::with_stack_unchecked(stack, body) };
            fibers.push(Fiber {
                coroutine,
                waiting: None,
                index,
                _borrows: std::marker::PhantomData,
            });
            let last = fibers.len() - 1;
            step(&mut fibers, last, Woken::Ready, done);
        }
        if fibers.is_empty() {
            return;
        }
        // One entry per fiber, in order (every fiber here is suspended, so waits; a
        // negative descriptor would be skipped by poll).
        let mut pfds: Vec<libc::pollfd> = fibers
            .iter()
            .map(|f| libc::pollfd {
                fd: f.waiting.map_or(-1, |w| w.fd),
                events: f.waiting.map_or(0, |w| w.events),
                revents: 0,
            })
            .collect();
        let soonest = fibers
            .iter()
            .filter_map(|f| f.waiting.map(|w| w.deadline))
            .min()
            .unwrap_or_else(Instant::now);
        let left = soonest.saturating_duration_since(Instant::now());
        // SAFETY: `pfds` is a valid array of its length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, millis(left)) };
        // poll(2) fails only when interrupted (then look again) or out of resources: then
        // every wait ends as timed out, and each delivery fails (and is queued) rather
        // than being dropped.
        let failed = n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted;
        if n < 0 && !failed {
            continue;
        }
        let now = Instant::now();
        // From the end, so that removing a finished fiber keeps the others' positions.
        for i in (0..fibers.len()).rev() {
            let Some(w) = fibers[i].waiting else { continue };
            let woken = if failed {
                Woken::TimedOut
            } else if pfds[i].revents != 0 {
                Woken::Ready
            } else if now >= w.deadline {
                Woken::TimedOut
            } else {
                continue;
            };
            step(&mut fibers, i, woken, done);
        }
    }
}

/// Resume fiber `i`; keep what it now waits for, or hand on its result and drop it.
fn step<R>(fibers: &mut Vec<Fiber<'_, R>>, i: usize, woken: Woken, done: &mut dyn FnMut(usize, R)) {
    let result = fibers[i].coroutine.resume(woken);
    CURRENT.with(|c| c.set(std::ptr::null()));
    match result {
        CoroutineResult::Yield(wait) => fibers[i].waiting = Some(wait),
        CoroutineResult::Return(r) => {
            let fiber = fibers.swap_remove(i);
            done(fiber.index, r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    /// Read one line from a non-blocking socket, waiting the fiber way.
    fn read_some(sock: &mut TcpStream, deadline: Instant) -> io::Result<Vec<u8>> {
        let mut buf = [0u8; 64];
        loop {
            match sock.read(&mut buf) {
                Ok(n) => return Ok(buf[..n].to_vec()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    readable(sock.as_raw_fd(), deadline)?
                }
                Err(e) => return Err(e),
            }
        }
    }

    #[test]
    fn deliveries_on_one_thread_wait_at_the_same_time() {
        // Four servers that each answer after 200 ms: run one after the other that is 800
        // ms; run at once on one thread, every wait overlaps the others.
        let listeners: Vec<TcpListener> = (0..4)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let addrs: Vec<_> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let servers: Vec<_> = listeners
            .into_iter()
            .map(|l| {
                std::thread::spawn(move || {
                    let (mut s, _) = l.accept().unwrap();
                    std::thread::sleep(Duration::from_millis(200));
                    let _ = s.write_all(b"220 hello\r\n");
                })
            })
            .collect();
        let started = Instant::now();
        let job = |addr: &std::net::SocketAddr| -> io::Result<(Instant, Vec<u8>)> {
            let mut s = TcpStream::connect(addr)?;
            s.set_nonblocking(true)?;
            let got = read_some(&mut s, Instant::now() + Duration::from_secs(5))?;
            Ok((Instant::now(), got))
        };
        let mut items = addrs.iter().enumerate();
        let mut results = Vec::new();
        run(&mut || items.next(), 4, &job, &mut |i, r| {
            results.push((i, r))
        });
        for s in servers {
            s.join().unwrap();
        }
        assert_eq!(results.len(), 4);
        let mut ends = Vec::new();
        for (_, r) in results {
            let (end, got) = r.unwrap();
            assert_eq!(got, b"220 hello\r\n");
            ends.push(end);
        }
        // Every delivery ended before any of them could have, had they run in turn: the
        // first wait alone takes 200 ms, four in turn take 800.
        let last = ends.iter().max().unwrap().duration_since(started);
        let first = ends.iter().min().unwrap().duration_since(started);
        assert!(
            last < first * 2,
            "waits did not overlap: first {first:?}, last {last:?}"
        );
    }

    #[test]
    fn a_wait_past_its_deadline_times_out_in_a_fiber_and_outside() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let job = |_: &u8| -> io::ErrorKind {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_nonblocking(true).unwrap();
            read_some(&mut s, Instant::now() + Duration::from_millis(50))
                .unwrap_err()
                .kind()
        };
        let items = [0u8, 1];
        let mut it = items.iter().enumerate();
        let mut kinds = Vec::new();
        run(&mut || it.next(), 2, &job, &mut |_, k| kinds.push(k));
        assert_eq!(kinds, [io::ErrorKind::TimedOut, io::ErrorKind::TimedOut]);
        assert_eq!(job(&0), io::ErrorKind::TimedOut);
        drop(l);
    }
}
