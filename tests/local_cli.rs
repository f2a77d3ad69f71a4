//! Local names as cron writes them, aliases, and the names the binary is called by.

use std::os::unix::fs::symlink;
use std::path::Path;

use crate::common::*;

fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let spool = dir.join("mail");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(
        &path,
        format!(
            "queue_on_tempfail = false\nmail_spool = \"{}\"\nqueue_dir = \"{}\"\n{extra}",
            spool.display(),
            dir.join("queue").display()
        ),
    )
    .unwrap();
    path
}

fn binary(config: &Path, home: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    // Queue runs in tests are the tests' own: no background runner.
    cmd.env("SMTPSEND_QUEUE_RUNNER", "off");
    cmd.arg("--config")
        .arg(config)
        .env("HOME", home)
        .timeout(CLIENT_LIMIT);
    cmd
}

#[test]
fn bare_local_name_is_delivered_to_the_local_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "aliases = \"/nonexistent/aliases\"\n");
    let mut cmd = binary(&cfg, dir.path());
    cmd.args(["-f", "cron@host.example", "root"]);
    let out = run(cmd, "Subject: disk\n\nFrom the start: 91% used\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mbox = std::fs::read_to_string(dir.path().join("mail/root")).unwrap();
    assert!(mbox.starts_with("From cron@host.example "), "{mbox}");
    assert!(mbox.contains("Subject: disk\n"), "{mbox}");
    assert!(
        mbox.contains("\n>From the start: 91% used\n"),
        "mbox quoting: {mbox}"
    );
    assert!(mbox.ends_with("\n\n"), "{mbox:?}");
}

#[test]
fn alias_to_an_address_and_a_local_name_reaches_both() {
    let dir = tempfile::tempdir().unwrap();
    let aliases = dir.path().join("aliases");
    std::fs::write(&aliases, "# test\nroot: ops@example.org,\n  admin\n").unwrap();
    let cfg = config(
        dir.path(),
        &format!("aliases = \"{}\"\n", aliases.display()),
    );
    let server = TestServer::builder().start();
    let mut cmd = binary(&cfg, dir.path());
    cmd.args(["--host", "127.0.0.1", "--port", &server.port().to_string()])
        .args(["--tls", "off", "-f", "cron@host.example", "root"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    let msg = t.only().message();
    assert_eq!(msg.rcpt_to, vec!["ops@example.org"]);
    assert_eq!(msg.content, MESSAGE.as_bytes());
    let mbox = std::fs::read_to_string(dir.path().join("mail/admin")).unwrap();
    assert!(mbox.contains("Hello, Bob.\n"), "{mbox}");
}

#[test]
fn local_domain_turns_local_names_into_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "aliases = \"/nonexistent\"\nlocal_domain = \"example.org\"\n",
    );
    let server = TestServer::builder().start();
    let mut cmd = binary(&cfg, dir.path());
    cmd.args(["--host", "127.0.0.1", "--port", &server.port().to_string()])
        .args(["--tls", "off", "-f", "cron@host.example", "root"]);
    let out = run(cmd, MESSAGE);
    let t = server.finish();
    assert_exit(&out, 0, &t);
    assert_eq!(t.only().message().rcpt_to, vec!["root@example.org"]);
    assert!(!dir.path().join("mail/root").exists());
}

#[test]
fn called_as_mailq_lists_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let link = dir.path().join("mailq");
    symlink(env!("CARGO_BIN_EXE_smtpsend"), &link).unwrap();
    let out = std::process::Command::new(&link)
        .env("SMTPSEND_CONFIG", &cfg)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Mail queue is empty\n"
    );
}

#[test]
fn called_as_sendmail_takes_sendmail_flags_and_as_newaliases_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "aliases = \"/nonexistent\"\n");
    let sendmail = dir.path().join("sendmail");
    symlink(env!("CARGO_BIN_EXE_smtpsend"), &sendmail).unwrap();
    let out = std::process::Command::new(&sendmail)
        .args(["-bp", "-oi", "-Y"])
        .env("SMTPSEND_CONFIG", &cfg)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Mail queue is empty\n"
    );
    let newaliases = dir.path().join("newaliases");
    symlink(env!("CARGO_BIN_EXE_smtpsend"), &newaliases).unwrap();
    let out = std::process::Command::new(&newaliases)
        .env("SMTPSEND_CONFIG", &cfg)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

/// Issue 15: `-v` names the config file and account in use (an msmtprc as such) and its
/// directives that change nothing here; with no config at all it says that mail goes
/// straight to the exchangers.
#[test]
fn verbose_names_the_config_its_notes_and_the_lack_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let rc = dir.path().join("msmtprc");
    std::fs::write(
        &rc,
        "defaults\nlogfile_time_format %Y\naccount mine\nhost 127.0.0.1\nport 1\nfrom a@example.org\naccount default : mine\n",
    )
    .unwrap();
    std::fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let run_v = |config: Option<&std::path::Path>| {
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .env("SMTPSEND_QUEUE_RUNNER", "off")
            .timeout(std::time::Duration::from_secs(10));
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        // -bv: nothing is sent, the notes come first all the same.
        cmd.args(["-v", "-bv", "bob@example.org"]);
        cmd.output().unwrap()
    };
    let out = run_v(Some(&rc));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "config {} (an msmtprc), account default",
            rc.display()
        )),
        "{err}"
    );
    assert!(err.contains("logfile_time_format"), "{err}");

    let out = run_v(None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("straight to each"),
        "-bv sends nothing: {err}"
    );

    // A send with no config: said before anything happens (the test's DNS server knows
    // no domain, so nothing leaves loopback).
    let dns = crate::common::dns::DnsServer::start(&[]);
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path().join("nowhere"))
        .env("XDG_CONFIG_HOME", dir.path().join("nowhere"))
        .env("SMTPSEND_QUEUE_RUNNER", "off")
        .args(["--dns-server", &dns.addr().to_string(), "--no-queue", "-v"])
        .args(["-f", "a@example.org", "bob@nowhere.test"])
        .write_stdin("Subject: x\n\nhi\n")
        .timeout(std::time::Duration::from_secs(10));
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no config file and no --host: mail goes straight to each"),
        "{err}"
    );

    // Without -v: said once when the message did not get through, never when it did.
    let no_config = |rcpt: &str, mx_port: u16| {
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path().join("nowhere"))
            .env("XDG_CONFIG_HOME", dir.path().join("nowhere"))
            .env("SMTPSEND_QUEUE_RUNNER", "off")
            .args(["--dns-server", &dns.addr().to_string(), "--no-queue"])
            .args(["--mx-port", &mx_port.to_string()])
            .args(["-f", "a@example.org", rcpt])
            .write_stdin("Subject: x\n\nhi\n")
            .timeout(std::time::Duration::from_secs(10));
        cmd.output().unwrap()
    };
    let out = no_config("bob@nowhere.test", 25);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        err.matches("no config file and no --host").count(),
        1,
        "once, without -v, when it failed: {err}"
    );
    let server = crate::common::TestServer::builder().start();
    let out = no_config("bob@[127.0.0.1]", server.port());
    drop(server.finish());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        !err.contains("no config file"),
        "nothing said when it went through: {err}"
    );
}

/// Issue 15 (3): `--dry-run` reads the message and says what a send would do (the
/// envelope sender, where aliases lead, each recipient's route, the header section as it
/// would go) and connects to nothing.
#[test]
fn dry_run_shows_the_envelope_routes_and_headers_and_connects_to_nothing() {
    use crate::common::TestServer;
    let dir = tempfile::tempdir().unwrap();
    let aliases = dir.path().join("aliases");
    std::fs::write(&aliases, "ops: alice@example.org, root\n").unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "aliases = \"{}\"\nmail_spool = \"{}\"\n",
            aliases.display(),
            dir.path().join("mail").display()
        ),
    )
    .unwrap();
    let server = TestServer::builder().start();
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"));
    cmd.env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .env("SMTPSEND_QUEUE_RUNNER", "off")
        .arg("--config")
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &server.port().to_string()])
        .args([
            "--tls",
            "off",
            "--dry-run",
            "-t",
            "-f",
            "me@example.org",
            "ops",
        ])
        .write_stdin("To: bob@example.net\nBcc: secret@example.net\nSubject: hi\n\nbody\n")
        .timeout(std::time::Duration::from_secs(10));
    let out = cmd.output().unwrap();
    let t = server.finish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t.connections.is_empty(), "a dry run connected");
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "envelope sender: me@example.org",
        "alias: ops -> alice@example.org, root",
        "recipient alice@example.org: relay 127.0.0.1:",
        "recipient root: local mailbox ",
        "recipient bob@example.net: relay 127.0.0.1:",
        "recipient secret@example.net: relay",
        "header section as it would be sent:",
        "  Subject: hi",
        "nothing was sent",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    assert!(!text.contains("Bcc:"), "Bcc is never sent:\n{text}");
    assert!(!dir.path().join("mail").exists(), "a mailbox was written");
}

/// Sendmail's `-h N` is the hop count (Postfix and Exim ignore it too): called as
/// sendmail, `-h 17`, `-h17` and a stray bare `-h` at the end leave the message to go as
/// if they were not there, never a clap error about an internal name. Called as smtpsend,
/// a bare `-h` prints the short help.
#[test]
fn sendmails_hop_count_is_ignored_and_smtpsend_h_is_help() {
    let dir = tempfile::tempdir().unwrap();
    let sendmail = dir.path().join("sendmail");
    symlink(env!("CARGO_BIN_EXE_smtpsend"), &sendmail).unwrap();
    for hops in [&["-h", "17"][..], &["-h17"], &[]] {
        let server = TestServer::builder().start();
        let mut cmd = assert_cmd::Command::new(&sendmail);
        let (config, home) = (dir.path().join("c.toml"), dir.path());
        std::fs::write(&config, "queue_on_tempfail = false\n").unwrap();
        cmd.env("SMTPSEND_QUEUE_RUNNER", "off")
            .env("HOME", home)
            .arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &server.port().to_string()])
            .args(["--tls", "off", "-f", SENDER])
            .args(hops)
            .arg(RECIPIENT)
            // A bare -h last, as some callers write it.
            .args(if hops.is_empty() { &["-h"][..] } else { &[] })
            .timeout(CLIENT_LIMIT);
        let out = run(cmd, MESSAGE);
        let t = server.finish();
        assert_exit(&out, 0, &t);
        assert!(!stderr(&out).contains("IGNORED"), "{}", stderr(&out));
        assert_eq!(t.only().message().rcpt_to, [RECIPIENT], "{hops:?}");
    }

    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_smtpsend"))
        .arg("-h")
        .timeout(CLIENT_LIMIT)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.starts_with("smtpsend: send one message"), "{help}");
    for mention in [
        "--check",
        "smtpsend config accounts",
        "smtpsend oauth login",
    ] {
        assert!(
            help.contains(mention),
            "-h does not mention {mention}: {help}"
        );
    }
}
