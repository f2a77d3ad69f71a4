//! Compose mode: build a MIME message from command-line arguments, for scripts that
//! would otherwise hand-write headers (`smtpsend --subject S --attach report.pdf rcpt <
//! body.txt`).
//!
//! mail-builder writes every header and every in-memory part: RFC 2047 encoded words for a
//! UTF-8 subject or display name, RFC 2231 for a non-ASCII attachment file name, folding,
//! and the transfer encoding of the text and HTML bodies. mail-builder only takes part
//! bodies as bytes in memory, so the outer `multipart/mixed` is framed here, and each
//! attachment's body is read from its file and written as base64 as it is read: an
//! attachment is never held in memory, whatever its size. The text and HTML bodies are held
//! in memory (mail-builder picks their encoding from the whole text), up to
//! [`MAX_INLINE_BODY`] each.
//!
//! [`validate`] checks the arguments, and that each file opens, before anything is read;
//! [`compose`] validates again and writes the message. Everything written ends its lines
//! with CRLF and keeps them within RFC 5322 §2.1.1's 998 octets. The Date field is in UTC
//! (`+0000`), as mail-builder writes it.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mail_builder::Writer as _;
use mail_builder::headers::Header as _;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::generate_message_id_header;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart, make_boundary};

use crate::message::address::{self, AddressError, Mailbox};
use crate::{Error, Result};

/// The largest text or HTML body compose holds in memory; a bigger one belongs in an
/// attachment, which is streamed.
pub const MAX_INLINE_BODY: u64 = 100 * 1024 * 1024;

/// RFC 5322 §2.1.1: a line is at most 998 octets before its CRLF.
const MAX_LINE: usize = 998;

/// RFC 2045 §6.8: 76 characters of base64 a line, which is 57 octets of input.
const BASE64_LINE_INPUT: usize = 57;

/// Header fields compose writes itself; a `--header` may not add a second one. `Bcc` and
/// `Resent-Bcc` because a blind copy must stay blind (RFC 5322 §3.6.3).
const RESERVED_HEADERS: [&str; 9] = [
    "From",
    "To",
    "Cc",
    "Bcc",
    "Resent-Bcc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
];

/// What to put in the message; the command line's compose flags map onto these.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComposeOptions {
    /// `--from`: `Name <addr>` or `addr`, with a domain.
    pub from: String,
    /// The `To` header's mailboxes; an entry may hold several, comma-separated. No `To`
    /// field is written when empty. Bcc recipients belong only in the envelope.
    pub to: Vec<String>,
    /// The `Cc` header's mailboxes, as for `to`.
    pub cc: Vec<String>,
    /// `--subject`, in UTF-8.
    pub subject: Option<String>,
    /// `--body`: the text body's file; `None` reads it from the reader given to [`compose`].
    pub text_body: Option<PathBuf>,
    /// `--html`: an HTML alternative to the text body.
    pub html_body: Option<PathBuf>,
    /// `--attach`, in order.
    pub attachments: Vec<PathBuf>,
    /// `--header`: `Name: value`, written after the fields compose sets.
    pub headers: Vec<String>,
    /// This host's FQDN, the right side of the Message-ID.
    pub hostname: String,
}

/// The options, checked and parsed.
struct Plan {
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    headers: Vec<(String, HeaderValue)>,
}

enum HeaderValue {
    /// A `Reply-To`: written as an address list, so a non-ASCII name is encoded as a
    /// phrase (RFC 2047 §5(3)) and the address stays readable.
    Addresses(Vec<Mailbox>),
    /// Printable ASCII: written as given, folded at white space, so structured fields
    /// (`List-Unsubscribe: <https://...>`) keep their syntax.
    Ascii(String),
    /// Anything else: unstructured text in RFC 2047 encoded words (§5(1)).
    Text(String),
}

/// Check the options before anything is read or sent.
///
/// Errors: [`Error::Usage`] naming the argument for a control character (CR, LF, NUL or
/// any other but TAB) in the subject, an address or a header, an address that does not
/// parse or has no domain, a header that is not `Name: value` with an RFC 5322 §3.6.8
/// field name, a header compose writes itself (`From`, `To`, `Cc`, `Bcc`, `Resent-Bcc`,
/// `Subject`, `Date`, `Message-ID`, `MIME-Version`, `Content-*`), or one whose line could
/// not be kept within 998 octets; [`Error::NoInput`] naming the file for a body or
/// attachment that is missing, not a regular file or not readable; [`Error::Data`] for a
/// body file over [`MAX_INLINE_BODY`]; [`Error::Config`] for a host name that cannot be
/// put in a Message-ID.
pub fn validate(opts: &ComposeOptions) -> Result<()> {
    plan(opts).map(|_| ())
}

/// Write the whole message to `out` and return the number of bytes written.
///
/// The text body is read from `body` (stdin) unless `opts.text_body` names a file; an
/// empty text body is left out when there is an HTML body or an attachment. Each
/// attachment is read once, in pieces, and written as base64 as it is read.
///
/// Errors: those of [`validate`], which runs first; [`Error::Data`] for a text or HTML
/// body that is not UTF-8 or is over [`MAX_INLINE_BODY`]; [`Error::NoInput`] for a file
/// that has gone since; [`Error::Io`] when reading a file or writing `out` fails.
pub fn compose(opts: &ComposeOptions, body: &mut dyn Read, out: &mut dyn Write) -> Result<u64> {
    compose_with(opts, body, out, Date::now())
}

fn compose_with(
    opts: &ComposeOptions,
    body: &mut dyn Read,
    out: &mut dyn Write,
    date: Date,
) -> Result<u64> {
    let plan = plan(opts)?;
    let text = match &opts.text_body {
        Some(path) => read_text_file(path, "--body")?,
        None => read_text(body, "the message body on standard input", MAX_INLINE_BODY)?,
    };
    let html = match &opts.html_body {
        Some(path) => Some(read_text_file(path, "--html")?),
        None => None,
    };

    let mut sink = Sink::new(out);
    write_header_section(&plan, opts, date, &mut sink);

    let keep_text = !text.is_empty() || (html.is_none() && opts.attachments.is_empty());
    let boundary = (!opts.attachments.is_empty()).then(|| unique_boundary(&text, html.as_deref()));
    let main = match (keep_text.then_some(text), html) {
        (Some(text), Some(html)) => Some(MimePart::new(
            "multipart/alternative",
            vec![
                MimePart::new("text/plain", text),
                MimePart::new("text/html", html),
            ],
        )),
        (Some(text), None) => Some(MimePart::new("text/plain", text)),
        (None, Some(html)) => Some(MimePart::new("text/html", html)),
        (None, None) => None,
    };

    match boundary {
        None => {
            // Without attachments the body is one part (or one alternative), whose
            // Content-* fields continue the message's header section.
            main.unwrap_or_else(|| MimePart::new("text/plain", ""))
                .write_part(&mut sink);
        }
        Some(boundary) => {
            sink.write(b"Content-Type: ");
            ContentType::new("multipart/mixed")
                .attribute("boundary", boundary.as_str())
                .write_header(&mut sink, "Content-Type: ".len());
            if let Some(main) = main {
                sink.delimiter(&boundary);
                main.write_part(&mut sink);
            }
            sink.check()?;
            for path in &opts.attachments {
                sink.delimiter(&boundary);
                write_attachment(path, &mut sink)?;
            }
            // RFC 2046 §5.1.1 close-delimiter.
            sink.write(b"\r\n--");
            sink.write(boundary.as_bytes());
            sink.write(b"--\r\n");
        }
    }
    sink.finish()
}

fn plan(opts: &ComposeOptions) -> Result<Plan> {
    let from = {
        let what = "--from";
        no_controls(what, &opts.from)?;
        let mut list = mailboxes(what, &opts.from)?;
        match (list.pop(), list.is_empty()) {
            (Some(m), true) => m,
            (None, _) => return Err(Error::Usage(format!("{what} is empty"))),
            (Some(_), false) => {
                return Err(Error::Usage(format!(
                    "{what} \"{}\": one address only",
                    opts.from.escape_debug()
                )));
            }
        }
    };
    let mut to = Vec::new();
    for value in &opts.to {
        no_controls("recipient", value)?;
        to.extend(mailboxes("recipient", value)?);
    }
    let mut cc = Vec::new();
    for value in &opts.cc {
        no_controls("--cc", value)?;
        cc.extend(mailboxes("--cc", value)?);
    }
    if let Some(subject) = &opts.subject {
        no_controls("--subject", subject)?;
    }
    let headers = opts
        .headers
        .iter()
        .map(|h| custom_header(h))
        .collect::<Result<Vec<_>>>()?;
    if !is_dot_atom_text(&opts.hostname) {
        return Err(Error::Config(format!(
            "host name \"{}\" cannot be used in a Message-ID",
            opts.hostname.escape_debug()
        )));
    }
    if let Some(path) = &opts.text_body {
        check_file("--body", path, Some(MAX_INLINE_BODY))?;
    }
    if let Some(path) = &opts.html_body {
        check_file("--html", path, Some(MAX_INLINE_BODY))?;
    }
    for path in &opts.attachments {
        check_file("--attach", path, None)?;
    }
    Ok(Plan {
        from,
        to,
        cc,
        headers,
    })
}

/// A header carries no line break, NUL or other control character; TAB is white space.
fn no_controls(what: &str, value: &str) -> Result<()> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Error::Usage(format!(
            "{what} \"{}\" contains a control character (CR, LF, NUL or another)",
            value.escape_debug()
        )));
    }
    Ok(())
}

/// The mailboxes of one address argument, each with a domain: a header address is an
/// RFC 5322 §3.4.1 addr-spec, which has one (the envelope may qualify `root`; a header
/// should say what it means).
fn mailboxes(what: &str, value: &str) -> Result<Vec<Mailbox>> {
    let list = address::parse_address_list(value);
    if let Some(bad) = list.unparsable.first() {
        return Err(Error::Usage(format!(
            "{what} \"{}\": cannot parse address \"{}\"",
            value.escape_debug(),
            bad.escape_debug()
        )));
    }
    let mut out = Vec::with_capacity(list.mailboxes.len());
    for m in list.mailboxes {
        let checked = match address::envelope_address(&m.address) {
            Ok(a) => a,
            Err(AddressError::NoDomain(local)) => {
                return Err(Error::Usage(format!(
                    "{what} \"{}\": address \"{}\" has no domain",
                    value.escape_debug(),
                    local.escape_debug()
                )));
            }
            Err(e) => {
                return Err(Error::Usage(format!(
                    "{what} \"{}\": {e}",
                    value.escape_debug()
                )));
            }
        };
        // An encoded word can decode to a line break; refused like a typed one.
        if m.name
            .as_deref()
            .is_some_and(|n| n.contains(|c: char| c.is_control() && c != '\t'))
        {
            return Err(Error::Usage(format!(
                "{what} \"{}\": the display name decodes to a control character",
                value.escape_debug()
            )));
        }
        out.push(Mailbox {
            name: m.name.filter(|n| !n.trim().is_empty()),
            address: checked,
        });
    }
    Ok(out)
}

/// Parse one `--header "Name: value"`.
fn custom_header(arg: &str) -> Result<(String, HeaderValue)> {
    let what = "--header";
    no_controls(what, arg)?;
    let shown = arg.escape_debug();
    let Some((name, value)) = arg.split_once(':') else {
        return Err(Error::Usage(format!(
            "{what} \"{shown}\": expected \"Name: value\""
        )));
    };
    // RFC 5322 §3.6.8: field-name = 1*ftext, printable US-ASCII except ":".
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b)) {
        return Err(Error::Usage(format!(
            "{what} \"{shown}\": \"{}\" is not a header field name",
            name.escape_debug()
        )));
    }
    let reserved = RESERVED_HEADERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
        || name
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("Content-"));
    if reserved {
        return Err(Error::Usage(format!(
            "{what} \"{shown}\": {name} is set by compose and cannot be given as a header"
        )));
    }
    let value = value.trim_matches([' ', '\t']);
    let parsed = if name.eq_ignore_ascii_case("Reply-To") {
        HeaderValue::Addresses(mailboxes(what, value)?)
    } else if value.is_ascii() {
        // Folding happens only at white space, so the longest word must fit on a line
        // with the name in front of it.
        let longest = value.split([' ', '\t']).map(str::len).max().unwrap_or(0);
        if name.len() + 2 + longest > MAX_LINE {
            return Err(Error::Usage(format!(
                "{what} {name}: a word of the value is too long for a header line ({MAX_LINE} octets)"
            )));
        }
        HeaderValue::Ascii(value.to_string())
    } else {
        HeaderValue::Text(value.to_string())
    };
    Ok((name.to_string(), parsed))
}

/// A body or attachment file must be a readable regular file; checked up front so that a
/// typo fails before any byte is sent.
fn check_file(what: &str, path: &Path, limit: Option<u64>) -> Result<()> {
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| Error::NoInput(format!("{what} {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(Error::NoInput(format!(
            "{what} {shown}: not a regular file"
        )));
    }
    File::open(path).map_err(|e| Error::NoInput(format!("{what} {shown}: {e}")))?;
    if limit.is_some_and(|limit| meta.len() > limit) {
        return Err(too_large(&format!("{what} {shown}")));
    }
    Ok(())
}

fn too_large(what: &str) -> Error {
    Error::Data(format!(
        "{what}: larger than {} MiB; send it as an attachment (--attach), which is streamed",
        MAX_INLINE_BODY / (1024 * 1024)
    ))
}

/// RFC 5322 §3.2.3 `dot-atom-text`, which `id-right` of a Message-ID must be (§3.6.4).
fn is_dot_atom_text(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
        })
}

fn read_text_file(path: &Path, what: &str) -> Result<String> {
    let what = format!("{what} {}", path.display());
    let mut file = File::open(path).map_err(|e| Error::NoInput(format!("{what}: {e}")))?;
    read_text(&mut file, &what, MAX_INLINE_BODY)
}

/// Read a whole text body as UTF-8, with its line ends made CRLF: RFC 2046 §4.1.1's
/// canonical form, and what keeps a bare CR or LF out of a 7bit part.
fn read_text(reader: &mut dyn Read, what: &str, limit: u64) -> Result<String> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("reading {what}"), e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(what));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::Data(format!(
            "{what} is not UTF-8: convert it (iconv -t UTF-8) or send it with --attach"
        ))
    })?;
    Ok(crlf_lines(&text))
}

fn crlf_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 32);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push_str("\r\n");
            }
            '\n' => out.push_str("\r\n"),
            c => out.push(c),
        }
    }
    out
}

/// A multipart boundary found in neither body, so no body line can be taken for a
/// delimiter (RFC 2046 §5.1.1); base64 attachments cannot hold `_` or `-`.
fn unique_boundary(text: &str, html: Option<&str>) -> String {
    loop {
        let b = make_boundary("_");
        if !text.contains(&b) && !html.is_some_and(|h| h.contains(&b)) {
            return b;
        }
    }
}

fn write_header_section(plan: &Plan, opts: &ComposeOptions, date: Date, sink: &mut Sink<'_>) {
    field(
        sink,
        "From",
        &address_list(std::slice::from_ref(&plan.from)),
    );
    if !plan.to.is_empty() {
        field(sink, "To", &address_list(&plan.to));
    }
    if !plan.cc.is_empty() {
        field(sink, "Cc", &address_list(&plan.cc));
    }
    if let Some(subject) = &opts.subject {
        field(sink, "Subject", &Text::new(subject.as_str()));
    }
    field(sink, "Date", &date);
    sink.write(b"Message-ID: ");
    generate_message_id_header(sink, &opts.hostname);
    sink.write(b"\r\n");
    for (name, value) in &plan.headers {
        match value {
            HeaderValue::Addresses(list) => field(sink, name, &address_list(list)),
            HeaderValue::Ascii(v) => field(sink, name, &Raw::new(v.as_str())),
            HeaderValue::Text(v) => field(sink, name, &Text::new(v.as_str())),
        }
    }
    sink.write(b"MIME-Version: 1.0\r\n");
}

fn field(sink: &mut Sink<'_>, name: &str, value: &impl mail_builder::headers::Header) {
    sink.write(name.as_bytes());
    sink.write(b": ");
    value.write_header(sink, name.len() + 2);
}

fn address_list(list: &[Mailbox]) -> Address<'_> {
    Address::new_list(
        list.iter()
            .map(|m| Address::new_address(m.name.as_deref(), m.address.as_str()))
            .collect(),
    )
}

/// An attachment part: mail-builder writes the part's header fields (with the RFC 2231
/// file name), and the file is streamed after them as base64.
fn write_attachment(path: &Path, sink: &mut Sink<'_>) -> Result<()> {
    let shown = format!("--attach {}", path.display());
    let mut file = File::open(path).map_err(|e| Error::NoInput(format!("{shown}: {e}")))?;
    // A name that is not UTF-8 is shown with U+FFFD; it is only the receiver's suggestion.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or(Cow::Borrowed("attachment"));
    // An explicit transfer encoding makes mail-builder write the headers and the empty
    // line, then the (empty) body as it is.
    MimePart::new(content_type(path), BodyPart::Binary(Cow::Borrowed(&[])))
        .attachment(name)
        .transfer_encoding("base64")
        .write_part(sink);
    write_base64(&mut file, sink, &shown)
}

/// Encode `input` as RFC 2045 §6.8 base64 lines joined by CRLF, reading it in pieces: the
/// CRLF of the next delimiter ends the last line.
fn write_base64<R: Read + ?Sized>(input: &mut R, sink: &mut Sink<'_>, what: &str) -> Result<()> {
    let mut buf = vec![0u8; BASE64_LINE_INPUT * 1024];
    let mut line = [0u8; 76];
    let mut first = true;
    loop {
        let n = read_full(input, &mut buf).map_err(|e| Error::io(format!("reading {what}"), e))?;
        for chunk in buf[..n].chunks(BASE64_LINE_INPUT) {
            if !first {
                sink.write(b"\r\n");
            }
            first = false;
            let len = B64
                .encode_slice(chunk, &mut line)
                .map_err(|e| Error::Internal(format!("base64: {e}")))?;
            sink.write(&line[..len]);
        }
        sink.check()?;
        if n < buf.len() {
            return Ok(());
        }
    }
}

/// Fill `buf` unless the input ends first; every line but the last must be whole.
fn read_full<R: Read + ?Sized>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The media type for a file name's extension; `application/octet-stream` for anything
/// else. `.eml` is sent as octet-stream too: a `message/rfc822` part may not be base64
/// (RFC 2046 §5.2.1), and attachments here always are.
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "text" | "log" => "text/plain",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "patch" | "diff" => "text/x-diff",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "json" => "application/json",
        "xml" => "application/xml",
        _ => "application/octet-stream",
    }
}

/// mail-builder's [`mail_builder::Writer`] over the caller's `Write`: buffered, counting,
/// and keeping the first error, since mail-builder's writers cannot fail. Callers
/// [`Sink::check`] between parts so a full disk stops the work early.
struct Sink<'a> {
    out: BufWriter<&'a mut dyn Write>,
    written: u64,
    error: Option<io::Error>,
}

impl<'a> Sink<'a> {
    fn new(out: &'a mut dyn Write) -> Self {
        Sink {
            out: BufWriter::with_capacity(64 * 1024, out),
            written: 0,
            error: None,
        }
    }

    /// RFC 2046 §5.1.1 dash-boundary, with the CRLF that belongs to it.
    fn delimiter(&mut self, boundary: &str) {
        self.write(b"\r\n--");
        self.write(boundary.as_bytes());
        self.write(b"\r\n");
    }

    fn check(&mut self) -> Result<()> {
        match self.error.take() {
            Some(e) => Err(write_error(e)),
            None => Ok(()),
        }
    }

    fn finish(mut self) -> Result<u64> {
        self.check()?;
        self.out.flush().map_err(write_error)?;
        Ok(self.written)
    }
}

fn write_error(e: io::Error) -> Error {
    Error::io("writing the composed message", e)
}

impl mail_builder::Writer for Sink<'_> {
    fn write(&mut self, bytes: &[u8]) {
        if self.error.is_none() {
            match self.out.write_all(bytes) {
                Ok(()) => self.written += bytes.len() as u64,
                Err(e) => self.error = Some(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// 1997-11-21T15:55:06Z, RFC 5322 Appendix A.1.1's moment.
    const DATE: i64 = 880_127_706;

    fn opts() -> ComposeOptions {
        ComposeOptions {
            from: "sender@example.org".into(),
            to: vec!["rcpt@example.org".into()],
            hostname: "host.example.org".into(),
            ..ComposeOptions::default()
        }
    }

    fn run(o: &ComposeOptions, stdin: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let n = compose_with(o, &mut &stdin[..], &mut out, Date::new(DATE))?;
        assert_eq!(n, out.len() as u64, "the count is what was written");
        Ok(out)
    }

    fn usage(o: &ComposeOptions) -> String {
        match validate(o) {
            Err(Error::Usage(msg)) => msg,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    fn no_input(o: &ComposeOptions) -> String {
        match validate(o) {
            Err(Error::NoInput(msg)) => msg,
            other => panic!("expected a no-input error, got {other:?}"),
        }
    }

    fn s(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// Every line ends with CRLF, no CR or LF stands alone, and no line exceeds 998 octets.
    fn assert_lines_ok(msg: &[u8]) {
        assert!(
            msg.ends_with(b"\r\n"),
            "{:?}",
            s(&msg[msg.len().saturating_sub(40)..])
        );
        let mut start = 0;
        for (i, &b) in msg.iter().enumerate() {
            match b {
                b'\n' => {
                    assert!(i > 0 && msg[i - 1] == b'\r', "bare LF at {i}");
                    let len = i - 1 - start;
                    assert!(len <= MAX_LINE, "line of {len} octets at {start}");
                    start = i + 1;
                }
                b'\r' => assert_eq!(msg.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
                _ => {}
            }
        }
    }

    fn header_section(msg: &[u8]) -> String {
        let text = s(msg);
        match text.find("\r\n\r\n") {
            Some(end) => text[..end + 2].to_string(),
            None => text,
        }
    }

    fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Parse `msg` with Python's `email` package and return what it saw, one
    /// `key=hex(value)` line each, decoded here.
    fn python_view(msg: &[u8]) -> Vec<(String, Vec<u8>)> {
        const SCRIPT: &str = r#"
import sys, email
from email import policy
# Parsed as text: the bytes parser reads a UTF-8 address (RFC 6532) as surrogates.
with open(sys.argv[1], "rb") as f:
    msg = email.message_from_string(f.read().decode("utf-8"), policy=policy.default)
def out(key, value):
    if not isinstance(value, bytes):
        value = str(value).encode("utf-8")
    print(key + "=" + value.hex())
out("subject", msg["subject"])
for key in ("from", "to", "cc", "reply-to"):
    for a in (msg[key].addresses if msg[key] else ()):
        out(key, a.display_name + " <" + a.addr_spec + ">")
out("x-script", msg["x-script"])
out("x-note", msg["x-note"])
out("bcc", msg["bcc"])
out("mime-version", msg["mime-version"])
out("has-date", msg["date"] is not None and msg["date"].datetime is not None)
out("message-id", msg["message-id"])
for part in msg.walk():
    out("defects", len(part.defects))
    out("type", part.get_content_type())
    if part.is_multipart():
        continue
    out("filename", part.get_filename() or "")
    out("disposition", part.get_content_disposition() or "")
    out("payload", part.get_payload(decode=True))
"#;
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "message.eml", msg);
        let output = Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .arg(&path)
            .output()
            .expect("python3 runs");
        assert!(output.status.success(), "python3: {}", s(&output.stderr));
        s(&output.stdout)
            .lines()
            .map(|line| {
                let (key, hex) = line.split_once('=').unwrap();
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                (key.to_string(), bytes)
            })
            .collect()
    }

    fn values<'a>(view: &'a [(String, Vec<u8>)], key: &str) -> Vec<&'a [u8]> {
        view.iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    #[test]
    fn python_reads_back_subject_names_bodies_and_attachments() {
        let dir = tempfile::tempdir().unwrap();
        let binary: Vec<u8> = (0..=255u8).cycle().take(256 * 300 + 7).collect();
        let text_attachment = "Zürich, 3 °C\nlines\r\nkept as they are\n".as_bytes();
        let text_name = "résumé 2024 – Zürich.txt";
        let html = "<p>Grüße <b>aus</b> Köln</p>\n";
        let o = ComposeOptions {
            from: "Jörg Müller <joerg@example.org>".into(),
            to: vec!["Ann Example <ann@example.org>, zoë@example.org".into()],
            cc: vec!["\"Doe, John\" <john@example.org>".into()],
            subject: Some("Grüße aus Köln — état ✓ 日本語の件名".into()),
            text_body: None,
            html_body: Some(write_file(dir.path(), "body.html", html.as_bytes())),
            attachments: vec![
                write_file(dir.path(), "all-bytes.bin", &binary),
                write_file(dir.path(), text_name, text_attachment),
            ],
            headers: vec![
                "X-Script: nightly-backup v2".into(),
                "X-Note: café au lait".into(),
                "Reply-To: Zoë Support <support@example.org>".into(),
            ],
            hostname: "host.example.org".into(),
        };
        let body = "Bonjour,\nle rapport est joint.\n\n-- \nJörg\n";
        let msg = run(&o, body.as_bytes()).unwrap();
        assert_lines_ok(&msg);
        let head = header_section(&msg);
        // Only the address is UTF-8 (RFC 6532); names and the subject are encoded words.
        assert!(head.replace("zoë@example.org", "").is_ascii(), "{head}");
        assert!(!head.to_ascii_lowercase().contains("\nbcc:"), "{head}");

        let view = python_view(&msg);
        let one = |key: &str| -> String {
            let v = values(&view, key);
            assert_eq!(v.len(), 1, "{key}: {v:?}");
            s(v[0])
        };
        assert_eq!(one("subject"), "Grüße aus Köln — état ✓ 日本語の件名");
        assert_eq!(one("from"), "Jörg Müller <joerg@example.org>");
        assert_eq!(
            values(&view, "to"),
            [
                "Ann Example <ann@example.org>".as_bytes(),
                " <zoë@example.org>".as_bytes()
            ]
        );
        assert_eq!(one("cc"), "Doe, John <john@example.org>");
        assert_eq!(one("reply-to"), "Zoë Support <support@example.org>");
        assert_eq!(one("x-script"), "nightly-backup v2");
        assert_eq!(one("x-note"), "café au lait");
        assert_eq!(one("bcc"), "None");
        assert_eq!(one("mime-version"), "1.0");
        assert_eq!(one("has-date"), "True");
        let id = one("message-id");
        assert!(
            id.starts_with('<') && id.ends_with("@host.example.org>"),
            "{id}"
        );
        assert!(
            values(&view, "defects").iter().all(|d| *d == b"0"),
            "{view:?}"
        );

        let types: Vec<String> = values(&view, "type").into_iter().map(s).collect();
        assert_eq!(
            types,
            [
                "multipart/mixed",
                "multipart/alternative",
                "text/plain",
                "text/html",
                "application/octet-stream",
                "text/plain",
            ]
        );
        let filenames: Vec<String> = values(&view, "filename").into_iter().map(s).collect();
        assert_eq!(filenames, ["", "", "all-bytes.bin", text_name]);
        let dispositions: Vec<String> = values(&view, "disposition").into_iter().map(s).collect();
        assert_eq!(dispositions, ["", "", "attachment", "attachment"]);
        let payloads = values(&view, "payload");
        let unix = |b: &[u8]| s(b).replace("\r\n", "\n");
        assert_eq!(unix(payloads[0]), body);
        assert_eq!(unix(payloads[1]), html);
        assert!(
            payloads[2] == binary.as_slice(),
            "binary attachment differs"
        );
        assert_eq!(payloads[3], text_attachment);
    }

    #[test]
    fn text_only_message_is_a_single_part() {
        let o = ComposeOptions {
            subject: Some("backup done".into()),
            ..opts()
        };
        let msg = s(&run(&o, b"all good\n").unwrap());
        assert_eq!(
            msg,
            format!(
                "From: <sender@example.org>\r\n\
                 To: <rcpt@example.org>\r\n\
                 Subject: backup done\r\n\
                 Date: Fri, 21 Nov 1997 15:55:06 +0000\r\n\
                 Message-ID: {}\r\n\
                 MIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=\"utf-8\"\r\n\
                 Content-Transfer-Encoding: 7bit\r\n\
                 \r\n\
                 all good\r\n",
                msg.lines()
                    .nth(4)
                    .unwrap()
                    .trim_start_matches("Message-ID: ")
            )
        );
        let view = python_view(msg.as_bytes());
        assert_eq!(values(&view, "type"), [b"text/plain".as_slice()]);
        assert_eq!(values(&view, "payload"), [b"all good\r\n".as_slice()]);
    }

    #[test]
    fn body_file_replaces_stdin_and_stdin_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let o = ComposeOptions {
            text_body: Some(write_file(dir.path(), "b.txt", b"from the file\n")),
            ..opts()
        };
        struct Untouchable;
        impl Read for Untouchable {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                panic!("stdin was read")
            }
        }
        let mut out = Vec::new();
        compose(&o, &mut Untouchable, &mut out).unwrap();
        assert!(
            s(&out).ends_with("\r\n\r\nfrom the file\r\n"),
            "{}",
            s(&out)
        );
    }

    #[test]
    fn empty_text_is_left_out_beside_html_or_attachments() {
        let dir = tempfile::tempdir().unwrap();
        let html = write_file(dir.path(), "h.html", b"<p>hi</p>");
        let o = ComposeOptions {
            html_body: Some(html.clone()),
            ..opts()
        };
        let view = python_view(&run(&o, b"").unwrap());
        assert_eq!(values(&view, "type"), [b"text/html".as_slice()]);

        let o = ComposeOptions {
            attachments: vec![html],
            ..opts()
        };
        let view = python_view(&run(&o, b"").unwrap());
        assert_eq!(
            values(&view, "type"),
            [b"multipart/mixed".as_slice(), b"text/html"]
        );
        assert_eq!(values(&view, "payload"), [b"<p>hi</p>".as_slice()]);

        let msg = run(&opts(), b"").unwrap();
        assert!(s(&msg).contains("Content-Type: text/plain"));
    }

    #[test]
    fn lines_stay_short_and_end_with_crlf() {
        let dir = tempfile::tempdir().unwrap();
        let long_words = "word ".repeat(400);
        let o = ComposeOptions {
            from: format!("{} <a@example.org>", "Ünïcödé Nämé ".repeat(30).trim()),
            to: (0..50)
                .map(|i| format!("Person {i} <p{i}@example.org>"))
                .collect(),
            subject: Some(format!("{}{}", "x".repeat(2000), "ü".repeat(300))),
            headers: vec![
                format!("X-Long: {long_words}"),
                format!("X-Unicode: {}", "é".repeat(1500)),
                format!("X-Token: {}", "t".repeat(MAX_LINE - "X-Token: ".len())),
            ],
            attachments: vec![write_file(
                dir.path(),
                &format!("{}.pdf", "ä".repeat(100)),
                &[7; 1000],
            )],
            ..opts()
        };
        let body = format!("{}\nshort\r\nbare cr\rend", "y".repeat(5000));
        let msg = run(&o, body.as_bytes()).unwrap();
        assert_lines_ok(&msg);
        let view = python_view(&msg);
        assert!(
            values(&view, "defects").iter().all(|d| *d == b"0"),
            "{view:?}"
        );
        let text = s(values(&view, "payload")[0]);
        let expected = format!("{}\r\nshort\r\nbare cr\r\nend", "y".repeat(5000));
        assert!(
            text == expected,
            "the long line and the line ends come back"
        );
        assert_eq!(values(&view, "to").len(), 50);
    }

    #[test]
    fn control_characters_in_any_argument_are_usage_errors() {
        for bad in ["a\rb", "a\nb", "a\0b", "a\r\nBcc: x@example.org", "\x1b[1m"] {
            let cases: [(&str, ComposeOptions); 5] = [
                (
                    "--subject",
                    ComposeOptions {
                        subject: Some(bad.into()),
                        ..opts()
                    },
                ),
                (
                    "--from",
                    ComposeOptions {
                        from: format!("{bad} <a@example.org>"),
                        ..opts()
                    },
                ),
                (
                    "recipient",
                    ComposeOptions {
                        to: vec![format!("{bad} <b@example.org>")],
                        ..opts()
                    },
                ),
                (
                    "--cc",
                    ComposeOptions {
                        cc: vec![format!("c@example.org, \"{bad}\" <d@example.org>")],
                        ..opts()
                    },
                ),
                (
                    "--header",
                    ComposeOptions {
                        headers: vec![format!("X-Foo: {bad}")],
                        ..opts()
                    },
                ),
            ];
            for (what, o) in cases {
                let msg = usage(&o);
                assert!(msg.starts_with(what), "{what}: {msg}");
                assert!(msg.contains("control character"), "{msg}");
                assert!(!msg.contains(['\r', '\n', '\0']), "escaped: {msg:?}");
                assert!(matches!(run(&o, b"x"), Err(Error::Usage(_))));
            }
        }
        let encoded = ComposeOptions {
            from: "=?utf-8?q?a=0D=0Ab?= <a@example.org>".into(),
            ..opts()
        };
        assert!(usage(&encoded).contains("decodes to a control character"));
        let tab = ComposeOptions {
            subject: Some("a\tb".into()),
            headers: vec!["X-Foo:\ta\tb".into()],
            ..opts()
        };
        validate(&tab).unwrap();
    }

    #[test]
    fn header_names_are_checked_and_reserved_ones_refused() {
        for name in [
            "From",
            "to",
            "CC",
            "bcc",
            "Resent-Bcc",
            "Subject",
            "date",
            "Message-Id",
            "MIME-Version",
            "Content-Type",
            "content-transfer-encoding",
            "Content-Disposition",
        ] {
            let o = ComposeOptions {
                headers: vec![format!("{name}: x")],
                ..opts()
            };
            let msg = usage(&o);
            assert!(msg.contains("set by compose"), "{name}: {msg}");
        }
        for bad in [
            "X Foo: bar",
            ": bar",
            "X-Föö: bar",
            "NoColon",
            "X-Foo : bar",
        ] {
            let o = ComposeOptions {
                headers: vec![bad.into()],
                ..opts()
            };
            let msg = usage(&o);
            assert!(msg.starts_with("--header"), "{bad}: {msg}");
        }
        let o = ComposeOptions {
            headers: vec![format!("X-Token: {}", "t".repeat(MAX_LINE))],
            ..opts()
        };
        assert!(usage(&o).contains("too long"));
        for good in [
            "X-Foo: bar",
            "X-Empty:",
            "List-Unsubscribe: <https://example.org/u?id=1>",
            "Contentious: ok",
            "Reply-To: a@example.org",
        ] {
            let o = ComposeOptions {
                headers: vec![good.into()],
                ..opts()
            };
            validate(&o).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        let o = ComposeOptions {
            headers: vec!["List-Unsubscribe: <https://example.org/u?id=1>".into()],
            ..opts()
        };
        let msg = run(&o, b"x").unwrap();
        assert!(
            header_section(&msg).contains("\r\nList-Unsubscribe: <https://example.org/u?id=1>\r\n"),
            "written as given"
        );
    }

    #[test]
    fn addresses_must_parse_and_have_a_domain() {
        let cases = [
            (
                "--from",
                ComposeOptions {
                    from: "".into(),
                    ..opts()
                },
            ),
            (
                "--from",
                ComposeOptions {
                    from: "<>".into(),
                    ..opts()
                },
            ),
            (
                "--from",
                ComposeOptions {
                    from: "root".into(),
                    ..opts()
                },
            ),
            (
                "--from",
                ComposeOptions {
                    from: "a@example.org, b@example.org".into(),
                    ..opts()
                },
            ),
            (
                "recipient",
                ComposeOptions {
                    to: vec!["john smith@example.org".into()],
                    ..opts()
                },
            ),
            (
                "--cc",
                ComposeOptions {
                    cc: vec!["x@-bad.example".into()],
                    ..opts()
                },
            ),
            (
                "--header",
                ComposeOptions {
                    headers: vec!["Reply-To: nobody".into()],
                    ..opts()
                },
            ),
        ];
        for (what, o) in cases {
            let msg = usage(&o);
            assert!(msg.starts_with(what), "{what}: {msg}");
        }
        let o = ComposeOptions {
            to: vec![],
            ..opts()
        };
        let msg = run(&o, b"x").unwrap();
        assert!(!header_section(&msg).contains("\r\nTo:"));
    }

    #[test]
    fn missing_or_unreadable_files_are_no_input_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pdf");
        let shown = missing.display().to_string();
        for (what, o) in [
            (
                "--attach",
                ComposeOptions {
                    attachments: vec![missing.clone()],
                    ..opts()
                },
            ),
            (
                "--body",
                ComposeOptions {
                    text_body: Some(missing.clone()),
                    ..opts()
                },
            ),
            (
                "--html",
                ComposeOptions {
                    html_body: Some(missing.clone()),
                    ..opts()
                },
            ),
        ] {
            let msg = no_input(&o);
            assert!(msg.starts_with(&format!("{what} {shown}: ")), "{msg}");
        }
        let o = ComposeOptions {
            attachments: vec![dir.path().to_path_buf()],
            ..opts()
        };
        assert!(no_input(&o).ends_with("not a regular file"));
    }

    #[test]
    fn bad_hostname_is_a_config_error() {
        let o = ComposeOptions {
            hostname: "host name".into(),
            ..opts()
        };
        assert!(matches!(validate(&o), Err(Error::Config(_))));
    }

    #[test]
    fn text_bodies_must_be_utf8_and_within_the_limit() {
        match run(&opts(), b"caf\xe9\n") {
            Err(Error::Data(msg)) => assert!(msg.contains("not UTF-8"), "{msg}"),
            other => panic!("{other:?}"),
        }
        match read_text(&mut &b"12345"[..], "stdin", 4) {
            Err(Error::Data(msg)) => assert!(msg.contains("--attach"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(read_text(&mut &b"1234"[..], "stdin", 4).unwrap(), "1234");
    }

    #[test]
    fn line_ends_become_crlf() {
        assert_eq!(
            crlf_lines("a\nb\r\nc\rd\r\r\ne\n"),
            "a\r\nb\r\nc\r\nd\r\n\r\ne\r\n"
        );
        assert_eq!(crlf_lines(""), "");
        assert_eq!(crlf_lines("\r"), "\r\n");
    }

    /// Hands out its input `step` bytes at a time.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn streamed_base64_matches_whole_base64_in_76_character_lines() {
        let block = BASE64_LINE_INPUT * 1024;
        let data: Vec<u8> = (0..3 * block + 100).map(|i| (i * 7 % 251) as u8).collect();
        for len in [
            0,
            1,
            2,
            3,
            56,
            57,
            58,
            block - 1,
            block,
            block + 1,
            2 * block,
            data.len(),
        ] {
            for step in [1, 1000, usize::MAX] {
                if step == 1 && len > 2 * BASE64_LINE_INPUT {
                    continue;
                }
                let mut out = Vec::new();
                let mut sink = Sink::new(&mut out);
                let mut input = Trickle {
                    data: &data[..len],
                    step,
                };
                write_base64(&mut input, &mut sink, "test").unwrap();
                sink.finish().unwrap();
                let whole = B64.encode(&data[..len]);
                let lines: Vec<&[u8]> = whole.as_bytes().chunks(76).collect();
                assert_eq!(out, lines.join(&b"\r\n"[..]), "len {len} step {step}");
            }
        }
    }

    #[test]
    fn write_errors_are_io_errors() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let big = write_file(dir.path(), "big.bin", &vec![0; 200_000]);
        let o = ComposeOptions {
            attachments: vec![big],
            ..opts()
        };
        match compose(&o, &mut &b"x"[..], &mut Full) {
            Err(e @ Error::Io { .. }) => assert!(e.to_string().contains("disk full"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn content_types_come_from_the_extension() {
        for (name, ct) in [
            ("a.txt", "text/plain"),
            ("A.HTML", "text/html"),
            ("r.pdf", "application/pdf"),
            ("i.png", "image/png"),
            ("i.JPG", "image/jpeg"),
            ("i.jpeg", "image/jpeg"),
            ("i.gif", "image/gif"),
            ("z.zip", "application/zip"),
            ("l.tar.gz", "application/gzip"),
            ("l.tar", "application/x-tar"),
            ("d.csv", "text/csv"),
            ("d.json", "application/json"),
            ("d.xml", "application/xml"),
            ("0001-fix.patch", "text/x-diff"),
            ("x.diff", "text/x-diff"),
            ("m.eml", "application/octet-stream"),
            ("Makefile", "application/octet-stream"),
            ("x.unknown", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(name)), ct, "{name}");
        }
    }

    #[test]
    fn message_ids_differ_between_messages() {
        let id = |m: &[u8]| {
            s(m).lines()
                .find(|l| l.starts_with("Message-ID: <"))
                .map(str::to_string)
        };
        let a = run(&opts(), b"x").unwrap();
        let b = run(&opts(), b"x").unwrap();
        assert!(id(&a).is_some_and(|i| i.ends_with("@host.example.org>")));
        assert_ne!(id(&a), id(&b));
    }
}
