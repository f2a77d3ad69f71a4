//! The DATA body encoder (RFC 5321 §4.5.2): CRLF line ends, dot-stuffing, and the final
//! `CRLF.CRLF`, over input that arrives in arbitrary pieces.
//!
//! Every bare LF and bare CR becomes CRLF, so no input can produce a `.` line that a server
//! might read as the end of data (SMTP smuggling), and exactly one terminator is ever sent.

/// Stateful encoder. `encode` may be called with any split of the input; the output is the
/// same as for the input in one piece.
#[derive(Debug, Clone)]
pub struct BodyEncoder {
    /// At the start of a line (nothing of the current line emitted yet).
    line_start: bool,
    /// The last input byte was a CR, already emitted as CRLF; an LF right after it belongs to it.
    after_cr: bool,
    /// sendmail without `-i`: a line holding a single `.` ends the input.
    dot_ends_input: bool,
    /// A `.` at the start of a line was seen and not emitted yet (only with `dot_ends_input`).
    dot_pending: bool,
    /// The input was ended by a lone-dot line; everything after it is ignored.
    ended: bool,
    /// Body bytes seen with the high bit set (for BODY=8BITMIME).
    eight_bit: bool,
    /// A NUL byte was seen: not allowed in a message (RFC 5322 §3.5), so the caller
    /// abandons the transfer.
    nul: bool,
    /// DATA needs leading dots doubled and a final `.`; BDAT (RFC 3030) sends octets as they are.
    dot_stuffing: bool,
    /// Octets of the current line on the wire so far (a stuffed dot included).
    column: usize,
}

/// The longest line sent, CRLF not counted (RFC 5321 §4.5.3.1.6: 1000 with it). A longer
/// one is folded as Postfix's `smtp_line_length_limit` does: CRLF and a space are inserted,
/// so the message arrives (OpenSMTPD refuses the line with a 500, Exim and Postfix limit
/// it too) with its text whole, a space added at each break; the cut is moved back to a
/// character boundary when the line is UTF-8.
pub const MAX_LINE: usize = 998;

impl BodyEncoder {
    /// `dot_ends_input`: true unless sendmail's `-i`/`-oi` was given.
    pub fn new(dot_ends_input: bool) -> Self {
        BodyEncoder {
            line_start: true,
            after_cr: false,
            dot_ends_input,
            dot_pending: false,
            ended: false,
            eight_bit: false,
            nul: false,
            dot_stuffing: true,
            column: 0,
        }
    }

    /// An encoder for BDAT chunks: CRLF line ends, but no dot-stuffing and no terminator.
    pub fn for_bdat(dot_ends_input: bool) -> Self {
        BodyEncoder {
            dot_stuffing: false,
            ..BodyEncoder::new(dot_ends_input)
        }
    }

    /// Whether a lone-dot line ended the input; the caller may stop reading.
    pub fn input_ended(&self) -> bool {
        self.ended
    }

    /// Whether a NUL byte has been seen.
    pub fn saw_nul(&self) -> bool {
        self.nul
    }

    /// Whether any byte with the high bit set has been seen.
    pub fn saw_eight_bit(&self) -> bool {
        self.eight_bit
    }

    /// Encode `input`, appending to `out`. At most `2 * input.len() + 2` bytes are added.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 8 + 4);
        let rest = self.encode_lines(input, out);
        // One pass over what was taken (not what follows a lone `.` that ended the input)
        // instead of one per line: lines average 70 octets.
        let taken = &input[..input.len() - rest];
        if !self.eight_bit && !taken.is_ascii() {
            self.eight_bit = true;
        }
        if !self.nul && memchr::memchr(0, taken).is_some() {
            self.nul = true;
        }
    }

    /// The line-by-line work of [`Self::encode`]; returns how much of `input` was left
    /// untaken (after a lone `.` that ends the input).
    fn encode_lines(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> usize {
        // Without a CR anywhere in the block, line breaks are found with the one-byte
        // search, which is cheaper per line than the two-byte one.
        let has_cr = memchr::memchr(b'\r', input).is_some();
        while !input.is_empty() && !self.ended {
            if self.after_cr {
                self.after_cr = false;
                if input[0] == b'\n' {
                    input = &input[1..];
                    continue;
                }
            }
            if self.dot_pending {
                self.dot_pending = false;
                if matches!(input[0], b'\r' | b'\n') {
                    self.ended = true;
                    return input.len();
                }
                out.extend_from_slice(self.leading_dot());
                self.line_start = false;
            } else if self.line_start && input[0] == b'.' {
                input = &input[1..];
                if self.dot_ends_input {
                    self.dot_pending = true;
                } else {
                    out.extend_from_slice(self.leading_dot());
                    self.line_start = false;
                }
                continue;
            }
            // Copy up to the next line break in one piece.
            let found = if has_cr {
                memchr::memchr2(b'\r', b'\n', input)
            } else {
                memchr::memchr(b'\n', input)
            };
            let (text, brk) = match found {
                Some(i) => (&input[..i], Some(input[i])),
                None => (input, None),
            };
            self.put_text(text, out);
            match brk {
                Some(b) => {
                    out.extend_from_slice(b"\r\n");
                    self.column = 0;
                    self.line_start = true;
                    self.after_cr = b == b'\r';
                    input = &input[text.len() + 1..];
                }
                None => input = &[],
            }
        }
        input.len()
    }

    fn leading_dot(&mut self) -> &'static [u8] {
        let dot: &'static [u8] = if self.dot_stuffing { b".." } else { b"." };
        self.column += dot.len();
        dot
    }

    /// Part of a line, folded where it would pass [`MAX_LINE`].
    fn put_text(&mut self, mut text: &[u8], out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        self.line_start = false;
        while self.column + text.len() > MAX_LINE {
            let room = MAX_LINE.saturating_sub(self.column);
            // A line already full folds before anything more of it.
            let cut = if room == 0 {
                0
            } else {
                char_boundary(text, room)
            };
            out.extend_from_slice(&text[..cut]);
            out.extend_from_slice(b"\r\n ");
            self.column = 1;
            text = &text[cut..];
        }
        out.extend_from_slice(text);
        self.column += text.len();
    }

    /// Append the end of data: a CRLF if the last line was unterminated, then `.CRLF`
    /// (only the CRLF for BDAT).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.dot_pending {
            // A lone `.` as the very last line is an end-of-input line too.
            self.dot_pending = false;
            self.ended = true;
        }
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        if self.dot_stuffing {
            out.extend_from_slice(b".\r\n");
        }
    }
}

/// Where to cut `text` at or before `room` octets: moved back off a UTF-8 continuation
/// byte (at most three), never to nothing when there is room for something.
fn char_boundary(text: &[u8], room: usize) -> usize {
    let mut cut = room.min(text.len());
    let floor = cut.saturating_sub(3).max(1);
    while cut > floor && text.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
        cut -= 1;
    }
    cut.max(1).min(text.len())
}

/// Encode a whole body in one call (for tests and small messages).
pub fn encode_all(input: &[u8], dot_ends_input: bool) -> Vec<u8> {
    let mut enc = BodyEncoder::new(dot_ends_input);
    let mut out = Vec::new();
    enc.encode(input, &mut out);
    enc.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(input: &[u8]) -> Vec<u8> {
        encode_all(input, false)
    }

    #[test]
    fn lines_past_998_octets_are_folded_with_crlf_and_a_space() {
        let long = vec![b'x'; 2500];
        let out = enc(&[&long[..], b"\nshort\n"].concat());
        let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
        assert!(
            lines.iter().all(|l| l.len() <= MAX_LINE + 1),
            "a line is too long"
        );
        assert_eq!(lines[0].len(), MAX_LINE + 1);
        assert_eq!(lines[1][0], b' ');
        assert_eq!(lines[1].len(), MAX_LINE + 1);
        assert_eq!(
            lines[2],
            &[
                &b" "[..],
                &vec![b'x'; 2500 - MAX_LINE - (MAX_LINE - 1)][..],
                b"\r"
            ]
            .concat()[..]
        );
        assert_eq!(lines[3], b"short\r");
        // The text is whole: take the folds out again.
        let unfolded: Vec<u8> = String::from_utf8(out.clone())
            .unwrap()
            .replace("\r\n ", "")
            .into_bytes();
        assert!(unfolded.starts_with(&long));
    }

    #[test]
    fn a_line_of_exactly_998_octets_is_not_folded() {
        let line = vec![b'y'; MAX_LINE];
        assert_eq!(enc(&line), [&line[..], b"\r\n.\r\n"].concat());
        // A stuffed dot counts: 998 on the wire, then the fold.
        let dotted = [&b"."[..], &vec![b'z'; MAX_LINE - 1][..]].concat();
        let out = enc(&dotted);
        assert!(
            out.starts_with(&[&b".."[..], &vec![b'z'; MAX_LINE - 2][..], b"\r\n z\r\n"].concat())
        );
    }

    #[test]
    fn a_line_that_is_full_when_more_comes_folds_before_it() {
        // 998 octets in one call, more of the same line in the next.
        let mut enc = BodyEncoder::new(false);
        let mut out = Vec::new();
        enc.encode(&vec![b'a'; MAX_LINE], &mut out);
        enc.encode(b"\x85\x85b\n", &mut out);
        enc.finish(&mut out);
        let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
        assert_eq!(lines[0].len(), MAX_LINE + 1);
        assert_eq!(lines[1], b" \x85\x85b\r");
    }

    #[test]
    fn a_fold_never_splits_a_utf8_character() {
        // 997 ASCII octets, then a three-octet character across the limit.
        let mut line = vec![b'a'; 997];
        line.extend_from_slice("€ rest".as_bytes());
        let out = enc(&line);
        let first = out.split(|&b| b == b'\n').next().unwrap();
        assert_eq!(first.len(), 997 + 1, "cut before the character");
        assert!(String::from_utf8(out).is_ok());
    }

    #[test]
    fn crlf_text_passes_through() {
        assert_eq!(enc(b"a\r\nb\r\n"), b"a\r\nb\r\n.\r\n");
    }

    #[test]
    fn bare_lf_and_bare_cr_become_crlf() {
        assert_eq!(enc(b"a\nb\rc\r\n"), b"a\r\nb\r\nc\r\n.\r\n");
        assert_eq!(enc(b"a\r\r\nb"), b"a\r\n\r\nb\r\n.\r\n");
        assert_eq!(enc(b"\n\n"), b"\r\n\r\n.\r\n");
    }

    #[test]
    fn leading_dots_are_doubled() {
        assert_eq!(enc(b".\n..x\n.y"), b"..\r\n...x\r\n..y\r\n.\r\n");
        assert_eq!(enc(b"a.b\n"), b"a.b\r\n.\r\n");
    }

    #[test]
    fn missing_final_newline_is_added() {
        assert_eq!(enc(b"abc"), b"abc\r\n.\r\n");
    }

    #[test]
    fn empty_body_is_just_the_terminator() {
        assert_eq!(enc(b""), b".\r\n");
    }

    #[test]
    fn smuggling_variants_cannot_end_data_early() {
        let input = b"a\n.\nb\r.\rc\r\n.\nd\n.\r\ne\r\n.\r\n";
        let out = enc(input);
        let text = String::from_utf8(out).unwrap();
        // Exactly one end-of-data sequence, at the very end.
        assert_eq!(text.matches("\r\n.\r\n").count(), 1);
        assert!(text.ends_with("\r\n.\r\n"));
        // Every CR is followed by LF and every LF preceded by CR.
        let b = text.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            if c == b'\r' {
                assert_eq!(b[i + 1], b'\n');
            }
            if c == b'\n' {
                assert_eq!(b[i - 1], b'\r');
            }
        }
    }

    #[test]
    fn lone_dot_ends_input_without_dash_i() {
        assert_eq!(encode_all(b"a\n.\nb\n", true), b"a\r\n.\r\n");
        assert_eq!(encode_all(b"a\r\n.\r\nb\n", true), b"a\r\n.\r\n");
        assert_eq!(encode_all(b"a\n.", true), b"a\r\n.\r\n");
        assert_eq!(encode_all(b"a\n.x\n", true), b"a\r\n..x\r\n.\r\n");
        assert_eq!(encode_all(b"a\n..\n", true), b"a\r\n...\r\n.\r\n");
    }

    #[test]
    fn with_dash_i_a_lone_dot_is_data() {
        assert_eq!(encode_all(b"a\n.\nb\n", false), b"a\r\n..\r\nb\r\n.\r\n");
    }

    #[test]
    fn bdat_encoding_normalises_lines_without_stuffing() {
        let mut e = BodyEncoder::for_bdat(false);
        let mut out = vec![];
        e.encode(b".a\n.\nb", &mut out);
        e.finish(&mut out);
        assert_eq!(out, b".a\r\n.\r\nb\r\n");
        let mut e = BodyEncoder::for_bdat(true);
        let mut out = vec![];
        e.encode(b"a\n.\nb", &mut out);
        e.finish(&mut out);
        assert_eq!(out, b"a\r\n");
    }

    #[test]
    fn nul_is_detected() {
        let mut e = BodyEncoder::new(false);
        e.encode(b"clean\n", &mut vec![]);
        assert!(!e.saw_nul());
        e.encode(b"a\0b\n", &mut vec![]);
        assert!(e.saw_nul());
    }

    #[test]
    fn eight_bit_is_detected() {
        let mut e = BodyEncoder::new(false);
        e.encode(b"plain\n", &mut vec![]);
        assert!(!e.saw_eight_bit());
        e.encode("caf\u{e9}\n".as_bytes(), &mut vec![]);
        assert!(e.saw_eight_bit());
    }

    #[test]
    fn every_split_gives_the_same_output() {
        let input: &[u8] = b".a\r\n.\r\n\r.\n.\r\rb\n\n.\r\nc..\r\n.";
        for dot_ends in [false, true] {
            let whole = encode_all(input, dot_ends);
            for i in 0..=input.len() {
                for j in i..=input.len() {
                    let mut e = BodyEncoder::new(dot_ends);
                    let mut out = vec![];
                    e.encode(&input[..i], &mut out);
                    e.encode(&input[i..j], &mut out);
                    e.encode(&input[j..], &mut out);
                    e.finish(&mut out);
                    assert_eq!(out, whole, "split {i},{j} dot_ends={dot_ends}");
                }
            }
        }
    }

    #[test]
    fn byte_by_byte_matches_whole() {
        let input: &[u8] = b"From: a\r\n\r\n.hidden\n\r\n.\r\n..\rend";
        let whole = enc(input);
        let mut e = BodyEncoder::new(false);
        let mut out = vec![];
        for b in input {
            e.encode(std::slice::from_ref(b), &mut out);
        }
        e.finish(&mut out);
        assert_eq!(out, whole);
    }
}
