//! Queueing instead of failing: the message goes into the spool with the route it was
//! meant for, and the caller gets success.

use std::io::{self, Read};

use crate::app::settings::Settings;
use crate::error::Error;
use crate::message::input::Reopen;
use crate::queue::{NewEntry, Spool};

/// The spool: `--queue-dir`, the account's `queue_dir`, or the default.
pub fn open_spool(settings: &Settings) -> Result<Spool, Error> {
    Spool::open(settings.queue.dir.as_deref())
}

/// Put the message into the spool for `recipients`; returns its id.
pub(super) fn enqueue(
    settings: &Settings,
    from: &str,
    recipients: &[String],
    reason: &str,
    message: &mut dyn Reopen,
) -> Result<String, Error> {
    let spool = open_spool(settings)?;
    let dsn = &settings.message.dsn;
    let (head, rest) = message.reopen()?;
    let entry = spool.enqueue(
        &NewEntry {
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
            reason: Some(reason.to_string()),
            dot_ends_input: settings.message.dot_ends_input,
        },
        &mut io::Cursor::new(head).chain(rest),
    )?;
    Ok(entry.id)
}

/// Queue a message whose route could not be set up; `waiting_for_auth` marks it for the
/// listing as waiting for someone to log in.
pub(super) fn enqueue_held(
    settings: &Settings,
    from: &str,
    recipients: &[String],
    reason: &str,
    waiting_for_auth: bool,
    message: &mut dyn Reopen,
) -> Result<String, Error> {
    let id = enqueue(settings, from, recipients, reason, message)?;
    if waiting_for_auth {
        let spool = open_spool(settings)?;
        let listing = spool.list()?;
        if let Some(mut entry) = listing.entries.into_iter().find(|e| e.id == id) {
            entry.waiting_for_auth = true;
            spool.record_failure(&mut entry, reason, std::time::SystemTime::now())?;
        }
    }
    Ok(id)
}
