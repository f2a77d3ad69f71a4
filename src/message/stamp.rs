//! The header fields we add when the caller left them out: `From`, `Date` and `Message-ID`
//! (RFC 5322 §3.6: the first two are required, the third is a SHOULD).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The moment a message is prepared, and a string no other message from this host shares.
/// Separate from the formatting so tests can fix it.
#[derive(Clone, Debug)]
pub(super) struct Stamp {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// The local offset from UTC, in seconds east.
    pub offset: i32,
    /// The left part of the Message-ID.
    pub unique: String,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Stamp {
    pub fn now() -> Stamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
        // Time, process and a per-process counter: two messages from one process in the
        // same nanosecond, or from two processes, still differ.
        let unique = format!(
            "{}.{}.{}",
            base36(since.as_nanos()),
            base36(u128::from(std::process::id())),
            base36(u128::from(COUNTER.fetch_add(1, Ordering::Relaxed)))
        );
        Stamp {
            secs,
            offset: crate::system::time::local_offset(secs),
            unique,
        }
    }
}

fn base36(mut n: u128) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 5322 §3.2.3 `dot-atom-text`, which `id-right` of a Message-ID must be (§3.6.4).
pub(super) fn is_dot_atom_text(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
        })
}

/// A `From:` field (without its line end): `address`, or `name <address>` with the name
/// made safe for a header: an atom phrase as it is, other ASCII quoted, anything else as
/// RFC 2047 encoded words (§2: at most 75 characters each), folded with `newline` so that
/// lines stay within RFC 5322 §2.1.1's 78 characters.
pub(super) fn from_field(name: Option<&str>, address: &str, newline: &str) -> String {
    const LINE: usize = 78;
    // A name from the command line may hold control characters; none may reach the header.
    let name: String = name
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let name = name.trim();
    if name.is_empty() {
        return format!("From: {address}");
    }
    let angle = format!("<{address}>");
    if name.is_ascii() {
        let phrase = if is_atom_phrase(name) {
            name.to_string()
        } else {
            quote(name)
        };
        return format!("From: {phrase} {angle}");
    }
    let mut out = String::from("From:");
    let mut line_len = out.len();
    for word in encode_words(name) {
        if line_len + 1 + word.len() > LINE && line_len > "From:".len() {
            out.push_str(newline);
            line_len = 0;
        }
        out.push(' ');
        out.push_str(&word);
        line_len += 1 + word.len();
    }
    if line_len + 1 + angle.len() > LINE {
        out.push_str(newline);
    }
    out.push(' ');
    out.push_str(&angle);
    out
}

/// An RFC 5322 §3.2.4 quoted-string.
fn quote(text: &str) -> String {
    let mut q = String::from("\"");
    for c in text.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// Atoms separated by single spaces, and nothing a reader would take for an encoded word.
fn is_atom_phrase(name: &str) -> bool {
    !name.contains("=?")
        && name.split(' ').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
        })
}

/// RFC 2047 §4.2 Q encoding with the §5(3) restrictions for a phrase, in UTF-8, split into
/// encoded words without splitting a character. A word is at most 72 characters (§2 allows
/// 75), so that `From: ` and one word fit in a 78-character line.
fn encode_words(text: &str) -> Vec<String> {
    const PREFIX: &str = "=?utf-8?q?";
    const SUFFIX: &str = "?=";
    const ROOM: usize = 72 - PREFIX.len() - SUFFIX.len();
    let mut words = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        let mut piece = String::new();
        if c == ' ' {
            piece.push('_');
        } else if c.is_ascii_alphanumeric() || "!*+-/".contains(c) {
            piece.push(c);
        } else {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                piece.push_str(&format!("={b:02X}"));
            }
        }
        if current.len() + piece.len() > ROOM {
            words.push(format!("{PREFIX}{current}{SUFFIX}"));
            current.clear();
        }
        current.push_str(&piece);
    }
    if !current.is_empty() {
        words.push(format!("{PREFIX}{current}{SUFFIX}"));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::address::{decode_encoded_words, parse_address_list};

    #[test]
    fn stamps_are_unique_within_a_process() {
        let a = Stamp::now();
        let b = Stamp::now();
        assert_ne!(a.unique, b.unique);
        assert!(is_dot_atom_text(&a.unique), "{}", a.unique);
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36 * 36 + 35), "10z");
    }

    #[test]
    fn from_names_are_quoted_or_encoded_as_needed() {
        assert_eq!(from_field(None, "a@b.example", "\r\n"), "From: a@b.example");
        assert_eq!(
            from_field(Some("Cron Daemon"), "root@h.example", "\n"),
            "From: Cron Daemon <root@h.example>"
        );
        assert_eq!(
            from_field(Some("Doe, John \"JD\""), "j@h.example", "\n"),
            "From: \"Doe, John \\\"JD\\\"\" <j@h.example>"
        );
        assert_eq!(
            from_field(Some("=?utf-8?q?x?="), "j@h.example", "\n"),
            "From: \"=?utf-8?q?x?=\" <j@h.example>"
        );
        assert_eq!(
            from_field(Some("Jörg Müller"), "j@h.example", "\n"),
            "From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <j@h.example>"
        );
        assert_eq!(
            from_field(Some("evil\r\nBcc: x@y.example"), "j@h.example", "\n"),
            "From: \"evil  Bcc: x@y.example\" <j@h.example>"
        );
        assert_eq!(
            from_field(Some(" \t"), "j@h.example", "\n"),
            "From: j@h.example"
        );
    }

    #[test]
    fn long_encoded_names_fold_into_short_words_that_decode_back() {
        let name = "Ünïcödé ".repeat(20);
        let name = name.trim();
        let address = format!("{}@h.example", "j".repeat(60));
        let field = from_field(Some(name), &address, "\r\n");
        let lines: Vec<&str> = field.split("\r\n").collect();
        assert!(lines.len() > 3);
        for line in &lines {
            assert!(line.len() <= 78, "{line:?}");
        }
        for word in encode_words(name) {
            assert!(word.len() <= 75, "{word}");
        }
        let value = field.strip_prefix("From:").unwrap();
        let parsed = parse_address_list(value);
        assert_eq!(parsed.mailboxes[0].name.as_deref(), Some(name));
        assert_eq!(parsed.mailboxes[0].address, address);
        assert_eq!(decode_encoded_words(&encode_words("€").join(" ")), "€");
    }
}
