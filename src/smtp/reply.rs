//! The SMTP reply parser (RFC 5321 §4.2), fed bytes in whatever pieces the network gives.
//!
//! A server is hostile until proven otherwise: every line and every reply is bounded, so a
//! never-ending line or multi-line reply costs a fixed amount of memory and ends in an error.

use std::fmt;

/// The longest reply line accepted, CRLF included. RFC 5321 §4.5.3.1.5 sets 512; real
/// servers exceed it in EHLO and error texts, so allow four times as much.
pub const MAX_LINE: usize = 2048;
/// The most lines in one reply. EHLO replies have a line per extension, rarely above 30.
pub const MAX_LINES: usize = 256;

/// One complete reply: a code, an optional enhanced status code (RFC 3463) and its text lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The text of each line, after the code and separator, without CRLF.
    pub lines: Vec<String>,
}

impl Reply {
    /// First digit: 2 success, 3 intermediate, 4 transient, 5 permanent.
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    pub fn is_positive(&self) -> bool {
        self.class() == 2
    }

    pub fn is_intermediate(&self) -> bool {
        self.class() == 3
    }

    pub fn is_transient(&self) -> bool {
        self.class() == 4
    }

    pub fn is_permanent(&self) -> bool {
        self.class() == 5
    }

    /// The enhanced status code of the first line (`5.1.1`), when the server sent one.
    pub fn enhanced(&self) -> Option<(u8, u16, u16)> {
        let first = self.lines.first()?;
        let word = first.split(' ').next()?;
        let mut parts = word.split('.');
        let class: u8 = parts.next()?.parse().ok()?;
        let subject: u16 = parts.next()?.parse().ok()?;
        let detail: u16 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || !matches!(class, 2 | 4 | 5) || subject > 999 || detail > 999 {
            return None;
        }
        Some((class, subject, detail))
    }

    /// All lines joined with spaces: the form used on one line of stderr.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        let text = self.text();
        if !text.is_empty() {
            write!(f, " {text}")?;
        }
        Ok(())
    }
}

/// Why a byte stream is not a valid reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("reply with more than {MAX_LINES} lines")]
    TooManyLines,
    #[error("malformed reply line {0:?}")]
    Malformed(String),
    #[error("reply code {0} outside 200-599")]
    BadCode(u16),
    #[error("multi-line reply changed code from {0} to {1}")]
    CodeChanged(u16, u16),
    #[error("NUL byte in reply")]
    Nul,
}

/// Incremental parser: `push` bytes, then take complete replies with `next_reply`.
#[derive(Debug, Default)]
pub struct ReplyParser {
    /// Bytes not yet consumed into a complete line; never more than `MAX_LINE`.
    buf: Vec<u8>,
    /// Lines of the reply being assembled.
    lines: Vec<String>,
    code: Option<u16>,
    failed: Option<ReplyError>,
}

impl ReplyParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append bytes read from the server. Parsing happens in `next_reply`, so the amount
    /// buffered here is bounded by the caller's read size plus one line.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Whether bytes are waiting that are not part of a returned reply. After the `220`
    /// to STARTTLS this must be false: anything else was injected before the handshake.
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty() || !self.lines.is_empty()
    }

    /// Forget everything buffered (used when TLS starts, RFC 3207 §4.2).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.lines.clear();
        self.code = None;
    }

    /// The next complete reply, `Ok(None)` when more bytes are needed.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ReplyError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.parse();
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn parse(&mut self) -> Result<Option<Reply>, ReplyError> {
        let mut start = 0;
        let outcome = loop {
            let Some(pos) = memchr::memchr(b'\n', &self.buf[start..]) else {
                if self.buf.len() - start > MAX_LINE {
                    break Err(ReplyError::LineTooLong);
                }
                break Ok(None);
            };
            let end = start + pos;
            if end + 1 - start > MAX_LINE {
                break Err(ReplyError::LineTooLong);
            }
            // Lines end in CRLF; a bare LF is tolerated, it cannot smuggle anything here.
            let line_end = if end > start && self.buf[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            let line = &self.buf[start..line_end];
            start = end + 1;
            let (code, last, text) = match parse_line(line) {
                Ok(parsed) => parsed,
                Err(e) => break Err(e),
            };
            if let Some(prev) = self.code
                && prev != code
            {
                break Err(ReplyError::CodeChanged(prev, code));
            }
            if self.lines.len() >= MAX_LINES {
                break Err(ReplyError::TooManyLines);
            }
            self.code = Some(code);
            self.lines.push(text);
            if last {
                let lines = std::mem::take(&mut self.lines);
                self.code = None;
                break Ok(Some(Reply { code, lines }));
            }
        };
        self.buf.drain(..start);
        outcome
    }
}

/// One line: `ddd SP text`, `ddd-text`, or a bare `ddd`. Returns (code, is_last, text).
fn parse_line(line: &[u8]) -> Result<(u16, bool, String), ReplyError> {
    if line.contains(&0) {
        return Err(ReplyError::Nul);
    }
    let malformed = || ReplyError::Malformed(String::from_utf8_lossy(line).into_owned());
    if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
        return Err(malformed());
    }
    let code = line[..3]
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    if !(200..=599).contains(&code) {
        return Err(ReplyError::BadCode(code));
    }
    let (last, text) = match line.get(3) {
        None => (true, &line[3..]),
        Some(b' ') => (true, &line[4..]),
        Some(b'-') => (false, &line[4..]),
        Some(_) => return Err(malformed()),
    };
    Ok((code, last, String::from_utf8_lossy(text).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Reply>, ReplyError> {
        let mut p = ReplyParser::new();
        p.push(input);
        let mut out = vec![];
        while let Some(r) = p.next_reply()? {
            out.push(r);
        }
        Ok(out)
    }

    #[test]
    fn single_line_reply() {
        let r = parse_all(b"220 mail.example.org ESMTP ready\r\n").unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].code, 220);
        assert_eq!(r[0].lines, vec!["mail.example.org ESMTP ready"]);
    }

    #[test]
    fn multi_line_ehlo_reply_from_rfc5321() {
        // RFC 5321 §4.2.1 / Appendix D.
        let r = parse_all(
            b"250-foo.com greets bar.com\r\n250-8BITMIME\r\n250-SIZE\r\n250-DSN\r\n250 HELP\r\n",
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].lines.len(), 5);
        assert_eq!(r[0].lines[4], "HELP");
    }

    #[test]
    fn code_without_text_is_valid() {
        let r = parse_all(b"250\r\n").unwrap();
        assert_eq!(r[0].code, 250);
        assert_eq!(r[0].lines, vec![""]);
    }

    #[test]
    fn reply_split_at_every_position() {
        let input: &[u8] = b"250-first\r\n250-second\r\n250 last\r\n354 go ahead\r\n";
        for split in 0..input.len() {
            let mut p = ReplyParser::new();
            let mut got = vec![];
            p.push(&input[..split]);
            while let Some(r) = p.next_reply().unwrap() {
                got.push(r);
            }
            p.push(&input[split..]);
            while let Some(r) = p.next_reply().unwrap() {
                got.push(r);
            }
            assert_eq!(got.len(), 2, "split at {split}");
            assert_eq!(got[0].lines, vec!["first", "second", "last"]);
            assert_eq!(got[1].code, 354);
        }
    }

    #[test]
    fn every_rfc5321_reply_code_parses() {
        for code in [
            211, 214, 220, 221, 250, 251, 252, 354, 421, 450, 451, 452, 455, 500, 501, 502, 503,
            504, 521, 550, 551, 552, 553, 554, 555,
        ] {
            let r = parse_all(format!("{code} text\r\n").as_bytes()).unwrap();
            assert_eq!(r[0].code, code);
        }
    }

    #[test]
    fn enhanced_status_code() {
        let r = parse_all(b"550 5.1.1 <bob@example.org>: user unknown\r\n").unwrap();
        assert_eq!(r[0].enhanced(), Some((5, 1, 1)));
        let r = parse_all(b"250 2.1.0 Ok\r\n").unwrap();
        assert_eq!(r[0].enhanced(), Some((2, 1, 0)));
        let r = parse_all(b"250 Ok\r\n").unwrap();
        assert_eq!(r[0].enhanced(), None);
    }

    #[test]
    fn display_is_one_line() {
        let r = parse_all(b"550-5.1.1 no such\r\n550 5.1.1 user\r\n").unwrap();
        assert_eq!(r[0].to_string(), "550 5.1.1 no such 5.1.1 user");
    }

    #[test]
    fn bare_lf_line_ends_are_tolerated() {
        let r = parse_all(b"250-a\n250 b\n").unwrap();
        assert_eq!(r[0].lines, vec!["a", "b"]);
    }

    #[test]
    fn malformed_lines_are_errors() {
        for bad in [
            &b"25 short\r\n"[..],
            b"abc text\r\n",
            b"250_text\r\n",
            b"\r\n",
            b"2500 text\r\n",
        ] {
            assert!(
                matches!(parse_all(bad), Err(ReplyError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn code_outside_range_is_an_error() {
        assert_eq!(parse_all(b"199 x\r\n"), Err(ReplyError::BadCode(199)));
        assert_eq!(parse_all(b"600 x\r\n"), Err(ReplyError::BadCode(600)));
        assert_eq!(parse_all(b"000 x\r\n"), Err(ReplyError::BadCode(0)));
    }

    #[test]
    fn changing_code_in_multiline_is_an_error() {
        assert_eq!(
            parse_all(b"250-a\r\n550 b\r\n"),
            Err(ReplyError::CodeChanged(250, 550))
        );
    }

    #[test]
    fn nul_byte_is_an_error() {
        assert_eq!(parse_all(b"250 a\0b\r\n"), Err(ReplyError::Nul));
    }

    #[test]
    fn non_utf8_text_is_kept_lossily() {
        let r = parse_all(b"250 caf\xe9\r\n").unwrap();
        assert_eq!(r[0].lines[0], "caf\u{fffd}");
    }

    #[test]
    fn overlong_line_is_an_error_even_without_newline() {
        let mut p = ReplyParser::new();
        p.push(b"250 ");
        p.push(&vec![b'x'; MAX_LINE + 10]);
        assert_eq!(p.next_reply(), Err(ReplyError::LineTooLong));
        // The parser stays failed.
        p.push(b"\r\n");
        assert_eq!(p.next_reply(), Err(ReplyError::LineTooLong));
    }

    #[test]
    fn never_ending_multiline_reply_is_bounded() {
        let mut p = ReplyParser::new();
        let mut result = Ok(None);
        for _ in 0..MAX_LINES + 1 {
            p.push(b"250-more\r\n");
            result = p.next_reply();
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(ReplyError::TooManyLines));
    }

    #[test]
    fn leftover_bytes_are_visible() {
        let mut p = ReplyParser::new();
        p.push(b"220 go ahead\r\n250 injected\r\n");
        assert_eq!(p.next_reply().unwrap().unwrap().code, 220);
        assert!(p.has_buffered());
        p.clear();
        assert!(!p.has_buffered());
    }
}
