//! The queue commands: `-bp`/`mailq` lists the spool, `--queue-remove` deletes entries,
//! `-q`/`--flush` runs it, each entry by the route it was queued with.

use std::io::{self, Write};
use std::time::SystemTime;

use crate::app::routes;
use crate::app::send::open_spool;
use crate::app::settings::{Settings, spec_for};
use crate::config;
use crate::delivery::remote::Remote;
use crate::delivery::route::RouteSpec;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::queue::run::{self, RunOptions};
use crate::queue::runner;
use crate::queue::{self, Entry};

/// `-bp`, `mailq`.
pub fn list(settings: &Settings, err: &mut dyn Write) -> Result<ExitStatus, Error> {
    let spool = open_spool(settings)?;
    let listing = spool.list()?;
    for w in &listing.warnings {
        let _ = writeln!(err, "smtpsend: {w}");
    }
    let text = queue::format_listing(&listing.entries, SystemTime::now());
    let _ = io::stdout().write_all(text.as_bytes());
    Ok(ExitStatus::Ok)
}

/// `--queue-remove ID`, `--queue-remove-all --yes`.
pub fn remove(settings: &Settings, err: &mut dyn Write) -> Result<ExitStatus, Error> {
    let spool = open_spool(settings)?;
    if settings.queue.remove_all {
        if !settings.queue.yes {
            return Err(Error::Usage(
                "--queue-remove-all deletes every queued message: add --yes".into(),
            ));
        }
        let listing = spool.list()?;
        for entry in &listing.entries {
            spool.remove(entry)?;
        }
        let _ = writeln!(
            err,
            "smtpsend: removed {} queued messages",
            listing.entries.len()
        );
    }
    let mut status = ExitStatus::Ok;
    for id in &settings.queue.remove {
        if !spool.remove_id(id)? {
            let _ = writeln!(err, "smtpsend: {id}: no such queued message");
            status = ExitStatus::NoInput;
        }
    }
    Ok(status)
}

/// `-q`, `--flush`: each entry goes by the route it was queued with; an entry from before
/// routes were kept goes by its named account, or the run's own settings.
pub fn flush(settings: &Settings, err: &mut dyn Write) -> Result<ExitStatus, Error> {
    let spool = open_spool(settings)?;
    let opts = run_options(settings, settings.queue.all);
    let route_for = |entry: &Entry| route_of(settings, entry);
    run::run(&spool, &opts, &route_for, err)
}

/// `--queue-runner`: the spool's background runner, started by a sender; each entry when
/// it is due, by its own route, until the spool is empty. It speaks only to the log file,
/// or to syslog when there is none.
pub fn background(settings: &Settings) -> Result<ExitStatus, Error> {
    let spool = open_spool(settings)?;
    let opts = run_options(settings, false);
    let route_for = |entry: &Entry| route_of(settings, entry);
    runner::serve(&spool, &opts, &route_for, &settings.log.clone().or_syslog())
}

fn run_options(settings: &Settings, all: bool) -> RunOptions {
    RunOptions {
        verbose: settings.verbose,
        all,
        parallel: settings.parallel,
        own_routes: !run_names_route(settings),
        client: settings.client.clone(),
        log: settings.log.clone(),
    }
}

/// The live route of one queued entry: the one it was queued with, unless the queue run
/// itself names a route (`-q --host H`, `-q --direct`), which then takes every entry, as
/// an administrator redirecting a stuck queue asks.
pub fn route_of(settings: &Settings, entry: &Entry) -> Result<Remote, Error> {
    if run_names_route(settings) {
        return run_route(settings, entry);
    }
    match &entry.route {
        Some(spec @ RouteSpec::Relay(relay)) => {
            let account = routes::named_account(relay)?;
            routes::open(spec, account.as_ref(), &settings.client)
        }
        Some(spec @ RouteSpec::Direct(_)) => routes::open(spec, None, &settings.client),
        None => run_route(settings, entry),
    }
}

/// `-q --host H` or `-q --direct`.
fn run_names_route(settings: &Settings) -> bool {
    settings.route_flags.host.is_some() || settings.route_flags.direct
}

/// The queue run's own route: the entry's named account of the run's config file (an
/// entry from before routes were kept), or the run's account.
fn run_route(settings: &Settings, entry: &Entry) -> Result<Remote, Error> {
    let Some(name) = &entry.account else {
        let spec = settings.route_spec()?;
        return routes::open(spec, settings.account.as_ref(), &settings.client);
    };
    let config = config::load(settings.config_file.as_deref())?.ok_or_else(|| {
        Error::Usage(format!(
            "account {name:?} was asked for, but there is no config file"
        ))
    })?;
    let account = config.account(Some(name))?;
    let spec = spec_for(&settings.route_flags, Some(config.origin()), Some(&account))
        .map_err(Error::Usage)?;
    routes::open(&spec, Some(&account), &settings.client)
}
