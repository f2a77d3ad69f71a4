//! The delivery log: one line per delivery attempt, in a file (`--logfile`, config
//! `logfile`) and/or syslog (`--syslog`, facility mail), as `key=value` pairs a script can
//! split:
//!
//! ```text
//! time=2025-01-31T12:00:00Z id=<x@example.org> from=a@example.org to=b@example.org host=smtp.example.org tls=verified/TLSv1.3 size=1234 status=sent code=0 reply="250 2.0.0 Ok: queued"
//! ```
//!
//! A value is written bare when it has no blank, quote, backslash or `=`; otherwise in
//! double quotes with `\"` and `\\`, and control characters as `\n`, `\r`, `\t` or `\xNN`,
//! so a line is always one line whatever a server put in its reply. Nothing from the AUTH
//! exchange is ever recorded: the fields are filled from the envelope and the server's
//! replies, never from a command line sent.

use std::ffi::CString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::delivery::{Delivered, JobOutcome};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::smtp::{Reply, Report, SessionError};

/// How an attempt ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// The server accepted the message.
    Sent,
    /// A temporary failure: 4xx, the network, TLS; the message waits or the caller retries.
    Deferred,
    /// The server refused for good (5xx).
    Bounced,
    /// Anything else: a protocol error, authentication, a local problem.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Deferred => "deferred",
            Status::Bounced => "bounced",
            Status::Failed => "failed",
        }
    }
}

/// What TLS a delivery used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsState {
    None,
    /// The protocol version (`TLSv1.3`), certificate not verified (opportunistic).
    Unverified(String),
    Verified(String),
    /// The attempt failed before the outcome said (the transport does not report it then).
    Unknown,
    /// Opportunistic TLS whose handshake failed: sent in cleartext on a new connection.
    CleartextAfterFailure,
}

impl TlsState {
    /// From a delivery's `tls` description (`TLSv1_3 TLS13_AES_256_GCM_SHA384`).
    pub fn of(delivered: &Delivered) -> TlsState {
        if delivered.tls_fallback {
            return TlsState::CleartextAfterFailure;
        }
        TlsState::from_description(delivered.tls.as_deref(), delivered.tls_verified)
    }

    /// From the transport's description ("TLSv1_3 TLS13_AES_256_GCM_SHA384"), if TLS was used.
    fn from_description(description: Option<&str>, verified: bool) -> TlsState {
        match description {
            None => TlsState::None,
            Some(desc) => {
                let version = desc
                    .split_whitespace()
                    .next()
                    .unwrap_or("TLS")
                    .replace('_', ".");
                if verified {
                    TlsState::Verified(version)
                } else {
                    TlsState::Unverified(version)
                }
            }
        }
    }

    fn text(&self) -> String {
        match self {
            TlsState::None => "none".into(),
            TlsState::Unverified(v) => format!("unverified/{v}"),
            TlsState::Verified(v) => format!("verified/{v}"),
            TlsState::Unknown => "unknown".into(),
            TlsState::CleartextAfterFailure => "cleartext after a failed TLS handshake".into(),
        }
    }
}

/// One delivery attempt.
#[derive(Clone, Debug)]
pub struct Record {
    pub time: SystemTime,
    /// The Message-ID, or the queue id, or a random id.
    pub id: String,
    pub from: String,
    pub to: Vec<String>,
    pub host: String,
    pub tls: TlsState,
    /// The TLS policy that applied on the direct route (`dane (3 1 1 matched)`,
    /// `mta-sts enforce`, `opportunistic`); logged only when known.
    pub policy: Option<String>,
    /// Bytes of the message, when known.
    pub size: Option<u64>,
    pub status: Status,
    /// The exit status this outcome means.
    pub code: ExitStatus,
    /// The server's last reply, or the local reason when no reply came.
    pub reply: String,
}

/// What is known of a delivery attempt whatever its outcome.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    /// The Message-ID, the queue id, or a random id ([`message_id`], [`random_id`]).
    pub id: &'a str,
    pub from: &'a str,
    /// The envelope recipients of the transaction.
    pub to: &'a [String],
    /// The relay, or the domain for direct delivery (an error may name the host better).
    pub host: &'a str,
    pub size: Option<u64>,
}

impl Record {
    fn new(a: &Attempt<'_>, status: Status, code: ExitStatus, reply: String) -> Record {
        Record {
            time: SystemTime::now(),
            id: a.id.to_string(),
            from: a.from.to_string(),
            to: a.to.to_vec(),
            host: a.host.to_string(),
            tls: TlsState::Unknown,
            policy: None,
            size: a.size,
            status,
            code,
            reply,
        }
    }

    /// The records of a transaction the server completed: one for the accepted
    /// recipients, and one for each recipient it refused, with its own reply.
    pub fn delivered(a: &Attempt<'_>, report: &Report, host: &str, tls: &TlsState) -> Vec<Record> {
        let mut records = Vec::new();
        let base = |status, code, reply| Record {
            host: host.to_string(),
            tls: tls.clone(),
            ..Record::new(a, status, code, reply)
        };
        if !report.accepted.is_empty() {
            records.push(Record {
                to: report.accepted.clone(),
                ..base(Status::Sent, ExitStatus::Ok, report.reply.to_string())
            });
        }
        for f in &report.rejected {
            let code = ExitStatus::for_reply(f.reply.code, true);
            records.push(Record {
                to: vec![f.recipient.clone()],
                ..base(status_of(code, true), code, f.reply.to_string())
            });
        }
        records
    }

    /// The record of a failed attempt.
    pub fn failed(a: &Attempt<'_>, error: &Error) -> Record {
        let code = error.exit_status();
        let reply = server_reply(error);
        let refused = matches!(
            error,
            Error::PartialDelivery { .. }
                | Error::Session {
                    error: SessionError::Refused { .. } | SessionError::NoRecipientAccepted(_),
                    ..
                }
        );
        Record {
            host: error_host(error).unwrap_or(a.host).to_string(),
            ..Record::new(
                a,
                status_of(code, refused && reply.is_some_and(Reply::is_permanent)),
                code,
                reply.map_or_else(|| error.to_string(), Reply::to_string),
            )
        }
    }
}

/// Deferred for anything temporary; bounced when the server refused the message or a
/// recipient for good; failed otherwise (authentication, protocol, local trouble).
fn status_of(code: ExitStatus, refused_for_good: bool) -> Status {
    match code {
        ExitStatus::Ok => Status::Sent,
        ExitStatus::TempFail => Status::Deferred,
        _ if refused_for_good => Status::Bounced,
        _ => Status::Failed,
    }
}

/// The server's reply inside an error, if it carries one. Never a command: the AUTH
/// command (with its payload redacted anyway) is left out.
fn server_reply(error: &Error) -> Option<&Reply> {
    let Error::Session { error, .. } = error else {
        return match error {
            Error::PartialDelivery { rejected, .. } => rejected.first().map(|f| &f.reply),
            _ => None,
        };
    };
    match error {
        SessionError::Refused { reply, .. } | SessionError::AuthFailed { reply, .. } => Some(reply),
        SessionError::NoRecipientAccepted(failures) => failures.first().map(|f| &f.reply),
        _ => None,
    }
}

fn error_host(error: &Error) -> Option<&str> {
    match error {
        Error::NoHost { host, .. }
        | Error::Network { host, .. }
        | Error::Tls { host, .. }
        | Error::Session { host, .. }
        | Error::PartialDelivery { host, .. } => Some(host),
        _ => None,
    }
}

/// Where the lines go.
#[derive(Clone, Debug, Default)]
pub struct Logger {
    file: Option<PathBuf>,
    syslog: bool,
}

impl Logger {
    /// Lines to `file` (when set) and to syslog (when `syslog`).
    pub fn new(file: Option<PathBuf>, syslog: bool) -> Logger {
        Logger { file, syslog }
    }

    pub fn is_enabled(&self) -> bool {
        self.file.is_some() || self.syslog
    }

    /// This logger, or syslog alone when it has nowhere to write: a detached process
    /// (the background queue runner) has no stderr, and must say things somewhere.
    pub fn or_syslog(self) -> Logger {
        if self.is_enabled() {
            self
        } else {
            Logger {
                file: None,
                syslog: true,
            }
        }
    }

    /// A line in words (the background runner's, which has no stderr): to the file with
    /// the time, to syslog as a notice. Control characters are escaped like a value's.
    pub fn note(&self, text: &str) -> Result<(), Error> {
        let escaped = value(text, false);
        let text = escaped
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(&escaped);
        if self.syslog {
            syslog_text(libc::LOG_NOTICE, text);
        }
        match &self.file {
            Some(path) => append_line(
                path,
                &format!(
                    "time={} note={}",
                    rfc3339(SystemTime::now()),
                    value(text, true)
                ),
            ),
            None => Ok(()),
        }
    }

    /// Write the record. The file is opened for each line (`O_APPEND`, created 0600), so
    /// a rotated log is picked up and concurrent runs never interleave within a line:
    /// each line is one `write()`.
    pub fn record(&self, rec: &Record) -> Result<(), Error> {
        if self.syslog {
            syslog(rec);
        }
        match &self.file {
            Some(path) => append_line(path, &format_line(rec)),
            None => Ok(()),
        }
    }

    /// [`Self::record`], with a failure as a note on `err`: the mail matters more than the
    /// log of it.
    pub fn record_or_warn(&self, rec: &Record, err: &mut dyn Write) {
        if let Err(e) = self.record(rec) {
            let _ = writeln!(err, "smtpsend: {e}");
        }
    }

    /// Log a failure that ended an attempt.
    pub fn failure(&self, a: &Attempt<'_>, error: &Error, err: &mut dyn Write) {
        if self.is_enabled() {
            self.record_or_warn(&Record::failed(a, error), err);
        }
    }

    /// Log what became of one message of a queue run's batch.
    pub fn job(&self, a: &Attempt<'_>, outcome: &JobOutcome, err: &mut dyn Write) {
        if !self.is_enabled() {
            return;
        }
        let host = a.host.to_string();
        match outcome {
            JobOutcome::Delivered(report, tls) => {
                let tls = TlsState::from_description(tls.as_deref(), report.tls_verified);
                for rec in Record::delivered(a, report, a.host, &tls) {
                    self.record_or_warn(&rec, err);
                }
            }
            JobOutcome::Failed(error) => {
                let error = Error::Session {
                    host,
                    error: error.clone(),
                };
                self.failure(a, &error, err);
            }
            JobOutcome::NotAttempted(why) => {
                self.failure(a, &JobOutcome::not_attempted_error(&host, why), err);
            }
        }
    }

    /// Log the outcome of one delivery attempt (`deliver::deliver`, direct delivery).
    pub fn attempt(&self, a: &Attempt<'_>, result: &Result<Delivered, Error>, err: &mut dyn Write) {
        if !self.is_enabled() {
            return;
        }
        let records = match result {
            Ok(d) => Record::delivered(a, &d.report, &d.host, &TlsState::of(d))
                .into_iter()
                .map(|r| Record {
                    policy: d.policy.clone(),
                    ..r
                })
                .collect(),
            Err(e) => vec![Record::failed(a, e)],
        };
        for rec in &records {
            self.record_or_warn(rec, err);
        }
    }
}

/// One line appended to the log file in one `write()`.
fn append_line(path: &Path, line: &str) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let line = format!("{line}\n");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::cant_create(format!("log file {}", path.display()), e))?;
    let written = file
        .write(line.as_bytes())
        .map_err(|e| Error::io(format!("log file {}", path.display()), e))?;
    if written != line.len() {
        return Err(Error::io_text(
            format!("log file {}", path.display()),
            &format!("short write ({written} of {} bytes)", line.len()),
        ));
    }
    Ok(())
}

/// The line for the log file.
pub fn format_line(rec: &Record) -> String {
    format!("time={} {}", rfc3339(rec.time), fields(rec))
}

/// The message for syslog, which stamps its own time.
pub fn syslog_message(rec: &Record) -> String {
    fields(rec)
}

fn fields(rec: &Record) -> String {
    let size = rec.size.map_or_else(|| "-".to_string(), |s| s.to_string());
    let mut pairs: Vec<(&str, String)> = vec![
        ("id", rec.id.clone()),
        (
            "from",
            if rec.from.is_empty() {
                "<>".into()
            } else {
                rec.from.clone()
            },
        ),
        ("to", rec.to.join(",")),
        ("host", rec.host.clone()),
        ("tls", rec.tls.text()),
        ("size", size),
        ("status", rec.status.as_str().into()),
        ("code", rec.code.code().to_string()),
        ("reply", rec.reply.clone()),
    ];
    if let Some(policy) = &rec.policy {
        // After tls, the field it qualifies.
        pairs.insert(5, ("policy", policy.clone()));
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", value(v, *k == "reply")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value bare when it is safe so, quoted otherwise (always for `reply`).
fn value(v: &str, always_quote: bool) -> String {
    let bare = !always_quote
        && !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\\' | '='));
    if bare {
        return v.to_string();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// RFC 3339 in UTC with whole seconds: `2025-01-31T12:00:00Z`.
pub use crate::system::time::rfc3339;

/// A reader that counts what passes through it: the size of a streamed message.
pub struct Counted<'a> {
    inner: &'a mut dyn Read,
    pub bytes: u64,
}

impl<'a> Counted<'a> {
    pub fn new(inner: &'a mut dyn Read) -> Counted<'a> {
        Counted { inner, bytes: 0 }
    }
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The Message-ID of a message whose header section starts `head`, if it has one.
pub fn message_id(head: &[u8]) -> Option<String> {
    let mut lines = head.split(|&b| b == b'\n');
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon].eq_ignore_ascii_case(b"message-id") {
            continue;
        }
        let mut value = String::from_utf8_lossy(&line[colon + 1..]).into_owned();
        // A folded value continues on lines that start with a blank (RFC 5322 §2.2.3).
        for more in lines.by_ref() {
            let more = more.strip_suffix(b"\r").unwrap_or(more);
            if !more.starts_with(b" ") && !more.starts_with(b"\t") {
                break;
            }
            value.push_str(&String::from_utf8_lossy(more));
        }
        let value = value.trim();
        return (!value.is_empty() && value.len() <= 998).then(|| value.to_string());
    }
    None
}

/// An id for a message without a Message-ID: 16 random hex digits.
pub fn random_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // No randomness: time and pid still tell attempts apart in a log.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes = (nanos ^ u64::from(std::process::id()) << 40).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Send one record to syslog, facility mail, ident "smtpsend".
fn syslog(rec: &Record) {
    let priority = match rec.status {
        Status::Sent => libc::LOG_INFO,
        Status::Deferred => libc::LOG_NOTICE,
        Status::Bounced | Status::Failed => libc::LOG_WARNING,
    };
    syslog_text(priority, &syslog_message(rec));
}

/// One message to syslog's mail facility.
fn syslog_text(priority: libc::c_int, text: &str) {
    static OPEN: Once = Once::new();
    OPEN.call_once(|| {
        // SAFETY: the ident is a 'static C string, as openlog requires (it keeps the
        // pointer); the other arguments are plain integers.
        unsafe { libc::openlog(c"smtpsend".as_ptr(), libc::LOG_PID, libc::LOG_MAIL) };
    });
    // A NUL cannot be in the message: control characters are escaped by `value`.
    let Ok(message) = CString::new(text) else {
        return;
    };
    // SAFETY: a constant "%s" format with one NUL-terminated string argument, which
    // outlives the call; syslog keeps neither pointer.
    unsafe { libc::syslog(libc::LOG_MAIL | priority, c"%s".as_ptr(), message.as_ptr()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::{RcptFailure, Report};
    use std::time::Duration;

    fn reply(code: u16, text: &str) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    fn record() -> Record {
        Record {
            time: UNIX_EPOCH + Duration::from_secs(1_706_745_600),
            id: "<a.1@example.org>".into(),
            from: "alice@example.org".into(),
            to: vec!["bob@example.org".into(), "carol@example.net".into()],
            host: "smtp.example.org".into(),
            tls: TlsState::Verified("TLSv1.3".into()),
            policy: None,
            size: Some(1234),
            status: Status::Sent,
            code: ExitStatus::Ok,
            reply: "250 2.0.0 Ok: queued as 4XyZ".into(),
        }
    }

    /// Split a line back into pairs, undoing the quoting: what a script would do.
    fn parse(line: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut chars = line.chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some('r') => value.push('\r'),
                            Some(c) => value.push(c),
                            None => {}
                        },
                        c => value.push(c),
                    }
                }
                chars.next();
            } else {
                value = chars.by_ref().take_while(|&c| c != ' ').collect();
            }
            out.push((key, value));
        }
        out
    }

    #[test]
    fn a_line_has_every_field_in_order() {
        assert_eq!(
            format_line(&record()),
            "time=2024-02-01T00:00:00Z id=<a.1@example.org> from=alice@example.org \
             to=bob@example.org,carol@example.net host=smtp.example.org tls=verified/TLSv1.3 \
             size=1234 status=sent code=0 reply=\"250 2.0.0 Ok: queued as 4XyZ\""
        );
    }

    #[test]
    fn a_line_splits_back_into_its_values() {
        let mut rec = record();
        rec.reply = "550 5.1.1 <bob@example.org>: \"no\" \\ such\r\nuser=x".into();
        rec.from = String::new();
        rec.size = None;
        let line = format_line(&rec);
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        let pairs = parse(&line);
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "time", "id", "from", "to", "host", "tls", "size", "status", "code", "reply"
            ]
        );
        assert_eq!(pairs[2].1, "<>");
        assert_eq!(pairs[6].1, "-");
        assert_eq!(pairs[9].1, rec.reply, "quoting is undone");
    }

    #[test]
    fn control_characters_never_reach_the_log() {
        assert_eq!(value("a\x1bb", false), "\"a\\x1bb\"");
        assert_eq!(value("", false), "\"\"");
        assert_eq!(value("plain", false), "plain");
        assert_eq!(value("a=b", false), "\"a=b\"");
    }

    #[test]
    fn syslog_message_is_the_line_without_the_time() {
        let rec = record();
        let msg = syslog_message(&rec);
        assert!(msg.starts_with("id=<a.1@example.org> from=alice@example.org"));
        assert!(!msg.contains("time="));
        assert_eq!(
            format_line(&rec),
            format!("time=2024-02-01T00:00:00Z {msg}")
        );
        assert!(CString::new(msg).is_ok());
    }

    #[test]
    fn statuses_follow_the_outcome() {
        let delivered = Delivered {
            report: Report {
                accepted: vec!["a@x.example".into()],
                rejected: vec![
                    RcptFailure {
                        recipient: "b@x.example".into(),
                        reply: reply(550, "5.1.1 unknown"),
                    },
                    RcptFailure {
                        recipient: "c@x.example".into(),
                        reply: reply(452, "4.2.2 full"),
                    },
                ],
                reply: reply(250, "ok"),
                tls: true,
                tls_verified: false,
                authenticated: false,
            },
            host: "mx.x.example".into(),
            tls: Some("TLSv1_2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()),
            tls_verified: false,
            tls_fallback: false,
            policy: None,
        };
        let to = [
            "a@x.example".into(),
            "b@x.example".into(),
            "c@x.example".into(),
        ];
        let a = Attempt {
            id: "id",
            from: "s@y.example",
            to: &to,
            host: "x.example",
            size: Some(9),
        };
        let records = Record::delivered(
            &a,
            &delivered.report,
            &delivered.host,
            &TlsState::of(&delivered),
        );
        let (sent, refused) = records.split_first().unwrap();
        assert_eq!(sent.status, Status::Sent);
        assert_eq!(sent.to, ["a@x.example"]);
        assert_eq!(sent.host, "mx.x.example");
        assert_eq!(sent.tls.text(), "unverified/TLSv1.2");
        assert_eq!(refused.len(), 2);
        assert_eq!(
            (refused[0].status, refused[0].code.code()),
            (Status::Bounced, 67)
        );
        assert_eq!(
            (refused[1].status, refused[1].code.code()),
            (Status::Deferred, 75)
        );
        assert_eq!(refused[1].reply, "452 4.2.2 full");

        let auth = Error::Session {
            host: "smtp.x.example".into(),
            error: SessionError::AuthFailed {
                command: "AUTH PLAIN <redacted>".into(),
                reply: reply(535, "5.7.8 bad credentials"),
                detail: None,
            },
        };
        let r = Record::failed(&a, &auth);
        assert_eq!((r.status, r.code.code()), (Status::Failed, 77));
        assert_eq!(r.host, "smtp.x.example");
        assert_eq!(
            r.reply, "535 5.7.8 bad credentials",
            "the reply, not the command"
        );
        let net = Error::network(
            "relay",
            "connect to 192.0.2.1:587",
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        );
        let r = Record::failed(&a, &net);
        assert_eq!((r.status, r.code.code()), (Status::Deferred, 75));
        assert!(r.reply.contains("connection refused"));
        let proto = Error::Session {
            host: "relay".into(),
            error: SessionError::Protocol("garbage".into()),
        };
        assert_eq!(Record::failed(&a, &proto).status, Status::Failed);
        let refused = Error::Session {
            host: "relay".into(),
            error: SessionError::Refused {
                command: "MAIL FROM:<s@y.example>".into(),
                reply: reply(554, "5.7.1 relaying denied"),
                at_rcpt: false,
            },
        };
        let r = Record::failed(&a, &refused);
        assert_eq!((r.status, r.code.code()), (Status::Bounced, 69));
        let local = Error::Config("no relay host".into());
        let r = Record::failed(&a, &local);
        assert_eq!((r.status, r.host.as_str()), (Status::Failed, "x.example"));
    }

    #[test]
    fn message_ids_come_from_the_header_section_only() {
        assert_eq!(
            message_id(b"From: a\r\nMessage-ID: <x.1@example.org>\r\n\r\nbody").as_deref(),
            Some("<x.1@example.org>")
        );
        assert_eq!(
            message_id(b"message-id:\r\n <folded@example.org>\r\nTo: b\r\n\r\n").as_deref(),
            Some("<folded@example.org>")
        );
        assert_eq!(
            message_id(b"From: a\r\n\r\nMessage-ID: <in-body@example.org>\r\n"),
            None
        );
        assert_eq!(message_id(b""), None);
    }

    #[test]
    fn random_ids_differ() {
        let a = random_id();
        assert_eq!(a.len(), 16);
        assert_ne!(a, random_id());
    }
}
