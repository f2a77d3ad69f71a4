//! "Never lose a cron mail": the queue under faults a machine really has. A queue run or a
//! submission killed with SIGKILL at a random instant, a spool on a full disk, a hundred
//! cron jobs mailing at once while the relay is down.
//!
//! The kill loops are random; `FAULT_TRIALS` sets how many kills (default 40, which keeps
//! this file well under a minute) and `FAULT_SEED` replays a run (the seed is printed).
//! `tests/faults/kill-loop.sh` runs them with 200 trials and prints the figures.
//! `FAULT_SENDERS` lowers the hundred concurrent senders on a slow machine.

/// These tests kill processes on timers and measure what survives: run them one at a time
/// so that one test's load does not move another's timing.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::spool::{DeadPort, Queue, crlf, dead_port, spawn_with_input, wait_bounded};
use crate::common::*;

/// The largest batch queued at once (one to this many, at random): few enough that an
/// undisturbed run (about 35 ms with one entry, 15 ms more per entry: the test server
/// answers each flight after a few ms of read timeout) is about as long as the longest
/// delay, so the kills land everywhere: before the connection, inside a transaction,
/// between the server's 250 and the removal, and after the run.
const MAX_BATCH: u64 = 3;
/// How many killed runs a batch gets to empty the queue before a run left alone does.
const ROUNDS_PER_BATCH: u64 = 5;
/// The longest wait before a kill.
const MAX_KILL_DELAY_MS: u64 = 50;

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// xorshift64*: no dependency, and a run is replayed from its seed.
struct Rng(u64);

impl Rng {
    /// From `FAULT_SEED`, else from the clock; printed so a failure can be replayed.
    fn from_env(test: &str) -> Rng {
        let seed = env_number(
            "FAULT_SEED",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1),
        );
        println!("{test}: FAULT_SEED={seed}");
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..=max`.
    fn up_to(&mut self, max: u64) -> u64 {
        self.next() % (max + 1)
    }
}

/// A small complete message, told apart by its Message-ID.
fn small_message(n: usize) -> String {
    format!(
        "From: Cron Daemon <root@example.org>\n\
         To: <{RECIPIENT}>\n\
         Subject: job {n}\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\n\
         Message-ID: <fault-{n}@example.org>\n\
         \n\
         Output of job {n}.\n"
    )
}

/// A complete message of `size` bytes or a little more, told apart by its Message-ID.
fn large_message(n: usize, size: usize) -> Vec<u8> {
    let mut out = format!(
        "From: Cron Daemon <root@example.org>\n\
         To: <{RECIPIENT}>\n\
         Subject: large job {n}\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\n\
         Message-ID: <large-{n}@example.org>\n\
         \n"
    )
    .into_bytes();
    let mut line = 0usize;
    while out.len() < size {
        out.extend_from_slice(format!("{n}:{line:08} {}\n", "y".repeat(100)).as_bytes());
        line += 1;
    }
    out
}

fn message_id(content: &[u8]) -> String {
    let head = &content[..content.len().min(4096)];
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap_or("<none>")
        .trim()
        .to_string()
}

/// How many times the server accepted each message (by Message-ID).
fn accepted_counts(t: &Transcript) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for m in t.connections.iter().flat_map(|c| &c.messages) {
        if m.accepted {
            *counts.entry(message_id(&m.content)).or_insert(0) += 1;
        }
    }
    counts
}

/// Submits message `n` with the relay down; it must be queued.
#[track_caller]
fn queue_small(q: &Queue, down: &DeadPort, n: usize) {
    let out = q.send(down.port(), &[RECIPIENT], small_message(n));
    assert_eq!(code(&out), 0, "queueing {n}: {}", stderr(&out));
}

/// `-bp` exits 0 and says nothing on stderr (no entry set aside, none skipped) and no
/// `corrupt/` directory appeared.
#[track_caller]
fn assert_no_corruption(q: &Queue) {
    let out = q.list();
    assert_eq!(code(&out), 0, "-bp: {}", stderr(&out));
    assert!(out.stderr.is_empty(), "-bp warned: {}", stderr(&out));
    assert!(
        !q.dir().join("corrupt").exists(),
        "entries were set aside: {:?}",
        std::fs::read_dir(q.dir().join("corrupt"))
            .map(|d| d.map(|e| e.map(|e| e.file_name())).collect::<Vec<_>>())
    );
}

/// Files that are not entries: `.tmp-*` and data files without an envelope. Crashed
/// writers leave them; the spool removes them once they are an hour old.
fn leftovers(q: &Queue) -> Vec<String> {
    let files = q.files();
    let envs: BTreeSet<&str> = files
        .iter()
        .filter(|f| !f.starts_with('.'))
        .filter_map(|f| f.strip_suffix(".env"))
        .collect();
    files
        .iter()
        .filter(|f| {
            f.starts_with(".tmp-") || f.strip_suffix(".data").is_some_and(|id| !envs.contains(id))
        })
        .cloned()
        .collect()
}

/// Kill with SIGKILL (`Child::kill`) and reap: `Some(code)` when it had exited by itself
/// before the signal came, `None` when the signal killed it.
fn kill_9(child: &mut Child) -> Option<i32> {
    let _ = child.kill();
    child.wait().expect("reap smtpsend").code()
}

/// Batches of one to [`MAX_BATCH`] messages are queued with the relay down; queue runs
/// are started against the test server and killed with SIGKILL after 0 to 50 ms, until
/// one of them empties the queue (after [`ROUNDS_PER_BATCH`] kills a run left alone
/// finishes the batch). At the end every message must have reached the server at least
/// once. Duplicates are counted and split by when the run was killed: before the server
/// had answered (RFC 1047's window, as long as the server takes to reply: no client can
/// close it) or after (the client's window, a read and an unlink: under 10 % of the
/// messages, asserted with two messages of slack).
#[test]
fn kill_minus_9_during_flush_loses_nothing() {
    let _serial = serial();
    let trials = env_number("FAULT_TRIALS", 40);
    let mut rng = Rng::from_env("kill_minus_9_during_flush_loses_nothing");
    let seed = rng.0;
    let q = Queue::new();
    let server = TestServer::builder()
        .connections(usize::MAX)
        .grace(Duration::from_millis(2))
        .deadline(Duration::from_secs(120 + trials))
        .start();
    let started = Instant::now();
    let KillLoop {
        queued,
        runs,
        batches,
        drained_by_clean_run,
        finished_before_kill,
    } = kill_loop(&q, server.port(), trials, &mut rng);
    assert_no_corruption(&q);
    let remaining: Vec<String> = q.entries().into_iter().map(|e| e.id).collect();
    let left = leftovers(&q);
    let t = server.finish();

    let counts = accepted_counts(&t);
    let expected: BTreeSet<String> = (0..queued)
        .map(|n| format!("<fault-{n}@example.org>"))
        .collect();
    let lost: Vec<&String> = expected
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    let strangers: Vec<&String> = counts.keys().filter(|id| !expected.contains(*id)).collect();
    let delivered = counts.len();
    let duplicated: usize = counts.values().map(|c| c - 1).sum();
    let (unanswered, answered) = classify_duplicates(&t, &runs);
    assert_eq!(
        unanswered + answered,
        duplicated,
        "every duplicate classified"
    );
    println!(
        "kill -9 during flush (seed {seed}): trials={trials} messages={queued} delivered={delivered} \
         lost={} duplicated={duplicated} (killed before the server's answer: {unanswered}, \
         after it: {answered}) batches={batches} \
         drained_by_unkilled_run={drained_by_clean_run} finished_before_kill={finished_before_kill} \
         connections={} leftover_files={} took={:.1}s",
        lost.len(),
        t.connections.len(),
        left.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(lost.is_empty(), "lost messages: {lost:?}");
    assert!(
        strangers.is_empty(),
        "the server got messages never queued: {strangers:?}"
    );
    assert!(
        remaining.is_empty(),
        "still queued after the final runs: {remaining:?}"
    );
    // The client's own window, from the server's answer to the entry's removal, is a
    // read and an unlink: a kill must rarely fall in it. Under 10 %, with two messages of
    // slack for the short runs of a default test (one unlucky kill duplicates a batch).
    assert!(
        answered * 10 < queued + 20,
        "{answered} of {queued} messages duplicated by kills after the server had answered"
    );
    // A leftover can only be an orphan data file (killed between removing the envelope
    // and the data) or a temporary; never an envelope without its message.
    for name in &left {
        assert!(
            name.starts_with(".tmp-") || name.ends_with(".data"),
            "unexpected leftover {name}"
        );
    }
}

/// What a kill loop did.
struct KillLoop {
    /// Messages queued, numbered from 0.
    queued: usize,
    /// Each queue run: when it started and when it was killed (none: it ran to its end).
    runs: Vec<(Instant, Option<Instant>)>,
    batches: u64,
    drained_by_clean_run: u64,
    finished_before_kill: u64,
}

/// Queue batches of one to [`MAX_BATCH`] messages with the relay down, then start queue
/// runs against 127.0.0.1:`port` and kill each after 0 to [`MAX_KILL_DELAY_MS`] ms, until
/// one empties the spool or the batch had [`ROUNDS_PER_BATCH`] of them (then a run left
/// alone finishes it); at the end, runs left alone deliver what the kills left.
fn kill_loop(q: &Queue, port: u16, trials: u64, rng: &mut Rng) -> KillLoop {
    let down = dead_port();
    let mut done = KillLoop {
        queued: 0,
        runs: Vec::new(),
        batches: 0,
        drained_by_clean_run: 0,
        finished_before_kill: 0,
    };
    let mut rounds_on_batch = 0u64;
    for _ in 0..trials {
        if rounds_on_batch >= ROUNDS_PER_BATCH && !q.entries().is_empty() {
            done.runs.push((Instant::now(), None));
            let out = q.flush(port, false);
            assert_eq!(code(&out), 0, "undisturbed queue run: {}", stderr(&out));
            done.drained_by_clean_run += 1;
        }
        if q.entries().is_empty() {
            for _ in 0..=rng.up_to(MAX_BATCH - 1) {
                queue_small(q, &down, done.queued);
                done.queued += 1;
            }
            done.batches += 1;
            rounds_on_batch = 0;
        }
        rounds_on_batch += 1;
        let mut cmd = q.std_cmd(port);
        cmd.arg("-q")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let spawned = Instant::now();
        let mut child = cmd.spawn().expect("spawn smtpsend -q");
        thread::sleep(Duration::from_millis(rng.up_to(MAX_KILL_DELAY_MS)));
        let killed = Instant::now();
        if kill_9(&mut child).is_some() {
            done.finished_before_kill += 1;
            done.runs.push((spawned, None));
        } else {
            done.runs.push((spawned, Some(killed)));
        }
    }
    for _ in 0..3 {
        if q.entries().is_empty() {
            break;
        }
        done.runs.push((Instant::now(), None));
        let out = q.flush(port, false);
        assert_eq!(code(&out), 0, "final queue run: {}", stderr(&out));
    }
    done
}

/// The same kill loop against a real server, Postfix's smtp-sink, which answers as soon
/// as it has a message: the duplicate figure a user of a fast relay would see. Nothing
/// lost; duplicates under 10 % of the messages.
#[test]
fn kill_minus_9_during_flush_against_smtp_sink() {
    let _serial = serial();
    if !crate::real_servers::have_smtp_sink() {
        return;
    }
    let trials = env_number("FAULT_TRIALS", 40);
    let mut rng = Rng::from_env("kill_minus_9_during_flush_against_smtp_sink");
    let seed = rng.0;
    let sink = crate::real_servers::SmtpSink::start(std::net::Ipv4Addr::LOCALHOST.into());
    let q = Queue::new();
    let KillLoop { queued, .. } = kill_loop(&q, sink.port, trials, &mut rng);
    assert_no_corruption(&q);
    assert!(q.entries().is_empty(), "still queued: {:?}", q.files());
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for dump in sink.dumps() {
        *counts.entry(message_id(&dump.message)).or_insert(0) += 1;
    }
    let lost: Vec<usize> = (0..queued)
        .filter(|n| !counts.contains_key(&format!("<fault-{n}@example.org>")))
        .collect();
    let duplicated: usize = counts.values().map(|c| c - 1).sum();
    println!(
        "kill -9 during flush against smtp-sink (seed {seed}): trials={trials} \
         messages={queued} delivered={} lost={} duplicated={duplicated}",
        counts.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "lost messages: {lost:?}");
    // Under 10 %, with two messages of slack for short runs, as above.
    assert!(
        duplicated * 10 < queued + 20,
        "{duplicated} of {queued} messages duplicated"
    );
}

/// Splits the duplicates by when the run that sent the first copy was killed: before the
/// server had the whole message and chose its reply (no client can record an outcome it
/// was never told: RFC 1047's window, as long as the server takes to answer), or after
/// (the client's own window, between reading the 250 and removing the entry).
/// A connection belongs to the last run started before it was accepted.
fn classify_duplicates(t: &Transcript, runs: &[(Instant, Option<Instant>)]) -> (usize, usize) {
    let mut connections: Vec<&crate::common::server::Connection> = t.connections.iter().collect();
    connections.sort_by_key(|c| c.open.map(|(opened, _)| opened));
    // Per message: when the server decided on its last copy, and when that run was killed.
    let mut last: BTreeMap<String, (Instant, Option<Instant>)> = BTreeMap::new();
    let (mut unanswered, mut answered) = (0, 0);
    for c in connections {
        let Some((opened, _)) = c.open else { continue };
        let killed = runs
            .iter()
            .rev()
            .find(|(started, _)| *started <= opened)
            .and_then(|(_, killed)| *killed);
        for m in c.messages.iter().filter(|m| m.accepted) {
            let id = message_id(&m.content);
            if let Some((decided, killed)) = last.get(&id) {
                match killed {
                    Some(k) if k < decided => unanswered += 1,
                    _ => answered += 1,
                }
            }
            last.insert(id, (m.decided, killed));
        }
    }
    (unanswered, answered)
}

/// Submissions of a 4 MiB message through a pipe with the relay down, killed with
/// SIGKILL anywhere between their start and a little after an undisturbed one ends:
/// the spool must then hold each message whole or not at all, `-bp` must not warn, and
/// every entry must flush and arrive intact.
#[test]
fn kill_minus_9_during_enqueue_leaves_whole_entries_or_none() {
    let _serial = serial();
    const SIZE: usize = 4 << 20;
    /// Entries are checked and flushed every this many kills, so the server's record of
    /// 4 MiB messages stays small.
    const ROUND: u64 = 10;
    let trials = env_number("FAULT_TRIALS", 40);
    let mut rng = Rng::from_env("kill_minus_9_during_enqueue_leaves_whole_entries_or_none");
    let seed = rng.0;
    let q = Queue::new();
    let down = dead_port();
    let submit = |n: usize| {
        let mut cmd = q.std_cmd(down.port());
        cmd.args(["-f", SENDER, RECIPIENT]);
        spawn_with_input(cmd, large_message(n, SIZE), true)
    };

    // How long an undisturbed submission takes, so the kills can fall anywhere in it.
    let calibration = Instant::now();
    let (mut child, writer) = submit(usize::MAX);
    let status = wait_bounded(&mut child, CLIENT_LIMIT).expect("calibration run hung");
    let _ = writer.join();
    let span = calibration.elapsed();
    assert_eq!(status.code(), Some(0), "calibration run");
    let mut cmd = q.cmd(1);
    cmd.args(["--queue-remove-all", "--yes"]);
    assert_eq!(code(&run(cmd, Vec::new())), 0);
    let max_delay = span.as_millis() as u64 + 5;

    let (mut killed, mut completed, mut whole, mut none) = (0u64, 0u64, 0u64, 0u64);
    let mut leftover_files = 0usize;
    let mut trial = 0u64;
    while trial < trials {
        let mut done_in_round = BTreeSet::new();
        let first = trial;
        while trial < trials && trial < first + ROUND {
            let n = trial as usize;
            let (mut child, writer) = submit(n);
            thread::sleep(Duration::from_millis(rng.up_to(max_delay)));
            match kill_9(&mut child) {
                Some(status) => {
                    assert_eq!(status, 0, "submission {n} failed on its own");
                    completed += 1;
                    done_in_round.insert(format!("<large-{n}@example.org>"));
                }
                None => killed += 1,
            }
            let _ = writer.join();
            trial += 1;
        }
        assert_no_corruption(&q);
        let entries = q.entries();
        let mut by_id = BTreeMap::new();
        for e in &entries {
            let data = q.data(&e.id);
            let id = message_id(&data);
            let n: usize = id
                .trim_start_matches("<large-")
                .trim_end_matches("@example.org>")
                .parse()
                .unwrap_or_else(|_| panic!("entry {} holds {id}", e.id));
            assert!(
                data == large_message(n, SIZE),
                "entry {} holds a damaged copy of {id}: {} bytes",
                e.id,
                data.len()
            );
            assert_eq!(e.recipients, [RECIPIENT]);
            by_id.insert(id, e.id.clone());
        }
        for id in &done_in_round {
            assert!(by_id.contains_key(id), "{id} exited 0 but is not queued");
        }
        whole += entries.len() as u64;
        none += (trial - first) - entries.len() as u64;

        // Every entry the kills left must go out whole.
        let server = TestServer::builder()
            .grace(Duration::from_millis(2))
            .deadline(Duration::from_secs(60))
            .start();
        let out = q.flush(server.port(), false);
        let t = server.finish();
        assert_exit(&out, 0, &t);
        let delivered: BTreeMap<String, Vec<u8>> = t
            .connections
            .iter()
            .flat_map(|c| &c.messages)
            .filter(|m| m.accepted)
            .map(|m| (message_id(&m.content), m.content.clone()))
            .collect();
        assert_eq!(
            delivered.keys().collect::<Vec<_>>(),
            by_id.keys().collect::<Vec<_>>(),
            "queued entries not delivered by -q; its stderr: {}\nserver: {:?}\nspool: {:?}",
            stderr(&out),
            t.connections
                .iter()
                .map(|c| (c.verbs(), &c.end, c.messages.len()))
                .collect::<Vec<_>>(),
            q.files()
        );
        for (id, content) in &delivered {
            let n: usize = id
                .trim_start_matches("<large-")
                .trim_end_matches("@example.org>")
                .parse()
                .expect("message number");
            assert!(
                content == &crlf(&large_message(n, SIZE)),
                "{id} arrived damaged"
            );
        }
        assert!(q.entries().is_empty(), "{:?}", q.files());
        leftover_files = leftovers(&q).len();
    }
    println!(
        "kill -9 during enqueue (seed {seed}): trials={trials} killed={killed} exited_0={completed} \
         whole_entries={whole} nothing_queued={none} corrupt=0 leftover_files={leftover_files} \
         (an undisturbed run took {span:?}; kills within {max_delay} ms)"
    );
    // What the killed writers left goes once it is an hour old and its writer is dead.
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 60 * 60);
    for name in leftovers(&q) {
        File::options()
            .write(true)
            .open(q.dir().join(&name))
            .and_then(|f| f.set_modified(two_hours_ago))
            .unwrap_or_else(|e| panic!("age {name}: {e}"));
    }
    assert_no_corruption(&q);
    assert_eq!(
        leftovers(&q),
        Vec::<String>::new(),
        "stale leftovers were kept"
    );
}

/// A tmpfs mounted for the length of a test, unmounted when dropped.
struct Mount {
    path: PathBuf,
}

impl Mount {
    fn tmpfs(path: &Path, options: &str) -> Result<Mount, String> {
        std::fs::create_dir_all(path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
        let out = StdCommand::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if out.status.success() {
            Ok(Mount {
                path: path.to_path_buf(),
            })
        } else {
            Err(format!(
                "mount -t tmpfs -o {options}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = StdCommand::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = StdCommand::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

#[test]
fn disk_full_while_spooling() {
    let _serial = serial();
    let q = Queue::new();
    let skip = |why: String| {
        assert!(
            !in_ci(),
            "disk_full_while_spooling cannot run ({why}) and CI=true does not allow skipping"
        );
        eprintln!("skipped: disk_full_while_spooling: {why}");
    };
    if euid() != 0 {
        return skip("not root: mounting a small tmpfs needs root".into());
    }
    // 256 KiB, and mode 0700: the spool refuses a directory others can write to.
    let _mount = match Mount::tmpfs(&q.dir(), "size=256k,mode=0700") {
        Ok(m) => m,
        Err(why) => return skip(why),
    };
    let down = dead_port();
    let input = large_message(0, 1 << 20);

    let check = |out: &std::process::Output, how: &str| {
        assert_eq!(
            code(out),
            75,
            "{how}: a message that did not fit must not be accepted; stderr: {}",
            stderr(out)
        );
        let text = stderr(out);
        assert!(
            text.contains("could not queue") || text.contains("spool full"),
            "{how}: stderr does not say why: {text}"
        );
        assert!(
            text.contains("No space left on device"),
            "{how}: stderr does not say why: {text}"
        );
        assert_eq!(
            q.entry_files(),
            Vec::<String>::new(),
            "{how}: partial files left"
        );
    };

    // Through a pipe, after the relay refused the connection.
    let out = q.send(down.port(), &[RECIPIENT], input.clone());
    check(&out, "piped");

    // A regular file on stdin.
    let path = q.root().join("message.eml");
    std::fs::write(&path, &input).expect("write message file");
    let mut cmd = q.std_cmd(down.port());
    cmd.args(["-f", SENDER, RECIPIENT])
        .stdin(Stdio::from(File::open(&path).expect("open message file")))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn smtpsend");
    let status = wait_bounded(&mut child, CLIENT_LIMIT).expect("smtpsend ran too long");
    let mut err = Vec::new();
    child
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_end(&mut err)
        .expect("read stderr");
    check(
        &std::process::Output {
            status,
            stdout: Vec::new(),
            stderr: err,
        },
        "file on stdin",
    );

    // Queue only, no relay involved.
    let out = q.send(down.port(), &["--queue", RECIPIENT], input);
    check(&out, "--queue");

    assert_eq!(q.listing(), "Mail queue is empty\n");
    // The space was given back: a small message still fits.
    let out = q.send(down.port(), &[RECIPIENT], small_message(1));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(q.entries().len(), 1);
}

#[test]
fn hundred_concurrent_senders_while_relay_down() {
    let _serial = serial();
    let senders = env_number("FAULT_SENDERS", 100) as usize;
    let q = Queue::new();
    let down = dead_port();
    let started = Instant::now();
    let budget = Duration::from_secs(30);
    let children: Vec<_> = (0..senders)
        .map(|n| {
            let mut cmd = q.std_cmd(down.port());
            cmd.args(["-f", SENDER, RECIPIENT]);
            spawn_with_input(cmd, small_message(n).into_bytes(), true)
        })
        .collect();
    let mut failures = Vec::new();
    for (n, (mut child, writer)) in children.into_iter().enumerate() {
        let left = budget.saturating_sub(started.elapsed());
        let status = wait_bounded(&mut child, left);
        let _ = writer.join();
        let mut err = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut err);
        }
        match status {
            Some(s) if s.code() == Some(0) => {}
            other => failures.push(format!("sender {n}: {other:?}: {err}")),
        }
    }
    let submitted = started.elapsed();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let entries = q.entries();
    assert_eq!(entries.len(), senders, "{:?}", q.files());
    let listing = q.listing();
    assert!(
        listing.contains(&format!("in {senders} Requests.")),
        "{listing}"
    );

    let server = TestServer::builder()
        .connections(usize::MAX)
        .grace(Duration::from_millis(1))
        .deadline(Duration::from_secs(30))
        .start();
    let out = q.flush(server.port(), false);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let counts = accepted_counts(&t);
    let expected: BTreeSet<String> = (0..senders)
        .map(|n| format!("<fault-{n}@example.org>"))
        .collect();
    assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), expected);
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    q.assert_empty();
    println!(
        "{senders} concurrent senders: queued in {submitted:?}, flushed over {} connection(s), \
         all in {:?}",
        t.connections.len(),
        started.elapsed()
    );
}

/// A queue run killed after the server has accepted some messages of its batch must not
/// send those again: RFC 1047's window for duplicates is the time between the server's
/// 250 and the removal of that one entry, not the rest of the connection.
#[test]
fn flush_killed_mid_batch_does_not_resend_accepted_messages() {
    let _serial = serial();
    let q = Queue::new();
    let down = dead_port();
    for n in 0..4 {
        let out = q.send(down.port(), &[&format!("r{n}@x.test")], small_message(n));
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    // The third message's RCPT hangs; the first two are accepted before it.
    let server = TestServer::builder()
        .connections(2)
        .deadline(Duration::from_secs(20))
        .rule(
            Rule::on("RCPT")
                .arg("r2@x.test")
                .stall(Duration::from_secs(3))
                .times(1),
        )
        .start();
    let mut cmd = q.std_cmd(server.port());
    cmd.arg("-q")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn smtpsend -q");
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        kill_9(&mut child),
        None,
        "the queue run ended before the kill"
    );
    assert_no_corruption(&q);
    let left: Vec<Vec<String>> = q.entries().into_iter().map(|e| e.recipients).collect();

    let out = q.flush(server.port(), false);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let t = server.finish();
    let counts = accepted_counts(&t);
    q.assert_empty();
    let expected: BTreeMap<String, usize> = (0..4)
        .map(|n| (format!("<fault-{n}@example.org>"), 1))
        .collect();
    assert_eq!(
        left,
        [["r2@x.test"], ["r3@x.test"]],
        "entries left after the kill (the server had accepted r0 and r1: {counts:?})"
    );
    assert_eq!(counts, expected, "messages sent twice");
}
