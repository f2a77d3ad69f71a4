//! The background queue runner (issue 14): a sender that queues starts it, it delivers
//! when the relay comes back, without cron and without `-q`, and it ends when the spool
//! is empty. Real processes throughout: the senders and the runner are the binary, the
//! relay a server on loopback that comes up on the port the senders found dead.

use std::collections::BTreeSet;
use std::io::Read;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::spool::{
    Queue, dead_port, runner_pids, spawn_with_input, start_on_freed_port, wait_bounded,
};
use crate::common::{MESSAGE, RECIPIENT, SENDER, TestServer, Transcript, code, run, stderr};

/// Retries after 1 s, then every 2 s: a test need not wait five minutes. The log file sits
/// beside the config (a relative path is taken from the config's directory).
const CONFIG: &str = "queue_on_tempfail = true\n\
                      queue_retry_first = 1\n\
                      queue_retry_max = 2\n\
                      logfile = \"runner.log\"\n";

/// How long the runner may take to deliver once the relay is up: its longest back-off
/// (2 s) and the delivery, with room for a loaded machine.
const DELIVERY_LIMIT: Duration = Duration::from_secs(20);

/// How many entries the spool holds, counted by name: the runner may remove one between
/// a listing and a read, so [`Queue::entries`] is for a spool at rest.
fn queued(q: &Queue) -> usize {
    std::fs::read_dir(q.dir())
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    // Not a rewrite in progress (`.tmp-ID.env`).
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.ends_with(".env") && !name.starts_with('.')
                })
                .count()
        })
        .unwrap_or(0)
}

/// Waits for the one runner of the spool to be up: alive, and its pid in `runner.lock`
/// (written once its signal handlers are in place). Returns its pid.
#[track_caller]
fn one_runner(q: &Queue) -> u32 {
    let up = || {
        let pids = runner_pids(&q.dir());
        let lock = std::fs::read_to_string(q.dir().join("runner.lock")).unwrap_or_default();
        pids.len() == 1 && lock.trim() == pids[0].to_string()
    };
    assert!(
        wait_until(Duration::from_secs(5), up),
        "no runner up: {:?}",
        runner_pids(&q.dir())
    );
    runner_pids(&q.dir())[0]
}

/// Polls `check` every 20 ms until it holds or `limit` passes; whether it held.
fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if check() {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The sender's command, with the background runner left on (the test helpers turn it
/// off for every other test).
fn sender(q: &Queue, port: u16) -> Command {
    let mut cmd = q.std_cmd(port);
    cmd.env("SMTPSEND_QUEUE_RUNNER", "on");
    cmd
}

/// Bring the relay up on `port`, which the senders found dead.
fn relay_on(port: u16, connections: usize) -> TestServer {
    start_on_freed_port(
        || {
            TestServer::builder()
                .connections(connections)
                .deadline(Duration::from_secs(40))
        },
        port,
    )
}

fn accepted(t: &Transcript) -> Vec<String> {
    t.connections
        .iter()
        .flat_map(|c| &c.messages)
        .filter(|m| m.accepted)
        .map(|m| {
            String::from_utf8_lossy(&m.content)
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .unwrap_or("<none>")
                .to_string()
        })
        .collect()
}

fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

#[test]
fn queued_mail_goes_out_by_itself_once_the_relay_is_up() {
    let q = Queue::with_config(CONFIG);
    let down = dead_port();
    let port = down.port();
    let started = Instant::now();
    let mut cmd = sender(&q, port);
    cmd.args(["-f", SENDER, RECIPIENT]);
    let out = run(assert_cmd::Command::from_std(cmd), MESSAGE);
    // The caller is not held up by the runner: its stderr pipe closed when it ended.
    let took = started.elapsed();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.starts_with("smtpsend: queued "), "{err}");
    assert!(
        err.contains("connection refused; next try within 1 second"),
        "{err}"
    );
    assert!(took < Duration::from_secs(5), "the sender took {took:?}");

    // Alive, and named in the lock.
    let pid = one_runner(&q);
    // Not a child of the test's: a session of its own, with no terminal.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        fields[3],
        pid.to_string(),
        "session id is its own pid: {stat}"
    );
    assert_eq!(fields[4], "0", "no controlling terminal: {stat}");

    drop(down);
    let server = relay_on(port, 1);
    let delivered = wait_until(DELIVERY_LIMIT, || {
        queued(&q) == 0 && runner_pids(&q.dir()).is_empty()
    });
    let t = server.finish();
    assert!(
        delivered,
        "left: {:?}; runners {:?}",
        q.files(),
        runner_pids(&q.dir())
    );
    assert_eq!(accepted(&t), ["<test-1@example.org>"]);
    let log = std::fs::read_to_string(q.root().join("runner.log")).expect("runner.log");
    assert!(log.contains("queue runner started"), "{log}");
    assert!(log.contains("status=sent"), "{log}");
    assert!(
        log.contains("queue runner ends: the queue is empty"),
        "{log}"
    );
}

#[test]
fn hundred_concurrent_senders_start_one_runner() {
    let senders = 100;
    let q = Queue::with_config(CONFIG);
    let down = dead_port();
    let port = down.port();
    let started = Instant::now();
    let children: Vec<_> = (0..senders)
        .map(|n| {
            let mut cmd = sender(&q, port);
            cmd.args(["-f", SENDER, RECIPIENT]);
            let message = MESSAGE.replace("<test-1@", &format!("<runner-{n}@"));
            spawn_with_input(cmd, message.into_bytes(), true)
        })
        .collect();
    let mut failures = Vec::new();
    for (n, (mut child, writer)) in children.into_iter().enumerate() {
        let status = wait_bounded(&mut child, Duration::from_secs(60));
        let _ = writer.join();
        // Read to the end: a runner holding the pipe would keep this waiting.
        let mut err = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut err);
        }
        if status.and_then(|s| s.code()) != Some(0) || !err.contains("queued") {
            failures.push(format!("sender {n}: {status:?}: {err}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("{senders} senders queued in {:?}", started.elapsed());

    // Runners beaten to the lock end at once; one stays.
    assert!(
        wait_until(Duration::from_secs(5), || runner_pids(&q.dir()).len() == 1),
        "runners: {:?}",
        runner_pids(&q.dir())
    );
    for _ in 0..10 {
        assert_eq!(runner_pids(&q.dir()).len(), 1, "one runner per spool");
        thread::sleep(Duration::from_millis(50));
    }

    drop(down);
    let server = relay_on(port, usize::MAX);
    let delivered = wait_until(Duration::from_secs(40), || {
        queued(&q) == 0 && runner_pids(&q.dir()).is_empty()
    });
    let t = server.finish();
    assert!(delivered, "left: {} entries", queued(&q));
    let got = accepted(&t);
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), senders, "every message");
    assert_eq!(got.len(), senders, "none twice");
    println!(
        "delivered over {} connection(s), all in {:?}",
        t.connections.len(),
        started.elapsed()
    );
}

#[test]
fn sigterm_stops_a_sleeping_runner_at_once_and_keeps_the_entry() {
    // A long back-off: the runner sleeps when the signal comes.
    let q = Queue::with_config(
        "queue_on_tempfail = true\nqueue_retry_first = 600\nlogfile = \"runner.log\"\n",
    );
    let down = dead_port();
    let mut cmd = sender(&q, down.port());
    cmd.args(["-f", SENDER, RECIPIENT]);
    let out = run(assert_cmd::Command::from_std(cmd), MESSAGE);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let pid = one_runner(&q);
    let asked = Instant::now();
    kill(pid, "-TERM");
    assert!(
        wait_until(Duration::from_secs(2), || runner_pids(&q.dir()).is_empty()),
        "still running 2 s after SIGTERM"
    );
    println!("runner ended {:?} after SIGTERM", asked.elapsed());
    let entry = q.only_entry();
    assert_eq!(entry.attempts, 1, "the stop counted no try");
    let log = std::fs::read_to_string(q.root().join("runner.log")).expect("runner.log");
    assert!(
        log.contains("queue runner ends: stopped on request"),
        "{log}"
    );
}

#[test]
fn sigterm_mid_flush_ends_within_two_seconds_and_loses_nothing() {
    let q = Queue::with_config(CONFIG);
    let down = dead_port();
    let port = down.port();
    for n in 0..3 {
        let mut cmd = sender(&q, port);
        cmd.args(["-f", SENDER, RECIPIENT]);
        let message = MESSAGE.replace("<test-1@", &format!("<term-{n}@"));
        let out = run(assert_cmd::Command::from_std(cmd), message);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let pid = one_runner(&q);
    // The relay comes up, takes the connection and then says nothing for a long while:
    // the runner is mid-flush when the signal comes.
    drop(down);
    let server = start_on_freed_port(
        || {
            TestServer::builder()
                .rule(crate::common::Rule::on("EHLO").stall(Duration::from_secs(30)))
                .deadline(Duration::from_secs(40))
        },
        port,
    );
    // Let it connect (its next try is within 2 s).
    thread::sleep(Duration::from_millis(2500));
    let asked = Instant::now();
    kill(pid, "-TERM");
    let ended = wait_until(Duration::from_secs(2), || runner_pids(&q.dir()).is_empty());
    let took = asked.elapsed();
    drop(server);
    assert!(ended, "still running 2 s after SIGTERM");
    println!("runner ended {took:?} after SIGTERM mid-flush");
    assert_eq!(q.entries().len(), 3, "nothing lost: {:?}", q.files());
}

#[test]
fn a_killed_runner_is_replaced_by_the_next_sender() {
    let q = Queue::with_config(
        "queue_on_tempfail = true\nqueue_retry_first = 600\nlogfile = \"runner.log\"\n",
    );
    let down = dead_port();
    let send = |n: usize| {
        let mut cmd = sender(&q, down.port());
        cmd.args(["-f", SENDER, RECIPIENT]);
        let message = MESSAGE.replace("<test-1@", &format!("<kill-{n}@"));
        let out = run(assert_cmd::Command::from_std(cmd), message);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    };
    send(0);
    let first = one_runner(&q);
    kill(first, "-KILL");
    assert!(wait_until(Duration::from_secs(5), || runner_pids(&q.dir()).is_empty()));
    send(1);
    let second = one_runner(&q);
    assert_ne!(first, second);
    assert_eq!(q.entries().len(), 2);
    kill(second, "-TERM");
    assert!(wait_until(Duration::from_secs(2), || runner_pids(&q.dir()).is_empty()));
}

#[test]
fn with_the_runner_turned_off_nothing_starts_and_the_line_says_so() {
    let q = Queue::with_config("queue_on_tempfail = true\nqueue_runner = false\n");
    let down = dead_port();
    let mut cmd = q.std_cmd(down.port());
    // The config key decides, not the environment.
    cmd.env_remove("SMTPSEND_QUEUE_RUNNER");
    cmd.args(["-f", SENDER, RECIPIENT]);
    let out = run(assert_cmd::Command::from_std(cmd), MESSAGE);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("next try at the first queue run after 5 minutes"),
        "{err}"
    );
    thread::sleep(Duration::from_millis(300));
    assert!(runner_pids(&q.dir()).is_empty());
    assert!(!q.dir().join("runner.lock").exists());
}

/// Two accounts: A's relay is down, B (the default) is up. A message queued for A never
/// leaves through B; the runner sends it through A once A is up.
#[test]
fn an_entry_goes_by_its_own_account_never_the_default() {
    let down_a = dead_port();
    let port_a = down_a.port();
    let relay_b = TestServer::builder()
        .connections(usize::MAX)
        .deadline(Duration::from_secs(30))
        .start();
    let q = Queue::with_config(&format!(
        "queue_on_tempfail = true\nqueue_retry_first = 1\nqueue_retry_max = 2\n\
         default_account = \"b\"\ntls = \"off\"\n\
         [accounts.a]\nhost = \"127.0.0.1\"\nport = {port_a}\n\
         [accounts.b]\nhost = \"127.0.0.1\"\nport = {}\n",
        relay_b.port()
    ));
    let bin = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_smtpsend"));
        cmd.arg("--config")
            .arg(q.root().join("config.toml"))
            .arg("--queue-dir")
            .arg(q.dir())
            .args(extra)
            .env("HOME", q.home())
            .env("XDG_CONFIG_HOME", q.home())
            .env("XDG_STATE_HOME", q.home())
            .env("SMTPSEND_QUEUE_RUNNER", "off")
            .env_remove("SMTPSEND_CONFIG")
            .env_remove("SMTPSEND_PASSWORD");
        cmd
    };
    let out = run(
        assert_cmd::Command::from_std(bin(&["-a", "a", "-f", SENDER, RECIPIENT])),
        MESSAGE,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(q.entries().len(), 1);

    // A plain -q, as cron runs it, under the default account B: the entry stays.
    let out = run(assert_cmd::Command::from_std(bin(&["-q"])), "");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(q.entries().len(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("deferred"), "{}", stderr(&out));

    // The runner, started by the next queued message for A, sends both through A.
    let mut cmd = bin(&["-a", "a", "-f", SENDER, RECIPIENT]);
    cmd.env("SMTPSEND_QUEUE_RUNNER", "on");
    let out = run(
        assert_cmd::Command::from_std(cmd),
        MESSAGE.replace("<test-1@", "<second@"),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    drop(down_a);
    let relay_a = relay_on(port_a, usize::MAX);
    let delivered = wait_until(DELIVERY_LIMIT, || {
        queued(&q) == 0 && runner_pids(&q.dir()).is_empty()
    });
    let a = relay_a.finish();
    let b = relay_b.finish();
    assert!(delivered, "left: {:?}", q.files());
    let mut got = accepted(&a);
    got.sort();
    assert_eq!(got, ["<second@example.org>", "<test-1@example.org>"]);
    assert!(b.connections.is_empty(), "B was used for A's mail");
}

/// An entry queued with `--host`/`--port` is flushed by a plain `-q` (as cron runs it,
/// with no relay named) through that host, not bounced by direct delivery.
#[test]
fn an_entry_queued_with_host_keeps_that_host() {
    let q = Queue::with_config("queue_on_tempfail = true\n");
    let down = dead_port();
    let port = down.port();
    let out = q.send(port, &[RECIPIENT], MESSAGE);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    drop(down);
    let server = relay_on(port, 1);
    // No --host, no --port: only the config and the spool.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    cmd.arg("--config")
        .arg(q.root().join("config.toml"))
        .arg("--queue-dir")
        .arg(q.dir())
        .arg("-q")
        .env("HOME", q.home())
        .env("XDG_CONFIG_HOME", q.home())
        .env("XDG_STATE_HOME", q.home())
        .env("SMTPSEND_QUEUE_RUNNER", "off");
    let out = run(assert_cmd::Command::from_std(cmd), "");
    let t = server.finish();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("delivered to bob@example.org via 127.0.0.1"),
        "{}",
        stderr(&out)
    );
    assert_eq!(accepted(&t), ["<test-1@example.org>"]);
    q.assert_empty();
}

/// The relay is back: a message that goes through it takes along, within moments, what
/// was queued for it and would otherwise wait out a ten-minute back-off.
#[test]
fn a_successful_send_takes_the_relays_waiting_entries_along() {
    let q = Queue::with_config(
        "queue_on_tempfail = true\nqueue_retry_first = 600\nlogfile = \"runner.log\"\n",
    );
    let down = dead_port();
    let port = down.port();
    let mut cmd = sender(&q, port);
    cmd.args(["-f", SENDER, RECIPIENT]);
    let out = run(
        assert_cmd::Command::from_std(cmd),
        MESSAGE.replace("<test-1@", "<waiting@"),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("next try within 10 minutes"),
        "{}",
        stderr(&out)
    );
    one_runner(&q);

    drop(down);
    let server = relay_on(port, usize::MAX);
    let mut cmd = sender(&q, port);
    cmd.args(["-f", SENDER, RECIPIENT]);
    let out = run(assert_cmd::Command::from_std(cmd), MESSAGE);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let delivered = wait_until(Duration::from_secs(10), || {
        queued(&q) == 0 && runner_pids(&q.dir()).is_empty()
    });
    let t = server.finish();
    assert!(delivered, "left: {:?}", q.files());
    let mut got = accepted(&t);
    got.sort();
    assert_eq!(got, ["<test-1@example.org>", "<waiting@example.org>"]);
    // The runner that was asleep did it, woken; no second one.
    let log = std::fs::read_to_string(q.root().join("runner.log")).unwrap();
    assert_eq!(log.matches("queue runner started").count(), 1, "{log}");
}

/// Two config files sharing one spool: an entry queued under the first (its relay down)
/// is never sent through the second's relay by a `-q` run under the second; it goes
/// through its own relay, named in its route with its config file, once that is up.
#[test]
fn an_entry_keeps_the_relay_of_the_config_file_it_was_queued_under() {
    let down_a = dead_port();
    let port_a = down_a.port();
    let relay_b = TestServer::builder()
        .connections(usize::MAX)
        .deadline(Duration::from_secs(30))
        .start();
    let q = Queue::new();
    let config = |name: &str, port: u16| {
        let path = q.root().join(name);
        std::fs::write(
            &path,
            format!(
                "queue_on_tempfail = true\ntls = \"off\"\nhost = \"127.0.0.1\"\nport = {port}\n"
            ),
        )
        .unwrap();
        path
    };
    let (first, second) = (config("a.toml", port_a), config("b.toml", relay_b.port()));
    let bin = |config: &std::path::Path, extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_smtpsend"));
        cmd.arg("--config")
            .arg(config)
            .arg("--queue-dir")
            .arg(q.dir())
            .args(extra)
            .env("HOME", q.home())
            .env("XDG_CONFIG_HOME", q.home())
            .env("XDG_STATE_HOME", q.home())
            .env("SMTPSEND_QUEUE_RUNNER", "off")
            .env_remove("SMTPSEND_CONFIG");
        assert_cmd::Command::from_std(cmd)
    };
    let out = run(bin(&first, &["-f", SENDER, RECIPIENT]), MESSAGE);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run(bin(&second, &["-q"]), "");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(q.entries().len(), 1, "{}", stderr(&out));

    drop(down_a);
    let relay_a = relay_on(port_a, usize::MAX);
    let out = run(bin(&second, &["-q"]), "");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let a = relay_a.finish();
    let b = relay_b.finish();
    assert_eq!(accepted(&a), ["<test-1@example.org>"], "{}", stderr(&out));
    assert!(b.connections.is_empty(), "the second file's relay was used");
    q.assert_empty();
}

/// kill -9 of the runner at random moments: nothing is lost, and the next queued message
/// starts a new runner, which sends what the killed one left. Each trial queues one
/// message with `-odq` (the runner sends it at once) and kills the runner 0 to 40 ms
/// later; a last message's runner drains the rest. Duplicates are counted (a kill between
/// the relay's 250 and the removal must make one), not failed. `FAULT_TRIALS` sets the
/// number of trials (tests/faults/kill-loop.sh runs more).
#[test]
fn kill_minus_9_of_the_runner_loses_nothing_and_the_next_message_starts_another() {
    let trials: usize = std::env::var("FAULT_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(12, |n: usize| n / 4)
        .max(4);
    let q = Queue::with_config(CONFIG);
    let server = TestServer::builder()
        .connections(usize::MAX)
        .grace(Duration::from_millis(2))
        .deadline(Duration::from_secs(60 + 2 * trials as u64))
        .start();
    let send = |n: usize| {
        let mut cmd = sender(&q, server.port());
        cmd.args(["-odq", "-f", SENDER, RECIPIENT]);
        let message = MESSAGE.replace("<test-1@", &format!("<runner-kill-{n}@"));
        let out = run(assert_cmd::Command::from_std(cmd), message);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    };
    let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut killed = 0;
    for n in 0..trials {
        // The runner of an earlier trial may still be busy: kill whichever is alive.
        send(n);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        thread::sleep(Duration::from_millis(seed % 41));
        for pid in runner_pids(&q.dir()) {
            kill(pid, "-KILL");
            killed += 1;
        }
    }
    send(trials);
    let drained = wait_until(DELIVERY_LIMIT, || {
        queued(&q) == 0 && runner_pids(&q.dir()).is_empty()
    });
    let t = server.finish();
    assert!(drained, "left: {:?}", q.files());
    let got = accepted(&t);
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), trials + 1, "every message, once at least");
    println!(
        "runner kill -9: trials={trials} runners_killed={killed} messages={} delivered={} \
         duplicated={} connections={}",
        trials + 1,
        unique.len(),
        got.len() - unique.len(),
        t.connections.len()
    );
}
