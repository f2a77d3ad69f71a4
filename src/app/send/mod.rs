//! The send mode: one message from standard input (or composed from flags) to its
//! recipients: local mailboxes, a relay, or each domain's exchangers; queued on a
//! temporary failure.

mod bounce;
mod dry_run;
mod maildrop;
mod queueing;
mod remote;
mod sign;

use std::io::{Read, Seek, SeekFrom, Write};

use crate::app::routes;
use crate::app::settings::{self, ComposeRequest, MailErrors, Settings};
use crate::delivery::mailbox;
use crate::delivery::recipients::{LocalPolicy, Target};
use crate::delivery::remote::Remote;
use crate::delivery::{self, direct};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::message::address::Origin;
use crate::message::dsn::FailedRecipient;
use crate::message::input::{Input, Message, private_temp_file};
use crate::message::{self, PrepareOptions};
use crate::smtp::SessionError;
use crate::system::identity;

pub use queueing::open_spool;

/// Send the message the settings describe; diagnostics go to `err`.
pub fn run(
    settings: &Settings,
    input: Input<'_>,
    err: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let from = settings.envelope_sender()?;
    let mut policy = LocalPolicy::new(settings.local.clone());
    let mut targets = Vec::new();
    // Each recipient as given and where it leads (aliases expanded), for --dry-run.
    let mut asked: Vec<(String, Vec<Target>)> = Vec::new();
    for r in &settings.recipients {
        let routed = policy.route(r, Origin::CommandLine)?;
        asked.push((r.clone(), routed.clone()));
        add_targets(&mut targets, routed);
    }
    let input = match &settings.compose {
        Some(request) => Input::File(compose(
            settings,
            request,
            &from,
            &mut policy,
            &mut targets,
            input,
        )?),
        None => input,
    };
    let (prepared, input) = prepare(settings, &from, input)?;
    for r in &prepared.recipients {
        let routed = policy.route(r, Origin::Message)?;
        asked.push((r.clone(), routed.clone()));
        add_targets(&mut targets, routed);
    }
    if targets.is_empty() {
        return Err(if settings.message.read_recipients {
            Error::Data(
                "no recipients: none in the To, Cc or Bcc headers (-t) nor as arguments".into(),
            )
        } else {
            Error::Usage("no recipients: name them as arguments or use -t".into())
        });
    }
    if settings.dry_run {
        return dry_run::show(settings, &from, &asked, &targets, &prepared.head);
    }
    let remote = remote_addresses(&targets);
    let mailboxes: Vec<String> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Mailbox(name) => Some(name.clone()),
            Target::Remote(_) => None,
        })
        .collect();
    let mut job = Send {
        settings,
        from,
        failures: Vec::new(),
        queued: false,
        refused: Vec::new(),
    };
    // Settle everything that can fail on configuration before the input is consumed. A
    // route that cannot be set up for now (an OAuth token that cannot be refreshed, a
    // resolver configuration that cannot be read) holds the message back in the spool.
    let (route, held_back) = job.route(&remote)?;
    let groups = match &route {
        None => Vec::new(),
        // A relay takes every remote recipient in one transaction; direct delivery makes
        // one per domain.
        Some(Remote::Relay(_)) => vec![remote.clone()],
        Some(Remote::Direct(_)) => direct::by_domain(&remote)
            .into_iter()
            .map(|(_, rcpts)| rcpts)
            .collect(),
    };
    let destinations = groups.len() + mailboxes.len() + usize::from(held_back.is_some());
    // Mail that leaves the host is signed; a local mailbox gets the same copy then, and
    // mail for local mailboxes only is not signed.
    let signer = settings.dkim.as_deref().filter(|_| !remote.is_empty());
    // Signing reads the whole message before the first byte is sent: it must be kept.
    let keep = destinations > 1 || settings.queue.on_tempfail || signer.is_some();
    let mut message = Message::new(prepared.head, input, keep)?;
    if let Some(signer) = signer {
        sign::sign(settings, signer, &mut message, err)?;
    }
    job.mailboxes(&mut message, &mailboxes, err);
    if let Some(error) = held_back {
        job.hold_back(&mut message, &remote, error, err);
    }
    if let Some(route) = &route {
        job.remote(&mut message, route, groups, err);
    }
    if job.queued && settings.queue.runner {
        queueing::ensure_runner(settings, err);
    }
    job.mail_back(message.head(), route.as_ref(), err);
    if !settings.verbose
        && settings.direct_for_want_of_config()
        && (job.queued || !job.failures.is_empty())
    {
        let _ = writeln!(err, "{}", settings::NO_CONFIG_NOTE);
    }
    job.finish(err)
}

/// One send under way: what it is, and what failed so far.
struct Send<'s> {
    settings: &'s Settings,
    from: String,
    failures: Vec<Error>,
    /// Something went into the spool: the queue runner must be running.
    queued: bool,
    /// Recipients refused for good, for the report `-oem` asks for.
    refused: Vec<FailedRecipient>,
}

impl Send<'_> {
    /// Mail the refusals back to the sender when the settings ask for it
    /// ([`MailErrors`]): always for a caller that never reads the exit status, or (`-bs`)
    /// only when every failure is one the SMTP client was not told of.
    fn mail_back(&self, head: &[u8], route: Option<&Remote>, err: &mut dyn Write) {
        let unseen = self
            .failures
            .iter()
            .all(|e| matches!(e, Error::PartialDelivery { .. }));
        let report = match self.settings.message.mail_errors {
            MailErrors::Never => false,
            MailErrors::Always => true,
            MailErrors::Unseen => unseen,
        };
        if report {
            bounce::report(self.settings, &self.from, &self.refused, head, route, err);
        }
    }

    /// The live route for the remote recipients, or the error that holds the message back
    /// (queued) when it is a temporary one and queueing is on.
    fn route(&self, remote: &[String]) -> Result<(Option<Remote>, Option<Error>), Error> {
        if remote.is_empty() {
            return Ok((None, None));
        }
        let spec = self.settings.route_spec()?;
        match routes::open(spec, self.settings.account.as_ref(), &self.settings.client) {
            Ok(route) => Ok((Some(route), None)),
            Err(e)
                if self.settings.queue.on_tempfail
                    && matches!(e.exit_status(), ExitStatus::TempFail | ExitStatus::NoPerm) =>
            {
                Ok((None, Some(e)))
            }
            Err(e) => Err(e),
        }
    }

    /// Deliver to each local mailbox.
    fn mailboxes(&mut self, message: &mut Message<'_>, names: &[String], err: &mut dyn Write) {
        for name in names {
            let result =
                mailbox::mailbox_for(name, &self.settings.local.mail_spool()).and_then(|mailbox| {
                    let sender = if self.from.is_empty() {
                        "MAILER-DAEMON"
                    } else {
                        &self.from
                    };
                    mailbox::deliver(&mailbox, sender, &mut message.reader()?)
                });
            match result {
                Ok(bytes) if self.settings.verbose => {
                    let _ = writeln!(
                        err,
                        "smtpsend: delivered {bytes} bytes to the mailbox of {name}"
                    );
                }
                Ok(_) => {}
                Err(e) => self.failures.push(e),
            }
        }
    }

    /// Every remote group: queued with `-odq`, else delivered (queued on a temporary
    /// failure when queueing is on).
    fn remote(
        &mut self,
        message: &mut Message<'_>,
        route: &Remote,
        groups: Vec<Vec<String>>,
        err: &mut dyn Write,
    ) {
        if self.settings.queue.only || self.settings.queue.drop_only.is_some() {
            let remote: Vec<String> = groups.concat();
            let text = match &self.settings.queue.drop_only {
                Some(why) => format!("for the shared spool's runner ({why})"),
                None => "queued with --queue (-odq)".to_string(),
            };
            let reason = queueing::Reason {
                text: &text,
                tried: false,
            };
            match queueing::enqueue(self.settings, &self.from, &remote, reason, message) {
                Ok(entry) => self.say_queued(&entry, err),
                Err(e) => self.failures.push(e),
            }
            return;
        }
        let info = match remote::message_info(self.settings, message) {
            Ok(info) => info,
            Err(e) => return self.failures.push(e),
        };
        let parallel = self.settings.parallel;
        if groups.len() > 1 && parallel > 1 && matches!(route, Remote::Direct(_)) {
            // Domains are independent: a small pool delivers them at once, each reading the
            // shared copy at its own offset.
            let shared = match message.share() {
                Ok(shared) => shared,
                Err(e) => return self.failures.push(e),
            };
            let (settings, from) = (self.settings, self.from.as_str());
            let results = delivery::pool::run(
                &groups,
                parallel,
                &|rcpts: &Vec<String>, out: &mut Vec<u8>| {
                    let mut own = shared;
                    remote::deliver_group(
                        settings,
                        route,
                        from,
                        rcpts.clone(),
                        &info,
                        &mut own,
                        out,
                    )
                },
            );
            for (rcpts, (out, result)) in groups.iter().zip(results) {
                let _ = err.write_all(&out);
                self.take(rcpts, result);
            }
        } else {
            for rcpts in groups {
                let result = remote::deliver_group(
                    self.settings,
                    route,
                    &self.from,
                    rcpts.clone(),
                    &info,
                    message,
                    err,
                );
                self.take(&rcpts, result);
            }
        }
    }

    /// One group's outcome: delivered, queued, or failed (and which of `rcpts` were
    /// refused for good).
    fn take(&mut self, rcpts: &[String], result: Result<remote::Sent, Error>) {
        match result {
            Ok(sent) => self.queued |= sent == remote::Sent::Queued,
            Err(e) => {
                self.refused.extend(bounce::refused(rcpts, &e));
                self.failures.push(e);
            }
        }
    }

    /// Tell the caller the message was queued, and remember that our own spool needs its
    /// runner (`smtpsend-drop` saw to the shared spool's).
    fn say_queued(&mut self, queued: &queueing::Queued, err: &mut dyn Write) {
        queueing::say_queued(self.settings, queued, err);
        self.queued |= !queued.dropped;
    }

    /// Queue a message whose route could not be set up. A login that is needed is the
    /// caller's business too, so it still exits 77 (with the hint to log in).
    fn hold_back(
        &mut self,
        message: &mut Message<'_>,
        remote: &[String],
        error: Error,
        err: &mut dyn Write,
    ) {
        let needs_person = error.exit_status() == ExitStatus::NoPerm;
        let reason = error.to_string();
        match queueing::enqueue_held(
            self.settings,
            &self.from,
            remote,
            &reason,
            needs_person,
            message,
        ) {
            Ok(entry) => {
                self.say_queued(&entry, err);
                if needs_person {
                    // The error itself (with the hint to log in) is printed by the caller.
                    self.failures.push(error);
                }
            }
            Err(spool_error) => {
                let _ = writeln!(err, "smtpsend: could not queue the message: {spool_error}");
                self.failures.push(error);
            }
        }
    }

    /// Report the failures: every one on stderr, the exit status the first one's.
    fn finish(mut self, err: &mut dyn Write) -> Result<ExitStatus, Error> {
        // A stored OAuth token the server refused (revoked, or a clock that is off) is not
        // offered again: the next send refreshes it first.
        if let Some(a) = &self.settings.account
            && crate::oauth::uses_oauth(a)
            && self.failures.iter().any(|e| {
                matches!(
                    e,
                    Error::Session {
                        error: SessionError::AuthFailed { .. },
                        ..
                    }
                )
            })
        {
            let _ = crate::oauth::forget_access_token(a);
        }
        if self.failures.is_empty() {
            return Ok(ExitStatus::Ok);
        }
        let first = self.failures.remove(0);
        for e in &self.failures {
            for line in e.lines() {
                let _ = writeln!(err, "smtpsend: {line}");
            }
        }
        Err(first)
    }
}

/// Read the header section (and rewrite it: Bcc removed, missing From/Date/Message-ID
/// added) before any connection is made; the body streams later. A composed message has
/// its headers already.
fn prepare<'a>(
    settings: &Settings,
    from: &str,
    mut input: Input<'a>,
) -> Result<(message::Prepared, Input<'a>), Error> {
    let opts = PrepareOptions {
        extract_recipients: settings.message.read_recipients,
        add_missing_headers: settings.message.add_missing_headers,
        envelope_from: from.to_string(),
        full_name: settings.message.full_name.clone(),
        hostname: identity::mail_name(),
        from_header: settings.message.from_header,
        undisclosed_recipients: settings.message.undisclosed_recipients,
    };
    let prepared = match &mut input {
        Input::File(file) => message::prepare(file, &opts)?,
        Input::Stream(reader) => message::prepare(reader, &opts)?,
    };
    Ok((prepared, input))
}

/// Build the message from the compose flags into a private, already-unlinked temporary
/// file, so attachments are read once and the result streams like any other input. The
/// `--cc` and `--bcc` recipients join the envelope.
fn compose(
    settings: &Settings,
    request: &ComposeRequest,
    from: &str,
    policy: &mut LocalPolicy,
    targets: &mut Vec<Target>,
    input: Input<'_>,
) -> Result<std::fs::File, Error> {
    if settings.message.read_recipients {
        return Err(Error::Usage(
            "-t reads recipients from a message; it cannot be combined with compose options".into(),
        ));
    }
    let to = remote_addresses(targets);
    let mut cc = Vec::new();
    for r in &request.cc {
        let routed = policy.route(r, Origin::CommandLine)?;
        cc.extend(remote_addresses(&routed));
        add_targets(targets, routed);
    }
    for r in &request.bcc {
        add_targets(targets, policy.route(r, Origin::CommandLine)?);
    }
    let opts = settings.compose_options(request, from, to, cc);
    crate::message::compose::validate(&opts)?;
    let mut stdin: Box<dyn Read + '_> = match input {
        Input::File(file) => Box::new(file),
        Input::Stream(reader) => reader,
    };
    let mut file = private_temp_file()?;
    crate::message::compose::compose(&opts, &mut stdin, &mut file)?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("rewinding the composed message", e))?;
    Ok(file)
}

fn add_targets(list: &mut Vec<Target>, new: Vec<Target>) {
    for t in new {
        let duplicate = list.iter().any(|old| match (old, &t) {
            (Target::Remote(a), Target::Remote(b)) => same_address(a, b),
            (a, b) => a == b,
        });
        if !duplicate {
            list.push(t);
        }
    }
}

fn remote_addresses(targets: &[Target]) -> Vec<String> {
    targets
        .iter()
        .filter_map(|t| match t {
            Target::Remote(a) => Some(a.clone()),
            Target::Mailbox(_) => None,
        })
        .collect()
}

/// Local parts are compared exactly, domains without case (RFC 5321 §2.4).
fn same_address(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => a == b,
    }
}
