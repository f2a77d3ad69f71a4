//! A queue run's direct deliveries: per domain, every entry with recipients there goes
//! over one connection to the domain's exchangers, pipelined, and the domains go at once.

use std::io::Write;
use std::sync::Mutex;

use super::{Run, attempt, info, note_failure, open_all};
use crate::delivery::JobOutcome;
use crate::delivery::direct::{self, Direct};
use crate::delivery::log::Attempt;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::message::input::{Reopen, Shared};
use crate::queue::notice::{bounce_recipients, notify_sender};
use crate::queue::{Entry, Spool};
use crate::smtp::{Envelope, Failure, RcptFailure, TraceLine};
use crate::system::signals;

impl Run<'_> {
    /// Retry entries by direct delivery: per domain, every entry with recipients there goes
    /// over one connection to the domain's exchangers, pipelined. Recipients accepted are
    /// recorded at once; those refused for good are returned to the sender once the domains
    /// are done; the others wait for the next run.
    pub(super) fn direct(&self, direct: &Direct, entries: Vec<Entry>, err: &mut dyn Write) {
        let (verbose, spool, log) = (self.opts.verbose, self.spool, &self.opts.log);
        let ready = open_all(spool, entries, err);
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
        let opts = direct.session_options(&self.opts.client);
        let lock = || {
            shared
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        let outputs =
            crate::delivery::pool::run(
                &domains,
                self.opts.parallel,
                &|(domain, members): &(String, Vec<Member>), out: &mut Vec<u8>| {
                    if signals::stop_requested() {
                        // Not started: these recipients wait, with nothing to record.
                        let (_, tally) = &mut *lock();
                        for (i, rcpts) in members {
                            tally[*i].waiting.extend(rcpts.iter().cloned());
                        }
                        return;
                    }
                    let mut trace = |line: &TraceLine| {
                        if verbose {
                            let _ = writeln!(out, "{}", crate::system::terminal::trace_line(line));
                        }
                    };
                    let mut readers: Vec<Shared<'_>> = members
                        .iter()
                        .map(|(i, _)| Shared::whole_file(&files[*i]))
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
                                    info: info(entry),
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
            tally.settle(self, entry, err);
        }
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
                match spool.record_delivered(entry, &report.accepted) {
                    Err(e) => {
                        let _ = writeln!(err, "smtpsend: {}: {e}", entry.id);
                    }
                    Ok(()) if !report.accepted.is_empty() => {
                        let _ = writeln!(
                            err,
                            "smtpsend: {}: delivered to {} via {host}",
                            entry.id,
                            report.accepted.join(", ")
                        );
                    }
                    Ok(()) => {}
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
            JobOutcome::Failed(error) if error.kind() == Failure::Transient => {
                self.reasons.push(format!("{host}: {error}"));
                self.waiting.extend(rcpts.iter().cloned());
            }
            JobOutcome::Failed(error) => {
                self.failed
                    .push((rcpts.to_vec(), format!("{host}: {error}")));
            }
            JobOutcome::NotAttempted(why) => {
                if !signals::stop_requested() {
                    self.reasons.push(why);
                }
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
    fn settle(self, run: &Run<'_>, mut entry: Entry, err: &mut dyn Write) {
        let spool = run.spool;
        for (host, failures) in &self.refused {
            bounce_recipients(&run.notifier(), &entry, host, failures, err);
        }
        for (rcpts, reason) in &self.failed {
            let mut failed = entry.clone();
            failed.recipients = rcpts.clone();
            notify_sender(&run.notifier(), &failed, reason, err);
        }
        if entry.recipients.is_empty() {
            // Every recipient accepted: record_delivered removed the entry.
            return;
        }
        if self.waiting.is_empty() {
            if let Err(e) = spool.remove(&entry) {
                let _ = writeln!(err, "smtpsend: {}: {e}", entry.id);
            } else if run.opts.verbose {
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
        // Recipients left untried by a run that was stopped wait without a failure counted.
        if !self.reasons.is_empty() {
            note_failure(spool, &mut entry, &self.reasons.join("; "), err);
        }
    }
}
