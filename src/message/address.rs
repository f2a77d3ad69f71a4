//! Mailboxes: validation of the addresses put into `MAIL FROM` and `RCPT TO` (RFC 5321
//! §4.1.2, with UTF-8 per RFC 6531 §3.3), and parsing of address header fields (RFC 5322
//! §3.4) for `sendmail -t`, with RFC 2047 encoded words in display names.
//!
//! The two are kept apart on purpose: header parsing is lenient (obsolete syntax, comments,
//! groups) because people and programs write headers; the envelope check is strict because
//! whatever passes it goes onto the wire inside a command line.

use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 5321 §4.5.3.1.1.
const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2.
const MAX_DOMAIN: usize = 255;
/// RFC 5321 §4.5.3.1.3 limits a path to 256 octets *including* its angle brackets, which
/// leaves 254 for the address itself.
const MAX_ADDRESS: usize = 254;
/// RFC 1035 §2.3.4.
const MAX_LABEL: usize = 63;

/// Why an address cannot go into `MAIL FROM:<...>` or `RCPT TO:<...>`. Each message names
/// the address, escaped, so a stray control character is visible on stderr.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Nothing, or only `<>`; the null reverse-path is for senders only ([`is_null_sender`]).
    #[error("empty address")]
    Empty,
    /// CR, LF, NUL or any other control character: never valid, and CR/LF would end the
    /// SMTP command line early.
    #[error("address \"{}\" contains a control character", .0.escape_debug())]
    ControlCharacter(String),
    /// A `<` without its `>`, or the other way round.
    #[error("address \"{}\" has an unbalanced angle bracket", .0.escape_debug())]
    UnbalancedAngle(String),
    /// A character outside RFC 5321 `atext` in an unquoted local part (space, `<`, `,`, ...).
    #[error(
        "address \"{}\": {:?} is not allowed in an unquoted local part",
        .address.escape_debug(), .ch
    )]
    BadLocalPartCharacter { address: String, ch: char },
    /// A local part `"...` without its closing quote.
    #[error("address \"{}\" has an unterminated quoted local part", .0.escape_debug())]
    UnterminatedQuote(String),
    /// A quoted local part with a bad quoted-pair or followed by something other than `@`.
    #[error("address \"{}\" has a malformed quoted local part", .0.escape_debug())]
    BadQuotedLocalPart(String),
    /// No `@`: a bare local name such as `root`. Callers may qualify it with a domain.
    #[error("address \"{}\" has no domain", .0.escape_debug())]
    NoDomain(String),
    /// `@example.org`.
    #[error("address \"{}\" has an empty local part", .0.escape_debug())]
    EmptyLocalPart(String),
    /// A dot at the start or end of an unquoted local part, or two in a row (RFC 5321
    /// `Dot-string`).
    #[error("address \"{}\": misplaced dot in the local part", .0.escape_debug())]
    LocalPartDot(String),
    /// `user@`.
    #[error("address \"{}\" has an empty domain", .0.escape_debug())]
    EmptyDomain(String),
    /// More than 64 octets before the `@` (RFC 5321 §4.5.3.1.1).
    #[error("address \"{}\": local part longer than 64 octets", .0.escape_debug())]
    LocalPartTooLong(String),
    /// More than 255 octets after the `@` (RFC 5321 §4.5.3.1.2).
    #[error("address \"{}\": domain longer than 255 octets", .0.escape_debug())]
    DomainTooLong(String),
    /// More than 254 octets, so the path with its brackets exceeds 256 (RFC 5321 §4.5.3.1.3).
    #[error("address \"{}\" is longer than 254 octets", .0.escape_debug())]
    TooLong(String),
    /// A character other than letter, digit or hyphen in a domain label.
    #[error(
        "address \"{}\": {:?} is not allowed in a domain",
        .address.escape_debug(), .ch
    )]
    BadDomainCharacter { address: String, ch: char },
    /// `a@example..org`, `a@.example.org`, `a@example.org.`.
    #[error("address \"{}\" has an empty domain label", .0.escape_debug())]
    EmptyLabel(String),
    /// An ASCII label longer than 63 octets (RFC 1035 §2.3.4).
    #[error(
        "address \"{}\": domain label \"{}\" is longer than 63 octets",
        .address.escape_debug(), .label.escape_debug()
    )]
    LabelTooLong { address: String, label: String },
    /// A label starting or ending with `-` (RFC 5321 `sub-domain`).
    #[error(
        "address \"{}\": domain label \"{}\" starts or ends with a hyphen",
        .address.escape_debug(), .label.escape_debug()
    )]
    LabelHyphen { address: String, label: String },
    /// `[...]` that is neither an IPv4 address nor `IPv6:` and an IPv6 address (RFC 5321
    /// §4.1.3).
    #[error("address \"{}\" has an invalid address literal", .0.escape_debug())]
    BadAddressLiteral(String),
}

/// Where an address was given; it decides the exit status when it is refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// An argument or option (`-f`, a recipient): EX_USAGE.
    CommandLine,
    /// A header of the message on stdin: EX_DATAERR.
    Message,
}

impl AddressError {
    /// The library error for this refusal, by where the address came from.
    pub fn into_error(self, origin: Origin) -> crate::Error {
        match origin {
            Origin::CommandLine => crate::Error::Usage(self.to_string()),
            Origin::Message => crate::Error::Data(self.to_string()),
        }
    }
}

/// Whether `input` is the null reverse-path `<>` (or empty), which RFC 5321 §4.5.5 allows as
/// the sender of notifications and never as a recipient.
pub fn is_null_sender(input: &str) -> bool {
    let t = input.trim_matches([' ', '\t']);
    t.is_empty() || t == "<>"
}

/// Check one address for use inside `MAIL FROM:<...>` or `RCPT TO:<...>` and return it
/// without angle brackets or surrounding blanks.
///
/// The grammar is RFC 5321 §4.1.2 `Mailbox = Local-part "@" ( Domain / address-literal )`,
/// with RFC 6531 §3.3's UTF-8 in `atext`, `qtext` and domain labels. A quoted local part is
/// returned as written. The null sender is refused here ([`AddressError::Empty`]); test for
/// it first with [`is_null_sender`].
pub fn envelope_address(input: &str) -> Result<String, AddressError> {
    let trimmed = input.trim_matches([' ', '\t']);
    if trimmed.chars().any(char::is_control) {
        return Err(AddressError::ControlCharacter(input.to_string()));
    }
    let inner = match (trimmed.starts_with('<'), trimmed.ends_with('>')) {
        (true, true) if trimmed.len() >= 2 => &trimmed[1..trimmed.len() - 1],
        (false, false) => trimmed,
        _ => return Err(AddressError::UnbalancedAngle(trimmed.to_string())),
    };
    if inner.is_empty() {
        return Err(AddressError::Empty);
    }
    let at = local_part_end(inner)?;
    let domain = &inner[at + 1..];
    check_domain(inner, domain)?;
    if inner.len() > MAX_ADDRESS {
        return Err(AddressError::TooLong(inner.to_string()));
    }
    Ok(inner.to_string())
}

/// RFC 5321 §4.1.2 `atext` (from RFC 5322 §3.2.3), extended with UTF-8 by RFC 6531 §3.3.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
}

/// Validate the local part of `addr` and return the index of the `@` after it.
fn local_part_end(addr: &str) -> Result<usize, AddressError> {
    let err_addr = || addr.to_string();
    let end = if let Some(rest) = addr.strip_prefix('"') {
        // Quoted-string: qtextSMTP and quoted-pairSMTP (%d92 %d32-126).
        let mut chars = rest.char_indices();
        let close = loop {
            match chars.next() {
                None => return Err(AddressError::UnterminatedQuote(err_addr())),
                Some((_, '\\')) => match chars.next() {
                    Some((_, c)) if (' '..='~').contains(&c) => {}
                    Some(_) => return Err(AddressError::BadQuotedLocalPart(err_addr())),
                    None => return Err(AddressError::UnterminatedQuote(err_addr())),
                },
                Some((i, '"')) => break i + 1,
                Some(_) => {}
            }
        };
        let after = close + 1;
        match addr[after..].chars().next() {
            Some('@') | None => after,
            Some(_) => return Err(AddressError::BadQuotedLocalPart(err_addr())),
        }
    } else {
        let end = addr.find('@').unwrap_or(addr.len());
        let local = &addr[..end];
        if let Some(ch) = local.chars().find(|&c| c != '.' && !is_atext(c)) {
            return Err(AddressError::BadLocalPartCharacter {
                address: err_addr(),
                ch,
            });
        }
        if local.is_empty() {
            return Err(AddressError::EmptyLocalPart(err_addr()));
        }
        if local.split('.').any(str::is_empty) {
            return Err(AddressError::LocalPartDot(err_addr()));
        }
        end
    };
    if end > MAX_LOCAL_PART {
        return Err(AddressError::LocalPartTooLong(err_addr()));
    }
    if end == addr.len() {
        return Err(AddressError::NoDomain(err_addr()));
    }
    Ok(end)
}

fn check_domain(addr: &str, domain: &str) -> Result<(), AddressError> {
    if domain.is_empty() {
        return Err(AddressError::EmptyDomain(addr.to_string()));
    }
    if domain.len() > MAX_DOMAIN {
        return Err(AddressError::DomainTooLong(addr.to_string()));
    }
    if let Some(literal) = domain.strip_prefix('[') {
        // RFC 5321 §4.1.3. General-address-literal tags other than IPv6 are not registered.
        let ok = literal.strip_suffix(']').is_some_and(|inner| {
            match inner
                .get(..5)
                .filter(|tag| tag.eq_ignore_ascii_case("IPv6:"))
            {
                Some(_) => inner[5..].parse::<Ipv6Addr>().is_ok(),
                None => inner.parse::<Ipv4Addr>().is_ok(),
            }
        });
        return if ok {
            Ok(())
        } else {
            Err(AddressError::BadAddressLiteral(addr.to_string()))
        };
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(AddressError::EmptyLabel(addr.to_string()));
        }
        if let Some(ch) = label
            .chars()
            .find(|&c| c != '-' && !c.is_ascii_alphanumeric() && !is_utf8_label_char(c))
        {
            return Err(AddressError::BadDomainCharacter {
                address: addr.to_string(),
                ch,
            });
        }
        // The octet limit is for ASCII labels; a U-label's length is that of its A-label,
        // which only IDNA can tell, and the server checks it.
        if label.is_ascii() && label.len() > MAX_LABEL {
            return Err(AddressError::LabelTooLong {
                address: addr.to_string(),
                label: label.to_string(),
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(AddressError::LabelHyphen {
                address: addr.to_string(),
                label: label.to_string(),
            });
        }
    }
    Ok(())
}

fn is_utf8_label_char(c: char) -> bool {
    !c.is_ascii() && !c.is_control() && !c.is_whitespace()
}

/// One mailbox of an address header field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name, RFC 2047 encoded words decoded; for a bare `addr (Name)`, the
    /// comment, as old mailers wrote it.
    pub name: Option<String>,
    /// The addr-spec with comments and folding removed and obsolete spacing joined, not yet
    /// checked for SMTP: pass it to [`envelope_address`]. A bare word such as `root` is kept
    /// as it is, for the caller to qualify.
    pub address: String,
}

/// The mailboxes of an address field (groups flattened), and the entries that could not
/// be parsed, as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressList {
    pub mailboxes: Vec<Mailbox>,
    pub unparsable: Vec<String>,
}

/// Parse the value of an address header field (`To`, `Cc`, `From`, ...), RFC 5322 §3.4:
/// display names, angle addresses, bare addr-specs, comments, groups, and the obsolete
/// forms of §4.4 (empty list elements, routes, dots in phrases, CFWS around dots).
///
/// The value should be unfolded (line breaks removed); any CR or LF left counts as folding
/// white space. An entry that does not parse is listed in `unparsable` and skipped.
pub fn parse_address_list(value: &str) -> AddressList {
    let mut p = Parser::new(value);
    let mut out = AddressList::default();
    loop {
        while p.peek_special(',') {
            p.i += 1;
        }
        if p.i >= p.toks.len() {
            break;
        }
        let start = p.i;
        match p.address(true, &mut out.unparsable) {
            Some(found) if p.at_entry_end(false) => {
                // A quoted-pair can carry a control character into the address; such an
                // address is never usable, so it is reported, not returned.
                for m in found {
                    if m.address.chars().any(char::is_control) {
                        out.unparsable.push(m.address.escape_debug().to_string());
                    } else {
                        out.mailboxes.push(m);
                    }
                }
            }
            _ => {
                p.i = start;
                p.skip_entry(false);
                out.unparsable.push(p.text(start));
            }
        }
    }
    out
}

#[cfg(test)]
mod fuzz_regressions {
    use super::*;

    #[test]
    fn quoted_pair_control_characters_never_reach_an_address() {
        let list = parse_address_list("\"\0\\\n\\\"\n\\\\\\\"\n\n4\"");
        assert!(list.mailboxes.iter().all(|m| !m.address.contains('\n')));
        let list = parse_address_list("\"a\\\nb\"@example.org");
        assert!(list.mailboxes.is_empty());
        assert_eq!(list.unparsable.len(), 1);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// A run of `atext` (with UTF-8); dots are separate tokens.
    Atom,
    /// A quoted string; `text` holds its content with quoted-pairs resolved.
    Quoted,
    /// A domain literal; `text` holds it with brackets and without white space.
    Literal,
    Special(char),
    /// An unterminated quoted string, comment or domain literal: the rest of the value.
    Bad,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    text: String,
    start: usize,
    end: usize,
    /// White space or a comment comes before this token.
    spaced: bool,
}

/// Characters that end an atom (RFC 5322 §3.2.3 `specials`, plus `[`, `]` for literals).
fn is_special(c: char) -> bool {
    "()<>[]:;@\\,.\"".contains(c)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    /// Comments, each with the index of the token that follows it.
    comments: Vec<(usize, String)>,
    i: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        let mut toks = Vec::new();
        let mut comments = Vec::new();
        let mut chars = src.char_indices().peekable();
        let mut spaced = false;
        while let Some(&(start, c)) = chars.peek() {
            let (kind, text) = match c {
                c if c.is_whitespace() => {
                    chars.next();
                    spaced = true;
                    continue;
                }
                '(' => {
                    chars.next();
                    match read_comment(&mut chars) {
                        Some(text) => {
                            comments.push((toks.len(), text));
                            spaced = true;
                            continue;
                        }
                        None => (Kind::Bad, String::new()),
                    }
                }
                '"' => {
                    chars.next();
                    match read_quoted(&mut chars) {
                        Some(text) => (Kind::Quoted, text),
                        None => (Kind::Bad, String::new()),
                    }
                }
                '[' => {
                    chars.next();
                    let mut text = String::from("[");
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        match c {
                            ']' => {
                                closed = true;
                                break;
                            }
                            ' ' | '\t' | '\r' | '\n' => {}
                            c => text.push(c),
                        }
                    }
                    text.push(']');
                    if closed {
                        (Kind::Literal, text)
                    } else {
                        (Kind::Bad, String::new())
                    }
                }
                c if is_special(c) || c.is_control() => {
                    chars.next();
                    (Kind::Special(c), c.to_string())
                }
                _ => {
                    let mut text = String::new();
                    while let Some(&(_, c)) = chars.peek() {
                        if is_special(c) || c.is_control() || c.is_whitespace() {
                            break;
                        }
                        text.push(c);
                        chars.next();
                    }
                    (Kind::Atom, text)
                }
            };
            let end = chars.peek().map_or(src.len(), |&(i, _)| i);
            toks.push(Token {
                kind,
                text,
                start,
                end,
                spaced,
            });
            spaced = false;
        }
        Parser {
            src,
            toks,
            comments,
            i: 0,
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.i)
    }

    fn peek_special(&self, c: char) -> bool {
        self.peek().is_some_and(|t| t.kind == Kind::Special(c))
    }

    fn at_entry_end(&self, in_group: bool) -> bool {
        match self.peek() {
            None => true,
            Some(t) => t.kind == Kind::Special(',') || (in_group && t.kind == Kind::Special(';')),
        }
    }

    /// Skip to the end of a garbage entry, always moving forward.
    fn skip_entry(&mut self, in_group: bool) {
        let start = self.i;
        while !self.at_entry_end(in_group) {
            self.i += 1;
        }
        if self.i == start && self.i < self.toks.len() {
            self.i += 1;
        }
    }

    /// The source text of tokens `start..self.i`.
    fn text(&self, start: usize) -> String {
        match (
            self.toks.get(start),
            self.toks.get(self.i.saturating_sub(1)),
        ) {
            (Some(a), Some(b)) if b.end >= a.start => self.src[a.start..b.end].trim().to_string(),
            _ => String::new(),
        }
    }

    /// `address = mailbox / group`; `None` when the tokens from here are not one.
    fn address(&mut self, allow_group: bool, unparsable: &mut Vec<String>) -> Option<Vec<Mailbox>> {
        let start = self.i;
        let mut words = 0;
        while let Some(t) = self.peek() {
            match t.kind {
                Kind::Atom | Kind::Quoted => words += 1,
                // obs-phrase: "Joe Q. Public".
                Kind::Special('.') if words > 0 => {}
                _ => break,
            }
            self.i += 1;
        }
        if self.peek_special('<') {
            let name = self.phrase(start, self.i);
            self.i += 1;
            let address = self.angle_addr()?;
            return Some(vec![Mailbox { name, address }]);
        }
        if allow_group && words > 0 && self.peek_special(':') {
            self.i += 1;
            return Some(self.group(unparsable));
        }
        self.i = start;
        let address = self.addr_spec()?;
        let name = self
            .comments
            .iter()
            .find(|(at, _)| *at == self.i)
            .map(|(_, c)| decode_encoded_words(c.trim()))
            .filter(|c| !c.is_empty());
        Some(vec![Mailbox { name, address }])
    }

    /// The members of a group, after its `:`, through its `;` (tolerated when missing).
    fn group(&mut self, unparsable: &mut Vec<String>) -> Vec<Mailbox> {
        let mut members = Vec::new();
        loop {
            while self.peek_special(',') {
                self.i += 1;
            }
            if self.peek().is_none() {
                break;
            }
            if self.peek_special(';') {
                self.i += 1;
                break;
            }
            let start = self.i;
            match self.address(false, unparsable) {
                Some(found) if self.at_entry_end(true) => members.extend(found),
                _ => {
                    self.i = start;
                    self.skip_entry(true);
                    unparsable.push(self.text(start));
                }
            }
        }
        members
    }

    /// After `<`: `[obs-route] addr-spec ">"`.
    fn angle_addr(&mut self) -> Option<String> {
        if self.peek_special('@') {
            // obs-route (RFC 5322 §4.4): "@a,@b:" is ignored.
            while !self.peek_special(':') {
                let t = self.peek()?;
                if t.kind == Kind::Special('>') {
                    return None;
                }
                self.i += 1;
            }
            self.i += 1;
        }
        let address = self.addr_spec()?;
        if !self.peek_special('>') {
            return None;
        }
        self.i += 1;
        Some(address)
    }

    /// `local-part ["@" domain]`; without a domain the bare local part is returned.
    fn addr_spec(&mut self) -> Option<String> {
        let mut parts: Vec<&str> = Vec::new();
        let mut quoted = false;
        loop {
            let t = self.peek()?;
            match t.kind {
                Kind::Atom => {}
                Kind::Quoted => quoted = true,
                _ => return None,
            }
            parts.push(&self.toks[self.i].text);
            self.i += 1;
            if !self.peek_special('.') {
                break;
            }
            self.i += 1;
        }
        let joined = parts.join(".");
        let local = if !quoted || is_dot_atom(&joined) {
            joined
        } else {
            quote(&joined)
        };
        if !self.peek_special('@') {
            return Some(local);
        }
        self.i += 1;
        let t = self.peek()?;
        if t.kind == Kind::Literal {
            let literal = t.text.clone();
            self.i += 1;
            return Some(format!("{local}@{literal}"));
        }
        let mut labels: Vec<&str> = Vec::new();
        loop {
            let t = self.peek()?;
            if t.kind != Kind::Atom {
                return None;
            }
            labels.push(&self.toks[self.i].text);
            self.i += 1;
            if !self.peek_special('.') {
                break;
            }
            self.i += 1;
        }
        Some(format!("{local}@{}", labels.join(".")))
    }

    /// The display name from tokens `start..end`: words as written, separated by one space,
    /// then encoded words decoded. `None` when empty.
    fn phrase(&self, start: usize, end: usize) -> Option<String> {
        let mut raw = String::new();
        for t in &self.toks[start..end] {
            if t.spaced && !raw.is_empty() {
                raw.push(' ');
            }
            raw.push_str(&t.text);
        }
        let name = decode_encoded_words(&raw);
        if name.is_empty() { None } else { Some(name) }
    }
}

/// The content of a comment after its `(`, nested comments kept with their parentheses.
/// `None` when it is not closed.
fn read_comment(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> Option<String> {
    let mut depth = 1;
    let mut text = String::new();
    while let Some((_, c)) = chars.next() {
        match c {
            '\\' => text.push(chars.next()?.1),
            '(' => {
                depth += 1;
                text.push(c);
            }
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(text);
                }
                text.push(c);
            }
            '\r' | '\n' => {}
            c => text.push(c),
        }
    }
    None
}

/// The content of a quoted string after its `"`, quoted-pairs resolved and folding removed.
fn read_quoted(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> Option<String> {
    let mut text = String::new();
    while let Some((_, c)) = chars.next() {
        match c {
            '\\' => text.push(chars.next()?.1),
            '"' => return Some(text),
            '\r' | '\n' => {}
            c => text.push(c),
        }
    }
    None
}

fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|a| !a.is_empty() && a.chars().all(is_atext))
}

/// A quoted local part as RFC 5321 §4.1.2 writes it: `"` and `\` escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Decode RFC 2047 encoded words in `text` (a display name or comment). White space between
/// two encoded words is dropped (RFC 2047 §6.2); a word that is not a well-formed encoded
/// word in a known charset is kept as written.
pub fn decode_encoded_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = "";
    let mut last_encoded = false;
    let mut rest = text;
    while !rest.is_empty() {
        let ws = rest.len() - rest.trim_start().len();
        let (space, after) = rest.split_at(ws);
        let word_len = after.find(char::is_whitespace).unwrap_or(after.len());
        let (word, tail) = after.split_at(word_len);
        rest = tail;
        if word.is_empty() {
            pending_space = space;
            continue;
        }
        match decode_word_run(word) {
            Some(decoded) => {
                if !last_encoded {
                    out.push_str(space);
                }
                out.push_str(&decoded);
                last_encoded = true;
            }
            None => {
                out.push_str(space);
                out.push_str(word);
                last_encoded = false;
            }
        }
        pending_space = "";
    }
    out.push_str(pending_space);
    out
}

/// One or more encoded words written together without space (a common mistake).
fn decode_word_run(run: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = run;
    while !rest.is_empty() {
        let body = rest.strip_prefix("=?")?;
        // charset ? encoding ? text ?=  — the text cannot contain '?'.
        let q1 = body.find('?')?;
        let q2 = q1 + 1 + body[q1 + 1..].find('?')?;
        let q3 = q2 + 1 + body[q2 + 1..].find("?=")?;
        out.push_str(&decode_word(
            &body[..q1],
            &body[q1 + 1..q2],
            &body[q2 + 1..q3],
        )?);
        rest = &body[q3 + 2..];
    }
    Some(out)
}

fn decode_word(charset: &str, encoding: &str, text: &str) -> Option<String> {
    // RFC 2231 §5: "charset*language".
    let charset = charset.split('*').next()?.to_ascii_lowercase();
    let bytes = match encoding {
        "B" | "b" => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
                .decode(text)
                .ok()?
        }
        "Q" | "q" => decode_q(text)?,
        _ => return None,
    };
    match charset.as_str() {
        "utf-8" | "utf8" => Some(String::from_utf8_lossy(&bytes).into_owned()),
        "us-ascii" | "ascii" | "iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" | "l1" => {
            Some(bytes.iter().map(|&b| char::from(b)).collect())
        }
        "windows-1252" | "cp1252" => Some(bytes.iter().map(|&b| cp1252(b)).collect()),
        _ => None,
    }
}

/// RFC 2047 §4.2: `_` is a space, `=XX` an octet.
fn decode_q(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'_' => out.push(b' '),
            b'=' => {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            b => out.push(b),
        }
    }
    Some(out)
}

/// windows-1252, which differs from ISO-8859-1 in 0x80..=0x9F.
fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9f => HIGH[usize::from(b - 0x80)],
        b => char::from(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        envelope_address(input).unwrap_or_else(|e| panic!("{input:?}: {e}"))
    }

    fn err(input: &str) -> AddressError {
        envelope_address(input).expect_err(input)
    }

    fn mb(name: Option<&str>, address: &str) -> Mailbox {
        Mailbox {
            name: name.map(str::to_string),
            address: address.to_string(),
        }
    }

    fn list(value: &str) -> Vec<Mailbox> {
        let parsed = parse_address_list(value);
        assert!(
            parsed.unparsable.is_empty(),
            "{value:?}: {:?}",
            parsed.unparsable
        );
        parsed.mailboxes
    }

    #[test]
    fn plain_and_bracketed_addresses_are_canonical() {
        assert_eq!(ok("jdoe@example.org"), "jdoe@example.org");
        assert_eq!(ok("<jdoe@example.org>"), "jdoe@example.org");
        assert_eq!(ok("  <jdoe@example.org>\t"), "jdoe@example.org");
        assert_eq!(ok("john.q.public@example.com"), "john.q.public@example.com");
        assert_eq!(
            ok("!#$%&'*+-/=?^_`{|}~@example.org"),
            "!#$%&'*+-/=?^_`{|}~@example.org"
        );
    }

    #[test]
    fn rfc6531_utf8_addresses_are_accepted() {
        assert_eq!(ok("用户@例子.广告"), "用户@例子.广告");
        assert_eq!(ok("jörg@bücher.example"), "jörg@bücher.example");
    }

    #[test]
    fn quoted_local_parts_follow_rfc5321_quoted_pairs() {
        assert_eq!(
            ok("\"john smith\"@example.org"),
            "\"john smith\"@example.org"
        );
        assert_eq!(ok("\"a\\\"b\"@example.org"), "\"a\\\"b\"@example.org");
        assert_eq!(ok("\"<a,b>\"@example.org"), "\"<a,b>\"@example.org");
        assert_eq!(ok("\"\"@example.org"), "\"\"@example.org");
        assert!(matches!(
            err("\"john@example.org"),
            AddressError::UnterminatedQuote(_)
        ));
        assert!(matches!(
            err("\"a\"b@example.org"),
            AddressError::BadQuotedLocalPart(_)
        ));
        assert!(matches!(
            err("\"a\\é\"@example.org"),
            AddressError::BadQuotedLocalPart(_)
        ));
        assert!(matches!(err("\"john smith\""), AddressError::NoDomain(_)));
    }

    #[test]
    fn control_characters_are_refused_anywhere() {
        for bad in [
            "a@b.example\r\nRCPT TO:<evil@x.example>",
            "a@b.example\n",
            "a\0@b.example",
            "\"a\rb\"@b.example",
            "a@b\u{7f}.example",
            "a@b\u{85}.example",
            "a\t@b.example",
        ] {
            let e = err(bad);
            assert!(
                matches!(e, AddressError::ControlCharacter(_)),
                "{bad:?}: {e:?}"
            );
        }
        let shown = err("a@b\r\n").to_string();
        assert!(shown.contains("\\r\\n"), "{shown}");
    }

    #[test]
    fn specials_outside_quotes_are_refused() {
        for (bad, ch) in [
            ("john smith@example.org", ' '),
            ("a<b@example.org", '<'),
            ("a>b@example.org", '>'),
            ("a(b)@example.org", '('),
            ("a,b@example.org", ','),
            ("a;b@example.org", ';'),
            ("a:b@example.org", ':'),
            ("a\\b@example.org", '\\'),
            ("a\"b@example.org", '"'),
            ("@a,@b:c@example.org", ','),
        ] {
            match err(bad) {
                AddressError::BadLocalPartCharacter { ch: found, .. } => assert_eq!(found, ch),
                AddressError::EmptyLocalPart(_) if bad.starts_with('@') => {}
                e => panic!("{bad:?}: {e:?}"),
            }
        }
        assert!(matches!(
            err("<a@b.example"),
            AddressError::UnbalancedAngle(_)
        ));
        assert!(matches!(
            err("a@b.example>"),
            AddressError::UnbalancedAngle(_)
        ));
        assert!(matches!(
            err("<<a@b.example>>"),
            AddressError::BadLocalPartCharacter { ch: '<', .. }
        ));
    }

    #[test]
    fn bare_local_name_is_no_domain() {
        assert_eq!(err("root"), AddressError::NoDomain("root".into()));
        assert_eq!(err("<root>"), AddressError::NoDomain("root".into()));
        assert!(matches!(
            err("ro ot"),
            AddressError::BadLocalPartCharacter { .. }
        ));
    }

    #[test]
    fn empty_parts_are_refused() {
        assert_eq!(err(""), AddressError::Empty);
        assert_eq!(err("<>"), AddressError::Empty);
        assert!(matches!(
            err("@example.org"),
            AddressError::EmptyLocalPart(_)
        ));
        assert!(matches!(err("user@"), AddressError::EmptyDomain(_)));
        assert!(matches!(
            err(".a@example.org"),
            AddressError::LocalPartDot(_)
        ));
        assert!(matches!(
            err("a.@example.org"),
            AddressError::LocalPartDot(_)
        ));
        assert!(matches!(
            err("a..b@example.org"),
            AddressError::LocalPartDot(_)
        ));
    }

    #[test]
    fn null_sender_is_recognised() {
        assert!(is_null_sender(""));
        assert!(is_null_sender("<>"));
        assert!(is_null_sender(" <> "));
        assert!(!is_null_sender("<a@b.example>"));
        assert!(!is_null_sender("<"));
    }

    #[test]
    fn rfc5321_length_limits_hold() {
        let local64 = "a".repeat(64);
        assert_eq!(
            ok(&format!("{local64}@example.org")),
            format!("{local64}@example.org")
        );
        assert!(matches!(
            err(&format!("{}@example.org", "a".repeat(65))),
            AddressError::LocalPartTooLong(_)
        ));
        assert!(matches!(
            err(&"a".repeat(65)),
            AddressError::LocalPartTooLong(_)
        ));

        let label63 = "b".repeat(63);
        assert!(envelope_address(&format!("a@{label63}.example")).is_ok());
        assert!(matches!(
            err(&format!("a@{}.example", "b".repeat(64))),
            AddressError::LabelTooLong { .. }
        ));

        // 4 labels of 63 + 3 dots = 255 octets: a legal domain, but with any local part the
        // path is over 256 octets.
        let domain255 = [label63.as_str(); 4].join(".");
        assert_eq!(domain255.len(), 255);
        assert!(matches!(
            err(&format!("a@{domain255}")),
            AddressError::TooLong(_)
        ));
        assert!(matches!(
            err(&format!("a@{domain255}x")),
            AddressError::DomainTooLong(_)
        ));

        let domain = format!("{}.{}.{}.{}", label63, label63, label63, "c".repeat(50));
        let at_limit = format!("{}@{}", "a".repeat(254 - 1 - domain.len()), domain);
        assert_eq!(at_limit.len(), 254);
        assert!(envelope_address(&at_limit).is_ok());
        assert!(matches!(
            err(&format!("a{at_limit}")),
            AddressError::TooLong(_)
        ));
    }

    #[test]
    fn domain_labels_are_checked() {
        assert!(matches!(err("a@example..org"), AddressError::EmptyLabel(_)));
        assert!(matches!(err("a@.example.org"), AddressError::EmptyLabel(_)));
        assert!(matches!(err("a@example.org."), AddressError::EmptyLabel(_)));
        assert!(matches!(
            err("a@-example.org"),
            AddressError::LabelHyphen { .. }
        ));
        assert!(matches!(
            err("a@example-.org"),
            AddressError::LabelHyphen { .. }
        ));
        assert!(matches!(
            err("a@ex_ample.org"),
            AddressError::BadDomainCharacter { ch: '_', .. }
        ));
        assert!(matches!(
            err("a@b@example.org"),
            AddressError::BadDomainCharacter { ch: '@', .. }
        ));
        assert!(matches!(
            err("a@exa mple.org"),
            AddressError::BadDomainCharacter { ch: ' ', .. }
        ));
        assert_eq!(ok("a@xn--bcher-kva.example"), "a@xn--bcher-kva.example");
        assert_eq!(ok("a@localhost"), "a@localhost");
    }

    #[test]
    fn address_literals_use_std_parsers() {
        assert_eq!(ok("postmaster@[192.0.2.1]"), "postmaster@[192.0.2.1]");
        assert_eq!(
            ok("postmaster@[IPv6:2001:db8::1]"),
            "postmaster@[IPv6:2001:db8::1]"
        );
        assert_eq!(ok("postmaster@[ipv6:::1]"), "postmaster@[ipv6:::1]");
        for bad in [
            "a@[192.0.2.256]",
            "a@[192.0.2]",
            "a@[2001:db8::1]",
            "a@[IPv6:192.0.2.1x]",
            "a@[192.0.2.1",
            "a@[]",
            "a@[x-tag:whatever]",
        ] {
            assert!(
                matches!(err(bad), AddressError::BadAddressLiteral(_)),
                "{bad}"
            );
        }
    }

    #[test]
    fn errors_map_to_usage_or_data_by_origin() {
        let e = err("a b@c.example");
        assert!(matches!(
            e.clone().into_error(Origin::CommandLine),
            crate::Error::Usage(_)
        ));
        assert!(matches!(
            e.into_error(Origin::Message),
            crate::Error::Data(_)
        ));
    }

    // RFC 5322 Appendix A.1.1.
    #[test]
    fn appendix_a_1_1_addressing() {
        assert_eq!(
            list("John Doe <jdoe@machine.example>"),
            vec![mb(Some("John Doe"), "jdoe@machine.example")]
        );
        assert_eq!(
            list("Mary Smith <mary@example.net>"),
            vec![mb(Some("Mary Smith"), "mary@example.net")]
        );
    }

    // RFC 5322 Appendix A.1.2.
    #[test]
    fn appendix_a_1_2_different_types_of_mailboxes() {
        assert_eq!(
            list("\"Joe Q. Public\" <john.q.public@example.com>"),
            vec![mb(Some("Joe Q. Public"), "john.q.public@example.com")]
        );
        assert_eq!(
            list("Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>"),
            vec![
                mb(Some("Mary Smith"), "mary@x.test"),
                mb(None, "jdoe@example.org"),
                mb(Some("Who?"), "one@y.test"),
            ]
        );
        assert_eq!(
            list("<boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>"),
            vec![
                mb(None, "boss@nil.test"),
                mb(Some("Giant; \"Big\" Box"), "sysservices@example.net"),
            ]
        );
    }

    // RFC 5322 Appendix A.1.3.
    #[test]
    fn appendix_a_1_3_group_addresses() {
        assert_eq!(
            list("A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;"),
            vec![
                mb(Some("Ed Jones"), "c@a.test"),
                mb(None, "joe@where.test"),
                mb(Some("John"), "jdoe@one.test"),
            ]
        );
        assert_eq!(list("Undisclosed recipients:;"), vec![]);
        assert_eq!(list("undisclosed-recipients:;"), vec![]);
        assert_eq!(list("undisclosed-recipients:"), vec![]);
        assert_eq!(
            list("team: a@x.example, b@y.example;, c@z.example"),
            vec![
                mb(None, "a@x.example"),
                mb(None, "b@y.example"),
                mb(None, "c@z.example"),
            ]
        );
    }

    // RFC 5322 Appendix A.5.
    #[test]
    fn appendix_a_5_white_space_comments_and_other_oddities() {
        assert_eq!(
            list("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>"),
            vec![mb(Some("Pete"), "pete@silly.test")]
        );
        assert_eq!(
            list(
                "A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)"
            ),
            vec![
                mb(Some("Chris Jones"), "c@public.example"),
                mb(None, "joe@example.org"),
                mb(Some("John"), "jdoe@one.test"),
            ]
        );
        assert_eq!(
            list("(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;"),
            vec![]
        );
    }

    // RFC 5322 Appendix A.6.1 and A.6.3.
    #[test]
    fn appendix_a_6_obsolete_forms() {
        assert_eq!(
            list("Joe Q. Public <john.q.public@example.com>"),
            vec![mb(Some("Joe Q. Public"), "john.q.public@example.com")]
        );
        assert_eq!(
            list("Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example"),
            vec![
                mb(Some("Mary Smith"), "mary@example.net"),
                mb(None, "jdoe@test.example"),
            ]
        );
        assert_eq!(
            list("John Doe <jdoe@machine(comment).  example>"),
            vec![mb(Some("John Doe"), "jdoe@machine.example")]
        );
        assert_eq!(
            list(" Mary Smith\r\n  \r\n          <mary@example.net>"),
            vec![mb(Some("Mary Smith"), "mary@example.net")]
        );
        assert_eq!(
            list("<@a.example,@b.example:c@d.example>"),
            vec![mb(None, "c@d.example")]
        );
    }

    #[test]
    fn old_style_comment_names_and_bare_local_names() {
        assert_eq!(
            list("jdoe@example.org (John Doe)"),
            vec![mb(Some("John Doe"), "jdoe@example.org")]
        );
        assert_eq!(list("root"), vec![mb(None, "root")]);
        assert_eq!(
            list("root, admin@example.org"),
            vec![mb(None, "root"), mb(None, "admin@example.org")]
        );
    }

    #[test]
    fn quoted_local_parts_come_out_canonical() {
        assert_eq!(
            list("\"john smith\"@example.org"),
            vec![mb(None, "\"john smith\"@example.org")]
        );
        assert_eq!(
            list("\"john\"@example.org"),
            vec![mb(None, "john@example.org")]
        );
        assert_eq!(
            list("\"john\".smith@example.org"),
            vec![mb(None, "john.smith@example.org")]
        );
        assert_eq!(
            list("\"a\\\"b\"@example.org"),
            vec![mb(None, "\"a\\\"b\"@example.org")]
        );
        assert_eq!(list("x@[ 192.0.2.1 ]"), vec![mb(None, "x@[192.0.2.1]")]);
    }

    #[test]
    fn garbage_entries_are_reported_and_skipped() {
        let parsed = parse_address_list("a@b.example, John Smith, <c@d.example, e@f.example");
        assert_eq!(
            parsed.mailboxes,
            vec![mb(None, "a@b.example"), mb(None, "e@f.example")]
        );
        assert_eq!(parsed.unparsable, vec!["John Smith", "<c@d.example"]);

        let parsed = parse_address_list("x@y.example z@w.example, ok@k.example");
        assert_eq!(parsed.mailboxes, vec![mb(None, "ok@k.example")]);
        assert_eq!(parsed.unparsable, vec!["x@y.example z@w.example"]);

        let parsed = parse_address_list("team: a@x.example, @@, b@y.example;");
        assert_eq!(
            parsed.mailboxes,
            vec![mb(None, "a@x.example"), mb(None, "b@y.example")]
        );
        assert_eq!(parsed.unparsable, vec!["@@"]);

        let parsed = parse_address_list("\"unterminated <a@b.example>");
        assert!(parsed.mailboxes.is_empty());
        assert_eq!(parsed.unparsable.len(), 1);

        let parsed = parse_address_list("(unterminated comment a@b.example");
        assert!(parsed.mailboxes.is_empty());
        assert_eq!(parsed.unparsable.len(), 1);

        assert_eq!(parse_address_list(""), AddressList::default());
        assert_eq!(parse_address_list(" , ,, "), AddressList::default());
    }

    #[test]
    fn no_input_makes_the_parser_panic_or_loop() {
        let pieces = [
            "a", "@", "<", ">", ",", ";", ":", "\"", "(", ")", "[", "]", "\\", ".", " ", "\u{a0}",
            "\u{0}", "=?", "?=", "é",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let _ = parse_address_list(&format!("{a}{b}{c}"));
                    let _ = envelope_address(&format!("{a}{b}{c}"));
                }
            }
        }
    }

    // RFC 2047 §8.
    #[test]
    fn rfc2047_examples_decode() {
        assert_eq!(
            list("=?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>"),
            vec![mb(Some("Keith Moore"), "moore@cs.utk.edu")]
        );
        assert_eq!(
            list("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>"),
            vec![mb(Some("Keld Jørn Simonsen"), "keld@dkuug.dk")]
        );
        assert_eq!(
            list("=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>"),
            vec![mb(Some("André Pirard"), "PIRARD@vm1.ulg.ac.be")]
        );
        assert_eq!(
            decode_encoded_words("=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?="),
            "If you can read this yo"
        );
        assert_eq!(
            decode_encoded_words("=?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?="),
            "=?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=",
            "an unknown charset stays as written"
        );
        assert_eq!(decode_encoded_words("=?ISO-8859-1?Q?a?="), "a");
        assert_eq!(decode_encoded_words("=?ISO-8859-1?Q?a?= b"), "a b");
        assert_eq!(
            decode_encoded_words("=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?="),
            "ab"
        );
        assert_eq!(
            decode_encoded_words("=?ISO-8859-1?Q?a?=  \r\n    =?ISO-8859-1?Q?b?="),
            "ab"
        );
        assert_eq!(decode_encoded_words("=?ISO-8859-1?Q?a_b?="), "a b");
    }

    #[test]
    fn utf8_and_sloppy_encoded_words_decode() {
        assert_eq!(
            list("=?utf-8?B?SsO2cmcgTcO8bGxlcg==?= <j@example.org>"),
            vec![mb(Some("Jörg Müller"), "j@example.org")]
        );
        assert_eq!(
            list("=?UTF-8?q?J.=C3=B6rg?= <j@example.org>"),
            vec![mb(Some("J.örg"), "j@example.org")]
        );
        assert_eq!(
            list("\"=?utf-8?Q?Andr=C3=A9?=\" <a@example.org>"),
            vec![mb(Some("André"), "a@example.org")]
        );
        assert_eq!(
            list("=?utf-8?Q?a?==?utf-8?Q?b?= <a@example.org>"),
            vec![mb(Some("ab"), "a@example.org")]
        );
        assert_eq!(decode_encoded_words("=?utf-8*en?Q?hi?="), "hi");
        assert_eq!(decode_encoded_words("=?windows-1252?Q?=80?="), "€");
        assert_eq!(decode_encoded_words("=?utf-8?B?!!!?="), "=?utf-8?B?!!!?=");
        assert_eq!(decode_encoded_words("=?utf-8?Q?=ZZ?="), "=?utf-8?Q?=ZZ?=");
        assert_eq!(decode_encoded_words("=?utf-8?X?abc?="), "=?utf-8?X?abc?=");
        assert_eq!(decode_encoded_words("=?utf-8?Q?=FF?="), "\u{fffd}");
    }
}
