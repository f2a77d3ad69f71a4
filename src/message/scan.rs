//! Finding the header section of the caller's message, reading no further than needed.
//!
//! Lines end as the DATA body encoder ends them ([`crate::smtp::BodyEncoder`]): CRLF, LF, or
//! a CR alone. So the header section seen here is exactly the one the server will see after
//! CRLF normalisation; a `\r` inside a header value cannot hide a `Bcc:` line from us and
//! then become one on the wire.

use std::io::{ErrorKind, Read};
use std::ops::Range;

/// RFC 5322 does not bound the header section; we do, so that a runaway producer cannot
/// make us hold its whole output in memory.
pub(super) const MAX_HEADER_SECTION: usize = 1024 * 1024;

const CHUNK: usize = 8 * 1024;

/// One header field: its name as written and the byte ranges (in [`Section::buf`]) of its
/// lines without their line ends, the first line included.
#[derive(Debug)]
pub(super) struct Field {
    pub name: String,
    pub lines: Vec<Range<usize>>,
}

/// How the header section ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum End {
    /// An empty line starting at this offset; it and everything after it are body side.
    Blank(usize),
    /// A line that is neither a header field nor a continuation starts here: the body, with
    /// no empty line before it (or the whole input, when there are no fields).
    BodyLine(usize),
    /// The input ended inside the header section.
    Eof,
}

#[derive(Debug)]
pub(super) struct Section {
    /// Every byte read from the input.
    pub buf: Vec<u8>,
    pub fields: Vec<Field>,
    pub end: End,
    /// Where the message starts in `buf` (after a dropped mbox `From ` line).
    pub start: usize,
}

impl Section {
    /// A field's value: everything after the colon, lines joined without their line ends
    /// (unfolding, RFC 5322 §2.2.3).
    pub fn value(&self, field: &Field) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, r) in field.lines.iter().enumerate() {
            let line = &self.buf[r.clone()];
            if i == 0 {
                let colon = memchr::memchr(b':', line).map_or(line.len(), |c| c + 1);
                out.extend_from_slice(&line[colon..]);
            } else {
                out.extend_from_slice(line);
            }
        }
        out
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Class {
    Header,
    Continuation,
    Body,
    /// Not enough of the line yet to tell.
    Undecided,
}

/// RFC 5322 §3.6.8 `ftext`: printable US-ASCII except the colon.
fn is_ftext(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b':'
}

/// What kind of line `content` (without its line end) starts. `complete` says whether it is
/// the whole line. White space before the colon is the obsolete form of RFC 5322 §4.5.
fn classify(content: &[u8], complete: bool) -> Class {
    match content.first() {
        None => {
            return if complete {
                Class::Body
            } else {
                Class::Undecided
            };
        }
        Some(b' ' | b'\t') => return Class::Continuation,
        Some(_) => {}
    }
    let name = content.iter().take_while(|&&b| is_ftext(b)).count();
    if name == 0 {
        return Class::Body;
    }
    let blanks = content[name..]
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    match content.get(name + blanks) {
        Some(b':') => Class::Header,
        Some(_) => Class::Body,
        None if complete => Class::Body,
        None => Class::Undecided,
    }
}

/// The next line of `rest`: (length without line end, length of the line end), or `None`
/// when more input is needed to know. A CR at the very end waits for the next byte, which
/// may be its LF.
/// `clean` bytes at the start of `rest` are known to hold no line end (a scan that resumes
/// after more input arrived).
fn next_line(rest: &[u8], clean: usize, eof: bool) -> Option<(usize, usize)> {
    match memchr::memchr2(b'\r', b'\n', &rest[clean..]).map(|i| i + clean) {
        Some(i) if rest[i] == b'\n' => Some((i, 1)),
        Some(i) => match rest.get(i + 1) {
            Some(b'\n') => Some((i, 2)),
            Some(_) => Some((i, 1)),
            None if eof => Some((i, 1)),
            None => None,
        },
        None if eof => Some((rest.len(), 0)),
        None => None,
    }
}

/// Read until the end of the header section is known.
pub(super) fn read_section<R: Read + ?Sized>(input: &mut R) -> crate::Result<Section> {
    let mut buf = Vec::new();
    let mut eof = false;
    let mut pos = 0;
    let mut start = 0;
    let mut fields: Vec<Field> = Vec::new();
    let mut clean = 0;
    let too_large = || crate::Error::Data("header section larger than 1 MiB".into());
    let end = loop {
        if pos - start > MAX_HEADER_SECTION {
            return Err(too_large());
        }
        let rest = &buf[pos..];
        let Some((len, term)) = next_line(rest, clean, eof) else {
            // Not a whole line yet; a CR at the end may be the first half of a CRLF.
            let partial = rest.strip_suffix(b"\r").unwrap_or(rest);
            clean = partial.len();
            let mbox_candidate = pos == 0 && b"From ".starts_with(&rest[..rest.len().min(5)]);
            let body = match classify(partial, false) {
                Class::Body => !mbox_candidate,
                // Folded text with no field to belong to.
                Class::Continuation => fields.is_empty(),
                _ => false,
            };
            if body {
                break End::BodyLine(pos);
            }
            if buf.len() - start > MAX_HEADER_SECTION {
                return Err(too_large());
            }
            eof = fill(input, &mut buf)?;
            continue;
        };
        if len == 0 && term == 0 {
            break End::Eof;
        }
        if len == 0 {
            break End::Blank(pos);
        }
        let content = &rest[..len];
        let class = classify(content, true);
        if pos == 0 && content.starts_with(b"From ") && class != Class::Header {
            // An mbox separator ("From sender date"), as `formail` or a saved folder gives
            // it. sendmail drops it; so do we.
            pos = len + term;
            start = pos;
            clean = 0;
            continue;
        }
        match class {
            Class::Header => {
                let colon = content.iter().position(|&b| b == b':').unwrap_or(len);
                let name = &content[..colon];
                let name = name.trim_ascii_end();
                fields.push(Field {
                    name: String::from_utf8_lossy(name).into_owned(),
                    lines: std::iter::once(pos..pos + len).collect(),
                });
            }
            Class::Continuation if !fields.is_empty() => {
                if let Some(f) = fields.last_mut() {
                    f.lines.push(pos..pos + len);
                }
            }
            _ => break End::BodyLine(pos),
        }
        if memchr::memchr(0, content).is_some() {
            return Err(crate::Error::Data("NUL byte in the header section".into()));
        }
        pos += len + term;
        clean = 0;
    };
    Ok(Section {
        buf,
        fields,
        end,
        start,
    })
}

/// Append one read's worth of input to `buf`; true at end of input.
fn fill<R: Read + ?Sized>(input: &mut R, buf: &mut Vec<u8>) -> crate::Result<bool> {
    let mut chunk = [0u8; CHUNK];
    loop {
        match input.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(false);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(crate::Error::io("reading the message", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_end_as_the_body_encoder_ends_them() {
        assert_eq!(next_line(b"ab\r\ncd", 0, false), Some((2, 2)));
        assert_eq!(next_line(b"ab\ncd", 0, false), Some((2, 1)));
        assert_eq!(next_line(b"ab\rcd", 0, false), Some((2, 1)));
        assert_eq!(next_line(b"ab\r", 0, false), None);
        assert_eq!(next_line(b"ab\r", 2, true), Some((2, 1)));
        assert_eq!(next_line(b"ab\r\n", 2, false), Some((2, 2)));
        assert_eq!(next_line(b"ab", 0, false), None);
        assert_eq!(next_line(b"ab", 2, true), Some((2, 0)));
        assert_eq!(next_line(b"", 0, true), Some((0, 0)));
    }

    #[test]
    fn header_lines_are_told_from_body_lines() {
        assert_eq!(classify(b"Subject: hi", true), Class::Header);
        assert_eq!(classify(b"X-Empty:", true), Class::Header);
        assert_eq!(classify(b"From  : obsolete", true), Class::Header);
        assert_eq!(classify(b" folded", true), Class::Continuation);
        assert_eq!(classify(b"\tfolded", true), Class::Continuation);
        assert_eq!(classify(b"hi", true), Class::Body);
        assert_eq!(classify(b"hi", false), Class::Undecided);
        assert_eq!(classify(b"hi there", false), Class::Body);
        assert_eq!(classify(b"From sender@example.org Mon", true), Class::Body);
        assert_eq!(classify(b": no name", true), Class::Body);
        assert_eq!(classify("Süden: x".as_bytes(), true), Class::Body);
    }
}
