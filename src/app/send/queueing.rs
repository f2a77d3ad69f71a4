//! Queueing instead of failing: the message goes into the spool with the route it was
//! meant for, the caller is told so in one line, and the caller gets success.

use std::io::{self, Read, Write};
use std::process::Command;
use std::time::SystemTime;

use super::maildrop;
use crate::app::settings::Settings;
use crate::delivery::{Delivered, Relay, RouteSpec, TakeAlong};
use crate::error::Error;
use crate::message::input::Reopen;
use crate::queue::run::{self, RunOptions};
use crate::queue::runner::{self, Ensured};
use crate::queue::{Entry, NewEntry, Spool};

/// The spool: `--queue-dir`, the account's `queue_dir`, or the default; with the retry
/// schedule the settings give.
pub fn open_spool(settings: &Settings) -> Result<Spool, Error> {
    Ok(Spool::open(settings.queue.dir.as_deref())?.with_backoff(settings.queue.backoff))
}

/// Why a message is queued, and whether it was tried first.
pub(super) struct Reason<'a> {
    pub text: &'a str,
    /// It was tried and failed for now (else `-odq`: not tried at all).
    pub tried: bool,
}

/// A message put into a spool.
pub(super) struct Queued {
    pub entry: Entry,
    /// Into the shared spool by `smtpsend-drop`, which saw to its runner; nothing more
    /// can be done to the entry from here.
    pub dropped: bool,
}

/// Put the message into the spool for `recipients`: our own, or, when we cannot keep
/// one (a home that is not writable), the shared spool through `smtpsend-drop`.
pub(super) fn enqueue(
    settings: &Settings,
    from: &str,
    recipients: &[String],
    reason: Reason<'_>,
    message: &mut dyn Reopen,
) -> Result<Queued, Error> {
    let dsn = &settings.message.dsn;
    let new = NewEntry {
        from: from.to_string(),
        recipients: recipients.to_vec(),
        account: settings
            .account
            .as_ref()
            .map(|a| a.name.clone())
            .filter(|_| settings.account_chosen),
        route: settings.route_spec().ok().cloned(),
        dsn_notify: dsn.notify.clone(),
        dsn_ret: dsn.ret.clone(),
        dsn_envid: dsn.envid.clone(),
        eight_bit: None,
        reason: Some(reason.text.to_string()),
        dot_ends_input: settings.message.dot_ends_input,
        tried: reason.tried,
    };
    let own_error = if let Some(why) = &settings.queue.drop_only {
        // The config is not ours to read: only the shared spool's runner can send it.
        Error::TempFail(why.clone())
    } else {
        let own = open_spool(settings).and_then(|spool| {
            let (head, rest) = message.reopen()?;
            spool.enqueue(&new, &mut io::Cursor::new(head).chain(rest))
        });
        match own {
            Ok(entry) => {
                return Ok(Queued {
                    entry,
                    dropped: false,
                });
            }
            Err(e) => e,
        }
    };
    let Some((helper, dir)) = crate::queue::maildrop::available(settings.queue.dir.as_deref())
    else {
        return Err(own_error);
    };
    let (head, rest) = message.reopen()?;
    match maildrop::submit(
        &helper,
        dir,
        settings,
        &new,
        &mut io::Cursor::new(head).chain(rest),
    ) {
        Ok(entry) => Ok(Queued {
            entry,
            dropped: true,
        }),
        Err(e) => Err(Error::TempFail(format!(
            "{own_error}; and the shared spool: {e}"
        ))),
    }
}

/// Queue a message whose route could not be set up; `waiting_for_auth` marks it for the
/// next queue run after a login instead of a timer (in our own spool only).
pub(super) fn enqueue_held(
    settings: &Settings,
    from: &str,
    recipients: &[String],
    reason: &str,
    waiting_for_auth: bool,
    message: &mut dyn Reopen,
) -> Result<Queued, Error> {
    let reason = Reason {
        text: reason,
        tried: true,
    };
    let mut queued = enqueue(settings, from, recipients, reason, message)?;
    if waiting_for_auth && !queued.dropped {
        let entry = &mut queued.entry;
        entry.waiting_for_auth = true;
        let spool = open_spool(settings)?;
        let error = entry.last_error.clone().unwrap_or_default();
        // The attempt was counted when the entry was made.
        entry.attempts = entry.attempts.saturating_sub(1);
        spool.record_failure(entry, &error, SystemTime::now())?;
    }
    Ok(queued)
}

/// The one line a caller sees whenever a message is queued instead of delivered: what,
/// for whom, why, and what happens next.
pub(super) fn say_queued(settings: &Settings, queued: &Queued, err: &mut dyn Write) {
    let entry = &queued.entry;
    if entry.waiting_for_auth {
        // The reason, with the hint to sign in, is the error line that follows.
        let _ = writeln!(
            err,
            "smtpsend: queued {} for {}; it goes out once the account is signed in again \
             (mailq to look)",
            entry.id,
            entry.recipients.join(", ")
        );
        return;
    }
    let reason = entry.reason.as_deref().unwrap_or("queued");
    let next = if !settings.queue.runner && !queued.dropped {
        format!(
            "next try at the first queue run after {}",
            entry.next_try_in_words(SystemTime::now())
        )
    } else if entry.attempts == 0 {
        "the queue runner sends it now".to_string()
    } else {
        format!(
            "next try within {}",
            entry.next_try_in_words(SystemTime::now())
        )
    };
    let _ = writeln!(
        err,
        "smtpsend: queued {} for {}: {reason}; {next} (smtpsend -q to retry now, mailq to look)",
        entry.id,
        entry.recipients.join(", ")
    );
}

/// A message was queued: make sure the spool's background runner is alive to send it
/// (woken, or started detached). A failure here loses nothing, the entry is written, but
/// it is said: without a runner the entry waits for `smtpsend -q`.
pub(super) fn ensure_runner(settings: &Settings, err: &mut dyn Write) {
    let started = open_spool(settings).and_then(|spool| {
        let command = runner_command(settings, &spool)?;
        runner::ensure(&spool, command)
    });
    match started {
        Ok(Ensured::Started(pid)) if settings.verbose => {
            let _ = writeln!(
                err,
                "smtpsend: started the background queue runner (pid {pid})"
            );
        }
        Ok(_) => {}
        Err(e) => {
            let _ = writeln!(
                err,
                "smtpsend: the background queue runner could not be started: {e}; \
                 run smtpsend -q to send queued mail"
            );
        }
    }
}

/// This program again, as the runner of `spool`, with the config file it was given.
fn runner_command(settings: &Settings, spool: &Spool) -> Result<Command, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::io("finding this program", e))?;
    let mut command = Command::new(exe);
    command
        .arg("--queue-runner")
        .arg("--queue-dir")
        .arg(spool.dir());
    if let Some(config) = &settings.config_file {
        command.arg("--config").arg(config);
    }
    Ok(command)
}

/// Send through `relay` with `send`, handing it the due entries queued for this same
/// route to take along over the same connection ([`run::take_along`]). Only with
/// queueing on and a spool of our own that is already there; otherwise `send` gets
/// `None`. When the message went through, the relay is up: the other entries waiting for
/// it need not wait out their back-off. They are made due and the runner is woken (or
/// started) to send them; those just tried keep theirs.
pub(super) fn with_take_along(
    settings: &Settings,
    relay: &Relay,
    send: impl FnOnce(&mut Option<TakeAlong<'_, '_>>) -> Result<Delivered, Error>,
) -> Result<Delivered, Error> {
    let spool = match (settings.queue.on_tempfail, settings.route_spec()) {
        (true, Ok(spec)) => Spool::open_if_there(settings.queue.dir.as_deref())
            .ok()
            .flatten()
            .map(|spool| (spool.with_backoff(settings.queue.backoff), spec)),
        _ => None,
    };
    let Some((spool, spec)) = spool else {
        return send(&mut None);
    };
    let opts = RunOptions {
        verbose: settings.verbose,
        all: false,
        parallel: 1,
        own_routes: true,
        client: settings.client.clone(),
        log: settings.log.clone(),
    };
    let (result, tried) = run::take_along(&spool, &opts, relay, spec, send);
    if result.is_ok() {
        // The trace of the send holds the caller's stderr handle; this goes to the same.
        relay_is_up(settings, &spool, spec, &tried, &mut io::stderr());
    }
    result
}

/// The relay took a message: what else waits for it goes now, but for `tried`.
fn relay_is_up(
    settings: &Settings,
    spool: &Spool,
    route: &RouteSpec,
    tried: &[String],
    err: &mut dyn Write,
) {
    match spool.make_due(route, SystemTime::now(), tried) {
        Ok(0) => {}
        Ok(n) => {
            if settings.verbose {
                let _ = writeln!(
                    err,
                    "smtpsend: the relay took this message: {n} queued for it go out now"
                );
            }
            if settings.queue.runner {
                ensure_runner(settings, err);
            }
        }
        // The message itself was delivered; the queue is looked after by its runner.
        Err(e) if settings.verbose => {
            let _ = writeln!(err, "smtpsend: note: {e}");
        }
        Err(_) => {}
    }
}
