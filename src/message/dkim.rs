//! DKIM signing (RFC 6376) with `rsa-sha256` and `ed25519-sha256` (RFC 8463), with
//! relaxed/relaxed canonicalization.
//!
//! What is signed is what goes on the wire. The message is read through the DATA body
//! encoder's normalisation ([`BodyEncoder::for_bdat`]): every bare LF or CR becomes CRLF, a
//! missing final line break is added, and with `dot_ends_input` (sendmail without `-i`) a
//! lone `.` line ends the message. Dot-stuffing is transport encoding that the receiver
//! undoes (RFC 5321 §4.5.2), so it is not part of what is signed.
//!
//! Memory: the header section is held, at most 1 MiB of it (as [`super::prepare`] allows;
//! a larger one is refused), and only until the body starts. The body is canonicalized and
//! hashed as it streams past in fixed blocks, so a 1 GiB message costs what a small one
//! costs: the input block, its encoded copy and the hash buffer, a few hundred KiB.
//!
//! Use: [`Signer::load`] once per configuration (it checks the key file's mode and owner),
//! then for each message feed exactly the bytes the body encoder will get, before sending
//! them: [`Signer::sign`] over a spooled or seekable copy, or [`Signer::start`], then
//! [`Signing::update`] with [`super::Prepared::head`] and the rest of the input, then
//! [`Signing::finish`]. Send the returned field first, then the message as usual. Signing
//! needs the whole body before the first byte goes out, so the message must be read twice.
//!
//! Not done: `simple` canonicalization; the `l=` body length (RFC 6376 §8.2 advises
//! against it); `x=`, `i=`, `z=`; `rsa-sha1` (RFC 8301 forbids signing with it);
//! verification.

use std::fmt;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use memchr::memmem;
use pki_types::PrivateKeyDer;
use pki_types::pem::PemObject;
use ring::digest;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};

use super::scan::MAX_HEADER_SECTION;
use crate::smtp::BodyEncoder;
use crate::system::private::{Ownership, check_private, open_failure};
use crate::{Error, Result};

/// The header fields signed unless configured otherwise: those a reader sees and those
/// that say how to read the body. Each is signed as many times as it is present; `From` is
/// listed once more, so that a `From` added on the way breaks the signature (RFC 6376
/// §8.15).
pub const DEFAULT_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "In-Reply-To",
    "References",
];

/// How much of the input [`Signer::sign`] reads at a time, and the most [`Signing::update`]
/// encodes in one piece: the encoded copy of a block is at most twice as large.
const BLOCK: usize = 64 * 1024;

/// The canonicalizer hands out short pieces (a word, a space); they are gathered into
/// blocks this large before they reach SHA-256.
const HASH_BUFFER: usize = 16 * 1024;

/// A PEM private key of 8192-bit RSA is under 7 KiB; anything far larger is not a key.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// Folded lines of the `DKIM-Signature` field stay within this many characters (RFC 5322
/// §2.1.1 recommends 78).
const LINE: usize = 78;

/// What the configuration says about signing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignerConfig {
    /// A PEM private key: PKCS#8 (RSA or Ed25519) or PKCS#1 (`RSA PRIVATE KEY`). It must be
    /// private to this user, like a file that holds a password.
    pub key: PathBuf,
    /// `s=`: where the public key is published, `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// `d=`; the domain of the `From` address when `None`.
    pub domain: Option<String>,
    /// The header fields to sign; [`DEFAULT_HEADERS`] when `None`. `From` must be among
    /// them (RFC 6376 §5.4).
    pub headers: Option<Vec<String>>,
}

/// A loaded key with what to sign and under which name. Load it once and sign any number
/// of messages with it.
pub struct Signer {
    key: Key,
    selector: String,
    domain: Option<String>,
    /// Lowercase, each once, `from` among them.
    headers: Vec<String>,
}

enum Key {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("algorithm", &self.algorithm())
            .field("selector", &self.selector)
            .field("domain", &self.domain)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Read the key and check the names.
    ///
    /// Errors: [`Error::Config`] (exit 78) for a key file that group or others may read or
    /// write, or that belongs to someone other than this user or root, that is not a
    /// regular file, does not exist or holds no usable RSA or Ed25519 key, and for a
    /// selector, domain or header name that cannot be used; [`Error::TempFail`] when this
    /// user may not read the file (as for the configuration file).
    pub fn load(config: &SignerConfig) -> Result<Signer> {
        let pem = read_key_file(&config.key)?;
        let key = parse_key(&pem, &config.key)?;
        Signer::new(key, config)
    }

    fn new(key: Key, config: &SignerConfig) -> Result<Signer> {
        if !is_domain_name(&config.selector) {
            return Err(Error::Config(format!(
                "dkim_selector \"{}\" is not a selector: dot-separated labels of letters, \
                 digits and hyphens (RFC 6376 §3.1)",
                config.selector.escape_debug()
            )));
        }
        if let Some(domain) = &config.domain
            && !is_domain_name(domain)
        {
            return Err(Error::Config(format!(
                "dkim_domain \"{}\" is not a domain name in ASCII (RFC 6376 §3.5; write an \
                 internationalized name in its xn-- form)",
                domain.escape_debug()
            )));
        }
        let mut headers: Vec<String> = Vec::new();
        let names: Vec<&str> = match &config.headers {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => DEFAULT_HEADERS.to_vec(),
        };
        for name in names {
            if name.is_empty() || !name.bytes().all(is_ftext) {
                return Err(Error::Config(format!(
                    "dkim headers: \"{}\" is not a header field name",
                    name.escape_debug()
                )));
            }
            let name = name.to_ascii_lowercase();
            if !headers.contains(&name) {
                headers.push(name);
            }
        }
        if !headers.iter().any(|h| h == "from") {
            return Err(Error::Config(
                "dkim headers must include From, which DKIM always signs (RFC 6376 §5.4)".into(),
            ));
        }
        Ok(Signer {
            key,
            selector: config.selector.clone(),
            domain: config.domain.clone(),
            headers,
        })
    }

    /// `a=`: `rsa-sha256` or `ed25519-sha256`.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Key::Rsa(_) => "rsa-sha256",
            Key::Ed25519(_) => "ed25519-sha256",
        }
    }

    /// The TXT record to publish at `<selector>._domainkey.<domain>`: `v=DKIM1; k=rsa;
    /// p=...` with the SubjectPublicKeyInfo that verifiers expect (RFC 6376 §3.6.1), or
    /// `k=ed25519` with the raw 32-octet key (RFC 8463 §4.2).
    pub fn dns_record(&self) -> String {
        let (k, p) = match &self.key {
            Key::Rsa(key) => ("rsa", BASE64.encode(rsa_spki(key.public().as_ref()))),
            Key::Ed25519(key) => ("ed25519", BASE64.encode(key.public_key().as_ref())),
        };
        format!("v=DKIM1; k={k}; p={p}")
    }

    /// The selector, as configured.
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// `d=`, when configured; otherwise each message is signed for its `From` domain.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The `d=` a message whose start (as read, with any line ends) is `head` is signed
    /// for: the configured domain, else the domain of its `From`. For saying what a send
    /// does (`-v`, `--dry-run`) without signing.
    ///
    /// Errors: as [`Signer::sign`] for the header section.
    pub fn domain_for(&self, head: &[u8]) -> Result<String> {
        if let Some(domain) = &self.domain {
            return Ok(domain.clone());
        }
        let mut encoder = BodyEncoder::for_bdat(false);
        let mut wire = Vec::new();
        encoder.encode(head, &mut wire);
        encoder.finish(&mut wire);
        let end = memchr::memmem::find(&wire, b"\r\n\r\n").map_or(wire.len(), |i| i + 2);
        let fields = fields(&wire[..end])?;
        match fields
            .iter()
            .find(|f| field_name(f).eq_ignore_ascii_case(b"from"))
        {
            Some(from) => from_domain(from),
            None => Err(Error::Data(
                "the message has no From field, which DKIM must sign (RFC 6376 §5.4)".into(),
            )),
        }
    }

    /// Sign the message `message` holds, reading it to its end (or to the lone `.` line
    /// that ends it when `dot_ends_input`) in fixed blocks. Returns the `DKIM-Signature`
    /// field, folded, ending in CRLF, to send before the message.
    ///
    /// Errors: [`Error::Data`] for a message that cannot be signed (a NUL byte, a header
    /// section over 1 MiB or with a line that is not a header field, no `From`, or a
    /// `From` without a usable domain when none is configured); [`Error::Io`] when reading
    /// fails.
    pub fn sign(&self, message: &mut dyn Read, dot_ends_input: bool) -> Result<String> {
        let mut signing = self.start(dot_ends_input);
        let mut block = vec![0u8; BLOCK];
        while !signing.input_ended() {
            let n = match message.read(&mut block) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("reading the message", e)),
            };
            signing.update(&block[..n])?;
        }
        signing.finish()
    }

    /// Start signing a message that the caller feeds in pieces ([`Signing::update`]), for
    /// a caller that holds the start of the message in memory and reads the rest.
    pub fn start(&self, dot_ends_input: bool) -> Signing<'_> {
        Signing {
            signer: self,
            encoder: BodyEncoder::for_bdat(dot_ends_input),
            wire: Vec::new(),
            state: State::Head {
                buf: Vec::new(),
                line: 0,
            },
        }
    }

    /// The `DKIM-Signature` field for a message whose header section is `head` and whose
    /// canonical body hashes to `bh`, signed at `t` (RFC 6376 §3.7, §5).
    fn seal(&self, head: Head, bh: &[u8], t: u64) -> Result<String> {
        let domain = self.domain.as_deref().unwrap_or(&head.domain);
        let mut field = Folder::new("DKIM-Signature:");
        field.word("v=1;");
        field.word(&format!("a={};", self.algorithm()));
        field.word("c=relaxed/relaxed;");
        field.word(&format!("d={domain};"));
        field.word(&format!("s={};", self.selector));
        field.word(&format!("t={t};"));
        let last = head.h.len().saturating_sub(1);
        for (i, name) in head.h.iter().enumerate() {
            let end = if i == last { ";" } else { ":" };
            if i == 0 {
                field.word(&format!("h={name}{end}"));
            } else {
                // FWS may follow the colon (RFC 6376 §3.5, sig-h-tag).
                field.piece(&format!("{name}{end}"));
            }
        }
        field.word(&format!("bh={};", BASE64.encode(bh)));
        field.word("b=");

        // The field signs itself with an empty b= value and no final CRLF (§3.7).
        let mut data = head.canon;
        relaxed_header(field.text.as_bytes(), &mut data);
        data.truncate(data.len() - 2);
        let signature = match &self.key {
            Key::Rsa(key) => {
                let mut sig = vec![0u8; key.public().modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), &data, &mut sig)
                    .map_err(|_| Error::Internal("RSA signing failed".into()))?;
                sig
            }
            // PureEdDSA over the SHA-256 of the data (RFC 8463 §3).
            Key::Ed25519(key) => key
                .sign(digest::digest(&digest::SHA256, &data).as_ref())
                .as_ref()
                .to_vec(),
        };
        let encoded = BASE64.encode(signature);
        let mut b = encoded.as_str();
        while !b.is_empty() {
            if field.col >= LINE {
                field.fold();
            }
            let (piece, rest) = b.split_at((LINE - field.col).min(b.len()));
            field.piece(piece);
            b = rest;
        }
        field.text.push_str("\r\n");
        Ok(field.text)
    }
}

/// A message being signed: feed it with [`Self::update`], then [`Self::finish`].
pub struct Signing<'a> {
    signer: &'a Signer,
    encoder: BodyEncoder,
    /// The last piece in wire form; its capacity is reused.
    wire: Vec<u8>,
    state: State,
}

enum State {
    /// In the header section: its bytes so far, in wire form, and how many of them belong
    /// to the line not yet ended.
    Head { buf: Vec<u8>, line: usize },
    /// In the body: the header section's part of the signature is ready.
    Body(Box<BodyState>),
}

struct BodyState {
    head: Head,
    canon: RelaxedBody,
    hash: Hasher,
}

impl Signing<'_> {
    /// Take the next piece of the message, as the caller would hand it to the transport.
    ///
    /// Errors: [`Error::Data`] for a NUL byte, a header section over 1 MiB or one that
    /// cannot be signed (see [`Signer::sign`]).
    pub fn update(&mut self, input: &[u8]) -> Result<()> {
        for piece in input.chunks(BLOCK) {
            if self.encoder.input_ended() {
                break;
            }
            self.wire.clear();
            self.encoder.encode(piece, &mut self.wire);
            if self.encoder.saw_nul() {
                return Err(Error::Data(
                    "the message contains a NUL byte, which RFC 5322 §3.5 does not allow".into(),
                ));
            }
            absorb(self.signer, &mut self.state, &self.wire)?;
        }
        Ok(())
    }

    /// Whether a lone `.` line ended the message (only with `dot_ends_input`): the caller
    /// may stop reading, what follows is not sent.
    pub fn input_ended(&self) -> bool {
        self.encoder.input_ended()
    }

    /// The `DKIM-Signature` field, folded and ending in CRLF, signed now (`t=`).
    pub fn finish(self) -> Result<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.finish_at(now)
    }

    fn finish_at(mut self, t: u64) -> Result<String> {
        self.wire.clear();
        self.encoder.finish(&mut self.wire);
        absorb(self.signer, &mut self.state, &self.wire)?;
        match self.state {
            // The message ended inside its header section: no body (RFC 6376 §3.4.4: the
            // canonical empty body is the empty string).
            State::Head { buf, .. } => {
                let head = parse_head(self.signer, &buf)?;
                let bh = digest::digest(&digest::SHA256, b"");
                self.signer.seal(head, bh.as_ref(), t)
            }
            State::Body(body) => {
                let BodyState {
                    head,
                    canon,
                    mut hash,
                } = *body;
                canon.finish(&mut hash);
                let bh = hash.finish();
                self.signer.seal(head, bh.as_ref(), t)
            }
        }
    }
}

/// Take `wire` (message bytes in wire form) into the header section or the body hash.
fn absorb(signer: &Signer, state: &mut State, wire: &[u8]) -> Result<()> {
    let body = match state {
        State::Body(body) => {
            body.canon.update(wire, &mut body.hash);
            return Ok(());
        }
        State::Head { buf, line } => {
            let mut rest = wire;
            loop {
                let Some(lf) = memchr::memchr(b'\n', rest) else {
                    header_room(buf, rest.len())?;
                    buf.extend_from_slice(rest);
                    *line += rest.len();
                    return Ok(());
                };
                // In wire form every line ends CRLF: a line of two octets is empty, and
                // ends the header section (RFC 5322 §2.1).
                if *line + lf + 1 == 2 {
                    buf.truncate(buf.len() - *line);
                    break &rest[lf + 1..];
                }
                header_room(buf, lf + 1)?;
                buf.extend_from_slice(&rest[..=lf]);
                *line = 0;
                rest = &rest[lf + 1..];
            }
        }
    };
    let State::Head { buf, .. } = state else {
        return Ok(());
    };
    let head = parse_head(signer, buf)?;
    let mut canon = RelaxedBody::default();
    let mut hash = Hasher::new();
    canon.update(body, &mut hash);
    *state = State::Body(Box::new(BodyState { head, canon, hash }));
    Ok(())
}

fn header_room(buf: &[u8], more: usize) -> Result<()> {
    if buf.len() + more > MAX_HEADER_SECTION {
        return Err(Error::Data("header section larger than 1 MiB".into()));
    }
    Ok(())
}

/// The header section's share of the signature.
struct Head {
    /// The signed fields, relaxed-canonicalized, in `h=` order (RFC 6376 §3.7).
    canon: Vec<u8>,
    /// The `h=` list.
    h: Vec<String>,
    /// The domain of the (first) `From` address, for `d=` when none is configured.
    domain: String,
}

/// Split the header section (wire form, whole lines) into fields and pick those to sign.
fn parse_head(signer: &Signer, buf: &[u8]) -> Result<Head> {
    let fields = fields(buf)?;
    let named = |name: &str| -> Vec<&[u8]> {
        fields
            .iter()
            .filter(|f| field_name(f).eq_ignore_ascii_case(name.as_bytes()))
            .copied()
            .collect()
    };
    let from = named("from");
    let Some(first_from) = from.first() else {
        return Err(Error::Data(
            "the message has no From field, which DKIM must sign (RFC 6376 §5.4)".into(),
        ));
    };
    let domain = match signer.domain {
        Some(_) => String::new(),
        None => from_domain(first_from)?,
    };
    let mut canon = Vec::new();
    let mut h = Vec::new();
    for name in &signer.headers {
        let present = named(name);
        let listed = present.len() + usize::from(name == "from");
        // A name listed n times signs its instances from the bottom up (RFC 6376 §5.4.2);
        // a listing past the last instance signs that there is no other.
        for k in 0..listed {
            h.push(name.clone());
            if let Some(field) = present.len().checked_sub(k + 1).map(|i| present[i]) {
                relaxed_header(field, &mut canon);
            }
        }
    }
    Ok(Head { canon, h, domain })
}

/// The fields of a header section in wire form, each without its final CRLF.
fn fields(buf: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let end = memchr::memmem::find(&buf[at..], b"\r\n").map_or(buf.len(), |i| at + i);
        let line = &buf[at..end];
        match line.first() {
            Some(b' ' | b'\t') => match out.last_mut() {
                Some(field) => field.1 = end,
                None => {
                    return Err(Error::Data(
                        "the header section starts with a continuation line".into(),
                    ));
                }
            },
            _ => {
                let colon = memchr::memchr(b':', line).unwrap_or(line.len());
                let name = trim_wsp_end(&line[..colon]);
                if colon == line.len() || name.is_empty() || !name.iter().all(|&b| is_ftext(b)) {
                    let shown = String::from_utf8_lossy(&line[..line.len().min(60)]);
                    return Err(Error::Data(format!(
                        "cannot sign: \"{}\" in the header section is not a header field",
                        shown.escape_debug()
                    )));
                }
                out.push((at, end));
            }
        }
        at = end + 2;
    }
    Ok(out.into_iter().map(|(s, e)| &buf[s..e]).collect())
}

/// A field's name, without white space before the colon (the obsolete form of RFC 5322
/// §4.5).
fn field_name(field: &[u8]) -> &[u8] {
    let colon = memchr::memchr(b':', field).unwrap_or(field.len());
    trim_wsp_end(&field[..colon])
}

fn trim_wsp_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 5322 §3.6.8 `ftext`: printable US-ASCII except the colon.
fn is_ftext(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b':'
}

/// The domain of the first address in a `From` field.
fn from_domain(field: &[u8]) -> Result<String> {
    let colon = memchr::memchr(b':', field).map_or(field.len(), |c| c + 1);
    let value: Vec<u8> = field[colon..]
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    let list = crate::message::address::parse_address_list(&super::header_text(value));
    let Some(first) = list.mailboxes.first() else {
        return Err(Error::Data(
            "From: no address to take the DKIM domain from; set dkim_domain".into(),
        ));
    };
    let Some((_, domain)) = first.address.rsplit_once('@') else {
        return Err(Error::Data(format!(
            "From: \"{}\" has no domain to sign for; set dkim_domain",
            first.address.escape_debug()
        )));
    };
    if !is_domain_name(domain) {
        return Err(Error::Data(format!(
            "From: \"{}\" cannot be a DKIM domain (RFC 6376 §3.5 wants an ASCII domain name); \
             set dkim_domain",
            domain.escape_debug()
        )));
    }
    Ok(domain.to_ascii_lowercase())
}

/// Dot-separated labels of letters, digits and inner hyphens (RFC 5321 §4.1.2 `Domain`,
/// which RFC 6376 §3.1 and §3.5 use for `s=` and `d=`).
fn is_domain_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Relaxed header canonicalization (RFC 6376 §3.4.2) of one field, appended to `out`: the
/// name in lowercase, no white space around the colon, the value unfolded with each run of
/// white space made one space and none at its ends, then CRLF.
fn relaxed_header(field: &[u8], out: &mut Vec<u8>) {
    let colon = memchr::memchr(b':', field).unwrap_or(field.len());
    out.extend(
        trim_wsp_end(&field[..colon])
            .iter()
            .map(u8::to_ascii_lowercase),
    );
    out.push(b':');
    let mut space = false;
    let mut started = false;
    for &b in field.get(colon + 1..).unwrap_or_default() {
        match b {
            // Unfolding: a line break inside a field is always followed by white space.
            b'\r' | b'\n' => {}
            b' ' | b'\t' => space = true,
            _ => {
                if space && started {
                    out.push(b' ');
                }
                space = false;
                started = true;
                out.push(b);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Where canonical body text goes.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// SHA-256 fed in blocks: the canonicalizer's pieces are words, and each call into the
/// digest has a cost.
struct Hasher {
    ctx: digest::Context,
    buf: Vec<u8>,
}

impl Hasher {
    fn new() -> Hasher {
        Hasher {
            ctx: digest::Context::new(&digest::SHA256),
            buf: Vec::with_capacity(HASH_BUFFER),
        }
    }

    fn finish(mut self) -> digest::Digest {
        self.ctx.update(&self.buf);
        self.ctx.finish()
    }
}

impl Sink for Hasher {
    fn put(&mut self, bytes: &[u8]) {
        if self.buf.len() + bytes.len() > HASH_BUFFER {
            self.ctx.update(&self.buf);
            self.buf.clear();
            if bytes.len() >= HASH_BUFFER {
                self.ctx.update(bytes);
                return;
            }
        }
        self.buf.extend_from_slice(bytes);
    }
}

/// Relaxed body canonicalization (RFC 6376 §3.4.4) over input that arrives in pieces split
/// anywhere: white space at the end of a line goes, each other run of it becomes one
/// space, and empty lines at the end of the body go. Lines end CRLF; a CR or LF alone is
/// text, as in wire form there is none. A last line without CRLF gets one, and a body of
/// nothing but empty lines is the empty string.
#[derive(Debug, Default)]
struct RelaxedBody {
    /// White space seen on this line and not yet written: written as one space if text
    /// follows on the line.
    wsp: bool,
    /// This line has text.
    text: bool,
    /// The last octet was a CR, the end of a line if an LF follows.
    cr: bool,
    /// Empty lines held back: written when text follows, dropped at the end of the body.
    empty_lines: u64,
}

/// Finds a run of two or more spaces: in text, the only spaces canonicalization changes
/// (besides those at the ends of lines).
static DOUBLE_SPACE: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"  "));

impl RelaxedBody {
    fn update(&mut self, input: &[u8], out: &mut impl Sink) {
        let mut rest = input;
        if self.cr && !rest.is_empty() {
            self.cr = false;
            if rest[0] == b'\n' {
                self.end_line(out);
                rest = &rest[1..];
            } else {
                self.text(b"\r", out);
            }
        }
        while !rest.is_empty() {
            let end = memchr::memchr2(b'\t', b'\r', rest).unwrap_or(rest.len());
            self.spaced(&rest[..end], out);
            rest = &rest[end..];
            match rest {
                [] => {}
                [b'\t', ..] => {
                    self.wsp = true;
                    rest = &rest[1..];
                }
                [b'\r', b'\n', ..] => {
                    self.end_line(out);
                    rest = &rest[2..];
                }
                [b'\r'] => {
                    self.cr = true;
                    rest = &[];
                }
                _ => {
                    self.text(b"\r", out);
                    rest = &rest[1..];
                }
            }
        }
    }

    /// Text with neither TAB nor CR in it: each run of spaces is held as white space, and
    /// what lies between such runs (single spaces included) is written as it is.
    fn spaced(&mut self, mut s: &[u8], out: &mut impl Sink) {
        loop {
            let lead = s.iter().take_while(|&&b| b == b' ').count();
            if lead > 0 {
                self.wsp = true;
                s = &s[lead..];
            }
            if s.is_empty() {
                return;
            }
            let end = DOUBLE_SPACE.find(s).unwrap_or(s.len());
            // Before a double space there is text; a single space can only end `s` itself.
            let piece = s[..end].strip_suffix(b" ").unwrap_or(&s[..end]);
            self.text(piece, out);
            s = &s[piece.len()..];
        }
    }

    fn text(&mut self, bytes: &[u8], out: &mut impl Sink) {
        while self.empty_lines > 0 {
            out.put(b"\r\n");
            self.empty_lines -= 1;
        }
        if self.wsp {
            out.put(b" ");
            self.wsp = false;
        }
        out.put(bytes);
        self.text = true;
    }

    fn end_line(&mut self, out: &mut impl Sink) {
        if self.text {
            out.put(b"\r\n");
        } else {
            self.empty_lines += 1;
        }
        self.text = false;
        self.wsp = false;
    }

    fn finish(mut self, out: &mut impl Sink) {
        if self.cr {
            self.cr = false;
            self.text(b"\r", out);
        }
        if self.text {
            out.put(b"\r\n");
        }
    }
}

/// Builds a folded header field: words separated by a space, or by a line break and a
/// space where the line would grow past [`LINE`].
struct Folder {
    text: String,
    /// Characters on the current line.
    col: usize,
}

impl Folder {
    fn new(start: &str) -> Folder {
        Folder {
            text: start.to_string(),
            col: start.len(),
        }
    }

    fn fold(&mut self) {
        self.text.push_str("\r\n ");
        self.col = 1;
    }

    fn word(&mut self, word: &str) {
        if self.col + 1 + word.len() > LINE {
            self.fold();
        } else {
            self.text.push(' ');
            self.col += 1;
        }
        self.text.push_str(word);
        self.col += word.len();
    }

    /// Append with no space before, folding first where the line would grow too long;
    /// only where folding white space is allowed.
    fn piece(&mut self, piece: &str) {
        if self.col + piece.len() > LINE {
            self.fold();
        }
        self.text.push_str(piece);
        self.col += piece.len();
    }
}

fn read_key_file(path: &Path) -> Result<Vec<u8>> {
    let mut file = File::open(path).map_err(|e| open_failure(path, &e))?;
    let meta = file.metadata().map_err(|e| open_failure(path, &e))?;
    if !meta.is_file() {
        return Err(Error::Config(format!(
            "{}: dkim_key is not a regular file",
            path.display()
        )));
    }
    check_private(path, "holds a DKIM private key", Ownership::of(&meta))?;
    let mut pem = Vec::new();
    file.by_ref()
        .take(MAX_KEY_FILE + 1)
        .read_to_end(&mut pem)
        .map_err(|e| open_failure(path, &e))?;
    if pem.len() as u64 > MAX_KEY_FILE {
        return Err(Error::Config(format!(
            "{}: dkim_key is larger than 64 KiB, too large for a private key",
            path.display()
        )));
    }
    Ok(pem)
}

fn parse_key(pem: &[u8], path: &Path) -> Result<Key> {
    let shown = path.display();
    let bad = |what: String| Error::Config(format!("{shown}: {what}"));
    if memmem::find(pem, b"-----BEGIN ENCRYPTED PRIVATE KEY-----").is_some() {
        return Err(bad(
            "an encrypted key, which smtpsend cannot open without a passphrase; keep it \
             unencrypted with mode 0600 (openssl pkey -in KEY -out dkim.pem)"
                .into(),
        ));
    }
    let der =
        PrivateKeyDer::from_pem_slice(pem).map_err(|e| bad(format!("no PEM private key ({e})")))?;
    let rsa_rejected = |e: ring::error::KeyRejected| {
        bad(format!(
            "the RSA key is not usable ({e}); DKIM keys here are RSA of 2048 to 8192 bits \
             (RFC 8301) or Ed25519"
        ))
    };
    match der {
        PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der())
            .map(Key::Rsa)
            .map_err(rsa_rejected),
        PrivateKeyDer::Pkcs8(k) => {
            let der = k.secret_pkcs8_der();
            match RsaKeyPair::from_pkcs8(der) {
                Ok(key) => Ok(Key::Rsa(key)),
                Err(e) if e.to_string() != "WrongAlgorithm" => Err(rsa_rejected(e)),
                // openssl writes Ed25519 keys as PKCS#8 v1, without the public key.
                Err(_) => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map(Key::Ed25519)
                    .map_err(|e| {
                        bad(format!(
                            "neither an RSA nor an Ed25519 key ({e}); DKIM signs with those \
                             (RFC 6376, RFC 8463)"
                        ))
                    }),
            }
        }
        _ => Err(bad(
            "an EC key; DKIM signs with RSA or Ed25519 keys (RFC 6376, RFC 8463)".into(),
        )),
    }
}

/// Wrap a DER `RSAPublicKey` in a SubjectPublicKeyInfo (RFC 5280 §4.1), which is what
/// `p=` holds in practice and what verifiers parse (RFC 6376 §3.6.1, erratum 3017).
fn rsa_spki(rsa_public_key: &[u8]) -> Vec<u8> {
    // SEQUENCE { OID 1.2.840.113549.1.1.1 rsaEncryption, NULL }
    const ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0u8];
    bits.extend_from_slice(rsa_public_key);
    let mut inner = ALGORITHM.to_vec();
    der_push(&mut inner, 0x03, &bits);
    let mut out = Vec::new();
    der_push(&mut out, 0x30, &inner);
    out
}

fn der_push(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{self as sig, UnparsedPublicKey};

    fn body(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut canon = RelaxedBody::default();
        canon.update(input, &mut out);
        canon.finish(&mut out);
        out
    }

    fn header(field: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        relaxed_header(field, &mut out);
        out
    }

    fn s(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// RFC 6376 §3.4.4 applied line by line to a whole body, as the text reads: the
    /// reference the streaming canonicalizer is held to.
    fn reference_body(input: &[u8]) -> Vec<u8> {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let (line, next) = match memchr::memmem::find(rest, b"\r\n") {
                Some(i) => (&rest[..i], &rest[i + 2..]),
                None => (rest, &rest[rest.len()..]),
            };
            let mut out = Vec::new();
            let mut wsp = false;
            for &b in line {
                if b == b' ' || b == b'\t' {
                    wsp = true;
                } else {
                    if wsp {
                        out.push(b' ');
                    }
                    wsp = false;
                    out.push(b);
                }
            }
            lines.push(out);
            rest = next;
        }
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
            .iter()
            .flat_map(|l| l.iter().copied().chain(*b"\r\n"))
            .collect()
    }

    #[test]
    fn rfc6376_3_4_5_relaxed_header_example() {
        let section = b"A: X\r\nB : Y\t\r\n\tZ  \r\n";
        let fields = fields(section).unwrap();
        assert_eq!(fields.len(), 2);
        assert_eq!(s(&header(fields[0])), "a:X\r\n");
        assert_eq!(s(&header(fields[1])), "b:Y Z\r\n");
    }

    #[test]
    fn rfc6376_3_4_5_relaxed_body_example() {
        assert_eq!(s(&body(b" C \r\nD \t E\r\n\r\n\r\n")), " C\r\nD E\r\n",);
    }

    #[test]
    fn relaxed_header_lowercases_the_name_and_trims_around_the_colon() {
        assert_eq!(
            s(&header(b"SubJect :  a \t b  \r\n\t c  ")),
            "subject:a b c\r\n"
        );
        assert_eq!(s(&header(b"X-Empty:")), "x-empty:\r\n");
        assert_eq!(s(&header(b"X-Blank:   \r\n  ")), "x-blank:\r\n");
        assert_eq!(
            s(&header("Subject: Grüße\t aus Köln".as_bytes())),
            "subject:Grüße aus Köln\r\n"
        );
    }

    #[test]
    fn relaxed_body_edges() {
        // The empty body, and one of empty or blank lines only, is the empty string.
        assert_eq!(s(&body(b"")), "");
        assert_eq!(s(&body(b"\r\n")), "");
        assert_eq!(s(&body(b"\r\n\r\n\r\n")), "");
        assert_eq!(s(&body(b"  \r\n\t\r\n \t \r\n")), "");
        // A last line without its CRLF gets one.
        assert_eq!(s(&body(b"no break")), "no break\r\n");
        assert_eq!(s(&body(b"no break  \t")), "no break\r\n");
        // Empty lines before text stay; leading white space becomes one space.
        assert_eq!(s(&body(b"\r\n\r\n  a\r\n")), "\r\n\r\n a\r\n");
        assert_eq!(s(&body(b"a\r\n \r\n\r\nb\r\n\r\n")), "a\r\n\r\n\r\nb\r\n");
        // A CR or LF alone is text (wire form has none, so this only pins the choice).
        assert_eq!(s(&body(b"a\rb\r\n")), "a\rb\r\n");
        assert_eq!(s(&body(b"a\nb\r\n")), "a\nb\r\n");
        assert_eq!(s(&body(b"a\r")), "a\r\r\n");
        // 8-bit octets are text like any other.
        assert_eq!(body(b"caf\xe9 \xff\r\n"), b"caf\xe9 \xff\r\n");
    }

    #[test]
    fn relaxed_body_keeps_a_long_line_whole() {
        let mut line = b"x".repeat(200_000);
        line.extend_from_slice(b"   \r\n");
        let mut expected = b"x".repeat(200_000);
        expected.extend_from_slice(b"\r\n");
        assert_eq!(body(&line), expected);
    }

    #[test]
    fn relaxed_body_is_the_same_for_every_split() {
        let input: &[u8] =
            b" a  b\t\r\n\r\n \r\nc \t d\r\r\n  \r\ne\rf \r\n\r\n\t\r\n g h \r\n\r\n  ";
        let whole = body(input);
        assert_eq!(whole, reference_body(input));
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let mut out = Vec::new();
                let mut canon = RelaxedBody::default();
                canon.update(&input[..i], &mut out);
                canon.update(&input[i..j], &mut out);
                canon.update(&input[j..], &mut out);
                canon.finish(&mut out);
                assert_eq!(s(&out), s(&whole), "split at {i} and {j}");
            }
        }
    }

    #[test]
    fn relaxed_body_matches_the_reference_byte_by_byte() {
        let input: &[u8] = b"Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n\
            \t \r\n  two  spaces  \r\nend   \r\n \r\n\r\n";
        let mut out = Vec::new();
        let mut canon = RelaxedBody::default();
        for b in input {
            canon.update(std::slice::from_ref(b), &mut out);
        }
        canon.finish(&mut out);
        assert_eq!(s(&out), s(&reference_body(input)));
    }

    #[test]
    fn hasher_gives_the_digest_of_everything_put() {
        let mut h = Hasher::new();
        let mut all = Vec::new();
        for n in [1usize, 7, HASH_BUFFER - 3, 5, HASH_BUFFER * 3, 0, 2] {
            let piece: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            h.put(&piece);
            all.extend_from_slice(&piece);
        }
        assert_eq!(
            h.finish().as_ref(),
            digest::digest(&digest::SHA256, &all).as_ref()
        );
    }

    // RFC 8463 Appendix A: its keys, its message and the two signatures it publishes.
    // RSASSA-PKCS1-v1_5 and Ed25519 are deterministic, so the same data under the same key
    // gives the same bytes.

    const RFC8463_SEED: &str = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
    const RFC8463_ED25519_PUBLIC: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    const RFC8463_RSA_PUBLIC: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3\
        idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6l\
        HvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB";
    const RFC8463_RSA_PRIVATE: &str = "-----BEGIN RSA PRIVATE KEY-----
MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi
Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM
KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB
AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm
6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe
zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy
6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc
uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy
WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd
WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a
licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst
o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe
uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL
-----END RSA PRIVATE KEY-----
";
    const RFC8463_MESSAGE: &str = "\
DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r
 d=football.example.com; i=@football.example.com;\r
 q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r
 subject : date : message-id : from : subject : date;\r
 bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r
 b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r
 Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r
 d=football.example.com; i=@football.example.com;\r
 q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r
 date : message-id : from : subject : date;\r
 bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r
 b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r
 DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r
 dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r
From: Joe SixPack <joe@football.example.com>\r
To: Suzie Q <suzie@shopping.example.net>\r
Subject: Is dinner ready?\r
Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r
Message-ID: <20030712040037.46341.5F8J@football.example.com>\r
\r
Hi.\r
\r
We lost the game.  Are you hungry yet?\r
\r
Joe.\r
";

    /// The RFC 8463 message's header fields, its body, and the data its signature number
    /// `index` signs (RFC 6376 §3.7): the fields h= names, then the signature field itself
    /// with b= empty and no final CRLF.
    fn rfc8463_signed_data(index: usize) -> (Vec<u8>, Vec<u8>) {
        let split = RFC8463_MESSAGE.find("\r\n\r\n").unwrap() + 2;
        let (section, body_text) = RFC8463_MESSAGE.split_at(split);
        let fields = fields(section.as_bytes()).unwrap();
        let mut data = Vec::new();
        // h=from:to:subject:date:message-id:from:subject:date; the second from, subject
        // and date name instances the message does not have, which sign nothing.
        for name in ["from", "to", "subject", "date", "message-id"] {
            let f = fields
                .iter()
                .find(|f| field_name(f).eq_ignore_ascii_case(name.as_bytes()))
                .unwrap();
            relaxed_header(f, &mut data);
        }
        let field = s(fields[index]);
        let (unsigned, b) = field.split_at(field.find(" b=").unwrap() + 3);
        relaxed_header(unsigned.as_bytes(), &mut data);
        data.truncate(data.len() - 2);
        let b: String = b.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let _ = body_text;
        (data, BASE64.decode(b).unwrap())
    }

    #[test]
    fn rfc8463_body_hash() {
        let at = RFC8463_MESSAGE.find("\r\n\r\n").unwrap() + 4;
        let mut hash = Hasher::new();
        let mut canon = RelaxedBody::default();
        canon.update(&RFC8463_MESSAGE.as_bytes()[at..], &mut hash);
        canon.finish(&mut hash);
        assert_eq!(
            BASE64.encode(hash.finish()),
            "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="
        );
    }

    #[test]
    fn rfc8463_ed25519_signature_is_reproduced_byte_for_byte() {
        let (data, published) = rfc8463_signed_data(0);
        let seed = BASE64.decode(RFC8463_SEED).unwrap();
        let key = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        assert_eq!(
            BASE64.encode(key.public_key().as_ref()),
            RFC8463_ED25519_PUBLIC
        );
        // Ed25519 over the SHA-256 of the data (RFC 8463 §3), as `seal` does.
        let ours = key.sign(digest::digest(&digest::SHA256, &data).as_ref());
        assert_eq!(BASE64.encode(ours.as_ref()), BASE64.encode(&published));
    }

    #[test]
    fn rfc8463_rsa_signature_verifies_over_our_canonical_data() {
        let (data, published) = rfc8463_signed_data(1);
        let spki = BASE64.decode(RFC8463_RSA_PUBLIC).unwrap();
        // A 1024-bit SubjectPublicKeyInfo: 22 octets of wrapping, then the RSAPublicKey.
        let rsa_public_key = &spki[22..];
        assert_eq!(rsa_spki(rsa_public_key), spki, "our SPKI wrapping");
        UnparsedPublicKey::new(
            &sig::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            rsa_public_key,
        )
        .verify(&data, &published)
        .expect("RFC 8463's RSA signature verifies over the data we canonicalized");
    }

    fn config(headers: Option<&[&str]>, domain: Option<&str>) -> SignerConfig {
        SignerConfig {
            key: PathBuf::from("/nonexistent"),
            selector: "sel".into(),
            domain: domain.map(str::to_string),
            headers: headers.map(|h| h.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn ed25519_signer(headers: Option<&[&str]>, domain: Option<&str>) -> Signer {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Signer::new(Key::Ed25519(key), &config(headers, domain)).unwrap()
    }

    fn sign_at(signer: &Signer, message: &[u8], dot_ends_input: bool) -> Result<String> {
        let mut signing = signer.start(dot_ends_input);
        signing.update(message)?;
        signing.finish_at(1_700_000_000)
    }

    /// A tag's value in a `DKIM-Signature` field, folding white space removed.
    fn tag(field: &str, name: &str) -> String {
        let (_, value) = field.split_once(':').unwrap();
        let prefix = format!("{name}=");
        value
            .replace("\r\n", "")
            .split(';')
            .find_map(|t| t.trim().strip_prefix(&prefix).map(str::to_string))
            .unwrap_or_else(|| panic!("no {name}= in {field}"))
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect()
    }

    const PLAIN: &[u8] = b"From: Joe <joe@Example.ORG>\r\nTo: sue@example.net\r\n\
        Subject: hi\r\n\r\nHello,\r\n\r\nbye.\r\n";

    #[test]
    fn the_field_is_folded_and_names_what_it_signs() {
        let signer = ed25519_signer(None, None);
        let field = sign_at(&signer, PLAIN, false).unwrap();
        assert!(field.starts_with(
            "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.org;"
        ));
        assert!(field.ends_with("\r\n"));
        for line in field.trim_end().split("\r\n") {
            assert!(line.len() <= LINE, "line too long: {line:?}");
        }
        assert_eq!(tag(&field, "s"), "sel");
        assert_eq!(tag(&field, "t"), "1700000000");
        assert_eq!(tag(&field, "h"), "from:from:to:subject");
        assert_eq!(BASE64.decode(tag(&field, "b")).unwrap().len(), 64);
        assert!(!field.contains(" l="), "no body length");
    }

    #[test]
    fn the_signature_verifies_over_the_data_it_names() {
        let signer = ed25519_signer(None, None);
        let field = sign_at(&signer, PLAIN, false).unwrap();
        let Key::Ed25519(key) = &signer.key else {
            unreachable!()
        };
        let b_at = field.find(" b=").unwrap() + 3;
        let mut data = Vec::new();
        for name in ["from", "to", "subject"] {
            let line = s(PLAIN)
                .split("\r\n")
                .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
                .unwrap()
                .to_string();
            relaxed_header(line.as_bytes(), &mut data);
        }
        relaxed_header(&field.as_bytes()[..b_at], &mut data);
        data.truncate(data.len() - 2);
        let b = BASE64.decode(tag(&field, "b")).unwrap();
        UnparsedPublicKey::new(&sig::ED25519, key.public_key().as_ref())
            .verify(digest::digest(&digest::SHA256, &data).as_ref(), &b)
            .expect("signature over the listed fields and the field itself");
        assert_eq!(
            tag(&field, "bh"),
            BASE64.encode(digest::digest(&digest::SHA256, b"Hello,\r\n\r\nbye.\r\n"))
        );
    }

    #[test]
    fn each_instance_is_signed_bottom_up_and_from_once_more() {
        let signer = ed25519_signer(Some(&["from", "X-A", "x-b"]), None);
        let message = b"X-A: 1\r\nFrom: a@example.org\r\nX-A:  2\r\nX-A: 3\r\n\r\n";
        let head = parse_head(&signer, &message[..message.len() - 2]).unwrap();
        assert_eq!(head.h, ["from", "from", "x-a", "x-a", "x-a"]);
        assert_eq!(
            s(&head.canon),
            "from:a@example.org\r\nx-a:3\r\nx-a:2\r\nx-a:1\r\n"
        );
        let field = sign_at(&signer, message, false).unwrap();
        assert_eq!(tag(&field, "h"), "from:from:x-a:x-a:x-a");
    }

    #[test]
    fn what_is_signed_is_the_wire_form() {
        let signer = ed25519_signer(None, None);
        let crlf = sign_at(&signer, PLAIN, false).unwrap();
        let lf = s(PLAIN).replace("\r\n", "\n");
        assert_eq!(sign_at(&signer, lf.as_bytes(), false).unwrap(), crlf);
        let cr = s(PLAIN).replace("\r\n", "\r");
        assert_eq!(sign_at(&signer, cr.as_bytes(), false).unwrap(), crlf);
        // No final line break: the encoder adds one on the wire.
        let open = &PLAIN[..PLAIN.len() - 2];
        assert_eq!(sign_at(&signer, open, false).unwrap(), crlf);
        // sendmail without -i: a lone dot ends the message, and what follows is not sent.
        let dotted = [PLAIN, b".\r\nnot sent\r\n"].concat();
        assert_eq!(sign_at(&signer, &dotted, true).unwrap(), crlf);
        assert_ne!(sign_at(&signer, &dotted, false).unwrap(), crlf);
        // A leading dot is signed as one dot: dot-stuffing is the transport's.
        let stuffed_later = [PLAIN, b"..x\r\n"].concat();
        let field = sign_at(&signer, &stuffed_later, true).unwrap();
        assert_eq!(
            tag(&field, "bh"),
            BASE64.encode(digest::digest(
                &digest::SHA256,
                b"Hello,\r\n\r\nbye.\r\n..x\r\n"
            ))
        );
    }

    #[test]
    fn every_split_of_the_input_gives_the_same_field() {
        let signer = ed25519_signer(None, None);
        let input: &[u8] = b"From: a@example.org\nSubject: s\r\n\t folded \r\n\rbody \t\n\r\n.\n";
        let whole = sign_at(&signer, input, false).unwrap();
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let mut signing = signer.start(false);
                signing.update(&input[..i]).unwrap();
                signing.update(&input[i..j]).unwrap();
                signing.update(&input[j..]).unwrap();
                assert_eq!(signing.finish_at(1_700_000_000).unwrap(), whole, "{i},{j}");
            }
        }
    }

    #[test]
    fn an_empty_body_hashes_the_empty_string() {
        let signer = ed25519_signer(None, None);
        let empty = BASE64.encode(digest::digest(&digest::SHA256, b""));
        assert_eq!(empty, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        for message in [
            &b"From: a@example.org\r\n\r\n"[..],
            b"From: a@example.org\r\n\r\n\r\n \r\n",
            b"From: a@example.org\r\n",
            b"From: a@example.org",
        ] {
            let field = sign_at(&signer, message, false).unwrap();
            assert_eq!(tag(&field, "bh"), empty, "{:?}", s(message));
        }
    }

    #[test]
    fn the_domain_is_the_from_domain_unless_configured() {
        let signer = ed25519_signer(None, None);
        let field = sign_at(
            &signer,
            b"From: \"Joe\" <joe@Mail.Example.ORG>\r\n\r\nx\r\n",
            false,
        );
        assert_eq!(tag(&field.unwrap(), "d"), "mail.example.org");
        let signer = ed25519_signer(None, Some("example.com"));
        let field = sign_at(&signer, b"From: joe@example.org\r\n\r\nx\r\n", false);
        assert_eq!(tag(&field.unwrap(), "d"), "example.com");
    }

    #[test]
    fn domain_for_names_the_d_tag_a_signature_gets() {
        let head = b"Subject: s\nFrom: \"Joe\" <joe@Mail.Example.ORG>,\n bob@x.example\n\nbody\n";
        let signer = ed25519_signer(None, None);
        let field = sign_at(&signer, head, false).unwrap();
        assert_eq!(signer.domain_for(head).unwrap(), tag(&field, "d"));
        assert_eq!(signer.domain_for(head).unwrap(), "mail.example.org");
        assert!(matches!(
            signer.domain_for(b"Subject: s\n\nFrom: a@b.example\n"),
            Err(Error::Data(_))
        ));
        let signer = ed25519_signer(None, Some("example.com"));
        assert_eq!(signer.domain_for(head).unwrap(), "example.com");
    }

    fn data_error(signer: &Signer, message: &[u8]) -> String {
        match sign_at(signer, message, false) {
            Err(Error::Data(msg)) => msg,
            other => panic!("expected a data error, got {other:?}"),
        }
    }

    #[test]
    fn a_message_that_cannot_be_signed_is_a_data_error() {
        let signer = ed25519_signer(None, None);
        assert!(data_error(&signer, b"Subject: x\r\n\r\nbody\r\n").contains("no From"));
        assert!(data_error(&signer, b"From: root\r\n\r\nbody\r\n").contains("dkim_domain"));
        assert!(
            data_error(&signer, "From: a@bücher.example\r\n\r\n".as_bytes())
                .contains("dkim_domain")
        );
        assert!(data_error(&signer, b"From: a@example.org\r\n\r\nx\0y\r\n").contains("NUL"));
        assert!(
            data_error(&signer, b"From: a@example.org\r\nnot a field\r\n\r\n")
                .contains("not a header field")
        );
        assert!(
            data_error(&signer, b" folded\r\nFrom: a@example.org\r\n\r\n").contains("continuation")
        );
        // With a configured domain a From without one is signed; no From at all is not.
        let signer = ed25519_signer(None, Some("example.org"));
        assert!(sign_at(&signer, b"From: root\r\n\r\nbody\r\n", false).is_ok());
        assert!(data_error(&signer, b"To: a@example.org\r\n\r\n").contains("no From"));
    }

    #[test]
    fn a_header_section_over_1_mib_is_refused_and_one_under_is_signed() {
        let signer = ed25519_signer(None, None);
        let filler = format!("X-Filler: {}\r\n", "y".repeat(900));
        let fields = MAX_HEADER_SECTION / filler.len();
        let under = format!(
            "From: a@example.org\r\n{}\r\nbody\r\n",
            filler.repeat(fields - 1)
        );
        assert!(sign_at(&signer, under.as_bytes(), false).is_ok());
        let over = format!(
            "From: a@example.org\r\n{}\r\nbody\r\n",
            filler.repeat(fields + 1)
        );
        assert!(data_error(&signer, over.as_bytes()).contains("1 MiB"));
    }

    #[test]
    fn names_are_checked_when_the_signer_is_made() {
        let key = || {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
            Key::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
        };
        let config_error = |c: SignerConfig| match Signer::new(key(), &c) {
            Err(e @ Error::Config(_)) => {
                assert_eq!(e.exit_status(), crate::ExitStatus::Config);
                e.to_string()
            }
            other => panic!("expected a config error, got {other:?}"),
        };
        let bad_selector = SignerConfig {
            selector: "s;x=1".into(),
            ..config(None, None)
        };
        assert!(config_error(bad_selector).contains("dkim_selector"));
        assert!(config_error(config(None, Some("bücher.example"))).contains("xn--"));
        assert!(config_error(config(None, Some("-a.example"))).contains("dkim_domain"));
        assert!(config_error(config(Some(&["To", "Subject"]), None)).contains("From"));
        assert!(config_error(config(Some(&["From", "Bad Name"]), None)).contains("Bad Name"));
        let ok = Signer::new(key(), &config(Some(&["FROM", "from", "To"]), None)).unwrap();
        assert_eq!(ok.headers, ["from", "to"]);
    }

    fn write_key(dir: &Path, pem: &[u8], mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("dkim.pem");
        std::fs::write(&path, pem).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn ed25519_pem() -> Vec<u8> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let b64 = BASE64.encode(pkcs8.as_ref());
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n").into_bytes()
    }

    fn load(path: &Path) -> Result<Signer> {
        Signer::load(&SignerConfig {
            key: path.to_path_buf(),
            ..config(None, None)
        })
    }

    #[test]
    fn a_key_file_others_may_read_or_write_is_refused_with_78() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602] {
            let path = write_key(dir.path(), &ed25519_pem(), mode);
            let err = load(&path).unwrap_err();
            assert_eq!(err.exit_status(), crate::ExitStatus::Config, "{mode:o}");
            assert_eq!(err.exit_status().code(), 78);
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        let path = write_key(dir.path(), &ed25519_pem(), 0o600);
        let signer = load(&path).unwrap();
        assert_eq!(signer.algorithm(), "ed25519-sha256");
        assert!(signer.dns_record().starts_with("v=DKIM1; k=ed25519; p="));
    }

    #[test]
    fn a_key_file_of_another_user_is_refused_with_78() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = write_key(dir.path(), &ed25519_pem(), 0o600);
        // A file we made is ours: owned by root means we are root.
        if std::fs::metadata(&path).unwrap().uid() != 0 {
            eprintln!("skipped: only root can give a file to another user");
            return;
        }
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let err = load(&path).unwrap_err();
        assert_eq!(err.exit_status().code(), 78);
        assert!(err.to_string().contains("belongs to"), "{err}");
    }

    #[test]
    fn a_signer_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Signer>();
    }

    #[test]
    fn unusable_key_files_are_config_errors() {
        let dir = tempfile::tempdir().unwrap();
        let refused = |pem: &[u8]| {
            let path = write_key(dir.path(), pem, 0o600);
            match load(&path) {
                Err(e @ Error::Config(_)) => e.to_string(),
                other => panic!("expected a config error, got {other:?}"),
            }
        };
        assert!(refused(b"not a key\n").contains("no PEM private key"));
        // RFC 8463's RSA key is 1024 bits: too small to sign with here (RFC 8301).
        assert!(refused(RFC8463_RSA_PRIVATE.as_bytes()).contains("2048"));
        let ec = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----\n";
        assert!(refused(ec.as_bytes()).contains("EC key"));
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n\
            -----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(refused(encrypted.as_bytes()).contains("encrypted"));
        let missing = load(&dir.path().join("absent.pem")).unwrap_err();
        assert!(matches!(missing, Error::Config(_)), "{missing}");
        assert!(matches!(load(dir.path()), Err(Error::Config(_))));
    }

    #[test]
    fn the_ed25519_dns_record_is_the_raw_public_key() {
        let seed = BASE64.decode(RFC8463_SEED).unwrap();
        let key = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        let signer = Signer::new(Key::Ed25519(key), &config(None, None)).unwrap();
        assert_eq!(
            signer.dns_record(),
            format!("v=DKIM1; k=ed25519; p={RFC8463_ED25519_PUBLIC}")
        );
    }
}
