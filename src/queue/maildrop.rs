//! The maildrop: how a local user who cannot keep a spool of their own (a daemon's user
//! whose home is not writable: PHP under `www-data`) still queues mail. The small
//! set-group-ID program `smtpsend-drop` (group `smtpsend`) does only this: it writes one
//! entry into the shared spool [`DROP_SPOOL`] (root:smtpsend, mode 2770) and makes sure a
//! runner is alive for it, as Postfix's `postdrop` writes into the maildrop. The user
//! cannot list, read or remove anyone's entries: only the group may enter the spool, and
//! the program offers nothing but a submission. Entries there carry no route of the
//! user's choosing: they go by the system config's account (by name, or the default).
//!
//! The runner it starts keeps the spool group as its effective group while its real group
//! stays the user's: the kernel then treats it as set-group-ID (not dumpable, so the user
//! cannot ptrace it or read its memory; the loader ignores `LD_PRELOAD`), and it gets an
//! empty environment and only a config file of root's.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::runner::{self, Ensured};
use super::{Backoff, Entry, NewEntry, Spool};
use crate::error::Error;

/// The program's name, installed beside `smtpsend`.
pub const PROGRAM: &str = "smtpsend-drop";

/// The shared spool, made by the install step (root:smtpsend, mode 2770).
pub const DROP_SPOOL: &str = "/var/spool/smtpsend-drop";

/// The helper beside this program and the shared spool to drop into, when there are
/// both: `queue_dir` when it is a shared spool, else [`DROP_SPOOL`] when no spool was
/// named (a spool the caller named that failed is the caller's to fix).
pub fn available(queue_dir: Option<&Path>) -> Option<(PathBuf, Option<PathBuf>)> {
    let exe = std::env::current_exe().ok()?;
    let helper = exe.parent()?.join(PROGRAM);
    let meta = std::fs::metadata(&helper).ok()?;
    if !meta.is_file() || meta.mode() & 0o2000 == 0 {
        return None;
    }
    match queue_dir {
        Some(dir) => looks_shared(dir).then(|| (helper, Some(dir.to_path_buf()))),
        None => looks_shared(Path::new(DROP_SPOOL)).then_some((helper, None)),
    }
}

/// Whether `dir` is laid out as a shared spool (root's, set-group-ID, 2770), whatever
/// its group: where a caller outside the group submits through [`PROGRAM`].
pub fn looks_shared(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir).is_ok_and(|m| super::fs::is_shared(&m, m.gid()))
}

/// What a submission carries besides the message.
#[derive(Debug, Default)]
pub struct Submission {
    /// A shared spool other than the system one (it must be one all the same).
    pub queue_dir: Option<PathBuf>,
    /// The config the runner uses: root's, and only root may change it.
    pub config: Option<PathBuf>,
    pub entry: NewEntry,
}

/// The argument list `smtpsend-drop` takes, built by the sender and parsed by the
/// program: `--name value` pairs, then `--` and the recipients. Every value goes through
/// the spool's own checks (no control characters) before it is written.
pub fn arguments(sub: &Submission) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut pair = |name: &str, value: OsString| {
        args.push(name.into());
        args.push(value);
    };
    if let Some(dir) = &sub.queue_dir {
        pair("--queue-dir", dir.into());
    }
    if let Some(config) = &sub.config {
        pair("--config", config.into());
    }
    let e = &sub.entry;
    pair("--from", e.from.clone().into());
    for (name, value) in [
        ("--account", &e.account),
        ("--dsn-notify", &e.dsn_notify),
        ("--dsn-ret", &e.dsn_ret),
        ("--dsn-envid", &e.dsn_envid),
        ("--reason", &e.reason),
    ] {
        if let Some(v) = value {
            pair(name, v.clone().into());
        }
    }
    if let Some(eight_bit) = e.eight_bit {
        pair("--8bit", if eight_bit { "yes" } else { "no" }.into());
    }
    if e.dot_ends_input {
        args.push("--dot".into());
    }
    if e.tried {
        args.push("--tried".into());
    }
    args.push("--".into());
    args.extend(e.recipients.iter().map(OsString::from));
    args
}

/// [`arguments`] read back; a usage error names what is wrong.
pub fn parse(args: &[String]) -> Result<Submission, Error> {
    let mut sub = Submission::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| Error::Usage(format!("{arg} needs a value")))
        };
        let e = &mut sub.entry;
        match arg.as_str() {
            "--" => {
                e.recipients = it.by_ref().cloned().collect();
                break;
            }
            "--queue-dir" => sub.queue_dir = Some(value()?.into()),
            "--config" => sub.config = Some(value()?.into()),
            "--from" => e.from = value()?,
            "--account" => e.account = Some(value()?),
            "--dsn-notify" => e.dsn_notify = Some(value()?),
            "--dsn-ret" => e.dsn_ret = Some(value()?),
            "--dsn-envid" => e.dsn_envid = Some(value()?),
            "--reason" => e.reason = Some(value()?),
            "--8bit" => e.eight_bit = Some(value()? == "yes"),
            "--dot" => e.dot_ends_input = true,
            "--tried" => e.tried = true,
            other => return Err(Error::Usage(format!("unknown argument {other:?}"))),
        }
    }
    Ok(sub)
}

/// Write the entry into the shared spool and make sure its runner is alive.
pub fn submit(sub: &Submission, data: &mut dyn Read) -> Result<(Entry, Ensured), Error> {
    let dir = sub
        .queue_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DROP_SPOOL));
    let backoff = match &sub.config {
        Some(config) => {
            check_roots(config)?;
            retry_schedule(config)?
        }
        None => Backoff::default(),
    };
    let spool = Spool::open_shared(&dir)?.with_backoff(backoff);
    let entry = spool.enqueue(&sub.entry, data)?;
    let ensured = runner::ensure(&spool, runner_command(&dir, sub.config.as_deref())?)?;
    Ok((entry, ensured))
}

/// A config the runner may trust: a regular file of root's that nobody else may change.
fn check_roots(config: &Path) -> Result<(), Error> {
    let shown = config.display();
    let meta = std::fs::symlink_metadata(config)
        .map_err(|e| crate::system::private::open_failure(config, &e))?;
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(Error::Config(format!(
            "{shown}: the queue runner of a shared spool takes only a regular file of \
             root's that group and others cannot write"
        )));
    }
    Ok(())
}

/// The retry schedule the config's default account sets, for the entry's first wait.
fn retry_schedule(config: &Path) -> Result<Backoff, Error> {
    let default = Backoff::default();
    let Some(config) = crate::config::load(Some(config))? else {
        return Ok(default);
    };
    let account = config.account(None)?;
    let first = account
        .queue_retry_first
        .map_or(default.first, std::time::Duration::from_secs);
    let max = account
        .queue_retry_max
        .map_or(default.max, std::time::Duration::from_secs);
    Ok(Backoff {
        first,
        max: max.max(first),
    })
}

/// `smtpsend --queue-runner` beside this program, with an empty environment: nothing of
/// the user's (HOME, XDG directories, `SMTPSEND_CONFIG`) may choose what it reads.
fn runner_command(dir: &Path, config: Option<&Path>) -> Result<Command, Error> {
    let me = std::env::current_exe().map_err(|e| Error::io("finding this program", e))?;
    let smtpsend = me
        .parent()
        .map(|d| d.join("smtpsend"))
        .ok_or_else(|| Error::Config(format!("{} has no directory", me.display())))?;
    let mut command = Command::new(smtpsend);
    command
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .arg("--queue-runner")
        .arg("--queue-dir")
        .arg(dir);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_read_back_to_the_same_entry() {
        let sub = Submission {
            queue_dir: Some("/var/spool/x".into()),
            config: Some("/etc/smtpsend.conf".into()),
            entry: NewEntry {
                from: "www-data@host.example".into(),
                recipients: vec!["a@example.org".into(), "--not-a-flag@example.org".into()],
                account: Some("web".into()),
                dsn_notify: Some("FAILURE".into()),
                dsn_ret: None,
                dsn_envid: Some("E1".into()),
                eight_bit: Some(true),
                reason: Some("relay: connection refused".into()),
                dot_ends_input: true,
                tried: true,
                route: None,
            },
        };
        let args: Vec<String> = arguments(&sub)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let back = parse(&args).unwrap();
        assert_eq!(back.queue_dir, sub.queue_dir);
        assert_eq!(back.config, sub.config);
        assert_eq!(back.entry.from, sub.entry.from);
        assert_eq!(back.entry.recipients, sub.entry.recipients);
        assert_eq!(back.entry.account, sub.entry.account);
        assert_eq!(back.entry.dsn_notify, sub.entry.dsn_notify);
        assert_eq!(back.entry.dsn_envid, sub.entry.dsn_envid);
        assert_eq!(back.entry.eight_bit, Some(true));
        assert_eq!(back.entry.reason, sub.entry.reason);
        assert!(back.entry.dot_ends_input && back.entry.tried);
    }

    #[test]
    fn unknown_or_incomplete_arguments_are_usage_errors() {
        assert!(parse(&["--bogus".into()]).is_err());
        assert!(parse(&["--from".into()]).is_err());
    }

    #[test]
    fn a_directory_of_our_own_is_not_a_shared_spool() {
        let dir = tempfile::tempdir().unwrap();
        let err = Spool::open_shared(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is not a shared spool"), "{err}");
    }
}
