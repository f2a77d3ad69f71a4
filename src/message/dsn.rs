//! Delivery status notifications (RFC 3464): the report a sender gets when a message
//! failed for good and the caller would never have read the exit status (cron with `-oem`,
//! a `-bs` client). A `multipart/report` with a part in words, a
//! `message/delivery-status` part a program can read, and the original's headers
//! (`text/rfc822-headers`, RFC 6522), never its body.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::system::time::{local_offset, rfc5322};

/// One recipient the message failed for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedRecipient {
    pub address: String,
    /// RFC 3463 status, `5.1.1`.
    pub status: String,
    /// The host that refused it, when a host did.
    pub remote_mta: Option<String>,
    /// The server's reply (`550 5.1.1 no such user`) or what went wrong, in one line.
    pub diagnostic: String,
}

/// What the report is about.
pub struct Report<'a> {
    /// Our name (`Reporting-MTA`, the `From` domain).
    pub reporting_mta: &'a str,
    /// The original's envelope sender, whom the report goes to.
    pub sender: &'a str,
    /// `-V`'s envelope id, when one was given.
    pub envid: Option<&'a str>,
    pub arrival: SystemTime,
    pub recipients: &'a [FailedRecipient],
    /// The original's header section, as it came.
    pub original_headers: &'a [u8],
    /// A boundary that appears nowhere in the parts.
    pub boundary: &'a str,
}

/// An RFC 5322 date in the local zone.
fn date(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    rfc5322(secs, local_offset(secs))
}

/// The whole report, CRLF line ends, ready to send from the null sender.
pub fn compose(report: &Report<'_>) -> Vec<u8> {
    let mut out = String::new();
    let b = report.boundary;
    let host = report.reporting_mta;
    let _ = write!(
        out,
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: <{to}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: {date}\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n \
         boundary=\"{b}\"\r\n\
         \r\n\
         This is a MIME-encapsulated delivery status notification.\r\n\
         \r\n\
         --{b}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         This is smtpsend on {host}.\r\n\
         \r\n\
         Your message could not be delivered to the recipients below; it was refused\r\n\
         for good and will not be tried again.\r\n\
         \r\n",
        to = report.sender,
        date = date(SystemTime::now()),
    );
    for r in report.recipients {
        let _ = write!(
            out,
            "<{}>:\r\n    {}\r\n",
            r.address,
            one_line(&r.diagnostic)
        );
    }
    let _ = write!(
        out,
        "\r\n--{b}\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; {host}\r\n"
    );
    if let Some(envid) = report.envid {
        let _ = write!(out, "Original-Envelope-Id: {}\r\n", one_line(envid));
    }
    let _ = write!(out, "Arrival-Date: {}\r\n", date(report.arrival));
    for r in report.recipients {
        let _ = write!(
            out,
            "\r\nFinal-Recipient: rfc822; {}\r\n\
             Action: failed\r\n\
             Status: {}\r\n",
            r.address, r.status
        );
        if let Some(mta) = &r.remote_mta {
            let _ = write!(out, "Remote-MTA: dns; {mta}\r\n");
        }
        let kind = if r.remote_mta.is_some() {
            "smtp"
        } else {
            "x-smtpsend"
        };
        let _ = write!(
            out,
            "Diagnostic-Code: {kind}; {}\r\n",
            one_line(&r.diagnostic)
        );
    }
    let _ = write!(
        out,
        "\r\n--{b}\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n"
    );
    let mut bytes = out.into_bytes();
    push_crlf(&mut bytes, report.original_headers);
    bytes.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    bytes
}

/// A field value on one line: CR, LF and other controls become spaces, and it is cut
/// at a length a header line can take.
fn one_line(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > 900 {
        let mut end = 900;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out.trim().to_string()
}

/// The header section with CRLF line ends, without the blank line that ends it.
fn push_crlf(out: &mut Vec<u8>, head: &[u8]) {
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            // The end of the header section (or of the input).
            break;
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(address: &str, diagnostic: &str) -> FailedRecipient {
        FailedRecipient {
            address: address.into(),
            status: "5.1.1".into(),
            remote_mta: Some("mx.example.net".into()),
            diagnostic: diagnostic.into(),
        }
    }

    #[test]
    fn a_report_has_the_three_parts_of_rfc_3464() {
        let recipients = [failed("bob@example.net", "550 5.1.1 no such user")];
        let head = b"From: root@host\nTo: bob@example.net\nSubject: cron\n\nbody line\n";
        let report = Report {
            reporting_mta: "host.example.org",
            sender: "root@host.example.org",
            envid: Some("QQ314159"),
            arrival: SystemTime::UNIX_EPOCH,
            recipients: &recipients,
            original_headers: head,
            boundary: "b-1",
        };
        let text = String::from_utf8(compose(&report)).unwrap();
        assert!(text.contains("To: <root@host.example.org>\r\n"), "{text}");
        assert!(text.contains(
            "Content-Type: multipart/report; report-type=delivery-status;\r\n boundary=\"b-1\""
        ));
        assert!(text.contains("\r\n--b-1\r\nContent-Type: message/delivery-status\r\n"));
        assert!(text.contains("Reporting-MTA: dns; host.example.org\r\n"));
        assert!(text.contains("Original-Envelope-Id: QQ314159\r\n"));
        assert!(text.contains("Final-Recipient: rfc822; bob@example.net\r\n"));
        assert!(text.contains("Action: failed\r\nStatus: 5.1.1\r\n"));
        assert!(text.contains("Remote-MTA: dns; mx.example.net\r\n"));
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"));
        assert!(text.contains(
            "Content-Type: text/rfc822-headers\r\n\r\nFrom: root@host\r\nTo: bob@example.net\r\n\
             Subject: cron\r\n\r\n--b-1--\r\n"
        ));
        assert!(!text.contains("body line"), "the body is not returned");
        // Every line ends in CRLF.
        assert!(!text.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn a_diagnostic_cannot_add_header_lines() {
        let recipients = [FailedRecipient {
            address: "bob@example.net".into(),
            status: "5.0.0".into(),
            remote_mta: None,
            diagnostic: "bad\r\nX-Injected: yes".into(),
        }];
        let report = Report {
            reporting_mta: "h",
            sender: "s@h",
            envid: None,
            arrival: SystemTime::UNIX_EPOCH,
            recipients: &recipients,
            original_headers: b"",
            boundary: "b",
        };
        let text = String::from_utf8(compose(&report)).unwrap();
        assert!(!text.contains("\r\nX-Injected"), "{text}");
        assert!(text.contains("Diagnostic-Code: x-smtpsend; bad  X-Injected: yes\r\n"));
    }
}
