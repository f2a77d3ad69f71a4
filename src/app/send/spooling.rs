//! Queueing instead of failing: a temporary failure puts the message into the spool for
//! the recipients it failed for, and the caller gets success.

use super::*;

/// Send, and on a temporary failure queue the message for the recipients it failed for;
/// the caller then gets success, the message being safe in the spool.
pub(super) fn send_or_queue(
    cli: &Cli,
    acct: Option<&Account>,
    remote: &Remote,
    from: &str,
    recipients: Vec<String>,
    source: &mut Source<'_>,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let (head, mut retained) = source.open_retained()?;
    let original_head = head.clone();
    let outcome = send_remote(
        cli,
        acct,
        remote,
        from,
        recipients.clone(),
        head,
        &mut retained,
        err,
    );
    let (retry, error) = match outcome {
        Ok(delivered) => {
            let (temporary, permanent): (Vec<_>, Vec<_>) = delivered
                .report
                .rejected
                .iter()
                .cloned()
                .partition(|f| f.reply.is_transient());
            if temporary.is_empty() {
                return report(delivered);
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
            (
                Some((retry, format!("{}: {reason}", delivered.host))),
                error,
            )
        }
        Err(e) if e.exit_status() == ExitStatus::TempFail => {
            (Some((recipients, e.to_string())), Some(e))
        }
        Err(e) => return Err(e),
    };
    let Some((retry, reason)) = retry else {
        return error.map_or(Ok(()), Err);
    };
    let queued = retained
        .whole(original_head)
        .and_then(|mut message| enqueue(cli, acct, from, &retry, &reason, &mut message));
    match queued {
        Ok(id) => {
            if cli.verbose > 0 {
                let _ = writeln!(err, "smtpsend: {reason}");
                let _ = writeln!(err, "smtpsend: queued as {id} for {}", retry.join(", "));
            }
            // Only permanent refusals remain to report.
            match error {
                Some(e) if e.exit_status() != ExitStatus::TempFail => Err(e),
                _ => Ok(()),
            }
        }
        Err(spool_error) => {
            let _ = writeln!(err, "smtpsend: could not queue the message: {spool_error}");
            Err(error.unwrap_or(spool_error))
        }
    }
}

/// Whether a temporary failure queues the message (config `queue_on_tempfail`, default
/// on; `--no-queue` turns it off).
pub(super) fn queue_on_tempfail(cli: &Cli, acct: Option<&Account>) -> bool {
    !cli.no_queue && acct.is_none_or(|a| a.queue_on_tempfail)
}

/// The spool: `--queue-dir`, the account's `queue_dir`, or the default.
pub fn open_spool(cli: &Cli, acct: Option<&Account>) -> Result<Spool, Error> {
    let dir = cli
        .queue_dir
        .clone()
        .or_else(|| acct.and_then(|a| a.queue_dir.clone()));
    Spool::open(dir.as_deref())
}

/// Queue a message whose route could not be set up; `waiting_for_auth` marks it for the
/// listing as waiting for someone to log in.
#[allow(clippy::too_many_arguments)]
pub(super) fn enqueue_held(
    cli: &Cli,
    acct: Option<&Account>,
    from: &str,
    recipients: &[String],
    reason: &str,
    waiting_for_auth: bool,
    message: &mut dyn Read,
) -> Result<String, Error> {
    let id = enqueue(cli, acct, from, recipients, reason, message)?;
    if waiting_for_auth {
        let spool = open_spool(cli, acct)?;
        let listing = spool.list()?;
        if let Some(mut entry) = listing.entries.into_iter().find(|e| e.id == id) {
            entry.waiting_for_auth = true;
            spool.record_failure(&mut entry, reason, std::time::SystemTime::now())?;
        }
    }
    Ok(id)
}

/// Put the message into the spool for `recipients`; returns its id.
pub(super) fn enqueue(
    cli: &Cli,
    acct: Option<&Account>,
    from: &str,
    recipients: &[String],
    reason: &str,
    message: &mut dyn Read,
) -> Result<String, Error> {
    let spool = open_spool(cli, acct)?;
    let dsn = Dsn::new(
        cli.dsn_notify.as_deref(),
        cli.dsn_return.as_deref(),
        cli.dsn_envid.as_deref(),
    )
    .map_err(Error::Usage)?;
    let entry = spool.enqueue(
        &NewEntry {
            from: from.to_string(),
            recipients: recipients.to_vec(),
            account: acct
                .map(|a| a.name.clone())
                .filter(|_| cli.account.is_some()),
            dsn_notify: dsn.notify,
            dsn_ret: dsn.ret,
            dsn_envid: dsn.envid,
            eight_bit: None,
            reason: Some(reason.to_string()),
            dot_ends_input: !cli.ignore_dots(),
        },
        message,
    )?;
    Ok(entry.id)
}
