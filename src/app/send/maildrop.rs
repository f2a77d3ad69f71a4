//! Queueing through `smtpsend-drop` when the caller cannot keep a spool of its own (a
//! daemon's user whose home is not writable): the message goes into the shared spool,
//! whose runner `smtpsend-drop` starts. See `queue::maildrop` for the design.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::app::settings::Settings;
use crate::error::Error;
use crate::queue::maildrop::{self, Submission};
use crate::queue::{Backoff, Entry, NewEntry};

/// Hand `new` and the message to the helper; the entry as the helper wrote it.
pub(super) fn submit(
    helper: &Path,
    queue_dir: Option<PathBuf>,
    settings: &Settings,
    new: &NewEntry,
    message: &mut dyn Read,
) -> Result<Entry, Error> {
    let submission = Submission {
        queue_dir,
        // Only a config of root's is passed on: the runner trusts nothing else, and
        // without one it reads the system config.
        config: settings
            .config_file
            .clone()
            .filter(|c| std::fs::metadata(c).is_ok_and(|m| m.uid() == 0)),
        entry: NewEntry {
            // The route is the system config's, not one of the caller's choosing.
            route: None,
            ..new.clone()
        },
    };
    let what = || helper.display().to_string();
    let mut child = Command::new(helper)
        .args(maildrop::arguments(&submission))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(what(), e))?;
    let copied = child
        .stdin
        .take()
        .map(|mut stdin| std::io::copy(message, &mut stdin).and_then(|_| stdin.flush()));
    let output = child.wait_with_output().map_err(|e| Error::io(what(), e))?;
    if let Some(Err(e)) = copied
        && output.status.success()
    {
        return Err(Error::io(format!("{}: writing the message", what()), e));
    }
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let first = said
            .trim()
            .lines()
            .next()
            .unwrap_or("failed without a word");
        return Err(Error::TempFail(first.to_string()));
    }
    let said = String::from_utf8_lossy(&output.stdout);
    let mut words = said.split_whitespace();
    let id = words
        .next()
        .filter(|id| crate::queue::is_valid_id(id))
        .ok_or_else(|| Error::Internal(format!("{} said {said:?}", what())))?;
    let wait = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    let backoff = Backoff {
        first: Duration::from_secs(wait),
        max: Duration::from_secs(wait),
    };
    Ok(new.to_entry(id.to_string(), SystemTime::now(), backoff))
}
