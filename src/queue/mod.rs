//! The spool for deferred mail: a sendmail run by cron must never lose a message because
//! the relay is down, so what cannot be delivered now is kept here and retried by a
//! flusher.
//!
//! # Layout and crash safety
//!
//! One flat directory, mode 0700. An entry is two files named by its [id](is_valid_id):
//! `ID.data`, the message as it was read, and `ID.env`, the envelope and retry state in
//! TOML. Each is written under a `.tmp-*` name created with `O_CREAT|O_EXCL|O_NOFOLLOW`,
//! fsync'ed, renamed into place, and the directory fsync'ed. The envelope is renamed last:
//! that rename is the commit, so a crash at any instant leaves either no entry (perhaps a
//! temporary or a data file nobody points to, cleaned up later) or a whole one. Deleting
//! goes the other way: the envelope first, so a half-deleted entry is an orphan data file,
//! never an envelope whose message is gone.
//!
//! Nothing in the spool is followed through a symbolic link: files are opened with
//! `O_NOFOLLOW` and checked to be regular files, and an entry with a link under its name
//! is moved to `corrupt/` and reported, never read.
//!
//! The checks are made on paths: they are sound because the spool directory itself must
//! be ours (or root's) and writable by nobody else, so no other user can rename things in
//! it between a check and a use.
//!
//! # A shared system spool (design only, not implemented)
//!
//! Today every user has a spool of their own, and `/var/spool/smtpsend` is used only when
//! it is safe by the same rules (ours or root's, not group-writable), which in practice
//! means root's. A spool shared by all users, as Postfix's `maildrop` with `postdrop`,
//! would look like this:
//!
//! - `/var/spool/smtpsend` owned by `root:smtpsend`, mode `2770` (setgid, so every file
//!   created in it belongs to group `smtpsend`), and `smtpsend` installed setgid
//!   `smtpsend`, not setuid: a user gains the right to drop files in, nothing more.
//! - [`Spool::open`] would accept exactly that shape (owner root, group the binary's
//!   effective group, mode `2770`) and nothing looser. It must then open the directory once
//!   and do everything relative to that descriptor (`openat`, `renameat`, `unlinkat`),
//!   because with a group-writable directory the path-based checks above are no longer
//!   sound.
//! - The set-id program runs in an environment the user controls: it must ignore
//!   `$XDG_STATE_HOME`, `$HOME` and `--queue-dir` for the shared spool, and drop the
//!   effective group (`setegid(getgid())`) right after opening the spool and before reading
//!   any config file or running a `password_command`, which would otherwise run with the
//!   group and could read everyone's queued mail.
//! - Files are created 0640 so the flusher (a member of the group) can read them; the
//!   owner of `ID.env` is the real uid of the submitter, and that owner, not anything
//!   written inside the file, says whose entry it is.
//!   `remove_id` and the listing must then show and delete only the caller's own entries
//!   unless the caller is root, because the group sees every entry.
//! - The flusher runs as a dedicated user in the group from a timer. It cannot read users'
//!   own config files, so entries in the shared spool may name only accounts from the
//!   system config (`/etc/smtpsend.conf`); a message for a per-user account must keep going
//!   to that user's own spool, flushed by that user.
//!
//! Until then a group- or world-writable spool is refused rather than trusted.

mod envelope;
mod fs;
mod id;
mod listing;
pub mod maildrop;
pub(crate) mod notice;
pub mod run;
pub mod runner;
mod spool;

#[cfg(test)]
mod spool_tests;

use std::time::{Duration, SystemTime};

use crate::delivery::route::RouteSpec;
use crate::smtp::{Dsn, Envelope};

pub use id::{ID_LEN, is_valid as is_valid_id};
pub use listing::format_listing;
pub use spool::{FlushLock, SYSTEM_SPOOL, Spool};

/// How long a message is retried before it is given up and bounced: sendmail's and
/// Postfix's default (`maximal_queue_lifetime = 5d`).
pub const MAX_AGE: Duration = Duration::from_secs(5 * 24 * 60 * 60);

/// The first retry delay; it doubles after each failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// The longest delay between two attempts, so a relay back from a long outage gets the
/// mail within hours.
const MAX_BACKOFF: Duration = Duration::from_secs(4 * 60 * 60);

/// The retry schedule: the first delay, doubling after each failure up to a cap (by
/// default 5 min, 10, 20, 40 and so on, capped at 4 h; config `queue_retry_first`,
/// `queue_retry_max`; shorter ones are for tests).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            first: FIRST_BACKOFF,
            max: MAX_BACKOFF,
        }
    }
}

impl Backoff {
    /// The delay after the `attempts`-th failed attempt; nothing before the first.
    pub fn after(self, attempts: u32) -> Duration {
        if attempts == 0 {
            return Duration::ZERO;
        }
        let doublings = attempts - 1;
        if doublings >= 16 {
            return self.max;
        }
        self.first.saturating_mul(1 << doublings).min(self.max)
    }
}

/// A wait for a person: "5 minutes", "1 hour", "30 seconds".
pub fn in_words(wait: Duration) -> String {
    let secs = wait.as_secs().max(1);
    let (n, unit) = match secs {
        0..=119 => (secs, "second"),
        120..=7199 => (secs.div_ceil(60), "minute"),
        _ => (secs.div_ceil(3600), "hour"),
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// What the caller knows about a message it wants to keep for later.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewEntry {
    /// The envelope sender; empty for the null sender `<>`.
    pub from: String,
    pub recipients: Vec<String>,
    /// The config account to send it with, so a retry uses the same relay and credentials.
    pub account: Option<String>,
    /// How it was to be sent: a retry goes the same way.
    pub route: Option<RouteSpec>,
    /// RFC 3461 `NOTIFY`, `RET` and `ENVID`, as validated by [`Dsn::new`].
    pub dsn_notify: Option<String>,
    pub dsn_ret: Option<String>,
    pub dsn_envid: Option<String>,
    /// Whether the body has 8-bit bytes, when known.
    pub eight_bit: Option<bool>,
    /// Why it was queued instead of sent, shown by the listing until a retry fails.
    pub reason: Option<String>,
    /// Given without sendmail's `-i`: a lone `.` line ends the message when it is sent.
    pub dot_ends_input: bool,
    /// It was tried once already and failed for `reason`: the entry starts with that
    /// attempt counted and its next try after the first back-off, not at once.
    pub tried: bool,
}

impl NewEntry {
    /// The entry this becomes under `id` at `now`: with the failed try counted and the
    /// next after the first back-off when it was `tried`, else due at once.
    pub fn to_entry(&self, id: String, now: SystemTime, backoff: Backoff) -> Entry {
        let created = envelope::whole_seconds(now);
        let (attempts, next_attempt, last_error) = if self.tried {
            let next = now.checked_add(backoff.after(1)).unwrap_or(now);
            (1, envelope::whole_seconds(next), self.reason.clone())
        } else {
            (0, created, None)
        };
        Entry {
            id,
            from: self.from.clone(),
            recipients: self.recipients.clone(),
            delivered: Vec::new(),
            account: self.account.clone(),
            route: self.route.clone(),
            dsn_notify: self.dsn_notify.clone(),
            dsn_ret: self.dsn_ret.clone(),
            dsn_envid: self.dsn_envid.clone(),
            eight_bit: self.eight_bit,
            dot_ends_input: self.dot_ends_input,
            reason: self.reason.clone(),
            created,
            attempts,
            next_attempt,
            last_error,
            size: 0,
            waiting_for_auth: false,
        }
    }
}

/// A message in the spool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    /// The envelope sender; empty for the null sender `<>`.
    pub from: String,
    /// The recipients still to deliver to.
    pub recipients: Vec<String>,
    /// Recipients the server accepted in an earlier attempt, not to be sent to again.
    pub delivered: Vec<String>,
    pub account: Option<String>,
    /// How it was to be sent; `None` for an entry queued before routes were kept, which
    /// goes the way the queue run's own settings say.
    pub route: Option<RouteSpec>,
    pub dsn_notify: Option<String>,
    pub dsn_ret: Option<String>,
    pub dsn_envid: Option<String>,
    pub eight_bit: Option<bool>,
    pub reason: Option<String>,
    /// When it was queued, to whole seconds; [`MAX_AGE`] counts from here.
    pub created: SystemTime,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not to be tried before this.
    pub next_attempt: SystemTime,
    /// The last failure, in the words of the server or the network.
    pub last_error: Option<String>,
    /// The size of `ID.data` in bytes, which also tells a truncated data file.
    pub size: u64,
    /// The last attempt failed for want of credentials (a password source that was not
    /// available, a 535): the caller sets or clears this before
    /// [`Spool::record_failure`], which stores it with the rest, and the listing says so,
    /// because no retry helps until someone acts.
    pub waiting_for_auth: bool,
    /// Given without sendmail's `-i`: a lone `.` line ends the message when it is sent.
    pub dot_ends_input: bool,
}

impl Entry {
    /// Queued longer than [`MAX_AGE`]: give up and bounce it.
    pub fn expired(&self, now: SystemTime) -> bool {
        now.duration_since(self.created)
            .is_ok_and(|age| age >= MAX_AGE)
    }

    /// How long until the next attempt, in words ("5 minutes").
    pub fn next_try_in_words(&self, now: SystemTime) -> String {
        in_words(
            self.next_attempt
                .duration_since(now)
                .unwrap_or(Duration::ZERO),
        )
    }

    /// The envelope of the next attempt: only the recipients still to deliver.
    pub fn envelope(&self) -> Envelope {
        Envelope {
            from: self.from.clone(),
            recipients: self.recipients.clone(),
        }
    }

    pub fn dsn(&self) -> Dsn {
        Dsn {
            notify: self.dsn_notify.clone(),
            ret: self.dsn_ret.clone(),
            envid: self.dsn_envid.clone(),
        }
    }
}

/// The entries of a spool and what was wrong with the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Whole entries, oldest first.
    pub entries: Vec<Entry>,
    /// One line per entry set aside or skipped, for stderr.
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60;

    #[test]
    fn waits_in_words() {
        assert_eq!(in_words(Duration::from_secs(300)), "5 minutes");
        assert_eq!(in_words(Duration::from_secs(299)), "5 minutes");
        assert_eq!(in_words(Duration::from_secs(30)), "30 seconds");
        assert_eq!(in_words(Duration::from_secs(3600)), "60 minutes");
        assert_eq!(in_words(Duration::from_secs(4 * 3600)), "4 hours");
        assert_eq!(in_words(Duration::ZERO), "1 second");
    }

    #[test]
    fn backoff_doubles_from_five_minutes_to_a_four_hour_cap() {
        let backoff = |a| Backoff::default().after(a);
        let minutes: Vec<u64> = (0..10).map(|a| backoff(a).as_secs() / MIN).collect();
        assert_eq!(minutes, [0, 5, 10, 20, 40, 80, 160, 240, 240, 240]);
        assert_eq!(backoff(17), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn an_entry_expires_after_five_days() {
        let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let entry = Entry {
            id: id::make(0, 1, 2),
            from: String::new(),
            recipients: vec!["a@example.org".into()],
            delivered: Vec::new(),
            account: None,
            route: None,
            dsn_notify: None,
            dsn_ret: None,
            dsn_envid: None,
            eight_bit: None,
            reason: None,
            created,
            attempts: 0,
            next_attempt: created,
            last_error: None,
            size: 0,
            waiting_for_auth: false,
            dot_ends_input: false,
        };
        let second = Duration::from_secs(1);
        assert!(!entry.expired(created));
        assert!(!entry.expired(created + MAX_AGE - second));
        assert!(entry.expired(created + MAX_AGE));
        // A clock set back is no reason to bounce.
        assert!(!entry.expired(created - second));
    }
}
