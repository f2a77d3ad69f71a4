//! The queue as a person reads it, in the shape of `sendmail -bp` / Postfix `mailq`, so
//! scripts and eyes used to those find things where they expect them.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::Entry;

const ID_WIDTH: usize = super::ID_LEN;
/// Where recipients start: under the sender.
const INDENT: usize = ID_WIDTH + 2 + 8 + 1 + 7 + 2;
/// A server's reply can be long; the listing shows the start of it.
const MAX_ERROR_CHARS: usize = 200;

/// The listing for `entries` as of `now`: per entry its id, size in bytes, age and
/// sender; then why it is still here and when it is tried next; then the recipients
/// still to deliver.
pub fn format_listing(entries: &[Entry], now: SystemTime) -> String {
    if entries.is_empty() {
        return "Mail queue is empty\n".to_string();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<ID_WIDTH$}  --Size-- --Age--  -Sender/Recipient-------",
        "-Queue ID-"
    );
    let mut total: u64 = 0;
    for entry in entries {
        total = total.saturating_add(entry.size);
        let age = now.duration_since(entry.created).unwrap_or(Duration::ZERO);
        let sender = if entry.from.is_empty() {
            "<>"
        } else {
            entry.from.as_str()
        };
        let _ = writeln!(
            out,
            "{:<ID_WIDTH$}  {:>8} {:>7}  {}",
            entry.id,
            entry.size,
            short_duration(age),
            sender
        );
        if let Some(status) = status(entry, now) {
            let _ = writeln!(out, "({status})");
        }
        for recipient in &entry.recipients {
            let _ = writeln!(out, "{:INDENT$}{recipient}", "");
        }
        out.push('\n');
    }
    let requests = if entries.len() == 1 {
        "Request"
    } else {
        "Requests"
    };
    let _ = writeln!(
        out,
        "-- {} Kbytes in {} {requests}.",
        total.div_ceil(1024),
        entries.len()
    );
    out
}

/// Why the entry is still queued and what happens next, if there is anything to say.
fn status(entry: &Entry, now: SystemTime) -> Option<String> {
    let mut parts = Vec::new();
    if entry.waiting_for_auth {
        let why = entry
            .last_error
            .as_deref()
            .unwrap_or("authentication failed");
        parts.push(format!("waiting for credentials: {}", clean(why)));
    } else if let Some(error) = &entry.last_error {
        parts.push(clean(error));
    } else if let Some(reason) = &entry.reason {
        parts.push(format!("queued: {}", clean(reason)));
    }
    if entry.attempts > 0 {
        let next = match entry.next_attempt.duration_since(now) {
            Ok(wait) if !wait.is_zero() => format!("next in {}", short_duration(wait)),
            _ => "due now".to_string(),
        };
        let tries = if entry.attempts == 1 { "try" } else { "tries" };
        parts.push(format!("{} {tries}, {next}", entry.attempts));
    }
    if !entry.delivered.is_empty() {
        parts.push(format!("{} already delivered", entry.delivered.len()));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// One line, no terminal control characters, not too long.
fn clean(text: &str) -> String {
    let mut out: String = text
        .split(['\r', '\n'])
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect::<Vec<_>>()
        .join(" / ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if let Some((at, _)) = out.char_indices().nth(MAX_ERROR_CHARS) {
        out.truncate(at);
        out.push_str("...");
    }
    out
}

/// `45s`, `12m`, `3h05m`, `2d04h`: what a person needs to judge how late a message is.
fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (m, h, day) = (60, 3600, 86_400);
    if secs < m {
        format!("{secs}s")
    } else if secs < h {
        format!("{}m", secs / m)
    } else if secs < day {
        format!("{}h{:02}m", secs / h, secs % h / m)
    } else {
        format!("{}d{:02}h", secs / day, secs % day / h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::id;
    use std::time::UNIX_EPOCH;

    fn entry(created: SystemTime) -> Entry {
        Entry {
            id: id::make(1_700_000_000_000_000_000, 4242, 1),
            from: "alice@example.org".into(),
            recipients: vec!["bob@example.org".into(), "carol@example.net".into()],
            delivered: Vec::new(),
            account: None,
            route: None,
            dsn_notify: None,
            dsn_ret: None,
            dsn_envid: None,
            eight_bit: None,
            reason: Some("mx.example.org: connection refused".into()),
            created,
            attempts: 0,
            next_attempt: created,
            last_error: None,
            size: 1500,
            waiting_for_auth: false,
            dot_ends_input: false,
        }
    }

    #[test]
    fn an_empty_queue_says_so() {
        assert_eq!(
            format_listing(&[], SystemTime::now()),
            "Mail queue is empty\n"
        );
    }

    #[test]
    fn a_fresh_entry_shows_why_it_was_queued() {
        let created = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let e = entry(created);
        let text = format_listing(std::slice::from_ref(&e), created + Duration::from_secs(125));
        let expected = format!(
            "-Queue ID-                --Size-- --Age--  -Sender/Recipient-------\n\
             {}      1500      2m  alice@example.org\n\
             (queued: mx.example.org: connection refused)\n\
             {:44}bob@example.org\n\
             {:44}carol@example.net\n\
             \n\
             -- 2 Kbytes in 1 Request.\n",
            e.id, "", ""
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn a_retried_entry_shows_the_last_error_and_the_next_try() {
        let created = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let now = created + Duration::from_secs(3 * 3600 + 5 * 60);
        let mut e = entry(created);
        e.attempts = 3;
        e.last_error = Some("421-4.3.0 busy\r\n421 4.3.0 try later\u{1b}[2J".into());
        e.next_attempt = now + Duration::from_secs(20 * 60);
        e.delivered = vec!["dave@example.org".into()];
        e.from = String::new();
        let text = format_listing(&[e], now);
        assert!(text.contains("   3h05m  <>\n"), "{text}");
        assert!(
            text.contains(
                "(421-4.3.0 busy / 421 4.3.0 try later [2J; 3 tries, next in 20m; \
                 1 already delivered)\n"
            ),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn an_entry_waiting_for_credentials_says_so() {
        let created = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut e = entry(created);
        e.attempts = 1;
        e.waiting_for_auth = true;
        e.last_error = Some("535 5.7.8 authentication failed".into());
        let text = format_listing(&[e.clone(), e], created + Duration::from_secs(600));
        assert!(
            text.contains(
                "(waiting for credentials: 535 5.7.8 authentication failed; 1 try, due now)"
            ),
            "{text}"
        );
        assert!(text.ends_with("-- 3 Kbytes in 2 Requests.\n"), "{text}");
    }

    #[test]
    fn long_errors_are_cut() {
        let long = "x".repeat(1000);
        let cleaned = clean(&long);
        assert_eq!(cleaned.chars().count(), MAX_ERROR_CHARS + 3);
    }

    #[test]
    fn durations_are_short() {
        let s = |secs| short_duration(Duration::from_secs(secs));
        assert_eq!(s(0), "0s");
        assert_eq!(s(59), "59s");
        assert_eq!(s(60), "1m");
        assert_eq!(s(3599), "59m");
        assert_eq!(s(3600 + 5 * 60), "1h05m");
        assert_eq!(s(2 * 86_400 + 4 * 3600), "2d04h");
    }
}
