//! Queue ids: unique, ordered by creation time, and safe as file names.
//!
//! An id is the creation time in nanoseconds, the process id and a per-process counter,
//! each written as fixed-width base32 in an alphabet whose characters sort in ASCII order,
//! so comparing ids as strings compares creation times. Two processes alive at once never
//! share a pid and one process never repeats its counter within a clock tick, so ids are
//! unique without any shared state. Only the 32 lowercase letters and digits appear: no
//! `/`, `.` or anything else a path or a shell could make something of.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Crockford's base32 in lowercase: digits, then letters without i, l, o, u.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const TIME_CHARS: usize = 13;
const PID_CHARS: usize = 7;
const COUNTER_CHARS: usize = 4;
/// The length of every id.
pub const ID_LEN: usize = TIME_CHARS + PID_CHARS + COUNTER_CHARS;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh id for something created at `now` by this process.
pub(super) fn new_id(now: SystemTime) -> String {
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    make(nanos, std::process::id(), count)
}

pub(super) fn make(nanos: u64, pid: u32, count: u32) -> String {
    let mut id = String::with_capacity(ID_LEN);
    push(&mut id, nanos, TIME_CHARS);
    push(&mut id, u64::from(pid), PID_CHARS);
    push(&mut id, u64::from(count), COUNTER_CHARS);
    id
}

fn push(out: &mut String, value: u64, chars: usize) {
    for i in (0..chars).rev() {
        let digit = (value >> (5 * i)) & 31;
        out.push(char::from(ALPHABET[digit as usize]));
    }
}

/// Whether `id` is one of ours; anything else (`../x`, `a/b`, an empty string) is refused
/// before it comes near a path.
pub fn is_valid(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| ALPHABET.contains(&b))
}

/// The pid of the process that made `id`, to tell a crashed writer's leftovers from a
/// slow one's work in progress.
pub(super) fn pid_of(id: &str) -> Option<u32> {
    if !is_valid(id) {
        return None;
    }
    let mut value: u64 = 0;
    for b in id.as_bytes()[TIME_CHARS..TIME_CHARS + PID_CHARS].iter() {
        let digit = ALPHABET.iter().position(|a| a == b)?;
        value = (value << 5) | digit as u64;
    }
    u32::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Duration;

    #[test]
    fn ids_are_unique_and_sort_by_creation() {
        let start = SystemTime::now();
        let ids: Vec<String> = (0..1000u64)
            .map(|i| new_id(start + Duration::from_nanos(i)))
            .collect();
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids);
    }

    #[test]
    fn ids_made_at_the_same_instant_differ() {
        let now = SystemTime::now();
        assert_ne!(new_id(now), new_id(now));
    }

    #[test]
    fn a_later_time_sorts_later_whatever_the_pid() {
        let early = make(1_000, u32::MAX, u32::MAX);
        let late = make(1_001, 0, 0);
        assert!(early < late);
    }

    #[test]
    fn ids_are_fixed_width_file_name_safe() {
        let id = new_id(SystemTime::now());
        assert_eq!(id.len(), ID_LEN);
        assert!(is_valid(&id));
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
    }

    #[test]
    fn path_like_and_foreign_ids_are_invalid() {
        let good = make(0x0123_4567_89ab_cdef, 0xdead_beef, 0xabcde);
        assert!(is_valid(&good));
        assert!(good.bytes().any(|b| b.is_ascii_lowercase()));
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "/etc/passwd",
            &good[1..],
            &format!("{good}0"),
            &good.to_ascii_uppercase(),
            &format!("../{}", &good[3..]),
            &format!("{}.", &good[1..]),
            &format!("{}i", &good[1..]),
        ] {
            assert!(!is_valid(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_pid_is_recovered_from_an_id() {
        assert_eq!(pid_of(&make(123, 4_194_304, 5)), Some(4_194_304));
        assert_eq!(pid_of(&make(0, u32::MAX, 0)), Some(u32::MAX));
        assert_eq!(pid_of("../x"), None);
    }
}
