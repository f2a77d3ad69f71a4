//! `smtpsend-drop`: the set-group-ID part of smtpsend, as small as Postfix's `postdrop`.
//! Installed `root:smtpsend`, mode 2755, beside `smtpsend`; the shared spool is
//! `/var/spool/smtpsend`, `root:smtpsend`, mode 2770. smtpsend runs it when the caller
//! cannot keep a spool of its own; it takes the envelope as arguments and the message on
//! stdin, writes one entry into the shared spool, starts or wakes the queue runner, and
//! prints the entry's id and the seconds to its next try. It never reads, lists or
//! removes an entry.
//!
//! Usage (built by smtpsend, not for people): `smtpsend-drop [--queue-dir DIR]
//! [--config FILE] --from ADDR [--account NAME] [--reason TEXT] [--tried] [--dot] --
//! RECIPIENT...`

use std::io::Write;
use std::process::ExitCode;

use smtpsend::queue::maildrop;

fn main() -> ExitCode {
    // What we make is for the spool group: the caller's umask must not open or close it.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o007));
    let args: Vec<String> = match std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect::<Result<_, _>>()
    {
        Ok(args) => args,
        Err(_) => return fail(&smtpsend::Error::Usage("an argument is not UTF-8".into())),
    };
    let submission = match maildrop::parse(&args) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let stdin = std::io::stdin();
    match maildrop::submit(&submission, &mut stdin.lock()) {
        Ok((entry, _)) => {
            let wait = entry
                .next_attempt
                .duration_since(std::time::SystemTime::now())
                .map_or(0, |d| d.as_secs());
            let _ = writeln!(std::io::stdout(), "{} {wait}", entry.id);
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &smtpsend::Error) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "{}: {e}", maildrop::PROGRAM);
    ExitCode::from(e.exit_status().code())
}
