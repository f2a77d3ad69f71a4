//! The binary with a mail queue of its own: a private spool directory, a config file that
//! turns `queue_on_tempfail` on, and a home directory for `dead.letter`, all inside one
//! temporary directory, so no test touches `/var/spool` or another test's queue.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use assert_cmd::Command;

use super::{CLIENT_LIMIT, SENDER};

/// A private queue and the binary set up to use it.
pub struct Queue {
    root: tempfile::TempDir,
}

/// One `ID.env` as it is on disk.
#[derive(Clone, Debug)]
pub struct EnvFile {
    pub id: String,
    pub path: PathBuf,
    pub from: String,
    pub recipients: Vec<String>,
    pub delivered: Vec<String>,
    pub attempts: i64,
    pub created: i64,
    pub next_attempt: i64,
    pub size: i64,
    pub last_error: Option<String>,
    pub table: toml::Table,
}

impl Queue {
    /// A fresh queue; the config file says `queue_on_tempfail = true` in so many words.
    pub fn new() -> Queue {
        Queue::with_config("queue_on_tempfail = true\n")
    }

    /// A fresh queue with this config file.
    pub fn with_config(config: &str) -> Queue {
        let root = tempfile::Builder::new()
            .prefix("smtpsend-queue-")
            .tempdir()
            .expect("temporary directory");
        std::fs::create_dir(root.path().join("home")).expect("home directory");
        std::fs::write(root.path().join("config.toml"), config).expect("config file");
        Queue { root }
    }

    /// The spool; the binary creates it (mode 0700) on first use.
    pub fn dir(&self) -> PathBuf {
        self.root.path().join("q")
    }

    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The binary with this queue, the config, a home of its own, a cleartext relay at
    /// 127.0.0.1:`port`, as a plain `std::process::Command` (for spawning and killing).
    pub fn std_cmd(&self, port: u16) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
        // Queue runs in tests are the tests' own: no background runner.
        cmd.env("SMTPSEND_QUEUE_RUNNER", "off");
        cmd.arg("--config")
            .arg(self.root.path().join("config.toml"))
            .arg("--queue-dir")
            .arg(self.dir())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--tls", "off"])
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.home())
            .env("XDG_STATE_HOME", self.home())
            .env_remove("SMTPSEND_CONFIG")
            .env_remove("SMTPSEND_PASSWORD");
        cmd
    }

    /// [`Queue::std_cmd`] with the kill deadline of [`CLIENT_LIMIT`].
    pub fn cmd(&self, port: u16) -> Command {
        let mut cmd = Command::from_std(self.std_cmd(port));
        cmd.timeout(CLIENT_LIMIT);
        cmd
    }

    /// A submission from [`SENDER`] with these arguments (recipients, flags).
    pub fn send(&self, port: u16, args: &[&str], input: impl Into<Vec<u8>>) -> Output {
        let mut cmd = self.cmd(port);
        cmd.args(["-f", SENDER]).args(args);
        super::run(cmd, input)
    }

    /// `-q` (every entry), or with `due_only` `-q --due` (what a timer runs), against
    /// 127.0.0.1:`port`.
    pub fn flush(&self, port: u16, due_only: bool) -> Output {
        let mut cmd = self.cmd(port);
        cmd.arg("-q");
        if due_only {
            cmd.arg("--due");
        }
        super::run(cmd, Vec::new())
    }

    /// `-bp`: the listing on stdout, warnings on stderr.
    pub fn list(&self) -> Output {
        // -bp never connects; the port is only there because every command has one.
        let mut cmd = self.cmd(1);
        cmd.arg("-bp");
        super::run(cmd, Vec::new())
    }

    /// `-bp`, asserting it exits 0 with nothing on stderr; returns stdout.
    #[track_caller]
    pub fn listing(&self) -> String {
        let out = self.list();
        assert_eq!(super::code(&out), 0, "-bp failed: {}", super::stderr(&out));
        assert!(out.stderr.is_empty(), "-bp warned: {}", super::stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The names in the spool directory, sorted (the `lock` file included).
    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = match std::fs::read_dir(self.dir()) {
            Ok(dir) => dir
                .map(|e| {
                    e.expect("read spool")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("read {}: {e}", self.dir().display()),
        };
        names.sort();
        names
    }

    /// The names that are entries' files (`.env`, `.data`) or leftovers (`.tmp-*`).
    pub fn entry_files(&self) -> Vec<String> {
        self.files()
            .into_iter()
            .filter(|n| n.ends_with(".env") || n.ends_with(".data") || n.starts_with(".tmp-"))
            .collect()
    }

    /// Every envelope in the spool (`ID.env`, not a `.tmp-*` one), oldest first, parsed.
    pub fn entries(&self) -> Vec<EnvFile> {
        self.files()
            .iter()
            .filter(|n| !n.starts_with('.'))
            .filter_map(|n| n.strip_suffix(".env"))
            .map(|id| self.entry(id))
            .collect()
    }

    /// The one entry; panics when there are none or several.
    #[track_caller]
    pub fn only_entry(&self) -> EnvFile {
        let mut all = self.entries();
        assert_eq!(all.len(), 1, "expected one queue entry: {:?}", self.files());
        all.remove(0)
    }

    pub fn entry(&self, id: &str) -> EnvFile {
        let path = self.dir().join(format!("{id}.env"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let table: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("{} is not TOML: {e}\n{text}", path.display()));
        let int = |k: &str| table.get(k).and_then(toml::Value::as_integer).unwrap_or(-1);
        let strings = |k: &str| -> Vec<String> {
            table
                .get(k)
                .and_then(toml::Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        EnvFile {
            id: id.to_string(),
            path: path.clone(),
            from: table
                .get("from")
                .and_then(toml::Value::as_str)
                .unwrap_or_default()
                .to_string(),
            recipients: strings("recipients"),
            delivered: strings("delivered"),
            attempts: int("attempts"),
            created: int("created"),
            next_attempt: int("next_attempt"),
            size: int("size"),
            last_error: table
                .get("last_error")
                .and_then(toml::Value::as_str)
                .map(str::to_string),
            table,
        }
    }

    /// The message file of an entry.
    pub fn data(&self, id: &str) -> Vec<u8> {
        let path = self.dir().join(format!("{id}.data"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Rewrites one key of an entry's envelope (as a person with an editor would).
    pub fn set(&self, id: &str, key: &str, value: toml::Value) {
        let mut entry = self.entry(id);
        entry.table.insert(key.to_string(), value);
        let text = toml::to_string(&entry.table).expect("encode envelope");
        std::fs::write(&entry.path, text).expect("rewrite envelope");
    }

    /// Asserts the spool holds no entry and no leftover of one.
    #[track_caller]
    pub fn assert_empty(&self) {
        assert_eq!(self.entry_files(), Vec::<String>::new(), "spool not empty");
        assert_eq!(self.listing(), "Mail queue is empty\n");
        assert!(
            !self.dir().join("corrupt").exists(),
            "entries were set aside as corrupt"
        );
    }
}

impl Default for Queue {
    fn default() -> Self {
        Queue::new()
    }
}

/// A loopback port that refuses connections for as long as this value lives: a TCP
/// socket bound to 127.0.0.1 and never listening, so no other test's server can be given
/// the same port meanwhile (as could happen with a listener bound and dropped).
pub struct DeadPort {
    _socket: socket2::Socket,
    port: u16,
}

impl DeadPort {
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// A fresh [`DeadPort`]: the relay is down.
pub fn dead_port() -> DeadPort {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket
        .bind(&std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind");
    let port = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("getsockname")
        .port();
    DeadPort {
        _socket: socket,
        port,
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What the body encoder makes of a message: every bare LF and bare CR a CRLF, and a
/// CRLF at the end (RFC 5321 §2.3.8).
pub fn crlf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 16 + 2);
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'\r' if input.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Waits for a child at most `limit`, then kills it; `None` when it had to be killed.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        match child.try_wait().expect("wait for smtpsend") {
            Some(status) => return Some(status),
            None if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            None => thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Spawns the command with `input` written to its stdin from a thread (whose write error
/// is ignored: the child may die or stop reading), stdout and stderr discarded unless
/// `capture`.
pub fn spawn_with_input(
    mut cmd: std::process::Command,
    input: Vec<u8>,
    capture: bool,
) -> (Child, thread::JoinHandle<()>) {
    cmd.stdin(Stdio::piped());
    if capture {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    } else {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    let mut child = cmd.spawn().expect("spawn smtpsend");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    (child, writer)
}

/// Start `builder` on 127.0.0.1:`port`, the port a [`DeadPort`] held (drop it first). A
/// client of another test may hold it as its own end for a moment: tried again for up to
/// five seconds.
pub fn start_on_freed_port(
    builder: impl Fn() -> super::server::Builder,
    port: u16,
) -> super::TestServer {
    let addr = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let started = Instant::now();
    loop {
        match builder().start_at(addr) {
            Ok(server) => return server,
            Err(e) if started.elapsed() < Duration::from_secs(5) => {
                let _ = e;
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("127.0.0.1:{port} is still taken: {e}"),
        }
    }
}

/// The pids of the live background runners of the spool `dir`: processes whose command
/// line holds `--queue-runner` and the spool. (A zombie, ended and not yet reaped by init,
/// has an empty command line.)
pub fn runner_pids(dir: &Path) -> Vec<u32> {
    let dir = dir.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in proc.filter_map(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "--queue-runner") && args.contains(&dir) {
            pids.push(pid);
        }
    }
    pids
}
