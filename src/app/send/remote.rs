//! One transaction with a relay or one domain's exchangers, logged, and queued on a
//! temporary failure when queueing is on.

use std::io::Write;

use super::queueing;
use crate::app::settings::Settings;
use crate::delivery::log::{self, Attempt};
use crate::delivery::remote::Remote;
use crate::delivery::{self, Delivered, direct};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::message::input::{Message, Reopen};
use crate::smtp::{Envelope, MessageInfo, SessionOptions, TraceLine};
use crate::system::terminal;

/// Read ahead so a small message's size is known and it can go as one BDAT chunk; what
/// the server may learn about the message before its body (its size whenever it is
/// known).
pub(super) fn message_info(
    settings: &Settings,
    message: &mut Message<'_>,
) -> Result<MessageInfo, Error> {
    let whole = message.read_ahead(delivery::BLOCK)?;
    let head = message.head();
    if memchr::memchr(0, head).is_some() {
        // Refused before connecting when it is already in sight; later in the stream the
        // transfer is abandoned without the final dot.
        return Err(Error::Data(
            "the message contains a NUL byte, which RFC 5322 §3.5 does not allow".into(),
        ));
    }
    let (chunk, size) = if whole {
        let chunk = delivery::encode_chunk(head, settings.message.dot_ends_input);
        let size = chunk.len() as u64;
        (
            (chunk.len() <= delivery::CHUNK_MAX).then_some(chunk),
            Some(size),
        )
    } else {
        // A regular file on stdin, or a stream read to its end, has a size without the
        // body being read: declared as SIZE= (RFC 1870 allows an estimate; the CRLF line
        // ends the wire adds are not counted), so a server that cannot take it says so at
        // MAIL, before the upload.
        (None, message.size())
    };
    Ok(MessageInfo {
        size,
        eight_bit: settings
            .message
            .eight_bit
            .or_else(|| whole.then(|| !head.is_ascii())),
        chunk,
        dsn: settings.message.dsn.clone(),
    })
}

/// What became of a group that did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sent {
    Delivered,
    /// In our own spool, whose runner must be alive.
    Queued,
    /// In the shared spool, whose runner `smtpsend-drop` saw to.
    Dropped,
}

/// One transaction (a relay's, or one domain's), queueing on a temporary failure when
/// the settings say so.
pub(super) fn deliver_group(
    settings: &Settings,
    route: &Remote,
    from: &str,
    rcpts: Vec<String>,
    info: &MessageInfo,
    message: &mut dyn Reopen,
    err: &mut dyn Write,
) -> Result<Sent, Error> {
    if !settings.queue.on_tempfail {
        return attempt(settings, route, from, rcpts, info, message, err)
            .and_then(report)
            .map(|()| Sent::Delivered);
    }
    let outcome = attempt(settings, route, from, rcpts.clone(), info, message, err);
    let (retry, reason, error) = match outcome {
        Ok(delivered) => {
            let (temporary, permanent): (Vec<_>, Vec<_>) = delivered
                .report
                .rejected
                .iter()
                .cloned()
                .partition(|f| f.reply.is_transient());
            if temporary.is_empty() {
                return report(delivered).map(|()| Sent::Delivered);
            }
            let retry: Vec<String> = temporary.iter().map(|f| f.recipient.clone()).collect();
            let reason = temporary
                .iter()
                .map(|f| format!("RCPT TO:<{}>: {}", f.recipient, f.reply))
                .collect::<Vec<_>>()
                .join("; ");
            let error = (!permanent.is_empty()).then(|| Error::PartialDelivery {
                host: delivered.host.clone(),
                rejected: permanent,
            });
            (retry, format!("{}: {reason}", delivered.host), error)
        }
        Err(e) if e.exit_status() == ExitStatus::TempFail => (rcpts, e.to_string(), Some(e)),
        Err(e) => return Err(e),
    };
    let reason = queueing::Reason {
        text: &reason,
        tried: true,
    };
    match queueing::enqueue(settings, from, &retry, reason, message) {
        Ok(queued) => {
            queueing::say_queued(settings, &queued, err);
            // Only permanent refusals remain to report.
            match error {
                Some(e) if e.exit_status() != ExitStatus::TempFail => Err(e),
                _ if queued.dropped => Ok(Sent::Dropped),
                _ => Ok(Sent::Queued),
            }
        }
        Err(spool_error) => {
            let _ = writeln!(err, "smtpsend: could not queue the message: {spool_error}");
            Err(error.unwrap_or(spool_error))
        }
    }
}

/// Send to `rcpts` (all of one domain, for direct delivery) and log the attempt.
fn attempt(
    settings: &Settings,
    route: &Remote,
    from: &str,
    rcpts: Vec<String>,
    info: &MessageInfo,
    message: &mut dyn Reopen,
    err: &mut dyn Write,
) -> Result<Delivered, Error> {
    let opts = SessionOptions {
        size: info.size,
        eight_bit: info.eight_bit,
        chunk: info.chunk.clone(),
        dsn: info.dsn.clone(),
        ..route.session_options(&settings.client)
    };
    let log_id = log::message_id(message.head()).unwrap_or_else(log::random_id);
    let verbose = settings.verbose;
    let mut trace = |line: &TraceLine| {
        if verbose {
            let _ = writeln!(err, "{}", terminal::trace_line(line));
        }
    };
    let envelope = Envelope {
        from: from.to_string(),
        recipients: rcpts.clone(),
    };
    let dot_ends_input = settings.message.dot_ends_input;
    let result = match route {
        Remote::Relay(relay) => queueing::with_take_along(settings, relay, |along| {
            delivery::deliver_message_along(
                &relay.route,
                envelope,
                opts,
                message,
                dot_ends_input,
                &mut trace,
                along,
            )
        }),
        Remote::Direct(direct) => {
            let domain = rcpts[0]
                .rsplit_once('@')
                .map(|(_, d)| d.to_string())
                .unwrap_or_default();
            direct::deliver_domain(
                direct,
                &domain,
                &envelope,
                &opts,
                message,
                dot_ends_input,
                &mut trace,
            )
        }
    };
    let host = match route {
        Remote::Relay(relay) => relay.route.host.clone(),
        Remote::Direct(_) => rcpts
            .first()
            .and_then(|r| r.rsplit_once('@'))
            .map_or(String::new(), |(_, d)| d.to_string()),
    };
    let logged = Attempt {
        id: &log_id,
        from,
        to: &rcpts,
        host: &host,
        size: message.size(),
    };
    settings.log.attempt(&logged, &result, err);
    let delivered = result?;
    if verbose {
        let mut tls = match &delivered.tls {
            Some(t) if delivered.tls_verified => format!("TLS {t}, certificate verified"),
            Some(t) => format!("TLS {t}, certificate not verified"),
            None => "no TLS".into(),
        };
        if let Some(policy) = &delivered.policy {
            tls.push_str(&format!("; TLS policy {policy}"));
        }
        let _ = writeln!(
            err,
            "smtpsend: accepted by {} ({tls}) for {}",
            delivered.host,
            delivered.report.accepted.join(", ")
        );
    }
    Ok(delivered)
}

/// Recipients refused for good are the caller's to hear about.
pub(crate) fn report(delivered: Delivered) -> Result<(), Error> {
    if delivered.report.rejected.is_empty() {
        Ok(())
    } else {
        Err(Error::PartialDelivery {
            host: delivered.host,
            rejected: delivered.report.rejected,
        })
    }
}
