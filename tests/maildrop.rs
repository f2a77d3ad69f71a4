//! Every local user can queue (issue 14): a daemon's user whose home is not writable and
//! who cannot read the system config (PHP under `www-data`, a config of root:smtpsend
//! 0640) hands its message to the set-group-ID `smtpsend-drop`, and the runner that
//! starts delivers it once the relay is up. Another user can neither read nor remove it.
//!
//! Real users and a real set-group-ID program: the test makes a group and two users of
//! its own (removed again at the end) and a private copy of the binaries, so it needs
//! root, as CI has; run as anyone else it says so and checks nothing.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::spool::{dead_port, runner_pids, start_on_freed_port};
use crate::common::{MESSAGE, RECIPIENT, TestServer};

/// A group, two users and a directory of the test's own; all removed when dropped.
struct Sandbox {
    group: String,
    users: Vec<String>,
    dir: tempfile::TempDir,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for user in &self.users {
            let _ = Command::new("userdel").arg(user).output();
        }
        let _ = Command::new("groupdel").arg(&self.group).output();
    }
}

fn sh(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn id(flag: &str, user: &str) -> u32 {
    let out = sh("id", &[flag, user]);
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

impl Sandbox {
    /// `None` (with a word on stderr) when not run as root.
    fn new(config: impl Fn(&Sandbox) -> String) -> Option<Sandbox> {
        if rustix::process::geteuid().as_raw() != 0 {
            eprintln!("maildrop tests need root (to make users and a set-group-ID program)");
            return None;
        }
        let tag = format!("{:x}", std::process::id() ^ rand_tag());
        let group = format!("sdg{tag}");
        sh("groupadd", &[&group]);
        let mut sandbox = Sandbox {
            group,
            users: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        let root = sandbox.dir.path().to_path_buf();
        let nosuid = rustix::fs::statvfs(&root)
            .is_ok_and(|v| v.f_flag.contains(rustix::fs::StatVfsMountFlags::NOSUID));
        if nosuid {
            eprintln!(
                "{} is on a nosuid mount: set TMPDIR elsewhere",
                root.display()
            );
            return None;
        }
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A home the users cannot write, as /var/www is for www-data.
        std::fs::create_dir(root.join("home")).unwrap();
        for n in ["w", "o"] {
            let user = format!("sd{n}{tag}");
            sh(
                "useradd",
                &[
                    "-M",
                    "-U",
                    "-d",
                    &root.join("home").to_string_lossy(),
                    &user,
                ],
            );
            sandbox.users.push(user);
        }
        // The binaries: smtpsend-drop set-group-ID to the spool group, smtpsend beside it.
        let bin = root.join("bin");
        std::fs::create_dir(&bin).unwrap();
        for name in ["smtpsend", "smtpsend-drop"] {
            let from = Path::new(env!("CARGO_BIN_EXE_smtpsend"))
                .parent()
                .unwrap()
                .join(name);
            std::fs::copy(&from, bin.join(name)).unwrap();
        }
        let drop = bin.join("smtpsend-drop");
        sh(
            "chown",
            &[&format!("root:{}", sandbox.group), &drop.to_string_lossy()],
        );
        sh("chmod", &["2755", &drop.to_string_lossy()]);
        // The shared spool, as the install step makes /var/spool/smtpsend-drop.
        let spool = sandbox.spool();
        std::fs::create_dir(&spool).unwrap();
        sh(
            "chown",
            &[&format!("root:{}", sandbox.group), &spool.to_string_lossy()],
        );
        sh("chmod", &["2770", &spool.to_string_lossy()]);
        // A log directory the runner (in the spool group) may write.
        let log = root.join("log");
        std::fs::create_dir(&log).unwrap();
        sh(
            "chown",
            &[&format!("root:{}", sandbox.group), &log.to_string_lossy()],
        );
        sh("chmod", &["2770", &log.to_string_lossy()]);
        // The system config, readable by the spool group only.
        std::fs::write(sandbox.config(), config(&sandbox)).unwrap();
        let shown = sandbox.config().to_string_lossy().into_owned();
        sh("chown", &[&format!("root:{}", sandbox.group), &shown]);
        sh("chmod", &["0640", &shown]);
        Some(sandbox)
    }

    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("log/runner.log")
    }

    /// The runner's log, for a failure's message.
    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("smtpsend.conf")
    }

    /// `smtpsend ARGS` as `user`, with a clean environment and HOME the unwritable home.
    fn as_user(&self, user: &str, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", id("-u", user)))
            .arg(format!("--regid={}", id("-g", user)))
            .arg("--init-groups")
            .arg("--")
            .arg(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.dir.path().join("home"));
        cmd
    }

    fn smtpsend(&self, user: &str, args: &[&str]) -> Command {
        let bin = self.dir.path().join("bin/smtpsend");
        let mut all: Vec<&str> = Vec::new();
        let config = self.config().to_string_lossy().into_owned();
        let spool = self.spool().to_string_lossy().into_owned();
        all.extend(["--config", &config, "--queue-dir", &spool]);
        all.extend(args);
        self.as_user(user, &bin.to_string_lossy(), &all)
    }

    /// The `.env` names in the spool (read as root).
    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.spool())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // Not a rewrite in progress (`.tmp-ID.env`): the entry it replaces is there.
            .filter(|n| n.ends_with(".env") && !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    /// The relay comes up on `port` (its dead port dropped): waits for the runner to
    /// send everything and end; what the relay saw.
    #[track_caller]
    fn relay_comes_up(&self, port: u16) -> crate::common::Transcript {
        let server = start_on_freed_port(
            || {
                TestServer::builder()
                    .connections(usize::MAX)
                    .deadline(Duration::from_secs(30))
            },
            port,
        );
        let delivered = wait_until(Duration::from_secs(20), || {
            self.entries().is_empty() && self.runners().is_empty()
        });
        let t = server.finish();
        assert!(delivered, "left: {:?}\n{}", self.entries(), self.log_text());
        t
    }

    /// The pids of the spool's runners.
    fn runners(&self) -> Vec<u32> {
        runner_pids(&self.spool())
    }
}

fn rand_tag() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    check()
}

fn send(cmd: &mut Command) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(MESSAGE.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn relay_config(sandbox: &Sandbox, port: u16) -> String {
    format!(
        "queue_on_tempfail = true\nqueue_retry_first = 1\nqueue_retry_max = 2\n\
         host = \"127.0.0.1\"\nport = {port}\ntls = \"off\"\nlogfile = \"{}\"\n",
        sandbox.log().display()
    )
}

#[test]
fn a_daemon_that_cannot_read_the_config_or_write_its_home_still_gets_its_mail_out() {
    let down = dead_port();
    let port = down.port();
    let Some(sandbox) = Sandbox::new(|s| relay_config(s, port)) else {
        return;
    };
    let www = sandbox.users[0].clone();
    let other = sandbox.users[1].clone();

    let out = send(&mut sandbox.smtpsend(&www, &["-f", "www@example.org", RECIPIENT]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.starts_with("smtpsend: queued "), "{err}");
    assert!(err.contains("for the shared spool's runner"), "{err}");
    let entries = sandbox.entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let queue_id = entries[0].trim_end_matches(".env").to_string();

    // The runner runs as the user with the spool group as its effective group, and the
    // kernel keeps the user from looking into it (its /proc files are root's).
    assert!(
        wait_until(Duration::from_secs(5), || sandbox.runners().len() == 1),
        "no runner"
    );
    let pid = sandbox.runners()[0];
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let gids: Vec<u32> = status
        .lines()
        .find_map(|l| l.strip_prefix("Gid:"))
        .unwrap()
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    let spool_gid = std::fs::metadata(sandbox.spool()).unwrap().gid();
    assert_eq!(gids[0], id("-g", &www), "real group: {status}");
    assert_eq!(gids[1], spool_gid, "effective group: {status}");
    let environ = std::fs::metadata(format!("/proc/{pid}/environ")).unwrap();
    assert_eq!(
        environ.uid(),
        0,
        "the runner is dumpable: its user could ptrace it"
    );

    // Another user can neither read nor remove the entry.
    let data = sandbox.spool().join(format!("{queue_id}.data"));
    let cat = sandbox
        .as_user(&other, "cat", &[&data.to_string_lossy()])
        .output()
        .unwrap();
    assert!(!cat.status.success(), "another user read the message");
    let ls = sandbox
        .as_user(&other, "ls", &[&sandbox.spool().to_string_lossy()])
        .output()
        .unwrap();
    assert!(!ls.status.success(), "another user listed the spool");
    let remove = sandbox
        .smtpsend(&other, &["--queue-remove", &queue_id])
        .output()
        .unwrap();
    assert!(!remove.status.success(), "another user removed the entry");
    assert_eq!(
        sandbox.entries().len(),
        1,
        "{}\n{}",
        sandbox.log_text(),
        String::from_utf8_lossy(&sh("ls", &["-laR", &sandbox.dir.path().to_string_lossy()]).stdout)
    );

    // The relay comes up: the runner delivers and ends.
    drop(down);
    let t = sandbox.relay_comes_up(port);
    let accepted: Vec<_> = t
        .connections
        .iter()
        .flat_map(|c| &c.messages)
        .filter(|m| m.accepted)
        .collect();
    assert_eq!(accepted.len(), 1, "{}", sandbox.log_text());
    assert_eq!(accepted[0].mail_from, "www@example.org");
    assert_eq!(accepted[0].rcpt_to, [RECIPIENT]);
}

/// A config the user may read, a home it may not write: it tries the relay itself, and
/// when that fails the message goes to the shared spool instead of being lost.
#[test]
fn a_user_without_a_writable_home_queues_into_the_shared_spool_after_a_failed_try() {
    let down = dead_port();
    let port = down.port();
    let Some(sandbox) = Sandbox::new(|s| relay_config(s, port)) else {
        return;
    };
    // Readable by all: nothing secret in it.
    sh("chmod", &["0644", &sandbox.config().to_string_lossy()]);
    let www = sandbox.users[0].clone();
    let out = send(&mut sandbox.smtpsend(&www, &["-f", "www@example.org", RECIPIENT]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("connection refused; next try within"), "{err}");
    assert_eq!(sandbox.entries().len(), 1);
    drop(down);
    let t = sandbox.relay_comes_up(port);
    assert_eq!(t.connections.iter().flat_map(|c| &c.messages).count(), 1);
}
