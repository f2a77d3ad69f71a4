//! Returning refusals to the sender (`-oem`/`-oee`, and `-bs`): when the caller will never
//! read the exit status (cron passes `-oem`), a recipient refused for good is reported to
//! the envelope sender as an RFC 3464 notification, so the mail is not silently gone. A
//! sender of this host gets it in the local mailbox (after its aliases), another one over
//! the message's own route; failing both, it is appended to `~/dead.letter`. The null
//! sender never gets one: no notice about a notice.

use std::io::Write;
use std::time::SystemTime;

use crate::app::settings::Settings;
use crate::delivery::mailbox;
use crate::delivery::recipients::{LocalPolicy, Target};
use crate::delivery::remote::Remote;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::message::address::Origin;
use crate::message::dsn::{self, FailedRecipient};
use crate::queue::notice;
use crate::smtp::{Reply, SessionError};
use crate::system::identity;

/// The recipients that `error` refused for good, out of `rcpts` (the group it was for);
/// nothing for a failure that is the sender's setup or only for now.
pub(super) fn refused(rcpts: &[String], error: &Error) -> Vec<FailedRecipient> {
    let every = |status: &str, remote_mta: Option<&str>, diagnostic: String| {
        rcpts
            .iter()
            .map(|r| FailedRecipient {
                address: r.clone(),
                status: status.to_string(),
                remote_mta: remote_mta.map(str::to_string),
                diagnostic: diagnostic.clone(),
            })
            .collect()
    };
    match error {
        Error::PartialDelivery {
            host,
            rejected: failures,
        }
        | Error::Session {
            host,
            error: SessionError::NoRecipientAccepted(failures),
        } => failures
            .iter()
            .filter(|f| f.reply.is_permanent())
            .map(|f| FailedRecipient {
                address: f.recipient.clone(),
                status: status(&f.reply),
                remote_mta: Some(host.clone()),
                diagnostic: format!("RCPT TO:<{}>: {}", f.recipient, f.reply),
            })
            .collect(),
        Error::Session {
            host,
            error: e @ SessionError::Refused { reply, .. },
        } if reply.is_permanent() => every(&status(reply), Some(host), e.to_string()),
        Error::NoHost { host, detail } => {
            let status = if detail.contains("null MX") {
                "5.1.10"
            } else {
                "5.1.2"
            };
            every(status, None, format!("{host}: {detail}"))
        }
        e if e.exit_status() == ExitStatus::Unavailable => every("5.0.0", None, e.to_string()),
        _ => Vec::new(),
    }
}

/// RFC 3463 status of a refusal: the server's enhanced code, else its class alone.
fn status(reply: &Reply) -> String {
    match reply.enhanced() {
        Some((class, subject, detail)) => format!("{class}.{subject}.{detail}"),
        None => format!("{}.0.0", reply.class()),
    }
}

/// Send `from` the report about `refused`, quoting `head` (the original's headers).
pub(super) fn report(
    settings: &Settings,
    from: &str,
    refused: &[FailedRecipient],
    head: &[u8],
    route: Option<&Remote>,
    err: &mut dyn Write,
) {
    if from.is_empty() || refused.is_empty() {
        return;
    }
    let reporting_mta = identity::mail_name();
    let boundary = format!("smtpsend-{}", crate::delivery::log::random_id());
    let notice = dsn::compose(&dsn::Report {
        reporting_mta: &reporting_mta,
        sender: from,
        envid: settings.message.dsn.envid.as_deref(),
        arrival: SystemTime::now(),
        recipients: refused,
        original_headers: head,
        boundary: &boundary,
    });
    let outcome = deliver(settings, from, &notice, route);
    match outcome {
        Ok(place) => {
            let _ = writeln!(
                err,
                "smtpsend: a delivery status notification went to <{from}> ({place})"
            );
        }
        Err(e) => {
            let kept = notice::dead_letter(&notice);
            let _ = writeln!(
                err,
                "smtpsend: the delivery status notification to <{from}> failed: {e}; {}",
                match kept {
                    Ok(()) => "appended to ~/dead.letter".to_string(),
                    Err(e) => format!("and dead.letter: {e}"),
                }
            );
        }
    }
}

/// Where the report goes: a sender of this host by its local name (aliases, mailbox),
/// another by the route; returns where it went, in words.
fn deliver(
    settings: &Settings,
    from: &str,
    notice: &[u8],
    route: Option<&Remote>,
) -> Result<String, Error> {
    let (local_part, domain) = from.rsplit_once('@').unwrap_or((from, ""));
    let ours = domain.eq_ignore_ascii_case(&settings.message.sender_domain)
        || domain.eq_ignore_ascii_case(&identity::mail_name());
    let targets = if ours {
        LocalPolicy::new(settings.local.clone()).route(local_part, Origin::Message)?
    } else {
        vec![Target::Remote(from.to_string())]
    };
    let mut places = Vec::new();
    for target in targets {
        match target {
            Target::Mailbox(name) => {
                let mailbox = mailbox::mailbox_for(&name, &settings.local.mail_spool())?;
                mailbox::deliver(&mailbox, "MAILER-DAEMON", &mut &notice[..])?;
                places.push(format!("the mailbox of {name}"));
            }
            Target::Remote(address) => {
                let route = route.ok_or_else(|| {
                    Error::Unavailable(format!("no route for a notice to <{address}>"))
                })?;
                notice::send_to(route, &settings.client, &address, notice)?;
                places.push(format!("<{address}> by {}", route.describe()));
            }
        }
    }
    Ok(places.join(", "))
}
