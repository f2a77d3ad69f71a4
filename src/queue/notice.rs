//! Telling a sender that their message failed: a notice from the null sender (so it can
//! never bounce back) over the entry's own route; when that fails too, into
//! `dead.letter`, the traditional last resort. A message from the null sender is not
//! answered.

use std::io::{self, Read, Write};

use super::{Entry, Spool};
use crate::delivery::remote::Remote;
use crate::delivery::route::Client;
use crate::delivery::{self, Body, direct};
use crate::error::Error;
use crate::smtp::{Envelope, RcptFailure};
use crate::system::identity;

/// What sending a notice needs: the spool the entry is in, how to route the entry (its
/// notice goes the same way), and how we present ourselves.
pub(crate) struct Notifier<'a> {
    pub spool: &'a Spool,
    pub route_for: &'a (dyn Fn(&Entry) -> Result<Remote, Error> + Sync + 'a),
    pub client: &'a Client,
}

/// A failure notice still to send, and whether the entry goes once it is sent.
pub(crate) enum Notice {
    /// Some recipients refused for good; the entry's fate was recorded already.
    Recipients {
        entry: Entry,
        host: String,
        failures: Vec<RcptFailure>,
        remove: bool,
    },
    /// The whole message failed for good: notify, then remove.
    Whole { entry: Entry, reason: String },
}

impl Notice {
    pub(crate) fn send(self, run: &Notifier<'_>, err: &mut dyn Write) {
        match self {
            Notice::Recipients {
                entry,
                host,
                failures,
                remove,
            } => {
                bounce_recipients(run, &entry, &host, &failures, err);
                if remove && let Err(e) = run.spool.remove(&entry) {
                    let _ = writeln!(err, "smtpsend: {}: {e}", entry.id);
                }
            }
            Notice::Whole { entry, reason } => return_to_sender(run, &entry, &reason, err),
        }
    }
}

/// Notify the sender of the recipients refused for good.
pub(crate) fn bounce_recipients(
    run: &Notifier<'_>,
    entry: &Entry,
    host: &str,
    failures: &[RcptFailure],
    err: &mut dyn Write,
) {
    let reason = failures
        .iter()
        .map(|f| format!("{host}: RCPT TO:<{}>: {}", f.recipient, f.reply))
        .collect::<Vec<_>>()
        .join("\n");
    let mut partial = entry.clone();
    partial.recipients = failures.iter().map(|f| f.recipient.clone()).collect();
    notify_sender(run, &partial, &reason, err);
}

/// Give up on an entry: tell its sender, then remove it.
pub(crate) fn return_to_sender(
    run: &Notifier<'_>,
    entry: &Entry,
    reason: &str,
    err: &mut dyn Write,
) {
    notify_sender(run, entry, reason, err);
    if let Err(e) = run.spool.remove(entry) {
        let _ = writeln!(err, "smtpsend: {}: {e}", entry.id);
    }
}

/// Send the sender a failure notice over the entry's route, else into `dead.letter`.
pub(crate) fn notify_sender(run: &Notifier<'_>, entry: &Entry, reason: &str, err: &mut dyn Write) {
    let _ = writeln!(
        err,
        "smtpsend: {}: returning to <{}>: {reason}",
        entry.id, entry.from
    );
    if entry.from.is_empty() {
        return;
    }
    let mut original = Vec::new();
    if let Ok(file) = run.spool.open_data(entry) {
        // The headers and the start of the body are enough to recognise the message.
        let _ = file.take(64 * 1024).read_to_end(&mut original);
    }
    let notice = failure_notice(entry, reason, &original);
    let sent = (run.route_for)(entry)
        .and_then(|remote| send_to(&remote, run.client, &entry.from, &notice));
    if let Err(e) = sent {
        let _ = writeln!(
            err,
            "smtpsend: {}: the failure notice failed too: {e}",
            entry.id
        );
        if let Err(e) = dead_letter(&notice) {
            let _ = writeln!(err, "smtpsend: {}: dead.letter: {e}", entry.id);
        }
    }
}

/// One notice to `to` from the null sender over `remote`.
pub(crate) fn send_to(
    remote: &Remote,
    client: &Client,
    to: &str,
    notice: &[u8],
) -> Result<(), Error> {
    let opts = remote.session_options(client);
    let envelope = Envelope {
        from: String::new(),
        recipients: vec![to.to_string()],
    };
    let mut rest = io::empty();
    let body = Body {
        head: notice.into(),
        rest: &mut rest,
        dot_ends_input: false,
    };
    match remote {
        Remote::Relay(relay) => {
            delivery::deliver(&relay.route, envelope, opts, body, &mut |_| {}).map(|_| ())
        }
        Remote::Direct(route) => {
            let domain = to.rsplit_once('@').map_or("", |(_, d)| d).to_string();
            let mut message = crate::message::input::Message::from_bytes(notice.to_vec());
            direct::deliver_domain(
                route,
                &domain,
                &envelope,
                &opts,
                &mut message,
                false,
                &mut |_| {},
            )
            .map(|_| ())
        }
    }
}

/// The notice: plain text naming the recipients and the reason, then the original's start.
pub(crate) fn failure_notice(entry: &Entry, reason: &str, original: &[u8]) -> Vec<u8> {
    let host = identity::mail_name();
    let mut out = Vec::new();
    let _ = write!(
        out,
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: <{from}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         This is smtpsend on {host}.\r\n\
         \r\n\
         Your message (queue id {id}) could not be delivered to:\r\n",
        from = entry.from,
        id = entry.id,
    );
    for r in &entry.recipients {
        let _ = write!(out, "    <{r}>\r\n");
    }
    let _ = write!(out, "\r\nReason:\r\n");
    for line in reason.lines() {
        let _ = write!(out, "    {line}\r\n");
    }
    let _ = write!(out, "\r\n--- The start of your message follows ---\r\n\r\n");
    out.extend_from_slice(original);
    out
}

/// Append the notice to `~/dead.letter` (mode 0600), the traditional last resort.
pub(crate) fn dead_letter(notice: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let home = std::env::var_os("HOME").ok_or_else(|| io::Error::other("HOME is not set"))?;
    let path = std::path::Path::new(&home).join("dead.letter");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(notice)?;
    file.write_all(b"\n")?;
    file.sync_all()
}
