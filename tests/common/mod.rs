//! Shared test infrastructure: a scriptable SMTP server, test certificates, and the
//! binary pre-configured to talk to them and nothing else.

// Each integration test crate uses a different part of this module.
#![allow(dead_code, unused_imports)]

pub mod dns;
pub mod dnssec;
pub mod https_server;
pub mod mta;
pub mod oauth_server;
pub mod pki;
pub mod server;
pub mod sink;
pub mod spool;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::Command;

pub use pki::Pki;
pub use server::{Rule, TestServer, Transcript, start_on_one_port};

/// The longest a run of the binary may take before the test fails.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(10);

/// A complete message: every header a sendmail might add is already there, so what the
/// client sends must be exactly this.
pub const MESSAGE: &str = "From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: test\r\n\
Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\
Message-ID: <test-1@example.org>\r\n\
\r\n\
Hello, Bob.\r\n";

pub const SENDER: &str = "alice@example.org";
pub const RECIPIENT: &str = "bob@example.org";

/// An empty configuration file and a home directory of our own, so that nothing on the
/// machine changes what the binary does.
fn isolation() -> (PathBuf, PathBuf) {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("smtpsend-tests");
    let home = base.join("home");
    std::fs::create_dir_all(&home).expect("create test home");
    // These tests check what a failure looks like to the caller, so a temporary failure
    // must not be turned into a queued message (tests/queue.rs covers that).
    let config = base.join("test-config.toml");
    if !config.exists() {
        std::fs::write(&config, "queue_on_tempfail = false\n").expect("write test config");
    }
    (config, home)
}

/// The binary, isolated from the machine's configuration, pointed at 127.0.0.1:`port`,
/// with a kill deadline. The caller adds `--tls`, `-f`, recipients and stdin.
pub fn smtpsend(port: u16) -> Command {
    let mut cmd = Command::from_std(smtpsend_std(port));
    cmd.timeout(CLIENT_LIMIT);
    cmd
}

/// [`smtpsend`] as a plain `std::process::Command`, for [`run_measured`].
pub fn smtpsend_std(port: u16) -> std::process::Command {
    let (config, home) = isolation();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    // Queue runs in tests are the tests' own: no background runner.
    cmd.env("SMTPSEND_QUEUE_RUNNER", "off");
    cmd.arg("--config")
        .arg(config)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", &home)
        .env_remove("SMTPSEND_PASSWORD");
    cmd
}

/// The binary for direct delivery, isolated like [`smtpsend`] but with no relay: MX
/// lookups go to the test DNS server at `dns`, and every exchanger is dialled on `mx_port`.
/// The caller adds `--tls`, `-f`, recipients and stdin.
pub fn smtpsend_direct(dns: std::net::SocketAddr, mx_port: u16) -> Command {
    let mut cmd = Command::from_std(smtpsend_direct_std(dns, mx_port));
    cmd.timeout(CLIENT_LIMIT);
    cmd
}

/// [`smtpsend_direct`] as a plain `std::process::Command`, for [`run_measured`].
pub fn smtpsend_direct_std(dns: std::net::SocketAddr, mx_port: u16) -> std::process::Command {
    let (config, home) = isolation();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    // Queue runs in tests are the tests' own: no background runner.
    cmd.env("SMTPSEND_QUEUE_RUNNER", "off");
    cmd.arg("--config")
        .arg(config)
        .args(["--dns-server", &dns.to_string()])
        .args(["--mx-port", &mx_port.to_string()])
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", &home)
        .env_remove("SMTPSEND_PASSWORD");
    cmd
}

/// A run of the binary with its cost: wall time and peak resident memory.
pub struct Measured {
    pub output: Output,
    pub took: Duration,
    /// The child's peak resident set size in KiB: the last `VmHWM` that
    /// `/proc/<pid>/status` showed while it ran, polled every millisecond. (`ru_maxrss`
    /// from `wait4` cannot be used: Linux folds the memory of the process that spawned the
    /// child, this big test process, into it at exec.)
    pub peak_rss_kib: u64,
}

/// `VmHWM` of a running process in KiB; `None` once it has exited.
fn high_water_mark_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Run the command with this input, killing it after [`CLIENT_LIMIT`] (the test then
/// fails), and measure its peak memory.
pub fn run_measured(cmd: std::process::Command, stdin: impl Into<Vec<u8>>) -> Measured {
    let input = stdin.into();
    run_measured_feeding(cmd, CLIENT_LIMIT, move |mut child_in| {
        // The binary may stop reading early (it failed); that is not the test's concern.
        let _ = child_in.write_all(&input);
    })
}

/// [`run_measured`] with the input written by `feed` from a thread of its own (a message
/// too large to hold), and a time limit of `limit`.
pub fn run_measured_feeding(
    mut cmd: std::process::Command,
    limit: Duration,
    feed: impl FnOnce(std::process::ChildStdin) + Send + 'static,
) -> Measured {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    // spawn() returns once the child has exec'd, so from here on VmHWM is the binary's.
    let mut child = cmd.spawn().expect("spawn smtpsend");
    let pid = child.id();
    let child_in = child.stdin.take().expect("piped stdin");
    let writer = thread::spawn(move || feed(child_in));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let mut peak = 0;
    let mut killed = false;
    let status = loop {
        // Sample before asking whether it exited, so the last sample is as late as can be.
        if let Some(kib) = high_water_mark_kib(pid) {
            peak = peak.max(kib);
        }
        match child.try_wait().expect("wait for smtpsend") {
            Some(status) => break status,
            None if started.elapsed() > limit && !killed => {
                let _ = child.kill();
                killed = true;
            }
            None => thread::sleep(Duration::from_millis(1)),
        }
    };
    let took = started.elapsed();
    let _ = writer.join();
    let output = Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    assert!(
        !killed,
        "smtpsend ran past {limit:?} and was killed; stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        peak > 0,
        "never saw the child's memory in /proc/{pid}/status"
    );
    Measured {
        output,
        took,
        peak_rss_kib: peak,
    }
}

/// [`smtpsend`] on a cleartext connection, with the usual sender.
pub fn smtpsend_plain(port: u16) -> Command {
    let mut cmd = smtpsend(port);
    cmd.args(["--tls", "off", "-f", SENDER]);
    cmd
}

/// [`smtpsend`] with STARTTLS required and the test certificate trusted.
pub fn smtpsend_starttls(port: u16, pki: &Pki) -> Command {
    let mut cmd = smtpsend(port);
    cmd.args(["--tls", "required", "--tls-trust-file"])
        .arg(&pki.trust_file)
        .args(["-f", SENDER]);
    cmd
}

/// The exit status, failing the test with the binary's stderr if it was killed.
pub fn code(output: &Output) -> i32 {
    match output.status.code() {
        Some(code) => code,
        None => panic!(
            "smtpsend was killed ({:?}); stderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Run the command with this input; never fails on a non-zero status (the test asserts it).
pub fn run(mut cmd: Command, stdin: impl Into<Vec<u8>>) -> Output {
    cmd.write_stdin(stdin.into())
        .output()
        .expect("run smtpsend (did it exceed the time limit?)")
}

/// Assert the exit status, showing stderr and the server's view on failure.
#[track_caller]
pub fn assert_exit(output: &Output, expected: i32, transcript: &Transcript) {
    let actual = code(output);
    assert_eq!(
        actual,
        expected,
        "exit status {actual}, expected {expected}\nstderr:\n{}\nserver saw: {:#?}",
        stderr(output),
        transcript
            .connections
            .iter()
            .map(|c| (c.verbs(), &c.end, &c.tls_error))
            .collect::<Vec<_>>()
    );
}
