//! Reading the caller's message: cron, PHP `mail()`, git send-email and mutt hand it to us
//! on stdin, as they would to `/usr/sbin/sendmail`.
//!
//! Only the header section is read and parsed (at most 1 MiB of it); the body is never
//! looked at. [`prepare`] returns the bytes to send first ([`Prepared::head`]), and the
//! caller streams the rest of the input after them through the DATA body encoder
//! ([`crate::smtp::BodyEncoder`]), which makes every line end CRLF.
//!
//! What we do to the header section:
//! - remove `Bcc:` and `Resent-Bcc:` with their continuation lines, with or without `-t`,
//!   so a blind copy stays blind (the first of the ways RFC 5322 §3.6.3 describes);
//! - with `-t`, take the recipients from `To`/`Cc`/`Bcc`, or from `Resent-To`/`Resent-Cc`/
//!   `Resent-Bcc` when any `Resent-` field is present (the message is being resent);
//! - add `From`, `Date` and `Message-ID` when asked and absent (RFC 5322 §3.6); with
//!   [`FromHeader::Always`] replace any `From` with one made from the envelope sender, with
//!   [`FromHeader::Never`] leave `From` alone (msmtp's `set_from_header on`/`off`);
//! - with `undisclosed_recipients`, replace `To`, `Cc` and `Bcc` by the empty group
//!   `To: undisclosed-recipients:;` (RFC 5322 §3.4), as msmtp's `undisclosed_recipients`;
//! - drop a leading mbox `From ` line, which is not a header field;
//! - when the input does not start with a header field (`echo hi | sendmail root`), treat
//!   all of it as body; when a line that is neither a field nor a continuation comes before
//!   any empty line, the body starts there, and an empty line is put before it so the
//!   server sees the same split.
//!
//! Header lines are re-emitted with one line-end style (that of the input's first line);
//! from the empty line that ends the header section on, the input's bytes are kept as they
//! are. Bytes that are not UTF-8 in a header are read as ISO-8859-1.

pub mod address;
pub mod aliases;
pub mod compose;
pub mod dkim;
pub mod dsn;
pub mod input;
mod scan;
pub(crate) mod stamp;

use std::collections::HashSet;
use std::io::Read;

use crate::{Error, Result};
use address::{AddressError, Origin};
use scan::{End, Section};
use stamp::Stamp;

/// When the `From` field is written from the envelope sender (msmtp's `set_from_header`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FromHeader {
    /// Only when the message has none (and missing fields are added at all).
    #[default]
    Auto,
    /// Always: any `From` the message has is replaced.
    Always,
    /// Never: a message without `From` goes without one.
    Never,
}

impl FromHeader {
    /// The config words: `auto`, `on`, `off`.
    pub fn from_word(word: &str) -> Option<FromHeader> {
        match word {
            "auto" => Some(FromHeader::Auto),
            "on" => Some(FromHeader::Always),
            "off" => Some(FromHeader::Never),
            _ => None,
        }
    }

    /// The config word for this setting.
    pub fn word(self) -> &'static str {
        match self {
            FromHeader::Auto => "auto",
            FromHeader::Always => "on",
            FromHeader::Never => "off",
        }
    }
}

/// The group a message whose recipients are hidden is addressed to (RFC 5322 §3.4).
const UNDISCLOSED: &str = "To: undisclosed-recipients:;";

/// What to do to the message; sendmail's flags map onto these.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrepareOptions {
    /// sendmail `-t`: take the recipients from the header.
    pub extract_recipients: bool,
    /// Add `From`, `Date` and `Message-ID` when the message has none.
    pub add_missing_headers: bool,
    /// The envelope sender (`-f`), for an added `From`; "" or "<>" for the null sender, which
    /// puts `MAILER-DAEMON@hostname` there. A bare local name is qualified with `hostname`.
    pub envelope_from: String,
    /// sendmail `-F`: the display name of an added `From`.
    pub full_name: Option<String>,
    /// This host's FQDN, the right side of an added `Message-ID`.
    pub hostname: String,
    /// When `From` is written from the envelope sender.
    pub from_header: FromHeader,
    /// Replace `To`, `Cc` and `Bcc` by `To: undisclosed-recipients:;`.
    pub undisclosed_recipients: bool,
}

/// The message ready to stream: send `head`, then the rest of the input unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// With `extract_recipients`: the recipients in header order, without duplicates, each
    /// checked with [`address::envelope_address`]. A bare local name (`To: root`) is kept
    /// as written for the caller to qualify, as for a command-line recipient. Empty
    /// otherwise.
    pub recipients: Vec<String>,
    /// The rewritten header section, then every byte already read past it.
    pub head: Vec<u8>,
    /// False when the input ended inside the header section: no empty line and no body
    /// (also for empty input). The message is then only header fields.
    pub headers_complete: bool,
}

/// Read the header section of `input` and prepare the message; see the module text.
///
/// Errors: [`Error::Data`] for a malformed message (header section over 1 MiB, NUL in it,
/// an unusable address in a recipient field, no recipient with `-t`), [`Error::Usage`] for
/// an unusable `envelope_from`, [`Error::Config`] for a host name that cannot be put in a
/// Message-ID, [`Error::Io`] when reading fails.
pub fn prepare<R: Read + ?Sized>(input: &mut R, opts: &PrepareOptions) -> Result<Prepared> {
    prepare_at(input, opts, &Stamp::now())
}

fn prepare_at<R: Read + ?Sized>(
    input: &mut R,
    opts: &PrepareOptions,
    stamp: &Stamp,
) -> Result<Prepared> {
    let section = scan::read_section(input)?;
    let resent = section.fields.iter().any(|f| {
        f.name
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("resent-"))
    });
    let recipients = if opts.extract_recipients {
        extract_recipients(&section, resent)?
    } else {
        Vec::new()
    };

    let newline = newline_style(&section.buf[section.start..]);
    let mut head = Vec::with_capacity(section.buf.len() + 256);
    for field in &section.fields {
        if ["bcc", "resent-bcc"]
            .iter()
            .any(|n| field.name.eq_ignore_ascii_case(n))
            || (opts.undisclosed_recipients
                && ["to", "cc"]
                    .iter()
                    .any(|n| field.name.eq_ignore_ascii_case(n)))
            || (opts.from_header == FromHeader::Always && field.name.eq_ignore_ascii_case("from"))
        {
            continue;
        }
        for line in &field.lines {
            head.extend_from_slice(&section.buf[line.clone()]);
            head.extend_from_slice(newline.as_bytes());
        }
    }
    let mut added = String::new();
    if opts.undisclosed_recipients {
        added.push_str(UNDISCLOSED);
        added.push_str(newline);
    }
    let has_from = section
        .fields
        .iter()
        .any(|f| f.name.eq_ignore_ascii_case("from"));
    let write_from = match opts.from_header {
        FromHeader::Always => true,
        FromHeader::Auto => opts.add_missing_headers && !has_from,
        FromHeader::Never => false,
    };
    if write_from {
        added.push_str(&from_field(opts, newline)?);
    }
    if opts.add_missing_headers {
        added.push_str(&missing_fields(&section, opts, stamp, newline)?);
    }
    head.extend_from_slice(added.as_bytes());

    let headers_complete = match section.end {
        End::Blank(at) => {
            head.extend_from_slice(&section.buf[at..]);
            true
        }
        End::BodyLine(at) => {
            if !section.fields.is_empty() || !added.is_empty() {
                head.extend_from_slice(newline.as_bytes());
            }
            head.extend_from_slice(&section.buf[at..]);
            true
        }
        End::Eof => false,
    };
    Ok(Prepared {
        recipients,
        head,
        headers_complete,
    })
}

/// The address of the first mailbox of the message's `From` field, as msmtp's
/// `--read-envelope-from` takes the envelope sender from it, and every byte read to find
/// it (the header section, perhaps more), for the caller to put back in front of the
/// rest. `None` when there is no `From` or it names no mailbox.
///
/// Errors: [`Error::Data`] for a header section [`prepare`] would refuse, or a `From`
/// address that cannot be an envelope sender; [`Error::Io`] when reading fails.
pub fn from_address<R: Read + ?Sized>(input: &mut R) -> Result<(Option<String>, Vec<u8>)> {
    let section = scan::read_section(input)?;
    let Some(field) = section
        .fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("from"))
    else {
        return Ok((None, section.buf));
    };
    let value = header_text(section.value(field));
    let list = address::parse_address_list(&value);
    let from = match list.mailboxes.first() {
        Some(mailbox) => Some(
            address::envelope_address(&mailbox.address)
                .map_err(|e| Error::Data(format!("{}: {e}", field.name)))?,
        ),
        None => None,
    };
    Ok((from, section.buf))
}

/// The line end of the first line of `bytes`: LF when it ends with a bare LF, else CRLF.
fn newline_style(bytes: &[u8]) -> &'static str {
    match memchr::memchr2(b'\r', b'\n', bytes) {
        Some(i) if bytes[i] == b'\n' => "\n",
        _ => "\r\n",
    }
}

/// Header bytes as text: UTF-8 (RFC 6532) when they are, else ISO-8859-1, which cannot fail.
fn header_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    }
}

fn extract_recipients(section: &Section, resent: bool) -> Result<Vec<String>> {
    let names: [&str; 3] = if resent {
        ["Resent-To", "Resent-Cc", "Resent-Bcc"]
    } else {
        ["To", "Cc", "Bcc"]
    };
    let mut recipients = Vec::new();
    let mut seen = HashSet::new();
    for field in &section.fields {
        if !names.iter().any(|n| field.name.eq_ignore_ascii_case(n)) {
            continue;
        }
        let raw = section.value(field);
        let utf8 = std::str::from_utf8(&raw).is_ok();
        let value = header_text(raw);
        let list = address::parse_address_list(&value);
        if let Some(bad) = list.unparsable.first() {
            return Err(Error::Data(format!(
                "{}: cannot parse address \"{}\"",
                field.name,
                bad.escape_debug()
            )));
        }
        for mailbox in list.mailboxes {
            // Read as ISO-8859-1 for the names' sake, but an address must reach the server
            // in the bytes it was written in, and those are not UTF-8 (RFC 6531 §3.3).
            if !utf8 && !mailbox.address.is_ascii() {
                return Err(Error::Data(format!(
                    "{}: address \"{}\" is not UTF-8",
                    field.name,
                    mailbox.address.escape_debug()
                )));
            }
            let addr = match address::envelope_address(&mailbox.address) {
                Ok(a) => a,
                Err(AddressError::NoDomain(local)) => local,
                Err(e) => return Err(Error::Data(format!("{}: {e}", field.name))),
            };
            if seen.insert(dedup_key(&addr)) {
                recipients.push(addr);
            }
        }
    }
    Ok(recipients)
}

/// Domains are case-insensitive (RFC 5321 §2.4); local parts are left to the server.
fn dedup_key(addr: &str) -> String {
    match addr.rfind('@') {
        Some(at) => format!("{}{}", &addr[..at], addr[at..].to_lowercase()),
        None => addr.to_string(),
    }
}

/// This host's name for an added field, checked: it goes into a header.
fn checked_host(opts: &PrepareOptions) -> Result<&str> {
    if stamp::is_dot_atom_text(&opts.hostname) {
        Ok(opts.hostname.as_str())
    } else {
        Err(Error::Config(format!(
            "host name \"{}\" cannot be used in a Message-ID",
            opts.hostname.escape_debug()
        )))
    }
}

/// A `From` field for the envelope sender, ending with `newline`.
fn from_field(opts: &PrepareOptions, newline: &str) -> Result<String> {
    let address = if address::is_null_sender(&opts.envelope_from) {
        format!("MAILER-DAEMON@{}", checked_host(opts)?)
    } else {
        match address::envelope_address(&opts.envelope_from) {
            Ok(a) => a,
            Err(AddressError::NoDomain(local)) => format!("{local}@{}", checked_host(opts)?),
            Err(e) => return Err(e.into_error(Origin::CommandLine)),
        }
    };
    let mut field = stamp::from_field(opts.full_name.as_deref(), &address, newline);
    field.push_str(newline);
    Ok(field)
}

/// The `Date` and `Message-ID` lines the message lacks, each ending with `newline`.
fn missing_fields(
    section: &Section,
    opts: &PrepareOptions,
    stamp: &Stamp,
    newline: &str,
) -> Result<String> {
    let has = |name: &str| {
        section
            .fields
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(name))
    };
    let mut out = String::new();
    if !has("Date") {
        let date = crate::system::time::rfc5322(stamp.secs, stamp.offset);
        out.push_str(&format!("Date: {date}{newline}"));
    }
    if !has("Message-ID") {
        out.push_str(&format!(
            "Message-ID: <{}@{}>{newline}",
            stamp.unique,
            checked_host(opts)?
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::body::encode_all;

    const DATE: &str = "Fri, 21 Nov 1997 09:55:06 -0600";

    fn stamp() -> Stamp {
        Stamp {
            secs: 880_127_706,
            offset: -6 * 3600,
            unique: "u1".into(),
        }
    }

    fn opts() -> PrepareOptions {
        PrepareOptions {
            extract_recipients: false,
            add_missing_headers: false,
            envelope_from: "sender@example.org".into(),
            full_name: None,
            hostname: "host.example.org".into(),
            from_header: FromHeader::Auto,
            undisclosed_recipients: false,
        }
    }

    fn extract() -> PrepareOptions {
        PrepareOptions {
            extract_recipients: true,
            ..opts()
        }
    }

    fn add() -> PrepareOptions {
        PrepareOptions {
            add_missing_headers: true,
            ..opts()
        }
    }

    /// Prepare `input`, and return the result with the input left unread.
    fn run<'a>(input: &'a [u8], o: &PrepareOptions) -> Result<(Prepared, &'a [u8])> {
        let mut reader = input;
        let p = prepare_at(&mut reader, o, &stamp())?;
        Ok((p, reader))
    }

    fn ok(input: &[u8], o: &PrepareOptions) -> Prepared {
        let (p, rest) = run(input, o).unwrap_or_else(|e| panic!("{e}"));
        assert!(rest.is_empty(), "a slice reader is read in one go");
        p
    }

    fn data_error(input: &[u8], o: &PrepareOptions) -> String {
        match run(input, o) {
            Err(Error::Data(msg)) => msg,
            other => panic!("expected a data error, got {other:?}"),
        }
    }

    fn s(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// What the server receives: head, then the rest of the input, through the encoder.
    fn wire(head: &[u8], rest: &[u8]) -> String {
        s(&encode_all(&[head, rest].concat(), false))
    }

    /// Hands out its input `step` bytes at a time.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Gives `first` on the first read, then fails: proves nothing more was asked for.
    struct ThenFail<'a>(Option<&'a [u8]>);

    impl Read for ThenFail<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            match self.0.take() {
                Some(d) => {
                    out[..d.len()].copy_from_slice(d);
                    Ok(d.len())
                }
                None => Err(std::io::Error::other("read past what was needed")),
            }
        }
    }

    const CRON: &[u8] = b"From: root (Cron Daemon)\n\
        To: root\n\
        Subject: Cron <root@web1> /usr/local/bin/backup\n\
        MIME-Version: 1.0\n\
        Content-Type: text/plain; charset=UTF-8\n\
        Content-Transfer-Encoding: 8bit\n\
        X-Cron-Env: <SHELL=/bin/sh>\n\
        X-Cron-Env: <HOME=/root>\n\
        \n\
        backup: disk full\n";

    #[test]
    fn cron_mail_gets_date_and_message_id_but_keeps_its_from() {
        let p = ok(CRON, &add());
        let split = CRON.windows(2).position(|w| w == b"\n\n").unwrap() + 1;
        let expected = [
            &CRON[..split],
            format!("Date: {DATE}\nMessage-ID: <u1@host.example.org>\n").as_bytes(),
            &CRON[split..],
        ]
        .concat();
        assert_eq!(s(&p.head), s(&expected));
        assert!(p.headers_complete);
        assert!(p.recipients.is_empty());
    }

    #[test]
    fn cron_mail_with_t_yields_the_bare_local_recipient() {
        let p = ok(CRON, &extract());
        assert_eq!(p.recipients, vec!["root"]);
        assert_eq!(p.head, CRON);
    }

    #[test]
    fn php_mail_with_bare_lf_keeps_lf_and_gets_missing_fields() {
        let input = b"To: bob@example.org\n\
            Subject: Your order\n\
            X-PHP-Originating-Script: 33:order.php\n\
            From: shop@example.org\n\
            Content-type: text/html; charset=iso-8859-1\n\
            \n\
            <p>Thanks</p>\n";
        let o = PrepareOptions {
            extract_recipients: true,
            add_missing_headers: true,
            ..opts()
        };
        let p = ok(input, &o);
        assert_eq!(p.recipients, vec!["bob@example.org"]);
        let text = s(&p.head);
        assert!(!text.contains('\r'), "{text:?}");
        assert!(text.contains(&format!(
            "charset=iso-8859-1\nDate: {DATE}\nMessage-ID: <u1@host.example.org>\n\n<p>Thanks</p>\n"
        )));
        assert_eq!(text.matches("From:").count(), 1);
    }

    const GIT_SEND_EMAIL: &[u8] = b"From: Alice Developer <alice@example.org>\n\
        To: dev@lists.example.org\n\
        Cc: Bob Maintainer <bob@example.org>,\n\
        \tCarol Reviewer <carol@example.org>\n\
        Subject: [PATCH v2 1/3] parser: reject NUL in headers\n\
        Date: Mon,  1 Jan 2024 10:00:00 +0100\n\
        Message-ID: <20240101090000.4242-1-alice@example.org>\n\
        X-Mailer: git-send-email 2.43.0\n\
        In-Reply-To: <20231231.cover@example.org>\n\
        MIME-Version: 1.0\n\
        Content-Transfer-Encoding: 8bit\n\
        \n\
        Signed-off-by: Alice Developer <alice@example.org>\n\
        ---\n\
        \x20src/parse.rs | 2 +-\n";

    #[test]
    fn git_send_email_patch_passes_unchanged() {
        let o = PrepareOptions {
            extract_recipients: true,
            add_missing_headers: true,
            ..opts()
        };
        let p = ok(GIT_SEND_EMAIL, &o);
        assert_eq!(s(&p.head), s(GIT_SEND_EMAIL));
        assert_eq!(
            p.recipients,
            vec![
                "dev@lists.example.org",
                "bob@example.org",
                "carol@example.org"
            ]
        );
    }

    #[test]
    fn folded_to_with_names_and_a_group() {
        let input = b"To: \"Smith, John\" <john@example.org>,\r\n \
            =?utf-8?q?J=C3=B6rg?= <joerg@example.org>,\r\n\
            \tteam: a@example.org,\r\n  b@example.org;\r\n\
            Cc: undisclosed-recipients:;\r\n\
            Subject: x\r\n\
            \r\n\
            body\r\n";
        let p = ok(input, &extract());
        assert_eq!(
            p.recipients,
            vec![
                "john@example.org",
                "joerg@example.org",
                "a@example.org",
                "b@example.org"
            ]
        );
        assert_eq!(p.head, input);
    }

    #[test]
    fn bcc_is_removed_with_its_continuation_lines() {
        let input = b"To: a@example.org\n\
            Bcc: b@example.org,\n  c@example.org\n\
            Subject: s\n\
            bcc: d@example.org\n\
            BCC  : e@example.org\n\
            \n\
            Bcc: this is body\n";
        let p = ok(input, &extract());
        assert_eq!(
            s(&p.head),
            "To: a@example.org\nSubject: s\n\nBcc: this is body\n"
        );
        assert_eq!(
            p.recipients,
            vec![
                "a@example.org",
                "b@example.org",
                "c@example.org",
                "d@example.org",
                "e@example.org"
            ]
        );
        // Without -t too: a blind copy stays blind.
        let p = ok(input, &opts());
        assert!(!s(&p.head).contains("c@example.org"));
    }

    #[test]
    fn resent_fields_choose_the_recipients() {
        let input = b"Resent-From: list@example.org\n\
            Resent-To: new@example.org\n\
            Resent-Bcc: hidden@example.org\n\
            From: orig@example.org\n\
            To: old@example.org\n\
            Bcc: oldhidden@example.org\n\
            \n\
            body\n";
        let p = ok(input, &extract());
        assert_eq!(p.recipients, vec!["new@example.org", "hidden@example.org"]);
        assert_eq!(
            s(&p.head),
            "Resent-From: list@example.org\nResent-To: new@example.org\n\
             From: orig@example.org\nTo: old@example.org\n\nbody\n"
        );
        // Resent mode takes only Resent- fields; the caller reports an empty list.
        let p = ok(b"Resent-Date: x\nTo: old@example.org\n\nbody\n", &extract());
        assert!(p.recipients.is_empty());
    }

    #[test]
    fn body_only_message_gets_a_header_section() {
        let p = ok(b"hi\n", &add());
        assert_eq!(
            s(&p.head),
            format!(
                "From: sender@example.org\nDate: {DATE}\nMessage-ID: <u1@host.example.org>\n\nhi\n"
            )
        );
        assert!(p.headers_complete);
        let p = ok(b"hi\n", &opts());
        assert_eq!(p.head, b"hi\n");
        assert!(p.headers_complete);
        assert!(ok(b"hi\n", &extract()).recipients.is_empty());
    }

    #[test]
    fn body_only_input_is_not_read_past_its_first_words() {
        let mut input = ThenFail(Some(b"disk usage at 93% on /var"));
        let p = prepare_at(&mut input, &add(), &stamp()).unwrap();
        assert!(s(&p.head).ends_with("\r\n\r\ndisk usage at 93% on /var"));
        assert!(p.headers_complete);
    }

    #[test]
    fn indented_first_line_is_body_and_decided_early() {
        let mut input = ThenFail(Some(b"  indented report line"));
        let p = prepare_at(&mut input, &opts(), &stamp()).unwrap();
        assert_eq!(p.head, b"  indented report line");
    }

    #[test]
    fn a_body_line_inside_the_header_section_starts_the_body() {
        let p = ok(b"To: a@example.org\nthis is text\nmore\n", &extract());
        assert_eq!(s(&p.head), "To: a@example.org\n\nthis is text\nmore\n");
        assert_eq!(p.recipients, vec!["a@example.org"]);
        let p = ok(b"To: a@example.org\n continued\n", &opts());
        assert!(!p.headers_complete);
    }

    #[test]
    fn header_only_message_without_empty_line() {
        let p = ok(b"To: a@example.org\nSubject: s", &extract());
        assert_eq!(s(&p.head), "To: a@example.org\nSubject: s\n");
        assert!(!p.headers_complete);
        assert_eq!(p.recipients, vec!["a@example.org"]);

        let p = ok(b"Subject: s\r\n", &add());
        assert_eq!(
            s(&p.head),
            format!(
                "Subject: s\r\nFrom: sender@example.org\r\nDate: {DATE}\r\n\
                 Message-ID: <u1@host.example.org>\r\n"
            )
        );
        assert!(!p.headers_complete);
    }

    #[test]
    fn empty_input() {
        let p = ok(b"", &opts());
        assert!(p.head.is_empty());
        assert!(!p.headers_complete);
        let p = ok(b"", &add());
        assert_eq!(
            s(&p.head),
            format!(
                "From: sender@example.org\r\nDate: {DATE}\r\nMessage-ID: <u1@host.example.org>\r\n"
            )
        );
        assert!(ok(b"", &extract()).recipients.is_empty());
    }

    #[test]
    fn input_starting_with_an_empty_line_has_an_empty_header_section() {
        let p = ok(b"\nbody\n", &add());
        assert_eq!(
            s(&p.head),
            format!(
                "From: sender@example.org\nDate: {DATE}\nMessage-ID: <u1@host.example.org>\n\nbody\n"
            )
        );
    }

    #[test]
    fn header_section_over_one_mebibyte_is_refused() {
        let line = format!("X-Filler: {}\n", "a".repeat(1000));
        let mut big = line
            .repeat(scan::MAX_HEADER_SECTION / line.len() + 1)
            .into_bytes();
        big.extend_from_slice(b"\nbody\n");
        assert_eq!(
            data_error(&big, &opts()),
            "header section larger than 1 MiB"
        );

        let mut one_line = b"X-Long: ".to_vec();
        one_line.resize(scan::MAX_HEADER_SECTION + 10, b'a');
        assert_eq!(
            data_error(&one_line, &opts()),
            "header section larger than 1 MiB"
        );

        let mut fits = line
            .repeat(scan::MAX_HEADER_SECTION / line.len() - 1)
            .into_bytes();
        fits.extend_from_slice(b"\nbody\n");
        let p = ok(&fits, &opts());
        assert_eq!(p.head, fits);
    }

    #[test]
    fn separator_split_across_reads_gives_the_same_message() {
        let inputs: [&[u8]; 7] = [
            b"To: a@example.org\nBcc: b@example.org\n\nbody\n",
            b"To: a@example.org\r\nBcc: b@example.org\r\n\r\nbody\r\n",
            b"To: a@example.org\r\nBcc: b@example.org\r\n\nbody\r\n",
            b"To: a@example.org\nBcc: b@example.org\n\r\nbody\n",
            b"To: a@example.org\rBcc: b@example.org\r\rbody\r",
            b"To: a@example.org\rBcc: b@example.org\n\nbody\n",
            b"To: a@example.org\n\n\nbody\n",
        ];
        let o = PrepareOptions {
            extract_recipients: true,
            add_missing_headers: true,
            ..opts()
        };
        for input in inputs {
            let (whole, _) = run(input, &o).unwrap();
            let expected = wire(&whole.head, b"");
            for step in 1..=3 {
                let mut reader = Trickle { data: input, step };
                let p = prepare_at(&mut reader, &o, &stamp()).unwrap();
                assert_eq!(p.recipients, whole.recipients, "{input:?}");
                assert_eq!(
                    wire(&p.head, reader.data),
                    expected,
                    "{input:?} step {step}"
                );
                if step == 1 {
                    assert!(
                        reader.data.ends_with(b"dy\n")
                            || reader.data.ends_with(b"dy\r\n")
                            || reader.data.ends_with(b"dy\r"),
                        "the body is left unread: {input:?}"
                    );
                }
            }
            for cut in 0..=input.len() {
                let mut reader = std::io::Read::chain(&input[..cut], &input[cut..]);
                let p = prepare_at(&mut reader, &o, &stamp()).unwrap();
                let mut rest = Vec::new();
                reader.read_to_end(&mut rest).unwrap();
                assert_eq!(wire(&p.head, &rest), expected, "{input:?} cut {cut}");
            }
        }
    }

    #[test]
    fn mixed_line_ends_make_no_extra_blank_lines() {
        let cases: [(&[u8], &str); 5] = [
            (
                b"To: a@example.org\r\nBcc: b@example.org\nSubject: s\r\n\nbody\n",
                "To: a@example.org\r\nSubject: s\r\n\r\nbody\r\n.\r\n",
            ),
            (
                b"Subject: s\rBcc: x@example.org\n\nbody\n",
                "Subject: s\r\n\r\nbody\r\n.\r\n",
            ),
            (
                b"Subject: s\nBcc: x@example.org\r\n\rbody\n",
                "Subject: s\r\n\r\nbody\r\n.\r\n",
            ),
            (
                b"Subject: s\n\r\n\r\nbody",
                "Subject: s\r\n\r\n\r\nbody\r\n.\r\n",
            ),
            (b"Subject: s\r\n\n", "Subject: s\r\n\r\n.\r\n"),
        ];
        for (input, expected) in cases {
            let p = ok(input, &opts());
            assert_eq!(wire(&p.head, b""), expected, "{input:?}");
        }
        let p = ok(b"Subject: s\r\nTo: a@example.org\n\nbody\n", &add());
        let w = wire(&p.head, b"");
        assert!(
            w.contains("Message-ID: <u1@host.example.org>\r\n\r\nbody\r\n"),
            "{w}"
        );
        assert_eq!(w.matches("\r\n\r\n").count(), 1, "{w}");
    }

    #[test]
    fn bare_cr_cannot_hide_a_bcc_line() {
        let p = ok(
            b"Subject: hi\rBcc: secret@example.org\n\nbody\n",
            &extract(),
        );
        assert_eq!(p.recipients, vec!["secret@example.org"]);
        assert!(!wire(&p.head, b"").contains("secret"));
    }

    #[test]
    fn existing_fields_are_never_duplicated() {
        let input = b"FROM: a@example.org\ndate: Fri, 21 Nov 1997 09:55:06 -0600\n\
            message-id: <x@y>\n\nbody\n";
        let p = ok(input, &add());
        assert_eq!(p.head, input);
    }

    #[test]
    fn added_from_uses_the_full_name_and_qualifies_the_sender() {
        let o = PrepareOptions {
            add_missing_headers: true,
            envelope_from: "root".into(),
            full_name: Some("Jörg Müller".into()),
            ..opts()
        };
        let p = ok(b"Date: x\nMessage-ID: <a@b>\n\nbody\n", &o);
        assert_eq!(
            s(&p.head),
            "Date: x\nMessage-ID: <a@b>\n\
             From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <root@host.example.org>\n\nbody\n"
        );
        let o = PrepareOptions {
            add_missing_headers: true,
            envelope_from: "<>".into(),
            full_name: Some("Cron Daemon".into()),
            ..opts()
        };
        let p = ok(b"Date: x\nMessage-ID: <a@b>\n\nbody\n", &o);
        assert!(s(&p.head).contains("From: Cron Daemon <MAILER-DAEMON@host.example.org>\n"));

        let o = PrepareOptions {
            add_missing_headers: true,
            envelope_from: "bad address@example.org".into(),
            ..opts()
        };
        assert!(matches!(run(b"\nbody", &o), Err(Error::Usage(_))));
        let o = PrepareOptions {
            add_missing_headers: true,
            hostname: "bad host\r\nBcc: x".into(),
            ..opts()
        };
        assert!(matches!(run(b"\nbody", &o), Err(Error::Config(_))));
    }

    #[test]
    fn mbox_from_line_is_dropped() {
        let input = b"From alice@example.org Mon Jan  1 00:00:00 2024\n\
            From: alice@example.org\nTo: b@example.org\n\nbody\n";
        let p = ok(input, &extract());
        assert_eq!(
            s(&p.head),
            "From: alice@example.org\nTo: b@example.org\n\nbody\n"
        );
        assert_eq!(p.recipients, vec!["b@example.org"]);
        let p = ok(b"From alice Mon Jan  1 00:00:00 2024\nhello\n", &opts());
        assert_eq!(s(&p.head), "hello\n");
        let p = ok(b"From  : obsolete@example.org\n\nbody\n", &add());
        assert_eq!(s(&p.head).matches("rom").count(), 1, "{:?}", s(&p.head));
    }

    #[test]
    fn nul_in_the_header_section_is_refused_but_not_in_the_body() {
        assert_eq!(
            data_error(b"Subject: a\0b\n\nbody\n", &opts()),
            "NUL byte in the header section"
        );
        assert_eq!(
            data_error(b"Subject: a\n \0\n\nbody\n", &opts()),
            "NUL byte in the header section"
        );
        let p = ok(b"Subject: a\n\nbo\0dy\n", &opts());
        assert_eq!(p.head, b"Subject: a\n\nbo\0dy\n");
    }

    #[test]
    fn invalid_recipients_name_the_field_and_address() {
        let msg = data_error(b"To: a@example.org\nCc: <x@-bad.example>\n\n", &extract());
        assert!(msg.starts_with("Cc: "), "{msg}");
        assert!(msg.contains("x@-bad.example"), "{msg}");
        let msg = data_error(b"to: john smith@example.org\n\n", &extract());
        assert_eq!(msg, "to: cannot parse address \"john smith@example.org\"");
        let msg = data_error(b"To: <>\n\n", &extract());
        assert!(msg.starts_with("To: "), "{msg}");
    }

    #[test]
    fn recipients_are_deduplicated_in_order() {
        let p = ok(
            b"To: a@example.org, b@Example.ORG\nCc: <a@EXAMPLE.org>, B@example.org\n\
              Bcc: a@example.org\n\n",
            &extract(),
        );
        assert_eq!(
            p.recipients,
            vec!["a@example.org", "b@Example.ORG", "B@example.org"]
        );
    }

    #[test]
    fn non_utf8_header_bytes_are_read_as_latin1() {
        let input = b"To: Andr\xe9 <andre@example.org>\nSubject: caf\xe9\n\nbody\n";
        let p = ok(input, &extract());
        assert_eq!(p.recipients, vec!["andre@example.org"]);
        assert_eq!(p.head, input);
        let p = ok(b"To: \xff\xfe@\xc3\n\n", &opts());
        assert!(p.headers_complete);
        let msg = data_error(b"To: \xff\xfe@\xc3\n\n", &extract());
        assert_eq!(msg, "To: address \"ÿþ@Ã\" is not UTF-8");
    }

    #[test]
    fn no_input_makes_prepare_panic() {
        let pieces: [&[u8]; 10] = [
            b"To: a@b.example",
            b"\r",
            b"\n",
            b" ",
            b"Bcc: x@y.example",
            b"From ",
            b":",
            b"\0",
            b"body",
            b"\xff",
        ];
        let o = PrepareOptions {
            extract_recipients: true,
            add_missing_headers: true,
            ..opts()
        };
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for d in pieces {
                        let input = [a, b, c, d].concat();
                        let _ = run(&input, &o);
                        let mut reader = Trickle {
                            data: &input,
                            step: 1,
                        };
                        let _ = prepare_at(&mut reader, &o, &stamp());
                    }
                }
            }
        }
    }

    #[test]
    fn prepare_takes_a_trait_object_reader() {
        let mut stdin_like: &mut dyn Read = &mut &b"To: a@example.org\n\nbody\n"[..];
        let p = prepare(&mut stdin_like, &extract()).unwrap();
        assert_eq!(p.recipients, vec!["a@example.org"]);
        let dyn_reader: &mut dyn Read = &mut &b"To: b@example.org\n\n"[..];
        let p = prepare(dyn_reader, &extract()).unwrap();
        assert_eq!(p.recipients, vec!["b@example.org"]);
    }

    #[test]
    fn read_errors_are_io_errors() {
        let mut input = ThenFail(Some(b"Subject: a\n"));
        assert!(matches!(
            prepare_at(&mut input, &opts(), &stamp()),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn prepare_uses_the_clock_and_makes_unique_ids() {
        let a = prepare(&mut &b"\nx"[..], &add()).unwrap();
        let b = prepare(&mut &b"\nx"[..], &add()).unwrap();
        let id = |p: &Prepared| {
            s(&p.head)
                .lines()
                .find(|l| l.starts_with("Message-ID: <"))
                .map(str::to_string)
        };
        assert!(id(&a).is_some());
        assert_ne!(id(&a), id(&b));
        assert!(s(&a.head).contains("Date: "));
    }

    const WITH_FROM: &[u8] = b"From: Someone Else <else@example.net>\n\
        To: Bob <bob@example.org>,\n\
        \tCarol <carol@example.org>\n\
        Cc: dave@example.org\n\
        Bcc: eve@example.org\n\
        Subject: hi\n\
        \n\
        body\n";

    #[test]
    fn set_from_header_on_replaces_the_from_of_the_message() {
        let o = PrepareOptions {
            from_header: FromHeader::Always,
            full_name: Some("Sender Name".into()),
            ..opts()
        };
        let text = s(&ok(WITH_FROM, &o).head);
        assert!(!text.contains("else@example.net"), "{text}");
        assert_eq!(text.matches("From:").count(), 1, "{text}");
        assert!(
            text.contains("Subject: hi\nFrom: Sender Name <sender@example.org>\n\nbody\n"),
            "{text}"
        );
    }

    #[test]
    fn set_from_header_on_writes_from_even_without_missing_headers() {
        let o = PrepareOptions {
            from_header: FromHeader::Always,
            ..opts()
        };
        let text = s(&ok(b"Subject: x\n\nbody\n", &o).head);
        assert_eq!(text, "Subject: x\nFrom: sender@example.org\n\nbody\n");
    }

    #[test]
    fn set_from_header_off_adds_date_and_id_but_no_from() {
        let o = PrepareOptions {
            from_header: FromHeader::Never,
            ..add()
        };
        let text = s(&ok(b"Subject: x\n\nbody\n", &o).head);
        assert!(!text.contains("From:"), "{text}");
        assert!(text.contains(&format!("Date: {DATE}\n")), "{text}");
        assert!(
            text.contains("Message-ID: <u1@host.example.org>\n"),
            "{text}"
        );
    }

    #[test]
    fn set_from_header_auto_keeps_an_existing_from() {
        let text = s(&ok(WITH_FROM, &add()).head);
        assert!(
            text.starts_with("From: Someone Else <else@example.net>\n"),
            "{text}"
        );
        assert_eq!(text.matches("From:").count(), 1, "{text}");
    }

    #[test]
    fn undisclosed_recipients_replaces_to_cc_and_bcc_after_t_read_them() {
        let o = PrepareOptions {
            undisclosed_recipients: true,
            ..extract()
        };
        let p = ok(WITH_FROM, &o);
        assert_eq!(
            p.recipients,
            vec![
                "bob@example.org",
                "carol@example.org",
                "dave@example.org",
                "eve@example.org"
            ]
        );
        let text = s(&p.head);
        assert_eq!(
            text,
            "From: Someone Else <else@example.net>\nSubject: hi\n\
             To: undisclosed-recipients:;\n\nbody\n"
        );
    }

    #[test]
    fn field_names_that_start_like_to_are_kept_with_undisclosed_recipients() {
        let o = PrepareOptions {
            undisclosed_recipients: true,
            ..opts()
        };
        let text = s(&ok(b"Topic: t\nTo: a@example.org\n\nb\n", &o).head);
        assert_eq!(text, "Topic: t\nTo: undisclosed-recipients:;\n\nb\n");
    }
}
