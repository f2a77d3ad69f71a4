//! The queue runner (`-q`, `--flush`): every due entry is retried, those for the same
//! relay over one connection, each transaction written behind the one before without
//! waiting for its outcome ([`delivery::deliver_batch`]). What succeeds leaves the
//! spool only after the server's 250 to the end of data; what fails for good, or has
//! waited longer than [`crate::queue::MAX_AGE`], is returned to its sender.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::app::cli::Cli;
use crate::app::send::{self, At, Relay, Remote};
use crate::config::Account;
use crate::delivery::direct::{self, Direct, Reopen};
use crate::delivery::log::{Attempt, Logger};
use crate::delivery::{self, Body, Job, JobOutcome};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::queue::{Entry, Spool};
use crate::smtp::{Envelope, MessageInfo, RcptFailure, SessionError, SessionOptions, TraceLine};
use crate::system::identity;

/// How many entries go over one connection before it is closed and another opened.
const BATCH: usize = 100;

/// Run the queue once.
pub fn run(cli: &Cli, err: &mut dyn Write) -> Result<ExitStatus, Error> {
    let verbose = cli.verbose > 0;
    let default_account = send::load_account(cli)?;
    let spool = send::open_spool(cli, default_account.as_ref())?;
    let Some(_lock) = spool.try_lock_flush()? else {
        if verbose {
            let _ = writeln!(err, "smtpsend: another queue run is active; nothing done");
        }
        return Ok(ExitStatus::Ok);
    };
    let now = SystemTime::now();
    let listing = if cli.all {
        spool.list()?
    } else {
        spool.due(now)?
    };
    for w in &listing.warnings {
        let _ = writeln!(err, "smtpsend: {w}");
    }
    let mut groups: BTreeMap<Option<String>, Vec<Entry>> = BTreeMap::new();
    for entry in listing.entries {
        if entry.expired(now) {
            let reason = format!(
                "not delivered for {} days; last error: {}",
                crate::queue::MAX_AGE.as_secs() / 86_400,
                entry.last_error.as_deref().unwrap_or("none")
            );
            return_to_sender(cli, &spool, &entry, &reason, err);
            continue;
        }
        groups.entry(entry.account.clone()).or_default().push(entry);
    }
    for (account, entries) in groups {
        let acct = match &account {
            Some(name) => match load_named(cli, name) {
                Ok(a) => a,
                Err(e) => {
                    record_all(&spool, entries, &e.to_string(), err);
                    continue;
                }
            },
            None => default_account.clone(),
        };
        for chunk in entries.chunks(BATCH) {
            flush_group(cli, acct.as_ref(), &spool, chunk.to_vec(), err);
        }
    }
    Ok(ExitStatus::Ok)
}

fn load_named(cli: &Cli, name: &str) -> Result<Option<Account>, Error> {
    let mut named = cli.clone();
    named.account = Some(name.to_string());
    send::load_account(&named)
}

/// Mark every entry as failed this time, with `reason`.
fn record_all(spool: &Spool, entries: Vec<Entry>, reason: &str, err: &mut dyn Write) {
    for mut entry in entries {
        note_failure(spool, &mut entry, reason, err);
    }
}

fn note_failure(spool: &Spool, entry: &mut Entry, reason: &str, err: &mut dyn Write) {
    if let Err(e) = spool.record_failure(entry, reason, SystemTime::now()) {
        let _ = writeln!(err, "smtpsend: {}: {e}", entry.id);
    }
}

/// Deliver `entries` (same account, so the same relay) over one connection.
fn flush_group(
    cli: &Cli,
    acct: Option<&Account>,
    spool: &Spool,
    entries: Vec<Entry>,
    err: &mut dyn Write,
) {
    let verbose = cli.verbose > 0;
    let log = Logger::from_cli(cli, acct);
    let relay: Relay = match send::remote_settings(cli, acct) {
        Ok(Remote::Relay(r)) => *r,
        Ok(Remote::Direct(direct)) => {
            return flush_direct(cli, acct, &direct, spool, entries, &log, err);
        }
        Err(e) => return record_all(spool, entries, &e.to_string(), err),
    };
    // Open every data file first: an entry whose file is damaged is reported and skipped.
    let mut ready: Vec<(Entry, std::fs::File)> = Vec::new();
    for entry in entries {
        match spool.open_data(&entry) {
            Ok(file) => ready.push((entry, file)),
            Err(e) => {
                let _ = writeln!(err, "smtpsend: {}: {e}", entry.id);
            }
        }
    }
    if ready.is_empty() {
        return;
    }
    let opts = SessionOptions {
        ehlo_name: cli
            .ehlo
            .clone()
            .or_else(|| acct.and_then(|a| a.ehlo.clone()))
            .unwrap_or_else(identity::mail_name),
        credentials: relay.credentials.clone(),
        mechanism: cli.auth.or(acct.and_then(|a| a.auth)),
        allow_plaintext_auth: cli.insecure_auth || acct.is_some_and(|a| a.insecure_auth),
        pipelining: !cli.no_pipelining,
        trace: verbose,
        ..SessionOptions::default()
    };
    let (entries, mut files): (Vec<Entry>, Vec<std::fs::File>) = ready.into_iter().unzip();
    let jobs: Vec<Job<'_>> = entries
        .iter()
        .zip(files.iter_mut())
        .map(|(entry, file)| Job {
            envelope: entry.envelope(),
            info: MessageInfo {
                size: Some(entry.size),
                eight_bit: entry.eight_bit,
                chunk: None,
                dsn: entry.dsn(),
            },
            body: Body {
                head: Vec::new(),
                rest: file as &mut dyn Read,
                dot_ends_input: entry.dot_ends_input,
            },
        })
        .collect();
    let mut trace = |line: &TraceLine| {
        if verbose {
            let _ = writeln!(io::stderr(), "{}", crate::app::terminal::trace_line(line));
        }
    };
    let host = relay.route.host.clone();
    // Each outcome is written to the spool as soon as the server gave it: a run killed
    // later sends none of the accepted messages again.
    // Failure notices wait until this connection is closed: they go over a connection of
    // their own, and the entry stays in the spool until its notice is out.
    let mut pending: Vec<Option<Entry>> = entries.into_iter().map(Some).collect();
    let mut notices: Vec<Notice> = Vec::new();
    let result =
        delivery::deliver_batch(&relay.route, opts, jobs, &mut trace, &mut |i, outcome| {
            if let Some(entry) = pending.get_mut(i).and_then(Option::take) {
                log.job(&attempt(&entry, &host), &outcome, err);
                if let Some(notice) = record_outcome(cli, spool, entry, &host, outcome, err) {
                    notices.push(notice);
                }
            }
        });
    for notice in notices {
        notice.send(cli, spool, err);
    }
    if let Err(e) = result {
        // The connection could not be set up: every entry waits for the next run.
        let reason = e.to_string();
        for mut entry in pending.into_iter().flatten() {
            log.failure(&attempt(&entry, &host), &e, err);
            note_failure(spool, &mut entry, &reason, err);
        }
    }
}

/// A failure notice still to send, and whether the entry goes once it is sent.
enum Notice {
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
    fn send(self, cli: &Cli, spool: &Spool, err: &mut dyn Write) {
        match self {
            Notice::Recipients {
                entry,
                host,
                failures,
                remove,
            } => {
                bounce_recipients(cli, spool, &entry, &host, &failures, err);
                if remove && let Err(e) = spool.remove(&entry) {
                    let _ = writeln!(err, "smtpsend: {}: {e}", entry.id);
                }
            }
            Notice::Whole { entry, reason } => return_to_sender(cli, spool, &entry, &reason, err),
        }
    }
}

/// Write one job's outcome to the spool: remove what was delivered and keep what failed
/// for now for the next run. What failed for good comes back as a notice to send.
fn record_outcome(
    cli: &Cli,
    spool: &Spool,
    mut entry: Entry,
    host: &str,
    outcome: JobOutcome,
    err: &mut dyn Write,
) -> Option<Notice> {
    let verbose = cli.verbose > 0;
    match outcome {
        JobOutcome::Delivered(report, _) => {
            let (temporary, permanent): (Vec<RcptFailure>, Vec<RcptFailure>) = report
                .rejected
                .into_iter()
                .partition(|f| f.reply.is_transient());
            if !permanent.is_empty() && temporary.is_empty() {
                // Delivered to everyone else: the entry goes once the notice is out.
                return Some(Notice::Recipients {
                    entry,
                    host: host.to_string(),
                    failures: permanent,
                    remove: true,
                });
            }
            let notice = (!permanent.is_empty()).then(|| Notice::Recipients {
                entry: entry.clone(),
                host: host.to_string(),
                failures: permanent.clone(),
                remove: false,
            });
            if temporary.is_empty() {
                if let Err(e) = spool.remove(&entry) {
                    let _ = writeln!(err, "smtpsend: {}: delivered, but {e}", entry.id);
                } else if verbose {
                    let _ = writeln!(err, "smtpsend: {}: delivered via {host}", entry.id);
                }
            } else {
                let done: Vec<String> = entry
                    .recipients
                    .iter()
                    .filter(|r| !temporary.iter().any(|t| &t.recipient == *r))
                    .cloned()
                    .collect();
                let reason = temporary
                    .iter()
                    .map(|f| format!("{host}: RCPT TO:<{}>: {}", f.recipient, f.reply))
                    .collect::<Vec<_>>()
                    .join("; ");
                if let Err(e) = spool.record_delivered(&mut entry, &done) {
                    let _ = writeln!(err, "smtpsend: {}: {e}", entry.id);
                }
                note_failure(spool, &mut entry, &reason, err);
            }
            notice
        }
        JobOutcome::Failed(error) => {
            let status = error.exit_status();
            let reason = format!("{host}: {error}");
            match (error, status) {
                (_, ExitStatus::TempFail) => {
                    note_failure(spool, &mut entry, &reason, err);
                    None
                }
                (SessionError::NoRecipientAccepted(failures), _) => Some(Notice::Recipients {
                    entry,
                    host: host.to_string(),
                    failures,
                    remove: true,
                }),
                (error, _) if error.is_auth() => {
                    entry.waiting_for_auth = true;
                    note_failure(spool, &mut entry, &reason, err);
                    None
                }
                (SessionError::Protocol(_) | SessionError::BadReply { .. }, _) => {
                    note_failure(spool, &mut entry, &reason, err);
                    None
                }
                _ => Some(Notice::Whole { entry, reason }),
            }
        }
        JobOutcome::NotAttempted(why) => {
            note_failure(spool, &mut entry, &why, err);
            None
        }
    }
}

/// Retry entries by direct delivery: per domain, every entry with recipients there goes
/// over one connection to the domain's exchangers, pipelined. Recipients accepted are
/// recorded at once; those refused for good are returned to the sender once the domains
/// are done; the others wait for the next run.
fn flush_direct(
    cli: &Cli,
    acct: Option<&Account>,
    direct: &Direct,
    spool: &Spool,
    entries: Vec<Entry>,
    log: &Logger,
    err: &mut dyn Write,
) {
    let verbose = cli.verbose > 0;
    let mut ready: Vec<(Entry, std::fs::File)> = Vec::new();
    for entry in entries {
        match spool.open_data(&entry) {
            Ok(file) => ready.push((entry, file)),
            Err(e) => {
                let _ = writeln!(err, "smtpsend: {}: {e}", entry.id);
            }
        }
    }
    let (entries, files): (Vec<Entry>, Vec<std::fs::File>) = ready.into_iter().unzip();
    // Each domain with the entries (by index) that have recipients there.
    let mut domains: Vec<(String, Vec<Member>)> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        for (domain, rcpts) in direct::by_domain(&entry.recipients) {
            match domains.iter_mut().find(|(d, _)| *d == domain) {
                Some((_, members)) => members.push((i, rcpts)),
                None => domains.push((domain, vec![(i, rcpts)])),
            }
        }
    }
    let tally: Vec<Tally> = entries.iter().map(|_| Tally::default()).collect();
    // Domains go at once on the pool's threads; an entry's record is written under the
    // lock as each outcome comes.
    let shared = Mutex::new((entries, tally));
    let opts = SessionOptions {
        ehlo_name: cli.ehlo.clone().unwrap_or_else(identity::mail_name),
        pipelining: !cli.no_pipelining,
        trace: verbose,
        ..SessionOptions::default()
    };
    let lock = || {
        shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    };
    let outputs = crate::delivery::pool::run(
        &domains,
        send::parallel(cli, acct),
        &|(domain, members): &(String, Vec<Member>), out: &mut Vec<u8>| {
            let mut trace = |line: &TraceLine| {
                if verbose {
                    let _ = writeln!(out, "{}", crate::app::terminal::trace_line(line));
                }
            };
            let mut readers: Vec<At<'_>> = members
                .iter()
                .map(|(i, _)| At {
                    file: &files[*i],
                    pos: 0,
                })
                .collect();
            let mut jobs: Vec<direct::DomainJob<'_>> = {
                let (entries, _) = &*lock();
                members
                    .iter()
                    .zip(readers.iter_mut())
                    .map(|((i, rcpts), message)| {
                        let entry = &entries[*i];
                        direct::DomainJob {
                            envelope: Envelope {
                                from: entry.from.clone(),
                                recipients: rcpts.clone(),
                            },
                            info: MessageInfo {
                                size: Some(entry.size),
                                eight_bit: entry.eight_bit,
                                chunk: None,
                                dsn: entry.dsn(),
                            },
                            message: message as &mut dyn Reopen,
                            dot_ends_input: entry.dot_ends_input,
                        }
                    })
                    .collect()
            };
            let mut notes = Vec::new();
            let result = direct::deliver_domain_batch(
                direct,
                domain,
                &opts,
                &mut jobs,
                &mut trace,
                &mut |k, host, outcome| {
                    let (i, rcpts) = &members[k];
                    let (entries, tally) = &mut *lock();
                    let entry = &mut entries[*i];
                    let logged = Attempt {
                        to: rcpts,
                        ..attempt(entry, domain)
                    };
                    log.job(&logged, &outcome, &mut notes);
                    tally[*i].take(spool, entry, host, rcpts, outcome, &mut notes);
                },
            );
            out.extend_from_slice(&notes);
            if let Err(e) = result {
                let (entries, tally) = &mut *lock();
                for (i, rcpts) in members {
                    let logged = Attempt {
                        to: rcpts,
                        ..attempt(&entries[*i], domain)
                    };
                    log.failure(&logged, &e, out);
                    tally[*i].failed(rcpts, &e);
                }
            }
        },
    );
    for (out, ()) in outputs {
        let _ = err.write_all(&out);
    }
    let (entries, tally) = shared
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for (entry, tally) in entries.into_iter().zip(tally) {
        tally.settle(cli, spool, entry, err);
    }
}

/// An entry (by index) and its recipients in one domain.
type Member = (usize, Vec<String>);

/// What became of one entry's recipients in a direct queue run, domain by domain.
#[derive(Default)]
struct Tally {
    /// Recipients that wait for the next run, and why.
    waiting: Vec<String>,
    reasons: Vec<String>,
    /// Refused for good: returned to the sender once every domain is done.
    refused: Vec<(String, Vec<RcptFailure>)>,
    failed: Vec<(Vec<String>, String)>,
}

impl Tally {
    /// One domain's outcome. What was accepted is recorded in the spool at once, so a run
    /// killed later does not send it again.
    fn take(
        &mut self,
        spool: &Spool,
        entry: &mut Entry,
        host: &str,
        rcpts: &[String],
        outcome: JobOutcome,
        err: &mut dyn Write,
    ) {
        match outcome {
            JobOutcome::Delivered(report, _) => {
                if let Err(e) = spool.record_delivered(entry, &report.accepted) {
                    let _ = writeln!(err, "smtpsend: {}: {e}", entry.id);
                }
                let (temporary, permanent): (Vec<RcptFailure>, Vec<RcptFailure>) = report
                    .rejected
                    .into_iter()
                    .partition(|f| f.reply.is_transient());
                for f in temporary {
                    self.reasons
                        .push(format!("{host}: RCPT TO:<{}>: {}", f.recipient, f.reply));
                    self.waiting.push(f.recipient);
                }
                if !permanent.is_empty() {
                    self.refused.push((host.to_string(), permanent));
                }
            }
            JobOutcome::Failed(error) if error.exit_status() == ExitStatus::TempFail => {
                self.reasons.push(format!("{host}: {error}"));
                self.waiting.extend(rcpts.iter().cloned());
            }
            JobOutcome::Failed(error) => {
                self.failed
                    .push((rcpts.to_vec(), format!("{host}: {error}")));
            }
            JobOutcome::NotAttempted(why) => {
                self.reasons.push(why);
                self.waiting.extend(rcpts.iter().cloned());
            }
        }
    }

    /// The domain could not be delivered to at all.
    fn failed(&mut self, rcpts: &[String], e: &Error) {
        if e.exit_status() == ExitStatus::TempFail {
            self.reasons.push(e.to_string());
            self.waiting.extend(rcpts.iter().cloned());
        } else {
            self.failed.push((rcpts.to_vec(), e.to_string()));
        }
    }

    /// Send the notices, then remove the entry or keep it for the recipients waiting.
    fn settle(self, cli: &Cli, spool: &Spool, mut entry: Entry, err: &mut dyn Write) {
        for (host, failures) in &self.refused {
            bounce_recipients(cli, spool, &entry, host, failures, err);
        }
        for (rcpts, reason) in &self.failed {
            let mut failed = entry.clone();
            failed.recipients = rcpts.clone();
            notify_sender(cli, spool, &failed, reason, err);
        }
        if entry.recipients.is_empty() {
            // Every recipient accepted: record_delivered removed the entry.
            return;
        }
        if self.waiting.is_empty() {
            if let Err(e) = spool.remove(&entry) {
                let _ = writeln!(err, "smtpsend: {}: {e}", entry.id);
            } else if cli.verbose > 0 {
                let _ = writeln!(err, "smtpsend: {}: done", entry.id);
            }
            return;
        }
        let finished: Vec<String> = entry
            .recipients
            .iter()
            .filter(|r| !self.waiting.contains(r))
            .cloned()
            .collect();
        if !finished.is_empty()
            && let Err(e) = spool.record_delivered(&mut entry, &finished)
        {
            let _ = writeln!(err, "smtpsend: {}: {e}", entry.id);
        }
        note_failure(spool, &mut entry, &self.reasons.join("; "), err);
    }
}

/// What the log records of a queued message, whatever became of it.
fn attempt<'a>(entry: &'a Entry, host: &'a str) -> Attempt<'a> {
    Attempt {
        id: &entry.id,
        from: &entry.from,
        to: &entry.recipients,
        host,
        size: Some(entry.size),
    }
}

fn bounce_recipients(
    cli: &Cli,
    spool: &Spool,
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
    notify_sender(cli, spool, &partial, &reason, err);
}

/// Give up on an entry: tell its sender, then remove it.
fn return_to_sender(cli: &Cli, spool: &Spool, entry: &Entry, reason: &str, err: &mut dyn Write) {
    notify_sender(cli, spool, entry, reason, err);
    if let Err(e) = spool.remove(entry) {
        let _ = writeln!(err, "smtpsend: {}: {e}", entry.id);
    }
}

/// A failure notice to the envelope sender through the relay, from the null sender (so it
/// can never bounce back); when that fails too, into `dead.letter` in the home directory
/// of the user running the queue. A message from the null sender is not answered.
fn notify_sender(cli: &Cli, spool: &Spool, entry: &Entry, reason: &str, err: &mut dyn Write) {
    let _ = writeln!(
        err,
        "smtpsend: {}: returning to <{}>: {reason}",
        entry.id, entry.from
    );
    if entry.from.is_empty() {
        return;
    }
    let mut original = Vec::new();
    if let Ok(file) = spool.open_data(entry) {
        // The headers and the start of the body are enough to recognise the message.
        let _ = file.take(64 * 1024).read_to_end(&mut original);
    }
    let notice = failure_notice(entry, reason, &original);
    let sent = send::load_account(cli)
        .and_then(|acct| send::relay_settings(cli, acct.as_ref()).map(|r| (acct, r)))
        .and_then(|(acct, relay)| {
            let opts = SessionOptions {
                ehlo_name: cli
                    .ehlo
                    .clone()
                    .or_else(|| acct.as_ref().and_then(|a| a.ehlo.clone()))
                    .unwrap_or_else(identity::mail_name),
                credentials: relay.credentials.clone(),
                allow_plaintext_auth: cli.insecure_auth,
                ..SessionOptions::default()
            };
            let mut rest = io::empty();
            delivery::deliver(
                &relay.route,
                Envelope {
                    from: String::new(),
                    recipients: vec![entry.from.clone()],
                },
                opts,
                Body {
                    head: notice.clone(),
                    rest: &mut rest,
                    dot_ends_input: false,
                },
                &mut |_| {},
            )
        });
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

/// The notice: plain text naming the recipients and the reason, then the original's start.
fn failure_notice(entry: &Entry, reason: &str, original: &[u8]) -> Vec<u8> {
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
fn dead_letter(notice: &[u8]) -> io::Result<()> {
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
