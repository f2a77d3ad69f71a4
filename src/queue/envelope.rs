//! The envelope file (`ID.env`): TOML, so a person can read it with `cat`, with a
//! `version` key so a later smtpsend can change the format without an older one taking
//! the new files for corrupt ones. Times are whole unix seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Entry;
use crate::delivery::route::RouteSpec;

/// The format this code writes. Version 2 added `route`; version 1 files are read as
/// entries without one.
pub(super) const VERSION: u32 = 2;
/// The oldest format this code reads.
const OLDEST: u32 = 1;

/// An envelope this code must not use.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Damaged or not ours: set it aside.
    Corrupt(String),
    /// Written by a newer smtpsend: leave it for that one.
    Newer(u32),
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    id: String,
    from: String,
    recipients: Vec<String>,
    #[serde(default)]
    delivered: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dsn_notify: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dsn_ret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dsn_envid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    eight_bit: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    created: u64,
    #[serde(default)]
    attempts: u32,
    next_attempt: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    size: u64,
    #[serde(default)]
    waiting_for_auth: bool,
    /// The message was given without `-i`: a lone `.` line ends it (the spool keeps the
    /// input as read, so the cut happens when it is sent).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    dot_ends_input: bool,
    /// How it was to be sent (a table, so it comes last in the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    route: Option<RouteSpec>,
}

/// Only the version, read first so a newer format is recognised even when the rest of it
/// would not parse as ours.
#[derive(Deserialize)]
struct VersionOnly {
    version: Option<i64>,
}

/// Whole unix seconds, as stored; times before 1970 are 0.
pub(super) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `t` rounded down to what the file keeps, so an entry in memory equals the one read
/// back.
pub(super) fn whole_seconds(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix_seconds(t))
}

pub(super) fn encode(entry: &Entry) -> crate::Result<String> {
    let file = File {
        version: VERSION,
        id: entry.id.clone(),
        from: entry.from.clone(),
        recipients: entry.recipients.clone(),
        delivered: entry.delivered.clone(),
        account: entry.account.clone(),
        route: entry.route.clone(),
        dsn_notify: entry.dsn_notify.clone(),
        dsn_ret: entry.dsn_ret.clone(),
        dsn_envid: entry.dsn_envid.clone(),
        eight_bit: entry.eight_bit,
        reason: entry.reason.clone(),
        created: unix_seconds(entry.created),
        attempts: entry.attempts,
        next_attempt: unix_seconds(entry.next_attempt),
        last_error: entry.last_error.clone(),
        size: entry.size,
        waiting_for_auth: entry.waiting_for_auth,
        dot_ends_input: entry.dot_ends_input,
    };
    toml::to_string(&file)
        .map_err(|e| crate::Error::Internal(format!("queue entry {}: {e}", entry.id)))
}

/// Reads the envelope of entry `id`, checking everything that would otherwise go on the
/// wire unchecked.
pub(super) fn decode(text: &str, id: &str) -> Result<Entry, Refusal> {
    let corrupt = Refusal::Corrupt;
    let version: VersionOnly = toml::from_str(text).map_err(|e| {
        corrupt(format!(
            "not a queue envelope: {}",
            first_line(&e.to_string())
        ))
    })?;
    match version.version {
        None => return Err(corrupt("no version key".into())),
        Some(v) if (i64::from(OLDEST)..=i64::from(VERSION)).contains(&v) => {}
        Some(v) if v > i64::from(VERSION) => {
            return Err(Refusal::Newer(u32::try_from(v).unwrap_or(u32::MAX)));
        }
        Some(v) => return Err(corrupt(format!("unknown version {v}"))),
    }
    let file: File = toml::from_str(text)
        .map_err(|e| corrupt(format!("unreadable: {}", first_line(&e.to_string()))))?;
    if file.id != id {
        return Err(corrupt(format!("names entry {:?}", file.id)));
    }
    // A line break in an address would become a command of its own on the wire.
    let addresses = std::iter::once(&file.from)
        .chain(&file.recipients)
        .chain(&file.delivered);
    for address in addresses {
        if address.chars().any(char::is_control) {
            return Err(corrupt(format!("control character in address {address:?}")));
        }
    }
    for (name, value) in [
        ("account", &file.account),
        ("dsn_notify", &file.dsn_notify),
        ("dsn_ret", &file.dsn_ret),
        ("dsn_envid", &file.dsn_envid),
    ] {
        if value
            .as_deref()
            .is_some_and(|v| v.chars().any(char::is_control))
        {
            return Err(corrupt(format!("control character in {name}")));
        }
    }
    // An entry is removed when its last recipient is done; none are ever written.
    if file.recipients.is_empty() {
        return Err(corrupt("no recipients left".into()));
    }
    let time = |secs: u64| {
        UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .ok_or_else(|| corrupt(format!("time {secs} out of range")))
    };
    Ok(Entry {
        id: file.id,
        from: file.from,
        recipients: file.recipients,
        delivered: file.delivered,
        account: file.account,
        route: file.route,
        dsn_notify: file.dsn_notify,
        dsn_ret: file.dsn_ret,
        dsn_envid: file.dsn_envid,
        eight_bit: file.eight_bit,
        reason: file.reason,
        created: time(file.created)?,
        attempts: file.attempts,
        next_attempt: time(file.next_attempt)?,
        last_error: file.last_error,
        size: file.size,
        waiting_for_auth: file.waiting_for_auth,
        dot_ends_input: file.dot_ends_input,
    })
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::id;

    fn entry() -> Entry {
        let created = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Entry {
            id: id::make(1_700_000_000_000_000_000, 42, 0),
            from: "alice@example.org".into(),
            recipients: vec!["bob@example.org".into(), "carol@example.net".into()],
            delivered: vec!["dave@example.org".into()],
            account: Some("work".into()),
            route: None,
            dsn_notify: Some("FAILURE,DELAY".into()),
            dsn_ret: Some("HDRS".into()),
            dsn_envid: Some("QQ314159".into()),
            eight_bit: Some(true),
            reason: Some("mx.example.org: connection refused".into()),
            created,
            attempts: 2,
            next_attempt: created + Duration::from_secs(600),
            last_error: Some("421 4.3.0 \"try\" later\nsecond line".into()),
            size: 1234,
            waiting_for_auth: true,
            dot_ends_input: true,
        }
    }

    #[test]
    fn an_entry_survives_the_file_format() {
        let e = entry();
        let text = encode(&e).unwrap();
        assert!(text.starts_with("version = 2\n"), "{text}");
        assert!(text.contains("created = 1700000000\n"), "{text}");
        assert_eq!(decode(&text, &e.id), Ok(e));
    }

    #[test]
    fn absent_options_are_left_out_and_read_back_as_none() {
        let mut e = entry();
        e.account = None;
        e.dsn_notify = None;
        e.dsn_ret = None;
        e.dsn_envid = None;
        e.eight_bit = None;
        e.reason = None;
        e.last_error = None;
        let text = encode(&e).unwrap();
        assert!(!text.contains("account"), "{text}");
        assert_eq!(decode(&text, &e.id), Ok(e));
    }

    #[test]
    fn the_null_sender_is_kept() {
        let mut e = entry();
        e.from = String::new();
        let text = encode(&e).unwrap();
        assert_eq!(decode(&text, &e.id).unwrap().from, "");
    }

    #[test]
    fn a_newer_version_is_left_alone_not_called_corrupt() {
        let text = "version = 3\nsomething = \"new\"\n";
        assert_eq!(decode(text, "x"), Err(Refusal::Newer(3)));
    }

    #[test]
    fn a_version_1_envelope_is_an_entry_without_a_route() {
        let mut e = entry();
        e.route = None;
        let text = encode(&e).unwrap().replace("version = 2", "version = 1");
        assert_eq!(decode(&text, &e.id), Ok(e));
    }

    #[test]
    fn the_route_is_kept() {
        let mut e = entry();
        e.route = Some(RouteSpec::Relay(crate::delivery::route::RelaySpec {
            host: "smtp.example.org".into(),
            port: 587,
            tls: crate::transport::TlsMode::Required,
            tls_trust_file: None,
            tls_fingerprint: None,
            tls_cert: None,
            tls_key: None,
            account: Some(crate::delivery::route::AccountRef {
                name: "work".into(),
                config: "/etc/smtpsend.conf".into(),
            }),
            user: None,
            auth: None,
            oauth: false,
            insecure_auth: false,
            from_command_line: false,
            ehlo: None,
        }));
        let text = encode(&e).unwrap();
        assert!(text.contains("[route]"), "{text}");
        assert_eq!(decode(&text, &e.id), Ok(e));
    }

    #[test]
    fn damaged_envelopes_are_corrupt() {
        let e = entry();
        let good = encode(&e).unwrap();
        let cut = &good[..good.len() / 2];
        let cases = [
            String::new(),
            "\u{0}\u{1}garbage".to_string(),
            good.replace("version = 2\n", ""),
            good.replace("version = 2", "version = 0"),
            cut.to_string(),
            good.replace("size = 1234", "size = -1"),
            good.replace(
                "bob@example.org",
                "bob@example.org>\\r\\nRCPT TO:<eve@example.org",
            ),
            good.replace("account = \"work\"", "account = \"w\\u0000\""),
        ];
        for text in cases {
            assert!(
                matches!(decode(&text, &e.id), Err(Refusal::Corrupt(_))),
                "accepted: {text}"
            );
        }
    }

    #[test]
    fn an_envelope_under_another_name_is_corrupt() {
        let e = entry();
        let other = id::make(1, 2, 3);
        let err = decode(&encode(&e).unwrap(), &other).unwrap_err();
        assert!(matches!(err, Refusal::Corrupt(why) if why.contains("names entry")));
    }

    #[test]
    fn an_envelope_with_nobody_to_send_to_is_corrupt() {
        let mut e = entry();
        e.recipients.clear();
        assert!(matches!(
            decode(&encode(&e).unwrap(), &e.id),
            Err(Refusal::Corrupt(_))
        ));
    }
}
