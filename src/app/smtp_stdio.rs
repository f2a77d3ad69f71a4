//! `sendmail -bs`: a minimal receiving SMTP server on standard input and output, for the
//! programs that hand mail over that way (RFC 5321 §4.1 server side, one client, no TLS or
//! AUTH: the peer is a local process).
//!
//! Every read is bounded: a command line longer than [`MAX_COMMAND_LINE`] is refused, and
//! message data is read in pieces of at most [`MAX_DATA_PIECE`] bytes straight into an
//! anonymous temporary file, so memory does not grow with the input whatever it is. Each
//! message is handed to a callback once its final dot came; its result decides the reply.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};

use crate::app::cli::Mode;
use crate::app::send;
use crate::app::settings::{MailErrors, Settings};
use crate::error::{Error, Result};
use crate::exit::ExitStatus;
use crate::message::address::{self, AddressError};
use crate::message::input::Input;
use crate::system::identity;

/// The longest command line, CRLF included. RFC 5321 §4.5.3.1.4 sets 512; extensions
/// make lines longer, so allow four times as much, as the reply parser does.
pub const MAX_COMMAND_LINE: usize = 2048;
/// Message data is read in pieces of at most this many bytes; a longer line is stored
/// in several pieces, never held whole.
pub const MAX_DATA_PIECE: usize = 64 * 1024;
/// The largest message accepted, announced with SIZE (RFC 1870).
pub const MAX_MESSAGE: u64 = 64 * 1024 * 1024;
/// Recipients per message (RFC 5321 §4.5.3.1.8 asks for at least 100).
pub const MAX_RECIPIENTS: usize = 1000;
/// Refused commands before the session is ended with 421: a program that is not
/// speaking SMTP at all should not get a reply to every line it writes.
pub const MAX_ERRORS: usize = 20;

/// The callback that delivers one message: envelope sender ("" for `<>`), recipients,
/// and the message (un-dot-stuffed, line ends as received) positioned at its start.
pub type Deliver<'a> = dyn FnMut(&str, &[String], &mut File) -> Result<()> + 'a;

/// Run `sendmail -bs`: serve stdin/stdout, each message delivered by the normal path as
/// if it had been given with `-i -f SENDER RECIPIENT...`.
pub fn run(settings: &Settings, input: Input<'_>, err: &mut dyn Write) -> Result<ExitStatus> {
    if settings.compose.is_some() || settings.message.read_recipients {
        return Err(Error::Usage(
            "-bs takes messages over SMTP; -t and the compose options do not apply".into(),
        ));
    }
    let mut reader: Box<dyn BufRead + '_> = match input {
        Input::Stream(r) => Box::new(BufReader::new(r)),
        Input::File(f) => Box::new(BufReader::new(f)),
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut deliver = |from: &str, rcpts: &[String], file: &mut File| -> Result<()> {
        let mut one = settings.clone();
        one.mode = Mode::Deliver;
        one.recipients = rcpts.to_vec();
        one.message.dot_ends_input = false;
        // A refusal behind the 250 the client gets (a partial delivery) is mailed back.
        one.message.mail_errors = MailErrors::Unseen;
        one.message.from = Some(if from.is_empty() { "<>" } else { from }.to_string());
        let copy = file
            .try_clone()
            .map_err(|e| Error::io("reopening the received message", e))?;
        match send::run(&one, Input::File(copy), err) {
            Ok(_) => Ok(()),
            // Some recipients have the message: refusing it now would make the client send
            // it to them again. The refusals are reported on stderr.
            Err(e @ Error::PartialDelivery { .. }) => {
                for line in e.lines() {
                    let _ = writeln!(err, "smtpsend: {line}");
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    };
    serve(&mut reader, &mut out, &identity::mail_name(), &mut deliver)?;
    Ok(ExitStatus::Ok)
}

/// Speak SMTP on `input`/`output` until QUIT or the end of the input.
pub fn serve(
    input: &mut dyn BufRead,
    output: &mut dyn Write,
    hostname: &str,
    deliver: &mut Deliver<'_>,
) -> Result<()> {
    Server {
        input,
        output,
        hostname,
        deliver,
        greeted: false,
        from: None,
        rcpts: Vec::new(),
        errors: 0,
        buf: Vec::with_capacity(MAX_COMMAND_LINE),
    }
    .run()
}

/// What one bounded read gave.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    /// A whole line, LF included.
    Line,
    /// `max` bytes without an LF: the line goes on.
    Full,
    /// The input ended; the buffer holds what came after the last LF (maybe nothing).
    Eof,
}

/// Read up to and including the next LF, at most `max` bytes, into `buf` (cleared first).
fn read_piece(input: &mut dyn BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<Piece> {
    buf.clear();
    loop {
        let available = match input.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(Piece::Eof);
        }
        let room = max - buf.len();
        let take = &available[..available.len().min(room)];
        if let Some(i) = memchr::memchr(b'\n', take) {
            buf.extend_from_slice(&take[..=i]);
            input.consume(i + 1);
            return Ok(Piece::Line);
        }
        let n = take.len();
        buf.extend_from_slice(take);
        input.consume(n);
        if buf.len() >= max {
            return Ok(Piece::Full);
        }
    }
}

/// A line without its CRLF (or bare LF).
fn chomp(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Whether the session goes on after a command.
enum Next {
    Continue,
    Quit,
}

struct Server<'a, 'd> {
    input: &'a mut dyn BufRead,
    output: &'a mut dyn Write,
    hostname: &'a str,
    deliver: &'a mut Deliver<'d>,
    greeted: bool,
    /// The sender of the transaction in progress ("" for `<>`).
    from: Option<String>,
    rcpts: Vec<String>,
    errors: usize,
    buf: Vec<u8>,
}

impl Server<'_, '_> {
    fn run(mut self) -> Result<()> {
        self.reply(&format!("220 {} ESMTP smtpsend", self.hostname))?;
        loop {
            let piece =
                read_piece(self.input, &mut self.buf, MAX_COMMAND_LINE).map_err(input_error)?;
            match piece {
                // A last line without LF is not a command: the client went away mid-line.
                Piece::Eof => return Ok(()),
                Piece::Full => {
                    self.skip_line()?;
                    self.refuse("500 5.5.2 Line too long")?;
                }
                Piece::Line => {
                    let line = chomp(&self.buf).to_vec();
                    if let Next::Quit = self.command(&line)? {
                        return Ok(());
                    }
                }
            }
            if self.errors >= MAX_ERRORS {
                self.reply("421 4.7.0 Too many errors, closing")?;
                return Ok(());
            }
        }
    }

    /// Discard the rest of an overlong line.
    fn skip_line(&mut self) -> Result<()> {
        loop {
            match read_piece(self.input, &mut self.buf, MAX_COMMAND_LINE).map_err(input_error)? {
                Piece::Full => {}
                Piece::Line | Piece::Eof => return Ok(()),
            }
        }
    }

    fn reply(&mut self, text: &str) -> Result<()> {
        // One write per reply, then flush: the client may be waiting for it.
        let mut bytes = Vec::with_capacity(text.len() + 2);
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.output
            .write_all(&bytes)
            .and_then(|()| self.output.flush())
            .map_err(|e| Error::io("writing an SMTP reply to standard output", e))
    }

    /// A 5xx reply to a command, counted towards [`MAX_ERRORS`].
    fn refuse(&mut self, text: &str) -> Result<()> {
        self.errors += 1;
        self.reply(text)
    }

    fn reset(&mut self) {
        self.from = None;
        self.rcpts.clear();
    }

    fn command(&mut self, line: &[u8]) -> Result<Next> {
        let Some(line) = std::str::from_utf8(line)
            .ok()
            .filter(|l| !l.chars().any(|c| c.is_control() && c != '\t'))
        else {
            self.refuse("500 5.5.2 Syntax error: control character or invalid UTF-8")?;
            return Ok(Next::Continue);
        };
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v, a.trim()),
            None => (line, ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" if arg.is_empty() => {
                self.refuse(&format!("501 5.5.4 Syntax: {verb} hostname"))?
            }
            "EHLO" => {
                // RFC 5321 §4.1.4: EHLO resets any transaction.
                self.reset();
                self.greeted = true;
                let text = format!(
                    "250-{} Hello {arg}\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
                     250-SIZE {MAX_MESSAGE}\r\n250 ENHANCEDSTATUSCODES",
                    self.hostname
                );
                self.reply(&text)?;
            }
            "HELO" => {
                self.reset();
                self.greeted = true;
                let text = format!("250 {}", self.hostname);
                self.reply(&text)?;
            }
            "MAIL" => self.mail(arg)?,
            "RCPT" => self.rcpt(arg)?,
            "DATA" if !arg.is_empty() => self.refuse("501 5.5.4 Syntax: DATA")?,
            "DATA" => self.data()?,
            "RSET" => {
                self.reset();
                self.reply("250 2.0.0 Ok")?;
            }
            "NOOP" => self.reply("250 2.0.0 Ok")?,
            "QUIT" => {
                let text = format!("221 2.0.0 {} closing", self.hostname);
                self.reply(&text)?;
                return Ok(Next::Quit);
            }
            "HELP" => {
                self.reply("214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY")?
            }
            // RFC 5321 §3.5.3: 252 when the server will not say.
            "VRFY" => self.reply("252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery")?,
            // Known verbs this server does not do: 502 (RFC 5321 §4.2.4).
            "EXPN" | "ETRN" | "STARTTLS" | "AUTH" | "BDAT" | "TURN" | "SEND" | "SOML" | "SAML"
            | "VERB" | "TICK" => self.refuse("502 5.5.1 Command not implemented")?,
            _ => self.refuse("500 5.5.2 Command not recognized")?,
        }
        Ok(Next::Continue)
    }

    fn mail(&mut self, arg: &str) -> Result<()> {
        if !self.greeted {
            return self.refuse("503 5.5.1 Send EHLO or HELO first");
        }
        if self.from.is_some() {
            return self.refuse("503 5.5.1 Nested MAIL command");
        }
        let Some((path, params)) = strip_keyword(arg, "FROM:").and_then(split_path) else {
            return self.refuse("501 5.5.4 Syntax: MAIL FROM:<address>");
        };
        for param in params.split_ascii_whitespace() {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            match key.to_ascii_uppercase().as_str() {
                "SIZE" => match value.parse::<u64>() {
                    Ok(size) if size > MAX_MESSAGE => {
                        return self.refuse("552 5.3.4 Message size exceeds fixed limit");
                    }
                    Ok(_) => {}
                    Err(_) => return self.refuse("501 5.5.4 Bad SIZE parameter"),
                },
                "BODY"
                    if value.eq_ignore_ascii_case("7BIT")
                        || value.eq_ignore_ascii_case("8BITMIME") => {}
                _ => {
                    let text = format!("555 5.5.4 Unsupported parameter {}", printable(key));
                    return self.refuse(&text);
                }
            }
        }
        let sender = if address::is_null_sender(path) {
            String::new()
        } else {
            match self.checked(path) {
                Ok(a) => a,
                Err(e) => {
                    let text = format!("553 5.1.7 Bad sender address: {}", printable(&e));
                    return self.refuse(&text);
                }
            }
        };
        self.from = Some(sender);
        self.reply("250 2.1.0 Ok")
    }

    fn rcpt(&mut self, arg: &str) -> Result<()> {
        if self.from.is_none() {
            return self.refuse("503 5.5.1 Need MAIL before RCPT");
        }
        let Some((path, params)) = strip_keyword(arg, "TO:").and_then(split_path) else {
            return self.refuse("501 5.5.4 Syntax: RCPT TO:<address>");
        };
        if !params.trim().is_empty() {
            // No DSN is offered, so no RCPT parameter is known (RFC 5321 §4.1.1.3).
            return self.refuse("555 5.5.4 Unsupported RCPT parameter");
        }
        if self.rcpts.len() >= MAX_RECIPIENTS {
            return self.reply("452 4.5.3 Too many recipients");
        }
        match self.checked(path) {
            Ok(a) => {
                self.rcpts.push(a);
                self.reply("250 2.1.5 Ok")
            }
            Err(e) => {
                let text = format!("501 5.1.3 Bad recipient address: {}", printable(&e));
                self.refuse(&text)
            }
        }
    }

    /// An address for the envelope: checked as [`address::envelope_address`] does, and a
    /// bare local name (`root`) kept as it is for the delivery path to route.
    fn checked(&self, path: &str) -> std::result::Result<String, String> {
        match address::envelope_address(path) {
            Ok(a) => Ok(a),
            Err(AddressError::NoDomain(name)) => {
                address::envelope_address(&format!("{name}@{}", self.hostname))
                    .map(|_| name)
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn data(&mut self) -> Result<()> {
        let Some(from) = self.from.clone() else {
            return self.refuse("503 5.5.1 Need MAIL command");
        };
        if self.rcpts.is_empty() {
            return self.refuse("554 5.5.1 No valid recipients");
        }
        let mut file = match crate::message::input::private_temp_file() {
            Ok(f) => f,
            Err(e) => {
                self.reset();
                let text = format!("451 4.3.0 {}", one_line(&e.to_string()));
                return self.reply(&text);
            }
        };
        self.reply("354 End data with <CR><LF>.<CR><LF>")?;
        let received = self.receive(&mut file)?;
        let rcpts = std::mem::take(&mut self.rcpts);
        self.from = None;
        let reply = match received {
            Received::Ended => return Ok(()),
            Received::TooBig => "552 5.3.4 Message size exceeds fixed limit".to_string(),
            Received::WriteFailed(e) => format!("451 4.3.0 Storing the message: {e}"),
            Received::Complete => {
                let outcome = file
                    .seek(SeekFrom::Start(0))
                    .map_err(|e| Error::io("rewinding the received message", e))
                    .and_then(|_| (self.deliver)(&from, &rcpts, &mut file));
                match outcome {
                    Ok(()) => "250 2.0.0 Ok: message accepted".to_string(),
                    Err(e) if e.exit_status() == ExitStatus::TempFail => {
                        format!("451 4.3.0 {}", one_line(&e.to_string()))
                    }
                    Err(e) => format!("554 5.3.0 {}", one_line(&e.to_string())),
                }
            }
        };
        self.reply(&reply)
    }

    /// Read message data up to the lone dot (RFC 5321 §4.1.1.4), undoing the dot-stuffing
    /// (§4.5.2), into `file`. Reading goes on to the dot after a write failure or once the
    /// message is too big, so the next command is read as a command.
    fn receive(&mut self, file: &mut File) -> Result<Received> {
        let mut at_line_start = true;
        let mut size: u64 = 0;
        let mut outcome = Received::Complete;
        loop {
            let piece =
                read_piece(self.input, &mut self.buf, MAX_DATA_PIECE).map_err(input_error)?;
            if piece == Piece::Eof {
                // The input ended inside the data: the transaction is abandoned (§3.8).
                return Ok(Received::Ended);
            }
            let whole = piece == Piece::Line;
            if at_line_start && whole && chomp(&self.buf) == b"." {
                return Ok(outcome);
            }
            let data = if at_line_start && self.buf.first() == Some(&b'.') {
                &self.buf[1..]
            } else {
                &self.buf[..]
            };
            at_line_start = whole;
            size += data.len() as u64;
            if !matches!(outcome, Received::Complete) {
                continue;
            }
            if size > MAX_MESSAGE {
                outcome = Received::TooBig;
                continue;
            }
            if let Err(e) = file.write_all(data) {
                outcome = Received::WriteFailed(e.to_string());
            }
        }
    }
}

/// How the data phase ended.
enum Received {
    Complete,
    TooBig,
    WriteFailed(String),
    /// The input ended before the final dot.
    Ended,
}

fn input_error(e: io::Error) -> Error {
    Error::io("reading SMTP commands from standard input", e)
}

/// `FROM:` / `TO:` at the start, case-insensitive; the rest, blanks after the colon
/// tolerated (as most servers do).
fn strip_keyword<'a>(arg: &'a str, keyword: &str) -> Option<&'a str> {
    let head = arg.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| arg[keyword.len()..].trim_start())
}

/// `<path> params` into the address inside the brackets and the parameters. A `>` in a
/// quoted local part does not close the path.
fn split_path(rest: &str) -> Option<(&str, &str)> {
    let inner = rest.strip_prefix('<')?;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => {
                let params = &inner[i + 1..];
                if !params.is_empty() && !params.starts_with(' ') {
                    return None;
                }
                return Some((&inner[..i], params));
            }
            _ => {}
        }
    }
    None
}

/// Text for a reply line: no CR, LF or other control character, bounded length.
fn one_line(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > 400 {
        let mut cut = 400;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

fn printable(text: &str) -> String {
    one_line(&text.escape_debug().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A message as the callback saw it.
    #[derive(Debug, PartialEq, Eq)]
    struct Got {
        from: String,
        rcpts: Vec<String>,
        content: Vec<u8>,
    }

    /// Serve `input`; returns the replies (lines) and the messages delivered. `answer`
    /// decides each delivery's outcome.
    fn session_with(
        input: &[u8],
        mut answer: impl FnMut(usize) -> Result<()>,
    ) -> (Vec<String>, Vec<Got>) {
        let mut reader = input;
        let mut out = Vec::new();
        let mut got = Vec::new();
        let mut deliver = |from: &str, rcpts: &[String], file: &mut File| -> Result<()> {
            let mut content = Vec::new();
            file.read_to_end(&mut content).unwrap();
            got.push(Got {
                from: from.into(),
                rcpts: rcpts.to_vec(),
                content,
            });
            answer(got.len())
        };
        serve(&mut reader, &mut out, "host.example", &mut deliver).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.is_empty() || text.ends_with("\r\n"), "{text:?}");
        let lines = text.split_terminator("\r\n").map(String::from).collect();
        (lines, got)
    }

    fn session(input: &[u8]) -> (Vec<String>, Vec<Got>) {
        session_with(input, |_| Ok(()))
    }

    /// The reply codes, one per reply (continuation lines left out).
    fn codes(lines: &[String]) -> Vec<&str> {
        lines
            .iter()
            .filter(|l| l.as_bytes().get(3) != Some(&b'-'))
            .map(|l| &l[..3])
            .collect()
    }

    #[test]
    fn a_pipelined_session_with_two_messages() {
        let (lines, got) = session(
            b"EHLO client.example\r\n\
              MAIL FROM:<alice@example.org> SIZE=30 BODY=8BITMIME\r\n\
              RCPT TO:<bob@example.org>\r\n\
              DATA\r\n\
              Subject: one\r\n\r\nfirst\r\n.\r\n\
              MAIL FROM:<>\r\n\
              RCPT TO:<carol@example.org>\r\n\
              RCPT TO:<root>\r\n\
              DATA\r\n\
              Subject: two\r\n\r\nsecond\r\n.\r\n\
              QUIT\r\n",
        );
        assert_eq!(
            codes(&lines),
            [
                "220", "250", "250", "250", "354", "250", "250", "250", "250", "354", "250", "221"
            ]
        );
        assert_eq!(lines[0], "220 host.example ESMTP smtpsend");
        assert_eq!(
            &lines[1..6],
            [
                "250-host.example Hello client.example",
                "250-PIPELINING",
                "250-8BITMIME",
                "250-SIZE 67108864",
                "250 ENHANCEDSTATUSCODES"
            ]
        );
        assert_eq!(
            got,
            vec![
                Got {
                    from: "alice@example.org".into(),
                    rcpts: vec!["bob@example.org".into()],
                    content: b"Subject: one\r\n\r\nfirst\r\n".to_vec(),
                },
                Got {
                    from: String::new(),
                    rcpts: vec!["carol@example.org".into(), "root".into()],
                    content: b"Subject: two\r\n\r\nsecond\r\n".to_vec(),
                },
            ]
        );
    }

    #[test]
    fn dot_stuffing_is_undone() {
        let (_, got) = session(
            b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n\
              ..leading\r\n...two\r\n..\r\n. \r\nmid.dle\r\n.\r\nQUIT\r\n",
        );
        assert_eq!(
            got[0].content,
            b".leading\r\n..two\r\n.\r\n \r\nmid.dle\r\n"
        );
    }

    #[test]
    fn bare_lf_line_ends_are_accepted() {
        let (lines, got) = session(
            b"HELO c\nMAIL FROM:<a@b.example>\nRCPT TO:<c@d.example>\nDATA\nhi\n..x\n.\nQUIT\n",
        );
        assert_eq!(
            codes(&lines),
            ["220", "250", "250", "250", "354", "250", "221"]
        );
        assert_eq!(got[0].content, b"hi\n.x\n");
    }

    #[test]
    fn rset_abandons_the_transaction() {
        let (lines, got) = session(
            b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\nRSET\r\n\
              DATA\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<z@y.example>\r\nDATA\r\nm\r\n.\r\n",
        );
        assert_eq!(
            codes(&lines),
            [
                "220", "250", "250", "250", "250", "503", "250", "250", "354", "250"
            ]
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].rcpts, ["z@y.example"]);
    }

    #[test]
    fn bad_addresses_are_refused_and_the_rest_goes_on() {
        let (lines, got) = session(
            b"EHLO c\r\n\
              MAIL FROM:<a b@example.org>\r\n\
              MAIL FROM:<a@example.org>\r\n\
              RCPT TO:<>\r\n\
              RCPT TO:<bob@exa mple.org>\r\n\
              RCPT TO:<evil@x.example>\r\nRCPT TO:<bob@example.org>\r\n\
              RCPT TO:bob@example.org\r\n\
              DATA\r\nm\r\n.\r\nQUIT\r\n",
        );
        assert_eq!(
            codes(&lines),
            [
                "220", "250", "553", "250", "501", "501", "250", "250", "501", "354", "250", "221"
            ]
        );
        assert!(
            lines[6].starts_with("553 5.1.7 Bad sender address: "),
            "{}",
            lines[6]
        );
        assert_eq!(got[0].rcpts, ["evil@x.example", "bob@example.org"]);
    }

    #[test]
    fn commands_out_of_order_get_503() {
        let (lines, got) = session(
            b"MAIL FROM:<a@b.example>\r\nEHLO c\r\nRCPT TO:<c@d.example>\r\nDATA\r\n\
              MAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\nDATA\r\nQUIT\r\n",
        );
        assert_eq!(
            codes(&lines),
            [
                "220", "503", "250", "503", "503", "250", "503", "554", "221"
            ]
        );
        assert!(got.is_empty());
    }

    #[test]
    fn unknown_and_unimplemented_commands() {
        let (lines, _) = session(
            b"FROB\r\nEXPN staff\r\nSTARTTLS\r\nTURN\r\nVRFY root\r\nNOOP\r\nHELP\r\nEHLO\r\n",
        );
        assert_eq!(
            codes(&lines),
            [
                "220", "500", "502", "502", "502", "252", "250", "214", "501"
            ]
        );
    }

    #[test]
    fn unknown_parameters_are_refused() {
        let (lines, _) = session(
            b"EHLO c\r\nMAIL FROM:<a@b.example> SMTPUTF8\r\n\
              MAIL FROM:<a@b.example> SIZE=999999999999\r\n\
              MAIL FROM:<a@b.example> SIZE=x\r\n\
              MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example> NOTIFY=NEVER\r\n",
        );
        assert_eq!(
            codes(&lines),
            ["220", "250", "555", "552", "501", "250", "555"]
        );
    }

    #[test]
    fn delivery_outcomes_become_replies() {
        let msg =
            b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nm\r\n.\r\n";
        let mut input = msg.repeat(3);
        input.extend_from_slice(b"QUIT\r\n");
        let (lines, got) = session_with(&input, |n| match n {
            1 => Ok(()),
            2 => Err(Error::network_text("relay", "connection refused")),
            _ => Err(Error::Unavailable("550 5.7.1 relaying\r\ndenied".into())),
        });
        assert_eq!(got.len(), 3);
        let ends: Vec<&String> = lines.iter().filter(|l| !l.starts_with("250-")).collect();
        assert!(
            ends.iter()
                .any(|l| *l == "451 4.3.0 relay: connection refused")
        );
        assert!(
            ends.iter()
                .any(|l| *l == "554 5.3.0 550 5.7.1 relaying  denied"),
            "{ends:?}"
        );
    }

    #[test]
    fn end_of_input_inside_data_delivers_nothing() {
        let (lines, got) =
            session(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nhalf");
        assert_eq!(codes(&lines).last(), Some(&"354"));
        assert!(got.is_empty());
    }

    #[test]
    fn an_overlong_command_line_is_refused_and_skipped() {
        let mut input = b"NOOP ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 3 * MAX_COMMAND_LINE));
        input.extend_from_slice(b"\r\nNOOP\r\n");
        let (lines, _) = session(&input);
        assert_eq!(codes(&lines), ["220", "500", "250"]);
    }

    #[test]
    fn long_data_lines_are_stored_whole_in_pieces() {
        let long = vec![b'y'; 3 * MAX_DATA_PIECE + 7];
        let mut input =
            b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n.".to_vec();
        input.extend_from_slice(&long);
        // A dot at the start of a piece that is not the start of a line stays.
        input.extend_from_slice(b"\r\n.\r\n");
        let (_, got) = session(&input);
        let mut expected = long.clone();
        expected.extend_from_slice(b"\r\n");
        assert_eq!(got[0].content.len(), expected.len());
        assert_eq!(got[0].content, expected);
    }

    #[test]
    fn too_many_errors_end_the_session() {
        let input = b"garbage\r\n".repeat(MAX_ERRORS + 5);
        let (lines, _) = session(&input);
        assert_eq!(lines.len(), 1 + MAX_ERRORS + 1);
        assert!(lines.last().unwrap().starts_with("421 "));
    }

    #[test]
    fn control_characters_in_commands_are_refused() {
        let (lines, _) = session(b"NO\0OP\r\nEHLO a\x1bb\r\n");
        assert_eq!(codes(&lines), ["220", "500", "500"]);
    }

    #[test]
    fn paths_split_from_parameters() {
        assert_eq!(split_path("<a@b> SIZE=1"), Some(("a@b", " SIZE=1")));
        assert_eq!(split_path("<\"x>y\"@b>"), Some(("\"x>y\"@b", "")));
        assert_eq!(split_path("<>"), Some(("", "")));
        assert_eq!(split_path("a@b"), None);
        assert_eq!(split_path("<a@b"), None);
        assert_eq!(split_path("<a@b>x"), None);
        assert_eq!(strip_keyword("from: <a@b>", "FROM:"), Some("<a@b>"));
        assert_eq!(strip_keyword("FRO", "FROM:"), None);
    }
}
