//! The queue run (`-q`, `--flush`): every due entry is retried by its own route, those for
//! the same route over one connection, each transaction written behind the one before
//! without waiting for its outcome ([`delivery::deliver_batch`]). What succeeds leaves
//! the spool only after the server's 250 to the end of data; what fails for good, or has
//! waited longer than [`crate::queue::MAX_AGE`], is returned to its sender.

mod direct;

use std::io::{self, Read, Write};
use std::time::SystemTime;

use super::notice::{Notice, Notifier, return_to_sender};
use crate::delivery::log::{Attempt, Logger};
use crate::delivery::remote::{Relay, Remote};
use crate::delivery::route::{Client, RouteSpec};
use crate::delivery::{self, Body, Job, JobOutcome, TakeAlong};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::queue::{Entry, Spool};
use crate::smtp::{Failure, MessageInfo, RcptFailure, SessionError, TraceLine};
use crate::system::signals;

/// How many entries go over one connection before it is closed and another opened.
const BATCH: usize = 100;

/// What a queue run needs from whoever runs it.
pub struct RunOptions {
    pub verbose: bool,
    /// Every entry, due or not (`--flush --all`).
    pub all: bool,
    /// Domains delivered at once on the direct route.
    pub parallel: usize,
    /// Each entry goes by the route it was queued with; false when the run names one
    /// route for all (then entries are grouped by their named account only).
    pub own_routes: bool,
    pub client: Client,
    pub log: Logger,
}

/// The live route of an entry: the one it was queued with, made live by the caller (who
/// knows the config files and the secrets), or for an entry from before routes were kept,
/// the route the run's own settings give.
pub type RouteFor<'a> = dyn Fn(&Entry) -> Result<Remote, Error> + Sync + 'a;

/// What a run needs while it goes: its options, the spool, and how to route an entry.
pub(crate) struct Run<'a> {
    pub opts: &'a RunOptions,
    pub spool: &'a Spool,
    pub route_for: &'a RouteFor<'a>,
}

/// Run the queue once.
pub fn run(
    spool: &Spool,
    opts: &RunOptions,
    route_for: &RouteFor<'_>,
    err: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let Some(_lock) = spool.try_lock_flush()? else {
        if opts.verbose {
            let _ = writeln!(err, "smtpsend: another queue run is active; nothing done");
        }
        return Ok(ExitStatus::Ok);
    };
    let run = Run {
        opts,
        spool,
        route_for,
    };
    let now = SystemTime::now();
    let listing = if opts.all {
        spool.list()?
    } else {
        spool.due(now)?
    };
    for w in &listing.warnings {
        let _ = writeln!(err, "smtpsend: {w}");
    }
    // Entries that go the same way go together: the same route and (for entries from
    // before routes were kept) the same named account.
    let mut groups: Vec<(GroupKey, Vec<Entry>)> = Vec::new();
    for entry in listing.entries {
        if entry.expired(now) {
            let reason = format!(
                "not delivered for {} days; last error: {}",
                crate::queue::MAX_AGE.as_secs() / 86_400,
                entry.last_error.as_deref().unwrap_or("none")
            );
            return_to_sender(&run.notifier(), &entry, &reason, err);
            continue;
        }
        let route = entry.route.clone().filter(|_| opts.own_routes);
        let key = (route, entry.account.clone());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(entry),
            None => groups.push((key, vec![entry])),
        }
    }
    for (_, entries) in groups {
        if signals::stop_requested() {
            break;
        }
        let remote = match route_for(&entries[0]) {
            Ok(remote) => remote,
            Err(e) => {
                record_all(spool, entries, &e.to_string(), err);
                continue;
            }
        };
        for chunk in entries.chunks(BATCH) {
            if signals::stop_requested() {
                break;
            }
            match &remote {
                Remote::Relay(relay) => run.relay(relay, chunk.to_vec(), err),
                Remote::Direct(direct) => run.direct(direct, chunk.to_vec(), err),
            }
        }
    }
    Ok(ExitStatus::Ok)
}

/// At most this many queued entries go along with a message being sent, and at most this
/// many bytes of them: one pipelined flight's worth, so the caller (cron, PHP) is held up
/// for a round trip or two, not for a whole queue run; the rest is the runner's.
pub const TAKE_ALONG_MAX: usize = 32;
pub const TAKE_ALONG_BYTES: u64 = 1 << 20;

/// Send a message now through `relay` (by calling `send`), and take along over the same
/// connection the due entries queued for that very route (`spec`): the relay has just
/// proved it is up. Only when no queue run holds the spool (its flush lock is taken for
/// the while); otherwise, or with nothing due, `send` gets `None`. Outcomes are recorded
/// as in a queue run, and failure notices sent, before the lock goes; entries that got
/// none (the message was not delivered, the connection broke) stay as they were, their
/// back-off untouched. Returns `send`'s result and the ids of the entries that were tried.
pub fn take_along<R>(
    spool: &Spool,
    opts: &RunOptions,
    relay: &Relay,
    spec: &RouteSpec,
    send: impl FnOnce(&mut Option<TakeAlong<'_, '_>>) -> R,
) -> (R, Vec<String>) {
    let now = SystemTime::now();
    let lock = spool.try_lock_flush().ok().flatten();
    let mut bytes = 0u64;
    let entries: Vec<Entry> = match (&lock, spool.due(now)) {
        (Some(_), Ok(listing)) => listing
            .entries
            .into_iter()
            .filter(|e| e.route.as_ref() == Some(spec) && !e.expired(now))
            .take(TAKE_ALONG_MAX)
            .take_while(|e| {
                bytes += e.size;
                bytes <= TAKE_ALONG_BYTES
            })
            .collect(),
        _ => Vec::new(),
    };
    // What is said of these goes to stderr only under -v: the caller asked to send one
    // message, not to run the queue. The log has every outcome.
    let mut said: Box<dyn Write> = if opts.verbose {
        Box::new(io::stderr())
    } else {
        Box::new(io::sink())
    };
    let ready = open_all(spool, entries, &mut said);
    if ready.is_empty() {
        return (send(&mut None), Vec::new());
    }
    // Every entry here was queued for this route: a notice about one goes the same way.
    let route_for = |_: &Entry| Ok(Remote::Relay(Box::new(relay.clone())));
    let run = Run {
        opts,
        spool,
        route_for: &route_for,
    };
    let host = relay.route.host.clone();
    let (entries, mut files): (Vec<Entry>, Vec<std::fs::File>) = ready.into_iter().unzip();
    let jobs = jobs_of(&entries, &mut files);
    let mut pending: Vec<Option<Entry>> = entries.into_iter().map(Some).collect();
    let mut notices: Vec<Notice> = Vec::new();
    let mut tried = Vec::new();
    let mut outcome = |i: usize, outcome: JobOutcome| {
        // Never written to the server: not an attempt, the entry waits as it was.
        if matches!(outcome, JobOutcome::NotAttempted(_)) {
            return;
        }
        if let Some(entry) = pending.get_mut(i).and_then(Option::take) {
            tried.push(entry.id.clone());
            opts.log.job(&attempt(&entry, &host), &outcome, &mut said);
            notices.extend(run.record_outcome(entry, &host, outcome, &mut said));
        }
    };
    let mut idle = || settle(spool);
    let result = send(&mut Some(TakeAlong {
        jobs,
        outcome: &mut outcome,
        idle: &mut idle,
    }));
    settle(spool);
    // While the lock is held: until its notice is out, an entry refused for good is
    // still in the spool, and no other run may send it again.
    for notice in notices {
        notice.send(&run.notifier(), &mut said);
    }
    drop(lock);
    (result, tried)
}

/// One job per entry, each reading its data file.
fn jobs_of<'f>(entries: &[Entry], files: &'f mut [std::fs::File]) -> Vec<Job<'f>> {
    entries
        .iter()
        .zip(files.iter_mut())
        .map(|(entry, file)| Job {
            envelope: entry.envelope(),
            info: info(entry),
            body: Body {
                head: Default::default(),
                rest: file as &mut dyn Read,
                dot_ends_input: entry.dot_ends_input,
            },
        })
        .collect()
}

/// Make the removals of delivered entries durable; a failure is said, not fatal (the
/// envelopes are gone already, so nothing is sent twice).
fn settle(spool: &Spool) {
    if let Err(e) = spool.settle() {
        let _ = writeln!(io::stderr(), "smtpsend: {e}");
    }
}

/// What entries that go together share: a route, and (for entries from before routes
/// were kept) a named account.
type GroupKey = (Option<RouteSpec>, Option<String>);

/// Mark every entry as failed this time, with `reason`.
fn record_all(spool: &Spool, entries: Vec<Entry>, reason: &str, err: &mut dyn Write) {
    for mut entry in entries {
        note_failure(spool, &mut entry, reason, err);
    }
}

/// An attempt failed for now: count it, schedule the next, and say so. A run that was
/// asked to stop records nothing for what it did not get to.
pub(crate) fn note_failure(spool: &Spool, entry: &mut Entry, reason: &str, err: &mut dyn Write) {
    let now = SystemTime::now();
    match spool.record_failure(entry, reason, now) {
        Ok(()) => {
            let _ = writeln!(
                err,
                "smtpsend: {}: deferred for {}: {reason}; next try within {}",
                entry.id,
                entry.recipients.join(", "),
                entry.next_try_in_words(now)
            );
        }
        Err(e) => {
            let _ = writeln!(err, "smtpsend: {}: {e}", entry.id);
        }
    }
}

/// The entries whose data files open, each with its file; the others are reported.
fn open_all(
    spool: &Spool,
    entries: Vec<Entry>,
    err: &mut dyn Write,
) -> Vec<(Entry, std::fs::File)> {
    let mut ready = Vec::new();
    for entry in entries {
        match spool.open_data(&entry) {
            Ok(file) => ready.push((entry, file)),
            Err(e) => {
                let _ = writeln!(err, "smtpsend: {}: {e}", entry.id);
            }
        }
    }
    ready
}

/// What the server may learn about a queued message before its body.
fn info(entry: &Entry) -> MessageInfo {
    MessageInfo {
        size: Some(entry.size),
        eight_bit: entry.eight_bit,
        chunk: None,
        dsn: entry.dsn(),
    }
}

impl Run<'_> {
    /// How this run's failure notices go.
    pub(crate) fn notifier(&self) -> Notifier<'_> {
        Notifier {
            spool: self.spool,
            route_for: self.route_for,
            client: &self.opts.client,
        }
    }

    /// Deliver `entries` (one route, so one relay) over one connection.
    fn relay(&self, relay: &Relay, entries: Vec<Entry>, err: &mut dyn Write) {
        let verbose = self.opts.verbose;
        let ready = open_all(self.spool, entries, err);
        if ready.is_empty() {
            return;
        }
        let opts = relay.session_options(&self.opts.client);
        let (entries, mut files): (Vec<Entry>, Vec<std::fs::File>) = ready.into_iter().unzip();
        let jobs = jobs_of(&entries, &mut files);
        let mut trace = |line: &TraceLine| {
            if verbose {
                let _ = writeln!(
                    io::stderr(),
                    "{}",
                    crate::system::terminal::trace_line(line)
                );
            }
        };
        let host = relay.route.host.clone();
        // Each outcome is written to the spool as soon as the server gave it: a run killed
        // later sends none of the accepted messages again. Failure notices wait until this
        // connection is closed: they go over a connection of their own, and the entry
        // stays in the spool until its notice is out.
        let mut pending: Vec<Option<Entry>> = entries.into_iter().map(Some).collect();
        let mut notices: Vec<Notice> = Vec::new();
        let log = &self.opts.log;
        let spool = self.spool;
        // The replies of one read are recorded together: each delivered entry's envelope
        // is unlinked as its reply is read, and one directory sync makes them all durable
        // before the next wait (`idle`), so a kill leaves few accepted messages to resend.
        let result = delivery::deliver_batch(
            &relay.route,
            opts,
            jobs,
            &mut trace,
            &mut |i, outcome| {
                if let Some(entry) = pending.get_mut(i).and_then(Option::take) {
                    log.job(&attempt(&entry, &host), &outcome, err);
                    notices.extend(self.record_outcome(entry, &host, outcome, err));
                }
            },
            &mut || settle(spool),
        );
        settle(spool);
        for notice in notices {
            notice.send(&self.notifier(), err);
        }
        if let Err(e) = result {
            // The connection could not be set up: every entry waits for the next run.
            let reason = e.to_string();
            for mut entry in pending.into_iter().flatten() {
                log.failure(&attempt(&entry, &host), &e, err);
                note_failure(self.spool, &mut entry, &reason, err);
            }
        }
    }

    /// Write one job's outcome to the spool: remove what was delivered and keep what
    /// failed for now for the next run. What failed for good comes back as a notice.
    fn record_outcome(
        &self,
        mut entry: Entry,
        host: &str,
        outcome: JobOutcome,
        err: &mut dyn Write,
    ) -> Option<Notice> {
        let spool = self.spool;
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
                    if let Err(e) = spool.remove_soon(&entry) {
                        let _ = writeln!(err, "smtpsend: {}: delivered, but {e}", entry.id);
                    } else {
                        let _ = writeln!(
                            err,
                            "smtpsend: {}: delivered to {} via {host}",
                            entry.id,
                            report.accepted.join(", ")
                        );
                    }
                } else {
                    self.keep_for(&mut entry, host, &temporary, err);
                }
                notice
            }
            JobOutcome::Failed(error) => {
                let kind = error.kind();
                let reason = format!("{host}: {error}");
                match (error, kind) {
                    (_, Failure::Transient) => {
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
            JobOutcome::NotAttempted(_) if signals::stop_requested() => None,
            JobOutcome::NotAttempted(why) => {
                note_failure(spool, &mut entry, &why, err);
                None
            }
        }
    }

    /// Some recipients were refused for now: the others are recorded as done, and the
    /// entry waits for the next run for these.
    fn keep_for(
        &self,
        entry: &mut Entry,
        host: &str,
        temporary: &[RcptFailure],
        err: &mut dyn Write,
    ) {
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
        if let Err(e) = self.spool.record_delivered(entry, &done) {
            let _ = writeln!(err, "smtpsend: {}: {e}", entry.id);
        }
        note_failure(self.spool, entry, &reason, err);
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
