//! The one HTTP/1.1 response a policy fetch reads (RFC 9112), sans-IO: fed the bytes that
//! arrive, it says when the body is whole, or why the response is not a policy.
//!
//! Only what RFC 8461 §3.3 accepts gets through: status 200 (a redirect is not followed,
//! so it is a failure like any other status), `Content-Type: text/plain`, a body of at
//! most `limit` bytes, framed by `Content-Length` or chunked. A body that ends only where
//! the connection does is refused: the transport cannot tell a TLS close_notify from a
//! connection cut short, and a truncated policy (a shorter `max_age`) is a downgrade.

use std::fmt;

/// A response head longer than this is not from a policy server.
const HEAD_LIMIT: usize = 16 * 1024;
/// A chunk-size line (with extensions) or trailer line longer than this is refused.
const LINE_LIMIT: usize = 4 * 1024;
/// All trailer lines together.
const TRAILER_LIMIT: usize = 16 * 1024;
/// Headers beyond this count make the head malformed.
const MAX_HEADERS: usize = 64;

/// Why the response is not a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// A status other than 200; `location` when it is a redirect (not followed, §3.3).
    Status { code: u16, location: Option<String> },
    /// Not `text/plain` (§3.3); `None` when the header is missing.
    ContentType(Option<String>),
    /// The body is longer than the limit (§3.3 recommends 64 KiB).
    TooLarge(usize),
    /// Neither `Content-Length` nor chunked: its end could not be trusted.
    NoLength,
    /// The connection ended before the response did.
    Truncated,
    /// Not HTTP/1.x as RFC 9112 writes it.
    Malformed(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Status {
                code,
                location: Some(to),
            } => write!(f, "HTTP {code} redirect to {to:?}, not followed"),
            HttpError::Status { code, location: _ } => write!(f, "HTTP {code}, not 200"),
            HttpError::ContentType(Some(t)) => write!(f, "Content-Type {t:?}, not text/plain"),
            HttpError::ContentType(None) => f.write_str("no Content-Type, not text/plain"),
            HttpError::TooLarge(limit) => write!(f, "policy longer than {limit} bytes"),
            HttpError::NoLength => {
                f.write_str("response without Content-Length or chunked encoding")
            }
            HttpError::Truncated => f.write_str("connection closed before the end of the policy"),
            HttpError::Malformed(why) => write!(f, "malformed HTTP response: {why}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    /// Bytes of a `Content-Length` body still to come.
    Length(u64),
    ChunkSize,
    /// Bytes of the current chunk still to come.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    Trailer,
    Done,
}

/// Reads one response to a GET.
#[derive(Debug)]
pub struct ResponseReader {
    limit: usize,
    state: State,
    /// Received and not yet consumed: the head, a chunk-size or trailer line.
    pending: Vec<u8>,
    body: Vec<u8>,
    trailer_bytes: usize,
}

impl ResponseReader {
    /// A reader that refuses a body longer than `limit` bytes.
    pub fn new(limit: usize) -> ResponseReader {
        ResponseReader {
            limit,
            state: State::Head,
            pending: Vec::new(),
            body: Vec::new(),
            trailer_bytes: 0,
        }
    }

    /// Take the bytes that arrived. `Ok(true)` once the body is whole; what follows it
    /// is ignored.
    pub fn feed(&mut self, data: &[u8]) -> Result<bool, HttpError> {
        if self.state == State::Done {
            return Ok(true);
        }
        self.pending.extend_from_slice(data);
        let mut at = 0;
        let result = loop {
            match self.step(at) {
                Ok(Some(next)) => at = next,
                Ok(None) => break Ok(self.state == State::Done),
                Err(e) => break Err(e),
            }
        };
        self.pending.drain(..at);
        result
    }

    /// The connection ended: the body if it is whole.
    pub fn finish(self) -> Result<Vec<u8>, HttpError> {
        match self.state {
            State::Done => Ok(self.body),
            _ => Err(HttpError::Truncated),
        }
    }

    /// One step from `pending[at..]`: the new position, or `None` when more bytes are
    /// needed (or the body is done).
    fn step(&mut self, at: usize) -> Result<Option<usize>, HttpError> {
        let input = &self.pending[at..];
        match self.state {
            State::Head => {
                let Some(used) = self.head(at)? else {
                    if self.pending.len() - at > HEAD_LIMIT {
                        return Err(HttpError::Malformed(format!(
                            "response head longer than {HEAD_LIMIT} bytes"
                        )));
                    }
                    return Ok(None);
                };
                Ok(Some(at + used))
            }
            State::Length(left) | State::ChunkData(left) => {
                if input.is_empty() {
                    return Ok(None);
                }
                let take = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                self.body.extend_from_slice(&input[..take]);
                if self.body.len() > self.limit {
                    return Err(HttpError::TooLarge(self.limit));
                }
                let left = left - take as u64;
                self.state = match (self.state, left) {
                    (State::Length(_), 0) => State::Done,
                    (State::Length(_), _) => State::Length(left),
                    (_, 0) => State::ChunkEnd,
                    (_, _) => State::ChunkData(left),
                };
                Ok(Some(at + take))
            }
            State::ChunkSize => match httparse::parse_chunk_size(input) {
                Ok(httparse::Status::Complete((used, 0))) => {
                    self.state = State::Trailer;
                    Ok(Some(at + used))
                }
                Ok(httparse::Status::Complete((used, size))) => {
                    if size > (self.limit - self.body.len()) as u64 {
                        return Err(HttpError::TooLarge(self.limit));
                    }
                    self.state = State::ChunkData(size);
                    Ok(Some(at + used))
                }
                Ok(httparse::Status::Partial) if input.len() > LINE_LIMIT => Err(
                    HttpError::Malformed(format!("chunk-size line longer than {LINE_LIMIT}")),
                ),
                Ok(httparse::Status::Partial) => Ok(None),
                Err(_) => Err(HttpError::Malformed("bad chunk size".into())),
            },
            State::ChunkEnd => match input {
                [b'\r', b'\n', ..] => {
                    self.state = State::ChunkSize;
                    Ok(Some(at + 2))
                }
                [] | [b'\r'] => Ok(None),
                _ => Err(HttpError::Malformed("chunk not followed by CRLF".into())),
            },
            State::Trailer => {
                let Some(end) = input.windows(2).position(|w| w == b"\r\n") else {
                    if input.len() > LINE_LIMIT {
                        return Err(HttpError::Malformed("trailer line too long".into()));
                    }
                    return Ok(None);
                };
                self.trailer_bytes += end + 2;
                if self.trailer_bytes > TRAILER_LIMIT {
                    return Err(HttpError::Malformed("trailer too long".into()));
                }
                if end == 0 {
                    self.state = State::Done;
                    return Ok(Some(at + 2));
                }
                Ok(Some(at + end + 2))
            }
            State::Done => Ok(None),
        }
    }

    /// Parse the head in `pending[at..]` if it is complete: the bytes it used, or `None`.
    fn head(&mut self, at: usize) -> Result<Option<usize>, HttpError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let used = match response.parse(&self.pending[at..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(HttpError::Malformed(e.to_string())),
        };
        let code = response.code.unwrap_or(0);
        let header = |name: &str| -> Vec<String> {
            response
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
                .collect()
        };
        match code {
            // An interim response (103 Early Hints, a stray 100): the real one follows.
            100 | 102..=199 => return Ok(Some(used)),
            200 => {}
            _ => {
                let location = if (300..400).contains(&code) {
                    header("location").into_iter().next()
                } else {
                    None
                };
                return Err(HttpError::Status { code, location });
            }
        }
        let content_type = header("content-type").into_iter().next();
        let media_type = content_type
            .as_deref()
            .map(|t| t.split(';').next().unwrap_or("").trim());
        if !media_type.is_some_and(|t| t.eq_ignore_ascii_case("text/plain")) {
            return Err(HttpError::ContentType(content_type));
        }
        // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length.
        let codings: Vec<String> = header("transfer-encoding")
            .into_iter()
            .flat_map(|v| {
                v.split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
            })
            .filter(|c| !c.is_empty())
            .collect();
        self.state = if !codings.is_empty() {
            if codings != ["chunked"] {
                return Err(HttpError::Malformed(format!(
                    "transfer coding {} (only chunked is read)",
                    codings.join(", ")
                )));
            }
            State::ChunkSize
        } else {
            let lengths: Vec<String> = header("content-length")
                .into_iter()
                .flat_map(|v| {
                    v.split(',')
                        .map(|l| l.trim().to_string())
                        .collect::<Vec<_>>()
                })
                .collect();
            let Some(first) = lengths.first() else {
                return Err(HttpError::NoLength);
            };
            if lengths.iter().any(|l| l != first)
                || first.is_empty()
                || !first.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(HttpError::Malformed(format!(
                    "Content-Length {}",
                    lengths.join(", ")
                )));
            }
            let length: u64 = first.parse().unwrap_or(u64::MAX);
            if length > self.limit as u64 {
                return Err(HttpError::TooLarge(self.limit));
            }
            if length == 0 {
                State::Done
            } else {
                State::Length(length)
            }
        };
        Ok(Some(used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str =
        "version: STSv1\r\nmode: enforce\r\nmx: mx.example.org\r\nmax_age: 86400\r\n";

    fn with_length(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn chunked(pieces: &[&str]) -> String {
        let mut out = String::from(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        for p in pieces {
            out.push_str(&format!("{:x};ext=1\r\n{p}\r\n", p.len()));
        }
        out.push_str("0\r\nX-Trailer: yes\r\n\r\n");
        out
    }

    /// The body, whole in one feed.
    fn read(response: &str, limit: usize) -> Result<Vec<u8>, HttpError> {
        let mut r = ResponseReader::new(limit);
        r.feed(response.as_bytes())?;
        r.finish()
    }

    /// The body, fed in two pieces split at `at`.
    fn read_split(response: &[u8], at: usize) -> Result<Vec<u8>, HttpError> {
        let mut r = ResponseReader::new(64 * 1024);
        r.feed(&response[..at])?;
        r.feed(&response[at..])?;
        r.finish()
    }

    #[test]
    fn body_by_content_length() {
        assert_eq!(
            read(&with_length(POLICY), 65536).unwrap(),
            POLICY.as_bytes()
        );
    }

    #[test]
    fn chunked_body_with_extensions_and_trailer() {
        let response = chunked(&[
            "version: STSv1\r\n",
            "mode: enforce\r\nmx: mx.example.org\r\n",
            "max_age: 86400\r\n",
        ]);
        assert_eq!(read(&response, 65536).unwrap(), POLICY.as_bytes());
    }

    #[test]
    fn split_anywhere_reads_the_same() {
        for response in [
            with_length(POLICY),
            chunked(&[
                "version: STSv1\r\nmode",
                ": enforce\r\nmx: mx.example.org\r\nmax_age: 86400\r\n",
            ]),
        ] {
            let bytes = response.as_bytes();
            for at in 0..=bytes.len() {
                assert_eq!(
                    read_split(bytes, at).unwrap(),
                    POLICY.as_bytes(),
                    "split at {at}"
                );
            }
        }
    }

    #[test]
    fn byte_by_byte_reads_the_same() {
        let response = chunked(&[
            "version: STSv1\r\n",
            "mode: enforce\r\nmx: mx.example.org\r\nmax_age: 86400\r\n",
        ]);
        let mut r = ResponseReader::new(65536);
        let mut done = false;
        for b in response.as_bytes() {
            done = r.feed(std::slice::from_ref(b)).unwrap();
        }
        assert!(done);
        assert_eq!(r.finish().unwrap(), POLICY.as_bytes());
    }

    #[test]
    fn interim_response_is_skipped() {
        let response = format!(
            "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n{}",
            with_length(POLICY)
        );
        assert_eq!(read(&response, 65536).unwrap(), POLICY.as_bytes());
    }

    #[test]
    fn redirect_is_a_failure_naming_its_target() {
        let response = "HTTP/1.1 301 Moved Permanently\r\nLocation: https://elsewhere.test/p\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            read(response, 65536),
            Err(HttpError::Status {
                code: 301,
                location: Some("https://elsewhere.test/p".into())
            })
        );
    }

    #[test]
    fn only_200_is_a_policy() {
        for code in [204, 203, 404, 500] {
            let response = format!(
                "HTTP/1.1 {code} X\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n"
            );
            assert_eq!(
                read(&response, 65536),
                Err(HttpError::Status {
                    code,
                    location: None
                })
            );
        }
    }

    #[test]
    fn content_type_must_be_text_plain() {
        for (header, ok) in [
            ("Content-Type: text/plain\r\n", true),
            ("content-type: TEXT/Plain ; charset=us-ascii\r\n", true),
            ("Content-Type: text/html\r\n", false),
            ("Content-Type: text/plainx\r\n", false),
            ("Content-Type: application/octet-stream\r\n", false),
            ("", false),
        ] {
            let response = format!("HTTP/1.1 200 OK\r\n{header}Content-Length: 2\r\n\r\nok");
            assert_eq!(read(&response, 65536).is_ok(), ok, "{header:?}");
        }
        let response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(read(response, 65536), Err(HttpError::ContentType(None)));
    }

    #[test]
    fn declared_length_over_the_limit_is_refused_before_reading() {
        let mut r = ResponseReader::new(10);
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n";
        assert_eq!(r.feed(head.as_bytes()), Err(HttpError::TooLarge(10)));
        assert_eq!(read(&with_length("0123456789"), 10).unwrap(), b"0123456789");
    }

    #[test]
    fn chunked_body_over_the_limit_is_refused() {
        let response = chunked(&["01234", "56789", "x"]);
        assert_eq!(read(&response, 10), Err(HttpError::TooLarge(10)));
        assert_eq!(
            read(&chunked(&["01234", "56789"]), 10).unwrap(),
            b"0123456789"
        );
    }

    #[test]
    fn body_ended_by_close_is_refused() {
        let response = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n{POLICY}");
        assert_eq!(read(&response, 65536), Err(HttpError::NoLength));
    }

    #[test]
    fn truncated_bodies_are_refused() {
        let full = with_length(POLICY);
        assert_eq!(
            read(&full[..full.len() - 1], 65536),
            Err(HttpError::Truncated)
        );
        let full = chunked(&[POLICY]);
        // Without the last chunk and trailer.
        let cut = full.find("0\r\nX-Trailer").unwrap();
        assert_eq!(read(&full[..cut], 65536), Err(HttpError::Truncated));
        assert_eq!(
            read("HTTP/1.1 200 OK\r\n", 65536),
            Err(HttpError::Truncated)
        );
    }

    #[test]
    fn malformed_responses_are_refused() {
        for response in [
            "SSH-2.0-OpenSSH\r\n\r\n".to_string(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2, 3\r\n\r\nok".into(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: -1\r\n\r\n".into(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".into(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".into(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX".into(),
            "HTTP/1.1 101 Switching Protocols\r\n\r\n".into(),
        ] {
            let got = read(&response, 65536);
            assert!(matches!(got, Err(HttpError::Malformed(_)) | Err(HttpError::Status { .. })), "{response:?}: {got:?}");
        }
    }

    #[test]
    fn endless_head_is_refused() {
        let mut r = ResponseReader::new(65536);
        r.feed(b"HTTP/1.1 200 OK\r\n").unwrap();
        let line = format!("X-Filler: {}\r\n", "a".repeat(1000));
        let mut result = Ok(false);
        for _ in 0..20 {
            result = r.feed(line.as_bytes());
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(HttpError::Malformed(_))), "{result:?}");
    }

    #[test]
    fn equal_repeated_content_lengths_are_one() {
        let response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(read(response, 65536).unwrap(), b"ok");
    }
}
